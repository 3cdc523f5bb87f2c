/*
 * launcher-ssh: engines (or the controller) on other hosts, one ssh
 * connection per process, as IPython 0.10's ssh mode did.
 *
 * Each process is a local `ssh HOST exec /bin/sh -c SCRIPT` (ssh_script.c)
 * managed by plx_procset: its stdin is a socket through which we send the
 * remote environment (the capability URL among it: never on a command
 * line), with sshx the launcher script (run as `sh SCRIPT COMMAND ARGS`),
 * and later "signal"/"stop" requests; its stdout and stderr, which
 * carry the remote program's output, go to <log_dir>/<prog>-<i>.out as
 * with the local launcher; its exit status is the remote program's (255:
 * ssh itself failed). Stopping asks every remote script to stop its
 * program (SIGTERM, SIGKILL after the grace period); a connection that
 * does not end in time gets a second ssh that kills the process group
 * recorded in the remote pid file, and only then is the local ssh killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plexa/launcher.h"
#include "plexa/plugin.h"
#include "plexa/version.h"
#include "plx_hostaddr.h"
#include "plx_procset.h"
#include "ssh_int.h"

#define SSH_KILL_WAIT_S   5.0    /* the second connection that kills by pid file */
#define SSH_RESOLVE_WAIT_S 5.0   /* ssh -G */
#define SSH_ENDS_AFTER_S  2.0    /* a connection ends this long after its program */

typedef struct ssh_job {
    plx_procset_t *procs;
    int            count;
    ssh_words_t    ssh;          /* ssh and its options, for the kill connection */
    char         (*host)[SSH_HOST_LEN];
    char         (*pidfile)[128];   /* the name of each remote pid file (no directory) */
} ssh_job_t;

static unsigned ssh_seq;   /* distinguishes pid files of jobs of one process */

/* ---- helpers ---------------------------------------------------------------- */

static void ssh_job_free(ssh_job_t *j)
{
    if (!j)
        return;
    plx_procset_destroy(&j->procs);
    ssh_words_free(&j->ssh);
    free(j->host);
    free(j->pidfile);
    free(j);
}

static int ssh_check_spec(const plx_launch_spec *spec, plx_err_t *err)
{
    if (spec == NULL || spec->size < offsetof(plx_launch_spec, conf_ctx) + sizeof spec->conf_ctx)
        return plx_err_set(err, PLX_EINVAL, "launcher ssh: spec missing or too old");
    if (spec->count <= 0)
        return plx_err_set(err, PLX_EINVAL, "launcher ssh: count is %d", spec->count);
    if (spec->argv == NULL || spec->argv[0] == NULL || *spec->argv[0] == '\0')
        return plx_err_set(err, PLX_EINVAL, "launcher ssh: empty argv");
    return PLX_OK;
}

/* ssh, its options, ours, the host and the remote command. Our options
 * come after the user's: for ssh the first value given wins, so theirs
 * override ours. */
static void ssh_argv(const ssh_words_t *ssh, const char *host, char *cmd, const char **argv)
{
    int n = 0;
    for (int i = 0; i < ssh->n; i++)
        argv[n++] = ssh->w[i];
    argv[n++] = "-T";                   /* no terminal: the script's stdin is ours */
    argv[n++] = "-o";
    argv[n++] = "BatchMode=yes";        /* never wait for a password nobody types */
    argv[n++] = "--";
    argv[n++] = host;
    argv[n++] = cmd;
    argv[n] = NULL;
}

/* Everything process i reads at start (ssh_stdin_payload), in one go. A
 * blocking send: ssh reads it once connected, and it fits the socket's
 * buffer in all but extreme environments. */
static int ssh_send_all(int fd, const char *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

static int ssh_check_env(const plx_launch_spec *spec, plx_err_t *err)
{
    for (size_t k = 0; spec->env && spec->env[k]; k++)
        if (strchr(spec->env[k], '\n') || !strchr(spec->env[k], '='))
            return plx_err_set(err, PLX_EINVAL, "launcher ssh: environment entry %zu is not "
                               "a one-line KEY=VALUE", k);
    return PLX_OK;
}

/* ---- start -------------------------------------------------------------------- */

static int ssh_spawn_one(ssh_job_t *j, const plx_launch_spec *spec, const ssh_conf_t *c,
                         int i, plx_err_t *err)
{
    char log[4096], label[128];
    const char *argv[SSH_WORDS_MAX + 8];
    const char *prog = strrchr(spec->argv[0], '/') ? strrchr(spec->argv[0], '/') + 1
                                                   : spec->argv[0];
    size_t inlen = 0;
    char *in = ssh_stdin_payload(c, spec, i, &inlen);
    char *cmd = ssh_remote_command(c, spec, j->pidfile[i]);
    plx_proc_cmd pc = { .argv = argv, .label = label, .stdin_pipe = true };
    int rc = PLX_OK;

    if (!in || !cmd)
        rc = plx_err_set(err, PLX_ENOMEM, "launcher ssh: %s", in ? "remote command too long"
                                                                 : "out of memory");
    else
        ssh_argv(&j->ssh, j->host[i], cmd, argv);
    snprintf(label, sizeof label, "%.40s #%d on %.40s", prog, i, j->host[i]);
    if (rc == PLX_OK && spec->log_dir && *spec->log_dir) {
        if ((size_t)snprintf(log, sizeof log, "%s/%s-%d.out", spec->log_dir, prog,
                             plx_launch_first_index(spec) + i) >= sizeof log)
            rc = plx_err_set(err, PLX_EINVAL, "launcher ssh: log path too long in %s",
                             spec->log_dir);
        pc.log_path = log;
    }
    if (rc == PLX_OK)
        rc = plx_procset_spawn(j->procs, i, &pc, err);
    /* A send failure means ssh ended already: poll reports why. */
    if (rc == PLX_OK)
        (void)ssh_send_all(plx_procset_stdin(j->procs, i), in, inlen);
    free(cmd);
    free(in);
    return rc;
}

static int ssh_job_new(const plx_launch_spec *spec, ssh_conf_t *c, ssh_job_t **out,
                       plx_err_t *err)
{
    int *host_of = calloc((size_t)spec->count, sizeof *host_of);
    ssh_job_t *j = calloc(1, sizeof *j);
    char self[64] = "";
    int rc;

    if (!host_of || !j || !(j->host = calloc((size_t)spec->count, sizeof *j->host)) ||
        !(j->pidfile = calloc((size_t)spec->count, sizeof *j->pidfile)) ||
        !(j->procs = plx_procset_new(spec->count, "launcher ssh"))) {
        free(host_of);
        ssh_job_free(j);
        return plx_err_set(err, PLX_ENOMEM, "launcher ssh: out of memory");
    }
    j->count = spec->count;
    j->ssh = c->ssh;                 /* the job takes the words over */
    memset(&c->ssh, 0, sizeof c->ssh);
    rc = ssh_plan(c, spec, host_of, err);
    gethostname(self, sizeof self - 1);
    self[strcspn(self, ".'\"$\\` ")] = '\0';
    for (int i = 0; rc == PLX_OK && i < spec->count; i++) {
        snprintf(j->host[i], sizeof j->host[i], "%s",
                 host_of[i] < 0 ? c->controller_host : c->hosts[host_of[i]].name);
        snprintf(j->pidfile[i], sizeof j->pidfile[i], "plexa-ssh-%.40s-%d-%u-%d", self,
                 (int)getpid(), ssh_seq, i);
    }
    ssh_seq++;
    free(host_of);
    if (rc != PLX_OK) {
        ssh_job_free(j);
        return rc;
    }
    *out = j;
    return PLX_OK;
}

static int ssh_stop(void *job, double grace_s, plx_err_t *err);

static int ssh_start(const plx_launch_spec *spec, void **job, plx_err_t *err)
{
    ssh_conf_t c;
    ssh_job_t *j = NULL;
    int rc = ssh_check_spec(spec, err);

    if (rc != PLX_OK || (rc = ssh_check_env(spec, err)) != PLX_OK)
        return rc;
    rc = ssh_conf_read(spec, &c, err);
    if (rc == PLX_OK)
        rc = ssh_job_new(spec, &c, &j, err);
    for (int i = 0; rc == PLX_OK && i < spec->count; i++)
        rc = ssh_spawn_one(j, spec, &c, i, err);
    ssh_conf_free(&c);
    if (rc != PLX_OK && j) {
        /* All or nothing: take down what started. */
        (void)ssh_stop(j, 0.0, NULL);
        ssh_job_free(j);
        return rc;
    }
    if (rc == PLX_OK)
        *job = j;
    return rc;
}

/* ---- running ------------------------------------------------------------------ */

static int ssh_poll(void *job, plx_job_status *st, plx_err_t *err)
{
    ssh_job_t *j = job;
    int rc = plx_procset_poll(j->procs, st, err);
    if (st->failed && WIFEXITED(st->last_status) && WEXITSTATUS(st->last_status) == 255)
        /* 255 is ssh's own failure: the remote program never ran. */
        snprintf(st->detail + strlen(st->detail), sizeof st->detail - strlen(st->detail),
                 " (ssh could not connect or log in: see its log)");
    return rc;
}

static int ssh_signal(void *job, int sig, plx_err_t *err)
{
    ssh_job_t *j = job;
    char line[32];
    int rc = PLX_OK;

    snprintf(line, sizeof line, "signal %d\n", sig);
    for (int i = 0; i < j->count; i++) {
        int fd = plx_procset_stdin(j->procs, i);
        if (fd >= 0 && plx_procset_running(j->procs, i) &&
            send(fd, line, strlen(line), MSG_NOSIGNAL) < 0)
            rc = plx_err_set(err, PLX_EIO, "launcher ssh: signal %d to #%d on %s: %s", sig, i,
                             j->host[i], strerror(errno));
    }
    return rc;
}

/* A second connection per stuck host kills the group in its pid file. */
static void ssh_kill_remote(ssh_job_t *j)
{
    plx_procset_t *k = plx_procset_new(j->count, "launcher ssh (kill)");
    const char *argv[SSH_WORDS_MAX + 8];

    for (int i = 0; k && i < j->count; i++) {
        char *cmd;
        if (!plx_procset_running(j->procs, i) || !(cmd = ssh_kill_command(j->pidfile[i])))
            continue;
        ssh_argv(&j->ssh, j->host[i], cmd, argv);
        plx_proc_cmd pc = { .argv = argv, .log_path = "/dev/null" };
        (void)plx_procset_spawn(k, i, &pc, NULL);
        free(cmd);
    }
    if (k && !plx_procset_wait(k, SSH_KILL_WAIT_S))
        (void)plx_procset_stop(k, 0.0, NULL);
    plx_procset_destroy(&k);
}

static int ssh_stop(void *job, double grace_s, plx_err_t *err)
{
    ssh_job_t *j = job;
    char line[32];
    long tenths = grace_s > 0 ? (long)(grace_s * 10 + 0.5) : 0;

    snprintf(line, sizeof line, "stop %ld\n", tenths);
    for (int i = 0; i < j->count; i++) {
        int fd = plx_procset_stdin(j->procs, i);
        if (fd >= 0)
            (void)send(fd, line, strlen(line), MSG_NOSIGNAL);
        plx_procset_close_stdin(j->procs, i);
    }
    if (!plx_procset_wait(j->procs, (grace_s > 0 ? grace_s : 0) + SSH_ENDS_AFTER_S))
        ssh_kill_remote(j);
    return plx_procset_stop(j->procs, 0.5, err);
}

static void ssh_destroy(void **job)
{
    if (job == NULL)
        return;
    ssh_job_free(*job);
    *job = NULL;
}

static int ssh_pids(void *job, pid_t *out, int max)
{
    return plx_procset_pids(((ssh_job_t *)job)->procs, out, max);
}

/* ---- where processes run ---------------------------------------------------------- */

/* The host name ssh would connect to for alias (ssh -G applies the ssh
 * configuration: `Host node1` / `HostName 127.0.0.1`); alias itself when
 * ssh cannot tell. */
static void ssh_real_host(const ssh_words_t *ssh, const char *alias, char *out, size_t len)
{
    const char *argv[SSH_WORDS_MAX + 4];
    char buf[16384];
    int n = 0, pfd[2];
    size_t got = 0;

    snprintf(out, len, "%s", alias);
    for (int i = 0; i < ssh->n; i++)
        argv[n++] = ssh->w[i];
    argv[n++] = "-G";
    argv[n++] = alias;
    argv[n] = NULL;
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        int dn = open("/dev/null", O_RDWR | O_CLOEXEC);
        dup2(dn, 0);
        dup2(dn, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    for (ssize_t r; pid > 0 && got < sizeof buf - 1 &&
                    (r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0;)
        got += (size_t)r;
    close(pfd[0]);
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    buf[got] = '\0';
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "hostname ", 9) == 0) {
            snprintf(out, len, "%s", line + 9);
            return;
        }
}

static int ssh_remote_host(const plx_launch_spec *spec, char *host, size_t len, plx_err_t *err)
{
    ssh_conf_t c;
    char real[SSH_HOST_LEN];
    int rc = ssh_conf_read(spec, &c, err);
    int *host_of = rc == PLX_OK ? calloc((size_t)spec->count, sizeof *host_of) : NULL;

    if (rc == PLX_OK && !host_of)
        rc = plx_err_set(err, PLX_ENOMEM, "launcher ssh: out of memory");
    if (rc == PLX_OK)
        rc = ssh_plan(&c, spec, host_of, err);
    for (int i = 0; rc == PLX_OK && i < spec->count; i++) {
        const char *alias = host_of[i] < 0 ? c.controller_host : c.hosts[host_of[i]].name;
        if (i > 0 && host_of[i] <= host_of[i - 1] && host_of[i] >= 0)
            break;   /* round-robin came back to a host already looked at */
        ssh_real_host(&c.ssh, alias, real, sizeof real);
        if (!plx_host_is_loopback(real)) {
            /* the host ssh connects to (its config's HostName): ipcluster
             * looks up the route there */
            snprintf(host, len, "%s", real);
            rc = 1;
        }
    }
    free(host_of);
    ssh_conf_free(&c);
    return rc;
}

/* ---- the plugin ---------------------------------------------------------------------- */

static const plx_launcher_key ssh_keys[] = {
    { "hosts", "node1:4, node2:4",
      "Hosts to start engines on, each NAME or NAME:ENGINES; ipcluster -n N spreads N "
      "engines round-robin over them within those numbers." },
    { "ssh", "ssh", "The ssh command (default ssh)." },
    { "ssh_options", "-F /path/ssh_config -o ConnectTimeout=10",
      "Options given to every ssh command (quotes group words as in sh)." },
    { "engine_command", "/opt/plexa/bin/ipengine",
      "ipengine on the remote hosts (default: the path of the local one)." },
    { "controller_command", "/opt/plexa/bin/ipcontroller",
      "ipcontroller on controller_host, when [cluster] controller_launcher = ssh (default: "
      "the path of the local one)." },
    { "controller_host", "head",
      "Host of the controller when [cluster] controller_launcher = ssh (default: the first "
      "of hosts). It needs this profile's directory at the same path (a shared file system)." },
    { "remote_env", "PATH=/opt/plexa/bin:/usr/bin PYTHONPATH=/home/me/lib",
      "KEY=VALUE words set in the remote environment (nothing else of the local environment "
      "is passed on, unless copy_env)." },
    { "copy_env", "true",
      "true: pass the local environment on to the remote processes (0.10's --copyenvs), "
      "except variables of this host or session (SSH_*, DISPLAY, HOSTNAME, PWD, ...); "
      "remote_env applies on top." },
    { "sshx", "sshx.sh",
      "Launcher script (0.10's --sshx), relative to the profile directory or absolute: sent "
      "to each remote host and run there as `sh SCRIPT COMMAND ARGS...`." },
    { "remote_cwd", "/home/me/work",
      "Working directory of the remote processes (default: the local one when it exists "
      "there, else the home directory)." },
    { NULL, NULL, NULL },
};

static const plx_launcher_ops ssh_ops = {
    .size = sizeof ssh_ops,
    .start = ssh_start,
    .poll = ssh_poll,
    .signal = ssh_signal,
    .stop = ssh_stop,
    .destroy = ssh_destroy,
    .pids = ssh_pids,
    .keys = ssh_keys,
    .remote_host = ssh_remote_host,
};

PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, "ssh", "processes on other hosts over ssh",
                  PLX_VERSION_STRING, &ssh_ops);
