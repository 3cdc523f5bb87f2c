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
    ('ref', engine, key)               plexa.ref (a push's own values only)

Only exact built-in types take the native forms (a bool subclass, an int
subclass or numpy.float64 is pickled), so every object comes back with its
own type. numpy and cloudpickle are imported only when actually needed:
engines start often, and importing them costs 30-150 ms.

This module is shared by the engine and the client. Its only state is a
cache of pickled functions (see _pickle_function). Which functions travel
by value (the user's own modules') and which as references is
plexa._byvalue's rule.
"""

import pickle
import sys
import types
import weakref

from plexa import _byvalue
from plexa._refs import ref as _ref

__all__ = ["encode", "decode", "decode_native", "UntrustedPickle"]

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


# MapTask sends (func, args, kwargs) per task, and kwargs is nearly always
# empty: a cloudpickle call costs more than the rest of a submission.
_EMPTY_DICT = ("pickle", pickle.dumps({}, protocol=5), [])

# Pickled functions, reused while nothing they capture can have changed:
# pickling a lambda costs 15-50 us, more than queueing a task, so a loop
# of tc.run(MapTask(f, ...)) would spend most of its time re-pickling f.
# (Dask caches pickled functions the same way, without the checks.) The
# key is the function object (a function redefined in a session is a new
# object); the entry keeps what the pickle captured, compared by identity
# on every use, starting with f.__code__.
_FUNC_CACHE = weakref.WeakKeyDictionary()
_FUNC_CACHE_MAX = 256
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
# Objects one function's pickle may capture and still be cached: a function
# dragging more along (a big module of the user's) is pickled every time.
_CAPTURE_MAX = 512
# Attributes of a class or module sent by value that are its own
# machinery, not state code changes (cloudpickle rebuilds or skips them).
_SKIP_ATTRS = frozenset(("__dict__", "__weakref__", "__module__", "__doc__", "__qualname__",
                         "__builtins__", "__spec__", "__loader__", "__cached__", "__file__",
                         "__name__", "__package__", "__path__"))


def _stable(v, refs, seen, depth=0):
    """Whether v pickles the same for as long as it stays bound: nothing in
    it can change in place. What a function, class or module sent by value
    holds is walked (into refs, compared by identity on the next use)."""
    if isinstance(v, _SCALARS) or isinstance(v, types.BuiltinFunctionType):
        return True
    t = type(v)
    if t is tuple:
        return depth < 3 and len(v) <= 16 and \
            all(_stable(x, refs, seen, depth + 1) for x in v)
    if t is types.ModuleType:
        return not _byvalue.user_module(v) or _walk(v, vars(v), refs, seen)
    if isinstance(v, (type, types.FunctionType)):
        if _by_reference(v):
            return True
        if t is types.FunctionType:
            return _walk(v, None, refs, seen)
        return _walk(v, vars(v), refs, seen) and all(_stable(b, refs, seen) for b in v.__bases__)
    if t in (staticmethod, classmethod):
        return _stable(v.__func__, refs, seen)
    return False


def _walk(obj, attrs, refs, seen):
    """Add what sending obj by value captures to refs; False when any of it
    could change in place, or when there is too much of it. attrs: a class's
    or module's namespace (None for a function)."""
    if id(obj) in seen:
        return True
    seen.add(id(obj))
    if attrs is None:
        return _walk_function(obj, refs, seen)
    for k, v in list(attrs.items()):
        if k in _SKIP_ATTRS:
            continue
        refs.append(k)
        refs.append(v)
        if len(refs) > _CAPTURE_MAX or not _stable(v, refs, seen):
            return False
    return True


def _walk_function(f, refs, seen):
    if f.__dict__:
        return False
    refs.append(f.__code__)
    vals = []
    g = f.__globals__
    codes = [f.__code__]
    while codes:
        code = codes.pop()
        for name in code.co_names:
            if name in g:
                vals.append(g[name])
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    for cell in f.__closure__ or ():
        try:
            vals.append(cell.cell_contents)
        except ValueError:      # an empty cell
            return False
    vals.extend(f.__defaults__ or ())
    vals.extend((f.__kwdefaults__ or {}).values())
    for v in vals:
        refs.append(v)
        if len(refs) > _CAPTURE_MAX or not _stable(v, refs, seen):
            return False
    return True


def _captured(f):
    """What pickling f by value captures (its code, referenced globals,
    closure cells, defaults, and theirs for the user's functions, classes
    and modules it refers to), or None when any of it could change in
    place."""
    refs = []
    return refs if _walk_function(f, refs, {id(f)}) else None


def _by_reference(obj):
    """Does a function or class travel as a reference (module and name) the
    receiver imports, as cloudpickle itself would send it? True for one of
    a real, importable module that is found under its own name, unless the
    module is the user's own (plexa._byvalue); False for __main__, lambdas,
    nested functions, modules without a spec and modules registered with
    cloudpickle.register_pickle_by_value."""
    modname = getattr(obj, "__module__", None)
    mod = sys.modules.get(modname) if isinstance(modname, str) else None
    if mod is None or modname == "__main__" or getattr(mod, "__spec__", None) is None:
        return False
    if _byvalue.user_module(mod):
        return False
    cp = sys.modules.get("cloudpickle.cloudpickle")
    by_value = getattr(cp, "_PICKLE_BY_VALUE_MODULES", ())
    if any(modname == m or modname.startswith(m + ".") for m in by_value):
        return False
    found = mod
    for part in getattr(obj, "__qualname__", "<>").split("."):
        found = getattr(found, part, None)
    return found is obj


def _pickle_function(f):
    refs = _captured(f)
    hit = _FUNC_CACHE.get(f) if refs is not None else None
    # Compared by identity, and kept alive by the entry so that an id is
    # never reused by another object while cached.
    if hit is not None and len(hit[0]) == len(refs) and \
            all(a is b for a, b in zip(hit[0], refs)):
        return hit[1]
    # A module's function is a reference either way: plain pickle writes
    # the same stream without importing cloudpickle (13-30 ms, paid by the
    # first call that ships a function otherwise).
    if _by_reference(f):
        return ("pickle", pickle.dumps(f, protocol=5), [])
    d = _cloudpickle_function(f)
    if refs is not None and not d[2]:
        if len(_FUNC_CACHE) >= _FUNC_CACHE_MAX:
            _FUNC_CACHE.clear()
        _FUNC_CACHE[f] = (refs, d)
    return d


def _cloudpickle_function(f):
    """f by value, with the user's modules it refers to (plexa._byvalue).
    Should that fail (a global of the user's module that does not pickle,
    such as a lock), f goes as cloudpickle alone sends it: by reference
    when its module is importable, as before plexa sent user modules by
    value, which works on engines that can import it."""
    import cloudpickle
    try:
        with _byvalue.registered(cloudpickle):
            return _cloudpickle(f)
    except Exception:
        return _cloudpickle(f)


def _cloudpickle(obj):
    # cloudpickle (functions, lambdas and closures by value) takes 30 ms to
    # import; plain pickle.loads finds it by itself when a stream needs it.
    import cloudpickle
    oob = []
    data = cloudpickle.dumps(obj, protocol=5, buffer_callback=oob.append)
    return ("pickle", data, oob)


def _pickle(obj):
    t = type(obj)
    if t is types.FunctionType:
        return _pickle_function(obj)
    if (t is types.MethodType or t.__module__ != "builtins") and callable(obj) and \
            not isinstance(obj, type):
        # A callable holding functions (functools.partial, a bound method,
        # joblib's batches, an instance with __call__): the user's
        # functions in it travel by value too, as a function itself would.
        # Not cached: what it holds may change in place.
        return _cloudpickle_function(obj)
    if t is dict and not obj:
        return _EMPTY_DICT
    return _cloudpickle(obj)


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
    if t is _ref:
        return ("ref", obj.engine, obj.key)
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


class UntrustedPickle(Exception):
    """A value from an engine that only unpickling could rebuild, refused by
    a client that does not trust engines' pickles (trust_engine_pickles =
    false): unpickling runs whatever code the sender chose."""


def decode(desc, _trusted=True):
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
        items = [decode(d, _trusted) for d in desc[1]]
        return tuple(items) if desc[2] else items
    if kind == "pickle":
        if not _trusted:
            raise UntrustedPickle(
                "the engine sent a pickled object (%d bytes); this client accepts only "
                "plexa's native values from engines (None, bool, int, float, str, bytes, "
                "numpy arrays, lists and tuples of them), since unpickling runs code the "
                "sender chose. Set trust_engine_pickles = true in the profile's [client] "
                "section, or pass trust_engine_pickles=True, if every holder of the engine "
                "token is trusted" % len(desc[1]))
        return pickle.loads(desc[1], buffers=desc[2])
    raise ValueError("unknown value descriptor %r" % (kind,))


def decode_native(desc):
    """decode, refusing pickles (UntrustedPickle): for clients that do not
    trust what engines send."""
    return decode(desc, False)
