"""The Python half of ipengine: runs requests in ``__main__``.

The engine's C code (core/engine) owns the connection, the threads and the
buffers; it calls these functions on the Python (main) thread, one request
at a time, with the GIL held:

    execute(code)   -> (number, stdout, stderr, error)
    push(pairs)     -> error            pairs: [(name, descriptor), ...]
    pull(keys)      -> (descriptors, error)
    set_id(n)       the engine id, visible to user code as ``id``
    setup_mpi(kind) ``--mpi=mpi4py``: ``mpi`` in the namespace
    can_finalize()  -> bool: no user thread would block interpreter exit

``error`` is None or ``(ename, evalue, traceback_text)``. These functions
never raise for anything user code or user data does: every exception,
including SystemExit and KeyboardInterrupt, becomes an error tuple, so the
engine keeps serving.
"""

import ast
import io
import sys
import traceback

from plexa import _serialize

__all__ = ["execute", "push", "pull", "set_id", "setup_mpi", "can_finalize"]

# Cells are compiled under this name, as 0.10's engines did: tracebacks read
#   File "<string>", line 1, in <module>
CELL_FILENAME = "<string>"

_main = sys.modules["__main__"]
_ns = _main.__dict__
_number = 0   # the In [n] counter: executes only, push and pull do not count


def _user_tb(tb):
    """Drop this module's frames from the head of a traceback, so that what
    the user sees starts at their own code."""
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


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


def _run_cell(code):
    """Run code like an interactive cell: a final expression is displayed
    (its repr written to stdout unless it is None) and kept in ``_``."""
    try:
        tree = ast.parse(code, filename=CELL_FILENAME, mode="exec")
    except SyntaxError as e:
        # Report it as the REPL does: the cell's line and a caret, no frames
        # (ast.parse's own frame would otherwise lead the traceback).
        raise e.with_traceback(None)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    if tree.body:
        exec(compile(tree, CELL_FILENAME, "exec"), _ns)
    if last is not None:
        value = eval(compile(last, CELL_FILENAME, "eval"), _ns)
        if value is not None:
            _ns["_"] = value
            sys.stdout.write(repr(value) + "\n")


def execute(code):
    """Run one cell. Returns (number, stdout, stderr, error)."""
    global _number
    _number += 1
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    # No terminal behind an engine: input() gets EOF instead of hanging.
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(), out, err
    error = None
    try:
        _run_cell(code)
    except BaseException as e:                # SystemExit and Ctrl-C included
        error = _error(e)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return (_number, out.getvalue(), err.getvalue(), error)


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


def set_id(n):
    _ns["id"] = n


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
