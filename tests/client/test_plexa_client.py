"""The plexa Python package: its pure parts (ResultList, errors, argument
handling), every MultiEngineClient verb over simulated engines (SimNative,
which speaks _native's request API in-process), and the client end to end
against tests/client's scripted controller (PLX_FAKE_CONTROLLER, set by
CTest; those tests skip without it).
"""

import builtins
import collections
import concurrent.futures
import contextlib
import io
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback as _tb
import weakref

import cloudpickle
import pytest

from plexa import client, error
from plexa._callbacks import Callbacks
from plexa.client import MultiEngineClient, PendingResult, ResultList
from plexa.error import CompositeError, KernelError, RemoteError, remote_error

TOKEN = '0123456789abcdef' * 4
TB = ('Traceback (most recent call last):\n  File "<plexa-input-1>", line 1, in <module>\n'
      '    1/0\nZeroDivisionError: division by zero\n')


def rdict(engine_id, number, code, stdout='', stderr=''):
    return {'id': engine_id, 'number': number, 'input': {'translated': code, 'raw': code},
            'stdout': stdout, 'stderr': stderr}


# ---- ResultList ------------------------------------------------------------

def test_result_list_repr_without_output():
    r = ResultList([rdict(0, 1, 'a = 10'), rdict(1, 1, 'a = 10')])
    assert repr(r) == '<Results List>\n[0] In [1]: a = 10\n[1] In [1]: a = 10\n'
    assert str(r) == repr(r)


def test_result_list_repr_with_stdout():
    r = ResultList([rdict(0, 2, 'print(a)', '10\n'), rdict(1, 2, 'print(a)', '10\n')])
    assert repr(r) == ('<Results List>\n'
                       '[0] In [2]: print(a)\n'
                       '[0] Out[2]: 10\n'
                       '\n'
                       '[1] In [2]: print(a)\n'
                       '[1] Out[2]: 10\n'
                       '\n')


def test_result_list_repr_with_stderr_is_0_10s_format():
    # 0.10: "%s[%i]%s Err[%i]:\n%s %s" with colours off -> a space before
    # stderr and no newline of its own.
    r = ResultList([rdict(3, 8, 'import warnings', '', 'oops\n'), rdict(4, 7, 'x', 'y\n')])
    assert repr(r) == ('<Results List>\n'
                       '[3] In [8]: import warnings\n'
                       '[3] Err[8]:\n oops\n'
                       '[4] In [7]: x\n'
                       '[4] Out[7]: y\n\n')


def test_result_list_is_a_list_of_dicts():
    r = client.wrapResultList([rdict(0, 1, 'x')])
    assert isinstance(r, list) and len(r) == 1
    assert r[0]['input']['raw'] == 'x'
    assert repr(ResultList()) == '<Results List>\n'


# ---- errors ----------------------------------------------------------------

def elist2():
    return [('ZeroDivisionError', 'division by zero', TB, 0, 'execute'),
            ('NameError', "name 'b' is not defined", 'Traceback ...\nNameError\n', 1, 'execute')]


def test_composite_error_str_is_0_10s_then_where_engines_failed():
    """0.10's summary lines, then the last frame of each remote traceback
    (a traceback without frames adds nothing), so that an uncaught
    CompositeError in a script shows where each engine failed."""
    e = CompositeError('one or more exceptions from call to method: execute', elist2())
    assert str(e) == ('one or more exceptions from call to method: execute\n'
                      '[0:execute]: ZeroDivisionError: division by zero\n'
                      "[1:execute]: NameError: name 'b' is not defined\n"
                      '\n'
                      '[0:execute] failed at:\n'
                      '  File "<plexa-input-1>", line 1, in <module>\n'
                      '    1/0\n'
                      'ZeroDivisionError: division by zero')
    assert e._render_traceback_()[:3] == [
        'CompositeError: one or more exceptions from call to method: execute',
        '[0:execute]: ZeroDivisionError: division by zero',
        "[1:execute]: NameError: name 'b' is not defined"]
    assert e.elist[0] == ('ZeroDivisionError', 'division by zero', TB, 0, 'execute')
    assert isinstance(e, KernelError)


def test_composite_error_str_is_bounded():
    """Details for the first str_limit engines only, then a count; a long
    exception message is cut too."""
    deep = ('Traceback (most recent call last):\n  File "<plexa-input-2>", line 1, in <module>\n'
            '    f()\n  File "<plexa-input-1>", line 2, in f\n    raise ValueError(msg)\n'
            'ValueError: ' + '\n'.join('line %d' % i for i in range(30)) + '\n')
    e = CompositeError('m', [('ValueError', 'v', deep, i, 'execute') for i in range(40)])
    s = str(e)
    assert s.count(' failed at:\n  File "<plexa-input-1>", line 2, in f\n'
                   '    raise ValueError(msg)\n') == 3
    assert '<plexa-input-2>' not in s and '[2:execute] failed at' in s
    assert '[3:execute] failed at' not in s
    assert s.endswith('\n\n... and 37 more: print_tracebacks() shows every remote traceback')
    assert s.count('(21 more lines)') == 3 and 'line 8\n' in s and 'line 9\n' not in s
    assert len(s.splitlines()) < 41 + 3 * 14 + 5


def test_composite_error_raise_exception():
    e = CompositeError('m', elist2())
    with pytest.raises(RemoteError) as info:
        e.raise_exception()
    r = info.value
    assert (r.ename, r.evalue, r.traceback, r.engine_id, r.method) == \
        ('ZeroDivisionError', 'division by zero', TB, 0, 'execute')
    assert str(r).startswith('[0:execute]: ZeroDivisionError: division by zero\n')
    assert 'Traceback (most recent call last)' in str(r)
    with pytest.raises(RemoteError) as info:
        e.raise_exception(1)
    assert info.value.engine_id == 1
    with pytest.raises(IndexError, match='an exception with index 5 does not exist'):
        e.raise_exception(5)


def test_remote_error_is_also_the_builtin_type():
    """0.10 re-raised the original exception: `except ZeroDivisionError:`
    around raise_exception() must still catch it (builtins only, by name)."""
    e = CompositeError('m', elist2())
    with pytest.raises(ZeroDivisionError) as info:
        e.raise_exception()
    assert isinstance(info.value, RemoteError) and isinstance(info.value, ArithmeticError)
    assert str(info.value).startswith('[0:execute]: ZeroDivisionError: division by zero\n')
    assert type(info.value).__name__ == 'RemoteError'
    key = remote_error('KeyError', "'x'", TB, 3, 'task')
    assert isinstance(key, KeyError) and str(key).startswith("[3:task]: KeyError: 'x'")
    key.taskid = 7
    again = pickle.loads(pickle.dumps(key))
    assert type(again) is type(key) and again.taskid == 7 and str(again) == str(key)
    # not builtin, not an Exception, a different constructor: a plain RemoteError
    for name in ('LinAlgError', 'numpy.linalg.LinAlgError', 'KeyboardInterrupt', 'SystemExit',
                 'StopIteration', 'UnicodeDecodeError', 'print', '', None):
        r = remote_error(name, 'v', TB, 0)
        assert type(r) is RemoteError, name
    assert not isinstance(remote_error('KeyboardInterrupt', '', TB, 0), KeyboardInterrupt)


def test_composite_error_print_tracebacks(capsys):
    e = CompositeError('m', elist2())
    e.print_tracebacks()
    out = capsys.readouterr().out
    assert out == '[0:execute]: \n' + TB + '\n\n' + '[1:execute]: \nTraceback ...\nNameError\n\n\n'
    e.print_tracebacks(1)
    assert capsys.readouterr().out == '[1:execute]: \nTraceback ...\nNameError\n\n'
    with pytest.raises(IndexError):
        e.print_tracebacks(2)


def test_collect_exceptions_flattens():
    inner = CompositeError('m', elist2()[:1])
    with pytest.raises(CompositeError) as info:
        error.collect_exceptions([inner, elist2()[1]], 'execute')
    assert len(info.value.elist) == 2
    assert error.collect_exceptions([], 'execute') is None


def test_error_hierarchy():
    for name in ['CompositeError', 'RemoteError', 'ConnectionError', 'SecurityError',
                 'InvalidEngineID', 'NoEnginesRegistered', 'EngineError', 'ProtocolError',
                 'ResultNotCompleted', 'ResultEvicted', 'TaskAborted', 'TaskTimeout',
                 'TaskRejectError']:
        assert issubclass(getattr(error, name), KernelError), name
        assert getattr(client, name, None) in (None, getattr(error, name))
    assert issubclass(error.ConnectionError, builtins.ConnectionError)
    assert str(error.ConnectionError('lost it')) == 'lost it'
    assert client.CompositeError is CompositeError


def test_import_is_light():
    code = 'import sys, plexa, plexa.client; print("plexa._native" in sys.modules, plexa.__version__)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == 'False'
    assert out[1] != 'unknown'


# ---- client.py over a simulated native client ----------------------------------
#
# SimNative speaks _native's API (submit_* -> Request whose result() is one
# EngineReply(engine_id, method, execute, values, error) per target engine,
# read by name) over in-process "engines": dicts, a counter and a history
# each. Values go through cloudpickle both ways, as they do on the wire.

ExecuteResult = collections.namedtuple('ExecuteResult', 'number input stdout stderr')
RemoteErr = collections.namedtuple('RemoteErr', 'ename evalue traceback')
EngineReply = collections.namedtuple('EngineReply', 'engine_id method execute values error')
EngineQueue = collections.namedtuple('EngineQueue', 'engine_id pending queue')
TaskReply = collections.namedtuple('TaskReply', 'task_id status engine_id values error '
                                                'submitted started completed')


def reply(eid, method, execute=None, values=(), error=None):
    return EngineReply(eid, method, ExecuteResult(*execute) if execute else None, list(values),
                       error)


class StubRequest:
    _next = 1

    def __init__(self, value, done=True, rid=None):
        self.value, self._done = value, done
        if rid is None:
            rid, StubRequest._next = StubRequest._next, StubRequest._next + 1
        self.id = rid
        self.cancelled = False
        self.fetches = 0

    def done(self):
        return self._done

    def wait(self, timeout=None):
        return self._done

    def result(self, timeout=None):
        self.fetches += 1
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value

    def cancel(self):
        self.cancelled = True


def _wire(v):
    return pickle.loads(cloudpickle.dumps(v))


class SimEngine:
    def __init__(self, eid):
        self.id, self.ns, self.number, self.history = eid, {'id': eid}, 0, {}

    def err(self, e):
        return RemoteErr(type(e).__name__, str(e),
                         ''.join(_tb.format_exception(type(e), e, e.__traceback__)))

    def execute(self, code):
        self.number += 1
        out, err = io.StringIO(), io.StringIO()
        error = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                exec(compile(code, '<string>', 'exec'), self.ns)
            except Exception as e:
                error = self.err(e)
        ex = (self.number, code, out.getvalue(), err.getvalue())
        self.history[self.number] = ex
        return reply(self.id, 'execute', ex, [], error)


class SimNative:
    def __init__(self, n=2):
        self.engines = {i: SimEngine(i) for i in range(n)}
        self.calls = []
        self.direct_pushes = []   # submit_push(direct=...) as asked
        self.hold = False          # True: requests are not done until released
        self.requests = []

    def get_ids(self):
        return sorted(self.engines)

    def _targets(self, targets):
        if targets is None or targets == 'all':
            ids = sorted(self.engines)
            if not ids:
                raise error.NoEnginesRegistered('no engines registered')
            return ids
        ids = [targets] if isinstance(targets, int) else list(targets)
        for t in ids:
            if t not in self.engines:
                raise error.InvalidEngineID('invalid engine id: %d' % t)
        return ids

    def _req(self, value):
        r = StubRequest(value, done=not self.hold)
        self.requests.append(r)
        return r

    def submit_execute(self, code, targets=None):
        self.calls.append(('execute', code, targets))
        return self._req([self.engines[i].execute(code) for i in self._targets(targets)])

    def submit_push(self, targets, items, direct=False):
        self.calls.append(('push', [k for k, _ in items], targets))
        self.direct_pushes.append(direct)
        out = []
        for i in self._targets(targets):
            for k, v in items:
                self.engines[i].ns[k] = _wire(v)
            out.append(reply(i, 'push'))
        return self._req(out)

    def submit_pull(self, targets, keys):
        self.calls.append(('pull', list(keys), targets))
        out = []
        for i in self._targets(targets):
            e = self.engines[i]
            try:
                vals = []
                for k in keys:
                    if k not in e.ns:
                        raise NameError('name %r is not defined' % k)
                    vals.append(_wire(e.ns[k]))
                out.append(reply(i, 'pull', None, vals))
            except NameError as ex:
                out.append(reply(i, 'pull', error=e.err(ex)))
        return self._req(out)

    def submit_call(self, targets, method, args):
        self.calls.append(('call', method, targets))
        args = _wire(args)
        out = []
        for i in self._targets(targets):
            e = self.engines[i]
            try:
                if method == 'keys':
                    out.append(reply(i, method, None, [[k for k in e.ns if k != '__builtins__']]))
                elif method == 'reset':
                    e.ns = {'id': i}
                    out.append(reply(i, method))
                elif method == 'get_result':
                    n = args[0] if args[0] is not None else max(e.history, default=None)
                    if n not in e.history:
                        raise IndexError('no command %r in the history' % (n,))
                    out.append(reply(i, method, e.history[n]))
                elif method == 'map':
                    e.number += 1
                    func, seqs = args
                    if isinstance(func, client.Map._EngineName):   # the engine's __main__
                        func = eval(func.expr, e.ns)
                    out.append(reply(i, method, (e.number, 'map', '', ''),
                                     [_wire(list(map(func, *seqs)))]))
                else:
                    raise AttributeError(method)
            except Exception as ex:
                out.append(reply(i, method, error=e.err(ex)))
        return self._req(out)

    def submit_clear_queue(self, targets):
        return self._req([reply(i, 'clear_queue') for i in self._targets(targets)])

    def submit_queue_status(self, targets):
        return self._req([EngineQueue(i, ['execute: time.sleep(1)'] if i == 0 else [],
                           ['execute: a = 1', 'push: b'] if i == 0 else [])
                          for i in self._targets(targets)])

    def submit_kill(self, targets, controller):
        ids = self._targets(targets)
        for i in ids:
            del self.engines[i]
        return self._req([reply(i, 'kill') for i in ids])

    def release(self):
        for r in self.requests:
            r._done = True

    def close(self):
        pass


def sim_client(n=2):
    mec = MultiEngineClient.__new__(MultiEngineClient)
    mec._client = SimNative(n)
    mec.block, mec.targets = True, 'all'
    mec._pending = weakref.WeakSet()
    mec._callbacks = Callbacks()
    return mec


OK2 = [reply(0, 'execute', (1, 'a = 10', '', '')),
       reply(1, 'execute', (1, 'a = 10', '', ''))]


def test_execute_builds_result_list_and_targets():
    mec = sim_client()
    r = mec.execute('a = 10')
    assert isinstance(r, ResultList)
    assert r[1] == rdict(1, 1, 'a = 10')
    assert repr(r) == '<Results List>\n[0] In [1]: a = 10\n[1] In [1]: a = 10\n'
    mec.execute('x = 1', targets=1)
    mec.execute('x = 1', targets=(0, 1))
    mec.targets = [1]
    mec.execute('x = 1')
    assert [c[2] for c in mec._client.calls] == [None, 1, [0, 1], [1]]
    assert len(mec) == 2
    with pytest.raises(ValueError):
        mec.execute('x', targets='some')
    with pytest.raises(ValueError):
        mec.execute('x', targets=1.5)
    with pytest.raises(ValueError):
        mec.execute('x', targets=[0, 'a'])
    with pytest.raises(ValueError):
        mec.execute('x', block='yes')


def test_execute_remote_exceptions_make_one_composite_error():
    mec = sim_client()
    with pytest.raises(CompositeError) as info:
        mec.execute('1/0')
    assert str(info.value).startswith('one or more exceptions from call to method: execute\n'
                                      '[0:execute]: ZeroDivisionError: division by zero\n'
                                      '[1:execute]: ZeroDivisionError: division by zero\n\n'
                                      '[0:execute] failed at:\n  File ')
    assert [e[3] for e in info.value.elist] == [0, 1]
    with pytest.raises(CompositeError) as info:
        mec.execute('if id == 1: 1/0')
    assert [e[3] for e in info.value.elist] == [1]


def test_pending_result_caches_and_chains():
    req = StubRequest(OK2, done=False)
    pr = PendingResult(None, req, client._execute_value)
    assert pr.get_result(default='nope', block=False) == 'nope'
    assert not pr.called
    req._done = True
    pr.add_callback(lambda r, k: (len(r), k), 'k')
    assert pr.get_result(block=False) == (2, 'k')
    assert pr.called and not pr.raised and pr.r == (2, 'k')
    assert req.fetches == 1
    bad = PendingResult(None, StubRequest(error.InvalidEngineID('invalid engine id: 7'), rid=0),
                        client._execute_value)
    for _ in range(2):
        with pytest.raises(error.InvalidEngineID):
            bad.r
    assert bad.raised
    assert sorted([pr, bad]) == [bad, pr]
    fresh = PendingResult(None, StubRequest(OK2), client._execute_value)
    assert {n for n in dir(fresh) if not n.startswith('_')} == {
        'add_callback', 'called', 'get_result', 'raised', 'callbacks', 'client', 'r',
        'result_id'} | {'progress', 'total', 'ready', 'elapsed', 'wall_time', 'serial_time',
                        'wait_interactive', 'wait'} | {
        'stdout', 'stderr', 'outputs', 'iter_outputs', 'stream_outputs', 'display_outputs'} | {
        n for n in dir(concurrent.futures.Future) if not n.startswith('_')}


def test_pending_result_callback_error_is_the_outcome():
    # The chain runs once, when the reply arrives (on the callback thread,
    # in general): a callback that raises makes its error the outcome.
    req = StubRequest(OK2)
    pr = PendingResult(None, req, client._execute_value)
    calls = []

    def cb(r):
        calls.append(1)
        raise RuntimeError('first time')
    pr.add_callback(cb)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            pr.r
    assert pr.raised and isinstance(pr.exception(), RuntimeError)
    assert calls == [1] and req.fetches == 1


def test_push_pull_and_dict_sugar():
    mec = sim_client()
    assert mec.push(dict(a=30, b='to the engines!')) == [None, None]
    assert mec.pull('a') == [30, 30]
    assert mec.pull(('a', 'b')) == [[30, 'to the engines!'], [30, 'to the engines!']]
    assert mec.pull(['a'], targets=1) == [[30]]
    mec['c'] = 5
    assert mec['c'] == [5, 5]
    with pytest.raises(TypeError, match='only takes strs'):
        mec[0]
    with pytest.raises(CompositeError) as info:
        mec.pull('nothere')
    assert '[0:pull]: NameError' in str(info.value)
    with pytest.raises(TypeError):
        mec.pull([1])
    with pytest.raises(TypeError):
        mec.push([('a', 1)])


def test_functions_zip_pull_keys_reset():
    mec = sim_client()
    k = 3
    assert mec.push_function(dict(f=lambda x: x + k)) == [None, None]
    mec.execute('y = f(id)')
    assert mec.pull('y') == [3, 4]
    assert mec.pull_function('f')[0](1) == 4
    with pytest.raises(TypeError):
        mec.push_function(dict(f=3))
    mec.push(dict(a=1, b=2))
    assert mec.zip_pull(('a', 'b')) == [(1, 1), (2, 2)]
    assert mec.zip_pull('a') == [1, 1]
    assert mec.zip_pull(('a', 'b'), targets=0) == [1, 2]
    assert sorted(mec.keys()[0]) == ['a', 'b', 'f', 'id', 'y']
    assert mec.reset() == [None, None]
    assert mec.keys() == [['id'], ['id']]


def test_get_result_and_queue_status_display():
    mec = sim_client()
    mec.execute('a = 1')
    mec.execute('print(a)')
    assert repr(mec.get_result()) == ('<Results List>\n[0] In [2]: print(a)\n[0] Out[2]: 1\n\n'
                                      '[1] In [2]: print(a)\n[1] Out[2]: 1\n\n')
    assert mec.get_result(1)[0]['input']['raw'] == 'a = 1'
    with pytest.raises(CompositeError, match=r'\[0:get_result\]: IndexError'):
        mec.get_result(99)
    qs = mec.queue_status()
    assert isinstance(qs, client.QueueStatusList)
    assert repr(qs) == ("<Queue Status List>\n"
                        "Engine: 0\n"
                        "    Pending: 'execute: time.sleep(1)'\n"
                        "    Command: 'execute: a = 1'\n"
                        "    Command: 'push: b'\n"
                        "Engine: 1\n"
                        "    Pending: 'None'\n")
    assert qs[1] == (1, {'pending': 'None', 'queue': []})
    assert mec.clear_queue() == [None, None]


def test_partitions_match_0_10():
    m = client.Map.Map()
    seq = list(range(10))
    assert [m.getPartition(seq, p, 3) for p in range(3)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [m.getPartition(seq[:2], p, 3) for p in range(3)] == [[0], [1], []]
    assert m.joinPartitions([[0, 1], (2,), [3]]) == [0, 1, 2, 3]
    assert m.joinPartitions([1, 2]) == [1, 2]
    np = pytest.importorskip('numpy')
    a = np.arange(7)
    parts = [m.getPartition(a, p, 2) for p in range(2)]
    assert [len(p) for p in parts] == [4, 3]
    assert (m.joinPartitions(parts) == a).all()
    with pytest.raises(ValueError, match="unknown dist"):
        client.Map.get_map('r')


def test_scatter_gather():
    mec = sim_client(3)
    assert mec.scatter('x', list(range(10))) == [None, None, None]
    assert mec.pull('x') == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert mec.gather('x') == list(range(10))
    assert mec.gather('x', targets=[2, 0]) == [7, 8, 9, 0, 1, 2, 3]
    mec.scatter('t', (1, 2, 3), flatten=True)
    assert mec.pull('t') == [1, 2, 3]
    mec.scatter('t', (1, 2, 3, 4), targets=[0, 1])
    assert mec.pull('t', targets=[0, 1]) == [(1, 2), (3, 4)]
    assert mec.gather('t', targets=[0, 1]) == [1, 2, 3, 4]
    np = pytest.importorskip('numpy')
    mec.scatter('a', np.arange(100))
    g = mec.gather('a')
    assert isinstance(g, np.ndarray) and (g == np.arange(100)).all()
    with pytest.raises(error.InvalidEngineID, match='engine with id 7 does not exist'):
        mec.scatter('a', [1], targets=[0, 7])
    # a blocking scatter lets the native client serve its pieces (it
    # waits for them); a pending one may not
    sim = mec._client
    del sim.direct_pushes[:]
    mec.scatter('y', range(6))
    assert sim.direct_pushes == [True, True, True]
    pr = mec.scatter('z', range(6), block=False)
    assert isinstance(pr, PendingResult) and pr.r == [None, None, None]
    assert sim.direct_pushes[3:] == [False, False, False]
    mec.scatter('s', range(6))
    assert mec.gather('s') == list(range(6))          # range partitions -> one list


def test_map_raw_map_mapper_parallel():
    mec = sim_client()
    assert mec.map(lambda x: x ** 2, range(10)) == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    assert [c[1:] for c in mec._client.calls] == [('map', 0), ('map', 1)]
    assert mec.map(lambda x, y: x + y, [1, 2, 3], (10, 20, 30)) == [11, 22, 33]
    assert mec.map(abs, [-1]) == [1]           # fewer items than engines
    assert mec.map(abs, []) == []
    with pytest.raises(ValueError, match='equal length'):
        mec.map(lambda x, y: x, [1, 2], [1])
    with pytest.raises(TypeError):
        mec.map(abs)
    with pytest.raises(CompositeError, match=r'\[1:map\]: ZeroDivisionError'):
        mec.map(lambda x: 1 / x, [1, 0])
    mec.execute('def sq(x): return x * x')
    assert mec.raw_map('sq', [range(4)]) == [0, 1, 4, 9]
    assert mec.map(str.upper, (c for c in 'abc')) == ['A', 'B', 'C']
    m = mec.mapper(targets=[1], block=False)
    pr = m.map(lambda x: x + 1, range(3))
    assert isinstance(pr, PendingResult) and pr.r == [1, 2, 3]

    @mec.parallel()
    def double(x):
        return 2 * x
    assert double(range(5)) == [0, 2, 4, 6, 8]
    mec.targets = 0
    assert mec.map(lambda x: x, range(4)) == [0, 1, 2, 3]    # map ignores targets (0.10)
    assert mec._client.calls[-1][2] == 1


def test_non_blocking_barrier_flush():
    mec = sim_client()
    mec._client.hold = True
    mec.block = False
    p1 = mec.execute('a = 1')
    p2 = mec.push(dict(b=2))
    p3 = mec.execute('1/0')
    assert all(isinstance(p, PendingResult) for p in (p1, p2, p3))
    assert p1.get_result('not yet', block=False) == 'not yet'
    assert p1.result_id < p2.result_id < p3.result_id
    mec._client.release()
    mec.barrier([p3, p1, p2])
    assert p1.called and p2.called and p3.called and p3.raised
    with pytest.raises(CompositeError):
        p3.r
    assert p2.r == [None, None]
    with pytest.raises(error.NotAPendingResult):
        mec.barrier([p1, 3])
    p4 = mec.execute('c = 3')
    req = mec._client.requests[-1]
    mec.flush()
    assert req.cancelled
    with pytest.raises(error.InvalidDeferredID):
        p4.r
    assert p1.r[0]['input']['raw'] == 'a = 1'      # retrieved results stay
    assert mec.clear_pending_results == mec.flush
    p5 = mec.execute('d = 4')
    mec._client.release()
    assert mec.get_pending_deferred(p5.result_id, True)[0]['number'] >= 1
    with pytest.raises(error.InvalidDeferredID):
        mec.get_pending_deferred(12345678, True)



def test_kill_and_run(tmp_path):
    mec = sim_client()
    assert mec.kill(targets=1) == [None, None][:1]
    assert mec.get_ids() == [0]
    src = tmp_path / 'job.py'
    src.write_text('z = id + 1\nprint(z)\n')
    r = mec.run(str(src))
    assert r[0]['stdout'] == '1\n'
    src.write_text('z = (\n')
    with pytest.raises(SyntaxError):
        mec.run(str(src))
    assert len(mec._client.calls) == 1     # nothing sent for the syntax error


def test_benchmark_keys():
    mec = sim_client()
    b = mec.benchmark(push_size=100)
    assert set(b) == {'single_engine_latency', 'all_engine_latency', 'all_engine_push',
                      'single_engine_push'}
    assert b['single_engine_latency'][1] == 'msec' and b['all_engine_push'][1] == 'MB/sec'


def test_with_block_and_strip_whitespace():
    from plexa.client import remote, strip_whitespace
    assert strip_whitespace(['    remote()\n', '    a = 1\n', '    if a:\n',
                             '        b = 2\n', '\n', '# c\n', 'after = 1\n']) == \
        'a = 1\nif a:\n    b = 2'
    assert strip_whitespace(['\tremote()\n', '\tx = 1\n']) == 'x = 1'
    with pytest.raises(ValueError, match='remote'):
        strip_whitespace(['    a = 1\n', '    remote()\n'])
    mec = sim_client()
    with mec:
        remote()
        wa = id * 2         # noqa: F841 - runs on the (simulated) engines only
    assert mec.pull('wa') == [0, 2]
    assert mec._with_context_result[1]['input']['raw'].startswith('wa = id * 2')
    with pytest.raises(ZeroDivisionError):
        with mec:
            1 / 0           # no remote(): nothing is sent... and it runs here
    assert 'wb' not in mec.keys()[0]


# ---- magics ---------------------------------------------------------------------

def test_magics_without_ipython(capsys):
    from plexa import magics
    mec = sim_client()
    magics._active = None
    assert magics.magic_px('a = 1') is None
    assert capsys.readouterr().out == magics.NO_ACTIVE_CONTROLLER + '\n'
    assert 'Error:  No Controller is activated' in magics.NO_ACTIVE_CONTROLLER
    if 'IPython' not in sys.modules:
        mec.activate()
        assert 'only work within IPython' in capsys.readouterr().out
    else:
        magics.activate(mec)
        capsys.readouterr()
    r = magics.magic_px('a = 1')
    assert capsys.readouterr().out == 'Parallel execution on engines: all\n'
    assert repr(r) == '<Results List>\n[0] In [1]: a = 1\n[1] In [1]: a = 1\n'
    assert magics.magic_result('1')[0]['input']['raw'] == 'a = 1'
    assert magics.magic_result('')[0]['number'] == 1
    magics._active = None


# ---- end to end against the scripted controller -------------------------------

FAKE = os.environ.get('PLX_FAKE_CONTROLLER')
needs_fake = pytest.mark.skipif(not FAKE, reason='PLX_FAKE_CONTROLLER not set (run through ctest)')


class Fake:
    def __init__(self, mode='welcome'):
        self.proc = subprocess.Popen([FAKE, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = 'plx+tcp://127.0.0.1:%d/%s' % (self.port, TOKEN)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def fake():
    f = Fake()
    yield f
    f.stop()


@pytest.fixture
def mec(fake):
    m = MultiEngineClient(fake.url)
    yield m
    m.close()


@needs_fake
def test_e2e_get_ids_and_execute(mec, fake):
    assert mec.get_ids() == [0, 1]
    assert len(mec) == 2
    r = mec.execute('a = 10')
    assert repr(r) == ('<Results List>\n[0] In [1]: a = 10\n[0] Out[1]: a = 10\n\n'
                       '[1] In [1]: a = 10\n[1] Out[1]: a = 10\n\n')
    assert [d['id'] for d in mec.execute('x', targets=1)] == [1]
    assert repr(mec) == '<MultiEngineClient 127.0.0.1:%d>' % fake.port


@needs_fake
def test_e2e_remote_exceptions(mec):
    with pytest.raises(CompositeError) as info:
        mec.execute('raise1')
    assert str(info.value) == ('one or more exceptions from call to method: execute\n'
                               '[1:execute]: ZeroDivisionError: division by zero\n\n'
                               '[1:execute] failed at:\n'
                               '  File "<plexa-input-1>", line 1, in <module>\n    1/0\n'
                               'ZeroDivisionError: division by zero')
    with pytest.raises(RemoteError, match=r'^\[1:execute\]: ZeroDivisionError'):
        info.value.raise_exception()
    with pytest.raises(CompositeError) as info:
        mec.execute('1/0')
    assert len(info.value.elist) == 2


@needs_fake
def test_e2e_invalid_engine(mec):
    with pytest.raises(error.InvalidEngineID, match='invalid engine id: 7'):
        mec.execute('x', targets=[0, 7])
    mec.execute('x')   # still usable


@needs_fake
def test_e2e_non_blocking(mec):
    hung = mec.execute('hang', block=False)
    pr = mec.execute('b = 2', block=False)
    assert isinstance(pr, PendingResult) and pr.result_id > hung.result_id
    assert pr.r[0]['input']['raw'] == 'b = 2'
    assert hung.get_result('not yet', block=False) == 'not yet'
    mec.block = False
    bad = mec.execute('1/0')
    with pytest.raises(CompositeError):
        bad.get_result()
    assert bad.raised


@needs_fake
def test_e2e_connection_lost(mec):
    t0 = time.monotonic()
    with pytest.raises(error.ConnectionError, match='lost connection to the controller at 127.0.0.1:'):
        mec.execute('die')
    assert time.monotonic() - t0 < 2
    with pytest.raises(builtins.ConnectionError):
        mec.get_ids()


@needs_fake
def test_e2e_timeout_and_threads(fake):
    from plexa import _native
    c = _native.Client(fake.url)
    with pytest.raises(KernelError, match='no reply'):
        c.execute('hang', timeout=0.2)
    results, errors = [], []

    def work(i):
        try:
            for j in range(20):
                code = 't%d_%d' % (i, j)
                results.append(c.execute(code)[0][2][2] == code + '\n')   # execute's stdout
        except Exception as e:   # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 80 and all(results)
    c.close()
    assert c.closed and c.peer is None
    with pytest.raises(error.ConnectionError, match='closed'):
        c.get_ids()


@needs_fake
def test_e2e_ctrl_c_interrupts_a_wait(mec):
    main = threading.get_ident()
    timer = threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        mec.execute('hang')
    assert time.monotonic() - t0 < 2
    assert mec.get_ids() == [0, 1]


@needs_fake
def test_e2e_reject_and_unreachable():
    f = Fake('reject')
    try:
        with pytest.raises(error.SecurityError, match='controller refused the connection: token'):
            MultiEngineClient(f.url)
    finally:
        f.stop()
    with pytest.raises(error.ConnectionError, match=r'127\.0\.0\.1:%d' % f.port):
        MultiEngineClient(f.url)


# ---- linking ------------------------------------------------------------------

# core/util/include/plx_buf.h: libplexa exports these, and _native must call them
# rather than link private copies (which do not know libplexa's block pool).
PLX_SHARED = ['plx_buf_new', 'plx_buf_copy', 'plx_buf_wrap', 'plx_buf_reserve', 'plx_buf_ref',
              'plx_buf_unref', 'plx_limits_default', 'plx_msg_new', 'plx_msg_add_buf',
              'plx_msg_destroy']


def _nm(*args):
    import shutil
    nm = shutil.which('nm')
    if nm is None:
        pytest.skip('nm (binutils) is not installed')
    out = subprocess.run([nm] + list(args), check=True, stdout=subprocess.PIPE, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_native_uses_libplexas_buffer_functions():
    from plexa import _native
    so = _native.__file__
    lib = next((line.split()[-1] for line in open('/proc/self/maps')
                if os.path.basename(line.split()[-1]).startswith('libplexa.so')), None)
    assert lib is not None, 'libplexa.so is not loaded with plexa._native'
    assert not set(PLX_SHARED) & _nm('--defined-only', so)
    # what it uses, it takes from libplexa (at least the life cycle of the
    # buffers it exports; libplexa builds the messages)
    used = set(PLX_SHARED) & _nm('-D', '--undefined-only', so)
    assert {'plx_buf_wrap', 'plx_buf_ref', 'plx_buf_unref'} <= used
    assert set(PLX_SHARED) <= _nm('-D', '--defined-only', lib)


def test_chunk_results_in_pieces_are_joined_in_order():
    """The controller may cut a map's chunk into pieces: its result then
    holds one list per piece (proto TaskResult), joined here."""
    assert client._chunk_values([[1, 2, 3]]) == [1, 2, 3]
    assert client._chunk_values([[1], [2, 3], [], [4]]) == [1, 2, 3, 4]
    reply = TaskReply(7, client.TASK_OK, 0, [[1], [2, 3]], None, 0.0, 0.0, 0.0)
    assert client.TaskClient._present(reply) == [1, 2, 3]
    reply = TaskReply(7, client.TASK_OK, 0, [42], None, 0.0, 0.0, 0.0)
    assert client.TaskClient._present(reply) == 42
