"""Attacks by another user of the same host (docs/threat-model.md,
"Another local user"): directories they own or may write to, files they
plant (a log symlink, a plexa package in the start directory), the status
page, terminal escapes through `ipcluster status`."""
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import OwnerCluster, as_user, mec_for, tool, wait_until


def test_directory_of_another_user_is_refused(users):
    """The owner is pointed at a PLEXA_DIR the neighbour made."""
    nb, ow = users["neighbour"], users["owner"]
    trap = os.path.join(nb.pw_dir, "shared-plexa")
    os.makedirs(trap, mode=0o755, exist_ok=True)
    os.chown(trap, nb.pw_uid, nb.pw_gid)
    r = as_user(ow, [tool("ipcluster"), "start", "-n", "1"], env={"PLEXA_DIR": trap})
    assert r.returncode != 0
    assert "belongs to uid %d, not to you" % nb.pw_uid in r.stderr + r.stdout
    shutil.rmtree(trap)


def test_directory_others_may_write_is_refused(users):
    ow = users["owner"]
    root = os.path.join(ow.pw_dir, "open-plexa")
    os.makedirs(root, exist_ok=True)
    os.chown(root, ow.pw_uid, ow.pw_gid)
    os.chmod(root, 0o777)
    r = as_user(ow, [tool("ipcluster"), "start", "-n", "1"], env={"PLEXA_DIR": root})
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert "lets other users write there" in out and "chmod go-w" in out
    shutil.rmtree(root)


def test_planted_log_symlink_is_not_followed(users):
    """The neighbour cannot plant anything in the owner's 0700 profile; the
    owner's own symlink (say a restored backup) is not written through
    either."""
    ow = users["owner"]
    c = OwnerCluster(ow, "plexa-symlink")
    os.makedirs(c.path("log"), mode=0o700)
    target = os.path.join(ow.pw_dir, "victim-file")
    with open(target, "w") as f:
        f.write("precious\n")
    os.symlink(target, c.path("log", "ipcontroller.log"))
    for p in (c.path("log"), target):
        os.chown(p, ow.pw_uid, ow.pw_gid)
    os.lchown(c.path("log", "ipcontroller.log"), ow.pw_uid, ow.pw_gid)
    r = c.run("start", "-n", "1", check=False)
    try:
        with open(target) as f:
            assert f.read() == "precious\n"
    finally:
        c.stop()
    assert r.returncode != 0 or True   # refusing to start is fine; writing through is not


def test_planted_plexa_package_does_not_run_in_engines(users):
    ow = users["owner"]
    c = OwnerCluster(ow, "plexa-planted")
    cwd = os.path.join(ow.pw_dir, "work")
    os.makedirs(os.path.join(cwd, "plexa"), exist_ok=True)
    marker = os.path.join(cwd, "planted-ran")
    with open(os.path.join(cwd, "plexa", "__init__.py"), "w") as f:
        f.write("open(%r, 'w').write(__import__('os').environ.get('PLEXA_URL', ''))\n" % marker)
    with open(os.path.join(cwd, "usermod.py"), "w") as f:
        f.write("VALUE = 42\n")
    for dirpath, _d, files in os.walk(cwd):
        os.chown(dirpath, ow.pw_uid, ow.pw_gid)
        for fn in files:
            os.chown(os.path.join(dirpath, fn), ow.pw_uid, ow.pw_gid)
    r = as_user(ow, [tool("ipcluster"), "start", "-n", "1"], env=c.env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    try:
        mec = mec_for(c)
        mec.execute("import usermod; v = usermod.VALUE")     # the user's modules still import
        assert mec.pull("v") == [42]
        mec.close()
        assert not os.path.exists(marker)
    finally:
        c.stop()


def test_status_page_survives_slow_clients(owner_cluster):
    """80 connections that never finish their request: the page still answers."""
    c = owner_cluster()
    with open(c.path("security", "ipcontroller-status.http")) as f:
        url = f.read().strip()
    host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
    slow = []
    try:
        for _ in range(80):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\n")       # and never the rest
            slow.append(s)
        time.sleep(0.2)
        sep = "&" if "?" in url else "?"
        body = urllib.request.urlopen(url.replace("/?", "/status.json?") if "/?" in url
                                      else url + sep, timeout=10).read()
        assert body
    finally:
        for s in slow:
            s.close()


def test_escape_sequences_do_not_reach_the_terminal(owner_cluster):
    """A request whose description (its first line) holds terminal escapes:
    `ipcluster status` shows it with the control characters replaced."""
    c = owner_cluster()
    mec = mec_for(c)
    mec.execute("import time; time.sleep(3)  # \x1b[2J\x1b]0;pwned\x07", block=False)
    time.sleep(0.5)
    r = c.run("status")
    assert "pwned" in r.stdout, r.stdout          # the description is shown ...
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout   # ... made printable
    mec.close()


def test_loopback_name_is_not_loopback(users):
    ow = users["owner"]
    c = OwnerCluster(ow, "plexa-name",
                     conf="[cluster]\ntransport = tcp\nlisten = 127.example.invalid\n")
    r = c.run("start", "-n", "1", check=False)
    c.stop()
    assert r.returncode != 0
    assert "not a loopback address" in r.stderr + r.stdout


def _shm_name(url):
    return url.split("?shm=", 1)[1].split("#", 1)[0]


def test_neighbour_is_refused_by_the_shm_listener(owner_cluster, users):
    """The shm listener is an abstract socket: anyone on the host can
    connect to it. The controller refuses a peer of another uid before it
    reads a byte, even one holding a valid token; with the token the
    neighbour still gets in, but over TLS, as from any other host."""
    c = owner_cluster()
    url = c.url("mec")
    name = _shm_name(url)
    neighbour = users["neighbour"]
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
             "s.connect('\\0' + sys.argv[1])\n"
             "s.settimeout(10)\n"
             "try:\n"
             "    s.sendall(b'PLX1' + bytes(8))\n"
             "    print('read', len(s.recv(100)))\n"
             "except OSError as e:\n"
             "    print('closed', type(e).__name__)\n")
    r = as_user(neighbour, ["/usr/bin/python3", "-c", probe, name])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] in ("read", "closed")
    assert r.stdout.strip() in ("read 0", "closed ConnectionResetError",
                                "closed BrokenPipeError"), r.stdout
    assert wait_until(lambda: "refused a connection from uid %d" % neighbour.pw_uid
                      in c.controller_log())
    # A neighbour given the capability: served, but not through shared memory.
    code = ("import sys\n"
            "from plexa import client\n"
            "m = client.MultiEngineClient(sys.argv[1])\n"
            "print(m.shared_memory, m.get_ids())\n")
    r = as_user(neighbour, ["/usr/bin/python3", "-c", code, url])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "[0,", "1]"]


def test_neighbour_cannot_read_shared_regions(owner_cluster, users):
    """Regions have no name in any file system; the only ways in are the
    owner's descriptors and mappings, which /proc keeps to the owner."""
    c = owner_cluster()
    owner, neighbour = users["owner"], users["neighbour"]
    code = ("import os, sys, numpy\n"
            "from plexa import client\n"
            "m = client.MultiEngineClient(sys.argv[1])\n"
            "assert m.shared_memory\n"
            "m.push(dict(secret=numpy.frombuffer(b'TOPSECRET' * 100000, 'u1')))\n"
            "m.execute('import os; pid = os.getpid()')\n"
            "print(*m.pull('pid'))\n")
    r = as_user(owner, ["/usr/bin/python3", "-c", code, c.url("mec")],
                env={"PLEXA_DIR": c.root})
    assert r.returncode == 0, r.stderr
    engines = [int(p) for p in r.stdout.split()]
    maps = open("/proc/%d/maps" % engines[0]).read()
    assert "/memfd:plexa" in maps            # the value is in a region...
    snoop = ("import os, sys, glob\n"
             "seen = []\n"
             "for pid in sys.argv[1:]:\n"
             "    for pat in ('/proc/%s/fd/*', '/proc/%s/map_files/*'):\n"
             "        try:\n"
             "            paths = glob.glob(pat % pid)\n"
             "        except OSError:\n"
             "            paths = []\n"
             "        for p in paths:\n"
             "            try:\n"
             "                with open(p, 'rb') as f:\n"
             "                    if b'TOPSECRET' in f.read(1 << 20):\n"
             "                        seen.append(p)\n"
             "            except OSError:\n"
             "                pass\n"
             "    try:\n"
             "        open('/proc/%s/mem' % pid, 'rb').read(1)\n"
             "        seen.append('mem')\n"
             "    except OSError:\n"
             "        pass\n"
             "print('seen', len(seen))\n")
    pids = [str(p) for p in engines + [c.controller_pid()]]
    r = as_user(neighbour, ["/usr/bin/python3", "-c", snoop, *pids])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "seen 0"      # ...that the neighbour cannot reach
