"""Engine failure is a handled event: requests on a dead engine fail with
EngineError naming it (never a hang), get_ids drops it, and ipcluster's
restart policy replaces crashed engines under new ids."""
import os
import signal
import threading
import time

import pytest

from conftest import wait_for
from plexa.error import CompositeError


def engine_pids(mec):
    r = mec.execute("import os; print(os.getpid())")
    return {d["id"]: int(d["stdout"]) for d in r}


def test_blocking_execute_on_killed_engine_raises_engine_error(cluster_factory):
    c = cluster_factory(n=2)
    c.start()
    mec = c.client()
    pids = engine_pids(mec)
    killer = threading.Timer(0.5, os.kill, (pids[0], signal.SIGKILL))
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(CompositeError) as info:
        mec.execute("import time; time.sleep(30)", targets=0)
    assert time.monotonic() - t0 < 10
    assert "[0:execute]: EngineError" in str(info.value)
    assert mec.get_ids() == [1]
    # the survivor still works
    assert mec.execute("print(6*7)", targets=1)[0]["stdout"] == "42\n"


def test_crashed_engines_are_restarted_with_new_ids(cluster_factory):
    c = cluster_factory(n=2)
    os.makedirs(c.profile_dir, exist_ok=True)
    with open(c.path("cluster.conf"), "w") as f:
        f.write("[cluster]\nrestart_engines = true\nmax_restarts = 1\n")
    c.start()
    mec = c.client()
    pids = engine_pids(mec)
    os.kill(pids[0], signal.SIGKILL)
    assert wait_for(lambda: mec.get_ids() == [1, 2], timeout=15), mec.get_ids()
    assert mec.execute("print(id)", targets=2)[0]["stdout"] == "2\n"
    # the budget is one restart per engine (two in all): a third crash stays dead
    pids = engine_pids(mec)
    os.kill(pids[2], signal.SIGKILL)
    assert wait_for(lambda: mec.get_ids() == [1, 3], timeout=15), mec.get_ids()
    pids = engine_pids(mec)
    os.kill(pids[3], signal.SIGKILL)
    time.sleep(4)
    assert mec.get_ids() == [1]
    with open(c.path("log", "ipcluster.log")) as f:
        assert "restart budget" in f.read()


def test_clean_exit_is_not_restarted(cluster_factory):
    c = cluster_factory(n=1)
    os.makedirs(c.profile_dir, exist_ok=True)
    with open(c.path("cluster.conf"), "w") as f:
        f.write("[cluster]\nrestart_engines = true\n")
    c.start()
    mec = c.client()
    mec.kill(targets=0)
    time.sleep(2.5)
    assert mec.get_ids() == []


def test_dead_engine_output_is_shown_in_the_log(cluster_factory):
    """What an engine wrote outside Python's captured streams (a C
    extension's message, a crash report) goes to log/ipengine-N.out, and
    ipcluster shows its last lines when the engine dies."""
    c = cluster_factory(n=1)
    c.start()
    mec = c.client()
    mec.execute("import os; os.write(2, b'native message before the crash\\n')")
    pid = engine_pids(mec)[0]
    os.kill(pid, signal.SIGKILL)
    log = c.path("log", "ipcluster.log")
    assert wait_for(lambda: "last lines of" in open(log).read(), timeout=10)
    text = open(log).read()
    assert "killed by signal 9 (SIGKILL)" in text
    assert "native message before the crash" in text
    assert "ipengine-0.out" in text
