"""Live output from engines (issue 20) on a real cluster: what a running
execute or mec.map prints reaches the client while it runs, in order,
per engine, with stdout and stderr apart; the result still carries all of
it. Tasks report what they printed (MapTask futures, tc.map elements,
StringTask's TaskResult). A flood of output neither blocks the engine nor
costs anyone else, and a client that stops reading does not grow the
controller.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import cloudpickle
import pytest

from conftest import wait_for
from plexa_testing import rss_mib
from plexa import client

cloudpickle.register_pickle_by_value(sys.modules[__name__])

TICKS = """
import sys, time
for i in range(4):
    print('tick', i, id)
    print('warn', i, file=sys.stderr)
    time.sleep(0.5)
"""


def shout(x):
    print("element", x)
    return x * 10


def test_execute_output_arrives_while_it_runs(clients):
    mec, _tc = clients
    t0 = time.monotonic()
    pr = mec.execute(TICKS, block=False)
    arrived = []
    for piece in pr.iter_outputs(timeout=30):
        arrived.append((time.monotonic() - t0, piece))
    end = time.monotonic() - t0
    pr.get_result()
    # the first line comes at once, not when the 2 s cell ends
    first = min(t for t, (_e, name, _x) in arrived if name == "stdout")
    assert end - first >= 1.0, arrived
    for engine in (0, 1):
        out = "".join(x for _t, (e, n, x) in arrived if e == engine and n == "stdout")
        err = "".join(x for _t, (e, n, x) in arrived if e == engine and n == "stderr")
        assert out == "".join("tick %d %d\n" % (i, engine) for i in range(4))
        assert err == "".join("warn %d\n" % i for i in range(4))
    # the result's view and the live view agree
    assert pr.stdout == ["".join("tick %d %d\n" % (i, e) for i in range(4)) for e in (0, 1)]
    assert pr.stderr == ["warn 0\nwarn 1\nwarn 2\nwarn 3\n"] * 2
    assert [r["stdout"] for r in pr.get_result()] == pr.stdout


def test_stream_outputs_prefixes_by_engine(clients, capsys):
    mec, _tc = clients
    pr = mec.execute("import sys; print('one'); print('a\\nb'); print('bad', file=sys.stderr)",
                     targets=[1], block=False)
    pr.stream_outputs(timeout=30)
    out, err = capsys.readouterr()
    # one coalesced piece per stream here: its lines start after the prefix
    assert out == "[stdout:1] \none\na\nb\n"
    assert err == "[stderr:1] bad\n"


def test_outputs_so_far_while_running(clients):
    mec, _tc = clients
    pr = mec.execute("import time; print('early', id); time.sleep(1.5); print('late', id)",
                     block=False)
    assert wait_for(lambda: len(pr.outputs) == 2, timeout=10)
    assert not pr.done()
    assert sorted(pr.stdout) == ["early 0\n", "early 1\n"]
    pr.get_result()
    assert pr.stdout == ["early 0\nlate 0\n", "early 1\nlate 1\n"]


def test_mec_map_output(clients):
    mec, _tc = clients
    pr = mec.mapper(block=False).map(shout, range(4))
    assert pr.get_result() == [0, 10, 20, 30]
    assert pr.stdout == ["element 0\nelement 1\n", "element 2\nelement 3\n"]


def test_task_output(clients):
    _mec, tc = clients
    f = tc.future(tc.run(client.MapTask(shout, args=(7,))))
    assert f.result(timeout=30) == 70
    assert f.stdout == ["element 7\n"] and f.stderr == [""]
    # each element of a load-balanced map is a task of its own here
    ids = tc.mapper(block=False).map(shout, range(5))
    futures = tc.futures(ids)
    assert [g.result(timeout=30) for g in futures] == [0, 10, 20, 30, 40]
    assert [g.stdout for g in futures] == [["element %d\n" % i] for i in range(5)]
    # the map's own future: one text per task, once done
    assert ids.pending.result(timeout=30) == [0, 10, 20, 30, 40]
    assert ids.pending.stdout == ["element %d\n" % i for i in range(5)]
    tr = tc.run(client.StringTask("import sys; print('st'); print('e', file=sys.stderr); a = 1",
                                  pull="a"), block=True)
    assert (tr.stdout, tr.stderr, tr["a"]) == ("st\n", "e\n", 1)


def ticker(n):
    import sys
    import time
    for i in range(n):
        print("task tick", i)
        print("task warn", i, file=sys.stderr)
        time.sleep(0.4)
    return n


def test_task_output_arrives_while_it_runs(clients):
    _mec, tc = clients
    f = tc.apply_async(ticker, 4)
    t0 = time.monotonic()
    arrived = [(time.monotonic() - t0, piece) for piece in f.iter_outputs(timeout=30)]
    end = time.monotonic() - t0
    assert f.result(timeout=30) == 4
    first = min(t for t, (_e, name, _x) in arrived if name == "stdout")
    assert end - first >= 0.8, arrived
    out = "".join(x for _t, (_e, n, x) in arrived if n == "stdout")
    assert out == "".join("task tick %d\n" % i for i in range(4))
    assert f.stdout == [out]
    assert f.stderr == ["".join("task warn %d\n" % i for i in range(4))]
    # while it runs, stdout holds what came so far
    g = tc.apply_async(ticker, 3)
    assert wait_for(lambda: g.stdout[0].startswith("task tick 0"), timeout=20)
    assert not g.done()
    assert g.result(timeout=30) == 3


def test_another_clients_tasks_print_nothing_here(clients, cluster):
    _mec, tc = clients
    other = client.TaskClient(profile=cluster.profile)
    try:
        tid = other.run(client.MapTask(ticker, args=(2,)))
        assert other.future(tid).result(timeout=30) == 2      # (its submission went out)
        mine = tc.future(tid)            # the same task, through a client that did not submit it
        assert mine.result(timeout=30) == 2
        assert mine.stdout == ["task tick 0\ntask tick 1\n"]   # from the result
        assert tc._client.task_output(tid) is None
        assert other._client.task_output(tid)[1] == "task tick 0\ntask tick 1\n"
    finally:
        other.close()


def test_display_outputs_groups_what_was_printed(clients, capsys):
    mec, tc = clients
    pr = mec.execute("import sys; print('o', id); print('e', id, file=sys.stderr)",
                     block=False)
    pr.display_outputs(groupby="engine")
    out, err = capsys.readouterr()
    assert (out, err) == ("[stdout:0] o 0\n[stdout:1] o 1\n", "[stderr:0] e 0\n[stderr:1] e 1\n")
    f = tc.future(tc.run(client.MapTask(shout, args=(1,))))
    f.display_outputs()
    out, _ = capsys.readouterr()
    assert out in ("[stdout:0] element 1\n", "[stdout:1] element 1\n")


def test_flood_is_not_held_up_and_others_are_served(clients, cluster):
    mec, _tc = clients
    pr = mec.execute("for i in range(600000): print('x' * 30)", targets=[0], block=False)
    other = client.MultiEngineClient(profile=cluster.profile)
    try:
        t0 = time.monotonic()
        assert other.execute("print('still here')", targets=[1])[0]["stdout"] == "still here\n"
        assert time.monotonic() - t0 < 30
    finally:
        other.close()
    res = pr.get_result()
    # the reply keeps 4 MiB of the 18.6 MB (head and tail); the live view saw it go by
    out = res[0]["stdout"]
    assert out.startswith("x" * 30 + "\n") and out.endswith("x" * 30 + "\n")
    assert len(out) < 5 << 20
    assert sum(len(x) for _e, _n, x in pr.outputs) > len(out)


CLIENT = """
import os, sys, time
sys.path[:0] = [p for p in os.environ['PLEXA_PYTHONPATH'].split(':') if p]
from plexa import client
mec = client.MultiEngineClient(profile=sys.argv[1])
pr = mec.execute("for i in range(3000000): print('y' * 30)", targets=[0], block=False)
print('submitted', flush=True)
time.sleep(600)
"""


def test_stopped_client_does_not_grow_the_controller(cluster_factory):
    cluster = cluster_factory(n=2)
    if "ASAN_OPTIONS" in cluster.env:
        # AddressSanitizer keeps freed memory aside (its quarantine, 256 MiB)
        # before reusing it: the ~95 MB of output passing through would grow
        # the RSS whatever the controller keeps.
        cluster.env["ASAN_OPTIONS"] += ":quarantine_size_mb=1"
    cluster.start()
    saved = os.environ.get("PLEXA_DIR")
    os.environ["PLEXA_DIR"] = cluster.root
    try:
        stopped_client_run(cluster)
    finally:
        if saved is None:
            os.environ.pop("PLEXA_DIR", None)
        else:
            os.environ["PLEXA_DIR"] = saved


def stopped_client_run(cluster):
    mec = client.MultiEngineClient(profile=cluster.profile)
    try:
        pids = {p: open("/proc/%d/comm" % p).read().strip() for p in cluster.pids()}
        ctl = next(p for p, name in pids.items() if name == "ipcontroller")
        before = rss_mib(ctl)
        env = dict(os.environ, PLEXA_PYTHONPATH=os.pathsep.join(sys.path))
        p = subprocess.Popen([sys.executable, "-c", CLIENT, cluster.profile], env=env,
                             stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline() == "submitted\n"
            os.kill(p.pid, signal.SIGSTOP)       # reads nothing from now on
            # the engine prints ~95 MB meanwhile; the others are served
            t0 = time.monotonic()
            while time.monotonic() - t0 < 6:
                assert mec.execute("a = 1", targets=[1])[0]["stdout"] == ""
                time.sleep(0.2)
            grown = rss_mib(ctl) - before
            assert grown < 64, \
                "the controller grew by %d MiB for a client that reads nothing" % grown
        finally:
            p.kill()
            p.wait()
        # engine 0 finishes its print loop and serves again
        assert wait_for(lambda: mec.execute("b = 2", targets=[0]) is not None, timeout=120)
    finally:
        mec.close()
