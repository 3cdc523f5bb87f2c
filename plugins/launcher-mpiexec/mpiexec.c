/*
 * launcher-mpiexec: N engines as one MPI job, `mpiexec -n N ipengine ...`
 * (IPython 0.10's mpiexec mode).
 *
 * The job is one local process, mpiexec, managed by plx_procset (own
 * process group, PR_SET_PDEATHSIG, SIGTERM then SIGKILL on stop: mpiexec
 * forwards SIGTERM to its ranks and takes them down with it). The ranks'
 * output goes to <log_dir>/<prog>-0.out. The capability URL reaches the
 * ranks through the environment: ranks on this host inherit mpiexec's,
 * and Open MPI is asked to forward PLEXA_URL to other hosts with
 * `-x PLEXA_URL` (the name only; the value never appears on a command
 * line). With `mpi = mpi4py` each engine runs `from mpi4py import MPI as
 * mpi` first and asks the controller for its rank as engine id.
 *
 * Running as root, Open MPI refuses to start unless told otherwise; we
 * tell it through OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) in mpiexec's
 * environment, which other MPI implementations ignore. Network interface
 * choices (OMPI_MCA_*_if_include) are the site's: mpiexec_args or the
 * environment.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plexa/launcher.h"
#include "plexa/plugin.h"
#include "plexa/version.h"
#include "plx_hostaddr.h"
#include "plx_procset.h"

#define MPX_ARGS_MAX  64
#define MPX_ARG_LEN   4096

typedef struct mpx_job {
    plx_procset_t *proc;     /* one process: mpiexec */
    int            count;    /* ranks */
} mpx_job_t;

/* Words of a setting, split on blanks with sh-like quotes; owns buf. */
typedef struct mpx_words {
    char  buf[MPX_ARG_LEN];
    char *w[MPX_ARGS_MAX + 1];
    int   n;
} mpx_words_t;

static const char *mpx_conf(const plx_launch_spec *spec, const char *key)
{
    const char *v = spec->conf ? spec->conf(spec->conf_ctx, key) : NULL;
    return v && *v ? v : NULL;
}

static int mpx_split(const char *text, mpx_words_t *out, const char *key, plx_err_t *err)
{
    char *d = out->buf, *end = out->buf + sizeof out->buf - 1;
    const char *p = text;

    out->n = 0;
    for (;;) {
        char quote = 0;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (out->n == MPX_ARGS_MAX)
            return plx_err_set(err, PLX_EINVAL, "[mpiexec] %s: more than %d words", key,
                               MPX_ARGS_MAX);
        out->w[out->n++] = d;
        for (; *p && (quote || !isspace((unsigned char)*p)) && d < end; p++) {
            if (quote && *p == quote)
                quote = 0;
            else if (!quote && (*p == '\'' || *p == '"'))
                quote = *p;
            else
                *d++ = *p;
        }
        if (quote || d >= end)
            return plx_err_set(err, PLX_EINVAL, "[mpiexec] %s: unbalanced quote or too long",
                               key);
        *d++ = '\0';
    }
    out->w[out->n] = NULL;
    return PLX_OK;
}

/* `mpi` = none | mpi4py: the ipengine --mpi option, or NULL. */
static int mpx_mpi_option(const plx_launch_spec *spec, const char **opt, plx_err_t *err)
{
    const char *mpi = mpx_conf(spec, "mpi");

    *opt = NULL;
    if (!mpi || strcmp(mpi, "none") == 0)
        return PLX_OK;
    if (strcmp(mpi, "mpi4py") == 0) {
        *opt = "--mpi=mpi4py";
        return PLX_OK;
    }
    return plx_err_set(err, PLX_EINVAL, "[mpiexec] mpi: '%.64s' is not none or mpi4py", mpi);
}

/* Is mpiexec Open MPI's? Its --version says so; it then needs -x to pass
 * a variable to ranks on other hosts. */
static bool mpx_is_open_mpi(const char *mpiexec)
{
    char buf[512];
    int pfd[2];
    size_t got = 0;
    pid_t pid;

    if (pipe2(pfd, O_CLOEXEC) != 0)
        return false;
    pid = fork();
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR | O_CLOEXEC);
        dup2(dn, 0);
        dup2(pfd[1], 1);
        dup2(dn, 2);
        execlp(mpiexec, mpiexec, "--version", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    for (ssize_t r; pid > 0 && got < sizeof buf - 1 &&
                    (r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0;)
        got += (size_t)r;
    close(pfd[0]);
    while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    buf[got] = '\0';
    return strstr(buf, "Open MPI") != NULL || strstr(buf, "OpenRTE") != NULL;
}

static int mpx_check_spec(const plx_launch_spec *spec, plx_err_t *err)
{
    if (spec == NULL || spec->size < offsetof(plx_launch_spec, conf_ctx) + sizeof spec->conf_ctx)
        return plx_err_set(err, PLX_EINVAL, "launcher mpiexec: spec missing or too old");
    if (spec->count <= 0)
        return plx_err_set(err, PLX_EINVAL, "launcher mpiexec: count is %d", spec->count);
    if (spec->argv == NULL || spec->argv[0] == NULL || *spec->argv[0] == '\0')
        return plx_err_set(err, PLX_EINVAL, "launcher mpiexec: empty argv");
    return PLX_OK;
}

/* mpiexec [mpiexec_args] [-x PLEXA_URL] -n N argv... [--mpi=mpi4py] */
static int mpx_argv(const plx_launch_spec *spec, mpx_words_t *cmd, mpx_words_t *args,
                    const char **argv, size_t max, char *n, size_t nlen,
                    const char *index_script, plx_err_t *err)
{
    const char *mpi_opt;
    size_t k = 0, nargs = 0;
    int rc = mpx_split(mpx_conf(spec, "mpiexec") ? mpx_conf(spec, "mpiexec") : "mpiexec", cmd,
                       "mpiexec", err);

    if (rc == PLX_OK)
        rc = mpx_split(mpx_conf(spec, "mpiexec_args") ? mpx_conf(spec, "mpiexec_args") : "",
                       args, "mpiexec_args", err);
    if (rc == PLX_OK)
        rc = mpx_mpi_option(spec, &mpi_opt, err);
    if (rc != PLX_OK)
        return rc;
    if (cmd->n == 0)
        return plx_err_set(err, PLX_EINVAL, "[mpiexec] mpiexec: empty command");
    while (spec->argv[nargs])
        nargs++;
    if ((size_t)(cmd->n + args->n) + nargs + 12 > max)
        return plx_err_set(err, PLX_EINVAL, "launcher mpiexec: command too long");
    for (int i = 0; i < cmd->n; i++)
        argv[k++] = cmd->w[i];
    for (int i = 0; i < args->n; i++)
        argv[k++] = args->w[i];
    if (mpx_is_open_mpi(cmd->w[0])) {
        argv[k++] = "-x";
        argv[k++] = "PLEXA_URL";
    }
    snprintf(n, nlen, "%d", spec->count);
    argv[k++] = "-n";
    argv[k++] = n;
    /* Each rank its engine index: the spec's first plus its rank, which
     * only the rank knows (Open MPI, MPICH/PMI, PMIx name it). */
    argv[k++] = "/bin/sh";
    argv[k++] = "-c";
    argv[k++] = index_script;
    argv[k++] = "ipengine";
    for (size_t i = 0; i < nargs; i++)
        argv[k++] = spec->argv[i];
    if (mpi_opt)
        argv[k++] = mpi_opt;
    argv[k] = NULL;
    return PLX_OK;
}

/* spec->env plus what running as root needs. */
static const char **mpx_env(const plx_launch_spec *spec)
{
    size_t m = 0, k = 0;
    const char **env;

    while (spec->env && spec->env[m])
        m++;
    env = calloc(m + 3, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < m; i++)
        env[k++] = spec->env[i];
    if (geteuid() == 0) {
        env[k++] = "OMPI_ALLOW_RUN_AS_ROOT=1";
        env[k++] = "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
    }
    env[k] = NULL;
    return env;
}

static int mpx_start(const plx_launch_spec *spec, void **job, plx_err_t *err)
{
    mpx_words_t cmd, args;
    const char *argv[2 * MPX_ARGS_MAX + 256];
    const char **env = NULL;
    char n[16], log[4096], script[256];
    const char *slash;
    mpx_job_t *j = NULL;
    int first = plx_launch_first_index(spec);
    int rc = mpx_check_spec(spec, err);

    snprintf(script, sizeof script,
             "PLX_ENGINE_INDEX=$((%d + ${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${PMIX_RANK:-0}}})); "
             "export PLX_ENGINE_INDEX; exec \"$@\"", first);
    if (rc == PLX_OK)
        rc = mpx_argv(spec, &cmd, &args, argv, sizeof argv / sizeof *argv, n, sizeof n, script,
                      err);
    if (rc != PLX_OK)
        return rc;
    slash = strrchr(spec->argv[0], '/');
    plx_proc_cmd pc = { .argv = argv, .cwd = spec->cwd, .label = "mpiexec" };
    if (spec->log_dir && *spec->log_dir) {
        if ((size_t)snprintf(log, sizeof log, "%s/%s-%d.out", spec->log_dir,
                             slash ? slash + 1 : spec->argv[0], first) >= sizeof log)
            return plx_err_set(err, PLX_EINVAL, "launcher mpiexec: log path too long in %s",
                               spec->log_dir);
        pc.log_path = log;
    }
    env = mpx_env(spec);
    j = calloc(1, sizeof *j);
    if (!env || !j || !(j->proc = plx_procset_new(1, "launcher mpiexec"))) {
        free(env);
        free(j);
        return plx_err_set(err, PLX_ENOMEM, "launcher mpiexec: out of memory");
    }
    pc.env = env;
    j->count = spec->count;
    rc = plx_procset_spawn(j->proc, 0, &pc, err);
    free(env);
    if (rc != PLX_OK) {
        plx_procset_destroy(&j->proc);
        free(j);
        return rc;
    }
    *job = j;
    return PLX_OK;
}

/* The job's ranks live and die with mpiexec: report them as such. */
static int mpx_poll(void *job, plx_job_status *st, plx_err_t *err)
{
    mpx_job_t *j = job;
    int rc = plx_procset_poll(j->proc, st, err);

    st->running = st->running ? j->count : 0;
    st->exited = st->exited ? j->count : 0;
    st->failed = st->failed ? j->count : 0;
    return rc;
}

static int mpx_signal(void *job, int sig, plx_err_t *err)
{
    return plx_procset_signal(((mpx_job_t *)job)->proc, sig, err);
}

static int mpx_stop(void *job, double grace_s, plx_err_t *err)
{
    return plx_procset_stop(((mpx_job_t *)job)->proc, grace_s, err);
}

static void mpx_destroy(void **job)
{
    mpx_job_t *j;

    if (job == NULL || *job == NULL)
        return;
    j = *job;
    plx_procset_destroy(&j->proc);
    free(j);
    *job = NULL;
}

static int mpx_pids(void *job, pid_t *out, int max)
{
    return plx_procset_pids(((mpx_job_t *)job)->proc, out, max);
}

/* ---- where the ranks run ---------------------------------------------------- */

/* First host of a --host list ("a,b:2") or hostfile that is not loopback. */
static bool mpx_remote_in_list(const char *list, char *host, size_t len)
{
    char name[256];

    for (const char *p = list; *p; p += strspn(p, ",")) {
        size_t n = strcspn(p, ",");
        size_t m = strcspn(p, ":,");
        snprintf(name, sizeof name, "%.*s", (int)(m < n ? m : n), p);
        p += n;
        if (*name && !plx_host_is_loopback(name)) {
            snprintf(host, len, "%s", name);
            return true;
        }
    }
    return false;
}

static bool mpx_remote_in_file(const char *path, char *host, size_t len)
{
    char line[512], name[256];
    FILE *f = fopen(path, "re");
    bool remote = false;

    if (!f)
        return false;   /* mpiexec will say what is wrong with it */
    while (!remote && fgets(line, sizeof line, f))
        if (sscanf(line, " %255[^ \t\n#]", name) == 1 && !plx_host_is_loopback(name)) {
            snprintf(host, len, "%s", name);
            remote = true;
        }
    fclose(f);
    return remote;
}

static int mpx_remote_host(const plx_launch_spec *spec, char *host, size_t len, plx_err_t *err)
{
    mpx_words_t args;
    int rc = mpx_split(mpx_conf(spec, "mpiexec_args") ? mpx_conf(spec, "mpiexec_args") : "",
                       &args, "mpiexec_args", err);

    if (rc != PLX_OK)
        return rc;
    for (int i = 0; i + 1 < args.n; i++) {
        const char *o = args.w[i], *v = args.w[i + 1];
        if ((strcmp(o, "--host") == 0 || strcmp(o, "-host") == 0 || strcmp(o, "-H") == 0) &&
            mpx_remote_in_list(v, host, len))
            return 1;
        if ((strcmp(o, "--hostfile") == 0 || strcmp(o, "-hostfile") == 0 ||
             strcmp(o, "--machinefile") == 0 || strcmp(o, "-machinefile") == 0 ||
             strcmp(o, "-f") == 0) && mpx_remote_in_file(v, host, len))
            return 1;
    }
    return 0;
}

static const plx_launcher_key mpx_keys[] = {
    { "mpiexec", "mpiexec", "The mpiexec (or mpirun) command (default mpiexec)." },
    { "mpiexec_args", "--hostfile /path/hosts --mca btl_tcp_if_include eth0",
      "Options given to mpiexec before -n N (quotes group words as in sh)." },
    { "mpi", "mpi4py",
      "none (default), or mpi4py: engines run `from mpi4py import MPI as mpi` first (0.10's "
      "--mpi=mpi4py) and their engine ids follow their MPI ranks." },
    { NULL, NULL, NULL },
};

static const plx_launcher_ops mpx_ops = {
    .size = sizeof mpx_ops,
    .start = mpx_start,
    .poll = mpx_poll,
    .signal = mpx_signal,
    .stop = mpx_stop,
    .destroy = mpx_destroy,
    .pids = mpx_pids,
    .keys = mpx_keys,
    .remote_host = mpx_remote_host,
};

PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, "mpiexec", "engines as one MPI job (mpiexec -n N)",
                  PLX_VERSION_STRING, &mpx_ops);
