"""The mpiexec launcher against Open MPI's real mpiexec (no daemon: it runs
for the job's lifetime), loopback only."""
import os
import shutil

import pytest

from conftest import cmdlines_containing, wait_for


@pytest.fixture
def openmpi(tmp_path):
    if not shutil.which("mpiexec"):
        pytest.skip("mpiexec not installed (scripts/setup installs openmpi-bin)")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py not installed (scripts/setup installs python3-mpi4py)")
    # Open MPI's session directories go here, not into /tmp.
    tmp = tmp_path / "ompi"
    tmp.mkdir()
    return {"TMPDIR": str(tmp)}


def mpi_conf(mpi="mpi4py", engines=2):
    # Loopback only: Open MPI would otherwise advertise every interface.
    return f"""[cluster]
engine_launcher = mpiexec
engines = {engines}
start_timeout = 40
[mpiexec]
mpiexec_args = --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo
mpi = {mpi}
"""


def test_engine_ids_follow_mpi_ranks(openmpi, cluster):
    cluster.env.update(openmpi)
    cluster.write_conf(mpi_conf())
    out = cluster.run("start").stdout
    assert "2/2 registered" in out
    mec = cluster.client()
    assert mec.get_ids() == [0, 1]
    mec.execute("from mpi4py import MPI; r = MPI.COMM_WORLD.Get_rank(); "
                "size = MPI.COMM_WORLD.Get_size()")
    for eid in (0, 1):
        assert mec.pull("r", targets=eid) == [eid]
    assert mec.pull("size") == [2, 2]
    # 0.10's `mpi` in the namespace, with rank and size.
    mec.execute("mrank, msize = mpi.rank, mpi.size")
    assert mec.pull("mrank") == [0, 1] and mec.pull("msize") == [2, 2]
    mec.execute("total = MPI.COMM_WORLD.allreduce(r + 1)")
    assert mec.pull("total") == [3, 3]
    # The token is not on mpiexec's command line (only the name PLEXA_URL is).
    with open(cluster.path("security", "ipcontroller-engine.url")) as f:
        token = f.read().strip().rsplit("/", 1)[1][:64]
    assert cmdlines_containing(token) == []
    cluster.run("stop")
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()


def test_mpi_none_still_one_job(openmpi, cluster):
    cluster.env.update(openmpi)
    cluster.write_conf(mpi_conf(mpi="none"))
    cluster.run("start")
    mec = cluster.client()
    assert sorted(mec.get_ids()) == [0, 1]
    mec.execute("import os; rank = int(os.environ['OMPI_COMM_WORLD_RANK'])")
    assert sorted(mec.pull("rank")) == [0, 1]
    cluster.run("stop")
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()


def test_failed_mpiexec_is_reported(openmpi, cluster):
    cluster.env.update(openmpi)
    cluster.write_conf(mpi_conf() + "mpiexec = mpiexec --no-such-option\n")
    p = cluster.run("start", check=False)
    assert p.returncode != 0
    assert "mpiexec" in p.stderr and "exited with status" in p.stderr, p.stderr
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()


def test_bad_mpi_value(openmpi, cluster):
    cluster.write_conf(mpi_conf(mpi="pytrilinos"))
    p = cluster.run("start", check=False)
    assert p.returncode != 0
    assert "[mpiexec] mpi: 'pytrilinos' is not none or mpi4py" in p.stderr, p.stderr
    assert wait_for(lambda: cluster.pids() == [], 10)


def test_requested_id_granted_when_free(cluster):
    """The registry side of rank ids, deterministically: an engine asking
    for id 7 gets it; a second one asking for 7 gets the next new id."""
    import subprocess
    from conftest import tool
    cluster.write_conf("[cluster]\nengines = 1\n")
    cluster.run("start")
    with open(cluster.path("security", "ipcontroller-engine.url")) as f:
        url = f.read().strip()
    env = dict(cluster.env, PLEXA_URL=url)
    extra = [subprocess.Popen([tool("ipengine"), "--id", "7"], env=env, cwd=cluster.root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    mec = cluster.client()
    try:
        assert wait_for(lambda: mec.get_ids() == [0, 7], 15), mec.get_ids()
        extra.append(subprocess.Popen([tool("ipengine"), "--id", "7"], env=env, cwd=cluster.root,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        assert wait_for(lambda: mec.get_ids() == [0, 7, 8], 15), mec.get_ids()
        assert mec.pull("id", targets=[7, 8]) == [7, 8]
    finally:
        for p in extra:
            p.terminate()
            p.wait(10)


def test_ipcluster_mpiexec_mode_daemonize(openmpi, cluster):
    """0.10's `ipcluster mpiexec -n 2 --mpi=mpi4py`, detached once registered."""
    cluster.env.update(openmpi)
    cluster.write_conf(mpi_conf(mpi="none").replace("engine_launcher = mpiexec\n", ""))
    out = cluster.run("mpiexec", "-n", "2", "--mpi=mpi4py", "--daemonize").stdout
    assert "starting 2 engines with the 'mpiexec' launcher" in out
    assert "2/2 registered" in out
    mec = cluster.client()
    mec.execute("r = mpi.rank")
    assert mec.pull("r") == [0, 1]
    cluster.run("stop")
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()
