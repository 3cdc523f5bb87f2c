"""The controller's status page (issue 11): JSON during a running map,
the token it needs, the text view `ipcluster status` prints, and the page
itself rendered by a headless browser."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import tool, wait_for
from plexa import client


def page_url(c):
    with open(c.path("security", "ipcontroller-status.http")) as f:
        return f.read().strip()


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


@pytest.fixture
def busy(cluster_factory):
    c = cluster_factory(n=2)
    c.start()
    os.environ["PLEXA_DIR"] = c.root
    tc = client.TaskClient(profile=c.profile)

    def nap(x):
        import time
        time.sleep(0.01)
        return x
    pr = tc.mapper(block=False).map(nap, range(600)).pending
    yield c, pr
    pr.get_result()
    tc.close()


def test_json_during_a_running_map(busy):
    c, pr = busy
    url = page_url(c)
    assert re.match(r"http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{64}$", url)
    assert os.stat(c.path("security", "ipcontroller-status.http")).st_mode & 0o077 == 0
    status, ctype, body = get(url.replace("/?", "/status.json?"))
    assert status == 200 and ctype == "application/json"
    s = json.loads(body)
    assert [e["id"] for e in s["engines"]] == [0, 1]
    mec = c.client()
    pids = {d["id"]: int(d["stdout"]) for d in mec.execute("import os; print(os.getpid())")}
    assert {e["id"]: e["pid"] for e in s["engines"]} == pids
    assert all(e["host"] and e["last_heartbeat_s"] < 5 for e in s["engines"])
    assert s["transport"] == "tls" and s["uptime_s"] >= 0 and s["rss_kib"] > 0
    t = s["tasks"]
    assert t["queued"] + t["running"] + t["succeeded"] == 600 or pr.ready()
    # it moves: more tasks done a moment later, and the history has a rate
    assert wait_for(lambda: json.loads(get(url.replace("/?", "/status.json?"))[2])
                    ["tasks"]["succeeded"] > t["succeeded"], timeout=10)
    assert wait_for(lambda: any(h["task_rate"] > 0 for h in json.loads(
        get(url.replace("/?", "/status.json?"))[2])["history"]), timeout=10)
    later = json.loads(get(url.replace("/?", "/status.json?"))[2])
    assert sum(e["tasks_done"] for e in later["engines"]) > 0


def test_token_required(busy):
    c, _ = busy
    url = page_url(c)
    base = url.split("?")[0]
    token = url.split("token=")[1]
    assert get(base + "status.json")[0] == 403
    assert get(base + "status.json?token=" + "0" * 64)[0] == 403
    mec_token = re.search(r"/([0-9a-f]{64})", c.url("mec")).group(1)
    assert get(base + "status.json?token=" + mec_token)[0] == 403   # another capability
    assert get(base + "status.json", {"Authorization": "Bearer " + token})[0] == 200
    assert get(base + "nosuch?token=" + token)[0] == 404
    status, ctype, body = get(url)
    assert status == 200 and ctype.startswith("text/html")
    assert '<table id="engines">' in body and "<script>" in body and "http" not in \
        body.split("<script>")[1].split("fetch(")[0]      # nothing loaded from elsewhere
    # revoking the status capability moves the page to a new token
    c.run("revoke", "status")
    assert get(base + "status.json?token=" + token)[0] == 403
    assert get(page_url(c).replace("/?", "/status.json?"))[0] == 200


def test_ipcluster_status_prints_the_same(busy):
    c, _ = busy
    p = subprocess.run([tool("ipcluster"), "status", f"--profile={c.profile}"], env=c.env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert "engines:    2 registered [0, 1]" in p.stdout
    assert re.search(r"^\s+0\s+\S+\s+\d+\s+(busy|idle)", p.stdout, re.M), p.stdout
    assert "tasks:" in p.stdout and "succeeded" in p.stdout


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (scripts/setup installs it)")
def test_page_in_headless_chromium(busy, tmp_path):
    c, _ = busy
    url = page_url(c)
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000"]
    # The sanitizer run preloads the ASan runtime for Python; not for a browser.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    dom = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=90, env=env).stdout
    rows = re.findall(r"<tr><td>(\d+)</td><td>[^<]+</td><td>(\d+)</td>", dom)
    assert [r[0] for r in rows] == ["0", "1"], dom[:2000]
    shot = tmp_path / "status.png"
    subprocess.run(args + [f"--screenshot={shot}", "--window-size=1000,900", url],
                   capture_output=True, timeout=90, env=env)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000   # drawn, not blank


def test_page_off(cluster_factory):
    c = cluster_factory(n=1, conf="[controller]\nstatus_port = -1\n")
    c.start()
    assert not os.path.exists(c.path("security", "ipcontroller-status.http"))
    p = subprocess.run([tool("ipcluster"), "status", f"--profile={c.profile}"], env=c.env,
                       capture_output=True, text=True, timeout=30)
    # without the page, ipcluster status asks through the status capability
    assert p.returncode == 0 and "1 registered [0]" in p.stdout
