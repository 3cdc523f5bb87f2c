#!/usr/bin/python3
"""Soak test: the controller alone at scale (issue 9), with bench/engine-swarm.

    tests/soak/swarm.py [--build DIR] [--engines 4096] [--tasks 1000000]

Starts a real cluster (`ipcluster start -n 1`, TLS), then engine-swarm with
N engine connections, and measures: registration time of all N, an
`execute('pass')` fanned out to every engine and gathered, the controller's
CPU while only heartbeats flow (10 s), and its RSS while 1 000 000 null
tasks go through the scheduler with their results fetched. Prints a report;
exits non-zero if a measured limit is missed (1 024 engines registered in
under 5 s; heartbeats under 10% of one core; RSS at the end within 64 MiB of
where it was after the first 10% of the tasks). Takes a few minutes.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from plexa_testing import rss_mib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--engines", type=int, default=4096)
    ap.add_argument("--tasks", type=int, default=1000000)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    sys.path.insert(0, os.path.join(build, "python"))
    from plexa import client
    root = tempfile.mkdtemp(prefix="plexa-soak-")
    env = dict(os.environ, PLEXA_DIR=root,
               PLX_PLUGIN_PATH=os.path.join(build, "lib", "plexa", "plugins"))
    os.environ["PLEXA_DIR"] = root
    ipcluster = os.path.join(build, "bin", "ipcluster")
    subprocess.run([ipcluster, "start", "-n", "1"], env=env, check=True, capture_output=True)
    ok = True
    swarm = None
    try:
        with open(os.path.join(root, "profile_default", "pid", "ipcontroller.pid")) as f:
            ctl = int(f.read().split()[0])
        report = os.path.join(root, "swarm.json")
        swarm = subprocess.Popen([os.path.join(build, "bench", "engine-swarm"), "-n",
                                  str(a.engines), "--report", report], env=env)
        deadline = time.time() + 120
        while not os.path.exists(report) and time.time() < deadline:
            time.sleep(0.1)
        import json
        reg = json.load(open(report))
        print(f"registration: {reg['registered']} of {reg['engines']} engines in "
              f"{reg['all_s']:.2f} s (first after {reg['first_s']:.2f} s)")
        if a.engines >= 1024 and reg["all_s"] * 1024 / a.engines > 5:
            ok = False
        mec = client.MultiEngineClient()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            r = mec.execute("pass")
            times.append(time.perf_counter() - t)
        print(f"execute('pass') on {len(r)} engines: median {sorted(times)[2] * 1000:.0f} ms")
        c0, t0 = cpu_seconds(ctl), time.time()
        time.sleep(10)
        share = (cpu_seconds(ctl) - c0) / (time.time() - t0)
        print(f"heartbeats at {len(r)} engines: controller uses {share * 100:.1f}% of one core")
        ok &= share < 0.10
        tc = client.TaskClient()
        chunk = 20000
        rss = []
        done = 0
        t = time.perf_counter()
        while done < a.tasks:
            n = min(chunk, a.tasks - done)
            tc.map(lambda x: x, range(n), chunksize=1)
            done += n
            rss.append(rss_mib(ctl))
        dt = time.perf_counter() - t
        base = rss[max(0, len(rss) // 10 - 1)]
        print(f"{done} null tasks (chunksize=1, results fetched) in {dt:.1f} s "
              f"({done / dt:,.0f}/s); controller RSS {rss[0]:.0f} -> {max(rss):.0f} (max) -> "
              f"{rss[-1]:.0f} MiB")
        ok &= rss[-1] <= base + 64
    finally:
        if swarm:
            swarm.terminate()
            swarm.wait()
        subprocess.run([ipcluster, "stop"], env=env, capture_output=True)
    print("soak: all limits met" if ok else "soak: a limit was MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
