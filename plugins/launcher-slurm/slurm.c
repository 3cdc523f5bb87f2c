/*
 * launcher-slurm: engines as a Slurm job (sbatch, squeue, scancel).
 *
 * job_array = true (the default) submits one array task per engine, so
 * engines start as cores free up and each can end alone; false submits one
 * job of n tasks whose engines srun starts together across its nodes. The
 * capability URL travels in the exported environment by default: Slurm
 * shows a job's environment to its owner and administrators only.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "plexa/launcher.h"
#include "plexa/plugin.h"
#include "plexa/batch.h"

static const char slurm_tmpl_array[] =
    "#!/bin/sh\n"
    "#SBATCH --job-name={job_name}\n"
    "#SBATCH --array={array_range}\n"
    "#SBATCH --ntasks=1\n"
    "#SBATCH --partition={partition}\n"
    "#SBATCH --time={walltime}\n"
    "#SBATCH --account={account}\n"
    "#SBATCH --output={log_dir}/{job_name}-%A_%a.slurm.out\n"
    "# plexa: one array task per engine; engine index = {first_index} + task id.\n"
    "umask 077\n"
    "cd \"{work_dir}\" || exit 1\n"
    "PLX_ENGINE_INDEX=$(({first_index} + SLURM_ARRAY_TASK_ID)); export PLX_ENGINE_INDEX\n"
    "exec {engine_command} >>\"{log_dir}/{prog}-$PLX_ENGINE_INDEX.out\" 2>&1\n";

static const char slurm_tmpl_single[] =
    "#!/bin/sh\n"
    "#SBATCH --job-name={job_name}\n"
    "#SBATCH --ntasks={n}\n"
    "#SBATCH --ntasks-per-node={engines_per_node}\n"
    "#SBATCH --partition={partition}\n"
    "#SBATCH --time={walltime}\n"
    "#SBATCH --account={account}\n"
    "#SBATCH --output={log_dir}/{job_name}-%j.slurm.out\n"
    "# plexa: one job of {n} tasks; srun starts an engine per task, on every\n"
    "# node of the allocation; engine index = {first_index} + SLURM_PROCID.\n"
    "umask 077\n"
    "cd \"{work_dir}\" || exit 1\n"
    "PLX_LOG_DIR=\"{log_dir}\"; export PLX_LOG_DIR\n"
    "exec srun --kill-on-bad-exit=0 sh -c 'PLX_ENGINE_INDEX=$(({first_index} + SLURM_PROCID)); "
    "export PLX_ENGINE_INDEX; exec \"$@\" >>\"$PLX_LOG_DIR/{prog}-$PLX_ENGINE_INDEX.out\" "
    "2>&1' {prog} {engine_command}\n";

static const plx_launcher_key slurm_keys[] = {
    { "partition", "debug", "Partition the job is submitted to (sbatch --partition); "
                            "empty: the cluster's default partition." },
    { "walltime", "01:00:00", "Wall-clock limit of the job (sbatch --time)." },
    { "account", "", "Account charged for the job (sbatch --account)." },
    { "job_array", "true", "true: one array task per engine; false: one job of n tasks "
                           "started with srun." },
    { "engines_per_node", "", "With job_array = false: engines per node "
                              "(sbatch --ntasks-per-node)." },
    { "template", "engine.sbatch", "Job script template, relative to the profile "
                                   "directory; empty: the built-in one." },
    { "submit_args", "--qos=normal", "Extra words for sbatch, e.g. --qos=normal or "
                                     "--hold." },
    { "job_name", "ipengine", "Name of the job in squeue." },
    { "url_delivery", "env", "How engines get the controller's capability URL: env "
                             "(sbatch --export=ALL) or script (written into the "
                             "submitted script)." },
    { "poll_interval", "1.0", "Seconds between squeue queries while ipcluster watches "
                              "the job." },
    { "sbatch", "sbatch", "Path of sbatch." },
    { "squeue", "squeue", "Path of squeue." },
    { "scancel", "scancel", "Path of scancel." },
    { NULL, NULL, NULL },
};

static void slurm_submit_flags(plx_batch_job *j, plx_batch_argv *av)
{
    (void)j;
    /* --parsable: the id alone on stdout. --export=ALL is sbatch's
     * default, stated because a site's SBATCH_EXPORT could change it and
     * the engines need PLEXA_URL (and PATH, PYTHONPATH...). */
    plx_batch_argv_add(av, "--parsable");
    plx_batch_argv_add(av, "--export=ALL");
}

/* "123" or "123;cluster" */
static int slurm_parse_id(const char *out, char *id, size_t len)
{
    size_t n = strspn(out, "0123456789");

    if (n == 0 || n >= len || (out[n] != '\0' && out[n] != ';' && !isspace((unsigned char)out[n])))
        return PLX_EPROTO;
    memcpy(id, out, n);
    id[n] = '\0';
    return PLX_OK;
}

static plx_batch_cat slurm_category(const char *state)
{
    static const char *const pending[] = {
        "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
        "RESV_DEL_HOLD", "SUSPENDED", "STOPPED", "RESIZING",
    };
    static const char *const running[] = {
        "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT",
    };

    for (size_t i = 0; i < sizeof pending / sizeof *pending; i++)
        if (strcmp(state, pending[i]) == 0)
            return PLX_BATCH_PENDING;
    for (size_t i = 0; i < sizeof running / sizeof *running; i++)
        if (strcmp(state, running[i]) == 0)
            return PLX_BATCH_RUNNING;
    return strcmp(state, "COMPLETED") == 0 ? PLX_BATCH_DONE : PLX_BATCH_FAILED;
}

/* One line of squeue -o '%i|%T|%r': an array task, or the whole job. */
static void slurm_tally_line(const plx_batch_job *j, char *line, plx_batch_tally *t)
{
    char *state = strchr(line, '|');
    char *reason = state ? strchr(state + 1, '|') : NULL;

    if (reason == NULL)
        return;
    *state++ = '\0';
    *reason++ = '\0';
    if (strcmp(reason, "None") == 0)
        reason = "";
    plx_batch_tally_add(t, slurm_category(state), j->array ? 1 : j->n, state, reason);
}

static int slurm_query(plx_batch_job *j, plx_batch_tally *t, plx_err_t *err)
{
    /* -r: one line per array task, pending ones too; -t all: finished
     * jobs while Slurm remembers them (MinJobAge), so an engine that
     * failed is told from one that completed. */
    const char *args[] = { "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", j->job_id, NULL };
    plx_batch_out out;
    int rc = plx_batch_run_cmd(j, PLX_BATCH_STATUS, args, &out, err);

    if (rc == PLX_OK && !plx_batch_out_ok(&out)) {
        /* Forgotten already: the tally's unseen engines say so. */
        if (strstr(out.err, "Invalid job id") == NULL)
            rc = plx_batch_fail(err, j->cmd[PLX_BATCH_STATUS], &out);
    } else if (rc == PLX_OK) {
        char *save = NULL;
        for (char *line = strtok_r(out.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            slurm_tally_line(j, line, t);
    }
    plx_batch_out_free(&out);
    return rc;
}

/* The templates' --output: %A_%a for an array task, %j for one job. */
static int slurm_output_path(const plx_batch_job *j, int index, char *path, size_t len)
{
    if (j->array)
        return snprintf(path, len, "%s/%s-%s_%d.slurm.out", j->log_dir, j->job_name, j->job_id,
                        index);
    return snprintf(path, len, "%s/%s-%s.slurm.out", j->log_dir, j->job_name, j->job_id);
}

static const plx_batch_system slurm_system = {
    .name = "slurm",
    .directive = "#SBATCH",
    .queue_key = "partition",
    .array_opts = {"--array", "-a"},
    .array_fmt = "--array=%s",
    .queue_opts = {"--partition", "-p"},
    .queue_fmt = "--partition=%s",
    .tmpl_array = slurm_tmpl_array,
    .tmpl_single = slurm_tmpl_single,
    .array_first = 0,
    .url_in_script = false,
    .cmd_key = { "sbatch", "squeue", "scancel" },
    .cmd_default = { "sbatch", "squeue", "scancel" },
    .keys = slurm_keys,
    .submit_flags = slurm_submit_flags,
    .parse_id = slurm_parse_id,
    .query = slurm_query,
    .output_path = slurm_output_path,
};

PLX_BATCH_LAUNCHER(slurm, slurm_system, slurm_keys,
                   "engines as a Slurm job (sbatch/squeue/scancel)");
