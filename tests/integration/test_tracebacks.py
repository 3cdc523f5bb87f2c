"""Readable remote tracebacks and plexa's frames hidden (issue 20), against
a real cluster: source lines of cells, string tasks and maps in remote
tracebacks, str(CompositeError) in a plain script, Ctrl-C during a blocking
call in a real subprocess, and the rich displays of results."""
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import plexa
from conftest import wait_for
from plexa.error import CompositeError, RemoteError
from plexa.task import StringTask

PLEXA_DIR = os.path.dirname(os.path.abspath(plexa.__file__))
INTERNAL = ("client.py", "_pending.py", "multiengine.py", "taskclient.py", "_map.py",
            "_tb.py", "_engine.py")


@pytest.fixture
def mec(clients):
    return clients[0]


@pytest.fixture
def tc(clients):
    return clients[1]


def no_plexa_frames(text):
    """True when text names none of plexa's own files."""
    return PLEXA_DIR not in text and not any('%s"' % name in text for name in INTERNAL)


# ---- source lines in remote tracebacks -------------------------------------------

def test_name_error_shows_the_offending_line(mec):
    with pytest.raises(CompositeError) as info:
        mec.execute("x_ok = 1\ny = undefined_name_tb + x_ok\n")
    e = info.value
    assert [x[3] for x in e.elist] == [0, 1]
    for ename, _evalue, tb, _eid, _method in e.elist:
        assert ename == "NameError"
        assert re.search(r'File "<plexa-input-\d+>", line 2, in <module>\n'
                         r'    y = undefined_name_tb \+ x_ok\n', tb), tb
        assert "_engine.py" not in tb
    # the In [n] of the cell names it
    number = mec.execute("pass", targets=0)[0]["number"] - 1
    assert '"<plexa-input-%d>"' % number in e.elist[0][2]
    with pytest.raises(NameError) as remote:
        e.raise_exception(1)
    assert "    y = undefined_name_tb + x_ok\n" in str(remote.value)


def test_functions_of_earlier_cells_keep_their_lines(mec):
    mec.execute("def tb_helper(v):\n    scale = 2\n    return scale / v\n")
    mec.execute("a_tb = 1")
    with pytest.raises(CompositeError) as info:
        mec.execute("tb_helper(0)", targets=1)
    tb = info.value.elist[0][2]
    assert re.search(r'", line 1, in <module>\n    tb_helper\(0\)\n', tb), tb
    assert re.search(r'", line 3, in tb_helper\n    return scale / v\n', tb), tb


def test_string_task_and_syntax_error_lines(mec, tc):
    tid = tc.run(StringTask("a = 1\nb = a + nope_tb\n"))
    r = tc.get_task_result(tid, block=True)
    assert isinstance(r.failure, RemoteError)
    assert re.search(r'File "<plexa-input-\d+>", line 2, in <module>\n'
                     r'    b = a \+ nope_tb\n', r.failure.traceback), r.failure.traceback
    with pytest.raises(CompositeError) as info:
        mec.execute("def broken(:\n    pass\n", targets=0)
    tb = info.value.elist[0][2]
    assert re.search(r'File "<plexa-input-\d+>", line 1\n    def broken\(:\n', tb), tb


def test_map_errors_carry_tracebacks(mec, tc):
    # a builtin has no frame of its own: the map's line is the frame
    with pytest.raises(CompositeError) as info:
        mec.map(math.sqrt, [4, -1, 9, -16])
    assert [(x[0], x[3], x[4]) for x in info.value.elist] == \
        [("ValueError", 0, "map"), ("ValueError", 1, "map")]
    for tb in (x[2] for x in info.value.elist):
        assert tb.startswith("Traceback (most recent call last):\n"), tb
        assert re.search(r'File "<plexa-input-\d+>", line 1, in <module>\n'
                         r'    _plexa_map_result = list\(map\(_plexa_map_func, '
                         r'\*_plexa_map_seqs\)\)\n', tb), tb
        assert tb.endswith("ValueError: math domain error\n")
    # a function the client sent: its own frame and line
    with pytest.raises(CompositeError) as info:
        mec.map(lambda v: 10 // v, [1, 0])
    tb = info.value.elist[0][2]
    assert "in <lambda>\n    mec.map(lambda v: 10 // v, [1, 0])\n" in tb, tb
    # non-blocking, and a function named by a string (defined by a cell)
    mec.execute("def tb_inverse(v):\n    return 1 / v\n")
    pr = mec.raw_map("tb_inverse", [[0, 1]], block=False)
    with pytest.raises(CompositeError) as info:
        pr.get_result()
    tb = info.value.elist[0][2]
    assert re.search(r'", line 2, in tb_inverse\n    return 1 / v\n', tb), tb
    assert "_map.py" not in tb and "_engine.py" not in tb
    # str() shows where the engines failed
    assert "\n\n[0:map] failed at:\n" in str(info.value)
    # the load-balanced map carries its traceback too
    with pytest.raises(ZeroDivisionError) as info:
        tc.map(lambda v: 1 / v, [0])
    assert "Traceback (most recent call last)" in info.value.traceback


# ---- what a plain script shows ---------------------------------------------------

def run_script(cluster, body, env=None, **kw):
    path = os.path.join(cluster.root, "script_%d.py" % time.monotonic_ns())
    with open(path, "w") as f:
        f.write(textwrap.dedent(body))
    full = dict(os.environ, PLEXA_DIR=cluster.root, PYTHONUNBUFFERED="1")
    full.update(env or {})
    return path, subprocess.Popen([sys.executable, path], env=full, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, **kw)


def test_uncaught_composite_error_in_a_script(cluster):
    path, p = run_script(cluster, """\
        from plexa import client
        mec = client.MultiEngineClient()
        mec.execute("def g(v):\\n    return v[3]\\n")
        mec.execute("g([1, 2])")
        """)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    assert err.startswith("Traceback (most recent call last):\n"
                          '  File "%s", line 4, in <module>\n'
                          '    mec.execute("g([1, 2])")\n'
                          "plexa.error.CompositeError: one or more exceptions from call to "
                          "method: execute\n"
                          "[0:execute]: IndexError: list index out of range\n"
                          "[1:execute]: IndexError: list index out of range\n" % path), err
    assert err.count(" failed at:\n") == 2
    assert re.search(r'\[1:execute\] failed at:\n  File "<plexa-input-\d+>", line 2, in g\n'
                     r'    return v\[3\]\n', err), err
    assert no_plexa_frames(err), err


SLOW = """\
    from plexa import client
    mec = client.MultiEngineClient()
    tc = client.TaskClient()
    from plexa.task import StringTask
    mec.execute("import time")
    print("calling", flush=True)
    if sys.argv[-1] == "execute":     # replaced by the test
        mec.execute("time.sleep(60)", targets=0)
    else:
        tid = tc.run(StringTask("time.sleep(60)"))
        tc.get_task_result(tid, block=True)
    """


def interrupt_script(cluster, how, env=None):
    """Run SLOW, Ctrl-C it while it waits; its stderr (and the script path)."""
    path, p = run_script(cluster, SLOW.replace("sys.argv[-1]", repr(how)), env=env)
    try:
        assert p.stdout.readline() == "calling\n"
        time.sleep(1.0)     # well inside the blocking call
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return path, p.returncode, err


def free_engines(mec):
    """Stop the sleeps the interrupted scripts left running."""
    def idle():
        mec.interrupt()
        return all(q[1]["pending"] == "None" and not q[1]["queue"]
                   for q in mec.queue_status())
    assert wait_for(idle, timeout=20, interval=0.2)


@pytest.mark.parametrize("how, line", [
    ("execute", 'mec.execute("time.sleep(60)", targets=0)'),
    ("task", "tc.get_task_result(tid, block=True)"),
])
def test_ctrl_c_during_a_blocking_call_shows_the_user_line_only(cluster, mec, how, line):
    try:
        path, rc, err = interrupt_script(cluster, how)
    finally:
        free_engines(mec)
    assert rc != 0
    assert err.endswith("KeyboardInterrupt\n"), err
    assert err.startswith("Traceback (most recent call last):\n"
                          '  File "%s", line' % path), err
    assert "    %s\n" % line in err, err
    assert no_plexa_frames(err), err
    assert err.count('  File "') == 1, err


def test_plexa_hide_frames_0_keeps_every_frame(cluster, mec):
    """The switch for debugging plexa itself (and proof that the frames the
    tests above miss were there to hide)."""
    try:
        path, rc, err = interrupt_script(cluster, "execute", env={"PLEXA_HIDE_FRAMES": "0"})
    finally:
        free_engines(mec)
    assert err.endswith("KeyboardInterrupt\n"), err
    assert "multiengine.py" in err and "_pending.py" in err, err


# ---- displays ------------------------------------------------------------------

def test_displays_of_real_results(mec):
    from IPython.lib.pretty import pretty
    r = mec.execute('print("<script>alert(1)</script>")', targets=[1, 0])
    assert pretty(r) == "\n".join(repr(r).splitlines())
    assert repr(r).startswith("<Results List>\n[1] In [")
    page = r._repr_html_()
    assert "<script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;\n</pre>") == 2     # stdout
    assert page.count('print(&quot;&lt;script&gt;') == 2                        # input
    assert page.index("In [%d]" % r[0]["number"]) < page.index("In [%d]" % r[1]["number"])
    q = mec.queue_status()
    assert pretty(q) == repr(q).rstrip("\n")
    assert q._repr_html_().count("<pre style=\"margin:0\">None</pre>") == 2
