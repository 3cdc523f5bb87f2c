"""A site admin's launcher (examples/launcher-plugin), built outside the
source tree against the installed headers with pkg-config, loaded from
PLX_PLUGIN_PATH and chosen by a profile."""
import os
import shutil
import subprocess

import pytest

from conftest import BUILD, tool, wait_for

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "launcher-plugin")


@pytest.fixture(scope="module")
def site_plugin(tmp_path_factory):
    if not shutil.which("make") or not shutil.which("pkg-config"):
        pytest.skip("make / pkg-config not installed (scripts/setup installs them)")
    root = tmp_path_factory.mktemp("site")
    prefix = root / "prefix"
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)], check=True,
                   capture_output=True)
    src = root / "src"                       # a copy: nothing is built in the source tree
    shutil.copytree(SRC, src)
    pc = [str(p.parent) for p in prefix.rglob("plexa.pc")]
    env = dict(os.environ, PKG_CONFIG_PATH=":".join(pc))
    p = subprocess.run(["make", "-C", str(src)], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    # The headers come from the installed tree, through plexa.pc.
    incs = [w[2:] for w in p.stdout.split() if w.startswith("-I")]
    assert incs and all(os.path.realpath(i) == str(prefix / "include") for i in incs), p.stdout
    assert (src / "plexa-launcher-niced.so").exists()
    return str(src)


def test_profile_from_site_plugin(site_plugin, cluster):
    cluster.env["PLX_PLUGIN_PATH"] = site_plugin
    p = subprocess.run([tool("ipcluster"), "profile", "create", "quiet", "--launcher=niced"],
                       env=cluster.env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stdout
    with open(os.path.join(cluster.root, "profile_quiet", "cluster.conf")) as f:
        text = f.read()
    assert "engine_launcher = niced" in text
    assert "[niced]\n" in text and "# niceness = 10\n" in text


def test_cluster_with_site_plugin(site_plugin, cluster):
    cluster.env["PLX_PLUGIN_PATH"] = site_plugin
    cluster.write_conf("[cluster]\nengine_launcher = niced\n[niced]\nniceness = 7\n")
    out = cluster.run("start", "-n", "2").stdout
    assert "with the 'niced' launcher" in out and "2/2 registered" in out
    mec = cluster.client()
    mec.execute("import os; n = os.nice(0)")
    assert mec.pull("n") == [7, 7]
    cluster.run("stop")
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()


def test_site_plugin_keys_are_checked(site_plugin, cluster):
    cluster.env["PLX_PLUGIN_PATH"] = site_plugin
    cluster.write_conf("[cluster]\nengine_launcher = niced\n[niced]\nnicenes = 7\n")
    p = cluster.run("start", check=False)
    assert p.returncode != 0
    assert "cluster.conf:4: [niced] nicenes: unknown key of the niced launcher (did you " \
           "mean 'niceness'?)" in p.stderr, p.stderr
