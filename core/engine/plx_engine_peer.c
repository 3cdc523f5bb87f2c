/*
 * Direct transfers between engines (proto/plexa.proto, Ref and Pull).
 *
 * Serving (the source): for a push of plexa.refs the controller may ask
 * an engine to serve values itself: a Pull with tickets. The Python thread
 * exports the values as for a pull, packs them into one EngineReply frame
 * (an "offer"), and answers the controller with a URL instead. The I/O
 * thread listens (lazily, on the address its controller connection goes
 * out from, with a key and certificate made for this process alone), and
 * gives the offer to each peer whose Hello presents one of its tickets, once
 * per ticket. Offers go when every ticket is used, when the controller says
 * the push is over (ServeEnd), or after OFFER_TTL_S as a safety net.
 *
 * Fetching (a target): the Python thread, the GIL released, connects to
 * the URL the controller put in the Ref (pinned to its fingerprint), says
 * Hello with the ticket, and reads the one frame served.
 *
 * Engines connected through shared memory or an ssh tunnel have no
 * endpoint other engines could reach: they answer with the values, and the
 * controller forwards them as usual.
 */
#include "plx_engine_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_cert.h"
#include "plx_envelope.h"
#include "plx_listener.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_profile.h"
#include "plx_time.h"

#define OFFER_TTL_S     3600.0   /* the controller ends offers; this only bounds a lost one */
#define HELLO_TIMEOUT_S 10.0
#define MAX_PEER_CONNS  64
#define LISTEN_WAIT_S   10.0
#define ENDED_KEPT      64       /* tickets ended before their offer was made */

typedef struct offer {
    char         (*tickets)[PLX_TOKEN_MAX_HEX + 1];   /* "" once used */
    size_t        n, left;
    plx_msg_t    *msg;       /* the EngineReply frame: envelope and buffers */
    double        expires;   /* plx_now_s() */
    struct offer *next;
} offer_t;

typedef struct pconn {
    plx_engine_t *e;
    plx_conn_t   *conn;
    ev_timer      hello;
    struct pconn *prev, *next;
} pconn_t;

struct plx_engine_peers {
    /* under e->mu */
    pthread_cond_t  cv;          /* the listener's outcome */
    int             want_listen, listening, failed;
    char            why[PLX_ERR_MSG_MAX];
    char            url[320];    /* what the controller is told: an all-zero token */
    offer_t        *offers;
    char            ended[ENDED_KEPT][PLX_TOKEN_MAX_HEX + 1];   /* a ring */
    unsigned        nended;
    /* I/O thread only */
    plx_listener_t *listener;
    pconn_t        *conns;
    int             nconns;
    ev_timer        sweep;
};

/* ---- offers (under e->mu) ------------------------------------------------ */

/* Freeing an offer may release exported buffers, which takes e->mu (the
 * engine's deferred releases): offers are freed after it is unlocked, from
 * a list the locked functions below fill. */
static void offers_free(offer_t *o)
{
    while (o) {
        offer_t *next = o->next;
        plx_msg_destroy(&o->msg);
        free(o->tickets);
        free(o);
        o = next;
    }
}

static void offer_unlink(offer_t **op, offer_t **dead)
{
    offer_t *o = *op;
    *op = o->next;
    o->next = *dead;
    *dead = o;
}

/* The offer holding ticket, which is then used up; NULL if none. */
static plx_msg_t *offer_take_locked(struct plx_engine_peers *p, const char *ticket,
                                    offer_t **dead)
{
    for (offer_t **op = &p->offers; *op; op = &(*op)->next) {
        offer_t *o = *op;
        for (size_t i = 0; i < o->n; i++) {
            if (!o->tickets[i][0] || !plx_token_equal(o->tickets[i], ticket))
                continue;
            o->tickets[i][0] = '\0';
            plx_msg_t *m = plx_msg_new(o->msg->env_len);
            if (m) {
                memcpy(plx_msg_env(m), plx_msg_env(o->msg), o->msg->env_len);
                for (uint32_t b = 0; b < o->msg->nbufs; b++)
                    if (plx_msg_add_buf(m, o->msg->bufs[b]) != PLX_OK)
                        plx_msg_destroy(&m);
            }
            if (--o->left == 0)
                offer_unlink(op, dead);
            return m;
        }
    }
    return NULL;
}

static int ended_locked(const struct plx_engine_peers *p, const char *ticket)
{
    for (unsigned i = 0; i < ENDED_KEPT; i++)
        if (p->ended[i][0] && plx_token_equal(p->ended[i], ticket))
            return 1;
    return 0;
}

/* The controller ends tickets when the push is over: offers holding them
 * go, and a ServeEnd that overtook its Pull (the push was cancelled while
 * the Pull waited in this engine's queue) is remembered, so that the
 * offer is never made. */
static void offers_end_locked(struct plx_engine_peers *p, char *const *tickets, size_t n,
                              offer_t **dead)
{
    int found = 0;
    for (offer_t *o = p->offers; o && !found; o = o->next)
        for (size_t i = 0; i < o->n && !found; i++)
            found = n && o->tickets[i][0] && plx_token_equal(o->tickets[i], tickets[0]);
    if (!found && n)
        snprintf(p->ended[p->nended++ % ENDED_KEPT], sizeof p->ended[0], "%s", tickets[0]);
    for (offer_t **op = &p->offers; *op;) {
        offer_t *o = *op;
        for (size_t i = 0; i < o->n; i++)
            for (size_t k = 0; o->tickets[i][0] && k < n; k++)
                if (plx_token_equal(o->tickets[i], tickets[k])) {
                    o->tickets[i][0] = '\0';
                    o->left--;
                }
        if (o->left == 0)
            offer_unlink(op, dead);
        else
            op = &o->next;
    }
}

/* ---- serving peers (I/O thread) ------------------------------------------- */

static void pconn_free(pconn_t *pc)
{
    struct plx_engine_peers *p = pc->e->peers;
    ev_timer_stop(pc->e->loop, &pc->hello);
    plx_conn_destroy(&pc->conn);
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        p->conns = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    p->nconns--;
    free(pc);
}

static void peer_on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    pconn_free(ud);
}

static void peer_on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    pconn_t *pc = ud;
    plx_engine_t *e = pc->e;
    Plexa__Envelope *env = plx_envelope_unpack(m, NULL);
    plx_msg_destroy(&m);
    plx_msg_t *out = NULL;
    offer_t *dead = NULL;
    if (env && env->body_case == PLEXA__ENVELOPE__BODY_HELLO && env->hello->token &&
        env->hello->has_role && env->hello->role == PLEXA__ROLE__ROLE_PEER) {
        pthread_mutex_lock(&e->mu);
        out = offer_take_locked(e->peers, env->hello->token, &dead);
        pthread_mutex_unlock(&e->mu);
    }
    offers_free(dead);
    plx_envelope_free(&env);
    ev_timer_stop(e->loop, &pc->hello);
    if (!out) {
        PLX_WARN("refused a peer from %s: not a Hello with a ticket this engine serves",
                 plx_conn_peer(c));
        plx_conn_close(c, 0, PLX_EAUTH, "no such ticket");
        return;
    }
    plx_conn_send(c, out);
    plx_conn_close(c, 1, PLX_OK, "served");
}

static void hello_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    pconn_t *pc = w->data;
    PLX_WARN("a peer from %s sent no Hello within %.0f s; closed", plx_conn_peer(pc->conn),
             HELLO_TIMEOUT_S);
    plx_conn_close(pc->conn, 0, PLX_ETIMEDOUT, "no Hello");
}

static void on_accept(plx_listener_t *l, void *handle, int fd, const char *peer, void *ud)
{
    plx_engine_t *e = ud;
    struct plx_engine_peers *p = e->peers;
    const plx_transport_ops *ops = plx_listener_ops(l);
    pconn_t *pc = p->nconns < MAX_PEER_CONNS ? calloc(1, sizeof *pc) : NULL;
    if (!pc) {
        PLX_WARN("refused a peer from %s: %d peer connections open", peer, p->nconns);
        ops->close(&handle);
        return;
    }
    /* Before its Hello a peer may send only a small frame. */
    plx_limits_t lim = plx_limits_default();
    lim.max_envelope = 4096;
    lim.max_bufs = 0;
    lim.max_buf = 0;
    lim.max_frame = 4096;
    static const plx_conn_cbs_t cbs = { .on_msg = peer_on_msg, .on_close = peer_on_close };
    pc->e = e;
    pc->conn = plx_conn_new(e->loop, ops, handle, fd, &lim, &cbs, pc, peer);
    if (!pc->conn) {
        free(pc);
        return;
    }
    pc->next = p->conns;
    if (p->conns)
        p->conns->prev = pc;
    p->conns = pc;
    p->nconns++;
    ev_timer_init(&pc->hello, hello_timeout_cb, HELLO_TIMEOUT_S, 0.);
    pc->hello.data = pc;
    ev_timer_start(e->loop, &pc->hello);
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_engine_t *e = w->data;
    double now = plx_now_s();
    offer_t *dead = NULL;
    pthread_mutex_lock(&e->mu);
    for (offer_t **op = &e->peers->offers; *op;) {
        if ((*op)->expires < now)
            offer_unlink(op, &dead);
        else
            op = &(*op)->next;
    }
    pthread_mutex_unlock(&e->mu);
    if (dead)
        PLX_WARN("dropping values served for a push after %.0f s without their peers",
                 OFFER_TTL_S);
    offers_free(dead);
}

/* The local address of the controller connection, which other hosts of
 * the cluster reach this one by; PLX_ENOTFOUND when there is none. */
static int local_address(plx_engine_t *e, char *host, size_t len, plx_err_t *err)
{
    if (e->tunnel)
        return plx_err_set(err, PLX_ENOTFOUND, "the engine reaches the controller through "
                           "an ssh tunnel");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = atomic_load(&plx_engine_conn_fd);
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return plx_err_set(err, PLX_ENOTFOUND, "no connection to the controller");
    const void *a = ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                    : ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                               : NULL;
    if (!a || !inet_ntop(ss.ss_family, a, host, (socklen_t)len))
        return plx_err_set(err, PLX_ENOTFOUND, "the controller connection is not a network "
                           "one (shared memory)");
    return PLX_OK;
}

/* Make the listener's key and certificate in a private directory, listen,
 * and remove them: the listener has loaded them, and nobody else needs
 * them. */
static plx_listener_t *listen_tls(plx_engine_t *e, const plx_transport_ops *ops,
                                  const char *host, char *fp, plx_err_t *err)
{
    char dir[] = "/tmp/plexa-peer-XXXXXX", cert[512], key[512];
    if (!mkdtemp(dir)) {
        plx_err_set(err, PLX_EIO, "mkdtemp %s: %s", dir, strerror(errno));
        return NULL;
    }
    plx_listener_t *l = NULL;
    if (plx_cert_ensure(dir, cert, sizeof cert, key, sizeof key, fp, err) == PLX_OK) {
        plx_security sec = { .cert_file = cert, .key_file = key };
        l = plx_listener_new(e->loop, ops, host, 0, &sec, on_accept, e, err);
    }
    unlink(cert);
    unlink(key);
    char lock[600];
    snprintf(lock, sizeof lock, "%s/.lock", dir);
    unlink(lock);
    rmdir(dir);
    return l;
}

static int start_listening(plx_engine_t *e, plx_err_t *err)
{
    struct plx_engine_peers *p = e->peers;
    char host[INET6_ADDRSTRLEN], fp[PLX_CERT_FINGERPRINT_HEX + 1] = "";
    if (local_address(e, host, sizeof host, err) != PLX_OK)
        return err->code;
    const plx_transport_ops *ops = plx_transport_find(e->url.transport, err);
    if (!ops)
        return err->code;
    int tls = strcmp(e->url.transport, "tls") == 0;
    p->listener = tls ? listen_tls(e, ops, host, fp, err)
                      : plx_listener_new(e->loop, ops, host, 0, NULL, on_accept, e, err);
    if (!p->listener)
        return err->code ? err->code : PLX_EIO;
    char zeros[33];
    memset(zeros, '0', 32);
    zeros[32] = '\0';
    int v6 = strchr(host, ':') != NULL;
    snprintf(p->url, sizeof p->url, "plx+%s://%s%s%s:%u/%s%s%s", e->url.transport, v6 ? "[" : "",
             host, v6 ? "]" : "", (unsigned)plx_listener_port(p->listener), zeros,
             tls ? "#sha256=" : "", fp);
    ev_timer_init(&p->sweep, sweep_cb, 60., 60.);
    p->sweep.data = e;
    ev_timer_start(e->loop, &p->sweep);
    PLX_INFO("serving values to other engines on %s:%u", host,
             (unsigned)plx_listener_port(p->listener));
    return PLX_OK;
}

void plx_engine_peer_on_wake(plx_engine_t *e)
{
    struct plx_engine_peers *p = e->peers;
    if (!p)
        return;
    pthread_mutex_lock(&e->mu);
    int want = p->want_listen && !p->listening && !p->failed;
    pthread_mutex_unlock(&e->mu);
    if (!want)
        return;
    plx_err_t err = {0};
    int rc = start_listening(e, &err);
    pthread_mutex_lock(&e->mu);
    p->listening = rc == PLX_OK;
    p->failed = rc != PLX_OK;
    snprintf(p->why, sizeof p->why, "%s", err.msg);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&e->mu);
    if (rc != PLX_OK)
        PLX_INFO("values are not served to other engines directly: %s", err.msg);
}

/* ---- life ------------------------------------------------------------------- */

int plx_engine_peer_init(plx_engine_t *e)
{
    struct plx_engine_peers *p = calloc(1, sizeof *p);
    if (!p || pthread_cond_init(&p->cv, NULL) != 0) {
        free(p);
        return PLX_ENOMEM;
    }
    e->peers = p;
    return PLX_OK;
}

void plx_engine_peer_io_stop(plx_engine_t *e)
{
    struct plx_engine_peers *p = e->peers;
    if (!p)
        return;
    while (p->conns)
        pconn_free(p->conns);
    if (p->listener)
        ev_timer_stop(e->loop, &p->sweep);
    plx_listener_destroy(&p->listener);
}

void plx_engine_peer_fini(plx_engine_t *e)
{
    struct plx_engine_peers *p = e->peers;
    if (!p)
        return;
    offers_free(p->offers);
    p->offers = NULL;
    pthread_cond_destroy(&p->cv);
    free(p);
    e->peers = NULL;
}

int plx_engine_peer_offer(plx_engine_t *e, char *const *tickets, size_t n, plx_msg_t **msg,
                          char *url, size_t url_len, plx_err_t *err)
{
    struct plx_engine_peers *p = e->peers;
    offer_t *o = calloc(1, sizeof *o);
    if (!o || !(o->tickets = calloc(n ? n : 1, sizeof *o->tickets))) {
        free(o);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for served values");
    }
    for (size_t i = 0; i < n; i++)
        snprintf(o->tickets[i], sizeof o->tickets[i], "%s", tickets[i] ? tickets[i] : "");
    o->n = o->left = n;
    o->expires = plx_now_s() + OFFER_TTL_S;
    pthread_mutex_lock(&e->mu);
    if (!p->listening && !p->failed) {
        p->want_listen = 1;
        ev_async_send(e->loop, &e->wake);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)LISTEN_WAIT_S;
        while (!p->listening && !p->failed &&
               pthread_cond_timedwait(&p->cv, &e->mu, &until) != ETIMEDOUT)
            ;
    }
    int ok = p->listening, keep = ok && !(n && ended_locked(p, o->tickets[0]));
    if (keep) {
        o->msg = *msg;
        *msg = NULL;
        o->next = p->offers;
        p->offers = o;
    }
    if (ok) {
        snprintf(url, url_len, "%s", p->url);
    } else {
        plx_err_set(err, PLX_ENOTFOUND, "%s", p->failed ? p->why : "the I/O thread did not "
                    "start listening in time");
    }
    pthread_mutex_unlock(&e->mu);
    if (!keep) {
        free(o->tickets);
        free(o);
    }
    if (ok)
        plx_msg_destroy(msg);   /* not kept: its push is over */
    return ok ? PLX_OK : err->code;
}

void plx_engine_peer_end(plx_engine_t *e, char *const *tickets, size_t n)
{
    if (!e->peers)
        return;
    offer_t *dead = NULL;
    pthread_mutex_lock(&e->mu);
    offers_end_locked(e->peers, tickets, n, &dead);
    pthread_mutex_unlock(&e->mu);
    offers_free(dead);
}

/* ---- fetching (Python thread, without the GIL) ----------------------------- */

typedef struct fetch {
    plx_conn_t *conn;
    const char *ticket;
    plx_msg_t  *msg;
    int         code;
    char        why[PLX_ERR_MSG_MAX];
    struct ev_loop *loop;
} fetch_t;

static void fetch_on_open(plx_conn_t *c, void *ud)
{
    fetch_t *f = ud;
    Plexa__Hello h = PLEXA__HELLO__INIT;
    h.has_role = 1;
    h.role = PLEXA__ROLE__ROLE_PEER;
    h.token = (char *)f->ticket;
    h.has_version = 1;
    h.version = PLX_PROTOCOL_VERSION;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.has_id = 1;
    env.id = 1;
    env.body_case = PLEXA__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    plx_msg_t *m = plx_envelope_pack(&env, NULL);
    if (m)
        plx_conn_send(c, m);
    else
        plx_conn_close(c, 0, PLX_ENOMEM, "out of memory for the Hello");
}

static void fetch_on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    fetch_t *f = ud;
    if (!f->msg)
        f->msg = m;
    else
        plx_msg_destroy(&m);
    ev_break(f->loop, EVBREAK_ALL);
}

static void fetch_on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    fetch_t *f = ud;
    f->code = code ? code : PLX_ECLOSED;
    snprintf(f->why, sizeof f->why, "%s", why && why[0] ? why : "closed without an answer");
    ev_break(f->loop, EVBREAK_ALL);
}

static void fetch_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    fetch_t *f = w->data;
    f->code = PLX_ETIMEDOUT;
    snprintf(f->why, sizeof f->why, "no answer within %.0f s", w->repeat);
    ev_break(loop, EVBREAK_ALL);
}

static int fetch_run(const plx_url_t *u, const plx_transport_ops *ops, double timeout_s,
                     fetch_t *f, plx_err_t *err)
{
    char pin[80] = "", peer[300];
    plx_security sec = {0};
    if (u->fingerprint[0]) {
        snprintf(pin, sizeof pin, "sha256:%s", u->fingerprint);
        sec.fingerprint = pin;
    }
    void *h = NULL;
    int fd = -1;
    int rc = ops->connect(u->host, u->port, &sec, &h, &fd, err);
    if (rc != PLX_OK)
        return rc;
    snprintf(peer, sizeof peer, "%s:%u", u->host, (unsigned)u->port);
    static const plx_conn_cbs_t cbs = { .on_open = fetch_on_open, .on_msg = fetch_on_msg,
                                        .on_close = fetch_on_close };
    plx_limits_t lim = plx_limits_default();
    f->conn = plx_conn_new(f->loop, ops, h, fd, &lim, &cbs, f, peer);
    if (!f->conn)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a connection");
    ev_timer t;
    ev_timer_init(&t, fetch_timeout_cb, timeout_s, timeout_s);
    t.data = f;
    ev_timer_start(f->loop, &t);
    ev_run(f->loop, 0);
    ev_timer_stop(f->loop, &t);
    plx_conn_destroy(&f->conn);
    if (!f->msg)
        return plx_err_set(err, f->code ? f->code : PLX_ECLOSED, "%s", f->why);
    return PLX_OK;
}

int plx_engine_peer_fetch(const char *url, double timeout_s, plx_msg_t **msg,
                          Plexa__Envelope **env, plx_err_t *err)
{
    plx_url_t u;
    *msg = NULL;
    *env = NULL;
    if (plx_url_parse(url, &u, err) != PLX_OK)
        return err->code;
    const plx_transport_ops *ops = plx_transport_find(u.transport, err);
    if (!ops)
        return err->code;
    fetch_t f = { .ticket = u.token, .loop = ev_loop_new(EVFLAG_AUTO) };
    if (!f.loop)
        return plx_err_set(err, PLX_ENOMEM, "cannot create an event loop (ev_loop_new)");
    int rc = fetch_run(&u, ops, timeout_s, &f, err);
    ev_loop_destroy(f.loop);
    if (rc != PLX_OK) {
        plx_msg_destroy(&f.msg);
        return rc;
    }
    Plexa__Envelope *got = plx_envelope_unpack(f.msg, err);
    if (!got || got->body_case != PLEXA__ENVELOPE__BODY_ENGINE_REPLY) {
        if (got)
            plx_err_set(err, PLX_EPROTO, "the engine answered with a %s, not the values",
                        plx_envelope_body_name(got));
        plx_envelope_free(&got);
        plx_msg_destroy(&f.msg);
        return err->code ? err->code : PLX_EPROTO;
    }
    *msg = f.msg;
    *env = got;
    return PLX_OK;
}
