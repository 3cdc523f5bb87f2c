"""Python objects <-> value descriptors, the Python half of plexa's Value.

A *descriptor* is a plain tuple that C code (core/pyvalue) converts to and
from the protobuf ``Value`` of the wire schema without knowing Python's
object model:

    ('none',)
    ('bool', b)
    ('i64', int)                       ints that fit in int64
    ('f64', float)
    ('str', s)                         up to STR_INLINE_MAX characters
    ('bytes', buffer_like)             travels as one out-of-band buffer
    ('ndarray', dtype_str, shape, fortran, buffer_like)
    ('list', [descriptors], is_tuple)  short lists and tuples
    ('pickle', bytes_like, [buffer_likes])   everything else

Only exact built-in types take the native forms (a bool subclass, an int
subclass or numpy.float64 is pickled), so every object comes back with its
own type. numpy and cloudpickle are imported only when actually needed:
engines start often, and importing them costs 30-150 ms.

This module is shared by the engine and the client; it has no state.
"""

import pickle

__all__ = ["encode", "decode"]

# A str longer than this (characters) is pickled: it then travels as an
# out-of-band buffer instead of inflating the envelope (16 MiB at most).
STR_INLINE_MAX = 1 << 20
# Lists and tuples are sent item by item only when small and shallow; a
# bigger or deeper one (or a self-referencing one) is pickled whole, which
# is both faster for big data and handles cycles. Inline costs about 1 us
# per item each way in Python, a pickle ~15 us plus ~0.06 us per item
# (1000 one-int tuples: 1.06 ms inline against 65 us pickled to encode,
# 1.16 ms against 75 us to decode), hence the small bounds.
LIST_INLINE_MAX = 64
_LIST_NODES_MAX = 256          # descriptors in one encoded list, nested included
_LIST_DEPTH_MAX = 16
_LIST_STR_CHARS_MAX = 1 << 20  # inline str characters inside one list

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class _Fallback(Exception):
    """An inline list exceeded a budget: pickle the whole object instead."""


class _Budget:
    __slots__ = ("nodes", "chars")

    def __init__(self):
        self.nodes = _LIST_NODES_MAX
        self.chars = _LIST_STR_CHARS_MAX


def _str_inline(s):
    # A protobuf-c string ends at the first NUL and must be UTF-8 (no lone
    # surrogates); anything else is pickled.
    if len(s) > STR_INLINE_MAX or "\0" in s:
        return False
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_plain_ndarray(obj):
    # Compare by name so that numpy is not imported to answer "no".
    t = type(obj)
    return t.__name__ == "ndarray" and t.__module__ == "numpy"


def _encode_ndarray(a):
    dt = a.dtype
    # Structured, sub-array and object dtypes do not survive dtype.str.
    if dt.hasobject or dt.names is not None or dt.subdtype is not None:
        return None
    fortran = False
    if not a.flags.c_contiguous:
        if a.flags.f_contiguous:
            fortran = True
        else:
            import numpy
            a = numpy.ascontiguousarray(a)
    return ("ndarray", dt.str, tuple(a.shape), fortran, a)


def _pickle(obj):
    # cloudpickle (functions, lambdas and closures by value) takes 30 ms to
    # import; plain pickle.loads finds it by itself when a stream needs it.
    import cloudpickle
    oob = []
    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=oob.append)
    return ("pickle", data, oob)


def _encode_scalar(obj, t):
    """The native descriptor of a scalar, or None."""
    if obj is None:
        return ("none",)
    if t is bool:
        return ("bool", obj)
    if t is int:
        return ("i64", obj) if _INT64_MIN <= obj <= _INT64_MAX else None
    if t is float:
        return ("f64", obj)
    if t is str:
        return ("str", obj) if _str_inline(obj) else None
    if t is bytes:
        return ("bytes", obj)
    return None


def _encode_list(seq, budget, depth):
    if len(seq) > LIST_INLINE_MAX or depth > _LIST_DEPTH_MAX:
        raise _Fallback
    budget.nodes -= len(seq)
    if budget.nodes < 0:
        raise _Fallback
    items = []
    for x in seq:
        t = type(x)
        if t is list or t is tuple:
            items.append(_encode_list(x, budget, depth + 1))
            continue
        if t is str:
            budget.chars -= len(x)
            if budget.chars < 0:
                raise _Fallback
        d = _encode_scalar(x, t)
        if d is None:
            d = _encode_other(x)
        items.append(d)
    return ("list", items, type(seq) is tuple)


def _encode_other(obj):
    if _is_plain_ndarray(obj):
        d = _encode_ndarray(obj)
        if d is not None:
            return d
    return _pickle(obj)


def encode(obj):
    """The descriptor of obj (see the module docstring).

    Raises what pickling raises for objects that cannot be pickled.
    """
    t = type(obj)
    d = _encode_scalar(obj, t)
    if d is not None:
        return d
    if t is list or t is tuple:
        try:
            return _encode_list(obj, _Budget(), 1)
        except _Fallback:
            return _pickle(obj)
    return _encode_other(obj)


def _decode_ndarray(dtype, shape, fortran, buf):
    import numpy
    dt = numpy.dtype(dtype)
    n = 1
    for s in shape:
        n *= s
    size = memoryview(buf).nbytes
    if n * dt.itemsize != size:
        raise ValueError("ndarray of dtype %s and shape %r needs %d bytes, buffer has %d"
                         % (dtype, tuple(shape), n * dt.itemsize, size))
    if n == 0:
        return numpy.empty(shape, dtype=dt, order="F" if fortran else "C")
    flat = numpy.frombuffer(buf, dtype=dt)
    # Reshaping a contiguous 1-D view never copies, in either order.
    return flat.reshape(shape, order="F" if fortran else "C")


def decode(desc):
    """The object a descriptor stands for.

    Buffers (RecvBuffer objects) are used without copying where the type
    allows it: ndarrays and pickle protocol-5 buffers share their memory;
    bytes is immutable and therefore copied.
    """
    kind = desc[0]
    if kind == "none":
        return None
    if kind in ("bool", "i64", "f64", "str"):
        return desc[1]
    if kind == "bytes":
        return bytes(desc[1])
    if kind == "ndarray":
        return _decode_ndarray(desc[1], desc[2], desc[3], desc[4])
    if kind == "list":
        items = [decode(d) for d in desc[1]]
        return tuple(items) if desc[2] else items
    if kind == "pickle":
        return pickle.loads(desc[1], buffers=desc[2])
    raise ValueError("unknown value descriptor %r" % (kind,))

