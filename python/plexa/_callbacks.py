"""The callback thread: futures resolve as soon as their reply arrives.

  Callbacks      one per client: the "plexa-callbacks" daemon thread that
                 resolves the client's non-blocking PendingResults
  close_all      at exit: stop every such thread

Each client that hands out a non-blocking PendingResult gets one daemon
thread, started with its first one. The thread blocks in
``_native.Completions.wait`` (libplexa's completion queue, GIL released)
until libplexa's I/O thread completes a request it watches; it then
converts the reply and resolves the future, so ``add_done_callback``
callbacks, 0.10's ``add_callback`` chain, ``concurrent.futures.wait`` and
asyncio wake-ups all happen here, outside plexa's locks, whether or not
anyone calls ``get_result``. There is no thread per future and no polling.
A reply is converted once: by this thread or by a ``get_result`` that gets
there first (PendingResult._resolve settles which).
"""

import atexit
import sys
import threading
import time
import traceback
import weakref

_STOP = 0           # the token that tells the thread to finish


class Callbacks(object):
    """The callback thread of one client (started by the first ``watch``)."""

    def __init__(self, name='plexa-callbacks'):
        self._name = name
        self._lock = threading.Lock()
        self._watched = {}          # token -> PendingResult (held until resolved)
        self._next = _STOP + 1
        self._cq = None
        self._thread = None
        self._closed = False
        # The token this thread is resolving (its frames hold that future and
        # its value until it lets go): see release_wait.
        self._busy = None
        self._idle = threading.Condition(self._lock)

    def watch(self, pr):
        """Resolve ``pr`` on this thread once all of its requests are done."""
        from plexa import _native
        with self._lock:
            if self._closed:
                return False
            if self._cq is None:
                self._cq = _native.Completions()
                _live.add(self)
            token, self._next = self._next, self._next + 1
            self._watched[token] = pr
            pr._watcher, pr._token = self, token
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(self._cq,),
                                                name=self._name, daemon=True)
                self._thread.start()
            cq = self._cq
        watched = 0
        for r in pr._requests:
            try:
                cq.watch(r, token)  # queued at once when already complete
                watched += 1
            except TypeError:
                pass                # answered without a round trip (_Done)
        if not watched:
            cq.post(token)
        return True

    def post(self, pr):
        """Look at ``pr`` again (a resolution handed back to this thread).
        It is watched again: this thread may have taken it already and
        found it claimed by a cancel() that then failed."""
        token = getattr(pr, '_token', None)
        with self._lock:
            cq = None if self._closed or token is None else self._cq
            if cq is not None:
                self._watched[token] = pr
        if cq is not None:
            try:
                cq.post(pr._token)
            except Exception:
                pass        # closed: the client is gone, its requests failed

    def close(self):
        """Resolve what is already answered, then stop the thread (the
        client closed: its requests have all failed by now)."""
        with self._lock:
            self._closed = True
            cq = self._cq
        if cq is not None:
            try:
                cq.post(_STOP)
            except Exception:
                pass

    def _take(self, token):
        with self._lock:
            pr = self._watched.get(token)
            if pr is None or not pr._requests_done():
                return None
            del self._watched[token]
            self._busy = token
            return pr

    def forget(self, token):
        """Stop holding the future ``token``: it was resolved or cancelled
        elsewhere (a get_result that converted the reply first), and this
        thread's queue may not reach its token for a while."""
        with self._lock:
            self._watched.pop(token, None)

    def _let_go(self):
        with self._lock:
            self._busy = None
            self._idle.notify_all()

    def release_wait(self, token, deadline=None):
        """Wait until this thread holds nothing of the future ``token`` (it
        may still be running its done callbacks, or returning from them, when
        a waiter on another thread sees the future done). False if
        ``deadline`` (time.monotonic()) passes first. On this thread itself
        it returns at once."""
        if self._thread is threading.current_thread():
            return True
        with self._lock:
            while self._busy == token:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self, cq):
        while True:
            tokens = cq.wait()
            if tokens is None:
                return
            for token in tokens:
                if token == _STOP:
                    cq.close()
                    self._fail_rest()
                    return
                pr = self._take(token)
                if pr is None:
                    continue
                try:
                    pr._resolve()
                except BaseException:   # never lose the thread (pr keeps its error)
                    _report()
                # Not kept while waiting: it holds its client, whose
                # collection is what stops this thread when nobody closed it.
                pr = None
                self._let_go()

    def _fail_rest(self):
        """Resolve what is still watched (their requests failed with the
        client's close, or will be answered by nobody)."""
        with self._lock:
            rest = list(self._watched.values())
            self._watched.clear()
        for pr in rest:
            try:
                pr._resolve()
            except BaseException:
                _report()


def _report():
    print('plexa-callbacks: unexpected error', file=sys.stderr)
    traceback.print_exc()


_live = weakref.WeakSet()


@atexit.register
def close_all():
    """Stop every callback thread (they are daemons: this only lets them
    finish cleanly before the interpreter goes)."""
    for cb in list(_live):
        with cb._lock:
            cb._closed = True
            cq = cb._cq
        if cq is not None:
            cq.close()
