"""tc.executor() and mec.executor(): concurrent.futures executors over a
real 2-engine cluster, held to the contract the standard library's own
tests check for ThreadPoolExecutor (Lib/test/test_concurrent_futures.py:
ExecutorTest, ExecutorShutdownTest, WaitTests, AsCompletedTests), ported
test by test and run against both executors. Where the stdlib test relies
on threads of this process (initializers, max_workers, interpreter exit)
there is no counterpart: the workers are engines.
"""
import concurrent.futures as futures
import gc
import itertools
import os
import threading
import time
import weakref
from concurrent.futures import Future
from concurrent.futures._base import (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING,
                                      RUNNING)

import pytest

from plexa.executor import MultiEngineExecutor, TaskExecutor


def create_future(state=PENDING, exception=None, result=None):
    f = Future()
    f._state = state
    f._exception = exception
    f._result = result
    return f


PENDING_FUTURE = create_future(state=PENDING)
RUNNING_FUTURE = create_future(state=RUNNING)
CANCELLED_FUTURE = create_future(state=CANCELLED)
CANCELLED_AND_NOTIFIED_FUTURE = create_future(state=CANCELLED_AND_NOTIFIED)
EXCEPTION_FUTURE = create_future(state=FINISHED, exception=OSError())
SUCCESSFUL_FUTURE = create_future(state=FINISHED, result=42)


# Functions of this file travel by value (the engines cannot import it).
def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


def sleep_and_raise(t):
    import time
    time.sleep(t)
    raise Exception('this is an exception')


class MyObject(object):
    def my_method(self):
        pass


def make_dummy_object(_):
    return MyObject()


@pytest.fixture(params=["task", "mec"])
def executor(request, clients):
    mec, tc = clients
    ex = tc.executor() if request.param == "task" else mec.executor()
    yield ex
    ex.shutdown(wait=True)
    # every engine idle again before the next test
    mec.execute("pass", block=True)


def test_kinds(clients):
    mec, tc = clients
    assert isinstance(tc.executor(), TaskExecutor)
    ex = mec.executor(targets=[1])
    assert isinstance(ex, MultiEngineExecutor) and isinstance(ex, futures.Executor)
    assert ex.submit(mul, 2, 3).result(timeout=10) == 6
    assert "engines [1]" in repr(ex)
    # calls on one engine share its namespace, as DirectView.apply does
    mec.push({"shared": 5}, targets=1)
    assert ex.submit(eval, "shared * 2").result(timeout=10) == 10
    with pytest.raises(Exception):
        mec.executor(targets=[7])


# ---- ExecutorTest ---------------------------------------------------------------------

def test_submit(executor):
    future = executor.submit(pow, 2, 8)
    assert 256 == future.result()


def test_submit_keyword(executor):
    future = executor.submit(mul, 2, y=8)
    assert 16 == future.result()
    future = executor.submit(capture, 1, self=2, fn=3)
    assert future.result() == ((1,), {'self': 2, 'fn': 3})
    with pytest.raises(TypeError):
        executor.submit(fn=capture, arg=1)
    with pytest.raises(TypeError):
        executor.submit(arg=1)


def test_map(executor):
    assert list(executor.map(pow, range(10), range(10))) == list(map(pow, range(10), range(10)))
    assert list(executor.map(pow, range(10), range(10), chunksize=3)) == \
        list(map(pow, range(10), range(10)))
    with pytest.raises(ValueError):
        executor.map(pow, range(3), range(3), chunksize=0)


def test_map_exception(executor):
    i = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert i.__next__() == (0, 1)
    assert i.__next__() == (0, 1)
    with pytest.raises(ZeroDivisionError):
        i.__next__()


def test_map_timeout(executor):
    results = []
    with pytest.raises(futures.TimeoutError):
        for i in executor.map(time.sleep, [0, 0, 6], timeout=5):
            results.append(i)
    assert [None, None] == results


def test_shutdown_race_issue12456(executor):
    executor.map(str, [2] * 3)
    executor.shutdown()


def test_no_stale_references(executor):
    my_object = MyObject()
    my_object_collected = threading.Event()
    my_object_callback = weakref.ref(my_object, lambda obj: my_object_collected.set())
    executor.submit(my_object.my_method)        # the future is discarded
    del my_object
    deadline = time.monotonic() + 10
    while not my_object_collected.is_set() and time.monotonic() < deadline:
        gc.collect()
        my_object_collected.wait(0.05)
    assert my_object_collected.is_set(), "stale reference not collected within 10 s"
    assert my_object_callback() is None


def test_free_reference(executor):
    for obj in executor.map(make_dummy_object, range(10)):
        wr = weakref.ref(obj)
        del obj
        gc.collect()
        assert wr() is None


def record_finished(n, d):
    import os
    open(os.path.join(d, str(n)), "w").close()


def test_map_submits_without_iteration(executor, tmp_path):
    executor.map(record_finished, range(10), [str(tmp_path)] * 10)
    executor.shutdown(wait=True)
    assert sorted(int(n) for n in os.listdir(tmp_path)) == list(range(10))


# ---- ExecutorShutdownTest ---------------------------------------------------------------

def test_run_after_shutdown(executor):
    executor.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(pow, 2, 5)


def test_hang_issue12364(executor):
    fs = [executor.submit(time.sleep, 0.01) for _ in range(50)]
    executor.shutdown()
    for f in fs:
        f.result()


def test_cancel_futures(executor):
    fs = [executor.submit(time.sleep, .1) for _ in range(50)]
    executor.shutdown(cancel_futures=True)
    cancelled = [fut for fut in fs if fut.cancelled()]
    assert len(cancelled) > 20
    others = [fut for fut in fs if not fut.cancelled()]
    for fut in others:
        assert fut.done(), fut._state
        assert fut.exception() is None
    assert len(others) > 0


def test_cancel_futures_wait_false(executor):
    fs = [executor.submit(time.sleep, .1) for _ in range(20)]
    t0 = time.monotonic()
    executor.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - t0 < 5
    futures.wait(fs, timeout=30)
    assert all(f.done() for f in fs)
    assert any(f.cancelled() for f in fs)


def test_context_manager_shutdown(clients):
    mec, tc = clients
    for make in (tc.executor, mec.executor):
        with make() as e:
            assert list(e.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
        with pytest.raises(RuntimeError):
            e.submit(abs, 1)


def test_shutdown_no_wait(executor):
    fs = [executor.submit(time.sleep, 0.5) for _ in range(3)]
    t0 = time.monotonic()
    executor.shutdown(wait=False)
    assert time.monotonic() - t0 < 0.4
    for f in fs:
        assert f.result(timeout=30) is None


# ---- WaitTests ---------------------------------------------------------------------------

def test_20369(executor):
    future = executor.submit(time.sleep, 1.5)
    done, not_done = futures.wait([future, future], return_when=futures.ALL_COMPLETED)
    assert {future} == done
    assert set() == not_done


def test_first_completed(executor):
    future1 = executor.submit(mul, 21, 2)
    future2 = executor.submit(time.sleep, 1.5)
    done, not_done = futures.wait([CANCELLED_FUTURE, future1, future2],
                                  return_when=futures.FIRST_COMPLETED)
    assert {future1} == done
    assert {CANCELLED_FUTURE, future2} == not_done


def test_first_completed_some_already_completed(executor):
    future1 = executor.submit(time.sleep, 1.5)
    finished, pending = futures.wait(
        [CANCELLED_AND_NOTIFIED_FUTURE, SUCCESSFUL_FUTURE, future1],
        return_when=futures.FIRST_COMPLETED)
    assert {CANCELLED_AND_NOTIFIED_FUTURE, SUCCESSFUL_FUTURE} == finished
    assert {future1} == pending


def test_first_exception(executor, clients):
    future1 = executor.submit(mul, 2, 21)
    future2 = executor.submit(sleep_and_raise, 1.5)
    future3 = executor.submit(time.sleep, 3)
    finished, pending = futures.wait([future1, future2, future3],
                                     return_when=futures.FIRST_EXCEPTION)
    assert {future1, future2} == finished
    assert {future3} == pending


def test_first_exception_some_already_complete(executor):
    future1 = executor.submit(divmod, 21, 0)
    future2 = executor.submit(time.sleep, 1.5)
    finished, pending = futures.wait(
        [SUCCESSFUL_FUTURE, CANCELLED_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, future1, future2],
        return_when=futures.FIRST_EXCEPTION)
    assert {SUCCESSFUL_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, future1} == finished
    assert {CANCELLED_FUTURE, future2} == pending


def test_first_exception_one_already_failed(executor):
    future1 = executor.submit(time.sleep, 2)
    finished, pending = futures.wait([EXCEPTION_FUTURE, future1],
                                     return_when=futures.FIRST_EXCEPTION)
    assert {EXCEPTION_FUTURE} == finished
    assert {future1} == pending


def test_all_completed(executor):
    future1 = executor.submit(divmod, 2, 0)
    future2 = executor.submit(mul, 2, 21)
    finished, pending = futures.wait(
        [SUCCESSFUL_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, future1, future2],
        return_when=futures.ALL_COMPLETED)
    assert {SUCCESSFUL_FUTURE, CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, future1,
            future2} == finished
    assert set() == pending
    assert isinstance(future1.exception(), ZeroDivisionError)


def test_wait_timeout(executor):
    future1 = executor.submit(mul, 6, 7)
    future2 = executor.submit(time.sleep, 6)
    finished, pending = futures.wait(
        [CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE, future1, future2],
        timeout=5, return_when=futures.ALL_COMPLETED)
    assert {CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE,
            future1} == finished
    assert {future2} == pending


def test_pending_calls_race(executor):
    fs = {executor.submit(mul, i, 2) for i in range(100)}
    done, not_done = futures.wait(fs, return_when=futures.ALL_COMPLETED)
    assert not not_done and sorted(f.result() for f in done) == [2 * i for i in range(100)]


# ---- AsCompletedTests --------------------------------------------------------------------

def test_as_completed_no_timeout(executor):
    future1 = executor.submit(mul, 2, 21)
    future2 = executor.submit(mul, 7, 6)
    completed = set(futures.as_completed(
        [CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE, future1, future2]))
    assert {CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE, future1,
            future2} == completed


def test_as_completed_zero_timeout(executor):
    future1 = executor.submit(time.sleep, 2)
    completed_futures = set()
    with pytest.raises(futures.TimeoutError):
        for future in futures.as_completed(
                [CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE, future1],
                timeout=0):
            completed_futures.add(future)
    assert {CANCELLED_AND_NOTIFIED_FUTURE, EXCEPTION_FUTURE, SUCCESSFUL_FUTURE} == \
        completed_futures


def test_as_completed_duplicate_futures(executor):
    future1 = executor.submit(time.sleep, 2)
    completed = [f for f in futures.as_completed(itertools.repeat(future1, 3))]
    assert len(completed) == 1


def test_as_completed_mixed(executor):
    """plexa futures of both kinds and plain ones, in completion order."""
    slow = executor.submit(time.sleep, 1.0)
    fast = executor.submit(mul, 3, 3)
    order = list(futures.as_completed([slow, SUCCESSFUL_FUTURE, fast], timeout=30))
    assert order[0] is SUCCESSFUL_FUTURE and order[-1] is slow


def test_as_completed_free_reference_yielded_future(executor):
    futures_list = [executor.submit(mul, i, 1) for i in range(8)]
    futures_list.append(create_future(state=CANCELLED_AND_NOTIFIED))
    futures_list.append(create_future(state=FINISHED, result=42))
    for future in futures.as_completed(futures_list, timeout=30):
        futures_list.remove(future)
        wr = weakref.ref(future)
        del future
        gc.collect()
        assert wr() is None


def test_correct_timeout_exception_msg(executor):
    future1 = executor.submit(time.sleep, 2)
    with pytest.raises(futures.TimeoutError) as cm:
        list(futures.as_completed([CANCELLED_AND_NOTIFIED_FUTURE, future1, RUNNING_FUTURE,
                                   SUCCESSFUL_FUTURE], timeout=0))
    assert str(cm.value) == '2 (of 4) futures unfinished'
