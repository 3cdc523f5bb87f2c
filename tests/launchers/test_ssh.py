"""The ssh launcher against a real sshd on 127.0.0.1 (node1, node2 are
aliases of 127.0.0.1 in the generated ssh config)."""
import os
import re
import subprocess

import pytest

from conftest import BUILD, cmdlines_containing, tool, wait_for


def ssh_conf(sshd, cluster, hosts="node1:2, node2:2", engines=4, extra=""):
    return f"""[cluster]
engine_launcher = ssh
engines = {engines}
start_timeout = 40
[ssh]
hosts = {hosts}
ssh_options = -F {sshd.config}
remote_env = PLEXA_DIR={cluster.root} PYTHONPATH={BUILD}/python
{extra}"""


def engine_token(cluster):
    with open(cluster.path("security", "ipcontroller-engine.url")) as f:
        return f.read().strip().rsplit("/", 1)[1][:64]


def parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def ancestors(pid):
    out = []
    while pid > 1:
        pid = parent(pid)
        out.append(pid)
    return out


def test_engines_on_two_hosts(sshd, cluster):
    cluster.write_conf(ssh_conf(sshd, cluster))
    out = cluster.run("start").stdout
    assert "4/4 registered" in out
    mec = cluster.client()
    try:
        assert mec.get_ids() == [0, 1, 2, 3]
        mec.execute("import os; pid = os.getpid(); cwd = os.getcwd(); "
                    "has_url = 'PLEXA_URL' in os.environ")
        pids = mec.pull("pid")
        # The URL came down ssh's stdin, and the engine dropped it from its
        # environment once read: the code it runs does not see the token.
        assert not any(mec.pull("has_url"))
        assert mec.pull("cwd") == [cluster.root] * 4     # the local cwd exists "there"
        # Every engine runs under an sshd session: started over ssh, not forked here.
        for pid in pids:
            assert sshd.pid in ancestors(pid), f"engine {pid} is not under sshd {sshd.pid}"
        # The capability never appears on a command line.
        token = engine_token(cluster)
        assert cmdlines_containing(token) == []
        # Two engines per host, engine i on host i % 2 (round-robin).
        logs = sorted(os.listdir(cluster.path("log")))
        assert [n for n in logs if n.startswith("ipengine-")] == [
            f"ipengine-{i}.out" for i in range(4)]
    finally:
        mec.close() if hasattr(mec, "close") else None
    cluster.run("stop")
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()
    # Nothing of ours left: no engine, no remote script, no ssh session.
    assert wait_for(lambda: cmdlines_containing("plexa-ssh-") == [], 10)
    assert wait_for(lambda: sshd.sessions() == [], 10), sshd.sessions()


def test_stop_kills_engines_that_ignore_sigterm(sshd, cluster):
    cluster.write_conf(ssh_conf(sshd, cluster, hosts="node1, node2", engines=2))
    cluster.run("start")
    mec = cluster.client()
    mec.execute("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    cluster.run("stop")
    assert wait_for(lambda: cluster.pids() == [], 15), cluster.pids()
    assert wait_for(lambda: sshd.sessions() == [], 10)


def test_ssh_failure_is_reported_and_leaves_nothing(sshd, cluster):
    # -p on the command line beats the config: nothing listens on port 1.
    cluster.write_conf(ssh_conf(sshd, cluster, hosts="node1:2", engines=2).replace(
        f"-F {sshd.config}", f"-F {sshd.config} -p 1"))
    p = cluster.run("start", check=False)
    assert p.returncode != 0
    assert "status 255" in p.stderr and "ssh could not connect" in p.stderr, p.stderr
    assert "Connection refused" in p.stderr
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()
    assert cmdlines_containing("plexa-ssh-") == []


def test_loopback_controller_with_remote_engines_is_refused(sshd, cluster):
    # A host that is not loopback: the controller's default 127.0.0.1
    # cannot be reached from there. Nothing is started.
    cluster.write_conf(ssh_conf(sshd, cluster, hosts="far.example.invalid:2", engines=2))
    p = cluster.run("start", check=False)
    assert p.returncode != 0
    assert "far.example.invalid" in p.stderr
    assert "listen" in p.stderr and "location" in p.stderr, p.stderr
    assert cluster.pids() == []


def test_unknown_ssh_key_names_file_line_and_suggestion(sshd, cluster):
    cluster.write_conf(ssh_conf(sshd, cluster, extra="hots = node1\n"))
    p = cluster.run("start", check=False)
    assert p.returncode != 0
    conf = cluster.path("cluster.conf")
    assert re.search(re.escape(conf) + r":9: \[ssh\] hots: unknown key of the ssh launcher "
                     r"\(did you mean 'hosts'\?\)", p.stderr), p.stderr
    assert cluster.pids() == []


def test_profile_create_writes_ssh_keys(cluster):
    p = subprocess.run([tool("ipcluster"), "profile", "create", "far", "--launcher=ssh"],
                       env=cluster.env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(cluster.root, "profile_far", "cluster.conf")) as f:
        text = f.read()
    assert "engine_launcher = ssh" in text
    for line in ("[ssh]", "# hosts = node1:4, node2:4", "# ssh_options =", "# remote_env =",
                 "# engine_command =", "# controller_host =", "# sshx =", "# copy_env ="):
        assert line in text, text


def test_ipcluster_ssh_mode_with_clusterfile(sshd, cluster):
    """0.10's `ipcluster ssh --clusterfile F`: foreground, engines from the
    file's dict (-n defaults to its sum), Ctrl-C stops everything."""
    import signal
    import time
    conf = ssh_conf(sshd, cluster, hosts="unused", engines=1)
    cluster.write_conf(conf.replace("engine_launcher = ssh\n", ""))
    cf = os.path.join(cluster.root, "clusterfile.py")
    with open(cf, "w") as f:
        f.write("# 0.10 style\nengines = { 'node1' : 1,\n            \"node2\": 2 }\n"
                "send_furl = False\n")
    p = subprocess.Popen([tool("ipcluster"), "ssh", "--clusterfile", cf, "--profile=default"],
                         cwd=cluster.root, env=cluster.env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            lines.append(line)
            if "3/3 registered" in line or not line:
                break
        assert "3/3 registered" in "".join(lines), "".join(lines)
        mec = cluster.client()
        assert mec.get_ids() == [0, 1, 2]
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()
    assert wait_for(lambda: sshd.sessions() == [], 10)


def test_mode_options_are_checked(cluster, tmp_path):
    cf = tmp_path / "bad.py"
    cf.write_text("engines = {'node1': 'two'}\n")
    p = subprocess.run([tool("ipcluster"), "ssh", "--clusterfile", str(cf)], env=cluster.env,
                       capture_output=True, text=True)
    assert p.returncode == 1
    assert f"{cf}:1: a number of engines 1..65536" in p.stderr, p.stderr
    p = subprocess.run([tool("ipcluster"), "local", "--mpi=mpi4py"], env=cluster.env,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--mpi is an option of the mpiexec and mpirun modes" in p.stderr


@pytest.mark.parametrize("sshx", [False, True], ids=["plain", "sshx"])
def test_stuck_connection_gets_a_kill_over_ssh(sshd, cluster, sshx):
    """When a remote script cannot obey "stop" (here: stopped with SIGSTOP),
    a second ssh kills the engine's process group from its pid file (and
    removes the sshx temporary file the stopped script cannot)."""
    import signal
    extra = ""
    if sshx:
        os.makedirs(cluster.profile_dir, mode=0o700, exist_ok=True)
        write_sshx(cluster.path("launch.sh"), os.path.join(cluster.root, "marker"))
        extra = "sshx = launch.sh\n"
    cluster.write_conf(ssh_conf(sshd, cluster, hosts="node1", engines=1, extra=extra))
    cluster.run("start")
    mec = cluster.client()
    mec.execute("import os; pid = os.getpid()")
    [engine] = mec.pull("pid")
    scripts = [pid for pid, _ in cmdlines_containing("plexa-ssh-")
               if "/bin/sh -c" in _ and "kill" in _]
    assert scripts, cmdlines_containing("plexa-ssh-")
    # The remote pid file (sshd gives the session no TMPDIR): the stopped
    # script cannot remove it; only the kill over ssh does.
    import glob
    with open(cluster.path("pid", "ipcluster.pid")) as f:
        ipcluster_pid = int(f.read().split()[0])
    [pidfile] = glob.glob(f"/tmp/plexa-ssh.*/plexa-ssh-*-{ipcluster_pid}-*-0.pid")
    # in a private directory: nobody else can plant or swap it
    assert os.stat(os.path.dirname(pidfile)).st_mode & 0o777 == 0o700
    with open(pidfile) as f:
        assert int(f.read()) == engine
    assert len(sshx_temp_files()) == (1 if sshx else 0)
    for pid in scripts:
        os.kill(pid, signal.SIGSTOP)
    try:
        cluster.run("stop")
        assert not os.path.exists(pidfile)
        assert not os.path.exists(os.path.dirname(pidfile))
        assert sshx_temp_files() == []
        assert wait_for(lambda: not os.path.exists(f"/proc/{engine}") or
                        engine not in cluster.pids(), 15)
        assert engine not in cluster.pids()
    finally:
        for pid in scripts:          # ours: the stopped remote scripts
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()


SSHX = r"""#!/bin/sh
# A site's launcher script: note how it was run, mark the environment, go on.
printf '%s|%s|%s\n' "$0" "$(stat -c %a "$0")" "$*" >> MARKER
export SSHX_WAS_HERE=yes
exec "$@"
"""

# Spaces, both quotes, a newline, and what a shell would expand or end on.
TRICKY = "it's a \"test\"\nline two $HOME `id` \\ ; done"


def write_sshx(path, marker):
    with open(path, "w") as f:
        f.write(SSHX.replace("MARKER", str(marker)))


def sshx_temp_files():
    import glob
    return glob.glob("/tmp/plexa-ssh.*/plexa-ssh-*.sshx")


def assert_all_gone(sshd, cluster):
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()
    assert wait_for(lambda: cmdlines_containing("plexa-ssh-") == [], 10)
    assert wait_for(lambda: sshd.sessions() == [], 10), sshd.sessions()
    assert sshx_temp_files() == []


def test_sshx_from_profile_runs_engines_through_the_script(sshd, cluster):
    """[ssh] sshx (relative to the profile): the script reaches each host over
    ssh's stdin and every engine runs as `sh TMPFILE ipengine ARGS`."""
    marker = os.path.join(cluster.root, "sshx-marker")
    os.makedirs(cluster.profile_dir, mode=0o700, exist_ok=True)
    write_sshx(cluster.path("launch.sh"), marker)
    cluster.write_conf(ssh_conf(sshd, cluster, hosts="node1, node2", engines=2,
                                extra="sshx = launch.sh\n"))
    cluster.run("start")
    mec = cluster.client()
    assert mec.get_ids() == [0, 1]
    mec.execute("import os; via = os.environ.get('SSHX_WAS_HERE'); x = 6 * 7")
    assert mec.pull("via") == ["yes", "yes"]
    assert mec.pull("x") == [42, 42]
    with open(marker) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2, lines
    for line in lines:
        script, mode, args = line.split("|")
        # A private temporary file, not the profile's copy.
        assert re.fullmatch(r"/tmp/plexa-ssh\.\w+/plexa-ssh-.*\.sshx", script), script
        assert mode == "700"
        assert args.startswith(os.path.join(BUILD, "bin", "ipengine") + " --log-level")
    assert len(sshx_temp_files()) == 2
    assert cmdlines_containing(engine_token(cluster)) == []
    cluster.run("stop")
    assert_all_gone(sshd, cluster)


def test_ipcluster_ssh_sshx_and_copyenvs(sshd, cluster, tmp_path):
    """`ipcluster ssh --sshx FILE -e`: the local environment reaches the
    engines intact (values with quotes and newlines), except what belongs to
    this host; remote_env and the capability URL still win."""
    conf = ssh_conf(sshd, cluster, hosts="node1:1, node2:1", engines=2).replace(
        "engine_launcher = ssh\n", "")
    cluster.write_conf(conf.replace("remote_env = ", "remote_env = PLX_T_OVERRIDE=remote "))
    sshx = tmp_path / "sshx.sh"
    marker = tmp_path / "marker"
    write_sshx(sshx, marker)
    cluster.env.update(PLX_T_COPIED=TRICKY, PLX_T_OVERRIDE="local", DISPLAY=":97",
                       PLEXA_URL="tcp://127.0.0.1:1/stale")
    out = cluster.run("ssh", "--sshx", str(sshx), "-e", "--daemonize").stdout
    assert "2/2 registered" in out, out
    mec = cluster.client()
    mec.execute("import os; env = dict(os.environ)")
    for env in mec.pull("env"):
        assert env["PLX_T_COPIED"] == TRICKY
        assert env["PLX_T_OVERRIDE"] == "remote"
        assert env.get("DISPLAY") != ":97"
        assert "PLEXA_URL" not in env   # read (the right one: it registered), then dropped
        assert env["SSHX_WAS_HERE"] == "yes"
    assert len(marker.read_text().splitlines()) == 2
    token = engine_token(cluster)
    assert cmdlines_containing(token) == []
    assert cmdlines_containing("line two") == []
    cluster.run("stop")
    assert_all_gone(sshd, cluster)


def test_sshx_and_copyenvs_are_checked(sshd, cluster, tmp_path):
    for args, opt in ((["-e"], "-e/--copyenvs"), (["--copyenvs"], "-e/--copyenvs"),
                      (["--sshx", "x.sh"], "--sshx")):
        p = subprocess.run([tool("ipcluster"), "local", *args], env=cluster.env,
                           capture_output=True, text=True)
        assert p.returncode == 2 and f"{opt} is an option of the ssh mode" in p.stderr, p.stderr
        p = subprocess.run([tool("ipcluster"), "start", *args], env=cluster.env,
                           capture_output=True, text=True)
        assert p.returncode == 2 and "belong to the 0.10 modes" in p.stderr, p.stderr
    missing = tmp_path / "no-such-sshx.sh"
    cluster.write_conf(ssh_conf(sshd, cluster, hosts="node1", engines=1))
    p = cluster.run("ssh", "--sshx", str(missing), check=False)
    assert p.returncode == 1
    assert f"--sshx: cannot read {missing}: No such file" in p.stderr, p.stderr
    assert cluster.pids() == []
    # In the profile: named with its full path, refused before the controller starts.
    cluster.write_conf(ssh_conf(sshd, cluster, hosts="node1", engines=1,
                                extra="sshx = gone.sh\ncopy_env = true\n"))
    p = cluster.run("start", check=False)
    assert p.returncode != 0
    assert f"[ssh] sshx: cannot read {cluster.path('gone.sh')}: No such file" in p.stderr, \
        p.stderr
    assert not os.path.exists(cluster.path("log", "ipcontroller.log"))
    assert cluster.pids() == []
    cluster.write_conf(ssh_conf(sshd, cluster, hosts="node1", engines=1,
                                extra="copy_env = maybe\n"))
    p = cluster.run("start", check=False)
    assert p.returncode != 0 and "[ssh] copy_env: 'maybe' is not a boolean" in p.stderr
    assert cluster.pids() == []
