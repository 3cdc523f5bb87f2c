"""concurrent.futures executors over a plexa cluster.

    with tc.executor() as ex:                  # load balanced (the task queue)
        fs = [ex.submit(f, x) for x in range(100)]
        print(sum(ex.map(g, range(1000), chunksize=50)))

    ex = mec.executor(targets=[0, 1])          # the multi-engine interface

Both behave as the standard library's ThreadPoolExecutor does: ``submit``
returns a future (a :class:`plexa.client.PendingResult`, itself a
``concurrent.futures.Future``), ``map(fn, *iterables, timeout=None,
chunksize=1)`` submits everything at once and yields results in order,
raising ``TimeoutError`` when ``timeout`` seconds (from the call) pass, and
``shutdown(wait=True, cancel_futures=False)`` refuses new work, cancels
what is still queued when asked to, and waits for the rest. The futures of
a remote exception raise it with its own type (a ``ZeroDivisionError`` on an
engine is a ``ZeroDivisionError`` here, see :func:`plexa.error.remote_error`).

A task executor's calls go where the controller's scheduler sends them;
a multi-engine executor sends each call to the target engine with the
fewest of its calls outstanding, so calls on one engine share its
namespace, as ``apply`` on ipyparallel's DirectView does.
"""

import concurrent.futures as cf
import functools
import itertools
import threading
import time

from plexa._tb import hide_frames

__all__ = ['TaskExecutor', 'MultiEngineExecutor']


def _run_chunk(fn, chunk):
    """One task of a chunked map: fn over a chunk of argument tuples. A
    module function of plexa, which every engine imports, so it travels by
    reference."""
    return [fn(*args) for args in chunk]


def _in_order(fs, end):
    """The standard library's map iterator over submitted futures ``fs``:
    results in order, TimeoutError once ``end`` (time.monotonic(), or None)
    passes, what is left cancelled when the iterator is closed."""
    try:
        fs.reverse()
        while fs:
            # No local keeps the value: a caller that drops it frees it.
            yield _taken(fs.pop(), end)
    finally:
        for fut in fs:
            fut.cancel()


def _taken(fut, end):
    """``fut``'s result, once the callback thread that resolved it has let
    go of it (it may still be returning from the done callbacks)."""
    try:
        try:
            value = fut.result(None if end is None else end - time.monotonic())
            fut._released(end)
            return value
        finally:
            fut.cancel()
    finally:
        del fut     # a raised error's traceback would keep it (and its value)


@hide_frames
class _Executor(cf.Executor):
    """What both executors share: the shutdown state and the futures not done
    yet, which ``shutdown`` waits for or cancels."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending = set()
        self._shutdown = False

    def _submit(self, fn, args, kwargs):
        raise NotImplementedError

    def submit(self, fn, /, *args, **kwargs):
        if not callable(fn):
            raise TypeError('submit: %r is not callable' % (fn,))
        with self._lock:
            if self._shutdown:
                raise RuntimeError('cannot schedule new futures after shutdown')
            future = self._submit(fn, args, kwargs)
            self._pending.add(future)
        # Outside the lock: a future already done runs the callback here.
        future.add_done_callback(self._forget)
        return future

    submit.__doc__ = cf.Executor.submit.__doc__

    def _forget(self, future):
        with self._lock:
            self._pending.discard(future)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """``map(fn, *iterables)`` on the cluster, results in order. Every
        call is submitted before the first result is awaited; ``timeout``
        counts from this call. ``chunksize`` > 1 sends that many calls per
        task or request (fewer round trips for short calls)."""
        if chunksize is None or chunksize < 1:
            raise ValueError('chunksize must be >= 1.')
        end = None if timeout is None else time.monotonic() + timeout
        if chunksize == 1:
            return _in_order([self.submit(fn, *args) for args in zip(*iterables)], end)
        args = zip(*iterables)
        chunks = iter(lambda: list(itertools.islice(args, chunksize)), [])
        fs = [self.submit(_run_chunk, fn, chunk) for chunk in chunks]
        return itertools.chain.from_iterable(_in_order(fs, end))

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No new work from now on. ``cancel_futures``: cancel every future
        whose work no engine has started (the controller drops it).
        ``wait``: return once every other future is done."""
        with self._lock:
            self._shutdown = True
            pending = list(self._pending)
        if cancel_futures:
            for f in pending:
                f.cancel()
        if wait:
            cf.wait(pending)

    def __repr__(self):
        with self._lock:
            n = len(self._pending)
        return '<%s %s, %d pending%s>' % (type(self).__name__, self._where(), n,
                                          ', shut down' if self._shutdown else '')


@hide_frames
class TaskExecutor(_Executor):
    """An executor over the task queue (``tc.executor()``): each call is a
    task (a MapTask) that the controller's scheduler balances over the
    engines; its future is ``tc.future(task_id)``'s."""

    def __init__(self, task_client):
        super().__init__()
        self.client = task_client

    def _submit(self, fn, args, kwargs):
        return self.client.apply_async(fn, *args, **kwargs)

    def _where(self):
        return 'over %r' % (self.client,)


@hide_frames
class MultiEngineExecutor(_Executor):
    """An executor over the multi-engine interface (``mec.executor(targets=)``):
    each call runs on one target engine, the one with the fewest of this
    executor's calls outstanding (ties: the lowest id), in that engine's
    namespace."""

    def __init__(self, mec, targets=None):
        super().__init__()
        self.client = mec
        self.targets = mec._engine_list(mec.targets if targets is None else targets)
        if not self.targets:
            raise ValueError('executor: no target engines')
        self._load = {t: 0 for t in self.targets}
        # Its own lock: _unload also runs inside submit (under self._lock)
        # when a future is done before its callback is added.
        self._load_lock = threading.Lock()

    def _submit(self, fn, args, kwargs):
        with self._load_lock:
            engine = min(self.targets, key=lambda t: (self._load[t], t))
            self._load[engine] += 1
        try:
            future = self.client._apply_one(engine, fn, args, kwargs)
        except BaseException:
            self._unload(engine, None)
            raise
        future.add_done_callback(functools.partial(self._unload, engine))
        return future

    def _unload(self, engine, _future):
        with self._load_lock:
            self._load[engine] -= 1

    def _where(self):
        return 'on engines %s' % (self.targets,)
