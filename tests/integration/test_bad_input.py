"""Hostile bytes at the controller port: the bad connection is closed and
logged, everyone else is served as before. Every test runs against a
controller on the default TLS transport (the bytes go inside a TLS session
that pins the controller's certificate, as a real client's would) and on
plain tcp."""
import hashlib
import os
import re
import socket
import ssl
import struct

import pytest

from conftest import Cluster, wait_for
from plexa_testing import field, frame, hello, protocol_version, varint  # noqa: F401
from plexa.error import SecurityError

URL_RE = re.compile(r"plx\+(tcp|tls)://([^:/]+):(\d+)/([0-9a-f]+)(?:\?shm=[\w.-]+)?"
                    r"(?:#sha256=([0-9a-f]{64}))?$")


@pytest.fixture(scope="module", params=["tls", "tcp"])
def cluster(request, tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("plexa"), n=2,
                conf=f"[cluster]\ntransport = {request.param}\n")
    c.start()
    yield c
    c.stop()
    if not wait_for(lambda: not c.pids(), timeout=10):
        c.kill_all()


def endpoint(url):
    m = URL_RE.match(url)
    return m.group(2), int(m.group(3)), m.group(4)


def open_conn(url):
    """A socket to the controller of url: plain, or TLS pinned to the
    fingerprint in the URL."""
    m = URL_RE.match(url)
    s = socket.create_connection((m.group(2), int(m.group(3))))
    if m.group(1) == "tcp":
        return s
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE     # pinned below instead
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    t = ctx.wrap_socket(s)
    assert hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest() == m.group(5)
    return t


def read_frame(sock):
    def readn(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data
    hdr = readn(12)
    assert hdr[:4] == b"PLX1"
    elen, nbufs = struct.unpack("<II", hdr[4:])
    env = readn(elen)
    for _ in range(nbufs):
        (blen,) = struct.unpack("<Q", readn(8))
        readn(blen)
    return env


def closed_by_peer(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except (ConnectionResetError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def still_serves(cluster):
    mec = cluster.client()
    r = mec.execute("x = 6 * 7\nprint(x)")
    text = repr(r)
    return [d["stdout"] for d in r] == ["42\n", "42\n"] and "Out[" in text


def test_random_megabyte_is_closed_and_logged(cluster):
    s = open_conn(cluster.url())
    try:
        s.sendall(os.urandom(1 << 20))
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    assert closed_by_peer(s)
    s.close()
    assert wait_for(lambda: "magic" in cluster.controller_log(), timeout=5)
    assert still_serves(cluster)


def test_truncated_frame_then_close(cluster):
    token = endpoint(cluster.url())[2]
    data = frame(hello(2, token))
    s = open_conn(cluster.url())
    s.sendall(data[: len(data) // 2])
    s.close()
    assert still_serves(cluster)


def test_huge_declared_length_never_sent(cluster):
    token = endpoint(cluster.url())[2]
    s = open_conn(cluster.url())
    # a valid header that announces a 1 GiB buffer, then silence
    s.sendall(b"PLX1" + struct.pack("<II", 0, 1) + struct.pack("<Q", 1 << 30) + b"x" * 100)
    assert still_serves(cluster)
    s.close()


def test_oversized_envelope_is_refused(cluster):
    s = open_conn(cluster.url())
    s.sendall(b"PLX1" + struct.pack("<II", 1 << 30, 0))
    assert closed_by_peer(s)
    s.close()
    assert wait_for(lambda: "exceeds the limit" in cluster.controller_log(), timeout=5)
    assert still_serves(cluster)


def test_wrong_token_gets_reject_and_close(cluster):
    token = endpoint(cluster.url())[2]
    s = open_conn(cluster.url())
    s.settimeout(5)
    s.sendall(frame(hello(2, "0" * 64)))
    env = read_frame(s)
    # Envelope field 12 (reject), wire type 2
    assert varint(12 << 3 | 2) in env
    assert b"invalid capability token" in env
    assert closed_by_peer(s)
    s.close()
    assert wait_for(lambda: "rejected connection" in cluster.controller_log(), timeout=5)
    assert still_serves(cluster)


def test_engine_token_cannot_be_used_as_client(cluster):
    engine_token = endpoint(cluster.url("engine"))[2]
    s = open_conn(cluster.url())
    s.settimeout(5)
    s.sendall(frame(hello(2, engine_token)))
    env = read_frame(s)
    assert b"invalid capability token" in env
    s.close()


def test_garbage_envelope_after_valid_header(cluster):
    s = open_conn(cluster.url())
    s.sendall(frame(b"\xff" * 40))
    assert closed_by_peer(s)
    s.close()
    assert still_serves(cluster)


def test_wrong_token_from_python_client(cluster):
    from plexa import client
    good = cluster.url()
    token = endpoint(good)[2]
    with pytest.raises(SecurityError) as info:
        client.MultiEngineClient(good.replace(token, "ab" * 32))
    assert "invalid capability token" in str(info.value)
