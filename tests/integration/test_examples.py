"""examples/prime1_mec.py, the seed tutorial's exercise, against a real
2-engine cluster started in (a copy of) examples/ so that the engines can
import prime1."""
import os
import re
import shutil
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def test_prime1_mec(cluster_factory, tmp_path):
    ex = tmp_path / "examples"
    ex.mkdir()
    for name in ("prime1.py", "prime1_mec.py"):
        shutil.copy(os.path.join(EXAMPLES, name), ex / name)
    c = cluster_factory(n=2, cwd=str(ex))
    c.start()
    env = dict(c.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    p = subprocess.run([sys.executable, "prime1_mec.py", "20000", "8"], cwd=ex, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert re.fullmatch(r"Serial sum_primes time:  \d+\.\d+(e-\d+)?", lines[0]), lines
    assert re.fullmatch(r"Parallel sum_primes time:  \d+\.\d+(e-\d+)?", lines[1]), lines
    assert re.fullmatch(r"Speedup of sum_primes on 2 cores: \d+\.\d{6}", lines[2]), lines
    sys.path.insert(0, str(ex))
    try:
        import prime1
    finally:
        sys.path.remove(str(ex))
    expected = sum(prime1.sum_primes(20000 * (i + 1) // 8) for i in range(8))
    assert lines[3] == "Sums agree: 8 values, sum of sums %d" % expected


def test_prime1_module():
    sys.path.insert(0, EXAMPLES)
    try:
        import prime1
        from prime1_mec import interleave_order
    finally:
        sys.path.remove(EXAMPLES)
    assert [x for x in range(30) if prime1.isprime(x)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
    assert prime1.sum_primes(10) == 17 and prime1.sum_primes(2) == 0
    assert prime1.sum_primes(2000000 // 100) == 21171191
    # costliest first to the least loaded engine, blocks of equal size
    assert interleave_order(7, 2) == [0, 1, 3, 6, 2, 4, 5]
    assert interleave_order(8, 3) == [0, 2, 7, 1, 3, 6, 4, 5]
    costs = [(i + 1) ** 1.25 for i in range(16)]
    order = interleave_order(16, 2)
    shares = [sum(costs[i] for i in order[:8]), sum(costs[i] for i in order[8:])]
    assert max(shares) / sum(shares) < 0.502     # within 0.2% of an even split
    for length in range(12):
        for n in range(1, 5):
            order = interleave_order(length, n)
            assert sorted(order) == list(range(length))


def test_async_tasks(tmp_path):
    """examples/async_tasks.py: 1 000 tasks driven from asyncio, on a
    cluster the example starts and stops itself (async with Cluster)."""
    env = dict(os.environ)
    env["PLEXA_DIR"] = str(tmp_path / "plexa")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    p = subprocess.run([sys.executable, os.path.join(EXAMPLES, "async_tasks.py"), "1000", "2"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.fullmatch(r"1000 tasks on (\d) engines in \d+\.\d\d s; "
                     r"the event loop ticked (\d+) times meanwhile\n", p.stdout)
    assert m, p.stdout
    assert m.group(1) in ("1", "2")
    # the cluster the example started is gone
    from conftest import processes_with_env
    assert not processes_with_env("PLEXA_DIR", env["PLEXA_DIR"])
