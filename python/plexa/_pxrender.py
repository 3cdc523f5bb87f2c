"""How the ``%px`` magics show what engines printed or displayed (part of
:mod:`plexa.magics`): ipyparallel's ``[stdout:0] text`` prefixes, grouped
as ``--group-outputs`` asks. The one place that output rendering lives.

  Renderer            takes output events one at a time or as a batch
  render_outputs      a whole batch, grouped
  events_from_results the events of finished execute results
  GROUP_MODES         'engine', 'order', 'type'

The contract
------------
An *event* is a tuple ``(engine_id, kind, payload)``:

``engine_id``
    the engine (an int) that produced it.
``kind`` 'stdout' or 'stderr'
    ``payload`` is a str: a chunk of that stream, of any length, with
    newlines anywhere (a whole stream, one line, or part of one).
``kind`` 'display'
    ``payload`` is a dict ``{'data': {mime: value, ...}, 'metadata':
    {...}}``, as in a Jupyter ``display_data`` message; ``data`` should
    hold ``'text/plain'``, the form shown outside a kernel.

``Renderer(mode)`` with ``mode`` one of GROUP_MODES:

``feed(event)``
    takes one event. With ``'order'`` it is shown at once, so a source of
    live output calls ``feed`` as each event arrives (from any thread; the
    calls are serialised by a lock, and each one writes to ``sys.stdout``
    / ``sys.stderr`` as they are at that moment, which in a kernel is the
    cell that is running). With ``'engine'`` and ``'type'`` it is kept
    until ``finish()``.
``finish()``
    shows what was kept, grouped, and empties the renderer (it can be fed
    again). With ``'order'`` there is nothing kept: ``finish()`` does
    nothing. Call it once the source has no more events.

``render_outputs(events, mode)`` is a Renderer fed a finished batch. For a
batch, ``'order'`` cannot know when each event happened, so it interleaves
the engines by position: every engine's first event, then every engine's
second one, and so on (engines in the order they first appear), as
ipyparallel collates a finished result's outputs.

How the modes group (engines in the order their first event came):

``'engine'``
    each engine in turn: its stdout, its stderr, its displays.
``'type'`` (the magics' default)
    every engine's stdout, then every engine's stderr, then every
    engine's displays.
``'order'``
    each event on its own, as it comes.

In ``'engine'`` and ``'type'`` the chunks of one engine's stream are joined
and shown under one prefix; in ``'order'`` every chunk has its own (a live
source should feed whole lines where it can).

How one piece shows (ipyparallel's format):

stream text
    ``'[stdout:0] '`` + the text on ``sys.stdout`` (``'[stderr:0] '`` on
    ``sys.stderr``); text of more than one line starts on the line after
    the prefix; a final newline is added when missing; empty text shows
    nothing.
display
    an ``[output:0]`` line, then the display through IPython's
    ``publish_display_data`` with ``'engine': 0`` added to its metadata
    when running in a kernel; elsewhere (a terminal, plain Python) its
    ``'text/plain'`` is printed. In ``'engine'`` and ``'type'`` one
    ``[output:N]`` line heads all of engine N's displays.

Errors are not events: the magics raise the call's CompositeError after
the outputs are shown, and IPython shows its remote tracebacks.
"""

import sys
import threading

__all__ = ['GROUP_MODES', 'Renderer', 'render_outputs', 'events_from_results']

GROUP_MODES = ('engine', 'order', 'type')
STREAMS = ('stdout', 'stderr')


def events_from_results(results):
    """The output events of finished execute results: result dicts with
    'id', 'stdout' and 'stderr' (a ResultList's elements), in their order;
    empty streams give no event."""
    events = []
    for r in results:
        for kind in STREAMS:
            text = r.get(kind)
            if text:
                events.append((r['id'], kind, text))
    return events


def render_outputs(events, mode='type'):
    """Show a finished batch of events, grouped by mode (see the module's
    docstring)."""
    r = Renderer(mode)
    if mode == 'order':
        events = _interleave(events)
    for ev in events:
        r.feed(ev)
    r.finish()


class Renderer(object):
    """Shows output events as ``--group-outputs`` mode asks (see the
    module's docstring for the contract)."""

    def __init__(self, mode='type'):
        if mode not in GROUP_MODES:
            raise ValueError('group-outputs mode must be one of %s, not %r'
                             % (', '.join(GROUP_MODES), mode))
        self.mode = mode
        self._lock = threading.Lock()
        self._kept = []

    def feed(self, event):
        """Take one event: show it now ('order') or keep it for finish()."""
        engine_id, kind, payload = _checked(event)
        with self._lock:
            if self.mode == 'order':
                _show(engine_id, kind, payload, header=True)
            else:
                self._kept.append((engine_id, kind, payload))

    def finish(self):
        """Show the kept events, grouped, and forget them."""
        with self._lock:
            kept, self._kept = self._kept, []
            if not kept:
                return
            by_engine = _by_engine(kept)
            if self.mode == 'engine':
                for engine_id, parts in by_engine:
                    _show_engine(engine_id, parts, ('stdout', 'stderr', 'display'))
            else:
                for kind in ('stdout', 'stderr', 'display'):
                    for engine_id, parts in by_engine:
                        _show_engine(engine_id, parts, (kind,))


# ---- grouping -------------------------------------------------------------------

def _checked(event):
    try:
        engine_id, kind, payload = event
    except (TypeError, ValueError):
        raise ValueError('an output event is (engine_id, kind, payload), not %r'
                         % (event,)) from None
    if kind in STREAMS:
        if not isinstance(payload, str):
            raise TypeError('a %s event carries a str, not %s' % (kind, type(payload).__name__))
    elif kind == 'display':
        if not isinstance(payload, dict) or not isinstance(payload.get('data'), dict):
            raise TypeError("a display event carries {'data': {mime: ...}, 'metadata': {...}}")
    else:
        raise ValueError("an output event's kind is 'stdout', 'stderr' or 'display', not %r"
                         % (kind,))
    return engine_id, kind, payload


def _by_engine(events):
    """[(engine_id, {'stdout': text, 'stderr': text, 'display': [payload]})]
    in the order engines first appear; each stream's chunks joined."""
    order, parts = [], {}
    for engine_id, kind, payload in events:
        p = parts.get(engine_id)
        if p is None:
            p = parts[engine_id] = {'stdout': [], 'stderr': [], 'display': []}
            order.append(engine_id)
        p[kind].append(payload)
    return [(e, {'stdout': ''.join(parts[e]['stdout']), 'stderr': ''.join(parts[e]['stderr']),
                 'display': parts[e]['display']}) for e in order]


def _interleave(events):
    """Every engine's first event, then every engine's second, ..."""
    order, queues = [], {}
    for ev in events:
        q = queues.get(ev[0])
        if q is None:
            q = queues[ev[0]] = []
            order.append(ev[0])
        q.append(ev)
    out = []
    for i in range(max((len(q) for q in queues.values()), default=0)):
        out.extend(queues[e][i] for e in order if i < len(queues[e]))
    return out


def _show_engine(engine_id, parts, kinds):
    for kind in kinds:
        if kind == 'display':
            if parts['display']:
                _header(engine_id)
                for payload in parts['display']:
                    _show(engine_id, 'display', payload, header=False)
        else:
            _show(engine_id, kind, parts[kind], header=False)


# ---- showing one piece ------------------------------------------------------------

def _show(engine_id, kind, payload, header):
    if kind == 'display':
        if header:
            _header(engine_id)
        _display(engine_id, payload)
    else:
        _stream(payload, '[%s:%s] ' % (kind, engine_id),
                sys.stdout if kind == 'stdout' else sys.stderr)


def _stream(text, prefix, file):
    """ipyparallel's _display_stream: a multi-line text starts on the line
    after its prefix."""
    if not text:
        return
    multiline = text.count('\n') > int(text.endswith('\n'))
    if multiline and not text.startswith('\n'):
        prefix += '\n'
    file.write(prefix + text + ('' if text.endswith('\n') else '\n'))
    file.flush()


def _in_kernel():
    if 'IPython' not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), 'kernel', None) is not None


def _header(engine_id):
    _display(engine_id, {'data': {'text/plain': '[output:%s]' % (engine_id,)}, 'metadata': {}})


def _display(engine_id, payload):
    if _in_kernel():
        from IPython.display import publish_display_data
        # What a kernel sends through sys.stdout is buffered; flush it so that
        # the text printed before this display is not shown after it.
        sys.stdout.flush()
        sys.stderr.flush()
        metadata = dict(payload.get('metadata') or {})
        metadata['engine'] = engine_id
        publish_display_data(data=payload['data'], metadata=metadata)
        return
    text = payload['data'].get('text/plain')
    if text is None:
        text = '<%s>' % ', '.join(sorted(payload['data'])) if payload['data'] else ''
    sys.stdout.write(str(text) + '\n')
    sys.stdout.flush()
