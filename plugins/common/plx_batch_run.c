/*
 * plx_batch_run: run a batch system command (sbatch, qstat, ...) and keep
 * what it said.
 *
 * No shell is involved: arguments come from the profile and a shell would
 * give them a second meaning. The command runs in its own process group so
 * a timeout takes down whatever it spawned (Torque's qsub wrapper runs
 * sbatch through perl and sh). Only our own pid is waited for: ipcluster
 * has other children.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plexa/batch.h"
#include "plx_sigreset.h"
#include "plx_strbuf.h"
#include "plx_time.h"

#define RUN_EXEC_FAILED 127     /* like a shell: command not run */

extern char **environ;

/* ---- child side (async-signal-safe only) -------------------------------- */

__attribute__((noreturn))
static void run_child_fail(const char *prog)
{
    const char *why = strerrordesc_np(errno);
    if (why == NULL)
        why = "unknown error";
    struct iovec iov[] = {
        { (void *)"cannot run ", 11 }, { (void *)prog, strlen(prog) },
        { (void *)": ", 2 }, { (void *)why, strlen(why) }, { (void *)"\n", 1 },
    };
    (void)!writev(2, iov, sizeof iov / sizeof *iov);
    _exit(RUN_EXEC_FAILED);
}

__attribute__((noreturn))
static void run_child(const char *const *argv, const char *const *envp, const char *cwd,
                      int outfd, int errfd, int nullfd)
{
    (void)setpgid(0, 0);
    plx_sigreset();   /* ipcluster's ignored and blocked signals stay out of qsub */
    if (dup2(nullfd, 0) < 0 || dup2(outfd, 1) < 0 || dup2(errfd, 2) < 0)
        _exit(RUN_EXEC_FAILED);
    (void)close_range(3, ~0U, 0);
    if (cwd != NULL && chdir(cwd) < 0)
        run_child_fail(cwd);
    if (strchr(argv[0], '/') != NULL)
        execve(argv[0], (char *const *)argv, (char *const *)envp);
    else
        execvpe(argv[0], (char *const *)argv, (char *const *)envp);
    run_child_fail(argv[0]);
}

/* ---- parent side --------------------------------------------------------- */

static int run_buf_read(plx_strbuf_t *b, int fd, bool *eof)
{
    char chunk[4096];
    ssize_t r = read(fd, chunk, sizeof chunk);

    if (r < 0)
        return errno == EINTR || errno == EAGAIN ? PLX_OK : PLX_EIO;
    if (r == 0) {
        *eof = true;
        return PLX_OK;
    }
    /* Keep the first PLX_BATCH_OUT_MAX bytes; drain the rest so the
     * command never blocks on a full pipe. */
    size_t keep = (size_t)r;
    if (b->len + keep > PLX_BATCH_OUT_MAX)
        keep = PLX_BATCH_OUT_MAX - b->len;
    plx_strbuf_put(b, chunk, keep);
    return b->oom ? PLX_ENOMEM : PLX_OK;
}

/* Read both pipes until both close or the deadline passes. */
static int run_collect(int fds[2], plx_strbuf_t bufs[2], double deadline)
{
    bool eof[2] = { false, false };

    while (!eof[0] || !eof[1]) {
        struct pollfd p[2];
        int np = 0, map[2];
        for (int i = 0; i < 2; i++)
            if (!eof[i]) {
                p[np] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
                map[np++] = i;
            }
        double left = deadline - plx_now_s();
        if (left <= 0)
            return PLX_ETIMEDOUT;
        int r = poll(p, (nfds_t)np, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR)
            return PLX_EIO;
        for (int k = 0; r > 0 && k < np; k++) {
            if (p[k].revents == 0)
                continue;
            int rc = run_buf_read(&bufs[map[k]], fds[map[k]], &eof[map[k]]);
            if (rc != PLX_OK)
                return rc;
        }
    }
    return PLX_OK;
}

static int run_wait(pid_t pid, int *status, double deadline)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return PLX_OK;
        if (r < 0 && errno != EINTR)
            return PLX_EIO;
        if (plx_now_s() > deadline)
            return PLX_ETIMEDOUT;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

static void run_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int run_pipes(int out[2], int errp[2], int *nullfd, plx_err_t *err)
{
    out[0] = out[1] = errp[0] = errp[1] = *nullfd = -1;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        (*nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        return plx_err_set(err, PLX_EIO, "pipe for a batch command: %s", strerror(errno));
    return PLX_OK;
}

int plx_batch_run(const char *const *argv, const char *const *envp, const char *cwd,
                  double timeout_s, plx_batch_out *out, plx_err_t *err)
{
    int po[2], pe[2], nullfd, rc;
    plx_strbuf_t bufs[2] = { PLX_STRBUF_INIT, PLX_STRBUF_INIT };
    double deadline = plx_now_s() + timeout_s;

    memset(out, 0, sizeof *out);
    if ((rc = run_pipes(po, pe, &nullfd, err)) != PLX_OK)
        goto out;
    pid_t pid = fork();
    if (pid == 0)
        run_child(argv, envp ? envp : (const char *const *)environ, cwd, po[1], pe[1], nullfd);
    if (pid < 0) {
        rc = plx_err_set(err, PLX_EIO, "fork for %s: %s", argv[0], strerror(errno));
        goto out;
    }
    (void)setpgid(pid, pid);
    run_close(&po[1]);
    run_close(&pe[1]);
    int fds[2] = { po[0], pe[0] };
    rc = run_collect(fds, bufs, deadline);
    if (rc == PLX_OK)
        rc = run_wait(pid, &out->status, deadline);
    if (rc != PLX_OK) {
        (void)kill(-pid, SIGKILL);
        (void)waitpid(pid, &out->status, 0);
        rc = rc == PLX_ETIMEDOUT
                 ? plx_err_set(err, rc, "%s did not finish within %.0f s (killed)", argv[0],
                               timeout_s)
                 : plx_err_set(err, rc, "reading the output of %s: %s", argv[0],
                               rc == PLX_ENOMEM ? "out of memory" : strerror(errno));
    }
out:
    run_close(&po[0]), run_close(&po[1]), run_close(&pe[0]), run_close(&pe[1]);
    run_close(&nullfd);
    out->out = plx_strbuf_take(&bufs[0]);
    out->err = plx_strbuf_take(&bufs[1]);
    return rc;
}

void plx_batch_out_free(plx_batch_out *out)
{
    free(out->out);
    free(out->err);
    out->out = out->err = NULL;
}

bool plx_batch_out_ok(const plx_batch_out *out)
{
    return WIFEXITED(out->status) && WEXITSTATUS(out->status) == 0;
}

void plx_batch_squeeze(char *dst, size_t len, const char *text)
{
    size_t k = 0;
    bool space = false;

    if (len == 0)
        return;
    for (const char *p = text ? text : ""; *p && k + 1 < len; p++) {
        bool ws = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
        if (ws) {
            space = k > 0;
            continue;
        }
        if (space && k + 2 < len)
            dst[k++] = ' ';
        space = false;
        dst[k++] = *p;
    }
    dst[k] = '\0';
}

void plx_batch_lines(char *dst, size_t len, const char *text)
{
    size_t k = 0;

    if (len == 0)
        return;
    dst[0] = '\0';
    for (const char *p = text ? text : ""; *p && k + 1 < len; ) {
        size_t n = strcspn(p, "\n");
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        plx_batch_squeeze(line, sizeof line, line);
        if (line[0])
            k += (size_t)snprintf(dst + k, len - k, "%s%s", k ? "; " : "", line);
        p += n + (p[n] == '\n');
    }
}

int plx_batch_fail(plx_err_t *err, const char *prog, const plx_batch_out *out)
{
    char words[PLX_ERR_MSG_MAX];
    const char *said = out->err && *out->err ? out->err : out->out;
    const char *base = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;

    plx_batch_lines(words, sizeof words, said);
    if (WIFSIGNALED(out->status))
        return plx_err_set(err, PLX_ERR, "%s killed by signal %d: %s", base,
                           WTERMSIG(out->status), words[0] ? words : "(no output)");
    return plx_err_set(err, PLX_ERR, "%s failed (exit %d): %s", base,
                       WEXITSTATUS(out->status), words[0] ? words : "(no output)");
}

void plx_batch_argv_add(plx_batch_argv *av, const char *s)
{
    if (av->n >= PLX_BATCH_ARGV_MAX) {
        av->overflow = true;
        return;
    }
    av->v[av->n++] = s;
    av->v[av->n] = NULL;
}
