/*
 * Ending a cluster, honestly.
 *
 * A launcher's stop can fail: a batch system that refuses to cancel, a
 * job that stays in the queue. Then the cluster is not stopped, and
 * saying so matters more than saying something: a job left waiting in a
 * real queue starts later, holds nodes and fails. So:
 *   - the keeper (the ipcluster that runs the cluster) keeps every job it
 *     could not stop, and its pid file, and writes pid/stop-failed naming
 *     them and why; the next `ipcluster stop` tries those jobs again;
 *   - `ipcluster stop` exits non-zero with that text, and `ipcluster
 *     status` shows it;
 *   - batch job ids go to pid/engine-jobs as jobs start, so that a stop
 *     after the keeper itself died can still cancel them (the launcher's
 *     cancel_job) and name those it could not.
 *
 * File map: the keeper's side (plx_cluster_stop_jobs, plx_cluster_note_job);
 * the command's side (plx_cluster_stop).
 */
#include "plx_cluster_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "plexa/plugin.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_time.h"

#define STOP_FAILED "stop-failed"
#define ENGINE_JOBS "engine-jobs"

/* ---- the keeper's side --------------------------------------------------- */

/* One job stopped and destroyed (*job = NULL), or why not appended to why
 * (naming its batch job id when it has one). */
static void stop_one(const plx_launcher_ops *ops, void **job, double grace, const char *what,
                     char *why, size_t len)
{
    plx_err_t err = {0};
    plx_job_status st;
    memset(&st, 0, sizeof st);
    ops->poll(*job, &st, &err);   /* for its id; a failed poll leaves it "" */
    memset(&err, 0, sizeof err);
    if (ops->stop(*job, grace, &err) == PLX_OK) {
        ops->destroy(job);
        return;
    }
    size_t used = strlen(why);
    snprintf(why + used, len - used, "%s%s%s%s: %s", used ? "; " : "", what,
             st.job_id[0] ? " job " : "", st.job_id, err.msg);
}

int plx_cluster_stop_jobs(cluster_t *c, plx_err_t *err)
{
    char why[2048] = "", path[PATH_MAX];
    if (c->ejob)
        stop_one(c->eops, &c->ejob, 2.0, "engine", why, sizeof why);
    int kept = 0;
    for (int i = 0; i < c->nrjobs; i++) {
        if (c->rjobs[i])
            stop_one(c->eops, &c->rjobs[i], 2.0, "engine", why, sizeof why);
        if (c->rjobs[i])
            c->rjobs[kept++] = c->rjobs[i];
    }
    c->nrjobs = kept;
    /* The controller last, and only once the engines are gone: a batch
     * job still running needs it to end cleanly. */
    if (!why[0] && c->cjob)
        stop_one(c->cops, &c->cjob, 3.0, "controller", why, sizeof why);
    plx_profile_file(&c->prof, "pid", STOP_FAILED, path, sizeof path);
    if (why[0]) {
        plx_err_set(err, PLX_ERR, "could not stop every job of profile '%s': %s; ipcluster "
                    "(pid %d) keeps them: run `ipcluster stop` again to retry", c->prof.name,
                    why, (int)getpid());
        if (plx_file_write_secret(path, err->msg, NULL) != PLX_OK)
            PLX_WARN("could not write %s", path);
        return err->code;
    }
    unlink(path);
    plx_profile_file(&c->prof, "pid", ENGINE_JOBS, path, sizeof path);
    unlink(path);
    if (c->owns_pidfile)
        unlink(c->pidfile);
    c->owns_pidfile = 0;
    return PLX_OK;
}

void plx_cluster_note_job(cluster_t *c, void *job)
{
    plx_job_status st;
    plx_err_t err = {0};
    char path[PATH_MAX];
    memset(&st, 0, sizeof st);
    if (c->eops->poll(job, &st, &err) != PLX_OK || !st.job_id[0])
        return;   /* no batch id: the processes end with their keeper */
    plx_profile_file(&c->prof, "pid", ENGINE_JOBS, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || dprintf(fd, "%s %s\n", c->engine_launcher, st.job_id) < 0)
        PLX_WARN("could not note job %s in %s: %s", st.job_id, path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* ---- the command's side -------------------------------------------------- */

static void kill_pidfile(const plx_profile_t *p, const char *file)
{
    char path[PATH_MAX];
    pid_t pid;
    plx_profile_file(p, "pid", file, path, sizeof path);
    if (plx_pidfile_read(path, &pid, NULL) == PLX_OK && plx_pid_alive(pid))
        kill(pid, SIGTERM);
    unlink(path);
}

/* Cancel batch job id with launcher name, as the profile's cluster.conf
 * configures it (the launcher's cancel_job). */
static int cancel_orphan(const plx_profile_t *p, const plx_conf_t *conf, const char *name,
                         const char *id, plx_err_t *err)
{
    const plx_launcher_ops *ops = plx_launcher_find(name, err);
    if (!ops)
        return err->code;
    if (!PLX_OPS_HAS(ops, plx_launcher_ops, cancel_job))
        return plx_err_set(err, PLX_EINVAL, "the %s launcher cannot cancel a job by its id",
                           name);
    plx_conf_view_t view = {.conf = conf, .section = name};
    const char *argv[] = {"ipengine", NULL};
    plx_launch_spec spec = {
        .size = sizeof spec, .role = PLX_LAUNCH_ENGINES, .count = 0, .argv = argv,
        .profile_dir = p->dir, .log_dir = p->log_dir, .conf = plx_conf_view_get,
        .conf_ctx = &view,
    };
    return ops->cancel_job(&spec, id, err);
}

/* The keeper is gone without stopping its jobs: cancel the batch jobs it
 * had started (pid/engine-jobs), which may still be queued or running,
 * and name any that could not be. 0 when there were none, 1 when all were
 * cancelled, else an error naming those left. */
static int orphaned_jobs(const plx_profile_t *p, plx_err_t *err)
{
    char path[PATH_MAX], jobs[2048], conf_path[PATH_MAX], left[2048] = "";
    plx_profile_file(p, "pid", ENGINE_JOBS, path, sizeof path);
    if (plx_file_read_small(path, jobs, sizeof jobs, NULL) != PLX_OK || !jobs[0])
        return PLX_OK;
    plx_conf_t *conf = plx_conf_new_defaults();
    plx_profile_file(p, NULL, "cluster.conf", conf_path, sizeof conf_path);
    plx_err_t cerr = {0};
    if (!conf || plx_conf_load(conf, conf_path, &cerr) != PLX_OK)
        snprintf(left, sizeof left, "(%s) ", conf ? cerr.msg : "out of memory");
    char *save = NULL;
    for (char *line = strtok_r(jobs, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64], id[128];
        plx_err_t why = {0};
        if (sscanf(line, "%63s %127s", name, id) != 2)
            continue;
        if (conf && !cerr.code && cancel_orphan(p, conf, name, id, &why) == PLX_OK) {
            PLX_INFO("cancelled %s job %s, left by an ipcluster that died", name, id);
            continue;
        }
        size_t used = strlen(left);
        snprintf(left + used, sizeof left - used, "%s%s job %s%s%s", used ? "; " : "", name,
                 id, why.code ? ": " : "", why.msg);
    }
    plx_conf_destroy(&conf);
    unlink(path);
    if (!left[0])
        return 1;
    return plx_err_set(err, PLX_ERR, "ipcluster for profile '%s' had died without stopping "
                       "its batch jobs, and these may still be queued or running: %s; cancel "
                       "them with the batch system", p->name, left);
}

int plx_cluster_stop(const char *profile, double timeout, plx_err_t *err)
{
    plx_profile_t p;
    char path[PATH_MAX], failed[PATH_MAX], said[2048];
    pid_t pid;
    if (plx_profile_open(profile, 0, &p, err) != PLX_OK)
        return err->code;
    plx_profile_file(&p, "pid", "ipcluster.pid", path, sizeof path);
    plx_profile_file(&p, "pid", STOP_FAILED, failed, sizeof failed);
    if (plx_pidfile_read(path, &pid, NULL) != PLX_OK)
        return plx_err_set(err, PLX_ENOTFOUND, "no cluster is running for profile '%s' "
                           "(no %s)", p.name, path);
    if (!plx_pid_alive(pid)) {
        unlink(path);
        unlink(failed);
        kill_pidfile(&p, "ipcontroller.pid");
        int orphans = orphaned_jobs(&p, err);
        if (orphans < 0)
            return orphans;
        if (orphans == 1)
            return PLX_OK;   /* what ipcluster had left is stopped */
        return plx_err_set(err, PLX_ENOTFOUND, "the cluster for profile '%s' was not running "
                           "(removed the stale pid file)", p.name);
    }
    unlink(failed);   /* a new attempt: its own outcome */
    kill(pid, SIGTERM);
    double deadline = plx_now_s() + timeout;
    while (plx_pid_alive(pid) && plx_now_s() < deadline) {
        if (plx_file_read_small(failed, said, sizeof said, NULL) == PLX_OK)
            return plx_err_set(err, PLX_ERR, "%s", said);
        plx_cluster_sleep(POLL_S);
    }
    if (plx_pid_alive(pid)) {
        /* Its children die with it (PR_SET_PDEATHSIG in the local launcher). */
        kill(pid, SIGKILL);
        kill_pidfile(&p, "ipcontroller.pid");
        unlink(path);
        int orphans = orphaned_jobs(&p, err);
        return orphans < 0 ? orphans : PLX_OK;
    }
    return PLX_OK;
}
