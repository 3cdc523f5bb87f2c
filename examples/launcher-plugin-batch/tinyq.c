/*
 * plexa-launcher-tinyq: engines as a job of tinyq, a small batch system
 * (its three commands are the scripts in tinyq/: submit, stat, cancel).
 *
 * Written against the installed toolkit alone (plexa/batch.h, pkg-config
 * plexa-batch): the toolkit renders the job script from the template
 * below, submits it, polls at a bounded rate, cancels and waits; this
 * file says only what is tinyq's own.
 */
#include <stdio.h>
#include <string.h>

#include <plexa/batch.h>

/* One job with all the engines; each gets its PLX_ENGINE_INDEX and log. */
static const char tinyq_tmpl[] =
    "#!/bin/sh\n"
    "#TINYQ name={job_name}\n"
    "cd \"{work_dir}\" || exit 1\n"
    "i=0\n"
    "while [ $i -lt {n} ]; do\n"
    "    k=$(({first_index} + i))\n"
    "    PLX_ENGINE_INDEX=$k {engine_command} >>\"{log_dir}/{prog}-$k.out\" 2>&1 &\n"
    "    i=$((i + 1))\n"
    "done\n"
    "wait\n";

static const plx_launcher_key tinyq_keys[] = {
    { "template", "engine.tinyq", "Job script template, relative to the profile "
                                  "directory; empty: the built-in one." },
    { "job_name", "ipengine", "Name of the job." },
    { "poll_interval", "1.0", "Seconds between tinyq-stat queries." },
    { "submit", "tinyq-submit", "Path of tinyq-submit." },
    { "stat", "tinyq-stat", "Path of tinyq-stat." },
    { "cancel", "tinyq-cancel", "Path of tinyq-cancel." },
    { NULL, NULL, NULL },
};

/* "17 RUNNING": the job's engines are all in one state. A job tinyq no
 * longer knows is left out, and the toolkit counts its engines failed. */
static int tinyq_query(plx_batch_job *j, plx_batch_tally *t, plx_err_t *err)
{
    const char *args[] = { j->job_id, NULL };
    plx_batch_out out;
    char id[PLX_BATCH_ID_MAX], state[32];
    int rc = plx_batch_run_cmd(j, PLX_BATCH_STATUS, args, &out, err);

    if (rc == PLX_OK && !plx_batch_out_ok(&out))
        rc = plx_batch_fail(err, j->cmd[PLX_BATCH_STATUS], &out);
    else if (rc == PLX_OK && sscanf(out.out, "%63s %31s", id, state) == 2) {
        plx_batch_cat cat = strcmp(state, "QUEUED") == 0    ? PLX_BATCH_PENDING
                            : strcmp(state, "RUNNING") == 0 ? PLX_BATCH_RUNNING
                            : strcmp(state, "DONE") == 0    ? PLX_BATCH_DONE
                                                            : PLX_BATCH_FAILED;
        plx_batch_tally_add(t, cat, j->n, state, "");
    }
    plx_batch_out_free(&out);
    return rc;
}

static const plx_batch_system tinyq_system = {
    .name = "tinyq",
    .directive = "#TINYQ",
    .tmpl_single = tinyq_tmpl,     /* no job arrays: one job for all engines */
    .url_in_script = false,        /* the URL reaches the job in its environment */
    .cmd_key = { "submit", "stat", "cancel" },
    .cmd_default = { "tinyq-submit", "tinyq-stat", "tinyq-cancel" },
    .keys = tinyq_keys,
    .query = tinyq_query,          /* the job id: the toolkit's rule ("Submitted job 17") */
};

PLX_BATCH_LAUNCHER_VERSION(tinyq, tinyq_system, tinyq_keys,
                           "engines as a tinyq job (tinyq-submit/stat/cancel)", "1.0");
