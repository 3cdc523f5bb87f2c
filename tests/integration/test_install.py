"""`cmake --install` gives a tree that works from anywhere: the three
commands, the plugins (found relative to the binaries, not the build
tree), libplexa and the Python package."""
import os
import shutil
import subprocess
import sys

from conftest import BUILD, alive, processes_with_env, wait_for


def test_installed_tree_runs_a_cluster(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)], check=True,
                   capture_output=True)
    for name in ("ipcluster", "ipcontroller", "ipengine"):
        assert os.access(prefix / "bin" / name, os.X_OK)
    libdirs = [d for d in prefix.rglob("plexa-transport-tcp.so")]
    assert libdirs, "tcp plugin not installed"
    pkg = prefix / "lib" / "python3" / "dist-packages"
    assert (pkg / "plexa" / "client.py").exists()

    work = tmp_path / "work"          # somewhere unrelated to the source and build trees
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PLX_PLUGIN_PATH", "PLX_BUILD_DIR", "PLEXA_URL")}
    env.update(PATH=f"{prefix / 'bin'}:{env.get('PATH', '')}", PYTHONPATH=str(pkg),
               PLEXA_DIR=str(tmp_path / "plexa"))
    ipcluster = shutil.which("ipcluster", path=env["PATH"])
    assert ipcluster == str(prefix / "bin" / "ipcluster")
    subprocess.run([ipcluster, "start", "-n", "2"], cwd=work, env=env, check=True,
                   capture_output=True, timeout=60)
    try:
        code = ("import plexa, sys\n"
                "from plexa import client\n"
                "assert plexa.__file__.startswith(sys.argv[1]), plexa.__file__\n"
                "mec = client.MultiEngineClient()\n"
                "print(mec.get_ids())\n"
                "print(repr(mec.execute('import os; print(os.getcwd())')))\n")
        p = subprocess.run([sys.executable, "-c", code, str(pkg)], cwd="/", env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "[0, 1]" in p.stdout
        # engines run in the directory ipcluster was started from
        assert f"[0] Out[1]: {work}" in p.stdout
    finally:
        subprocess.run([ipcluster, "stop"], cwd=work, env=env, capture_output=True, timeout=60)
    assert wait_for(lambda: not processes_with_env("PLEXA_DIR", env["PLEXA_DIR"]), timeout=10)


def test_engines_that_cannot_start_are_reported(cluster_factory):
    c = cluster_factory(n=2)
    # Python inside the engines cannot initialise without its standard library
    c.env["PYTHONHOME"] = "/nonexistent-python-home"
    p = c.run("start", "-n", "2", "--timeout", "20", check=False)
    assert p.returncode != 0
    assert "engines exited before registering" in p.stderr, p.stderr
    assert "ipengine-0.out" in p.stderr
    assert wait_for(lambda: not c.pids(), timeout=10), c.pids()
