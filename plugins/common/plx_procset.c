/* A set of local child processes for launchers; see plx_procset.h. */
#include "plx_procset.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plx_sigreset.h"
#include "plx_time.h"

#define PROC_POLL_NS     (10 * 1000 * 1000)   /* waits poll every 10 ms */
#define PROC_KILL_WAIT_S 5.0                  /* reaping after SIGKILL */

typedef struct proc {
    pid_t pid;
    bool  reaped;        /* pid is no longer ours: never signal it again */
    bool  lost;          /* reaped by someone else, status unknown */
    int   status;        /* wait status once reaped */
    int   stdin_fd;      /* our end of its stdin socket, or -1 */
    char  label[128];    /* for messages */
} proc_t;

struct plx_procset {
    int     count;
    proc_t *procs;
    int     last_failed;    /* index of the latest failure seen, or -1 */
    char    who[48];
};

/* What the child needs, prepared before fork: after fork the child may
 * only call async-signal-safe functions, so no allocation there. */
typedef struct child_plan {
    const plx_proc_cmd *cmd;
    const char        **envp;
    int                 stdin_fd;
    int                 log_fd;
    pid_t               parent;
} child_plan_t;

extern char **environ;

static void nap(void)
{
    struct timespec ts = { 0, PROC_POLL_NS };
    nanosleep(&ts, NULL);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---- environment ---------------------------------------------------------- */

/* Do "KEY=..." entries a and b name the same variable? */
static bool same_key(const char *a, const char *b)
{
    size_t n = strcspn(b, "=");
    return strncmp(a, b, n) == 0 && (a[n] == '=' || a[n] == '\0');
}

static bool overridden(const char *entry, const char *const *extra, bool index_env)
{
    if (index_env && same_key(entry, "PLX_ENGINE_INDEX="))
        return true;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        if (same_key(entry, extra[i]))
            return true;
    return false;
}

/* Our environment, minus what cmd->env overrides, plus cmd->env, plus the
 * index (last, so nothing can shadow it). */
static const char **env_build(const plx_proc_cmd *cmd, const char *index)
{
    size_t n = 0, m = 0, k = 0;
    const char **envp;

    while (environ != NULL && environ[n] != NULL)
        n++;
    while (cmd->env != NULL && cmd->env[m] != NULL)
        m++;
    envp = calloc(n + m + 2, sizeof *envp);
    if (envp == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!overridden(environ[i], cmd->env, cmd->index_env))
            envp[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        if (!(cmd->index_env && same_key(cmd->env[i], "PLX_ENGINE_INDEX=")))
            envp[k++] = cmd->env[i];
    if (cmd->index_env)
        envp[k++] = index;
    envp[k] = NULL;
    return envp;
}

/* Keep fds the child will dup onto 0..2 out of that range, so no dup2
 * clobbers another before it is used. */
static int fd_above_stdio(int fd)
{
    int moved;

    if (fd < 0 || fd > 2)
        return fd;
    moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

/* ---- child side (async-signal-safe only) ---------------------------------- */

__attribute__((noreturn))
static void child_fail(const char *what, const char *arg)
{
    const char *why = strerrordesc_np(errno);
    struct iovec iov[] = {
        { (void *)"plexa launcher: ", 16 },
        { (void *)what, strlen(what) }, { (void *)" ", 1 },
        { (void *)arg, strlen(arg) }, { (void *)": ", 2 },
        { (void *)(why ? why : "unknown error"), strlen(why ? why : "unknown error") },
        { (void *)"\n", 1 },
    };

    (void)!writev(2, iov, sizeof iov / sizeof *iov);
    _exit(PLX_PROCSET_EXEC_FAILED);
}

__attribute__((noreturn))
static void child_run(const child_plan_t *p)
{
    const char *prog = p->cmd->argv[0];

    (void)setpgid(0, 0);
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != p->parent)        /* parent died before prctl took effect */
        _exit(PLX_PROCSET_EXEC_FAILED);
    plx_sigreset();   /* the host ignores SIGPIPE, for one */
    if (dup2(p->stdin_fd, 0) < 0 ||
        (p->log_fd >= 0 && (dup2(p->log_fd, 1) < 0 || dup2(p->log_fd, 2) < 0)))
        child_fail("dup2", "stdio");
    if (close_range(3, ~0U, 0) < 0)
        for (int fd = 3; fd < 65536; fd++)
            (void)close(fd);
    if (p->cmd->cwd != NULL && chdir(p->cmd->cwd) < 0)
        child_fail("chdir", p->cmd->cwd);
    if (strchr(prog, '/') != NULL)
        execve(prog, (char *const *)p->cmd->argv, (char *const *)p->envp);
    else
        execvpe(prog, (char *const *)p->cmd->argv, (char *const *)p->envp);
    child_fail("exec", prog);
}

/* ---- parent side ------------------------------------------------------------ */

plx_procset_t *plx_procset_new(int count, const char *who)
{
    plx_procset_t *s;

    if (count <= 0)
        return NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->procs = calloc((size_t)count, sizeof *s->procs)) == NULL) {
        free(s);
        return NULL;
    }
    s->count = count;
    s->last_failed = -1;
    for (int i = 0; i < count; i++)
        s->procs[i].stdin_fd = -1;
    snprintf(s->who, sizeof s->who, "%s", who ? who : "launcher");
    return s;
}

static int open_stdio(plx_procset_t *s, const plx_proc_cmd *cmd, int *in, int *ours,
                      int *log, plx_err_t *err)
{
    int sv[2];

    *in = *ours = *log = -1;
    if (cmd->log_path != NULL) {
        *log = fd_above_stdio(open(cmd->log_path,
                                   O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (*log < 0)
            return plx_err_set(err, PLX_EIO, "%s: open %s: %s", s->who, cmd->log_path,
                               strerror(errno));
    }
    if (!cmd->stdin_pipe) {
        *in = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
    } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
        *in = fd_above_stdio(sv[0]);
        *ours = sv[1];
    }
    if (*in < 0)
        return plx_err_set(err, PLX_EIO, "%s: stdin for %s: %s", s->who, cmd->argv[0],
                           strerror(errno));
    return PLX_OK;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int fork_child(plx_procset_t *s, int i, child_plan_t *plan, plx_err_t *err)
{
    proc_t *p = &s->procs[i];
    pid_t pid = fork();

    if (pid == 0)
        child_run(plan);
    if (pid < 0)
        return plx_err_set(err, PLX_EIO, "%s: fork for %s: %s", s->who, p->label,
                           strerror(errno));
    /* Also here, not only in the child: a signal sent right after start
     * must already find the group. EACCES once the child has exec'd is
     * fine (it set the group itself by then). */
    (void)setpgid(pid, pid);
    p->pid = pid;
    return PLX_OK;
}

int plx_procset_spawn(plx_procset_t *s, int i, const plx_proc_cmd *cmd, plx_err_t *err)
{
    char index[32];
    int ours = -1, rc;
    child_plan_t plan = { .cmd = cmd, .parent = getpid() };

    if (s == NULL || i < 0 || i >= s->count || s->procs[i].pid != 0 || cmd == NULL ||
        cmd->argv == NULL || cmd->argv[0] == NULL || *cmd->argv[0] == '\0')
        return plx_err_set(err, PLX_EINVAL, "%s: bad spawn of process %d", s ? s->who : "?", i);
    if (cmd->label != NULL)
        snprintf(s->procs[i].label, sizeof s->procs[i].label, "%s", cmd->label);
    else
        snprintf(s->procs[i].label, sizeof s->procs[i].label, "%.64s #%d",
                 base_name(cmd->argv[0]), i);
    snprintf(index, sizeof index, "PLX_ENGINE_INDEX=%d", cmd->index_base + i);
    plan.envp = env_build(cmd, index);
    if (plan.envp == NULL)
        return plx_err_set(err, PLX_ENOMEM, "%s: out of memory", s->who);
    rc = open_stdio(s, cmd, &plan.stdin_fd, &ours, &plan.log_fd, err);
    if (rc == PLX_OK)
        rc = fork_child(s, i, &plan, err);
    close_fd(&plan.stdin_fd);
    close_fd(&plan.log_fd);
    if (rc == PLX_OK)
        s->procs[i].stdin_fd = ours;
    else
        close_fd(&ours);
    free(plan.envp);
    return rc;
}

int plx_procset_stdin(const plx_procset_t *s, int i)
{
    return i >= 0 && i < s->count ? s->procs[i].stdin_fd : -1;
}

void plx_procset_close_stdin(plx_procset_t *s, int i)
{
    if (i >= 0 && i < s->count)
        close_fd(&s->procs[i].stdin_fd);
}

static bool proc_failed(const proc_t *p)
{
    return !p->lost && !(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0);
}

/* waitpid on one of our pids; flags WNOHANG or 0. */
static int reap(plx_procset_t *s, int i, int flags, plx_err_t *err)
{
    proc_t *p = &s->procs[i];
    pid_t r;

    if (p->reaped || p->pid <= 0)
        return PLX_OK;
    do {
        r = waitpid(p->pid, &p->status, flags);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return PLX_OK;
    if (r < 0 && errno != ECHILD)
        return plx_err_set(err, PLX_EIO, "%s: waitpid %d: %s", s->who, (int)p->pid,
                           strerror(errno));
    p->reaped = true;
    p->lost = r < 0;
    if (proc_failed(p))
        s->last_failed = i;
    return PLX_OK;
}

bool plx_procset_running(plx_procset_t *s, int i)
{
    if (i < 0 || i >= s->count || s->procs[i].pid <= 0)
        return false;
    (void)reap(s, i, WNOHANG, NULL);
    return !s->procs[i].reaped;
}

static void describe(const plx_procset_t *s, plx_job_status *st)
{
    const proc_t *p;
    int sig;

    if (s->last_failed < 0) {
        for (int i = 0; i < s->count; i++)
            if (s->procs[i].lost)
                snprintf(st->detail, sizeof st->detail, "%s (pid %d) was reaped outside the "
                         "launcher; exit status unknown", s->procs[i].label,
                         (int)s->procs[i].pid);
        return;
    }
    p = &s->procs[s->last_failed];
    st->last_status = p->status;
    if (WIFSIGNALED(p->status)) {
        sig = WTERMSIG(p->status);
        snprintf(st->detail, sizeof st->detail, "%s (pid %d) killed by signal %d (SIG%s)",
                 p->label, (int)p->pid, sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    } else {
        snprintf(st->detail, sizeof st->detail, "%s (pid %d) exited with status %d%s",
                 p->label, (int)p->pid, WEXITSTATUS(p->status),
                 WEXITSTATUS(p->status) == PLX_PROCSET_EXEC_FAILED
                     ? " (could not start? see its log)" : "");
    }
}

int plx_procset_poll(plx_procset_t *s, plx_job_status *st, plx_err_t *err)
{
    int rc = PLX_OK;

    memset(st, 0, sizeof *st);
    for (int i = 0; i < s->count; i++) {
        int r = reap(s, i, WNOHANG, err);
        if (r != PLX_OK)
            rc = r;
        if (s->procs[i].pid <= 0) {
            st->pending++;
            continue;
        }
        if (!s->procs[i].reaped) {
            st->running++;
            continue;
        }
        st->exited++;
        st->failed += proc_failed(&s->procs[i]);
    }
    st->state = st->running > 0 || st->pending > 0 ? PLX_JOB_RUNNING : PLX_JOB_FINISHED;
    describe(s, st);
    return rc;
}

/* Signal the process group of every process not yet reaped: an unreaped
 * pid (even a zombie) still holds its group id, so it cannot be reused. */
int plx_procset_signal(plx_procset_t *s, int sig, plx_err_t *err)
{
    int rc = PLX_OK;

    for (int i = 0; i < s->count; i++) {
        pid_t pid = s->procs[i].pid;
        /* pid 0 would be our own group: never. */
        if (s->procs[i].reaped || pid <= 0)
            continue;
        if (kill(-pid, sig) == 0)
            continue;
        /* ESRCH on the group: the process left it (setsid); aim at it alone. */
        if (errno == ESRCH && (kill(pid, sig) == 0 || errno == ESRCH))
            continue;
        rc = plx_err_set(err, PLX_EIO, "%s: kill %d, signal %d: %s", s->who, (int)pid, sig,
                         strerror(errno));
    }
    return rc;
}

/* Has every unreaped process exited? Leaves them zombies (WNOWAIT) so
 * their group ids stay reserved for the final SIGKILL. */
static bool all_exited(const plx_procset_t *s)
{
    for (int i = 0; i < s->count; i++) {
        siginfo_t si;
        if (s->procs[i].reaped || s->procs[i].pid <= 0)
            continue;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)s->procs[i].pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid == 0)
            return false;
    }
    return true;
}

bool plx_procset_wait(plx_procset_t *s, double timeout_s)
{
    double deadline = plx_now_s() + timeout_s;

    for (;;) {
        bool left = false;
        for (int i = 0; i < s->count; i++) {
            (void)reap(s, i, WNOHANG, NULL);
            left |= s->procs[i].pid > 0 && !s->procs[i].reaped;
        }
        if (!left)
            return true;
        if (plx_now_s() >= deadline)
            return false;
        nap();
    }
}

int plx_procset_stop(plx_procset_t *s, double grace_s, plx_err_t *err)
{
    double deadline = plx_now_s() + (grace_s > 0 ? grace_s : 0);

    (void)plx_procset_signal(s, SIGTERM, NULL);
    while (!all_exited(s) && plx_now_s() < deadline)
        nap();
    /* Also for groups whose leader exited: its children may linger. */
    (void)plx_procset_signal(s, SIGKILL, NULL);
    if (plx_procset_wait(s, PROC_KILL_WAIT_S))
        return PLX_OK;
    for (int i = 0; i < s->count; i++)
        if (s->procs[i].pid > 0 && !s->procs[i].reaped)
            return plx_err_set(err, PLX_ETIMEDOUT, "%s: %s (pid %d) still alive %.0f s after "
                               "SIGKILL", s->who, s->procs[i].label, (int)s->procs[i].pid,
                               PROC_KILL_WAIT_S);
    return PLX_OK;
}

int plx_procset_pids(const plx_procset_t *s, pid_t *out, int max)
{
    int n = 0;

    for (int i = 0; i < s->count && n < max; i++)
        if (s->procs[i].pid > 0 && !s->procs[i].reaped)
            out[n++] = s->procs[i].pid;
    return n;
}

void plx_procset_destroy(plx_procset_t **sp)
{
    plx_procset_t *s;

    if (sp == NULL || *sp == NULL)
        return;
    s = *sp;
    for (int i = 0; i < s->count; i++)
        close_fd(&s->procs[i].stdin_fd);
    free(s->procs);
    free(s);
    *sp = NULL;
}
