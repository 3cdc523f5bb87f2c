/*
 * launcher-sge: engines as a Grid Engine job (qsub, qstat, qdel).
 *
 * job_array = true (the default) submits one array task per engine
 * (#$ -t 1-n, as IPython 0.10's SGE mode did); false submits one job that
 * starts n engines, with a parallel environment (pe = ...) to reserve the
 * slots. The capability URL goes into the submitted script by default:
 * Grid Engine shows a job's environment to every user (qstat -j), but not
 * its script.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plexa/launcher.h"
#include "plexa/plugin.h"
#include "plexa/batch.h"

static const char sge_tmpl_array[] =
    "#!/bin/sh\n"
    "#$ -N {job_name}\n"
    "#$ -t {array_range}\n"
    "#$ -S /bin/sh\n"
    "#$ -q {queue}\n"
    "#$ -l h_rt={walltime}\n"
    "#$ -A {account}\n"
    "#$ -j y\n"
    "#$ -o {log_dir}/\n"
    "# plexa: one array task per engine; tasks count from 1, engines from\n"
    "# {first_index} (ipcluster numbers every engine of a cluster once).\n"
    "umask 077\n"
    "cd \"{work_dir}\" || exit 1\n"
    "PLX_ENGINE_INDEX=$(({first_index} + SGE_TASK_ID - 1)); export PLX_ENGINE_INDEX\n"
    "exec {engine_command} >>\"{log_dir}/{prog}-$PLX_ENGINE_INDEX.out\" 2>&1\n";

static const char sge_tmpl_single[] =
    "#!/bin/sh\n"
    "#$ -N {job_name}\n"
    "#$ -S /bin/sh\n"
    "#$ -pe {pe} {n}\n"
    "#$ -q {queue}\n"
    "#$ -l h_rt={walltime}\n"
    "#$ -A {account}\n"
    "#$ -j y\n"
    "#$ -o {log_dir}/\n"
    "# plexa: one job, {n} engines started here (on the job's first host).\n"
    "umask 077\n"
    "cd \"{work_dir}\" || exit 1\n"
    "i=0\n"
    "while [ $i -lt {n} ]; do\n"
    "    k=$(({first_index} + i))\n"
    "    PLX_ENGINE_INDEX=$k {engine_command} >>\"{log_dir}/{prog}-$k.out\" 2>&1 &\n"
    "    i=$((i + 1))\n"
    "done\n"
    "wait\n";

static const plx_launcher_key sge_keys[] = {
    { "queue", "all.q", "Queue the job is submitted to (qsub -q); empty: any queue." },
    { "walltime", "01:00:00", "Wall-clock limit of the job (qsub -l h_rt=...)." },
    { "account", "", "Account string of the job (qsub -A)." },
    { "job_array", "true", "true: one array task per engine (qsub -t); false: one job "
                           "that starts every engine." },
    { "pe", "smp", "With job_array = false: parallel environment reserving the "
                   "engines' slots (qsub -pe PE n)." },
    { "template", "engine.sge", "Job script template, relative to the profile directory; "
                                "empty: the built-in one." },
    { "submit_args", "-P myproject", "Extra words for qsub, e.g. -P project or -h." },
    { "job_name", "ipengine", "Name of the job in qstat." },
    { "url_delivery", "script", "How engines get the controller's capability URL: script "
                                "(written into the submitted script) or env (qsub -V; "
                                "visible to all users in qstat -j)." },
    { "poll_interval", "1.0", "Seconds between qstat queries while ipcluster watches "
                              "the job." },
    { "qsub", "qsub", "Path of qsub." },
    { "qstat", "qstat", "Path of qstat." },
    { "qdel", "qdel", "Path of qdel." },
    { NULL, NULL, NULL },
};

static void sge_submit_flags(plx_batch_job *j, plx_batch_argv *av)
{
    (void)j;
    /* -terse: the id alone ("5" or "5.1-2:1"); -V: the engines need our
     * PATH, PYTHONPATH and PLEXA_DIR (PLEXA_URL itself is left out of
     * the environment when it goes into the script). */
    plx_batch_argv_add(av, "-terse");
    plx_batch_argv_add(av, "-V");
}

static int sge_parse_id(const char *out, char *id, size_t len)
{
    size_t n = strspn(out, "0123456789");

    if (n == 0 || n >= len || (out[n] != '\0' && out[n] != '.' && !isspace((unsigned char)out[n])))
        return PLX_EPROTO;
    memcpy(id, out, n);
    id[n] = '\0';
    return PLX_OK;
}

/* Tasks in a ja-task-ID field: "3", "1-4:1", "1,3,5-9:2". */
static int sge_task_count(const char *field)
{
    int count = 0;
    char buf[128], *save = NULL;

    snprintf(buf, sizeof buf, "%s", field);
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        int a, b, step = 1;
        if (sscanf(item, "%d-%d:%d", &a, &b, &step) >= 2 && b >= a && step > 0)
            count += (b - a) / step + 1;
        else
            count++;
    }
    return count;
}

static plx_batch_cat sge_category(const char *state)
{
    if (strchr(state, 'E'))
        return PLX_BATCH_FAILED;       /* Eqw: stays queued, never runs */
    if (strpbrk(state, "rtRd"))
        return PLX_BATCH_RUNNING;      /* d: being deleted, still there */
    return PLX_BATCH_PENDING;          /* qw, hqw, s, S, T */
}

/*
 * One line of plain qstat:
 *   job-ID prior name user state date time [queue] slots [ja-task-ID]
 * A queue instance (queue@host) is shown only once a task runs, so the
 * columns after the time shift; the queue is the one with an '@'.
 */
static bool sge_tally_line(const plx_batch_job *j, char *line, plx_batch_tally *t,
                           const char *reason)
{
    char *tok[12], *save = NULL;
    int n = 0;

    for (char *w = strtok_r(line, " \t", &save); w && n < 12; w = strtok_r(NULL, " \t", &save))
        tok[n++] = w;
    if (n < 8 || strcmp(tok[0], j->job_id) != 0)
        return false;
    int slots = strchr(tok[7], '@') ? 8 : 7;
    int k = !j->array ? j->n : n > slots + 1 ? sge_task_count(tok[slots + 1]) : 1;
    plx_batch_cat cat = sge_category(tok[4]);
    plx_batch_tally_add(t, cat, k, tok[4], cat == PLX_BATCH_RUNNING ? "" : reason);
    return cat != PLX_BATCH_RUNNING;
}

/* Why the job waits, in Grid Engine's words: the "scheduling info" and
 * "error reason" lines of qstat -j. */
static void sge_reason(plx_batch_job *j, char *reason, size_t len)
{
    const char *args[] = { "-j", j->job_id, NULL };
    plx_batch_out out;
    plx_err_t err = { 0 };
    size_t k = 0;

    reason[0] = '\0';
    if (plx_batch_run_cmd(j, PLX_BATCH_STATUS, args, &out, &err) == PLX_OK &&
        plx_batch_out_ok(&out)) {
        bool in = false;
        char *save = NULL;
        for (char *l = strtok_r(out.out, "\n", &save); l && k + 1 < len; l = strtok_r(NULL, "\n", &save)) {
            bool head = !isspace((unsigned char)l[0]);
            if (head)
                in = strncmp(l, "scheduling info:", 16) == 0 || strncmp(l, "error reason", 12) == 0;
            if (!in)
                continue;
            const char *text = head ? strchr(l, ':') + 1 : l;
            char one[256];
            plx_batch_squeeze(one, sizeof one, text);
            if (one[0])
                k += (size_t)snprintf(reason + k, len - k, "%s%s", k ? "; " : "", one);
        }
    }
    plx_batch_out_free(&out);
}

static int sge_tally(plx_batch_job *j, const char *listing, plx_batch_tally *t,
                     const char *reason)
{
    char *copy = strdup(listing), *save = NULL;
    int waiting = 0;

    if (copy == NULL)
        return PLX_ENOMEM;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        waiting += sge_tally_line(j, l, t, reason);
    free(copy);
    return waiting;
}

static int sge_query(plx_batch_job *j, plx_batch_tally *t, plx_err_t *err)
{
    plx_batch_out out;
    char reason[160];
    int rc = plx_batch_run_cmd(j, PLX_BATCH_STATUS, NULL, &out, err);

    if (rc == PLX_OK && !plx_batch_out_ok(&out))
        rc = plx_batch_fail(err, j->cmd[PLX_BATCH_STATUS], &out);
    if (rc == PLX_OK) {
        /* A first pass to learn whether anything waits; qstat -j only then. */
        plx_batch_tally probe;
        memset(&probe, 0, sizeof probe);
        int waiting = sge_tally(j, out.out, &probe, "");
        reason[0] = '\0';
        if (waiting > 0)
            sge_reason(j, reason, sizeof reason);
        if (waiting < 0 || sge_tally(j, out.out, t, reason) < 0)
            rc = plx_err_set(err, PLX_ENOMEM, "out of memory");
    }
    plx_batch_out_free(&out);
    return rc;
}

/* "-o {log_dir}/" names the file after the job, its id and its task:
 * NAME.oID for one job, NAME.oID.TASK for an array task (tasks count
 * from 1). */
static int sge_output_path(const plx_batch_job *j, int index, char *path, size_t len)
{
    if (j->array)
        return snprintf(path, len, "%s/%s.o%s.%d", j->log_dir, j->job_name, j->job_id,
                        index + j->sys->array_first);
    return snprintf(path, len, "%s/%s.o%s", j->log_dir, j->job_name, j->job_id);
}

static const plx_batch_system sge_system = {
    .name = "sge",
    .directive = "#$",
    .queue_key = "queue",
    .array_opts = {"-t"},
    .array_fmt = "-t %s",
    .queue_opts = {"-q"},
    .queue_fmt = "-q %s",
    .tmpl_array = sge_tmpl_array,
    .tmpl_single = sge_tmpl_single,
    .array_first = 1,
    .url_in_script = true,
    .cmd_key = { "qsub", "qstat", "qdel" },
    .cmd_default = { "qsub", "qstat", "qdel" },
    .keys = sge_keys,
    .submit_flags = sge_submit_flags,
    .parse_id = sge_parse_id,
    .query = sge_query,
    .output_path = sge_output_path,
};

PLX_BATCH_LAUNCHER(sge, sge_system, sge_keys,
                   "engines as a Grid Engine job (qsub/qstat/qdel)");
