"""PendingResult as a concurrent.futures.Future (issue 19), against the
simulated engines of test_plexa_client.py: result/exception/timeouts,
done callbacks, 0.10's chain once the result is here, cancel() deciding
by its canceller, and resolution on the plexa-callbacks thread; and a real
client's futures against the scripted controller. The same against real
clusters: tests/integration/test_futures.py.
"""
import concurrent.futures
import threading

import pytest

from plexa import client, error
from plexa.client import PendingResult
from test_plexa_client import OK2, StubRequest, needs_fake, sim_client
from test_plexa_client import fake  # noqa: F401  (the scripted controller fixture)


def test_pending_result_is_a_future():
    held = StubRequest(OK2, done=False)
    pr = PendingResult(None, held, client._execute_value)
    assert isinstance(pr, concurrent.futures.Future)
    assert not pr.done() and not pr.running() and not pr.cancel()   # no canceller
    with pytest.raises(TimeoutError):
        pr.result(timeout=0.05)
    with pytest.raises(TimeoutError):
        pr.get_result(timeout=0)
    assert pr.get_result('later', block=False) == 'later' and not pr.wait(0.01)
    seen = []
    pr.add_done_callback(lambda f: seen.append(f.result()))
    held._done = True
    assert pr.result(timeout=1)[0]['id'] == 0 and pr.done() and pr.exception() is None
    assert len(seen) == 1 and seen[0] is pr.result()
    # A chain added once the result is here applies at once, as a Deferred's.
    pr.add_callback(lambda r: len(r))
    assert pr.r == 2 and pr.result() == 2 and pr.callbacks
    # Cancelling: the canceller decides; a cancelled future raises CancelledError.
    for verdict in (False, True):
        q = PendingResult(None, StubRequest(OK2, done=False), client._execute_value,
                          canceller=lambda v=verdict: v)
        assert q.cancel() is verdict and q.cancelled() is verdict and q.done() is verdict
        if verdict:
            with pytest.raises(concurrent.futures.CancelledError):
                q.r
            assert q.raised and q.cancel()
            done, not_done = concurrent.futures.wait([q, pr], timeout=0)
            assert done == {q, pr} and not not_done
    bad = PendingResult(None, StubRequest(error.InvalidEngineID('invalid engine id: 7')),
                        client._execute_value)
    assert isinstance(bad.exception(timeout=1), error.InvalidEngineID)
    assert repr(bad).endswith('(error)>') and repr(pr).endswith('(done)>')


def test_non_blocking_results_resolve_without_get_result():
    # A sim request is no libplexa request: the callback thread looks at it
    # when it is watched (posted), and resolves it if it is done then.
    mec = sim_client()
    fired = threading.Event()
    pr = mec.execute('e = 5', block=False)
    pr.add_done_callback(lambda f: fired.set())
    assert fired.wait(5) and pr.done()
    assert pr._watcher is mec._callbacks
    assert threading.current_thread().name != 'plexa-callbacks'
    names = {t.name for t in threading.enumerate()}
    assert 'plexa-callbacks' in names


# ---- a real client (libplexa, the callback thread) against the scripted controller ----

@needs_fake
def test_e2e_futures_resolve_on_the_callback_thread(fake):
    mec = client.MultiEngineClient(fake.url)
    try:
        fired, seen = threading.Event(), []

        def on_done(f):
            seen.append((threading.current_thread().name, f.result()[0]['stdout']))
            fired.set()
        pr = mec.execute('echo', block=False)
        pr.add_done_callback(on_done)
        assert fired.wait(5)                    # nobody asked for the result
        assert seen == [('plexa-callbacks', 'echo\n')]
        hung = mec.execute('hang', block=False)
        with pytest.raises(TimeoutError):
            hung.result(timeout=0.2)
        assert not hung.done() and not hung.wait(0.05)
        done, not_done = concurrent.futures.wait([pr, hung], timeout=0.1)
        assert done == {pr} and not_done == {hung}
        lost = threading.Event()
        hung.add_done_callback(lambda f: lost.set())
        with pytest.raises(error.ConnectionError):
            mec.execute('die')
        assert lost.wait(5) and isinstance(hung.exception(), error.ConnectionError)
    finally:
        mec.close()


def test_a_failed_cancel_hands_the_reply_back_to_the_callback_thread():
    """The reply arrives while cancel() asks the controller; the callback
    thread finds the future claimed and leaves it. When the cancel fails
    (an engine had the work), the future goes back to the callback thread,
    which resolves it: nobody needs to ask for the result."""
    import time
    from plexa._callbacks import Callbacks
    cb = Callbacks()
    req = StubRequest(OK2, done=False)
    asked, answer = threading.Event(), threading.Event()

    def canceller():
        asked.set()
        answer.wait(5)
        return False
    pr = PendingResult(None, req, client._execute_value, canceller=canceller)
    fired = threading.Event()
    pr.add_done_callback(lambda f: fired.set())
    t = threading.Thread(target=pr.cancel)
    t.start()
    try:
        assert asked.wait(5)
        req._done = True
        cb.watch(pr)                    # the callback thread takes it, claimed
        deadline = time.monotonic() + 5
        while not pr._redo and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pr._redo and not pr.done()
    finally:
        answer.set()
        t.join(5)
    assert fired.wait(5), "the callback thread never resolved the future"
    assert pr.result(timeout=0)[0]['id'] == 0 and not pr.cancelled()
    cb.close()
