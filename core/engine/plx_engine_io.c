/*
 * The engine's I/O thread: connection, registration, heartbeats, request
 * intake and reply sending, reconnecting, its start and stop. Interrupts
 * and steals are plx_engine_interrupt.c, signals and fork
 * plx_engine_signals.c. It never takes the GIL (see plx_engine_int.h).
 *
 * Reconnecting: when an established connection is lost and the engine is
 * not stopping (no shutdown served, no signal, not refused), the I/O
 * thread retries every RETRY_PERIOD_S for up to reconnect_s, saying Hello
 * with the id it had, so that the controller gives it back. The lost
 * connection's work is void — the controller failed or re-queued it when
 * it saw the connection go — so its queued requests and unsent replies
 * are dropped, running code is interrupted, and replies the Python thread
 * still makes for it are discarded (sessions). When the time is up the
 * engine ends as it did without reconnecting.
 */
#include "plx_engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_envelope.h"
#include "plx_bufpool.h"
#include "plx_dial.h"
#include "plx_region.h"
#include "plx_log.h"
#include "plx_time.h"

#define DEFAULT_REGISTER_TIMEOUT_S 30.0
/* Without a word from the controller for this many heartbeat periods (and
 * at least SILENCE_MIN_S), it is presumed dead: engines never outlive it. */
#define SILENCE_PERIODS 20.0
#define SILENCE_MIN_S   30.0
#define DEFAULT_RECONNECT_S 10.0
#define RETRY_FIRST_S   0.1    /* first reconnect attempt after a loss */
#define RETRY_PERIOD_S  0.5

/* ---- shared-state transitions (I/O side) -------------------------------- */

/* The connection is gone (or never came): tell the Python thread. */
static void io_mark_closed(plx_engine_t *e, int code, const char *why)
{
    pthread_mutex_lock(&e->mu);
    if (!e->closed) {
        e->closed = 1;
        e->close_code = code;
        if (!e->refused)
            snprintf(e->why, sizeof e->why, "%s", why);
        plx_engine_interrupt_if_busy_locked(e);
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
}

static void io_queue_request(plx_engine_t *e, Plexa__Envelope *env, plx_msg_t *m)
{
    plx_engine_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        PLX_ERROR("out of memory queueing a %s request; dropped", plx_envelope_body_name(env));
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        return;
    }
    r->env = env;
    r->msg = m;
    r->relay = plx_engine_relay_claim(e, env);
    pthread_mutex_lock(&e->mu);
    r->session = e->session;
    if (e->req_tail)
        e->req_tail->next = r;
    else
        e->req_head = r;
    e->req_tail = r;
    pthread_mutex_unlock(&e->mu);
    /* After the unlock: the woken thread's first act is to take mu, and
     * signalling with it held made it wake only to wait again. */
    pthread_cond_signal(&e->cv);
}

static void drop_out_list(plx_engine_out_t *o)
{
    while (o) {
        plx_engine_out_t *next = o->next;
        plx_msg_destroy(&o->msg);
        free(o);
        o = next;
    }
}

/* ---- sending ------------------------------------------------------------ */

void plx_engine_io_send(plx_engine_t *e, const Plexa__Envelope *env)
{
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(env, &err);
    if (!m) {
        PLX_ERROR("cannot send %s: %s", plx_envelope_body_name(env), err.msg);
        return;
    }
    if (e->conn)
        plx_conn_send(e->conn, m);
    else
        plx_msg_destroy(&m);
}

static void io_send_hello(plx_engine_t *e)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    Plexa__Hello hello = PLEXA__HELLO__INIT;
    hello.has_role = 1;
    hello.role = PLEXA__ROLE__ROLE_ENGINE;
    hello.token = e->url.token;
    hello.has_version = 1;
    hello.version = PLX_PROTOCOL_VERSION;
    hello.hostname = host;
    hello.has_pid = 1;
    hello.pid = (int32_t)getpid();
    if (!e->ever_welcomed && e->opts.has_requested_id) {
        hello.has_requested_id = 1;
        hello.requested_id = e->opts.requested_id;
    }
    if (e->ever_welcomed) {
        /* Coming back: ask for the id we had (the controller honours it
         * while nobody else holds it). */
        int32_t id = plx_engine_id(e);
        if (id >= 0) {
            hello.has_engine_id = 1;
            hello.engine_id = id;
            hello.engine_secret = e->secret;
        }
    }
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.has_id = 1;
    env.id = 1;
    env.body_case = PLEXA__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    plx_engine_io_send(e, &env);
}

static void io_answer_heartbeat(plx_engine_t *e, const Plexa__Envelope *req)
{
    Plexa__Heartbeat hb = PLEXA__HEARTBEAT__INIT;
    hb.has_seq = req->heartbeat->has_seq;
    hb.seq = req->heartbeat->seq;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.has_id = 1;
    env.id = plx_engine_next_id(e);
    env.has_reply_to = req->has_id;
    env.reply_to = req->id;
    env.body_case = PLEXA__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    plx_engine_io_send(e, &env);
}

/* ---- registration, the watchdog and keepalives ------------------------- */

/* Pooled payload memory idle this long goes back to the system. */
#define POOL_IDLE_S 2.0

/* The controller judges an engine by the time since its last message, and
 * its heartbeat pings wait behind whatever it is already writing to us: a
 * 1 GiB push keeps them from us for as long as the transfer lasts (seconds
 * on a slow link or with slow page faults). While nothing complete has
 * arrived for a whole period, we speak first: an unsolicited Heartbeat
 * (no reply_to) is read by the controller as a sign of life. It costs
 * nothing while the controller's own pings arrive. */
static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_engine_t *e = w->data;
    plx_buf_pool_trim(POOL_IDLE_S);   /* see plx_engine_run */
    if (ev_now(loop) - e->last_rx < e->hb_period || !e->conn || e->conn_closed)
        return;
    Plexa__Heartbeat hb = PLEXA__HEARTBEAT__INIT;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.has_id = 1;
    env.id = plx_engine_next_id(e);
    env.body_case = PLEXA__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    plx_engine_io_send(e, &env);
}

/* Silence is judged by bytes, not by whole messages: a 1 GiB push that
 * takes longer than silence_s to arrive (slow link, a sanitizer build, two
 * CPUs shared with other work) is a controller very much alive. The check
 * runs once per silence_s, so arriving bytes cost nothing per read. */
static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_engine_t *e = w->data;
    uint64_t in = e->conn ? plx_conn_bytes_received(e->conn) : e->wd_bytes;
    if (in != e->wd_bytes) {
        e->wd_bytes = in;
        e->wd_progress = ev_now(loop);
    }
    ev_tstamp heard = e->last_rx > e->wd_progress ? e->last_rx : e->wd_progress;
    ev_tstamp idle = ev_now(loop) - heard;
    if (idle < e->silence_s) {
        ev_timer_set(w, e->silence_s - idle, 0.);
        ev_timer_start(loop, w);
        return;
    }
    char why[160];
    snprintf(why, sizeof why, "nothing from the controller for %.0f s", idle);
    PLX_WARN("%s; presuming it dead", why);
    if (e->conn)
        plx_conn_close(e->conn, 0, PLX_ETIMEDOUT, why);
}

static void io_welcome(plx_engine_t *e, const Plexa__Welcome *w)
{
    if (e->welcomed) {
        PLX_WARN("ignoring a second welcome from the controller");
        return;
    }
    e->welcomed = 1;
    ev_timer_stop(e->loop, &e->reg_timer);
    int32_t id = w->has_engine_id ? w->engine_id : -1;
    char component[32];
    snprintf(component, sizeof component, "engine %d", (int)id);
    plx_log_set_component(component);   /* every later line names the engine */
    if (e->ever_welcomed) {
        /* Back after a loss: the Python thread learns a changed id. */
        e->reconnect_deadline = 0;
        pthread_mutex_lock(&e->mu);
        int32_t old = e->engine_id;
        if (id != old) {
            e->engine_id = id;
            e->id_news = 1;
            pthread_cond_broadcast(&e->cv);
        }
        pthread_mutex_unlock(&e->mu);
        if (id == old)
            PLX_INFO("reconnected to the controller at %s as engine %d", e->url_shown, (int)id);
        else
            PLX_WARN("reconnected to the controller at %s as engine %d (was %d: the controller "
                     "gave the old id away)", e->url_shown, (int)id, (int)old);
    }
    if (w->has_heartbeat_ms && w->heartbeat_ms > 0) {
        e->silence_s = SILENCE_PERIODS * w->heartbeat_ms / 1000.0;
        if (e->opts.silence_s > 0)
            e->silence_s = e->opts.silence_s;
        else if (e->silence_s < SILENCE_MIN_S)
            e->silence_s = SILENCE_MIN_S;
        e->wd_bytes = e->conn ? plx_conn_bytes_received(e->conn) : 0;
        e->wd_progress = ev_now(e->loop);
        ev_timer_set(&e->watchdog, e->silence_s, 0.);
        ev_timer_start(e->loop, &e->watchdog);
        e->hb_period = w->heartbeat_ms / 1000.0;
        ev_timer_set(&e->keepalive, e->hb_period, e->hb_period);
        ev_timer_start(e->loop, &e->keepalive);
    }
    /* The id we hold now, and what proves it if we have to come back. */
    snprintf(e->secret, sizeof e->secret, "%s", w->engine_secret ? w->engine_secret : "");
    if (e->ever_welcomed)
        return;
    e->ever_welcomed = 1;
    pthread_mutex_lock(&e->mu);
    e->registered = 1;
    e->engine_id = id;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void io_reject(plx_engine_t *e, const char *reason)
{
    pthread_mutex_lock(&e->mu);
    e->refused = 1;
    snprintf(e->why, sizeof e->why, "%s", reason && *reason ? reason : "(no reason given)");
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    plx_conn_close(e->conn, 0, PLX_EAUTH, "registration refused");
}

static void reg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_engine_t *e = w->data;
    char why[PLX_ERR_MSG_MAX];
    snprintf(why, sizeof why, "no answer from the controller at %s within %.0f s",
             e->url_shown, e->opts.register_timeout_s);
    if (e->conn)
        plx_conn_close(e->conn, 0, PLX_ETIMEDOUT, why);
    else
        io_mark_closed(e, PLX_ETIMEDOUT, why);
}

/* ---- connection callbacks ---------------------------------------------- */

static void on_open(plx_conn_t *c, void *ud)
{
    plx_engine_t *e = ud;
    PLX_DEBUG("connected to %s", e->url_shown);
    pthread_mutex_lock(&e->mu);
    e->opened = 1;
    int ready = e->py_ready;
    pthread_mutex_unlock(&e->mu);
    if (ready)
        io_send_hello(e);
    else
        e->hello_pending = 1;   /* sent by wake_cb once Python is up */
}

/* Messages that only make sense from the controller to an engine before
 * or instead of requests. Returns 1 if handled (env still owned by caller). */
static int io_control(plx_engine_t *e, const Plexa__Envelope *env)
{
    switch (env->body_case) {
    case PLEXA__ENVELOPE__BODY_HEARTBEAT:
        io_answer_heartbeat(e, env);
        return 1;
    case PLEXA__ENVELOPE__BODY_WELCOME:
        io_welcome(e, env->welcome);
        return 1;
    case PLEXA__ENVELOPE__BODY_REJECT:
        io_reject(e, env->reject->reason);
        return 1;
    case PLEXA__ENVELOPE__BODY_INTERRUPT:
        /* Not queued: it is about what runs now. */
        plx_engine_io_interrupt(e, env->interrupt->has_task_id ? env->interrupt->task_id : 0,
                                env->interrupt->has_request_id ? env->interrupt->request_id : 0);
        return 1;
    case PLEXA__ENVELOPE__BODY_TASK_STEAL:
        /* Not queued either: it is about what still waits. */
        plx_engine_io_steal(e, env);
        return 1;
    case PLEXA__ENVELOPE__BODY_SERVE_END:
        plx_engine_peer_end(e, env->serve_end->tickets, env->serve_end->n_tickets);
        return 1;
    case PLEXA__ENVELOPE__BODY_ERROR:
        /* Never answered: an error about an error could ping-pong. */
        PLX_WARN("controller reports an error (%d): %s",
                 env->error->has_code ? env->error->code : 0,
                 env->error->message ? env->error->message : "");
        if (!e->welcomed)
            io_reject(e, env->error->message);
        return 1;
    default:
        return 0;
    }
}

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    plx_engine_t *e = ud;
    plx_err_t err = {0};
    e->last_rx = ev_now(e->loop);
    Plexa__Envelope *env = plx_envelope_unpack(m, &err);
    if (!env) {
        PLX_WARN("dropping a message from the controller: %s", err.msg);
        plx_msg_destroy(&m);
        return;
    }
    if (io_control(e, env) || plx_engine_relay_pull(e, env)) {
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        return;
    }
    /* Everything else is served in order by the Python thread, including
     * shutdown and requests it will refuse: replies keep request order. */
    io_queue_request(e, env, m);
}

/* Whether a lost connection is worth re-establishing: it had been
 * welcomed (a failed first registration is an error for the user), and
 * nobody asked the engine to end. */
static int may_reconnect(plx_engine_t *e, int code)
{
    if (e->reconnect_s <= 0 || !e->ever_welcomed || code == PLX_EAUTH)
        return 0;
    pthread_mutex_lock(&e->mu);
    int ok = !e->io_stop && !e->refused && !e->stop_signal && !e->shutting_down && !e->closed;
    pthread_mutex_unlock(&e->mu);
    return ok;
}

/* Void the lost connection's work (see the top of this file). */
static void io_drop_session(plx_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    e->session++;
    plx_engine_req_t *reqs = e->req_head;
    e->req_head = e->req_tail = NULL;
    plx_engine_out_t *outs = e->out_head;
    e->out_head = e->out_tail = NULL;
    plx_engine_interrupt_if_busy_locked(e);
    pthread_mutex_unlock(&e->mu);
    int n = 0;
    while (reqs) {
        plx_engine_req_t *next = reqs->next;
        plx_engine_req_free(reqs);   /* received buffers only: no Python in them */
        reqs = next;
        n++;
    }
    drop_out_list(outs);   /* exports in them are deferred to the Python thread */
    if (n)
        PLX_INFO("dropped %d request(s) of the lost connection", n);
}

/* Retry soon, or give up when the time is over. */
static void io_schedule_retry(plx_engine_t *e, double after)
{
    ev_tstamp left = e->reconnect_deadline - ev_now(e->loop);
    if (left <= 0) {
        char why[PLX_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%.200s; could not reconnect within %g s", e->lost_why,
                 e->reconnect_s);
        PLX_WARN("%s", why);
        e->reconnect_deadline = 0;
        io_mark_closed(e, PLX_ECONNECT, why);
        return;
    }
    ev_timer_set(&e->retry, after < left ? after : left, 0.);
    ev_timer_start(e->loop, &e->retry);
}

static void on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    plx_engine_t *e = ud;
    PLX_DEBUG("connection to %s closed: %s", e->url_shown, why);
    int retry = may_reconnect(e, code);
    if (!retry)
        io_mark_closed(e, code, why);
    /* Not destroyed here but by io_main or the retry timer: a closed
     * connection refuses sends and ignores closes. */
    e->conn_closed = 1;
    ev_timer_stop(e->loop, &e->reg_timer);
    ev_timer_stop(e->loop, &e->watchdog);
    ev_timer_stop(e->loop, &e->keepalive);
    pthread_mutex_lock(&e->mu);
    int stop = e->io_stop;
    pthread_mutex_unlock(&e->mu);
    if (stop) {
        ev_break(e->loop, EVBREAK_ALL);
        return;
    }
    if (!retry)
        return;
    double after = RETRY_PERIOD_S;
    if (e->reconnect_deadline == 0) {
        after = RETRY_FIRST_S;
        /* The first loss of a welcomed connection. */
        e->reconnect_deadline = ev_now(e->loop) + e->reconnect_s;
        snprintf(e->lost_why, sizeof e->lost_why, "lost the controller at %s (%s)",
                 e->url_shown, why && *why ? why : "connection closed");
        PLX_WARN("%s; reconnecting for up to %g s", e->lost_why, e->reconnect_s);
        io_drop_session(e);
    }
    e->welcomed = 0;
    plx_engine_relay_drop(e);
    plx_conn_destroy(&e->old_conn);   /* not c: that one is freed by the retry timer */
    e->old_conn = e->conn;
    e->conn = NULL;
    atomic_store(&plx_engine_conn_fd, -1);
    io_schedule_retry(e, after);
}

/* ---- wake-ups from the Python thread ----------------------------------- */

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    plx_engine_t *e = w->data;
    pthread_mutex_lock(&e->mu);
    plx_engine_out_t *o = e->out_head;
    e->out_head = e->out_tail = NULL;
    int stop = e->io_stop, ready = e->py_ready;
    pthread_mutex_unlock(&e->mu);
    plx_engine_output_on_wake(e);
    plx_engine_peer_on_wake(e);
    if (ready && e->hello_pending) {
        e->hello_pending = 0;
        if (e->conn && !e->conn_closed)
            io_send_hello(e);
    }
    while (o) {
        plx_engine_out_t *next = o->next;
        if (e->conn)
            plx_conn_send(e->conn, o->msg);   /* takes the message */
        else
            plx_msg_destroy(&o->msg);
        free(o);
        o = next;
    }
    if (!stop)
        return;
    if (e->conn && !e->conn_closed)
        plx_conn_close(e->conn, 1, PLX_OK, "engine stopping");   /* on_close breaks */
    else
        ev_break(loop, EVBREAK_ALL);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* ---- start and stop ----------------------------------------------------- */

int plx_engine_io_init(plx_engine_t *e, plx_err_t *err)
{
    e->loop = ev_loop_new(EVFLAG_AUTO);
    if (!e->loop)
        return plx_err_set(err, PLX_ENOMEM, "cannot create an event loop (ev_loop_new)");
    if (e->opts.register_timeout_s <= 0)
        e->opts.register_timeout_s = DEFAULT_REGISTER_TIMEOUT_S;
    ev_async_init(&e->wake, wake_cb);
    e->wake.data = e;
    ev_async_init(&e->sig, plx_engine_sig_cb);
    e->sig.data = e;
    ev_timer_init(&e->reg_timer, reg_timer_cb, e->opts.register_timeout_s, 0.);
    e->reg_timer.data = e;
    ev_init(&e->watchdog, watchdog_cb);
    e->watchdog.data = e;
    ev_init(&e->keepalive, keepalive_cb);
    e->keepalive.data = e;
    ev_init(&e->retry, retry_cb);
    e->retry.data = e;
    e->reconnect_s = e->opts.reconnect_s == 0 ? DEFAULT_RECONNECT_S
                     : e->opts.reconnect_s < 0 ? 0 : e->opts.reconnect_s;
    /* Started here, before any other thread or signal handler can call
     * ev_async_send on them. */
    ev_async_start(e->loop, &e->wake);
    ev_async_start(e->loop, &e->sig);
    return PLX_OK;
}

/* Open a connection to the controller (the Hello follows in on_open).
 * PLX_OK, or a failure with err set. */
static int io_connect(plx_engine_t *e, plx_err_t *err)
{
    char pin[80] = "";
    plx_security sec = {0};
    if (e->url.fingerprint[0]) {
        snprintf(pin, sizeof pin, "sha256:%s", e->url.fingerprint);
        sec.fingerprint = pin;
    }
    plx_dialed_t d;
    int rc = plx_dial(e->url.transport, e->url.host, e->url.port, &sec, e->url.shm, &d, err);
    if (rc != PLX_OK)
        return rc;
    int fd = d.fd;
    plx_limits_t lim = plx_limits_default();
    plx_conn_cbs_t cbs = { .on_open = on_open, .on_msg = on_msg, .on_close = on_close };
    char peer[300];
    if (d.shm)
        snprintf(peer, sizeof peer, "shm:%s", e->url.shm);
    else
        snprintf(peer, sizeof peer, "%s:%u", e->url.host, (unsigned)e->url.port);
    e->conn = plx_conn_new(e->loop, d.ops, d.handle, fd, &lim, &cbs, e, peer);
    if (!e->conn)
        return plx_err_set(err, PLX_ENOMEM, "out of memory creating the connection");
    /* User code gets what arrives: copy-on-write views (plx_region.h). */
    if (d.shm)
        plx_conn_share_regions(e->conn, PLX_REGION_PRIVATE);
    e->conn_closed = 0;
    atomic_store(&plx_engine_conn_fd, fd);
    e->last_rx = ev_now(e->loop);
    double wait = e->opts.register_timeout_s;
    if (e->reconnect_deadline > 0 && e->reconnect_deadline - ev_now(e->loop) < wait)
        wait = e->reconnect_deadline - ev_now(e->loop);
    ev_timer_set(&e->reg_timer, wait > 0.05 ? wait : 0.05, 0.);
    ev_timer_start(e->loop, &e->reg_timer);
    return PLX_OK;
}

/* A reconnect attempt (the loss is in e->lost_why). */
static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_engine_t *e = w->data;
    plx_conn_destroy(&e->old_conn);
    if (e->conn || e->reconnect_deadline == 0)
        return;
    pthread_mutex_lock(&e->mu);
    int stop = e->io_stop || e->stop_signal || e->closed;
    pthread_mutex_unlock(&e->mu);
    if (stop)
        return;
    plx_err_t err = {0};
    if (io_connect(e, &err) != PLX_OK) {
        PLX_DEBUG("reconnecting to %s: %s", e->url_shown, err.msg);
        io_schedule_retry(e, RETRY_PERIOD_S);
    }
}

static void *io_main(void *arg)
{
    plx_engine_t *e = arg;
    plx_err_t err = {0};
    /* Named for top -H and perf (the main thread is "ipengine"). */
    pthread_setname_np(pthread_self(), "ipengine-io");
    int rc = io_connect(e, &err);
    if (rc != PLX_OK)
        io_mark_closed(e, rc, err.msg);
    ev_run(e->loop, 0);
    /* Stopped: nothing more will be sent. Dropping queued replies may
     * defer buffer releases to the Python thread, which drains them after
     * joining us. */
    atomic_store(&plx_engine_conn_fd, -1);
    plx_engine_peer_io_stop(e);
    plx_conn_destroy(&e->conn);
    plx_conn_destroy(&e->old_conn);
    ev_timer_stop(e->loop, &e->retry);
    ev_timer_stop(e->loop, &e->reg_timer);
    ev_timer_stop(e->loop, &e->watchdog);
    ev_timer_stop(e->loop, &e->keepalive);
    ev_timer_stop(e->loop, &e->live_timer);
    pthread_mutex_lock(&e->mu);
    plx_engine_out_t *o = e->out_head;
    e->out_head = e->out_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    drop_out_list(o);
    return NULL;
}

int plx_engine_io_start(plx_engine_t *e, plx_err_t *err)
{
    /* Signals are for the Python thread (and our handlers): block them all
     * in the I/O thread, which inherits the mask at creation. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&e->io_thread, NULL, io_main, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return plx_err_set(err, PLX_EIO, "pthread_create (I/O thread): %s", strerror(rc));
    e->io_started = 1;
    return PLX_OK;
}

void plx_engine_io_post(plx_engine_t *e, plx_msg_t *m, uint64_t session)
{
    plx_engine_out_t *o = calloc(1, sizeof *o);
    if (!o) {
        PLX_ERROR("out of memory queueing a reply; dropped");
        plx_msg_destroy(&m);
        return;
    }
    o->msg = m;
    pthread_mutex_lock(&e->mu);
    if (session != e->session) {
        pthread_mutex_unlock(&e->mu);
        PLX_DEBUG("dropping a reply for the lost connection");
        plx_msg_destroy(&o->msg);
        free(o);
        return;
    }
    if (e->out_tail)
        e->out_tail->next = o;
    else
        e->out_head = o;
    e->out_tail = o;
    pthread_mutex_unlock(&e->mu);
    ev_async_send(e->loop, &e->wake);
}

void plx_engine_io_python_ready(plx_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    e->py_ready = 1;
    pthread_mutex_unlock(&e->mu);
    ev_async_send(e->loop, &e->wake);
}

void plx_engine_io_stop(plx_engine_t *e)
{
    if (e->io_started) {
        pthread_mutex_lock(&e->mu);
        e->io_stop = 1;
        pthread_mutex_unlock(&e->mu);
        ev_async_send(e->loop, &e->wake);
        pthread_join(e->io_thread, NULL);
        e->io_started = 0;
    }
    if (e->loop) {
        ev_async_stop(e->loop, &e->wake);
        ev_async_stop(e->loop, &e->sig);
        ev_loop_destroy(e->loop);
        e->loop = NULL;
    }
}
