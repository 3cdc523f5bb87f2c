"""`cmake --install` gives a tree that works from anywhere: the three
commands (with man pages), the plugins (found relative to the binaries,
not the build tree), libplexa with its SONAME, headers, pkg-config and
CMake package files, and the Python package. C programs are built against
the installed files only, from directories outside the source tree."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, processes_with_env, wait_for

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
C_EXAMPLES = ("mec_execute", "prime_sum", "numpy_array", "task_loop")
PY_EXAMPLES = ("prime1.py", "prime1_mec.py", "async_tasks.py", "notebooks/seed_tutorial.ipynb")


def sh(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)
    assert p.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def check_tree(prefix):
    for name in ("ipcluster", "ipcontroller", "ipengine"):
        assert os.access(prefix / "bin" / name, os.X_OK)
        man = prefix / "share" / "man" / "man1" / f"{name}.1"
        assert man.exists(), man
        assert f".TH {name.upper()} 1" in man.read_text()
    plugins = prefix / "lib" / "plexa" / "plugins"
    for p in ("plexa-transport-tcp.so", "plexa-transport-tls.so", "plexa-transport-shm.so",
              "plexa-launcher-local.so"):
        assert (plugins / p).exists(), p
    for h in ("client.h", "error.h", "plugin.h", "launcher.h", "transport.h", "version.h"):
        assert (prefix / "include" / "plexa" / h).exists(), h
    lib = prefix / "lib"
    assert os.path.islink(lib / "libplexa.so")
    assert os.readlink(lib / "libplexa.so") == "libplexa.so.0"
    if shutil.which("readelf"):
        dyn = sh(["readelf", "-d", str(lib / "libplexa.so.0")])
        assert "Library soname: [libplexa.so.0]" in dyn
    assert (lib / "pkgconfig" / "plexa.pc").exists()
    for f in ("plexaConfig.cmake", "plexaConfigVersion.cmake", "plexaTargets.cmake"):
        assert (lib / "cmake" / "plexa" / f).exists(), f
    pkg = prefix / "lib" / "python3" / "dist-packages"
    assert (pkg / "plexa" / "client.py").exists()
    # the Python examples beside the C ones, as in the source tree
    examples = prefix / "share" / "doc" / "plexa" / "examples"
    for name in PY_EXAMPLES:
        with open(os.path.join(SRC, "examples", name)) as f:
            assert (examples / name).read_text() == f.read(), name
    # the documentation a site admin writes a launcher or a profile from,
    # and the plugin example, as in the source tree
    doc = prefix / "share" / "doc" / "plexa"
    for name in ("launcher-plugins.md", "batch-launchers.md", "profiles.md", "security.md",
                 "threat-model.md", "python-api.md", "overview.md"):
        with open(os.path.join(SRC, "docs", name)) as f:
            assert (doc / name).read_text() == f.read(), name
    for name in ("Makefile", "README.md", "niced.c"):
        assert (examples / "launcher-plugin" / name).exists(), name
    man = (prefix / "share" / "man" / "man1" / "ipcluster.1").read_text()
    assert "share/doc/plexa" in man and "launcher-plugins.md" in man
    return pkg


def build_c_examples(prefix, work):
    """The C examples as installed (share/doc/plexa/examples/c), built
    twice outside the source tree: with pkg-config, and with
    find_package(plexa). Returns {how: {name: path}}."""
    src = prefix / "share" / "doc" / "plexa" / "examples" / "c"
    for name in C_EXAMPLES:    # the installed copies are the source tree's
        with open(src / f"{name}.c") as a, open(os.path.join(SRC, "examples", "c", f"{name}.c")) as b:
            assert a.read() == b.read(), name
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    env.pop("PKG_CONFIG_LIBDIR", None)
    flags = sh(["pkg-config", "--cflags", "--libs", "plexa"], env=env).split()
    # plexa.pc is relocatable (${pcfiledir}): it names the temporary prefix
    assert any(os.path.samefile(f[2:], prefix / "include") for f in flags if f.startswith("-I"))
    assert "-lplexa" in flags
    out = {"pkg-config": {}, "cmake": {}}
    pc = work / "pkg-config"
    pc.mkdir()
    for name in C_EXAMPLES:
        exe = pc / name
        sh([os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Wextra", "-Werror",
            str(src / f"{name}.c"), *flags, "-lm", "-lev", "-o", str(exe)], cwd=pc, env=env)
        out["pkg-config"][name] = exe
    cm = work / "cmake"
    sh(["cmake", "-S", str(src), "-B", str(cm), f"-DCMAKE_PREFIX_PATH={prefix}"], cwd=work)
    sh(["cmake", "--build", str(cm), "-j2"], cwd=work)
    for name in C_EXAMPLES:
        assert os.access(cm / name, os.X_OK), name
        out["cmake"][name] = cm / name
    return out


def build_launcher_plugin(prefix, work):
    """examples/launcher-plugin (a site launcher), copied outside the source
    tree and built with its Makefile against the installed headers."""
    src = os.path.join(SRC, "examples", "launcher-plugin")
    if not os.path.isdir(src):
        pytest.skip("examples/launcher-plugin is not there")
    dst = work / "launcher-plugin"
    shutil.copytree(src, dst)
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    sh(["make"], cwd=dst, env=env)
    so = [p for p in dst.iterdir() if p.name.startswith("plexa-launcher-") and p.suffix == ".so"]
    assert so, os.listdir(dst)
    if shutil.which("nm"):
        assert "plx_plugin_descriptor" in sh(["nm", "-D", "--defined-only", str(so[0])])
    # and with CMake: find_package(plexa) and the headers-only target
    cm = work / "launcher-plugin-cmake"
    cm.mkdir()
    (cm / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\n"
        "project(niced C)\n"
        "find_package(plexa 0.1 REQUIRED)\n"
        f"add_library(niced MODULE {dst / 'niced.c'})\n"
        "target_link_libraries(niced PRIVATE plexa::headers)\n"
        "file(WRITE ${CMAKE_BINARY_DIR}/plugin_dir.txt ${plexa_PLUGIN_DIR})\n")
    sh(["cmake", "-S", str(cm), "-B", str(cm / "b"), f"-DCMAKE_PREFIX_PATH={prefix}"])
    sh(["cmake", "--build", str(cm / "b")])
    assert any(p.suffix == ".so" for p in (cm / "b").iterdir())
    assert os.path.samefile((cm / "b" / "plugin_dir.txt").read_text(),
                            prefix / "lib" / "plexa" / "plugins")
    return so[0]


def test_installed_tree_runs_a_cluster(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)], check=True,
                   capture_output=True)
    pkg = check_tree(prefix)

    work = tmp_path / "work"          # somewhere unrelated to the source and build trees
    work.mkdir()
    built = build_c_examples(prefix, work)

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PLX_PLUGIN_PATH", "PLX_BUILD_DIR", "PLEXA_URL")}
    env.update(PATH=f"{prefix / 'bin'}:{env.get('PATH', '')}", PYTHONPATH=str(pkg),
               PLEXA_DIR=str(tmp_path / "plexa"))
    ipcluster = shutil.which("ipcluster", path=env["PATH"])
    assert ipcluster == str(prefix / "bin" / "ipcluster")
    for cmd in ("ipcluster", "ipcontroller", "ipengine"):
        helptext = sh([str(prefix / "bin" / cmd), "--help"], env=env)
        assert "Usage:" in helptext
        assert sh([str(prefix / "bin" / cmd), "--version"], env=env).startswith(f"{cmd} (plexa) ")
        # the man page documents every option --help does (they are kept in step)
        man = (prefix / "share" / "man" / "man1" / f"{cmd}.1").read_text().replace("\\-", "-")
        for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", helptext)):
            assert opt in man, f"{cmd}.1 does not document {opt}"
    subprocess.run([ipcluster, "start", "-n", "2"], cwd=work, env=env, check=True,
                   capture_output=True, timeout=60)
    try:
        code = ("import plexa, sys\n"
                "from plexa import client\n"
                "assert plexa.__file__.startswith(sys.argv[1]), plexa.__file__\n"
                "from plexa.cluster import find_ipcluster\n"
                "print('ipcluster at', find_ipcluster())\n"
                "mec = client.MultiEngineClient()\n"
                "print(mec.get_ids())\n"
                "print(repr(mec.execute('import os; print(os.getcwd())')))\n")
        p = subprocess.run([sys.executable, "-c", code, str(pkg)], cwd="/", env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "[0, 1]" in p.stdout
        # plexa.cluster runs the installed ipcluster, not one on PATH
        assert f"ipcluster at {prefix / 'bin' / 'ipcluster'}\n" in p.stdout, p.stdout
        # engines run in the directory ipcluster was started from
        assert f"[0] Out[1]: {work}" in p.stdout

        # the C examples, built against the installed library, against it;
        # the pkg-config build finds libplexa like any library outside the
        # default search path
        cenv = dict(env, LD_LIBRARY_PATH=str(prefix / "lib"))
        out = sh([str(built["pkg-config"]["numpy_array"])], cwd="/", env=cenv)
        assert out.rstrip().endswith("numpy_array: OK"), out
        out = sh([str(built["cmake"]["prime_sum"]), "30000", "6"], cwd="/", env=env)
        assert "Sums agree: 6 values" in out, out
        out = sh([str(built["cmake"]["numpy_array"])], cwd="/", env=env)
        assert "engine 0 sees: ndarray float64 (3, 4)" in out, out
        out = sh([str(built["pkg-config"]["task_loop"]), "4"], cwd="/", env=cenv)
        assert "task_loop: 4 tasks done, results agree" in out, out
    finally:
        subprocess.run([ipcluster, "stop"], cwd=work, env=env, capture_output=True, timeout=60)
    assert wait_for(lambda: not processes_with_env("PLEXA_DIR", env["PLEXA_DIR"]), timeout=10)


def test_launcher_plugin_example_runs_an_installed_cluster(tmp_path):
    """The site launcher example, built against the installed headers,
    runs the engines of the installed ipcluster; a C program built against
    the installed libplexa sees them."""
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)], check=True,
                   capture_output=True)
    work = tmp_path / "work"
    work.mkdir()
    so = build_launcher_plugin(prefix, work)
    mec_execute = build_c_examples(prefix, work)["cmake"]["mec_execute"]

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PLX_BUILD_DIR", "PLEXA_URL")}
    env.update(PLX_PLUGIN_PATH=str(so.parent), PLEXA_DIR=str(tmp_path / "plexa"))
    ipcluster = str(prefix / "bin" / "ipcluster")
    profile = tmp_path / "plexa" / "profile_quiet"
    profile.mkdir(parents=True, mode=0o700)
    (profile / "cluster.conf").write_text("[cluster]\nengine_launcher = niced\n"
                                          "[niced]\nniceness = 7\n")
    sh([ipcluster, "start", "-n", "2", "--profile=quiet"], cwd=work, env=env, timeout=60)
    try:
        url = profile / "security" / "ipcontroller-mec.url"
        out = sh([str(mec_execute), "import os; print(os.nice(0))", str(url)], cwd="/", env=env,
                 timeout=60)
        assert out.count("Out[1]: 7") == 2, out
    finally:
        subprocess.run([ipcluster, "stop", "--profile=quiet"], cwd=work, env=env,
                       capture_output=True, timeout=60)
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
