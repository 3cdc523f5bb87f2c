/*
 * The client: a connection run by a private I/O thread.
 *
 * Callers never touch the connection. They pack their request, put it on
 * a mutex-protected queue together with a pending-table entry, and wake
 * the I/O thread with an ev_async; the I/O thread moves queued messages to
 * the plx_conn and matches replies to table entries by id. Waiting happens
 * on each request's own condition variable. When the connection goes, the
 * I/O thread fails every table entry at once and marks the client lost so
 * that later submissions fail without waiting.
 */
#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plx_bufpool.h"
#include "plx_addr.h"
#include "plx_conn.h"
#include "plx_dial.h"
#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_region.h"
#include "plx_request_priv.h"
#include "plx_taskout.h"
#include "plx_tunnel.h"
#include "plx_direct.h"
#include "plx_serve.h"
#include "plx_rqb.h"
#include "plx_url.h"

#define HELLO_ID       1u     /* the handshake is always the first request */
#define MEC_URL_FILE   "ipcontroller-mec.url"
#define TC_URL_FILE    "ipcontroller-tc.url"
#define TASK_URL_ENV   "PLEXA_TASK_URL"
#define STATUS_URL_FILE "ipcontroller-status.url"

struct plx_client {
    pthread_mutex_t          mu;
    plx_msg_t              **outq;        /* (mu) packed, for the I/O thread */
    size_t                   outn, outcap;
    plx_reqtable_t           pending;     /* (mu) submitted, not answered */
    uint64_t                 next_id;     /* (mu) */
    int                      lost;        /* (mu) connection gone: refuse submits */
    plx_err_t                lost_err;    /* (mu) why */
    int                      stopping;    /* (mu) destroy asked the I/O thread to stop */
    double                   timeout_s;   /* (mu) deadline of blocking calls */
    plx_client_role_t        role;        /* set before the I/O thread starts */

    /* Held by the I/O thread except while it waits for events
     * (ev_set_loop_release_cb): a caller that gets it may use the loop and
     * the connection itself (see kick). */
    pthread_mutex_t          loop_mu;
    struct ev_loop          *loop;
    ev_async                 wake;        /* submissions and stop */
    ev_timer                 trim;        /* returns idle pooled buffers */
    pthread_t                thread;
    int                      running;     /* the I/O thread was started */
    plx_conn_t              *conn;        /* under loop_mu (the I/O thread holds it while it runs); NULL once closed */
    atomic_int               opened;      /* transport set-up finished (set by I/O thread) */
    atomic_int               shm;         /* connected through the shm listener */
    atomic_int               welcomed;    /* the controller accepted our Hello */
    char                     peer[300];   /* "HOST:PORT" */
    plx_taskouts_t          *taskouts;    /* live output of our tasks (thread-safe) */
    plx_tunnel_t            *tunnel;      /* the ssh tunnel it connects through, or NULL */
    atomic_int               direct;      /* pulls fetch big values from engines (plx_direct.c) */
    atomic_int               direct_stop; /* destroy: direct fetches give up */
    int                      ndirect;     /* (mu) direct fetch threads running */
    struct plx_serve        *serve;       /* scatters' pieces served to engines */
    char                     transport[16];  /* the controller URL's ... */
    char                     url_host[256];  /* ... and its host */
    int                      fd;          /* the controller connection's socket */
    pthread_cond_t           direct_cv;   /* (mu) ... one ended */
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Pulled arrays land in pooled blocks (plx_bufpool.h): a loop that pulls
 * 256 MiB and drops it reuses the memory instead of faulting in (and
 * zeroing) 65 536 fresh pages each time, which cost the client more than
 * the transfer itself. Idle blocks go back to the system after
 * POOL_IDLE_S, and all of them when the last client goes. */
#define POOL_MAX    ((size_t)512 << 20)
#define POOL_IDLE_S 2.0
static atomic_int live_clients;

/* ---- failing requests ---------------------------------------------------- */

/* Under c->mu: take the queued messages (the caller owns the array and
 * them); *n gets their count. */
static plx_msg_t **outq_take_locked(plx_client_t *c, size_t *n)
{
    plx_msg_t **q = c->outq;
    *n = c->outn;
    c->outq = NULL;
    c->outn = c->outcap = 0;
    return q;
}

/* Fail every pending request and queued message with code/msg, and refuse
 * later submissions with the first such error. Any thread. */
static void client_lose(plx_client_t *c, int code, const char *msg)
{
    pthread_mutex_lock(&c->mu);
    if (!c->lost) {
        c->lost = 1;
        plx_err_set(&c->lost_err, code, "%s", msg);
    }
    size_t n;
    plx_msg_t **q = outq_take_locked(c, &n);
    plx_reqtable_t drained = c->pending;
    c->pending = (plx_reqtable_t){0};
    pthread_mutex_unlock(&c->mu);

    for (size_t i = 0; i < n; i++)
        plx_msg_destroy(&q[i]);
    free(q);
    plx_request_t *req;
    while ((req = plx_reqtable_pop(&drained)) != NULL) {
        plx_request_fail(req, code, msg);
        plx_request_destroy(&req);
    }
    plx_reqtable_fini(&drained);
}

/* ---- the I/O thread ------------------------------------------------------ */

static void on_open(plx_conn_t *conn, void *ud)
{
    plx_client_t *c = ud;
    atomic_store(&c->opened, 1);
}

/* Which request an incoming envelope answers; 0 for none. The handshake
 * answer is matched by body, not reply_to, so that any controller's
 * Welcome or Reject settles it. */
static uint64_t answered_id(const Plexa__Envelope *env)
{
    if (env->body_case == PLEXA__ENVELOPE__BODY_WELCOME ||
        env->body_case == PLEXA__ENVELOPE__BODY_REJECT)
        return HELLO_ID;
    return env->has_reply_to ? env->reply_to : 0;
}

/* Live output for a pending request (for a forgotten one, dropped), or of
 * one of our tasks (by task id). */
static void keep_output(plx_client_t *c, uint64_t id, const Plexa__Envelope *env)
{
    const Plexa__Output *o = env->output;
    if (o->has_task_id && o->task_id) {
        const char *text = o->text ? o->text : "";
        plx_taskouts_add(c->taskouts, o->task_id, o->has_engine_id ? o->engine_id : -1,
                         plx_output_stream_of(o->name), text, strlen(text));
        return;
    }
    pthread_mutex_lock(&c->mu);
    plx_request_t *req = plx_reqtable_get(&c->pending, id);
    if (req)
        plx_request_ref(req);
    pthread_mutex_unlock(&c->mu);
    if (!req)
        return;
    plx_request_add_output(req, env->output);
    plx_request_destroy(&req);
}

/* ---- direct pulls (plx_direct.c) ----------------------------------------------- */

typedef struct direct_job {
    plx_client_t    *c;
    plx_request_t   *req;
    plx_msg_t       *m;
    Plexa__Envelope *env;
} direct_job_t;

static void *direct_main(void *arg)
{
    direct_job_t *j = arg;
    plx_client_t *c = j->c;
    plx_direct_run(c, j->req, j->m, j->env, &c->direct_stop);
    plx_request_destroy(&j->req);
    free(j);
    pthread_mutex_lock(&c->mu);
    c->ndirect--;
    pthread_cond_broadcast(&c->direct_cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Hand a reply naming values to fetch to a thread of its own (takes req's
 * reference, m and env on PLX_OK). */
static int direct_spawn(plx_client_t *c, plx_request_t *req, plx_msg_t *m, Plexa__Envelope *env)
{
    direct_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return PLX_ENOMEM;
    *j = (direct_job_t){ .c = c, .req = req, .m = m, .env = env };
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&c->mu);
    int rc = pthread_create(&t, &a, direct_main, j);
    c->ndirect += rc == 0;
    pthread_mutex_unlock(&c->mu);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        PLX_WARN("client %s: no thread to fetch pulled values (%s)", c->peer, strerror(rc));
        free(j);
        return PLX_ENOMEM;   /* completed as it is: the values are missing, and say so */
    }
    return PLX_OK;
}

void plx_client_direct_off(plx_client_t *c)
{
    atomic_store(&c->direct, 0);
}

struct plx_serve *plx_client_serve(plx_client_t *c)
{
    return c->serve;
}

int plx_client_serve_where(plx_client_t *c, char *transport, size_t tlen, char *host,
                           size_t hlen, int *only)
{
    if (c->tunnel || !c->serve)
        return PLX_ENOTFOUND;
    snprintf(transport, tlen, "%s", c->transport);
    /* On the controller's host (shared memory, loopback) the engines
     * reach this host where they reach the controller: the address its
     * URL names. Through shared memory the values go along too, for
     * engines on shared memory. */
    *only = !atomic_load(&c->shm);
    if (!*only || plx_sock_local_host(c->fd, host, hlen) != PLX_OK ||
        plx_addr_is_loopback(host))
        snprintf(host, hlen, "%s", c->url_host);
    return PLX_OK;
}

static void wake_serve(void *ud)
{
    plx_client_t *c = ud;
    ev_async_send(c->loop, &c->wake);
}

void plx_client_set_direct(plx_client_t *c, int on)
{
    atomic_store(&c->direct, on && !c->tunnel);
}

int plx_client_direct_wanted(plx_client_t *c)
{
    return atomic_load(&c->direct);
}

static void on_msg(plx_conn_t *conn, plx_msg_t *m, void *ud)
{
    plx_client_t *c = ud;
    plx_err_t err = {0};
    Plexa__Envelope *env = plx_envelope_unpack(m, &err);
    if (!env) {
        /* A controller speaking garbage cannot be trusted with the rest. */
        plx_msg_destroy(&m);
        plx_conn_close(conn, 0, PLX_EPROTO, err.msg);
        return;
    }
    uint64_t id = answered_id(env);
    if (id == HELLO_ID && env->body_case == PLEXA__ENVELOPE__BODY_REJECT &&
        atomic_load(&c->welcomed)) {
        /* Dropped after the handshake (its capability was revoked): every
         * waiting request learns why. */
        char why[PLX_ERR_MSG_MAX - 128];
        snprintf(why, sizeof why, "the controller dropped this connection: %s",
                 env->reject->reason ? env->reject->reason : "no reason given");
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        plx_conn_close(conn, 0, PLX_EAUTH, why);
        return;
    }
    if (env->body_case == PLEXA__ENVELOPE__BODY_OUTPUT) {
        keep_output(c, id, env);
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        return;
    }
    pthread_mutex_lock(&c->mu);
    plx_request_t *req = id ? plx_reqtable_take(&c->pending, id) : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!req) {
        /* Unsolicited (heartbeat) or the answer to a forgotten request. */
        PLX_DEBUG("client %s: ignoring %s (reply_to %llu)", c->peer,
                  plx_envelope_body_name(env), (unsigned long long)id);
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        return;
    }
    if (req->dpush && plx_direct_push_answered(c, req, env) &&
        direct_spawn(c, req, m, env) == PLX_OK)
        return;
    if (!req->dpush && plx_direct_wanted(env) && direct_spawn(c, req, m, env) == PLX_OK)
        return;
    plx_request_complete(req, m, env);
    plx_request_destroy(&req);
}

/* Failing to reach the controller is PLX_ECONNECT, except a security
 * refusal by the transport (wrong certificate pin), which stays PLX_EAUTH. */
static int connect_code(int transport_code)
{
    return transport_code == PLX_EAUTH ? PLX_EAUTH : PLX_ECONNECT;
}

static void on_close(plx_conn_t *conn, int code, const char *why, void *ud)
{
    plx_client_t *c = ud;
    char msg[PLX_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s the controller at %s (%s)",
             atomic_load(&c->opened) ? "lost connection to" : "cannot connect to", c->peer,
             why && *why ? why : "connection closed");
    PLX_DEBUG("client: %s", msg);
    plx_conn_destroy(&c->conn);   /* freed once this callback returns */
    client_lose(c, connect_code(code), msg);
}

/* Hand the queued messages to the connection (dropped once it is gone).
 * Only with loop_mu held: the I/O thread, or a caller in kick. */
static void outq_send(plx_client_t *c)
{
    size_t n;
    pthread_mutex_lock(&c->mu);
    plx_msg_t **q = outq_take_locked(c, &n);
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++) {
        if (c->conn)
            plx_conn_send(c->conn, q[i]);   /* owns q[i], even on error */
        else
            plx_msg_destroy(&q[i]);
    }
    free(q);
}

/* Move queued messages to the connection; stop when asked. */
static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    plx_client_t *c = container_of(w, plx_client_t, wake);
    pthread_mutex_lock(&c->mu);
    int stop = c->stopping;
    pthread_mutex_unlock(&c->mu);
    outq_send(c);
    plx_serve_on_wake(c->serve, loop);
    if (stop) {
        plx_conn_destroy(&c->conn);
        ev_break(loop, EVBREAK_ALL);
    }
}

static void trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_buf_pool_trim(POOL_IDLE_S);
}

static void *io_main(void *arg)
{
    plx_client_t *c = arg;
    /* Named for top -H and perf: otherwise it shows as the program. */
    pthread_setname_np(pthread_self(), "plexa-io");
    pthread_mutex_lock(&c->loop_mu);
    ev_run(c->loop, 0);
    pthread_mutex_unlock(&c->loop_mu);
    return NULL;
}

static void loop_release(struct ev_loop *loop)
{
    plx_client_t *c = ev_userdata(loop);
    pthread_mutex_unlock(&c->loop_mu);
}

static void loop_acquire(struct ev_loop *loop)
{
    plx_client_t *c = ev_userdata(loop);
    pthread_mutex_lock(&c->loop_mu);
}

/* Start the I/O thread with every signal blocked, so that signals (SIGINT
 * for Python's KeyboardInterrupt) go to the application's threads. */
static int start_io_thread(plx_client_t *c, plx_err_t *err)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, io_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return plx_err_set(err, PLX_EIO, "pthread_create: %s", strerror(rc));
    c->running = 1;
    return PLX_OK;
}

/* ---- submitting ---------------------------------------------------------- */

/*
 * Get queued messages on their way. When the I/O thread is idle in its
 * poll (loop_mu is free), the caller writes them itself: the request then
 * leaves without waking the I/O thread (an eventfd write and a context
 * switch, often on the other CPU). Otherwise, or when the write could not
 * finish, the I/O thread is woken as before.
 */
static void kick(plx_client_t *c)
{
    if (pthread_mutex_trylock(&c->loop_mu) == 0) {
        int done = 0;
        if (c->conn && plx_conn_is_open(c->conn)) {
            outq_send(c);
            /* A partial write started the write watcher, a failure queued
             * the close: the loop must look at its watchers again. */
            done = plx_conn_out_bytes(c->conn) == 0 && plx_conn_is_open(c->conn);
        }
        pthread_mutex_unlock(&c->loop_mu);
        if (done)
            return;
    }
    ev_async_send(c->loop, &c->wake);
}

static int outq_push(plx_client_t *c, plx_msg_t *m)
{
    if (c->outn == c->outcap) {
        size_t cap = c->outcap ? c->outcap * 2 : 16;
        plx_msg_t **q = realloc(c->outq, cap * sizeof *q);
        if (!q)
            return PLX_ENOMEM;
        c->outq = q;
        c->outcap = cap;
    }
    c->outq[c->outn++] = m;
    return PLX_OK;
}

/* Pack env with id into a message carrying bufs. */
static plx_msg_t *pack_request(const Plexa__Envelope *env, uint64_t id,
                               plx_buf_t *const *bufs, size_t nbufs, plx_err_t *err)
{
    Plexa__Envelope e = *env;   /* shallow: only the id differs */
    e.has_id = 1;
    e.id = id;
    plx_msg_t *m = plx_envelope_pack(&e, err);
    for (size_t i = 0; m && i < nbufs; i++) {
        if (plx_msg_add_buf(m, bufs[i]) != PLX_OK) {
            plx_msg_destroy(&m);
            plx_err_set(err, PLX_ENOMEM, "out of memory adding buffer %zu", i);
        }
    }
    return m;
}

/* Under c->mu: pack env under the next message id and queue it; *id gets
 * that id. */
static int queue_locked(plx_client_t *c, const Plexa__Envelope *env, plx_buf_t *const *bufs,
                        size_t nbufs, uint64_t *id, plx_err_t *err)
{
    if (c->lost)
        return plx_err_set(err, c->lost_err.code, "%s", c->lost_err.msg);
    if (c->stopping)
        return plx_err_set(err, PLX_ECLOSED, "the client is closing");
    plx_msg_t *m = pack_request(env, c->next_id, bufs, nbufs, err);
    if (!m)
        return err->code;
    if (outq_push(c, m) != PLX_OK) {
        plx_msg_destroy(&m);
        return plx_err_set(err, PLX_ENOMEM, "out of memory queueing a request");
    }
    *id = c->next_id++;
    return PLX_OK;
}

/* Under c->mu: give req an id, pack, and enqueue message and table entry
 * together, so ids go out in increasing order. err is not NULL. */
static int submit_locked(plx_client_t *c, const Plexa__Envelope *env, plx_buf_t *const *bufs,
                         size_t nbufs, plx_request_t *req, plx_err_t *err)
{
    if (queue_locked(c, env, bufs, nbufs, &req->id, err) != PLX_OK)
        return err->code;
    if (plx_reqtable_put(&c->pending, req) != PLX_OK) {
        plx_msg_destroy(&c->outq[--c->outn]);
        c->next_id--;
        return plx_err_set(err, PLX_ENOMEM, "out of memory queueing a request");
    }
    plx_request_ref(req);   /* the table's reference */
    return PLX_OK;
}

int plx_client_send(plx_client_t *c, const Plexa__Envelope *env, plx_buf_t *const *bufs,
                    size_t nbufs, plx_err_t *err)
{
    uint64_t id;
    pthread_mutex_lock(&c->mu);
    int rc = queue_locked(c, env, bufs, nbufs, &id, err);
    pthread_mutex_unlock(&c->mu);
    if (rc == PLX_OK)
        kick(c);
    return rc;
}

int plx_client_submit(plx_client_t *c, const Plexa__Envelope *env, plx_buf_t *const *bufs,
                      size_t nbufs, plx_request_t **out, plx_err_t *err)
{
    return plx_client_submit_direct(c, env, bufs, nbufs, NULL, out, err);
}

int plx_client_submit_direct(plx_client_t *c, const Plexa__Envelope *env,
                             plx_buf_t *const *bufs, size_t nbufs, plx_direct_push_t *dp,
                             plx_request_t **out, plx_err_t *err)
{
    *out = NULL;
    plx_request_t *req = plx_request_new(0);
    if (!req)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a request");
    req->dkeys = plx_direct_keys_of(env);   /* none: a failed fetch fails, said why */
    req->dpush = dp;
    plx_err_t e = {0};
    pthread_mutex_lock(&c->mu);
    int rc = submit_locked(c, env, bufs, nbufs, req, &e);
    pthread_mutex_unlock(&c->mu);
    if (rc != PLX_OK) {
        req->dpush = NULL;   /* the caller's still */
        plx_request_destroy(&req);
        return plx_err_set(err, rc, "%s", e.msg);
    }
    kick(c);
    *out = req;
    return PLX_OK;
}

/* ---- connecting ---------------------------------------------------------- */

static void format_peer(char *out, size_t len, const char *host, uint16_t port)
{
    /* IPv6 literals need brackets to keep the port readable. */
    if (strchr(host, ':'))
        snprintf(out, len, "[%s]:%u", host, (unsigned)port);
    else
        snprintf(out, len, "%s:%u", host, (unsigned)port);
}

/* A client with its loop and wake-up watcher, not yet connected. */
static plx_client_t *client_new(plx_err_t *err)
{
    plx_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        plx_err_set(err, PLX_ENOMEM, "out of memory for a client");
        return NULL;
    }
    /* NOSIGMASK: we use no signal watchers and manage the mask ourselves. */
    c->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!c->loop) {
        free(c);
        plx_err_set(err, PLX_EIO, "ev_loop_new failed (out of file descriptors?)");
        return NULL;
    }
    c->taskouts = plx_taskouts_new();
    if (!c->taskouts) {
        ev_loop_destroy(c->loop);
        free(c);
        plx_err_set(err, PLX_ENOMEM, "out of memory for a client");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->loop_mu, NULL);
    pthread_cond_init(&c->direct_cv, NULL);
    atomic_init(&c->direct, 1);
    c->fd = -1;
    c->serve = plx_serve_new("client", wake_serve, c);   /* none: scatters go as pushes */
    ev_set_userdata(c->loop, c);
    ev_set_loop_release_cb(c->loop, loop_release, loop_acquire);
    c->next_id = HELLO_ID;
    c->timeout_s = -1;
    ev_async_init(&c->wake, wake_cb);
    ev_async_start(c->loop, &c->wake);
    ev_timer_init(&c->trim, trim_cb, POOL_IDLE_S, POOL_IDLE_S);
    ev_timer_start(c->loop, &c->trim);
    if (atomic_fetch_add(&live_clients, 1) == 0)
        plx_buf_pool_set_max(POOL_MAX);
    return c;
}

/* Start connecting to u with its transport; the handshake completes on
 * the I/O thread. */
static int open_conn(plx_client_t *c, const plx_url_t *u, plx_err_t *err)
{
    plx_err_t e = {0};
    char pin[80] = "";
    if (u->fingerprint[0])
        snprintf(pin, sizeof pin, "sha256:%s", u->fingerprint);
    plx_security sec = { .fingerprint = pin[0] ? pin : NULL };
    plx_dialed_t d;
    int rc = plx_dial(u->transport, u->host, u->port, &sec, u->shm, &d, &e);
    if (rc != PLX_OK)
        return plx_err_set(err, rc == PLX_ENOTFOUND ? rc : connect_code(rc),
                           rc == PLX_ENOTFOUND ? "%s%s" : "cannot connect to the controller "
                           "at %s (%s)", rc == PLX_ENOTFOUND ? "" : c->peer, e.msg);
    plx_limits_t lim = plx_limits_default();
    plx_conn_cbs_t cbs = { .on_open = on_open, .on_msg = on_msg, .on_close = on_close };
    c->conn = plx_conn_new(c->loop, d.ops, d.handle, d.fd, &lim, &cbs, c, c->peer);
    if (!c->conn)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a connection");
    /* What the user gets is a private copy-on-write view (plx_region.h). */
    if (d.shm)
        plx_conn_share_regions(c->conn, PLX_REGION_PRIVATE);
    atomic_store(&c->shm, d.shm);
    snprintf(c->transport, sizeof c->transport, "%s", u->transport);
    snprintf(c->url_host, sizeof c->url_host, "%s", u->host);
    c->fd = d.fd;
    return PLX_OK;
}

static int submit_hello(plx_client_t *c, const char *token, plx_request_t **req,
                        plx_err_t *err)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    plx_rqb_t b;
    int rc = plx_rqb_init(&b, err);
    if (rc == PLX_OK)
        rc = plx_rqb_hello(&b, c->role, token, host, (int32_t)getpid(), err);
    if (rc == PLX_OK)
        rc = plx_rqb_submit(c, &b, req, err);
    plx_rqb_clear(&b);
    return rc;
}

/* Wait for the answer to Hello: Welcome, or Reject / loss / silence. */
static int await_welcome(plx_client_t *c, plx_request_t *hello, double timeout_s,
                         plx_err_t *err)
{
    const Plexa__Envelope *env;
    int rc = plx_request_wait(hello, timeout_s, err);
    if (rc == PLX_ETIMEDOUT && !plx_request_done(hello))
        return plx_err_set(err, PLX_ECONNECT,
                           atomic_load(&c->opened)
                               ? "no answer from the controller at %s within %g s"
                               : "timed out connecting to the controller at %s (%g s)",
                           c->peer, timeout_s);
    if (rc != PLX_OK)
        return rc;
    plx_request_reply(hello, NULL, &env, err);
    if (env->body_case != PLEXA__ENVELOPE__BODY_WELCOME)
        return plx_err_set(err, PLX_EPROTO, "the controller at %s answered hello with %s",
                           c->peer, plx_envelope_body_name(env));
    atomic_store(&c->welcomed, 1);
    return PLX_OK;
}

static int client_start(plx_client_t *c, const plx_url_t *u, double timeout_s, plx_err_t *err)
{
    plx_request_t *hello = NULL;
    int rc = open_conn(c, u, err);
    if (rc == PLX_OK)
        rc = submit_hello(c, u->token, &hello, err);
    if (rc == PLX_OK)
        rc = start_io_thread(c, err);
    if (rc == PLX_OK)
        rc = await_welcome(c, hello, timeout_s, err);
    plx_request_destroy(&hello);
    return rc;
}

/* The URL of role's capability (see plx_client_connect_role). */
static int resolve_role_url(const char *url_or_file, const char *profile, plx_client_role_t role,
                            plx_url_t *u, plx_err_t *err)
{
    const char *src = url_or_file ? url_or_file : "";
    if (role == PLX_CLIENT_ROLE_MEC)   /* profile stays NULL when not given: only
                                        * then may $PLEXA_URL apply */
        return plx_url_resolve(src, profile, MEC_URL_FILE, u, err);
    if (role == PLX_CLIENT_ROLE_STATUS)
        return plx_url_resolve(src, profile && *profile ? profile : "default", STATUS_URL_FILE,
                               u, err);
    if (role != PLX_CLIENT_ROLE_TASK)
        return plx_err_set(err, PLX_EINVAL, "unknown client role %d", (int)role);
    int named = profile && *profile;
    const char *env = getenv(TASK_URL_ENV);
    if (!*src && !named && env && *env) {
        int rc = plx_url_resolve(env, NULL, TC_URL_FILE, u, err);
        return rc == PLX_OK ? rc : plx_err_prefix(err, TASK_URL_ENV);
    }
    /* $PLEXA_URL is the multi-engine capability: never the task one. */
    return plx_url_resolve(src, named ? profile : "default", TC_URL_FILE, u, err);
}

plx_client_t *plx_client_connect(const char *url_or_file, const char *profile,
                                 double timeout_s, plx_err_t *err)
{
    return plx_client_connect_role(url_or_file, profile, PLX_CLIENT_ROLE_MEC, timeout_s, err);
}

plx_client_t *plx_client_connect_role(const char *url_or_file, const char *profile,
                                      plx_client_role_t role, double timeout_s, plx_err_t *err)
{
    return plx_client_connect_ssh(url_or_file, profile, role, NULL, NULL, timeout_s, err);
}

/* Point u at a local port forwarded through sshserver to its host:port. */
static int tunnel_to(plx_client_t *c, plx_url_t *u, const char *sshserver, const char *sshkey,
                     double timeout_s, plx_err_t *err)
{
    uint16_t lport;
    if (plx_tunnel_open(sshserver, sshkey, u->host, u->port, timeout_s, &c->tunnel, &lport,
                        err) != PLX_OK)
        return err->code;
    snprintf(u->host, sizeof u->host, "127.0.0.1");
    u->port = lport;
    return PLX_OK;
}

plx_client_t *plx_client_connect_ssh(const char *url_or_file, const char *profile,
                                     plx_client_role_t role, const char *sshserver,
                                     const char *sshkey, double timeout_s, plx_err_t *err)
{
    plx_url_t u;
    memset(&u, 0, sizeof u);
    if (resolve_role_url(url_or_file, profile, role, &u, err) != PLX_OK)
        return NULL;
    plx_client_t *c = client_new(err);
    if (!c)
        return NULL;
    c->role = role;
    /* The peer is named as the URL names it, also through a tunnel. */
    format_peer(c->peer, sizeof c->peer, u.host, u.port);
    if (timeout_s <= 0)
        timeout_s = PLX_CLIENT_CONNECT_TIMEOUT_DEFAULT;
    if (sshserver && *sshserver && tunnel_to(c, &u, sshserver, sshkey, timeout_s, err) != PLX_OK) {
        plx_client_destroy(&c);
        return NULL;
    }
    if (c->tunnel)
        atomic_store(&c->direct, 0);   /* the engines' addresses are the far side's */
    if (client_start(c, &u, timeout_s > 0 ? timeout_s : PLX_CLIENT_CONNECT_TIMEOUT_DEFAULT,
                     err) != PLX_OK) {
        plx_client_destroy(&c);
        return NULL;
    }
    return c;
}

/* ---- destroying ---------------------------------------------------------- */

void plx_client_destroy(plx_client_t **cp)
{
    plx_client_t *c = *cp;
    if (!c)
        return;
    *cp = NULL;
    if (c->running) {
        pthread_mutex_lock(&c->mu);
        c->stopping = 1;
        atomic_store(&c->direct_stop, 1);
        while (c->ndirect)
            pthread_cond_wait(&c->direct_cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
        ev_async_send(c->loop, &c->wake);
        pthread_join(c->thread, NULL);
    }
    plx_conn_destroy(&c->conn);
    plx_serve_io_stop(c->serve);   /* the loop runs no more: its watchers go here */
    client_lose(c, PLX_ECLOSED, "the client was closed");
    ev_async_stop(c->loop, &c->wake);
    ev_timer_stop(c->loop, &c->trim);
    ev_loop_destroy(c->loop);
    if (atomic_fetch_sub(&live_clients, 1) == 1)
        plx_buf_pool_trim(0);
    plx_taskouts_destroy(&c->taskouts);
    plx_serve_destroy(&c->serve);
    plx_tunnel_close(&c->tunnel);
    pthread_cond_destroy(&c->direct_cv);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->loop_mu);
    free(c);
}

int plx_client_task_output(plx_client_t *c, uint64_t task_id, int32_t *engine_id, char **out,
                           char **err)
{
    return plx_taskouts_get(c->taskouts, task_id, engine_id, out, err);
}

/* ---- blocking calls ------------------------------------------------------ */

void plx_client_set_timeout(plx_client_t *c, double timeout_s)
{
    pthread_mutex_lock(&c->mu);
    c->timeout_s = timeout_s;
    pthread_mutex_unlock(&c->mu);
}

const char *plx_client_peer(const plx_client_t *c)
{
    return c->peer;
}

int plx_client_uses_shm(const plx_client_t *c)
{
    return atomic_load(&((plx_client_t *)c)->shm);
}

static double client_timeout(plx_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    double t = c->timeout_s;
    pthread_mutex_unlock(&c->mu);
    return t;
}

double plx_client_timeout_get(plx_client_t *c)
{
    return client_timeout(c);
}

plx_client_role_t plx_client_role_get(const plx_client_t *c)
{
    return c->role;
}

int plx_client_get_ids(plx_client_t *c, int32_t **ids, size_t *n, plx_err_t *err)
{
    plx_request_t *req = NULL;
    *ids = NULL;
    *n = 0;
    int rc = plx_rq_get_ids(c, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, client_timeout(c), err);
    if (rc == PLX_OK)
        rc = plx_request_ids(req, ids, n, err);
    plx_request_destroy(&req);
    return rc;
}

int plx_client_execute(plx_client_t *c, const plx_targets_t *t, const char *code,
                       plx_results_t **out, plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = plx_rq_execute(c, t, code, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, client_timeout(c), err);
    if (rc == PLX_OK)
        rc = plx_request_results(req, out, err);
    plx_request_destroy(&req);
    return rc;
}
