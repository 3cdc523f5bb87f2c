"""The controller at scale, short form (issue 9; tests/soak/swarm.py is the
long one): bench/engine-swarm registers 512 engine connections speaking the
real protocol over TLS, a multi-engine execute reaches all of them and
comes back, and the cluster stops cleanly."""
import json
import os
import subprocess
import time

import pytest

from conftest import BUILD, wait_for

SWARM = os.path.join(BUILD, "bench", "engine-swarm")


@pytest.mark.skipif(not os.path.exists(SWARM), reason="bench/engine-swarm not built")
def test_512_engines(cluster_factory, tmp_path):
    c = cluster_factory(n=1)
    c.start()
    report = tmp_path / "swarm.json"
    env = dict(c.env, PLX_PLUGIN_PATH=os.path.join(BUILD, "lib", "plexa", "plugins"))
    swarm = subprocess.Popen([SWARM, "--profile", c.profile, "-n", "512", "--report",
                              str(report)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert wait_for(report.exists, timeout=60)
        reg = json.loads(report.read_text())
        assert reg["registered"] == 512
        mec = c.client()
        assert wait_for(lambda: len(mec.get_ids()) == 513, timeout=10)
        r = mec.execute("pass")
        assert len(r) == 513
        assert all(d["input"]["raw"] == "pass" and d["stdout"] == "" for d in r)
        tc_ids = mec.get_ids()
        assert tc_ids == list(range(513))
    finally:
        swarm.terminate()
        out = swarm.communicate(timeout=30)[0]
    assert "answered" in out
    mec = c.client()
    assert wait_for(lambda: mec.get_ids() == [0], timeout=10)   # the swarm left cleanly
