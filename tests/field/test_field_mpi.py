"""MPI across hosts on the field test bed (issue 21): ipcluster on login
starts the engines as one Open MPI job over node1 and node2 (mpiexec
launches its daemons there through ssh); engine ids are MPI ranks, and an
allreduce crosses the cluster network between the nodes.
"""
import shutil

import pytest

from conftest import FieldCluster

MPI_CONF = ("[cluster]\nengine_launcher = mpiexec\nengines = 2\nstart_timeout = 60\n"
            "[mpiexec]\nmpi = mpi4py\n"
            "mpiexec_args = --host 10.231.2.11,10.231.2.12 -x PYTHONPATH -x PLEXA_DIR "
            "--mca oob_tcp_if_include cluster --mca btl_tcp_if_include cluster\n")


def test_engines_as_one_mpi_job_across_two_hosts(bed, tmp_path):
    if not shutil.which("mpiexec"):
        pytest.skip("mpiexec not installed (scripts/setup installs openmpi-bin)")
    pytest.importorskip("mpi4py", reason="scripts/setup installs python3-mpi4py")
    c = FieldCluster(bed, tmp_path)
    with open(c.profile_dir + "/cluster.conf", "w") as f:
        f.write(MPI_CONF)
    # mpiexec's daemons reach the nodes with the bed's ssh names and key
    c.env["OMPI_MCA_plm_rsh_agent"] = "ssh -F %s" % bed.ssh_config
    c.env["TMPDIR"] = str(tmp_path)
    p = c.ipcluster("start")
    try:
        assert "the controller listens on 10.231.2.1" in p.stdout, p.stdout
        out = c.python("from plexa import client\n"
                       "mec = client.MultiEngineClient()\n"
                       "print(sorted(mec.get_ids()))\n"
                       "mec.execute('from mpi4py import MPI; import socket\\n"
                       "r = MPI.COMM_WORLD.Get_rank()\\n"
                       "total = MPI.COMM_WORLD.allreduce(r + 1)')\n"
                       "print(mec.pull('r'), mec.pull('total'))\n")
        assert out == "[0, 1]\n[0, 1] [3, 3]\n", out
        log = c.log("ipcontroller.log")
        assert "registered from 10.231.2.11:" in log and "registered from 10.231.2.12:" in log
    finally:
        c.ipcluster("stop", check=False)
