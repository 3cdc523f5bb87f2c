"""plexa as a joblib backend.

    import joblib
    import plexa.joblib
    plexa.joblib.register()                     # the backend 'plexa'

    with joblib.parallel_backend('plexa'):      # the default profile's cluster
        results = joblib.Parallel(n_jobs=-1)(joblib.delayed(f)(x) for x in data)

    with joblib.parallel_backend('plexa', client=tc):   # a TaskClient of yours
        ...

Each batch joblib makes is one task of the task interface, balanced over
the engines by the controller's scheduler; joblib sizes its batches by the
number of engines and by how long batches take (its auto-batching). A
batch that raises makes ``Parallel`` raise that exception (with its own
type for builtin exceptions) and cancels the batches no engine has
started. Needs python3-joblib (Debian's package).
"""

from joblib.parallel import (AutoBatchingMixin, ParallelBackendBase,
                             register_parallel_backend)

__all__ = ['PlexaBackend', 'register']


class _Job(object):
    """What joblib waits on: ``get(timeout)``, over a task's future."""

    __slots__ = ('future',)

    def __init__(self, future):
        self.future = future

    def get(self, timeout=None):
        return self.future.result(timeout)


class PlexaBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib's backend over a plexa :class:`~plexa.client.TaskClient`.

    ``client``: the TaskClient to use; None connects one to ``profile``
    (or ``url_or_file``) and closes it when joblib is done with the
    backend."""

    supports_timeout = True

    def __init__(self, client=None, profile=None, url_or_file='', **kwargs):
        super().__init__(**kwargs)
        self._owner = client is None
        if client is None:
            from plexa.taskclient import TaskClient
            client = TaskClient(url_or_file, profile=profile)
        self.client = client
        self._outstanding = set()

    def effective_n_jobs(self, n_jobs):
        """As many jobs run at once as there are engines (whatever n_jobs
        asks: the scheduler balances over all of them)."""
        return max(1, len(self.client.get_ids()))

    def apply_async(self, func, callback=None):
        future = self.client.apply_async(func)
        self._outstanding.add(future)
        future.add_done_callback(self._outstanding.discard)
        if callback is not None:
            future.add_done_callback(lambda f: _succeeded(f) and callback(f.result()))
        return _Job(future)

    def abort_everything(self, ensure_ready=True):
        """A batch failed: drop every batch no engine has started."""
        for future in list(self._outstanding):
            future.cancel()

    def terminate(self):
        if self._owner:
            self.client.close()


def _succeeded(future):
    return not future.cancelled() and future.exception() is None


def register(name='plexa', make_default=False):
    """Register :class:`PlexaBackend` with joblib as ``name``
    (``joblib.parallel_backend(name, **kwargs)`` then passes kwargs, e.g.
    ``client=`` or ``profile=``, to it)."""
    register_parallel_backend(name, PlexaBackend, make_default=make_default)
