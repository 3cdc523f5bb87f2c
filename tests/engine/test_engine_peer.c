/*
 * Direct transfers (core/engine/plx_engine_peer.c) with a real ipengine
 * against the fake controller (engine_harness.c): a Pull with tickets is
 * answered with where the engine serves the values; each ticket gets them
 * once, over a connection of its own; a wrong, used or ended ticket gets
 * nothing; a push whose refs carry such a URL makes the engine fetch the
 * values itself (here from itself), and a URL nobody serves fails that
 * push with a DirectTransferError that says what to do. A relay Pull (a
 * broadcast tree) is answered before its push, which the engine passes
 * on to the peer while it still arrives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plx_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "engine_harness.h"
#include "plexa/version.h"
#include "plx_envelope.h"

#define T1 "1111111111111111111111111111111111111111111111111111111111111111"
#define T2 "2222222222222222222222222222222222222222222222222222222222222222"
#define T3 "3333333333333333333333333333333333333333333333333333333333333333"
#define T4 "4444444444444444444444444444444444444444444444444444444444444444"

/* A Pull of keys with tickets: the reply (caller frees). */
static Plexa__Envelope *serve(fake_t *f, const char **keys, size_t n, const char **tickets,
                              size_t nt)
{
    Plexa__Pull p = PLEXA__PULL__INIT;
    p.n_keys = n;
    p.keys = (char **)keys;
    p.n_tickets = nt;
    p.tickets = (char **)tickets;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PULL;
    env.pull = &p;
    Plexa__Envelope *r = fake_call(f, &env, NULL, 0, T_REPLY, NULL);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    return r;
}

static void serve_end(fake_t *f, const char *ticket)
{
    Plexa__ServeEnd se = PLEXA__SERVE_END__INIT;
    se.n_tickets = 1;
    se.tickets = (char **)&ticket;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_SERVE_END;
    env.serve_end = &se;
    fake_send(f, &env, NULL, 0);
}

/* "plx+tcp://127.0.0.1:PORT/000..." -> PORT */
static uint16_t url_port(const char *url)
{
    const char *p = strstr(url, "127.0.0.1:");
    assert_non_null(p);
    return (uint16_t)atoi(p + strlen("127.0.0.1:"));
}

/* Connect to port as a peer presenting ticket; what the engine sends back
 * (NULL: it closed without an answer). */
/* A peer connected to port that said Hello with ticket (assert: it
 * connects; peer->dec is the caller's to set). */
static void peer_hello(fake_t *peer, uint16_t port, const char *ticket)
{
    memset(peer, 0, sizeof *peer);
    peer->next_id = 1;
    peer->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(connect(peer->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    Plexa__Hello h = PLEXA__HELLO__INIT;
    h.has_role = 1;
    h.role = PLEXA__ROLE__ROLE_PEER;
    h.token = (char *)ticket;
    h.has_version = 1;
    h.version = PLX_PROTOCOL_VERSION;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    fake_send(peer, &env, NULL, 0);
}

static Plexa__Envelope *fetch_as_peer(uint16_t port, const char *ticket, plx_msg_t **msg)
{
    fake_t peer;
    peer_hello(&peer, port, ticket);
    peer.dec = plx_decoder_new(NULL);
    Plexa__Envelope *r = fake_recv(&peer, T_REPLY, msg);
    close(peer.fd);
    plx_decoder_destroy(&peer.dec);
    return r;
}

/* A push of name = the value at index of what url serves (native: as a
 * broadcast's, no pickle accepted): the reply (caller frees). */
static Plexa__Envelope *push_direct(fake_t *f, const char *name, int32_t engine, const char *key,
                                    const char *url, uint32_t index, int native)
{
    Plexa__Ref ref = PLEXA__REF__INIT;
    ref.has_engine = 1;
    ref.engine = engine;
    ref.key = (char *)key;
    ref.url = (char *)url;
    ref.has_index = 1;
    ref.index = index;
    ref.has_native = native;
    ref.native = native;
    Plexa__Value v = PLEXA__VALUE__INIT;
    v.kind_case = PLEXA__VALUE__KIND_REF;
    v.ref = &ref;
    Plexa__NamedValue nv = PLEXA__NAMED_VALUE__INIT, *nvp = &nv;
    nv.name = (char *)name;
    nv.value = &v;
    Plexa__Push p = PLEXA__PUSH__INIT;
    p.n_values = 1;
    p.values = &nvp;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
    env.push = &p;
    Plexa__Envelope *r = fake_call(f, &env, NULL, 0, T_REPLY, NULL);
    assert_non_null(r);
    return r;
}

static void test_served_once_per_ticket(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "x = b'hello' * 1000; y = 42", "", 1);
    const char *keys[] = { "x", "y" }, *tickets[] = { T1, T2 };
    Plexa__Envelope *r = serve(f, keys, 2, tickets, 2);
    assert_int_equal(r->engine_reply->n_values, 0);   /* the values are served, not sent */
    assert_non_null(r->engine_reply->serve_url);
    assert_non_null(strstr(r->engine_reply->serve_url,
                           "plx+tcp://127.0.0.1:"));
    assert_non_null(strstr(r->engine_reply->serve_url, "/00000000000000000000000000000000"));
    uint16_t port = url_port(r->engine_reply->serve_url);
    plx_envelope_free(&r);

    plx_msg_t *m = NULL;
    Plexa__Envelope *got = fetch_as_peer(port, T1, &m);
    assert_non_null(got);
    assert_int_equal(got->body_case, PLEXA__ENVELOPE__BODY_ENGINE_REPLY);
    assert_int_equal(got->engine_reply->n_values, 2);
    const Plexa__Value *vx = got->engine_reply->values[0];
    assert_int_equal(vx->kind_case, PLEXA__VALUE__KIND_BYTES);
    assert_int_equal(m->bufs[vx->bytes]->len, 5000);
    assert_memory_equal(m->bufs[vx->bytes]->data, "hellohello", 10);
    assert_int_equal(got->engine_reply->values[1]->i64, 42);
    plx_envelope_free(&got);
    plx_msg_destroy(&m);

    assert_null(fetch_as_peer(port, T1, NULL));   /* used */
    assert_null(fetch_as_peer(port, T3, NULL));   /* never issued */

    /* The second ticket in a push's ref: the engine fetches it itself. */
    char url[256];
    snprintf(url, sizeof url, "plx+tcp://127.0.0.1:%u/%s", (unsigned)port, T2);
    r = push_direct(f, "z", 0, "y", url, 1, 0);
    assert_null(r->engine_reply->error);
    plx_envelope_free(&r);
    fake_exec_ok(f, "print(z + 1)", "43\n", 2);

    /* Pushed again: T2 is used up, so this fails, and says what to do. */
    r = push_direct(f, "z", 0, "y", url, 1, 0);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "DirectTransferError");
    assert_non_null(strstr(r->engine_reply->error->evalue, "direct_transfers = false"));
    plx_envelope_free(&r);

}

static void test_ended_tickets(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "x = 1", "", 1);
    const char *keys[] = { "x" }, *t3[] = { T3 }, *t4[] = { T4 };
    Plexa__Envelope *r = serve(f, keys, 1, t3, 1);
    uint16_t port = url_port(r->engine_reply->serve_url);
    plx_envelope_free(&r);
    serve_end(f, T3);
    fake_exec_ok(f, "pass", "", 2);   /* the ServeEnd has been handled */
    assert_null(fetch_as_peer(port, T3, NULL));
    /* Ended before its Pull was served (a cancelled push): never offered. */
    serve_end(f, T4);
    r = serve(f, keys, 1, t4, 1);
    assert_non_null(r->engine_reply->serve_url);
    plx_envelope_free(&r);
    assert_null(fetch_as_peer(port, T4, NULL));

}

static void test_nothing_served_there(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    close(s);   /* a port nobody listens on */
    char url[256];
    snprintf(url, sizeof url, "plx+tcp://127.0.0.1:%u/%s", (unsigned)ntohs(sa.sin_port), T1);
    Plexa__Envelope *r = push_direct(f, "b", 3, "a", url, 0, 0);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "DirectTransferError");
    assert_non_null(strstr(r->engine_reply->error->evalue, "fetching 'a' from engine 3"));
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('b' in globals())", "False\n", 1);

}

/* A broadcast's ref takes data only: a pickle served for it (what a rogue
 * serving engine would send to run code on its children) is refused. The
 * same value by a plexa.ref is a pickle like any other. */
static void test_broadcast_takes_no_pickle(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "d = {'k': 1}", "", 1);
    const char *keys[] = { "d" }, *tickets[] = { T1, T2 };
    Plexa__Envelope *r = serve(f, keys, 1, tickets, 2);
    uint16_t port = url_port(r->engine_reply->serve_url);
    plx_envelope_free(&r);
    char url[256];
    snprintf(url, sizeof url, "plx+tcp://127.0.0.1:%u/%s", (unsigned)port, T1);
    r = push_direct(f, "e", 0, "d", url, 0, 1);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "DirectTransferError");
    assert_non_null(strstr(r->engine_reply->error->evalue,
                           "engine 0 served 'd' of a broadcast as a pickle: refused"));
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('e' in globals())", "False\n", 2);
    snprintf(url, sizeof url, "plx+tcp://127.0.0.1:%u/%s", (unsigned)port, T2);
    r = push_direct(f, "e", 0, "d", url, 0, 0);
    assert_null(r->engine_reply->error);
    plx_envelope_free(&r);
    fake_exec_ok(f, "print(e)", "{'k': 1}\n", 3);
}

/* The listener's bounds before Hello: 64 connections that say nothing
 * fill it (a 65th, ticket in hand, is turned away), and each is dropped
 * after 10 s without a Hello, after which the ticket works. */
static void test_silent_peers_are_bounded(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "x = 7", "", 1);
    const char *keys[] = { "x" }, *tickets[] = { T1 };
    Plexa__Envelope *r = serve(f, keys, 1, tickets, 1);
    uint16_t port = url_port(r->engine_reply->serve_url);
    plx_envelope_free(&r);
    int silent[64];
    for (int i = 0; i < 64; i++) {
        silent[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        assert_int_equal(connect(silent[i], (struct sockaddr *)&sa, sizeof sa), 0);
    }
    fake_exec_ok(f, "pass", "", 2);          /* the I/O thread has taken them all */
    assert_null(fetch_as_peer(port, T1, NULL));   /* full: turned away, ticket kept */
    char one;
    /* Each silent one is closed by the engine at its Hello deadline. */
    for (int i = 0; i < 64; i++) {
        struct timeval tv = { .tv_sec = 20 };
        setsockopt(silent[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        assert_int_equal(recv(silent[i], &one, 1, 0), 0);
        close(silent[i]);
    }
    plx_msg_t *m = NULL;
    Plexa__Envelope *got = fetch_as_peer(port, T1, &m);
    assert_non_null(got);
    assert_int_equal(got->engine_reply->values[0]->i64, 7);
    plx_envelope_free(&got);
    plx_msg_destroy(&m);
}

/* ---- relaying (a broadcast tree's inner engine) ------------------------------ */

#define RELAY_BODY ((size_t)8 << 20)

/* A peer that reads what the engine serves it, raw, counting as it goes. */
typedef struct rpeer {
    uint16_t       port;
    pthread_t      thread;
    atomic_size_t  got;
    uint8_t       *bytes;
    size_t         cap;
    int            ahead;   /* it had bytes while the push was half sent */
} rpeer_t;

static void *rpeer_main(void *arg)
{
    rpeer_t *p = arg;
    fake_t peer;
    peer_hello(&peer, p->port, T1);
    size_t n = 0;
    ssize_t k;
    p->cap = RELAY_BODY + 4096;
    p->bytes = malloc(p->cap);
    while (n < p->cap && (k = recv(peer.fd, p->bytes + n, p->cap - n, 0)) > 0)
        atomic_store(&p->got, n += (size_t)k);
    close(peer.fd);
    return NULL;
}

static void half_sent(void *ud)
{
    rpeer_t *p = ud;
    for (int i = 0; i < 2000 && atomic_load(&p->got) < (1u << 20); i++)
        usleep(10000);
    p->ahead = atomic_load(&p->got) >= (1u << 20);
}

/* A relay Pull is answered at once, before its push, with where the engine
 * serves; the push that follows is passed on to the peer while it still
 * arrives (the peer holds a MiB of it when half is sent), as an
 * EngineReply of the push's values; and the engine runs the push. */
static void test_relays_a_push_as_it_arrives(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    const char *keys[] = { "big" }, *tickets[] = { T1 };
    Plexa__Pull pl = PLEXA__PULL__INIT;
    pl.n_keys = 1;
    pl.keys = (char **)keys;
    pl.n_tickets = 1;
    pl.tickets = (char **)tickets;
    pl.has_relay = pl.relay = 1;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PULL;
    env.pull = &pl;
    Plexa__Envelope *r = fake_call(f, &env, NULL, 0, T_REPLY, NULL);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    assert_non_null(r->engine_reply->serve_url);
    rpeer_t peer = { .port = url_port(r->engine_reply->serve_url) };
    plx_envelope_free(&r);
    assert_int_equal(pthread_create(&peer.thread, NULL, rpeer_main, &peer), 0);

    plx_buf_t *b = plx_buf_new(RELAY_BODY);
    for (size_t i = 0; i < RELAY_BODY; i++)
        b->data[i] = (uint8_t)(i * 7 + (i >> 12));
    Plexa__Value v = PLEXA__VALUE__INIT;
    v.kind_case = PLEXA__VALUE__KIND_BYTES;
    v.bytes = 0;
    Plexa__NamedValue nv = PLEXA__NAMED_VALUE__INIT, *nvp = &nv;
    nv.name = "big";
    nv.value = &v;
    Plexa__Push push = PLEXA__PUSH__INIT;
    push.n_values = 1;
    push.values = &nvp;
    Plexa__Envelope penv = PLEXA__ENVELOPE__INIT;
    penv.body_case = PLEXA__ENVELOPE__BODY_PUSH;
    penv.push = &push;
    fake_send_halves(f, &penv, &b, 1, half_sent, &peer);
    r = fake_recv(f, T_REPLY, NULL);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    plx_envelope_free(&r);
    pthread_join(peer.thread, NULL);
    assert_true(peer.ahead);

    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_msg_t *m = NULL;
    plx_err_t err = {0};
    size_t used = 0, n = atomic_load(&peer.got);
    assert_int_equal(plx_decoder_feed(d, peer.bytes, n, &used, &m, &err), 1);
    assert_int_equal(used, n);
    Plexa__Envelope *got = plx_envelope_unpack(m, NULL);
    assert_int_equal(got->body_case, PLEXA__ENVELOPE__BODY_ENGINE_REPLY);
    assert_int_equal(got->engine_reply->n_values, 1);
    assert_int_equal(got->engine_reply->values[0]->kind_case, PLEXA__VALUE__KIND_BYTES);
    assert_int_equal(m->bufs[0]->len, RELAY_BODY);
    assert_memory_equal(m->bufs[0]->data, b->data, RELAY_BODY);
    plx_envelope_free(&got);
    plx_msg_destroy(&m);
    plx_decoder_destroy(&d);
    free(peer.bytes);
    plx_buf_unref(&b);
    fake_exec_ok(f, "print(len(big))", "8388608\n", 1);
}

static const struct CMUnitTest tests[] = {
    FAKE_TEST(test_silent_peers_are_bounded),
    FAKE_TEST(test_broadcast_takes_no_pickle),
    FAKE_TEST(test_served_once_per_ticket),
    FAKE_TEST(test_ended_tickets),
    FAKE_TEST(test_nothing_served_there),
    FAKE_TEST(test_relays_a_push_as_it_arrives),
};

PLX_TEST_SUITE(engine_test_init, NULL, PLX_TEST_GROUP("engine_peer", tests, NULL, NULL))
