"""Result displays and the conversion of _native's replies into them (part of
:mod:`plexa.client`, which re-exports the public names).

  ResultList, wrapResultList   execute results printed as 0.10 printed them
                               (IPython too), a table in notebooks
  QueueStatusList              queue_status, printed likewise
  _check, _execute_value, ...  per-engine replies -> those values (or a
                               CompositeError naming every engine that raised)
"""

import html

from plexa.error import CompositeError


# ---- pretty-printing lists ---------------------------------------------------
#
# repr() is 0.10's text, which IPython's pretty printer shows too
# (_repr_pretty_); notebooks show _repr_html_, a small table whose every
# piece of user text (code, output, names) is escaped.

def _pre(text):
    return '<pre style="margin:0">%s</pre>' % html.escape(str(text)) if text else ''


def _table(cls, caption, head, rows):
    """An HTML table: rows are lists of cells already escaped."""
    out = ['<table class="%s"><caption style="text-align:left">%s</caption><thead><tr>'
           % (cls, html.escape(caption))]
    out.extend('<th style="text-align:left">%s</th>' % html.escape(h) for h in head)
    out.append('</tr></thead><tbody>')
    for row in rows:
        out.append('<tr>%s</tr>' % ''.join('<td style="text-align:left;vertical-align:top">'
                                           '%s</td>' % c for c in row))
    out.append('</tbody></table>')
    return ''.join(out)


def _pretty(obj, p, cycle):
    """IPython's pretty printer: the repr (0.10's text), line by line as
    IPython shows any repr (so without its final newline)."""
    if cycle:
        p.text('%s(...)' % type(obj).__name__)
        return
    with p.group():
        for i, line in enumerate(repr(obj).splitlines()):
            if i:
                p.break_()
            p.text(line)

class ResultList(list):
    """A list of per-engine result dicts that prints like IPython 0.10's.

    Each element is ``{'id': engine id, 'number': the engine's In [n],
    'input': {'translated': code, 'raw': code}, 'stdout': str, 'stderr':
    str}``. The repr follows 0.10's ``ResultList.__repr__`` without its
    terminal colours.
    """

    def __repr__(self):
        output = ['<Results List>\n']
        for cmd in self:
            if not isinstance(cmd, dict):
                output.append('%s\n' % (cmd,))
                continue
            target = cmd.get('id', None)
            number = cmd.get('number', None)
            stdin = cmd.get('input', {}).get('translated', 'No Input')
            stdout = cmd.get('stdout', None)
            stderr = cmd.get('stderr', None)
            output.append('[%i] In [%i]: %s\n' % (target, number, stdin))
            if stdout:
                output.append('[%i] Out[%i]: %s\n' % (target, number, stdout))
            if stderr:
                output.append('[%i] Err[%i]:\n %s' % (target, number, stderr))
        return ''.join(output)

    __str__ = __repr__
    _repr_pretty_ = _pretty

    def _repr_html_(self):
        """A table: engine, In [n], input, stdout, stderr (escaped)."""
        rows = []
        for cmd in self:
            if not isinstance(cmd, dict):
                rows.append([_pre(cmd), '', '', '', ''])
                continue
            number = cmd.get('number', None)
            rows.append([html.escape(str(cmd.get('id', None))),
                         html.escape('In [%s]' % (number,)),
                         _pre(cmd.get('input', {}).get('translated', 'No Input')),
                         _pre(cmd.get('stdout', None)), _pre(cmd.get('stderr', None))])
        return _table('plexa-results', 'Results List',
                      ('engine', 'In', 'input', 'stdout', 'stderr'), rows)


def wrapResultList(result):
    """Wrap a list of result dicts in a ResultList (0.10's helper)."""
    return ResultList(result)


class QueueStatusList(list):
    """The value of ``queue_status``: ``(engine_id, {'pending': str,
    'queue': [str, ...]})`` per engine, printed like 0.10's.

    ``pending`` describes the request the engine is running (``'None'``
    when idle); ``queue`` the requests waiting for it, in order.
    """

    def __repr__(self):
        output = ['<Queue Status List>\n']
        for e in self:
            output.append('Engine: %s\n' % repr(e[0]))
            output.append('    Pending: %s\n' % repr(e[1]['pending']))
            for q in e[1]['queue']:
                output.append('    Command: %s\n' % repr(q))
        return ''.join(output)

    __str__ = __repr__
    _repr_pretty_ = _pretty

    def _repr_html_(self):
        """A table: engine, the request it runs, the requests waiting (escaped)."""
        rows = [[html.escape(str(e[0])), _pre(e[1]['pending']),
                 ''.join(_pre(q) for q in e[1]['queue'])] for e in self]
        return _table('plexa-queue-status', 'Queue Status List',
                      ('engine', 'pending', 'queue'), rows)


# ---- converting the native replies --------------------------------------------
#
# _native's requests answer with one EngineReply per target engine, in target
# order: .engine_id, .method, .execute (None or an ExecuteResult: .number,
# .input, .stdout, .stderr), .values (a list), .error (None or a RemoteError:
# .ename, .evalue, .traceback). Queue status answers EngineQueue: .engine_id,
# .pending, .queue.

def _result_dict(engine_id, number, code, stdout, stderr):
    return {
        'id': engine_id,
        'number': number,
        'input': {'translated': code, 'raw': code},
        'stdout': stdout,
        'stderr': stderr,
    }


def _check(replies, method):
    """Raise one CompositeError naming every engine whose part raised."""
    elist = []
    for reply in replies:
        err = reply.error
        if err is not None:
            elist.append((err.ename, err.evalue, err.traceback, reply.engine_id, method))
    if elist:
        raise CompositeError('one or more exceptions from call to method: %s' % method, elist)
    return replies


def _execute_value(replies, method='execute'):
    """Per-engine execute outcomes -> ResultList (or a CompositeError)."""
    _check(replies, method)
    results = ResultList()
    for reply in replies:
        ex = reply.execute
        if ex is None:
            results.append(_result_dict(reply.engine_id, 0, '', '', ''))
        else:
            results.append(_result_dict(reply.engine_id, ex.number, ex.input, ex.stdout,
                                        ex.stderr))
    return results


def _none_value(method):
    def convert(replies):
        _check(replies, method)
        return [None] * len(replies)
    return convert


def _first_value(method):
    """values[0] of each engine: one value per engine."""
    def convert(replies):
        _check(replies, method)
        return [r.values[0] if r.values else None for r in replies]
    return convert


def _pull_value(keys_is_str, method='pull'):
    def convert(replies):
        _check(replies, method)
        if keys_is_str:
            return [r.values[0] for r in replies]
        return [list(r.values) for r in replies]
    return convert


def _multi(convert_one, method):
    """A converter over several requests: every request's replies are checked
    together (one CompositeError for all), then convert_one is applied to the
    concatenated replies."""
    def convert(list_of_replies):
        replies = [r for rs in list_of_replies for r in rs]
        _check(replies, method)
        return convert_one(replies)
    return convert


def _queue_status_value(replies):
    out = QueueStatusList()
    for q in replies:
        pending, queue = list(q.pending), list(q.queue)
        # Requests sent ahead to the engine wait there behind the first one.
        out.append((q.engine_id, {'pending': pending[0] if pending else repr(None),
                                'queue': pending[1:] + queue}))
    return out
