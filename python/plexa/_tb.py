"""Hiding plexa's own client frames from the tracebacks users see.

A remote error, a timeout, a lost connection or a Ctrl-C during a blocking
call is about the user's line that made the call, not about the wait loops
inside plexa (client.py, multiengine.py, _pending.py, ...). Two mechanisms:

* IPython hides every frame whose locals hold ``__tracebackhide__ = True``:
  the public entry points (through :func:`boundary`) and the wait loops set
  it.
* Plain Python has no such rule. The public entry points are wrapped in
  :func:`boundary`: an exception of a kind plexa raises for the user
  (:data:`HIDDEN_FOR`) that leaves plexa has plexa's frames unlinked from
  its traceback (``tb_next`` is writable), and is re-raised with a bare
  ``raise``, which adds no frame. The traceback Python prints then goes from
  the user's script to the user's own code plexa called back, if any. The
  exception itself is untouched: a RemoteError or CompositeError keeps the
  remote tracebacks it carries, and ``__cause__`` / ``__context__`` stay
  (their tracebacks are trimmed the same way).

Other exceptions (a TypeError for a bad argument, a bug in plexa) keep every
frame. ``PLEXA_HIDE_FRAMES=0`` in the environment (or ``plexa._tb.hide =
False``) keeps every frame of every exception, for debugging plexa itself.

  boundary(fn)       wrap one public function or method
  hide_frames(cls)   wrap a class's public methods and properties
  trim(exc)          the trimming itself
"""

import concurrent.futures as _cf
import functools
import inspect
import os

from plexa.error import KernelError

__all__ = ['boundary', 'hide_frames', 'trim', 'hide', 'HIDDEN_FOR']

hide = os.environ.get('PLEXA_HIDE_FRAMES', '1').strip() not in ('0', 'no', 'false', 'off')

# What plexa raises for the user out of its waits: remote and client errors,
# timeouts, cancellation, and Ctrl-C.
HIDDEN_FOR = (KernelError, TimeoutError, _cf.TimeoutError, _cf.CancelledError,
              KeyboardInterrupt)

_OWN_DIR = os.path.dirname(os.path.abspath(__file__))
_LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(os.__file__)), '')


def _own(filename):
    return os.path.dirname(filename) == _OWN_DIR


def _library(filename):
    """The standard library's (an installed package is not: under some
    prefixes site-packages lies inside the standard library's directory)."""
    if filename.startswith('<frozen '):
        return True
    return filename.startswith(_LIB_DIR) and \
        'site-packages' not in filename and 'dist-packages' not in filename


def _trimmed(tb):
    """tb without plexa's frames, and without the standard library's frames
    that plexa called (a threading wait); the frames above plexa's first one
    (the user's, whatever they are) and user code plexa called back stay."""
    keep = []
    inside = False
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if _own(filename):
            inside = True
        elif not (inside and _library(filename)):
            keep.append(tb)
        tb = tb.tb_next
    for a, b in zip(keep, keep[1:]):
        a.tb_next = b
    if keep:
        keep[-1].tb_next = None
        return keep[0]
    return None


def trim(exc):
    """Drop plexa's frames from exc's traceback and from those of the
    exceptions chained to it (of the HIDDEN_FOR kinds). Returns exc."""
    seen = set()
    e = exc
    while isinstance(e, HIDDEN_FOR) and id(e) not in seen:
        seen.add(id(e))
        e.__traceback__ = _trimmed(e.__traceback__)
        e = e.__cause__ if e.__cause__ is not None else e.__context__
    return exc


def boundary(fn):
    """Wrap a public function: exceptions of the HIDDEN_FOR kinds leave it
    with plexa's frames trimmed (see the module's docstring). Generator
    functions are wrapped as generators."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def public_gen(*args, **kwargs):
            __tracebackhide__ = True  # noqa: F841  (read by IPython)
            try:
                return (yield from fn(*args, **kwargs))
            except HIDDEN_FOR as e:
                if hide:
                    trim(e)
                raise       # bare: adds no frame of this wrapper
        public_gen.__plexa_boundary__ = True
        return public_gen

    @functools.wraps(fn)
    def public(*args, **kwargs):
        __tracebackhide__ = True  # noqa: F841  (read by IPython)
        try:
            return fn(*args, **kwargs)
        except HIDDEN_FOR as e:
            if hide:
                trim(e)
            raise           # bare: adds no frame of this wrapper
    public.__plexa_boundary__ = True
    return public


# Special methods that are public entry points too (mec['a'], len(mec),
# with mec:, iteration).
# (Not __enter__: MultiEngineClient's reads its caller's frame.)
_DUNDERS = frozenset({'__getitem__', '__setitem__', '__len__', '__call__', '__iter__',
                      '__next__'})


def hide_frames(cls):
    """Class decorator: wrap in :func:`boundary` every public method and
    property getter defined in the class itself (not inherited ones). An
    alias (``clear_pending_results = flush``) stays the same object as the
    method it names."""
    wrapped = {}

    def wrap(fn):
        if getattr(fn, '__plexa_boundary__', False):
            return fn
        if fn not in wrapped:
            wrapped[fn] = boundary(fn)
        return wrapped[fn]
    for name, attr in list(vars(cls).items()):
        if name.startswith('_') and name not in _DUNDERS:
            continue
        if isinstance(attr, property) and attr.fget is not None:
            setattr(cls, name, property(wrap(attr.fget), attr.fset, attr.fdel, attr.__doc__))
        elif isinstance(attr, (staticmethod, classmethod)):
            setattr(cls, name, type(attr)(wrap(attr.__func__)))
        elif inspect.isfunction(attr):
            setattr(cls, name, wrap(attr))
    return cls
