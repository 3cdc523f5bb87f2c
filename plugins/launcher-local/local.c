/*
 * launcher-local: run the processes of a job on this machine.
 *
 * The process management (process groups, PR_SET_PDEATHSIG, reaping only
 * our own pids, SIGTERM then SIGKILL) is plugins/common/plx_procset.c,
 * shared with the ssh and mpiexec launchers. This file adds what is
 * local's own: process i runs spec->argv with PLX_ENGINE_INDEX=<k>, its
 * output appended to <log_dir>/<basename argv0>-<k>.out (k = the spec's
 * first index + i: unique across every start of a cluster), and a start
 * is all or nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plexa/launcher.h"
#include "plexa/plugin.h"
#include "plexa/version.h"
#include "plx_procset.h"

static int local_check_spec(const plx_launch_spec *spec, plx_err_t *err)
{
    if (spec == NULL || spec->size < offsetof(plx_launch_spec, log_dir) + sizeof spec->log_dir)
        return plx_err_set(err, PLX_EINVAL, "launcher local: spec missing or too old "
                           "(size field not set?)");
    if (spec->count <= 0)
        return plx_err_set(err, PLX_EINVAL, "launcher local: count is %d", spec->count);
    if (spec->argv == NULL || spec->argv[0] == NULL || *spec->argv[0] == '\0')
        return plx_err_set(err, PLX_EINVAL, "launcher local: empty argv");
    return PLX_OK;
}

/* <log_dir>/<basename argv0>-<i>.out, or NULL (inherit) without a log dir. */
static int local_log_path(const plx_launch_spec *spec, int i, char *path, size_t len,
                          const char **out, plx_err_t *err)
{
    const char *slash = strrchr(spec->argv[0], '/');

    *out = NULL;
    if (spec->log_dir == NULL || *spec->log_dir == '\0')
        return PLX_OK;
    if ((size_t)snprintf(path, len, "%s/%s-%d.out", spec->log_dir,
                         slash ? slash + 1 : spec->argv[0],
                         plx_launch_first_index(spec) + i) >= len)
        return plx_err_set(err, PLX_EINVAL, "launcher local: log path too long in %s",
                           spec->log_dir);
    *out = path;
    return PLX_OK;
}

static int local_start(const plx_launch_spec *spec, void **job, plx_err_t *err)
{
    char path[4096];
    plx_procset_t *s;
    plx_proc_cmd cmd;
    int rc = local_check_spec(spec, err);

    if (rc != PLX_OK)
        return rc;
    s = plx_procset_new(spec->count, "launcher local");
    if (s == NULL)
        return plx_err_set(err, PLX_ENOMEM, "launcher local: out of memory");
    memset(&cmd, 0, sizeof cmd);
    cmd.argv = spec->argv;
    cmd.env = spec->env;
    cmd.cwd = spec->cwd;
    cmd.index_env = true;
    cmd.index_base = plx_launch_first_index(spec);
    for (int i = 0; rc == PLX_OK && i < spec->count; i++) {
        rc = local_log_path(spec, i, path, sizeof path, &cmd.log_path, err);
        if (rc == PLX_OK)
            rc = plx_procset_spawn(s, i, &cmd, err);
    }
    if (rc != PLX_OK) {
        /* All or nothing: take down the ones already running. */
        plx_procset_stop(s, 0.0, NULL);
        plx_procset_destroy(&s);
        return rc;
    }
    *job = s;
    return PLX_OK;
}

static int local_poll(void *job, plx_job_status *st, plx_err_t *err)
{
    return plx_procset_poll(job, st, err);
}

static int local_signal(void *job, int sig, plx_err_t *err)
{
    return plx_procset_signal(job, sig, err);
}

static int local_stop(void *job, double grace_s, plx_err_t *err)
{
    return plx_procset_stop(job, grace_s, err);
}

static void local_destroy(void **job)
{
    if (job != NULL)
        plx_procset_destroy((plx_procset_t **)job);
}

static int local_pids(void *job, pid_t *out, int max)
{
    return plx_procset_pids(job, out, max);
}

/* The local launcher has no settings of its own. */
static const plx_launcher_key local_keys[] = {
    { NULL, NULL, NULL },
};

static const plx_launcher_ops local_ops = {
    .size = sizeof local_ops,
    .start = local_start,
    .poll = local_poll,
    .signal = local_signal,
    .stop = local_stop,
    .destroy = local_destroy,
    .pids = local_pids,
    .keys = local_keys,
};

PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, "local", "processes on this machine (fork + exec)",
                  PLX_VERSION_STRING, &local_ops);
