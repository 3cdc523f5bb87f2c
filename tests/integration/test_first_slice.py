"""Issue 3's session, run for real: ipcluster start -n 2, a client, stop."""
import os
import signal

import pytest

from conftest import alive, wait_for

from plexa import client
from plexa.error import CompositeError, InvalidEngineID


def test_session_display_strings(cluster_factory):
    c = cluster_factory(n=2)
    out = c.start().stdout
    assert "2/2 registered" in out
    mec = c.client()
    assert mec.get_ids() == [0, 1]
    assert repr(mec.execute("a = 10")) == (
        "<Results List>\n"
        "[0] In [1]: a = 10\n"
        "[1] In [1]: a = 10\n")
    assert repr(mec.execute("print(a)")) == (
        "<Results List>\n"
        "[0] In [2]: print(a)\n"
        "[0] Out[2]: 10\n\n"
        "[1] In [2]: print(a)\n"
        "[1] Out[2]: 10\n\n")
    # one client per controller is not a rule: a second one sees the same state
    other = client.MultiEngineClient()
    assert "[1] Out[3]: 10" in repr(other.execute("print(a)"))

    pids = c.pids()
    assert len(pids) >= 4  # ipcluster, controller, two engines
    assert c.stop().returncode == 0
    assert wait_for(lambda: not c.pids(), timeout=10), c.pids()
    assert not any(alive(pid) for pid in pids)
    assert not os.path.exists(c.path("security", "ipcontroller-mec.url"))


def test_remote_exception_names_engine_and_carries_traceback(cluster):
    mec = cluster.client()
    with pytest.raises(CompositeError) as info:
        mec.execute("if id == 1:\n    1/0\n")
    e = info.value
    assert "[1:execute]: ZeroDivisionError" in str(e)
    assert "[0:" not in str(e)
    assert len(e.elist) == 1
    with pytest.raises(Exception) as remote:
        e.raise_exception()
    text = str(remote.value)
    assert "engine 1" in text.lower() or "[1:" in text
    assert "ZeroDivisionError" in text and "Traceback" in text


def test_exception_on_both_engines(cluster):
    mec = cluster.client()
    with pytest.raises(CompositeError) as info:
        mec.execute("undefined_name_xyz")
    s = str(info.value)
    assert "[0:execute]: NameError" in s and "[1:execute]: NameError" in s


def test_targets_argument_and_attribute(cluster):
    mec = cluster.client()
    r = mec.execute("t = id * 100", targets=1)
    assert repr(r).startswith("<Results List>\n[1] In [")
    assert "[0]" not in repr(r)
    mec.targets = 1
    r = mec.execute("print(t)")
    assert "[1] Out[" in repr(r) and ": 100\n" in repr(r)
    mec.targets = [0, 1]
    assert len(mec.execute("pass")) == 2
    mec.targets = "all"
    with pytest.raises(InvalidEngineID) as info:
        mec.execute("pass", targets=7)
    assert "7" in str(info.value)


def test_stop_kills_everything_even_a_wedged_engine(cluster_factory):
    c = cluster_factory(n=2)
    c.start()
    mec = c.client()
    # an engine ignoring SIGTERM must still be gone after stop
    mec.execute("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)", targets=0)
    assert len(c.pids()) >= 4
    assert c.stop().returncode == 0
    assert wait_for(lambda: not c.pids(), timeout=15), c.pids()


def test_local_foreground_ctrl_c(cluster_factory, tmp_path):
    import subprocess
    from conftest import tool
    c = cluster_factory(n=2)
    p = subprocess.Popen([tool("ipcluster"), "local", "-n", "2"], cwd=c.root, env=c.env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if "cluster ready" in line:
            break
    assert any("cluster ready" in l for l in lines), lines
    assert c.client().get_ids() == [0, 1]
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=15) == 0
    assert wait_for(lambda: not c.pids(), timeout=10), c.pids()


def test_start_twice_is_refused(cluster):
    p = cluster.run("start", "-n", "1", check=False)
    assert p.returncode != 0
    assert "already running" in p.stderr


def test_stop_without_cluster(cluster_factory):
    c = cluster_factory()
    p = c.run("stop", check=False)
    assert p.returncode != 0
    assert "no cluster" in p.stderr.lower() or "not running" in p.stderr.lower() \
        or "profile" in p.stderr.lower()
