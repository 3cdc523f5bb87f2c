"""The plexa Python package: its pure parts (ResultList, errors, argument
handling), and the client end to end against tests/client's scripted
controller (PLX_FAKE_CONTROLLER, set by CTest; those tests skip without it).
"""

import builtins
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from plexa import client, error
from plexa.client import MultiEngineClient, PendingResult, ResultList
from plexa.error import CompositeError, KernelError, RemoteError

TOKEN = '0123456789abcdef' * 4
TB = 'Traceback (most recent call last):\n  File "<string>", line 1\nZeroDivisionError: division by zero\n'


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


def test_composite_error_str_matches_0_10():
    e = CompositeError('one or more exceptions from call to method: execute', elist2())
    assert str(e) == ('one or more exceptions from call to method: execute\n'
                      '[0:execute]: ZeroDivisionError: division by zero\n'
                      "[1:execute]: NameError: name 'b' is not defined")
    assert e.elist[0] == ('ZeroDivisionError', 'division by zero', TB, 0, 'execute')
    assert isinstance(e, KernelError)


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


# ---- client.py over a stub native client -------------------------------------

class StubRequest:
    def __init__(self, value, done=True, rid=7):
        self.value, self._done, self.id = value, done, rid

    def done(self):
        return self._done

    def result(self, timeout=None):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


class StubNative:
    def __init__(self, replies):
        self.replies, self.calls = replies, []

    def execute(self, code, targets=None, timeout=None):
        self.calls.append((code, targets))
        return self.replies

    def submit_execute(self, code, targets=None):
        self.calls.append((code, targets))
        return StubRequest(self.replies)

    def get_ids(self):
        return [0, 1]


def stub_client(replies):
    mec = MultiEngineClient.__new__(MultiEngineClient)
    mec._client = StubNative(replies)
    mec.block, mec.targets = True, 'all'
    return mec


OK2 = [(0, 1, 'a = 10', '', '', None), (1, 1, 'a = 10', '', '', None)]


def test_execute_builds_result_list_and_targets():
    mec = stub_client(OK2)
    r = mec.execute('a = 10')
    assert isinstance(r, ResultList)
    assert r[1] == rdict(1, 1, 'a = 10')
    mec.execute('x', targets=1)
    mec.execute('x', targets=(0, 1))
    mec.targets = [1]
    mec.execute('x')
    assert [t for _, t in mec._client.calls] == [None, [1], [0, 1], [1]]
    assert len(mec) == 2
    with pytest.raises(ValueError):
        mec.execute('x', targets='some')
    with pytest.raises(ValueError):
        mec.execute('x', targets=1.5)
    with pytest.raises(ValueError):
        mec.execute('x', block='yes')


def test_execute_remote_exceptions_make_one_composite_error():
    mec = stub_client([(0, 3, '1/0', '', '', ('ZeroDivisionError', 'division by zero', TB)),
                       (1, 3, '1/0', '', '', ('ZeroDivisionError', 'division by zero', TB))])
    with pytest.raises(CompositeError) as info:
        mec.execute('1/0')
    assert str(info.value) == ('one or more exceptions from call to method: execute\n'
                               '[0:execute]: ZeroDivisionError: division by zero\n'
                               '[1:execute]: ZeroDivisionError: division by zero')
    assert [e[3] for e in info.value.elist] == [0, 1]


def test_pending_result_caches_and_chains():
    pr = PendingResult(None, StubRequest(OK2, done=False), client._execute_value)
    assert pr.get_result(default='nope', block=False) == 'nope'
    assert not pr.called
    pr._request._done = True
    pr.add_callback(lambda r, k: (len(r), k), 'k')
    assert pr.get_result(block=False) == (2, 'k')
    assert pr.called and not pr.raised and pr.r == (2, 'k')
    bad = PendingResult(None, StubRequest(error.InvalidEngineID('invalid engine id: 7'), rid=3),
                        client._execute_value)
    for _ in range(2):
        with pytest.raises(error.InvalidEngineID):
            bad.r
    assert bad.raised
    assert sorted([pr, bad]) == [bad, pr]


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
                               '[1:execute]: ZeroDivisionError: division by zero')
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
                results.append(c.execute(code)[0][3] == code + '\n')
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
