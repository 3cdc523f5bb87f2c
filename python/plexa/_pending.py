"""Results that are not ready yet (part of :mod:`plexa.client`, which
re-exports PendingResult).

  PendingResult   a call made with block=False: a concurrent.futures.Future
                  with 0.10's get_result/add_callback, awaitable, progress
  wait_requests   wait for _native requests up to a deadline (timeouts)
  blocking_result a blocking call's value (no future: the fast path)
  _Done           a request answered before it was sent (no round trip)
"""

import asyncio
import concurrent.futures as cf
import threading
import time
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING

from plexa._output import Outputs
from plexa._tb import hide_frames
from plexa.error import InvalidDeferredID, KernelError

# A wait with no timeout that has lasted this long calls its stall check
# once (a task client warns when no engine is registered).
STALL_S = 5.0


def wait_requests(requests, deadline=None, stall=None, started=None):
    """Wait (GIL released) until every request is done. ``deadline``: a
    time.monotonic() value, None for none. ``stall``: a list holding a
    callable, called (and removed) once a wait with no deadline has lasted
    STALL_S since ``started``. True when all are done, False at the
    deadline. Ctrl-C raises KeyboardInterrupt (the requests go on)."""
    __tracebackhide__ = True  # noqa: F841  (IPython: a wait loop of plexa's)
    started = time.monotonic() if started is None else started
    for r in requests:
        while not r.done():
            if deadline is None:
                if stall:
                    left = STALL_S - (time.monotonic() - started)
                    if left > 0 and r.wait(left):
                        break
                    if not r.done():
                        stall.pop()()
                    continue
                r.wait()
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                r.wait(left)
    return True


def blocking_result(request, convert):
    """What a blocking call returns: the converted reply of request (or a
    list of them), with no future around it (nobody else waits for it).
    The call's error is raised; a failure cancels the other requests."""
    __tracebackhide__ = True  # noqa: F841  (IPython: a wait loop of plexa's)
    multi = isinstance(request, (list, tuple))
    requests = list(request) if multi else [request]
    try:
        raw = [r.result() for r in requests]
        return convert(raw if multi else raw[0])
    except KeyboardInterrupt:
        raise           # still running: the engines go on, as before
    except BaseException as e:
        for r in requests:
            try:
                r.cancel()
            except Exception:
                pass
        raise _clean(e) from None


def _deadline(timeout):
    """The monotonic time timeout seconds from now (None: none); a negative
    timeout is 0, as for concurrent.futures (an executor's map passes
    what is left of its own, which may have run out)."""
    if timeout is None:
        return None
    return time.monotonic() + max(0.0, timeout)


# ---- PendingResult --------------------------------------------------------------

@hide_frames
class PendingResult(Outputs, cf.Future):
    """A result that is not ready yet (``block=False``): a
    :class:`concurrent.futures.Future` with IPython 0.10's interface.

    As a Future: ``result(timeout=None)``, ``exception(timeout=None)``,
    ``done()``, ``cancelled()``, ``running()`` (always False: plexa does not
    know whether an engine has started the work until it is done),
    ``cancel()`` (drops the work if it still waits in the controller's
    queue, then True; False once an engine has it, or when done),
    ``add_done_callback(fn)``. ``await pr`` works in asyncio, and
    ``concurrent.futures.wait`` / ``as_completed`` (or ``plexa.wait`` /
    ``plexa.as_completed``) take it. A timeout that passes raises
    TimeoutError; the work goes on.

    The future resolves as soon as the reply arrives, on the client's
    ``plexa-callbacks`` thread (see plexa._callbacks), which then runs the
    callbacks: nobody needs to call ``get_result`` for them to fire.

    As in 0.10: ``get_result(default=None, block=True, timeout=None)``
    returns the result (``default`` when not ready and ``block`` is False),
    raising the call's error instead if it failed; ``r`` is
    ``get_result(block=True)``. ``add_callback(f, *args, **kwargs)`` chains
    ``f(result, *args, **kwargs)`` onto the result, whose value the future
    then has; the chain runs when the reply arrives (or at once, if it
    already has). There is no errback chain: an error skips the chain, and
    a callback that raises makes its exception the outcome. Attributes:
    ``client``, ``result_id``, ``called`` (done), ``raised`` (done with an
    error), ``callbacks``. Sorting orders by ``result_id``.

    Progress (plexa, as ipyparallel's AsyncResult): ``progress`` (units
    done: elements of a task map, else requests), ``total``, ``ready()``,
    ``wait(timeout=None)``, ``elapsed`` (seconds since submission, frozen
    once done), ``wall_time`` (submission to completion, None before),
    ``serial_time`` (for task maps, once the result is fetched: the sum of
    the tasks' run times on the engines; None before and for other calls),
    and ``wait_interactive(interval=0.1, timeout=-1)``, which shows a
    progress bar while it waits (see plexa.progress).

    Output (plexa, as ipyparallel's AsyncResult): ``stdout`` and ``stderr``
    (one str per engine or task), ``outputs`` (the live pieces so far),
    ``iter_outputs(timeout=None)`` and ``stream_outputs()``, which show
    what engines print while a multi-engine call runs (plexa._output).

    The result is held by this client, not by the controller: it is lost
    with the client, and ``mec.flush()`` forgets it.
    """

    def __init__(self, client, request, convert, weights=None, unit='requests',
                 canceller=None, stall=None):
        super().__init__()
        self.client = client
        if isinstance(request, (list, tuple)):
            self._requests, self._multi = list(request), True
        else:
            self._requests, self._multi = [request], False
        self.result_id = self._requests[0].id if self._requests else 0
        self.callbacks = []
        self._convert = convert
        self._all = list(self._requests)
        self._weights = list(weights) if weights else [1] * len(self._all)
        self._unit = unit
        self._t0 = time.monotonic()
        self._t_done = None
        self.serial_time = None
        self._canceller = canceller     # () -> bool: drop the queued work
        self._stall = stall             # called once by a long wait with no timeout
        self._watcher = None            # the callback thread, once watched
        self._token = None
        # Who converts the reply (once): None, 'resolve' or 'cancel', and
        # whether someone else wanted to meanwhile (so it is not lost).
        self._lock = threading.Lock()
        self._claim = None
        self._redo = False
        self._chained = False           # (_lock) the 0.10 chain ran at resolution
        self._chain_lock = threading.RLock()    # add_callback once resolved

    # -- resolution: exactly once, by whoever gets there first ------------------

    def _requests_done(self):
        return all(r.done() for r in self._requests)

    def _resolve(self):
        """Convert the (complete) reply and resolve, unless another thread
        does it or the future is done."""
        with self._lock:
            if self._claim is not None or self._state != PENDING:
                self._redo = self._claim is not None
                return
            self._claim = 'resolve'
        try:
            raw = [r.result(0) for r in self._requests]
            self._note_texts(raw)
            value = self._convert(raw if self._multi else raw[0])
        except (KeyboardInterrupt, SystemExit):
            self._unclaim()     # still pending: asking again converts again
            raise
        except BaseException as e:
            self._finish(None, e)
            return
        self._finish(value, None)

    def _finish(self, value, exc):
        if self._t_done is None:
            self._t_done = time.monotonic()
        self._unwatch()
        # The 0.10 chain, callbacks added meanwhile included; no lock is held
        # while one runs.
        i = 0
        while True:
            with self._lock:
                if exc is not None or i == len(self.callbacks):
                    self._chained = True
                    break
                f, args, kwargs = self.callbacks[i]
            i += 1
            try:
                value = f(value, *args, **kwargs)
            except BaseException as e:
                exc = e
        self._requests = []     # the raw replies are not needed any more
        if exc is None:
            self.set_result(value)
        else:
            self.set_exception(exc)

    def _unclaim(self):
        with self._lock:
            self._claim = None
            redo, self._redo = self._redo, False
        with self._condition:
            self._condition.notify_all()
        if redo and self._watcher is not None:
            self._watcher.post(self)

    def _settle(self, timeout):
        """Wait until done (raising TimeoutError when timeout passes first),
        converting the reply here if nobody else does."""
        __tracebackhide__ = True  # noqa: F841  (IPython: a wait loop of plexa's)
        if self._state != PENDING:
            return
        deadline = _deadline(timeout)
        stall = [self._stall] if self._stall is not None and deadline is None else None
        if not wait_requests(self._requests, deadline, stall, self._t0):
            raise TimeoutError('no result within %g s' % timeout)
        while True:
            self._resolve()
            with self._condition:
                if self._state != PENDING:
                    return
                if self._claim is None:
                    continue
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError('no result within %g s' % timeout)
                self._condition.wait(left)

    # -- concurrent.futures.Future ------------------------------------------------

    def result(self, timeout=None):
        """The result, waiting up to ``timeout`` seconds (None: no limit);
        raises the call's error, CancelledError, or TimeoutError."""
        self._settle(timeout)
        if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
            raise cf.CancelledError()
        if self._exception is not None:
            raise _clean(self._exception)
        return self._result

    def exception(self, timeout=None):
        """The call's error (None if it succeeded), waiting like result()."""
        self._settle(timeout)
        return super().exception(timeout=0)

    def cancel(self):
        """Drop the work if it still waits in the controller's queue (task
        futures: the tasks, unless one was sent to an engine; multi-engine
        calls: the request on every target, unless one engine has it).
        True when cancelled (also when it already was), else False."""
        with self._lock:
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                return True
            if self._state != PENDING or self._claim is not None or self._canceller is None:
                return False
            self._claim = 'cancel'
        ok = False
        try:
            ok = bool(self._canceller())
        except Exception:
            ok = False
        if not ok:
            self._unclaim()
            return False
        for r in self._requests:
            r.cancel()      # the controller answered them for nobody
        if self._t_done is None:
            self._t_done = time.monotonic()
        self._unwatch()
        super().cancel()
        self.set_running_or_notify_cancel()     # concurrent.futures.wait sees it
        return True

    def wait(self, timeout=None):
        """Wait up to ``timeout`` seconds; True when done (ipyparallel's
        AsyncResult.wait, returning whether it is ready)."""
        try:
            self._settle(timeout)
        except TimeoutError:
            pass
        return self.done()

    def __await__(self):
        """``await pr`` in asyncio: the loop is woken from the callback
        thread (call_soon_threadsafe; no thread per await). Cancelling the
        awaiting task cancels this future, off the loop (cancel() asks the
        controller, a round trip the loop should not wait for)."""
        if self._watcher is None and self._state == PENDING:
            self._watch_now()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def deliver(_):
            try:
                loop.call_soon_threadsafe(_copy_outcome, self, waiter)
            except RuntimeError:
                pass    # the loop is closed: nobody awaits any more

        def on_waiter_done(w):
            if w.cancelled() and not self.done():
                loop.run_in_executor(None, self.cancel)
        waiter.add_done_callback(on_waiter_done)
        self.add_done_callback(deliver)
        return waiter.__await__()

    def _unwatch(self):
        """Resolved or cancelled here: the callback thread need not hold
        this future (nor, through it, its value) until it gets to it."""
        if self._watcher is not None:
            self._watcher.forget(self._token)

    def _released(self, deadline=None):
        """Once done: wait until the callback thread that resolved this
        future has let go of it (returned from its callbacks), so that who
        drops the last reference of their own frees the value at once (what
        the executors' ``map`` promises, as the standard library's does).
        False if ``deadline`` (time.monotonic()) passes first."""
        watcher = self._watcher
        if watcher is None:
            return True
        return watcher.release_wait(self._token, deadline)

    def _watch_now(self):
        """A future nobody resolves yet (a blocking call's) gets the client's
        callback thread."""
        watch = getattr(self.client, '_watch', None)
        if watch is not None:
            watch(self)

    # -- 0.10 ---------------------------------------------------------------------

    @property
    def called(self):
        """True once the result (or the error) is here."""
        return self._state != PENDING

    @property
    def raised(self):
        """True once done with an error (or cancelled)."""
        return self._state in (CANCELLED, CANCELLED_AND_NOTIFIED) or \
            (self._state == FINISHED and self._exception is not None)

    def get_result(self, default=None, block=True, timeout=None):
        """The result; ``default`` if not ready and ``block`` is False.
        ``timeout`` (seconds, with ``block``): TimeoutError when it passes."""
        if not block:
            if self._state == PENDING:
                if not self._requests_done():
                    return default
                self._resolve()
            timeout = None
        return self.result(timeout)

    def add_callback(self, f, *args, **kwargs):
        """Chain ``f(result, *args, **kwargs)`` onto the result: now if the
        result is here, else when it arrives."""
        assert callable(f)
        with self._lock:
            self.callbacks.append((f, args, kwargs))
            if not self._chained:
                return
        # Resolved already: apply it to the result (unless it is an error),
        # one such call at a time.
        self._settle(None)
        with self._chain_lock:
            if self._state != FINISHED or self._exception is not None:
                return
            try:
                value = f(self._result, *args, **kwargs)
            except BaseException as e:
                with self._condition:
                    self._exception, self._result = e, None
                return
            with self._condition:
                self._result = value

    @property
    def r(self):
        """Shortcut for ``get_result(block=True)``."""
        return self.get_result(block=True)

    def _flush(self):
        """mec.flush(): forget the result (InvalidDeferredID from now on)."""
        with self._lock:
            if self._claim is not None or self._state != PENDING:
                return
            self._claim = 'resolve'
        for r in self._requests:
            try:
                r.cancel()
            except Exception:
                pass
        with self._lock:
            self._chained = True
        self._requests = []
        self.set_exception(InvalidDeferredID('invalid deferred_id: %r (flushed)'
                                             % self.result_id))

    def __lt__(self, other):
        return self.result_id < other.result_id

    def __gt__(self, other):
        return self.result_id > other.result_id

    def __repr__(self):
        if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
            state = 'cancelled'
        elif self._state == FINISHED:
            state = 'error' if self._exception is not None else 'done'
        else:
            state = 'pending'
        return '<PendingResult %d (%s)>' % (self.result_id, state)

    # -- progress (plexa) ------------------------------------------------------

    @property
    def total(self):
        """Units of work in all: task-map elements, else requests."""
        return sum(self._weights)

    @property
    def progress(self):
        """Units of work done so far."""
        if self._state != PENDING:
            return self.total
        return sum(w for r, w in zip(self._all, self._weights) if r.done())

    def ready(self):
        """True once the result (or the error) has arrived."""
        done = self._state != PENDING or self._requests_done()
        if done and self._t_done is None:
            self._t_done = time.monotonic()
        return done

    @property
    def elapsed(self):
        """Seconds since submission (frozen at completion)."""
        end = self._t_done if self._t_done is not None else time.monotonic()
        return end - self._t0

    @property
    def wall_time(self):
        """Seconds from submission to completion; None until then."""
        self.ready()
        return None if self._t_done is None else self._t_done - self._t0

    def wait_interactive(self, interval=0.1, timeout=-1):
        """Wait for the result showing a progress bar (units done / total,
        rate, ETA). Returns True when done, False when timeout (seconds;
        -1: none) passed first. Ctrl-C stops waiting, not the work."""
        return self._wait_showing(interval, timeout, delay=0.0, force=True)

    def _wait_showing(self, interval, timeout, delay, force):
        __tracebackhide__ = True  # noqa: F841  (IPython: a wait loop of plexa's)
        from plexa import progress as P
        bar = None
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        stall = [self._stall] if self._stall is not None and deadline is None else None
        try:
            while not self.ready():
                if bar is None and (force or P.auto_enabled()) and \
                        time.monotonic() - self._t0 >= delay:
                    bar = P.ProgressBar(self.total, self._unit, start=self._t0)
                if bar is not None:
                    bar.update(self.progress)
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                if stall and time.monotonic() - self._t0 >= STALL_S:
                    stall.pop()()
                wait = interval if deadline is None else \
                    max(0.0, min(interval, deadline - time.monotonic()))
                self._wait_any(wait)
            return True
        finally:
            if bar is not None:
                bar.update(self.progress)
                bar.close()

    def _wait_any(self, seconds):
        """Sleep up to seconds, waking early when a pending request is done."""
        for r in self._all:
            if not r.done():
                r.wait(seconds)
                return


def _copy_outcome(pr, waiter):
    """On the loop: give the asyncio future ``waiter`` the outcome of ``pr``."""
    if waiter.done():
        return
    if pr.cancelled():
        waiter.cancel()
    elif pr._exception is not None:
        waiter.set_exception(_clean(pr._exception))
    else:
        waiter.set_result(pr._result)


def _clean(e):
    """A plexa error loses the client's internal frames (what matters is
    where the user called, and the remote tracebacks it carries)."""
    if isinstance(e, KernelError):
        return e.with_traceback(None)
    return e


class _Done(object):
    """A request already answered (with ``value``), for verbs that need no
    round trip (a scatter to no engines)."""
    id = 0

    def __init__(self, value):
        self.value = value

    def done(self):
        return True

    def wait(self, timeout=None):
        return True

    def result(self, timeout=None):
        return self.value

    def cancel(self):
        pass
