"""What each token lets its holder do, and no more (docs/threat-model.md,
"Holders of the mec and task tokens", "Rogue engine", "Revocation"):
engines keep the other capabilities' secrets out of the code they run,
no engine token on a command line or in an engine's environment, clients
that refuse engines' pickles, revocation that cancels queued work."""
import glob
import os
import sys
import time

import cloudpickle
import pytest

from conftest import as_user, mec_for, tc_for, tool, wait_until

# Functions of this module travel by value: engines cannot import it.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_code_on_engines_cannot_read_other_capabilities(owner_cluster):
    """A StringTask sent with only the task token tries to read every file
    of security/ and the engine token from its environment."""
    from plexa.task import StringTask
    c = owner_cluster()
    tc = tc_for(c)
    secdir = c.path("security")
    code = ("import os, glob\n"
            "found = {}\n"
            "for p in glob.glob(%r + '/*'):\n"
            "    try:\n"
            "        found[p] = open(p).read()\n"
            "    except OSError as e:\n"
            "        found[p] = type(e).__name__\n"
            "listing = os.listdir(%r)\n"
            "env = {k: v for k, v in os.environ.items() if 'PLEXA' in k}\n"
            "proc = open('/proc/self/environ', 'rb').read()\n"
            "token_in_proc = %r.encode() in proc\n" % (secdir, secdir,
                                                     c.url("engine").rsplit("/", 1)[1][:64]))
    r = tc.run(StringTask(code, pull=["found", "listing", "env", "token_in_proc"]), block=True)
    assert r.ns.listing == []                 # an empty cover over security/
    assert r.ns.found == {}
    assert "PLEXA_URL" not in r.ns.env
    assert r.ns.token_in_proc is False
    # what the cover hides is really there, for the owner's own tools
    assert os.path.exists(os.path.join(secdir, "ipcontroller-mec.url"))
    tc.close()


def test_engine_token_never_on_a_command_line(owner_cluster, users):
    c = owner_cluster()
    token = c.url("engine").rsplit("/", 1)[1][:64]
    for pid in c.pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert token.encode() not in f.read()
        except FileNotFoundError:
            pass
    # ipengine refuses a URL on its command line, saying where it belongs
    r = as_user(users["owner"], [tool("ipengine"), "--url", c.url("engine")], env=c.env)
    assert r.returncode == 2
    assert "on the command line" in r.stderr and "--url-file" in r.stderr
    assert token not in r.stderr
    assert "--url -" in as_user(users["owner"], [tool("ipengine"), "--help"]).stdout


def test_client_refuses_engine_pickles_when_told(owner_cluster):
    """A rogue engine (it has the engine token) answers a pull with a pickle
    whose loading would run code in the client."""
    from plexa.error import CompositeError
    c = owner_cluster()
    marker = "/tmp/plexa-security-pwned-%d" % os.getpid()
    if os.path.exists(marker):
        os.unlink(marker)
    mec = mec_for(c)
    mec.execute("class Evil:\n"
                "    def __reduce__(self):\n"
                "        return (open, (%r, 'w'))\n"
                "evil = Evil()\n" % marker)
    careful = mec_for(c, trust_engine_pickles=False)
    with pytest.raises(CompositeError) as e:
        careful.pull("evil")
    assert "UntrustedPickle" in str(e.value) and "trust_engine_pickles" in str(e.value)
    assert not os.path.exists(marker)
    # native values still come through
    careful.execute("x = [1, 2.5, 'three', None]")
    assert careful.pull("x") == [[1, 2.5, "three", None]] * 2
    careful.close()
    mec.close()


def test_profile_setting_turns_pickles_off(owner_cluster, users):
    """The owner's profile says trust_engine_pickles = false: the owner's
    client (its own process) refuses a pickle, accepts native values."""
    c = owner_cluster(conf="[client]\ntrust_engine_pickles = false\n")
    script = ("from plexa import client\n"
              "mec = client.MultiEngineClient()\n"
              "mec.execute('import fractions; f = fractions.Fraction(1, 3); n = 7')\n"
              "print(mec.pull('n'))\n"
              "try:\n"
              "    mec.pull('f')\n"
              "    print('unpickled')\n"
              "except Exception as e:\n"
              "    print('refused', 'UntrustedPickle' in str(e))\n")
    r = as_user(users["owner"], ["/usr/bin/python3", "-c", script], env=c.env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[7, 7]", "refused True"]


def test_revocation_cancels_queued_work(owner_cluster):
    """sleep(30) running, then 20 executes per engine and 10 tasks queued;
    revoking mec and task stops all of them from running, and interrupts
    the sleep: the engines are free for the new token at once."""
    from plexa.task import MapTask
    c = owner_cluster()
    mark = os.path.join("/tmp", "plexa-security-revoke-%d" % os.getpid())
    os.makedirs(mark, exist_ok=True)
    os.chmod(mark, 0o777)
    for f in glob.glob(mark + "/*"):
        os.unlink(f)
    mec = mec_for(c)
    tc = tc_for(c)
    mec.execute("import time", block=True)
    mec.execute("time.sleep(30)", block=False)
    for i in range(20):
        mec.execute("open(%r + '/mec-%%d-%d' %% id, 'w').close()" % (mark, i), block=False)
    ids = [tc.run(MapTask(_touch, args=(mark + "/task-%d" % i,))) for i in range(10)]
    time.sleep(0.3)
    # task first: revoking mec interrupts the sleep, and the engines would
    # be free for the tasks until the second revocation arrives
    c.run("revoke", "task")
    c.run("revoke", "mec")
    time.sleep(3)
    left = os.listdir(mark)
    assert left == [], (left, c.controller_log()[-3000:])
    again = mec_for(c)           # the new token: the sleep was interrupted
    assert again.execute("y = 1", block=False).get_result(timeout=20)
    again.close()
    fresh = tc_for(c)            # the new token: results say what happened
    with pytest.raises(Exception) as e:
        fresh.get_task_result(ids[-1], block=True)
    assert "revoked" in str(e.value)
    fresh.close()
    log = c.controller_log()
    assert "cancelled" in log


def _touch(path):
    open(path, "w").close()


def test_stale_pid_file_kills_nobody(owner_cluster, users):
    """ipcluster stop with a pid file naming an unrelated process (the pid
    was reused): the process lives."""
    import subprocess
    c = owner_cluster(start=False)
    victim = subprocess.Popen(["sleep", "60"], user=users["owner"].pw_uid)
    try:
        os.makedirs(c.path("pid"), exist_ok=True)
        with open(c.path("pid", "ipcluster.pid"), "w") as f:
            f.write("%d 12345\n" % victim.pid)     # not its start time
        os.chown(c.path("pid", "ipcluster.pid"), users["owner"].pw_uid, users["owner"].pw_gid)
        os.chown(c.path("pid"), users["owner"].pw_uid, users["owner"].pw_gid)
        c.run("stop", check=False)
        time.sleep(0.5)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
