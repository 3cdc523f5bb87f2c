/*
 * plx_batch: the life of a batch job of engines -- render, submit, poll,
 * cancel -- for the pbs, sge and slurm launchers (see plx_batch.h).
 *
 * The engine token never reaches the batch system: not on a command line,
 * not in the job script, not in the job's environment. The job gets
 * PLEXA_URL_FILE, the path of the controller's 0600 connection file in the
 * profile's 0700 security/ directory (on the shared file system that also
 * holds the job's log), and ipengine reads the URL from there. With
 * url_delivery = env that path reaches the job through the exported
 * environment (sbatch --export=ALL, qsub -V); with url_delivery = script
 * it is written into the job script, which is created 0600 in the 0700 log
 * directory. Which is better depends on the system: Grid Engine shows every
 * job's environment to every user (qstat -j), Slurm shows it to nobody;
 * each plugin picks its default.
 */
#include <ctype.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plexa/batch.h"
#include "plx_time.h"

#define BATCH_SUBMIT_TIMEOUT_S  60.0   /* sbatch retries a busy controller */
#define BATCH_QUERY_TIMEOUT_S   30.0
#define BATCH_STOP_WAIT_S       8.0    /* after grace: cancelled jobs leaving the queue */
#define BATCH_STOP_POLL_S       0.25

extern char **environ;

static void batch_nap(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

static const char *batch_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---- the job ------------------------------------------------------------- */

static void batch_job_free(plx_batch_job *j)
{
    if (j == NULL)
        return;
    for (int i = 0; i < PLX_BATCH_NCMDS; i++)
        free(j->cmd[i]);
    free(j->submit_args);
    free(j->log_dir);
    free(j->cwd);
    free(j->script_path);
    for (char **e = j->envp; e && *e; e++)
        free(*e);
    free(j->envp);
    free(j);
}

static int batch_check_spec(const plx_batch_system *sys, const plx_launch_spec *spec,
                            plx_err_t *err)
{
    if (spec == NULL || spec->size < offsetof(plx_launch_spec, conf_ctx) + sizeof(void *))
        return plx_err_set(err, PLX_EINVAL, "launcher %s: spec missing or too old", sys->name);
    if (spec->count <= 0)
        return plx_err_set(err, PLX_EINVAL, "launcher %s: count is %d", sys->name,
                           spec->count);
    if (spec->argv == NULL || spec->argv[0] == NULL || spec->argv[0][0] != '/')
        return plx_err_set(err, PLX_EINVAL, "launcher %s: argv[0] must be an absolute path "
                           "(the job runs elsewhere)", sys->name);
    if ((spec->log_dir == NULL || !*spec->log_dir) &&
        (spec->profile_dir == NULL || !*spec->profile_dir))
        return plx_err_set(err, PLX_EINVAL, "launcher %s: no log or profile directory for "
                           "the job script", sys->name);
    return PLX_OK;
}

/* job_name: a name for the queue listing and file names, so no path or
 * shell characters. */
static int batch_job_name(const plx_batch_conf *c, plx_batch_job *j, plx_err_t *err)
{
    const char *v = plx_batch_conf_str(c, "job_name");

    if (*v == '\0')
        v = batch_basename(c->spec->argv[0]);
    if (strlen(v) >= sizeof j->job_name || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                   "abcdefghijklmnopqrstuvwxyz0123456789_.-")
                                               != strlen(v) || *v == '.' || *v == '-')
        return plx_err_set(err, PLX_EINVAL, "[%s] job_name: '%s' must be 1-63 letters, "
                           "digits, '_', '.' or '-', not starting with '.' or '-'",
                           c->sys->name, v);
    snprintf(j->job_name, sizeof j->job_name, "%s", v);
    return PLX_OK;
}

static int batch_url_delivery(const plx_batch_conf *c, plx_batch_job *j, plx_err_t *err)
{
    const char *v = plx_batch_conf_str(c, "url_delivery");

    j->url_in_script = c->sys->url_in_script;
    if (*v == '\0')
        return PLX_OK;
    if (strcmp(v, "env") == 0 || strcmp(v, "script") == 0) {
        j->url_in_script = strcmp(v, "script") == 0;
        return PLX_OK;
    }
    return plx_err_set(err, PLX_EINVAL, "[%s] url_delivery: '%s' is not 'env' or 'script'",
                       c->sys->name, v);
}

static int batch_read_conf(const plx_batch_conf *c, plx_batch_job *j, plx_err_t *err)
{
    const plx_batch_system *sys = c->sys;
    int rc;

    /* A system without job arrays (no array template) runs one job. */
    bool arrays = sys->tmpl_array != NULL;
    if ((rc = plx_batch_conf_bool(c, "job_array", arrays, &j->array, err)) != PLX_OK ||
        (rc = plx_batch_conf_seconds(c, "poll_interval", 1.0, &j->poll_interval, err)) ||
        (rc = batch_url_delivery(c, j, err)) != PLX_OK || (rc = batch_job_name(c, j, err)))
        return rc;
    if (j->array && !arrays)
        return plx_err_set(err, PLX_EINVAL, "[%s] job_array: %s has no job arrays (false: one "
                           "job for all engines)", sys->name, sys->name);
    for (int i = 0; i < PLX_BATCH_NCMDS; i++) {
        const char *v = plx_batch_conf_str(c, sys->cmd_key[i]);
        j->cmd[i] = strdup(*v ? v : sys->cmd_default[i]);
    }
    j->submit_args = strdup(plx_batch_conf_str(c, "submit_args"));
    j->log_dir = strdup(c->spec->log_dir && *c->spec->log_dir ? c->spec->log_dir
                                                               : c->spec->profile_dir);
    j->cwd = c->spec->cwd ? strdup(c->spec->cwd) : NULL;
    for (int i = 0; i < PLX_BATCH_NCMDS; i++)
        if (j->cmd[i] == NULL)
            return plx_err_set(err, PLX_ENOMEM, "launcher %s: out of memory", sys->name);
    if (j->submit_args == NULL || j->log_dir == NULL || (c->spec->cwd && j->cwd == NULL))
        return plx_err_set(err, PLX_ENOMEM, "launcher %s: out of memory", sys->name);
    return PLX_OK;
}

/* ---- the submitters' environment ----------------------------------------- */

static bool batch_same_key(const char *a, const char *b)
{
    size_t n = strcspn(b, "=");
    return strncmp(a, b, n) == 0 && a[n] == '=';
}

/* Ours, minus what spec->env names and any PLEXA_URL (a token of ours must
 * not reach the batch system), plus spec->env unless it goes into the
 * script. Every string is a copy (the job outlives spec). */
static int batch_env_build(plx_batch_job *j, const char *const *extra, plx_err_t *err)
{
    size_t n = 0, m = 0, k = 0;

    while (environ && environ[n])
        n++;
    while (extra && extra[m])
        m++;
    j->envp = calloc(n + m + 1, sizeof *j->envp);
    if (j->envp == NULL)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        bool overridden = batch_same_key(environ[i], "PLEXA_URL=");
        for (size_t e = 0; e < m && !overridden; e++)
            overridden = batch_same_key(environ[i], extra[e]);
        if (!overridden && (j->envp[k++] = strdup(environ[i])) == NULL)
            return plx_err_set(err, PLX_ENOMEM, "out of memory");
    }
    for (size_t e = 0; e < m && !j->url_in_script; e++)
        if ((j->envp[k++] = strdup(extra[e])) == NULL)
            return plx_err_set(err, PLX_ENOMEM, "out of memory");
    return PLX_OK;
}

/* ---- submission ------------------------------------------------------------ */

int plx_batch_run_cmd(plx_batch_job *j, int which, const char *const *args,
                      plx_batch_out *out, plx_err_t *err)
{
    plx_batch_argv av = { .n = 0 };

    memset(out, 0, sizeof *out);
    plx_batch_argv_add(&av, j->cmd[which]);
    for (int i = 0; args && args[i]; i++)
        plx_batch_argv_add(&av, args[i]);
    if (av.overflow)
        return plx_err_set(err, PLX_EINVAL, "%s: too many arguments", j->cmd[which]);
    return plx_batch_run(av.v, (const char *const *)j->envp, j->cwd,
                         which == PLX_BATCH_SUBMIT ? BATCH_SUBMIT_TIMEOUT_S
                                                   : BATCH_QUERY_TIMEOUT_S, out, err);
}

static int batch_submit(plx_batch_job *j, plx_err_t *err)
{
    plx_batch_argv av = { .n = 0 };
    plx_batch_out out = { 0 };
    char *words = strdup(j->submit_args);
    char what[64];
    int rc;

    if (words == NULL)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    snprintf(what, sizeof what, "[%s] submit_args", j->sys->name);
    if (j->sys->submit_flags)
        j->sys->submit_flags(j, &av);   /* may use j->sys_arg */
    rc = plx_batch_split_words(words, &av, what, err);
    plx_batch_argv_add(&av, j->script_path);
    if (rc == PLX_OK && av.overflow)
        rc = plx_err_set(err, PLX_EINVAL, "%s: too many words", what);
    if (rc == PLX_OK)
        rc = plx_batch_run_cmd(j, PLX_BATCH_SUBMIT, av.v, &out, err);
    if (rc == PLX_OK && !plx_batch_out_ok(&out))
        rc = plx_batch_fail(err, j->cmd[PLX_BATCH_SUBMIT], &out);
    int (*parse_id)(const char *, char *, size_t) =
        j->sys->parse_id ? j->sys->parse_id : plx_batch_parse_id;
    if (rc == PLX_OK && parse_id(out.out, j->job_id, sizeof j->job_id) != PLX_OK) {
        char said[200];
        plx_batch_squeeze(said, sizeof said, out.out);
        rc = plx_err_set(err, PLX_EPROTO, "%s printed no job id: '%s'",
                         batch_basename(j->cmd[PLX_BATCH_SUBMIT]), said);
    }
    if (rc == PLX_ETIMEDOUT)
        plx_err_prefix(err, "submitting the job (it may be queued anyway)");
    if (out.out != NULL || out.err != NULL)
        plx_batch_out_free(&out);
    free(words);
    return rc;
}

static int batch_prepare(const plx_batch_conf *c, plx_batch_job *j, char **script,
                         plx_err_t *err)
{
    char path[PATH_MAX];
    int rc;

    if ((rc = batch_read_conf(c, j, err)) != PLX_OK || (rc = plx_batch_script_render(c, j, script, err)))
        return rc;
    if ((size_t)snprintf(path, sizeof path, "%s/%s.%s", j->log_dir, j->job_name,
                         c->sys->name) >= sizeof path)
        return plx_err_set(err, PLX_EINVAL, "launcher %s: log directory path too long",
                           c->sys->name);
    if ((j->script_path = strdup(path)) == NULL)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    for (size_t i = 0; c->spec->env && c->spec->env[i]; i++)
        if (!plx_batch_env_name_ok(c->spec->env[i]))
            return plx_err_set(err, PLX_EINVAL, "launcher %s: bad environment entry '%.*s'",
                               c->sys->name, (int)strcspn(c->spec->env[i], "="),
                               c->spec->env[i]);
    return batch_env_build(j, c->spec->env, err);
}

/* Write, submit, and (url in script) rewrite the script without secrets. */
static int batch_write_and_submit(const plx_launch_spec *spec, plx_batch_job *j,
                                  const char *script, plx_err_t *err)
{
    char *full = j->url_in_script ? plx_batch_script_inject_env(script, spec->env) : NULL;
    int rc;

    if (j->url_in_script && full == NULL)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    rc = plx_batch_script_write(j->script_path, full ? full : script, err);
    if (rc == PLX_OK)
        rc = batch_submit(j, err);
    if (full != NULL) {
        plx_err_t werr = { 0 };
        /* The batch system has its copy; ours keeps no secret. */
        if (plx_batch_script_write(j->script_path, script, &werr) != PLX_OK)
            (void)unlink(j->script_path);
        free(full);
    }
    return rc;
}

/* spec->env with PLEXA_URL=... replaced by PLEXA_URL_FILE=<the profile's
 * engine connection file>: malloc'd array, its strings spec's or *file. */
static const char **batch_url_by_file(const plx_launch_spec *spec, char **file,
                                      plx_err_t *err)
{
    size_t m = 0;
    while (spec->env && spec->env[m])
        m++;
    const char **env = calloc(m + 1, sizeof *env);
    if (!env) {
        plx_err_set(err, PLX_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < m; i++) {
        env[i] = spec->env[i];
        if (!batch_same_key(spec->env[i], "PLEXA_URL="))
            continue;
        if (!spec->profile_dir || asprintf(file, "PLEXA_URL_FILE=%s/security/"
                                           "ipcontroller-engine.url", spec->profile_dir) < 0) {
            *file = NULL;
            free(env);
            plx_err_set(err, PLX_EINVAL, "the engine URL can only reach a batch job by a "
                        "file in the profile, and none was given");
            return NULL;
        }
        env[i] = *file;
    }
    return env;
}

int plx_batch_start(const plx_batch_system *sys, const plx_launch_spec *given, void **job,
                    plx_err_t *err)
{
    plx_launch_spec copy = *given, *spec = &copy;
    char *file = NULL;
    copy.env = batch_url_by_file(given, &file, err);
    if (!copy.env)
        return err->code;
    plx_batch_conf c = { .spec = spec, .sys = sys };
    plx_batch_job *j;
    char *script = NULL;
    int rc = batch_check_spec(sys, spec, err);

    if (rc != PLX_OK) {
        free((void *)copy.env);
        free(file);
        return rc;
    }
    if ((j = calloc(1, sizeof *j)) == NULL) {
        free((void *)copy.env);
        free(file);
        return plx_err_set(err, PLX_ENOMEM, "launcher %s: out of memory", sys->name);
    }
    j->sys = sys;
    j->n = spec->count;
    rc = batch_prepare(&c, j, &script, err);
    if (rc == PLX_OK)
        rc = batch_write_and_submit(spec, j, script, err);
    free(script);
    free((void *)copy.env);
    free(file);
    if (rc != PLX_OK) {
        batch_job_free(j);
        return rc;
    }
    *job = j;
    return PLX_OK;
}

/* ---- watching and stopping ------------------------------------------------- */

static int batch_query(plx_batch_job *j, plx_err_t *err)
{
    plx_batch_tally t;
    int rc;

    memset(&t, 0, sizeof t);
    rc = j->sys->query(j, &t, err);
    j->last_poll = plx_now_s();
    if (rc == PLX_OK)
        plx_batch_tally_status(&t, j->n, j->sys->name, j->job_id, &j->last);
    return rc;
}

int plx_batch_poll(void *job, plx_job_status *st, plx_err_t *err)
{
    plx_batch_job *j = job;
    int rc = PLX_OK;

    /* ipcluster polls every few milliseconds; the batch system's
     * controller is shared with everyone, so ask it at most once per
     * poll_interval and answer from the last reply in between. */
    if (j->last_poll == 0 || plx_now_s() - j->last_poll >= j->poll_interval)
        rc = batch_query(j, err);
    *st = j->last;
    if (j->last_poll != 0 && st->job_id[0] == '\0') {
        st->state = PLX_JOB_PENDING;
        st->pending = j->n;
        snprintf(st->job_id, sizeof st->job_id, "%s", j->job_id);
    }
    return rc;
}

static int batch_cancel(plx_batch_job *j, plx_err_t *err)
{
    const char *args[] = { j->job_id, NULL };
    plx_batch_out out;
    int rc = plx_batch_run_cmd(j, PLX_BATCH_CANCEL, args, &out, err);

    /* A cancel of a job that already ended fails on some systems; what
     * matters is whether the queue still has it, which stop checks. */
    if (rc == PLX_OK && !plx_batch_out_ok(&out))
        rc = plx_batch_fail(err, j->cmd[PLX_BATCH_CANCEL], &out);
    plx_batch_out_free(&out);
    j->cancelled = true;
    return rc;
}

int plx_batch_signal(void *job, int sig, plx_err_t *err)
{
    plx_batch_job *j = job;

    /* Batch systems signal jobs in their own ways (scancel -s, qsig,
     * nothing in Grid Engine); ending one is the only portable act. */
    if (sig == SIGTERM || sig == SIGKILL || sig == SIGINT || sig == SIGHUP)
        return batch_cancel(j, err);
    return plx_err_set(err, PLX_EINVAL, "launcher %s: cannot send signal %d to batch job %s "
                       "(only cancel: SIGTERM, SIGINT, SIGHUP, SIGKILL)", j->sys->name, sig,
                       j->job_id);
}

static bool batch_gone(const plx_job_status *st)
{
    return st->pending == 0 && st->running == 0;
}

int plx_batch_stop(void *job, double grace_s, plx_err_t *err)
{
    plx_batch_job *j = job;
    double deadline = plx_now_s() + (grace_s > 0 ? grace_s : 0) + BATCH_STOP_WAIT_S;
    plx_err_t cerr = { 0 };
    int crc = batch_cancel(j, &cerr), rc;

    for (;;) {
        rc = batch_query(j, err);
        if (rc == PLX_OK && batch_gone(&j->last))
            return PLX_OK;
        if (plx_now_s() >= deadline)
            break;
        batch_nap(BATCH_STOP_POLL_S);
    }
    if (rc != PLX_OK)
        return plx_err_prefix(err, "cancelled job, cannot see whether it left the queue");
    if (crc != PLX_OK)
        return plx_err_set(err, crc, "cancelling %s job %s: %s", j->sys->name, j->job_id,
                           cerr.msg);
    return plx_err_set(err, PLX_ETIMEDOUT, "%s job %s still in the queue %.0f s after "
                       "cancelling it: %s", j->sys->name, j->job_id,
                       BATCH_STOP_WAIT_S + grace_s, j->last.detail);
}

int plx_batch_parse_id(const char *out, char *id, size_t len)
{
    for (const char *p = out; p && *p; p++) {
        if (!isdigit((unsigned char)*p) || (p > out && !isspace((unsigned char)p[-1])))
            continue;
        size_t n = strcspn(p, " \t\r\n;(\"'");
        if (n == 0 || n >= len)
            return PLX_EPROTO;
        memcpy(id, p, n);
        id[n] = '\0';
        return PLX_OK;
    }
    return PLX_EPROTO;
}

int plx_batch_cancel_id(const plx_batch_system *sys, const plx_launch_spec *spec,
                        const char *job_id, plx_err_t *err)
{
    plx_batch_conf c = { .spec = spec, .sys = sys };
    const char *cmd = plx_batch_conf_str(&c, sys->cmd_key[PLX_BATCH_CANCEL]);
    const char *argv[] = { *cmd ? cmd : sys->cmd_default[PLX_BATCH_CANCEL], job_id, NULL };
    plx_batch_out out = { 0 };
    int rc = plx_batch_run(argv, NULL, spec->cwd, BATCH_QUERY_TIMEOUT_S, &out, err);

    if (rc == PLX_OK && !plx_batch_out_ok(&out))
        rc = plx_batch_fail(err, argv[0], &out);
    plx_batch_out_free(&out);
    return rc;
}

int plx_batch_remote_host(const plx_launch_spec *spec, char *host, size_t len,
                          plx_err_t *err)
{
    (void)spec;
    (void)err;
    /* Which hosts is the scheduler's business, and asking it (sinfo,
     * qhost) would contact its daemon, which this check must not do. */
    snprintf(host, len, "the batch system's compute nodes");
    return 1;
}

int plx_batch_output_file(void *job, int index, char *path, size_t len)
{
    const plx_batch_job *j = job;
    struct stat sb;

    if (j == NULL || !j->job_id[0] || index < 0 || index >= j->n || len == 0 ||
        !j->sys->output_path || (size_t)j->sys->output_path(j, index, path, len) >= len) {
        if (len > 0)
            path[0] = '\0';
        return 0;
    }
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

void plx_batch_destroy(void **job)
{
    if (job == NULL)
        return;
    batch_job_free(*job);
    *job = NULL;
}
