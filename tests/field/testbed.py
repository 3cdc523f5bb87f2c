"""Several hosts on one machine, made of Linux network namespaces: the
field test bed (issue 21), for tests of clusters that span hosts.

    laptop --- outside 10.231.1.0/24 --- login --- cluster 10.231.2.0/24 --- node1
                                                                        \\-- node2

    host     outside       cluster       runs
    laptop   10.231.1.10   -             the user's client
    login    10.231.1.1    10.231.2.1    the controller, an sshd
    node1    -             10.231.2.11   an sshd (engines)
    node2    -             10.231.2.12   an sshd (engines)

Each host is a namespace ``<tag>-<host>``; the two networks are bridges in
a namespace of their own (``<tag>-net``), so nothing is added to the
machine's own network. Hosts share the file system, users and process
table (only the network is theirs): the build tree is at the same path on
every host. No host routes between the networks, so the laptop reaches
only login, and the nodes reach only login and each other.

``oneway=True`` adds the second scenario: login's firewall (nftables)
drops every new connection from the cluster network except to its sshd,
so engines reach the controller only through ssh.

Names: ssh's names are in ``bed.ssh_config`` (the laptop and the nodes
reach login as ``login``; login reaches ``node1``, ``node2``), with one
key for root on every host. Every process the bed starts, and any process
left in one of its namespaces, is killed by pid when it is torn down,
which also happens when building it fails half-way.

Usage (root; tests/field/conftest.py makes it a fixture):

    bed = Testbed(tmp_path)
    bed.build()
    bed.run("login", ["ipcluster", "start", ...])
    bed.teardown()
"""
import os
import secrets
import shutil
import signal
import subprocess
import time

HOSTS = {
    "laptop": {"outside": "10.231.1.10"},
    "login": {"outside": "10.231.1.1", "cluster": "10.231.2.1"},
    "node1": {"cluster": "10.231.2.11"},
    "node2": {"cluster": "10.231.2.12"},
}
NETWORKS = ("outside", "cluster")
PREFIX = 24


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def can_build():
    """None when this process can build the bed, else why not."""
    if os.geteuid() != 0:
        return "the field test bed needs root (network namespaces)"
    for tool in ("ip", "/usr/sbin/sshd", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            return "%s is not installed (scripts/setup installs it)" % tool
    return None


class Testbed(object):
    def __init__(self, root, oneway=False):
        self.root = os.path.join(str(root), "testbed")
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.tag = "pf" + secrets.token_hex(3)
        self.oneway = oneway
        self.made = []          # namespaces made, in order
        self.pids = []          # processes started in them
        self.ssh_config = os.path.join(self.root, "ssh_config")
        self.key = os.path.join(self.root, "id_ed25519")

    # -- names -----------------------------------------------------------------

    def ns(self, host):
        return "%s-%s" % (self.tag, host)

    @staticmethod
    def addr(host, network):
        return HOSTS[host][network]

    # -- building --------------------------------------------------------------

    def build(self):
        try:
            self._namespaces()
            self._links()
            if self.oneway:
                self._firewall()
            self._ssh()
        except BaseException:
            self.teardown()
            raise

    def _namespaces(self):
        for name in ["net"] + list(HOSTS):
            _ip("netns", "add", self.ns(name))
            self.made.append(self.ns(name))
            _ip("-n", self.ns(name), "link", "set", "lo", "up")
        for net in NETWORKS:
            _ip("-n", self.ns("net"), "link", "add", net, "type", "bridge")
            _ip("-n", self.ns("net"), "link", "set", net, "up")

    def _links(self):
        for host, nets in HOSTS.items():
            for net, addr in nets.items():
                # one veth per host and network: the bridge end is named
                # after the host, the host's end after the network
                port = "%s-%s" % (host, net[:3])
                _ip("-n", self.ns("net"), "link", "add", port, "type", "veth", "peer", "name",
                    net, "netns", self.ns(host))
                _ip("-n", self.ns("net"), "link", "set", port, "master", net, "up")
                _ip("-n", self.ns(host), "addr", "add", "%s/%d" % (addr, PREFIX), "dev", net)
                _ip("-n", self.ns(host), "link", "set", net, "up")

    def _firewall(self):
        rules = ("table inet plexa_field {\n"
                 " chain input {\n"
                 "  type filter hook input priority 0; policy accept;\n"
                 "  ct state established,related accept\n"
                 "  iifname \"cluster\" tcp dport 22 accept\n"
                 "  iifname \"cluster\" ct state new drop\n"
                 " }\n"
                 "}\n")
        path = os.path.join(self.root, "oneway.nft")
        with open(path, "w") as f:
            f.write(rules)
        self.run("login", ["nft", "-f", path], check=True)

    def _ssh(self):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key],
                       check=True)
        hostkey = os.path.join(self.root, "host_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey],
                       check=True)
        auth = os.path.join(self.root, "authorized_keys")
        shutil.copy(self.key + ".pub", auth)
        os.chmod(auth, 0o600)
        with open(self.ssh_config, "w") as f:
            f.write("Host login\n  HostName %s\n" % self.addr("login", "outside"))
            f.write("Host login-cluster\n  HostName %s\n" % self.addr("login", "cluster"))
            for node in ("node1", "node2"):
                f.write("Host %s\n  HostName %s\n" % (node, self.addr(node, "cluster")))
            f.write("Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n"
                    "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                    "  LogLevel ERROR\n  BatchMode yes\n  ConnectTimeout 5\n" % self.key)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for host in ("login", "node1", "node2"):
            self._sshd(host, hostkey, auth)

    def _sshd(self, host, hostkey, auth):
        conf = os.path.join(self.root, "sshd_%s.conf" % host)
        with open(conf, "w") as f:
            f.write("Port 22\n")
            for addr in HOSTS[host].values():
                f.write("ListenAddress %s\n" % addr)
            f.write("HostKey %s\nPidFile none\nAuthorizedKeysFile %s\n"
                    "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n"
                    "PrintMotd no\nMaxStartups 100:30:200\nMaxSessions 100\n"
                    "AllowTcpForwarding yes\nLogLevel ERROR\n" % (hostkey, auth))
        log = os.path.join(self.root, "sshd_%s.log" % host)
        p = self.popen(host, ["/usr/sbin/sshd", "-D", "-f", conf, "-E", log])
        near = "login-cluster" if host == "login" else host
        for _ in range(100):
            if p.poll() is not None:
                raise RuntimeError("sshd on %s exited: %s" % (host, open(log).read()))
            if self.ssh("login" if host != "login" else "node1", near, "true",
                        check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("sshd on %s does not answer: %s" % (host, open(log).read()))

    # -- running ---------------------------------------------------------------

    def _argv(self, host, argv):
        return ["ip", "netns", "exec", self.ns(host)] + list(argv)

    def run(self, host, argv, check=False, timeout=120, **kw):
        """argv on host, to its end; a CompletedProcess (text, captured)."""
        return subprocess.run(self._argv(host, argv), check=check, capture_output=True,
                              text=True, timeout=timeout, **kw)

    def popen(self, host, argv, **kw):
        """argv on host in the background; killed at teardown."""
        p = subprocess.Popen(self._argv(host, argv), start_new_session=True, **kw)
        self.pids.append(p.pid)
        return p

    def ssh(self, src, dst, *command, check=True, timeout=30):
        """ssh from host src to dst (a name of bed.ssh_config)."""
        return self.run(src, ["ssh", "-F", self.ssh_config, dst, *command], check=check,
                        timeout=timeout)

    def connects(self, src, addr, port, timeout=1.0):
        """Whether a TCP connection from src to addr:port is accepted."""
        code = ("import socket, sys\n"
                "s = socket.socket()\ns.settimeout(%r)\n"
                "try:\n    s.connect((%r, %d))\nexcept OSError:\n    sys.exit(1)\n"
                % (timeout, addr, port))
        return self.run(src, ["/usr/bin/python3", "-c", code]).returncode == 0

    def pids_on(self, host):
        """The processes that run on host (in its namespace)."""
        out = _ip("netns", "pids", self.ns(host), check=False).stdout
        return sorted(int(x) for x in out.split())

    def set_link(self, host, network, up):
        """Plug host's cable to network in or out."""
        _ip("-n", self.ns("net"), "link", "set", "%s-%s" % (host, network[:3]),
            "up" if up else "down")

    # -- tearing down ----------------------------------------------------------

    def teardown(self):
        for pid in self.pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        for ns in self.made:
            out = _ip("netns", "pids", ns, check=False).stdout
            for pid in out.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
        for ns in reversed(self.made):
            for _ in range(50):
                if _ip("netns", "del", ns, check=False).returncode == 0:
                    break
                time.sleep(0.1)
        self.made = []
        self.pids = []
