"""Exceptions of the plexa client, with IPython 0.10's names.

Every exception here derives from :class:`KernelError`. Errors of the
connection and of the request itself come from the C client (plexa._native
raises them with libplexa's message):

=====================  ==================================================
ConnectionError         controller unreachable or connection lost (also a
                        builtin ConnectionError); make a new client
SecurityError           the controller refused the capability token
InvalidEngineID         a target is not a registered engine id
NoEnginesRegistered     the request needs engines and there are none
KernelError             anything else (timeouts, protocol errors, ...)
=====================  ==================================================

Exceptions raised *by the user's code on the engines* are collected into one
:class:`CompositeError` per call, as in 0.10; :meth:`CompositeError.raise_exception`
turns one of them back into a :class:`RemoteError` (also an instance of the
original type when that is a builtin exception, as 0.10 re-raised it).
"""

import builtins

__all__ = [
    'KernelError', 'CompositeError', 'RemoteError', 'ConnectionError', 'SecurityError',
    'InvalidEngineID', 'NoEnginesRegistered', 'EngineError', 'ProtocolError',
    'ResultNotCompleted', 'ResultEvicted', 'TaskAborted', 'TaskTimeout',
    'TaskRejectError', 'QueueCleared', 'NotAPendingResult', 'MissingBlockArgument',
    'StopLocalExecution', 'FileTimeoutError', 'SerializationError',
    'MessageSizeError', 'InvalidDeferredID', 'AbortedPendingDeferredError',
    'collect_exceptions', 'remote_error',
]


class KernelError(Exception):
    """Base class of every plexa client error (IPython 0.10's KernelError)."""


class ProtocolError(KernelError):
    """The controller sent something the client does not understand."""


class ConnectionError(KernelError, builtins.ConnectionError):
    """The controller cannot be reached, or the connection to it was lost.

    Every pending and later call on the client fails with it; create a new
    client once the controller is back. Also an instance of the builtin
    :class:`ConnectionError`, so generic network handling catches it.
    """


class SecurityError(KernelError):
    """The controller refused the connection (wrong capability token or pin)."""


class InvalidEngineID(KernelError):
    """A target is not the id of a registered engine."""


class NoEnginesRegistered(KernelError):
    """No engines are registered with the controller."""


class EngineError(KernelError):
    """An engine died while serving a request or running a task.

    The message names the engine and the request or task; for a task,
    ``engine_id`` and ``taskid`` are set too. A task with ``retries`` left
    is run again elsewhere instead.
    """

    engine_id = None
    taskid = None


class ResultNotCompleted(KernelError):
    """A result was asked for without blocking and is not ready yet."""


class ResultEvicted(KernelError, IndexError):
    """The controller no longer holds the result: it was cleared
    (``TaskClient.clear``) or evicted by the bounded retention of results
    (the controller's ``results_max`` / ``results_max_bytes``; results
    already fetched go first). An IndexError, as 0.10's get_task_result
    raised for an id the controller no longer knew."""

    taskid = None


class TaskAborted(KernelError):
    """The task was aborted (``TaskClient.abort``): removed from the queue,
    or interrupted on its engine."""

    taskid = None


class TaskTimeout(KernelError, TimeoutError):
    """No engine accepted the task (its ``depend`` said no everywhere) for
    the controller's dependency timeout, 30 s by default; 0.10's message:
    "task %i failed to execute due to unmet dependencies for %i seconds".
    A TimeoutError too (plexa), as every timeout plexa raises."""

    taskid = None


class TaskRejectError(KernelError):
    """0.10's way for a task to reject an engine. In plexa, raised by a
    task's code it fails the task like any other exception (with
    ``retries`` left the task runs again, on whichever engine is free); to
    keep a task off an engine, give it a ``depend`` predicate, which the
    engine evaluates before running it.
    """


class QueueCleared(KernelError):
    """The engine's queue was cleared before the request ran."""


class NotAPendingResult(KernelError):
    """barrier() was given something other than PendingResults."""


class MissingBlockArgument(KernelError):
    """A call needed an explicit ``block`` argument."""


class StopLocalExecution(KernelError):
    """Raised by ``remote()`` so a ``with mec:`` block does not run locally."""


class FileTimeoutError(KernelError):
    """A connection file did not appear in time."""


class SerializationError(KernelError):
    """A value could not be serialized for the engines."""


class MessageSizeError(KernelError):
    """A message exceeded the configured size limits."""


class InvalidDeferredID(KernelError):
    """The client holds no pending result with that id (it was already
    retrieved, or dropped by ``flush()``)."""


class AbortedPendingDeferredError(KernelError):
    """A pending result was deleted while someone waited for it."""


def _engine_str(engine_id, method):
    """0.10's prefix naming where an exception happened: '[0:execute]: '."""
    if engine_id is None:
        return '[Engine Exception]'
    return '[%i:%s]: ' % (engine_id, method)


class RemoteError(KernelError):
    """One exception raised by user code on one engine.

    Attributes: ``ename`` (the exception type's name), ``evalue`` (its
    ``str()``), ``traceback`` (the remote traceback, formatted),
    ``engine_id`` and ``method`` (``'execute'``, ..., ``'task'`` for a
    task, ``'map'`` for a load-balanced map; then ``taskid`` is set too).
    ``str()`` names the engine and ends with the remote traceback.
    """

    taskid = None

    def __init__(self, ename, evalue, traceback, engine_id=None, method='execute'):
        super().__init__(ename, evalue, traceback, engine_id, method)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        self.engine_id = engine_id
        self.method = method

    def __str__(self):
        s = '%s%s: %s' % (_engine_str(self.engine_id, self.method), self.ename, self.evalue)
        if self.traceback:
            s += '\n' + self.traceback.rstrip('\n')
        return s

    def __repr__(self):
        return '<RemoteError %s%s: %s>' % (_engine_str(self.engine_id, self.method),
                                          self.ename, self.evalue)

    def _render_traceback_(self):
        """What IPython shows for it: the remote traceback, not the client's frames."""
        return ['RemoteError: ' + line if i == 0 else line
                for i, line in enumerate(str(self).splitlines())]

    def __reduce__(self):
        # Typed variants are made at run time: rebuild through remote_error.
        return (remote_error, (self.ename, self.evalue, self.traceback, self.engine_id,
                               self.method), dict(self.__dict__))


# A remote exception whose type is a builtin one (ZeroDivisionError,
# KeyError, ...) is raised as a RemoteError that is also an instance of
# that type, so 0.10 code's `except ZeroDivisionError:` around
# raise_exception() still catches it. The type is looked up by name among
# the builtins only: nothing from the engine is unpickled. Exceptions
# outside Exception (KeyboardInterrupt, SystemExit) would pass for local
# ones, and StopIteration changes meaning inside generators: those stay
# plain RemoteErrors, as do types whose constructor wants other arguments.
_UNTYPED = frozenset({'StopIteration', 'StopAsyncIteration'})
_typed = {}


def _typed_class(ename):
    if ename in _typed:
        return _typed[ename]
    base = getattr(builtins, ename, None) if isinstance(ename, str) else None
    cls = RemoteError
    if isinstance(base, type) and issubclass(base, Exception) and ename not in _UNTYPED:
        try:
            typed = type('RemoteError', (RemoteError, base),
                         {'__module__': __name__, '__qualname__': 'RemoteError',
                          '__doc__': RemoteError.__doc__})
            typed(ename, '', '', 0, 'execute')
            cls = typed
        except TypeError:      # an incompatible layout or constructor
            pass
    if len(_typed) < 256:      # names come from engines: bound the cache
        _typed[ename] = cls
    return cls


def remote_error(ename, evalue, traceback, engine_id=None, method='execute'):
    """The RemoteError for one remote exception: also an instance of the
    builtin exception type named ``ename`` when there is one."""
    return _typed_class(ename)(ename, evalue, traceback, engine_id, method)


# The most lines of a remote traceback's tail that CompositeError's str() shows.
_TAIL_LINES = 12


def _last_frame(tb):
    """The lines of a formatted traceback from its last frame's 'File' line
    to the end (the source line, the caret line, the exception), at most
    _TAIL_LINES of them; [] when it has no frame."""
    if not tb:
        return []
    lines = str(tb).rstrip('\n').splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith('  File '):
            tail = lines[i:]
            if len(tail) > _TAIL_LINES:
                tail = tail[:_TAIL_LINES - 1] + ['... (%i more lines)' % (len(tail) - _TAIL_LINES + 1)]
            return tail
    return []


class CompositeError(KernelError):
    """Exceptions from one call on several engines (IPython 0.10).

    ``elist`` holds one tuple per failed engine,
    ``(ename, evalue, traceback, engine_id, method)``: the exception type's
    name, its ``str()``, the formatted remote traceback (a str), the engine
    id and the client method (``'execute'``). 0.10 kept ``(etype, evalue,
    etb)`` of live exceptions instead; plexa's client never unpickles
    exceptions, so it carries their text.
    """

    def __init__(self, message, elist):
        Exception.__init__(self, message, elist)
        # 0.10.0 called the summary line .message, 0.10.2 .msg (Python 2.6
        # deprecated BaseException.message); code written for either works.
        self.message = self.msg = message
        self.elist = list(elist)

    # str() ends with where each of the first str_limit engines failed (the
    # last frame of its remote traceback); the others are counted.
    str_limit = 3

    def _summary(self):
        """0.10's str(): the message, then one line per failed engine."""
        s = str(self.msg)
        for ename, evalue, _tb, engine_id, method in self.elist:
            s = s + '\n' + _engine_str(engine_id, method) + str(ename) + ': ' + str(evalue)
        return s

    def __str__(self):
        """0.10's summary lines, then the last frame of the first engines'
        remote tracebacks (the failing source line and the exception), so
        that an uncaught CompositeError in a plain script shows where each
        engine failed; print_tracebacks() shows the whole tracebacks."""
        parts = [self._summary()]
        shown = 0
        for _ename, _evalue, tb, engine_id, method in self.elist:
            tail = _last_frame(tb)
            if not tail:
                continue
            if shown == self.str_limit:
                more = sum(1 for e in self.elist if _last_frame(e[2])) - shown
                parts.append('... and %i more: print_tracebacks() shows every remote '
                             'traceback' % more)
                break
            parts.append('%s failed at:\n%s' % (_engine_str(engine_id, method).rstrip(': '),
                                                '\n'.join(tail)))
            shown += 1
        return '\n\n'.join(parts)

    def _entry(self, excid):
        try:
            return self.elist[excid]
        except (IndexError, TypeError):
            raise IndexError('an exception with index %i does not exist' % excid) from None

    def print_tracebacks(self, excid=None):
        """Print the remote traceback of one exception, or of all (0.10's format)."""
        entries = self.elist if excid is None else [self._entry(excid)]
        for _ename, _evalue, tb, engine_id, method in entries:
            print(_engine_str(engine_id, method))
            print(tb if tb else 'No traceback available')
            if excid is None:
                print()

    # IPython shows at most this many remote tracebacks of one CompositeError.
    tb_limit = 4

    def _render_traceback_(self):
        """What IPython shows for a CompositeError: the one-line summary per
        engine, then the remote tracebacks (not the client's own frames)."""
        lines = ['CompositeError: ' + line if i == 0 else line
                 for i, line in enumerate(self._summary().splitlines())]
        for _ename, _evalue, tb, engine_id, method in self.elist[:self.tb_limit]:
            lines.append('')
            lines.append(_engine_str(engine_id, method))
            lines.extend((tb or 'No traceback available').rstrip('\n').splitlines())
        if len(self.elist) > self.tb_limit:
            lines.append('')
            lines.append('... %i more exceptions ...' % (len(self.elist) - self.tb_limit))
        return lines

    def raise_exception(self, excid=0):
        """Raise exception ``excid`` of ``elist`` as a :class:`RemoteError`;
        for a builtin exception type it is also an instance of that type, so
        ``except ZeroDivisionError:`` catches it as in 0.10."""
        ename, evalue, tb, engine_id, method = self._entry(excid)
        raise remote_error(ename, evalue, tb, engine_id, method)


def collect_exceptions(elist, method):
    """Raise a CompositeError for a non-empty ``elist`` (0.10's helper).

    Nested CompositeErrors in ``elist`` are flattened into one.
    """
    flat = []
    for e in elist:
        if isinstance(e, CompositeError):
            flat.extend(e.elist)
        else:
            flat.append(e)
    if flat:
        raise CompositeError('one or more exceptions from call to method: %s' % method, flat)
