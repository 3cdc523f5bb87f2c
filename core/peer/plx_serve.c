/*
 * Serving values against one-time tickets: see plx_serve.h.
 */
#include "plx_serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "plx_cert.h"
#include "plx_conn.h"
#include "plx_envelope.h"
#include "plx_listener.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_profile.h"
#include "plx_relay.h"
#include "plx_time.h"
#include "plx_url.h"

#define OFFER_TTL_S     3600.0   /* the owner ends offers; this only bounds a lost one */
#define SWEEP_S         15.0     /* how often expired offers go (clients' last a minute) */
#define HELLO_TIMEOUT_S 10.0
#define MAX_PEER_CONNS  64
#define LISTEN_WAIT_S   10.0
#define ENDED_KEPT      64       /* tickets ended before their offer was made */

typedef struct offer {
    char         (*tickets)[PLX_TOKEN_MAX_HEX + 1];   /* "" once used */
    size_t        n, left;
    plx_msg_t    *msg;       /* the EngineReply frame: envelope and buffers */
    plx_relay_t  *relay;     /* or that frame as it arrives: reader i for tickets[i] */
    double        expires;   /* plx_now_s() */
    struct offer *next;
} offer_t;

typedef struct pconn {
    plx_serve_t  *s;
    plx_conn_t   *conn;
    plx_relay_t  *relay;     /* a relay's reader, once its Hello came */
    size_t        reader;
    ev_timer      hello;
    struct pconn *prev, *next;
} pconn_t;

struct plx_serve {
    char               what[16];
    plx_serve_wake_fn  wake;
    void              *wake_ud;
    pthread_mutex_t    mu;
    atomic_int         asked;       /* an offer wants a listener: the loop's wake looks */
    atomic_int         kick;        /* a relay has more for a reader that ran dry */
    /* under mu */
    pthread_cond_t     cv;          /* the listener's outcome */
    int                want_listen, listening, failed;
    char               why[PLX_ERR_MSG_MAX];
    char               transport[16];
    char               host[64];
    char               url[320];    /* where: a token of zeros */
    offer_t           *offers;
    char               ended[ENDED_KEPT][PLX_TOKEN_MAX_HEX + 1];   /* a ring */
    unsigned           nended;
    /* the loop's thread only */
    struct ev_loop    *loop;
    plx_listener_t    *listener;
    pconn_t           *conns;
    int                nconns;
    ev_timer           sweep;
};

/* ---- offers (under mu) ---------------------------------------------------- */

/* Freeing an offer may release buffers whose owner takes its own lock to
 * do so (an engine's exports): offers are freed after mu is unlocked,
 * from a list the locked functions below fill. */
static void offers_free(offer_t *o)
{
    while (o) {
        offer_t *next = o->next;
        for (size_t i = 0; o->relay && i < o->n; i++)
            if (o->tickets[i][0])
                plx_relay_drop_reader(o->relay, i);   /* its peer never came */
        plx_relay_unref(&o->relay);
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

/* What is offered to ticket, which is then used up: a copy of the frame,
 * or a relay (a new reference) and the ticket's reader. 0 if none. */
static int offer_take_locked(plx_serve_t *s, const char *ticket, plx_msg_t **m,
                             plx_relay_t **relay, size_t *reader, offer_t **dead)
{
    for (offer_t **op = &s->offers; *op; op = &(*op)->next) {
        offer_t *o = *op;
        for (size_t i = 0; i < o->n; i++) {
            if (!o->tickets[i][0] || !plx_token_equal(o->tickets[i], ticket))
                continue;
            o->tickets[i][0] = '\0';
            if (o->relay) {
                *relay = plx_relay_ref(o->relay);
                *reader = i;
            } else {
                *m = plx_msg_share(o->msg);
            }
            if (--o->left == 0)
                offer_unlink(op, dead);
            return *m || *relay;
        }
    }
    return 0;
}

static int ended_locked(const plx_serve_t *s, const char *ticket)
{
    for (unsigned i = 0; i < ENDED_KEPT; i++)
        if (s->ended[i][0] && plx_token_equal(s->ended[i], ticket))
            return 1;
    return 0;
}

/* Offers holding these tickets go; an end that overtook its offer (the
 * transfer was cancelled before the offer was made) is remembered, so
 * that the offer is never made. */
static void offers_end_locked(plx_serve_t *s, char *const *tickets, size_t n, offer_t **dead)
{
    int found = 0;
    for (offer_t *o = s->offers; o && !found; o = o->next)
        for (size_t i = 0; i < o->n && !found; i++)
            found = n && o->tickets[i][0] && plx_token_equal(o->tickets[i], tickets[0]);
    if (!found && n)
        snprintf(s->ended[s->nended++ % ENDED_KEPT], sizeof s->ended[0], "%s", tickets[0]);
    for (offer_t **op = &s->offers; *op;) {
        offer_t *o = *op;
        for (size_t i = 0; i < o->n; i++)
            for (size_t k = 0; o->tickets[i][0] && k < n; k++)
                if (plx_token_equal(o->tickets[i], tickets[k])) {
                    o->tickets[i][0] = '\0';
                    o->left--;
                    if (o->relay)
                        plx_relay_drop_reader(o->relay, i);
                }
        if (o->left == 0)
            offer_unlink(op, dead);
        else
            op = &o->next;
    }
}

/* ---- serving peers (the loop's thread) ------------------------------------- */

static void pconn_free(pconn_t *pc)
{
    plx_serve_t *s = pc->s;
    ev_timer_stop(s->loop, &pc->hello);
    plx_conn_destroy(&pc->conn);
    if (pc->relay)
        plx_relay_drop_reader(pc->relay, pc->reader);
    plx_relay_unref(&pc->relay);
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        s->conns = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    s->nconns--;
    free(pc);
}

static void peer_on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    pconn_free(ud);
}

/* Write what pc's relay has for it, once a batch has come; close once it
 * has all, or never will. */
static void relay_pump(pconn_t *pc)
{
    for (size_t min = PLX_SERVE_RELAY_BATCH;; min = 1) {
        plx_buf_t *b = NULL;
        size_t off = 0, len = 0;
        int rc = plx_relay_next(pc->relay, pc->reader, min, &b, &off, &len);
        if (rc == PLX_RELAY_MORE) {
            int sent = plx_conn_send_bytes(pc->conn, b, off, len);
            plx_buf_unref(&b);
            if (sent == PLX_OK)
                continue;
        }
        if (rc == PLX_RELAY_WAIT)
            return;
        plx_relay_drop_reader(pc->relay, pc->reader);
        plx_relay_unref(&pc->relay);
        if (rc == PLX_RELAY_DONE)
            plx_conn_close(pc->conn, 1, PLX_OK, "served");
        else
            plx_conn_close(pc->conn, 0, PLX_EIO, "the values stopped arriving");
        return;
    }
}

static void relay_notify(void *ud)
{
    plx_serve_t *s = ud;
    atomic_store(&s->kick, 1);
    s->wake(s->wake_ud);
}

static void peer_on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    pconn_t *pc = ud;
    plx_serve_t *s = pc->s;
    Plexa__Envelope *env = plx_envelope_unpack(m, NULL);
    plx_msg_destroy(&m);
    plx_msg_t *out = NULL;
    offer_t *dead = NULL;
    int found = 0;
    if (!pc->relay && env && env->body_case == PLEXA__ENVELOPE__BODY_HELLO &&
        env->hello->token && env->hello->has_role && env->hello->role == PLEXA__ROLE__ROLE_PEER) {
        pthread_mutex_lock(&s->mu);
        found = offer_take_locked(s, env->hello->token, &out, &pc->relay, &pc->reader, &dead);
        pthread_mutex_unlock(&s->mu);
    }
    offers_free(dead);
    plx_envelope_free(&env);
    ev_timer_stop(s->loop, &pc->hello);
    if (!found) {
        PLX_WARN("refused a peer from %s: not a Hello with a ticket this %s serves",
                 plx_conn_peer(c), s->what);
        plx_conn_close(c, 0, PLX_EAUTH, "no such ticket");
        return;
    }
    if (pc->relay) {
        relay_pump(pc);
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
    plx_serve_t *s = ud;
    const plx_transport_ops *ops = plx_listener_ops(l);
    pconn_t *pc = s->nconns < MAX_PEER_CONNS ? calloc(1, sizeof *pc) : NULL;
    if (!pc) {
        PLX_WARN("refused a peer from %s: %d peer connections open", peer, s->nconns);
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
    pc->s = s;
    pc->conn = plx_conn_new(s->loop, ops, handle, fd, &lim, &cbs, pc, peer);
    if (!pc->conn) {
        free(pc);
        return;
    }
    pc->next = s->conns;
    if (s->conns)
        s->conns->prev = pc;
    s->conns = pc;
    s->nconns++;
    ev_timer_init(&pc->hello, hello_timeout_cb, HELLO_TIMEOUT_S, 0.);
    pc->hello.data = pc;
    ev_timer_start(s->loop, &pc->hello);
}

static void sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_serve_t *s = w->data;
    double now = plx_now_s();
    offer_t *dead = NULL;
    pthread_mutex_lock(&s->mu);
    for (offer_t **op = &s->offers; *op;) {
        if ((*op)->expires < now)
            offer_unlink(op, &dead);
        else
            op = &(*op)->next;
    }
    pthread_mutex_unlock(&s->mu);
    if (dead)
        PLX_WARN("dropping values served directly: their tickets were not all presented in "
                 "time");
    offers_free(dead);
}

/* ---- listening (the loop's thread) ---------------------------------------- */

/* Make the listener's key and certificate in a private directory, listen,
 * and remove them: the listener has loaded them, and nobody else needs
 * them. */
static plx_listener_t *listen_tls(plx_serve_t *s, const plx_transport_ops *ops,
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
        l = plx_listener_new(s->loop, ops, host, 0, &sec, on_accept, s, err);
    }
    unlink(cert);
    unlink(key);
    char lock[600];
    snprintf(lock, sizeof lock, "%s/.lock", dir);
    unlink(lock);
    rmdir(dir);
    return l;
}

/* Listen on s->host with s->transport; the URL into url. */
static int start_listening(plx_serve_t *s, const char *transport, const char *host, char *url,
                           size_t url_len, plx_err_t *err)
{
    char fp[PLX_CERT_FINGERPRINT_HEX + 1] = "";
    const plx_transport_ops *ops = plx_transport_find(transport, err);
    if (!ops)
        return err->code;
    int tls = strcmp(transport, "tls") == 0;
    s->listener = tls ? listen_tls(s, ops, host, fp, err)
                      : plx_listener_new(s->loop, ops, host, 0, NULL, on_accept, s, err);
    if (!s->listener)
        return err->code ? err->code : PLX_EIO;
    char zeros[33];
    memset(zeros, '0', 32);
    zeros[32] = '\0';
    int v6 = strchr(host, ':') != NULL;
    snprintf(url, url_len, "plx+%s://%s%s%s:%u/%s%s%s", transport, v6 ? "[" : "", host,
             v6 ? "]" : "", (unsigned)plx_listener_port(s->listener), zeros,
             tls ? "#sha256=" : "", fp);
    ev_timer_init(&s->sweep, sweep_cb, SWEEP_S, SWEEP_S);
    s->sweep.data = s;
    ev_timer_start(s->loop, &s->sweep);
    /* An engine's log is a file; a client's is the user's terminal. */
    if (strcmp(s->what, "client") == 0)
        PLX_DEBUG("serving values to engines on %s:%u", host,
                  (unsigned)plx_listener_port(s->listener));
    else
        PLX_INFO("serving values to other engines on %s:%u", host,
                 (unsigned)plx_listener_port(s->listener));
    return PLX_OK;
}

/* The loop's thread: listen if an offer asked and nobody tried yet. */
static void listen_now(plx_serve_t *s, struct ev_loop *loop)
{
    pthread_mutex_lock(&s->mu);
    int want = s->want_listen && !s->listening && !s->failed;
    char transport[16], host[64];
    snprintf(transport, sizeof transport, "%s", s->transport);
    snprintf(host, sizeof host, "%s", s->host);
    pthread_mutex_unlock(&s->mu);
    if (!want)
        return;
    s->loop = loop;
    plx_err_t err = {0};
    char url[320] = "";
    int rc = start_listening(s, transport, host, url, sizeof url, &err);
    pthread_mutex_lock(&s->mu);
    s->listening = rc == PLX_OK;
    s->failed = rc != PLX_OK;
    snprintf(s->why, sizeof s->why, "%s", err.msg);
    snprintf(s->url, sizeof s->url, "%s", url);
    atomic_store(&s->asked, 0);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc != PLX_OK)
        PLX_INFO("values are not served to other processes directly (they go through the "
                 "controller): %s", err.msg);
}

void plx_serve_on_wake(plx_serve_t *s, struct ev_loop *loop)
{
    /* Called on every wake of the owner's loop (a client's are per
     * request): nothing to lock until an offer asked or a relay moved. */
    if (!s)
        return;
    if (atomic_load(&s->asked))
        listen_now(s, loop);
    if (atomic_exchange(&s->kick, 0))
        for (pconn_t *pc = s->conns, *next; pc; pc = next) {
            next = pc->next;   /* a close frees pc only from the loop, later */
            if (pc->relay)
                relay_pump(pc);
        }
}

/* ---- life ------------------------------------------------------------------- */

plx_serve_t *plx_serve_new(const char *what, plx_serve_wake_fn wake, void *ud)
{
    plx_serve_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return NULL;
    }
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    snprintf(s->what, sizeof s->what, "%s", what);
    s->wake = wake;
    s->wake_ud = ud;
    return s;
}

void plx_serve_io_stop(plx_serve_t *s)
{
    if (!s)
        return;
    while (s->conns)
        pconn_free(s->conns);
    if (s->listener)
        ev_timer_stop(s->loop, &s->sweep);
    plx_listener_destroy(&s->listener);
}

void plx_serve_destroy(plx_serve_t **sp)
{
    plx_serve_t *s = *sp;
    if (!s)
        return;
    *sp = NULL;
    offers_free(s->offers);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Under s->mu: ask the loop's thread to listen, and wait for its outcome. */
static void listen_locked(plx_serve_t *s, const char *transport, const char *host)
{
    if (s->listening || s->failed)
        return;
    if (!s->want_listen) {
        s->want_listen = 1;
        snprintf(s->transport, sizeof s->transport, "%s", transport);
        snprintf(s->host, sizeof s->host, "%s", host);
    }
    atomic_store(&s->asked, 1);
    s->wake(s->wake_ud);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)LISTEN_WAIT_S;
    while (!s->listening && !s->failed &&
           pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT)
        ;
}

/* An offer to tickets[0..n) for ttl_s (0: the bound), holding nothing
 * yet; NULL with err on ENOMEM. */
static offer_t *offer_new(char *const *tickets, size_t n, double ttl_s, plx_err_t *err)
{
    offer_t *o = calloc(1, sizeof *o);
    if (!o || !(o->tickets = calloc(n ? n : 1, sizeof *o->tickets))) {
        free(o);
        plx_err_set(err, PLX_ENOMEM, "out of memory for served values");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(o->tickets[i], sizeof o->tickets[i], "%s", tickets[i] ? tickets[i] : "");
    o->n = o->left = n;
    o->expires = plx_now_s() + (ttl_s > 0 && ttl_s < OFFER_TTL_S ? ttl_s : OFFER_TTL_S);
    return o;
}

/* Under s->mu, listening tried: where it is served into url, and *op
 * kept (NULLed) unless its tickets were ended already; else err says why
 * nothing is served. What is not kept is the caller's to free. */
static int offer_place_locked(plx_serve_t *s, offer_t **op, char *url, size_t url_len,
                              plx_err_t *err)
{
    if (!s->listening)
        return plx_err_set(err, PLX_ENOTFOUND, "%s", s->failed ? s->why : "the I/O thread did "
                           "not start listening in time");
    snprintf(url, url_len, "%s", s->url);
    offer_t *o = *op;
    if (!(o->n && ended_locked(s, o->tickets[0]))) {
        o->next = s->offers;
        s->offers = o;
        *op = NULL;
    }
    return PLX_OK;
}

int plx_serve_offer(plx_serve_t *s, const char *transport, const char *host,
                    char *const *tickets, size_t n, double ttl_s, plx_msg_t **msg, char *url,
                    size_t url_len, plx_err_t *err)
{
    offer_t *o = offer_new(tickets, n, ttl_s, err);
    if (!o)
        return err->code;
    pthread_mutex_lock(&s->mu);
    listen_locked(s, transport, host);
    if (s->listening) {   /* served, or its transfer is over: ours either way */
        o->msg = *msg;
        *msg = NULL;
    }
    int rc = offer_place_locked(s, &o, url, url_len, err);
    pthread_mutex_unlock(&s->mu);
    offers_free(o);
    return rc;
}

int plx_serve_offer_relay(plx_serve_t *s, struct ev_loop *loop, const char *transport,
                          const char *host, char *const *tickets, size_t n, double ttl_s,
                          plx_relay_t *relay, char *url, size_t url_len, plx_err_t *err)
{
    offer_t *o = offer_new(tickets, n, ttl_s, err);
    if (!o)
        return err->code;
    o->relay = plx_relay_ref(relay);
    plx_relay_set_notify(relay, relay_notify, s);
    pthread_mutex_lock(&s->mu);
    if (!s->want_listen) {
        s->want_listen = 1;
        snprintf(s->transport, sizeof s->transport, "%s", transport);
        snprintf(s->host, sizeof s->host, "%s", host);
    }
    pthread_mutex_unlock(&s->mu);
    listen_now(s, loop);
    pthread_mutex_lock(&s->mu);
    int rc = offer_place_locked(s, &o, url, url_len, err);
    pthread_mutex_unlock(&s->mu);
    offers_free(o);
    return rc;
}

void plx_serve_end(plx_serve_t *s, char *const *tickets, size_t n)
{
    if (!s)
        return;
    offer_t *dead = NULL;
    pthread_mutex_lock(&s->mu);
    offers_end_locked(s, tickets, n, &dead);
    pthread_mutex_unlock(&s->mu);
    offers_free(dead);
}
