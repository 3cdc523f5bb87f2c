"""Hostile bytes at the controller port: the bad connection is closed and
logged, everyone else is served as before."""
import os
import re
import socket
import struct

import pytest

from conftest import wait_for
from plexa.error import SecurityError


def endpoint(url):
    m = re.match(r"plx\+tcp://([^:/]+):(\d+)/([0-9a-f]+)", url)
    return m.group(1), int(m.group(2)), m.group(3)


# -- a minimal protobuf encoder for the few fields these tests need -------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def hello(role, token, version=1):
    body = field(1, 0, role) + field(2, 2, token.encode()) + field(3, 0, version)
    return field(1, 0, 1) + field(10, 2, body)   # Envelope{id=1, hello=...}


def frame(envelope, bufs=()):
    out = b"PLX1" + struct.pack("<II", len(envelope), len(bufs)) + envelope
    for b in bufs:
        out += struct.pack("<Q", len(b)) + b
    return out


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
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def still_serves(cluster):
    mec = cluster.client()
    r = mec.execute("x = 6 * 7\nprint(x)")
    text = repr(r)
    return [d["stdout"] for d in r] == ["42\n", "42\n"] and "Out[" in text


def test_random_megabyte_is_closed_and_logged(cluster):
    host, port, _ = endpoint(cluster.url())
    s = socket.create_connection((host, port))
    try:
        s.sendall(os.urandom(1 << 20))
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_peer(s)
    s.close()
    assert wait_for(lambda: "magic" in cluster.controller_log(), timeout=5)
    assert still_serves(cluster)


def test_truncated_frame_then_close(cluster):
    host, port, token = endpoint(cluster.url())
    data = frame(hello(2, token))
    s = socket.create_connection((host, port))
    s.sendall(data[: len(data) // 2])
    s.close()
    assert still_serves(cluster)


def test_huge_declared_length_never_sent(cluster):
    host, port, token = endpoint(cluster.url())
    s = socket.create_connection((host, port))
    # a valid header that announces a 1 GiB buffer, then silence
    s.sendall(b"PLX1" + struct.pack("<II", 0, 1) + struct.pack("<Q", 1 << 30) + b"x" * 100)
    assert still_serves(cluster)
    s.close()


def test_oversized_envelope_is_refused(cluster):
    host, port, _ = endpoint(cluster.url())
    s = socket.create_connection((host, port))
    s.sendall(b"PLX1" + struct.pack("<II", 1 << 30, 0))
    assert closed_by_peer(s)
    s.close()
    assert wait_for(lambda: "exceeds the limit" in cluster.controller_log(), timeout=5)
    assert still_serves(cluster)


def test_wrong_token_gets_reject_and_close(cluster):
    host, port, token = endpoint(cluster.url())
    s = socket.create_connection((host, port))
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
    host, port, _ = endpoint(cluster.url())
    engine_token = endpoint(cluster.url("engine"))[2]
    s = socket.create_connection((host, port))
    s.settimeout(5)
    s.sendall(frame(hello(2, engine_token)))
    env = read_frame(s)
    assert b"invalid capability token" in env
    s.close()


def test_garbage_envelope_after_valid_header(cluster):
    host, port, _ = endpoint(cluster.url())
    s = socket.create_connection((host, port))
    s.sendall(frame(b"\xff" * 40))
    assert closed_by_peer(s)
    s.close()
    assert still_serves(cluster)


def test_wrong_token_from_python_client(cluster):
    from plexa import client
    host, port, _ = endpoint(cluster.url())
    with pytest.raises(SecurityError) as info:
        client.MultiEngineClient(f"plx+tcp://{host}:{port}/{'ab' * 32}")
    assert "invalid capability token" in str(info.value)
