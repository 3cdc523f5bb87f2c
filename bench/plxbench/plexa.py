"""plexa's side of bench/run: its clusters and workloads."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import urllib.request

from plxbench import hostile
from plxbench.common import (
    BCAST_ENGINES, BCAST_PP_CASE, BCAST_PUSH_CASE, BCAST_PUSH_SENT_CASE, BCAST_REF_CASE,
    BCAST_REF_RSS_CASE, BCAST_RSS_CASE, EXAMPLES, Interrupted, MiB, NotAvailable,
    PRINT_LOOP_CELL, Spec, UNEVEN_SPEC, W1, W10, W2, W3, W4, W5, W6, _alive, _children,
    after_untimed_round, array, check_array, check_ends, check_identity, clear, close_quietly,
    costed, deadline, latencies, load_balance, load_balance_specs, log, nap, null,
    print_loop_spec, proc_status_mib, reraise_if_interrupted, reset_peak_rss, shielded,
    shm_in_use, size_name, timed, uneven_ratio, warm_up
)


class Plexa(object):
    """plexa's workloads on the profile `default` (tls, and shared memory
    on this host: what a user gets), and the cluster of one profile. The
    round trips, push/pull and scatter/gather also run, turn about, on two
    comparison clusters with shared memory off, one per network transport
    (see compare_clusters)."""
    name = 'plexa'

    # The comparison clusters: (profile = transport, system of their rows).
    # Their cluster.conf says `shm = false`: their rows measure the network
    # path, the `plexa` rows the default one (shared memory, on this host).
    COMPARED = (('tls', 'plexa-tls'), ('tcp', 'plexa-tcp'))

    def __init__(self, ctx, profile='default'):
        self.ctx = ctx
        self.profile = profile
        self.peers = []         # the comparison clusters' Plexa, once started
        self.mec = None         # a comparison cluster's MultiEngineClient
        self.build = ctx.build
        self.ipcluster = os.path.join(self.build, 'bin', 'ipcluster')
        self.plexa_dir = os.path.join(ctx.tmp, 'plexa')
        os.makedirs(self.plexa_dir, exist_ok=True)
        env = dict(os.environ)
        env.pop('PLEXA_URL', None)
        env['PLEXA_DIR'] = self.plexa_dir
        env['PYTHONPATH'] = os.pathsep.join(
            [os.path.join(self.build, 'python')] +
            [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
        self.env = env
        self.running = False

    # -- cluster ---------------------------------------------------------------

    def start(self, n):
        """ipcluster start -n N in examples/ (it returns once the engines
        are registered); the seconds it took."""
        self.running = True     # even a failed start may leave processes: stop it
        cmd = [self.ipcluster, 'start', '-n', str(n), '--timeout', '120',
               '--profile=%s' % self.profile]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=EXAMPLES, env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=180)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError('ipcluster start -n %d --profile=%s failed (exit %d): %s'
                               % (n, self.profile, p.returncode, p.stdout.strip()[-400:]))
        return dt

    def profile_dir(self):
        return os.path.join(self.plexa_dir, 'profile_%s' % self.profile)

    def write_conf(self, text):
        """The profile's cluster.conf (the directory is made 0700, as
        plexa makes its own)."""
        os.makedirs(self.profile_dir(), mode=0o700, exist_ok=True)
        with open(os.path.join(self.profile_dir(), 'cluster.conf'), 'w') as f:
            f.write(text)

    def transport(self):
        """'tls' or 'tcp': the scheme of the running cluster's mec
        connection file (None if there is none)."""
        path = os.path.join(self.profile_dir(), 'security', 'ipcontroller-mec.url')
        try:
            with open(path) as f:
                m = re.match(r'plx\+(\w+)://', f.read().strip(), re.I)
        except OSError:
            return None
        return m.group(1).lower() if m else None

    def bytes_sent_to_engines(self):
        """What the controller has sent its engines so far (its status
        page's bytes_sent, summed)."""
        with open(os.path.join(self.profile_dir(), 'security', 'ipcontroller-status.http')) as f:
            url = f.read().strip().replace('/?', '/status.json?')
        with urllib.request.urlopen(url, timeout=10) as r:
            return sum(e['bytes_sent'] for e in json.load(r)['engines'])

    def controller_pid(self):
        with open(os.path.join(self.profile_dir(), 'pid', 'ipcontroller.pid')) as f:
            return int(f.read().split()[0])

    def _pids(self):
        pids = set()
        piddir = os.path.join(self.profile_dir(), 'pid')
        try:
            names = os.listdir(piddir)
        except OSError:
            return pids
        for name in names:
            try:
                with open(os.path.join(piddir, name)) as f:
                    pid = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            pids.add(pid)
            pids.update(_children(pid))
        return pids

    def stop(self):
        """ipcluster stop; then make sure every process of the cluster is
        gone (by pid), loudly if ipcluster stop left any."""
        if not self.running:
            return
        with shielded():
            pids = self._pids()
            try:
                p = subprocess.run([self.ipcluster, 'stop', '--profile=%s' % self.profile],
                                   env=self.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, timeout=60, start_new_session=True)
                if p.returncode != 0 and pids:
                    log('bench: ipcluster stop failed (exit %d): %s'
                        % (p.returncode, p.stdout.strip()[-300:]))
            except subprocess.TimeoutExpired:
                log('bench: ipcluster stop timed out')
            end = time.time() + 10
            while time.time() < end and any(_alive(x) for x in pids):
                time.sleep(0.05)
            left = [x for x in pids if _alive(x)]
            if left:
                log('bench: WARNING: ipcluster stop --profile=%s left plexa processes %s '
                    'running; killing them' % (self.profile, left))
                self.ctx.warnings.append('ipcluster stop left processes running (killed)')
                for x in left:
                    try:
                        os.kill(x, signal.SIGKILL)
                    except OSError:
                        pass
            self.running = False

    # -- workloads --------------------------------------------------------------

    def run(self, R):
        P = self.ctx.params
        start_spec = Spec(W5, '2 engines', 'plexa', 'ipcluster start -n 2', 's', False)
        first_start = []
        mec = None
        try:
            try:
                with deadline(P.timeout):
                    first_start.append(self.start(2))
                from plexa import client
                mec = client.MultiEngineClient()
                ids = mec.get_ids()
                if len(ids) != 2:
                    raise RuntimeError('expected 2 engines, got %r' % (ids,))
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all(self.specs() + [start_spec], 'error',
                           'cluster did not start: %s' % e)
                return
            self.ctx.plexa_transports = dict(default=self.transport(), shm=shm_in_use(mec),
                                             compared=[])
            self.null_tasks(R, client, mec)
            self.load_balance(R, client)
            others = self.compare_clusters(R, client)
            try:
                self.round_trip(R, mec, others)
                self.push_pull(R, mec, others)
                self.scatter_gather(R, mec, others)
            finally:
                self.stop_compare()
            self.shared_array_push(R, mec)
            self.prime(R)
            self.print_loop(R, mec)
            hostile.run(R, self, mec)
        finally:
            if mec is not None:
                close_quietly(mec)
            self.stop_compare()
            self.stop()
        self.broadcast(R)
        self.broadcast(R, 'plexa-tls')
        # start-up: the first start above, then start/stop cycles
        try:
            def again(n):
                try:
                    return self.start(n)
                finally:
                    self.stop()
            R.measure(start_spec, lambda: first_start.pop() if first_start else again(2))
            R.measure(Spec(W5, '64 engines', 'plexa', 'ipcluster start -n 64', 's', False),
                      lambda: again(64), repeat=1 if P.quick else P.repeat)
        finally:
            self.stop()

    def specs(self):
        """Every row run() produces (for a cluster that did not start)."""
        P = self.ctx.params
        s = [Spec(W1, 'map N=%d' % n, 'plexa', 'TaskClient().map', 'tasks/s', True)
             for n in P.null_ns]
        s.append(Spec(W1, 'submit N=%d' % P.submit_n, 'plexa', 'tc.run(MapTask)+barrier',
                      'tasks/s', True))
        for what in ('execute', 'apply'):
            for stat in ('mean', 'p99'):
                s.append(Spec(W2, '%s %s' % (what, stat), 'plexa', '', 'us', False))
        for size in P.push_sizes:
            for d in ('push', 'pull'):
                s.append(Spec(W3, '%s %s' % (d, size_name(size)), 'plexa', '', 'MB/s', True))
        s.append(Spec(W4, 'speedup, 2 engines', 'plexa', 'examples/prime1_mec.py', 'x', True))
        for d in ('scatter', 'gather'):
            s.append(Spec(W6, '%s %s' % (d, size_name(P.scatter_bytes)), 'plexa', '',
                          'MB/s', True))
        s.append(print_loop_spec('plexa', P.print_n, ''))
        for _case, _kind, _d, _ideal, specs in load_balance_specs('plexa', self.LB_APIS):
            s += specs
        return (s + [self.shared_array_spec()] + self.broadcast_specs()
                + self.broadcast_specs('plexa-tls') + hostile.specs())

    # -- the comparison clusters: tls and tcp with shared memory off ------------------

    def compare_clusters(self, R, client):
        """The comparison clusters, beside the default one: profiles `tls`
        and `tcp`, whose cluster.conf names that transport and says
        `[controller] shm = false`, so their rows measure the network path
        while the default cluster's take shared memory. [(system, its
        MultiEngineClient)] for those that started; the rows of one that
        did not say why."""
        out = []
        for transport, system in self.COMPARED:
            peer = Plexa(self.ctx, profile=transport)
            self.peers.append(peer)
            peer.write_conf('# written by bench/run: a comparison cluster, on the network '
                            'path\n[cluster]\ntransport = %s\n[controller]\nshm = false\n'
                            % transport)
            try:
                with deadline(self.ctx.params.timeout):
                    peer.start(2)
                mec = client.MultiEngineClient(profile=transport)
                peer.mec = mec
                ids = mec.get_ids()
                if len(ids) != 2:
                    raise RuntimeError('expected 2 engines, got %r' % (ids,))
                if peer.transport() != transport:
                    raise RuntimeError('profile %s runs %s, not %s'
                                       % (transport, peer.transport(), transport))
                if shm_in_use(mec):
                    raise RuntimeError('profile %s uses shared memory although its '
                                       'cluster.conf says shm = false' % transport)
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all(self.compare_specs(system), 'error',
                           'the %s cluster did not start: %s' % (transport, e))
                continue
            self.ctx.plexa_transports['compared'].append(
                dict(system=system, profile=transport, transport=transport, shm=False))
            out.append((system, mec))
        return out

    def compare_specs(self, system):
        return [Spec(s.workload, s.case, system, s.api, s.unit, s.higher_better)
                for s in self.specs() if s.workload in (W2, W3, W6)]

    def stop_compare(self):
        """Stop the comparison clusters that were started (or half-started)."""
        peers, self.peers = self.peers, []
        for peer in peers:
            if peer.mec is not None:
                close_quietly(peer.mec)
            peer.stop()

    def task_client(self, client, tc_holder, *needs):
        """The TaskClient in tc_holder (one for a family of workloads), made
        on first use, once it is sure that it offers what the workload
        needs."""
        cls = getattr(client, 'TaskClient', None)
        if cls is None:
            raise NotAvailable('TaskClient missing')
        for name in needs:
            if not hasattr(cls, name):
                raise NotAvailable('TaskClient.%s missing' % name)
        if not tc_holder:
            tc_holder.append(cls())
        return tc_holder[0]

    def null_tasks(self, R, client, mec):
        P = self.ctx.params
        tc_holder = []

        def task_client(*needs):
            return self.task_client(client, tc_holder, *needs)

        for n in P.null_ns:
            def one(n=n):
                tc = task_client('map')
                t, r = timed(tc.map, lambda x: x, range(n))
                check_identity(r, n)
                clear(tc)
                return n / t
            R.measure(Spec(W1, 'map N=%d' % n, 'plexa', 'TaskClient().map', 'tasks/s', True), one)

        def submit():
            if not hasattr(client, 'MapTask'):
                raise NotAvailable('MapTask missing')
            tc = task_client('run', 'barrier', 'get_task_result')
            n, MapTask, f = P.submit_n, client.MapTask, (lambda x: x)
            t0 = time.perf_counter()
            ids = [tc.run(MapTask(f, args=(i,))) for i in range(n)]
            tc.barrier(ids)
            t = time.perf_counter() - t0
            if tc.get_task_result(ids[-1]) != n - 1:
                raise AssertionError('wrong task result')
            clear(tc)
            return n / t
        R.measure(Spec(W1, 'submit N=%d' % P.submit_n, 'plexa', 'tc.run(MapTask)+barrier',
                       'tasks/s', True), submit)

        def uneven():
            tc = task_client('map')
            r = uneven_ratio(lambda costs: tc.map(costed, costs), P.uneven_n)
            clear(tc)
            return r
        R.measure(Spec(W1, UNEVEN_SPEC, 'plexa', 'TaskClient().map(costed, costs)', 'x ideal',
                       False), uneven)
        for tc in tc_holder:
            if hasattr(tc, 'close'):
                warm_up(tc.close)

    LB_APIS = {'map': 'tc.map(nap, durations)',
               'submit': 'tc.run(MapTask(nap, args=(t,))) x n + tc.barrier(ids)'}

    def load_balance(self, R, client):
        """Issue 16's workloads, on a TaskClient of their own."""
        tc_holder = []

        def lb_map(d):
            tc = self.task_client(client, tc_holder, 'map')
            t, r = timed(tc.map, nap, d)
            clear(tc)
            return t, r

        def lb_submit(d):
            if not hasattr(client, 'MapTask'):
                raise NotAvailable('MapTask missing')
            tc = self.task_client(client, tc_holder, 'run', 'barrier', 'get_task_result')
            MapTask = client.MapTask
            t0 = time.perf_counter()
            ids = [tc.run(MapTask(nap, args=(x,))) for x in d]
            tc.barrier(ids)
            t = time.perf_counter() - t0
            reraise_if_interrupted()
            r = [tc.get_task_result(i) for i in ids]
            clear(tc)
            return t, r
        try:
            load_balance(R, 'plexa', {'map': lb_map, 'submit': lb_submit}, self.LB_APIS)
        finally:
            for tc in tc_holder:
                if hasattr(tc, 'close'):
                    warm_up(tc.close)

    def round_trip(self, R, mec, others=()):
        """execute and apply round trips; with others = [(system, mec)],
        the same on those clusters, turn about."""
        P = self.ctx.params
        # MultiEngineClient has no apply (neither had 0.10's): the nearest
        # single call is a one-element raw_map on one engine.
        apply_note = ('MultiEngineClient has no apply: raw_map of one element, which also '
                      'asks the controller for get_ids() first')

        def execute(m):
            return lambda: latencies(lambda: m.execute('a=1', targets=0), P.rtt_n)

        def apply(m):
            def call():
                r = m.raw_map(null, [[0]], targets=0)
                if r != [0]:
                    raise AssertionError('raw_map returned %r' % (r,))
            return lambda: latencies(call, P.rtt_n)
        for what, api, make, note in (
                ('execute', "mec.execute('a=1', targets=0)", execute, ''),
                ('apply', 'mec.raw_map(f, [[0]], targets=0)', apply, apply_note)):
            R.measure_side_by_side(
                [([Spec(W2, '%s mean' % what, system, api, 'us', False),
                   Spec(W2, '%s p99' % what, system, api, 'us', False)], make(m), note)
                 for system, m in [('plexa', mec)] + list(others)])

    def push_pull(self, R, mec, others=()):
        """push/pull of 1 MiB and 256 MiB; with others = [(system, mec)],
        the same on those clusters, turn about."""
        P = self.ctx.params
        clusters = [('plexa', mec)] + list(others)
        # warm-up: the engine imports numpy on the first array it receives
        for _system, m in clusters:
            warm_up(lambda m=m: (m.push({'a': array(MiB)}, targets=0), m.pull('a', targets=0)))
        for size in P.push_sizes:
            arr = array(size)
            inner = P.small_inner if size < 16 * MiB else 1

            def one(m, arr=arr, inner=inner):
                tp = tl = 0.0
                for _ in range(inner):
                    t, _r = timed(m.push, {'a': arr}, targets=0)
                    tp += t
                    t, got = timed(m.pull, 'a', targets=0)
                    tl += t
                    if isinstance(got, list) and len(got) == 1:
                        got = got[0]
                    check_array(got, arr)
                    del got
                # the engine frees its copy before the other clusters' turn
                m.execute('a = None', targets=0)
                return arr.nbytes * inner / tp / 1e6, arr.nbytes * inner / tl / 1e6
            sz = size_name(size)
            R.measure_side_by_side(
                [([Spec(W3, 'push %s' % sz, system, "mec.push({'a': arr}, targets=0)",
                        'MB/s', True),
                   Spec(W3, 'pull %s' % sz, system, "mec.pull('a', targets=0)",
                        'MB/s', True)], lambda m=m: after_untimed_round(one, m), '')
                 for system, m in clusters])

    def prime(self, R):
        spec = Spec(W4, 'speedup, 2 engines', 'plexa', 'examples/prime1_mec.py', 'x', True)
        script = os.path.join(EXAMPLES, 'prime1_mec.py')

        def one():
            if not os.path.exists(script):
                raise NotAvailable('examples/prime1_mec.py missing')
            p = subprocess.run([sys.executable, script], cwd=EXAMPLES, env=self.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=self.ctx.params.timeout)
            m = re.search(r'Speedup of sum_primes on (\d+) cores: ([0-9.]+)', p.stdout)
            if p.returncode != 0 or not m:
                raise RuntimeError('prime1_mec.py failed (exit %d): %s'
                                   % (p.returncode, p.stdout.strip()[-300:]))
            return float(m.group(2))
        R.measure(spec, one)

    def print_loop(self, R, mec):
        n = self.ctx.params.print_n

        def one():
            mec.execute(PRINT_LOOP_CELL % dict(n=n), targets=0)
            return mec.pull('_plexa_ratio', targets=0)[0]
        R.measure(print_loop_spec('plexa', n, 'mec.execute(loop), live output on'), one)

    def scatter_gather(self, R, mec, others=()):
        """scatter/gather over the 2 engines; with others = [(system,
        mec)], the same on those clusters, turn about."""
        P = self.ctx.params
        arr = array(P.scatter_bytes)
        sz = size_name(P.scatter_bytes)
        clusters = [('plexa', mec)] + list(others)

        def one(m):
            ts, _r = timed(m.scatter, 'a', arr)
            tg, got = timed(m.gather, 'a')
            check_array(got, arr)
            del got
            # the engines free their parts before the other clusters' turn
            m.execute('a = None')
            return arr.nbytes / ts / 1e6, arr.nbytes / tg / 1e6
        R.measure_side_by_side(
            [([Spec(W6, 'scatter %s' % sz, system, "mec.scatter('a', arr)", 'MB/s', True),
               Spec(W6, 'gather %s' % sz, system, "mec.gather('a')", 'MB/s', True)],
              lambda m=m: after_untimed_round(one, m), '')
             for system, m in clusters])

    # -- workload 10: what only shared memory gives -----------------------------------

    def shared_array_spec(self):
        return Spec(W10, 'push %s, plexa.shared_array' % size_name(self.ctx.params.shared_bytes),
                    'plexa', "mec.push({'a': plexa.shared_array(...)}, targets=0), shm",
                    'MB/s', True)

    def shared_array_push(self, R, mec):
        """A push of an array made by plexa.shared_array: it already lives
        in shared memory, so it is sent by descriptor, with no copy at all
        (on a client that uses shared memory, which it must here)."""
        spec = self.shared_array_spec()
        try:
            import plexa
            if not hasattr(plexa, 'shared_array'):
                raise NotAvailable('plexa.shared_array missing')
            if not shm_in_use(mec):
                raise NotAvailable('the default cluster does not use shared memory '
                                   '(mec.shared_memory is %r)' % (shm_in_use(mec),))
            src = array(self.ctx.params.shared_bytes)
            a = plexa.shared_array(src.shape, dtype=src.dtype)
            a[:] = src
        except NotAvailable as e:
            R.fail_all([spec], 'n/a', 'not available: %s' % e)
            return

        def one():
            t, _r = timed(mec.push, {'a': a}, targets=0)
            check_ends(mec, [0], a)
            mec.execute('a = None', targets=0)
            return a.nbytes / t / 1e6
        warm_up(one)
        R.measure(spec, one)

    def broadcast_specs(self, system='plexa'):
        sz = size_name(self.ctx.params.bcast_bytes)
        n = BCAST_ENGINES - 1
        path = 'shm' if system == 'plexa' else 'tls, shm off: the engines fetch directly'
        rss = "ipcontroller's peak VmRSS during it, less VmRSS before"
        return [Spec(W10, BCAST_PP_CASE % (sz, n), system,
                     "x = mec.pull('a', targets=0)[0]; mec.push({'a': x}, "
                     'targets=[1..%d]), %d engines, %s' % (n, BCAST_ENGINES, path), 's', False),
                Spec(W10, BCAST_RSS_CASE % sz, system, rss, 'MiB', False),
                Spec(W10, BCAST_REF_CASE % (sz, n), system,
                     "mec.push({'a': plexa.ref('a', engine=0)}, targets=[1..%d]), %d engines, "
                     '%s' % (n, BCAST_ENGINES, path), 's', False),
                Spec(W10, BCAST_REF_RSS_CASE % sz, system, rss, 'MiB', False),
                Spec(W10, BCAST_PUSH_CASE % (sz, BCAST_ENGINES), system,
                     "mec.push({'a': x}), %s" % ('shm' if system == 'plexa' else
                                                 'tls, shm off: a tree of engines'), 's', False),
                Spec(W10, BCAST_PUSH_SENT_CASE % (sz, BCAST_ENGINES), system,
                     "status.json: the engines' bytes_sent, after less before", 'MiB', False)]

    def broadcast(self, R, system='plexa'):
        """Engine 0's array copied to the other engines of a cluster of
        BCAST_ENGINES: by plexa.ref, and by a pull to the client then a
        push to the others. And what the controller's resident memory grows
        by meanwhile, at its peak. System plexa: the default profile, with
        shared memory (the controller forwards descriptors and never touches
        the pages); plexa-tls: shared memory off, where plexa.ref's values
        go from engine 0 to the others directly."""
        P = self.ctx.params
        specs = self.broadcast_specs(system)
        shm = system == 'plexa'
        profile = 'broadcast' if shm else 'broadcast-tls'
        cluster = Plexa(self.ctx, profile=profile)
        if not shm:
            cluster.write_conf('# written by bench/run: the network path\n'
                               '[cluster]\ntransport = tls\n[controller]\nshm = false\n')
        mec = None
        want = array(P.bcast_bytes)
        try:
            try:
                with deadline(P.timeout):
                    cluster.start(BCAST_ENGINES)
                from plexa import client
                mec = client.MultiEngineClient(profile=profile)
                ids = mec.get_ids()
                if len(ids) != BCAST_ENGINES:
                    raise RuntimeError('expected %d engines, got %r' % (BCAST_ENGINES, ids))
                if shm_in_use(mec) != shm:
                    raise NotAvailable('the %d-engine cluster %s shared memory '
                                       '(mec.shared_memory is %r)'
                                       % (BCAST_ENGINES, 'does not use' if shm else 'uses',
                                          shm_in_use(mec)))
                ctl = cluster.controller_pid()
                # engine 0 makes the array itself (as array() does), so it is
                # the engine's own memory, not a region it received
                mec.execute('import numpy\na = numpy.random.default_rng(7).random(%d)'
                            % want.size, targets=ids[0])
            except NotAvailable as e:
                R.fail_all(specs, 'n/a', 'not available: %s' % e)
                return
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all(specs, 'error', 'the %d-engine cluster did not start: %s'
                           % (BCAST_ENGINES, e))
                return
            others = ids[1:]
            import plexa

            def one():
                mec.execute('a = None', targets=others)
                before = reset_peak_rss(ctl)
                t0 = time.perf_counter()
                x = mec.pull('a', targets=ids[0])[0]
                mec.push({'a': x}, targets=others)
                t = time.perf_counter() - t0
                reraise_if_interrupted()
                growth = proc_status_mib(ctl, 'VmHWM') - before
                del x
                check_ends(mec, others, want)
                mec.execute('a = None', targets=others)
                before = reset_peak_rss(ctl)
                t0 = time.perf_counter()
                mec.push({'a': plexa.ref('a', engine=ids[0])}, targets=others)
                tr = time.perf_counter() - t0
                reraise_if_interrupted()
                growth_r = proc_status_mib(ctl, 'VmHWM') - before
                check_ends(mec, others, want)
                mec.execute('a = None')
                sent = cluster.bytes_sent_to_engines()
                t0 = time.perf_counter()
                mec.push({'a': want})
                tp = time.perf_counter() - t0
                reraise_if_interrupted()
                sent = (cluster.bytes_sent_to_engines() - sent) / MiB
                check_ends(mec, ids, want)
                return t, growth, tr, growth_r, tp, sent
            warm_up(one)
            R.measure(specs, one)
        finally:
            if mec is not None:
                close_quietly(mec)
            cluster.stop()
