"""Direct transfers between the client and the engines, on real clusters
without shared memory.

Pulls and gathers: the controller only issues one-time tickets; each
engine that holds 8 MiB or more serves its values on its own TLS
listener, and the client fetches them side by side. Blocking scatters:
the client serves each engine its piece, and the engine fetches it. Each
test checks the values that arrive and how many bytes the controller
received from or sent to its engines (the status page's bytes_received
and bytes_sent): a transfer through the controller costs it every byte.
"""
import json
import os
import urllib.request

import numpy
import pytest

from plexa import client

MiB = 1 << 20
NO_SHM = "[controller]\nshm = false\n"


def engines_mib(c, what):
    with open(c.path("security", "ipcontroller-status.http")) as f:
        url = f.read().strip().replace("/?", "/status.json?")
    with urllib.request.urlopen(url, timeout=10) as r:
        return sum(e[what] for e in json.load(r)["engines"]) / MiB


def received_from_engines_mib(c):
    return engines_mib(c, "bytes_received")


def sent_to_engines_mib(c):
    return engines_mib(c, "bytes_sent")


def engine_logs(c):
    return "".join(open(os.path.join(c.path("log"), n)).read()
                   for n in os.listdir(c.path("log")) if n.startswith("ipengine"))


def client_for(c, **kw):
    os.environ["PLEXA_DIR"] = c.root
    return client.MultiEngineClient(profile=c.profile, **kw)


@pytest.fixture
def two(cluster_factory):
    c = cluster_factory(n=2, conf=NO_SHM)
    c.start()
    m = client_for(c)
    yield c, m
    m.close()


def test_pull_and_gather_skip_the_controller(two):
    c, m = two
    assert not m.shared_memory
    m.execute("import numpy; a = numpy.arange(4 * 2**20, dtype='f8') + __import__('os').getpid()")
    pids = m.execute("import os; pid = os.getpid()") and m.pull("pid")
    before = received_from_engines_mib(c)
    got = m.pull("a")   # 32 MiB from each
    for g, pid in zip(got, pids):
        assert g.dtype == numpy.float64 and g.shape == (4 * MiB,)
        assert (g == numpy.arange(4 * MiB, dtype="f8") + pid).all()
    m.scatter("x", numpy.arange(8 * MiB, dtype="i8"))
    m.execute("x += 1")
    g = m.gather("x")
    assert (g == numpy.arange(8 * MiB, dtype="i8") + 1).all()
    grew = received_from_engines_mib(c) - before
    assert grew < 8, grew   # 128 MiB came back, none of it through the controller
    assert "serving values to other engines on 127.0.0.1:" in engine_logs(c)


def test_small_values_and_errors_come_as_before(two):
    """Values under 8 MiB an engine answers with, as before; an error is
    the engine's error; a pending pull gets the values as they were."""
    c, m = two
    before = received_from_engines_mib(c)
    m.execute("import numpy; mid = numpy.ones(2**19)")   # 4 MiB: not worth a connection
    assert all((g == 1).all() for g in m.pull("mid"))
    assert received_from_engines_mib(c) - before >= 7
    m.execute("import numpy; big = numpy.ones(2**20); small = 3")
    assert m.pull(["small", "big"], targets=[0])[0][0] == 3
    with pytest.raises(Exception) as e:
        m.pull("nosuchname")
    assert "nosuchname" in str(e.value)
    pr = m.pull(["big", "small"], block=False)
    m.execute("big[:] = 7; small = 4")   # after the pull: it has the values as they were
    for big, small in pr.get_result():
        assert (big == 1).all() and small == 3


def test_a_value_as_it_was_when_pulled(two):
    """The engine serves the value as it was when the pull ran, though
    what runs next changes it in place before the client fetches it."""
    c, m = two
    m.execute("import numpy; a = numpy.zeros(4 * 2**20)")
    pr = m.pull("a", block=False)
    m.execute("a += 1")
    assert all((g == 0).all() for g in pr.get_result())
    assert all((g == 1).all() for g in m.pull("a"))


def test_a_client_can_ask_for_the_controller(cluster_factory):
    c = cluster_factory(n=2, conf=NO_SHM)
    c.start()
    m = client_for(c, direct=False)
    try:
        m.execute("import numpy; a = numpy.ones(2 * 2**20)")
        before = received_from_engines_mib(c)
        assert all((g == 1).all() for g in m.pull("a"))
        assert received_from_engines_mib(c) - before >= 31
    finally:
        m.close()


def test_profile_turns_it_off(cluster_factory):
    c = cluster_factory(n=2, conf=NO_SHM + "direct_transfers = false\n")
    c.start()
    m = client_for(c)
    try:
        m.execute("import numpy; a = numpy.ones(2 * 2**20)")
        before = received_from_engines_mib(c)
        assert all((g == 1).all() for g in m.pull("a"))
        assert received_from_engines_mib(c) - before >= 31
        assert "serving values to other engines" not in engine_logs(c)
    finally:
        m.close()


def test_blocking_scatter_goes_straight_to_the_engines(two):
    """Each engine fetches its piece from the client; the controller sends
    them only the push with a reference."""
    c, m = two
    value = numpy.arange(8 * MiB, dtype="i8")   # 64 MiB
    before = sent_to_engines_mib(c)
    assert m.scatter("x", value) == [None, None]
    sent = sent_to_engines_mib(c) - before
    assert sent < 8, sent
    m.execute("import numpy; ok = isinstance(x, numpy.ndarray) and x.dtype == numpy.int64")
    assert m.pull("ok") == [True, True]
    assert (m.gather("x") == value).all()
    # what the client serves is gone once each engine has it: the same
    # pieces again are served again
    value[:] = 3
    m.scatter("x", value)
    assert (m.gather("x") == 3).all()


def test_small_and_non_blocking_scatters_go_through_the_controller(two):
    c, m = two
    before = sent_to_engines_mib(c)
    pr = m.scatter("y", numpy.ones(4 * MiB), block=False)   # 32 MiB, not waited for
    pr.get_result()
    assert sent_to_engines_mib(c) - before >= 31
    m.scatter("z", list(range(1000)))
    assert m.gather("z") == list(range(1000))
    assert (m.gather("y") == 1).all()


def test_scatter_of_objects_that_pickle(two):
    """Pieces that are not arrays (a list of big bytes) are served too:
    what the engine fetches is what a push would carry."""
    c, m = two
    parts = [bytes([i]) * (5 << 20) for i in range(4)]   # 10 MiB per engine
    before = sent_to_engines_mib(c)
    m.scatter("p", parts)
    assert sent_to_engines_mib(c) - before < 4
    m.execute("ok = all(len(b) == 5 * 2**20 for b in p)")
    assert m.pull("ok") == [True, True]
    assert m.gather("p") == parts
