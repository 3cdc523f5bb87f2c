"""Waiting for many plexa futures at once (``plexa.wait``,
``plexa.as_completed``).

Every non-blocking call returns a :class:`plexa.client.PendingResult`,
which is a :class:`concurrent.futures.Future`: ``mec.execute(...,
block=False)``, ``tc.future(taskid)``, ``tc.apply_async(f, *args)``. They
resolve on their client's
callback thread as soon as the reply arrives, so the standard library's
``concurrent.futures.wait`` / ``as_completed`` and asyncio
(``await pr``, ``asyncio.gather(*prs)``) work on them as on any future.
These are the same functions, as Dask's ``distributed.wait`` /
``as_completed`` are for its futures::

    import plexa
    fs = [tc.apply_async(pow, 2, i) for i in range(100)]
    done, not_done = plexa.wait(fs, timeout=10, return_when=plexa.FIRST_EXCEPTION)
    for f in plexa.as_completed(fs):
        print(f.result())

  wait, as_completed                 concurrent.futures' over plexa futures
  ALL_COMPLETED, FIRST_COMPLETED,    their return_when values
  FIRST_EXCEPTION
  CancelledError, TimeoutError       what result() may raise besides the call's error
"""

import concurrent.futures as _cf
from concurrent.futures import (ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION,  # noqa: F401
                                CancelledError)

from plexa._pending import PendingResult
from plexa._tb import boundary

TimeoutError = TimeoutError     # the builtin (concurrent.futures.TimeoutError on 3.11)

__all__ = ['wait', 'as_completed', 'ALL_COMPLETED', 'FIRST_COMPLETED', 'FIRST_EXCEPTION',
           'CancelledError', 'TimeoutError', 'PendingResult']


def _watched(fs):
    """fs as a list, every pending plexa future resolving on its client's
    callback thread (a non-blocking call's already does)."""
    fs = list(fs)
    for f in fs:
        if isinstance(f, PendingResult) and f._watcher is None and not f.done():
            f._watch_now()
    return fs


@boundary
def wait(fs, timeout=None, return_when=ALL_COMPLETED):
    """Wait until the futures ``fs`` are done (``return_when``:
    ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION) or ``timeout``
    seconds pass. Returns ``(done, not_done)``, two sets, as
    ``concurrent.futures.wait`` (which this is). Plexa and other futures
    may be mixed."""
    return _cf.wait(_watched(fs), timeout, return_when)


@boundary
def as_completed(fs, timeout=None):
    """Yield the futures ``fs`` as they complete (finished or cancelled);
    TimeoutError if ``timeout`` seconds pass first (the futures go on).
    ``concurrent.futures.as_completed``, which this is."""
    return _cf.as_completed(_watched(fs), timeout)
