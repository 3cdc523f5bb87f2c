"""plexa._serialize and plexa._engine in a plain interpreter (no engine
process): descriptor forms, round trips, fallbacks to pickle, lazy
imports, and the cell semantics of _engine.execute."""

import subprocess
import sys

import pytest

from plexa import _serialize as S


def round_trip(obj):
    """encode, then decode with buffers seen as plain memory (as a
    RecvBuffer would give them)."""
    d = S.encode(obj)
    return d, S.decode(_as_received(d))


def _as_received(d):
    kind = d[0]
    if kind == "bytes":
        return ("bytes", bytearray(d[1]))
    if kind == "ndarray":
        # The C side sends the array's memory as it lies: C or Fortran order.
        return d[:4] + (bytearray(d[4].tobytes(order="F" if d[3] else "C")),)
    if kind == "list":
        return ("list", [_as_received(x) for x in d[1]], d[2])
    if kind == "pickle":
        return ("pickle", bytearray(d[1]), [bytearray(memoryview(b).cast("B")) for b in d[2]])
    return d


@pytest.mark.parametrize("obj,kind", [
    (None, "none"), (True, "bool"), (False, "bool"), (0, "i64"), (-2**63, "i64"),
    (2**63 - 1, "i64"), (2**63, "pickle"), (1.5, "f64"), ("", "str"), ("héllo", "str"),
    ("a\0b", "pickle"), ("\udc80", "pickle"), (b"xy", "bytes"), ([], "list"),
    ((1, "a"), "list"), ([1, [2, (3,)]], "list"), (list(range(1001)), "pickle"),
    ({"a": 1}, "pickle"), (bytearray(b"x"), "pickle"), (3 + 4j, "pickle"),
])
def test_kinds_and_round_trip(obj, kind):
    d, back = round_trip(obj)
    assert d[0] == kind
    assert back == obj and type(back) is type(obj)


def test_subclasses_keep_their_type():
    import enum

    class Color(enum.IntEnum):
        RED = 1

    class MyStr(str):
        pass

    for obj in (Color.RED, MyStr("x")):
        d, back = round_trip(obj)
        assert d[0] == "pickle" and type(back) is type(obj)


def test_long_str_and_list_budgets():
    assert S.encode("x" * (S.STR_INLINE_MAX + 1))[0] == "pickle"
    assert S.encode(["x" * 600000, "y" * 600000])[0] == "pickle"   # inline chars budget
    deep = []
    for _ in range(40):
        deep = [deep]
    assert S.encode(deep)[0] == "pickle"
    loop = []
    loop.append(loop)
    d, back = round_trip(loop)
    assert d[0] == "pickle" and back[0] is back


def test_lambda_and_closure():
    k = 5
    d, back = round_trip(lambda x: x + k)
    assert d[0] == "pickle" and back(1) == 6


def test_ndarrays():
    np = pytest.importorskip("numpy")
    for a in (np.arange(12.0).reshape(3, 4), np.asfortranarray(np.arange(12).reshape(3, 4)),
              np.arange(20)[::3], np.zeros((0, 3)), np.array(7.0), np.array(["ab", "c"]),
              np.arange(6, dtype=">i4").reshape(2, 3)):
        d, back = round_trip(a)
        assert d[0] == "ndarray"
        assert back.dtype == a.dtype and back.shape == a.shape
        assert np.array_equal(back, a)
    s = np.zeros(2, dtype=[("x", "<f8"), ("y", "<i4")])
    d, back = round_trip(s)
    assert d[0] == "pickle" and back.dtype == s.dtype
    o = np.array([1, "x"], dtype=object)
    assert S.encode(o)[0] == "pickle"
    assert S.encode(np.float64(1.0))[0] == "pickle"   # a numpy scalar keeps its type
    with pytest.raises(ValueError):
        S.decode(("ndarray", "<f8", (3,), False, bytearray(16)))


def fresh_python(code):
    """The lines a new interpreter prints running code."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_no_eager_heavy_imports():
    code = ("import sys; from plexa import _serialize as S\n"
            "S.decode(S.encode([1, 'a', None, b'x', (2.5,)]))\n"
            "print('numpy' in sys.modules, 'cloudpickle' in sys.modules)")
    assert fresh_python(code) == ["False False"]


def test_module_functions_travel_without_cloudpickle():
    """A function of an importable module is a reference: plain pickle
    writes cloudpickle's very stream, so the first call that ships one does
    not pay cloudpickle's import. __main__'s functions, lambdas, nested
    functions and modules registered by value still go through cloudpickle."""
    code = ("import sys, os.path, pickle, json\n"
            "from plexa import _serialize as S\n"
            "d = S.encode(os.path.join)\n"
            "print(d[0], pickle.loads(d[1]) is os.path.join, 'cloudpickle' in sys.modules)\n"
            "d = S.encode(json.dumps)\n"
            "print('cloudpickle' in sys.modules)\n"
            "def here(x): return x\n"
            "print(S.decode(S.encode(here))(3), 'cloudpickle' in sys.modules)\n"
            "import cloudpickle\n"
            "print(cloudpickle.dumps(json.dumps, protocol=5) == S.encode(json.dumps)[1])\n"
            "cloudpickle.register_pickle_by_value(json)\n"
            "print(S.encode(json.dumps)[1] != pickle.dumps(json.dumps, protocol=5))\n"
            "def outer():\n"
            "    def inner(): return 5\n"
            "    return inner\n"
            "print(S.decode(S.encode(outer()))())\n")
    out = fresh_python(code)
    assert out == ["pickle True False", "False", "3 True", "True", "True", "5"], out


def test_engine_execute_semantics():
    code = ("from plexa import _engine as E\n"
            "print(E.execute('a = 2')[0:3])\n"
            "print(E.execute('a * 21')[0:3])\n"
            "print(repr(E.execute('_')[1]))\n"
            "print(E.execute('import sys; sys.exit(2)')[3][0])\n"
            "print(E.execute('def f():\\n  1/0\\nf()')[3][2].count('<plexa-input-5>'))\n"
            "print(E.pull(['a', 'zz'])[1][1])\n"
            "print(E.push([('b', ('i64', 7))]), E.pull(['b'])[0])\n")
    out = fresh_python(code)
    assert out == ["(1, '', '')", "(2, '42\\n', '')", "'42\\n'", "SystemExit", "2",
                   "name 'zz' is not defined", "None [('i64', 7)]"]


def test_engine_call_helpers():
    """plexa._engine.call in a plain interpreter: history bounds, reset,
    map counting and errors that never escape. The script keeps its own
    names out of __main__, which is the namespace the helpers work on."""
    code = r"""
def main():
    from plexa import _engine as E, _serialize as S

    def call(method, *args):
        ex, descs, err = E.call(method, [S.encode(a) for a in args])
        return ex, [S.decode(d) for d in descs], err and err[:2]
    E.HISTORY_MAX = 3
    for i in range(5):
        E.execute("x%d = %d" % (i, i))
    print(call("get_result", None)[0])
    print(call("get_result", 1)[2])
    print(call("get_result", 3)[0][:2])
    print(call("keys")[1])
    print(call("reset"), call("keys")[1])
    print(call("map", lambda a, b: a - b, [[5, 7], [1, 2]])[:2])
    print(call("get_result", None)[0][0], E.execute("pass")[0])
    print(call("apply", lambda *a, **k: (a, k), [1], {"z": 2})[1])
    print(call("apply", lambda: __import__("threading").Lock(), [], None)[2][0])
    print(call("map", 1, [[1]])[2], call("keys", 1)[2])
    print(call("nope")[2][0])
    E.HISTORY_CHARS_MAX = 10
    E.execute("print('x' * 50)")
    print(call("get_result", 6)[2][1], repr(call("get_result", 8)[0][2]))
__import__("builtins").main_ = main
del main
main_()
"""
    out = fresh_python(code)
    assert out == [
        "(5, 'x4 = 4', '', '')",
        "('IndexError', \"command 1 is not in this engine's history (kept: 3..5)\")",
        "(3, 'x2 = 2')",
        "[['x0', 'x1', 'x2', 'x3', 'x4']]",
        "(None, [], None) [[]]",
        "((6, '_plexa_map_result = list(map(_plexa_map_func, *_plexa_map_seqs))', '', ''),"
        " [[4, 5]])",
        "6 7",
        "[((1,), {'z': 2})]",
        "TypeError",
        "('TypeError', 'map: int object is not callable')"
        " ('TypeError', 'keys takes 0 arguments (1 given)')",
        "ProtocolError",
        "command 6 is not in this engine's history (kept: 8..8) '%s\\n'" % ("x" * 50),
    ]


def test_engine_tracebacks_show_source_lines():
    """Every counted command is compiled under <plexa-input-N> (its In [N])
    with its lines in linecache, so a traceback shows the failing line, also
    through a function an earlier command defined, and map's own line when
    the mapped function is a builtin (no frame of its own). The lines leave
    linecache with the command's history entry."""
    code = r"""
def main():
    import linecache, math
    from plexa import _engine as E, _serialize as S
    E.execute("def f(x):\n    return 1 / x\n")
    tb = E.execute("y = undefined_name + 1")[3][2]
    print('File "<plexa-input-2>", line 1, in <module>\n    y = undefined_name + 1\n' in tb)
    tb = E.execute("f(0)")[3][2]
    print('File "<plexa-input-1>", line 2, in f\n    return 1 / x\n' in tb,
          'File "<plexa-input-3>", line 1, in <module>\n    f(0)\n' in tb)
    ex, _, err = E.call("map", [S.encode(math.sqrt), S.encode([[4, -1]])])
    print(ex[0], err[0], 'File "<plexa-input-4>", line 1, in <module>\n'
          '    _plexa_map_result = list(map(_plexa_map_func, *_plexa_map_seqs))' in err[2],
          "_engine.py" in err[2])
    import plexa._map as M
    ex, _, err = E.call("map", [S.encode(M._EngineName("f")), S.encode([[0]])])
    print(err[2].count("<plexa-input-"), "_map.py" in err[2])   # map line, then f
    st, _, err, _o, _e = E.task("string", [S.encode("z = 1\nraise KeyError(z)"), S.encode(None),
                                           S.encode(None)], None, False, False)
    print('File "<plexa-input-6>", line 2, in <module>\n    raise KeyError(z)' in err[2])
    print(E.execute("1 +")[3][2].splitlines()[0])
    E.HISTORY_MAX = 3
    for i in range(3):
        E.execute("pass")
    print(sorted(k for k in linecache.cache if k.startswith("<plexa-input-")))
    print(linecache.getline("<plexa-input-10>", 1) == "pass")
    E.HISTORY_CHARS_MAX = 10
    E.execute("a_long_name_for_a_value = 'x' * 20")
    print(sorted(k for k in linecache.cache if k.startswith("<plexa-input-")))
__import__("builtins").main_ = main
del main
main_()
"""
    out = fresh_python(code)
    assert out == [
        "True",
        "True True",
        "4 ValueError True False",
        "2 False",
        "True",
        '  File "<plexa-input-7>", line 1',
        "['<plexa-input-10>', '<plexa-input-8>', '<plexa-input-9>']",
        "True",
        "['<plexa-input-11>']",
    ]


def _roundtrip_call(f, *args):
    return S.decode(S.encode(f))(*args)


def test_function_pickles_are_cached_while_unchanged():
    import numpy
    f = lambda x: numpy.add(x, 1)   # noqa: E731  (module global: stable)
    first = S.encode(f)
    assert S.encode(f) is first                 # reused, not re-pickled
    assert _roundtrip_call(f, 1) == 2
    g = lambda x, k=3: x * k        # noqa: E731  (stable default)
    assert S.encode(g) is S.encode(g)
    assert S.encode({}) is S.encode({})         # the empty kwargs constant
    assert S.decode(S.encode({})) == {}


CAPTURE = 1


def test_function_cache_sees_rebinding_and_mutation():
    global CAPTURE
    f = lambda x: x + CAPTURE       # noqa: E731
    assert _roundtrip_call(f, 1) == 2
    CAPTURE = 5                      # rebinding a global is seen
    assert _roundtrip_call(f, 1) == 6
    box = [1]
    h = lambda x: x + box[0]        # noqa: E731  (a list can change in place)
    first = S.encode(h)
    box[0] = 10
    assert S.encode(h) is not first
    assert _roundtrip_call(h, 1) == 11

    def outer(n):
        return lambda x: x + n
    k = outer(2)
    assert S.encode(k) is S.encode(k)
    assert _roundtrip_call(k, 1) == 3
    arr = [0]
    c = outer(arr)                   # a mutable closure cell: never cached
    assert S.encode(c) is not S.encode(c)
