"""engine_launcher = slurm against a real slurmctld + slurmd on loopback."""
import checks


def test_job_array_runs_engines_and_stop_cancels(slurm, batch_cluster):
    c = batch_cluster(slurm, "slurm", {"partition": "debug", "walltime": "00:10:00"})
    p = checks.start_ok(c)
    assert "slurm job" in p.stdout                      # squeue's words in the progress
    seen = checks.run_everywhere(c, "SLURM_ARRAY_JOB_ID")
    assert len({w[1] for w in seen}) == 1               # tasks of one array job
    script = c.log("ipengine.slurm")
    assert "#SBATCH --array=0-1" in script and "#SBATCH --time=00:10:00" in script
    assert "PLEXA_URL=" not in script and "#SBATCH --account" not in script
    checks.stop_clean(c, slurm)


def test_one_job_from_profile_template(slurm, batch_cluster):
    c = batch_cluster(slurm, "slurm", {"job_array": "false", "template": "engines.sbatch",
                                       "job_name": "plexa-one"})
    c.write("engines.sbatch", """#!/bin/sh
#SBATCH --job-name={job_name}
#SBATCH --ntasks={n}
#SBATCH --partition={partition}
#SBATCH --output={log_dir}/one-%j.out
# {n} engines of {profile_dir}, one srun task each
cd "{work_dir}" || exit 1
PLX_HOME="${HOME:-/}"    # the shell's braces are left alone
exec srun sh -c 'PLX_ENGINE_INDEX=$SLURM_PROCID exec "$@" >"{log_dir}/{prog}-$SLURM_PROCID.out" 2>&1' sh {engine_command}
""")
    checks.start_ok(c)
    jobs = slurm.jobs()
    assert len(jobs) == 1 and "RUNNING" in jobs[0], jobs   # one job, both engines
    seen = checks.run_everywhere(c, "SLURM_JOB_ID")
    assert len({w[1] for w in seen}) == 1
    assert "#SBATCH --partition" not in c.log("plexa-one.slurm")   # empty: line left out
    checks.stop_clean(c, slurm)


def test_held_job_times_out_with_slurms_reason(slurm, batch_cluster):
    c = batch_cluster(slurm, "slurm", {"submit_args": "--hold"})
    p = c.start("--timeout", "4")
    assert p.returncode != 0
    assert "only 0 of 2 engines registered in time" in p.stderr, p.stderr
    assert "PENDING (JobHeldUser)" in p.stderr, p.stderr
    assert "pending in queue" in p.stdout, p.stdout
    checks.failed_start_clean(c, slurm, p)


def test_unknown_partition_fails_with_sbatchs_words(slurm, batch_cluster):
    c = batch_cluster(slurm, "slurm", {"partition": "nosuch"})
    p = c.start("--timeout", "30")
    assert p.returncode != 0
    assert "sbatch failed (exit 1): sbatch: error: invalid partition specified: nosuch" \
        in p.stderr, p.stderr
    assert p.elapsed < 15, p.elapsed                    # at once, not at the timeout
    checks.failed_start_clean(c, slurm, p)


def test_bad_template_placeholder_is_named(slurm, batch_cluster):
    c = batch_cluster(slurm, "slurm", {"template": "bad.sbatch"})
    c.write("bad.sbatch", "#!/bin/sh\n#SBATCH --ntasks={n}\nexec {engine_comand}\n")
    p = c.start("--timeout", "20")
    assert p.returncode != 0
    assert "bad.sbatch:3: unknown placeholder {engine_comand}" in p.stderr, p.stderr
    checks.failed_start_clean(c, slurm, p)


def test_0_10_mode_with_queue_option(slurm, batch_cluster):
    """`ipcluster slurm -n 2 --daemonize --queue debug`: IPython 0.10's batch
    mode, the launcher named on the command line, not in the profile."""
    c = batch_cluster(slurm, "slurm", profile="mode")
    c.write("cluster.conf", "[cluster]\nlisten = 127.0.0.1\n")
    p = c.ipcluster("slurm", "-n", "2", "--daemonize", "--queue", "debug")
    assert p.returncode == 0, c.diagnose(p)
    assert "with the 'slurm' launcher" in p.stdout, p.stdout
    checks.run_everywhere(c, "SLURM_ARRAY_JOB_ID")
    assert "#SBATCH --partition=debug" in c.log("ipengine.slurm")
    checks.stop_clean(c, slurm)


def test_job_script_failure_shows_slurms_output_file(slurm, batch_cluster):
    c = batch_cluster(slurm, "slurm", {"template": "failing.job"})
    checks.failed_job_script_reported(
        c, slurm, "#SBATCH --job-name={job_name}\n#SBATCH --array={array_range}\n"
                  "#SBATCH --output={log_dir}/{job_name}-%A_%a.slurm.out\n",
        r"ipengine-\d+_0\.slurm\.out")


def test_more_engines_come_as_another_job(slurm, batch_cluster):
    """`ipcluster engines -n 1` adds engines to the running cluster as one
    more batch job; `ipcluster stop` cancels both jobs."""
    c = batch_cluster(slurm, "slurm", {})
    c.n = 1          # the test node has 2 CPUs: room for one more engine
    p = c.start()
    assert p.returncode == 0 and "cluster ready: 1 engine;" in p.stdout, c.diagnose(p)
    p = c.ipcluster("engines", "-n", "1", "--timeout", "60")
    assert p.returncode == 0, c.diagnose(p)
    assert "1/1 more registered" in p.stdout and "now has 2 engines" in p.stdout, p.stdout
    assert len({line.split()[0].split("_")[0] for line in slurm.jobs()}) == 2, slurm.jobs()
    mec = c.client()
    assert sorted(mec.get_ids()) == [0, 1]
    # the second job's engine goes on from the first's: index 1, its own log
    mec.execute("import os; index = os.environ['PLX_ENGINE_INDEX']")
    assert sorted(mec.pull("index")) == ["0", "1"]
    checks.stop_clean(c, slurm)


def test_a_refused_cancel_is_reported_and_retried(slurm, batch_cluster, tmp_path):
    """scancel refuses once: `ipcluster stop` exits non-zero naming the job
    and scancel's words, the job and the cluster stay (status says why),
    and a second `ipcluster stop` cancels it."""
    import shutil
    wrapper = tmp_path / "scancel-once"
    wrapper.write_text("#!/bin/sh\n"
                       "if [ ! -e \"$0.refused\" ]; then\n"
                       "    : > \"$0.refused\"\n"
                       "    echo \"scancel: error: Kill job error on job id $1: "
                       "Access/permission denied\" >&2\n"
                       "    exit 1\n"
                       "fi\n"
                       f"exec {shutil.which('scancel', path=slurm.job_env().get('PATH'))} "
                       "\"$@\"\n")
    wrapper.chmod(0o755)
    c = batch_cluster(slurm, "slurm", {"scancel": str(wrapper)})
    checks.start_ok(c)
    job = slurm.jobs()[0].split()[0].split("_")[0]
    p = c.stop()
    assert p.returncode != 0, c.diagnose(p)
    assert "could not stop every job" in p.stderr and job in p.stderr, p.stderr
    assert "Access/permission denied" in p.stderr and "ipcluster stop` again" in p.stderr
    assert slurm.jobs(), "the job is still there, and the cluster says so"
    st = c.ipcluster("status")
    assert "running" in st.stdout and "stop failed:" in st.stdout and job in st.stdout, st.stdout
    checks.stop_clean(c, slurm)                 # the retry cancels it



def test_stop_after_ipcluster_died_cancels_its_jobs(slurm, batch_cluster):
    """ipcluster is killed while its engines run as a Slurm job: the next
    `ipcluster stop` cancels the job it had noted (pid/engine-jobs) with
    scancel, and nothing is left in the queue."""
    import os
    import signal
    c = batch_cluster(slurm, "slurm", {})
    checks.start_ok(c)
    job = slurm.jobs()[0].split()[0].split("_")[0]
    with open(os.path.join(c.profile_dir, "pid", "engine-jobs")) as f:
        assert f.read() == f"slurm {job}\n"
    with open(os.path.join(c.profile_dir, "pid", "ipcluster.pid")) as f:
        os.kill(int(f.read().split()[0]), signal.SIGKILL)
    assert slurm.jobs(), "the job outlives the ipcluster that submitted it"
    p = c.stop()
    assert p.returncode == 0, c.diagnose(p)
    assert checks.batchsys.wait_for(lambda: slurm.jobs() == [], 15), slurm.jobs()
    assert checks.batchsys.wait_for(lambda: not c.engines(), 15), c.engines()
