"""Results that are not ready yet (part of :mod:`plexa.client`, which
re-exports PendingResult).

  PendingResult   a call made with block=False: result, callbacks, progress
  _Done           a request answered before it was sent (no round trip)
"""

import time

from plexa.error import InvalidDeferredID, KernelError


# ---- PendingResult --------------------------------------------------------------

class PendingResult(object):
    """A result that is not ready yet (``block=False``), as in IPython 0.10.

    ``get_result(default=None, block=True)`` returns the result (or
    ``default`` when it is not ready and ``block`` is False), raising the
    call's error instead if it failed; the outcome is cached, so later calls
    return or re-raise the same thing. ``add_callback(f, *args, **kwargs)``
    chains ``f(result, *args, **kwargs)`` onto the result. ``r`` is
    ``get_result(block=True)``. Attributes: ``client``, ``result_id``,
    ``called``, ``raised``, ``callbacks``. Sorting orders by ``result_id``.

    Progress (plexa, as ipyparallel's AsyncResult): ``progress`` (units
    done: elements of a task map, else requests), ``total``, ``ready()``,
    ``elapsed`` (seconds since submission, frozen once done), ``wall_time``
    (submission to completion, None before), ``serial_time`` (for task
    maps, once the result is fetched: the sum of the tasks' run times on
    the engines; None before and for other calls), and
    ``wait_interactive(interval=0.1, timeout=-1)``, which shows a progress
    bar while it waits (see plexa.progress).

    The result is held by this client, not by the controller: it is lost
    with the client, and dropping the PendingResult (or ``mec.flush()``)
    forgets it.
    """

    def __init__(self, client, request, convert, weights=None, unit='requests'):
        self.client = client
        if isinstance(request, (list, tuple)):
            self._requests, self._multi = list(request), True
        else:
            self._requests, self._multi = [request], False
        self.result_id = self._requests[0].id if self._requests else 0
        self.called = False
        self.raised = False
        self.callbacks = []
        self._convert = convert
        self._value = _NOTHING      # the converted value, before callbacks
        self._all = list(self._requests)
        self._weights = list(weights) if weights else [1] * len(self._all)
        self._unit = unit
        self._t0 = time.monotonic()
        self._t_done = None
        self.serial_time = None

    def _done(self):
        done = all(r.done() for r in self._requests)
        if done and self._t_done is None:
            self._t_done = time.monotonic()
        return done

    # -- progress (plexa) ------------------------------------------------------

    @property
    def total(self):
        """Units of work in all: task-map elements, else requests."""
        return sum(self._weights)

    @property
    def progress(self):
        """Units of work done so far."""
        if self.called or self._value is not _NOTHING:
            return self.total
        return sum(w for r, w in zip(self._all, self._weights) if r.done())

    def ready(self):
        """True once the result (or the error) has arrived."""
        return self.called or self._value is not _NOTHING or self._done()

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
        from plexa import progress as P
        bar = None
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        try:
            while not self.ready():
                if bar is None and (force or P.auto_enabled()) and \
                        time.monotonic() - self._t0 >= delay:
                    bar = P.ProgressBar(self.total, self._unit, start=self._t0)
                if bar is not None:
                    bar.update(self.progress)
                if deadline is not None and time.monotonic() >= deadline:
                    return False
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

    def _fail(self, e):
        self.result, self.called, self.raised = e, True, True
        for r in self._requests:
            try:
                r.cancel()
            except Exception:
                pass
        self._requests = []

    def get_result(self, default=None, block=True):
        """The result (``default`` if not ready and ``block`` is False)."""
        if self.called:
            if self.raised:
                raise _clean(self.result)
            return self.result
        if self._value is _NOTHING:
            if not block and not self._done():
                return default
            try:
                raw = [r.result() for r in self._requests]
                self._done()
                value = self._convert(raw if self._multi else raw[0])
            except KeyboardInterrupt:
                raise           # still pending: the caller may ask again
            except BaseException as e:
                self._fail(e)
                raise _clean(e) from None
            self._value, self._requests = value, []
        # As in 0.10 there is no errback chain: a callback's exception
        # propagates and is not cached (asking again re-runs the callbacks).
        result = self._value
        for f, args, kwargs in self.callbacks:
            result = f(result, *args, **kwargs)
        self.result, self.called = result, True
        self._value = _NOTHING
        return result

    def add_callback(self, f, *args, **kwargs):
        """Chain ``f(result, *args, **kwargs)`` onto the result."""
        assert callable(f)
        self.callbacks.append((f, args, kwargs))

    @property
    def r(self):
        """Shortcut for ``get_result(block=True)``."""
        return self.get_result(block=True)

    def _flush(self):
        if not self.called:
            self._fail(InvalidDeferredID('invalid deferred_id: %r (flushed)' % self.result_id))

    def __lt__(self, other):
        return self.result_id < other.result_id

    def __gt__(self, other):
        return self.result_id > other.result_id

    def __repr__(self):
        state = 'done' if self.called or self._value is not _NOTHING or self._done() \
            else 'pending'
        return '<PendingResult %d (%s)>' % (self.result_id, state)


def _clean(e):
    """A plexa error loses the client's internal frames (what matters is
    where the user called, and the remote tracebacks it carries)."""
    if isinstance(e, KernelError):
        return e.with_traceback(None)
    return e


class _Nothing(object):
    __slots__ = ()

    def __repr__(self):
        return '<nothing>'


_NOTHING = _Nothing()


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
