/*
 * core/peer's relays (plx_relay.h): a frame passed on while it arrives.
 * On its own (readers, trimming, wakes, a producer thread), and served
 * for real (plx_serve on an event loop thread, fetched over the tcp
 * plugin on loopback into a second relay): the fetching side must hold
 * the first half of a frame before the producer has appended the second,
 * which only a pipelined server can do.
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

#include "plx_envelope.h"
#include "plx_fetch.h"
#include "plx_plugin_loader.h"
#include "plx_relay.h"
#include "plx_serve.h"
#include "plx_url.h"

#define MIB ((size_t)1 << 20)

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 131u + (i >> 11));
}

static void append_pattern(plx_relay_t *r, size_t from, size_t n)
{
    uint8_t chunk[4096];
    while (n) {
        size_t k = n < sizeof chunk ? n : sizeof chunk;
        for (size_t i = 0; i < k; i++)
            chunk[i] = pattern(from + i);
        assert_int_equal(plx_relay_append(r, chunk, k), PLX_OK);
        from += k;
        n -= k;
    }
}

/* Everything reader k can take now, checked against the pattern from
 * *at; the last return code. */
static int drain(plx_relay_t *r, size_t k, size_t *at)
{
    for (;;) {
        plx_buf_t *b = NULL;
        size_t off = 0, len = 0;
        int rc = plx_relay_next(r, k, 1, &b, &off, &len);
        if (rc != PLX_RELAY_MORE)
            return rc;
        for (size_t i = 0; i < len; i++)
            if (b->data[off + i] != pattern(*at + i))
                fail_msg("byte %zu differs", *at + i);
        *at += len;
        plx_buf_unref(&b);
    }
}

/* Two readers each take every byte, in order, however the appends fell;
 * they wait until there is more, and are done once it is whole. */
static void test_readers_take_everything(void **state)
{
    plx_relay_t *r = plx_relay_new(2);
    size_t a = 0, b = 0;
    assert_int_equal(drain(r, 0, &a), PLX_RELAY_WAIT);
    append_pattern(r, 0, 3 * MIB + 17);
    assert_int_equal(drain(r, 0, &a), PLX_RELAY_WAIT);
    assert_int_equal(a, 3 * MIB + 17);
    append_pattern(r, 3 * MIB + 17, 100);
    plx_relay_finish(r, 1);
    plx_relay_finish(r, 0);   /* the first call counts */
    assert_int_equal(drain(r, 0, &a), PLX_RELAY_DONE);
    assert_int_equal(drain(r, 1, &b), PLX_RELAY_DONE);
    assert_int_equal(a, 3 * MIB + 117);
    assert_int_equal(b, a);
    assert_int_equal(plx_relay_size(r), a);
    plx_relay_unref(&r);
    assert_null(r);
}

/* A relay holds what its slowest reader has not taken, not the frame: and
 * nothing once nobody is left to read. */
static void test_blocks_go_once_taken(void **state)
{
    const size_t blk = PLX_RELAY_BLOCK;
    plx_relay_t *r = plx_relay_new(2);
    size_t a = 0, b = 0;
    append_pattern(r, 0, 3 * blk);
    assert_int_equal(plx_relay_held(r), 3 * blk);
    drain(r, 0, &a);
    assert_int_equal(plx_relay_held(r), 3 * blk);   /* reader 1 took nothing yet */
    drain(r, 1, &b);
    assert_true(plx_relay_held(r) <= blk);
    append_pattern(r, 3 * blk, 2 * blk);
    plx_relay_drop_reader(r, 1);   /* its peer went */
    drain(r, 0, &a);
    assert_true(plx_relay_held(r) <= blk);
    plx_relay_drop_reader(r, 0);
    append_pattern(r, 5 * blk, 4 * blk);   /* nobody wants it: counted, not kept */
    assert_true(plx_relay_held(r) <= blk);
    assert_int_equal(plx_relay_size(r), 9 * blk);
    plx_relay_unref(&r);
}

static void count_wake(void *ud)
{
    (*(int *)ud)++;
}

/* A reader that ran dry is woken by what comes next, or by the end, or,
 * asking for a batch, once the batch has come; a reader that has not
 * asked is not. A failed relay fails its readers. */
static void test_wakes_and_failure(void **state)
{
    plx_relay_t *r = plx_relay_new(1);
    int wakes = 0;
    size_t a = 0;
    plx_relay_set_notify(r, count_wake, &wakes);
    append_pattern(r, 0, MIB);
    assert_int_equal(wakes, 0);   /* nobody waits */
    assert_int_equal(drain(r, 0, &a), PLX_RELAY_WAIT);
    append_pattern(r, MIB, 10);
    assert_int_equal(wakes, 1);
    append_pattern(r, MIB + 10, MIB);
    assert_int_equal(wakes, 1);   /* woken already, not yet back */
    assert_int_equal(drain(r, 0, &a), PLX_RELAY_WAIT);
    plx_relay_finish(r, 0);
    assert_int_equal(wakes, 2);
    plx_relay_unref(&r);

    /* A reader asking for a batch is woken once the batch has come. */
    r = plx_relay_new(1);
    wakes = 0;
    plx_relay_set_notify(r, count_wake, &wakes);
    plx_buf_t *b = NULL;
    size_t off, len;
    assert_int_equal(plx_relay_next(r, 0, 1000, &b, &off, &len), PLX_RELAY_WAIT);
    append_pattern(r, 0, 999);
    assert_int_equal(wakes, 0);
    assert_int_equal(plx_relay_next(r, 0, 1000, &b, &off, &len), PLX_RELAY_WAIT);
    append_pattern(r, 999, 1);
    assert_int_equal(wakes, 1);
    assert_int_equal(plx_relay_next(r, 0, 1000, &b, &off, &len), PLX_RELAY_MORE);
    assert_int_equal(len, 1000);
    plx_buf_unref(&b);
    append_pattern(r, 1000, 10);
    plx_relay_finish(r, 0);
    assert_int_equal(plx_relay_next(r, 0, 1, &b, &off, &len), PLX_EIO);
    assert_null(b);
    assert_int_equal(plx_relay_append(r, "x", 1), PLX_OK);   /* ignored */
    assert_int_equal(plx_relay_size(r), 1010);
    plx_relay_unref(&r);
}

/* ---- a producer thread ---------------------------------------------------- */

typedef struct side {
    plx_relay_t     *r;
    size_t           total;
    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    int              woken;
} side_t;

static void *produce(void *arg)
{
    side_t *s = arg;
    for (size_t at = 0; at < s->total; at += 100000)
        append_pattern(s->r, at, s->total - at < 100000 ? s->total - at : 100000);
    plx_relay_finish(s->r, 1);
    return NULL;
}

static void wake_side(void *ud)
{
    side_t *s = ud;
    pthread_mutex_lock(&s->mu);
    s->woken = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* A producer on one thread, a reader on another that sleeps until woken:
 * every byte arrives, and no wake is lost. */
static void test_producer_thread(void **state)
{
    side_t s = { .r = plx_relay_new(1), .total = 64 * MIB };
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    plx_relay_set_notify(s.r, wake_side, &s);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, produce, &s), 0);
    size_t at = 0;
    int rc;
    while ((rc = drain(s.r, 0, &at)) == PLX_RELAY_WAIT) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        pthread_mutex_lock(&s.mu);
        while (!s.woken && pthread_cond_timedwait(&s.cv, &s.mu, &until) == 0)
            ;
        assert_true(s.woken);
        s.woken = 0;
        pthread_mutex_unlock(&s.mu);
    }
    assert_int_equal(rc, PLX_RELAY_DONE);
    assert_int_equal(at, s.total);
    pthread_join(t, NULL);
    plx_relay_unref(&s.r);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
}

/* ---- served for real ------------------------------------------------------- */

#define TICKET_A "0123456789abcdef0123456789abcdef"
#define TICKET_B "fedcba9876543210fedcba9876543210"

typedef struct server {
    struct ev_loop *loop;
    ev_async        wake, stop;
    plx_serve_t    *serve;
    pthread_t       thread;
    char            url[320];
} server_t;

static void srv_wake(void *ud)
{
    server_t *s = ud;
    ev_async_send(s->loop, &s->wake);
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    server_t *s = w->data;
    plx_serve_on_wake(s->serve, loop);
}

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *srv_main(void *arg)
{
    server_t *s = arg;
    ev_run(s->loop, 0);
    return NULL;
}

/* A server offering r to two tickets, its loop on a thread of its own. */
static server_t *server_start(plx_relay_t *r)
{
    server_t *s = calloc(1, sizeof *s);
    plx_err_t err = {0};
    s->loop = ev_loop_new(EVFLAG_AUTO);
    s->serve = plx_serve_new("test", srv_wake, s);
    ev_async_init(&s->wake, wake_cb);
    ev_async_init(&s->stop, stop_cb);
    s->wake.data = s;
    ev_async_start(s->loop, &s->wake);
    ev_async_start(s->loop, &s->stop);
    char *tickets[] = { TICKET_A, TICKET_B };
    /* Offered before the loop runs: this thread is the loop's until then. */
    if (plx_serve_offer_relay(s->serve, s->loop, "tcp", "127.0.0.1", tickets, 2, 0, r, s->url,
                              sizeof s->url, &err) != PLX_OK)
        fail_msg("offer: %s", err.msg);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    return s;
}

static void server_stop(server_t **sp)
{
    server_t *s = *sp;
    ev_async_send(s->loop, &s->stop);
    pthread_join(s->thread, NULL);
    plx_serve_io_stop(s->serve);
    plx_serve_destroy(&s->serve);
    ev_async_stop(s->loop, &s->wake);
    ev_async_stop(s->loop, &s->stop);
    ev_loop_destroy(s->loop);
    free(s);
    *sp = NULL;
}

typedef struct fetcher {
    plx_fetch_t  f;
    plx_url_t    u;
    pthread_t    thread;
} fetcher_t;

static void *fetch_main(void *arg)
{
    fetcher_t *x = arg;
    plx_fetch_all(&x->f, 1, 60.0, NULL);
    return NULL;
}

static void fetch_start(fetcher_t *x, const server_t *s, const char *ticket, plx_relay_t *tee)
{
    plx_err_t err = {0};
    assert_int_equal(plx_url_parse(s->url, &x->u, &err), PLX_OK);
    x->f = (plx_fetch_t){ .ops = plx_transport_find("tcp", &err), .host = x->u.host,
                          .port = x->u.port, .ticket = ticket, .tee = tee };
    assert_non_null(x->f.ops);
    assert_int_equal(pthread_create(&x->thread, NULL, fetch_main, x), 0);
}

/* An EngineReply frame's header and envelope, for one buffer of len. */
static size_t append_head(plx_relay_t *r, size_t len)
{
    Plexa__EngineReply rep = PLEXA__ENGINE_REPLY__INIT;
    rep.has_engine_id = 1;
    rep.engine_id = 7;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_ENGINE_REPLY;
    env.engine_reply = &rep;
    plx_msg_t *m = plx_envelope_pack(&env, NULL);
    uint8_t hdr[PLX_FRAME_HDR_LEN], blen[PLX_FRAME_BLEN_LEN];
    plx_frame_header(hdr, m->env_len, 1);
    uint64_t le = len;
    memcpy(blen, &le, sizeof blen);
    plx_relay_append(r, hdr, sizeof hdr);
    plx_relay_append(r, plx_msg_env(m), m->env_len);
    plx_relay_append(r, blen, sizeof blen);
    size_t n = sizeof hdr + m->env_len + sizeof blen;
    plx_msg_destroy(&m);
    return n;
}

/* Wait (bounded) until relay t holds at least n bytes. */
static int grows_to(plx_relay_t *t, size_t n)
{
    for (int i = 0; i < 3000 && plx_relay_size(t) < n; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return plx_relay_size(t) >= n;
}

/* Two peers fetch a frame that is still arriving: each holds its first
 * half (and passes it on, into its own relay) before the second half
 * exists; both end with the whole frame. */
static void test_served_as_it_arrives(void **state)
{
    const size_t body = 24 * MIB;
    plx_relay_t *r = plx_relay_new(2), *tee[2] = { plx_relay_new(1), plx_relay_new(1) };
    server_t *s = server_start(r);
    fetcher_t x[2];
    fetch_start(&x[0], s, TICKET_A, tee[0]);
    fetch_start(&x[1], s, TICKET_B, tee[1]);
    size_t head = append_head(r, body);
    append_pattern(r, 0, body / 2);
    /* Less a last part shorter than a batch, which waits for more. */
    assert_true(grows_to(tee[0], head + body / 2 - PLX_SERVE_RELAY_BATCH));
    assert_true(grows_to(tee[1], head + body / 2 - PLX_SERVE_RELAY_BATCH));
    append_pattern(r, body / 2, body / 2);
    plx_relay_finish(r, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(x[i].thread, NULL);
        if (!x[i].f.msg)
            fail_msg("fetch %d: %s", i, x[i].f.why);
        assert_int_equal(x[i].f.msg->nbufs, 1);
        const plx_buf_t *b = x[i].f.msg->bufs[0];
        assert_int_equal(b->len, body);
        for (size_t k = 0; k < body; k += 4093)
            assert_int_equal(b->data[k], pattern(k));
        Plexa__Envelope *env = plx_envelope_unpack(x[i].f.msg, NULL);
        assert_int_equal(env->engine_reply->engine_id, 7);
        plx_envelope_free(&env);
        plx_msg_destroy(&x[i].f.msg);
        assert_int_equal(plx_relay_size(tee[i]), head + body);
    }
    assert_true(plx_relay_held(r) <= PLX_RELAY_BLOCK);   /* both took it all */
    server_stop(&s);
    plx_relay_unref(&r);
    plx_relay_unref(&tee[0]);
    plx_relay_unref(&tee[1]);
}

/* The frame stops arriving halfway: the peer's fetch fails (it has only
 * part of a frame), and so does the relay it passed it on to. A ticket
 * the controller ended drops its reader. */
static void test_upstream_fails(void **state)
{
    plx_relay_t *r = plx_relay_new(2), *tee = plx_relay_new(1);
    server_t *s = server_start(r);
    char *ended[] = { TICKET_B };
    plx_serve_end(s->serve, ended, 1);
    fetcher_t x;
    fetch_start(&x, s, TICKET_A, tee);
    size_t head = append_head(r, 3 * PLX_RELAY_BLOCK);
    append_pattern(r, 0, 2 * PLX_RELAY_BLOCK);
    assert_true(grows_to(tee, head + 2 * PLX_RELAY_BLOCK - PLX_SERVE_RELAY_BATCH));
    /* The frame spans three blocks; the ended ticket's reader would hold
     * the first, which the other reader has taken. */
    assert_true(plx_relay_held(r) <= 2 * PLX_RELAY_BLOCK);
    plx_relay_finish(r, 0);
    pthread_join(x.thread, NULL);
    assert_null(x.f.msg);
    assert_true(x.f.code < 0);
    plx_buf_t *b = NULL;
    size_t off, len;
    assert_int_equal(plx_relay_next(tee, 0, 1, &b, &off, &len), PLX_EIO);
    server_stop(&s);
    plx_relay_unref(&r);
    plx_relay_unref(&tee);
}

static int setup(void **state)
{
    plx_err_t err = {0};
    if (!plx_transport_find("tcp", &err)) {
        print_error("%s\n", err.msg);
        return -1;
    }
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_readers_take_everything),
    cmocka_unit_test(test_blocks_go_once_taken),
    cmocka_unit_test(test_wakes_and_failure),
    cmocka_unit_test(test_producer_thread),
    cmocka_unit_test(test_served_as_it_arrives),
    cmocka_unit_test(test_upstream_fails),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("relay", tests, setup, NULL))
