"""The magics in real Jupyter kernels, notebooks executed headless with
nbclient against a real 2-engine cluster: every %%px option, %pxresult,
%pxconfig, suffixed magics, %autopx and the hint before activate(), each
checked by the exact text the kernel sent (stream names and prefixes)."""
import re

from conftest import run_cells, streams

HINT = ("\nError:  No Controller is activated\n"
        "Use activate() on a RemoteController object to activate it for magics.\n\n")
CONNECT = ("from plexa import client\nmec = client.MultiEngineClient()\n"
           "mec.activate()\nmec.get_ids()")
# Grouped output is deterministic; live output (--stream, the default when
# blocking) comes in arrival order, which test_stream checks on its own.
GROUPED = CONNECT.replace("mec.get_ids()",
                          "get_ipython().run_line_magic('pxconfig', '--no-stream')\n"
                          "mec.get_ids()")
# stdout and stderr on every engine ('id' is the engine's id there)
BOTH = "%%px{}\nimport sys\nprint('out', id)\nprint('err', id, file=sys.stderr)"


def result(outputs):
    """The cell's Out[] (execute_result) text, or None."""
    rs = [o for o in outputs if o["output_type"] == "execute_result"]
    assert len(rs) <= 1, outputs
    return rs[0]["data"]["text/plain"] if rs else None


def error(outputs):
    es = [o for o in outputs if o["output_type"] == "error"]
    assert len(es) == 1, outputs
    return es[0]


def usage_error(outputs):
    """The message of a UsageError (IPython writes it to stderr)."""
    assert len(outputs) == 1 and outputs[0]["output_type"] == "stream" and \
        outputs[0]["name"] == "stderr" and outputs[0]["text"].startswith("UsageError: "), outputs
    return outputs[0]["text"]


def lines_by_stream(outputs):
    """{stream name: sorted lines}: what arrived, whatever the order."""
    got = {}
    for name, text in streams(outputs):
        got.setdefault(name, []).extend(text.splitlines())
    return {name: sorted(lines) for name, lines in got.items()}


def stdout(outputs):
    s = streams(outputs)
    assert all(name == "stdout" for name, _ in s), outputs
    return "".join(text for _, text in s)


def test_hint_before_activate(kernels, tmp_path):
    cells = ["%load_ext plexa", "%%px\na = 1", "%px a = 1", "%pxresult", "%pxconfig --noblock",
             "%px --targets 0 a = 1", "%autopx", "%result"]
    out = run_cells(kernels, cells, tmp_path)
    assert out[0] == []
    for cell, o in zip(cells[1:], out[1:]):
        if cell == "%autopx":
            assert stdout(o) == ("No active RemoteController found, use "
                                 "RemoteController.activate().\n"), o
        else:
            assert stdout(o) == HINT, (cell, o)
            assert result(o) is None


def test_px_outputs_and_grouping(kernels, tmp_path):
    cells = [
        GROUPED,
        "%px a = 5",                                                   # 0.10's line magic
        BOTH.format(""),                                               # default: type
        BOTH.format(" --group-outputs=type"),
        BOTH.format(" --group-outputs=engine"),
        BOTH.format(" --group-outputs order"),
        "%%px\nprint('two\\nlines', a + id)",
        "%%px\nx = 1",                                                 # no output at all
        BOTH.format(" --stream"),
        BOTH.format(" --no-stream --group-outputs engine"),
        "%px --targets 1 print('line', id)",                           # %%px's short form
    ]
    out = run_cells(kernels, cells, tmp_path)
    assert result(out[0]) == "[0, 1]"
    assert stdout(out[1]) == "Parallel execution on engines: all\n"
    # (an Out[] is sent without its last newline)
    assert re.fullmatch(r"<Results List>\n\[0\] In \[\d+\]: a = 5\n\[1\] In \[\d+\]: a = 5",
                        result(out[1])), out[1]
    by_type = [("stdout", "[stdout:0] out 0\n[stdout:1] out 1\n"),
               ("stderr", "[stderr:0] err 0\n[stderr:1] err 1\n")]
    by_engine = [("stdout", "[stdout:0] out 0\n"), ("stderr", "[stderr:0] err 0\n"),
                 ("stdout", "[stdout:1] out 1\n"), ("stderr", "[stderr:1] err 1\n")]
    assert streams(out[2]) == by_type
    assert streams(out[3]) == by_type
    assert streams(out[4]) == by_engine
    # 'order' of a finished result: each engine's first output, then its second
    assert streams(out[5]) == by_type
    for o in out[2:6]:
        assert result(o) is None            # %%px shows outputs, returns nothing
    # more than one line: the text starts on the line after the prefix
    assert stdout(out[6]) == "[stdout:0] \ntwo\nlines 5\n[stdout:1] \ntwo\nlines 6\n"
    assert out[7] == []
    # --stream: as it arrives, each piece under its prefix, engines interleaved
    # (two pieces of one stream in a row are joined into one output)
    assert lines_by_stream(out[8]) == lines_by_stream(
        [{"output_type": "stream", "name": n, "text": t} for n, t in by_engine])
    assert streams(out[9]) == by_engine
    assert stdout(out[10]) == "[stdout:1] line 1\n"


def test_targets(kernels, tmp_path):
    cell = "%%px --targets {}\nprint(id)"
    specs = ["0", "1", "0,1", "'[1, 0]'", "::2", "1:", "all", "-t 1"]
    cells = [GROUPED] + [cell.format(s) if not s.startswith("-t") else
                         "%%px -t 1\nprint(id)" for s in specs]
    cells += ["%%px --targets 5:\nprint(id)", "%%px --targets 9\nprint(id)",
              "%%px --targets x\nprint(id)"]
    out = run_cells(kernels, cells, tmp_path)
    got = [stdout(o) for o in out[1:1 + len(specs)]]
    assert got == ["[stdout:0] 0\n", "[stdout:1] 1\n", "[stdout:0] 0\n[stdout:1] 1\n",
                   "[stdout:1] 1\n[stdout:0] 0\n", "[stdout:0] 0\n", "[stdout:1] 1\n",
                   "[stdout:0] 0\n[stdout:1] 1\n", "[stdout:1] 1\n"]
    assert usage_error(out[-3]) == \
        "UsageError: --targets 5: names no engine (engines: [0, 1])\n"
    e = error(out[-2])
    assert e["ename"] == "InvalidEngineID", e
    assert usage_error(out[-1]).startswith("UsageError: --targets takes 'all', ")


def test_remote_error_noblock_pxresult_local(kernels, tmp_path):
    cells = [
        GROUPED,
        "%%px\nprint('before', id)\nif id == 1:\n    1/0",
        "%pxresult",
        "%%px --noblock\nimport time\ntime.sleep(1)\nprint('late', id)",
        "%pxresult",
        "%pxresult --group-outputs engine",
        "%%px --local\nwhere = 'engine %s' % id if isinstance(id, int) else 'here'\n"
        "print(where)",
        "where",
        "%%px --local --noblock\nthere = 1",
        "_.get_result(block=True) is not None, there",
    ]
    out = run_cells(kernels, cells, tmp_path)
    # the outputs of every engine, then the remote error, without local frames
    assert streams(out[1]) == [("stdout", "[stdout:0] before 0\n[stdout:1] before 1\n")]
    e = error(out[1])
    tb = "\n".join(e["traceback"])
    assert e["ename"] == "CompositeError", e
    assert "[1:execute]" in tb and "ZeroDivisionError: division by zero" in tb, tb
    assert "[0:execute]" not in tb, tb
    assert "magics.py" not in tb and "_pending.py" not in tb and "interactiveshell" not in tb
    # %pxresult shows it all again
    assert streams(out[2]) == streams(out[1])
    assert error(out[2])["traceback"] == e["traceback"]
    # --noblock: the PendingResult now, the outputs when %pxresult waits for them
    assert re.fullmatch(r"<PendingResult \d+ \(pending\)>", result(out[3])), out[3]
    assert streams(out[3]) == []
    assert stdout(out[4]) == "[stdout:0] late 0\n[stdout:1] late 1\n"
    assert stdout(out[5]) == "[stdout:0] late 0\n[stdout:1] late 1\n"
    # --local: the cell ran here too (first), then the engines' outputs
    assert stdout(out[6]) == "here\n[stdout:0] engine 0\n[stdout:1] engine 1\n"
    assert result(out[7]) == "'here'"
    assert re.fullmatch(r"<PendingResult \d+ \((pending|done)\)>", result(out[8])), out[8]
    assert result(out[9]) == "(True, 1)"


def test_pxconfig(kernels, tmp_path):
    cells = [
        CONNECT,
        "%pxconfig",
        "%pxconfig --targets 1 --group-outputs engine",
        "%pxconfig",
        BOTH.format(""),
        "%px print(id)",                                        # 0.10's form follows it too
        "%pxconfig --noblock",
        "%%px\nprint('nb', id)",
        "%pxresult",
        "%pxconfig --block --targets ::1 --group-outputs type --no-stream",
        "%pxconfig",
        BOTH.format(""),
        BOTH.format(" --targets 0"),                            # an option beats the default
        "mec.targets, mec.block",                               # the client's own: untouched
        "%pxconfig --group-outputs=time",
    ]
    out = run_cells(kernels, cells, tmp_path)
    assert stdout(out[1]) == ("targets: all (the client's)\nblock: True (the client's)\n"
                              "group-outputs: type\nstream: when blocking\n")
    assert out[2] == []
    assert stdout(out[3]) == ("targets: 1\nblock: True (the client's)\n"
                              "group-outputs: engine\nstream: when blocking\n")
    assert streams(out[4]) == [("stdout", "[stdout:1] out 1\n"), ("stderr", "[stderr:1] err 1\n")]
    assert stdout(out[5]) == "Parallel execution on engines: 1\n"
    assert re.fullmatch(r"<Results List>\n\[1\] In \[\d+\]: print\(id\)\n\[1\] Out\[\d+\]: 1\n",
                        result(out[5])), result(out[5])
    assert re.fullmatch(r"<PendingResult \d+ \(pending\)>", result(out[7])), out[7]
    assert stdout(out[8]) == "[stdout:1] nb 1\n"
    assert stdout(out[10]) == ("targets: ::1\nblock: True\ngroup-outputs: type\nstream: False\n")
    assert streams(out[11]) == [("stdout", "[stdout:0] out 0\n[stdout:1] out 1\n"),
                                ("stderr", "[stderr:0] err 0\n[stderr:1] err 1\n")]
    assert streams(out[12]) == [("stdout", "[stdout:0] out 0\n"), ("stderr", "[stderr:0] err 0\n")]
    assert result(out[13]) == "('all', True)"
    assert "argument --group-outputs: invalid choice: 'time'" in usage_error(out[14])


def test_suffixed_clients_and_autopx(kernels, tmp_path):
    cells = [
        CONNECT,
        "mec_a = client.MultiEngineClient()\nmec_a.targets = [1]\nmec_a.activate(suffix='_a')",
        "%%px_a\nprint('a', id)",
        "%%px\nprint('plain', id)",
        "%pxconfig_a --noblock",
        "%%px_a\nprint('a2', id)",
        "%pxresult_a",
        "%pxresult",                                            # the plain magics' last
        "%px_a q = 2",
        "%pxresult_a",
        "%result_a",
        "%autopx",
        "w = id * 10",
        "%autopx",
        "%autopx_a",
        "v = id + 100",
        "%autopx_a",
        "mec.pull('w'), mec.pull('v', targets=1), 'w' in dir(), 'v' in dir()",
        "mec_b = client.MultiEngineClient()\nmec_b.activate(suffix='_a')\n%pxconfig_a",
    ]
    out = run_cells(kernels, cells, tmp_path)
    assert stdout(out[2]) == "[stdout:1] a 1\n"
    # streamed (the default): engines in arrival order
    assert sorted(stdout(out[3]).splitlines()) == ["[stdout:0] plain 0", "[stdout:1] plain 1"]
    assert re.fullmatch(r"<PendingResult \d+ \(pending\)>", result(out[5])), out[5]
    assert stdout(out[6]) == "[stdout:1] a2 1\n"
    assert stdout(out[7]) == "[stdout:0] plain 0\n[stdout:1] plain 1\n"
    # 0.10's line form with mec_a's targets and its magics' --noblock
    assert stdout(out[8]) == "Parallel execution on engines: [1]\n"
    assert re.fullmatch(r"<PendingResult \d+ \((pending|done)\)>", result(out[8])), out[8]
    assert out[9] == []                       # q = 2 printed nothing
    # %result (0.10's) has no suffixed form
    assert usage_error(out[10]) == "UsageError: Line magic function `%result_a` not found.\n"
    assert stdout(out[11]) == "Auto Parallel Enabled\nType %autopx to disable\n"
    assert re.fullmatch(r"<Results List>\n\[0\] In \[\d+\]: w = id \* 10\n"
                        r"\[1\] In \[\d+\]: w = id \* 10\n\n", stdout(out[12])), out[12]
    assert stdout(out[13]) == "Auto Parallel Disabled\n"
    assert stdout(out[14]) == "Auto Parallel Enabled\nType %autopx_a to disable\n"
    # mec_a's autopx: its targets ([1]) and its magics' --noblock
    assert re.fullmatch(r"<PendingResult \d+ \((pending|done)\)>\n", stdout(out[15])), out[15]
    assert stdout(out[16]) == "Auto Parallel Disabled\n"
    assert result(out[17]) == "([0, 10], [101], False, False)", out[17]
    # another client activated with the suffix: its magics start from defaults
    assert stdout(out[18]) == ("targets: all (the client's)\nblock: True (the client's)\n"
                               "group-outputs: type\nstream: when blocking\n")


def test_stream_is_the_default_when_blocking(kernels, tmp_path):
    cells = [CONNECT,
             "%%px\nimport time\nfor i in range(3):\n    print('tick', i, id)\n"
             "    time.sleep(0.3)",
             "%%px --targets 0\nfrom IPython.display import HTML\nprint('a')\n"
             "display(HTML('<b>b</b>'))\nprint('c')"]
    out = run_cells(kernels, cells, tmp_path)
    lines = stdout(out[1]).splitlines(keepends=True)   # nbclient joins stream messages
    for engine in (0, 1):
        mine = [t for t in lines if t.startswith("[stdout:%d]" % engine)]
        assert mine == ["[stdout:%d] tick %d %d\n" % (engine, i, engine) for i in range(3)]
    kinds = [(o["output_type"], o.get("text") or o["data"].get("text/html") or
              o["data"]["text/plain"]) for o in out[2]]
    assert kinds == [("stream", "[stdout:0] a\n"), ("display_data", "[output:0]"),
                     ("display_data", "<b>b</b>"), ("stream", "[stdout:0] c\n")], out[2]
