"""Load balancing on real clusters (issue 16): the default scheduler
places tasks so that no engine idles while another holds work it has not
started, each task runs exactly once, slow and stopped engines give back
what they were sent ahead, chunks of a map are cut into pieces whose
results come back in order. These tests assert placement (which process
ran what, how often), never timings: timings are bench/run's.

Every task appends "element pid" to a log file on the shared disk, so a
test sees where each element ran and how many times.
"""
import os
import signal
import sys
import threading
import time

import cloudpickle
import pytest

from conftest import wait_for
from plexa import client
from plexa.task import MapTask

# Functions of this module travel by value: engines cannot import it.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def nap(log, i, seconds):
    """Record where element i runs (before it runs), then take a while."""
    import os
    import time
    with open(log, "a") as f:
        f.write("%s %d\n" % (i, os.getpid()))
    time.sleep(seconds)
    return i


def busy(log, i, seconds):
    """Like nap, holding the GIL the whole time (a pure Python loop)."""
    import os
    import time
    with open(log, "a") as f:
        f.write("%s %d\n" % (i, os.getpid()))
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return i


def spin(log, i, cpu_seconds):
    """Like busy, for this much CPU time of its own thread: a stopped
    process uses none, so after SIGCONT the task still has its rest to do."""
    import os
    import time
    with open(log, "a") as f:
        f.write("%s %d\n" % (i, os.getpid()))
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass
    return i


def runs(log):
    """{element: [pid, ...]} from the log."""
    out = {}
    if not os.path.exists(log):
        return out
    with open(log) as f:
        for line in f:
            i, pid = line.split()
            out.setdefault(int(i), []).append(int(pid))
    return out


@pytest.fixture(scope="module")
def cl(cluster):
    tc = client.TaskClient(cluster.url("task"))
    mec = cluster.client()
    pids = [int(d["stdout"]) for d in mec.execute("import os; print(os.getpid())")]
    yield tc, pids
    tc.close()
    mec.close()


@pytest.fixture
def log(tmp_path):
    return str(tmp_path / "runs.log")


def mapped(tc, fn, log, seconds):
    n = len(seconds)
    return tc.map(fn, [log] * n, list(range(n)), seconds)


def once_each(log, n):
    r = runs(log)
    assert sorted(r) == list(range(n)), r
    for i, pids in r.items():
        assert len(pids) == 1, "element %d ran %d times: %s" % (i, len(pids), pids)
    return {i: pids[0] for i, pids in r.items()}


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_map_of_long_tasks_uses_both_engines(cl, log, n):
    tc, pids = cl
    assert mapped(tc, nap, log, [0.3] * n) == list(range(n))
    where = once_each(log, n)
    counts = [list(where.values()).count(p) for p in pids]
    # as even as n allows: never all on one engine (0.10's fifo with 4
    # tasks in flight put four on engine 0)
    assert sorted(counts) == sorted([n // 2, n - n // 2]), (where, pids)


def test_separate_runs_use_both_engines(cl, log):
    tc, pids = cl
    ids = [tc.run(MapTask(nap, args=(log, i, 0.3))) for i in range(4)]
    tc.barrier(ids)
    assert [tc.get_task_result(t) for t in ids] == [0, 1, 2, 3]
    where = once_each(log, 4)
    assert sorted(list(where.values()).count(p) for p in pids) == [2, 2], where


def test_long_task_does_not_hold_short_ones(cl, log):
    tc, pids = cl
    assert mapped(tc, nap, log, [2.0] + [0.1] * 5) == list(range(6))
    where = once_each(log, 6)
    # whatever was sent ahead to the engine running the 2 s task came back
    assert all(where[i] != where[0] for i in range(1, 6)), where


def test_gil_bound_engine_gives_back_what_it_holds(cl, log):
    """An engine stuck in pure Python (no GIL for anyone else) still answers
    steals: its I/O thread needs no GIL."""
    tc, pids = cl
    assert mapped(tc, busy, log, [2.0] + [0.05] * 10) == list(range(11))
    where = once_each(log, 11)
    assert all(where[i] != where[0] for i in range(1, 11)), where


def test_chunked_map_is_cut_and_comes_back_in_order(cl, log):
    tc, pids = cl
    n = 240      # more than 16 per engine: the map is chunked
    assert mapped(tc, nap, log, [0.01] * n) == list(range(n))
    where = once_each(log, n)
    assert set(where.values()) == set(pids)
    # again, now that the controller knows what an element costs: the
    # chunks are cut into pieces; the order and the values hold
    os.unlink(log)
    assert mapped(tc, nap, log, [0.01] * n) == list(range(n))
    once_each(log, n)
    assert tc.queue_status()["scheduled"] == 0


def test_stopped_engine_gives_back_what_it_was_sent(cluster_factory, tmp_path):
    """SIGSTOP an engine that runs a task and holds one sent ahead: the
    other engine, once idle, asks for it; the stopped one gives it back on
    SIGCONT (its running task still has CPU time to use up) instead of
    running it, and every task runs exactly once."""
    c = cluster_factory(n=2)
    c.start()
    mec = c.client()
    pids = [int(d["stdout"]) for d in mec.execute("import os; print(os.getpid())")]
    tc = client.TaskClient(c.url("task"))
    log = str(tmp_path / "runs.log")
    n = 6
    result = {}
    t = threading.Thread(target=lambda: result.update(r=mapped(tc, spin, log, [0.3] * n)))
    t.start()
    # the first engine has started a task (and was sent one ahead of it)
    assert wait_for(lambda: any(pids[0] in p for p in runs(log).values()), timeout=20)
    os.kill(pids[0], signal.SIGSTOP)
    try:
        time.sleep(2.5)          # within heartbeat_period x misses (5 s)
    finally:
        os.kill(pids[0], signal.SIGCONT)
    t.join(60)
    assert result.get("r") == list(range(n))
    where = once_each(log, n)
    stopped = [i for i, p in where.items() if p == pids[0]]
    # it ran the task it had started, nothing it was sent ahead (fifo with
    # 4 in flight left it three)
    assert len(stopped) == 1, where
    tc.close()
    mec.close()


@pytest.mark.parametrize("policy", ["fifo", "leastload"])
def test_0_10_policies_stay_selectable(cluster_factory, tmp_path, policy):
    c = cluster_factory(n=2, conf="[controller]\nscheduler = %s\ntask_inflight = 1\n" % policy)
    c.start()
    tc = client.TaskClient(c.url("task"))
    log = str(tmp_path / "runs.log")
    assert mapped(tc, nap, log, [0.1] * 4) == list(range(4))
    where = once_each(log, 4)
    assert len(set(where.values())) == 2      # task_inflight = 1: both engines
    tc.close()


def test_balancing_after_controller_restart(cluster_factory, tmp_path):
    c = cluster_factory(n=2, conf="[cluster]\nrestart_controller = true\n")
    c.start()
    with open(c.path("pid", "ipcontroller.pid")) as f:
        old = int(f.read().split()[0])
    os.kill(old, signal.SIGKILL)

    def restarted():
        try:
            with open(c.path("pid", "ipcontroller.pid")) as f:
                return int(f.read().split()[0]) != old
        except (OSError, ValueError):
            return False
    assert wait_for(restarted, timeout=15)
    mec = c.client()
    assert wait_for(lambda: mec.get_ids() == [0, 1], timeout=15)
    pids = [int(d["stdout"]) for d in mec.execute("import os; print(os.getpid())")]
    tc = client.TaskClient(c.url("task"))
    log = str(tmp_path / "runs.log")
    assert mapped(tc, nap, log, [0.3] * 4) == list(range(4))
    where = once_each(log, 4)
    assert sorted(list(where.values()).count(p) for p in pids) == [2, 2], where
    tc.close()
    mec.close()
