"""IPython 0.10's fixed-port recipe (parallel_process.txt, "Using the
same FURL files"): `ipcluster local -n 2 -r --client-port=P
--engine-port=Q` puts engines and clients on two ports, and every later
`-r` start takes the same connection files, so a client keeps the file it
has. Also `ipcontroller -r --client-port --engine-port` alone, and 0.10's
-x/-y, which plexa accepts and ignores (tokens stay required)."""
import socket
import subprocess

import pytest

from conftest import processes_with_env, tool, wait_for
from plexa import client
from plexa.error import SecurityError


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def port_of(url):
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def test_reused_files_on_separate_ports_survive_a_restart(cluster_factory):
    c = cluster_factory(n=2)
    cport, eport = free_ports(2)
    args = ("local", "-n", "2", "-r", f"--client-port={cport}", f"--engine-port={eport}",
            "--daemonize")
    p = c.run(*args, "-x", "-y")
    assert "ignoring -x" in p.stderr and "ignoring -y" in p.stderr
    assert port_of(c.url("engine")) == eport
    assert {port_of(c.url(r)) for r in ("mec", "task", "status")} == {cport}
    files = {r: c.url(r) for r in ("engine", "mec", "task", "status")}
    mec = client.MultiEngineClient(c.path("security", "ipcontroller-mec.url"))
    assert mec.get_ids() == [0, 1]
    # the token still decides: a wrong one is refused on either port
    bad = files["mec"].rsplit("/", 1)[0] + "/" + "0" * 64
    bad += "#" + files["mec"].split("#", 1)[1]
    with pytest.raises(SecurityError):
        client.MultiEngineClient(bad)
    mec.close()

    c.stop()
    assert wait_for(lambda: not processes_with_env("PLEXA_DIR", c.root), timeout=10)
    assert {r: c.url(r) for r in files} == files        # kept for the next -r start
    c.run(*args)
    assert {r: c.url(r) for r in files} == files        # and taken again
    again = client.MultiEngineClient(c.path("security", "ipcontroller-mec.url"))
    assert again.get_ids() == [0, 1]
    assert again.execute("x = 1") is not None
    again.close()
    c.stop()
    # a start without -r makes new tokens, and its stop removes them
    c.run("local", "-n", "1", "--daemonize")
    assert c.url("mec") != files["mec"]
    c.stop()
    assert wait_for(lambda: not processes_with_env("PLEXA_DIR", c.root), timeout=10)
    with pytest.raises(FileNotFoundError):
        c.url("mec")


def test_ipcontroller_alone_with_0_10_options(cluster_factory):
    c = cluster_factory(n=1)
    cport, eport = free_ports(2)
    ctl = subprocess.Popen([tool("ipcontroller"), "-r", f"--client-port={cport}",
                            f"--engine-port={eport}"], env=c.env, stderr=subprocess.PIPE,
                           text=True)
    try:
        assert wait_for(lambda: _has(c, "engine"), timeout=10)
        assert port_of(c.url("engine")) == eport and port_of(c.url("mec")) == cport
        eng = subprocess.Popen([tool("ipengine"), "--furl-file",
                                c.path("security", "ipcontroller-engine.url")], env=c.env)
        try:
            mec = client.MultiEngineClient(c.path("security", "ipcontroller-mec.url"))
            assert wait_for(lambda: mec.get_ids() == [0], timeout=10)
            assert mec.pull("id") == [0]
            mec.close()
        finally:
            eng.terminate()
            eng.wait(10)
    finally:
        ctl.terminate()
        err = ctl.communicate(timeout=10)[1]
    assert f"listening on 127.0.0.1:{eport} for engines and 127.0.0.1:{cport} for clients" \
        in err, err
    assert _has(c, "engine")                             # -r: the files stay


def _has(c, role):
    try:
        return bool(c.url(role))
    except OSError:
        return False


def test_bad_client_port_is_named():
    p = subprocess.run([tool("ipcontroller"), "--client-port=70000"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2 and "--client-port: '70000' is not a port number" in p.stderr


def test_the_same_port_for_both_is_one_listener(cluster_factory):
    """0.10's docs give -r "--client-port P and --engine-port P": one port."""
    c = cluster_factory(n=1)
    [port] = free_ports(1)
    c.run("local", "-n", "1", "-r", f"--client-port={port}", f"--engine-port={port}",
          "--daemonize")
    assert {port_of(c.url(r)) for r in ("engine", "mec", "task", "status")} == {port}
    mec = client.MultiEngineClient(c.path("security", "ipcontroller-mec.url"))
    assert mec.get_ids() == [0]
    mec.close()
    assert f"listening on 127.0.0.1:{port} (tls)" in c.controller_log()


def test_client_location_names_the_clients_files(cluster_factory):
    """--client-location (0.10's name) is what clients' files say, with one
    listener as with two; the engine file keeps the listen address."""
    c = cluster_factory(n=1)
    ctl = subprocess.Popen([tool("ipcontroller"), "--client-location=head.example.org"],
                           env=c.env, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: _has(c, "engine"), timeout=10)
        assert c.url("engine").startswith("plx+tls://127.0.0.1:")
        for role in ("mec", "task", "status"):
            assert c.url(role).startswith("plx+tls://head.example.org:"), c.url(role)
        assert port_of(c.url("mec")) == port_of(c.url("engine"))
    finally:
        ctl.terminate()
        ctl.wait(10)
