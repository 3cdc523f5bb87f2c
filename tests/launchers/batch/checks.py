"""What every batch launcher test checks, whatever the batch system."""
import os
import re
import time

import batchsys


def start_ok(c):
    """`ipcluster start` returns once the engines registered, having said
    what the batch system was doing on the way."""
    p = c.start()
    assert p.returncode == 0, c.diagnose(p)
    assert "submitted as job" in p.stdout, p.stdout
    assert f"cluster ready: {c.n} engines" in p.stdout, p.stdout
    return p


def run_everywhere(c, job_var):
    """A MultiEngineClient execute on every engine; returns each engine's
    (engine index, batch job id) as the engine itself saw them."""
    mec = c.client()
    assert sorted(mec.get_ids()) == list(range(c.n))
    r = mec.execute(f"import os; where = (os.environ['PLX_ENGINE_INDEX'], "
                    f"os.environ.get('{job_var}'), os.getcwd()); "
                    f"url_file = os.environ.get('PLEXA_URL_FILE')")
    assert len(r) == c.n
    seen = mec.pull("where")
    assert sorted(int(w[0]) for w in seen) == list(range(c.n)), seen
    assert all(w[2] == c.cwd for w in seen), seen        # engines run where ipcluster ran
    assert all(w[1] for w in seen), seen                # inside the batch system's job
    # The job got the connection file's path, never the token itself.
    want = os.path.join(c.profile_dir, "security", "ipcontroller-engine.url")
    assert mec.pull("url_file") == [want] * c.n
    return seen


def token_nowhere(c, text):
    """The engine token is not in text (a job script, a job's listing)."""
    with open(os.path.join(c.profile_dir, "security", "ipcontroller-engine.url")) as f:
        token = f.read().strip().rsplit("/", 1)[1][:64]
    assert token not in text


def stop_clean(c, system, jobs=None):
    """`ipcluster stop`, then nothing queued and no engine left. jobs: the
    batch system's own listing of what is still queued or running
    (default: system.jobs)."""
    p = c.stop()
    assert p.returncode == 0, c.diagnose(p)
    left = (jobs or system.jobs)()
    assert left == [], left
    assert batchsys.wait_for(lambda: not c.engines(), 5), c.engines()


def failed_start_clean(c, system, p, jobs=None):
    """A start that failed leaves nothing queued and nothing running, as
    soon as ipcluster has returned."""
    assert p.returncode != 0, c.diagnose(p)
    left = (jobs or system.jobs)()
    assert left == [], (left, p.stderr)
    assert batchsys.wait_for(lambda: not c.engines(), 5), c.engines()


def failed_job_script_reported(c, system, directives, output_file, jobs=None):
    """A job script that fails before it starts the engine (here a site's
    `module load` on a node without modules) makes ipcluster fail at once
    with the batch system's output file and the script's own words, not
    with the stale log an earlier cluster left. output_file: how the
    batch system names its output file (a regular expression)."""
    c.write("failing.job", "#!/bin/sh\n" + directives +
            "module load python/3.11 || exit 3\n"
            "exec {engine_command}\n")
    os.makedirs(os.path.join(c.profile_dir, "log"), mode=0o700, exist_ok=True)
    stale = os.path.join(c.profile_dir, "log", "ipengine-0.out")
    with open(stale, "w") as f:
        f.write("a line an earlier cluster's engine wrote\n")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    p = c.start("--timeout", "60")
    assert p.returncode != 0, c.diagnose(p)
    assert "engines exited before registering (0 of 2 registered)" in p.stderr, p.stderr
    assert "module: not found" in p.stderr, p.stderr
    assert re.search(f"/log/{output_file}:\n", p.stderr), p.stderr
    assert "earlier cluster" not in p.stderr, p.stderr
    assert p.elapsed < 45, p.elapsed                    # when the job ended, not at the timeout
    failed_start_clean(c, system, p, jobs)
