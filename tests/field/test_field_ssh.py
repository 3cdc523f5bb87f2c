"""A cluster behind a login node, on the field test bed (issue 21): the
bed's networks are what they claim; ipcluster on login starts engines on
node1 and node2 through the ssh launcher with the default profile's
addresses (it picks login's address on the cluster network and says so);
a client on login sees 4 engines on 2 hosts; ipcluster stop leaves
nothing on any host; a host that disappears has its engines declared dead
and the others serve on.
"""
import json
import os
import time

from conftest import FieldCluster, wait_for

GET_IDS = ("from plexa import client\n"
           "mec = client.MultiEngineClient()\n"
           "print(sorted(mec.get_ids()))\n")


def test_networks_are_what_the_bed_says(bed):
    login_out, login_cl = bed.addr("login", "outside"), bed.addr("login", "cluster")
    node1 = bed.addr("node1", "cluster")
    assert bed.connects("laptop", login_out, 22)
    assert not bed.connects("laptop", node1, 22)           # no route from the laptop
    assert not bed.connects("laptop", login_cl, 22)         # login does not route for it
    assert bed.connects("login", node1, 22)
    assert bed.connects("node1", login_cl, 22)
    assert not bed.connects("node1", login_out, 22)
    assert bed.ssh("laptop", "login", "echo", "on login").stdout == "on login\n"
    assert bed.ssh("login", "node2", "true").returncode == 0


def test_oneway_nodes_reach_only_logins_sshd(oneway_bed):
    bed = oneway_bed
    login_cl = bed.addr("login", "cluster")
    server = bed.popen("login", ["/usr/bin/python3", "-c",
                                 "import socket, time\n"
                                 "s = socket.socket()\n"
                                 "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                                 "s.bind(('0.0.0.0', 7401)); s.listen(8); time.sleep(60)\n"])
    assert wait_for(lambda: bed.connects("login", login_cl, 7401), timeout=10)
    assert not bed.connects("node1", login_cl, 7401)        # dropped by login's firewall
    assert bed.connects("node1", login_cl, 22)
    assert bed.connects("laptop", bed.addr("login", "outside"), 7401)   # not from outside
    # connections login opens to the nodes still work (their replies come in)
    assert bed.ssh("login", "node1", "true").returncode == 0
    server.kill()


def test_ssh_launcher_across_hosts(bed, tmp_path):
    c = FieldCluster(bed, tmp_path)
    p = c.ipcluster("start")
    # nothing in the profile says where: ipcluster picked login's address on
    # the network that reaches node1, said so, and wrote it into the files
    assert ("engines run on 10.231.2.11: the controller listens on 10.231.2.1 "
            "(interface cluster)" in p.stdout), p.stdout
    assert "//10.231.2.1:" in c.url("engine") and "//10.231.2.1:" in c.url("mec")
    try:
        assert c.python(GET_IDS) == "[0, 1, 2, 3]\n"
        # two engines on each node: the controller saw them come from there
        log = c.log("ipcontroller.log")
        assert log.count("registered from 10.231.2.11:") == 2, log
        assert log.count("registered from 10.231.2.12:") == 2, log
        for node in ("node1", "node2"):
            assert any("ipengine" in open("/proc/%d/cmdline" % pid).read()
                       for pid in bed.pids_on(node) if _exists(pid)), node
        # a 1 000-element map and a 32 MB round trip, over the cluster network
        out = c.python("from plexa import client\nimport numpy\n"
                       "tc = client.TaskClient()\n"
                       "print(tc.map(lambda x: x * 2, range(1000)) == "
                       "[x * 2 for x in range(1000)])\n"
                       "mec = client.MultiEngineClient()\n"
                       "a = numpy.arange(4 << 20, dtype=numpy.float64)\n"
                       "mec.push({'a': a}, targets=3)\n"
                       "print(bool((mec.pull('a', targets=3)[0] == a).all()))\n")
        assert out == "True\nTrue\n"
        # A value from an engine on node1 to the engines on node2 goes
        # between the nodes: the controller on login never holds it.
        hwm = controller_hwm_mib(c)
        out = c.python(DIRECT)
        assert out == "[True, True]\n", out
        assert controller_hwm_mib(c) - hwm < 24
        logs = "".join(c.log(n) for n in os.listdir(os.path.join(c.profile_dir, "log"))
                       if n.startswith("ipengine"))
        assert "serving values to other engines on 10.231.2.11:" in logs, logs
        # A push of 32 MiB to all four engines leaves login once: the
        # engines pass it on between the nodes, as a tree that knows
        # hosts: the nodes' links carry it once between them (to the first
        # engine of the other node), and each node's second engine gets it
        # on its own host.
        status = os.path.join(c.profile_dir, "security", "ipcontroller-status.http")
        before = {h: tx_mib(bed, h) for h in ("login", "node1", "node2")}
        out = c.python(BROADCAST % status)
        assert out == "1\n[True, True, True, True]\n", out
        sent = {h: tx_mib(bed, h) - before[h] for h in before}
        assert 32 <= sent["login"] < 40, sent
        assert 32 <= sent["node1"] + sent["node2"] < 40, sent
    finally:
        c.ipcluster("stop", check=False)
    nothing_left(bed)


def tx_mib(bed, host):
    """What host has sent on its cluster link so far, in MiB."""
    p = bed.run(host, ["ip", "-j", "-s", "link", "show", "dev", "cluster"], check=True)
    return json.loads(p.stdout)[0]["stats64"]["tx"]["bytes"] / 2**20


def controller_hwm_mib(c):
    with open(os.path.join(c.profile_dir, "pid", "ipcontroller.pid")) as f:
        pid = int(f.read().split()[0])
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024


WHERE = ("import subprocess\n"
         "where = subprocess.run(['ip', '-o', '-4', 'addr', 'show', 'cluster'], "
         "capture_output=True, text=True).stdout.split()[3].split('/')[0]\n")

# Run on login: engine on node1 -> engines on node2, 64 MiB, by plexa.ref.
DIRECT = ("import plexa\nfrom plexa import client\n"
          "mec = client.MultiEngineClient()\n"
          "mec.execute(%r)\n"
          "w = dict(zip(mec.get_ids(), mec.pull('where')))\n"
          "src = min(i for i in w if w[i] == '10.231.2.11')\n"
          "dst = sorted(i for i in w if w[i] == '10.231.2.12')\n"
          "mec.execute('import numpy; big = numpy.arange(8 << 20, dtype=numpy.float64)', "
          "targets=src)\n"
          "mec.push({'big': plexa.ref('big', engine=src)}, targets=dst)\n"
          "mec.execute('ok = bool(big[-1] == (8 << 20) - 1)', targets=dst)\n"
          "print(mec.pull('ok', targets=dst))\n") % WHERE

# Run on login: 32 MiB to every engine, node1's listed first (a tree
# blind to hosts would have each node1 engine serve a node2 one); how many
# times the controller sent it (the status page's bytes_sent), and
# whether each has it.
BROADCAST = ("import json, urllib.request, numpy\nfrom plexa import client\n"
             "url = open(%r).read().strip().replace('/?', '/status.json?')\n"
             "def sent():\n"
             "    with urllib.request.urlopen(url, timeout=10) as r:\n"
             "        return sum(e['bytes_sent'] for e in json.load(r)['engines'])\n"
             "mec = client.MultiEngineClient()\n"
             "mec.execute(" + repr(WHERE) + ")\n"
             "w = dict(zip(mec.get_ids(), mec.pull('where')))\n"
             "order = sorted(w, key=lambda i: (w[i], i))\n"
             "b = numpy.arange(4 << 20, dtype=numpy.float64)\n"
             "before = sent()\n"
             "mec.push({'b': b}, targets=order)\n"
             "print((sent() - before) // (32 << 20))\n"
             "mec.execute('ok = bool(b[-1] == (4 << 20) - 1)')\n"
             "print(mec.pull('ok'))\n")

DISAPPEAR = ("from plexa import client\nfrom plexa.error import CompositeError\n"
             "import subprocess, sys, time\n"
             "mec = client.MultiEngineClient()\n"
             "mec.execute(%r)\n"
             "on_node2 = [i for i, w in zip(mec.get_ids(), mec.pull('where')) "
             "if w == '10.231.2.12']\n"
             "print(on_node2)\n"
             "pending = mec.execute('import time; time.sleep(60)', targets=on_node2, block=False)\n"
             "time.sleep(0.5)\n"
             "subprocess.run(sys.argv[1:], check=True)          # node2's cable out\n"
             "t0 = time.monotonic()\n"
             "try:\n"
             "    pending.get_result()\n"
             "except CompositeError as e:\n"
             "    print(sorted(set(t[0] for t in e.elist)))\n"
             "print(time.monotonic() - t0 < 30)\n"
             "ids = sorted(mec.get_ids())\n"
             "print(ids, mec.execute('x = 1')[0]['id'] in ids)\n")


# Run on login: scatter 64 MiB over the four engines, gather it back;
# whether it arrived, and how many MiB the controller received from its
# engines meanwhile (the status page's bytes_received), twice.
GATHER = ("import json, urllib.request, numpy\nfrom plexa import client\n"
          "url = open(%r).read().strip().replace('/?', '/status.json?')\n"
          "def received():\n"
          "    with urllib.request.urlopen(url, timeout=10) as r:\n"
          "        return sum(e['bytes_received'] for e in json.load(r)['engines'])\n"
          "mec = client.MultiEngineClient()\n"
          "mec.scatter('x', numpy.arange(8 << 20, dtype=numpy.float64))\n"
          "mec.execute('x += 1')\n"
          "for _ in range(2):\n"
          "    before = received()\n"
          "    g = mec.gather('x')\n"
          "    print(bool((g == numpy.arange(8 << 20) + 1).all()), "
          "(received() - before) >> 20)\n")

# login may open no connection into the cluster network but ssh's.
NO_WAY_IN = ("table inet plexa_direct {\n"
             " chain output {\n"
             "  type filter hook output priority 0; policy accept;\n"
             "  ip daddr 10.231.2.0/24 tcp dport != 22 ct state new reject\n"
             " }\n"
             "}\n")


def test_gather_comes_straight_from_the_nodes(bed, tmp_path):
    """A client on login gathers from engines on node1 and node2: each
    piece comes from its engine to the client, never through the
    controller. When login's firewall lets the client reach no engine,
    the gather still arrives, through the controller."""
    c = FieldCluster(bed, tmp_path)
    c.ipcluster("start")
    try:
        status = os.path.join(c.profile_dir, "security", "ipcontroller-status.http")
        assert c.python(GATHER % status) == "True 0\nTrue 0\n"
        rules = tmp_path / "no-way-in.nft"
        rules.write_text(NO_WAY_IN)
        bed.run("login", ["nft", "-f", str(rules)], check=True)
        t0 = time.monotonic()
        p = bed.run("login", ["/usr/bin/python3", "-c", GATHER % status], env=c.env)
        assert p.returncode == 0, p.stderr
        # The engines held the values for the client's tickets; the pull
        # through the controller ended them at once, not at their expiry
        # a minute later (a liveness bound, not a speed).
        assert time.monotonic() - t0 < 45
        first, second = p.stdout.splitlines()
        assert first.startswith("True ") and int(first.split()[1]) >= 63, first
        assert second.startswith("True ") and int(second.split()[1]) >= 63, second
        # each engine failed once, in the first gather; the second did not try
        assert p.stderr.count("pulls through the controller from now on") == 4, p.stderr
    finally:
        c.ipcluster("stop", check=False)
    nothing_left(bed)


# Run on login: scatter 64 MiB over the four engines, twice; what the
# controller sent its engines meanwhile, in MiB, and whether they have it.
SCATTER = ("import json, urllib.request, numpy\nfrom plexa import client\n"
           "url = open(%r).read().strip().replace('/?', '/status.json?')\n"
           "def sent():\n"
           "    with urllib.request.urlopen(url, timeout=10) as r:\n"
           "        return sum(e['bytes_sent'] for e in json.load(r)['engines'])\n"
           "mec = client.MultiEngineClient()\n"
           "v = numpy.arange(8 << 20, dtype=numpy.float64)\n"
           "for _ in range(2):\n"
           "    before = sent()\n"
           "    mec.scatter('x', v)\n"
           "    print((sent() - before) >> 20, bool((mec.gather('x') == v).all()))\n")

# login accepts no new connection from the cluster network but to its
# sshd and the controller's port; others are dropped unanswered (the
# engines' fetches give up after 10 s without a connection).
NO_WAY_OUT = ("table inet plexa_direct {\n"
              " chain input {\n"
              "  type filter hook input priority 0; policy accept;\n"
              "  iifname \"cluster\" tcp dport != { 22, %d } ct state new drop\n"
              " }\n"
              "}\n")


def test_scatter_goes_straight_to_the_nodes(bed, tmp_path):
    """A client on login scatters to engines on node1 and node2: each
    engine fetches its piece from the client, and the controller sends
    none of it. When login's firewall lets no engine reach the client, the
    pieces go through the controller, and the scatter still arrives."""
    c = FieldCluster(bed, tmp_path)
    c.ipcluster("start")
    try:
        status = os.path.join(c.profile_dir, "security", "ipcontroller-status.http")
        assert c.python(SCATTER % status) == "0 True\n0 True\n"
        port = int(c.url("mec").split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        rules = tmp_path / "no-way-out.nft"
        rules.write_text(NO_WAY_OUT % port)
        bed.run("login", ["nft", "-f", str(rules)], check=True)
        p = bed.run("login", ["/usr/bin/python3", "-c", SCATTER % status], env=c.env)
        assert p.returncode == 0, p.stderr
        first, second = p.stdout.splitlines()
        assert int(first.split()[0]) >= 63 and first.endswith(" True"), first
        assert int(second.split()[0]) >= 63 and second.endswith(" True"), second
        # each engine failed once, in the first scatter; the second did not try
        assert p.stderr.count("could not fetch a scatter's values from this client") == 4, \
            p.stderr
    finally:
        c.ipcluster("stop", check=False)
    nothing_left(bed)


def test_a_host_that_disappears(bed, tmp_path):
    """node2 drops off the network while its engines run code: that work
    fails with the engines' error, they are declared dead, and the others
    serve on."""
    c = FieldCluster(bed, tmp_path)
    c.ipcluster("start")
    try:
        cable = ["ip", "-n", bed.ns("net"), "link", "set", "node2-clu", "down"]
        p = bed.run("login", ["/usr/bin/python3", "-c", DISAPPEAR % WHERE, *cable],
                    env=c.env, timeout=120)
        assert p.returncode == 0, p.stderr
        on_node2, failed, in_time, after = p.stdout.splitlines()
        assert len(eval(on_node2)) == 2
        assert failed == "['EngineError']", p.stdout
        assert in_time == "True"
        survivors, served = after.rsplit(" ", 1)
        assert len(eval(survivors)) == 2 and served == "True"
        assert not set(eval(on_node2)) & set(eval(survivors))
        log = c.log("ipcontroller.log")
        assert log.count("unregistered: no heartbeat") >= 2, log
    finally:
        bed.set_link("node2", "cluster", up=True)
        c.ipcluster("stop", check=False)


def test_the_seeds_clusterfile_without_editing_a_profile(bed, tmp_path):
    """0.10's `ipcluster ssh --clusterfile F`: the profile says nothing of
    addresses (only how this test bed's ssh is reached)."""
    c = FieldCluster(bed, tmp_path, hosts="", engines=2)
    conf = c.profile_dir + "/cluster.conf"
    with open(conf) as f:
        text = "".join(line for line in f if not line.startswith(("hosts", "engine_launcher",
                                                                   "engines")))
    with open(conf, "w") as f:
        f.write(text)
    cf = tmp_path / "clusterfile"
    cf.write_text("send_furl = False\nengines = {'10.231.2.11': 1, '10.231.2.12': 1}\n")
    p = c.ipcluster("ssh", "--clusterfile", str(cf), "--daemonize")
    try:
        assert "the controller listens on 10.231.2.1" in p.stdout, p.stdout
        assert c.python(GET_IDS) == "[0, 1]\n"
    finally:
        c.ipcluster("stop", check=False)
    nothing_left(bed)


def _exists(pid):
    try:
        open("/proc/%d/cmdline" % pid).close()
        return True
    except OSError:
        return False


def nothing_left(bed):
    """No plexa process (or an engine's ssh keeper) on any host."""
    for host in ("login", "node1", "node2"):
        assert wait_for(lambda: not _plexa_on(bed, host), timeout=20), (host, _plexa_on(bed, host))


def _plexa_on(bed, host):
    """plexa processes (ipengine, ipcontroller, ipcluster) on host."""
    found = []
    for pid in bed.pids_on(host):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(name in cmd for name in ("ipengine", "ipcontroller", "ipcluster")):
            found.append((pid, cmd))
    return found


def test_engines_through_ssh_behind_a_one_way_firewall(oneway_bed, tmp_path):
    """The nodes may open connections to login's sshd only: with
    engine_ssh = login-cluster each engine tunnels there, and the controller
    stays on login's loopback (nothing in the files names another address)."""
    bed = oneway_bed
    # the engines' ssh needs the bed's config: copy_env passes PLEXA_SSH on
    c = FieldCluster(bed, tmp_path, hosts="node1:1, node2:1", engines=2,
                     extra="copy_env = true\n")
    c.env["PLEXA_SSH"] = "ssh -F %s" % bed.ssh_config
    conf_path = c.profile_dir + "/cluster.conf"
    with open(conf_path) as f:
        conf = f.read()
    with open(conf_path, "w") as f:
        f.write(conf.replace("[cluster]\n", "[cluster]\nengine_ssh = login-cluster\n"))
    p = c.ipcluster("start")
    try:
        assert "//127.0.0.1:" in c.url("engine"), c.url("engine")
        assert "engines run on" not in p.stdout       # nothing picked: engines tunnel
        port = int(c.url("engine").split("//")[1].split(":")[1].split("/")[0])
        # the controller cannot be reached from the nodes but through ssh
        assert not bed.connects("node1", bed.addr("login", "cluster"), port)
        assert c.python(GET_IDS) == "[0, 1]\n"
        out = c.python("from plexa import client\n"
                       "mec = client.MultiEngineClient()\n"
                       "print([r['stdout'] for r in mec.execute('print(7 * 6)')])\n")
        assert out == "['42\\n', '42\\n']\n"
    finally:
        c.ipcluster("stop", check=False)
    nothing_left(bed)

