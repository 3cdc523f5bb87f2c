/*
 * transport-tls driven by plexa's own connection code (core/net: plx_conn,
 * plx_listener) on a libev loop, as the controller, engines and clients
 * will drive it: frames with envelopes and out-of-band buffers both ways
 * at once, and refusals surfacing through on_close with their messages.
 * Every run is bounded by a loop timer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <ev.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plx_cert.h"
#include "plx_conn.h"
#include "plx_listener.h"
#include "plx_plugin_loader.h"
#include "tls_fixture.h"

#define NMSG      120
#define DEADLINE  60.0

static int group_setup(void **state)
{
    return tls_fixture_setup("tlsconn", false);
}

static int group_teardown(void **state)
{
    return tls_fixture_teardown();
}

/* ---- the two sides -------------------------------------------------------- */

typedef struct side {
    struct ev_loop *loop;
    plx_conn_t     *conn;
    uint32_t        seed;      /* what this side sends */
    uint32_t        peer_seed; /* what it expects */
    int             got;       /* frames received and checked */
    bool            bad;       /* a frame did not match */
    bool            closed;
    int             close_code;
    char            why[PLX_ERR_MSG_MAX];
    struct side    *other;
} side;

static void fill(uint8_t *p, size_t n, uint32_t s)
{
    s = s * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        p[i] = (uint8_t)s;
    }
}

/* Frame i of a stream: its envelope length and its buffers' lengths. */
static int frame_shape(uint32_t seed, int i, uint32_t *env_len, size_t lens[3])
{
    uint32_t r = seed * 31u + (uint32_t)i * 7919u;
    int n = i % 10 == 0 ? 1 : i % 3 == 0 ? 3 : 0;

    *env_len = 1 + r % 600;
    for (int j = 0; j < n; j++)
        lens[j] = i % 10 == 0 ? (1u << 20) + (r % (7u << 20)) : 1 + (r >> (j + 3)) % 5000;
    return n;
}

static void send_frames(side *s)
{
    for (int i = 0; i < NMSG; i++) {
        size_t lens[3];
        uint32_t env_len;
        int n = frame_shape(s->seed, i, &env_len, lens);
        plx_msg_t *m = plx_msg_new(env_len);
        assert_non_null(m);
        fill(plx_msg_env(m), env_len, s->seed + (uint32_t)i);
        for (int j = 0; j < n; j++) {
            plx_buf_t *b = plx_buf_new(lens[j]);
            assert_non_null(b);
            fill(b->data, lens[j], s->seed + (uint32_t)i * 3u + (uint32_t)j + 1u);
            assert_int_equal(plx_msg_add_buf(m, b), PLX_OK);
            plx_buf_unref(&b);
        }
        assert_int_equal(plx_conn_send(s->conn, m), PLX_OK);
    }
}

static bool same(const uint8_t *p, size_t n, uint32_t s)
{
    uint8_t *want = malloc(n ? n : 1);
    bool eq;

    assert_non_null(want);
    fill(want, n, s);
    eq = memcmp(p, want, n) == 0;
    free(want);
    return eq;
}

static bool frame_ok(side *s, plx_msg_t *m)
{
    size_t lens[3];
    uint32_t env_len, seed = s->peer_seed;
    int i = s->got, n = frame_shape(seed, i, &env_len, lens);

    if (m->env_len != env_len || (int)m->nbufs != n ||
        !same(plx_msg_env(m), env_len, seed + (uint32_t)i))
        return false;
    for (int j = 0; j < n; j++)
        if (m->bufs[j]->len != lens[j] ||
            !same(m->bufs[j]->data, lens[j], seed + (uint32_t)i * 3u + (uint32_t)j + 1u))
            return false;
    return true;
}

static void on_open(plx_conn_t *c, void *ud)
{
    side *s = ud;

    if (s->seed != 0)
        send_frames(s);
}

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    side *s = ud;

    s->bad = s->bad || !frame_ok(s, m);
    s->got++;
    plx_msg_destroy(&m);
    if (s->got == NMSG && s->other->got == NMSG)
        ev_break(s->loop, EVBREAK_ALL);
}

static void on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    side *s = ud;

    s->closed = true;
    s->close_code = code;
    snprintf(s->why, sizeof s->why, "%s", why);
    plx_conn_destroy(&s->conn);
    if (s->other->closed)
        ev_break(s->loop, EVBREAK_ALL);
}

static const plx_conn_cbs_t cbs = { .on_open = on_open, .on_msg = on_msg, .on_close = on_close };

static void on_accept(plx_listener_t *l, void *handle, int fd, const char *peer, void *ud)
{
    side *s = ud;
    plx_limits_t lim = plx_limits_default();

    assert_null(s->conn);
    s->conn = plx_conn_new(s->loop, tls, handle, fd, &lim, &cbs, s, peer);
    assert_non_null(s->conn);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    fail_msg("the loop ran out of time: something hangs");
}

/* A listener on A's certificate and a client of `ops` with sec; runs the
 * loop until both sides are done (frames) or closed. */
static void run(side *srv, side *cli, const plx_transport_ops *ops, const plx_security *sec)
{
    plx_security lsec = { .cert_file = cert_a, .key_file = key_a };
    plx_limits_t lim = plx_limits_default();
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    plx_listener_t *l;
    plx_err_t err = { 0 };
    ev_timer deadline;
    void *h = NULL;
    int fd = -1;

    srv->loop = cli->loop = loop;
    srv->other = cli;
    cli->other = srv;
    l = plx_listener_new(loop, tls, "127.0.0.1", 0, &lsec, on_accept, srv, &err);
    assert_non_null(l);
    assert_int_equal(ops->connect("127.0.0.1", plx_listener_port(l), sec, &h, &fd, &err), PLX_OK);
    cli->conn = plx_conn_new(loop, ops, h, fd, &lim, &cbs, cli, "controller");
    assert_non_null(cli->conn);
    ev_timer_init(&deadline, deadline_cb, DEADLINE, 0.);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &deadline);
    plx_conn_destroy(&cli->conn);
    plx_conn_destroy(&srv->conn);
    plx_listener_destroy(&l);
    ev_loop_destroy(loop);
}

/* ---- tests -------------------------------------------------------------------- */

/* NMSG frames each way at once (envelopes, small and multi-MiB buffers)
 * arrive whole and in order through plx_conn's queue and decoder. */
static void test_frames_both_ways(void **state)
{
    char pin[80];
    plx_security sec = { .fingerprint = pin };
    side srv = { .seed = 11, .peer_seed = 22 }, cli = { .seed = 22, .peer_seed = 11 };

    snprintf(pin, sizeof pin, "sha256:%s", fp_a);
    run(&srv, &cli, tls, &sec);
    assert_int_equal(cli.got, NMSG);
    assert_int_equal(srv.got, NMSG);
    assert_false(cli.bad || srv.bad);
}

/* The same under partial I/O, spurious EAGAIN and KeyUpdates. */
static void test_frames_with_faults(void **state)
{
    setenv("PLX_TLS_FAULT", "eagain_every=5,short=3000,keyupdate=1000000", 1);
    test_frames_both_ways(state);
    unsetenv("PLX_TLS_FAULT");
}

/* A wrong pin reaches the client's on_close as PLX_EAUTH with the message,
 * and the controller's side closes too. */
static void test_wrong_pin_on_close(void **state)
{
    char pin[80];
    plx_security sec = { .fingerprint = pin };
    side srv = { 0 }, cli = { .seed = 22 };

    snprintf(pin, sizeof pin, "sha256:%s", fp_b);
    run(&srv, &cli, tls, &sec);
    print_message("client: %s\ncontroller: %s\n", cli.why, srv.why);
    assert_true(cli.closed && srv.closed);
    assert_int_equal(cli.close_code, PLX_EAUTH);
    assert_non_null(strstr(cli.why, "certificate fingerprint mismatch"));
    assert_int_equal(cli.got + srv.got, 0);
}

/* A plaintext plexa client: the controller's side names it, the client's
 * connection ends instead of hanging. */
static void test_plaintext_client_on_close(void **state)
{
    side srv = { 0 }, cli = { .seed = 22 };

    run(&srv, &cli, tcp, NULL);
    print_message("client: %s\ncontroller: %s\n", cli.why, srv.why);
    assert_true(cli.closed && srv.closed);
    assert_int_equal(srv.close_code, PLX_EPROTO);
    assert_non_null(strstr(srv.why, "a plaintext plexa client connected to the TLS port"));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_frames_both_ways),
    cmocka_unit_test(test_frames_with_faults),
    cmocka_unit_test(test_wrong_pin_on_close),
    cmocka_unit_test(test_plaintext_client_on_close),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("tls_conn", tests, group_setup, group_teardown))
