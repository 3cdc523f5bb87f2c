"""Partitioning for scatter, gather and map (IPython 0.10's ``map.py``,
``mapper.py`` and ``parallelfunction.py``), and the chunking of the
load-balanced ``TaskClient.map``.

``Map`` (dist ``'b'``) cuts a sequence into q contiguous blocks whose sizes
differ by at most one; the first ``len(seq) % q`` blocks get the extra
element. ``joinPartitions`` is the inverse: numpy arrays are concatenated
with ``numpy.concatenate``, lists and tuples are joined into one list, and
anything else (scalars) is returned as the list of partitions.

This module is pure Python and imports numpy only when it meets an array.
It is also importable on the engines (``_EngineName`` travels by
reference).
"""

import sys

from plexa._tb import boundary, hide_frames

__all__ = ['Map', 'RoundRobinMap', 'dists', 'MultiEngineMapper', 'ParallelFunction',
           'TaskMapper', 'SynchronousTaskMapper', 'flatten', 'chunk_count']


def flatten(seq):
    """Flatten a list of lists (NOT recursive, only works for 2d lists)."""
    return [x for subseq in seq for x in subseq]


def _is_ndarray(obj):
    np = sys.modules.get('numpy')     # an array implies numpy is imported
    return np is not None and isinstance(obj, np.ndarray)


class Map(object):
    """A class for partitioning a sequence using a map (block distribution)."""

    def getPartition(self, seq, p, q):
        """Returns the pth partition of q partitions of seq."""
        if p < 0 or p >= q:
            print("No partition exists.")
            return None
        remainder = len(seq) % q
        basesize = len(seq) // q
        if p < remainder:
            lo = p * (basesize + 1)
            hi = lo + basesize + 1
        else:
            lo = p * basesize + remainder
            hi = lo + basesize
        return seq[lo:hi]

    def joinPartitions(self, listOfPartitions):
        return self.concatenate(listOfPartitions)

    def concatenate(self, listOfPartitions):
        listOfPartitions = list(listOfPartitions)
        if not listOfPartitions:
            return []
        testObject = listOfPartitions[0]
        if _is_ndarray(testObject):
            return sys.modules['numpy'].concatenate(listOfPartitions)
        if isinstance(testObject, (list, tuple)):
            return flatten(listOfPartitions)
        return listOfPartitions


class RoundRobinMap(Map):
    """Partitions a sequence in a round robin fashion.

    As in 0.10 it is not registered in ``dists``: joinPartitions does not
    restore the original order.
    """

    def getPartition(self, seq, p, q):
        return seq[p:len(seq):q]


dists = {'b': Map}


def get_map(dist):
    """A Map object for the distribution name ``dist`` (only ``'b'``)."""
    try:
        return dists[dist]()
    except (KeyError, TypeError):
        raise ValueError('unknown dist %r: the only distribution is %r'
                         % (dist, 'b')) from None


def as_sequence(seq):
    """seq itself when it can be sliced and measured; otherwise a list of it
    (generators, iterators, sets, ...). A range becomes a list, as it was
    in Python 2, so partitions and gathers are lists."""
    if isinstance(seq, range):
        return list(seq)
    if hasattr(seq, '__len__') and hasattr(seq, '__getitem__') and not isinstance(seq, dict):
        return seq
    return list(seq)


class _EngineName(object):
    """A function named by a string, looked up in the engine's ``__main__``
    at its first call (raw_map/map with ``func`` a str, as 0.10 allowed)."""

    def __init__(self, expr):
        self.expr = expr

    def __getstate__(self):
        return {'expr': self.expr}

    def __call__(self, *args):
        f = self.__dict__.get('_f')
        if f is None:
            import __main__
            f = self._f = eval(self.expr, __main__.__dict__)
        return f(*args)

    def __repr__(self):
        return '<engine function %s>' % self.expr


@hide_frames
class MultiEngineMapper(object):
    """A Mapper for a MultiEngineClient (not load balanced).

    The value of all arguments are used for all calls to ``map``.
    """

    def __init__(self, multiengine, dist='b', targets='all', block=None):
        self.multiengine = multiengine
        self.dist = dist
        self.targets = targets
        self.block = block

    def map(self, func, *sequences):
        """Apply func to *sequences elementwise, like the builtin ``map``,
        returning a list (or a PendingResult when not blocking)."""
        if not sequences:
            raise TypeError('map() must have at least two arguments.')
        sequences = [as_sequence(s) for s in sequences]
        max_len = max(len(s) for s in sequences)
        for s in sequences:
            if len(s) != max_len:
                raise ValueError('all sequences must have equal length')
        if not (isinstance(func, str) or callable(func)):
            raise TypeError('func must be a function or str')
        return self.multiengine.raw_map(func, sequences, dist=self.dist,
                                        targets=self.targets, block=self.block)


# ---- the load-balanced map: chunking -------------------------------------------
#
# A load-balanced map of n elements over E engines is cut into C chunk tasks;
# chunk j holds the elements j, j+C, j+2C, ... (a stride, not a block), and
# its results go back to the same places, so order is preserved.
#
# * C = n when n <= CHUNKS_PER_ENGINE * E: one task per element (small maps;
#   the per-task overhead is a fraction of a millisecond).
# * Otherwise C is the smallest prime >= CHUNKS_PER_ENGINE * E. With 16
#   chunks per engine, a chunk is ~1/16 of an engine's share; the
#   controller balances the tail further (an idle engine takes back and
#   shares a chunk another has not started; a chunk of known long elements
#   is cut into pieces), so the tail is about one element. A cut chunk's
#   result comes back as one list per piece (joined by the client).
#   C does not grow with n: there are
#   never more than ~16 round trips per engine, so per-task overhead is
#   bounded (a few ms per map) and throughput is the engines' own speed.
# * Striding spreads a cluster of expensive elements (the usual adversary:
#   the costly cases at the start or at the end of a sweep) evenly over the
#   chunks; a prime C keeps a periodic cost pattern (every k-th element
#   expensive, e.g. one column of a flattened grid) from landing in a few
#   chunks unless its period is a multiple of C.
#
# An explicit chunksize gives C = ceil(n / chunksize), laid out the same way.

CHUNKS_PER_ENGINE = 16


def _is_prime(k):
    if k < 2:
        return False
    if k % 2 == 0:
        return k == 2
    f = 3
    while f * f <= k:
        if k % f == 0:
            return False
        f += 2
    return True


def chunk_count(n, engines, chunksize=None):
    """The number of chunk tasks for a load-balanced map of n elements over
    ``engines`` engines (see the rule above)."""
    if n <= 0:
        return 0
    if chunksize is not None:
        return -(-n // chunksize)
    want = max(1, engines) * CHUNKS_PER_ENGINE
    if n <= want:
        return n
    c = want
    while not _is_prime(c):
        c += 1
    return min(c, n)


def check_chunksize(chunksize):
    if chunksize is None:
        return None
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError('chunksize must be None or an int >= 1')
    return chunksize


def map_arguments(sequences):
    """The argument tuples of map(func, *sequences), checking lengths as
    0.10 did (equal lengths required)."""
    if not sequences:
        raise TypeError('map() must have at least two arguments.')
    sequences = [as_sequence(s) for s in sequences]
    max_len = max(len(s) for s in sequences)
    for s in sequences:
        if len(s) != max_len:
            raise ValueError('all sequences must have equal length')
    return list(zip(*sequences))


@hide_frames
class TaskMapper(object):
    """A load-balanced Mapper for a TaskClient (0.10's
    ``SynchronousTaskMapper``).

    The task options (``clear_before``, ``clear_after``, ``retries``,
    ``recovery_task``, ``depend``; see :class:`plexa.task.BaseTask`) apply
    to every task of every ``map``. ``map`` returns the list of results
    (``block=True``), or, as 0.10 did, the list of task ids, one task per
    element (``block=False``; a :class:`TaskIdList`: ``get_task_result`` of
    each id gives its element's result, and its ``pending`` attribute is a
    PendingResult of the whole list of results).

    ``chunksize`` (plexa): elements per task; None picks it from the length
    and the number of engines (the rule above). With ``recovery_task``,
    ``clear_before`` or ``clear_after`` the default is one task per element,
    as in 0.10 (a recovery task's result stands for one element; the
    namespace is reset around each element).
    """

    def __init__(self, task_controller, clear_before=False, clear_after=False, retries=0,
                 recovery_task=None, depend=None, block=True, chunksize=None):
        self.task_controller = task_controller
        self.clear_before = clear_before
        self.clear_after = clear_after
        self.retries = retries
        self.recovery_task = recovery_task
        self.depend = depend
        self.block = block
        self.chunksize = check_chunksize(chunksize)

    def map(self, func, *sequences):
        """Apply func to *sequences elementwise, like the builtin ``map``
        (equal lengths required), load balanced over the engines."""
        if not callable(func):
            raise TypeError('func must be a function')
        if not self.block and self.chunksize not in (None, 1):
            raise ValueError('a non-blocking map runs one task per element (its result is '
                             'their ids, as in 0.10): chunksize must be None or 1')
        return self.task_controller._map(func, map_arguments(sequences), self)


SynchronousTaskMapper = TaskMapper


class TaskIdList(list):
    """The ids of a non-blocking map's tasks, one per element, in order
    (0.10's return value). ``pending`` is a PendingResult whose
    ``get_result()`` is the list of results (it leaves them in the
    controller: ``get_task_result`` of an id still works afterwards;
    ``TaskClient.clear`` frees them)."""

    def __init__(self, ids, pending):
        list.__init__(self, ids)
        self.pending = pending


class ParallelFunction(object):
    """The implementation of a parallel function:
    ``map(func, *sequences) -> pfunc(*sequences)``.

    Parallel functions are made with the ``@mec.parallel()`` decorator.
    """

    def __init__(self, mapper):
        self.mapper = mapper

    def __call__(self, func):
        """Decorate a function to make it run in parallel."""
        if not (isinstance(func, str) or callable(func)):
            raise TypeError('func must be a function or str')
        self.func = func

        @boundary
        def call_function(*sequences):
            return self.mapper.map(self.func, *sequences)
        if not isinstance(func, str):
            call_function.__name__ = getattr(func, '__name__', 'call_function')
            call_function.__doc__ = getattr(func, '__doc__', None)
        return call_function
