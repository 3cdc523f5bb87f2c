"""The multi-engine interface (IPython 0.10's ``MultiEngineClient``; part of
:mod:`plexa.client`, which re-exports the public names).

  MultiEngineClient          every verb on explicitly named engines
  remote, strip_whitespace   the ``with mec: remote() ...`` block
  get_multiengine_client     0.10's factory
  _trust, _native_targets    shared with the task and status clients
"""

import os
import sys
import time
import weakref

from plexa import _map as Map
from plexa import shared
from plexa._map import MultiEngineMapper, ParallelFunction
from plexa._callbacks import Callbacks
from plexa._tb import boundary, hide_frames
from plexa._pending import PendingResult, _deadline, _Done, blocking_result
from plexa._results import (_check, _execute_value, _multi, _none_value, _pull_value,
                            _queue_status_value)
from plexa.error import (ConnectionError, InvalidDeferredID, InvalidEngineID, KernelError,
                         NoEnginesRegistered, NotAPendingResult, ResultNotCompleted,
                         StopLocalExecution, remote_error)


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


def _url_arg(url_or_file, furl_or_file):
    """The connection argument, given under plexa's name or under 0.10's
    (``furl_or_file``, which named a Foolscap FURL or a file holding one)."""
    if furl_or_file is None:
        return url_or_file
    if url_or_file:
        raise TypeError('give url_or_file or furl_or_file, not both')
    return furl_or_file


def _trust(trust_engine_pickles, profile):
    """Whether a client unpickles what engines send: the argument, else the
    profile's [client] trust_engine_pickles (default true)."""
    if trust_engine_pickles is not None:
        return bool(trust_engine_pickles)
    return _profile_bool(profile, 'client', 'trust_engine_pickles', True)


@hide_frames
class MultiEngineClient(object):
    """A client to the controller's multi-engine interface (IPython 0.10's
    ``FullBlockingMultiEngineClient`` + ``InteractiveMultiEngineClient``).

    ``url_or_file`` is a ``plx+tcp://`` / ``plx+tls://`` URL, a connection
    file holding one, or ``''``: then ``$PLEXA_URL``, else the profile's
    ``security/ipcontroller-mec.url`` (``profile`` None means ``default``).
    0.10's keyword ``furl_or_file`` is accepted for it.
    ``timeout`` bounds the connection handshake, in seconds.

    ``targets`` ('all', an int, or a list/tuple of ints) and ``block``
    (True) are the defaults of every call's ``targets`` and ``block``.

    Remote exceptions raise :class:`CompositeError` (one line per failed
    engine); a bad target raises InvalidEngineID; a lost controller raises
    ConnectionError.

    A non-blocking call's PendingResult is a ``concurrent.futures.Future``
    that resolves when the reply arrives (on this client's
    ``plexa-callbacks`` thread, started with the first one), awaitable in
    asyncio; ``cancel()`` drops a request still queued in the controller.

    ``trust_engine_pickles``: whether values engines send may be unpickled
    (None: the profile's ``[client] trust_engine_pickles``, true by
    default). False accepts only plexa's native values (None, bool, int,
    float, str, bytes, numpy arrays, lists and tuples of them); anything
    else arrives as that engine's error (UntrustedPickle), since unpickling
    would run code chosen by whoever holds the engine token.

    ``sshserver`` (``'user@login'``), ``sshkey``: reach the controller
    through an ssh server, a cluster's login node (ipyparallel's names):
    the system's OpenSSH forwards a local port to the address in the
    connection file as the server sees it, with the user's ssh config and
    agent ($PLEXA_SSH: the command, e.g. ``ssh -F FILE``); TLS and the
    token stay end to end. A tunnel that cannot be made raises
    ConnectionError with ssh's own words, within ``timeout``.

    ``direct``: pulls and gathers fetch values of 8 MiB or more from each
    engine itself (TLS, a one-time ticket the controller issues), and a
    blocking scatter's pieces of 8 MiB or more are fetched by each engine
    from this client, so they never cross the controller. An engine that
    cannot be reached gets its values through the controller instead,
    and so does everything after; ``direct=False`` always goes through
    the controller. Off through an ssh tunnel, and where the profile says
    ``[controller] direct_transfers = false``.
    """

    def __init__(self, url_or_file='', profile=None, timeout=10.0, trust_engine_pickles=None,
                 furl_or_file=None, sshserver=None, sshkey=None, direct=True):
        from plexa import _native
        self._client = _native.Client(_url_arg(url_or_file, furl_or_file), profile, timeout,
                                      trust_pickles=_trust(trust_engine_pickles, profile),
                                      sshserver=sshserver, sshkey=sshkey, direct=direct)
        self.block = True
        self.targets = 'all'
        self._pending = weakref.WeakSet()
        self._callbacks = Callbacks()
        # A client dropped without close() stops its callback thread too.
        weakref.finalize(self, self._callbacks.close)

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
        """Blocking: the converted value. Otherwise a PendingResult that
        resolves on the callback thread."""
        if block:
            return blocking_result(requests, convert)
        pr = PendingResult(self, requests, convert,
                           canceller=lambda: self._cancel_requests(requests))
        self._pending.add(pr)
        self._watch(pr)
        return pr

    def _cancel_requests(self, requests):
        """Drop requests still queued in the controller, all or nothing (a
        future's cancel()). True when they were."""
        reqs = [r for r in (requests if isinstance(requests, list) else [requests])
                if not isinstance(r, _Done)]
        if not reqs:
            return False
        try:
            self._client.submit_cancel(reqs).result(timeout=10.0)
        except KernelError:
            return False
        return True

    def _watch(self, pr):
        """Resolve pr on this client's callback thread when its reply arrives."""
        self._callbacks.watch(pr)

    def _apply_one(self, engine_id, fn, args, kwargs):
        """``fn(*args, **kwargs)`` on one engine: a future of its return
        value, whose exception is the remote one with its own type."""
        req = self._client.submit_call(engine_id, 'apply', [fn, list(args), dict(kwargs)])

        def convert(replies):
            r = replies[0]
            if r.error is not None:
                raise remote_error(r.error.ename, r.error.evalue, r.error.traceback,
                                   r.engine_id, 'apply')
            return r.values[0] if r.values else None
        pr = PendingResult(self, req, convert, canceller=lambda: self._cancel_requests(req))
        self._watch(pr)
        return pr

    def executor(self, targets=None):
        """A ``concurrent.futures.Executor`` whose calls run on the target
        engines (default: this client's ``targets``), each on the one with
        the fewest of its calls outstanding (see :mod:`plexa.executor`)."""
        from plexa.executor import MultiEngineExecutor
        return MultiEngineExecutor(self, targets)

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
            return [list(r.values[0]) if r.values else [] for r in replies]
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
        if not block:
            self._watch(pr)
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
                # A blocking scatter's big pieces go from this client to
                # each engine directly (it waits: nothing of its own runs
                # there before a piece the engine could not fetch is pushed
                # again through the controller).
                reqs.append(self._client.submit_push(engine_id, [(str(key), partition)],
                                                     direct=block))
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
            parts = [r.values[0] for r in replies]
            if type(mapObject) is Map.Map and shared.joinable(parts) and self.shared_memory:
                return shared.join_arrays(parts)
            return mapObject.joinPartitions(parts)
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
            return Map.flatten(list(r.values[0]) for r in replies)
        if not reqs:
            reqs = [_Done([])]
        return self._finish(reqs, convert, block)

    def map(self, func, *sequences, timeout=None):
        """A parallel ``map(func, *sequences)`` over all engines (0.10:
        ``self.mapper().map(...)``), returning a list. ``timeout`` (seconds,
        when blocking): TimeoutError if the result is not here by then (the
        engines go on)."""
        if timeout is None:
            return self.mapper().map(func, *sequences)
        pr = self.mapper(block=False).map(func, *sequences)
        return pr.get_result(block=True, timeout=timeout) if self._findBlock() else pr

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

    def barrier(self, pendingResults, timeout=None):
        """Wait for every PendingResult, in ``result_id`` order. An error is
        trapped; asking that PendingResult for its result re-raises it.
        ``timeout`` (seconds, for them all): TimeoutError when it passes."""
        prList = list(pendingResults)
        for pr in prList:
            if not isinstance(pr, PendingResult):
                raise NotAPendingResult('Objects passed to barrier must be PendingResult instances')
        prList.sort()
        deadline = _deadline(timeout)
        for pr in prList:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not pr.wait(left):
                raise TimeoutError('barrier: %r not done within %g s' % (pr, timeout))

    def flush(self):
        """Forget every result that has not arrived yet: asking its
        PendingResult for it then raises InvalidDeferredID. Requests still
        running go on running; their answers are dropped. (A result that
        arrived is its future's outcome, kept by the PendingResult.)"""
        for pr in list(self._pending):
            pr._flush()
        self._pending = weakref.WeakSet()

    clear_pending_results = flush

    def get_pending_deferred(self, deferredID, block):
        """The result of this client's pending result ``deferredID`` (0.10's
        low-level call behind ``PendingResult.get_result``)."""
        for pr in list(self._pending):
            if pr.result_id == deferredID:
                sentinel = object()
                r = pr.get_result(sentinel, block=block)
                if r is sentinel:
                    raise ResultNotCompleted('result not completed: %r' % deferredID)
                return r
        raise InvalidDeferredID('invalid deferred_id: %r' % (deferredID,))

    # -- interactive use -----------------------------------------------------

    def activate(self, suffix=''):
        """Make this client the active one for the %px, %%px, %pxresult,
        %pxconfig, %result and %autopx magics (and register them in the
        running IPython). With ``suffix='_a'`` it gets magics of its own
        instead, named with it (%px_a, %%px_a, %pxresult_a, %pxconfig_a,
        %autopx_a), so several clients each have theirs (see plexa.magics)."""
        from plexa import magics
        magics.activate(self, suffix=suffix)

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
        """Disconnect. Calls waiting in other threads fail with ConnectionError,
        and so do pending results (then the callback thread ends)."""
        self._client.close()
        self._callbacks.close()

    @property
    def shared_memory(self):
        """True when this client reached the controller through its shm
        listener (same host, same user): payloads of 256 KiB and more move
        through shared memory (see plexa.shared)."""
        return self._client.shm

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


@boundary
def get_multiengine_client(url_or_file='', profile=None, furl_or_file=None):
    """0.10's factory: ``MultiEngineClient(url_or_file, profile)``
    (``furl_or_file``, 0.10's name, is accepted for ``url_or_file``)."""
    return MultiEngineClient(url_or_file, profile, furl_or_file=furl_or_file)
