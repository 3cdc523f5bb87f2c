"""MultiEngineClient against a real cluster: one test per verb, with its
error paths (IPython 0.10's semantics and display strings)."""
import os
import re
import signal
import threading
import time

import numpy
import pytest

from conftest import wait_for

from plexa import client
from plexa.client import PendingResult, QueueStatusList, ResultList
from plexa.error import (CompositeError, ConnectionError, InvalidDeferredID, InvalidEngineID,
                         NotAPendingResult, RemoteError)


@pytest.fixture
def mec(cluster):
    m = cluster.client()
    yield m
    m.close()


# Called on an engine: its id. (A lambda travels by value; a module-level
# def of this test module would travel by reference and not import there.)
engine_id = lambda: __import__("__main__").id  # noqa: E731


def ename_set(e):
    return {(x[3], x[0]) for x in e.elist}


# ---- get_ids, len, execute ------------------------------------------------------

def test_get_ids_and_len(mec):
    assert mec.get_ids() == [0, 1]
    assert len(mec) == 2
    assert mec.targets == "all" and mec.block is True


def test_execute_result_list(mec):
    r = mec.execute("e1 = id + 1\nprint(e1)")
    assert isinstance(r, ResultList) and [d["id"] for d in r] == [0, 1]
    n = r[0]["number"]
    assert r[0] == {"id": 0, "number": n, "input": {"translated": "e1 = id + 1\nprint(e1)",
                                                    "raw": "e1 = id + 1\nprint(e1)"},
                    "stdout": "1\n", "stderr": ""}
    assert r[1]["stdout"] == "2\n"
    r = mec.execute("import sys; sys.stderr.write('warn\\n')", targets=1)
    assert repr(r) == ("<Results List>\n[1] In [%d]: import sys; sys.stderr.write('warn\\n')\n"
                       "[1] Out[%d]: 5\n\n[1] Err[%d]:\n warn\n" % ((r[0]["number"],) * 3))
    r = mec.execute("pass", targets=(1, 0))
    assert [d["id"] for d in r] == [1, 0]


def test_exception_on_one_of_two_engines(mec):
    with pytest.raises(CompositeError) as info:
        mec.execute("ok_before = 1\nif id == 1:\n    raise KeyError('only one')\n")
    e = info.value
    # 0.10's summary, then where the engine failed: the cell (In [n]) and its line
    assert re.fullmatch(r"one or more exceptions from call to method: execute\n"
                        r"\[1:execute\]: KeyError: 'only one'\n\n"
                        r"\[1:execute\] failed at:\n"
                        r'  File "<plexa-input-\d+>", line 3, in <module>\n'
                        r"    raise KeyError\('only one'\)\n"
                        r"KeyError: 'only one'", str(e)), str(e)
    assert len(e.elist) == 1 and e.elist[0][3] == 1
    assert mec.pull("ok_before") == [1, 1]      # engine 0 ran it, engine 1 up to the raise
    with pytest.raises(RemoteError) as remote:
        e.raise_exception()
    assert remote.value.ename == "KeyError" and "Traceback" in remote.value.traceback


def test_raise_exception_is_caught_by_the_original_type_as_in_0_10(mec):
    """parallel_multiengine.txt: `except client.CompositeError, e:
    e.raise_exception()` raises the ZeroDivisionError the engines raised."""
    try:
        mec.execute('1/0')
    except client.CompositeError as e:
        with pytest.raises(ZeroDivisionError) as info:
            e.raise_exception()
    assert isinstance(info.value, RemoteError) and info.value.engine_id == 0
    # a class of the user's own is not recreated on the client: RemoteError
    with pytest.raises(CompositeError) as info:
        mec.execute("class Odd(Exception): pass\nraise Odd('x')", targets=0)
    with pytest.raises(RemoteError) as remote:
        info.value.raise_exception()
    assert type(remote.value) is RemoteError and remote.value.ename == "Odd"


def test_print_tracebacks(mec, capsys):
    with pytest.raises(CompositeError) as info:
        mec.execute("def g():\n    return 1/0\ng()\n")
    info.value.print_tracebacks()
    out = capsys.readouterr().out
    assert out.startswith("[0:execute]: \nTraceback (most recent call last):\n")
    assert "[1:execute]: \n" in out
    # each engine's cell has its own In [n]: its name and the source lines
    assert out.count('File "<plexa-input-') == 4
    assert '", line 2, in g\n    return 1/0\n' in out and '", line 3, in <module>\n    g()\n' in out
    assert out.count("ZeroDivisionError: division by zero") == 2
    lines = info.value._render_traceback_()
    assert lines[0] == "CompositeError: one or more exceptions from call to method: execute"


def test_bad_target_is_invalid_engine_id(mec):
    for call in (lambda: mec.execute("pass", targets=7),
                 lambda: mec.push(dict(q=1), targets=[0, 7]),
                 lambda: mec.pull("q", targets=9),
                 lambda: mec.keys(targets=[5]),
                 lambda: mec.scatter("q", [1, 2], targets=[0, 7]),
                 lambda: mec.gather("q", targets=[3]),
                 lambda: mec.raw_map(abs, [[1]], targets=[8])):
        with pytest.raises(InvalidEngineID):
            call()
    with pytest.raises(ValueError):
        mec.execute("pass", targets="some")
    assert mec.get_ids() == [0, 1]        # still usable


# ---- push / pull -----------------------------------------------------------------

def test_push_pull_values(mec):
    arr = numpy.arange(12.0).reshape(3, 4)
    values = dict(i=7, fl=2.5, s="text", by=b"\x00\x01", arr=arr, d={"k": [1, (2, 3)]},
                  big=10 ** 30, none=None, t=(1, "a"))
    assert mec.push(values) == [None, None]
    for k, v in values.items():
        got = mec.pull(k)
        assert len(got) == 2
        if k == "arr":
            assert all(numpy.array_equal(g, arr) and g.dtype == arr.dtype for g in got)
        else:
            assert got == [v, v], k
            assert type(got[0]) is type(v)
    assert mec.pull(("i", "s")) == [[7, "text"], [7, "text"]]
    assert mec.pull(["i"], targets=1) == [[7]]
    assert mec.pull("i", targets=0) == [7]
    assert mec.push(dict(i=8), targets=1) == [None]
    assert mec.pull("i") == [7, 8]


def test_pull_unknown_key(mec):
    with pytest.raises(CompositeError) as info:
        mec.pull("never_defined_anywhere")
    s = str(info.value)
    assert s.startswith("one or more exceptions from call to method: pull\n")
    assert "[0:pull]: NameError" in s and "[1:pull]: NameError" in s
    assert "never_defined_anywhere" in s
    mec.push(dict(half=1), targets=0)
    with pytest.raises(CompositeError) as info:
        mec.pull(("half",))
    assert ename_set(info.value) == {(1, "NameError")}


def test_mapping_sugar(mec):
    mec["sugar"] = [1, 2]
    assert mec["sugar"] == [[1, 2], [1, 2]]
    mec.targets = 1
    mec["sugar"] = "one"
    assert mec["sugar"] == ["one"]
    mec.targets = "all"
    assert mec["sugar"] == [[1, 2], "one"]
    with pytest.raises(TypeError):
        mec[0]


def test_push_function_pull_function(mec):
    base = 100

    def addbase(x):
        return x + base             # a closure: travels with cloudpickle
    assert mec.push_function(dict(addbase=addbase, sq=lambda x: x * x)) == [None, None]
    mec.execute("r1 = addbase(id)\nr2 = sq(3)")
    assert mec.pull("r1") == [100, 101]
    assert mec.pull("r2") == [9, 9]
    fs = mec.pull_function("sq")
    assert [f(4) for f in fs] == [16, 16]
    fs = mec.pull_function(("sq", "addbase"), targets=0)
    assert fs[0][1](1) == 101
    with pytest.raises(TypeError):
        mec.push_function(dict(notfunc=3))


def test_zip_pull(mec):
    mec.execute("za = id\nzb = id * 2")
    assert mec.zip_pull(("za", "zb")) == [(0, 1), (0, 2)]
    assert mec.zip_pull("za") == [0, 1]
    assert mec.zip_pull(("za", "zb"), targets=1) == [1, 2]
    pr = mec.zip_pull(("za", "zb"), block=False)
    assert pr.r == [(0, 1), (0, 2)]


# ---- keys, reset, get_result, run ------------------------------------------------------

def test_keys_and_reset(cluster_factory):
    c = cluster_factory(n=2)
    c.start()
    m = c.client()
    m.execute("k1 = 1")
    m.push(dict(k2=2), targets=1)
    keys = m.keys()
    assert len(keys) == 2 and all(isinstance(k, list) for k in keys)
    assert "k1" in keys[0] and "k2" not in keys[0] and {"k1", "k2"} <= set(keys[1])
    assert "id" in keys[0]
    assert m.keys(targets=1) == [keys[1]]
    assert m.reset(targets=1) == [None]
    assert "k1" not in m.keys(targets=1)[0]
    assert m.pull("k1", targets=0) == [1]
    assert m.reset() == [None, None]
    with pytest.raises(CompositeError):
        m.pull("k1")
    assert m.pull("id") == [0, 1]        # the engine id survives a reset


def test_get_result(mec):
    r = mec.execute("print('gr')")
    n0, n1 = r[0]["number"], r[1]["number"]
    last = mec.get_result()
    assert isinstance(last, ResultList)
    assert repr(last) == repr(r)
    mec.execute("gr2 = 1")
    again = mec.get_result(n0, targets=0)
    assert again == [r[0]]
    assert mec.get_result(n1, targets=1)[0]["stdout"] == "gr\n"
    with pytest.raises(CompositeError) as info:
        mec.get_result(100000)
    assert ename_set(info.value) == {(0, "IndexError"), (1, "IndexError")}
    assert "[0:get_result]: IndexError" in str(info.value)
    pr = mec.get_result(block=False)
    assert isinstance(pr.r, ResultList)


def test_run(mec, tmp_path):
    script = tmp_path / "job.py"
    script.write_text("ran = id * 3\nprint('ran', ran)\n")
    r = mec.run(str(script))
    assert [d["stdout"] for d in r] == ["ran 0\n", "ran 3\n"]
    assert mec.pull("ran") == [0, 3]
    script.write_text("bad = (\n")
    with pytest.raises(SyntaxError):
        mec.run(str(script))
    with pytest.raises(FileNotFoundError):
        mec.run(str(tmp_path / "none.py"))


# ---- scatter / gather / map ------------------------------------------------------

def test_scatter_gather(mec):
    assert mec.scatter("sg", list(range(11))) == [None, None]
    assert mec.pull("sg") == [list(range(6)), list(range(6, 11))]
    assert mec.gather("sg") == list(range(11))
    mec.scatter("sg", ("a", "b", "c"))
    assert mec.pull("sg") == [("a", "b"), ("c",)]
    assert mec.gather("sg") == ["a", "b", "c"]
    mec.scatter("sg", [1, 2], flatten=True)
    assert mec.pull("sg") == [1, 2]
    mec.scatter("sg", [1], targets=[1, 0])
    assert mec.pull("sg", targets=[1, 0]) == [[1], []]
    mec.scatter("sg", range(5), targets=1)
    assert mec.pull("sg", targets=1) == [[0, 1, 2, 3, 4]]
    arr = numpy.linspace(0, 1, 101)
    mec.scatter("sga", arr)
    parts = mec.pull("sga")
    assert [len(p) for p in parts] == [51, 50]
    g = mec.gather("sga")
    assert isinstance(g, numpy.ndarray) and numpy.array_equal(g, arr)
    pr = mec.scatter("sgb", list(range(4)), block=False)
    assert isinstance(pr, PendingResult) and pr.r == [None, None]
    pg = mec.gather("sgb", block=False)
    assert pg.r == [0, 1, 2, 3]
    mec.execute("notseq = 5")
    assert mec.gather("notseq") == [5, 5]
    with pytest.raises(CompositeError) as info:
        mec.gather("not_there_at_all")
    assert "[0:gather]: NameError" in str(info.value)
    with pytest.raises(ValueError):
        mec.scatter("x", [1], dist="r")


def test_map_and_friends(mec):
    before = mec.execute("pass")[0]["number"]
    assert mec.map(lambda x: x ** 2, range(10)) == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    assert mec.execute("pass")[0]["number"] == before + 2     # the map counted as one
    k = 3
    assert mec.map(lambda x, y: x * y + k, [1, 2, 3], (4, 5, 6)) == [7, 13, 21]
    assert mec.map(str, [5]) == ["5"]            # fewer items than engines
    assert mec.map(abs, []) == []
    assert mec.map(lambda x: x, "abc") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="equal length"):
        mec.map(lambda a, b: a, [1, 2], [3])
    with pytest.raises(CompositeError) as info:
        mec.map(lambda x: 1 // x, [1, 2, 0])
    assert ename_set(info.value) == {(1, "ZeroDivisionError")}
    assert "[1:map]: ZeroDivisionError" in str(info.value)
    # which engine computed what: the block partition. (A function's globals
    # travel with it: the engine's own `id` is in its __main__.)
    assert mec.map(lambda x: (x, engine_id()), range(5)) == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1)]
    mec.execute("def cube(x):\n    return x ** 3")
    assert mec.raw_map("cube", [range(4)]) == [0, 1, 8, 27]
    assert mec.raw_map(lambda x, y: x - y, ([5, 6], [1, 1]), targets=1) == [4, 5]
    pr = mec.raw_map(abs, [[-1, -2]], block=False)
    assert isinstance(pr, PendingResult) and pr.r == [1, 2]
    m = mec.mapper(targets=[1])
    assert m.map(lambda x: engine_id(), range(3)) == [1, 1, 1]
    m = mec.mapper(block=False)
    assert m.map(lambda x: x + 1, range(3)).r == [1, 2, 3]

    @mec.parallel()
    def add(x, y):
        return x + y
    assert add(range(4), range(4)) == [0, 2, 4, 6]

    @mec.parallel(targets=0)
    def who(x):
        return engine_id()
    assert who(range(3)) == [0, 0, 0]
    mec.targets = 1
    assert mec.map(lambda x: engine_id(), range(2)) == [0, 1]     # 0.10: map uses all engines
    mec.targets = "all"


def test_benchmark(mec):
    b = mec.benchmark(push_size=1000)
    assert set(b) == {"single_engine_latency", "all_engine_latency", "all_engine_push",
                      "single_engine_push"}
    for key in ("single_engine_latency", "all_engine_latency"):
        assert b[key][1] == "msec" and 0 < b[key][0] < 1000
    for key in ("all_engine_push", "single_engine_push"):
        assert b[key][1] == "MB/sec" and b[key][0] > 0


# ---- non-blocking -----------------------------------------------------------------

def test_pending_result(mec):
    mec.block = False
    pr = mec.execute("import time; time.sleep(0.5); pr_v = id")
    assert isinstance(pr, PendingResult) and pr.client is mec
    assert pr.get_result("not yet", block=False) == "not yet"
    assert not pr.called and not pr.raised
    pr.add_callback(lambda r, extra: [d["id"] for d in r] + [extra], "x")
    pr.add_callback(lambda r: r + ["y"])
    assert pr.callbacks and len(pr.callbacks) == 2
    assert pr.get_result() == [0, 1, "x", "y"]
    assert pr.called and not pr.raised and pr.r == [0, 1, "x", "y"]
    p2 = mec.pull("pr_v")
    assert p2.result_id > pr.result_id
    assert p2.r == [0, 1]
    bad = mec.execute("1/0")
    for _ in range(2):
        with pytest.raises(CompositeError):
            bad.get_result()
    assert bad.called and bad.raised
    mec.block = True
    mec.execute("pass")             # get_result below re-fetches the last command
    p3 = mec.push(dict(p3=1), block=False)
    assert isinstance(p3, PendingResult) and p3.r == [None, None]
    for verb in (lambda: mec.keys(block=False), lambda: mec.clear_queue(block=False),
                 lambda: mec.queue_status(block=False), lambda: mec.get_result(block=False)):
        p = verb()
        assert isinstance(p, PendingResult)
        p.r


def test_barrier(mec):
    prs = [mec.execute("import time; time.sleep(0.2)", block=False),
           mec.execute("1/0", block=False, targets=0),
           mec.pull("id", block=False)]
    mec.barrier(reversed(prs))
    assert all(p.called for p in prs)
    assert [p.raised for p in prs] == [False, True, False]
    with pytest.raises(CompositeError):
        prs[1].r
    assert prs[2].r == [0, 1]
    with pytest.raises(NotAPendingResult):
        mec.barrier([prs[0], "nope"])


def test_flush(mec):
    done = mec.execute("fl = 1", block=False)
    done.r
    running = mec.execute("import time; time.sleep(0.3)", block=False)
    waiting = mec.pull("fl", block=False)
    mec.flush()
    for p in (running, waiting):
        with pytest.raises(InvalidDeferredID):
            p.r
    assert done.r[0]["input"]["raw"] == "fl = 1"
    assert mec.clear_pending_results == mec.flush
    assert mec.pull("fl") == [1, 1]


# ---- queues ------------------------------------------------------------------------

def test_queue_status_and_clear_queue(mec):
    idle = mec.queue_status()
    assert isinstance(idle, QueueStatusList)
    assert repr(idle) == ("<Queue Status List>\nEngine: 0\n    Pending: 'None'\n"
                          "Engine: 1\n    Pending: 'None'\n")
    assert idle == [(0, {"pending": "None", "queue": []}), (1, {"pending": "None", "queue": []})]
    sleeper = mec.execute("import time; time.sleep(2)", targets=0, block=False)
    time.sleep(0.3)
    later = [mec.execute("qs_%d = %d" % (i, i), targets=0, block=False) for i in range(8)]
    qs = mec.queue_status(targets=0)
    text = repr(qs)
    assert text.startswith("<Queue Status List>\nEngine: 0\n"
                           "    Pending: 'execute: import time; time.sleep(2)'\n"), text
    assert text.count("    Command: ") == 8
    assert "    Command: 'execute: qs_7 = 7'\n" in text
    assert mec.queue_status(targets=1)[0][1]["pending"] == "None"
    assert mec.clear_queue(targets=0) == [None]
    mec.barrier(later + [sleeper])
    assert not sleeper.raised
    cleared = [p for p in later if p.raised]
    assert cleared, "clear_queue removed nothing"
    for p in cleared:
        with pytest.raises(CompositeError) as info:
            p.r
        assert ename_set(info.value) == {(0, "QueueCleared")}
    # those that had already been sent to the engine ran, in order, the rest did not
    ran = [p for p in later if not p.raised]
    assert later[:len(ran)] == ran
    assert wait_for(lambda: mec.queue_status()[0][1] == {"pending": "None", "queue": []})
    assert mec.clear_queue() == [None, None]


# ---- killing things -------------------------------------------------------------------

def test_kill_one_engine(cluster_factory):
    c = cluster_factory(n=2)
    c.start()
    m = c.client()
    assert m.get_ids() == [0, 1]
    assert m.kill(targets=1) == [None]
    assert wait_for(lambda: m.get_ids() == [0], timeout=15), m.get_ids()
    assert len(m) == 1
    with pytest.raises(InvalidEngineID):
        m.execute("pass", targets=1)
    assert m.execute("print(id)")[0]["stdout"] == "0\n"
    assert m.map(lambda x: x + 1, range(3)) == [1, 2, 3]


def test_kill_controller(cluster_factory):
    c = cluster_factory(n=2)
    c.start()
    m = c.client()
    pids = c.pids()
    assert m.kill(controller=True) is None
    assert wait_for(lambda: not any(p in c.pids() for p in pids if p in _controllers(c)),
                    timeout=15)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError):
        for _ in range(50):       # the loss may be noticed a moment later
            m.execute("pass")
            time.sleep(0.1)
    assert time.monotonic() - t0 < 10


def _controllers(c):
    out = []
    for pid in c.pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(os.path.basename(a) == b"ipcontroller" for a in argv[:2]):
            out.append(pid)
    return out


def test_controller_killed_is_connection_error_not_a_hang(cluster_factory):
    c = cluster_factory(n=2)
    c.start()
    m = c.client()
    assert m.get_ids() == [0, 1]
    slow = m.execute("import time; time.sleep(30)", block=False)
    time.sleep(0.3)
    ctl = _controllers(c)
    assert len(ctl) == 1, ctl
    os.kill(ctl[0], signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError):
        slow.get_result()
    assert time.monotonic() - t0 < 10
    with pytest.raises(ConnectionError):
        m.execute("pass")
    with pytest.raises(ConnectionError):
        m.get_ids()
    with pytest.raises(ConnectionError):
        slow.r                      # cached
    assert time.monotonic() - t0 < 10
    # waiting in another thread is woken too
    m2_errors = []

    def other():
        try:
            m.pull("x")
        except Exception as e:       # noqa: BLE001
            m2_errors.append(e)
    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert not t.is_alive() and isinstance(m2_errors[0], ConnectionError)


# ---- with mec: remote() ------------------------------------------------------------

def test_with_block_runs_on_the_engines(mec):
    from plexa.client import remote
    with mec:
        remote()
        wq = id + 1         # here `id` is the builtin: this line must not run locally
        wr = [wq] * 2
    assert mec.pull("wq") == [1, 2]
    assert mec.pull("wr") == [[1, 1], [2, 2]]
    assert "wq" not in locals()
    r = mec._with_context_result
    assert r[0]["input"]["raw"] == "wq = id + 1         # here `id` is the builtin: this line " \
                                   "must not run locally\nwr = [wq] * 2"


def test_large_pulls_reuse_memory(mec):
    """A pulled array that is dropped gives its block back for the next
    pull: the second 64 MiB pull maps (almost) no fresh pages in this
    process. Counting page faults is exact where timing is not: without
    the client's block pool (or with _native freeing libplexa's buffers
    through a private copy of the buffer code, as it once did) each pull
    faults in all 16 384 pages of its buffer."""
    import resource
    n = 64 << 20
    mec.execute('import numpy; big = numpy.ones(%d, dtype=numpy.uint8)' % n, targets=0)
    got = mec.pull('big', targets=0)[0]
    assert got.nbytes == n and int(got[:: 1 << 20].sum()) == 64
    del got
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    got = mec.pull('big', targets=0)[0]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert got.nbytes == n
    del got
    mec.execute('big = None', targets=0)
    assert faults < (n // 4096) // 4, "%d page faults pulling 64 MiB a second time" % faults


def test_threads_share_one_client(mec):
    """Eight threads drive one MultiEngineClient at once: requests are
    written by whichever thread finds the connection idle, or by the
    client's I/O thread; every reply reaches the thread that asked."""
    import threading
    errors = []

    def work(k):
        try:
            for i in range(200):
                r = mec.execute('t%d = %d' % (k, i), targets=k % 2)
                assert r[0]['stderr'] == '' and r[0]['id'] == k % 2
                if i % 20 == 0:
                    assert mec.pull('t%d' % k, targets=k % 2) == [i]
        except Exception as e:      # collected: a thread's assert would be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert mec.pull(['t%d' % k for k in range(0, 8, 2)], targets=0) == [[199] * 4]
