"""Fixtures of the notebook suite: real Jupyter kernels (ipykernel, started
through jupyter_client) beside a real 2-engine cluster.

The kernel runs this build's plexa with /usr/bin/python3 (the Python that
runs the suite) from a kernelspec written into a temporary directory, so
the machine's own kernelspecs do not matter. Its IPython profile and
connection files live in temporary directories too, and the cluster in a
private PLEXA_DIR (tests/integration/conftest.py's Cluster).
"""
import importlib.util
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
KERNEL_NAME = "plexa-test-python3"


def _integration_conftest():
    """tests/integration/conftest.py under a name of its own (pytest holds
    this directory's as `conftest`)."""
    path = os.path.join(HERE, "..", "integration", "conftest.py")
    spec = importlib.util.spec_from_file_location("plexa_integration_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_it = _integration_conftest()
Cluster, wait_for = _it.Cluster, _it.wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One running 2-engine cluster shared by a test module."""
    yield from _it.running_cluster(tmp_path_factory.mktemp("plexa"))


class Kernels:
    """Starts ipykernel kernels from a private kernelspec, with the
    cluster's PLEXA_DIR in their environment."""

    def __init__(self, root, plexa_dir):
        self.root = root
        kdir = os.path.join(root, "kernels", KERNEL_NAME)
        os.makedirs(kdir)
        self.env = {
            "PLEXA_DIR": plexa_dir,
            # the build's plexa, wherever the kernel's cwd is
            "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in
                                          os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                          if p),
            "IPYTHONDIR": os.path.join(root, "ipython"),
            "JUPYTER_RUNTIME_DIR": os.path.join(root, "runtime"),
            # ipykernel's debugger complains about frozen modules on stderr
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        with open(os.path.join(kdir, "kernel.json"), "w") as f:
            json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher",
                                "-f", "{connection_file}"],
                       "display_name": "plexa tests (%s)" % sys.executable,
                       "language": "python", "env": self.env}, f)
        os.environ["JUPYTER_RUNTIME_DIR"] = self.env["JUPYTER_RUNTIME_DIR"]

    def manager(self, asynchronous=False):
        """A KernelManager (not started) of the private kernelspec; an
        AsyncKernelManager for nbclient."""
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager, KernelManager
        ksm = KernelSpecManager(kernel_dirs=[os.path.join(self.root, "kernels")],
                                ensure_native_kernel=False)
        assert ksm.get_kernel_spec(KERNEL_NAME).argv[0] == sys.executable
        cls = AsyncKernelManager if asynchronous else KernelManager
        return cls(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)


@pytest.fixture(scope="module")
def kernels(cluster, tmp_path_factory):
    saved = os.environ.get("JUPYTER_RUNTIME_DIR")
    yield Kernels(str(tmp_path_factory.mktemp("jupyter")), cluster.root)
    if saved is None:
        os.environ.pop("JUPYTER_RUNTIME_DIR", None)
    else:
        os.environ["JUPYTER_RUNTIME_DIR"] = saved


def run_notebook(kernels, nb, cwd, timeout=120):
    """Execute nb (an nbformat notebook) headless with nbclient in a
    kernel of `kernels`; errors stay in the cells' outputs. Returns nb."""
    from nbclient import NotebookClient
    client = NotebookClient(nb, km=kernels.manager(asynchronous=True), timeout=timeout,
                            allow_errors=True, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def run_cells(kernels, cells, cwd):
    """Execute code cells (sources) as one notebook; each cell's outputs."""
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    run_notebook(kernels, nb, cwd)
    return [c["outputs"] for c in nb.cells]


def streams(outputs):
    """A cell's stream outputs as [(name, text)], consecutive pieces of one
    stream joined (the kernel may cut a stream anywhere)."""
    out = []
    for o in outputs:
        if o["output_type"] != "stream":
            continue
        if out and out[-1][0] == o["name"]:
            out[-1] = (o["name"], out[-1][1] + o["text"])
        else:
            out.append((o["name"], o["text"]))
    return out
