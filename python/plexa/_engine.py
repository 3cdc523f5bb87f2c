"""The Python half of ipengine: runs requests in ``__main__``.

The engine's C code (core/engine) owns the connection, the threads and the
buffers; it calls these functions on the Python (main) thread, one request
at a time, with the GIL held:

    execute(code)   -> (number, stdout, stderr, error)
    push(pairs)     -> error            pairs: [(name, descriptor), ...]
    pull(keys)      -> (descriptors, error)
    call(method, args) -> (execute, descriptors, error)
                    the multi-engine helpers by name (keys, reset,
                    get_result, map, apply); args are descriptors;
                    execute is None or (number, input, stdout, stderr)
    task(kind, args, depend, clear_before, clear_after, piece=None)
                    -> (status, descriptors, error, stdout, stderr)
                    one load-balanced task (see task() for the kinds)
    set_id(n)       the engine id, visible to user code as ``id`` and in
                    ``properties['engine_id']``
    setup_mpi(kind) ``--mpi=mpi4py``: ``mpi`` in the namespace
    can_finalize()  -> bool: no user thread would block interpreter exit

``error`` is None or ``(ename, evalue, traceback_text)``. These functions
never raise for anything user code or user data does: every exception,
including SystemExit and KeyboardInterrupt, becomes an error tuple, so the
engine keeps serving.
"""

import ast
import builtins
import collections
import io
import linecache
import os
import sys
import traceback

from plexa import _engine_ipython as _ipy
from plexa import _serialize

# The engine has read its token (core/engine removed it from the C
# environment): the copy Python made at start-up goes too, so that user
# code and the processes it starts cannot find it.
os.environ.pop("PLEXA_URL", None)

__all__ = ["execute", "push", "pull", "call", "task", "set_id", "setup_mpi", "can_finalize",
           "properties"]

# Every counted command's code (a cell, a string task's code, map's input)
# is compiled under the name of its In [n] and its lines are put in
# linecache under that name, so remote tracebacks show the source line:
#   File "<plexa-input-3>", line 1, in <module>
#     x = undefined + 1
# (0.10's engines compiled under "<string>" and showed no line). The lines
# stay as long as the command is in the history (see _remember), so a later
# traceback through a function an earlier cell defined shows its lines too.
CELL_FILENAME = "<plexa-input-%d>"

# IPython's syntax and API in cells, where IPython is installed (plexa's
# _engine_ipython; loaded on first use). ipengine --no-ipython sets False.
IPYTHON = True

_main = sys.modules["__main__"]
_ns = _main.__dict__
_number = 0   # the In [n] counter: executes (and maps) only, push and pull do not count

# What reset() leaves in the namespace: the module attributes a fresh
# __main__ has (__name__, __doc__, __builtins__, __spec__, ...) and the
# names the engine itself provides.
_RESET_KEEP = frozenset(k for k in _ns if k.startswith("__") and k.endswith("__")) \
    | {"id", "mpi"}

# get_result's history: the last HISTORY_MAX commands, and fewer when their
# texts (input, output, traceback) pass HISTORY_CHARS_MAX characters, so a
# chatty engine cannot hoard memory. Entries are (number, input, stdout,
# stderr, error); numbers are consecutive, so the deque is indexed by
# number - first number.
HISTORY_MAX = 1000
HISTORY_CHARS_MAX = 64 << 20
_history = collections.deque()
_history_chars = 0

# The input map() is recorded with: 0.10 ran map as scatter + this execute
# + gather on every engine, and the In [n] counters show it.
MAP_INPUT = "_plexa_map_result = list(map(_plexa_map_func, *_plexa_map_seqs))"


# The engine's own frames, left out of remote tracebacks: this module's
# (which runs every request) and _map's (whose _EngineName calls a function
# named by a string).
_OWN_FILES = frozenset({__file__, os.path.join(os.path.dirname(__file__), "_map.py")})


def _user_tb(tb):
    """The traceback without the engine's own frames, so that what the user
    sees is their own code only (tb_next is relinked past them)."""
    while tb is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
        tb = tb.tb_next
    head = tb
    while tb is not None:
        nxt = tb.tb_next
        while nxt is not None and nxt.tb_frame.f_code.co_filename in _OWN_FILES:
            nxt = nxt.tb_next
        tb.tb_next = nxt
        tb = nxt
    return head


def _error(e, with_frames=True):
    ename = type(e).__name__
    try:
        evalue = str(e)
    except BaseException:                     # a broken __str__ is user data too
        evalue = "<unprintable %s object>" % ename
    try:
        if with_frames:
            lines = traceback.format_exception(type(e), e, _user_tb(e.__traceback__))
        else:
            lines = traceback.format_exception_only(type(e), e)
        text = "".join(lines)
    except BaseException:
        text = "%s: %s\n" % (ename, evalue)
    return (ename, evalue, text)


def _cell_name(number):
    return CELL_FILENAME % number


def _register(code):
    """Put the current command's code in linecache under its cell name (the
    name it is compiled under), so tracebacks can show its lines. mtime None:
    linecache.checkcache leaves the entry alone. Returns the name."""
    name = _cell_name(_number)
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    return name


def _forget(number):
    """Drop a command's lines from linecache (it left the history)."""
    linecache.cache.pop(_cell_name(number), None)


def _run_cell(code):
    """Run code like an interactive cell: a final expression is displayed
    (its repr written to stdout unless it is None) and kept in ``_``. The
    code is compiled under the current command's name (see _register)."""
    filename = _register(code)
    try:
        tree = ast.parse(code, filename=filename, mode="exec")
    except SyntaxError as e:
        tree = _ipy.parse(code, CELL_FILENAME) if IPYTHON else None
        if tree is None:
            # Report it as the REPL does: the cell's line and a caret, no
            # frames (ast.parse's own would otherwise lead the traceback).
            raise e.with_traceback(None)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    if tree.body:
        exec(compile(tree, filename, "exec"), _ns)
    if last is not None:
        value = eval(compile(last, filename, "eval"), _ns)
        if value is not None:
            _ns["_"] = value
            sys.stdout.write(repr(value) + "\n")
            if IPYTHON:
                _ipy.show_rich(value)


def _entry_chars(entry):
    n = sum(len(x) for x in entry[1:4])
    return n + (sum(len(x) for x in entry[4]) if entry[4] else 0)


def _remember(entry):
    global _history_chars
    _history.append(entry)
    _history_chars += _entry_chars(entry)
    while len(_history) > HISTORY_MAX or (_history_chars > HISTORY_CHARS_MAX
                                          and len(_history) > 1):
        old = _history.popleft()
        _history_chars -= _entry_chars(old)
        _forget(old[0])


try:
    from _plexa_engine import Capture as _Capture
except ImportError:                           # imported outside an engine (tests)
    _Capture = None


class _OutStream(io.TextIOBase):
    """sys.stdout or sys.stderr while a request runs: keeps what is written
    for the reply and, inside an engine, sends it live to the client while
    the request runs (core/engine/plx_engine_output.c). ``write`` is the C
    capture's own method, set on the instance, so that print() calls C
    directly: a tight print loop pays little for the live stream."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, stream):
        super().__init__()
        self.name = ("<stdout>", "<stderr>")[stream]
        if _Capture is not None:
            cap = _Capture(stream, True)
            self.write = cap.write
            self.getvalue = cap.getvalue
        else:
            buf = io.StringIO()
            self.write = buf.write
            self.getvalue = buf.getvalue

    def writable(self):
        return True

    def isatty(self):
        return False


def _captured(fn):
    """Run fn() with stdout and stderr captured and stdin at EOF (no
    terminal behind an engine: input() must not hang). Returns (stdout,
    stderr, error, value): value is fn()'s result, None when it raised.
    Captures nest: what an inner one kept is passed on to the outer."""
    out, err = _OutStream(0), _OutStream(1)
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(), out, err
    error = value = None
    try:
        value = fn()
    except BaseException as e:                # SystemExit and Ctrl-C included
        error = _error(e)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    texts = out.getvalue(), err.getvalue()
    for outer, text in zip(saved[1:], texts):
        if text and isinstance(outer, _OutStream):
            outer.write(text)
    return texts[0], texts[1], error, value


def _counted(input_text, fn):
    """Run fn() captured (_captured) as the next numbered command, and
    record it in the history. Returns (number, stdout, stderr, error,
    value)."""
    global _number
    _number += 1
    out, err, error, value = _captured(fn)
    entry = (_number, input_text, out, err, error)
    _remember(entry)
    return entry[0], entry[2], entry[3], error, value


def execute(code):
    """Run one cell. Returns (number, stdout, stderr, error)."""
    if IPYTHON:
        _ipy.install()
    return _counted(code, lambda: _run_cell(code))[:4]


def push(pairs):
    """Assign each (name, descriptor) in __main__. All or nothing: when one
    value cannot be decoded, none is assigned."""
    try:
        values = [(str(name), _serialize.decode(desc)) for name, desc in pairs]
    except BaseException as e:
        return _error(e, with_frames=False)
    for name, value in values:
        _ns[name] = value
    return None


def pull(keys):
    """Descriptors of the named globals. (descriptors, None) or (None, error);
    an unknown name is a NameError, as 0.10 reported it."""
    try:
        out = []
        for key in keys:
            try:
                value = _ns[key]
            except KeyError:
                raise NameError("name %r is not defined" % (key,), name=key) from None
            out.append(_serialize.encode(value))
        return (out, None)
    except BaseException as e:
        return (None, _error(e, with_frames=False))


# ---- call: the multi-engine helpers --------------------------------------

def _want(method, args, n):
    if len(args) != n:
        raise TypeError("%s takes %d argument%s (%d given)"
                        % (method, n, "" if n == 1 else "s", len(args)))


def _keys(args):
    _want("keys", args, 0)
    return None, [sorted(k for k in _ns if not k.startswith("__"))]


def _reset(args):
    _want("reset", args, 0)
    for k in [k for k in _ns if k not in _RESET_KEEP]:
        del _ns[k]
    return None, []


def _history_span():
    if not _history:
        return "it is empty"
    return "kept: %d..%d" % (_history[0][0], _history[-1][0])


def _get_result(args):
    _want("get_result", args, 1)
    i = args[0]
    if i is None:
        if not _history:
            raise IndexError("no command has run on this engine yet")
        i = _history[-1][0]
    if type(i) is not int:
        raise TypeError("get_result wants a command number or None, not %s"
                        % type(i).__name__)
    k = i - _history[0][0] if _history else -1
    if not 0 <= k < len(_history):
        raise IndexError("command %d is not in this engine's history (%s)"
                         % (i, _history_span()))
    number, input_text, out, err, error = _history[k]
    return (number, input_text, out, err), [], error


_MAP_CODE = compile(MAP_INPUT, "<plexa-map>", "exec")


def _run_map(func, seqs):
    """map's command: MAP_INPUT run as a cell of its own (in a private
    namespace, not __main__), so its traceback has a frame with that line
    even when func is a builtin, which has no frame of its own."""
    code = _MAP_CODE.replace(co_filename=_register(MAP_INPUT))
    ns = {"__builtins__": builtins, "_plexa_map_func": func, "_plexa_map_seqs": seqs}
    exec(code, ns)
    return ns["_plexa_map_result"]


def _map(args):
    _want("map", args, 2)
    func, seqs = args
    if not callable(func):
        raise TypeError("map: %s object is not callable" % type(func).__name__)
    seqs = list(seqs)
    number, out, err, error, value = _counted(MAP_INPUT, lambda: _run_map(func, seqs))
    return (number, MAP_INPUT, out, err), [] if error else [value], error


# apply calls its function from code run in __main__, as ipyparallel's
# apply does: eval and exec given without globals then see the engine's
# namespace (`ex.submit(eval, "a")`). The names it borrows are removed.
_APPLY_NAMES = ("_plexa_apply_f", "_plexa_apply_a", "_plexa_apply_k", "_plexa_apply_r")
_APPLY_CODE = compile("_plexa_apply_r = _plexa_apply_f(*_plexa_apply_a, **_plexa_apply_k)",
                      "<apply>", "exec")


def _apply(args):
    _want("apply", args, 3)
    func, fargs, kwargs = args
    _ns.update(zip(_APPLY_NAMES[:3], (func, fargs, kwargs or {})))
    try:
        exec(_APPLY_CODE, _ns)
        return None, [_ns["_plexa_apply_r"]]
    finally:
        for name in _APPLY_NAMES:
            _ns.pop(name, None)


_CALLS = {"keys": _keys, "reset": _reset, "get_result": _get_result, "map": _map,
          "apply": _apply}


def call(method, args):
    """Run the helper named method with the decoded args. Returns
    (execute, descriptors, error): execute is None or (number, input,
    stdout, stderr) for helpers that count as a command (map) or report one
    (get_result); error is set when the helper or the command it reports
    raised (descriptors then empty, except for get_result)."""
    fn = _CALLS.get(method)
    if fn is None:
        return (None, [], ("ProtocolError", "unknown call method %r (known: %s)"
                           % (method, ", ".join(sorted(_CALLS))), ""))
    try:
        values = [_serialize.decode(a) for a in args]
    except BaseException as e:
        return (None, [], _error(e, with_frames=False))
    try:
        res = fn(values)
    except BaseException as e:
        return (None, [], _error(e))
    execute_t, values = res[0], res[1]
    error = res[2] if len(res) > 2 else None
    try:
        return (execute_t, [_serialize.encode(v) for v in values], error)
    except BaseException as e:                # an unpicklable result
        return (execute_t, [], error or _error(e, with_frames=False))


# ---- task: the load-balanced interface -----------------------------------

# The engine's properties, which a task's depend(properties) predicate is
# given (0.10's engine properties). User code fills it on the engine, e.g.
#   mec.execute("import plexa._engine as e; e.properties['gpu'] = True")
# reset() leaves it alone; engine_id follows the id the controller gives.
properties = {"engine_id": None, "hostname": os.uname().nodename, "pid": os.getpid()}

# TaskStatus values of proto/plexa.proto that an engine reports.
TASK_OK = 1
TASK_FAILED = 2
TASK_REJECTED = 3


def _task_map(values):
    if len(values) not in (2, 3):
        raise TypeError("a map task takes (function, args, kwargs), got %d values"
                        % len(values))
    func, args = values[0], values[1]
    kwargs = values[2] if len(values) == 3 else None
    if not callable(func):
        raise TypeError("map task: %s object is not callable" % type(func).__name__)
    if args is None:
        args = ()
    if kwargs is None:
        kwargs = {}
    return [func(*args, **kwargs)]


def _task_chunk(values, piece=None):
    if len(values) != 2:
        raise TypeError("a chunk task takes (function, list of argument tuples), got %d "
                        "values" % len(values))
    func, arglist = values
    if not callable(func):
        raise TypeError("chunk task: %s object is not callable" % type(func).__name__)
    if piece is not None:
        first, count = piece
        arglist = arglist[first:first + count]
    return [[func(*a) for a in arglist]]


def _pull_keys(pull):
    if pull is None:
        return []
    if isinstance(pull, str):
        return [pull]
    keys = list(pull)
    for k in keys:
        if not isinstance(k, str):
            raise TypeError("pull keys must be str, not %s" % type(k).__name__)
    return keys


def _task_string(values):
    """(code, push, pull): push into __main__, run code as a cell (counted,
    output captured, like execute), pull. Returns (values, error): values
    is [pulled dict, stdout, stderr] once the code ran, even if it raised."""
    if len(values) != 3:
        raise TypeError("a string task takes (code, push, pull), got %d values" % len(values))
    code, push, pull = values
    if not isinstance(code, str):
        raise TypeError("string task: code must be str, not %s" % type(code).__name__)
    keys = _pull_keys(pull)
    if push:
        items = dict(push)
        for k in items:
            if not isinstance(k, str):
                raise TypeError("push names must be str, not %s" % type(k).__name__)
        _ns.update(items)
    _, out, err, error, _ = _counted(code, lambda: _run_cell(code))
    pulled = {}
    if error is None:
        try:
            for key in keys:
                try:
                    pulled[key] = _ns[key]
                except KeyError:
                    raise NameError("name %r is not defined" % (key,), name=key) from None
        except BaseException as e:
            error = _error(e, with_frames=False)
            pulled = {}
    return [pulled, out, err], error


_TASK_KINDS = {"map": _task_map, "chunk": _task_chunk}


def task(kind, args, depend, clear_before, clear_after, piece=None):
    """Run one task (_task) with what it prints captured. Returns (status,
    descriptors, error, stdout, stderr)."""
    out, err, error, res = _captured(
        lambda: _task(kind, args, depend, clear_before, clear_after, piece))
    if error is not None:                     # _task itself never raises
        return (TASK_FAILED, [], error, out, err)
    return res + (out, err)


def _task(kind, args, depend, clear_before, clear_after, piece=None):
    """Run one task. args: the descriptors of its values; depend: None or
    the descriptor of a predicate called with ``properties``; piece: None,
    or (first, count) when the controller split a chunk and this engine
    runs that range of its list.

    Returns (status, descriptors, error):
      TASK_REJECTED, [], None      depend(properties) was false
      TASK_OK, [...], None         the task ran
      TASK_FAILED, [...], error    something raised (depend included)
    The values by kind:
      "map"    (func, args, kwargs)        -> [func(*args, **kwargs)]
      "chunk"  (func, [args, ...])         -> [[func(*args) for each]]
      "string" (code, push, pull)          -> [{name: value}, stdout, stderr],
               also when the code raised (then the dict is empty); a
               missing pull name fails the task with NameError
    A failure before the task ran (undecodable values, a bad kind)
    carries no values. clear_before / clear_after reset the namespace as
    reset() does, around the task (after depend() accepted it).
    """
    try:
        if depend is not None:
            pred = _serialize.decode(depend)
            if not pred(properties):
                return (TASK_REJECTED, [], None)
    except BaseException as e:
        return (TASK_FAILED, [], _error(e))
    values = []
    error = None
    try:
        if clear_before:
            _reset(())
        try:
            decoded = [_serialize.decode(a) for a in args]
        except BaseException as e:
            return (TASK_FAILED, [], _error(e, with_frames=False))
        try:
            if kind == "string":
                values, error = _task_string(decoded)
            else:
                fn = _TASK_KINDS.get(kind)
                if fn is None:
                    return (TASK_FAILED, [], ("ProtocolError", "unknown task kind %r (known: %s)"
                                              % (kind, ", ".join(sorted(_TASK_KINDS) + ["string"])),
                                              ""))
                values = fn(decoded, piece) if piece is not None else fn(decoded)
        except BaseException as e:
            return (TASK_FAILED, [], _error(e))
        try:
            descs = [_serialize.encode(v) for v in values]
        except BaseException as e:           # an unpicklable result
            return (TASK_FAILED, [], error or _error(e, with_frames=False))
        return (TASK_FAILED if error else TASK_OK, descs, error)
    finally:
        if clear_after:
            try:
                _reset(())
            except BaseException:
                pass


def set_id(n):
    _ns["id"] = n
    properties["engine_id"] = n


_MPI_SETUP = {
    # 0.10's --mpi=mpi4py: the engine's namespace gets `mpi` with size/rank.
    "mpi4py": "from mpi4py import MPI as mpi\n"
              "mpi.size = mpi.COMM_WORLD.Get_size()\n"
              "mpi.rank = mpi.COMM_WORLD.Get_rank()\n",
}


def setup_mpi(kind):
    """Run the MPI set-up named kind in __main__. Returns an error or None."""
    code = _MPI_SETUP.get(kind)
    if code is None:
        return ("ValueError", "unknown --mpi kind %r (known: %s)"
                % (kind, ", ".join(sorted(_MPI_SETUP))), "")
    try:
        exec(compile(code, "<mpi setup>", "exec"), _ns)
    except BaseException as e:
        return _error(e)
    return None


def warm_up():
    """Called once, after the engine has been idle for a second: import
    what a user's first call would otherwise pay for inside its own time.
    cloudpickle is the one every function sent by value needs (~18 ms);
    nothing that costs memory a user may not want (numpy stays lazy)."""
    try:
        import cloudpickle  # noqa: F401
    except Exception:
        pass   # a missing cloudpickle says so when a stream needs it


def can_finalize():
    """False when a non-daemon thread started by user code is alive:
    finalizing would wait for it forever, and an engine must not outlive
    its controller."""
    threading = sys.modules.get("threading")
    if threading is None:
        return True
    main = threading.main_thread()
    return not any(t is not main and not t.daemon and t.is_alive()
                   for t in threading.enumerate())
