"""The threat model's promises (docs/threat-model.md), each tried as the
attacker it names would try it.

Two local users act the parts: OWNER runs the cluster (as scientists do,
not as root), NEIGHBOUR is another user of the same host. Both are made
with useradd and removed at the end, also when a test fails. Tests run as
root (as in CI) and start processes as either user; without root, the
suite says so and skips.
"""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from plexa_testing import BIN, BUILD, alive, processes_with_env, protocol_version, rss_mib, \
    tool, wait_for  # noqa: E402,F401
from plexa_testing import tear_down_on_sigterm  # noqa: E402

tear_down_on_sigterm()

OWNER = "plxowner"
NEIGHBOUR = "plxneighbour"
HOMES = "/tmp/plexa-security-users"


def _remove_user(name):
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


@pytest.fixture(scope="session")
def users():
    """{'owner': pwd entry, 'neighbour': pwd entry}; removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the security suite needs root to create its two local users (useradd)")
    if not shutil.which("useradd"):
        pytest.skip("useradd is not installed")
    os.makedirs(HOMES, mode=0o755, exist_ok=True)
    made = []
    try:
        for name in (OWNER, NEIGHBOUR):
            _remove_user(name)   # a run that was killed may have left them
            subprocess.run(["useradd", "-m", "-d", os.path.join(HOMES, name), "-s", "/bin/sh",
                            name], check=True, capture_output=True)
            made.append(name)
        yield {"owner": pwd.getpwnam(OWNER), "neighbour": pwd.getpwnam(NEIGHBOUR)}
    finally:
        for name in made:
            _remove_user(name)
        shutil.rmtree(HOMES, ignore_errors=True)


def as_user(pw, argv, env=None, cwd=None, check=False, timeout=120, **kw):
    """Run argv as the user pw (its uid, gid, home), return the CompletedProcess."""
    e = {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
         "PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": os.path.join(BUILD, "python"),
         "PLX_PLUGIN_PATH": os.path.join(BUILD, "lib", "plexa", "plugins")}
    e.update(env or {})
    return subprocess.run(argv, env=e, cwd=cwd or pw.pw_dir, user=pw.pw_uid, group=pw.pw_gid,
                          extra_groups=[], capture_output=True, text=True, check=check,
                          timeout=timeout, **kw)


class OwnerCluster:
    """A 2-engine cluster that OWNER runs from its home, with PLEXA_DIR in
    it (0700)."""

    def __init__(self, pw, name, conf=None):
        self.pw = pw
        self.root = os.path.join(pw.pw_dir, name)
        self.env = {"PLEXA_DIR": self.root}
        if os.path.exists(self.root):
            shutil.rmtree(self.root)
        os.makedirs(os.path.join(self.root, "profile_default"), mode=0o700)
        if conf:
            with open(os.path.join(self.root, "profile_default", "cluster.conf"), "w") as f:
                f.write(conf)
        for dirpath, _dirs, files in os.walk(self.root):
            os.chown(dirpath, pw.pw_uid, pw.pw_gid)
            for fn in files:
                os.chown(os.path.join(dirpath, fn), pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)

    def path(self, *parts):
        return os.path.join(self.root, "profile_default", *parts)

    def run(self, *args, check=True, timeout=120, preexec_fn=None):
        r = as_user(self.pw, [tool("ipcluster"), *args], env=self.env, timeout=timeout,
                    preexec_fn=preexec_fn)
        if check and r.returncode != 0:
            raise AssertionError("ipcluster %s failed (%d):\n%s%s"
                                 % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def url(self, role="mec"):
        name = {"mec": "ipcontroller-mec.url", "engine": "ipcontroller-engine.url",
                "task": "ipcontroller-tc.url", "status": "ipcontroller-status.url"}[role]
        with open(self.path("security", name)) as f:
            return f.read().strip()

    def pids(self):
        return processes_with_env("PLEXA_DIR", self.root)

    def controller_pid(self):
        with open(self.path("pid", "ipcontroller.pid")) as f:
            return int(f.read().split()[0])

    def controller_log(self):
        with open(self.path("log", "ipcontroller.log")) as f:
            return f.read()

    def stop(self):
        self.run("stop", check=False, timeout=60)
        if not wait_for(lambda: not self.pids(), timeout=10):
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


@pytest.fixture
def owner_cluster(users):
    made = []

    def make(conf=None, start=True):
        c = OwnerCluster(users["owner"], "plexa%d" % len(made), conf)
        made.append(c)
        if start:
            c.run("start", "-n", "2")
        return c

    yield make
    for c in made:
        c.stop()


def mec_for(cluster, **kw):
    """A MultiEngineClient of this test process (root) for the cluster."""
    from plexa import client
    return client.MultiEngineClient(cluster.url("mec"), **kw)


def tc_for(cluster, **kw):
    from plexa import client
    return client.TaskClient(cluster.url("task"), **kw)


def wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
