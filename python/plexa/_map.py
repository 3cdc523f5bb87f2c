"""Partitioning for scatter, gather and map (IPython 0.10's ``map.py``,
``mapper.py`` and ``parallelfunction.py``).

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

__all__ = ['Map', 'RoundRobinMap', 'dists', 'MultiEngineMapper', 'ParallelFunction',
           'flatten']


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

        def call_function(*sequences):
            return self.mapper.map(self.func, *sequences)
        if not isinstance(func, str):
            call_function.__name__ = getattr(func, '__name__', 'call_function')
            call_function.__doc__ = getattr(func, '__doc__', None)
        return call_function
