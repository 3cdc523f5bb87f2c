"""The clients (IPython 0.10's ``IPython.kernel.client``): the multi-engine
interface (:class:`MultiEngineClient`) and the load-balanced task interface
(:class:`TaskClient`, with :class:`MapTask`, :class:`StringTask` and
:class:`TaskResult` from :mod:`plexa.task`).

::

    from plexa import client
    mec = client.MultiEngineClient()      # the default profile's connection file
    mec.get_ids()                         # [0, 1]
    mec.execute('a = 10')                 # <Results List> ...
    mec.push(dict(b=5)); mec.pull('b')    # [None, None]; [5, 5]
    mec.scatter('x', range(10)); mec.gather('x')
    mec.map(lambda x: x**2, range(10))
    mec.activate()                        # %px, %result, %autopx in IPython

Every verb takes ``targets=None, block=None``, falling back to the
client's ``targets`` ('all') and ``block`` (True) attributes; with
``block=False`` it returns a :class:`PendingResult`.

::

    tc = client.TaskClient()              # the profile's ipcontroller-tc.url
    tc.map(lambda x: x**10, range(16))    # load balanced, order preserved
    tid = tc.run(client.MapTask(f, args=(10,)))
    tc.barrier(tid); tc.get_task_result(tid)

Importing this module needs no cluster and does not load the C extension;
connecting does.
"""

import os
import sys
import threading
import time
import weakref

from plexa import error  # noqa: F401  (0.10's client module exposed it too)
from plexa import _map as Map
from plexa._map import MultiEngineMapper, ParallelFunction, TaskMapper, chunk_count
from plexa.task import BaseTask, MapTask, ResultNS, StringTask, TaskResult  # noqa: F401
from plexa.task import _set_times
from plexa.error import (  # noqa: F401  (re-exported, as 0.10's client module did)
    AbortedPendingDeferredError, CompositeError, ConnectionError, EngineError,
    FileTimeoutError, InvalidDeferredID, InvalidEngineID, KernelError, MessageSizeError,
    MissingBlockArgument, NoEnginesRegistered, NotAPendingResult, ProtocolError,
    QueueCleared, RemoteError, ResultEvicted, ResultNotCompleted, SecurityError,
    SerializationError, StopLocalExecution, TaskAborted, TaskRejectError, TaskTimeout,
    remote_error,
)

__all__ = ['MultiEngineClient', 'PendingResult', 'ResultList', 'QueueStatusList',
           'CompositeError', 'get_multiengine_client', 'wrapResultList', 'remote',
           'TaskClient', 'get_task_client', 'MapTask', 'StringTask', 'TaskResult',
           'StatusClient']


# ---- pretty-printing lists ---------------------------------------------------

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


# ---- converting the native replies --------------------------------------------
#
# _native's requests answer with one tuple per target engine, in target order:
# (engine_id, method, execute, values, error), execute None or (number, input,
# stdout, stderr), values a list, error None or (ename, evalue, traceback).

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
        err = reply[4]
        if err is not None:
            ename, evalue, traceback = err
            elist.append((ename, evalue, traceback, reply[0], method))
    if elist:
        raise CompositeError('one or more exceptions from call to method: %s' % method, elist)
    return replies


def _execute_value(replies, method='execute'):
    """Per-engine execute outcomes -> ResultList (or a CompositeError)."""
    _check(replies, method)
    results = ResultList()
    for engine_id, _m, ex, _values, _err in replies:
        number, code, stdout, stderr = ex if ex is not None else (0, '', '', '')
        results.append(_result_dict(engine_id, number, code, stdout, stderr))
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
        return [r[3][0] if r[3] else None for r in replies]
    return convert


def _pull_value(keys_is_str, method='pull'):
    def convert(replies):
        _check(replies, method)
        if keys_is_str:
            return [r[3][0] for r in replies]
        return [list(r[3]) for r in replies]
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
    for engine_id, pending, queue in replies:
        pending, queue = list(pending), list(queue)
        # Requests sent ahead to the engine wait there behind the first one.
        out.append((engine_id, {'pending': pending[0] if pending else repr(None),
                                'queue': pending[1:] + queue}))
    return out


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


# ---- the client ---------------------------------------------------------------

def _native_targets(targets):
    """The client's targets in _native's form: None (all), an int or a list."""
    if isinstance(targets, str):
        return None
    if isinstance(targets, tuple):
        return list(targets)
    return targets


def _profile_bool(profile, section, key, default):
    """A yes/no setting of the profile's cluster.conf ($PLEXA_DIR or
    ~/.plexa, profile_NAME/cluster.conf); default when the file or the key
    is missing. The controller and ipcluster read the same file (and refuse
    a value that is not a yes/no word, with the line)."""
    import configparser
    root = os.environ.get('PLEXA_DIR') or os.path.join(os.path.expanduser('~'), '.plexa')
    path = os.path.join(root, 'profile_%s' % (profile or 'default'), 'cluster.conf')
    cp = configparser.ConfigParser(interpolation=None, strict=False,
                                   inline_comment_prefixes=('#', ';'))
    try:
        cp.read(path)
        return cp.getboolean(section, key, fallback=default)
    except (configparser.Error, ValueError, OSError):
        return default


def _trust(trust_engine_pickles, profile):
    """Whether a client unpickles what engines send: the argument, else the
    profile's [client] trust_engine_pickles (default true)."""
    if trust_engine_pickles is not None:
        return bool(trust_engine_pickles)
    return _profile_bool(profile, 'client', 'trust_engine_pickles', True)


class MultiEngineClient(object):
    """A client to the controller's multi-engine interface (IPython 0.10's
    ``FullBlockingMultiEngineClient`` + ``InteractiveMultiEngineClient``).

    ``url_or_file`` is a ``plx+tcp://`` / ``plx+tls://`` URL, a connection
    file holding one, or ``''``: then ``$PLEXA_URL``, else the profile's
    ``security/ipcontroller-mec.url`` (``profile`` None means ``default``).
    ``timeout`` bounds the connection handshake, in seconds.

    ``targets`` ('all', an int, or a list/tuple of ints) and ``block``
    (True) are the defaults of every call's ``targets`` and ``block``.

    Remote exceptions raise :class:`CompositeError` (one line per failed
    engine); a bad target raises InvalidEngineID; a lost controller raises
    ConnectionError.

    ``trust_engine_pickles``: whether values engines send may be unpickled
    (None: the profile's ``[client] trust_engine_pickles``, true by
    default). False accepts only plexa's native values (None, bool, int,
    float, str, bytes, numpy arrays, lists and tuples of them); anything
    else arrives as that engine's error (UntrustedPickle), since unpickling
    would run code chosen by whoever holds the engine token.
    """

    def __init__(self, url_or_file='', profile=None, timeout=10.0, trust_engine_pickles=None):
        from plexa import _native
        self._client = _native.Client(url_or_file, profile, timeout,
                                      trust_pickles=_trust(trust_engine_pickles, profile))
        self.block = True
        self.targets = 'all'
        self._pending = weakref.WeakSet()

    # -- argument defaults, as in 0.10 -----------------------------------

    def _findBlock(self, block=None):
        if block is None:
            return self.block
        if block in (True, False):
            return bool(block)
        raise ValueError('block must be True or False')

    def _findTargets(self, targets=None):
        if targets is None:
            targets = self.targets
        if isinstance(targets, bool):
            raise ValueError('targets must be a str, list, tuple or int')
        if isinstance(targets, str):
            if targets != 'all':
                raise ValueError("targets must be 'all', an int, or a list or tuple of ints")
            return targets
        if isinstance(targets, int):
            return targets
        if isinstance(targets, (list, tuple)):
            for t in targets:
                if isinstance(t, bool) or not isinstance(t, int):
                    raise ValueError('targets must be a str, list, tuple or int')
            return targets
        raise ValueError('targets must be a str, list, tuple or int')

    def _findTargetsAndBlock(self, targets=None, block=None):
        return self._findTargets(targets), self._findBlock(block)

    def _engine_list(self, targets):
        """The engine ids that targets names, checked against the registered
        ones (0.10's _process_targets): scatter, gather and map partition
        over them."""
        ids = self.get_ids()
        if isinstance(targets, str):
            if not ids:
                raise NoEnginesRegistered('There are no engines registered.')
            return ids
        engines = [targets] if isinstance(targets, int) else list(targets)
        for t in engines:
            if t not in ids:
                raise InvalidEngineID('engine with id %r does not exist' % (t,))
        return engines

    def _finish(self, requests, convert, block):
        """Blocking: the converted value. Otherwise a PendingResult."""
        pr = PendingResult(self, requests, convert)
        if block:
            return pr.get_result(block=True)
        self._pending.add(pr)
        return pr

    # -- the IMultiEngine verbs ---------------------------------------------

    def get_ids(self):
        """The ids of the registered engines, e.g. ``[0, 1, 2, 3]``.
        Always synchronous."""
        return list(self._client.get_ids())

    def execute(self, lines, targets=None, block=None):
        """Run the Python source ``lines`` on the target engines.

        Blocking: returns a :class:`ResultList`. Non-blocking: returns a
        :class:`PendingResult` whose result is that ResultList. If the code
        raised on any engine, a :class:`CompositeError` listing every such
        engine is raised instead (by ``get_result`` when non-blocking).
        """
        targets, block = self._findTargetsAndBlock(targets, block)
        req = self._client.submit_execute(lines, _native_targets(targets))
        return self._finish(req, _execute_value, block)

    def push(self, namespace, targets=None, block=None):
        """Push a dict of names and values into the engines' namespaces.
        Returns ``[None]`` per engine."""
        return self._push(namespace, targets, block, 'push')

    def _push(self, namespace, targets, block, method):
        targets, block = self._findTargetsAndBlock(targets, block)
        if not isinstance(namespace, dict):
            raise TypeError('namespace must be a dict')
        items = [(str(k), v) for k, v in namespace.items()]
        req = self._client.submit_push(_native_targets(targets), items)
        return self._finish(req, _none_value(method), block)

    def pull(self, keys, targets=None, block=None):
        """Pull values by name from the engines' namespaces: for a str key,
        one value per engine; for a sequence of keys, one list per engine.
        An unknown name raises CompositeError (NameError on each engine)."""
        return self._pull(keys, targets, block, 'pull')

    def _pull(self, keys, targets, block, method):
        targets, block = self._findTargetsAndBlock(targets, block)
        is_str = isinstance(keys, str)
        klist = [keys] if is_str else list(keys)
        for k in klist:
            if not isinstance(k, str):
                raise TypeError('objects must be keyed by strings.')
        req = self._client.submit_pull(_native_targets(targets), klist)
        return self._finish(req, _pull_value(is_str, method), block)

    def push_function(self, namespace, targets=None, block=None):
        """Push functions (a dict of name: function) to the engines.
        Lambdas and closures work too (cloudpickle)."""
        for k, v in dict(namespace).items():
            if not callable(v):
                raise TypeError('push_function: %r is not a function' % (k,))
        return self._push(namespace, targets, block, 'push_function')

    def pull_function(self, keys, targets=None, block=None):
        """Pull functions by name from the engines (like ``pull``)."""
        return self._pull(keys, targets, block, 'pull_function')

    def zip_pull(self, keys, targets=None, block=None):
        """``pull`` transposed: ``zip_pull(('a', 'b'))`` gives
        ``[(a0, a1, ...), (b0, b1, ...)]``; for one target engine, that
        engine's values."""
        targets, block = self._findTargetsAndBlock(targets, block)
        multitargets = not isinstance(targets, int) and \
            (isinstance(targets, str) or len(targets) > 1)

        def transform(result):
            if not multitargets:
                return result[0]
            if isinstance(keys, str):
                return list(result)
            return list(zip(*result))
        r = self.pull(keys, targets=targets, block=block)
        if block:
            return transform(r)
        r.add_callback(transform)
        return r

    def get_result(self, i=None, targets=None, block=None):
        """The result dict (as a ResultList) of command ``i`` of each
        engine's history; ``None`` means the last command."""
        targets, block = self._findTargetsAndBlock(targets, block)
        if i is not None and (isinstance(i, bool) or not isinstance(i, int)):
            raise TypeError('i must be an int or None')
        req = self._client.submit_call(_native_targets(targets), 'get_result', [i])
        return self._finish(req, lambda r: _execute_value(r, 'get_result'), block)

    def reset(self, targets=None, block=None):
        """Clear the engines' namespaces."""
        targets, block = self._findTargetsAndBlock(targets, block)
        req = self._client.submit_call(_native_targets(targets), 'reset', [])
        return self._finish(req, _none_value('reset'), block)

    def keys(self, targets=None, block=None):
        """The names in each engine's namespace: one list per engine."""
        targets, block = self._findTargetsAndBlock(targets, block)
        req = self._client.submit_call(_native_targets(targets), 'keys', [])

        def convert(replies):
            _check(replies, 'keys')
            return [list(r[3][0]) if r[3] else [] for r in replies]
        return self._finish(req, convert, block)

    def kill(self, controller=False, targets=None, block=None):
        """Stop the target engines; with ``controller=True`` the controller
        (and so every engine) too."""
        targets, block = self._findTargetsAndBlock(targets, block)
        if controller:
            targets = 'all'
        req = self._client.submit_kill(_native_targets(targets), bool(controller))
        if not controller:
            return self._finish(req, _none_value('kill'), block)

        def convert(replies):
            return None
        pr = PendingResult(self, req, convert)
        try:
            return pr.get_result(block=True) if block else pr
        except ConnectionError:
            return None     # the controller went before its answer: it is gone

    def clear_queue(self, targets=None, block=None):
        """Drop the requests waiting in the controller for the engines; they
        fail with QueueCleared. The running one is not interrupted."""
        targets, block = self._findTargetsAndBlock(targets, block)
        req = self._client.submit_clear_queue(_native_targets(targets))
        return self._finish(req, _none_value('clear_queue'), block)

    def interrupt(self, targets=None, block=None):
        """Interrupt what the target engines are running (plexa; like Ctrl-C
        in a local session): the running code gets a KeyboardInterrupt, its
        request ends with that error, and the engine serves the next
        request. Requests still queued are not touched (``clear_queue``
        drops those). Returns ``[None]`` per engine."""
        targets, block = self._findTargetsAndBlock(targets, block)
        req = self._client.submit_interrupt(_native_targets(targets))
        return self._finish(req, _none_value('interrupt'), block)

    def queue_status(self, targets=None, block=None):
        """What each engine runs and what waits for it: a QueueStatusList."""
        targets, block = self._findTargetsAndBlock(targets, block)
        req = self._client.submit_queue_status(_native_targets(targets))
        return self._finish(req, _queue_status_value, block)

    # -- scatter, gather, map -------------------------------------------------

    def scatter(self, key, seq, dist='b', flatten=False, targets=None, block=None):
        """Partition ``seq`` over the target engines and push each engine its
        partition as ``key``. With ``flatten``, a 1-element partition is sent
        as the element itself. Returns ``[None]`` per engine."""
        targets, block = self._findTargetsAndBlock(targets, block)
        mapObject = Map.get_map(dist)
        seq = Map.as_sequence(seq)
        engines = self._engine_list(targets)
        n = len(engines)
        reqs = []
        try:
            for index, engine_id in enumerate(engines):
                partition = mapObject.getPartition(seq, index, n)
                if flatten and len(partition) == 1:
                    partition = partition[0]
                reqs.append(self._client.submit_push(engine_id, [(str(key), partition)]))
        except BaseException:
            for r in reqs:
                r.cancel()
            raise
        return self._finish(reqs, _multi(lambda rs: [None] * len(rs), 'scatter'), block)

    def gather(self, key, dist='b', targets=None, block=None):
        """Pull ``key`` from the target engines and join the partitions:
        numpy arrays concatenated, lists and tuples joined into a list."""
        targets, block = self._findTargetsAndBlock(targets, block)
        mapObject = Map.get_map(dist)
        engines = self._engine_list(targets)
        req = self._client.submit_pull(engines, [str(key)])

        def convert(replies):
            _check(replies, 'gather')
            return mapObject.joinPartitions([r[3][0] for r in replies])
        return self._finish(req, convert, block)

    def raw_map(self, func, seqs, dist='b', targets=None, block=None):
        """``map(func, seqs[0], seqs[1], ...)`` in parallel: the sequences are
        block-partitioned over the engines, each maps its part, the results
        are joined in order. Not load balanced. ``func`` may also be the
        name (a str) of a function defined on the engines."""
        targets, block = self._findTargetsAndBlock(targets, block)
        if not isinstance(seqs, (list, tuple)):
            raise TypeError('sequences must be a list or tuple')
        if not seqs:
            raise TypeError('map() must have at least two arguments.')
        seqs = [Map.as_sequence(s) for s in seqs]
        max_len = max(len(s) for s in seqs)
        for s in seqs:
            if len(s) != max_len:
                raise ValueError('all sequences must have equal length')
        if isinstance(func, str):
            func = Map._EngineName(func)
        elif not callable(func):
            raise TypeError('func must be a function or str')
        mapObject = Map.get_map(dist)
        engines = self._engine_list(targets)
        n = len(engines)
        reqs = []
        try:
            for index, engine_id in enumerate(engines):
                parts = [mapObject.getPartition(s, index, n) for s in seqs]
                if len(parts[0]) == 0:
                    continue        # nothing for this engine
                reqs.append(self._client.submit_call(engine_id, 'map', [func, parts]))
        except BaseException:
            for r in reqs:
                r.cancel()
            raise

        def convert(list_of_replies):
            replies = [r for rs in list_of_replies for r in rs]
            _check(replies, 'map')
            return Map.flatten(list(r[3][0]) for r in replies)
        if not reqs:
            reqs = [_Done([])]
        return self._finish(reqs, convert, block)

    def map(self, func, *sequences):
        """A parallel ``map(func, *sequences)`` over all engines (0.10:
        ``self.mapper().map(...)``), returning a list."""
        return self.mapper().map(func, *sequences)

    def mapper(self, dist='b', targets='all', block=None):
        """A MultiEngineMapper whose ``map`` uses these arguments."""
        return MultiEngineMapper(self, dist, targets, block)

    def parallel(self, dist='b', targets=None, block=None):
        """A decorator that turns a function into a parallel function::

            @mec.parallel()
            def f(x, y): ...
            f(range(10), range(10))     # f(0, 0), f(1, 1), ... in parallel
        """
        targets, block = self._findTargetsAndBlock(targets, block)
        return ParallelFunction(self.mapper(dist, targets, block))

    # -- extras -------------------------------------------------------------

    def run(self, filename, targets=None, block=None):
        """Run the local Python file ``filename`` on the engines. A syntax
        error is raised here, before anything is sent."""
        targets, block = self._findTargetsAndBlock(targets, block)
        with open(filename, 'r') as f:
            source = f.read()
        compile(source, filename, 'exec')
        return self.execute(source, targets=targets, block=block)

    def benchmark(self, push_size=10000):
        """Latency and push throughput of this cluster (0.10's benchmark).

        Returns ``{'single_engine_latency': (ms, 'msec'),
        'all_engine_latency': (ms, 'msec'), 'all_engine_push': (x, 'MB/sec'),
        'single_engine_push': (x, 'MB/sec')}``: latency of ``execute('pass')``
        and throughput of pushing ``numpy.zeros(push_size)``.
        """
        import timeit
        repeat, count = 3, 10
        first = self.get_ids()[0]
        g = {'_mec_self': self, '_first': first}
        benchmarks = {}
        timer = timeit.Timer('_mec_self.execute("pass", _first, block=True)', globals=g)
        result = 1000 * min(timer.repeat(repeat, count)) / count
        benchmarks['single_engine_latency'] = (result, 'msec')
        timer = timeit.Timer('_mec_self.execute("pass", block=True)', globals=g)
        result = 1000 * min(timer.repeat(repeat, count)) / count
        benchmarks['all_engine_latency'] = (result, 'msec')
        try:
            import numpy  # noqa: F401
        except ImportError:
            return benchmarks
        setup = "import numpy as np; d = dict(a=np.zeros(%r, dtype='float64'))" % push_size
        timer = timeit.Timer('_mec_self.push(d, block=True)', setup, globals=g)
        result = min(timer.repeat(repeat, count)) / count
        benchmarks['all_engine_push'] = (1e-6 * push_size * 8 / result, 'MB/sec')
        timer = timeit.Timer('_mec_self.push(d, _first, block=True)', setup, globals=g)
        result = min(timer.repeat(repeat, count)) / count
        benchmarks['single_engine_push'] = (1e-6 * push_size * 8 / result, 'MB/sec')
        return benchmarks

    # -- pending results -----------------------------------------------------

    def barrier(self, pendingResults):
        """Wait for every PendingResult, in ``result_id`` order. An error is
        trapped; asking that PendingResult for its result re-raises it."""
        prList = list(pendingResults)
        for pr in prList:
            if not isinstance(pr, PendingResult):
                raise NotAPendingResult('Objects passed to barrier must be PendingResult instances')
        prList.sort()
        for pr in prList:
            try:
                pr.get_result(block=True)
            except Exception:
                pass

    def flush(self):
        """Forget every result not yet retrieved through its PendingResult:
        asking one for its result then raises InvalidDeferredID. Requests
        still running go on running; their answers are dropped."""
        for pr in list(self._pending):
            pr._flush()
        self._pending = weakref.WeakSet()

    clear_pending_results = flush

    def get_pending_deferred(self, deferredID, block):
        """The result of this client's pending result ``deferredID`` (0.10's
        low-level call behind ``PendingResult.get_result``)."""
        for pr in list(self._pending):
            if pr.result_id == deferredID and not pr.called:
                sentinel = object()
                r = pr.get_result(sentinel, block=block)
                if r is sentinel:
                    raise ResultNotCompleted('result not completed: %r' % deferredID)
                return r
        raise InvalidDeferredID('invalid deferred_id: %r' % (deferredID,))

    # -- interactive use -----------------------------------------------------

    def activate(self):
        """Make this client the active one for the %px, %result and %autopx
        magics (and register them in the running IPython)."""
        from plexa import magics
        magics.activate(self)

    def __setitem__(self, key, value):
        """``mec['a'] = v``: ``push({'a': v})`` with the current targets/block."""
        targets, block = self._findTargetsAndBlock()
        return self.push({key: value}, targets=targets, block=block)

    def __getitem__(self, key):
        """``mec['a']``: ``pull('a')`` with the current targets/block."""
        if isinstance(key, str):
            targets, block = self._findTargetsAndBlock()
            return self.pull(key, targets=targets, block=block)
        raise TypeError('__getitem__ only takes strs')

    def __len__(self):
        """The number of registered engines."""
        return len(self.get_ids())

    # -- with mec: remote() ... ----------------------------------------------

    def __enter__(self):
        """``with mec:`` runs the body of the with block on the engines, not
        here: the block must begin with ``remote()``, which stops its local
        execution. The body's source is read from the caller's file (or
        IPython cell), dedented, and ``execute``d; its result is kept in
        ``_with_context_result``."""
        import linecache
        f = sys._getframe(1)
        filename = f.f_code.co_filename
        linecache.checkcache(filename)
        lines = linecache.getlines(filename, f.f_globals)
        if not lines:
            raise RuntimeError('cannot read the source of this with block (%s)' % filename)
        self._with_context_result = self.execute(strip_whitespace(lines[f.f_lineno:]))
        return self

    def __exit__(self, etype, value, tb):
        if etype is not None and issubclass(etype, StopLocalExecution):
            return True
        return False

    def close(self):
        """Disconnect. Calls waiting in other threads fail with ConnectionError."""
        self._client.close()

    def __repr__(self):
        peer = getattr(self._client, 'peer', None)
        return '<MultiEngineClient %s>' % (peer if peer else 'closed')


def remote():
    """The first statement of a ``with mec:`` block: stops its local run."""
    raise StopLocalExecution('Special exception to stop local execution of parallel code.')


def strip_whitespace(source):
    """The body of a ``with mec:`` block, dedented, from the lines that
    follow the ``with`` line (0.10's helper): the lines up to the first one
    indented less than the first (comments excepted), which must begin with
    a ``remote()`` call; what follows that call is returned."""
    wsource = [l.expandtabs(4) for l in source]
    col = None
    for line in wsource:
        if line.isspace() or not line:
            continue
        col = len(line) - len(line.lstrip(' '))
        break
    if col is None:
        raise ValueError('remote() call missing at the start of code')
    body = []
    for line in wsource:
        lead = line[:col]
        if line.strip() and not lead.isspace() and not line.lstrip().startswith('#'):
            break
        if lead.isspace() or not line.strip():
            body.append(line[col:])     # a misindented comment is skipped
    for nline, line in enumerate(body):
        if not line.strip() or line.startswith('#'):
            continue
        if 'remote()' in line:
            break
        raise ValueError('remote() call missing at the start of code')
    else:
        raise ValueError('remote() call missing at the start of code')
    return ''.join(body[nline + 1:]).rstrip()


def get_multiengine_client(url_or_file='', profile=None):
    """0.10's factory: ``MultiEngineClient(url_or_file, profile)``."""
    return MultiEngineClient(url_or_file, profile)


# ---- the task interface -----------------------------------------------------------

# TaskStatus of the wire schema (proto/plexa.proto); _native exports the same
# numbers as module constants, which TaskClient checks when it connects.
(TASK_PENDING, TASK_OK, TASK_FAILED, TASK_REJECTED, TASK_ABORTED, TASK_ENGINE_DIED,
 TASK_TIMEOUT, TASK_EVICTED, TASK_UNKNOWN) = range(9)
_STATUS_NAMES = ('TASK_PENDING', 'TASK_OK', 'TASK_FAILED', 'TASK_REJECTED', 'TASK_ABORTED',
                 'TASK_ENGINE_DIED', 'TASK_TIMEOUT', 'TASK_EVICTED', 'TASK_UNKNOWN')

# Ids per TaskWait request, tasks per TaskSubmit request: each message stays
# far below the controller's envelope and buffer limits (16 MiB, 65536
# buffers by default) however many tasks a call names.
_WAIT_BATCH = 4096
_SUBMIT_BATCH = 1024
# A blocking map shows its progress in at most this many steps.
_PROGRESS_STEPS = 100
# Most task ids run() reserves at once (the controller allows 2^20).
_RESERVE_MAX = 65536
# Results fetched by barrier() and kept here for the get_task_result() that
# usually follows (beyond this many, the oldest are fetched again instead).
_HANDOFF_MAX = 10000


def _spec(kind, args, clear_before=False, clear_after=False, retries=0, depend=None,
          after=(), recovery=None):
    """One task as _native.Client.submit_tasks takes it."""
    spec = {'kind': kind, 'args': list(args)}
    if clear_before:
        spec['clear_before'] = True
    if clear_after:
        spec['clear_after'] = True
    if retries:
        spec['retries'] = retries
    if depend is not None:
        spec['depend'] = depend
    if after:
        spec['after'] = list(after)
    if recovery is not None:
        spec['recovery'] = recovery
    return spec


def _task_spec(task, recovery_allowed=True):
    """The spec of a MapTask / StringTask, its recovery task included."""
    if not isinstance(task, BaseTask):
        raise TypeError('a task must be a MapTask or a StringTask, not %s'
                        % type(task).__name__)
    kind, args = task._payload()
    recovery = None
    if task.recovery_task is not None and task.retries > -1:
        if not recovery_allowed:
            raise ValueError('a recovery_task cannot have a recovery_task of its own '
                             '(plexa runs one recovery task per task)')
        recovery = _task_spec(task.recovery_task, False)
    return _spec(kind, args, task.clear_before, task.clear_after, max(task.retries, 0),
                 task.depend, task.after, recovery)


def _chunk_values(values):
    """A chunk task's results: its one list, or the lists of the pieces the
    controller cut it into, joined in order."""
    if len(values) == 1:
        return values[0]
    return [x for piece in values for x in piece]


def _task_error(reply, method='task'):
    """The exception a finished, unsuccessful task stands for."""
    tid, status, engine_id, _values, err = reply[:5]
    ename, evalue, tb = err if err else (None, '', '')
    if status == TASK_ABORTED:
        e = TaskAborted(evalue or 'task %i was aborted' % tid)
    elif status == TASK_TIMEOUT:
        e = TaskTimeout(evalue or 'task %i failed to execute due to unmet dependencies' % tid)
    elif status == TASK_ENGINE_DIED:
        e = EngineError(evalue or 'engine %s died while running task %i' % (engine_id, tid))
        e.engine_id = engine_id
    elif status == TASK_EVICTED:
        e = ResultEvicted(evalue or 'the result of task %i was evicted or cleared from the '
                          'controller' % tid)
    elif status == TASK_UNKNOWN:
        e = IndexError('task ID not registered: %r' % (tid,))
    elif status in (TASK_FAILED, TASK_REJECTED) and ename:
        e = remote_error(ename, evalue, tb, engine_id, method)
    else:
        e = KernelError('task %i ended with status %s%s' % (
            tid, _STATUS_NAMES[status] if 0 <= status < len(_STATUS_NAMES) else status,
            ': %s: %s' % (ename, evalue) if ename else ''))
    e.taskid = tid
    return e


class TaskClient(object):
    """A client to the controller's load-balanced task interface (IPython
    0.10's ``BlockingTaskClient``).

    ``url_or_file`` is a ``plx+tcp://`` / ``plx+tls://`` URL, a connection
    file holding one, or ``''``: then the profile's
    ``security/ipcontroller-tc.url`` (``profile`` None means ``default``).
    ``timeout`` bounds the connection handshake, in seconds.
    ``trust_engine_pickles`` as for MultiEngineClient.

    Tasks go into one FIFO queue in the controller and run on whichever
    engine is free; ids are ints, counted from 1 per controller. Results
    stay in the controller until fetched and evicted, or ``clear()``ed (the
    controller keeps a bounded number of them: an evicted one raises
    ResultEvicted).
    """

    def __init__(self, url_or_file='', profile=None, timeout=10.0, trust_engine_pickles=None):
        from plexa import _native
        self._client = _native.Client(url_or_file, profile, timeout, role='task',
                                      trust_pickles=_trust(trust_engine_pickles, profile))
        for name in _STATUS_NAMES:
            value = getattr(_native, name, None)
            if value is not None and value != globals()[name]:
                raise ProtocolError('plexa._native.%s is %r, expected %r'
                                    % (name, value, globals()[name]))
        self.block = True           # 0.10's attribute; the methods take block= themselves
        self._fetched = {}          # task id -> reply, fetched by barrier()
        self._background = []       # requests nobody waits for (clear of map chunks)
        self._ids_lock = threading.Lock()
        self._blk_next = self._blk_end = 0   # task ids reserved for run()
        self._blk_size = 64

    # -- plumbing ------------------------------------------------------------

    def _stream(self, spec):
        """Queue one task without waiting for the controller: its id comes
        from a block reserved for this connection (each refill 4x larger, so
        a loop of run() calls costs a round trip only now and then). The
        lock keeps ids and sends in the same order, which the controller
        checks."""
        with self._ids_lock:
            if self._blk_next >= self._blk_end:
                first, count = self._client.submit_task_reserve(self._blk_size).result()
                self._blk_next, self._blk_end = first, first + count
                self._blk_size = min(self._blk_size * 4, _RESERVE_MAX)
            tid = self._blk_next
            self._client.submit_tasks([spec], first_id=tid)
            self._blk_next = tid + 1
            return tid

    def _submit(self, specs):
        """Queue specs; their ids, in order."""
        reqs = []
        try:
            for i in range(0, len(specs), _SUBMIT_BATCH):
                reqs.append(self._client.submit_tasks(specs[i:i + _SUBMIT_BATCH]))
            ids = []
            for i, req in enumerate(reqs):
                first, count = req.result()
                want = min(_SUBMIT_BATCH, len(specs) - i * _SUBMIT_BATCH)
                ids.extend(range(first, first + count))
                if count != want:
                    raise KernelError('the controller accepted %d of %d tasks' % (count, want))
            return ids
        except BaseException:
            for r in reqs:
                r.cancel()
            raise

    def _wait_requests(self, ids, block):
        reqs = []
        try:
            for i in range(0, len(ids), _WAIT_BATCH):
                reqs.append(self._client.submit_task_wait(ids[i:i + _WAIT_BATCH], block))
        except BaseException:
            for r in reqs:
                r.cancel()
            raise
        return reqs

    def _wait(self, ids, block):
        """The replies for ids, in order: (task_id, status, engine_id,
        values, error, submitted, started, completed)."""
        reqs = self._wait_requests(ids, block)
        out = []
        try:
            for r in reqs:
                out.extend(r.result())
        except BaseException:
            for r in reqs:
                r.cancel()
            raise
        return out

    def _in_background(self, req):
        self._background = [r for r in self._background if not r.done()]
        self._background.append(req)

    @staticmethod
    def _present(reply):
        """A reply as get_task_result gives it: None while pending, the value
        (MapTask), a TaskResult (StringTask), or raises.

        The engine answers a map task with [value] and a string task with
        [pulled dict, stdout, stderr] (also when its code raised), so a
        result says what it is: no record of the tasks' kinds is kept."""
        tid, status, engine_id, values, _err, submitted, started, completed = reply[:8]
        if status == TASK_PENDING:
            return None
        if status in (TASK_OK, TASK_FAILED) and len(values) == 3 and isinstance(values[0], dict):
            tr = TaskResult(values[0] if status == TASK_OK else _task_error(reply), engine_id)
            tr.taskid = tid
            tr.stdout, tr.stderr = values[1], values[2]
            return _set_times(tr, submitted, started, completed)
        if status == TASK_OK:
            # A map task has one value; a chunk cut into pieces one list each.
            return _chunk_values(values) if len(values) > 1 else (values[0] if values else None)
        raise _task_error(reply)

    # -- the ITaskController verbs -----------------------------------------

    def run(self, task, block=False):
        """Queue a task (MapTask or StringTask) and return its int id; with
        ``block=True``, wait and return its result (``get_task_result``)."""
        spec = _task_spec(task)
        tid = self._stream(spec)
        task.taskid = tid
        if block:
            return self.get_task_result(tid, block=True)
        return tid

    def get_task_result(self, taskid, block=False):
        """The result of task ``taskid``: None if it is not finished and
        ``block`` is False. A MapTask's result is the function's return
        value (a failure raises the remote error); a StringTask's is a
        TaskResult. An aborted task raises TaskAborted, one whose depend()
        no engine met TaskTimeout, one whose engine died (retries spent)
        EngineError, an evicted or cleared one ResultEvicted, an unknown id
        IndexError."""
        taskid = _check_taskid(taskid)
        reply = self._fetched.pop(taskid, None)
        if reply is None:
            reply = self._wait([taskid], bool(block))[0]
        try:
            return self._present(reply)
        except KernelError as e:
            raise e.with_traceback(None) from None

    def abort(self, taskid):
        """Abort a task: a queued one is dropped, a running one is
        interrupted on its engine (KeyboardInterrupt; the engine then serves
        the next task). Either way its result is TaskAborted and it is not
        retried. IndexError if it already completed or was aborted."""
        if isinstance(taskid, bool) or not isinstance(taskid, int):
            raise TypeError('an integer task id expected: %r' % (taskid,))
        try:
            self._client.submit_task_abort([taskid]).result()
        except KernelError as e:
            msg = str(e)
            if 'already completed' in msg:
                raise IndexError('Task Already Completed') from None
            if 'already aborted' in msg:
                raise IndexError('Task Already Aborted') from None
            if 'does not exist' in msg:
                raise IndexError('No task #%i' % taskid) from None
            raise

    def barrier(self, taskids):
        """Wait until the tasks (an id or a list of ids) have finished.
        Their errors are not raised here (get_task_result raises them)."""
        ids = [_check_taskid(taskids)] if isinstance(taskids, int) else \
            [_check_taskid(t) for t in taskids]
        for reply in self._wait(ids, True):
            if reply[1] not in (TASK_PENDING, TASK_EVICTED, TASK_UNKNOWN):
                self._fetched[reply[0]] = reply
        while len(self._fetched) > _HANDOFF_MAX:
            del self._fetched[next(iter(self._fetched))]

    def spin(self):
        """0.10 poked its scheduler with this; plexa's schedules on every
        event, so it only checks that the controller answers."""
        self._client.get_ids()

    def queue_status(self, verbose=False):
        """``{'pending': ..., 'scheduled': ..., 'succeeded': ..., 'failed':
        ...}``: counts, or lists of task ids when ``verbose``. pending =
        queued in the controller (or waiting for its ``after`` tasks),
        scheduled = sent to an engine, succeeded / failed = finished and
        still held by the controller."""
        raw = self._client.submit_task_queue_status(bool(verbose)).result()
        return _queue_status_dict(raw, verbose)

    def clear(self, taskids=None):
        """Free finished tasks' results in the controller (all of them, or
        those listed); fetching one later raises ResultEvicted. Unfinished
        tasks are not touched. Returns how many results were freed (counted
        from queue_status, so tasks finishing meanwhile may blur it)."""
        if taskids is None:
            ids = []
        elif isinstance(taskids, int):
            ids = [_check_taskid(taskids)]
        else:
            ids = [_check_taskid(t) for t in taskids]
        if taskids is not None and not ids:
            return 0
        before = self.queue_status()
        self._client.submit_task_clear(ids).result()
        after = self.queue_status()
        if taskids is None:
            self._fetched.clear()
        for tid in ids:
            self._fetched.pop(tid, None)
        return max(0, (before['succeeded'] + before['failed'])
                   - (after['succeeded'] + after['failed']))

    # -- map -------------------------------------------------------------

    def map(self, func, *sequences, chunksize=None):
        """A load-balanced ``map(func, *sequences)``: the list of results, in
        order. Elements are grouped into chunk tasks (``chunksize`` elements
        each; None picks it from the length and the number of engines, see
        docs/python-api.md). The first failing task's error is raised."""
        return self.mapper(chunksize=chunksize).map(func, *sequences)

    def mapper(self, clear_before=False, clear_after=False, retries=0, recovery_task=None,
               depend=None, block=True, chunksize=None):
        """A TaskMapper whose ``map`` uses these task options (see
        :class:`plexa.task.BaseTask`); ``block=False`` makes ``map`` return a
        PendingResult."""
        return TaskMapper(self, clear_before=clear_before, clear_after=clear_after,
                          retries=retries, recovery_task=recovery_task, depend=depend,
                          block=block, chunksize=chunksize)

    def parallel(self, clear_before=False, clear_after=False, retries=0, recovery_task=None,
                 depend=None, block=True, chunksize=None):
        """A decorator making a function a load-balanced parallel function::

            @tc.parallel()
            def f(x): ...
            f(range(100))           # [f(0), f(1), ...], load balanced
        """
        return ParallelFunction(self.mapper(clear_before, clear_after, retries, recovery_task,
                                            depend, block, chunksize))

    def _map(self, func, arglist, m):
        """TaskMapper.map: submit arglist as tasks, gather in order."""
        n = len(arglist)
        if n == 0:
            return [] if m.block else PendingResult(self, [_Done([])], lambda rs: [])
        per_element = m.chunksize == 1 or (m.chunksize is None and (
            m.recovery_task is not None or m.clear_before or m.clear_after))
        # The same function (and depend) objects in every spec: _native
        # pickles each object once per submission, not once per task.
        f, depend = func, m.depend
        recovery = None
        if m.recovery_task is not None and m.retries > -1:
            recovery = _task_spec(m.recovery_task)
        opts = (m.clear_before, m.clear_after, max(m.retries, 0), depend, (), recovery)
        if per_element:
            nchunks = n
            specs = [_spec('map', [f, args, {}], *opts) for args in arglist]
        else:
            nchunks = chunk_count(n, len(self._client.get_ids()), m.chunksize)
            specs = [_spec('chunk', [f, arglist[j::nchunks]], *opts) for j in range(nchunks)]
        del arglist
        ids = self._submit(specs)
        del specs
        # Waits in up to _PROGRESS_STEPS batches, each weighted by its
        # elements, so progress shows as the map advances.
        step = max(1, -(-len(ids) // _PROGRESS_STEPS))
        step = min(step, _WAIT_BATCH)
        reqs, weights = [], []
        for i in range(0, len(ids), step):
            reqs.append(self._client.submit_task_wait(ids[i:i + step], True))
            weights.append(sum(1 if per_element else
                               n // nchunks + (1 if j < n % nchunks else 0)
                               for j in range(i, min(i + step, len(ids)))))

        def convert(list_of_replies):
            out = [None] * n
            failed = None
            j = 0
            busy = 0.0
            for replies in list_of_replies:
                for reply in replies:
                    status, values = reply[1], reply[3]
                    if reply[6] and reply[7]:
                        busy += reply[7] - reply[6]
                    if status != TASK_OK:
                        if failed is None:
                            failed = reply
                    elif per_element:
                        out[j] = values[0]
                    else:
                        out[j::nchunks] = _chunk_values(values)
                    j += 1
            self._in_background(self._client.submit_task_clear(ids))
            pr.serial_time = busy
            if failed is not None:
                raise _task_error(failed, 'map')
            return out

        pr = PendingResult(self, reqs, convert, weights, 'elements')
        pr.task_ids = ids
        if not m.block:
            return pr
        try:
            pr._wait_showing(0.1, -1, delay=_progress_delay(), force=False)
            return pr.get_result(block=True)
        except KeyboardInterrupt:
            self._abort_unfinished(ids)
            self._in_background(self._client.submit_task_clear(ids))
            raise

    def _abort_unfinished(self, ids):
        """Abort those of ids that have not finished (Ctrl-C in a map)."""
        wanted = set(ids)
        for _attempt in range(3):
            qs = self.queue_status(verbose=True)
            todo = [t for t in qs['pending'] + qs['scheduled'] if t in wanted]
            if not todo:
                return
            try:
                self._client.submit_task_abort(todo).result()
                return
            except KernelError:
                continue    # one finished meanwhile: look again

    # -- extras ----------------------------------------------------------------

    def get_ids(self):
        """The ids of the registered engines (plexa; as MultiEngineClient's)."""
        return list(self._client.get_ids())

    def close(self):
        """Disconnect. Calls waiting in other threads fail with ConnectionError."""
        self._client.close()

    def __repr__(self):
        peer = getattr(self._client, 'peer', None)
        return '<TaskClient %s>' % (peer if peer else 'closed')


def _progress_delay():
    from plexa import progress
    return progress.AUTO_DELAY_S


def _check_taskid(taskid):
    if isinstance(taskid, bool) or not isinstance(taskid, int):
        raise TypeError('task ids are ints, not %r' % (taskid,))
    return taskid


def _queue_status_dict(raw, verbose):
    """_native's task queue status -> 0.10's dict."""
    keys = ('pending', 'scheduled', 'succeeded', 'failed')
    if isinstance(raw, dict):
        d = raw
    else:
        d = dict(zip(keys, raw))
    out = {}
    for k in keys:
        v = d[k]
        if verbose:
            out[k] = list(v) if not isinstance(v, int) else v
        else:
            out[k] = v if isinstance(v, int) else len(v)
    return out


def get_task_client(url_or_file='', profile=None):
    """0.10's factory: ``TaskClient(url_or_file, profile)``."""
    return TaskClient(url_or_file, profile)


class StatusClient(object):
    """A read-only view of a running cluster through the ``status``
    capability (``ipcontroller-status.url``): it can list the engines and
    see what they and the task queue hold, and nothing else. Give it to
    monitoring scripts and dashboards instead of the ``mec`` or ``task``
    connection file, which can run code on every engine.

    ``url_or_file`` is a ``plx+...`` URL or a connection file; by default the
    profile's ``security/ipcontroller-status.url`` (profile ``default``)."""

    def __init__(self, url_or_file='', profile=None, timeout=10.0):
        from plexa import _native
        self._client = _native.Client(url_or_file, profile, timeout, role='status')

    def get_ids(self):
        """The ids of the registered engines."""
        return list(self._client.get_ids())

    def queue_status(self, targets='all'):
        """What each engine runs and what waits for it, as
        MultiEngineClient.queue_status shows it."""
        req = self._client.submit_queue_status(_native_targets(targets))
        return _queue_status_value(req.result())

    def task_queue_status(self, verbose=False):
        """The task queue's counts (or task ids with ``verbose``), as
        TaskClient.queue_status shows them."""
        raw = self._client.submit_task_queue_status(bool(verbose)).result()
        return _queue_status_dict(raw, verbose)

    def close(self):
        self._client.close()

    def __repr__(self):
        peer = getattr(self._client, 'peer', None)
        return '<StatusClient %s>' % (peer if peer else 'closed')
