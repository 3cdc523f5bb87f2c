"""The load-balanced task interface (IPython 0.10's ``TaskClient``; part of
:mod:`plexa.client`, which re-exports the public names).

  TaskClient        run, get_task_result, barrier, abort, clear, map; futures
                    of tasks (future, apply_async)
  TASK_*            the wire's task statuses (checked against _native's)
  get_task_client   0.10's factory
"""

import sys
import threading
import warnings
import weakref

from plexa._callbacks import Callbacks
from plexa._tb import boundary, hide_frames
from plexa._map import ParallelFunction, TaskIdList, TaskMapper, chunk_count, map_arguments
from plexa._pending import PendingResult, _deadline, _Done, wait_requests
from plexa.error import (EngineError, KernelError, ProtocolError, ResultEvicted, TaskAborted,
                         TaskTimeout, remote_error)
from plexa.multiengine import _trust, _url_arg
from plexa.task import BaseTask, TaskResult, _set_times


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
    tid, status, engine_id, err = reply.task_id, reply.status, reply.engine_id, reply.error
    ename, evalue, tb = (err.ename, err.evalue, err.traceback) if err else (None, '', '')
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


@hide_frames
class TaskClient(object):
    """A client to the controller's load-balanced task interface (IPython
    0.10's ``BlockingTaskClient``).

    ``url_or_file`` is a ``plx+tcp://`` / ``plx+tls://`` URL, a connection
    file holding one, or ``''``: then the profile's
    ``security/ipcontroller-tc.url`` (``profile`` None means ``default``);
    0.10's keyword ``furl_or_file`` is accepted for it.
    ``timeout`` bounds the connection handshake, in seconds.
    ``trust_engine_pickles`` as for MultiEngineClient.

    Tasks go into one FIFO queue in the controller and run on whichever
    engine is free; ids are ints, counted from 1 per controller. Results
    stay in the controller until fetched and evicted, or ``clear()``ed (the
    controller keeps a bounded number of them: an evicted one raises
    ResultEvicted).

    Futures: ``future(taskid)`` is a PendingResult (a
    ``concurrent.futures.Future``, awaitable) of a task run() queued;
    ``apply_async(f, *args, **kwargs)`` queues ``f(*args, **kwargs)`` and
    returns its future. They resolve on this client's ``plexa-callbacks``
    thread as soon as the tasks finish; ``cancel()`` drops tasks that no
    engine has been sent yet. Blocking calls take ``timeout=`` (TimeoutError). With
    no engine registered, tasks wait for one: a wait with no timeout warns
    (RuntimeWarning) after a few seconds, once per client, and goes on.
    """

    def __init__(self, url_or_file='', profile=None, timeout=10.0, trust_engine_pickles=None,
                 furl_or_file=None, sshserver=None, sshkey=None):
        from plexa import _native
        self._client = _native.Client(_url_arg(url_or_file, furl_or_file), profile, timeout,
                                      role='task',
                                      trust_pickles=_trust(trust_engine_pickles, profile),
                                      sshserver=sshserver, sshkey=sshkey)
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
        self._callbacks = Callbacks()
        # A client dropped without close() stops its callback thread too.
        weakref.finalize(self, self._callbacks.close)
        self._warned_no_engines = False

    # -- plumbing ------------------------------------------------------------

    def _stream(self, spec):
        """Queue one task without waiting for the controller: its id comes
        from a block reserved for this connection (each refill 4x larger, so
        a loop of run() calls costs a round trip only now and then). The
        lock keeps ids and sends in the same order, which the controller
        checks."""
        with self._ids_lock:
            if self._blk_next >= self._blk_end:
                ids = self._client.submit_task_reserve(self._blk_size).result()
                self._blk_next, self._blk_end = ids.first_id, ids.first_id + ids.count
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
                got = req.result()
                want = min(_SUBMIT_BATCH, len(specs) - i * _SUBMIT_BATCH)
                ids.extend(range(got.first_id, got.first_id + got.count))
                if got.count != want:
                    raise KernelError('the controller accepted %d of %d tasks'
                                      % (got.count, want))
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

    def _wait(self, ids, block, timeout=None):
        """The replies for ids, in order: _native's TaskReply (.task_id,
        .status, .engine_id, .values, .error, .submitted, .started,
        .completed). ``timeout`` (with block): TimeoutError when it passes."""
        __tracebackhide__ = True  # noqa: F841  (IPython: a wait loop of plexa's)
        deadline = _deadline(timeout)
        reqs = self._wait_requests(ids, block)
        out = []
        try:
            stall = [self._stall] if block and deadline is None else None
            if not wait_requests(reqs, deadline, stall):
                raise TimeoutError('%d task(s) not finished within %g s' % (len(ids), timeout))
            for r in reqs:
                out.extend(r.result())
        except BaseException:
            for r in reqs:
                r.cancel()
            raise
        return out

    def _stall(self):
        """A wait with no timeout has lasted a while: say so (once) when no
        engine is registered, since then it lasts until one registers."""
        if self._warned_no_engines:
            return
        try:
            ids = self._client.get_ids(timeout=5.0)
        except Exception:
            return
        if not ids and not self._warned_no_engines:
            self._warned_no_engines = True
            warnings.warn('plexa: no engine is registered with the controller at %s; the '
                          'tasks wait until one registers (still waiting)'
                          % getattr(self._client, 'peer', '?'), RuntimeWarning,
                          stacklevel=_caller_level())

    def _watch(self, pr):
        """Resolve pr on this client's callback thread when its tasks finish."""
        self._callbacks.watch(pr)

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
        tid, status, engine_id, values = reply.task_id, reply.status, reply.engine_id, \
            reply.values
        if status == TASK_PENDING:
            return None
        if status in (TASK_OK, TASK_FAILED) and len(values) == 3 and isinstance(values[0], dict):
            tr = TaskResult(values[0] if status == TASK_OK else _task_error(reply), engine_id)
            tr.taskid = tid
            tr.stdout, tr.stderr = values[1], values[2]
            return _set_times(tr, reply.submitted, reply.started, reply.completed)
        if status == TASK_OK:
            # A map task has one value; a chunk cut into pieces one list each.
            return _chunk_values(values) if len(values) > 1 else (values[0] if values else None)
        raise _task_error(reply)

    # -- the ITaskController verbs -----------------------------------------

    def run(self, task, block=False, timeout=None):
        """Queue a task (MapTask or StringTask) and return its int id
        (``future(id)`` gives its future); with ``block=True``, wait (up to
        ``timeout`` seconds) and return its result (``get_task_result``)."""
        spec = _task_spec(task)
        tid = self._stream(spec)
        task.taskid = tid
        if block:
            return self.get_task_result(tid, block=True, timeout=timeout)
        return tid

    def get_task_result(self, taskid, block=False, timeout=None):
        """The result of task ``taskid``: None if it is not finished and
        ``block`` is False. A MapTask's result is the function's return
        value (a failure raises the remote error); a StringTask's is a
        TaskResult. An aborted task raises TaskAborted, one whose depend()
        no engine met TaskTimeout, one whose engine died (retries spent)
        EngineError, an evicted or cleared one ResultEvicted, an unknown id
        IndexError. ``timeout`` (seconds, with ``block``): TimeoutError
        when the task has not finished by then (it goes on)."""
        taskid = _check_taskid(taskid)
        reply = self._fetched.pop(taskid, None)
        if reply is None:
            reply = self._wait([taskid], bool(block), timeout if block else None)[0]
        try:
            return self._present(reply)
        except KernelError as e:
            raise e.with_traceback(None) from None

    def future(self, taskid):
        """The future (a PendingResult) of task ``taskid``, e.g. an id
        ``run(task)`` returned: its result is ``get_task_result``'s, it
        resolves when the task finishes, ``cancel()`` drops the task while
        no engine has been sent it."""
        taskid = _check_taskid(taskid)
        reply = self._fetched.pop(taskid, None)
        req = _Done([reply]) if reply is not None else \
            self._client.submit_task_wait([taskid], True)
        pr = PendingResult(self, req, lambda replies: self._present(replies[0]),
                           canceller=lambda: self._cancel_queued([taskid]), stall=self._stall)
        pr.task_ids = [taskid]
        self._watch(pr)
        return pr

    def futures(self, taskids):
        """``[future(t) for t in taskids]``."""
        return [self.future(t) for t in taskids]

    def apply_async(self, f, /, *args, **kwargs):
        """Queue ``f(*args, **kwargs)`` as a task (a MapTask) and return
        its future (ipyparallel's ``view.apply_async``, Dask's
        ``client.submit``)."""
        from plexa.task import MapTask
        if not callable(f):
            raise TypeError('apply_async: %r is not callable' % (f,))
        return self.future(self.run(MapTask(f, args, kwargs)))

    def executor(self):
        """A ``concurrent.futures.Executor`` whose calls are tasks balanced
        over the engines (see :mod:`plexa.executor`)."""
        from plexa.executor import TaskExecutor
        return TaskExecutor(self)

    def _cancel_queued(self, ids):
        """Abort tasks only if none of them has been sent to an engine
        (all or nothing). True when they were."""
        try:
            self._client.submit_task_abort(list(ids), queued_only=True).result(timeout=10.0)
        except KernelError:
            return False
        return True

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

    def barrier(self, taskids, timeout=None):
        """Wait until the tasks (an id or a list of ids) have finished.
        Their errors are not raised here (get_task_result raises them).
        ``timeout`` (seconds): TimeoutError when it passes first."""
        ids = [_check_taskid(taskids)] if isinstance(taskids, int) else \
            [_check_taskid(t) for t in taskids]
        for reply in self._wait(ids, True, timeout):
            if reply.status not in (TASK_PENDING, TASK_EVICTED, TASK_UNKNOWN):
                self._fetched[reply.task_id] = reply
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

    def map(self, func, *sequences, chunksize=None, timeout=None):
        """A load-balanced ``map(func, *sequences)``: the list of results, in
        order. Elements are grouped into chunk tasks (``chunksize`` elements
        each; None picks it from the length and the number of engines, see
        docs/python-api.md). The first failing task's error is raised.
        ``timeout`` (seconds): TimeoutError when the map has not finished
        by then; its unfinished tasks are aborted."""
        m = self.mapper(chunksize=chunksize)
        if timeout is None:
            return m.map(func, *sequences)
        if not callable(func):
            raise TypeError('func must be a function')
        return self._map(func, map_arguments(sequences), m, timeout)

    def mapper(self, clear_before=False, clear_after=False, retries=0, recovery_task=None,
               depend=None, block=True, chunksize=None):
        """A TaskMapper whose ``map`` uses these task options (see
        :class:`plexa.task.BaseTask`); ``block=False`` makes ``map`` return
        the list of task ids, one per element, as 0.10 did (a TaskIdList,
        whose ``pending`` is a PendingResult of all the results)."""
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

    def _map(self, func, arglist, m, timeout=None):
        """TaskMapper.map: submit arglist as tasks, gather in order."""
        n = len(arglist)
        if n == 0:
            if m.block:
                return []
            pr = PendingResult(self, [_Done([])], lambda rs: [])
            self._watch(pr)
            return TaskIdList([], pr)
        # Non-blocking: 0.10's one task per element, whose ids are the answer.
        per_element = not m.block or m.chunksize == 1 or (m.chunksize is None and (
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
                    status, values = reply.status, reply.values
                    if reply.started and reply.completed:
                        busy += reply.completed - reply.started
                    if status != TASK_OK:
                        if failed is None:
                            failed = reply
                    elif per_element:
                        out[j] = values[0]
                    else:
                        out[j::nchunks] = _chunk_values(values)
                    j += 1
            if m.block:     # a non-blocking map's ids are the user's to fetch
                self._in_background(self._client.submit_task_clear(ids))
            pr.serial_time = busy
            if failed is not None:
                raise _task_error(failed, 'map')
            return out

        pr = PendingResult(self, reqs, convert, weights, 'elements',
                           canceller=lambda: self._cancel_queued(ids), stall=self._stall)
        pr.task_ids = ids
        if not m.block:
            self._watch(pr)
            return TaskIdList(ids, pr)
        try:
            if not pr._wait_showing(0.1, -1 if timeout is None else timeout,
                                    delay=_progress_delay(), force=False):
                raise TimeoutError('the map of %d elements did not finish within %g s'
                                   % (n, timeout))
            return pr.get_result(block=True)
        except (KeyboardInterrupt, TimeoutError):
            if pr.done():
                raise
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
        """Disconnect. Calls waiting in other threads fail with ConnectionError,
        and so do pending futures (then the callback thread ends)."""
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
        return '<TaskClient %s>' % (peer if peer else 'closed')


def _caller_level():
    """warnings.warn's stacklevel of the first caller outside plexa (the
    line of the user's code that waits), from the function calling this."""
    f, level = sys._getframe(1), 1
    while f is not None and f.f_globals.get('__name__', '').startswith('plexa.'):
        f, level = f.f_back, level + 1
    return level


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


@boundary
def get_task_client(url_or_file='', profile=None, furl_or_file=None):
    """0.10's factory: ``TaskClient(url_or_file, profile)`` (``furl_or_file``,
    0.10's name, is accepted for ``url_or_file``)."""
    return TaskClient(url_or_file, profile, furl_or_file=furl_or_file)
