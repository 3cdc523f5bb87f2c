"""plexa as a joblib backend (python3-joblib): Parallel runs its batches as
tasks on a real 2-engine cluster."""
import os

import pytest

joblib = pytest.importorskip("joblib")

import plexa.joblib  # noqa: E402  (after the skip)
from plexa import client  # noqa: E402


def where(x):
    import os
    return x * x, os.getpid()


def boom(x):
    if x == 7:
        raise ValueError("seven")
    return x


@pytest.fixture(scope="module")
def tc(cluster):
    os.environ["PLEXA_DIR"] = cluster.root
    plexa.joblib.register()
    t = client.TaskClient(profile=cluster.profile)
    yield t
    t.close()


def test_parallel_runs_on_the_engines(tc, cluster):
    with joblib.parallel_backend("plexa", client=tc):
        out = joblib.Parallel(n_jobs=-1)(joblib.delayed(where)(i) for i in range(200))
    assert [v for v, _ in out] == [i * i for i in range(200)]
    engine_pids = set(pid for _, pid in out)
    assert os.getpid() not in engine_pids
    assert engine_pids <= set(cluster.pids())


def test_default_client_from_the_profile(tc, cluster):
    # no client given: the backend connects to the profile's cluster and
    # closes its client afterwards
    with joblib.parallel_backend("plexa", profile=cluster.profile):
        p = joblib.Parallel(n_jobs=2)
        assert p(joblib.delayed(pow)(2, i) for i in range(10)) == [2 ** i for i in range(10)]
        assert p.n_jobs == 2


def test_an_exception_reaches_the_caller_with_its_type(tc):
    with joblib.parallel_backend("plexa", client=tc):
        with pytest.raises(ValueError, match="seven"):
            joblib.Parallel(n_jobs=-1, batch_size=1)(joblib.delayed(boom)(i)
                                                      for i in range(50))
    # the backend's client still works afterwards
    assert tc.map(abs, [-1, -2]) == [1, 2]


def test_effective_n_jobs_is_the_engine_count(tc):
    backend = plexa.joblib.PlexaBackend(client=tc)
    assert backend.effective_n_jobs(-1) == 2
    assert backend.effective_n_jobs(1) == 2
