"""plexa.cluster.Cluster: a cluster started and stopped from Python, the
way ipyparallel's Cluster API is used, against real processes."""
import os
import stat

import pytest

from conftest import processes_with_env, wait_for
from plexa.cluster import Cluster, ClusterError, find_ipcluster


def gone(root):
    return wait_for(lambda: not processes_with_env("PLEXA_DIR", str(root)), timeout=10)


def test_with_block_starts_ready_engines_and_stops_everything(tmp_path):
    root = tmp_path / "plexa"
    with Cluster(n=3, plexa_dir=root) as c:
        assert "cluster ready: 3 engines" in c.output
        assert c.running
        mec = c.client()
        assert mec.get_ids() == [0, 1, 2]           # every engine, at once
        assert mec.pull("id") == [0, 1, 2]
        tc = c.task_client()
        assert tc.map(lambda x: x * x, range(10)) == [x * x for x in range(10)]
        assert c.status_client().get_ids() == [0, 1, 2]
        assert "3 registered" in c.status()
        assert os.path.exists(c.connection_file("mec"))
    assert not c.running
    assert gone(root)
    # the environment of the caller was left alone
    assert os.environ.get("PLEXA_DIR") != str(root)


def test_failed_start_raises_ipclusters_words_and_leaves_nothing(tmp_path):
    root = tmp_path / "plexa"
    prof = root / "profile_broken"
    prof.mkdir(parents=True, mode=0o700)
    (prof / "cluster.conf").write_text("[cluster]\nengine_lancher = local\n")
    c = Cluster(n=2, profile="broken", plexa_dir=root)
    with pytest.raises(ClusterError) as e:
        c.start()
    assert "engine_lancher" in str(e.value), str(e.value)
    assert not c.running
    assert gone(root)


def test_exception_in_block_still_stops_the_cluster(tmp_path):
    root = tmp_path / "plexa"
    with pytest.raises(ZeroDivisionError):
        with Cluster(n=1, launcher="local", plexa_dir=root, timeout=30) as c:
            assert c.client().get_ids() == [0]
            1 / 0
    assert gone(root)


def test_second_start_of_a_running_profile_is_refused(tmp_path):
    root = tmp_path / "plexa"
    first = Cluster(n=1, plexa_dir=root).start()
    try:
        with pytest.raises(ClusterError) as e:
            Cluster(n=1, plexa_dir=root).start()
        assert "already running" in str(e.value), str(e.value)
        assert first.client().get_ids() == [0]      # the first one is untouched
    finally:
        first.stop()
    assert gone(root)
    first.stop()                                     # stopping a stopped cluster is fine


def test_bad_arguments_are_named():
    for kwargs, word in (({"n": 0}, "n must be"), ({"n": True}, "n must be"),
                         ({"launcher": "condor"}, "launcher must be"),
                         ({"profile": "a/b"}, "profile must be")):
        with pytest.raises(ValueError) as e:
            Cluster(**kwargs)
        assert word in str(e.value)
    with pytest.raises(ValueError):
        Cluster().connection_file("root")


def test_ipcluster_is_ours_not_the_first_on_path(tmp_path, monkeypatch):
    here = find_ipcluster()
    assert os.path.basename(here) == "ipcluster" and os.access(here, os.X_OK)
    # another program called ipcluster first on PATH (ipyparallel's) is ignored
    fake = tmp_path / "ipcluster"
    fake.write_text("#!/bin/sh\nexit 99\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert find_ipcluster() == here
    monkeypatch.setenv("PLEXA_IPCLUSTER", str(tmp_path / "missing"))
    with pytest.raises(ClusterError) as e:
        find_ipcluster()
    assert "PLEXA_IPCLUSTER" in str(e.value)


def test_add_engines_to_a_running_cluster(tmp_path):
    """ipyparallel's `ipcluster engines`: more engines join the cluster that
    runs, with its launcher, and ipcluster stop takes them down too."""
    root = tmp_path / "plexa"
    with Cluster(n=1, plexa_dir=root) as c:
        mec = c.client()
        assert mec.get_ids() == [0]
        c.add_engines(2)
        assert "2/2 more registered" in c.output and c.n == 3
        assert mec.get_ids() == [0, 1, 2]
        assert sorted(mec.pull("id")) == [0, 1, 2]
        # engine numbering goes on across starts: unique indices, and a log
        # file each (the second start's engines used to be 0 and 1 again)
        mec.execute("import os; index = os.environ['PLX_ENGINE_INDEX']")
        assert sorted(mec.pull("index")) == ["0", "1", "2"]
        logs = sorted(n for n in os.listdir(root / "profile_default" / "log")
                      if n.startswith("ipengine-") and n.endswith(".out"))
        assert logs == ["ipengine-0.out", "ipengine-1.out", "ipengine-2.out"], logs
        with pytest.raises(ValueError):
            c.add_engines(0)
    assert gone(root)
    with pytest.raises(ClusterError) as e:
        c.add_engines(1)
    assert "no cluster is running" in str(e.value)


def test_async_with_starts_and_stops_while_the_loop_runs(tmp_path):
    """`async with Cluster(...)`: ipcluster runs as an asyncio subprocess, so
    the event loop goes on serving other coroutines while engines start."""
    import asyncio
    root = tmp_path / "plexa"
    ticks = []

    async def ticker():
        while True:
            ticks.append(1)
            await asyncio.sleep(0.01)

    async def main():
        t = asyncio.ensure_future(ticker())
        async with Cluster(n=2, plexa_dir=root) as c:
            started_ticks = len(ticks)
            assert "cluster ready: 2 engines" in c.output
            assert c.client().get_ids() == [0, 1]
        t.cancel()
        return c, started_ticks

    c, started_ticks = asyncio.run(main())
    # the loop ticked while ipcluster started the cluster (it takes well
    # over 10 ms), which a blocking start() would have prevented
    assert started_ticks > 1, started_ticks
    assert not c.running
    assert gone(root)


def test_async_failed_start_and_exception_in_block(tmp_path):
    import asyncio
    root = tmp_path / "plexa"
    prof = root / "profile_broken"
    prof.mkdir(parents=True, mode=0o700)
    (prof / "cluster.conf").write_text("[cluster]\nengine_lancher = local\n")

    async def broken():
        async with Cluster(n=1, profile="broken", plexa_dir=root):
            pass

    with pytest.raises(ClusterError) as e:
        asyncio.run(broken())
    assert "engine_lancher" in str(e.value)

    async def raising():
        async with Cluster(n=1, plexa_dir=root) as c:
            assert c.client().get_ids() == [0]
            1 / 0

    with pytest.raises(ZeroDivisionError):
        asyncio.run(raising())
    assert gone(root)
