/*
 * Capability tokens: minting, checking, expiry, revocation, and the
 * connection files that carry them.
 *
 * Each role has one live token. A token that was replaced (expired or
 * revoked) is remembered for a while so that whoever still presents it is
 * told why it stopped working instead of a bare "invalid token". Retired
 * tokens are only ever compared, in constant time, like live ones.
 */
#include "plx_controller_int.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plx_log.h"
#include "plx_url.h"

static const char *const conn_files[] = {
    [PLEXA__ROLE__ROLE_ENGINE] = "ipcontroller-engine.url",
    [PLEXA__ROLE__ROLE_MEC] = "ipcontroller-mec.url",
    [PLEXA__ROLE__ROLE_TASK] = "ipcontroller-tc.url",
    [PLEXA__ROLE__ROLE_STATUS] = "ipcontroller-status.url",
};

/* Request files dropped by `ipcluster revoke` before it signals us. */
#define REVOKE_PREFIX "revoke-"

const char *ctl_role_name(Plexa__Role r)
{
    switch (r) {
    case PLEXA__ROLE__ROLE_ENGINE: return "engine";
    case PLEXA__ROLE__ROLE_MEC:    return "mec";
    case PLEXA__ROLE__ROLE_TASK:   return "task";
    case PLEXA__ROLE__ROLE_STATUS: return "status";
    default:                       return "none";
    }
}

static int role_valid(Plexa__Role r)
{
    return r >= PLEXA__ROLE__ROLE_ENGINE && r <= PLEXA__ROLE__ROLE_STATUS;
}

static Plexa__Role role_by_name(const char *name)
{
    for (int r = PLEXA__ROLE__ROLE_ENGINE; r <= PLEXA__ROLE__ROLE_STATUS; r++)
        if (strcmp(name, ctl_role_name((Plexa__Role)r)) == 0)
            return (Plexa__Role)r;
    return PLEXA__ROLE__ROLE_NONE;
}

/* ---- connection files --------------------------------------------------- */

static int write_conn_file(plx_controller_t *c, Plexa__Role role, plx_err_t *err)
{
    plx_url_t u;
    memset(&u, 0, sizeof u);
    snprintf(u.transport, sizeof u.transport, "%s", c->opts.transport);
    const char *host = c->opts.location && *c->opts.location ? c->opts.location
                                                              : c->opts.listen_host;
    const plx_listener_t *l = c->listener;
    if (role != PLEXA__ROLE__ROLE_ENGINE) {
        /* Clients' files: their listener, if they have one, and where
         * clients reach it (--client-location applies either way). */
        if (c->client_listener)
            l = c->client_listener;
        if (c->opts.client_location && *c->opts.client_location)
            host = c->opts.client_location;
        else if (c->client_listener && c->opts.client_host && *c->opts.client_host)
            host = c->opts.client_host;
    }
    snprintf(u.host, sizeof u.host, "%s", host);
    u.port = plx_listener_port(l);
    snprintf(u.token, sizeof u.token, "%s", c->caps[role].token);
    snprintf(u.fingerprint, sizeof u.fingerprint, "%s", c->fingerprint);
    if (c->shm_listener && role != PLEXA__ROLE__ROLE_STATUS)
        snprintf(u.shm, sizeof u.shm, "%s", c->shm_name);
    char url[1024], path[4096];
    if (plx_url_format(&u, url, sizeof url, err) != PLX_OK)
        return err->code;
    plx_profile_file(&c->profile, "security", conn_files[role], path, sizeof path);
    size_t n = strlen(url);
    url[n] = '\n';
    url[n + 1] = '\0';
    return plx_file_write_secret(path, url, err);
}

int caps_write_files(plx_controller_t *c, plx_err_t *err)
{
    /* The engine file goes last: ipcluster waits for it, so when it exists
     * every other file is complete. */
    static const Plexa__Role order[] = {PLEXA__ROLE__ROLE_MEC, PLEXA__ROLE__ROLE_TASK,
                                        PLEXA__ROLE__ROLE_STATUS, PLEXA__ROLE__ROLE_ENGINE};
    char path[4096];
    plx_profile_file(&c->profile, "pid", "ipcontroller.pid", path, sizeof path);
    if (plx_pidfile_write(path, getpid(), err) != PLX_OK)
        return err->code;
    c->wrote_files = 1;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (write_conn_file(c, order[i], err) != PLX_OK)
            return err->code;
    return PLX_OK;
}

void caps_remove_files(plx_controller_t *c)
{
    if (!c->wrote_files)
        return;
    char path[4096];
    for (int r = PLEXA__ROLE__ROLE_ENGINE; r <= PLEXA__ROLE__ROLE_STATUS && !c->opts.keep_files;
         r++) {
        plx_profile_file(&c->profile, "security", conn_files[r], path, sizeof path);
        unlink(path);
    }
    plx_profile_file(&c->profile, "pid", "ipcontroller.pid", path, sizeof path);
    unlink(path);
}

/* ---- minting and checking ----------------------------------------------- */

static double lifetime_of(const plx_controller_t *c, Plexa__Role r)
{
    /* Engines of a queued batch job may start hours after submission with
     * the token they were given: theirs never expires. */
    return r == PLEXA__ROLE__ROLE_ENGINE ? 0 : c->opts.token_lifetime;
}

static int mint(plx_controller_t *c, Plexa__Role r, plx_err_t *err)
{
    cap_t *cap = &c->caps[r];
    if (plx_token_new(cap->token, err) != PLX_OK)
        return err->code;
    double life = lifetime_of(c, r);
    cap->expires = life > 0 ? (double)time(NULL) + life : 0;
    return PLX_OK;
}

/* Replace role r's token; remember the old one and why it went. */
static int rotate(plx_controller_t *c, Plexa__Role r, cap_retired_why why, plx_err_t *err)
{
    cap_t *cap = &c->caps[r];
    cap_retired_t *old = &cap->retired[cap->nretired++ % CAP_RETIRED];
    memcpy(old->token, cap->token, sizeof old->token);
    old->why = why;
    old->when = why == CAP_EXPIRED && cap->expires > 0 ? cap->expires : (double)time(NULL);
    if (mint(c, r, err) != PLX_OK)
        return err->code;
    if (r == PLEXA__ROLE__ROLE_STATUS)
        status_token_changed(c);
    return write_conn_file(c, r, err);
}

static void format_utc(double t, char *out, size_t n)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

int caps_check(plx_controller_t *c, Plexa__Role r, const char *token, char *why, size_t n)
{
    if (!role_valid(r)) {
        snprintf(why, n, "unknown role %d", (int)r);
        return 0;
    }
    const cap_t *cap = &c->caps[r];
    if (token && plx_token_equal(token, cap->token))
        return 1;
    unsigned kept = cap->nretired < CAP_RETIRED ? cap->nretired : CAP_RETIRED;
    for (unsigned i = 0; token && i < kept; i++) {
        const cap_retired_t *old = &cap->retired[i];
        if (!plx_token_equal(token, old->token))
            continue;
        char when[64];
        format_utc(old->when, when, sizeof when);
        snprintf(why, n,
                 "the capability token for role '%s' %s at %s: read the new one from the "
                 "profile's connection file %s",
                 ctl_role_name(r), old->why == CAP_EXPIRED ? "expired" : "was revoked", when,
                 conn_files[r]);
        return 0;
    }
    snprintf(why, n, "invalid capability token for role '%s'", ctl_role_name(r));
    return 0;
}

/* ---- expiry -------------------------------------------------------------- */

static void expiry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_controller_t *c = (plx_controller_t *)((char *)w - offsetof(plx_controller_t, cap_timer));
    double now = (double)time(NULL);
    for (int r = PLEXA__ROLE__ROLE_ENGINE; r <= PLEXA__ROLE__ROLE_STATUS; r++) {
        cap_t *cap = &c->caps[r];
        if (cap->expires <= 0 || cap->expires > now)
            continue;
        plx_err_t err = {0};
        if (rotate(c, (Plexa__Role)r, CAP_EXPIRED, &err) != PLX_OK)
            PLX_ERROR("renewing the expired '%s' token: %s", ctl_role_name((Plexa__Role)r),
                      err.msg);
        else
            PLX_INFO("the '%s' token expired; a new one is in %s (connections already made "
                     "stay)", ctl_role_name((Plexa__Role)r), conn_files[r]);
    }
}

/* A restarted controller (opts.reuse) takes its predecessor's tokens and
 * port from the connection files it left behind, so engines reconnect and
 * clients reconnect with the files they have. 1 if role r's was taken. */
static int reuse_token(plx_controller_t *c, Plexa__Role r)
{
    char path[4096];
    plx_url_t u;
    plx_err_t err = {0};
    plx_profile_file(&c->profile, "security", conn_files[r], path, sizeof path);
    if (access(path, F_OK) != 0)
        return 0;
    if (plx_url_resolve(path, c->profile.name, conn_files[r], &u, &err) != PLX_OK) {
        PLX_WARN("not reusing %s: %s", path, err.msg);
        return 0;
    }
    if (strlen(u.token) != sizeof c->caps[r].token - 1)
        return 0;   /* not one this controller could have minted */
    memcpy(c->caps[r].token, u.token, sizeof c->caps[r].token);
    double life = lifetime_of(c, r);
    c->caps[r].expires = life > 0 ? (double)time(NULL) + life : 0;
    if (r == PLEXA__ROLE__ROLE_ENGINE) {
        c->reuse_port = u.port;
        snprintf(c->shm_name, sizeof c->shm_name, "%s", u.shm);   /* engines dial it */
    }
    else if (r == PLEXA__ROLE__ROLE_MEC)
        c->reuse_client_port = u.port;
    return 1;
}

int caps_init(plx_controller_t *c, plx_err_t *err)
{
    int reused = 0;
    for (int r = PLEXA__ROLE__ROLE_ENGINE; r <= PLEXA__ROLE__ROLE_STATUS; r++) {
        if (c->opts.reuse && reuse_token(c, (Plexa__Role)r)) {
            reused++;
            continue;
        }
        if (mint(c, (Plexa__Role)r, err) != PLX_OK)
            return err->code;
    }
    if (reused)
        PLX_INFO("reusing the tokens%s of the previous controller's connection files",
                 c->reuse_port ? " and port" : "");
    else if (c->opts.reuse)
        PLX_INFO("no connection files to reuse: new tokens");
    if (c->opts.token_lifetime > 0) {
        /* Checking a few times per lifetime keeps a token from outliving
         * its expiry by more than a fraction of it. */
        double every = c->opts.token_lifetime / 4;
        ev_timer_init(&c->cap_timer, expiry_cb, every, every);
        ev_timer_start(c->loop, &c->cap_timer);
    }
    return PLX_OK;
}

void caps_fini(plx_controller_t *c)
{
    ev_timer_stop(c->loop, &c->cap_timer);
}

/* ---- revocation ----------------------------------------------------------- */

int plx_controller_revoke(plx_controller_t *c, const char *name, int *dropped, plx_err_t *err)
{
    Plexa__Role r = role_by_name(name);
    if (!role_valid(r))
        return plx_err_set(err, PLX_EINVAL,
                           "unknown capability '%s' (one of engine, mec, task, status)", name);
    if (rotate(c, r, CAP_REVOKED, err) != PLX_OK)
        return plx_err_prefix(err, "revoking a capability");
    char reason[160];
    snprintf(reason, sizeof reason, "the '%s' capability was revoked (ipcluster revoke)", name);
    /* Work submitted under the old token must not run either: it may be
     * what the revocation is meant to stop. */
    c->caps[r].revocations++;
    if (r == PLEXA__ROLE__ROLE_TASK)
        sched_revoked(c, c->caps[r].revocations);
    int n = 0;
    for (peer_t *p = c->peers; p; p = p->next)
        if (p->role == r && plx_conn_is_open(p->conn)) {
            if (r == PLEXA__ROLE__ROLE_MEC)
                mec_client_revoked(c, p);
            ctl_drop_peer(p, reason);
            n++;
        }
    PLX_WARN("revoked the '%s' capability: a new token is in %s; dropped %d connection%s "
             "that used the old one", name, conn_files[r], n, n == 1 ? "" : "s");
    if (dropped)
        *dropped = n;
    return PLX_OK;
}

/* Handle one request file security/revoke-NAME: revoke NAME, then remove
 * the file, which tells the waiting `ipcluster revoke` it is done. */
static void serve_request(plx_controller_t *c, const char *file)
{
    char path[4096];
    plx_profile_file(&c->profile, "security", file, path, sizeof path);
    const char *name = file + strlen(REVOKE_PREFIX);
    plx_err_t err = {0};
    if (plx_controller_revoke(c, name, NULL, &err) != PLX_OK)
        PLX_ERROR("%s: %s", path, err.msg);
    unlink(path);
}

void plx_controller_serve_requests(plx_controller_t *c)
{
    DIR *d = opendir(c->profile.security_dir);
    if (!d) {
        PLX_ERROR("cannot read %s for revocation requests", c->profile.security_dir);
        return;
    }
    char names[8][64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 8) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, REVOKE_PREFIX, strlen(REVOKE_PREFIX)) == 0 &&
            len < sizeof names[0])
            memcpy(names[n++], de->d_name, len + 1);
    }
    closedir(d);
    /* Served after the scan: revoking rewrites files in this directory. */
    for (int i = 0; i < n; i++)
        serve_request(c, names[i]);
}
