"""Clients on the laptop, which reaches only the login node's sshd (issue
21): MultiEngineClient, TaskClient and StatusClient with
``sshserver='login'`` tunnel through the system's OpenSSH to the cluster
that runs behind it, TLS and tokens end to end; a tunnel that cannot be
made fails within seconds with ssh's own words; closing the client ends
its ssh.
"""
import re
import time

from conftest import FieldCluster, wait_for

THROUGH = ("import os, time\n"
           "from plexa import client\n"
           "import numpy\n"
           "kw = dict(sshserver='root@login', sshkey=os.environ['FIELD_KEY'])\n"
           "mec = client.MultiEngineClient(**kw)\n"
           "print(sorted(mec.get_ids()))\n"
           "tc = client.TaskClient(**kw)\n"
           "print(tc.map(lambda x: x + 1, range(1000)) == list(range(1, 1001)))\n"
           "a = numpy.random.default_rng(7).random(4 << 20)\n"
           "mec.push({'a': a}, targets=2)\n"
           "print(bool((mec.pull('a', targets=2)[0] == a).all()))\n"
           "st = client.StatusClient(**kw)\n"
           "print(sorted(st.get_ids()))\n"
           "print(mec._client.peer)\n"
           "for c in (mec, tc, st):\n"
           "    c.close()\n")


def ssh_processes(bed, host):
    found = []
    for pid in bed.pids_on(host):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ssh"):
            found.append(pid)
    return found


def test_clients_on_the_laptop_through_login(bed, tmp_path):
    c = FieldCluster(bed, tmp_path)
    c.env["PLEXA_SSH"] = "ssh -F %s" % bed.ssh_config
    c.env["FIELD_KEY"] = bed.key
    c.ipcluster("start")
    try:
        # straight from the laptop: no route to the controller's address
        direct = bed.run("laptop", ["/usr/bin/python3", "-c",
                                    "from plexa import client\n"
                                    "client.MultiEngineClient(timeout=3)\n"], env=c.env)
        assert direct.returncode != 0 and "ConnectionError" in direct.stderr, direct.stderr
        out = c.python(THROUGH, host="laptop").splitlines()
        assert out[:4] == ["[0, 1, 2, 3]", "True", "True", "[0, 1, 2, 3]"], out
        # the client names the controller as its connection file does
        assert out[4].startswith("10.231.2.1:"), out
        # every client closed: no ssh left on the laptop
        assert wait_for(lambda: not ssh_processes(bed, "laptop"), timeout=10)
        # ipcluster status from the laptop, through login: the status page
        st = c.ipcluster("status", "--sshserver", "root@login", host="laptop")
        assert st.stdout.startswith("cluster 'default' through root@login\n"), st.stdout
        assert re.search(r"engines: +4 registered \[0, 1, 2, 3\]", st.stdout), st.stdout
        assert "tls" in st.stdout
        # its tunnel ended too (ssh may take a moment to act on its SIGTERM
        # on a loaded machine: the promise is that none is left)
        assert wait_for(lambda: not ssh_processes(bed, "laptop"), timeout=10)
        bad = c.ipcluster("stop", "--sshserver", "root@login", host="laptop", check=False)
        assert bad.returncode == 2 and "--sshserver is an option of status" in bad.stderr
    finally:
        c.ipcluster("stop", check=False)


FAIL = ("import os, sys, time\n"
        "from plexa import client\n"
        "t0 = time.monotonic()\n"
        "try:\n"
        "    client.MultiEngineClient(sshserver=sys.argv[1], sshkey=sys.argv[2] or None,\n"
        "                             timeout=10)\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, '|', e)\n"
        "print('%.1f' % (time.monotonic() - t0))\n")


def test_a_tunnel_that_cannot_be_made_says_why(bed, tmp_path):
    c = FieldCluster(bed, tmp_path)
    c.env["PLEXA_SSH"] = "ssh -F %s" % bed.ssh_config
    c.ipcluster("start")
    try:
        other_key = str(tmp_path / "other_key")
        import subprocess
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other_key],
                       check=True)
        # the bed's ssh config names its key for every host: one without it,
        # so that only the key given here is offered
        nokey = str(tmp_path / "ssh_config_nokey")
        with open(bed.ssh_config) as f, open(nokey, "w") as g:
            g.write("".join(line for line in f if "IdentityFile" not in line))
        cases = [("root@login", other_key, "Permission denied"),
                 ("root@nosuchhost.invalid", "", "nosuchhost.invalid"),
                 ("root@node1", "", "Network is unreachable")]     # no route from the laptop
        for server, key, said in cases:
            env = dict(c.env, PLEXA_SSH="ssh -F %s" % nokey)
            p = bed.run("laptop", ["/usr/bin/python3", "-c", FAIL, server, key], env=env)
            assert p.returncode == 0, p.stderr
            assert len(p.stdout.splitlines()) == 2, (server, p.stdout)
            error, seconds = p.stdout.splitlines()
            assert error.startswith("ConnectionError | ssh tunnel through %s failed" % server), \
                error
            assert said in error, error
            assert float(seconds) < 12, (server, seconds)
        p = bed.run("laptop", ["/usr/bin/python3", "-c", FAIL, "-oProxyCommand=x", ""],
                    env=c.env)
        assert "is not a host name" in p.stdout, p.stdout
        assert not ssh_processes(bed, "laptop")
    finally:
        c.ipcluster("stop", check=False)


def test_tunnel_gone_fails_requests_not_hangs(bed, tmp_path):
    c = FieldCluster(bed, tmp_path, hosts="node1:1", engines=1)
    c.env["PLEXA_SSH"] = "ssh -F %s" % bed.ssh_config
    c.env["FIELD_KEY"] = bed.key
    c.ipcluster("start")
    try:
        code = ("import os, signal, time\n"
                "from plexa import client\n"
                "mec = client.MultiEngineClient(sshserver='login', sshkey=os.environ['FIELD_KEY'])\n"
                "print(mec.get_ids())\n"
                "def ppid(p):\n"
                "    try:\n"
                "        with open('/proc/%s/stat' % p) as f:\n"
                "            return int(f.read().rsplit(')', 1)[1].split()[1])\n"
                "    except OSError:\n"
                "        return -1\n"
                "def argv0(p):\n"
                "    try:\n"
                "        with open('/proc/%s/cmdline' % p, 'rb') as f:\n"
                "            return f.read().split(b'\\0')[0]\n"
                "    except OSError:\n"
                "        return b''\n"
                "pids = [int(p) for p in os.listdir('/proc') if p.isdigit()]\n"
                "keepers = [p for p in pids if ppid(p) == os.getpid()]\n"
                "ssh = [p for p in pids if ppid(p) in keepers and argv0(p).endswith(b'ssh')]\n"
                "for p in ssh:\n"
                "    os.kill(p, signal.SIGKILL)\n"
                "t0 = time.monotonic()\n"
                "try:\n"
                "    mec.execute('a = 1')\n"
                "except Exception as e:\n"
                "    print(type(e).__name__)\n"
                "print(len(ssh), time.monotonic() - t0 < 10)\n")
        out = c.python(code, host="laptop").splitlines()
        assert out == ["[0]", "ConnectionError", "1 True"], out
    finally:
        c.ipcluster("stop", check=False)
