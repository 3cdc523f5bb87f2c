/*
 * launcher-pbs: engines as a PBS/Torque job (qsub, qstat, qdel).
 *
 * job_array = true (the default) submits one array task per engine, like
 * IPython 0.10's PBS mode (#PBS -t); false submits one job of
 * nodes=1:ppn=n that starts every engine. Written for Torque and Slurm's
 * PBS wrappers (slurm-wlm-torque); PBS Pro differs in its directives
 * (-J, select=), which a template can use. The capability URL goes into
 * the submitted script by default: qstat -f lists a job's environment
 * (Variable_List) to whoever may query the job.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "plexa/launcher.h"
#include "plexa/plugin.h"
#include "plexa/batch.h"

#define PBS_UNKNOWN_JOB 153     /* qstat's exit status for "Unknown Job Id" */

/* The array index variable differs: PBS_ARRAYID (Torque), PBS_ARRAY_INDEX
 * (PBS Pro), SLURM_ARRAY_TASK_ID (Slurm's wrappers set no PBS_*). */
static const char pbs_tmpl_array[] =
    "#!/bin/sh\n"
    "#PBS -N {job_name}\n"
    "#PBS -t {array_range}\n"
    "#PBS -q {queue}\n"
    "#PBS -l walltime={walltime}\n"
    "#PBS -A {account}\n"
    "#PBS -l {resources}\n"
    "# plexa: one array task per engine; engine index = {first_index} + task index.\n"
    "umask 077\n"
    "cd \"{work_dir}\" || exit 1\n"
    "PLX_ENGINE_INDEX=${PBS_ARRAYID:-${PBS_ARRAY_INDEX:-$SLURM_ARRAY_TASK_ID}}\n"
    "PLX_ENGINE_INDEX=$(({first_index} + PLX_ENGINE_INDEX)); export PLX_ENGINE_INDEX\n"
    "exec {engine_command} >>\"{log_dir}/{prog}-$PLX_ENGINE_INDEX.out\" 2>&1\n";

static const char pbs_tmpl_single[] =
    "#!/bin/sh\n"
    "#PBS -N {job_name}\n"
    "#PBS -l nodes=1:ppn={n}\n"
    "#PBS -q {queue}\n"
    "#PBS -l walltime={walltime}\n"
    "#PBS -A {account}\n"
    "#PBS -l {resources}\n"
    "# plexa: one job, {n} engines started on its first node.\n"
    "umask 077\n"
    "cd \"{work_dir}\" || exit 1\n"
    "i=0\n"
    "while [ $i -lt {n} ]; do\n"
    "    k=$(({first_index} + i))\n"
    "    PLX_ENGINE_INDEX=$k {engine_command} >>\"{log_dir}/{prog}-$k.out\" 2>&1 &\n"
    "    i=$((i + 1))\n"
    "done\n"
    "wait\n";

static const plx_launcher_key pbs_keys[] = {
    { "queue", "batch", "Queue the job is submitted to (qsub -q); empty: the server's "
                        "default queue." },
    { "walltime", "01:00:00", "Wall-clock limit of the job (qsub -l walltime=...)." },
    { "account", "", "Account charged for the job (qsub -A)." },
    { "job_array", "true", "true: one array task per engine (qsub -t); false: one job "
                           "(nodes=1:ppn=n) that starts every engine." },
    { "resources", "mem=4gb", "Extra resource list for qsub -l, e.g. mem=4gb." },
    { "template", "engine.pbs", "Job script template, relative to the profile directory; "
                                "empty: the built-in one." },
    { "submit_args", "-W group_list=hpc", "Extra words for qsub, e.g. -W group_list=hpc "
                                          "or -h." },
    { "job_name", "ipengine", "Name of the job in qstat." },
    { "url_delivery", "script", "How engines get the controller's capability URL: script "
                                "(written into the submitted script) or env (qsub -V; "
                                "listed by qstat -f)." },
    { "poll_interval", "1.0", "Seconds between qstat queries while ipcluster watches "
                              "the job." },
    { "qsub", "qsub", "Path of qsub." },
    { "qstat", "qstat", "Path of qstat." },
    { "qdel", "qdel", "Path of qdel." },
    { NULL, NULL, NULL },
};

/* submit_flags' -o: one file for the job (every array task appends). */
static int pbs_output_path(const plx_batch_job *j, int index, char *path, size_t len)
{
    (void)index;
    return snprintf(path, len, "%s/%s.pbs.out", j->log_dir, j->job_name);
}

static void pbs_submit_flags(plx_batch_job *j, plx_batch_argv *av)
{
    /* The batch system's own output goes to the log directory on the
     * command line, where every flavour honours it (Slurm's wrapper
     * overrides #PBS -o with its own default in the working directory).
     * -V: the engines need our PATH, PYTHONPATH and PLEXA_DIR. */
    pbs_output_path(j, 0, j->sys_arg, sizeof j->sys_arg);
    plx_batch_argv_add(av, "-V");
    plx_batch_argv_add(av, "-j");
    plx_batch_argv_add(av, "oe");
    plx_batch_argv_add(av, "-o");
    plx_batch_argv_add(av, j->sys_arg);
}

/* "123", "123.server", "123[].server": the first word, as qstat/qdel want it. */
static int pbs_parse_id(const char *out, char *id, size_t len)
{
    size_t n;

    while (isspace((unsigned char)*out))
        out++;
    n = strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_[]");
    if (n == 0 || n >= len || !isdigit((unsigned char)out[0]) ||
        (out[n] != '\0' && !isspace((unsigned char)out[n])))
        return PLX_EPROTO;
    memcpy(id, out, n);
    id[n] = '\0';
    return PLX_OK;
}

static const char *pbs_state_words(char s)
{
    switch (s) {
    case 'Q': return "Q (queued)";
    case 'H': return "H (held)";
    case 'W': return "W (waiting for its start time)";
    case 'T': return "T (being moved)";
    case 'S': return "S (suspended)";
    case 'R': return "R (running)";
    case 'E': return "E (exiting)";
    case 'B': return "B (array begun)";
    case 'C': return "C (completed)";
    case 'F': return "F (finished)";
    case 'X': return "X (subjob finished)";
    default:  return "U (unknown)";
    }
}

/* One "Job Id:" record of qstat -f. */
typedef struct pbs_record {
    char state;
    int  exit_status;      /* -1: not shown */
    char comment[160];
} pbs_record;

static void pbs_record_add(const plx_batch_job *j, const pbs_record *r, int k,
                           plx_batch_tally *t)
{
    plx_batch_cat cat;

    if (strchr("QHWTSU", r->state))
        cat = PLX_BATCH_PENDING;
    else if (strchr("REB", r->state))
        cat = PLX_BATCH_RUNNING;
    else
        cat = r->exit_status == 0 ? PLX_BATCH_DONE : PLX_BATCH_FAILED;
    (void)j;
    plx_batch_tally_add(t, cat, k, pbs_state_words(r->state), r->comment);
}

/* "    key = value" */
static void pbs_field(char *line, pbs_record *r)
{
    char *eq = strstr(line, " = ");
    if (eq == NULL)
        return;
    *eq = '\0';
    char *key = line + strspn(line, " \t"), *val = eq + 3;
    if (strcmp(key, "job_state") == 0)
        r->state = val[0] ? val[0] : 'U';
    else if (strcmp(key, "exit_status") == 0)
        r->exit_status = atoi(val);
    else if (strcmp(key, "comment") == 0)
        plx_batch_squeeze(r->comment, sizeof r->comment, val);
}

static int pbs_parse_full(char *text, pbs_record *recs, int max)
{
    int n = 0;
    char *save = NULL;

    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "Job Id:", 7) == 0) {
            if (n == max)
                break;
            recs[n++] = (pbs_record){ .state = 'U', .exit_status = -1 };
        } else if (n > 0) {
            pbs_field(l, &recs[n - 1]);
        }
    }
    return n;
}

static bool pbs_unknown(const plx_batch_out *out)
{
    /* Torque and PBS Pro: "qstat: Unknown Job Id 12.server"; PBS Pro for
     * an ended job: "Job has finished, use -x ...". */
    return (WIFEXITED(out->status) && WEXITSTATUS(out->status) == PBS_UNKNOWN_JOB) ||
           strstr(out->err, "Unknown Job") || strstr(out->err, "Job has finished");
}

static int pbs_query(plx_batch_job *j, plx_batch_tally *t, plx_err_t *err)
{
    const char *args[] = { "-f", j->job_id, NULL };
    plx_batch_out out;
    pbs_record recs[256];
    int rc = plx_batch_run_cmd(j, PLX_BATCH_STATUS, args, &out, err);

    if (rc == PLX_OK && !plx_batch_out_ok(&out) && !pbs_unknown(&out))
        rc = plx_batch_fail(err, j->cmd[PLX_BATCH_STATUS], &out);
    else if (rc == PLX_OK && plx_batch_out_ok(&out)) {
        int n = pbs_parse_full(out.out, recs, (int)(sizeof recs / sizeof *recs));
        /* One record stands for the whole job (an array shown as one, as
         * qstat does without -t); several are its subjobs. */
        for (int i = 0; i < n; i++)
            pbs_record_add(j, &recs[i], n == 1 ? j->n : 1, t);
    }
    plx_batch_out_free(&out);
    return rc;
}

static const plx_batch_system pbs_system = {
    .name = "pbs",
    .directive = "#PBS",
    .queue_key = "queue",
    .array_opts = {"-t", "-J"},
    .array_fmt = "-t %s",
    .queue_opts = {"-q"},
    .queue_fmt = "-q %s",
    .tmpl_array = pbs_tmpl_array,
    .tmpl_single = pbs_tmpl_single,
    .array_first = 0,
    .url_in_script = true,
    .cmd_key = { "qsub", "qstat", "qdel" },
    .cmd_default = { "qsub", "qstat", "qdel" },
    .keys = pbs_keys,
    .submit_flags = pbs_submit_flags,
    .parse_id = pbs_parse_id,
    .query = pbs_query,
    .output_path = pbs_output_path,
};

PLX_BATCH_LAUNCHER(pbs, pbs_system, pbs_keys,
                   "engines as a PBS/Torque job (qsub/qstat/qdel)");
