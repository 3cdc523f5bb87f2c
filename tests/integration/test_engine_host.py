"""Engines run inside python3 itself (plexa._enginehost, exec'd by
ipengine) unless PLX_ENGINE_EMBED=1 asks for the embedded interpreter;
both serve the same requests."""
import glob
import os

import pytest

from conftest import BUILD, wait_for

# A sanitizer build has no hosted engine (an instrumented module cannot load
# into python3): there every engine embeds the interpreter.
HOSTED = bool(glob.glob(os.path.join(BUILD, "python", "plexa", "_enginehost*.so")))


def engine_pids(c):
    return [p for p in c.pids() if open(f"/proc/{p}/comm").read().strip() == "ipengine"]


@pytest.mark.parametrize("embed", ["0", "1"])
def test_hosted_and_embedded_engines(cluster_factory, embed):
    if embed == "0" and not HOSTED:
        pytest.skip("this build has no plexa._enginehost (sanitizer build)")
    c = cluster_factory(n=2)
    c.env["PLX_ENGINE_EMBED"] = embed
    c.start()
    assert wait_for(lambda: len(engine_pids(c)) == 2)
    exes = {os.path.realpath(f"/proc/{p}/exe") for p in engine_pids(c)}
    if embed == "0":
        assert exes == {os.path.realpath("/usr/bin/python3")}
    else:
        assert len(exes) == 1 and exes.pop().endswith("/bin/ipengine")
    mec = c.client()
    r = mec.execute("import sys; names = sorted(k for k in globals() if not k.startswith('_'))")
    assert all(d["stderr"] == "" for d in r)
    # the namespace holds what a fresh engine provides, nothing of the bootstrap
    assert mec.pull("names") == [["id", "sys"], ["id", "sys"]]
    assert mec.execute("x = sys.argv")[0]["stderr"] == ""
    assert mec.pull("x") == [["ipengine"], ["ipengine"]]
    mec.execute("exe = sys.executable")
    assert mec.pull("exe") == ["/usr/bin/python3"] * 2
    # threads are named for top -H and perf: Python's and the I/O thread
    for p in engine_pids(c):
        names = sorted(open(t + "/comm").read().strip() for t in glob.glob(f"/proc/{p}/task/*"))
        assert "ipengine" in names and "ipengine-io" in names, names
    # and the client's I/O thread (libplexa) in this process
    mine = [open(t + "/comm").read().strip() for t in glob.glob("/proc/self/task/*")]
    assert "plexa-io" in mine, mine
    mec.close()
