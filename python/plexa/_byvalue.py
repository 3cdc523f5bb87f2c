"""Which modules are the user's own, whose functions travel by value.

IPython 0.10 sent a function's code, so engines ran functions from modules
they could not import. plexa sends a function of an importable module as
a reference (module and name, which the engine imports: fast, and right
for the standard library and installed packages), except when the module
is one of the user's own files: those travel by value, the way
cloudpickle's ``register_pickle_by_value`` makes them, so that an engine
started in another directory (or on another host) runs them too.

The rule, per module (decided once, while the same module object stays in
sys.modules under its name):

    by reference   the standard library (the directory of ``os``), built-in
                   and frozen modules, anything under a ``site-packages`` or
                   ``dist-packages`` directory or a site directory, plexa
                   itself, and modules without a file (namespace packages)
    by value       every other module with a file: the user's scripts and
                   packages, wherever sys.path found them
    (``__main__`` always travels by value: cloudpickle sees to that.)

``registered(cloudpickle)`` registers the user's modules with cloudpickle
for the time of one dump (a function's, or another callable's such as a
functools.partial, a bound method or joblib's batch of calls): the
function, and the functions, classes and modules of the user's it refers
to, travel inside its pickle. Other values (pushed objects, task
arguments that are not callable) keep travelling by reference, as they always did, so that an engine which imports the user's
module itself sees one class, not two. The registration is process-wide
while it lasts (cloudpickle keeps one registry): another thread's
cloudpickle call in that moment may also send such a module by value,
which engines load as well.
"""

import os
import sys
import threading
import types

__all__ = ["user_module", "user_module_names", "registered"]

_decisions = {}          # module name -> (module object, is the user's)
_roots = None            # installed directories, with a trailing separator
_INSTALLED_DIRS = ("site-packages", "dist-packages")

_names_lock = threading.Lock()
_names_seen = None       # _modules_signature() when _names was computed
_names = ()

# One registration at a time: another dump's cleanup must not unregister
# modules while this one pickles.
_register_lock = threading.Lock()


def _installed_roots():
    """The standard library's and the site directories, each ending with a
    separator, real paths (plexa itself is recognised by name)."""
    global _roots
    if _roots is not None:
        return _roots
    dirs = [os.path.dirname(os.__file__)]
    site = sys.modules.get("site")
    for name in ("getsitepackages", "getusersitepackages"):
        try:
            got = getattr(site, name)()
        except Exception:       # no site module, or a venv's partial one
            continue
        dirs.extend([got] if isinstance(got, str) else got)
    # the standard library's zip (python3X.zip), when sys.path names one
    dirs.extend(p for p in sys.path if isinstance(p, str) and p.endswith(".zip"))
    roots = set()
    for d in dirs:
        if d:
            roots.add(os.path.join(os.path.realpath(d), ""))
    _roots = tuple(sorted(roots))
    return _roots


def _installed_path(path):
    real = os.path.realpath(path)
    if any(part in _INSTALLED_DIRS for part in real.split(os.sep)):
        return True
    return real.startswith(_installed_roots())


def _decide(module):
    name = module.__name__
    if name == "__main__" or name == "plexa" or name.startswith("plexa."):
        return False
    if name in sys.builtin_module_names:
        return False
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path:
        return False
    return not _installed_path(path)


def user_module(module):
    """Whether module is one of the user's own (its functions and classes
    travel by value). Cached per module object."""
    name = getattr(module, "__name__", None)
    if not isinstance(name, str):
        return False
    hit = _decisions.get(name)
    if hit is not None and hit[0] is module:
        return hit[1]
    decision = _decide(module)
    _decisions[name] = (module, decision)
    return decision


def _modules_signature():
    """Changes whenever a name enters or leaves sys.modules: a dict keeps
    insertion order, so any insertion changes its last key (unless that very
    key left first) and any removal alone changes its length."""
    return len(sys.modules), next(reversed(sys.modules), None)


def user_module_names():
    """The names of the user's modules now in sys.modules (recomputed when
    its names change)."""
    global _names_seen, _names
    with _names_lock:
        sig = _modules_signature()
        if sig != _names_seen:
            _names = tuple(name for name, m in list(sys.modules.items())
                           if isinstance(m, types.ModuleType) and user_module(m))
            _names_seen = sig
        return _names


class registered(object):
    """``with registered(cloudpickle):`` the user's modules are registered
    by value with cloudpickle (those a user registered already stay so)."""

    def __init__(self, cloudpickle):
        self._cp = cloudpickle
        self._added = []

    def __enter__(self):
        _register_lock.acquire()
        try:
            already = self._cp.list_registry_pickle_by_value()
            for name in user_module_names():
                m = sys.modules.get(name)
                if m is not None and name not in already and user_module(m):
                    self._cp.register_pickle_by_value(m)
                    self._added.append(m)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            for m in self._added:
                try:
                    self._cp.unregister_pickle_by_value(m)
                except ValueError:      # unregistered meanwhile by its user
                    pass
            self._added = []
        finally:
            _register_lock.release()
        return False
