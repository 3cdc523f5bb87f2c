"""Which functions travel by value (issue 19), in a plain interpreter: the
rule per module (standard library and installed packages by reference,
the user's own files by value), what a by-value pickle carries, that a
fresh interpreter without the user's module on its path runs it, and the
caches (one decision per module, one pickle per unchanged function)."""
import importlib
import json
import os.path
import pickle
import subprocess
import sys
import textwrap
import threading

import cloudpickle
import numpy
import pytest

import plexa
from plexa import _byvalue, _serialize as S


def run_elsewhere(desc, arg, tmp_path):
    """Unpickle a function descriptor in a new interpreter that cannot
    import the user's module (cwd and path elsewhere) and call it."""
    code = ("import pickle, sys\n"
            "f = pickle.loads(sys.stdin.buffer.read())\n"
            "print(repr(f(%r)))\n" % (arg,))
    p = subprocess.run([sys.executable, "-c", code], input=bytes(desc[1]), cwd=str(tmp_path),
                       capture_output=True, timeout=60)
    return p.stdout.decode().strip(), p.stderr.decode()


@pytest.fixture
def usermod(tmp_path):
    """Write and import a module of the user's, from a directory of its own;
    yields a function that (re)writes and (re)imports it."""
    where = tmp_path / "userlib"
    where.mkdir()
    sys.path.insert(0, str(where))
    names = []

    def make(name, source):
        (where / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        if name in sys.modules:
            return importlib.reload(sys.modules[name])
        names.append(name)
        return importlib.import_module(name)
    yield make
    sys.path.remove(str(where))
    for name in names:
        sys.modules.pop(name, None)


def test_the_rule():
    assert not _byvalue.user_module(json)                 # the standard library
    assert not _byvalue.user_module(os.path)
    assert not _byvalue.user_module(sys)                  # built in
    assert not _byvalue.user_module(numpy)                # an installed package
    assert not _byvalue.user_module(cloudpickle)
    assert not _byvalue.user_module(plexa) and not _byvalue.user_module(S)
    assert not _byvalue.user_module(sys.modules["__main__"])   # cloudpickle's already
    assert _byvalue.user_module(sys.modules[__name__])    # this test file: the user's


def test_stdlib_and_installed_functions_travel_by_reference():
    for f in (json.dumps, os.path.join, numpy.sum):
        d = S.encode(f)
        assert d[1] == pickle.dumps(f, protocol=5), f     # module and name only
        assert len(d[1]) < 100


def test_a_user_function_travels_by_value(usermod, tmp_path):
    usermod("plexa_t_helpers", """
        OFFSET = 100
        def shift(x):
            return x + OFFSET
    """)
    m = usermod("plexa_t_geo", """
        import math
        import plexa_t_helpers
        from plexa_t_helpers import shift
        class Point:
            def __init__(self, x):
                self.x = x
        def f(x):
            return shift(x) * 2
        def g(x):
            return plexa_t_helpers.shift(x) + math.floor(0.5)
        def mk(x):
            return Point(x).x
    """)
    assert _byvalue.user_module(m)
    assert set(_byvalue.user_module_names()) >= {"plexa_t_geo", "plexa_t_helpers"}
    for fn, want in ((m.f, "206"), (m.g, "103"), (m.mk, "3")):
        out, err = run_elsewhere(S.encode(fn), 3, tmp_path)
        assert out == want, err
    # the registration lasted only for the dump: other values (a Point
    # pushed or passed as an argument) still travel by reference
    assert "plexa_t_geo" not in cloudpickle.list_registry_pickle_by_value()
    data = S.encode(m.Point(1))[1]
    assert b"plexa_t_geo" in data and b"__init__" not in data


def test_callables_holding_user_functions_carry_them(usermod, tmp_path):
    """A partial, a bound method or an instance with __call__ made of the
    user's code runs where the module cannot be imported (joblib sends its
    batches of calls this way)."""
    import functools
    m = usermod("plexa_t_calls", """
        def add(a, b):
            return a + b
        class Scaler:
            def __init__(self, k):
                self.k = k
            def scale(self, x):
                return self.k * x
            def __call__(self, x):
                return add(self.k, x)
    """)
    cases = ((functools.partial(m.add, 10), "13"), (m.Scaler(5).scale, "15"),
             (m.Scaler(7), "10"))
    for fn, want in cases:
        out, err = run_elsewhere(S.encode(fn), 3, tmp_path)
        assert out == want, err
    assert "plexa_t_calls" not in cloudpickle.list_registry_pickle_by_value()


def test_a_user_registration_is_left_alone(usermod):
    m = usermod("plexa_t_reg", "def f(x):\n    return x\n")
    cloudpickle.register_pickle_by_value(m)
    try:
        S.encode(m.f)
        assert "plexa_t_reg" in cloudpickle.list_registry_pickle_by_value()
    finally:
        cloudpickle.unregister_pickle_by_value(m)


def test_one_decision_per_module(usermod, monkeypatch):
    m = usermod("plexa_t_once", "def f(x):\n    return x\n")
    calls = []
    real = _byvalue._decide
    monkeypatch.setattr(_byvalue, "_decide", lambda mod: calls.append(mod) or real(mod))
    _byvalue._decisions.pop("plexa_t_once", None)
    for _ in range(5):
        assert _byvalue.user_module(m)
    assert calls == [m]


def test_pickles_are_cached_and_never_stale(usermod, tmp_path):
    m = usermod("plexa_t_cache", """
        K = 2
        def helper(x):
            return x * K
        def f(x):
            return helper(x) + 1
    """)
    first = S.encode(m.f)
    assert S.encode(m.f) is first                    # paid once
    assert run_elsewhere(first, 5, tmp_path)[0] == "11"
    m.K = 10                                         # a global the helper reads
    second = S.encode(m.f)
    assert second is not first and run_elsewhere(second, 5, tmp_path)[0] == "51"
    m.helper = lambda x: -x                          # a rebound helper
    assert run_elsewhere(S.encode(m.f), 5, tmp_path)[0] == "-4"
    old_f = m.f
    m = usermod("plexa_t_cache", """
        K = 2
        def helper(x):
            return x * K
        def f(x):
            return helper(x) + 1000
    """)                                             # redefined (reloaded): new objects
    assert m.f is not old_f
    assert run_elsewhere(S.encode(m.f), 5, tmp_path)[0] == "1010"
    old_f.__code__ = m.f.__code__                    # new code in the old object
    assert run_elsewhere(S.encode(old_f), 1, tmp_path)[0] == "1002"


def test_unpicklable_globals_fall_back_to_a_reference(usermod):
    """A function of the user's whose globals do not pickle goes by
    reference, as before (engines that can import its module run it)."""
    m = usermod("plexa_t_lock", """
        import threading
        LOCK = threading.Lock()
        def f(x):
            with LOCK:
                return x
    """)
    d = S.encode(m.f)
    assert pickle.loads(d[1]) is m.f and b"co_code" not in d[1] and len(d[1]) < 100
    assert isinstance(m.LOCK, type(threading.Lock()))
