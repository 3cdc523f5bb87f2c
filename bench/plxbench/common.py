"""What every part of bench/run shares: parameters, interruption and
deadlines, results, helpers and the functions workloads send to engines."""

import contextlib
import os
import signal
import statistics
import sys
import time
import traceback

import cloudpickle


BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH_DIR)
EXAMPLES = os.path.join(REPO, 'examples')
SYSTEMS = ('plexa', 'ipyparallel', 'dask', 'limits', 'field', 'hosts')
PEERS = ('ipyparallel', 'dask')
MiB = 1 << 20

W1 = '1 null tasks'
W2 = '2 round trip'
W3 = '3 push/pull'
W4 = '4 prime'
W5 = '5 start-up'
W6 = '6 scatter/gather'
W7 = '7 load balance'
W8 = '8 print loop'
W9 = '9 field'
W10 = '10 shared memory'
W11 = '11 hostile peers'


# What workloads send to engines and workers travels by value: they cannot
# import plxbench.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- parameters ----------------------------------------------------------------

class Params(object):
    """Sizes and counts; --quick makes them small enough for < 2 minutes."""

    def __init__(self, quick, repeat):
        self.quick = quick
        self.repeat = repeat if repeat else (1 if quick else 3)
        self.null_ns = [1000] if quick else [10000, 100000]   # map sizes
        self.submit_n = 1000 if quick else 10000               # separate submissions
        self.uneven_n = 200 if quick else 600                  # uneven map: elements
        self.rtt_n = 200 if quick else 2000                    # round trips per repetition
        self.pingpong_n = 500 if quick else 2000
        self.push_sizes = [1 * MiB, 256 * MiB]
        self.small_inner = 10 if quick else 50                 # pushes per timing of 1 MiB
        self.tcp_bytes = 1 << 30
        self.memcpy_bytes = 256 * MiB
        self.plugin_mib = 32 if quick else 256                 # tls_stream: MiB per stream
        self.plugin_rtt_n = 200 if quick else 2000             # tls_stream: round trips
        self.scatter_bytes = 100 * 1000 * 1000
        self.timeout = 90 if quick else 1800                   # seconds per repetition
        self.print_n = 100000 if quick else 1000000            # prints in the print loop
        self.field_bytes = 16 * MiB if quick else 64 * MiB     # field: push/pull size
        self.shared_bytes = 256 * MiB                          # plexa.shared_array push
        self.bcast_bytes = 64 * MiB if quick else 256 * MiB    # broadcast from engine 0


class NotAvailable(Exception):
    """A plexa API the workload needs does not exist (yet)."""


class BenchTimeout(Exception):
    pass


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP: stop everything, write nothing."""


_signalled = []


def _raise_interrupted(signum, frame):
    _signalled.append(signum)
    raise Interrupted('signal %d' % signum)


def _on_sigint(signum, frame):
    _signalled.append(signum)
    raise KeyboardInterrupt


def reraise_if_interrupted(e=None):
    """Client libraries do not all let Ctrl-C through: plexa's forwards it to
    the engine and raises CompositeError([0:map] KeyboardInterrupt);
    ipyparallel's blocking calls swallow it and return an AsyncResult. So a
    signal that came is honoured here, after every timed call and on every
    error."""
    if _signalled:
        raise Interrupted('signal %d' % _signalled[0]) from e


@contextlib.contextmanager
def deadline(seconds):
    """Raise BenchTimeout in the main thread after `seconds`."""
    def expired(signum, frame):
        raise BenchTimeout('timed out after %d s' % seconds)
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(max(1, int(seconds)))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _note_signal(signum, frame):
    _signalled.append(signum)


@contextlib.contextmanager
def shielded():
    """Cleanup runs to the end: Ctrl-C, SIGTERM and SIGHUP are only noted
    meanwhile (the next reraise_if_interrupted() acts on them). Commands run
    during cleanup get a session of their own, out of reach of the
    terminal's Ctrl-C."""
    held = {}
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        held[s] = signal.signal(s, _note_signal)
    try:
        yield
    finally:
        for s, h in held.items():
            signal.signal(s, h)


# ---- results --------------------------------------------------------------------

class Spec(object):
    """One row of the table: `case` pairs rows of different systems."""

    def __init__(self, workload, case, system, api, unit, higher_better):
        self.workload, self.case, self.system = workload, case, system
        self.api, self.unit, self.higher_better = api, unit, higher_better


class Results(object):
    def __init__(self, params):
        self.params = params
        self.rows = []

    def add(self, spec, values=(), status='ok', note=''):
        row = dict(workload=spec.workload, case=spec.case, system=spec.system,
                   api=spec.api, unit=spec.unit, higher_better=spec.higher_better,
                   values=list(values), status=status, note=note,
                   median=None, min=None, max=None)
        if status == 'ok' and values:
            row['median'] = statistics.median(values)
            row['min'], row['max'] = min(values), max(values)
        elif status == 'ok':
            row['status'], row['note'] = 'error', 'no value measured'
        self.rows.append(row)
        shown = fmt(row['median']) + ' ' + spec.unit if row['status'] == 'ok' \
            else status_text(row)
        log('  %-11s %-18s %-28s %s' % (spec.system, spec.workload, spec.case, shown))
        return row

    def measure(self, specs, fn, repeat=None, note=''):
        """Run fn() `repeat` times; it returns one value per spec (a tuple
        when there are several). NotAvailable and errors become the rows'
        status; Ctrl-C propagates."""
        self.measure_side_by_side([(specs, fn, note)], repeat)

    def measure_side_by_side(self, runs, repeat=None):
        """measure() for several (specs, fn, note) at once, taking turns
        repetition by repetition: on a shared, noisy machine all of them
        see the same moments, so their ratios mean something. Each run
        keeps its own status: one that fails stops, the others go on."""
        repeat = repeat or self.params.repeat
        state = []
        for specs, fn, note in runs:
            specs = [specs] if isinstance(specs, Spec) else list(specs)
            state.append(dict(specs=specs, fn=fn, note=note, status=None,
                              values=[[] for _ in specs]))
        for _ in range(repeat):
            for st in state:
                if st['status'] is None:
                    self._one_repetition(st)
        for st in state:
            if st['status'] is None:
                for s, vs in zip(st['specs'], st['values']):
                    self.add(s, vs, note=st['note'])
            else:
                self.fail_all(st['specs'], *st['status'])

    def _one_repetition(self, st):
        try:
            with deadline(self.params.timeout):
                v = st['fn']()
            reraise_if_interrupted()
            if not isinstance(v, tuple):
                v = (v,)
            for i, x in enumerate(v):
                st['values'][i].append(float(x))
        except NotAvailable as e:
            st['status'] = ('n/a', 'not available: %s' % e)
        except Exception as e:
            reraise_if_interrupted(e)
            first = (str(e).strip().splitlines() or [''])[0]
            text = '%s: %s' % (type(e).__name__, first)
            log(''.join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip())
            st['status'] = ('error', text[:300])

    def fail_all(self, specs, status, note):
        for s in specs:
            self.add(s, status=status, note=note)

    def find(self, system, case):
        for r in self.rows:
            if r['system'] == system and r['case'] == case and r['status'] == 'ok':
                return r
        return None


def fmt(v):
    if v is None:
        return '-'
    a = abs(v)
    if a >= 1000:
        return '{:,.0f}'.format(v)
    if a >= 100:
        return '%.0f' % v
    if a >= 10:
        return '%.1f' % v
    if a >= 1:
        return '%.2f' % v
    return '%.3g' % v


def status_text(row):
    if row['status'] == 'n/a':
        return row['note'] or 'not available'
    return 'ERROR: ' + (row['note'] or 'failed')


# ---- helpers ----------------------------------------------------------------------

def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    r = fn(*args, **kwargs)
    t = time.perf_counter() - t0
    reraise_if_interrupted()
    return t, r


def close_quietly(client):
    with shielded():
        try:
            client.close()
        except Exception:
            pass


def latencies(call, n, warmup=20):
    """Mean and p99 in us of n calls (after warm-up)."""
    for _ in range(warmup):
        call()
    lat = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        call()
        lat.append(clock() - t0)
        if _signalled:
            reraise_if_interrupted()
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    return statistics.fmean(lat) / 1000.0, p99 / 1000.0


WARM_UP_TIMEOUT = [90]


def warm_up(fn):
    """An untimed call: a round before a data workload (the first one pays
    for imports and for faulting in fresh buffers), or some setting up or
    tidying. Bounded by the per-repetition timeout; its errors are logged
    and otherwise surface in the timed rounds."""
    try:
        with deadline(WARM_UP_TIMEOUT[0]):
            fn()
        reraise_if_interrupted()
    except Exception as e:
        reraise_if_interrupted(e)
        log('bench: (untimed call failed: %s: %s)' % (type(e).__name__, e))


def after_untimed_round(one, m):
    """one(m) twice, the first round untimed: the steady state of a
    transfer. plexa's clusters take turns, and a turn of the others can
    outlast the 2 s after which plexa's processes give idle buffers and
    shared-memory regions back to the kernel; so each of their timed rounds
    follows one of its own, as the peers' rounds follow one another."""
    one(m)
    return one(m)


_arrays = {}


def array(nbytes):
    """A float64 array of nbytes random (incompressible) bytes, cached."""
    if nbytes not in _arrays:
        import numpy as np
        _arrays[nbytes] = np.random.default_rng(7).random(nbytes // 8)
    return _arrays[nbytes]


def check_array(got, want):
    import numpy as np
    if not isinstance(got, np.ndarray) or got.shape != want.shape:
        raise AssertionError('got %s %r back, expected an array of shape %r'
                             % (type(got).__name__, getattr(got, 'shape', None), want.shape))
    if got.size and (got[0] != want[0] or got[-1] != want[-1]):
        raise AssertionError('the array came back with different contents')


def check_ends(mec, targets, want):
    """What engines got: the shape and both ends of `a` on each of targets
    (pulling it back would time a copy)."""
    mec.execute('_plexa_check = (tuple(a.shape), float(a[0]), float(a[-1]))', targets=targets)
    for got in mec.pull('_plexa_check', targets=targets):
        if tuple(got[0]) != want.shape or got[1] != want[0] or got[2] != want[-1]:
            raise AssertionError('an engine got %r, not the array %r' % (got, want.shape))


def seeded_random(n):
    """What every broadcast moves: the array engine 0 makes (the same as
    the plexa and ipyparallel rows')."""
    import numpy
    return numpy.random.default_rng(7).random(n)


def array_ends(a):
    return tuple(a.shape), float(a[0]), float(a[-1])


def check_identity(result, n):
    result = list(result)
    if result != list(range(n)):
        raise AssertionError('map returned wrong results (%d values, first %r)'
                             % (len(result), result[:3]))


def size_name(nbytes):
    if nbytes % (1024 * MiB) == 0:
        return '%d GiB' % (nbytes // (1024 * MiB))
    if nbytes % MiB == 0:
        return '%d MiB' % (nbytes // MiB)
    return '%d MB' % (nbytes // 1000000)


def prime_inputs(N=200000, count=16):
    """prime1_mec.py's default inputs."""
    return [max(2, N * (i + 1) // count) for i in range(count)]


def interleaved(inputs, n):
    """prime1_mec.py's snake-order interleaving (for block-partitioned maps);
    the identity order if the example cannot be imported."""
    try:
        import prime1_mec
        order = prime1_mec.interleave_order(len(inputs), n)
    except Exception:
        order = list(range(len(inputs)))
    return order, [inputs[i] for i in order]


def unorder(order, shuffled):
    out = [None] * len(order)
    for k, i in enumerate(order):
        out[i] = shuffled[k]
    return out


def serial_primes(inputs):
    import prime1
    t, r = timed(lambda: list(map(prime1.sum_primes, inputs)))
    return t, r


def null(x):
    return x


# The uneven map: tasks of 1 ms, the last 4% of them 100 ms (times that vary
# 100x, the slow ones where a static split hurts most). Each task sleeps and
# returns how long it took; the ideal on 2 engines is half their sum.
UNEVEN_SPEC = 'uneven map (100x)'


def uneven_costs(n):
    heavy = max(1, n // 25)
    return [0.001] * (n - heavy) + [0.1] * heavy


def costed(cost):
    import time
    t0 = time.perf_counter()
    time.sleep(cost)
    return time.perf_counter() - t0


def clear(tc):
    """Free a plexa TaskClient's finished results in the controller."""
    if hasattr(tc, 'clear'):
        tc.clear()


def uneven_ratio(run, n):
    """elapsed / ideal for run(costs) -> per-task durations."""
    costs = uneven_costs(n)
    t, took = timed(run, costs)
    took = list(took)
    if len(took) != n:
        raise AssertionError('uneven map returned %d results for %d tasks' % (len(took), n))
    return t / (sum(took) / 2)


# Load balance (issue 16): few, long tasks, where what counts is that no
# engine idles while another has two queued. Every cluster here has 2
# engines (ipcluster start -n 2, Cluster(n=2), n_workers=2); the ideals and
# issue 16's targets are computed for ENGINES.
ENGINES = 2
NAP = 0.4
NAP_NS = (2, 3, 4, 8)
PER_IDEAL = ' / ideal'      # the case suffix of the elapsed/ideal rows


# Issue 20: what live output costs user code. The cell times, on the engine,
# a tight print loop writing to the engine's own sys.stdout (captured for
# the reply and, in plexa, streamed live) against the same loop writing to
# a plain io.StringIO: the ratio is the engine's price for capture and
# streaming, free of network time.
PRINT_LOOP_CELL = '''
import contextlib as _cl, io as _io, time as _t
def _plexa_loop(n):
    for i in range(n):
        print(i)
_t0 = _t.perf_counter(); _plexa_loop(%(n)d); _live = _t.perf_counter() - _t0
with _cl.redirect_stdout(_io.StringIO()):
    _t0 = _t.perf_counter(); _plexa_loop(%(n)d); _plain = _t.perf_counter() - _t0
_plexa_ratio = _live / _plain
'''


def print_loop_spec(system, n, api):
    return Spec(W8, 'print loop N=%d' % n, system, api, 'x plain', False)


def nap(t):
    # imports for itself: it travels by value (plxbench is registered so)
    import time
    time.sleep(t)
    return t


def exp_durations(n=300, mean=0.02):
    """n exponentially distributed durations; the same list for every
    system and every run."""
    import random
    rng = random.Random(16)
    return [rng.expovariate(1 / mean) for _ in range(n)]


def nap_case(kind, n):
    return '%s %d x %g s' % (kind, n, NAP)


LB_LONG_CASE = 'map [2.0]+[0.1]*5'
LB_EXP_CASE = 'map 300 exp (mean 20 ms)'


def load_balance_cases():
    """(case, kind, durations, ideal): kind 'map' is one load-balanced map,
    'submit' n separate submissions, then a wait for all of them. The ideal
    is the best schedule's makespan on ENGINES engines (for the exponential
    tasks a lower bound of it)."""
    out = []
    for kind in ('map', 'submit'):
        out += [(nap_case(kind, n), kind, [NAP] * n, -(-n // ENGINES) * NAP) for n in NAP_NS]
    long = [2.0] + [0.1] * 5
    out.append((LB_LONG_CASE, 'map', long, max(sum(long) / ENGINES, max(long))))
    d = exp_durations()
    out.append((LB_EXP_CASE, 'map', d, max(sum(d) / ENGINES, max(d))))
    return out


def load_balance_specs(system, apis):
    """[(case, kind, durations, ideal, specs)]: for each case a row of
    seconds and a row of elapsed/ideal. apis: kind -> the call, for `how`."""
    return [(case, kind, d, ideal,
             [Spec(W7, case, system, apis[kind], 's', False),
              Spec(W7, case + PER_IDEAL, system, '%s; ideal %s s' % (apis[kind], fmt(ideal)),
                   'x ideal', False)])
            for case, kind, d, ideal in load_balance_cases()]


def load_balance(R, system, runs, apis):
    """Issue 16's workloads on one system. runs: kind -> fn(durations) ->
    (elapsed, results), the function timing only the submissions and the
    wait. One repetition with --quick: they are ~12 s of sleeping each."""
    P = R.params
    # the first call ships nap and may import things: not timed
    warm_up(lambda: runs['map']([0.0] * ENGINES))
    for _case, kind, d, ideal, specs in load_balance_specs(system, apis):
        def one(kind=kind, d=d, ideal=ideal):
            t, r = runs[kind](d)
            if list(r) != d:
                raise AssertionError('%s returned wrong results (%d values for %d tasks)'
                                     % (kind, len(list(r)), len(d)))
            return t, t / ideal
        R.measure(specs, one, repeat=1 if P.quick else None)


# ---- plexa ---------------------------------------------------------------------

def _children(pid):
    """Pids of pid's descendants (from /proc)."""
    parent = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                stat = f.read()
            parent[int(d)] = int(stat[stat.rindex(')') + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p:
                out.append(c)
                todo.append(c)
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:    # a zombie counts as gone
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def stragglers(token):
    """Live processes (other than this one) whose environment carries this
    run's token: everything the run started, including orphans."""
    mark = ('PLEXA_BENCH_RUN=%s' % token).encode()
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open('/proc/%s/environ' % d, 'rb') as f:
                env = f.read().split(b'\0')
        except OSError:
            continue
        if mark not in env or not _alive(int(d)):
            continue
        try:
            with open('/proc/%s/cmdline' % d, 'rb') as f:
                cmdline = f.read()
        except OSError:
            continue
        # multiprocessing's resource tracker (Dask) lives as long as this
        # process, by design, and exits with it
        if b'multiprocessing.resource_tracker' in cmdline:
            continue
        out.append(int(d))
    return out


def sweep(ctx, grace=10.0):
    """The safety net after every cluster was stopped: wait up to `grace`
    seconds for the run's processes to exit, then end the rest by pid,
    loudly."""
    end = time.time() + grace
    left = stragglers(ctx.token)
    while left and time.time() < end:
        time.sleep(0.2)
        left = stragglers(ctx.token)
    if not left:
        return
    names = []
    for pid in left:
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                names.append('%d %s' % (pid, f.read().replace(b'\0', b' ').decode()[:80]))
        except OSError:
            names.append(str(pid))
    msg = 'processes still running %.0f s after their cluster was stopped, killed: %s' % (
        grace, '; '.join(names))
    log('bench: WARNING: ' + msg)
    ctx.warnings.append(msg)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        end = time.time() + 3
        while time.time() < end and any(_alive(p) for p in left):
            time.sleep(0.1)
        left = [p for p in left if _alive(p)]
        if not left:
            break


def shm_in_use(mec):
    """mec.shared_memory: True when the client reached its controller
    through the shm transport; None for a build that has no such thing."""
    return getattr(mec, 'shared_memory', None)


def proc_status_mib(pid, key):
    """A memory figure of /proc/PID/status (VmRSS, VmHWM, ...), in MiB
    (as tests/plexa_testing.py's rss_mib)."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError('no %s in /proc/%d/status' % (key, pid))


def reset_peak_rss(pid):
    """Make pid's peak resident memory (VmHWM) its current one (Linux's
    clear_refs 5), so that VmHWM afterwards is the peak of what follows;
    the current VmRSS, MiB."""
    with open('/proc/%d/clear_refs' % pid, 'w') as f:
        f.write('5')
    return proc_status_mib(pid, 'VmRSS')


# The peers' rows of the same case: each system's own way of copying one
# engine's value to the others (ipyparallel: pull + push; Dask: replicate).
BCAST_REF_CASE = 'broadcast %s, engine 0 -> %d engines'
BCAST_REF_RSS_CASE = 'broadcast %s by plexa.ref: controller RSS growth'
BCAST_PP_CASE = 'broadcast %s, engine 0 -> %d engines (pull + push)'
BCAST_RSS_CASE = 'broadcast %s: controller RSS growth'
# A push from the client to every engine (plexa: a tree of engines over
# the network, one region on shared memory; ipyparallel: DirectView.push;
# Dask: client.scatter(broadcast=True)), and what plexa's controller sent
# its engines meanwhile (the status page's bytes_sent).
BCAST_PUSH_CASE = 'push %s from the client to %d engines'
BCAST_PUSH_SENT_CASE = 'push %s to %d engines: controller bytes sent'

# Workload 10's broadcast: engine 0's array to every other engine of a
# cluster of this many.
BCAST_ENGINES = 4
