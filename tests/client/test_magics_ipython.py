"""The magics in a real IPython shell (InteractiveShell), without engines:
%px typed before activate() names how to activate, %load_ext plexa loads
the magics; and Cluster.status()'s report shows as its lines."""
import pytest

IPython = pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()


def test_px_before_activate_says_how(tmp_path):
    """A fresh IPython session: import plexa.client, type %px before any
    activate(): the answer names how to activate, not IPython's bare
    "not found"."""
    import subprocess
    import sys
    script = tmp_path / "session.py"
    script.write_text(
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "sh.run_cell('from plexa import client')\n"
        "sh.run_cell('%px a = 1')\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=60)
    out = p.stdout + p.stderr
    assert "No Controller is activated" in out, out
    # 0.10's own words, as the tutorial shows them
    assert "Use activate() on a RemoteController object" in out and "not found" not in out


def test_load_ext_plexa(shell, capsys):
    shell.magics_manager.magics["line"].pop("px", None)
    shell._plexa_magics = None
    shell.run_cell("%load_ext plexa")
    assert "px" in shell.magics_manager.magics["line"]
    assert "autopx" in shell.magics_manager.magics["line"]


def test_status_report_shows_its_lines(shell):
    from plexa.cluster import StatusReport
    r = StatusReport("controller: running\nengine 0: registered")
    assert isinstance(r, str) and r.splitlines()[1] == "engine 0: registered"
    assert repr(r) == "controller: running\nengine 0: registered"
    data, _ = shell.display_formatter.format(r)
    assert data["text/plain"] == "controller: running\nengine 0: registered"
