"""Futures against real clusters (issue 19): PendingResult is a
concurrent.futures.Future that resolves on the client's plexa-callbacks
thread as soon as the reply arrives; concurrent.futures.wait /
as_completed and plexa.wait / plexa.as_completed; await and
asyncio.gather of 1 000 futures; tc.future / tc.apply_async; cancel() of
queued work; every blocking call's timeout; the warning of a wait on a
cluster with no engine.
"""
import asyncio
import concurrent.futures as cf
import os
import subprocess
import sys
import threading
import time
import warnings

import cloudpickle
import pytest

import plexa
from conftest import tool, wait_for
from plexa import _pending, client
from plexa.error import CompositeError, RemoteError, TaskTimeout

# Functions defined here travel by value (the engines cannot import this module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def nap(seconds, value=None):
    import time
    time.sleep(seconds)
    return value


def fail(msg):
    raise ValueError(msg)


# ---- a Future ------------------------------------------------------------------------

def test_result_exception_done(clients):
    mec, tc = clients
    pr = mec.execute("import time; time.sleep(0.5); fut_x = id", block=False)
    assert isinstance(pr, cf.Future) and not pr.done() and not pr.running()
    assert pr.exception(timeout=10) is None and pr.done()
    assert [d["id"] for d in pr.result()] == [0, 1] and pr.called and not pr.raised
    bad = mec.execute("1/0", block=False)
    e = bad.exception(timeout=10)
    assert isinstance(e, CompositeError) and bad.raised
    with pytest.raises(CompositeError):
        bad.result()
    f = tc.apply_async(nap, 0.1, "v")
    assert f.result(timeout=10) == "v" and f.task_ids and f.get_result() == "v"
    g = tc.apply_async(fail, "boom")
    assert isinstance(g.exception(timeout=10), RemoteError)
    assert "boom" in str(g.exception())
    # tc.run keeps returning the id (0.10); tc.future(id) is its future.
    tid = tc.run(client.MapTask(nap, args=(0.1, 7)))
    assert isinstance(tid, int)
    assert tc.future(tid).result(timeout=10) == 7
    assert [f.result(10) for f in tc.futures([tid, tid])] == [7, 7]
    assert tc.get_task_result(tid) == 7


def test_callbacks_fire_when_the_reply_arrives(clients):
    """Nobody calls get_result: the main thread only waits on an Event."""
    mec, tc = clients
    seen = {}
    fired = threading.Event()

    def on_done(f):
        seen["thread"] = threading.current_thread().name
        seen["value"] = f.result()
        fired.set()
    chained = threading.Event()
    f = tc.apply_async(nap, 0.3, 21)
    f.add_callback(lambda r: chained.set() or r * 2)       # 0.10's chain
    f.add_done_callback(on_done)
    assert fired.wait(10) and chained.is_set()
    assert seen == {"thread": "plexa-callbacks", "value": 42}
    # The same for a multi-engine call.
    fired.clear()
    pr = mec.pull("id", block=False)
    pr.add_done_callback(on_done)
    assert fired.wait(10) and seen["value"] == [0, 1]
    # One callback thread per client, however many futures.
    fs = [tc.apply_async(nap, 0, i) for i in range(50)]
    assert [x.result(10) for x in fs] == list(range(50))
    names = [t.name for t in threading.enumerate()]
    assert names.count("plexa-callbacks") == 2, names



class Big(object):
    """A result whose freeing a weakref can see."""


def make_big():
    return Big()


def test_a_value_resolved_here_is_not_held_by_the_callback_thread(clients):
    """The callback thread is stuck in a slow callback of one future while
    the main thread converts another's reply itself (result()). Once the
    caller drops that future and its value, nothing of plexa's keeps them:
    the callback thread, which has not reached the second reply yet, lets
    go of it at resolution (the CI failure of test_free_reference[mec])."""
    import gc
    import weakref
    mec, tc = clients
    started, release = threading.Event(), threading.Event()
    where = []

    def stuck(_):
        where.append(threading.current_thread().name)
        started.set()
        release.wait(30)
    slow = tc.apply_async(nap, 0.5, 1)
    slow.add_done_callback(stuck)
    assert started.wait(10) and where == ["plexa-callbacks"]
    f = tc.apply_async(make_big)
    value = f.result(10)
    assert type(value).__name__ == "Big"
    ref = weakref.ref(value)
    del f, value
    gc.collect()
    try:
        assert ref() is None, gc.get_referrers(ref())
    finally:
        release.set()
    assert slow.result(10) == 1

def test_wait_and_as_completed(clients):
    mec, tc = clients
    slow, quick = tc.apply_async(nap, 3, "slow"), tc.apply_async(nap, 0.1, "quick")
    for wait in (cf.wait, plexa.wait):
        done, not_done = wait([slow, quick], return_when=cf.FIRST_COMPLETED, timeout=10)
        assert done == {quick} and not_done == {slow}
    done, not_done = plexa.wait([slow, quick], timeout=0.2)
    assert slow in not_done
    boom = tc.apply_async(fail, "first")
    done, not_done = cf.wait([slow, boom], return_when=plexa.FIRST_EXCEPTION, timeout=10)
    assert done == {boom} and not_done == {slow}
    with pytest.raises(TimeoutError):
        for _ in plexa.as_completed([slow], timeout=0.2):
            pass
    assert slow.result(10) == "slow"        # both engines free: one task each below
    fs = [tc.apply_async(nap, t, t) for t in (1.0, 0.1)]
    order = [f.result() for f in cf.as_completed(fs, timeout=10)]
    assert order == [0.1, 1.0]
    got = [f.result() for f in plexa.as_completed(fs + [slow, fs[0]], timeout=10)]
    assert sorted(got, key=str) == [0.1, 1.0, "slow"]   # duplicates are yielded once
    done, _ = plexa.wait([slow, quick, mec.execute("pass", block=False)], timeout=10)
    assert len(done) == 3


def test_await_and_gather_1000(clients):
    mec, tc = clients
    tc.apply_async(pow, 1, 1).result(10)
    mec.pull("id", block=False).result(10)      # both callback threads run
    threads = threading.active_count()

    async def main():
        one = await tc.apply_async(pow, 2, 10)
        pulled = await mec.pull("id", block=False)
        fs = [tc.apply_async(pow, i, 2) for i in range(1000)]
        return one, pulled, await asyncio.wait_for(asyncio.gather(*fs), 120)
    t0 = time.monotonic()
    one, pulled, squares = asyncio.run(main())
    assert one == 1024 and pulled == [0, 1]
    assert squares == [i * i for i in range(1000)]
    assert threading.active_count() <= threads      # no thread per await
    print(f"\nasyncio.gather of 1000 task futures: {time.monotonic() - t0:.2f} s")


def test_cancelling_the_awaiting_task_cancels_the_work(clients):
    mec, tc = clients
    mec.execute("asyncio_x = 0")

    async def main():
        running = mec.execute("import time; time.sleep(1)", block=False)
        mec.execute("pass", block=False)            # the second in flight per engine
        queued = mec.execute("asyncio_x = 1", block=False)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(queued, 0.1)
        await running
        return queued
    queued = asyncio.run(main())
    assert wait_for(queued.cancelled, timeout=5)
    assert mec.pull("asyncio_x") == [0, 0]


def test_close_fails_pending_futures(cluster):
    os.environ["PLEXA_DIR"] = cluster.root
    mec = client.MultiEngineClient(profile=cluster.profile)
    pr = mec.execute("import time; time.sleep(1)", block=False)
    fired = threading.Event()
    pr.add_done_callback(lambda f: fired.set())
    thread = mec._callbacks._thread
    mec.close()
    assert fired.wait(5) and isinstance(pr.exception(), client.ConnectionError)
    thread.join(5)
    assert not thread.is_alive()
    with pytest.raises(client.ConnectionError):
        mec.execute("pass", block=False)


# ---- timeouts ------------------------------------------------------------------------

def test_every_blocking_call_has_a_timeout(clients):
    mec, tc = clients
    pr = mec.execute("import time; time.sleep(1.5)", block=False)
    for call in (lambda: pr.get_result(timeout=0.2), lambda: pr.result(0.2),
                 lambda: pr.exception(0.2), lambda: mec.barrier([pr], timeout=0.2)):
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            call()
        assert 0.15 < time.monotonic() - t0 < 1.2
    assert not pr.wait(0.05) and pr.wait(10)
    mec.barrier([pr], timeout=10)
    with pytest.raises(TimeoutError):
        mec.map(nap, [1.5, 1.5], timeout=0.3)
    assert mec.map(nap, [0, 0], [1, 2], timeout=10) == [1, 2]
    tid = tc.run(client.MapTask(nap, args=(1.5, "late")))
    with pytest.raises(TimeoutError):
        tc.get_task_result(tid, block=True, timeout=0.2)
    with pytest.raises(TimeoutError):
        tc.barrier([tid], timeout=0.2)
    with pytest.raises(TimeoutError):
        tc.run(client.MapTask(nap, args=(1.5,)), block=True, timeout=0.2)
    tc.barrier(tid, timeout=10)
    assert tc.get_task_result(tid, block=True, timeout=10) == "late"
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        tc.map(nap, [3] * 4, timeout=0.5)
    assert time.monotonic() - t0 < 2.5                     # aborted, not waited for
    assert tc.map(nap, [0] * 4, [1, 2, 3, 4], timeout=10) == [1, 2, 3, 4]
    assert issubclass(TaskTimeout, TimeoutError)
    assert issubclass(cf.TimeoutError, TimeoutError)


def test_a_wait_with_no_engine(cluster_factory, monkeypatch):
    """A controller with no engines: waits last up to their timeout; one
    with no timeout warns once, then goes on and gets its result when an
    engine registers."""
    c = cluster_factory(n=0)
    ctl = subprocess.Popen([tool("ipcontroller")], env=c.env, stderr=subprocess.DEVNULL)
    engine = []
    try:
        assert wait_for(lambda: os.path.exists(c.path("security", "ipcontroller-tc.url")),
                        timeout=10)
        tc = client.TaskClient(c.path("security", "ipcontroller-tc.url"))
        assert tc.get_ids() == []
        tid = tc.run(client.MapTask(pow, args=(3, 4)))
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            tc.get_task_result(tid, block=True, timeout=1.0)
        assert time.monotonic() - t0 >= 0.95
        f = tc.future(tid)
        with pytest.raises(TimeoutError):
            f.result(timeout=0.3)
        monkeypatch.setattr(_pending, "STALL_S", 1.0)

        def start_engine():
            engine.append(subprocess.Popen(
                [tool("ipengine"), "--furl-file", c.path("security", "ipcontroller-engine.url")],
                env=c.env))
        timer = threading.Timer(2.5, start_engine)
        timer.start()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert tc.get_task_result(tid, block=True) == 81
            assert tc.map(pow, [2, 3], [2, 2]) == [4, 9]
        timer.join()
        ours = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(ours) == 1 and "no engine is registered" in str(ours[0].message), ours
        assert ours[0].filename == __file__         # the line that waits
        assert f.result(timeout=10) == 81
        tc.close()
    finally:
        for e in engine:
            e.terminate()
            e.wait(10)
        ctl.terminate()
        ctl.wait(10)


# ---- cancel --------------------------------------------------------------------------

def test_cancel_queued_tasks(cluster_factory):
    """cancel() drops tasks still queued in the controller; a task an engine
    has is not cancelled (False), as concurrent.futures says."""
    c = cluster_factory(n=2, conf="[controller]\nscheduler = fifo\ntask_inflight = 1\n")
    c.start()
    os.environ["PLEXA_DIR"] = c.root
    tc = client.TaskClient(profile=c.profile)
    busy = [tc.apply_async(nap, 2, i) for i in range(2)]
    assert wait_for(lambda: tc.queue_status()["scheduled"] == 2, timeout=10)
    queued = [tc.apply_async(nap, 0, i) for i in range(3)]
    ids = [tc.run(client.MapTask(nap, args=(0, i))) for i in range(4)]
    several = tc.future(ids[0])
    several.task_ids = ids      # (how a future of several tasks is made)
    several._canceller = lambda: tc._cancel_queued(ids)
    assert tc.queue_status()["pending"] == 3 + 4
    fired = threading.Event()
    queued[0].add_done_callback(lambda f: fired.set())
    assert queued[0].cancel() and queued[0].cancelled() and queued[0].done()
    assert fired.is_set() and queued[0].cancel()            # cancelling again: True
    with pytest.raises(cf.CancelledError):
        queued[0].result()
    with pytest.raises(cf.CancelledError):
        queued[0].get_result()
    done, not_done = cf.wait(queued + busy, timeout=0)
    assert done == {queued[0]}
    assert several.cancel() and several.cancelled()
    assert not busy[0].cancel() and not busy[0].cancelled()  # an engine has it
    assert [f.result(10) for f in busy] == [0, 1]
    assert [f.result(10) for f in queued[1:]] == [1, 2]
    assert not queued[1].cancel()                             # done
    # The cancelled tasks never ran: the controller aborted them.
    from plexa.error import TaskAborted
    for tid in queued[0].task_ids + ids:
        with pytest.raises(TaskAborted):
            tc.get_task_result(tid, block=True, timeout=10)
    tc.close()


def test_cancel_queued_multiengine_request(clients):
    mec, tc = clients
    mec.execute("cancelled_x = 0")
    running = mec.execute("import time; time.sleep(1.5)", block=False)
    second = mec.execute("pass", block=False)       # the second in flight per engine
    third = mec.execute("cancelled_x = 1", block=False)
    scatter = mec.scatter("cancelled_y", range(4), block=False)
    assert third.cancel() and third.cancelled() and scatter.cancel()
    assert not running.cancel()
    with pytest.raises(cf.CancelledError):
        third.result()
    running.result(10)
    second.result(10)
    assert mec.pull("cancelled_x") == [0, 0]        # it never ran
    assert mec.execute("print('cancelled_y' in globals())")[0]["stdout"] == "False\n"
    assert not third.running() and not running.cancel()


def test_a_dropped_client_stops_its_callback_thread(cluster):
    import gc
    os.environ["PLEXA_DIR"] = cluster.root
    tc = client.TaskClient(profile=cluster.profile)
    assert tc.apply_async(pow, 2, 2).result(10) == 4
    thread = tc._callbacks._thread
    del tc
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
