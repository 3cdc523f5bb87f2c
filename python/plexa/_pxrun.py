"""One run of the %px magics, and the defaults it starts from (part of
:mod:`plexa.magics`).

  PxState          the defaults %pxconfig set for one client's magics, and
                   their last run
  Run              one execution on the engines: its PendingResult or value,
                   the engines' replies, their outputs shown by _pxrender
  parse_targets    --targets' text -> 'all', an id, a list or a slice
"""

from plexa import _pxrender


def usage_error(msg):
    """IPython's UsageError (shown as one line, without a traceback)."""
    from IPython.core.error import UsageError
    return UsageError(msg)


class PxState(object):
    """The defaults %pxconfig set, and the last %px run, of one client's
    magics. None defaults follow the client (targets, block) or the
    blocking mode (stream)."""

    def __init__(self, client):
        self.client = client
        self.targets = None         # the --targets text, parsed again at each run
        self.block = None
        self.group_outputs = 'type'
        self.stream = None
        self.last = None

    def find_targets(self, spec=None):
        spec = spec if spec is not None else self.targets
        if spec is None:
            return self.client._findTargets()
        return resolve_targets(self.client, parse_targets(spec))

    def find_block(self, block=None):
        if block is not None:
            return block
        return self.client.block if self.block is None else self.block

    def describe(self):
        return ("targets: %s\nblock: %s\ngroup-outputs: %s\nstream: %s" % (
            "%s (the client's)" % (self.client.targets,) if self.targets is None
            else self.targets,
            "%s (the client's)" % (self.client.block,) if self.block is None else self.block,
            self.group_outputs,
            "when blocking" if self.stream is None else self.stream))


def parse_targets(spec):
    """--targets' text: 'all', an int, ints with commas (a list), or a
    slice of the engine ids ('::2', '1:3')."""
    text = spec.strip().strip('\'"').strip('[]()').replace(' ', '')
    try:
        if text == 'all':
            return 'all'
        if ':' in text:
            parts = [int(p) if p else None for p in text.split(':')]
            if len(parts) > 3:
                raise ValueError(text)
            return slice(*parts)
        if ',' in text:
            return [int(p) for p in text.split(',') if p]
        return int(text)
    except ValueError:
        raise usage_error("--targets takes 'all', an engine id, ids with commas (0,1) "
                           "or a slice of the ids (::2), not %r" % (spec,)) from None


def resolve_targets(client, targets):
    if not isinstance(targets, slice):
        return targets
    engines = client.get_ids()[targets]
    if not engines:
        raise usage_error('--targets %s names no engine (engines: %s)'
                           % (_slice_text(targets), client.get_ids()))
    return engines


def _slice_text(s):
    text = '%s:%s' % ('' if s.start is None else s.start, '' if s.stop is None else s.stop)
    return text if s.step is None else '%s:%s' % (text, s.step)


class Run(object):
    """One %px / %%px execution: its PendingResult (or value) and, once
    answered, the engines' replies, whose outputs it shows."""

    def __init__(self, client, code, targets, block):
        from plexa._pending import PendingResult
        from plexa.multiengine import _native_targets
        self.replies = None
        self.value = None
        self.error = None
        req = client._client.submit_execute(code, _native_targets(targets))
        try:
            self.value = client._finish(req, self._convert, block)
        except Exception as e:
            if self.replies is None:
                raise           # not an engine's error (no reply came)
            self.error = e
        self.pending = self.value if isinstance(self.value, PendingResult) else None

    def _convert(self, replies):
        from plexa._results import _execute_value
        self.replies = list(replies)
        return _execute_value(self.replies)

    def returned(self):
        """What the call returns, as execute() would: the PendingResult when
        non-blocking, else the ResultList (the engines' error is raised)."""
        return self.pending if self.pending is not None else self.result()

    def result(self):
        """The ResultList, waiting for it; the engines' error is raised."""
        if self.pending is not None:
            try:
                return self.pending.get_result(block=True)
            except Exception as e:
                if self.replies is None:
                    raise
                self.error = e
        if self.error is not None:
            raise self.error
        return self.value

    def show(self, mode):
        """Wait, show the engines' outputs grouped by mode, raise their error."""
        try:
            self.result()
        except Exception:
            if self.replies is None:
                raise
        events = list(_pxrender.events_from_results(
            {'id': r.engine_id, 'stdout': r.execute.stdout, 'stderr': r.execute.stderr}
            for r in self.replies if r.execute is not None))
        _pxrender.render_outputs(events + self._displays(), mode)
        if self.error is not None:
            raise self.error

    def _displays(self):
        """The display data the engines sent while the run ran."""
        if self.pending is None:
            return []
        return [p for p in self.pending.outputs if p[1] == 'display']

    def stream(self):
        """Show what the engines print and display as it arrives (a
        non-blocking run), ``[stdout:0] ...`` in arrival order; then raise
        their error, if any. Ctrl-C stops showing, not the engines."""
        renderer = _pxrender.Renderer('order')
        for event in self.pending.iter_outputs():
            renderer.feed(event)
        renderer.finish()
        self.result()
