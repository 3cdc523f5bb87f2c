/*
 * core/net's direct-transfer fetches (plx_fetch.h) against a real server
 * over the real tcp plugin on loopback: a thread with its own event loop
 * that serves one frame to each peer presenting the ticket in its Hello,
 * refuses others, or says nothing (as a stalled engine would).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plx_conn.h"
#include "plx_envelope.h"
#include "plx_fetch.h"
#include "plx_listener.h"
#include "plx_plugin_loader.h"

#define TICKET  "0123456789abcdef0123456789abcdef"
#define PAYLOAD ((size_t)1 << 20)

typedef enum { SERVE, SILENT } mode_t_;

typedef struct server {
    struct ev_loop  *loop;
    ev_async         stop;
    plx_listener_t  *lis;
    pthread_t        thread;
    mode_t_          mode;
    plx_conn_t      *conns[8];
    int              nconns;
    int              served, refused;
} server_t;

static const plx_transport_ops *tcp;

static void srv_on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    server_t *s = ud;
    Plexa__Envelope *env = plx_envelope_unpack(m, NULL);
    plx_msg_destroy(&m);
    int ok = env && env->body_case == PLEXA__ENVELOPE__BODY_HELLO && env->hello->token &&
             strcmp(env->hello->token, TICKET) == 0;
    plx_envelope_free(&env);
    if (!ok) {
        s->refused++;
        plx_conn_close(c, 0, PLX_EAUTH, "no such ticket");
        return;
    }
    if (s->mode == SILENT)
        return;
    Plexa__EngineReply r = PLEXA__ENGINE_REPLY__INIT;
    r.has_engine_id = 1;
    r.engine_id = 7;
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    out.body_case = PLEXA__ENVELOPE__BODY_ENGINE_REPLY;
    out.engine_reply = &r;
    plx_msg_t *f = plx_envelope_pack(&out, NULL);
    plx_buf_t *b = plx_buf_new(PAYLOAD);
    memset(b->data, 0x5a, PAYLOAD);
    plx_msg_add_buf(f, b);
    plx_buf_unref(&b);
    plx_conn_send(c, f);
    plx_conn_close(c, 1, PLX_OK, "served");
    s->served++;
}

static void srv_on_close(plx_conn_t *c, int code, const char *why, void *ud) {}

static void srv_accept(plx_listener_t *l, void *handle, int fd, const char *peer, void *ud)
{
    server_t *s = ud;
    static const plx_conn_cbs_t cbs = { .on_msg = srv_on_msg, .on_close = srv_on_close };
    s->conns[s->nconns++] = plx_conn_new(s->loop, tcp, handle, fd, NULL, &cbs, s, peer);
}

static void srv_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *srv_main(void *arg)
{
    server_t *s = arg;
    ev_run(s->loop, 0);
    return NULL;
}

static server_t *server_start(mode_t_ mode)
{
    server_t *s = calloc(1, sizeof *s);
    plx_err_t err = {0};
    s->mode = mode;
    s->loop = ev_loop_new(EVFLAG_AUTO);
    s->lis = plx_listener_new(s->loop, tcp, "127.0.0.1", 0, NULL, srv_accept, s, &err);
    assert_non_null(s->lis);
    ev_async_init(&s->stop, srv_stop);
    ev_async_start(s->loop, &s->stop);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    return s;
}

static void server_stop(server_t **sp)
{
    server_t *s = *sp;
    ev_async_send(s->loop, &s->stop);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->nconns; i++)
        plx_conn_destroy(&s->conns[i]);
    plx_listener_destroy(&s->lis);
    ev_async_stop(s->loop, &s->stop);
    ev_loop_destroy(s->loop);
    free(s);
    *sp = NULL;
}

static plx_fetch_t fetch_of(const server_t *s, const char *ticket)
{
    return (plx_fetch_t){ .ops = tcp, .host = "127.0.0.1", .port = plx_listener_port(s->lis),
                          .ticket = ticket };
}

static void assert_served(const plx_fetch_t *f)
{
    assert_non_null(f->msg);
    assert_int_equal(f->code, 0);
    assert_int_equal(f->msg->nbufs, 1);
    assert_int_equal(f->msg->bufs[0]->len, PAYLOAD);
    const uint8_t *d = f->msg->bufs[0]->data;
    assert_true(d[0] == 0x5a && d[PAYLOAD - 1] == 0x5a);
    Plexa__Envelope *env = plx_envelope_unpack(f->msg, NULL);
    assert_non_null(env);
    assert_int_equal(env->body_case, PLEXA__ENVELOPE__BODY_ENGINE_REPLY);
    assert_int_equal(env->engine_reply->engine_id, 7);
    plx_envelope_free(&env);
}

static int setup(void **state)
{
    plx_err_t err = {0};
    tcp = plx_transport_find("tcp", &err);
    if (!tcp)
        print_error("%s\n", err.msg);
    return tcp ? 0 : -1;
}

/* Two servers fetched from at once: each frame whole. */
static void test_fetch_two(void **state)
{
    server_t *a = server_start(SERVE), *b = server_start(SERVE);
    plx_fetch_t f[2] = { fetch_of(a, TICKET), fetch_of(b, TICKET) };
    assert_int_equal(plx_fetch_all(f, 2, 10.0, NULL), 0);
    assert_served(&f[0]);
    assert_served(&f[1]);
    plx_msg_destroy(&f[0].msg);
    plx_msg_destroy(&f[1].msg);
    server_stop(&a);
    server_stop(&b);
}

/* A wrong ticket is refused; the right one beside it still served. */
static void test_wrong_ticket(void **state)
{
    server_t *a = server_start(SERVE);
    plx_fetch_t f[2] = { fetch_of(a, "ffffffffffffffffffffffffffffffff"), fetch_of(a, TICKET) };
    assert_int_equal(plx_fetch_all(f, 2, 10.0, NULL), 1);
    assert_null(f[0].msg);
    assert_true(f[0].code < 0);
    assert_true(f[0].why[0]);
    assert_served(&f[1]);
    plx_msg_destroy(&f[1].msg);
    assert_int_equal(a->refused, 1);
    server_stop(&a);
}

/* Nobody listening: the connect's own error. */
static void test_refused(void **state)
{
    server_t *a = server_start(SERVE);
    plx_fetch_t f = fetch_of(a, TICKET);
    server_stop(&a);
    assert_int_equal(plx_fetch_all(&f, 1, 10.0, NULL), 1);
    assert_null(f.msg);
    assert_true(f.code < 0);
    assert_true(f.why[0]);
}

/* A server that never answers: the call ends at its timeout. */
static void test_timeout(void **state)
{
    server_t *a = server_start(SILENT);
    plx_fetch_t f = fetch_of(a, TICKET);
    assert_int_equal(plx_fetch_all(&f, 1, 0.3, NULL), 1);
    assert_int_equal(f.code, PLX_ETIMEDOUT);
    assert_non_null(strstr(f.why, "no answer within"));
    server_stop(&a);
}

static void *set_later(void *arg)
{
    struct timespec ts = { 0, 100 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

/* A stop flag set from another thread ends the call long before its
 * timeout. */
static void test_stop(void **state)
{
    server_t *a = server_start(SILENT);
    plx_fetch_t f = fetch_of(a, TICKET);
    atomic_int stop = 0;
    pthread_t t;
    pthread_create(&t, NULL, set_later, &stop);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(plx_fetch_all(&f, 1, 60.0, &stop), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    assert_int_equal(f.code, PLX_ECLOSED);
    assert_true(t1.tv_sec - t0.tv_sec < 30);
    server_stop(&a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fetch_two),
    cmocka_unit_test(test_wrong_ticket),
    cmocka_unit_test(test_refused),
    cmocka_unit_test(test_timeout),
    cmocka_unit_test(test_stop),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("fetch", tests, setup, NULL))
