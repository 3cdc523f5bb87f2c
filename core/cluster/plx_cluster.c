/* ipcluster's machinery; see plx_cluster.h. */
#include "plx_cluster_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plexa/client.h"
#include "plexa/launcher.h"
#include "plx_cluster_check.h"
#include "plx_conf.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_profile.h"
#include "plx_time.h"


static volatile sig_atomic_t got_signal, got_usr1;

static void on_signal(int sig) { got_signal = sig; }
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

/* Whether stdout and stderr are the same open file: one terminal, or
 * `> file 2>&1`. */
static int same_output(void)
{
    struct stat a, b;
    return fstat(STDOUT_FILENO, &a) == 0 && fstat(STDERR_FILENO, &b) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Tell the user (foreground: stdout; daemon: through the pipe) and log.
 * The log goes to stderr in the foreground: when that is stdout's file too,
 * the line would show twice, so it is only printed. */
static void progress(cluster_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(cluster_t *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (c->progress_fd >= 0) {
        PLX_INFO("%s", line);
        dprintf(c->progress_fd, "P %s\n", line);
    } else {
        if (!c->one_output)
            PLX_INFO("%s", line);
        printf("[ipcluster] %s\n", line);
        fflush(stdout);
    }
}

/* Last lines of a log file, for error messages about dead processes. */
static void log_tail(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = plx_file_fopen_ro(path, NULL);
    if (!f)
        return;
    char buf[4096];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long start = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    fseek(f, start, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* keep the last 6 lines */
    int lines = 0;
    char *p = buf + n;
    while (p > buf && lines < 7)
        if (*--p == '\n')
            lines++;
    const char *from = p == buf ? p : p + 1;
    size_t l = strlen(from);
    if (l >= len) { /* keep the end: the last lines matter most */
        from += l - (len - 1);
        l = len - 1;
    }
    memcpy(out, from, l);
    out[l] = '\0';
}

static int start_job(cluster_t *c, const plx_launcher_ops *ops, const char *launcher,
                     plx_launch_role role, int count, int first_index, const char *const *argv,
                     const char *const *env, void **job, plx_err_t *err)
{
    plx_conf_view_t view = {.conf = c->conf, .section = launcher};
    plx_launch_spec spec = {
        .size = sizeof spec, .role = role, .count = count, .argv = argv, .env = env,
        .cwd = c->cwd, .profile_dir = c->prof.dir, .log_dir = c->prof.log_dir,
        .conf = plx_conf_view_get, .conf_ctx = &view, .first_index = first_index,
    };
    return ops->start(&spec, job, err);
}

/* Was the file last written at or after t? */
static bool written_since(const struct stat *st, const struct timespec *t)
{
    return st->st_mtim.tv_sec > t->tv_sec ||
           (st->st_mtim.tv_sec == t->tv_sec && st->st_mtim.tv_nsec >= t->tv_nsec);
}

/* Does file a hold something, written after b (or is b empty)? */
static bool newer_nonempty(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || sa.st_size == 0)
        return false;
    if (stat(b, &sb) != 0 || sb.st_size == 0)
        return true;
    return written_since(&sa, &sb.st_mtim);
}

/* ---- start-up ----------------------------------------------------------- */

/* reuse: a restart after the controller died, keeping its port and tokens
 * (the files it left are its successor's input, so they stay; so do those
 * of a controller started with 0.10's -r). wait_controller tells the new
 * files from the old by their time. */
static int start_controller(cluster_t *c, int reuse, plx_err_t *err)
{
    char exe[PATH_MAX + 32], logfile[PATH_MAX], direnv[PATH_MAX + 16];
    snprintf(exe, sizeof exe, "%s/ipcontroller", c->bindir);
    /* Explicit, for launchers that do not pass our environment on (ssh):
     * the controller must open this very profile. */
    snprintf(direnv, sizeof direnv, "PLEXA_DIR=%.*s", (int)(strrchr(c->prof.dir, '/') - c->prof.dir),
             c->prof.dir);
    plx_profile_file(&c->prof, "log", "ipcontroller.log", logfile, sizeof logfile);
    /* PLX_CONTROLLER_WRAPPER="valgrind --log-file=..." runs the controller
     * under a tool (docs/reliability.md); words split at spaces. */
    char wrap[1024] = "";
    const char *w = getenv("PLX_CONTROLLER_WRAPPER");
    snprintf(wrap, sizeof wrap, "%s", w ? w : "");
    const char *argv[48];
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(wrap, " ", &save); tok && n < 20;
         tok = strtok_r(NULL, " ", &save))
        argv[n++] = tok;
    /* The addresses as ipcluster settled them (cluster.conf, --ip and
     * --location, or picked for remote engines): the controller reads its
     * cluster.conf itself, which may say otherwise. */
    const plx_cluster_conf_t *cc = plx_conf_cluster(c->conf);
    const char *const rest[] = {exe, "--profile", c->prof.name, "--logfile", logfile,
                                "--log-level", c->level, "--ip", cc->listen};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
        argv[n++] = rest[i];
    if (cc->location[0]) {
        argv[n++] = "--location";
        argv[n++] = cc->location;
    }
    if (reuse)
        argv[n++] = "--reuse";
    for (const char *const *a = c->o.controller_args; a && *a && n < 46; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    clock_gettime(CLOCK_REALTIME_COARSE, &c->ctl_started);
    const char *env[] = {direnv, NULL};
    if (start_job(c, c->cops, c->controller_launcher, PLX_LAUNCH_CONTROLLER, 1, 0, argv, env,
                  &c->cjob, err))
        return plx_err_prefix(err, "starting the controller");
    return PLX_OK;
}

static int job_finished(const plx_launcher_ops *ops, void *job, plx_job_status *st)
{
    plx_err_t err = {0};
    memset(st, 0, sizeof *st);
    if (ops->poll(job, st, &err) != PLX_OK)
        return 0;
    return st->state == PLX_JOB_FINISHED;
}

static int wait_controller(cluster_t *c, double deadline, char *url, size_t len, plx_err_t *err)
{
    char path[PATH_MAX], logfile[PATH_MAX], tail[2048];
    plx_profile_file(&c->prof, "security", "ipcontroller-engine.url", path, sizeof path);
    for (;;) {
        /* Only this controller's file: one started with -r finds its
         * predecessor's (the same URL) before it listens. */
        struct stat sb;
        if (stat(path, &sb) == 0 && written_since(&sb, &c->ctl_started) &&
            plx_file_read_small(path, url, len, NULL) == PLX_OK)
            return PLX_OK;
        plx_job_status st;
        if (job_finished(c->cops, c->cjob, &st)) {
            plx_profile_file(&c->prof, "log", "ipcontroller.log", logfile, sizeof logfile);
            log_tail(logfile, tail, sizeof tail);
            return plx_err_set(err, PLX_ERR, "the controller exited during start-up%s%s; "
                               "last lines of %s:\n%s", st.detail[0] ? ": " : "", st.detail,
                               logfile, tail);
        }
        if (plx_now_s() > deadline || got_signal)
            return plx_err_set(err, PLX_ETIMEDOUT, "the controller did not write %s in time",
                               path);
        plx_cluster_sleep(POLL_S);
    }
}

static int spawn_engines(cluster_t *c, int n, void **job, plx_err_t *err)
{
    char exe[PATH_MAX + 32], envurl[1200];
    snprintf(exe, sizeof exe, "%s/ipengine", c->bindir);
    /* The capability travels in the environment, not argv: other users
     * can read a command line in ps, not another user's environment. */
    snprintf(envurl, sizeof envurl, "PLEXA_URL=%s", c->engine_url);
    const plx_cluster_conf_t *cc = plx_conf_cluster(c->conf);
    const char *argv[8] = {exe, "--log-level", c->level, NULL, NULL, NULL, NULL, NULL};
    int n_argv = 3;
    if (!cc->hide_secrets)
        argv[n_argv++] = "--show-secrets";
    if (!cc->engine_ipython)
        argv[n_argv++] = "--no-ipython";
    if (cc->engine_ssh[0]) {
        argv[n_argv++] = "--enginessh";
        argv[n_argv++] = cc->engine_ssh;
    }
    const char *env[] = {envurl, NULL};
    /* Every engine of the cluster its own number (and log file), across
     * `ipcluster engines` and replacements. */
    int rc = start_job(c, c->eops, c->engine_launcher, PLX_LAUNCH_ENGINES, n, c->next_index,
                       argv, env, job, err);
    if (rc == PLX_OK) {
        c->next_index += n;
        plx_cluster_note_job(c, *job);
    }
    return rc;
}

static int start_engines(cluster_t *c, int n, const char *url, plx_err_t *err)
{
    snprintf(c->engine_url, sizeof c->engine_url, "%s", url);
    if (spawn_engines(c, n, &c->ejob, err))
        return plx_err_prefix(err, "starting engines");
    progress(c, "starting %d engine%s with the '%s' launcher", n, n == 1 ? "" : "s",
             c->engine_launcher);
    return PLX_OK;
}

/* The engine job ended (every process exited) or all its engines failed
 * before n registered: fail with the launcher's words and the log tail. */
static int engines_failed(cluster_t *c, int n, int k, const plx_job_status *st, plx_err_t *err)
{
    if (st->failed < n && !(st->state == PLX_JOB_FINISHED && k < n))
        return 0;
    char out[PATH_MAX], job_out[PATH_MAX], tail[2048];
    plx_profile_file(&c->prof, "log", "ipengine-0.out", out, sizeof out);
    /* A batch job that failed before it started the engine (a missing
     * directory on the node, a module that would not load) said why only
     * in the batch system's output file, and the engine's log may hold an
     * earlier cluster's lines (batch jobs append to it): the newer wins. */
    if (PLX_OPS_HAS(c->eops, plx_launcher_ops, output_file) &&
        c->eops->output_file(c->ejob, 0, job_out, sizeof job_out) == 1 &&
        newer_nonempty(job_out, out))
        snprintf(out, sizeof out, "%s", job_out);
    log_tail(out, tail, sizeof tail);
    plx_err_set(err, PLX_ERR, "engines exited before registering (%d of %d registered)%s%s; "
                "last lines of %s:\n%s", k, n, st->detail[0] ? ": " : "", st->detail, out, tail);
    return 1;
}

/* "engines: 1/4 registered", with the launcher's counts when it reports
 * processes that are queued or not yet known to the controller (batch
 * systems, ssh connections being set up). Printed when it changes. */
static void engines_progress(cluster_t *c, int k, int n, const plx_job_status *st, char *last,
                             size_t len)
{
    char line[512];
    if (st->pending > 0 || (st->job_id[0] && k < n))
        snprintf(line, sizeof line, "engines: %d submitted%s%s, %d pending in queue, %d running, "
                 "%d/%d registered", st->pending + st->running + st->exited,
                 st->job_id[0] ? " as job " : "", st->job_id, st->pending, st->running, k, n);
    else
        snprintf(line, sizeof line, "engines: %d/%d registered", k, n);
    if (strcmp(line, last) != 0)
        progress(c, "%s%s%s", line, st->detail[0] && k < n ? " - " : "",
                 k < n ? st->detail : "");
    snprintf(last, len, "%s", line);
}

static int wait_engines(cluster_t *c, int n, double deadline, plx_err_t *err)
{
    char mec[PATH_MAX], last[512] = "";
    plx_profile_file(&c->prof, "security", "ipcontroller-mec.url", mec, sizeof mec);
    plx_client_t *cl = plx_client_connect(mec, c->prof.name, deadline - plx_now_s(), err);
    if (!cl)
        return plx_err_prefix(err, "connecting to the new controller");
    int k = 0, rc = PLX_OK;
    for (;;) {
        int32_t *ids = NULL;
        size_t nids = 0;
        plx_job_status st;
        plx_err_t perr = {0};
        if ((rc = plx_client_get_ids(cl, &ids, &nids, err)) != PLX_OK)
            break;
        free(ids);
        k = (int)nids;
        memset(&st, 0, sizeof st);
        if (c->eops->poll(c->ejob, &st, &perr) != PLX_OK)
            snprintf(st.detail, sizeof st.detail, "%.255s", perr.msg);
        engines_progress(c, k, n, &st, last, sizeof last);
        if (k >= n)
            break;
        if (engines_failed(c, n, k, &st, err)) {
            rc = err->code;
            break;
        }
        if (plx_now_s() > deadline || got_signal) {
            rc = plx_err_set(err, PLX_ETIMEDOUT,
                             "only %d of %d engines registered in time%s%s%s; see %s for "
                             "their logs", k, n, st.detail[0] ? " (" : "", st.detail,
                             st.detail[0] ? ")" : "", c->prof.log_dir);
            break;
        }
        plx_cluster_sleep(POLL_S * 2);
    }
    plx_client_destroy(&cl);
    return rc;
}

/* ---- running and stopping ---------------------------------------------- */

/* Engine processes that ended with an error, over every engine job. */
static int engines_failed_count(cluster_t *c, char *detail, size_t dlen)
{
    int failed = 0;
    plx_job_status st;
    plx_err_t err = {0};
    void *jobs[MAX_ENGINE_JOBS + 1];
    int n = 0;
    jobs[n++] = c->ejob;
    for (int i = 0; i < c->nrjobs; i++)
        jobs[n++] = c->rjobs[i];
    for (int i = 0; i < n; i++) {
        memset(&st, 0, sizeof st);
        if (jobs[i] && c->eops->poll(jobs[i], &st, &err) == PLX_OK) {
            failed += st.failed;
            if (st.failed && st.detail[0])
                snprintf(detail, dlen, "%s", st.detail);
        }
    }
    return failed;
}

/* The restart policy (cluster.conf: restart_engines, max_restarts): an
 * engine that crashed is replaced after a back-off that doubles while
 * crashes keep coming. The replacement registers under a new id. An
 * engine that exited cleanly (kill()) is not replaced. */
typedef struct restarts {
    int    seen_failed, done, pending, budget;
    double backoff, due, last_crash;
} restarts_t;

/* Say which engine died and how, with the last lines it wrote outside
 * requests (a crash, a C extension's message): the local launchers name a
 * process "ipengine #N", whose output is log/ipengine-N.out. */
static void report_crash(cluster_t *c, const char *detail)
{
    char name[64], path[PATH_MAX], file[96], tail[2048] = "";
    int idx;
    if (sscanf(detail, "%63s #%d", name, &idx) == 2) {
        snprintf(file, sizeof file, "%s-%d.out", name, idx);
        plx_profile_file(&c->prof, "log", file, path, sizeof path);
        log_tail(path, tail, sizeof tail);
    }
    if (tail[0])
        PLX_WARN("%s; last lines of %s:\n%s", detail, path, tail);
    else
        PLX_WARN("%s", detail);
}

static void restart_check(cluster_t *c, restarts_t *r)
{
    const plx_cluster_conf_t *cc = plx_conf_cluster(c->conf);
    char detail[256] = "";
    int failed = engines_failed_count(c, detail, sizeof detail);
    double now = plx_now_s();
    if (failed > r->seen_failed) {
        int delta = failed - r->seen_failed;
        if (detail[0])
            report_crash(c, detail);
        r->seen_failed = failed;
        if (now - r->last_crash > 60.0)
            r->backoff = 1.0;
        r->last_crash = now;
        if (!cc->restart_engines) {
            PLX_WARN("%d engine(s) crashed; restart_engines is off", delta);
        } else if (r->done + r->pending + delta > r->budget || c->nrjobs >= MAX_ENGINE_JOBS) {
            PLX_WARN("%d engine(s) crashed; the restart budget (max_restarts = %d per engine) "
                     "is spent", delta, cc->max_restarts);
        } else {
            r->pending += delta;
            r->due = now + r->backoff;
            PLX_WARN("%d engine(s) crashed; restarting in %.1fs", delta, r->backoff);
            r->backoff = r->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : r->backoff * 2;
        }
    }
    if (r->pending && now >= r->due) {
        plx_err_t err = {0};
        if (c->nrjobs >= MAX_ENGINE_JOBS)   /* ipcluster engines may have taken the room */
            PLX_ERROR("restarting engines: this cluster already runs %d engine jobs",
                      MAX_ENGINE_JOBS);
        else if (spawn_engines(c, r->pending, &c->rjobs[c->nrjobs], &err) == PLX_OK) {
            c->nrjobs++;
            r->done += r->pending;
            PLX_INFO("started %d replacement engine(s) (%d of %d restarts used)", r->pending,
                     r->done, r->budget);
        } else {
            PLX_ERROR("restarting engines: %s", err.msg);
        }
        r->pending = 0;
    }
}

/* The controller's job ended: start a successor (restart_controller,
 * within max_restarts), or give up. 1 when it was restarted. */
static int restart_controller(cluster_t *c, const plx_job_status *st, int *left)
{
    const plx_cluster_conf_t *cc = plx_conf_cluster(c->conf);
    if (!cc->restart_controller || *left <= 0 || !st->failed) {
        PLX_WARN("the controller exited%s%s; stopping the cluster", st->detail[0] ? ": " : "",
                 st->detail);
        return 0;
    }
    plx_err_t err = {0};
    c->cops->destroy(&c->cjob);
    if (start_controller(c, 1, &err) != PLX_OK) {
        PLX_ERROR("the controller died (%s) and cannot be restarted: %s", st->detail, err.msg);
        return 0;
    }
    (*left)--;
    PLX_WARN("the controller died (%s); restarted it on the same port with the same tokens "
             "(%d restart%s left); engines reconnect, clients must reconnect", st->detail,
             *left, *left == 1 ? "" : "s");
    return 1;
}

/* `ipcluster engines -n N` left pid/add-engines ("N") and signalled us:
 * start N more engines with the engine launcher, as one more job. A
 * failure is left in pid/add-engines.err for the command to print; the
 * request file goes last, which tells the command it was served. */
static void serve_add_engines(cluster_t *c, restarts_t *r)
{
    char req[PATH_MAX], errfile[PATH_MAX], text[32];
    plx_err_t err = {0};
    plx_profile_file(&c->prof, "pid", "add-engines", req, sizeof req);
    plx_profile_file(&c->prof, "pid", "add-engines.err", errfile, sizeof errfile);
    if (plx_file_read_small(req, text, sizeof text, &err) != PLX_OK)
        return;   /* a stray SIGUSR1: nothing asked */
    char *end;
    long n = strtol(text, &end, 10);
    if (end == text || (*end && *end != '\n') || n < 1 || n > 65536)
        plx_err_set(&err, PLX_EINVAL, "add-engines: '%.20s' is not a number of engines", text);
    else if (c->nrjobs >= MAX_ENGINE_JOBS)
        plx_err_set(&err, PLX_ELIMIT, "this cluster already runs %d engine jobs, the most one "
                    "ipcluster keeps", MAX_ENGINE_JOBS);
    else if (spawn_engines(c, (int)n, &c->rjobs[c->nrjobs], &err) == PLX_OK) {
        c->nrjobs++;
        r->budget += plx_conf_cluster(c->conf)->max_restarts * (int)n;
        PLX_INFO("starting %ld more engine%s with the '%s' launcher", n, n == 1 ? "" : "s",
                 c->engine_launcher);
    }
    if (err.code && plx_file_write_secret(errfile, err.msg, NULL) != PLX_OK)
        PLX_ERROR("adding engines: %s", err.msg);
    unlink(req);
}

/* Stop the cluster's jobs; those that would not stop are kept (and named
 * in pid/stop-failed) until the next signal (`ipcluster stop` again) says
 * to try once more. */
static void stop_until_done(cluster_t *c)
{
    plx_err_t err = {0};
    while (plx_cluster_stop_jobs(c, &err) != PLX_OK) {
        PLX_ERROR("%s", err.msg);
        got_signal = 0;
        while (!got_signal)
            plx_cluster_sleep(0.2);
        PLX_INFO("received signal %d; stopping the jobs that remain", (int)got_signal);
        memset(&err, 0, sizeof err);
    }
}

/* Watch until a signal or the controller's exit; returns exit status. */
static int watch(cluster_t *c, int n)
{
    restarts_t r = {.backoff = 1.0, .budget = plx_conf_cluster(c->conf)->max_restarts * n};
    int ctl_left = plx_conf_cluster(c->conf)->max_restarts;
    while (!got_signal) {
        plx_job_status st;
        if (job_finished(c->cops, c->cjob, &st) && !restart_controller(c, &st, &ctl_left))
            return st.failed ? 1 : 0;
        if (got_usr1) {
            got_usr1 = 0;
            serve_add_engines(c, &r);
        }
        restart_check(c, &r);
        plx_cluster_sleep(0.2);
    }
    PLX_INFO("received signal %d; stopping the cluster", (int)got_signal);
    return 0;
}

static int check_not_running(cluster_t *c, plx_err_t *err)
{
    pid_t pid;
    if (plx_pidfile_read(c->pidfile, &pid, NULL) == PLX_OK && plx_pid_alive(pid) &&
        pid != getpid())
        return plx_err_set(err, PLX_EINVAL,
                           "a cluster is already running for profile '%s' (ipcluster pid %d); "
                           "stop it first with: ipcluster stop --profile=%s",
                           c->prof.name, (int)pid, c->prof.name);
    return PLX_OK;
}

static int cluster_start(cluster_t *c, plx_err_t *err)
{
    const plx_cluster_conf_t *cc = plx_conf_cluster(c->conf);
    int n = c->o.engines > 0 ? c->o.engines : cc->engines;
    double timeout = c->o.timeout > 0 ? c->o.timeout : cc->start_timeout;
    double deadline = plx_now_s() + timeout;
    char url[1024];
    if (plx_pidfile_write(c->pidfile, getpid(), err) != PLX_OK)
        return err->code;
    c->owns_pidfile = 1;
    if (start_controller(c, 0, err) != PLX_OK ||
        wait_controller(c, deadline, url, sizeof url, err))
        return err->code;
    progress(c, "controller started (profile '%s')", c->prof.name);
    if (start_engines(c, n, url, err) != PLX_OK || wait_engines(c, n, deadline, err) != PLX_OK)
        return err->code;
    progress(c, "cluster ready: %d engine%s; connection files in %s", n, n == 1 ? "" : "s",
             c->prof.security_dir);
    return PLX_OK;
}

/* Everything that can be known wrong before a process starts: the
 * launchers load, their cluster.conf sections hold only their keys, and
 * engines on other hosts will be able to reach the controller. */
static int preflight(cluster_t *c, plx_err_t *err)
{
    const plx_cluster_conf_t *cc = plx_conf_cluster(c->conf);
    c->controller_launcher = c->o.controller_launcher ? c->o.controller_launcher
                                                      : cc->controller_launcher;
    c->engine_launcher = c->o.engine_launcher ? c->o.engine_launcher : cc->engine_launcher;
    if (!(c->cops = plx_launcher_find(c->controller_launcher, err)) ||
        !(c->eops = plx_launcher_find(c->engine_launcher, err)))
        return plx_err_prefix(err, "launcher");
    if (plx_cluster_check_launcher_keys(c->conf, c->controller_launcher, c->engine_launcher,
                                        err) != PLX_OK)
        return err->code;
    plx_conf_view_t view = {.conf = c->conf, .section = c->engine_launcher};
    char exe[PATH_MAX + 32], note[1024];
    int picked = 0;
    snprintf(exe, sizeof exe, "%s/ipengine", c->bindir);
    const char *argv[] = {exe, NULL};
    plx_launch_spec spec = {
        .size = sizeof spec, .role = PLX_LAUNCH_ENGINES,
        .count = c->o.engines > 0 ? c->o.engines : cc->engines, .argv = argv, .cwd = c->cwd,
        .profile_dir = c->prof.dir, .log_dir = c->prof.log_dir,
        .conf = plx_conf_view_get, .conf_ctx = &view,
    };
    if (plx_cluster_check_reachable(c->conf, c->eops, c->engine_launcher, &spec, note,
                                    sizeof note, &picked, err) != PLX_OK)
        return err->code;
    if (picked)
        progress(c, "%s", note);
    else if (note[0])
        PLX_WARN("%s", note);
    return PLX_OK;
}

static int cluster_init(cluster_t *c, const plx_cluster_opts_t *o, plx_err_t *err)
{
    memset(c, 0, sizeof *c);
    c->o = *o;
    c->progress_fd = -1;
    c->one_output = same_output();
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return plx_err_set(err, PLX_EIO, "readlink /proc/self/exe: %s", strerror(errno));
    path[n] = '\0';
    snprintf(c->bindir, sizeof c->bindir, "%.*s", (int)(strrchr(path, '/') - path), path);
    if (!getcwd(c->cwd, sizeof c->cwd))
        return plx_err_set(err, PLX_EIO, "getcwd: %s", strerror(errno));
    if (plx_profile_open(o->profile, 1, &c->prof, err) != PLX_OK)
        return err->code;
    plx_profile_file(&c->prof, NULL, "cluster.conf", path, sizeof path);
    c->conf = plx_conf_new_defaults();
    if (!c->conf)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    if (plx_conf_load(c->conf, path, err) != PLX_OK)
        return err->code;
    for (const char *const *s = o->set; s && s[0]; s += 3)
        if (plx_conf_set(c->conf, s[0], s[1], s[2], err) != PLX_OK)
            return plx_err_prefix(err, "command line");
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    c->level = o->log_level ? o->log_level : levels[plx_conf_cluster(c->conf)->log_level];
    plx_profile_file(&c->prof, "pid", "ipcluster.pid", c->pidfile, sizeof c->pidfile);
    if (check_not_running(c, err) != PLX_OK)
        return err->code;
    return preflight(c, err);
}

/* Daemon: the parent relays progress until the child says OK or ERR. */
static int parent_wait(int fd, plx_err_t *err)
{
    FILE *f = fdopen(fd, "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "P ", 2) == 0) {
            printf("[ipcluster] %s\n", line + 2);
            fflush(stdout);
        } else if (strcmp(line, "OK") == 0) {
            fclose(f);
            return PLX_OK;
        } else if (strncmp(line, "E ", 2) == 0) {
            /* multi-line messages arrive with \x1f for newlines */
            for (char *p = line; *p; p++)
                if (*p == '\x1f')
                    *p = '\n';
            plx_err_set(err, PLX_ERR, "%s", line + 2);
            fclose(f);
            return PLX_ERR;
        }
    }
    if (f)
        fclose(f);
    return plx_err_set(err, PLX_ERR, "ipcluster exited during start-up");
}

static void child_report(int fd, int rc, const plx_err_t *err)
{
    if (rc == PLX_OK) {
        dprintf(fd, "OK\n");
        return;
    }
    char msg[PLX_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = '\x1f';
    dprintf(fd, "E %s\n", msg);
}

static int detach(cluster_t *c, plx_err_t *err)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return plx_err_set(err, PLX_EIO, "pipe: %s", strerror(errno));
    /* `ipcluster start | head -1`: once the reader is gone, the parent's
     * next progress line and the child's next report would raise SIGPIPE
     * and kill the cluster's keeper mid-start, leaving jobs no one stops.
     * Both write on regardless (EPIPE); launched programs get the default
     * back (plx_sigreset). */
    signal(SIGPIPE, SIG_IGN);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return plx_err_set(err, PLX_EIO, "fork: %s", strerror(errno));
    if (pid > 0) {
        close(pfd[1]);
        return parent_wait(pfd[0], err) == PLX_OK ? 1 : err->code;
    }
    close(pfd[0]);
    setsid();
    char logfile[PATH_MAX];
    plx_profile_file(&c->prof, "log", "ipcluster.log", logfile, sizeof logfile);
    int lfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nfd >= 0)
        dup2(nfd, 0);
    if (lfd >= 0) {
        dup2(lfd, 1);
        dup2(lfd, 2);
    }
    if (nfd > 2)
        close(nfd);
    if (lfd > 2)
        close(lfd);
    c->one_output = same_output();
    c->progress_fd = pfd[1];
    return PLX_OK;
}

int plx_cluster_run(const plx_cluster_opts_t *o, plx_err_t *err)
{
    cluster_t c;
    plx_log_set_component("ipcluster");
    int rc = cluster_init(&c, o, err);
    if (rc == PLX_OK && o->daemonize) {
        rc = detach(&c, err);
        if (rc == 1) { /* parent: the cluster is up */
            plx_conf_destroy(&c.conf);
            return 0;
        }
    }
    if (rc != PLX_OK) {
        plx_conf_destroy(&c.conf);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    rc = cluster_start(&c, err);
    plx_err_t serr = {0};
    if (rc != PLX_OK) {
        /* A failed start returns only once nothing it started is left,
         * or says what is. */
        PLX_ERROR("%s", err->msg);
        if (plx_cluster_stop_jobs(&c, &serr) != PLX_OK)
            plx_err_set(err, rc, "%.200s; then %.300s", err->msg, serr.msg);
    }
    if (c.progress_fd >= 0) {
        child_report(c.progress_fd, rc, err);
        close(c.progress_fd);
        c.progress_fd = -1;
    }
    int status = 1;
    if (rc == PLX_OK)
        status = watch(&c, c.o.engines > 0 ? c.o.engines : plx_conf_cluster(c.conf)->engines);
    stop_until_done(&c);
    PLX_INFO("cluster for profile '%s' stopped", c.prof.name);
    plx_conf_destroy(&c.conf);
    return status;
}

/* ---- ipcluster stop ----------------------------------------------------- */
