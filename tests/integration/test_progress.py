"""Progress of long waits (issue 11): attributes on PendingResult,
wait_interactive, and the bar a blocking map shows in a terminal."""
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import wait_for
from plexa import client, progress


@pytest.fixture(scope="module")
def tc(cluster):
    os.environ["PLEXA_DIR"] = cluster.root
    t = client.TaskClient(profile=cluster.profile)
    yield t
    t.close()


def make_slow():
    def slow(x):        # defined in a function: travels by value to the engines
        import time
        time.sleep(0.01)
        return x * 2
    return slow


def test_progress_attributes_and_wait_interactive(tc, capsys):
    pr = tc.mapper(block=False).map(make_slow(), range(120)).pending
    assert pr.total == 120
    assert 0 <= pr.progress <= 120
    assert pr.wall_time is None or pr.ready()
    assert pr.wait_interactive(interval=0.05) is True
    assert pr.ready() and pr.progress == 120
    assert pr.wall_time > 0 and pr.elapsed == pr.wall_time
    assert pr.get_result() == [2 * x for x in range(120)]
    # 120 tasks of 10 ms ran on the engines: serial_time counts them
    assert 1.0 <= pr.serial_time < 60
    err = capsys.readouterr().err
    assert "120/120 elements" in err and "100%" in err


def test_wait_interactive_timeout(tc):
    pr = tc.mapper(block=False).map(make_slow(), range(400)).pending
    assert pr.wait_interactive(interval=0.05, timeout=0.1) is False
    assert not pr.ready()
    assert len(pr.get_result()) == 400


def test_format_line():
    line = progress.format_line(50, 200, 5.0, "tasks")
    assert line.startswith("[#####...............]")
    assert " 50/200 tasks" in line and "25%" in line and "  10/s" in line
    assert "ETA 0:00:15" in line
    assert "in 0:00:10" in progress.format_line(200, 200, 10.0)


def test_blocking_map_shows_a_bar_in_a_terminal(cluster):
    """A blocking TaskClient.map in a pseudo-terminal redraws its bar with
    carriage returns once it has run for a second, and ends it with the
    total; the same map with output to a pipe shows nothing."""
    code = textwrap.dedent(f"""
        import os
        from plexa import client
        tc = client.TaskClient(profile={cluster.profile!r})
        def f(x):
            import time
            time.sleep(0.02)
            return x
        r = tc.map(f, range(150), chunksize=1)
        print("RESULT", sum(r))
    """)
    env = dict(os.environ, PLEXA_DIR=cluster.root)
    env.pop("PLEXA_PROGRESS", None)
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-c", code], env)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert "RESULT %d" % sum(range(150)) in text
    frames = re.findall(r"\r\[[#.]{20}\] +\d+/150 elements", text)
    assert len(frames) >= 2, text          # redrawn in place, more than once
    assert "150/150 elements  100%" in text
    piped = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=60)
    assert "RESULT" in piped.stdout and "elements" not in piped.stderr
