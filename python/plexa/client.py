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

Where things are (this module re-exports their names, as 0.10's
``IPython.kernel.client`` gathered its parts): :mod:`plexa.multiengine`
(MultiEngineClient), :mod:`plexa.taskclient` (TaskClient),
:mod:`plexa._pending` (PendingResult), :mod:`plexa._results` (ResultList,
QueueStatusList and the conversion of replies), :mod:`plexa._status`
(StatusClient).
"""

from plexa import error  # noqa: F401  (0.10's client module exposed it too)
from plexa import _map as Map  # noqa: F401
from plexa._map import MultiEngineMapper, ParallelFunction, TaskIdList, TaskMapper  # noqa: F401
from plexa._pending import PendingResult  # noqa: F401
from plexa._results import (  # noqa: F401
    QueueStatusList, ResultList, _check, _execute_value, _first_value, _multi, _none_value,
    _pull_value, _queue_status_value, wrapResultList,
)
from plexa._status import StatusClient  # noqa: F401
from plexa.error import (  # noqa: F401  (re-exported, as 0.10's client module did)
    AbortedPendingDeferredError, CompositeError, ConnectionError, EngineError,
    FileTimeoutError, InvalidDeferredID, InvalidEngineID, KernelError, MessageSizeError,
    MissingBlockArgument, NoEnginesRegistered, NotAPendingResult, ProtocolError,
    QueueCleared, RemoteError, ResultEvicted, ResultNotCompleted, SecurityError,
    SerializationError, StopLocalExecution, TaskAborted, TaskRejectError, TaskTimeout,
    remote_error,
)
from plexa.multiengine import (  # noqa: F401
    MultiEngineClient, get_multiengine_client, remote, strip_whitespace,
)
from plexa.task import BaseTask, MapTask, ResultNS, StringTask, TaskResult  # noqa: F401
from plexa.taskclient import (  # noqa: F401
    TASK_ABORTED, TASK_ENGINE_DIED, TASK_EVICTED, TASK_FAILED, TASK_OK, TASK_PENDING,
    TASK_REJECTED, TASK_TIMEOUT, TASK_UNKNOWN, TaskClient, _chunk_values, _task_error,
    _task_spec, get_task_client,
)

__all__ = ['MultiEngineClient', 'PendingResult', 'ResultList', 'QueueStatusList',
           'CompositeError', 'get_multiengine_client', 'wrapResultList', 'remote',
           'TaskClient', 'get_task_client', 'MapTask', 'StringTask', 'TaskResult',
           'StatusClient']

# In IPython, %px typed before mec.activate() says how to activate.
from plexa import magics as _magics  # noqa: E402
_magics.register_if_interactive()
del _magics
