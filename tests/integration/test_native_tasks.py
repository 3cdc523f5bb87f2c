"""plexa._native's task interface against real clusters: the map, chunk and
string kinds with their options, retries when the engine running a task is
killed, depend, abort of queued and running tasks, interrupt(targets),
eviction, and the speed of big submissions. The shapes (see _native.c;
named structures, equal to plain tuples):

    submit_tasks(specs).result()      -> TaskIds(first_id, count)
    submit_task_wait(ids).result()    -> [TaskReply(task_id, status, engine_id, values,
                                                    error, submitted, started, completed)]
"""
import os
import signal
import sys
import time

import cloudpickle
import pytest

from conftest import wait_for
from plexa import _native as N
from plexa.error import KernelError

# Functions of this module travel by value: engines cannot import it.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def task_client(cluster):
    return N.Client(cluster.url("task"), role="task")


@pytest.fixture(scope="module")
def tc(cluster):
    c = task_client(cluster)
    yield c
    c.close()


def run(tc, specs, block=True):
    ids = tc.submit_tasks(specs).result()
    assert isinstance(ids, N.TaskIds) and ids.count == len(specs)
    return tc.submit_task_wait(range(ids.first_id, ids.first_id + ids.count), block).result()


def ok_values(results):
    for r in results:
        assert isinstance(r, N.TaskReply) and r.status == N.TASK_OK, r
    return [r.values for r in results]


def joined(values):
    """A chunk task's list: the controller may have cut the chunk into
    pieces, one list value each."""
    return [x for piece in values for x in piece]


def power(x, k=2):
    return x ** k


def getpid_after(path, seconds):
    """Say which process runs us (in path), then take a while."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def engine_pid():
    return os.getpid()


# ---- the kinds ------------------------------------------------------------------

def test_map_chunk_string(tc):
    t0 = time.time()
    res = run(tc, [
        {"kind": "map", "args": [power, (3,), {"k": 3}]},
        {"kind": "map", "args": [power, [4]]},
        {"kind": "map", "args": [power, (5,), {}]},
        {"kind": "chunk", "args": [power, [(1,), (2, 3), (3,)]]},
        {"kind": "string", "args": ["b = a * 2\nprint('b is', b)", {"a": 21}, ["a", "b"]]},
        {"kind": "string", "args": ["c = 7", None, "c"]},
    ])
    vals = ok_values(res)
    assert joined(vals[3]) == [1, 8, 9]
    assert vals[:3] + vals[4:] == [[27], [16], [25], [{"a": 21, "b": 42}, "b is 42\n", ""],
                                   [{"c": 7}, "", ""]]
    for r in res:
        assert r.engine_id in (0, 1) and r.error is None
        assert t0 - 1 < r.submitted <= r.started <= r.completed < time.time() + 1
    assert [r.task_id for r in res] == list(range(res[0].task_id, res[0].task_id + 6))


def test_failures_carry_the_remote_error(tc):
    res = run(tc, [
        {"kind": "map", "args": [power, ("x",)]},
        {"kind": "chunk", "args": [power, [(1,), ("x",)]]},
        {"kind": "string", "args": ["print('hi'); 1/0", None, None]},
        {"kind": "string", "args": ["d = 1", None, ["d", "nope"]]},
    ])
    assert [r[1] for r in res] == [N.TASK_FAILED] * 4
    assert [r[4][0] for r in res] == ["TypeError", "TypeError", "ZeroDivisionError", "NameError"]
    assert "in power" in res[0][4][2] and "_engine.py" not in res[0][4][2]
    assert res[0][3] == [] and res[1][3] == []
    # a string task reports its output even when it failed
    assert res[2][3] == [{}, "hi\n", ""]
    assert "'nope'" in res[3][4][1]


def test_options_clear_after_recovery(tc):
    res = run(tc, [
        # clear_before / clear_after reset the namespace around the task
        {"kind": "string", "args": ["z = 1", None, None], "clear_after": True},
        {"kind": "string", "args": ["print('z' in globals())", None, None], "clear_before": True},
        # a failing task's recovery task runs under the same id
        {"kind": "map", "args": [power, ("x",)], "retries": 1,
         "recovery": {"kind": "map", "args": [power, (6,)]}},
    ])
    assert res[1][3][1] == "False\n"
    assert res[2][1] == N.TASK_OK and res[2][3] == [36]
    # after: the second waits for the first
    first, _ = tc.submit_tasks([{"kind": "string", "args": ["import time; time.sleep(0.5)",
                                                            None, None]}]).result()
    second, _ = tc.submit_tasks([{"kind": "map", "args": [time.time, ()],
                                  "after": [first]}]).result()
    a, b = tc.submit_task_wait([first, second]).result()
    assert b[1] == N.TASK_OK and b[3][0] >= a[7] - 0.05


def test_bad_specs_are_refused_here(tc, cluster):
    with pytest.raises(ValueError, match="unknown key 'retry'"):
        tc.submit_tasks([{"kind": "map", "args": [power, (1,)], "retry": 1}])
    with pytest.raises(TypeError, match="'kind' must be a str"):
        tc.submit_tasks([{"args": []}])
    with pytest.raises(TypeError, match="depend"):
        tc.submit_tasks([{"kind": "map", "args": [power, (1,)], "depend": 5}])
    with pytest.raises(ValueError, match="recovery task of its own"):
        tc.submit_tasks([{"kind": "map", "args": [], "recovery": {
            "kind": "map", "args": [], "recovery": {"kind": "map", "args": []}}}])
    mec = N.Client(cluster.url())
    with pytest.raises(TypeError, match="role='task'"):
        mec.submit_tasks([])
    assert mec.role == "mec" and tc.role == "task"
    mec.close()
    # an unknown kind fails on the engine, clearly
    res = run(tc, [{"kind": "nope", "args": []}])
    assert res[0][1] == N.TASK_FAILED and res[0][4][0] == "ProtocolError"


def test_numpy_travels_zero_copy(tc):
    np = pytest.importorskip("numpy")
    a = np.arange(1_000_000, dtype=np.float64)
    res = run(tc, [{"kind": "map", "args": [np.multiply, (a, 2.0)]},
                   {"kind": "map", "args": [np.sum, (a,)]}])
    doubled, total = ok_values(res)
    assert isinstance(doubled[0], np.ndarray) and np.array_equal(doubled[0], a * 2)
    assert total[0] == a.sum()


def test_queue_status_and_eviction(tc):
    res = run(tc, [{"kind": "map", "args": [power, (i,)]} for i in range(3)])
    ids = [r[0] for r in res]
    st = tc.submit_task_queue_status(True).result()
    assert set(ids) <= set(st["succeeded"]) and st["pending"] == [] and st["scheduled"] == []
    counts = tc.submit_task_queue_status().result()
    assert counts["succeeded"] == len(st["succeeded"]) and counts["failed"] == len(st["failed"])
    assert counts["pending"] == 0 and counts["scheduled"] == 0
    assert tc.submit_task_clear([ids[0]]).result() is None
    r = tc.submit_task_wait(ids, False).result()
    assert r[0][1] == N.TASK_EVICTED and r[0][4][0] == "ResultEvicted"
    assert [x[1] for x in r[1:]] == [N.TASK_OK, N.TASK_OK]
    tc.submit_task_clear().result()   # every finished task
    assert [x[1] for x in tc.submit_task_wait(ids, False).result()] == [N.TASK_EVICTED] * 3
    unknown = tc.submit_task_wait([10 ** 9], False).result()[0]
    assert unknown[1] == N.TASK_UNKNOWN and unknown[2] is None and unknown[3] == []


def test_depend_picks_the_engine(tc):
    specs = [{"kind": "map", "args": [engine_pid, ()], "depend": lambda p: p["engine_id"] != 0}
             for _ in range(6)]
    res = run(tc, specs)
    assert [r[1] for r in res] == [N.TASK_OK] * 6
    assert {r[2] for r in res} == {1}
    # a depend that raises fails the task with its traceback
    res = run(tc, [{"kind": "map", "args": [engine_pid, ()], "depend": lambda p: p["nope"]}])
    assert res[0][1] == N.TASK_FAILED and res[0][4][0] == "KeyError"


def test_many_small_tasks_are_fast(tc):
    def null():
        return None
    specs = [{"kind": "map", "args": [null, (), {}]} for _ in range(10000)]
    t0 = time.perf_counter()
    first, count = tc.submit_tasks(specs).result()
    t_submit = time.perf_counter() - t0
    res = tc.submit_task_wait(range(first, first + count)).result()
    t_all = time.perf_counter() - t0
    assert count == 10000 and all(r[1] == N.TASK_OK and r[3] == [None] for r in res)
    print("\n10000 null map tasks: submit %.3f s, submit+wait %.2f s (%.0f tasks/s)"
          % (t_submit, t_all, 10000 / t_all))
    assert t_submit < 2.0   # typically 0.02-0.08 s; generous for loaded machines
    specs = [{"kind": "chunk", "args": [power, [(i,) for i in range(c * 1000, c * 1000 + 1000)]]}
             for c in range(100)]
    t0 = time.perf_counter()
    res = run(tc, specs)
    t_all = time.perf_counter() - t0
    flat = [x for v in ok_values(res) for x in joined(v)]
    assert flat == [i * i for i in range(100000)]
    print("100 chunk tasks x 1000: %.2f s (%.0f elements/s)" % (t_all, 100000 / t_all))
    tc.submit_task_clear().result()


# ---- engines dying ----------------------------------------------------------------

def start_on_engine(c, tmp_path, retries):
    """Submit a task that says which engine process runs it, then sleeps;
    return (task id, that process id)."""
    tc = task_client(c)
    marker = str(tmp_path / "runs-on")
    first, _ = tc.submit_tasks([{"kind": "map", "args": [getpid_after, (marker, 3)],
                                 "retries": retries}]).result()
    assert wait_for(lambda: os.path.exists(marker) and open(marker).read(), timeout=20)
    return tc, first, int(open(marker).read())


def test_kill9_with_retries_completes_elsewhere(cluster_factory, tmp_path):
    c = cluster_factory(n=2)
    c.start()
    tc, tid, pid = start_on_engine(c, tmp_path, retries=1)
    os.kill(pid, signal.SIGKILL)
    (r,) = tc.submit_task_wait([tid]).result()
    assert r[1] == N.TASK_OK, r
    assert r[3][0] != pid
    assert tc.get_ids() == [r[2]]   # the survivor ran it


def test_kill9_without_retries_is_engine_died_fast(cluster_factory, tmp_path):
    c = cluster_factory(n=2)
    c.start()
    tc, tid, pid = start_on_engine(c, tmp_path, retries=0)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    (r,) = tc.submit_task_wait([tid]).result(timeout=10)
    assert time.monotonic() - t0 < 5
    assert r[1] == N.TASK_ENGINE_DIED and r[4][0] == "EngineError"
    assert "died" in r[4][1]
    # the other engine carries on
    res = run(tc, [{"kind": "map", "args": [power, (9,)]}])
    assert ok_values(res) == [[81]]


# ---- abort and interrupt ---------------------------------------------------------

def test_abort_queued_and_running(cluster_factory):
    c = cluster_factory(n=1)
    c.start()
    tc = task_client(c)
    sleep = {"kind": "string", "args": ["import time; time.sleep(60)", None, None]}
    first, _ = tc.submit_tasks([sleep] * 4).result()
    ids = list(range(first, first + 4))
    assert wait_for(lambda: tc.submit_task_queue_status().result()["scheduled"] >= 1)
    time.sleep(0.3)   # the first is in time.sleep now
    t0 = time.monotonic()
    tc.submit_task_abort([ids[3]]).result()       # waiting in the controller
    (r,) = tc.submit_task_wait([ids[3]]).result(timeout=5)
    assert r[1] == N.TASK_ABORTED and r[4][0] == "TaskAborted"
    tc.submit_task_abort(ids[:3]).result()        # running, sent ahead, waiting
    res = tc.submit_task_wait(ids[:3]).result(timeout=10)
    assert [x[1] for x in res] == [N.TASK_ABORTED] * 3, res
    assert time.monotonic() - t0 < 5
    # the engine then runs the next task
    assert ok_values(run(tc, [{"kind": "map", "args": [power, (7,)]}])) == [[49]]
    with pytest.raises(KernelError, match="already completed"):
        tc.submit_task_abort([ids[0]]).result()
    with pytest.raises(KernelError, match="does not exist"):
        tc.submit_task_abort([10 ** 9]).result()


def test_interrupt_targets_running_execute(cluster):
    mec = N.Client(cluster.url())
    req = mec.submit_execute("import time; time.sleep(60)", targets=0)
    time.sleep(0.5)
    t0 = time.monotonic()
    assert mec.submit_interrupt(0).result() == [(0, "interrupt", None, [], None)]
    (r,) = req.result(timeout=10)
    assert time.monotonic() - t0 < 5
    assert r[4] is not None and r[4][0] == "KeyboardInterrupt"
    # an idle engine is not harmed by an interrupt, and both serve on
    mec.submit_interrupt(None).result()
    out = mec.execute("print(id)")
    assert [x[2][2] for x in out] == ["0\n", "1\n"]
    mec.close()


# ---- a network blip ------------------------------------------------------------

def _engine_local_port(pid):
    """The local port of engine pid's connection to the controller."""
    import subprocess
    out = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "pid=%d," % pid in line:
            return int(line.split()[3].rsplit(":", 1)[1])
    return None


def test_engine_reconnects_after_connection_reset(cluster_factory):
    """The controller connection of engine 0 is reset (ss -K, as a network
    failure would): the engine reconnects within its --reconnect time, gets
    id 0 back and keeps its namespace."""
    import shutil
    import subprocess
    if not shutil.which("ss"):
        pytest.skip("needs ss (iproute2)")
    # Over TCP (ss -K kills TCP sockets): shared memory off.
    c = cluster_factory(n=2, conf="[controller]\nshm = false\n")
    c.start()
    mec = N.Client(c.url())
    pids = {r[0]: int(r[2][2]) for r in mec.execute("import os; x = 42; print(os.getpid())")}
    port = _engine_local_port(pids[0])
    assert port
    k = subprocess.run(["ss", "-K", "-tn", "sport = :%d" % port], capture_output=True, text=True)
    if k.returncode != 0 or _engine_local_port(pids[0]) == port:
        pytest.skip("ss -K cannot kill sockets here (needs root and INET_DIAG_DESTROY)")
    assert wait_for(lambda: _engine_local_port(pids[0]) not in (None, port), timeout=10)
    assert wait_for(lambda: mec.get_ids() == [0, 1], timeout=10)
    out = mec.execute("import os; print(os.getpid(), x)", targets=0)
    assert out[0][2][2] == "%d 42\n" % pids[0]
    with open(c.path("log", "ipcontroller.log")) as f:
        assert "engine 0 is back" in f.read()
    # tasks run on it as before
    tc = task_client(c)
    res = run(tc, [{"kind": "map", "args": [engine_pid, ()], "depend": lambda p: p["engine_id"] == 0}])
    assert ok_values(res) == [[pids[0]]]
    mec.close()
