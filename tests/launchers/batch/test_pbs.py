"""engine_launcher = pbs against Slurm's PBS/Torque wrappers (qsub, qstat,
qdel from slurm-wlm-torque) in front of a real slurmctld + slurmd."""
import os

import batchsys
import checks


def pbs_section(**keys):
    """The wrappers are unpacked on their own (gridengine-client ships a
    qsub too): the profile names them."""
    section = {cmd: os.path.join(batchsys.TORQUE_BIN, cmd) for cmd in ("qsub", "qstat", "qdel")}
    section.update(keys)
    return section


def queued(slurm):
    """qstat's own view: jobs not completed (the wrappers list C jobs too)."""
    p = batchsys.run([os.path.join(batchsys.TORQUE_BIN, "qstat")], slurm.env, check=False)
    # 153 ("no such job") is also its answer when there are no jobs at all.
    assert p.returncode == 0 or (p.returncode == 153 and not p.stdout), p.stdout + p.stderr
    return [ln for ln in p.stdout.split("\n")[2:] if ln.split() and ln.split()[4] != "C"]


def stop_clean(c, slurm):
    """Nothing left in qstat's view at once; and in Slurm's, where a
    cancelled array task shows COMPLETING until its processes are reaped
    (qstat shows it C, and shows one record for a whole array, so the
    launcher cannot wait for it), within Slurm's KillWait."""
    checks.stop_clean(c, slurm, jobs=lambda: queued(slurm))
    assert batchsys.wait_for(lambda: not slurm.jobs(), 10), slurm.jobs()


def test_job_array_runs_engines_and_stop_cancels(torque, batch_cluster):
    c = batch_cluster(torque, "pbs", pbs_section(walltime="00:10:00"))
    p = checks.start_ok(c)
    assert "pbs job" in p.stdout
    checks.run_everywhere(c, "SLURM_JOB_ID")
    script = c.log("ipengine.pbs")
    assert "#PBS -t 0-1" in script and "#PBS -l walltime=00:10:00" in script
    assert "PLEXA_URL" not in script
    stop_clean(c, torque)


def test_one_job_starts_every_engine(torque, batch_cluster):
    c = batch_cluster(torque, "pbs", pbs_section(job_array="false"))
    checks.start_ok(c)
    assert len(queued(torque)) == 1
    seen = checks.run_everywhere(c, "SLURM_JOB_ID")
    assert len({w[1] for w in seen}) == 1
    assert "#PBS -l nodes=1:ppn=2" in c.log("ipengine.pbs")
    stop_clean(c, torque)


def test_held_job_times_out_with_qstats_words(torque, batch_cluster):
    c = batch_cluster(torque, "pbs", pbs_section(submit_args="-h"))
    p = c.start("--timeout", "4")
    assert p.returncode != 0
    assert "only 0 of 2 engines registered in time (pbs job" in p.stderr, p.stderr
    assert "2 Q (queued)" in p.stderr, p.stderr
    checks.failed_start_clean(c, torque, p, jobs=lambda: queued(torque))
    assert batchsys.wait_for(lambda: not torque.jobs(), 10), torque.jobs()


def test_unknown_queue_fails_with_qsubs_words(torque, batch_cluster):
    c = batch_cluster(torque, "pbs", pbs_section(queue="nosuch"))
    p = c.start("--timeout", "30")
    assert p.returncode != 0
    assert "qsub failed (exit 1)" in p.stderr and "invalid partition specified: nosuch" \
        in p.stderr, p.stderr
    assert p.elapsed < 15, p.elapsed
    checks.failed_start_clean(c, torque, p, jobs=lambda: queued(torque))


def test_job_script_failure_shows_qsubs_output_file(torque, batch_cluster):
    c = batch_cluster(torque, "pbs", pbs_section(template="failing.job"))
    checks.failed_job_script_reported(c, torque, "#PBS -N {job_name}\n#PBS -t {array_range}\n",
                                      r"ipengine\.pbs\.out", jobs=lambda: queued(torque))
