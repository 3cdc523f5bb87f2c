"""The multi-engine client (IPython 0.10's ``IPython.kernel.client``).

::

    from plexa import client
    mec = client.MultiEngineClient()      # the default profile's connection file
    mec.get_ids()                         # [0, 1]
    mec.execute('a = 10')                 # <Results List> ...

Importing this module needs no cluster and does not load the C extension;
connecting does.
"""

from plexa import error  # noqa: F401  (0.10's client module exposed it too)
from plexa.error import (  # noqa: F401  (re-exported, as 0.10's client module did)
    CompositeError, ConnectionError, EngineError, FileTimeoutError, InvalidEngineID,
    KernelError, MessageSizeError, MissingBlockArgument, NoEnginesRegistered,
    NotAPendingResult, ProtocolError, QueueCleared, RemoteError, ResultEvicted,
    ResultNotCompleted, SecurityError, SerializationError, StopLocalExecution,
    TaskAborted, TaskRejectError, TaskTimeout,
)

__all__ = ['MultiEngineClient', 'PendingResult', 'ResultList', 'CompositeError']


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


def wrapResultList(result):
    """Wrap a list of result dicts in a ResultList (0.10's helper)."""
    return ResultList(result)


def _result_dict(engine_id, number, code, stdout, stderr):
    return {
        'id': engine_id,
        'number': number,
        'input': {'translated': code, 'raw': code},
        'stdout': stdout,
        'stderr': stderr,
    }


def _execute_value(replies, method='execute'):
    """Turn _native's per-engine tuples into a ResultList, or raise one
    CompositeError listing every engine whose code raised."""
    results = ResultList()
    elist = []
    for engine_id, number, code, stdout, stderr, error in replies:
        if error is not None:
            ename, evalue, traceback = error
            elist.append((ename, evalue, traceback, engine_id, method))
        results.append(_result_dict(engine_id, number, code, stdout, stderr))
    if elist:
        raise CompositeError('one or more exceptions from call to method: %s' % method, elist)
    return results


class PendingResult(object):
    """A result that is not ready yet (``block=False``), as in IPython 0.10.

    ``get_result(default=None, block=True)`` returns the result (or
    ``default`` when it is not ready and ``block`` is False), raising the
    call's error instead if it failed; the outcome is cached, so later calls
    return or re-raise the same thing. ``add_callback(f, *args, **kwargs)``
    chains ``f(result, *args, **kwargs)`` onto the result. ``r`` is
    ``get_result(block=True)``. Attributes: ``client``, ``result_id``,
    ``called``, ``raised``, ``callbacks``. Sorting orders by ``result_id``.

    The result is held by this client, not by the controller: it is lost
    with the client, and dropping the PendingResult forgets it.
    """

    def __init__(self, client, request, convert):
        self.client = client
        self.result_id = request.id
        self.called = False
        self.raised = False
        self.callbacks = []
        self._request = request
        self._convert = convert

    def get_result(self, default=None, block=True):
        if self.called:
            if self.raised:
                raise self.result
            return self.result
        if not block and not self._request.done():
            return default
        try:
            result = self._convert(self._request.result())
        except KeyboardInterrupt:
            raise               # still pending: the caller may ask again
        except BaseException as e:
            self.result, self.called, self.raised = e, True, True
            self._request = None
            raise
        for f, args, kwargs in self.callbacks:
            result = f(result, *args, **kwargs)
        self.result, self.called = result, True
        self._request = None
        return result

    def add_callback(self, f, *args, **kwargs):
        assert callable(f)
        self.callbacks.append((f, args, kwargs))

    @property
    def r(self):
        """Shortcut for ``get_result(block=True)``."""
        return self.get_result(block=True)

    def __lt__(self, other):
        return self.result_id < other.result_id

    def __repr__(self):
        state = 'done' if self.called or self._request.done() else 'pending'
        return '<PendingResult %d (%s)>' % (self.result_id, state)


class MultiEngineClient(object):
    """A blocking client to the controller's multi-engine interface.

    ``url_or_file`` is a ``plx+tcp://`` / ``plx+tls://`` URL, a connection
    file holding one, or ``''``: then ``$PLEXA_URL``, else the profile's
    ``security/ipcontroller-mec.url`` (``profile`` None means ``default``).
    ``timeout`` bounds the connection handshake, in seconds.

    ``targets`` ('all', an int, or a list/tuple of ints) and ``block``
    (True) are the defaults of every call's ``targets`` and ``block``.
    """

    def __init__(self, url_or_file='', profile=None, timeout=10.0):
        from plexa import _native
        self._client = _native.Client(url_or_file, profile, timeout)
        self.block = True
        self.targets = 'all'

    # -- argument defaults, as in 0.10 -----------------------------------

    def _findBlock(self, block=None):
        if block is None:
            return self.block
        if block in (True, False):
            return block
        raise ValueError('block must be True or False')

    def _findTargets(self, targets=None):
        if targets is None:
            targets = self.targets
        if isinstance(targets, str):
            if targets != 'all':
                raise ValueError("targets must be 'all', an int, or a list or tuple of ints")
            return None
        if isinstance(targets, int) and not isinstance(targets, bool):
            return [targets]
        if isinstance(targets, (list, tuple)):
            return list(targets)
        raise ValueError('targets must be a str, list, tuple or int')

    def _findTargetsAndBlock(self, targets=None, block=None):
        return self._findTargets(targets), self._findBlock(block)

    # -- calls -------------------------------------------------------------

    def get_ids(self):
        """The ids of the registered engines, e.g. ``[0, 1, 2, 3]``."""
        return self._client.get_ids()

    def execute(self, lines, targets=None, block=None):
        """Run the Python source ``lines`` on the target engines.

        Blocking: returns a :class:`ResultList`. Non-blocking: returns a
        :class:`PendingResult` whose result is that ResultList. If the code
        raised on any engine, a :class:`CompositeError` listing every such
        engine is raised instead (by ``get_result`` when non-blocking).
        """
        targets, block = self._findTargetsAndBlock(targets, block)
        if block:
            return _execute_value(self._client.execute(lines, targets))
        return PendingResult(self, self._client.submit_execute(lines, targets), _execute_value)

    def close(self):
        """Disconnect. Calls waiting in other threads fail with ConnectionError."""
        self._client.close()

    def __len__(self):
        """The number of registered engines."""
        return len(self.get_ids())

    def __repr__(self):
        peer = self._client.peer
        return '<MultiEngineClient %s>' % (peer if peer else 'closed')


def get_multiengine_client(url_or_file='', profile=None):
    """0.10's factory: ``MultiEngineClient(url_or_file, profile)``."""
    return MultiEngineClient(url_or_file, profile)
