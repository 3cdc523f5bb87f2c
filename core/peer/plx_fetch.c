/*
 * Direct-transfer fetches: see plx_fetch.h.
 */
#include "plx_fetch.h"

#include <stdio.h>
#include <string.h>

#include "plexa/version.h"
#include "plx_conn.h"
#include "plx_plugin_loader.h"
#include "plx_envelope.h"
#include "plx_relay.h"

/* A peer that does not connect within this long is taken to be
 * unreachable (a firewall that drops), whatever the whole call's bound. */
#define CONNECT_S 10.0

typedef struct plx_fetch_run {
    struct ev_loop   *loop;
    size_t            left;   /* fetches still running */
    const atomic_int *stop;
    plx_fetch_t      *f;
    size_t            n;
} run_t;

static void fetch_end(plx_fetch_t *f, int code, const char *why)
{
    if (f->code || f->msg || !f->run)
        return;   /* ended already */
    f->code = code;
    if (why)
        snprintf(f->why, sizeof f->why, "%s", why);
    if (--f->run->left == 0)
        ev_break(f->run->loop, EVBREAK_ALL);
}

static void on_open(plx_conn_t *c, void *ud)
{
    plx_fetch_t *f = ud;
    f->opened = 1;
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

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    plx_fetch_t *f = ud;
    if (f->msg || f->code) {
        plx_msg_destroy(&m);
        return;
    }
    f->msg = m;
    f->run->left--;
    if (f->run->left == 0)
        ev_break(f->run->loop, EVBREAK_ALL);
}

static void on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    fetch_end(ud, code ? code : PLX_ECLOSED,
              why && why[0] ? why : "closed without an answer");
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void connect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    run_t *r = w->data;
    for (size_t i = 0; i < r->n; i++)
        if (!r->f[i].opened && r->f[i].conn) {
            plx_conn_destroy(&r->f[i].conn);
            char why[80];
            snprintf(why, sizeof why, "no connection within %.0f s", CONNECT_S);
            fetch_end(&r->f[i], PLX_ETIMEDOUT, why);
        }
}

static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    run_t *r = w->data;
    if (r->stop && atomic_load(r->stop))
        ev_break(loop, EVBREAK_ALL);
}

static void fetch_start(plx_fetch_t *f, run_t *r)
{
    static const plx_conn_cbs_t cbs = { .on_open = on_open, .on_msg = on_msg,
                                        .on_close = on_close };
    char pin[80] = "", peer[300];
    plx_security sec = {0};
    if (f->fingerprint && f->fingerprint[0]) {
        snprintf(pin, sizeof pin, "sha256:%s", f->fingerprint);
        sec.fingerprint = pin;
    }
    f->run = r;
    r->left++;
    void *h = NULL;
    int fd = -1;
    plx_err_t err = {0};
    if (f->ops->connect(f->host, f->port, &sec, &h, &fd, &err) != PLX_OK) {
        fetch_end(f, err.code ? err.code : PLX_ECONNECT, err.msg);
        return;
    }
    snprintf(peer, sizeof peer, "%s:%u", f->host, (unsigned)f->port);
    plx_limits_t lim = plx_limits_default();
    f->conn = plx_conn_new(r->loop, f->ops, h, fd, &lim, &cbs, f, peer);
    if (!f->conn) {
        fetch_end(f, PLX_ENOMEM, "out of memory for a connection");
        return;
    }
    if (f->tee) {
        plx_tap_t tap = plx_relay_tap(f->tee);
        plx_conn_set_tap(f->conn, &tap);
    }
}

size_t plx_fetch_all(plx_fetch_t *f, size_t n, double timeout_s, const atomic_int *stop)
{
    run_t r = { .loop = ev_loop_new(EVFLAG_AUTO), .stop = stop, .f = f, .n = n };
    for (size_t i = 0; i < n; i++) {
        f[i].msg = NULL;
        f[i].code = 0;
        f[i].why[0] = '\0';
        f[i].conn = NULL;
        f[i].run = NULL;
        f[i].opened = 0;
    }
    if (!r.loop) {
        for (size_t i = 0; i < n; i++) {
            f[i].code = PLX_ENOMEM;
            snprintf(f[i].why, sizeof f[i].why, "cannot create an event loop (ev_loop_new)");
        }
        return n;
    }
    for (size_t i = 0; i < n; i++)
        fetch_start(&f[i], &r);
    ev_timer t, p, o;
    ev_timer_init(&t, timeout_cb, timeout_s, 0.);
    ev_timer_init(&p, poll_cb, 0.05, 0.05);
    ev_timer_init(&o, connect_cb, CONNECT_S, 0.);
    p.data = o.data = &r;
    ev_timer_start(r.loop, &t);
    if (CONNECT_S < timeout_s)
        ev_timer_start(r.loop, &o);
    if (stop)
        ev_timer_start(r.loop, &p);
    if (r.left)
        ev_run(r.loop, 0);
    ev_timer_stop(r.loop, &t);
    ev_timer_stop(r.loop, &p);
    ev_timer_stop(r.loop, &o);
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        int stopped = stop && atomic_load(stop);
        if (!f[i].msg && !f[i].code) {
            f[i].code = stopped ? PLX_ECLOSED : PLX_ETIMEDOUT;
            snprintf(f[i].why, sizeof f[i].why, stopped ? "stopped: the client is closing"
                     : "no answer within %.0f s", timeout_s);
        }
        plx_conn_destroy(&f[i].conn);
        if (f[i].tee)
            plx_relay_finish(f[i].tee, f[i].msg != NULL);
        f[i].run = NULL;
        failed += f[i].msg == NULL;
    }
    ev_loop_destroy(r.loop);
    return failed;
}

int plx_fetch_from_url(plx_fetch_t *f, plx_url_t *u, const char *url, plx_err_t *err)
{
    if (plx_url_parse(url, u, err) != PLX_OK)
        return err->code;
    const plx_transport_ops *ops = plx_transport_find(u->transport, err);
    if (!ops)
        return err->code ? err->code : PLX_EINVAL;
    f->ops = ops;
    f->host = u->host;
    f->port = u->port;
    f->fingerprint = u->fingerprint;
    f->ticket = u->token;
    return PLX_OK;
}

Plexa__Envelope *plx_fetch_reply(const plx_msg_t *msg, plx_err_t *err)
{
    Plexa__Envelope *env = plx_envelope_unpack(msg, err);
    if (env && env->body_case != PLEXA__ENVELOPE__BODY_ENGINE_REPLY) {
        plx_err_set(err, PLX_EPROTO, "the peer served a %s, not values",
                    plx_envelope_body_name(env));
        plx_envelope_free(&env);
    }
    return env;
}
