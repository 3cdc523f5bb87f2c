/* ipcluster commands that inspect or administer a profile without starting
 * anything: status, list, tokens, revoke, profile create. */
#include "plx_cluster.h"
#include "plx_tunnel.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "plexa/client.h"
#include "plx_conf.h"
#include "plx_plugin_loader.h"
#include "plx_profile.h"
#include "plx_time.h"
#include "plx_url.h"

/* The pid of a profile's running ipcluster, or 0. */
static pid_t running_pid(const plx_profile_t *p)
{
    char path[PATH_MAX];
    pid_t pid;
    plx_profile_file(p, "pid", "ipcluster.pid", path, sizeof path);
    if (plx_pidfile_read(path, &pid, NULL) == PLX_OK && plx_pid_alive(pid))
        return pid;
    return 0;
}

static void print_engines(const plx_profile_t *p, const char *sshserver, FILE *out)
{
    /* The read-only capability: looking must not need the power to act. */
    plx_err_t err = {0};
    plx_client_t *cl = plx_client_connect_ssh("", p->name, PLX_CLIENT_ROLE_STATUS, sshserver, NULL,
                                              sshserver ? 15.0 : 5.0, &err);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!cl || plx_client_get_ids(cl, &ids, &n, &err) != PLX_OK) {
        fprintf(out, "  controller: not answering (%s)\n", err.msg);
        plx_client_destroy(&cl);
        return;
    }
    fprintf(out, "  controller: %s\n  engines:    %zu registered [", plx_client_peer(cl), n);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%d", i ? ", " : "", ids[i]);
    fprintf(out, "]\n");
    free(ids);
    plx_client_destroy(&cl);
}

/* GET path from the status page named by security/ipcontroller-status.http
 * and copy the body to out. PLX_OK, or an error when the page is off or
 * does not answer (the caller falls back to the status capability). */
static int get_status_page(unsigned port, const char *token, const char *path, FILE *out);

/* The status page listens on the controller host's loopback: from another
 * host, through a tunnel to sshserver (NULL: here). */
static int print_status_page(const plx_profile_t *p, const char *path, const char *sshserver,
                             FILE *out)
{
    char file[PATH_MAX], url[512], token[160];
    unsigned port = 0;
    plx_profile_file(p, "security", "ipcontroller-status.http", file, sizeof file);
    if (plx_file_read_small(file, url, sizeof url, NULL) != PLX_OK ||
        sscanf(url, "http://127.0.0.1:%u/?token=%159[0-9a-f]", &port, token) != 2)
        return PLX_ENOTFOUND;
    if (!sshserver)
        return get_status_page(port, token, path, out);
    plx_tunnel_t *t = NULL;
    uint16_t lport;
    plx_err_t err = {0};
    if (plx_tunnel_open(sshserver, NULL, "127.0.0.1", (uint16_t)port, 15.0, &t, &lport, &err))
        return err.code;
    int rc = get_status_page(lport, token, path, out);
    plx_tunnel_close(&t);
    return rc;
}

static int get_status_page(unsigned port, const char *token, const char *path, FILE *out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (fd >= 0)
            close(fd);
        return PLX_ECONNECT;
    }
    char req[512], buf[16384];
    int n = snprintf(req, sizeof req, "GET %s?token=%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                     path, token);
    size_t have = 0;
    ssize_t r;
    if (write(fd, req, (size_t)n) == n)
        while (have < sizeof buf - 1 && (r = read(fd, buf + have, sizeof buf - 1 - have)) > 0)
            have += (size_t)r;
    close(fd);
    buf[have] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || !body)
        return PLX_EPROTO;
    fputs(body + 4, out);
    return PLX_OK;
}

int plx_cluster_status(const char *profile, FILE *out, plx_err_t *err)
{
    plx_profile_t p;
    int rc = plx_profile_open(profile, 0, &p, err);
    if (rc == PLX_ENOTFOUND) {
        fprintf(out, "cluster '%s': not running (%s)\n", profile ? profile : "default", err->msg);
        return rc;
    }
    if (rc != PLX_OK)
        return rc;
    pid_t pid = running_pid(&p);
    if (!pid) {
        fprintf(out, "cluster '%s': not running\n", p.name);
        return PLX_ENOTFOUND;
    }
    fprintf(out, "cluster '%s': running (ipcluster pid %d)\n  profile:    %s\n", p.name,
            (int)pid, p.dir);
    char failed[PATH_MAX], said[2048];
    plx_profile_file(&p, "pid", "stop-failed", failed, sizeof failed);
    if (plx_file_read_small(failed, said, sizeof said, NULL) == PLX_OK)
        fprintf(out, "  stop failed: %s\n", said);
    if (print_status_page(&p, "/status.txt", NULL, out) != PLX_OK)
        print_engines(&p, NULL, out);
    return PLX_OK;
}

int plx_cluster_status_via(const char *profile, const char *sshserver, FILE *out, plx_err_t *err)
{
    plx_profile_t p;
    int rc = plx_profile_open(profile, 0, &p, err);
    if (rc != PLX_OK)
        return rc;
    /* ipcluster runs on the other host: its connection files tell the rest */
    fprintf(out, "cluster '%s' through %s\n  profile:    %s\n", p.name, sshserver, p.dir);
    if (print_status_page(&p, "/status.txt", sshserver, out) != PLX_OK)
        print_engines(&p, sshserver, out);
    return PLX_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int plx_cluster_list(FILE *out, plx_err_t *err)
{
    char root[PATH_MAX];
    if (plx_profile_root(root, sizeof root, err) != PLX_OK)
        return err->code;
    DIR *d = opendir(root);
    if (!d) {
        fprintf(out, "no profiles in %s\n", root);
        return PLX_OK;
    }
    char *names[1024];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 1024)
        if (strncmp(de->d_name, "profile_", 8) == 0 && de->d_name[8])
            names[n++] = strdup(de->d_name + 8);
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    fprintf(out, "profiles in %s:\n", root);
    for (size_t i = 0; i < n; i++) {
        plx_profile_t p;
        pid_t pid = names[i] && plx_profile_open(names[i], 0, &p, NULL) == PLX_OK
                        ? running_pid(&p) : 0;
        if (pid)
            fprintf(out, "  %-20s running (ipcluster pid %d)\n", names[i], (int)pid);
        else
            fprintf(out, "  %-20s stopped\n", names[i] ? names[i] : "?");
        free(names[i]);
    }
    return PLX_OK;
}

typedef struct {
    FILE       *out;
    const char *kind;
    int         refused;
} plugin_rows;

static void plugin_row(const plx_plugin *p, const char *path, const char *why, void *ud)
{
    plugin_rows *r = ud;
    if (p) {
        fprintf(r->out, "%-10s %-10s %-12s %-4u %s\n", r->kind, p->name,
                p->version && *p->version ? p->version : "-", (unsigned)p->abi, path);
        return;
    }
    /* its name, from its file name: plexa-KIND-NAME[.so] */
    char name[64] = "?";
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t skip = strlen("plexa-") + strlen(r->kind) + 1;
    if (strlen(base) > skip) {
        snprintf(name, sizeof name, "%s", base + skip);
        char *dot = strstr(name, ".so");
        if (dot)
            *dot = '\0';
    }
    r->refused++;
    fprintf(r->out, "%-10s %-10s %-12s %-4s %s\n    refused: %s\n", r->kind, name, "-", "-",
            path, why && *why ? why : "(no reason given)");
}

int plx_cluster_plugins(FILE *out, plx_err_t *err)
{
    static const struct { plx_plugin_kind kind; const char *name; } kinds[] = {
        { PLX_PLUGIN_LAUNCHER, "launcher" }, { PLX_PLUGIN_TRANSPORT, "transport" },
    };
    char dir[PATH_MAX];
    const char *path = getenv("PLX_PLUGIN_PATH");
    fprintf(out, "search path: %s%s%s\n", path && *path ? path : "",
            path && *path ? ":" : "",
            plx_plugin_default_dir(dir, sizeof dir) == PLX_OK ? dir : "(built-in directory unknown)");
    fprintf(out, "%-10s %-10s %-12s %-4s %s\n", "kind", "name", "version", "abi", "file");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        plugin_rows r = { out, kinds[i].name, 0 };
        int n = plx_plugin_survey(kinds[i].kind, plugin_row, &r);
        if (n < 0)
            return plx_err_set(err, n, "listing %s plugins failed", kinds[i].name);
    }
    return PLX_OK;
}

int plx_cluster_profile_create(const char *profile, const char *engine_launcher, FILE *out,
                               plx_err_t *err)
{
    plx_profile_t p;
    char path[PATH_MAX];
    if (plx_profile_open(profile, 1, &p, err) != PLX_OK)
        return err->code;
    plx_profile_file(&p, NULL, "cluster.conf", path, sizeof path);
    /* The launcher's own keys go into the template. A launcher that is not
     * installed here yet still gets its section (a profile may be written
     * before the site plugin is installed), with a warning. */
    const char *launcher = engine_launcher && *engine_launcher ? engine_launcher : "local";
    plx_err_t lerr = {0};
    const plx_launcher_ops *ops = plx_launcher_find(launcher, &lerr);
    if (plx_conf_write_template(path, launcher, ops ? plx_launcher_keys(ops) : NULL, err) !=
        PLX_OK)
        return err->code;
    fprintf(out, "created profile '%s': edit %s\n", p.name, path);
    if (!ops)
        fprintf(out, "warning: %s\n", lerr.msg);
    return PLX_OK;
}

/* ---- tokens and revoke ---------------------------------------------------- */

static const struct {
    const char *name, *file;
} caps[] = {
    {"engine", "ipcontroller-engine.url"},
    {"mec", "ipcontroller-mec.url"},
    {"task", "ipcontroller-tc.url"},
    {"status", "ipcontroller-status.url"},
};
#define NCAPS (sizeof caps / sizeof caps[0])

/* The running controller's pid, or 0 with err saying so. */
static pid_t controller_pid(const plx_profile_t *p, plx_err_t *err)
{
    char path[PATH_MAX];
    pid_t pid = 0;
    plx_profile_file(p, "pid", "ipcontroller.pid", path, sizeof path);
    if (plx_pidfile_read(path, &pid, NULL) == PLX_OK && plx_pid_alive(pid))
        return pid;
    plx_err_set(err, PLX_ENOTFOUND,
                "no controller is running for profile '%s' (its tokens are minted at every "
                "start and die with it): start it with `ipcluster start --profile=%s`",
                p->name, p->name);
    return 0;
}

static int read_cap(const plx_profile_t *p, size_t i, plx_url_t *u, char *path, size_t len,
                    plx_err_t *err)
{
    plx_profile_file(p, "security", caps[i].file, path, len);
    memset(u, 0, sizeof *u);
    return plx_url_resolve(path, p->name, caps[i].file, u, err);
}

int plx_cluster_tokens(const char *profile, FILE *out, plx_err_t *err)
{
    plx_profile_t p;
    if (plx_profile_open(profile, 0, &p, err) != PLX_OK)
        return err->code;
    pid_t pid = controller_pid(&p, err);
    if (!pid)
        return err->code;
    char path[PATH_MAX];
    plx_url_t u;
    if (read_cap(&p, 0, &u, path, sizeof path, err) != PLX_OK)
        return err->code;
    fprintf(out, "profile '%s': controller pid %d at %s:%u (%s)\n", p.name, (int)pid, u.host,
            u.port, u.transport);
    if (u.fingerprint[0])
        fprintf(out, "certificate sha256: %s\n", u.fingerprint);
    fprintf(out, "%-8s %-64s  %s\n", "role", "token", "connection file");
    for (size_t i = 0; i < NCAPS; i++) {
        if (read_cap(&p, i, &u, path, sizeof path, err) != PLX_OK)
            return err->code;
        fprintf(out, "%-8s %-64s  %s\n", caps[i].name, u.token, path);
    }
    return PLX_OK;
}

static int cap_index(const char *name, plx_err_t *err)
{
    for (size_t i = 0; name && i < NCAPS; i++)
        if (strcmp(name, caps[i].name) == 0)
            return (int)i;
    return plx_err_set(err, PLX_EINVAL,
                       "unknown capability '%s': name one of engine, mec, task, status",
                       name ? name : "");
}

/* Wait until the controller removed the request file (it served it). */
static int await_served(const char *req, pid_t pid, double timeout_s)
{
    struct timespec nap = {0, 20 * 1000 * 1000};
    for (double t = 0; t < timeout_s; t += 0.02) {
        if (access(req, F_OK) != 0)
            return 1;
        if (!plx_pid_alive(pid))
            return 0;
        nanosleep(&nap, NULL);
    }
    return 0;
}

int plx_cluster_revoke(const char *profile, const char *cap, FILE *out, plx_err_t *err)
{
    int i = cap_index(cap, err);
    plx_profile_t p;
    if (i < 0 || plx_profile_open(profile, 0, &p, err) != PLX_OK)
        return err->code;
    pid_t pid = controller_pid(&p, err);
    char path[PATH_MAX], req[PATH_MAX], file[64];
    plx_url_t before, after;
    if (!pid || read_cap(&p, (size_t)i, &before, path, sizeof path, err) != PLX_OK)
        return err->code;
    snprintf(file, sizeof file, "revoke-%s", cap);
    plx_profile_file(&p, "security", file, req, sizeof req);
    if (plx_file_write_secret(req, "", err) != PLX_OK)
        return err->code;
    if (kill(pid, SIGUSR1) != 0) {
        unlink(req);
        return plx_err_set(err, PLX_EIO, "cannot signal the controller (pid %d): %s", (int)pid,
                           strerror(errno));
    }
    if (!await_served(req, pid, 10.0) ||
        read_cap(&p, (size_t)i, &after, path, sizeof path, err) != PLX_OK ||
        strcmp(before.token, after.token) == 0) {
        unlink(req);
        return plx_err_set(err, PLX_ETIMEDOUT,
                           "the controller (pid %d) did not revoke the '%s' capability within "
                           "10 s: see its log in %s", (int)pid, cap, p.log_dir);
    }
    fprintf(out,
            "revoked the '%s' capability of profile '%s': connections that used the old "
            "token were dropped, and it is refused from now on; the new token is in %s\n",
            cap, p.name, path);
    return PLX_OK;
}

/* ---- ipcluster engines -n N -------------------------------------------- */

static int registered_count(plx_client_t *cl, int *count, plx_err_t *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (plx_client_get_ids(cl, &ids, &n, err) != PLX_OK)
        return err->code;
    free(ids);
    *count = (int)n;
    return PLX_OK;
}

/* Ask the running ipcluster to start n engines (a request file and
 * SIGUSR1, served by its watch loop); PLX_OK once it has, or its error. */
static int ask_for_engines(const plx_profile_t *p, pid_t pid, int n, plx_err_t *err)
{
    char req[PATH_MAX], errfile[PATH_MAX], text[32], said[PLX_ERR_MSG_MAX];
    plx_profile_file(p, "pid", "add-engines", req, sizeof req);
    plx_profile_file(p, "pid", "add-engines.err", errfile, sizeof errfile);
    unlink(errfile);
    snprintf(text, sizeof text, "%d\n", n);
    if (plx_file_write_secret(req, text, err) != PLX_OK)
        return err->code;
    if (kill(pid, SIGUSR1) != 0) {
        unlink(req);
        return plx_err_set(err, PLX_EIO, "cannot signal ipcluster (pid %d): %s", (int)pid,
                           strerror(errno));
    }
    if (!await_served(req, pid, 10.0)) {
        unlink(req);
        return plx_err_set(err, PLX_ETIMEDOUT, "ipcluster (pid %d) did not take the request "
                           "within 10 s: see its log in %s", (int)pid, p->log_dir);
    }
    if (plx_file_read_small(errfile, said, sizeof said, NULL) == PLX_OK) {
        unlink(errfile);
        return plx_err_set(err, PLX_ERR, "ipcluster could not start the engines: %s", said);
    }
    return PLX_OK;
}

/* Poll the controller until n engines beyond `before` have registered (or
 * timeout_s passes, or ipcluster exits); progress to out. *now: the count. */
static int await_more(plx_client_t *cl, const plx_profile_t *p, pid_t pid, int before, int n,
                      double timeout_s, FILE *out, int *now, plx_err_t *err)
{
    struct timespec nap = {0, 100 * 1000 * 1000};
    double deadline = plx_now_s() + timeout_s;
    for (int last = -1;; nanosleep(&nap, NULL)) {
        if (registered_count(cl, now, err) != PLX_OK)
            return err->code;
        int added = *now - before < 0 ? 0 : *now - before > n ? n : *now - before;
        if (added != last) {
            fprintf(out, "[ipcluster] engines: %d/%d more registered\n", added, n);
            fflush(out);
        }
        last = added;
        if (added >= n)
            return PLX_OK;
        if (plx_now_s() >= deadline || !plx_pid_alive(pid))
            return plx_err_set(err, PLX_ETIMEDOUT, "only %d of %d more engines registered in "
                               "time; see their logs in %s", added, n, p->log_dir);
    }
}

int plx_cluster_add_engines(const char *profile, int n, double timeout_s, FILE *out,
                            plx_err_t *err)
{
    plx_profile_t p;
    if (n < 1)
        return plx_err_set(err, PLX_EINVAL, "-n: add at least one engine");
    if (plx_profile_open(profile, 0, &p, err) != PLX_OK)
        return err->code;
    pid_t pid = running_pid(&p);
    if (!pid)
        return plx_err_set(err, PLX_ENOTFOUND, "no cluster is running for profile '%s': "
                           "start one with ipcluster start --profile=%s", p.name, p.name);
    plx_client_t *cl = plx_client_connect_role("", p.name, PLX_CLIENT_ROLE_STATUS, 5.0, err);
    if (!cl)
        return plx_err_prefix(err, "connecting to the controller");
    int before = 0, now = 0, rc;
    if ((rc = registered_count(cl, &before, err)) == PLX_OK &&
        (rc = ask_for_engines(&p, pid, n, err)) == PLX_OK &&
        (rc = await_more(cl, &p, pid, before, n, timeout_s, out, &now, err)) == PLX_OK)
        fprintf(out, "[ipcluster] cluster now has %d engines (profile '%s')\n", now, p.name);
    plx_client_destroy(&cl);
    return rc;
}
