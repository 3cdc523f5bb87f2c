"""engine_launcher = sge against a real sge_qmaster + sge_execd on loopback."""
import batchsys
import checks
from conftest import tool


def test_job_array_runs_engines_and_stop_cancels(sge, batch_cluster):
    c = batch_cluster(sge, "sge", {"queue": "all.q"})
    checks.start_ok(c)
    seen = checks.run_everywhere(c, "JOB_ID")
    assert len({w[1] for w in seen}) == 1               # tasks of one array job
    script = c.log("ipengine.sge")
    assert "#$ -t 1-2" in script and "#$ -q all.q" in script
    # Only the connection file's path went to the job (in the submitted copy
    # of the script, not qsub -V's environment, which qstat -j shows to
    # every user); ours keeps no copy, and the token is nowhere.
    assert "PLEXA_URL" not in script
    listing = batchsys.run(["qstat", "-j", seen[0][1]], sge.env).stdout
    assert "PLEXA_URL_FILE" in listing or "script_file" in listing, listing
    checks.token_nowhere(c, listing)
    checks.stop_clean(c, sge)


def test_one_job_in_a_parallel_environment(sge, batch_cluster):
    c = batch_cluster(sge, "sge", {"job_array": "false", "pe": "mpi"})
    checks.start_ok(c)
    jobs = sge.jobs()
    assert len(jobs) == 1 and jobs[0].split()[-1] == "2", jobs    # one job, 2 slots
    seen = checks.run_everywhere(c, "JOB_ID")
    assert len({w[1] for w in seen}) == 1
    assert "#$ -pe mpi 2" in c.log("ipengine.sge")
    checks.stop_clean(c, sge)


def test_held_job_times_out_with_qstats_words(sge, batch_cluster):
    c = batch_cluster(sge, "sge", {"submit_args": "-h"})
    p = c.start("--timeout", "4")
    assert p.returncode != 0
    assert "only 0 of 2 engines registered in time" in p.stderr, p.stderr
    assert "2 hqw (" in p.stderr and "Job is in hold state" in p.stderr, p.stderr
    checks.failed_start_clean(c, sge, p)


def test_unknown_queue_fails_with_qsubs_words(sge, batch_cluster):
    c = batch_cluster(sge, "sge", {"queue": "nosuch"})
    p = c.start("--timeout", "30")
    assert p.returncode != 0
    assert 'qsub failed (exit 1): Unable to run job: Job was rejected because job requests ' \
           'unknown queue "nosuch"' in p.stderr, p.stderr
    assert p.elapsed < 15, p.elapsed
    checks.failed_start_clean(c, sge, p)


def test_job_script_failure_shows_qsubs_output_file(sge, batch_cluster):
    c = batch_cluster(sge, "sge", {"template": "failing.job"})
    checks.failed_job_script_reported(
        c, sge, "#$ -N {job_name}\n#$ -t {array_range}\n#$ -S /bin/sh\n#$ -j y\n"
                "#$ -o {log_dir}/\n", r"ipengine\.o\d+\.1")


def test_0_10_job_script_with_sge_script_option(sge, batch_cluster, tmp_path):
    """parallel_process.txt: `ipcluster sge -n 12 -q hpcqueue -s mysgescript.sh`
    with 0.10's own script, which says neither `#$ -t` nor `#$ -q`: ipcluster
    adds both, as 0.10 did, and the engines it starts register."""
    c = batch_cluster(sge, "sge", {}, profile="mode")
    c.write("cluster.conf", "[cluster]\nlisten = 127.0.0.1\n")
    script = tmp_path / "mysgescript.sh"
    script.write_text("#!/bin/sh\n"
                      "#$ -V\n"
                      "#$ -N ipengine\n"
                      "#$ -S /bin/sh\n"
                      "eid=$(($SGE_TASK_ID - 1))\n"
                      f"{tool('ipengine')} --logfile={tmp_path}/ipengine${{eid}}.log\n")
    p = c.ipcluster("sge", "-n", "2", "-q", "all.q", "-s", str(script), "--daemonize")
    assert p.returncode == 0, c.diagnose(p)
    submitted = c.log("ipengine.sge")
    assert "#$ -t 1-2\n" in submitted and "#$ -q all.q\n" in submitted, submitted
    mec = c.client()
    assert sorted(mec.get_ids()) == [0, 1]
    assert (tmp_path / "ipengine0.log").exists() and (tmp_path / "ipengine1.log").exists()
    checks.stop_clean(c, sge)
