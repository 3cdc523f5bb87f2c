"""The peers' side of bench/run: ipyparallel and Dask, the same workloads."""

import logging
import os
import sys
import time
import traceback

from plxbench.common import (
    BCAST_ENGINES, BCAST_PUSH_CASE, BCAST_REF_CASE, EXAMPLES, Interrupted, MiB,
    PRINT_LOOP_CELL, Spec, UNEVEN_SPEC, W1, W10, W2, W3, W4, W5, W6, array, array_ends,
    check_array, check_identity, costed, deadline, interleaved, latencies, load_balance, log,
    nap, null, prime_inputs, print_loop_spec, reraise_if_interrupted, seeded_random,
    serial_primes, shielded, size_name, timed, uneven_ratio, unorder, warm_up
)


# ---- ipyparallel ------------------------------------------------------------------

class IPyParallel(object):
    name = 'ipyparallel'

    def __init__(self, ctx):
        self.ctx = ctx
        self.profile_dir = os.path.join(ctx.tmp, 'ipython', 'profile_bench')

    def start(self, n=2):
        """Cluster(n=n).start_and_connect_sync() until all engines are up:
        (seconds, cluster, client). The cluster is registered for stopping
        before it starts."""
        import ipyparallel as ipp
        t0 = time.perf_counter()
        cluster = ipp.Cluster(n=n, profile_dir=self.profile_dir, log_level=logging.WARNING)
        self.clusters.append(cluster)
        rc = cluster.start_and_connect_sync()
        self.clients.append(rc)
        rc.wait_for_engines(n, timeout=120)
        return time.perf_counter() - t0, cluster, rc

    def broadcast(self, R):
        """Workload 10's broadcast: engine 0's array to the others of a
        BCAST_ENGINES cluster, ipyparallel's way (it moves nothing engine
        to engine): a pull to the client, then a push."""
        P = self.ctx.params
        sz, n = size_name(P.bcast_bytes), BCAST_ENGINES - 1
        specs = [Spec(W10, BCAST_REF_CASE % (sz, n), self.name,
                      "x = rc[0].pull('a'); rc[1:].push({'a': x})", 's', False),
                 Spec(W10, BCAST_PUSH_CASE % (sz, BCAST_ENGINES), self.name,
                      "rc[:].push({'a': x})", 's', False)]
        want = array(P.bcast_bytes)
        try:
            try:
                self.clusters, self.clients = [], []
                with deadline(P.timeout):
                    _t, _c, rc = self.start(BCAST_ENGINES)
                rc[0].execute('import numpy\na = numpy.random.default_rng(7).random(%d)'
                              % want.size, block=True)
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all(specs, 'error', 'the %d-engine cluster did not start: %s'
                           % (BCAST_ENGINES, e))
                return
            src, others, every = rc[0], rc[1:BCAST_ENGINES], rc[:BCAST_ENGINES]

            def check(view):
                view.execute('_c = (tuple(a.shape), float(a[0]), float(a[-1]))', block=True)
                for got in view.pull('_c', block=True):
                    if tuple(got[0]) != want.shape or got[1] != want[0] or got[2] != want[-1]:
                        raise AssertionError('an engine got %r' % (got,))

            def one():
                others.execute('a = None', block=True)
                t0 = time.perf_counter()
                x = src.pull('a', block=True)
                others.push({'a': x}, block=True)
                t = time.perf_counter() - t0
                reraise_if_interrupted()
                del x
                check(others)
                others.execute('a = None', block=True)
                t0 = time.perf_counter()
                every.push({'a': want}, block=True)
                tp = time.perf_counter() - t0
                reraise_if_interrupted()
                check(every)   # engine 0's a is want again: the next pull gets it
                return t, tp
            warm_up(one)
            R.measure(specs, one)
        finally:
            self.stop()

    def stop(self):
        with shielded():
            for rc in self.clients:
                try:
                    rc.close()
                except Exception as e:
                    log('bench: ipyparallel client close: %s' % e)
            for c in self.clusters:
                try:
                    c.stop_cluster_sync()
                except Exception as e:
                    log('bench: WARNING: ipyparallel stop_cluster_sync failed: %s' % e)
                    self.ctx.warnings.append('ipyparallel stop_cluster_sync failed: %s' % e)
            self.clients, self.clusters = [], []

    def run(self, R):
        P = self.ctx.params
        import ipyparallel  # noqa: F401  (imported before anything is timed)
        self.clusters, self.clients = [], []
        first_start = []
        try:
            try:
                with deadline(P.timeout):
                    t, cluster, rc = self.start()
                first_start.append(t)
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all([Spec(W5, '2 engines', self.name, '', 's', False)], 'error',
                           'cluster did not start: %s' % e)
                return
            lview = rc.load_balanced_view()
            dv = rc[0]
            dall = rc[:]
            f = (lambda x: x)

            for n in P.null_ns:
                def one(n=n):
                    t, r = timed(lview.map_sync, f, range(n))
                    check_identity(r, n)
                    return n / t
                R.measure(Spec(W1, 'map N=%d' % n, self.name, 'lview.map_sync', 'tasks/s', True),
                          one)

            R.measure(Spec(W1, UNEVEN_SPEC, self.name, 'lview.map_sync(costed, costs)',
                           'x ideal', False),
                      lambda: uneven_ratio(lambda c: lview.map_sync(costed, c), P.uneven_n))

            def lb_submit(d):
                t0 = time.perf_counter()
                ars = [lview.apply_async(nap, x) for x in d]
                r = [ar.get() for ar in ars]
                return time.perf_counter() - t0, r
            load_balance(R, self.name, {'map': lambda d: timed(lview.map_sync, nap, d),
                                        'submit': lb_submit},
                         {'map': 'lview.map_sync(nap, durations)',
                          'submit': 'lview.apply_async(nap, t) x n, then .get() each'})

            def submit():
                n = P.submit_n
                t0 = time.perf_counter()
                ars = [lview.apply_async(f, i) for i in range(n)]
                r = [ar.get() for ar in ars]
                t = time.perf_counter() - t0
                check_identity(r, n)
                return n / t
            R.measure(Spec(W1, 'submit N=%d' % P.submit_n, self.name, 'lview.apply_async',
                           'tasks/s', True), submit)

            R.measure([Spec(W2, 'execute mean', self.name, "rc[0].execute('a=1')", 'us', False),
                       Spec(W2, 'execute p99', self.name, "rc[0].execute('a=1')", 'us', False)],
                      lambda: latencies(lambda: dv.execute('a=1', block=True), P.rtt_n))
            R.measure([Spec(W2, 'apply mean', self.name, 'rc[0].apply_sync(f)', 'us', False),
                       Spec(W2, 'apply p99', self.name, 'rc[0].apply_sync(f)', 'us', False)],
                      lambda: latencies(lambda: dv.apply_sync(null, 0), P.rtt_n))

            warm_up(lambda: (dv.push({'a': array(MiB)}, block=True), dv.pull('a', block=True)))
            for size in P.push_sizes:
                arr = array(size)
                inner = P.small_inner if size < 16 * MiB else 1

                def one(arr=arr, inner=inner):
                    tp = tl = 0.0
                    for _ in range(inner):
                        t, _r = timed(dv.push, {'a': arr}, block=True)
                        tp += t
                        t, got = timed(dv.pull, 'a', block=True)
                        tl += t
                        check_array(got, arr)
                        del got
                    return arr.nbytes * inner / tp / 1e6, arr.nbytes * inner / tl / 1e6
                warm_up(one)   # one untimed round of this size, as for every system
                sz = size_name(size)
                R.measure([Spec(W3, 'push %s' % sz, self.name, "rc[0].push({'a': arr})",
                                'MB/s', True),
                           Spec(W3, 'pull %s' % sz, self.name, "rc[0].pull('a')",
                                'MB/s', True)], one)
            warm_up(lambda: dv.execute('a = None', block=True))

            def prime():
                import prime1
                inputs = prime_inputs()
                ts, want = serial_primes(inputs)
                order, shuffled = interleaved(inputs, 2)
                td, got = timed(dall.map_sync, prime1.sum_primes, shuffled)
                if unorder(order, list(got)) != want:
                    raise AssertionError('direct map: wrong sums')
                tl, got = timed(lview.map_sync, prime1.sum_primes, inputs)
                if list(got) != want:
                    raise AssertionError('load-balanced map: wrong sums')
                return ts / td, ts / tl
            warm_up(lambda: dall.execute('import sys; sys.path.insert(0, %r); import prime1'
                                         % EXAMPLES, block=True))
            R.measure([Spec(W4, 'speedup, 2 engines', self.name,
                            'rc[:].map_sync (interleaved as prime1_mec)', 'x', True),
                       Spec(W4, 'speedup, 2 engines', self.name, 'lview.map_sync', 'x', True)],
                      prime)

            arr = array(P.scatter_bytes)
            sz = size_name(P.scatter_bytes)

            def sg():
                ts, _r = timed(dall.scatter, 'a', arr, block=True)
                tg, got = timed(dall.gather, 'a', block=True)
                check_array(got, arr)
                return arr.nbytes / ts / 1e6, arr.nbytes / tg / 1e6
            warm_up(lambda: (dall.scatter('a', arr, block=True), dall.gather('a', block=True)))
            R.measure([Spec(W6, 'scatter %s' % sz, self.name, "rc[:].scatter('a', arr)",
                            'MB/s', True),
                       Spec(W6, 'gather %s' % sz, self.name, "rc[:].gather('a')",
                            'MB/s', True)], sg)

            def loop():
                dv.execute(PRINT_LOOP_CELL % dict(n=P.print_n), block=True)
                return dv['_plexa_ratio']
            R.measure(print_loop_spec(self.name, P.print_n,
                                      'rc[0].execute(loop), iopub streaming'), loop)
        finally:
            self.stop()

        self.broadcast(R)

        def again():
            try:
                return self.start()[0]
            finally:
                self.stop()
        try:
            R.measure(Spec(W5, '2 engines', self.name,
                           'Cluster(n=2).start_and_connect_sync()', 's', False),
                      lambda: first_start.pop() if first_start else again())
        finally:
            self.stop()


# ---- Dask ---------------------------------------------------------------------------

class Dask(object):
    name = 'dask'

    def __init__(self, ctx):
        self.ctx = ctx
        self.scratch = os.path.join(ctx.tmp, 'dask')
        os.makedirs(self.scratch, exist_ok=True)
        self.objs = []

    def start(self, n=2):
        import distributed
        t0 = time.perf_counter()
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR, local_directory=self.scratch)
        self.objs.append(cluster)
        client = distributed.Client(cluster)
        self.objs.append(client)
        client.wait_for_workers(n)
        return time.perf_counter() - t0, cluster, client

    def broadcast(self, R):
        """Workload 10's broadcast: a worker's array to the others of a
        BCAST_ENGINES cluster, Dask's way: client.replicate, which moves it
        worker to worker."""
        P = self.ctx.params
        import distributed
        sz, n = size_name(P.bcast_bytes), BCAST_ENGINES - 1
        specs = [Spec(W10, BCAST_REF_CASE % (sz, n), self.name,
                      'client.replicate([future], n=%d): worker to worker' % BCAST_ENGINES,
                      's', False),
                 Spec(W10, BCAST_PUSH_CASE % (sz, BCAST_ENGINES), self.name,
                      'client.scatter(x, broadcast=True)', 's', False)]
        want = array(P.bcast_bytes)
        try:
            try:
                with deadline(P.timeout):
                    _t, _c, client = self.start(BCAST_ENGINES)
                w0 = sorted(client.scheduler_info()['workers'])[0]
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all(specs, 'error', 'the %d-worker cluster did not start: %s'
                           % (BCAST_ENGINES, e))
                return

            def check(fut):
                holders = client.who_has([fut])[fut.key]
                if len(holders) != BCAST_ENGINES:
                    raise AssertionError('on %d workers' % len(holders))
                for w in holders:
                    got = client.submit(array_ends, fut, workers=[w], pure=False).result()
                    if tuple(got[0]) != want.shape or got[1] != want[0] or got[2] != want[-1]:
                        raise AssertionError('worker %s holds %r' % (w, got))

            def one():
                fut = client.submit(seeded_random, want.size, workers=[w0], pure=False)
                distributed.wait(fut)
                t0 = time.perf_counter()
                client.replicate([fut], n=BCAST_ENGINES)
                t = time.perf_counter() - t0
                reraise_if_interrupted()
                check(fut)
                del fut
                t0 = time.perf_counter()
                fut = client.scatter(want, broadcast=True, hash=False)
                tp = time.perf_counter() - t0
                reraise_if_interrupted()
                check(fut)
                del fut
                return t, tp
            warm_up(one)
            R.measure(specs, one)
        finally:
            self.stop()

    def stop(self):
        with shielded():
            for o in reversed(self.objs):      # the client, then its cluster
                try:
                    o.close()
                except Exception as e:
                    log('bench: WARNING: closing %s failed: %s' % (type(o).__name__, e))
                    self.ctx.warnings.append('dask close failed: %s' % e)
            self.objs = []

    def run(self, R):
        P = self.ctx.params
        import distributed  # noqa: F401  (imported before anything is timed)
        first_start = []
        try:
            try:
                with deadline(P.timeout):
                    t, cluster, client = self.start()
                first_start.append(t)
            except (KeyboardInterrupt, Interrupted):
                raise
            except Exception as e:
                reraise_if_interrupted(e)
                log(traceback.format_exc().rstrip())
                R.fail_all([Spec(W5, '2 engines', self.name, '', 's', False)], 'error',
                           'cluster did not start: %s' % e)
                return
            workers = sorted(client.scheduler_info()['workers'])
            w0 = workers[0]
            f = (lambda x: x)

            for n in P.null_ns:
                def one(n=n):
                    t, r = timed(lambda: client.gather(client.map(f, range(n), pure=False)))
                    check_identity(r, n)
                    return n / t
                R.measure(Spec(W1, 'map N=%d' % n, self.name, 'client.gather(client.map(f, ...))',
                               'tasks/s', True), one)

            R.measure(Spec(W1, UNEVEN_SPEC, self.name,
                           'client.gather(client.map(costed, costs))', 'x ideal', False),
                      lambda: uneven_ratio(lambda c: client.gather(
                          client.map(costed, c, pure=False)), P.uneven_n))

            load_balance(R, self.name,
                         {'map': lambda d: timed(lambda: client.gather(
                             client.map(nap, d, pure=False))),
                          'submit': lambda d: timed(lambda: client.gather(
                              [client.submit(nap, x, pure=False) for x in d]))},
                         {'map': 'client.gather(client.map(nap, durations, pure=False))',
                          'submit': 'client.submit(nap, t, pure=False) x n + gather'})

            def submit():
                n = P.submit_n
                t, r = timed(lambda: client.gather([client.submit(f, i, pure=False)
                                                    for i in range(n)]))
                check_identity(r, n)
                return n / t
            R.measure(Spec(W1, 'submit N=%d' % P.submit_n, self.name, 'client.submit x N + gather',
                           'tasks/s', True), submit)

            R.measure([Spec(W2, 'apply mean', self.name, 'client.submit(f).result()', 'us', False),
                       Spec(W2, 'apply p99', self.name, 'client.submit(f).result()', 'us', False)],
                      lambda: latencies(lambda: client.submit(null, 0, pure=False,
                                                              workers=[w0]).result(), P.rtt_n))

            warm_up(lambda: client.gather(client.scatter(array(MiB), workers=[w0], hash=False)))
            for size in P.push_sizes:
                arr = array(size)
                inner = P.small_inner if size < 16 * MiB else 1

                def one(arr=arr, inner=inner):
                    tp = tl = 0.0
                    for _ in range(inner):
                        t, fut = timed(client.scatter, arr, workers=[w0], hash=False)
                        tp += t
                        t, got = timed(client.gather, fut)
                        tl += t
                        check_array(got, arr)
                        del got, fut
                    return arr.nbytes * inner / tp / 1e6, arr.nbytes * inner / tl / 1e6
                warm_up(one)   # one untimed round of this size, as for every system
                sz = size_name(size)
                R.measure([Spec(W3, 'push %s' % sz, self.name, 'client.scatter(arr)', 'MB/s', True),
                           Spec(W3, 'pull %s' % sz, self.name, 'client.gather(future)', 'MB/s',
                                True)], one)

            def prime():
                import prime1
                inputs = prime_inputs()
                ts, want = serial_primes(inputs)
                tp, got = timed(lambda: client.gather(
                    client.map(prime1.sum_primes, inputs, pure=False)))
                if list(got) != want:
                    raise AssertionError('wrong sums')
                return ts / tp
            examples = EXAMPLES
            warm_up(lambda: client.run(lambda: sys.path.insert(0, examples)))
            R.measure(Spec(W4, 'speedup, 2 engines', self.name, 'client.map', 'x', True), prime)

            arr = array(P.scatter_bytes)
            sz = size_name(P.scatter_bytes)

            def sg():
                import numpy as np
                parts = np.array_split(arr, len(workers))
                ts, futs = timed(client.scatter, parts, hash=False)
                tg, got = timed(lambda: np.concatenate(client.gather(futs)))
                check_array(got, arr)
                return arr.nbytes / ts / 1e6, arr.nbytes / tg / 1e6
            warm_up(sg)
            R.measure([Spec(W6, 'scatter %s' % sz, self.name, 'client.scatter(chunks)', 'MB/s',
                            True),
                       Spec(W6, 'gather %s' % sz, self.name, 'concatenate(client.gather)', 'MB/s',
                            True)], sg)
        finally:
            self.stop()

        self.broadcast(R)

        def again():
            try:
                return self.start()[0]
            finally:
                self.stop()
        try:
            R.measure(Spec(W5, '2 engines', self.name, 'LocalCluster(n_workers=2) + Client',
                           's', False),
                      lambda: first_start.pop() if first_start else again())
        finally:
            self.stop()
