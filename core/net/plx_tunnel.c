/*
 * Port forwarding through the system's OpenSSH (plx_tunnel.h).
 *
 *   the command line   ssh_argv
 *   the child          spawn_ssh, keep_ssh: a keeper process in its own
 *                      session (a Ctrl-C at the terminal is the caller's,
 *                      not the tunnel's) runs ssh and ends it with our
 *                      process; ssh's stderr is kept in a memfd (read on
 *                      failure; a file, so that ssh never blocks on it)
 *   readiness          listening: the forwarded port is in LISTEN state in
 *                      /proc/net/tcp, checked without connecting (a probe
 *                      connection would reach the controller as a client
 *                      that says nothing)
 */
#include "plx_tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plx_sigreset.h"
#include "plx_time.h"

#define MAX_ARGS 48
#define POLL_S   0.02

struct plx_tunnel {
    pid_t pid;        /* the keeper; 0 once reaped */
    pid_t group;      /* its session and process group, which ssh is in */
    int   errfd;      /* ssh's stderr (a memfd) */
};

/* A port of 127.0.0.1 that is free now (ssh binds it next). */
static int free_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             getsockname(fd, (struct sockaddr *)&a, &len) == 0;
    if (fd >= 0)
        close(fd);
    *port = ntohs(a.sin_port);
    return ok ? 0 : -1;
}

/* argv for ssh in words (its strings live in words and fwd). */
static int ssh_argv(char *words, const char *server, const char *sshkey, const char *fwd,
                    double timeout_s, char *ctimeout, size_t clen, const char **argv)
{
    int n = 0;
    for (char *save = NULL, *w = strtok_r(words, " ", &save); w && n < MAX_ARGS - 20;
         w = strtok_r(NULL, " ", &save))
        argv[n++] = w;
    snprintf(ctimeout, clen, "ConnectTimeout=%d", timeout_s >= 2 ? (int)timeout_s : 2);
    const char *opts[] = {"-N", "-T", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                          "-o", ctimeout, "-o", "ServerAliveInterval=15"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        argv[n++] = opts[i];
    if (sshkey && *sshkey) {
        argv[n++] = "-i";
        argv[n++] = sshkey;
        argv[n++] = "-o";
        argv[n++] = "IdentitiesOnly=yes";
    }
    argv[n++] = "-L";
    argv[n++] = fwd;
    argv[n++] = server;
    argv[n] = NULL;
    return n;
}

/* The keeper (the child we manage): runs ssh as its own child and ends it
 * when our process ends (it is then re-parented) or when told to
 * (SIGTERM), and exits as ssh did. PR_SET_PDEATHSIG would not do: it
 * fires when the *thread* that forked exits, and a client may be made on
 * a thread that ends long before the client. Only async-signal-safe calls
 * here: the caller may have other threads. */
static void keep_ssh(pid_t parent, const char *const *argv, int errfd)
{
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    pid_t ssh = fork();
    if (ssh == 0) {
        /* In the keeper's group (its session), with what it starts (a
         * ProxyCommand): ended as one, by the keeper or by
         * plx_tunnel_close should the keeper itself be killed. */
        sigprocmask(SIG_UNBLOCK, &term, NULL);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        dup2(null, 0);
        dup2(null, 1);
        dup2(errfd, 2);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (ssh < 0)
        _exit(126);
    struct timespec tick = {0, 200 * 1000 * 1000};
    for (;;) {
        int status;
        if (waitpid(ssh, &status, WNOHANG) == ssh)
            _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        if (sigtimedwait(&term, NULL, &tick) == SIGTERM || getppid() != parent) {
            kill(0, SIGTERM);   /* the group; blocked here */
            waitpid(ssh, &status, 0);
            _exit(143);
        }
    }
}

static pid_t spawn_ssh(const char *const *argv, int errfd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    plx_sigreset();
    setsid();   /* a Ctrl-C at the caller's terminal is not the tunnel's */
    keep_ssh(parent, argv, errfd);
    _exit(127);
}

/* Whether 127.0.0.1:port is in LISTEN state (0A) in /proc/net/tcp. */
static int listening(uint16_t port)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    char line[256], want[32];
    int found = 0;
    snprintf(want, sizeof want, "0100007F:%04X", port);
    while (f && !found && fgets(line, sizeof line, f)) {
        char local[64], state[8];
        if (sscanf(line, " %*d: %63s %*s %7s", local, state) == 2)
            found = strcmp(local, want) == 0 && strcmp(state, "0A") == 0;
    }
    if (f)
        fclose(f);
    return found;
}

/* What ssh wrote to stderr, its last lines, one line of text. */
static void ssh_said(int errfd, char *out, size_t len)
{
    char buf[2048];
    off_t end = lseek(errfd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(errfd, buf, sizeof buf - 1, from);
    buf[n > 0 ? n : 0] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t k = strlen(buf);
    while (k && buf[k - 1] == ' ')
        buf[--k] = '\0';
    snprintf(out, len, "%s", k ? buf : "no error output");
}

static int reaped(plx_tunnel_t *t, int *status)
{
    if (t->pid && waitpid(t->pid, status, WNOHANG) == t->pid) {
        t->pid = 0;
        return 1;
    }
    return 0;
}

/* Wait for the forward to listen, ssh to fail, or the deadline. */
static int wait_ready(plx_tunnel_t *t, const char *server, uint16_t lport, double timeout_s,
                      plx_err_t *err)
{
    double deadline = plx_now_s() + timeout_s;
    char said[1024];
    int status = 0;
    for (;;) {
        if (listening(lport))
            return PLX_OK;
        if (reaped(t, &status)) {
            ssh_said(t->errfd, said, sizeof said);
            return plx_err_set(err, PLX_ECONNECT, "ssh tunnel through %s failed (ssh exited "
                               "with %d): %s", server,
                               WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                               said);
        }
        if (plx_now_s() >= deadline) {
            ssh_said(t->errfd, said, sizeof said);
            return plx_err_set(err, PLX_ETIMEDOUT, "ssh tunnel through %s: no forwarded port "
                               "after %.0f s (%s)", server, timeout_s, said);
        }
        struct timespec ts = {0, (long)(POLL_S * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int plx_tunnel_open(const char *server, const char *sshkey, const char *host, uint16_t port,
                    double timeout_s, plx_tunnel_t **out, uint16_t *lport, plx_err_t *err)
{
    *out = NULL;
    if (!server || !*server || server[0] == '-' || strchr(server, ' '))
        return plx_err_set(err, PLX_EINVAL, "ssh server '%s' is not a host name "
                           "([user@]host[:port])", server ? server : "");
    char fwd[320], words[1024], ctimeout[48];
    const char *cmd = getenv("PLEXA_SSH");
    snprintf(words, sizeof words, "%s", cmd && *cmd ? cmd : "ssh");
    if (free_port(lport) != 0)
        return plx_err_set(err, PLX_EIO, "no free local port for the ssh tunnel: %s",
                           strerror(errno));
    snprintf(fwd, sizeof fwd, strchr(host, ':') ? "127.0.0.1:%u:[%s]:%u" : "127.0.0.1:%u:%s:%u",
             (unsigned)*lport, host, (unsigned)port);
    const char *argv[MAX_ARGS];
    ssh_argv(words, server, sshkey, fwd, timeout_s, ctimeout, sizeof ctimeout, argv);
    plx_tunnel_t *t = calloc(1, sizeof *t);
    if (!t)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    t->errfd = memfd_create("plexa-ssh-stderr", MFD_CLOEXEC);
    if (t->errfd < 0 || (t->group = t->pid = spawn_ssh(argv, t->errfd)) < 0) {
        int e = errno;
        t->pid = 0;
        plx_tunnel_close(&t);
        return plx_err_set(err, PLX_EIO, "cannot start %s: %s", argv[0], strerror(e));
    }
    int rc = wait_ready(t, server, *lport, timeout_s > 0 ? timeout_s : 15.0, err);
    if (rc != PLX_OK) {
        plx_tunnel_close(&t);
        return rc;
    }
    *out = t;
    return PLX_OK;
}

int plx_tunnel_alive(plx_tunnel_t *t)
{
    int status;
    return t && t->pid && !reaped(t, &status);
}

void plx_tunnel_close(plx_tunnel_t **tp)
{
    plx_tunnel_t *t = tp ? *tp : NULL;
    if (!t)
        return;
    *tp = NULL;
    int status;
    if (t->pid && !reaped(t, &status)) {
        kill(t->pid, SIGTERM);
        double deadline = plx_now_s() + 2.0;
        while (!reaped(t, &status) && plx_now_s() < deadline) {
            struct timespec ts = {0, (long)(POLL_S * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    if (t->pid) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, &status, 0);
    }
    /* The keeper's session is the tunnel's: whatever of it outlived the
     * keeper (an ssh slow to act on its SIGTERM) goes. Its id is not
     * reused while any member lives, so this hits nothing else. */
    if (t->group > 0)
        kill(-t->group, SIGKILL);
    if (t->errfd >= 0)
        close(t->errfd);
    free(t);
}
