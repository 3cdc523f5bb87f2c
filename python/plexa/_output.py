"""What the engines printed, for PendingResult (part of plexa.client).

  Outputs       the mixin PendingResult inherits: ``stdout``, ``stderr``,
                ``outputs``, ``iter_outputs`` / ``stream_outputs`` and
                ``display_outputs``
  texts_of      (key, stdout, stderr) of raw replies (execute, map, tasks)

Showing them (``stream_outputs``, and the magics) is plexa._pxrender's.

Two sources, one view. While a multi-engine request (execute, map) runs,
the engines' prints arrive live (protocol 4: ``_native.Request.outputs``,
best effort, coalesced by the engines about every 50 ms); a running
task's go to the client that submitted it, which keeps them by task id
(``_native.Client.task_output``, polled here). Once the reply is there, it
carries everything each engine kept (up to 4 MiB per stream) and that is
what ``stdout`` / ``stderr`` report.
"""

import json
import sys
import time

__all__ = ['Outputs', 'texts_of']


def _decoded(piece):
    engine_id, name, text = piece
    if name != 'display':
        return piece
    try:
        bundle = json.loads(text)
    except ValueError:
        bundle = {'data': {'text/plain': text}, 'metadata': {}}
    return (engine_id, name, bundle)


def _is_record(x):
    return hasattr(type(x), 'n_fields')        # a _native structseq reply


def texts_of(raw):
    """[(engine_id, stdout, stderr)] of the replies in raw, in reply order:
    one per engine (execute, map) or per task (the engine that ran it)."""
    found = []

    def visit(x):
        if _is_record(x):
            if hasattr(x, 'task_id'):
                found.append((x.engine_id, x.stdout, x.stderr))
            elif getattr(x, 'execute', None) is not None:
                ex = x.execute
                found.append((x.engine_id, ex.stdout or '', ex.stderr or ''))
        elif isinstance(x, (list, tuple)):
            for y in x:
                visit(y)
    visit(raw)
    return found


class Outputs(object):
    """What a PendingResult's engines printed. Needs ``_all`` (the
    _native requests) and calls ``_note_texts(raw)`` when it resolves."""

    _texts = None           # [(key, stdout, stderr)] once resolved
    _live = None            # [(engine_id, name, text)] pieces seen so far
    _cursors = None         # per request: pieces already taken

    def _note_texts(self, raw):
        self._texts = texts_of(raw)

    def _task_texts(self):
        """{task id: (engine_id, stdout, stderr)} printed so far by this
        future's running tasks (the client keeps them by task id)."""
        native = getattr(self.client, '_client', None)
        found = {}
        for tid in getattr(self, 'task_ids', None) or ():
            got = native.task_output(tid) if native is not None else None
            if got is not None:
                found[tid] = got
        return found

    def _take_task_live(self, timeout):
        """_take_live for a task future: what its tasks printed since the
        last look, polled (every 50 ms while waiting up to timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            new = []
            for tid, (engine, out, err) in self._task_texts().items():
                seen = self._task_seen.get(tid, (0, 0))
                new += [(engine, name, text[n:]) for name, text, n in
                        (('stdout', out, seen[0]), ('stderr', err, seen[1])) if len(text) > n]
                self._task_seen[tid] = (len(out), len(err))
            complete = all(r.done() for r in self._all)
            left = None if deadline is None else deadline - time.monotonic()
            if new or complete or (left is not None and left <= 0):
                self._live.extend(new)
                return new, complete
            self._wait_any(0.05 if left is None else min(0.05, left))

    def _take_live(self, timeout=0.0):
        """Take new live pieces (waiting up to timeout for one). Returns
        (new pieces, all requests complete)."""
        if self._live is None:
            self._live, self._cursors = [], [0] * len(self._all)
            self._task_seen = {}
        if getattr(self, 'task_ids', None):
            return self._take_task_live(timeout)
        new, complete = [], True
        for i, r in enumerate(self._all):
            take = getattr(r, 'outputs', None)
            if take is None:                   # answered without a request (_Done)
                continue
            pieces, done = take(self._cursors[i], timeout=timeout if not new else 0)
            self._cursors[i] += len(pieces)
            new.extend(pieces)
            complete = complete and done
        new = [_decoded(p) for p in new]
        self._live.extend(new)
        return new, complete

    @property
    def outputs(self):
        """The live pieces seen so far, as (engine_id, 'stdout'|'stderr',
        text) or (engine_id, 'display', {'data': ..., 'metadata': ...}) in
        arrival order (multi-engine requests; tasks have none)."""
        self._take_live()
        return list(self._live)

    def iter_outputs(self, timeout=None):
        """Yield live pieces (engine_id, name, text) as they arrive, until
        the work is done; raises TimeoutError when ``timeout`` seconds pass
        first. Pieces seen before are yielded first. Ctrl-C stops waiting,
        not the work."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for piece in self.outputs:
            yield piece
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError('the work did not finish within %g s' % timeout)
            new, complete = self._take_live(0.25 if left is None else min(0.25, left))
            for piece in new:
                yield piece
            if complete:
                return

    def stream_outputs(self, timeout=None):
        """Show the pieces as they arrive, ``[stdout:0] text`` (stderr
        pieces on sys.stderr; display data in a notebook as itself, else as
        text: plexa._pxrender), until the work is done."""
        from plexa._pxrender import Renderer
        renderer = Renderer('order')
        for piece in self.iter_outputs(timeout):
            renderer.feed(piece)
        renderer.finish()

    def display_outputs(self, groupby='type'):
        """Show what the engines printed and displayed, once the work is
        done (waiting for it), grouped as ``%%px --group-outputs`` does:
        'type', 'engine' or 'order' (ipyparallel's
        ``AsyncResult.display_outputs``). For a task map, each task's
        output under the engine that ran it."""
        from plexa._pxrender import render_outputs
        try:
            self.result()
        except BaseException:
            if self._texts is None:
                raise
        events = []
        for engine_id, out, err in self._texts or []:
            events += [(engine_id, n, t) for n, t in (('stdout', out), ('stderr', err)) if t]
        events += [p for p in self.outputs if p[1] == 'display']
        render_outputs(events, groupby)

    def _texts_by(self, which):
        if self._texts is None and self.done():
            try:
                self.result(0)
            except BaseException:
                pass
        if self._texts is not None:
            return [t[which] for t in self._texts]
        if getattr(self, 'task_ids', None):
            running = self._task_texts()
            return [running[tid][which] if tid in running else '' for tid in self.task_ids]
        by_engine = {}
        name = ('stdout', 'stderr')[which - 1]
        for engine_id, n, text in self.outputs:
            if n != 'display':
                by_engine[engine_id] = by_engine.get(engine_id, '') + (text if n == name else '')
        return [by_engine[k] for k in sorted(by_engine)]

    @property
    def stdout(self):
        """What was printed: one str per engine (execute, map: in reply
        order; while running, per engine heard from so far) or per task
        (task futures, once done)."""
        return self._texts_by(1)

    @property
    def stderr(self):
        """As ``stdout``, for sys.stderr."""
        return self._texts_by(2)
