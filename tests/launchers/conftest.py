"""Real systems for the launcher tests, started and stopped by the tests.

Everything listens on 127.0.0.1 only, lives in a temporary directory, and
is stopped by pid (never by name). A test skips only when the system's
package is missing (scripts/setup installs them).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from plexa_testing import BIN, BUILD, alive, processes_with_env, tool, wait_for  # noqa: E402,F401
from plexa_testing import tear_down_on_sigterm  # noqa: E402

tear_down_on_sigterm()


def cmdlines_containing(text):
    """(pid, command line) of live processes whose command line holds text."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and alive(int(d)):
            found.append((int(d), cmd))
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_pids(pids, timeout=5.0):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not any(alive(p) for p in pids), timeout)


class Sshd:
    """sshd on 127.0.0.1:<free port> with generated host and user keys, and
    an ssh config in which node1 and node2 are 127.0.0.1."""

    def __init__(self, root):
        self.dir = os.path.join(str(root), "sshd")
        os.makedirs(self.dir, mode=0o700)
        self.port = free_port()
        self.pid = None
        self.config = os.path.join(self.dir, "ssh_config")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _keys(self):
        for key in ("host_ed25519", "id_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.path(key)],
                           check=True)
        shutil.copy(self.path("id_ed25519.pub"), self.path("authorized_keys"))
        os.chmod(self.path("authorized_keys"), 0o600)

    def _configs(self):
        with open(self.path("sshd_config"), "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.path('host_ed25519')}
PidFile {self.path('sshd.pid')}
AuthorizedKeysFile {self.path('authorized_keys')}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes no
UsePAM no
PrintMotd no
PermitUserEnvironment no
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
""")
        with open(self.config, "w") as f:
            f.write(f"""Host node1 node2
  HostName 127.0.0.1
Host *
  Port {self.port}
  User {os.environ.get('USER') or __import__('pwd').getpwuid(os.getuid()).pw_name}
  IdentityFile {self.path('id_ed25519')}
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
""")

    def start(self):
        self._keys()
        self._configs()
        # sshd refuses to start without its privilege separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        subprocess.run(["/usr/sbin/sshd", "-f", self.path("sshd_config"),
                        "-E", self.path("sshd.log")], check=True)
        # sshd creates its pid file before it writes the number into it.
        assert wait_for(lambda: self._read_pid() is not None, 5), \
            open(self.path("sshd.log")).read()
        self.pid = self._read_pid()
        ok = wait_for(lambda: self.ssh("node1", "true").returncode == 0, 10, 0.1)
        assert ok, open(self.path("sshd.log")).read()

    def _read_pid(self):
        try:
            with open(self.path("sshd.pid")) as f:
                text = f.read()
        except OSError:
            return None
        return int(text) if text.endswith("\n") and text.strip().isdigit() else None

    def ssh(self, host, *cmd):
        return subprocess.run(["ssh", "-F", self.config, host, *cmd], capture_output=True,
                              text=True, timeout=30)

    def sessions(self):
        """Pids of the sshd processes serving connections (children of ours)."""
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == self.pid and alive(int(d)):
                    kids.append(int(d))
        return kids

    def stop(self):
        self.pid = self.pid or self._read_pid()
        if self.pid and alive(self.pid):
            kill_pids(self.sessions())
            os.kill(self.pid, signal.SIGTERM)
            wait_for(lambda: not alive(self.pid), 5)
            if alive(self.pid):
                kill_pids([self.pid])


@pytest.fixture
def sshd(tmp_path):
    if not os.path.exists("/usr/sbin/sshd") or not shutil.which("ssh"):
        pytest.skip("openssh-server / openssh-client not installed (scripts/setup installs them)")
    d = Sshd(tmp_path)
    try:
        d.start()
        yield d
    finally:
        d.stop()
        assert not alive(d.pid), "sshd still running"


class Cluster:
    """ipcluster runs in a private PLEXA_DIR, so a test finds every process
    it started through that variable (engines started over ssh get it
    through remote_env)."""

    def __init__(self, root, profile="default"):
        self.root = str(root)
        self.profile = profile
        self.env = dict(os.environ, PLEXA_DIR=self.root,
                        PYTHONPATH=os.path.join(BUILD, "python"))
        self.env.pop("PLEXA_URL", None)
        self.proc = None

    @property
    def profile_dir(self):
        return os.path.join(self.root, f"profile_{self.profile}")

    def path(self, *parts):
        return os.path.join(self.profile_dir, *parts)

    def write_conf(self, text):
        os.makedirs(self.profile_dir, mode=0o700, exist_ok=True)
        with open(self.path("cluster.conf"), "w") as f:
            f.write(text)

    def run(self, *args, check=True, timeout=120):
        p = subprocess.run([tool("ipcluster"), *args, f"--profile={self.profile}"],
                           cwd=self.root, env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"ipcluster {' '.join(args)} failed ({p.returncode}):\n"
                                 f"{p.stdout}\n{p.stderr}\n{self.logs()}")
        return p

    def logs(self):
        out = []
        d = self.path("log")
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), errors="replace") as f:
                out.append(f"--- {name}\n{f.read()[-3000:]}")
        return "\n".join(out)

    def pids(self):
        return processes_with_env("PLEXA_DIR", self.root)

    def client(self):
        os.environ["PLEXA_DIR"] = self.root
        from plexa import client
        return client.MultiEngineClient(profile=self.profile)

    def kill_all(self):
        kill_pids(self.pids())


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path / "plexa")
    os.makedirs(c.root, mode=0o700)
    yield c
    c.run("stop", check=False, timeout=60)
    c.kill_all()
