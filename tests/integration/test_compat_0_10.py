"""IPython 0.10's documented behaviour against a real cluster (issue 19):
the keyword furl_or_file, CompositeError.message, a non-blocking task
mapper's list of task ids, and IndexError for a cleared task's result."""
import os

import pytest

from plexa import client
from plexa.error import CompositeError, ResultEvicted


@pytest.fixture(scope="module")
def env(cluster):
    os.environ["PLEXA_DIR"] = cluster.root
    return cluster


def test_furl_or_file_keyword(env):
    mec_file = env.path("security", "ipcontroller-mec.url")
    tc_file = env.path("security", "ipcontroller-tc.url")
    mec = client.MultiEngineClient(furl_or_file=mec_file)
    assert mec.get_ids() == [0, 1]
    mec.close()
    mec = client.get_multiengine_client(furl_or_file=env.url("mec"))
    assert mec.get_ids() == [0, 1]
    mec.close()
    for tc in (client.TaskClient(furl_or_file=tc_file),
               client.get_task_client(furl_or_file=tc_file)):
        assert tc.run(client.MapTask(abs, args=(-3,)), block=True) == 3
        tc.close()
    with pytest.raises(TypeError):
        client.TaskClient(tc_file, furl_or_file=tc_file)


def test_composite_error_message(env):
    mec = env.client()
    with pytest.raises(CompositeError) as info:
        mec.execute("1/0")
    e = info.value
    assert e.message == "one or more exceptions from call to method: execute"
    assert e.msg == e.message and str(e).startswith(e.message + "\n")
    mec.close()


def test_nonblocking_mapper_returns_task_ids(env):
    tc = client.TaskClient(profile=env.profile)
    ids = tc.mapper(block=False).map(lambda x, y: x * y, range(20), range(20))
    assert len(ids) == 20 and all(isinstance(i, int) for i in ids)
    tc.barrier(ids)
    assert [tc.get_task_result(i) for i in ids] == [x * x for x in range(20)]
    # and 0.10's IndexError once cleared
    tc.clear(ids)
    with pytest.raises(IndexError):
        tc.get_task_result(ids[0])
    with pytest.raises(ResultEvicted):
        tc.get_task_result(ids[1], block=True)
    tc.close()
