"""Workload 11: plexa serving its clients while hostile peers press on the
controller's port (issue 17's threat model, docs/threat-model.md).

The security suite (tests/security/) checks that each attack is refused and
that the controller goes on serving; how fast it goes on serving is a
figure, so it is measured here, against the issue's targets: get_ids under
100 ms and the controller's RSS growing by less than 64 MiB while frames
announcing 1 GiB arrive without a valid Hello, and execute at 1 to 7 ms
with 3 000 idle connections open."""

import os
import re
import resource
import socket
import ssl
import struct
import sys
import threading
import time

from plxbench.common import W11, Spec, proc_status_mib, reset_peak_rss

# The hand-written wire of the security suite: an attacker's Hello.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'tests'))
from plexa_testing import frame_header, hello  # noqa: E402

FLOOD_CASE = 'get_ids %s, 1 GiB unauthenticated frames arriving'
FLOOD_RSS_CASE = 'controller RSS growth, 1 GiB unauthenticated frames'
IDLE_CASE = "execute mean, %d idle connections"
IDLE_CONNECTIONS = 3000
ATTACKERS = 4


def flood_specs():
    return [Spec(W11, FLOOD_CASE % 'mean', 'plexa', 'mec.get_ids()', 'ms', False),
            Spec(W11, FLOOD_CASE % 'max', 'plexa', 'mec.get_ids()', 'ms', False),
            Spec(W11, FLOOD_RSS_CASE, 'plexa', '', 'MiB', False)]


def idle_spec():
    return Spec(W11, IDLE_CASE % IDLE_CONNECTIONS, 'plexa', "mec.execute('a=1', targets=0)",
                'ms', False)


def specs():
    return flood_specs() + [idle_spec()]


def address(cluster):
    """(host, port) of the cluster's controller, from its mec connection file."""
    path = os.path.join(cluster.profile_dir(), 'security', 'ipcontroller-mec.url')
    with open(path) as f:
        m = re.match(r'plx\+\w+://([^/]+):(\d+)/', f.read().strip())
    if not m:
        raise RuntimeError('%s: no host:port in it' % path)
    return m.group(1).strip('[]'), int(m.group(2))


def attacker_socket(addr, tls):
    raw = socket.create_connection(addr, timeout=10)
    if not tls:
        return raw
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE      # an attacker has no connection file
    return ctx.wrap_socket(raw)


def attack(addr, tls, stop, sent):
    """Again and again: a Hello with a wrong token that announces a 1 GiB
    buffer, then the buffer, 1 MiB at a time, until the controller drops
    the connection."""
    bad = hello(2, '0' * 64)
    head = frame_header(len(bad), 1) + bad + struct.pack('<Q', 1 << 30)
    chunk = b'x' * (1 << 20)
    while not stop.is_set():
        s = None
        try:
            s = attacker_socket(addr, tls)
            s.sendall(head)
            while not stop.is_set():
                s.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass   # dropped, as it should be: connect again
        finally:
            if s is not None:
                s.close()


def flood(cluster, mec, calls):
    """get_ids' mean and max (ms) over `calls` calls while ATTACKERS
    threads stream, and how far the controller's peak RSS rose (MiB)."""
    addr, tls = address(cluster), cluster.transport() == 'tls'
    pid = cluster.controller_pid()
    before = reset_peak_rss(pid)
    stop, sent = threading.Event(), [0]
    threads = [threading.Thread(target=attack, args=(addr, tls, stop, sent), daemon=True)
               for _ in range(ATTACKERS)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)   # the attack under way before the first call
        lat = []
        for _ in range(calls):
            t0 = time.perf_counter()
            if len(mec.get_ids()) < 1:
                raise RuntimeError('get_ids returned no engine')
            lat.append(time.perf_counter() - t0)
            time.sleep(0.005)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    if sent[0] == 0:
        raise RuntimeError('the attackers sent nothing: no attack was measured')
    grew = proc_status_mib(pid, 'VmHWM') - before
    return 1000 * sum(lat) / len(lat), 1000 * max(lat), grew


def idle(cluster, mec, calls):
    """execute's mean (ms) with IDLE_CONNECTIONS connections that opened
    and said nothing (the controller's cap drops the oldest of them)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE_CONNECTIONS + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    addr = address(cluster)
    socks = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            socks.append(socket.create_connection(addr, timeout=10))
        mec.execute('a=1', targets=0)
        t0 = time.perf_counter()
        for _ in range(calls):
            mec.execute('a=1', targets=0)
        return 1000 * (time.perf_counter() - t0) / calls
    finally:
        for s in socks:
            s.close()


def run(R, cluster, mec):
    """Workload 11's rows against a running cluster and its client."""
    quick = R.params.quick
    R.measure(flood_specs(), lambda: flood(cluster, mec, 50 if quick else 200))
    R.measure(idle_spec(), lambda: idle(cluster, mec, 100 if quick else 500))
