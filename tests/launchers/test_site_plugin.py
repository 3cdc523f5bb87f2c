"""A site admin's launchers, built outside the source tree against the
installed files with pkg-config, loaded from PLX_PLUGIN_PATH and chosen
by a profile: examples/launcher-plugin (processes of its own) and
examples/launcher-plugin-batch (a batch system's jobs, on the installed
batch toolkit)."""
import os
import shutil
import subprocess

import pytest

from conftest import BUILD, tool, wait_for

BATCH_SRC = os.path.join(os.path.dirname(__file__), "..", "..", "examples",
                         "launcher-plugin-batch")


def build_installed(tmp_path_factory, name, example, pc_name):
    """Install the build into a fresh prefix, copy example (a directory of
    share/doc/plexa/examples there: what a site admin has) and run its
    Makefile with pkg-config pointed at the prefix. (prefix, the copy, make's
    output)."""
    if not shutil.which("make") or not shutil.which("pkg-config"):
        pytest.skip("make / pkg-config not installed (scripts/setup installs them)")
    root = tmp_path_factory.mktemp(name)
    prefix = root / "prefix"
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)], check=True,
                   capture_output=True)
    src = root / "src"                       # a copy: nothing is built in the source tree
    shutil.copytree(prefix / "share" / "doc" / "plexa" / "examples" / example, src)
    pc = [str(p.parent) for p in prefix.rglob(pc_name)]
    env = dict(os.environ, PKG_CONFIG_PATH=":".join(pc))
    p = subprocess.run(["make", "-C", str(src)], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return prefix, src, p.stdout


@pytest.fixture(scope="module")
def site_plugin(tmp_path_factory):
    prefix, src, out = build_installed(tmp_path_factory, "site", "launcher-plugin", "plexa.pc")
    # The headers come from the installed tree, through plexa.pc.
    incs = [w[2:] for w in out.split() if w.startswith("-I")]
    assert incs and all(os.path.realpath(i) == str(prefix / "include") for i in incs), out
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


# ---- a batch system's launcher on the installed toolkit ---------------------------------

@pytest.fixture(scope="module")
def batch_plugin(tmp_path_factory):
    """examples/launcher-plugin-batch as installed (share/doc/plexa/examples),
    built against the installed prefix alone: its .so and tinyq's commands."""
    with open(os.path.join(BATCH_SRC, "tinyq.c")) as f:
        lines = f.read().count("\n")
    assert lines < 120, lines                # the bound for a batch launcher
    prefix, src, out = build_installed(tmp_path_factory, "batchsite", "launcher-plugin-batch",
                                       "plexa-batch.pc")
    assert str(prefix) in out                # headers and archives of the installed tree
    assert (src / "plexa-launcher-tinyq.so").exists()
    return src


def tinyq_jobs(spool):
    """Jobs of tinyq's spool whose process still runs."""
    out = []
    for name in os.listdir(spool) if os.path.isdir(spool) else []:
        if name.endswith(".pid"):
            with open(os.path.join(spool, name)) as f:
                pid = int(f.read())
            if os.path.exists(f"/proc/{pid}") and \
                    open(f"/proc/{pid}/stat").read().split(") ")[-1][0] != "Z":
                out.append(name[:-4])
    return out


def test_cluster_with_a_batch_plugin_from_the_toolkit(batch_plugin, cluster, tmp_path):
    spool = str(tmp_path / "tinyq-spool")
    cluster.env["PLX_PLUGIN_PATH"] = str(batch_plugin)
    cluster.env["PATH"] = str(batch_plugin / "tinyq") + os.pathsep + cluster.env["PATH"]
    cluster.env["TINYQ_DIR"] = spool
    p = cluster.run("profile", "create", "tq", "--launcher=tinyq", check=False)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(cluster.root, "profile_tq", "cluster.conf")) as f:
        assert "[tinyq]\n" in f.read()
    cluster.write_conf("[cluster]\nengine_launcher = tinyq\nlisten = 127.0.0.1\n"
                       "[tinyq]\npoll_interval = 0.2\n")
    out = cluster.run("start", "-n", "2").stdout
    assert "with the 'tinyq' launcher" in out and "2/2 registered" in out, out
    assert "submitted as job 1" in out, out
    assert tinyq_jobs(spool) == ["1"]
    mec = cluster.client()
    mec.execute("import os; index = os.environ['PLX_ENGINE_INDEX']")
    assert sorted(mec.pull("index")) == ["0", "1"]
    with open(os.path.join(cluster.profile_dir, "log", "ipengine.tinyq")) as f:
        script = f.read()
    assert script.startswith("#!/bin/sh\n#TINYQ name=ipengine\n") and "PLEXA_URL=" not in script
    cluster.run("stop")
    assert wait_for(lambda: tinyq_jobs(spool) == [], 10), tinyq_jobs(spool)
    assert wait_for(lambda: cluster.pids() == [], 10), cluster.pids()
