"""plexa._tb: which frames leave the tracebacks of exceptions that cross a
public entry point, and which exceptions keep all of theirs. (The real
thing, Ctrl-C during a blocking call against a cluster, is in
tests/integration/test_tracebacks.py.)"""
import inspect
import os
import traceback
from types import SimpleNamespace

import pytest

from plexa import _tb
from plexa._map import MultiEngineMapper, TaskMapper
from plexa._pending import PendingResult, _Done
from plexa._results import _execute_value
from plexa.error import CompositeError, RemoteError


TB = ('Traceback (most recent call last):\n  File "<plexa-input-1>", line 1, in <module>\n'
      '    1/0\nZeroDivisionError: division by zero\n')


def files(exc):
    return [f.filename for f in traceback.extract_tb(exc.__traceback__)]


def composite():
    return CompositeError('m', [('ZeroDivisionError', 'division by zero', TB, 0, 'execute')])


def names(exc):
    return [f.name for f in traceback.extract_tb(exc.__traceback__)]


def reply(engine_id, error=None):
    """One engine's reply as _native gives it (the fields _results reads)."""
    return SimpleNamespace(engine_id=engine_id, execute=None, values=[], error=error)


def failed_future():
    """A PendingResult whose reply says engine 0 raised: result() raises
    the CompositeError from deep inside plexa (_pending, _results)."""
    err = SimpleNamespace(ename='ZeroDivisionError', evalue='division by zero', traceback=TB)
    return PendingResult(None, _Done([reply(0, err), reply(1)]), _execute_value)


def test_plexa_frames_leave_the_traceback_of_plexa_errors():
    with pytest.raises(CompositeError) as info:
        failed_future().result()
    e = info.value
    assert e.elist == [('ZeroDivisionError', 'division by zero', TB, 0, 'execute')]
    assert names(e) == ['test_plexa_frames_leave_the_traceback_of_plexa_errors']
    with pytest.raises(CompositeError) as info:
        failed_future().r                   # a property is an entry point too
    assert files(info.value) == [__file__]


def test_user_code_that_plexa_called_back_stays():
    def convert(raw):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as info:
        PendingResult(None, _Done([reply(0)]), convert).result()
    assert names(info.value) == ['test_user_code_that_plexa_called_back_stays', 'convert']


def test_other_exceptions_keep_every_frame():
    # a bad argument (or a bug of plexa's) is not a plexa error: frames stay
    with pytest.raises(TypeError) as info:
        MultiEngineMapper(None).map(len)
    assert any(f.endswith(os.path.join('plexa', '_map.py')) for f in files(info.value))


def test_keyboard_interrupt_and_chains_are_trimmed():
    @_tb.boundary
    def waits():        # stands for a wait loop of plexa's (but is in this file)
        try:
            composite().raise_exception()
        except RemoteError:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt) as info:
        waits()
    e = info.value
    assert names(e) == ['test_keyboard_interrupt_and_chains_are_trimmed', 'waits']
    assert isinstance(e.__context__, RemoteError)                   # the chain is kept...
    assert names(e.__context__) == ['waits']                        # ...trimmed too


def test_switched_off_keeps_every_frame(monkeypatch):
    monkeypatch.setattr(_tb, 'hide', False)
    with pytest.raises(CompositeError) as info:
        failed_future().result()
    assert any(f.endswith(os.path.join('plexa', '_pending.py')) for f in files(info.value))


def test_generators_are_wrapped_as_generators():
    @_tb.boundary
    def gen():
        yield 1
        composite().raise_exception()
    g = gen()
    assert inspect.isgenerator(g) and next(g) == 1
    with pytest.raises(RemoteError) as info:
        next(g)
    assert names(info.value) == ['test_generators_are_wrapped_as_generators', 'gen']


def test_wrapped_methods_keep_names_docs_signatures_and_aliases():
    from plexa.multiengine import MultiEngineClient
    m = MultiEngineClient.execute
    assert m.__name__ == 'execute' and 'ResultList' in m.__doc__
    assert list(inspect.signature(m).parameters) == ['self', 'lines', 'targets', 'block']
    assert MultiEngineClient.clear_pending_results is MultiEngineClient.flush
    assert MultiEngineClient.__enter__.__name__ == '__enter__'
    assert not hasattr(MultiEngineClient.__enter__, '__wrapped__')    # reads its caller
    assert hasattr(TaskMapper.map, '__wrapped__') and hasattr(PendingResult.result, '__wrapped__')
    assert isinstance(PendingResult.__dict__['r'], property)
    # IPython hides frames whose locals say so
    assert '__tracebackhide__' in _tb.boundary(lambda: None).__code__.co_varnames
