"""The magics in a real Jupyter kernel driven through jupyter_client, reading
its iopub messages with their timestamps: what a notebook front end sees,
and when. A real 2-engine cluster does the work."""
import re
from datetime import timedelta

import pytest

CONNECT = ("from plexa import client\nmec = client.MultiEngineClient()\n"
           "mec.activate()\nmec.get_ids()")


@pytest.fixture
def kc(kernels, tmp_path):
    km = kernels.manager()
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc, code, timeout=60):
    """Run code; the iopub messages it caused, up to its idle status."""
    msg_id = kc.execute(code)
    msgs = []
    while True:
        m = kc.get_iopub_msg(timeout=timeout)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(m)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            while kc.get_shell_msg(timeout=timeout)["parent_header"].get("msg_id") != msg_id:
                pass            # (wait_for_ready's kernel_info replies)
            return msgs


def first(msgs, msg_type):
    for m in msgs:
        if m["msg_type"] == msg_type:
            return m
    raise AssertionError("no %s in %r" % (msg_type, [m["msg_type"] for m in msgs]))


def outputs(msgs):
    """[(msg_type, name or data, date)] of the outputs, in order."""
    out = []
    for m in msgs:
        c = m["content"]
        if m["msg_type"] == "stream":
            out.append(("stream", c["name"], c["text"], m["header"]["date"]))
        elif m["msg_type"] in ("display_data", "execute_result"):
            out.append((m["msg_type"], c["data"], c["metadata"], m["header"]["date"]))
    return out


def test_noblock_returns_at_once_pxresult_waits(kc):
    execute(kc, CONNECT)
    msgs = execute(kc, "%%px --noblock\nimport time\ntime.sleep(2)\nprint('slept', id)")
    started = first(msgs, "execute_input")["header"]["date"]
    res = first(msgs, "execute_result")
    assert re.fullmatch(r"<PendingResult \d+ \(pending\)>", res["content"]["data"]["text/plain"])
    # the cell was done long before the engines
    assert res["header"]["date"] - started < timedelta(seconds=1.5)
    msgs = execute(kc, "%pxresult")
    streams = [m for m in msgs if m["msg_type"] == "stream"]
    assert "".join(m["content"]["text"] for m in streams) == \
        "[stdout:0] slept 0\n[stdout:1] slept 1\n"
    assert {m["content"]["name"] for m in streams} == {"stdout"}
    # ... and %pxresult waited for them
    assert streams[0]["header"]["date"] - started >= timedelta(seconds=1.9)


def test_local_runs_while_the_engines_do(kc):
    """--local: the engines start first, the cell runs here meanwhile, then
    the engines' outputs show: both sleeps overlap."""
    execute(kc, CONNECT)
    msgs = execute(kc, "%%px --local\nimport time\ntime.sleep(1.5)\nprint('done')")
    started = first(msgs, "execute_input")["header"]["date"]
    idle = msgs[-1]["header"]["date"]
    out = [(o[1], o[2]) for o in outputs(msgs)]
    text = "".join(t for _, t in out)
    # here first; then the engines', streamed in the order they came
    assert text.startswith("done\n"), out
    assert sorted(text.splitlines()[1:]) == ["[stdout:0] done", "[stdout:1] done"], out
    assert idle - started >= timedelta(seconds=1.5)
    assert idle - started < timedelta(seconds=2.9), idle - started   # not 1.5 + 1.5


def test_displays_in_a_kernel(kc):
    """Display events go out as display_data, headed by [output:N], with
    the engine in their metadata, in order with the streams around them
    ('engine': each engine's stdout, stderr, then displays)."""
    execute(kc, "from plexa._pxrender import render_outputs")
    fig = "{'data': {'text/plain': 'fig %d', 'text/html': '<b>%d</b>'}, 'metadata': {'k': 1}}"
    code = ("render_outputs([(0, 'stdout', 'a\\n'), (0, 'display', %s), (1, 'display', %s),"
            " (1, 'stderr', 'b\\n')], %r)")
    msgs = execute(kc, code % (fig % (0, 0), fig % (1, 1), "engine"))
    out = [o[:3] for o in outputs(msgs)]
    assert out == [
        ("stream", "stdout", "[stdout:0] a\n"),
        ("display_data", {"text/plain": "[output:0]"}, {"engine": 0}),
        ("display_data", {"text/plain": "fig 0", "text/html": "<b>0</b>"}, {"k": 1, "engine": 0}),
        ("stream", "stderr", "[stderr:1] b\n"),
        ("display_data", {"text/plain": "[output:1]"}, {"engine": 1}),
        ("display_data", {"text/plain": "fig 1", "text/html": "<b>1</b>"}, {"k": 1, "engine": 1}),
    ], out
    dates = [o[3] for o in outputs(msgs)]
    assert dates == sorted(dates)


def test_renderer_fed_live_shows_each_event_when_it_comes(kc):
    """The renderer's incremental contract, in a kernel: events fed one at a
    time from another thread ('order') reach the front end one at a time."""
    code = ("import threading, time\n"
            "from plexa._pxrender import Renderer\n"
            "r = Renderer('order')\n"
            "def feed():\n"
            "    for i in range(3):\n"
            "        r.feed((i % 2, 'stdout', 'tick %d\\n' % i))\n"
            "        time.sleep(0.5)\n"
            "t = threading.Thread(target=feed)\n"
            "t.start(); t.join(); r.finish()")
    out = [o for o in outputs(execute(kc, code)) if o[0] == "stream"]
    assert "".join(o[2] for o in out) == "[stdout:0] tick 0\n[stdout:1] tick 1\n[stdout:0] tick 2\n"
    assert len(out) == 3, out           # three messages, not one at the end
    gaps = [b[3] - a[3] for a, b in zip(out, out[1:])]
    assert all(g >= timedelta(seconds=0.4) for g in gaps), gaps


def test_live_output_display_and_tracebacks_in_a_kernel(kc):
    """Issue 20's checks, as a notebook front end sees them: the first line
    a 2 s %%px cell prints arrives at least 1 s before the cell ends; an
    engine's display(HTML(...)) reaches the kernel as text/html; a remote
    NameError's traceback shows the offending source line."""
    execute(kc, CONNECT)
    msgs = execute(kc, "%%px\nimport time\nfor i in range(4):\n    print('step', i)\n"
                       "    time.sleep(0.5)")
    idle = msgs[-1]["header"]["date"]
    streams = [o for o in outputs(msgs) if o[0] == "stream"]
    assert "".join(o[2] for o in streams).count("step") == 8, streams
    assert idle - streams[0][3] >= timedelta(seconds=1), (streams[0], idle)
    msgs = execute(kc, "%%px --targets 0\nfrom IPython.display import HTML, display\n"
                       "display(HTML('<h3>from an engine</h3>'))")
    html = [o for o in outputs(msgs) if o[0] == "display_data" and "text/html" in o[1]]
    assert [o[1]["text/html"] for o in html] == ["<h3>from an engine</h3>"], outputs(msgs)
    msgs = execute(kc, "%%px --targets 1\nx = 1\ny = undefined_name + x")
    err = first(msgs, "error")["content"]
    tb = "\n".join(err["traceback"])
    assert "NameError" in tb and "y = undefined_name + x" in tb, tb
