"""Workload 12: bulk data across hosts, on the field test bed of network
namespaces (tests/field/testbed.py): the controller (ipyparallel's
controller, Dask's scheduler) and the client on login, two engines
(workers) on each of node1 and node2. Engines reach each other and login
over a bridge of veth links, and every "host" shares this machine's
cores: the rows say what crosses which host more than how fast a real
network would carry it.

Each repetition, from a client on login, with a float64 array:
  - gather it from the four engines and scatter it back: plexa moves the
    pieces straight between the client and each engine (and, for
    comparison, with ``direct=False`` through the controller), and says
    how many MiB its controller received and sent meanwhile (the status
    page's bytes); ipyparallel with a DirectView's gather and scatter,
    Dask with client.gather and client.scatter of one piece per worker;
  - move it from an engine on node1 to the two on node2: plexa by
    plexa.ref, Dask by a task on each node2 worker that takes the node1
    worker's future (worker to worker); and by a pull to the client and
    a push, the only way ipyparallel has. plexa says how many MiB
    crossed its controller for the ref.

Then every host's link is shaped to LINK (tc tbf on its egress, as a
1 Gbit/s NIC would carry it) and the client pushes the array to all
four engines: plexa as a pipelined tree of engines (the controller sends
it once), ipyparallel from its hub to each engine, Dask by
client.scatter(broadcast=True) (to one worker, then replicated). Shaped,
the links and not this machine's cores set the pace, as on a cluster.

Each system runs on a bed of its own, one after the other; plexa's
engines are started by its ssh launcher, the peers' by their own
commands run in the nodes' namespaces.
"""

import json
import os
import sys
import time
import traceback

from plxbench.common import (
    REPO, Spec, reraise_if_interrupted, log, size_name
)

W12 = '12 cross-host'
GATHER_CASE = 'gather %s from 4 engines on 2 hosts'
GATHER_VIA_CASE = 'gather %s from 4 engines on 2 hosts, through the controller'
GATHER_CTL_CASE = 'gather %s: what the controller received'
SCATTER_CASE = 'scatter %s over 4 engines on 2 hosts'
SCATTER_VIA_CASE = 'scatter %s over 4 engines on 2 hosts, through the controller'
SCATTER_CTL_CASE = 'scatter %s: what the controller sent'
REF_CASE = '%s from node1 to 2 engines on node2, engine to engine'
REF_PP_CASE = '%s from node1 to 2 engines on node2, a pull to the client and a push'
REF_CTL_CASE = '%s from node1 to node2 by plexa.ref: bytes through the controller'
LINK = '1gbit'
BCAST_CASE = 'push %s from login to 4 engines on 2 hosts, 1 Gbit/s links'
BCAST_CTL_CASE = 'push %s to 4 engines on 2 hosts: what the controller sent'
SCHED_PORT = 8786

# Run on login: timed(name, fn) keeps fn's time from the second run on
# (the first warms up); the scripts below define it first.
COMMON = r'''
import json, sys, time
import numpy
size, repeat = int(sys.argv[1]), int(sys.argv[2])
n = size // 8
want = numpy.arange(n, dtype='f8')
out = {}
WHERE = ("import subprocess\n"
         "where = subprocess.run(['ip', '-o', '-4', 'addr', 'show', 'cluster'], "
         "capture_output=True, text=True).stdout.split()[3].split('/')[0]")


def timed(name, fn, keep=True):
    t0 = time.perf_counter()
    v = fn()
    t = time.perf_counter() - t0
    if keep:
        out.setdefault(name, []).append(t)
    return v
'''

PLEXA = COMMON + r'''
import urllib.request
import plexa
from plexa import client
url = open(sys.argv[3]).read().strip().replace('/?', '/status.json?')


def ctl():
    with urllib.request.urlopen(url, timeout=10) as r:
        es = json.load(r)['engines']
    return sum(e['bytes_received'] for e in es), sum(e['bytes_sent'] for e in es)


direct, relay = client.MultiEngineClient(), client.MultiEngineClient(direct=False)
direct.execute(WHERE)
w = dict(zip(direct.get_ids(), direct.pull('where')))
src = min(i for i in w if w[i] == '10.231.2.11')
dst = sorted(i for i in w if w[i] == '10.231.2.12')
direct.scatter('x', want)
direct.execute('import numpy; big = numpy.arange(%d, dtype="f8")' % n, targets=src)
for rep in range(repeat + 1):
    keep = rep > 0
    for name, m in (('', direct), (' via', relay)):
        r0, s0 = ctl()
        g = timed('gather' + name, lambda: m.gather('x'), keep)
        r1, s1 = ctl()
        assert (g == want).all()
        timed('scatter' + name, lambda: m.scatter('x', want), keep)
        r2, s2 = ctl()
        if keep and not name:
            out.setdefault('gather ctl', []).append((r1 - r0) / 2**20)
            out.setdefault('scatter ctl', []).append((s2 - s1) / 2**20)
    r0, s0 = ctl()
    timed('ref', lambda: direct.push({'c': plexa.ref('big', engine=src)}, targets=dst), keep)
    r1, s1 = ctl()
    if keep:
        out.setdefault('ref ctl', []).append((r1 - r0 + s1 - s0) / 2**20)
    timed('pull push', lambda: direct.push({'d': direct.pull('big', targets=src)[0]},
                                           targets=dst), keep)
    direct.execute('ok = bool((c == d).all() and c[-1] == %d)' % (n - 1), targets=dst)
    assert direct.pull('ok', targets=dst) == [True, True]
print(json.dumps(out))
'''

PLEXA_BCAST = COMMON + r'''
import urllib.request
from plexa import client
url = open(sys.argv[3]).read().strip().replace('/?', '/status.json?')


def sent():
    with urllib.request.urlopen(url, timeout=10) as r:
        return sum(e['bytes_sent'] for e in json.load(r)['engines'])


m = client.MultiEngineClient()
for rep in range(repeat + 1):
    keep = rep > 0
    s0 = sent()
    timed('bcast', lambda: m.push({'b': want}), keep)
    if keep:
        out.setdefault('bcast ctl', []).append((sent() - s0) / 2**20)
m.execute('ok = bool(b[-1] == %d)' % (n - 1))
assert m.pull('ok') == [True] * 4
print(json.dumps(out))
'''

IPP_BCAST = COMMON + r'''
import ipyparallel as ipp
rc = ipp.Client(profile_dir=sys.argv[3], timeout=60)
rc.wait_for_engines(4, timeout=120)
for rep in range(repeat + 1):
    timed('bcast', lambda: rc[:].push({'b': want}, block=True), rep > 0)
assert all(rc[:].apply_sync(lambda: bool(b[-1] == b.size - 1)))
rc.close()
print(json.dumps(out))
'''

DASK_BCAST = COMMON + r'''
from distributed import Client, wait
client = Client(sys.argv[3], timeout=60)
client.wait_for_workers(4, timeout=120)
for rep in range(repeat + 1):
    f = timed('bcast', lambda: client.scatter(want, broadcast=True, hash=False), rep > 0)
    assert len(client.who_has([f])[f.key]) == 4
    del f
client.close()
print(json.dumps(out))
'''

IPP = COMMON + r'''
import ipyparallel as ipp
rc = ipp.Client(profile_dir=sys.argv[3], timeout=60)
rc.wait_for_engines(4, timeout=120)
dv = rc[:]
dv.execute(WHERE, block=True)
w = dict(zip(rc.ids, dv.pull('where', block=True)))
src = min(i for i in w if w[i] == '10.231.2.11')
dst = sorted(i for i in w if w[i] == '10.231.2.12')
dv.scatter('x', want, block=True)
rc[src].execute('import numpy; big = numpy.arange(%d, dtype="f8")' % n, block=True)
for rep in range(repeat + 1):
    keep = rep > 0
    g = timed('gather', lambda: dv.gather('x', block=True), keep)
    assert (g == want).all()
    timed('scatter', lambda: dv.scatter('x', want, block=True), keep)
    timed('pull push', lambda: rc[dst].push({'d': rc[src].pull('big', block=True)}, block=True),
          keep)
    assert all(rc[dst].apply_sync(lambda: bool(d[-1] == d.size - 1)))
rc.close()
print(json.dumps(out))
'''

DASK = COMMON + r'''
from distributed import Client, wait
client = Client(sys.argv[3], timeout=60)
client.wait_for_workers(4, timeout=120)
workers = sorted(client.scheduler_info()['workers'])
on1 = [a for a in workers if '10.231.2.11' in a]
on2 = [a for a in workers if '10.231.2.12' in a]
parts = numpy.array_split(want, len(workers))
futs = [client.scatter(p, workers=[a], hash=False) for p, a in zip(parts, workers)]


def make(n):
    import numpy
    return numpy.arange(n, dtype='f8')


def last(a):
    return float(a[-1])


for rep in range(repeat + 1):
    keep = rep > 0
    g = timed('gather', lambda: numpy.concatenate(client.gather(futs)), keep)
    assert (g == want).all()
    futs = timed('scatter', lambda: [client.scatter(p, workers=[a], hash=False)
                                     for p, a in zip(parts, workers)], keep)
    big = client.submit(make, n, workers=on1, pure=False)
    wait(big)

    def e2e():
        got = [client.submit(last, big, workers=[a], pure=False) for a in on2]
        return client.gather(got)
    assert timed('ref', e2e, keep) == [n - 1.0] * 2

    def pull_push():
        v = big.result()
        return [client.scatter(v, workers=[a], hash=False) for a in on2]
    timed('pull push', pull_push, keep)
    del big
client.close()
print(json.dumps(out))
'''


def specs(P):
    sz = size_name(P.field_bytes)
    s = [Spec(W12, GATHER_CASE % sz, 'plexa', "mec.gather('x')", 'MB/s', True),
         Spec(W12, GATHER_VIA_CASE % sz, 'plexa', "MultiEngineClient(direct=False).gather('x')",
              'MB/s', True),
         Spec(W12, GATHER_CTL_CASE % sz, 'plexa', 'status page bytes_received', 'MiB', False),
         Spec(W12, SCATTER_CASE % sz, 'plexa', "mec.scatter('x', a)", 'MB/s', True),
         Spec(W12, SCATTER_VIA_CASE % sz, 'plexa',
              "MultiEngineClient(direct=False).scatter('x', a)", 'MB/s', True),
         Spec(W12, SCATTER_CTL_CASE % sz, 'plexa', 'status page bytes_sent', 'MiB', False),
         Spec(W12, REF_CASE % sz, 'plexa', "mec.push({'c': plexa.ref('big', engine=src)})",
              's', False),
         Spec(W12, REF_PP_CASE % sz, 'plexa', 'mec.pull + mec.push', 's', False),
         Spec(W12, REF_CTL_CASE % sz, 'plexa', 'status page bytes', 'MiB', False),
         Spec(W12, BCAST_CASE % sz, 'plexa', "mec.push({'b': a}): a pipelined tree", 's',
              False),
         Spec(W12, BCAST_CTL_CASE % sz, 'plexa', 'status page bytes_sent', 'MiB', False)]
    return s


def peer_specs(P, system):
    sz = size_name(P.field_bytes)
    if system == 'ipyparallel':
        return [Spec(W12, GATHER_CASE % sz, system, "rc[:].gather('x')", 'MB/s', True),
                Spec(W12, SCATTER_CASE % sz, system, "rc[:].scatter('x', a)", 'MB/s', True),
                Spec(W12, REF_PP_CASE % sz, system, 'rc[src].pull + rc[dst].push', 's', False),
                Spec(W12, BCAST_CASE % sz, system, "rc[:].push({'b': a})", 's', False)]
    return [Spec(W12, GATHER_CASE % sz, system, 'client.gather(futures)', 'MB/s', True),
            Spec(W12, SCATTER_CASE % sz, system, 'client.scatter(piece, workers=[w])', 'MB/s',
                 True),
            Spec(W12, REF_CASE % sz, system, 'client.submit(f, future, workers=node2)', 's',
                 False),
            Spec(W12, REF_PP_CASE % sz, system, 'future.result() + client.scatter', 's', False),
            Spec(W12, BCAST_CASE % sz, system, 'client.scatter(a, broadcast=True)', 's', False)]


def rates(out, key, size):
    return [size / t / 1e6 for t in out[key]]


class Hosts(object):
    name = 'hosts'

    def __init__(self, ctx):
        self.ctx = ctx

    def run(self, R):
        P = self.ctx.params
        sys.path.insert(0, os.path.join(REPO, 'tests', 'field'))
        from testbed import can_build
        why = can_build()
        for system, measure, sp in (('plexa', self.plexa, specs(P)),
                                    ('ipyparallel', self.ipp, peer_specs(P, 'ipyparallel')),
                                    ('dask', self.dask, peer_specs(P, 'dask'))):
            if why:
                R.fail_all(sp, 'n/a', 'not available: %s' % why)
                continue
            try:
                out = self.on_bed(system, measure)
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all(sp, 'error', '%s: %s' % (type(e).__name__, str(e)[:200]))
                continue
            for spec, values in zip(sp, self.values(system, out)):
                R.add(spec, values)

    def values(self, system, out):
        size = self.ctx.params.field_bytes
        if system == 'plexa':
            return [rates(out, 'gather', size), rates(out, 'gather via', size), out['gather ctl'],
                    rates(out, 'scatter', size), rates(out, 'scatter via', size),
                    out['scatter ctl'], out['ref'], out['pull push'], out['ref ctl'],
                    out['bcast'], out['bcast ctl']]
        if system == 'ipyparallel':
            return [rates(out, 'gather', size), rates(out, 'scatter', size), out['pull push'],
                    out['bcast']]
        return [rates(out, 'gather', size), rates(out, 'scatter', size), out['ref'],
                out['pull push'], out['bcast']]

    def on_bed(self, system, measure):
        from testbed import Testbed
        bed = Testbed(os.path.join(self.ctx.tmp, 'hosts-' + system))
        try:
            bed.build()
            return measure(bed)
        finally:
            bed.teardown()

    @staticmethod
    def shape(bed):
        """Every host's cluster link carries LINK from now on."""
        for host in ('login', 'node1', 'node2'):
            bed.run(host, ['tc', 'qdisc', 'replace', 'dev', 'cluster', 'root', 'tbf', 'rate',
                           LINK, 'burst', '256kb', 'latency', '100ms'], check=True)

    def shaped(self, bed, code, arg, env, out):
        """out, with what code measures once the links are shaped."""
        self.shape(bed)
        out.update(self.script(bed, code, arg, env))
        return out

    def script(self, bed, code, arg, env=None):
        P = self.ctx.params
        p = bed.run('login', [sys.executable, '-c', code, str(P.field_bytes), str(P.repeat), arg],
                    env=env, timeout=P.timeout)
        if p.returncode != 0:
            raise RuntimeError((p.stderr.strip().splitlines() or ['failed'])[-1])
        return json.loads(p.stdout)

    def plexa(self, bed):
        root = os.path.join(self.ctx.tmp, 'hosts-plexa', 'plexa')
        profile = os.path.join(root, 'profile_default')
        os.makedirs(profile, mode=0o700)
        with open(os.path.join(profile, 'cluster.conf'), 'w') as f:
            f.write('# written by bench/run: workload 12\n'
                    '[cluster]\nengine_launcher = ssh\nengines = 4\nstart_timeout = 60\n'
                    '[ssh]\nhosts = node1:2, node2:2\nssh_options = -F %s\n'
                    'remote_env = PLEXA_DIR=%s PYTHONPATH=%s/python\n'
                    % (bed.ssh_config, root, self.ctx.build))
        env = dict(os.environ, PLEXA_DIR=root, PYTHONPATH=os.path.join(self.ctx.build, 'python'))
        env.pop('PLEXA_URL', None)
        ipcluster = os.path.join(self.ctx.build, 'bin', 'ipcluster')
        p = bed.run('login', [ipcluster, 'start'], env=env, timeout=120)
        if p.returncode != 0:
            raise RuntimeError('ipcluster start on login: %s' % (p.stderr or p.stdout)[-300:])
        try:
            status = os.path.join(profile, 'security', 'ipcontroller-status.http')
            return self.shaped(bed, PLEXA_BCAST, status, env,
                               self.script(bed, PLEXA, status, env))
        finally:
            bed.run('login', [ipcluster, 'stop'], env=env, timeout=120)

    def peer_env(self):
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                                            if p and 'build' not in p)
        return env

    def ipp(self, bed):
        profile = os.path.join(self.ctx.tmp, 'hosts-ipyparallel', 'profile')
        os.makedirs(profile, mode=0o700)
        env = self.peer_env()
        bed.popen('login', ['/usr/bin/ipcontroller', '--ip=10.231.2.1',
                            '--profile-dir=%s' % profile, '--log-level=WARN'], env=env)
        engine_file = os.path.join(profile, 'security', 'ipcontroller-engine.json')
        self.wait_for(lambda: os.path.exists(engine_file), 'ipcontroller wrote no connection file')
        for node in ('node1', 'node2'):
            for _ in range(2):
                bed.popen(node, ['/usr/bin/ipengine', '--profile-dir=%s' % profile,
                                 '--log-level=WARN'], env=env)
        return self.shaped(bed, IPP_BCAST, profile, env, self.script(bed, IPP, profile, env))

    def dask(self, bed):
        env = self.peer_env()
        env['DASK_DISTRIBUTED__WORKER__DAEMON'] = 'False'
        bed.popen('login', ['/usr/bin/dask', 'scheduler', '--host', '10.231.2.1', '--port',
                            str(SCHED_PORT), '--no-dashboard'], env=env)
        addr = 'tcp://10.231.2.1:%d' % SCHED_PORT
        self.wait_for(lambda: bed.connects('login', '10.231.2.1', SCHED_PORT),
                      'the Dask scheduler does not listen')
        for node in ('node1', 'node2'):
            bed.popen(node, ['/usr/bin/dask', 'worker', addr, '--nworkers', '2', '--nthreads',
                             '1', '--no-dashboard', '--host', bed.addr(node, 'cluster')],
                      env=env)
        return self.shaped(bed, DASK_BCAST, addr, env, self.script(bed, DASK, addr, env))

    @staticmethod
    def wait_for(cond, why, timeout=60):
        end = time.time() + timeout
        while not cond():
            if time.time() > end:
                raise RuntimeError(why)
            time.sleep(0.2)
