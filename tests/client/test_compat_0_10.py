"""IPython 0.10's names and types that need no cluster (issue 19):
CompositeError.message, ResultEvicted as an IndexError, furl_or_file in the
client signatures, and the non-blocking task mapper's argument checks."""
import inspect

import pytest

from plexa import client
from plexa.error import CompositeError, KernelError, ResultEvicted
from plexa.multiengine import _url_arg


def test_composite_error_message_and_msg():
    e = CompositeError('one or more exceptions from call to method: map', [])
    assert e.message == e.msg == 'one or more exceptions from call to method: map'
    assert e.args == ('one or more exceptions from call to method: map', [])


def test_result_evicted_is_an_index_error():
    e = ResultEvicted('the result of task 3 was evicted or cleared from the controller')
    assert isinstance(e, IndexError) and isinstance(e, KernelError)
    assert str(e) == 'the result of task 3 was evicted or cleared from the controller'
    assert type(e).__name__ == 'ResultEvicted'
    with pytest.raises(IndexError):
        raise e


def test_furl_or_file_is_accepted_everywhere():
    for f in (client.MultiEngineClient, client.TaskClient, client.get_multiengine_client,
              client.get_task_client):
        assert 'furl_or_file' in inspect.signature(f).parameters, f
    assert _url_arg('', 'x.url') == 'x.url'
    assert _url_arg('y.url', None) == 'y.url'
    assert _url_arg('', None) == ''
    with pytest.raises(TypeError):
        _url_arg('y.url', 'x.url')


def test_nonblocking_task_mapper_refuses_chunks():
    m = client.TaskMapper(None, block=False, chunksize=8)
    with pytest.raises(ValueError, match='one task per element'):
        m.map(abs, range(4))
    ids = client.TaskIdList([3, 4], pending=None)
    assert ids == [3, 4] and isinstance(ids, list) and ids.pending is None
