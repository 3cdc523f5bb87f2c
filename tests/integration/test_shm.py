"""Payload through shared memory: the shm transport on a real cluster.

Clients and engines on the controller's host, running as its user, dial
the controller's shm listener (named in their URLs as ?shm=NAME); payloads
of 256 KiB and more then travel as memfd regions passed by descriptor.
Each test checks the values that arrive and that, once they are dropped,
nothing stays mapped in any process (/proc/PID/maps).
"""
import os
import re
import subprocess
import sys

import numpy
import pytest

from conftest import tool, wait_for

MiB = 1 << 20


def memfd_maps(pid):
    """How many mappings of plexa memory files process pid has."""
    with open(f"/proc/{pid}/maps") as f:
        return sum("/memfd:plexa" in line for line in f)


def nothing_mapped(c):
    return all(memfd_maps(pid) == 0 for pid in c.pids() if os.path.exists(f"/proc/{pid}"))


@pytest.fixture(scope="module")
def mec(clients):
    """The module's MultiEngineClient (conftest: one 2-engine cluster)."""
    return clients[0]


def test_urls_name_the_listener(cluster, mec):
    for role in ("mec", "task", "engine"):
        assert re.search(r"\?shm=plexa-\d+-[0-9a-f]{24}#sha256=", cluster.url(role)), role
    assert "?shm=" not in cluster.url("status")
    assert mec.shared_memory
    assert "listening for clients and engines of this host and user on shm" in \
        cluster.controller_log()


def test_push_pull_through_shared_memory(cluster, mec):
    import plexa
    a = numpy.arange(8 * MiB, dtype=numpy.float64)   # 64 MiB
    mec.push(dict(a=a))
    # On the engines the array is a view of the region (mapped, not copied
    # into the engine's heap), and it is theirs to write.
    mec.execute("import numpy, plexa\n"
                "mapped = sum('/memfd:plexa' in l for l in open('/proc/self/maps'))\n"
                "a[0] = -1.0\n"
                "ok = bool(a[1:].sum() == a[1:].sum() and a[-1] == %d)" % (a.size - 1))
    assert mec.pull("ok") == [True, True]
    assert all(n >= 1 for n in mec.pull("mapped"))
    back = mec.pull("a", targets=[0])[0]
    assert back[0] == -1.0 and numpy.array_equal(back[1:], a[1:])
    assert a[0] == 0.0   # the engine's write did not reach the client's array
    assert plexa.shared_regions() >= 1
    del back
    mec.execute("del a, mapped, ok")
    assert plexa.shared_regions() == 0
    assert wait_for(lambda: nothing_mapped(cluster), timeout=10)


def test_shared_array_is_sent_without_a_copy(cluster, mec):
    """An array made by plexa.shared_array is the region itself: a write the
    client makes after the push shows on an engine that has not written
    those pages (the documented contract of zero-copy sends)."""
    import plexa
    s = plexa.shared_array((1024, 1024), dtype=numpy.int32)
    s[:] = 7
    mec.push(dict(s=s), targets=[0])
    s[0, 0] = 42
    mec.execute("v = int(s[0, 0]); t = int(s[1:].sum())", targets=[0])
    assert mec.pull("v", targets=[0]) == [42]
    assert mec.pull("t", targets=[0]) == [7 * 1023 * 1024]
    # Small shared arrays go by descriptor too (no size threshold).
    small = plexa.shared_array(10, dtype="u1")
    small[:] = 3
    mec.push(dict(small=small), targets=[1])
    assert list(mec.pull("small", targets=[1])[0]) == [3] * 10
    del s, small
    mec.execute("for _n in ('s', 't', 'v', 'small'):\n    globals().pop(_n, None)")
    assert plexa.shared_regions() == 0
    assert wait_for(lambda: nothing_mapped(cluster), timeout=10)


def test_scatter_gather_and_results(cluster, mec):
    x = numpy.random.default_rng(1).random(100 * MiB // 8)
    mec.scatter("x", x)
    mec.execute("y = x * 2")
    y = mec.gather("y")
    assert numpy.array_equal(y, x * 2)
    from plexa import client
    tc = client.TaskClient(profile=cluster.profile)
    try:
        assert tc.shared_memory
        tid = tc.run(client.StringTask("r = numpy.ones(3 * 2**20)", pull="r"))
        r = tc.get_task_result(tid, block=True)
        assert r["r"].sum() == 3 * 2 ** 20
        del r
        # The controller keeps the result (for get_task_result) until it is
        # cleared: a region it holds, released with the result.
        tc.clear()
    finally:
        tc.close()
    del y
    mec.execute("del x, y")
    assert wait_for(lambda: nothing_mapped(cluster), timeout=10)


def test_gather_joins_into_memory_of_its_own(cluster, mec):
    """A big gather through shared memory joins the parts into a pooled
    region of the client's (reading the received regions' files): the
    values are right, in order, for arrays of any rank, the result is the
    caller's to write, a push of it is a copy (what the client writes
    afterwards does not reach the engine), and nothing stays mapped."""
    from plexa import shared
    live = shared.shared_regions()
    x = numpy.arange(6 * MiB // 8, dtype=numpy.float64).reshape(-1, 4)
    mec.scatter("x", x)
    mec.execute("x[0, 0] = -1")      # written on the engines: their own copies
    g = mec.gather("x")
    want = x.copy()
    want[0, 0] = -1
    want[len(x) // 2, 0] = -1
    assert g.shape == x.shape and numpy.array_equal(g, want)
    g[1, 1] = 42.0                   # the caller's own
    mec.push({"g": g}, targets=0)
    g[2, 2] = 43.0
    mec.execute("ok = bool(g[1, 1] == 42.0 and g[2, 2] == 10.0)", targets=0)
    assert mec.pull("ok", targets=0) == [True]
    ints = mec.gather("x")           # again: the pool's region, refilled
    assert numpy.array_equal(ints, want)
    small = numpy.arange(10)
    mec.scatter("s", small)
    assert list(mec.gather("s")) == list(small)   # small joins stay numpy's
    del g, ints
    assert shared.shared_regions() == live
    mec.execute("x = s = None; g = None")
    assert wait_for(lambda: nothing_mapped(cluster), timeout=10)


def test_engine_killed_holding_regions(cluster_factory):
    """An engine that dies holding received regions leaks nothing: its
    mappings go with it, the controller drops its references, and the
    others keep working."""
    c = cluster_factory(n=2)
    c.start()
    mec = c.client()
    try:
        mec.push(dict(a=numpy.ones(4 * MiB)))
        mec.execute("import os; pid = os.getpid()", targets=[0])
        pid = mec.pull("pid", targets=[0])[0]
        os.kill(pid, 9)
        assert wait_for(lambda: mec.get_ids() == [1], timeout=15)
        mec.execute("del a", targets=[1])
        assert wait_for(lambda: nothing_mapped(c), timeout=10)
        mec.push(dict(b=numpy.arange(MiB)), targets=[1])
        assert mec.pull("b", targets=[1])[0][-1] == MiB - 1
    finally:
        mec.close()


def test_profile_key_turns_it_off(cluster_factory):
    c = cluster_factory(n=1, conf="[controller]\nshm = false\n")
    c.start()
    assert "?shm=" not in c.url("mec") and "?shm=" not in c.url("engine")
    mec = c.client()
    try:
        assert not mec.shared_memory
        a = numpy.arange(MiB)
        mec.push(dict(a=a))
        assert numpy.array_equal(mec.pull("a")[0], a)
        assert all(memfd_maps(p) == 0 for p in c.pids())
    finally:
        mec.close()


def test_environment_turns_it_off_for_one_client(cluster):
    """PLEXA_SHM=0: this client uses the network address; the cluster is
    unchanged."""
    code = ("import os, sys, numpy\n"
            "from plexa import client\n"
            "m = client.MultiEngineClient(profile='default')\n"
            "m.push(dict(z=numpy.arange(1 << 20)))\n"
            "print(m.shared_memory, int(m.pull('z')[0][-1]))\n")
    env = dict(os.environ, PLEXA_DIR=cluster.root, PLEXA_SHM="0")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", str((1 << 20) - 1)]
