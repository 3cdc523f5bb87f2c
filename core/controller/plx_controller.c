/* Controller lifecycle, authentication and dispatch; see plx_controller.h. */
#include "plx_controller_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_bufpool.h"
#include "plx_cert.h"
#include "plx_url.h"
#include "plx_profile.h"
#include "plx_region.h"

/* Freed payload memory kept for the next big push (two 256 MiB ones). */
#define POOL_MAX ((size_t)512 << 20)

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

plx_controller_opts_t plx_controller_opts_default(void)
{
    plx_controller_opts_t o = {
        .profile = "default",
        .transport = "tls",
        .listen_host = "127.0.0.1",
        .port = 0,
        .location = NULL,
        .client_port = -1,
        .heartbeat_period = 1.0,
        .heartbeat_misses = 5,
        .auth_timeout = 10.0,
        .engine_inflight = 2,
        .task_inflight = 0,
        .results_max = 100000,
        .results_max_bytes = 256u << 20,
        .depend_timeout = 30.0,
        .shm = 1,
        .direct_transfers = 1,
        .broadcast_min = 1048576,
        .limits = plx_limits_default(),
    };
    return o;
}

uint64_t ctl_next_id(plx_controller_t *c) { return ++c->next_msg_id; }

/* ---- sending ------------------------------------------------------------ */

int ctl_send_env(peer_t *p, const Plexa__Envelope *env, plx_msg_t *bufs_from)
{
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(env, &err);
    if (!m) {
        PLX_ERROR("packing a reply for %s: %s", p->addr, err.msg);
        return err.code;
    }
    if (bufs_from)
        for (uint32_t i = 0; i < bufs_from->nbufs; i++)
            if (plx_msg_add_buf(m, bufs_from->bufs[i]) != PLX_OK) {
                plx_msg_destroy(&m);
                return PLX_ENOMEM;
            }
    return plx_conn_send(p->conn, m);
}

plx_msg_t *ctl_pack(plx_controller_t *c, uint64_t reply_to, Plexa__Envelope__BodyCase bc,
                    void *body)
{
    Plexa__Envelope env;
    plx_envelope_set(&env, ctl_next_id(c), reply_to, bc, body);
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(&env, &err);
    if (!m)
        PLX_ERROR("packing a %s: %s", plx_envelope_body_name(&env), err.msg);
    return m;
}

int ctl_send_body(peer_t *p, uint64_t reply_to, Plexa__Envelope__BodyCase bc, void *body)
{
    Plexa__Envelope env;
    plx_envelope_set(&env, ctl_next_id(p->ctl), reply_to, bc, body);
    return ctl_send_env(p, &env, NULL);
}

/* A client that does not read its live output gets no more of it once this
 * much waits unsent on its connection: output costs the controller memory
 * only up to this bound per client. Replies still carry everything. */
#define LIVE_BACKLOG_MAX (8u << 20)

void ctl_send_output(peer_t *client, uint64_t reply_to, const Plexa__Output *o,
                     int32_t engine_id, uint64_t task_id)
{
    if (!client || plx_conn_out_bytes(client->conn) > LIVE_BACKLOG_MAX)
        return;   /* gone, or not reading */
    Plexa__Output out = *o;
    out.has_engine_id = 1;
    out.engine_id = engine_id;
    out.has_task_id = task_id != 0;
    out.task_id = task_id;
    ctl_send_body(client, reply_to, PLEXA__ENVELOPE__BODY_OUTPUT, &out);
}

void ctl_send_error(peer_t *p, uint64_t reply_to, int code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    Plexa__Error e = PLEXA__ERROR__INIT;
    e.has_code = 1;
    e.code = code;
    e.message = text;
    ctl_send_body(p, reply_to, PLEXA__ENVELOPE__BODY_ERROR, &e);
}

/* Refuse a connection: Reject with the reason, log it, close after flush. */
/* Tell the peer why (Reject) and close once that is written. */
static void send_reject_and_close(peer_t *p, const char *reason)
{
    Plexa__Reject r = PLEXA__REJECT__INIT;
    r.reason = (char *)reason;
    ctl_send_body(p, 0, PLEXA__ENVELOPE__BODY_REJECT, &r);
    plx_conn_close(p->conn, 1, PLX_EAUTH, reason);
}

static void peer_reject(peer_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void peer_reject(peer_t *p, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    PLX_WARN("rejected connection from %s: %s", p->addr, reason);
    ev_timer_stop(p->ctl->loop, &p->auth_timer);
    send_reject_and_close(p, reason);
}

void ctl_drop_peer(peer_t *p, const char *reason)
{
    PLX_INFO("dropping %s connection %s: %s", ctl_role_name(p->role), p->addr, reason);
    send_reject_and_close(p, reason);
}

/* ---- peers -------------------------------------------------------------- */

static void peer_free(peer_t *p)
{
    plx_controller_t *c = p->ctl;
    ev_timer_stop(c->loop, &p->auth_timer);
    adm_forget(c, p);
    if (p->prev)
        p->prev->next = p->next;
    else
        c->peers = p->next;
    if (p->next)
        p->next->prev = p->prev;
    plx_conn_destroy(&p->conn);
    free(p);
}

static void on_close(plx_conn_t *conn, int code, const char *why, void *ud)
{
    peer_t *p = ud;
    if (p->engine) {
        reg_engine_gone(p->ctl, p->engine, why);
        p->engine = NULL;
    } else if (p->role == PLEXA__ROLE__ROLE_MEC || p->role == PLEXA__ROLE__ROLE_TASK) {
        mec_client_gone(p);
        sched_client_gone(p->ctl, p);
        PLX_INFO("client %s disconnected: %s", p->addr, why);
    } else if (code != PLX_OK && code != PLX_EAUTH) {
        PLX_WARN("connection %s closed: %s", p->addr, why);
    }
    peer_free(p);
}

static void on_hello(peer_t *p, Plexa__Envelope *env)
{
    if (env->body_case != PLEXA__ENVELOPE__BODY_HELLO) {
        peer_reject(p, "expected Hello as the first message, got %s",
                    plx_envelope_body_name(env));
        return;
    }
    const Plexa__Hello *h = env->hello;
    if (!h->has_version || h->version != PLX_PROTOCOL_VERSION) {
        peer_reject(p, "protocol version %u is not supported (controller speaks %d)",
                    h->has_version ? h->version : 0, PLX_PROTOCOL_VERSION);
        return;
    }
    char why[400];
    if (!caps_check(p->ctl, h->role, h->token, why, sizeof why)) {
        peer_reject(p, "%s", why);
        return;
    }
    ev_timer_stop(p->ctl->loop, &p->auth_timer);
    p->role = h->role;
    snprintf(p->host, sizeof p->host, "%s", h->hostname ? h->hostname : "");
    p->cap_epoch = p->ctl->caps[h->role].revocations;
    adm_authenticated(p->ctl, p);
    if (h->role == PLEXA__ROLE__ROLE_ENGINE) {
        reg_add_engine(p->ctl, p, h);
        return;
    }
    Plexa__Welcome w = PLEXA__WELCOME__INIT;
    w.has_version = 1;
    w.version = PLX_PROTOCOL_VERSION;
    ctl_send_body(p, env->id, PLEXA__ENVELOPE__BODY_WELCOME, &w);
    PLX_INFO("client %s connected (%s)", p->addr, ctl_role_name(h->role));
}

/* Multi-engine client requests. m and env are consumed. */
static void on_mec(peer_t *p, plx_msg_t *m, Plexa__Envelope *env)
{
    switch (env->body_case) {
    case PLEXA__ENVELOPE__BODY_GET_IDS:
        reg_reply_ids(p->ctl, p, env->id);
        break;
    case PLEXA__ENVELOPE__BODY_EXECUTE:
    case PLEXA__ENVELOPE__BODY_PUSH:
    case PLEXA__ENVELOPE__BODY_PULL:
    case PLEXA__ENVELOPE__BODY_CALL:
    case PLEXA__ENVELOPE__BODY_SHUTDOWN:
        mec_submit(p->ctl, p, m, env);
        return; /* mec_submit took both */
    case PLEXA__ENVELOPE__BODY_CLEAR_QUEUE:
        mec_clear_queue(p->ctl, p, env);
        break;
    case PLEXA__ENVELOPE__BODY_QUEUE_STATUS:
        mec_queue_status(p->ctl, p, env);
        break;
    case PLEXA__ENVELOPE__BODY_INTERRUPT:
        mec_interrupt(p->ctl, p, env);
        break;
    default:
        ctl_send_error(p, env->id, PLX_EPROTO, "unsupported request '%s' on a mec connection",
                       plx_envelope_body_name(env));
        break;
    }
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

/* The read-only status capability: look, never touch. */
static void on_status(peer_t *p, Plexa__Envelope *env)
{
    switch (env->body_case) {
    case PLEXA__ENVELOPE__BODY_GET_IDS:
        reg_reply_ids(p->ctl, p, env->id);
        break;
    case PLEXA__ENVELOPE__BODY_QUEUE_STATUS:
        mec_queue_status(p->ctl, p, env);
        break;
    case PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS:
        sched_queue_status(p->ctl, p, env);
        break;
    default:
        ctl_send_error(p, env->id, PLX_EAUTH,
                       "the 'status' capability is read-only: '%s' needs the mec or task "
                       "capability (ipcontroller-mec.url or ipcontroller-tc.url)",
                       plx_envelope_body_name(env));
        break;
    }
}

static void on_msg(plx_conn_t *conn, plx_msg_t *m, void *ud)
{
    peer_t *p = ud;
    plx_err_t err = {0};
    Plexa__Envelope *env = plx_envelope_unpack(m, &err);
    if (!env) {
        PLX_WARN("connection %s sent a malformed envelope (%s); closing it", p->addr, err.msg);
        plx_msg_destroy(&m);
        if (p->role == PLEXA__ROLE__ROLE_NONE)
            peer_reject(p, "malformed envelope");
        else
            plx_conn_close(p->conn, 0, PLX_EPROTO, "malformed envelope");
        return;
    }
    if (m->refused_code && adm_refused(p, m, env))
        return;
    switch (p->role) {
    case PLEXA__ROLE__ROLE_NONE:
        on_hello(p, env);
        break;
    case PLEXA__ROLE__ROLE_ENGINE:
        reg_on_engine_msg(p->ctl, p->engine, m, env);
        return; /* consumed */
    case PLEXA__ROLE__ROLE_MEC:
        on_mec(p, m, env);
        return; /* consumed */
    case PLEXA__ROLE__ROLE_TASK:
        sched_on_client(p->ctl, p, m, env);
        return; /* consumed */
    case PLEXA__ROLE__ROLE_STATUS:
        on_status(p, env);
        break;
    default:
        break;
    }
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

static void auth_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    peer_t *p = container_of(w, peer_t, auth_timer);
    PLX_WARN("connection %s sent no Hello within %.0fs; closing it", p->addr,
             p->ctl->opts.auth_timeout);
    plx_conn_close(p->conn, 0, PLX_ETIMEDOUT, "no Hello in time");
}

static void on_accept(plx_listener_t *l, void *handle, int fd, const char *addr, void *ud)
{
    plx_controller_t *c = ud;
    const plx_transport_ops *ops = plx_listener_ops(l);
    peer_t *p = calloc(1, sizeof *p);
    if (!p) {
        ops->close(&handle);
        return;
    }
    static const plx_conn_cbs_t cbs = {.on_msg = on_msg, .on_close = on_close};
    p->ctl = c;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    p->conn = plx_conn_new(c->loop, ops, handle, fd, adm_limits(c, PLEXA__ROLE__ROLE_NONE),
                           &cbs, p, addr);
    if (!p->conn) {
        free(p);
        return;
    }
    /* The controller only forwards payload: it maps it read-only and
     * passes the same descriptors on, never a copy. */
    if (l == c->shm_listener)
        plx_conn_share_regions(p->conn, PLX_REGION_READONLY);
    p->next = c->peers;
    if (c->peers)
        c->peers->prev = p;
    c->peers = p;
    adm_accepted(c, p);
    ev_timer_init(&p->auth_timer, auth_timeout_cb, c->opts.auth_timeout, 0.);
    ev_timer_start(c->loop, &p->auth_timer);
    PLX_DEBUG("accepted connection from %s", addr);
}

/* ---- lifecycle ---------------------------------------------------------- */

/* A loopback address written as one (127.0.0.0/8, ::1) or "localhost";
 * a name like 127.example.invalid is whatever DNS says, not loopback. */

/* TLS: make sure the profile has a key and certificate, pin its
 * fingerprint in the URLs. Plaintext only on loopback unless allowed. */
static int check_transport(plx_controller_t *c, plx_err_t *err)
{
    const plx_controller_opts_t *o = &c->opts;
    if (strcmp(o->transport, "tls") == 0)
        return plx_cert_ensure(c->profile.security_dir, c->cert_file, sizeof c->cert_file,
                               c->key_file, sizeof c->key_file, c->fingerprint, err);
    if (strcmp(o->transport, "tcp") == 0 && !plx_addr_is_loopback(o->listen_host) && !o->allow_insecure)
        return plx_err_set(err, PLX_EINVAL,
                           "refusing plaintext tcp on %s, which is not a loopback address: "
                           "anyone on the network could read the traffic. Use transport = tls, "
                           "or set allow_insecure = true in cluster.conf if the network is "
                           "trusted", o->listen_host);
    return PLX_OK;
}

const char *ctl_client_host(const plx_controller_t *c)
{
    return c->opts.client_host && *c->opts.client_host ? c->opts.client_host
                                                       : c->opts.listen_host;
}

/* The shm listener (cluster.conf [controller] shm): without it everyone
 * uses the network listener, so failing to open it is only a warning. */
static void listen_shm(plx_controller_t *c)
{
    plx_err_t err = {0};
    const plx_transport_ops *ops = plx_transport_find("shm", &err);
    char rnd[PLX_TOKEN_HEX + 1];
    if (ops && !c->shm_name[0]) {
        /* Unguessable, so that nobody can take the name first. */
        if (plx_token_new(rnd, &err) != PLX_OK)
            ops = NULL;
        else
            snprintf(c->shm_name, sizeof c->shm_name, "plexa-%d-%.24s", (int)getpid(), rnd);
    }
    if (ops)
        c->shm_listener = plx_listener_new(c->loop, ops, c->shm_name, 0, NULL, on_accept, c,
                                           &err);
    if (!c->shm_listener) {
        c->shm_name[0] = '\0';
        PLX_WARN("no shared-memory listener (%s): clients and engines on this host use "
                 "the network address", err.msg);
        return;
    }
    PLX_INFO("listening for clients and engines of this host and user on shm @%s",
             c->shm_name);
}

/* The engines' listener, and the clients' when 0.10's separate client
 * port asks for one. Either accepts every role: the token decides. */
static int listen_all(plx_controller_t *c, plx_err_t *err)
{
    const plx_controller_opts_t *o = &c->opts;
    plx_security sec = {.cert_file = c->cert_file, .key_file = c->key_file};
    const plx_security *s = c->fingerprint[0] ? &sec : NULL;
    uint16_t port = o->port ? o->port : c->reuse_port;
    c->listener = plx_listener_new(c->loop, c->tops, o->listen_host, port, s, on_accept, c, err);
    if (!c->listener)
        return plx_err_prefix(err, "controller cannot listen");
    if (o->shm)
        listen_shm(c);
    int own_host = o->client_host && *o->client_host && strcmp(o->client_host, o->listen_host);
    /* No second listener asked for, or one on the very same address. */
    if ((o->client_port < 0 && !own_host) ||
        (!own_host && o->client_port > 0 && o->client_port == plx_listener_port(c->listener)))
        return PLX_OK;
    /* A predecessor with one listener named the same port in every file. */
    port = o->client_port > 0 ? (uint16_t)o->client_port
           : c->reuse_client_port != c->reuse_port ? c->reuse_client_port : 0;
    c->client_listener = plx_listener_new(c->loop, c->tops, ctl_client_host(c), port, s,
                                          on_accept, c, err);
    if (!c->client_listener)
        return plx_err_prefix(err, "controller cannot listen for clients");
    return PLX_OK;
}

plx_controller_t *plx_controller_new(struct ev_loop *loop, const plx_controller_opts_t *opts,
                                     plx_err_t *err)
{
    plx_controller_t *c = calloc(1, sizeof *c);
    if (!c) {
        plx_err_set(err, PLX_ENOMEM, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->opts = *opts;
    adm_init(c);
    if (plx_profile_open(opts->profile, 1, &c->profile, err) != PLX_OK)
        goto fail;
    if (sched_new(c) != PLX_OK) {
        plx_err_set(err, PLX_ENOMEM, "out of memory");
        goto fail;
    }
    c->tops = plx_transport_find(opts->transport, err);
    if (!c->tops || caps_init(c, err) != PLX_OK || check_transport(c, err) != PLX_OK)
        goto fail;
    if (listen_all(c, err) != PLX_OK || caps_write_files(c, err) != PLX_OK ||
        status_start(c, err) != PLX_OK)
        goto fail;
    reg_start_heartbeat(c);
    /* Reuse the memory of forwarded payloads (see plx_bufpool.h); the
     * heartbeat tick returns what stays idle. */
    plx_buf_pool_set_max(POOL_MAX);
    if (c->client_listener)
        PLX_INFO("controller listening on %s:%u for engines and %s:%u for clients (%s), "
                 "profile '%s'", opts->listen_host, plx_listener_port(c->listener),
                 ctl_client_host(c), plx_listener_port(c->client_listener), opts->transport,
                 c->profile.name);
    else
        PLX_INFO("controller listening on %s:%u (%s), profile '%s'", opts->listen_host,
                 plx_listener_port(c->listener), opts->transport, c->profile.name);
    return c;
fail:
    plx_controller_destroy(&c);
    return NULL;
}

uint16_t plx_controller_port(const plx_controller_t *c) { return plx_listener_port(c->listener); }

void plx_controller_stop(plx_controller_t *c) { ev_break(c->loop, EVBREAK_ALL); }

static void stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    PLX_INFO("stopping at a client's request");
    ev_break(loop, EVBREAK_ALL);
}

/* Give the last replies a moment to reach their clients, then stop. */
void ctl_stop_soon(plx_controller_t *c)
{
    if (ev_is_active(&c->stop_timer))
        return;
    ev_timer_init(&c->stop_timer, stop_timer_cb, 0.2, 0.);
    ev_timer_start(c->loop, &c->stop_timer);
}

void plx_controller_destroy(plx_controller_t **cp)
{
    plx_controller_t *c = *cp;
    if (!c)
        return;
    *cp = NULL;
    status_stop(c);
    caps_remove_files(c);
    caps_fini(c);
    ev_timer_stop(c->loop, &c->hb_timer);
    ev_timer_stop(c->loop, &c->stop_timer);
    plx_listener_destroy(&c->listener);
    plx_listener_destroy(&c->client_listener);
    plx_listener_destroy(&c->shm_listener);
    while (c->peers) {
        peer_t *p = c->peers;
        if (p->engine) {
            reg_engine_gone(c, p->engine, "controller shutting down");
            p->engine = NULL;
        }
        if (p->role == PLEXA__ROLE__ROLE_MEC || p->role == PLEXA__ROLE__ROLE_TASK) {
            mec_client_gone(p);
            sched_client_gone(c, p);
        }
        peer_free(p);
    }
    sched_destroy(c);
    free(c->engines);
    free(c->engine_secrets);
    free(c);
    plx_buf_pool_set_max(0);
}
