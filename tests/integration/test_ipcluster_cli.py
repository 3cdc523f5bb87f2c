"""ipcluster's bookkeeping commands: profile create, list, status, --help;
the progress lines of a foreground `ipcluster local`."""
import os
import pty
import select
import signal
import subprocess
import time

from conftest import tool
from plexa_testing import alive


def test_profile_create_list_status(cluster_factory):
    c = cluster_factory(n=1)
    p = subprocess.run([tool("ipcluster"), "profile", "create", "batch", "--launcher=pbs"],
                       env=c.env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with open(f"{c.root}/profile_batch/cluster.conf") as f:
        conf = f.read()
    assert "engine_launcher = pbs" in conf and "[pbs]" in conf
    again = subprocess.run([tool("ipcluster"), "profile", "create", "batch"], env=c.env,
                           capture_output=True, text=True)
    assert again.returncode != 0 and "already exists" in again.stderr

    st = c.run("status", check=False)
    assert st.returncode == 3 and "not running" in st.stdout
    c.start()
    st = c.run("status")
    assert "running" in st.stdout and "1 registered [0]" in st.stdout
    ls = subprocess.run([tool("ipcluster"), "list"], env=c.env, capture_output=True, text=True)
    assert "default" in ls.stdout and "running" in ls.stdout
    assert "batch" in ls.stdout and "stopped" in ls.stdout


def test_help_and_bad_usage():
    h = subprocess.run([tool("ipcluster"), "--help"], capture_output=True, text=True)
    assert h.returncode == 0
    for word in ("local", "start", "stop", "status", "--profile", "-n"):
        assert word in h.stdout
    bad = subprocess.run([tool("ipcluster"), "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command" in bad.stderr
    bad = subprocess.run([tool("ipcluster"), "start", "-n", "zero"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "-n" in bad.stderr
    v = subprocess.run([tool("ipcontroller"), "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and "plexa" in v.stdout


def read_pty_until(fd, pid, stop_on, timeout=60):
    """What a pty child writes until it exits; SIGINT once stop_on shows."""
    out, interrupted = b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:         # EIO: the child is gone
                break
            if not chunk:
                break
            out += chunk
        if not interrupted and stop_on in out:
            os.kill(pid, signal.SIGINT)
            interrupted = True
    if not interrupted:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return out.decode(errors="replace")


def test_foreground_progress_once_on_a_terminal(cluster_factory):
    """stdout and stderr on one terminal: each progress line shows once (it
    used to show twice, as a log line too). On separate pipes stdout has
    the progress and stderr the log lines, as before."""
    c = cluster_factory(n=2)
    argv = [tool("ipcluster"), "local", "-n", "2", f"--profile={c.profile}"]
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(c.cwd)
        os.execve(argv[0], argv, c.env)
    text = read_pty_until(fd, pid, b"cluster ready")
    lines = text.splitlines()
    for what in ("controller started", "starting 2 engines", "engines: 2/2 registered",
                 "cluster ready"):
        assert sum(what in line for line in lines) == 1, text
    assert "received signal 2" in text, text    # the other log lines still show

    p = subprocess.Popen(argv, cwd=c.cwd, env=c.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        first = ""
        while "cluster ready" not in first and time.monotonic() < deadline:
            first += p.stdout.readline()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = first + out
    assert out.count("[ipcluster] cluster ready") == 1, out
    assert err.count("INFO ipcluster") >= 2 and "cluster ready" in err, err


def test_ip_and_location_on_the_command_line(cluster_factory):
    """--ip (--listen) and --location: the controller binds the one, the
    connection files name the other; no cluster.conf edited."""
    c = cluster_factory(n=1)
    c.run("start", "-n", "1", "--ip", "127.0.0.1", "--location", "localhost")
    assert c.url("mec").split("//")[1].startswith("localhost:")
    assert c.url("engine").split("//")[1].startswith("localhost:")
    st = c.run("status")
    assert "1 registered [0]" in st.stdout
    c.stop()
    # --listen alone: the controller binds it, and the files name it
    c.run("start", "-n", "1", "--listen", "127.0.0.3")
    assert c.url("task").split("//")[1].startswith("127.0.0.3:")
    port = c.url("mec").split("//")[1].split(":")[1].split("/")[0]
    listening = subprocess.run(["ss", "-Hltn", "sport = :%s" % port], capture_output=True,
                               text=True).stdout
    assert "127.0.0.3:%s" % port in listening, listening
    c.stop()
    bad = c.run("start", "-n", "1", "--ip", "not an address", check=False)
    assert bad.returncode != 0
    assert "not an address" in bad.stderr + bad.stdout


def test_start_into_a_closed_pipe_leaves_a_working_cluster(cluster_factory):
    """`ipcluster start | head -1`: the reader goes after the first line,
    and neither the waiting ipcluster nor the cluster's keeper dies of
    SIGPIPE; the cluster comes up and stops as usual."""
    c = cluster_factory(n=2)
    p = subprocess.run(["sh", "-c", '"$0" start -n 2 --profile="$1" | head -1',
                        tool("ipcluster"), c.profile],
                       cwd=c.cwd, env=c.env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("[ipcluster] "), (p.stdout, p.stderr)
    deadline = time.monotonic() + 30
    while "2 registered" not in c.run("status", check=False).stdout:
        assert time.monotonic() < deadline, c.run("status", check=False).stdout
        time.sleep(0.2)
    assert c.client().get_ids() == [0, 1]
    stop = c.run("stop")
    assert "stopped" in stop.stdout


def test_stop_after_ipcluster_died_names_its_batch_jobs(cluster_factory):
    """The ipcluster that ran a cluster was killed: `ipcluster stop` cleans
    up what it can, cancels the batch jobs it had noted in pid/engine-jobs
    with their launcher, and names those it could not (here: a launcher
    that is not installed, and one that cannot cancel by id), exiting
    non-zero; a second stop finds nothing running. (A real cancel:
    tests/launchers/batch/test_slurm.py.)"""
    c = cluster_factory(n=1)
    c.start()
    with open(c.path("pid", "ipcluster.pid")) as f:
        keeper = int(f.read().split()[0])
    # what a batch launcher's start notes (the local launcher has no job ids)
    with open(c.path("pid", "engine-jobs"), "w") as f:
        f.write("sitequeue 4242\nlocal 4243\n")
    os.kill(keeper, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(keeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    p = c.run("stop", check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "had died" in p.stderr, p.stderr
    assert "sitequeue job 4242: " in p.stderr and "plexa-launcher-sitequeue" in p.stderr
    assert "local job 4243: the local launcher cannot cancel a job by its id" in p.stderr
    assert not os.path.exists(c.path("pid", "engine-jobs"))
    again = c.run("stop", check=False)
    assert again.returncode != 0 and "no cluster is running" in again.stderr, again.stderr


def test_plugins_lists_what_the_loader_finds(cluster_factory):
    """`ipcluster plugins`: every plugin on the search path with its kind,
    name, version, ABI and file, and each file the loader refuses with its
    reason (the fixtures of tests/plugin are on PLX_PLUGIN_PATH here)."""
    from plexa_testing import BUILD
    c = cluster_factory(n=1)
    fixtures = os.path.join(BUILD, "tests", "fixture-plugins")
    env = dict(c.env, PLX_PLUGIN_PATH=fixtures)
    p = subprocess.run([tool("ipcluster"), "plugins"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("search path: " + fixtures + ":")
    rows = {tuple(line.split()[:2]): line.split() for line in lines[2:]
            if not line.startswith(" ")}
    for kind, name in (("launcher", "local"), ("launcher", "ssh"), ("launcher", "slurm"),
                       ("transport", "tcp"), ("transport", "tls"), ("transport", "shm")):
        row = rows[(kind, name)]
        assert row[3] == "1" and row[4].endswith(f"/plexa-{kind}-{name}"), row
    assert rows[("transport", "good")][2] == "1"        # the fixture's own version
    text = p.stdout
    assert "plexa-transport-badabi.so\n    refused: " in text
    assert "built against plugin ABI 7" in text
    assert "invalid ELF header" in text and "plx_buf_pool_trim" in text
    assert "libplxfixturedep.so.1: cannot open shared object file" in text
