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


# ---- the renderer (plexa._pxrender): exact text of every mode ------------------

BATCH = [(0, "stdout", "hi 0\n"), (0, "stderr", "e0\n"),
         (1, "stdout", "a\nb\n"), (1, "stderr", "e1")]


def render(capsys, events, mode):
    from plexa import _pxrender
    _pxrender.render_outputs(events, mode)
    out = capsys.readouterr()
    return out.out, out.err


def test_render_type_mode(capsys):
    out, err = render(capsys, BATCH, "type")
    # multi-line text starts on the line after its prefix; a last newline is added
    assert out == "[stdout:0] hi 0\n[stdout:1] \na\nb\n"
    assert err == "[stderr:0] e0\n[stderr:1] e1\n"


def test_render_engine_and_order_modes_interleave_streams(capsys):
    """'engine' and 'order' differ from 'type' in the order of the writes:
    seen through one file, the sequence of prefixes."""
    import sys
    from plexa import _pxrender
    for mode, expected in [("engine", ["stdout:0", "stderr:0", "stdout:1", "stderr:1"]),
                           ("type", ["stdout:0", "stdout:1", "stderr:0", "stderr:1"]),
                           ("order", ["stdout:0", "stdout:1", "stderr:0", "stderr:1"])]:
        saved = sys.stdout, sys.stderr
        import io
        both = io.StringIO()
        sys.stdout = sys.stderr = both
        try:
            _pxrender.render_outputs(BATCH, mode)
        finally:
            sys.stdout, sys.stderr = saved
        import re
        assert re.findall(r"\[(std\w+:\d)\]", both.getvalue()) == expected, (mode, both.getvalue())


def test_render_joins_chunks_except_in_order_mode(capsys):
    chunks = [(3, "stdout", "x"), (3, "stdout", "y\n"), (4, "stdout", "z\n")]
    assert render(capsys, chunks, "engine") == ("[stdout:3] xy\n[stdout:4] z\n", "")
    assert render(capsys, chunks, "type") == ("[stdout:3] xy\n[stdout:4] z\n", "")
    # a batch in 'order': engines interleaved by position, each chunk on its own
    assert render(capsys, chunks, "order") == ("[stdout:3] x\n[stdout:4] z\n[stdout:3] y\n", "")


def test_renderer_order_mode_shows_each_event_when_fed(capsys):
    """The incremental contract: in 'order' feed() writes at once; in the
    other modes nothing shows before finish()."""
    from plexa._pxrender import Renderer
    r = Renderer("order")
    r.feed((1, "stdout", "first\n"))
    assert capsys.readouterr().out == "[stdout:1] first\n"
    r.feed((0, "stderr", "oops\n"))
    assert capsys.readouterr().err == "[stderr:0] oops\n"
    r.finish()
    assert capsys.readouterr() == ("", "")
    g = Renderer("engine")
    g.feed((1, "stdout", "one\n"))
    g.feed((0, "stdout", "zero\n"))
    assert capsys.readouterr() == ("", "")
    g.finish()
    assert capsys.readouterr().out == "[stdout:1] one\n[stdout:0] zero\n"
    g.finish()                              # emptied: shows nothing again
    assert capsys.readouterr() == ("", "")


def test_render_displays_outside_a_kernel_print_text_plain(capsys):
    png = {"data": {"text/plain": "<Figure 1>", "image/png": "iVBOR"}, "metadata": {}}
    events = [(0, "display", png), (0, "stdout", "s\n"), (1, "display", png),
              (0, "display", {"data": {"text/plain": "second"}, "metadata": {}})]
    assert render(capsys, events, "type")[0] == (
        "[stdout:0] s\n[output:0]\n<Figure 1>\nsecond\n[output:1]\n<Figure 1>\n")
    assert render(capsys, events, "engine")[0] == (
        "[stdout:0] s\n[output:0]\n<Figure 1>\nsecond\n[output:1]\n<Figure 1>\n")
    assert render(capsys, events, "order")[0] == (
        "[output:0]\n<Figure 1>\n[output:1]\n<Figure 1>\n[stdout:0] s\n[output:0]\nsecond\n")


def test_render_refuses_bad_events_and_modes():
    from plexa._pxrender import Renderer, render_outputs
    with pytest.raises(ValueError, match="one of engine, order, type"):
        Renderer("time")
    with pytest.raises(ValueError, match="kind is 'stdout', 'stderr' or 'display'"):
        render_outputs([(0, "stdin", "x")], "type")
    with pytest.raises(TypeError, match="carries a str"):
        render_outputs([(0, "stdout", b"x")], "type")
    with pytest.raises(TypeError, match="display event carries"):
        render_outputs([(0, "display", "x")], "type")
    with pytest.raises(ValueError, match=r"is \(engine_id, kind, payload\)"):
        render_outputs([(0, "stdout")], "type")


def test_events_from_results_skip_empty_streams():
    from plexa._pxrender import events_from_results
    rs = [{"id": 2, "stdout": "a\n", "stderr": ""}, {"id": 5, "stdout": "", "stderr": "b"}]
    assert events_from_results(rs) == [(2, "stdout", "a\n"), (5, "stderr", "b")]


# ---- option parsing ---------------------------------------------------------------

def test_targets_option_forms():
    from IPython.core.error import UsageError
    from plexa.magics import _parse_targets
    assert _parse_targets("all") == "all"
    assert _parse_targets("0") == 0
    assert _parse_targets("0,1") == [0, 1]
    assert _parse_targets("[0, 2]") == [0, 2]
    assert _parse_targets("::2") == slice(None, None, 2)
    assert _parse_targets("1:") == slice(1, None)
    assert _parse_targets("-1") == -1
    for bad in ("x", "1:2:3:4", "0,a", ""):
        with pytest.raises(UsageError, match="--targets takes"):
            _parse_targets(bad)


def test_px_line_options_only_when_leading():
    from plexa.magics import _split_options
    assert _split_options("a = 5") == (None, "a = 5")
    assert _split_options("--targets 0 a = 5") == ("--targets 0", "a = 5")
    assert _split_options("--targets=::2 --noblock print(1)") == ("--targets=::2 --noblock",
                                                                 "print(1)")
    assert _split_options("-t 1 --group-outputs engine --local x") == (
        "-t 1 --group-outputs engine --local", "x")
    # Python that happens to start with dashes stays Python
    assert _split_options("--x") == (None, "--x")
    assert _split_options("--blocks + 1") == (None, "--blocks + 1")
    assert _split_options("x --targets 0") == (None, "x --targets 0")


def test_new_magics_before_activate_say_how(tmp_path):
    """%%px, %pxresult, %pxconfig (and %px with options) typed before any
    activate() give 0.10's hint, in a fresh IPython."""
    import subprocess
    import sys
    script = tmp_path / "session.py"
    script.write_text(
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "sh.run_cell('%load_ext plexa')\n"
        "for cell in ['%%px\\na = 1\\n', '%pxresult', '%pxconfig --noblock',\n"
        "             '%px --targets 0 a = 1']:\n"
        "    print('-- ' + cell.splitlines()[0])\n"
        "    sh.run_cell(cell)\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=60)
    from plexa.magics import NO_ACTIVE_CONTROLLER
    expected = "".join("-- %s\n%s\n" % (c, NO_ACTIVE_CONTROLLER)
                       for c in ("%%px", "%pxresult", "%pxconfig --noblock",
                                 "%px --targets 0 a = 1"))
    assert p.stdout == expected, p.stdout + p.stderr


def test_activate_suffix_must_be_a_name():
    from plexa import magics
    for bad in ("-a", "a b", 3):
        with pytest.raises(ValueError, match="suffix must be"):
            magics.activate(object(), suffix=bad)
