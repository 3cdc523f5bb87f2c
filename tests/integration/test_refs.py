"""plexa.ref: one engine's value pushed to others without passing through
the client, on real clusters.

The controller fetches the value from the engine the ref names (a pull
queued behind what that engine was sent before), and the push's shares wait
in their targets' queues until it has it. On one host the value travels as
a shared-memory region: the controller never maps it for writing nor
copies it, and the targets' arrays are views of one region. Each test
checks the values that arrive; the shared-memory tests also that the
controller did not grow and that nothing stays mapped afterwards.
"""
import json
import os
import signal
import time
import urllib.request

import numpy
import pytest

import plexa
from conftest import running_cluster, wait_for
from plexa_testing import rss_mib
from plexa import client
from plexa.error import CompositeError, InvalidEngineID

MiB = 1 << 20


@pytest.fixture(scope="module")
def cluster4(tmp_path_factory):
    yield from running_cluster(tmp_path_factory.mktemp("refs"), n=4)


@pytest.fixture(scope="module")
def mec(cluster4):
    os.environ["PLEXA_DIR"] = cluster4.root
    m = client.MultiEngineClient(profile=cluster4.profile)
    yield m
    m.close()


def controller_pid(c):
    with open(c.path("pid", "ipcontroller.pid")) as f:
        return int(f.read().split()[0])


def memfd_maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return sum("/memfd:plexa" in line for line in f)


def nothing_mapped(c):
    return all(memfd_maps(pid) == 0 for pid in c.pids() if os.path.exists(f"/proc/{pid}"))


def test_values_of_every_kind(mec):
    mec.execute("import numpy\n"
                "i = 42; s = 'h\\u00e9'; b = b'a\\x00b'; l = [1, (2.5, None)]\n"
                "d = {'k': {1, 2}}; arr = numpy.arange(12.0).reshape(3, 4)[:, ::2]",
                targets=[0])
    names = ("i", "s", "b", "l", "d", "arr")
    assert mec.push({n: plexa.ref(n, engine=0) for n in names}, targets=[1, 2, 3]) == \
        [None, None, None]
    want = mec.pull(list(names), targets=[0])[0]
    for got in mec.pull(list(names), targets=[1, 2, 3]):
        assert got[:5] == want[:5]
        assert numpy.array_equal(got[5], want[5])


def test_renamed_twice_from_two_sources_onto_a_source(mec):
    mec.execute("x = 'zero'", targets=[0])
    mec.execute("x = 'one'", targets=[1])
    mec.push(dict(a=plexa.ref("x", engine=0), b=plexa.ref("x", engine=1),
                  c=plexa.ref("x", engine=0), n=5), targets=[0, 1, 2])
    assert mec.pull(["a", "b", "c", "n"], targets=[0, 1, 2]) == [["zero", "one", "zero", 5]] * 3


def test_order_is_kept_on_sources_and_targets(mec):
    """The fetch runs after what the source was sent before; what the
    targets are sent after the push runs after it."""
    mec.execute("import time; time.sleep(0.5); late = 7", targets=[0], block=False)
    p = mec.push(dict(late=plexa.ref("late", engine=0)), targets=[1, 2], block=False)
    q = mec.execute("twice = late * 2", targets=[1, 2], block=False)
    assert mec.pull("twice", targets=[1, 2]) == [14, 14]
    assert p.get_result() == [None, None]
    q.get_result()


def test_values_as_they_were(mec):
    """What a pull or a ref push sends is the value when it ran, though the
    engine runs the next request (an in-place change) before the bytes
    are all out: an engine runs nothing while its last reply's arrays are
    still being sent, and values served for a ref are copied."""
    mec.execute("import numpy; z = numpy.zeros(8 * 2**20)", targets=[0])
    for i in range(3):
        p = mec.pull("z", targets=[0], block=False)
        r = mec.push(dict(z=plexa.ref("z", engine=0)), targets=[1], block=False)
        q = mec.execute("z += 1", targets=[0], block=False)
        got = p.get_result()[0]
        r.get_result()
        q.get_result()
        assert (got.min(), got.max()) == (i, i)
        mec.execute("lo, hi = float(z.min()), float(z.max())", targets=[1])
        assert mec.pull(["lo", "hi"], targets=[1]) == [[i, i]]
        del got
    mec.execute("z = None")


def test_an_unknown_name_fails_every_target(mec):
    with pytest.raises(CompositeError) as ei:
        mec.push(dict(v=plexa.ref("no_such_name", engine=0)), targets=[1, 2])
    errs = ei.value.elist
    assert [e[3] for e in errs] == [1, 2]
    assert all(e[0] == "NameError" and "no_such_name" in e[1] and "engine 0" in e[1]
               for e in errs)
    # The targets' queues were held and go on.
    assert mec.execute("ok = 1", targets=[1, 2]) is not None
    assert mec.pull("ok", targets=[1, 2]) == [1, 1]


def test_refused_refs_name_the_problem(cluster4, mec):
    with pytest.raises(InvalidEngineID, match=r"plexa.ref\('a', engine=9\) names no registered"):
        mec.push(dict(v=plexa.ref("a", engine=9)), targets=[1])
    with pytest.raises(TypeError, match="only be a value of mec.push itself"):
        mec.push(dict(v=[plexa.ref("a", engine=0)]), targets=[1])
    with pytest.raises(TypeError, match="key must be a non-empty str"):
        plexa.ref("", engine=0)
    with pytest.raises(TypeError, match="engine must be an engine id"):
        plexa.ref("a", engine="0")
    tc = client.TaskClient(profile=cluster4.profile)
    try:
        with pytest.raises(TypeError, match="only be a value of mec.push itself"):
            tc.run(client.MapTask(len, args=(plexa.ref("a", engine=0),)))
    finally:
        tc.close()
    assert repr(plexa.ref("a", engine=3)) == "plexa.ref('a', engine=3)"


def test_cancelled_while_waiting_for_its_values(mec):
    mec.execute("import time; time.sleep(1); slow = 1", targets=[0], block=False)
    p = mec.push(dict(slow=plexa.ref("slow", engine=0)), targets=[1], block=False)
    assert p.cancel()
    assert p.cancelled()
    # Engine 1's queue is not held by the cancelled push.
    t0 = time.time()
    assert mec.execute("after = 2", targets=[1]) is not None
    assert time.time() - t0 < 0.9
    assert mec.pull("after", targets=[1]) == [2]
    mec.execute("pass", targets=[0])


def test_clear_queue_of_the_source(mec):
    # Two requests fill what the controller sends an engine ahead: the
    # fetch waits in the controller's queue, which clear_queue empties.
    for _ in range(2):
        mec.execute("import time; time.sleep(0.3)", targets=[0], block=False)
    p = mec.push(dict(q=plexa.ref("i", engine=0)), targets=[1, 2], block=False)
    mec.clear_queue(targets=[0])
    with pytest.raises(CompositeError, match="QueueCleared"):
        p.get_result()
    assert mec.pull("i", targets=[0]) == [42]


def test_broadcast_through_shared_memory(cluster4, mec):
    """Engine 0's 64 MiB array to three engines: one region, mapped by each
    target, never by the controller for writing, and the controller does
    not grow; dropped, nothing stays mapped."""
    assert mec.shared_memory
    ctl = controller_pid(cluster4)
    base = rss_mib(ctl)
    mec.execute("import numpy; big = numpy.arange(8 * 2**20, dtype=numpy.float64)",
                targets=[0])
    mec.push(dict(big=plexa.ref("big", engine=0)), targets=[1, 2, 3])
    assert rss_mib(ctl) - base < 32
    mec.execute("mapped = sum('/memfd:plexa' in l for l in open('/proc/self/maps'))\n"
                "total = float(big.sum())", targets=[1, 2, 3])
    n = 8 * 2 ** 20
    assert mec.pull("total", targets=[1, 2, 3]) == [float(n * (n - 1) // 2)] * 3
    assert all(m >= 1 for m in mec.pull("mapped", targets=[1, 2, 3]))
    # Copy-on-write: one target's write is its own.
    mec.execute("big[0] = -1.0", targets=[1])
    mec.execute("first = float(big[0])", targets=[0, 1, 2, 3])
    assert mec.pull("first") == [0.0, -1.0, 0.0, 0.0]
    mec.execute("for _n in ('big', 'mapped', 'total', 'first'):\n    globals().pop(_n, None)")
    assert wait_for(lambda: nothing_mapped(cluster4), timeout=10)


def test_source_killed_while_the_push_waits(cluster_factory):
    c = cluster_factory(n=3)
    c.start()
    os.environ["PLEXA_DIR"] = c.root
    m = client.MultiEngineClient(profile=c.profile)
    try:
        pid = m.execute("import os; p = os.getpid()", targets=[0]) and m.pull("p", targets=[0])[0]
        m.execute("import time; time.sleep(30)", targets=[0], block=False)
        p = m.push(dict(v=plexa.ref("p", engine=0)), targets=[1, 2], block=False)
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(CompositeError, match="EngineError"):
            p.get_result(timeout=20)
        assert m.execute("w = 1", targets=[1, 2]) is not None
        assert m.pull("w", targets=[1, 2]) == [1, 1]
    finally:
        m.close()


def hwm_mib(pid):
    """The process's resident high-water mark."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.parametrize("direct", [True, False])
def test_over_the_network(cluster_factory, direct):
    """Without shared memory the value goes from the source engine to each
    target directly (TLS, a one-time ticket each), and the controller
    never holds it; with direct_transfers = false it crosses the
    controller. Either way it arrives the same."""
    conf = "[controller]\nshm = false\n" + ("" if direct else "direct_transfers = false\n")
    c = cluster_factory(n=3, conf=conf)
    key_dirs = set(n for n in os.listdir("/tmp") if n.startswith("plexa-peer-"))
    c.start()
    os.environ["PLEXA_DIR"] = c.root
    m = client.MultiEngineClient(profile=c.profile)
    try:
        assert not m.shared_memory
        ctl = controller_pid(c)
        base = hwm_mib(ctl)
        m.execute("import numpy; a = numpy.arange(12 * 2**20, dtype='i4')", targets=[0])  # 48 MiB
        p = m.push(dict(a=plexa.ref("a", engine=0), n=3), targets=[1, 2], block=False)
        m.execute("a += 7", targets=[0])   # after the push's fetch: the targets do not see it
        p.get_result()
        m.execute("import numpy; ok = bool((a == numpy.arange(12 * 2**20, dtype='i4')).all())", targets=[1, 2])
        assert m.pull(["ok", "n"], targets=[1, 2]) == [[True, 3], [True, 3]]
        grew = hwm_mib(ctl) - base
        # A pull is the value as it was, though the engine changes it in
        # place while the bytes are still on their way.
        p = m.pull("a", targets=[0], block=False)
        m.execute("a += 1", targets=[0])
        got = p.get_result()[0]
        assert (got == numpy.arange(12 * 2**20, dtype="i4") + 7).all()
        del got
        logs = "".join(open(os.path.join(c.path("log"), n)).read()
                       for n in os.listdir(c.path("log")) if n.startswith("ipengine"))
        if direct:
            assert grew < 24, grew
            assert "serving values to other engines on 127.0.0.1:" in logs
            # The source's TLS key was made in a private directory, gone
            # once its listener loaded it.
            assert set(n for n in os.listdir("/tmp") if n.startswith("plexa-peer-")) <= key_dirs
        else:
            assert grew > 40, grew
            assert "serving values to other engines" not in logs
    finally:
        m.close()


def sent_to_engines_mib(c):
    """What the controller has sent its engines (the status page's
    bytes_sent), in MiB."""
    with open(c.path("security", "ipcontroller-status.http")) as f:
        url = f.read().strip().replace("/?", "/status.json?")
    with urllib.request.urlopen(url, timeout=10) as r:
        return sum(e["bytes_sent"] for e in json.load(r)["engines"]) / 2**20


@pytest.mark.parametrize("how", ["tree", "broadcast_min", "untrusted"])
def test_broadcast_goes_as_a_tree(cluster_factory, how):
    """A push of 48 MiB to four engines over the network: as a tree, the
    controller sends it once (the first engine serves two, one of them
    the fourth); as a fan-out, four times: when broadcast_min is above
    it, and when the profile does not trust engines with clients' data
    ([client] trust_engine_pickles = false). What arrives is the same,
    and what the client sends next runs after it."""
    tree = how == "tree"
    conf = "[controller]\nshm = false\n" + {
        "tree": "", "broadcast_min": "broadcast_min = 1G\n",
        "untrusted": "[client]\ntrust_engine_pickles = false\n"}[how]
    c = cluster_factory(n=4, conf=conf)
    c.start()
    os.environ["PLEXA_DIR"] = c.root
    m = client.MultiEngineClient(profile=c.profile)
    try:
        value = numpy.arange(12 * 2**20, dtype="i4")
        m.execute("import numpy")
        before = sent_to_engines_mib(c)
        p = m.push(dict(a=value, tag="t"), block=False)
        m.execute("a += 1")
        p.get_result()
        sent = sent_to_engines_mib(c) - before
        m.execute("ok = bool((a == numpy.arange(12 * 2**20, dtype='i4') + 1).all())")
        assert m.pull(["ok", "tag"]) == [[True, "t"]] * 4
        if tree:
            assert 48 <= sent < 2 * 48, sent
        else:
            assert sent >= 4 * 48, sent
        logs = "".join(open(os.path.join(c.path("log"), n)).read()
                       for n in os.listdir(c.path("log")) if n.startswith("ipengine"))
        assert ("serving values to other engines" in logs) == tree
    finally:
        m.close()
