"""ipcluster's bookkeeping commands: profile create, list, status, --help."""
import subprocess

from conftest import tool


def test_profile_create_list_status(cluster_factory):
    c = cluster_factory(n=1)
    p = subprocess.run([tool("ipcluster"), "profile", "create", "batch", "--launcher=pbs"],
                       env=c.env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with open(f"{c.root}/profile_batch/cluster.conf") as f:
        conf = f.read()
    assert "engine_launcher = pbs" in conf and "[pbs]" in conf
    again = subprocess.run([tool("ipcluster"), "profile", "create", "batch"], env=c.env,
                           capture_output=True, text=True)
    assert again.returncode != 0 and "already exists" in again.stderr

    st = c.run("status", check=False)
    assert st.returncode == 3 and "not running" in st.stdout
    c.start()
    st = c.run("status")
    assert "running" in st.stdout and "1 registered [0]" in st.stdout
    ls = subprocess.run([tool("ipcluster"), "list"], env=c.env, capture_output=True, text=True)
    assert "default" in ls.stdout and "running" in ls.stdout
    assert "batch" in ls.stdout and "stopped" in ls.stdout


def test_help_and_bad_usage():
    h = subprocess.run([tool("ipcluster"), "--help"], capture_output=True, text=True)
    assert h.returncode == 0
    for word in ("local", "start", "stop", "status", "--profile", "-n"):
        assert word in h.stdout
    bad = subprocess.run([tool("ipcluster"), "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command" in bad.stderr
    bad = subprocess.run([tool("ipcluster"), "start", "-n", "zero"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "-n" in bad.stderr
    v = subprocess.run([tool("ipcontroller"), "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and "plexa" in v.stdout
