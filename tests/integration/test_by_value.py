"""Functions from the user's own modules travel by value (issue 19): the
cluster runs in one directory, the client imports a module from another
(on its sys.path only), and the engines, which cannot import that module,
still run its functions through every call that ships one: tc.map,
tc.run(MapTask), mec.map, raw_map and push_function. Installed and
standard-library functions keep travelling by reference."""
import importlib
import os
import sys
import textwrap
import time

import pytest

from plexa import client
from plexa.error import CompositeError

USER = "plexa_user_geometry"
HELPER = "plexa_user_helpers"


@pytest.fixture(scope="module")
def user_module(tmp_path_factory, cluster):
    """A user's module pair in a directory only the client has on sys.path
    (the engines run in the cluster's own directory)."""
    where = tmp_path_factory.mktemp("userlib")
    assert os.path.realpath(where) != os.path.realpath(cluster.cwd)
    (where / f"{HELPER}.py").write_text(textwrap.dedent("""
        OFFSET = 1
        def shift(x):
            return x + OFFSET
    """))
    (where / f"{USER}.py").write_text(textwrap.dedent(f"""
        import math
        import {HELPER}
        from {HELPER} import shift
        SCALE = 3

        class Point:
            def __init__(self, x):
                self.x = x
            def norm(self):
                return math.fabs(self.x)

        def scaled(x):
            return shift(x * SCALE)

        def via_module(x):
            return {HELPER}.shift(x) * 10

        def point(x):
            return Point(x)

        def norm_of(x):
            return Point(x).norm()

        def bump():
            import __main__           # the engine's namespace, which persists
            ns = __main__.__dict__
            ns["hits"] = ns.get("hits", 0) + 1
            return ns["hits"]
    """))
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(USER)
    finally:
        sys.path.remove(str(where))
        for name in (USER, HELPER):
            sys.modules.pop(name, None)


def test_idle_engines_warm_up_for_functions_by_value(cluster_factory):
    """An engine idle for a second imports cloudpickle, which every
    function sent by value needs, so the user's first map does not pay for
    it (the seed's prime exercise would: ~18 ms an engine). Only strings
    are sent here: nothing else would import it."""
    c = cluster_factory(n=2)
    c.start()
    os.environ["PLEXA_DIR"] = c.root
    mec = client.MultiEngineClient(profile=c.profile)
    try:
        def warmed():
            mec.execute("import sys; _w = 'cloudpickle' in sys.modules")
            return mec.pull("_w") == [True, True]
        deadline = time.monotonic() + 20
        while not warmed():
            assert time.monotonic() < deadline, "engines never imported cloudpickle"
            time.sleep(1.5)   # each call ends an engine's idle second
    finally:
        mec.close()


def test_engines_cannot_import_the_user_module(clients, user_module):
    mec, _tc = clients
    with pytest.raises(CompositeError, match="ModuleNotFoundError"):
        mec.execute(f"import {USER}", targets=0)


def test_task_client(clients, user_module):
    _mec, tc = clients
    want = [3 * x + 1 for x in range(20)]
    assert tc.map(user_module.scaled, range(20)) == want
    assert tc.map(user_module.scaled, range(20), chunksize=1) == want
    assert tc.run(client.MapTask(user_module.scaled, args=(5,)), block=True) == 16
    assert tc.run(client.MapTask(user_module.via_module, args=(2,)), block=True) == 30


def test_multiengine_client(clients, user_module):
    mec, _tc = clients
    assert mec.map(user_module.scaled, range(8)) == [3 * x + 1 for x in range(8)]
    assert mec.raw_map(user_module.scaled, [[1, 2]], targets=0) == [4, 7]
    mec.push_function({"scaled": user_module.scaled}, targets=0)
    mec.execute("r = scaled(10)", targets=0)
    assert mec.pull("r", targets=0) == [31]
    # state kept in the engine's namespace outlives each call's globals
    mec.execute("hits = 0", targets=0)
    first = mec.raw_map(lambda _: user_module.bump(), [[0]], targets=0)
    second = mec.raw_map(lambda _: user_module.bump(), [[0]], targets=0)
    assert (first, second) == ([1], [2])


def test_classes_come_back_as_the_clients_own(clients, user_module):
    """A class of the user's module that a function uses travels with it,
    and its instances come back as instances of the client's class."""
    _mec, tc = clients
    p = tc.run(client.MapTask(user_module.point, args=(-4,)), block=True)
    assert type(p) is user_module.Point and p.x == -4
    assert tc.map(user_module.norm_of, [-4, 2]) == [4.0, 2.0]


def test_installed_and_stdlib_functions_still_by_reference(clients):
    _mec, tc = clients
    import os.path
    assert tc.map(os.path.basename, ["/a/b", "/c"]) == ["b", "c"]
    import numpy
    assert tc.run(client.MapTask(numpy.sum, args=([1, 2, 3],)), block=True) == 6
