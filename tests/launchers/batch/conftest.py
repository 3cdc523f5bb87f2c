"""Fixtures for the batch launcher tests: real Slurm / Grid Engine daemons
(each test starts and stops its own) and plexa clusters run from the build
tree with `ipcluster start` in a private PLEXA_DIR.

A test is skipped only when the batch system's packages are missing;
tests/launchers/batch/setup-batch installs them.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import batchsys  # noqa: E402
from plexa_testing import processes_with_env, tool  # noqa: E402,F401

BUILD = os.path.abspath(os.environ.get("PLX_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "build"))
sys.path.insert(0, os.path.join(BUILD, "python"))

SETUP = "tests/launchers/batch/setup-batch"


def _daemons(cls, what):
    if cls.missing:
        pytest.skip(f"{what} not installed ({', '.join(cls.missing)} missing); run {SETUP}")
    d = cls()
    try:
        d.start()
    except Exception:
        d.stop()
        raise
    yield d
    left = d.stop()
    d.cleanup()
    assert not left, f"{what} daemons still running: {left}"


@pytest.fixture
def slurm():
    yield from _daemons(batchsys.Slurm, "Slurm (slurm-wlm, munge)")


@pytest.fixture
def sge():
    yield from _daemons(batchsys.Sge, "Grid Engine (gridengine-master, -exec, -client)")


@pytest.fixture
def torque(slurm):
    """Slurm's PBS/Torque wrappers (slurm-wlm-torque, unpacked on their own
    because gridengine-client ships qsub too) in front of the slurm fixture."""
    qsub = os.path.join(batchsys.TORQUE_BIN, "qsub")
    if not os.access(qsub, os.X_OK):
        pytest.skip(f"slurm-wlm-torque not unpacked in {batchsys.TORQUE_DIR}; run {SETUP}")
    return slurm


class BatchCluster:
    """One profile in a private PLEXA_DIR whose engines a batch system runs."""

    def __init__(self, root, system, launcher, section, profile, n=2):
        self.root = str(root)
        self.system = system
        self.profile = profile
        self.n = n
        self.cwd = os.path.join(self.root, "work")
        os.makedirs(self.cwd)
        self.env = system.job_env({"PLEXA_DIR": self.root})
        self.env.pop("PLEXA_URL", None)
        self.profile_dir = os.path.join(self.root, f"profile_{profile}")
        os.makedirs(self.profile_dir, mode=0o700)
        # listen is set on purpose: these engines reach the controller on
        # loopback because the "compute node" is this machine.
        conf = (f"[cluster]\nengine_launcher = {launcher}\nlisten = 127.0.0.1\n"
                f"transport = tls\n\n[{launcher}]\npoll_interval = 0.3\n")
        conf += "".join(f"{k} = {v}\n" for k, v in section.items())
        self.write("cluster.conf", conf)

    def write(self, name, text):
        with open(os.path.join(self.profile_dir, name), "w") as f:
            f.write(text)

    def log(self, name):
        try:
            with open(os.path.join(self.profile_dir, "log", name)) as f:
                return f.read()
        except OSError:
            return ""

    def ipcluster(self, *args, timeout=120):
        return subprocess.run([tool("ipcluster"), *args, f"--profile={self.profile}"],
                              cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, *args):
        t0 = time.monotonic()
        p = self.ipcluster("start", "-n", str(self.n), *args)
        p.elapsed = time.monotonic() - t0
        return p

    def stop(self):
        return self.ipcluster("stop")

    def client(self):
        os.environ["PLEXA_DIR"] = self.root
        from plexa import client
        return client.MultiEngineClient(profile=self.profile)

    def engines(self):
        """Live processes of this cluster: they all inherit PLEXA_DIR."""
        return processes_with_env("PLEXA_DIR", self.root)

    def diagnose(self, p=None):
        text = f"ipcluster.log:\n{self.log('ipcluster.log')}\n"
        if p is not None:
            text = f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}\n" + text
        return text


@pytest.fixture
def batch_cluster(tmp_path):
    made = []

    def make(system, launcher, section=None, profile=None, n=2):
        c = BatchCluster(tmp_path / f"plexa{len(made)}", system, launcher, section or {},
                         profile or launcher, n)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
        if not batchsys.wait_for(lambda: not c.engines(), 15):
            # a stop that failed keeps its ipcluster (and the controller)
            # to retry: a test that ends there leaves nothing behind
            for pid in c.engines():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
