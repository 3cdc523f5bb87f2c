/*
 * plexa-launcher-niced: an example site launcher, built outside plexa's
 * source tree against the installed headers (see README.md).
 *
 * It starts the engines on this machine at a lower CPU priority, so that a
 * shared workstation stays responsive: `niceness` in the profile's
 * [niced] section is the nice value. Each process gets its own process
 * group (signals reach what it spawns), dies with ipcluster
 * (PR_SET_PDEATHSIG), and receives spec->env -- the capability URL
 * among it -- through its environment, never its command line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <plexa/launcher.h>
#include <plexa/plugin.h>

/* This plugin's own release, in its descriptor (plexa never compares it). */
#define NICED_VERSION "1.0"

extern char **environ;

typedef struct niced_job {
    int    count;
    pid_t *pids;      /* 0 once reaped */
    int   *status;    /* wait status once reaped */
} niced_job;

static int niced_value(const plx_launch_spec *spec, int *out, plx_err_t *err)
{
    const char *v = spec->conf ? spec->conf(spec->conf_ctx, "niceness") : NULL;
    char *end;
    long n = v && *v ? strtol(v, &end, 10) : 10;

    if (v && *v && (*end || n < 0 || n > 19))
        return plx_err_set(err, PLX_EINVAL, "[niced] niceness: '%s' is not 0..19", v);
    *out = (int)n;
    return PLX_OK;
}

/* Our environment plus spec->env, built before fork (the child may only
 * call async-signal-safe functions). */
static char **niced_env(const plx_launch_spec *spec)
{
    size_t n = 0, m = 0, k = 0;
    char **envp;

    while (environ[n])
        n++;
    while (spec->env && spec->env[m])
        m++;
    envp = calloc(n + m + 1, sizeof *envp);
    if (!envp)
        return NULL;
    for (size_t i = 0; i < m; i++)
        envp[k++] = (char *)spec->env[i];
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=") + 1;
        int shadowed = 0;
        for (size_t j = 0; j < m && !shadowed; j++)
            shadowed = strncmp(environ[i], spec->env[j], len) == 0;
        if (!shadowed)
            envp[k++] = environ[i];
    }
    return envp;
}

static void niced_child(const plx_launch_spec *spec, char **envp, int nice_value, int log,
                        pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    setpriority(PRIO_PROCESS, 0, nice_value);
    if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
    }
    if (spec->cwd && chdir(spec->cwd) != 0)
        _exit(127);
    execve(spec->argv[0], (char *const *)spec->argv, envp);
    _exit(127);
}

static int niced_stop(void *job, double grace_s, plx_err_t *err);

static int niced_start(const plx_launch_spec *spec, void **out, plx_err_t *err)
{
    niced_job *j;
    char **envp;
    char path[4096];
    int nice_value = 10, rc = niced_value(spec, &nice_value, err);

    if (rc != PLX_OK)
        return rc;
    j = calloc(1, sizeof *j);
    envp = niced_env(spec);
    if (!j || !envp || !(j->pids = calloc((size_t)spec->count, sizeof *j->pids)) ||
        !(j->status = calloc((size_t)spec->count, sizeof *j->status))) {
        free(envp);
        if (j)
            free(j->pids);
        free(j);
        return plx_err_set(err, PLX_ENOMEM, "launcher niced: out of memory");
    }
    j->count = spec->count;
    pid_t parent = getpid();
    for (int i = 0; i < spec->count; i++) {
        int log = -1;
        if (spec->log_dir) {
            snprintf(path, sizeof path, "%s/ipengine-%d.out", spec->log_dir, i);
            log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        }
        pid_t pid = fork();
        if (pid == 0)
            niced_child(spec, envp, nice_value, log, parent);
        if (log >= 0)
            close(log);
        if (pid < 0) {
            rc = plx_err_set(err, PLX_EIO, "launcher niced: fork: %s", strerror(errno));
            break;
        }
        setpgid(pid, pid);
        j->pids[i] = pid;
    }
    free(envp);
    if (rc != PLX_OK) {
        niced_stop(j, 0, NULL);      /* all or nothing */
        free(j->pids);
        free(j->status);
        free(j);
        return rc;
    }
    *out = j;
    return PLX_OK;
}

static int niced_poll(void *job, plx_job_status *st, plx_err_t *err)
{
    niced_job *j = job;

    (void)err;
    memset(st, 0, sizeof *st);
    for (int i = 0; i < j->count; i++) {
        if (j->pids[i] > 0 && waitpid(j->pids[i], &j->status[i], WNOHANG) == j->pids[i])
            j->pids[i] = 0;
        if (j->pids[i] > 0) {
            st->running++;
            continue;
        }
        st->exited++;
        if (!WIFEXITED(j->status[i]) || WEXITSTATUS(j->status[i]) != 0) {
            st->failed++;
            st->last_status = j->status[i];
            snprintf(st->detail, sizeof st->detail, "engine #%d ended with wait status %d", i,
                     j->status[i]);
        }
    }
    st->state = st->running ? PLX_JOB_RUNNING : PLX_JOB_FINISHED;
    return PLX_OK;
}

static int niced_signal(void *job, int sig, plx_err_t *err)
{
    niced_job *j = job;

    (void)err;
    for (int i = 0; i < j->count; i++)
        if (j->pids[i] > 0)
            kill(-j->pids[i], sig);
    return PLX_OK;
}

static double niced_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int niced_stop(void *job, double grace_s, plx_err_t *err)
{
    niced_job *j = job;
    plx_job_status st;
    struct timespec nap = { 0, 10 * 1000 * 1000 };
    double deadline = niced_now() + grace_s;

    niced_signal(j, SIGTERM, err);
    while (niced_poll(j, &st, err) == PLX_OK && st.running && niced_now() < deadline)
        nanosleep(&nap, NULL);
    niced_signal(j, SIGKILL, err);
    for (int i = 0; i < j->count; i++)
        if (j->pids[i] > 0 && waitpid(j->pids[i], &j->status[i], 0) == j->pids[i])
            j->pids[i] = 0;
    return PLX_OK;
}

static void niced_destroy(void **job)
{
    niced_job *j = *job;

    if (j) {
        free(j->pids);
        free(j->status);
        free(j);
    }
    *job = NULL;
}

static const plx_launcher_key niced_keys[] = {
    { "niceness", "10", "Nice value of the engines, 0..19 (default 10)." },
    { NULL, NULL, NULL },
};

static const plx_launcher_ops niced_ops = {
    .size = sizeof niced_ops,
    .start = niced_start,
    .poll = niced_poll,
    .signal = niced_signal,
    .stop = niced_stop,
    .destroy = niced_destroy,
    .keys = niced_keys,
};

PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, "niced", "engines on this machine at a lower priority",
                  NICED_VERSION, &niced_ops);
