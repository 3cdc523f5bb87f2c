"""Capability security end to end (docs/security.md): TLS by default,
pinning, one token per capability, revocation, expiry, the read-only
status capability, and the refusals, each with a clear error for the
caller, a log line on the controller, and the cluster serving others."""
import hashlib
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import tool, wait_for
from plexa import _native, client
from plexa.error import SecurityError

FP_RE = re.compile(r"#sha256=([0-9a-f]{64})$")
SHM_RE = re.compile(r"\?shm=[\w.-]+")


def net_url(url):
    """The URL without its shm listener: what the network path is tested
    with (through shared memory a client is authenticated by its uid, and
    there is no certificate to pin; see test_shm.py and tests/security)."""
    return SHM_RE.sub("", url)


def serves(c):
    mec = c.client()
    try:
        return [d["stdout"] for d in mec.execute("print(6 * 7)")] == ["42\n"] * c.n
    finally:
        mec.close()


def cert_fingerprint(c):
    with open(c.path("security", "ipcontroller-cert.pem")) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def log_has(c, text, timeout=5):
    return wait_for(lambda: text in c.controller_log(), timeout=timeout)


@pytest.fixture
def tls_cluster(cluster_factory):
    c = cluster_factory(n=2)
    c.start()
    os.environ["PLEXA_DIR"] = c.root     # profile= lookups in this process
    return c


def test_default_transport_is_tls_and_pinned(tls_cluster):
    c = tls_cluster
    fp = cert_fingerprint(c)
    for role in ("engine", "mec", "task", "status"):
        url = c.url(role)
        assert url.startswith("plx+tls://127.0.0.1:"), url
        assert FP_RE.search(url).group(1) == fp
        assert os.stat(c.path("security", os.path.basename(
            {"engine": "ipcontroller-engine.url", "mec": "ipcontroller-mec.url",
             "task": "ipcontroller-tc.url", "status": "ipcontroller-status.url"}[role]))
        ).st_mode & 0o077 == 0
    assert "(tls)" in c.controller_log()
    assert serves(c)


def test_token_of_another_capability_is_refused(tls_cluster):
    c = tls_cluster
    for wrong in ("task", "status", "engine"):
        with pytest.raises(SecurityError) as info:
            client.MultiEngineClient(c.url(wrong))
        assert "invalid capability token for role 'mec'" in str(info.value)
    assert log_has(c, "rejected connection from 127.0.0.1")
    assert serves(c)


def test_wrong_fingerprint_from_another_profile(cluster_factory):
    a, b = cluster_factory(n=2), cluster_factory(n=1)
    a.start()
    b.start()
    fp_a, fp_b = cert_fingerprint(a), cert_fingerprint(b)
    assert fp_a != fp_b
    with pytest.raises(SecurityError) as info:
        client.MultiEngineClient(net_url(a.url()).replace(fp_a, fp_b))
    msg = str(info.value)
    assert "fingerprint mismatch" in msg and fp_b in msg
    assert log_has(a, "refused this controller's certificate")
    assert serves(a) and serves(b)


def test_plaintext_client_on_the_tls_port(tls_cluster):
    c = tls_cluster
    plain = FP_RE.sub("", net_url(c.url())).replace("plx+tls://", "plx+tcp://")
    with pytest.raises(ConnectionError):
        client.MultiEngineClient(plain, timeout=5)
    assert log_has(c, "a plaintext plexa client connected to the TLS port")
    assert serves(c)


def test_tls_client_on_a_plain_port(cluster_factory):
    c = cluster_factory(n=1, conf="[cluster]\ntransport = tcp\n")
    c.start()
    url = net_url(c.url()).replace("plx+tcp://", "plx+tls://") + "#sha256=" + "ab" * 32
    with pytest.raises(ConnectionError) as info:
        client.MultiEngineClient(url, timeout=5)
    assert "TLS" in str(info.value)
    assert log_has(c, "this is a TLS handshake, a plx+tls client on a plaintext (tcp) port")
    assert serves(c)


def test_world_readable_connection_file_is_refused(tls_cluster):
    c = tls_cluster
    path = c.path("security", "ipcontroller-mec.url")
    os.chmod(path, 0o644)
    try:
        with pytest.raises(Exception) as info:
            client.MultiEngineClient(path)
        assert "chmod 600" in str(info.value) and "mode 644" in str(info.value)
    finally:
        os.chmod(path, 0o600)
    assert serves(c)


def test_revoke_drops_old_connections_and_refuses_the_old_token(tls_cluster):
    c = tls_cluster
    old_url = c.url()
    mec = client.MultiEngineClient(old_url)
    tc = client.TaskClient(profile=c.profile)
    assert mec.get_ids() == [0, 1]
    p = c.run("revoke", "mec")
    assert "revoked the 'mec' capability" in p.stdout
    new_url = c.url()
    assert new_url != old_url
    # the connection made with the old token is dropped, and says why
    with pytest.raises(SecurityError) as info:
        mec.execute("a = 1")
    assert "revoked" in str(info.value)
    # the old token is refused with the reason, the new one works
    with pytest.raises(SecurityError) as info:
        client.MultiEngineClient(old_url)
    assert "was revoked at" in str(info.value)
    assert client.MultiEngineClient(new_url).get_ids() == [0, 1]
    # other capabilities are untouched
    assert tc.get_ids() == [0, 1]
    assert log_has(c, "revoked the 'mec' capability")
    assert "dropped 1 connection" in c.controller_log()


def test_revoke_needs_a_running_controller_and_a_known_capability(cluster_factory):
    c = cluster_factory(n=1, conf="[cluster]\n")
    p = c.run("revoke", "mec", check=False)
    assert p.returncode != 0 and "no controller is running" in p.stderr
    c.start()
    p = c.run("revoke", "everything", check=False)
    assert p.returncode != 0 and "unknown capability 'everything'" in p.stderr


def test_tokens_lists_every_capability(tls_cluster):
    c = tls_cluster
    out = c.run("tokens").stdout
    assert cert_fingerprint(c) in out
    for role in ("engine", "mec", "task", "status"):
        token = re.search(r"/([0-9a-f]{64})[?#]", c.url(role)).group(1)
        assert re.search(rf"^{role}\s+{token}\s+/", out, re.M), out


def test_expired_token(cluster_factory):
    c = cluster_factory(n=1, conf="[controller]\ntoken_lifetime = 2\n")
    c.start()
    old_url, engine_url = c.url(), c.url("engine")
    mec = client.MultiEngineClient(old_url)
    assert wait_for(lambda: c.url() != old_url, timeout=6)
    with pytest.raises(SecurityError) as info:
        client.MultiEngineClient(old_url)
    assert "expired at" in str(info.value)
    # connections made while the token was valid stay; the new file works
    assert mec.get_ids() == [0]
    assert client.MultiEngineClient(c.url()).get_ids() == [0]
    # the engine token never expires: queued batch jobs must still register
    assert c.url("engine") == engine_url
    assert log_has(c, "the 'mec' token expired")


def test_status_capability_is_read_only(tls_cluster):
    c = tls_cluster
    st = client.StatusClient(profile=c.profile)
    assert st.get_ids() == [0, 1]
    assert len(st.queue_status()) == 2
    assert st.task_queue_status() == {"pending": 0, "scheduled": 0, "succeeded": 0,
                                      "failed": 0}
    raw = _native.Client(profile=c.profile, role="status")
    with pytest.raises(Exception) as info:
        raw.execute("import os; os.system('touch /tmp/pwned')")
    assert "read-only" in str(info.value)
    with pytest.raises(Exception) as info:
        raw.submit_push(None, [("a", 1)]).result()
    assert "read-only" in str(info.value)
    with pytest.raises(TypeError):
        raw.submit_tasks([{"kind": "string", "args": ["a = 1", None, None]}])
    status = subprocess.run([tool("ipcluster"), "status", f"--profile={c.profile}"],
                            env=c.env, capture_output=True, text=True, timeout=30)
    assert "2 registered [0, 1]" in status.stdout, status.stdout
    assert serves(c)


def make_cert(tmp_path):
    key, cert = tmp_path / "mitm-key.pem", tmp_path / "mitm-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=mitm", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


class MitmProxy:
    """Terminates TLS with its own certificate on loopback and relays to the
    controller over TLS: what an attacker on the path would run."""

    def __init__(self, cert, key, upstream):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.plaintext = b""
        self.handshake_errors = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, _ = self.sock.accept()
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.handshake_errors.append(e)
            conn.close()
            return
        tls.settimeout(5)
        try:
            self.plaintext += tls.recv(65536)
        except (ssl.SSLError, OSError):
            pass
        tls.close()


def test_man_in_the_middle_is_detected_by_pinning(tls_cluster, tmp_path):
    c = tls_cluster
    cert, key = make_cert(tmp_path)
    m = re.match(r"plx\+tls://([^:/]+):(\d+)/", c.url())
    proxy = MitmProxy(cert, key, (m.group(1), int(m.group(2))))
    via_proxy = net_url(c.url()).replace(f":{m.group(2)}/", f":{proxy.port}/")
    with pytest.raises(SecurityError) as info:
        client.MultiEngineClient(via_proxy, timeout=5)
    assert "fingerprint mismatch" in str(info.value)
    assert wait_for(lambda: proxy.handshake_errors, timeout=5)
    assert proxy.plaintext == b""   # the token never reached the proxy
    assert serves(c)
