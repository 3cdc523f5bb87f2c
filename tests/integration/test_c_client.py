"""The C client library against a real cluster: the two C examples
(examples/c/prime_sum.c, numpy_array.c) and libplexa's value, task and
non-blocking API (tests/client/c_cluster_check.c), as built in the build
tree."""
import os
import subprocess

import pytest

from conftest import BUILD

EXAMPLES = os.path.join(os.path.abspath(BUILD), "examples")
CHECK = os.path.join(os.path.abspath(BUILD), "tests", "plx-c-cluster-check")


def run(cluster, argv, timeout=120):
    p = subprocess.run(argv, env=cluster.env, cwd=cluster.root, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"{argv[0]} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def test_prime_sum_example(cluster):
    out = run(cluster, [os.path.join(EXAMPLES, "prime_sum"), "100000", "16"])
    assert "Engines: 2" in out
    # the same sums as prime1.py computes in Python
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "prime1", os.path.join(os.path.dirname(__file__), "..", "..", "examples", "prime1.py"))
    prime1 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prime1)
    inputs = [max(2, 100000 * (i + 1) // 16) for i in range(16)]
    total = sum(prime1.sum_primes(x) for x in inputs)
    assert f"Sums agree: 16 values, sum of sums {total}" in out


def test_prime_sum_example_default_size(cluster):
    # the seed's numbers: prime1_mec.py's docstring quotes this sum
    out = run(cluster, [os.path.join(EXAMPLES, "prime_sum")])
    assert "Sums agree: 16 values, sum of sums 10261715110" in out


def test_numpy_array_example(cluster):
    out = run(cluster, [os.path.join(EXAMPLES, "numpy_array"), cluster.url("mec")])
    assert "engine 0 sees: ndarray float64 (3, 4)" in out
    numpy = pytest.importorskip("numpy")
    a = numpy.arange(12.0).reshape(3, 4)
    expect = numpy.cumsum(2 * a + 1, axis=1)
    rows = out.split("pulled from engine 0:\n")[1].splitlines()[:3]
    got = numpy.array([[float(x) for x in r.split()] for r in rows])
    assert numpy.array_equal(got, expect)
    assert "gathered y = x**2: 0 1 4 9 16 25 36 49 64 81" in out
    assert out.rstrip().endswith("numpy_array: OK")


def test_numpy_array_pushed_from_c_is_seen_by_python(cluster):
    run(cluster, [os.path.join(EXAMPLES, "numpy_array")])
    mec = cluster.client()
    a = mec.pull("a", targets=[0])[0]
    b = mec.pull("b", targets=[0])[0]
    import numpy
    assert isinstance(a, numpy.ndarray) and a.dtype == numpy.float64 and a.shape == (3, 4)
    assert numpy.array_equal(b, numpy.cumsum(2 * a + 1, axis=1))


def test_task_loop_example(cluster):
    out = run(cluster, [os.path.join(EXAMPLES, "task_loop"), "6"])
    lines = [l for l in out.splitlines() if l.startswith("task ")]
    assert len(lines) == 6, out
    # every task reported once, each on one of the two engines
    assert sorted(int(l.split()[1]) for l in lines) == sorted(set(int(l.split()[1]) for l in lines))
    assert all(" on engine 0: " in l or " on engine 1: " in l for l in lines)
    assert "(n=10000) on engine" in out and out.rstrip().endswith(
        "task_loop: 6 tasks done, results agree")


def test_value_task_and_nonblocking_api(cluster):
    out = run(cluster, [CHECK, cluster.path("security", "ipcontroller-mec.url"),
                        cluster.path("security", "ipcontroller-tc.url")])
    for name in ("roundtrip", "pull_error", "pickle", "other_dtypes", "task", "nonblocking", "scatter_gather",
                 "threads", "large"):
        assert f"ok {name}" in out
    assert out.rstrip().endswith("all ok")


def test_mec_execute_example(cluster):
    out = run(cluster, [os.path.join(EXAMPLES, "mec_execute"), "print(6 * 7)"])
    assert "[0] Out[" in out and "42" in out


def test_connect_errors_are_messages(cluster, tmp_path):
    bad = tmp_path / "bad.url"
    bad.write_text("plx+tcp://127.0.0.1:1/" + "0" * 64 + "\n")
    bad.chmod(0o600)
    p = subprocess.run([os.path.join(EXAMPLES, "numpy_array"), str(bad)], env=cluster.env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "numpy_array: connect: cannot connect to the controller at 127.0.0.1:1" in p.stderr


def test_tls_pin_is_checked_from_c(cluster):
    url = cluster.url("mec")
    assert url.startswith("plx+tls://") and "#sha256=" in url
    head, pin = url.split("#sha256=")
    # Over TLS: the shm listener (same host, same user) is authenticated by
    # the peer's uid instead, and has no certificate to pin.
    head = head.split("?shm=")[0]
    wrong = head + "#sha256=" + ("0" if pin[0] != "0" else "1") + pin[1:]
    p = subprocess.run([os.path.join(EXAMPLES, "numpy_array"), wrong], env=cluster.env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "certificate fingerprint mismatch" in p.stderr, p.stderr
    assert "(capability refused)" in p.stderr     # PLX_EAUTH, not a network error
