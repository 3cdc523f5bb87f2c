/*
 * launcher-local: run the processes of a job on this machine.
 *
 * Each process is forked and exec'd in its own process group, so signals
 * reach whatever it spawns (a shell wrapper's children, say) and a Ctrl-C
 * at the terminal reaches ipcluster alone. Children get PR_SET_PDEATHSIG so
 * they do not outlive a crashed ipcluster, stdin from /dev/null, stdout and
 * stderr appended to <log_dir>/<basename argv0>-<i>.out, and
 * PLX_ENGINE_INDEX=<i>. Only our own pids are ever waited for: the host may
 * have other children, and waitpid(-1) would steal their statuses.
 *
 * Caveats for the host: PR_SET_PDEATHSIG fires when the *thread* that
 * called start exits, so start jobs from a long-lived thread; and a
 * SIGCHLD handler that reaps every child (libev's default loop does) takes
 * exit statuses away from poll, which then reports them as unknown.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plexa/launcher.h"
#include "plexa/plugin.h"

#define LOCAL_POLL_NS       (10 * 1000 * 1000)   /* stop() polls every 10 ms */
#define LOCAL_KILL_WAIT_S   5.0                  /* reaping after SIGKILL */
#define LOCAL_EXEC_FAILED   127                  /* like a shell: command not run */

typedef struct local_proc {
    pid_t pid;
    bool  reaped;        /* pid is no longer ours: never signal it again */
    bool  lost;          /* reaped by someone else, status unknown */
    int   status;        /* wait status once reaped */
} local_proc;

typedef struct local_job {
    int         count;
    local_proc *procs;
    int         last_failed;    /* index of the latest failure seen, or -1 */
    char        prog[64];       /* basename of argv[0], for messages */
} local_job;

/* Environment of the children, built before fork: the child may only
 * call async-signal-safe functions, so no allocation after fork. */
typedef struct local_env {
    const char **envp;
    char         index[32];     /* "PLX_ENGINE_INDEX=<i>", rewritten per child */
} local_env;

extern char **environ;

/* ---- helpers ------------------------------------------------------------ */

static double local_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void local_nap(void)
{
    struct timespec ts = { 0, LOCAL_POLL_NS };
    nanosleep(&ts, NULL);
}

static const char *local_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Do "KEY=..." entries a and b name the same variable? */
static bool local_same_key(const char *a, const char *b)
{
    size_t n = strcspn(b, "=");
    return strncmp(a, b, n) == 0 && (a[n] == '=' || a[n] == '\0');
}

static bool local_env_overridden(const char *entry, const char *const *extra)
{
    if (local_same_key(entry, "PLX_ENGINE_INDEX="))
        return true;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        if (local_same_key(entry, extra[i]))
            return true;
    return false;
}

/* Our environment, minus what spec->env overrides, plus spec->env, plus
 * the per-process index (last, so nothing can shadow it). */
static int local_env_build(local_env *e, const char *const *extra, plx_err_t *err)
{
    size_t n = 0, m = 0, k = 0;

    while (environ != NULL && environ[n] != NULL)
        n++;
    while (extra != NULL && extra[m] != NULL)
        m++;
    e->envp = calloc(n + m + 2, sizeof *e->envp);
    if (e->envp == NULL)
        return plx_err_set(err, PLX_ENOMEM, "launcher local: out of memory");
    for (size_t i = 0; i < n; i++)
        if (!local_env_overridden(environ[i], extra))
            e->envp[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        if (!local_same_key(extra[i], "PLX_ENGINE_INDEX="))
            e->envp[k++] = extra[i];
    e->envp[k++] = e->index;
    e->envp[k] = NULL;
    return PLX_OK;
}

/* Keep fds the child will dup onto 0..2 out of that range, so no dup2
 * clobbers another before it is used. */
static int local_fd_above_stdio(int fd)
{
    int moved;

    if (fd < 0 || fd > 2)
        return fd;
    moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

/* ---- child side (async-signal-safe only) -------------------------------- */

__attribute__((noreturn))
static void local_child_fail(const char *what, const char *arg)
{
    const char *why = strerrordesc_np(errno);
    struct iovec iov[] = {
        { (void *)"plexa launcher-local: ", 22 },
        { (void *)what, strlen(what) }, { (void *)" ", 1 },
        { (void *)arg, strlen(arg) }, { (void *)": ", 2 },
        { (void *)(why ? why : "unknown error"), strlen(why ? why : "unknown error") },
        { (void *)"\n", 1 },
    };

    (void)!writev(2, iov, sizeof iov / sizeof *iov);
    _exit(LOCAL_EXEC_FAILED);
}

/* Ignored signals and the blocked mask survive exec: start from a clean
 * slate whatever the host did (it ignores SIGPIPE, for one). */
static void local_child_reset_signals(void)
{
    struct sigaction dfl;
    sigset_t none;

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        (void)sigaction(s, &dfl, NULL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

__attribute__((noreturn))
static void local_child(const plx_launch_spec *spec, const local_env *env,
                        int devnull, int logfd, pid_t parent, int maxfd)
{
    const char *prog = spec->argv[0];

    (void)setpgid(0, 0);
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)        /* parent died before prctl took effect */
        _exit(LOCAL_EXEC_FAILED);
    local_child_reset_signals();
    if (dup2(devnull, 0) < 0 || (logfd >= 0 && (dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)))
        local_child_fail("dup2", "stdio");
    if (close_range(3, ~0U, 0) < 0)
        for (int fd = 3; fd < maxfd; fd++)
            (void)close(fd);
    if (spec->cwd != NULL && chdir(spec->cwd) < 0)
        local_child_fail("chdir", spec->cwd);
    if (strchr(prog, '/') != NULL)
        execve(prog, (char *const *)spec->argv, (char *const *)env->envp);
    else
        execvpe(prog, (char *const *)spec->argv, (char *const *)env->envp);
    local_child_fail("exec", prog);
}

/* ---- parent side -------------------------------------------------------- */

static int local_open_log(const plx_launch_spec *spec, int i, int *fd, plx_err_t *err)
{
    char path[4096];

    *fd = -1;
    if (spec->log_dir == NULL || *spec->log_dir == '\0')
        return PLX_OK;       /* children share our stdout/stderr */
    if ((size_t)snprintf(path, sizeof path, "%s/%s-%d.out", spec->log_dir,
                         local_basename(spec->argv[0]), i) >= sizeof path)
        return plx_err_set(err, PLX_EINVAL, "launcher local: log path too long in %s",
                           spec->log_dir);
    *fd = local_fd_above_stdio(open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (*fd < 0)
        return plx_err_set(err, PLX_EIO, "launcher local: open %s: %s", path, strerror(errno));
    return PLX_OK;
}

static int local_spawn_one(const plx_launch_spec *spec, local_job *j, int i,
                           local_env *env, int devnull, int maxfd, plx_err_t *err)
{
    pid_t parent = getpid();
    pid_t pid;
    int logfd;
    int rc = local_open_log(spec, i, &logfd, err);

    if (rc != PLX_OK)
        return rc;
    snprintf(env->index, sizeof env->index, "PLX_ENGINE_INDEX=%d", i);
    pid = fork();
    if (pid == 0)
        local_child(spec, env, devnull, logfd, parent, maxfd);
    if (pid < 0)
        rc = plx_err_set(err, PLX_EIO, "launcher local: fork for %s #%d: %s",
                         j->prog, i, strerror(errno));
    else
        /* Also here, not only in the child: a signal sent right after
         * start must already find the group. EACCES once the child has
         * exec'd is fine (it set the group itself by then). */
        (void)setpgid(pid, pid);
    if (logfd >= 0)
        close(logfd);
    if (pid > 0)
        j->procs[i].pid = pid;
    return rc;
}

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

static void local_job_free(local_job *j)
{
    if (j != NULL)
        free(j->procs);
    free(j);
}

static int local_stop(void *job, double grace_s, plx_err_t *err);

static int local_start_all(const plx_launch_spec *spec, local_job *j, plx_err_t *err)
{
    local_env env = { 0 };
    long maxfd = sysconf(_SC_OPEN_MAX);
    int devnull;
    int rc = local_env_build(&env, spec->env, err);

    if (rc != PLX_OK)
        return rc;
    devnull = local_fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (devnull < 0)
        rc = plx_err_set(err, PLX_EIO, "launcher local: open /dev/null: %s", strerror(errno));
    for (int i = 0; rc == PLX_OK && i < j->count; i++)
        rc = local_spawn_one(spec, j, i, &env, devnull,
                             maxfd > 0 && maxfd < 65536 ? (int)maxfd : 65536, err);
    if (devnull >= 0)
        close(devnull);
    free(env.envp);
    return rc;
}

static int local_start(const plx_launch_spec *spec, void **job, plx_err_t *err)
{
    local_job *j;
    int rc = local_check_spec(spec, err);

    if (rc != PLX_OK)
        return rc;
    j = calloc(1, sizeof *j);
    if (j == NULL || (j->procs = calloc((size_t)spec->count, sizeof *j->procs)) == NULL) {
        local_job_free(j);
        return plx_err_set(err, PLX_ENOMEM, "launcher local: out of memory");
    }
    j->count = spec->count;
    j->last_failed = -1;
    snprintf(j->prog, sizeof j->prog, "%s", local_basename(spec->argv[0]));
    rc = local_start_all(spec, j, err);
    if (rc != PLX_OK) {
        /* All or nothing: take down the ones already running. */
        for (int i = 0; i < j->count; i++)
            j->procs[i].reaped = j->procs[i].pid == 0;
        local_stop(j, 0.0, NULL);
        local_job_free(j);
        return rc;
    }
    *job = j;
    return PLX_OK;
}

static bool local_failed(const local_proc *p)
{
    return !p->lost && !(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0);
}

/* waitpid on one of our pids; flags WNOHANG or 0. */
static int local_reap(local_job *j, int i, int flags, plx_err_t *err)
{
    local_proc *p = &j->procs[i];
    pid_t r;

    if (p->reaped || p->pid <= 0)
        return PLX_OK;
    do {
        r = waitpid(p->pid, &p->status, flags);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return PLX_OK;
    if (r < 0 && errno != ECHILD)
        return plx_err_set(err, PLX_EIO, "launcher local: waitpid %d: %s", (int)p->pid,
                           strerror(errno));
    p->reaped = true;
    p->lost = r < 0;
    if (local_failed(p))
        j->last_failed = i;
    return PLX_OK;
}

static void local_describe(const local_job *j, plx_job_status *st)
{
    const local_proc *p;

    if (j->last_failed < 0) {
        for (int i = 0; i < j->count; i++)
            if (j->procs[i].lost)
                snprintf(st->detail, sizeof st->detail, "%s #%d (pid %d) was reaped "
                         "outside the launcher; exit status unknown", j->prog, i,
                         (int)j->procs[i].pid);
        return;
    }
    p = &j->procs[j->last_failed];
    st->last_status = p->status;
    if (WIFSIGNALED(p->status))
        snprintf(st->detail, sizeof st->detail, "%s #%d (pid %d) killed by signal %d (SIG%s)",
                 j->prog, j->last_failed, (int)p->pid, WTERMSIG(p->status),
                 sigabbrev_np(WTERMSIG(p->status)) ? sigabbrev_np(WTERMSIG(p->status)) : "?");
    else
        snprintf(st->detail, sizeof st->detail, "%s #%d (pid %d) exited with status %d%s",
                 j->prog, j->last_failed, (int)p->pid, WEXITSTATUS(p->status),
                 WEXITSTATUS(p->status) == LOCAL_EXEC_FAILED ? " (could not start? see its log)" : "");
}

static int local_poll(void *job, plx_job_status *st, plx_err_t *err)
{
    local_job *j = job;
    int rc = PLX_OK;

    memset(st, 0, sizeof *st);
    for (int i = 0; i < j->count; i++) {
        int r = local_reap(j, i, WNOHANG, err);
        if (r != PLX_OK)
            rc = r;
        if (!j->procs[i].reaped) {
            st->running++;
            continue;
        }
        st->exited++;
        st->failed += local_failed(&j->procs[i]);
    }
    st->state = st->running > 0 ? PLX_JOB_RUNNING : PLX_JOB_FINISHED;
    local_describe(j, st);
    return rc;
}

/* Signal the process group of every process not yet reaped: an unreaped
 * pid (even a zombie) still holds its group id, so it cannot be reused. */
static int local_signal(void *job, int sig, plx_err_t *err)
{
    local_job *j = job;
    int rc = PLX_OK;

    for (int i = 0; i < j->count; i++) {
        pid_t pid = j->procs[i].pid;
        /* pid 0 would be our own group: never. */
        if (j->procs[i].reaped || pid <= 0)
            continue;
        if (kill(-pid, sig) == 0)
            continue;
        /* ESRCH on the group: the process left it (setsid); aim at it alone. */
        if (errno == ESRCH && (kill(pid, sig) == 0 || errno == ESRCH))
            continue;
        rc = plx_err_set(err, PLX_EIO, "launcher local: kill %d, signal %d: %s",
                         (int)pid, sig, strerror(errno));
    }
    return rc;
}

/* Has every unreaped process exited? Leaves them zombies (WNOWAIT) so
 * their group ids stay reserved for the final SIGKILL. */
static bool local_all_exited(local_job *j)
{
    for (int i = 0; i < j->count; i++) {
        siginfo_t si;
        if (j->procs[i].reaped)
            continue;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)j->procs[i].pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid == 0)
            return false;
    }
    return true;
}

static int local_reap_all(local_job *j, double timeout_s, plx_err_t *err)
{
    double deadline = local_now() + timeout_s;

    for (;;) {
        bool left = false;
        for (int i = 0; i < j->count; i++) {
            int rc = local_reap(j, i, WNOHANG, err);
            if (rc != PLX_OK)
                return rc;
            left |= !j->procs[i].reaped;
        }
        if (!left)
            return PLX_OK;
        if (local_now() >= deadline)
            break;
        local_nap();
    }
    for (int i = 0; i < j->count; i++)
        if (!j->procs[i].reaped)
            return plx_err_set(err, PLX_ETIMEDOUT, "launcher local: %s #%d (pid %d) "
                               "still alive %.0f s after SIGKILL", j->prog, i,
                               (int)j->procs[i].pid, timeout_s);
    return PLX_OK;
}

static int local_stop(void *job, double grace_s, plx_err_t *err)
{
    local_job *j = job;
    double deadline = local_now() + (grace_s > 0 ? grace_s : 0);

    (void)local_signal(j, SIGTERM, NULL);
    while (!local_all_exited(j) && local_now() < deadline)
        local_nap();
    /* Also for groups whose leader exited: its children may linger. */
    (void)local_signal(j, SIGKILL, NULL);
    return local_reap_all(j, LOCAL_KILL_WAIT_S, err);
}

static void local_destroy(void **job)
{
    if (job == NULL)
        return;
    local_job_free(*job);
    *job = NULL;
}

static int local_pids(void *job, pid_t *out, int max)
{
    local_job *j = job;
    int n = 0;

    for (int i = 0; i < j->count && n < max; i++)
        if (!j->procs[i].reaped)
            out[n++] = j->procs[i].pid;
    return n;
}

static const plx_launcher_ops local_ops = {
    .size = sizeof local_ops,
    .start = local_start,
    .poll = local_poll,
    .signal = local_signal,
    .stop = local_stop,
    .destroy = local_destroy,
    .pids = local_pids,
};

PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, "local", "processes on this machine (fork + exec)",
                  &local_ops);
