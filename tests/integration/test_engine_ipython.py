"""Engines that speak IPython (issue 20), on real clusters: magics and
shell escapes in cells, get_ipython(), display() and rich reprs coming
back as display data after what was printed before them; in a task,
whose output is not live, display falls back to text. With
``engine_ipython = false`` an engine is 0.10's plain interpreter again.
"""
import pytest

from plexa import client

HTML_CELL = ("from IPython.display import HTML, display\n"
             "print('before')\n"
             "display(HTML('<b>bold</b>'))\n"
             "print('after')\n")


def test_display_data_comes_back_in_order(clients):
    mec, _tc = clients
    pr = mec.execute(HTML_CELL, targets=[0], block=False)
    pr.get_result()
    assert pr.outputs == [
        (0, "stdout", "before\n"),
        (0, "display", {"data": {"text/plain": "<IPython.core.display.HTML object>",
                                 "text/html": "<b>bold</b>"}, "metadata": {}}),
        (0, "stdout", "after\n")]
    # the builtin display works without any import, as in IPython
    pr = mec.execute("display({'a': 1})", targets=[1], block=False)
    pr.get_result()
    assert pr.outputs == [(1, "display", {"data": {"text/plain": "{'a': 1}"},
                                          "metadata": {}})]


def test_an_image_comes_back_as_png(clients):
    import base64
    mec, _tc = clients
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    mec.push({"png": png}, targets=[0])
    pr = mec.execute("from IPython.display import Image\ndisplay(Image(data=png, format='png'))",
                     targets=[0], block=False)
    pr.get_result()
    [(engine, name, bundle)] = pr.outputs
    assert (engine, name) == (0, "display")
    assert base64.b64decode(bundle["data"]["image/png"]) == png
    assert bundle["data"]["text/plain"] == "<IPython.core.display.Image object>"


def test_rich_repr_of_a_final_expression(clients):
    mec, _tc = clients
    code = ("class Rich:\n"
            "    def _repr_html_(self): return '<i>rich</i>'\n"
            "    def __repr__(self): return 'Rich()'\n"
            "Rich()")
    pr = mec.execute(code, targets=[0], block=False)
    assert pr.get_result()[0]["stdout"] == "Rich()\n"      # 0.10's repr in stdout, as before
    assert (0, "display", {"data": {"text/plain": "Rich()", "text/html": "<i>rich</i>"},
                           "metadata": {}}) in pr.outputs


def test_magics_shell_escapes_and_get_ipython(clients):
    mec, _tc = clients
    r = mec.execute("%timeit -n 2 -r 1 sum(range(10))", targets=[0])
    assert "per loop" in r[0]["stdout"]
    assert mec.execute("!echo from a shell escape", targets=[0])[0]["stdout"] == \
        "from a shell escape\n"
    r = mec.execute("print(type(get_ipython()).__name__)", targets=[0])
    assert r[0]["stdout"] == "InteractiveShell\n"
    r = mec.execute("%%capture cap\nprint('hidden')", targets=[0])
    assert r[0]["stdout"] == ""
    assert mec.pull("cap", targets=[0]) is not None
    # IPython's names stay out of the engine's namespace (keys, reset as in 0.10)
    keys = mec.keys(targets=[0])[0]
    assert not {"In", "Out", "_ih", "_oh", "exit", "quit", "get_ipython"} & set(keys)


def test_display_in_a_task_falls_back_to_text(clients):
    _mec, tc = clients
    tr = tc.run(client.StringTask("display('shown as text'); a = 1", pull="a"), block=True)
    assert tr.stdout == "'shown as text'\n" and tr["a"] == 1


def test_engine_ipython_false_is_a_plain_interpreter(cluster_factory):
    c = cluster_factory(n=1, conf="[cluster]\nengine_ipython = false\n")
    c.start()
    import os
    os.environ["PLEXA_DIR"] = c.root
    mec = client.MultiEngineClient(profile=c.profile)
    try:
        with pytest.raises(Exception) as e:
            mec.execute("%timeit 1")
        assert "SyntaxError" in str(e.value)
        r = mec.execute("print('get_ipython' in dir(__builtins__))")
        assert r[0]["stdout"] == "False\n"
    finally:
        mec.close()
