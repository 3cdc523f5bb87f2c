"""examples/notebooks/seed_tutorial.ipynb, executed headless with nbclient
against a real, fresh 2-engine cluster (found through PLEXA_DIR's default
profile, as a user's would be): every cell must run without an error, and
the tutorial's outputs are checked as test_seed_tutorial.py checks them
(Python 3 syntax, engine counters as they fall on fresh engines)."""
import os
import re

import nbformat
import numpy

from conftest import SRC, run_notebook, streams

NOTEBOOK = os.path.join(SRC, "examples", "notebooks", "seed_tutorial.ipynb")


def results(*lines):
    """A Results List as a notebook shows it (without the last newline)."""
    return ("<Results List>\n" + "".join(l + "\n" for l in lines))[:-1]


def test_seed_tutorial_notebook(kernels, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "the example is stored without outputs"
    run_notebook(kernels, nb, tmp_path)
    cells = [(c.source, c.outputs) for c in nb.cells if c.cell_type == "code"]
    for source, outs in cells:
        assert not [o for o in outs if o["output_type"] == "error"], (source, outs)
        assert not [o for o in outs if o.get("name") == "stderr"], (source, outs)

    def outputs(source, n=0):
        """The outputs of the n-th cell whose source starts with source (a
        source ending in "$" must match whole)."""
        whole = source.endswith("$")
        found = [o for s, o in cells if (s == source[:-1] if whole else s.startswith(source))]
        return found[n]

    def out(source, n=0):
        """Its Out[] text, or None."""
        rs = [o["data"]["text/plain"] for o in outputs(source, n)
              if o["output_type"] == "execute_result"]
        return rs[0] if rs else None

    def text(source, n=0):
        """What it printed."""
        return "".join(t for name, t in streams(outputs(source, n)) if name == "stdout")

    assert out("from plexa import client") == "[0, 1]"
    assert out("mec.execute('a=10')") == results("[0] In [1]: a=10", "[1] In [1]: a=10")
    assert out("mec.map(") == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    assert out("mec.activate()") is None
    assert text("%px print(a)") == "Parallel execution on engines: all\n"
    assert out("%px print(a)") == results("[0] In [3]: print(a)", "[0] Out[3]: 10", "",
                                          "[1] In [3]: print(a)", "[1] Out[3]: 10", "")
    assert out("mec.pull('a')") == "[30, 30]"
    assert out("mec.pull('b')") == "['to the engines!', 'to the engines!']"
    assert out("mec.push_function") == "[None, None]"
    assert out("mec.execute('y = enginef(2)')") == results("[0] In [4]: y = enginef(2)",
                                                          "[1] In [4]: y = enginef(2)")
    assert out("px print(y)") == results(
        "[0] In [5]: print(y)", "[0] Out[5]: 1.4142135623730951", "",
        "[1] In [5]: print(y)", "[1] Out[5]: 1.4142135623730951", "")
    assert out("import numpy") == "[None, None]"          # the scatter
    half0, half1 = str(numpy.arange(0, 50)), str(numpy.arange(50, 100))
    assert out("%px print(a)", 1) == results(
        "[0] In [6]: print(a)", "[0] Out[6]: " + half0, "",
        "[1] In [6]: print(a)", "[1] Out[6]: " + half1, "")
    assert out("%px import numpy") == results("[0] In [7]: import numpy",
                                              "[1] In [7]: import numpy")
    assert out("f = mec.gather('f')") == "True"
    assert out("mec.targets$") == "'all'"
    assert out("mec.targets = 0") == results("[0] In [9]: pi = 3")
    assert out("mec.targets = 1") == results("[1] In [9]: pi = 3.14")
    assert out("mec.targets = 'all'") == "[3, 3.14]"
    assert out("mec.block$") == "True"
    assert out("%px import time") == results("[0] In [10]: import time",
                                             "[1] In [10]: import time")
    assert re.fullmatch(r"<PendingResult \d+ \(pending\)>", out("mec.block = False"))
    assert out("r.get_result(block=True)") == results("[0] In [11]: time.sleep(1)",
                                                      "[1] In [11]: time.sleep(1)")
    assert out("tc = client.TaskClient()").startswith("[0,\n 1,\n 1024,\n 59049,\n")
    assert out("tc = client.TaskClient()").endswith(" 576650390625]")
    assert out("def f(x):\n    return x**2") == "100"
    assert out("st = client.StringTask") == "6"
    # today's magics, on the same engines
    # streamed as it arrives: the engines in either order
    assert sorted(text("%%px\nprint('pi is', pi)").splitlines()) == \
        ["[stdout:0] pi is 3", "[stdout:1] pi is 3.14"]
    assert text("%%px --targets 1\nprint(y)") == "[stdout:1] 1.4142135623730951\n"
    assert re.fullmatch(r"<PendingResult \d+ \(pending\)>", out("%%px --noblock"))
    assert text("%pxresult") == "[stdout:0] slept on 0\n[stdout:1] slept on 1\n"
