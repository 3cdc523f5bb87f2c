"""Fixtures that run real plexa clusters from the build tree.

Every cluster lives in its own PLEXA_DIR (a temporary directory), so tests
never touch ~/.plexa and can find every process they started: each one
inherits PLEXA_DIR, which we look for in /proc/*/environ.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from plexa_testing import BIN, BUILD, alive, processes_with_env, tool, wait_for  # noqa: E402,F401
from plexa_testing import tear_down_on_sigterm  # noqa: E402

tear_down_on_sigterm()


class Cluster:
    """A cluster started with `ipcluster start` in a private PLEXA_DIR."""

    def __init__(self, root, n=2, profile="default", cwd=None, conf=None):
        self.root = str(root)
        self.n = n
        self.profile = profile
        self.cwd = cwd or self.root
        self.env = dict(os.environ, PLEXA_DIR=self.root)
        self.env.pop("PLEXA_URL", None)
        if conf:
            self.write_conf(conf)

    def write_conf(self, text):
        """Write the profile's cluster.conf (before start)."""
        os.makedirs(self.profile_dir, mode=0o700, exist_ok=True)
        with open(self.path("cluster.conf"), "w") as f:
            f.write(text)

    @property
    def profile_dir(self):
        return os.path.join(self.root, f"profile_{self.profile}")

    def path(self, *parts):
        return os.path.join(self.profile_dir, *parts)

    def run(self, *args, check=True, timeout=120):
        p = subprocess.run([tool("ipcluster"), *args, f"--profile={self.profile}"],
                           cwd=self.cwd, env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"ipcluster {' '.join(args)} failed ({p.returncode}):\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p

    def start(self):
        return self.run("start", "-n", str(self.n))

    def stop(self):
        return self.run("stop", check=False)

    def pids(self):
        return processes_with_env("PLEXA_DIR", self.root)

    def url(self, role="mec"):
        name = {"mec": "ipcontroller-mec.url", "engine": "ipcontroller-engine.url",
                "task": "ipcontroller-tc.url", "status": "ipcontroller-status.url"}[role]
        with open(self.path("security", name)) as f:
            return f.read().strip()

    def controller_log(self):
        with open(self.path("log", "ipcontroller.log")) as f:
            return f.read()

    def client(self):
        os.environ["PLEXA_DIR"] = self.root
        from plexa import client
        return client.MultiEngineClient(profile=self.profile)

    def kill_all(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(n=2, **kw):
        c = Cluster(tmp_path / f"plexa{len(made)}", n=n, **kw)
        os.makedirs(c.root, exist_ok=True)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
        if not wait_for(lambda: not c.pids(), timeout=10):
            c.kill_all()


def running_cluster(root, n=2):
    """A generator for fixtures: a cluster started in root, yielded, then
    stopped (its leftover processes killed by pid)."""
    c = Cluster(root, n=n)
    c.start()
    yield c
    c.stop()
    if not wait_for(lambda: not c.pids(), timeout=10):
        c.kill_all()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One running 2-engine cluster shared by a test module."""
    yield from running_cluster(tmp_path_factory.mktemp("plexa"))


@pytest.fixture(scope="module")
def clients(cluster):
    """A MultiEngineClient and a TaskClient of the module's cluster."""
    os.environ["PLEXA_DIR"] = cluster.root
    from plexa import client
    mec = client.MultiEngineClient(profile=cluster.profile)
    tc = client.TaskClient(profile=cluster.profile)
    yield mec, tc
    tc.close()
    mec.close()
