"""Tasks for the load-balanced interface (IPython 0.10's ``IPython.kernel.task``).

::

    from plexa import client
    tc = client.TaskClient()
    t = client.MapTask(f, args=(10,))          # f(10) on some engine
    tid = tc.run(t); tc.barrier(tid); tc.get_task_result(tid)
    st = client.StringTask('y = x*2', push=dict(x=3), pull='y')
    tr = tc.run(st, block=True)                # TaskResult[ID:2]:{'y': 6}
    tr.ns.y                                    # 6

Every task takes the options of :class:`BaseTask`: ``clear_before``,
``clear_after``, ``retries``, ``recovery_task``, ``depend`` and (a plexa
extension) ``after``. The controller only schedules a task; the engine it
is offered to evaluates ``depend`` and runs it.

This module is pure Python: it needs no cluster and imports nothing heavy.
"""

import time

from plexa.error import KernelError

__all__ = ['BaseTask', 'MapTask', 'StringTask', 'TaskResult', 'ResultNS', 'time_format']

# 0.10's format of TaskResult.submitted and .completed.
time_format = '%Y/%m/%d %H:%M:%S'


def _check_bool(name, value):
    if value not in (True, False):
        raise TypeError('%s must be True or False' % name)
    return bool(value)


class BaseTask(object):
    """What every task has (0.10's ``BaseTask``).

    clear_before, clear_after : bool
        Reset the engine's namespace before / after the task runs, so each
        task starts from (or leaves) a clean namespace.
    retries : int
        Run the task again, on any engine, up to this many times when it
        raises or its engine dies. ``-1`` as in 0.10 also means none (and
        keeps a recovery task from running another recovery task).
    recovery_task : a task
        Run under the same task id once the retries are spent; its result
        becomes the task's result. (It cannot have a recovery task of its
        own; its own ``retries`` apply.)
    depend : callable
        ``depend(properties) -> bool``, evaluated *by the engine the task is
        offered to*; False (or an exception) makes that engine decline the
        task, which the controller then offers elsewhere. ``properties`` is
        a dict describing the engine (see docs/python-api.md). When every
        engine has declined a task for the controller's ``depend_timeout``
        (30 s, as 0.10's ``TaskController.timeout``), it fails with
        :class:`~plexa.error.TaskTimeout`.
    after : list of task ids (plexa extension)
        The task is not offered to any engine before these tasks finished
        (successfully or not).

    ``taskid`` is set by :meth:`TaskClient.run`.
    """

    def __init__(self, clear_before=False, clear_after=False, retries=0,
                 recovery_task=None, depend=None, after=None):
        self.clear_before = _check_bool('clear_before', clear_before)
        self.clear_after = _check_bool('clear_after', clear_after)
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise TypeError('retries must be an int')
        self.retries = retries
        if recovery_task is not None and not isinstance(recovery_task, BaseTask):
            raise TypeError('recovery_task must be a task (MapTask or StringTask)')
        self.recovery_task = recovery_task
        if depend is not None and not callable(depend):
            raise TypeError('depend must be a function of the engine properties')
        self.depend = depend
        self.after = _task_ids(after)
        self.taskid = None

    # The engine's task kind and its arguments; see plexa.client._task_spec.
    def _payload(self):
        raise NotImplementedError('_payload must be implemented in a subclass')

    def check_depend(self, properties):
        """``self.depend(properties)``; True when there is no depend."""
        if self.depend is not None:
            return self.depend(properties)
        return True

    def __repr__(self):
        return '<%s%s>' % (type(self).__name__,
                           '' if self.taskid is None else ' %r' % (self.taskid,))


def _task_ids(after):
    if after is None:
        return []
    if isinstance(after, int) and not isinstance(after, bool):
        after = [after]
    try:
        ids = list(after)
    except TypeError:
        raise TypeError('after must be a task id or a list of task ids') from None
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or i <= 0:
            raise TypeError('after must be a task id or a list of task ids, not %r' % (i,))
    return ids


class MapTask(BaseTask):
    """A task that calls ``function(*args, **kwargs)`` on an engine.

    Its result (``TaskClient.get_task_result``) is the function's return
    value; when the function raised, getting the result raises the remote
    exception (a :class:`~plexa.error.RemoteError`).

    ``function`` may be any callable that pickles (lambdas and closures
    travel by value, with cloudpickle; 0.10 required a plain function).
    ``args`` must be a list or tuple, ``kwargs`` a dict.
    """

    def __init__(self, function, args=None, kwargs=None, clear_before=False,
                 clear_after=False, retries=0, recovery_task=None, depend=None,
                 after=None):
        BaseTask.__init__(self, clear_before, clear_after, retries, recovery_task,
                          depend, after)
        if not callable(function):
            raise TypeError('a task function must be a FunctionType')
        self.function = function
        self.args = () if args is None else args
        if not isinstance(self.args, (list, tuple)):
            raise TypeError('a task args must be a list or tuple')
        self.kwargs = {} if kwargs is None else kwargs
        if not isinstance(self.kwargs, dict):
            raise TypeError('a task kwargs must be a dict')

    def _payload(self):
        return 'map', [self.function, tuple(self.args), dict(self.kwargs)]


class StringTask(BaseTask):
    """A task that pushes ``push`` (a dict) into an engine's namespace, runs
    the Python code ``expression`` there and pulls ``pull`` (a name or a
    sequence of names) back.

    Its result is always a :class:`TaskResult` (even when the code raised:
    then ``failure`` is set and reading ``ns`` re-raises it).
    """

    def __init__(self, expression, pull=None, push=None, clear_before=False,
                 clear_after=False, retries=0, recovery_task=None, depend=None,
                 after=None):
        if not isinstance(expression, str):
            raise TypeError('a task expression must be a string')
        self.expression = expression
        if pull is None:
            self.pull = ()
        elif isinstance(pull, str):
            self.pull = (pull,)
        elif isinstance(pull, (list, tuple)):
            for k in pull:
                if not isinstance(k, str):
                    raise TypeError('pull must be str or a sequence of strs')
            self.pull = tuple(pull)
        else:
            raise TypeError('pull must be str or a sequence of strs')
        if push is None:
            self.push = {}
        elif isinstance(push, dict):
            for k in push:
                if not isinstance(k, str):
                    raise TypeError('push must be a dict keyed by strs')
            self.push = push
        else:
            raise TypeError('push must be a dict')
        BaseTask.__init__(self, clear_before, clear_after, retries, recovery_task,
                          depend, after)

    def _payload(self):
        return 'string', [self.expression, dict(self.push), list(self.pull)]


class ResultNS(object):
    """The pulled names of a StringTask as attributes (``tr.ns.a``).

    >>> ns = ResultNS({'a': 17, 'foo': [0, 1, 2]})
    >>> ns
    NS{'a': 17, 'foo': [0, 1, 2]}
    >>> ns.a, ns['foo']
    (17, [0, 1, 2])
    """

    def __init__(self, dikt):
        for k, v in dikt.items():
            setattr(self, k, v)

    def __repr__(self):
        d = {}
        for k in dir(self):
            # do not print private objects
            if k[:2] != '__' and k[-2:] != '__':
                d[k] = getattr(self, k)
        return 'NS' + repr(d)

    def __getitem__(self, key):
        return getattr(self, key)


class TaskResult(object):
    """The result of a StringTask (0.10's ``TaskResult``).

    On success ``results`` is a dict of the pulled names, ``keys`` their
    list, ``failure`` None, and ``ns`` (a :class:`ResultNS`) has them as
    attributes. When the task raised (or its engine died), ``results`` is
    empty and ``failure`` holds the exception (a
    :class:`~plexa.error.RemoteError`, or an :class:`~plexa.error.EngineError`);
    reading ``ns``, ``tr['a']`` or calling ``raise_exception()`` raises it.

    ``stdout`` and ``stderr`` (plexa) hold what the code printed.
    ``engineid`` (also ``engine_id``) is the engine that ran the task,
    ``taskid`` its id, ``submitted`` / ``completed`` the times the
    controller accepted it and the engine finished it (0.10's
    ``'%Y/%m/%d %H:%M:%S'`` strings) and ``duration`` the seconds the
    engine spent running it.
    """

    taskid = None
    submitted = None
    completed = None
    duration = None
    stdout = ''
    stderr = ''

    def __init__(self, results, engineid):
        self.engineid = engineid
        if isinstance(results, BaseException):
            self.failure = results
            self.results = {}
        else:
            self.results = dict(results)
            self.failure = None
        self._ns = ResultNS(self.results)
        self.keys = list(self.results.keys())

    @property
    def engine_id(self):
        """The id of the engine that ran the task (= ``engineid``)."""
        return self.engineid

    @property
    def ns(self):
        """The pulled names as attributes; raises the failure, if any."""
        if self.failure is not None:
            self.raise_exception()
        return self._ns

    @ns.setter
    def ns(self, v):
        raise Exception('the ns attribute cannot be changed')

    def __repr__(self):
        contents = self.failure if self.failure is not None else self.results
        return 'TaskResult[ID:%r]:%r' % (self.taskid, contents)

    def __getitem__(self, key):
        if self.failure is not None:
            self.raise_exception()
        return self.results[key]

    def raise_exception(self):
        """Re-raise the remote exception, if the task failed."""
        if self.failure is not None:
            e = self.failure
            raise e.with_traceback(None) if isinstance(e, KernelError) else e

    def get_result(self):
        """The results dict; raises the failure, if any (plexa addition,
        as ipyparallel's AsyncResult.get)."""
        self.raise_exception()
        return self.results


def _set_times(tr, submitted, started, completed):
    """Fill a TaskResult's times from the controller's unix times."""
    def fmt(t):
        return time.strftime(time_format, time.localtime(t)) if t else None
    tr.submitted = fmt(submitted)
    tr.completed = fmt(completed)
    if completed and (started or submitted):
        tr.duration = max(0.0, completed - (started or submitted))
    return tr
