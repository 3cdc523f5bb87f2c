"""The field test bed (testbed.py) as pytest fixtures: ``bed`` (open
networks) and ``oneway_bed`` (nodes reach login only through its sshd),
built for a test and torn down after it, also when it fails; and
``FieldCluster``, a plexa cluster started on login with its engines on
node1 and node2 through the ssh launcher."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from plexa_testing import BUILD, tear_down_on_sigterm, tool, wait_for  # noqa: E402,F401
from testbed import Testbed, can_build  # noqa: E402

tear_down_on_sigterm()


def _bed(tmp_path, oneway):
    why = can_build()
    if why:
        pytest.skip(why)
    b = Testbed(tmp_path, oneway=oneway)
    b.build()
    try:
        yield b
    finally:
        b.teardown()


@pytest.fixture
def bed(tmp_path):
    yield from _bed(tmp_path, False)


@pytest.fixture
def oneway_bed(tmp_path):
    yield from _bed(tmp_path, True)


class FieldCluster(object):
    """A plexa profile in tmp whose ipcluster runs on login, engines on the
    nodes over ssh; every command runs on a host of the bed."""

    def __init__(self, bed, root, hosts="node1:2, node2:2", engines=4, extra=""):
        self.bed = bed
        self.root = os.path.join(str(root), "plexa")
        self.profile_dir = os.path.join(self.root, "profile_default")
        os.makedirs(self.profile_dir, mode=0o700)
        with open(os.path.join(self.profile_dir, "cluster.conf"), "w") as f:
            f.write("[cluster]\nengine_launcher = ssh\nengines = %d\nstart_timeout = 60\n"
                    "[ssh]\nhosts = %s\nssh_options = -F %s\n"
                    "remote_env = PLEXA_DIR=%s PYTHONPATH=%s/python\n%s"
                    % (engines, hosts, bed.ssh_config, self.root, BUILD, extra))
        self.env = dict(os.environ, PLEXA_DIR=self.root, PYTHONPATH=os.path.join(BUILD, "python"))
        self.env.pop("PLEXA_URL", None)

    def ipcluster(self, *args, host="login", check=True, timeout=120):
        p = self.bed.run(host, [tool("ipcluster"), *args], env=self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("ipcluster %s on %s failed (%d):\n%s\n%s"
                                 % (" ".join(args), host, p.returncode, p.stdout, p.stderr))
        return p

    def python(self, code, host="login", timeout=120):
        """Run Python code on host (a plexa client); its stdout."""
        p = self.bed.run(host, ["/usr/bin/python3", "-c", code], env=self.env, timeout=timeout)
        assert p.returncode == 0, "on %s:\n%s\n%s" % (host, p.stdout, p.stderr)
        return p.stdout

    def url(self, role="mec"):
        name = {"mec": "ipcontroller-mec.url", "engine": "ipcontroller-engine.url"}[role]
        with open(os.path.join(self.profile_dir, "security", name)) as f:
            return f.read().strip()

    def log(self, name):
        with open(os.path.join(self.profile_dir, "log", name)) as f:
            return f.read()
