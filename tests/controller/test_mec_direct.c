/*
 * Direct pulls (core/controller/plx_mec_direct.c), driven in-process: a
 * real controller, fake engines and a fake multi-engine client over real
 * TCP on loopback (sched_harness.c). A client's direct pull makes each
 * engine it can reach serve the values with a ticket of the controller's,
 * and the reply names where, with that ticket; nothing else a client
 * sends makes an engine serve. A push whose values the client serves
 * reaches its engine as refs to the client, or with the values when it
 * cannot be served so. Under the sanitizers, nothing leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_buf.h"
#include "plx_envelope.h"
#include "sched_harness.h"

#define ZEROS "00000000000000000000000000000000"

static int setup(void **state)
{
    plx_controller_opts_t o = plx_controller_opts_default();
    o.heartbeat_period = 0.2;
    fake_hostname = "fakehost";
    harness_setup(o);
    return 0;
}

static int setup_off(void **state)
{
    plx_controller_opts_t o = plx_controller_opts_default();
    o.heartbeat_period = 0.2;
    o.direct_transfers = 0;
    fake_hostname = "fakehost";
    harness_setup(o);
    return 0;
}

static int teardown(void **state)
{
    harness_teardown();
    fake_hostname = "fakehost";
    return 0;
}

/* The engines of targets[0..n) as a request's Targets (ids: room for n). */
static Plexa__Targets targets_of(const fake_t *const *targets, size_t n, int32_t *ids)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = targets[i]->engine_id;
    Plexa__Targets t = PLEXA__TARGETS__INIT;
    t.n_ids = n;
    t.ids = ids;
    return t;
}

/* A pull of key from targets; direct as said; tickets as a client might
 * (wrongly) send them. */
static void pull(fake_t *cl, const fake_t *const *targets, size_t n, const char *key,
                 int direct, char **tickets, size_t ntickets)
{
    int32_t ids[8];
    Plexa__Targets t = targets_of(targets, n, ids);
    char *keys[] = { (char *)key };
    Plexa__Pull p = PLEXA__PULL__INIT;
    p.n_keys = 1;
    p.keys = keys;
    p.has_direct = 1;
    p.direct = direct;
    p.n_tickets = ntickets;
    p.tickets = tickets;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PULL;
    env.pull = &p;
    env.targets = &t;
    plx_envelope_free(&cl->reply);
    plx_msg_destroy(&cl->reply_msg);
    send_env(cl, &env, NULL);
}

static int held_one(void *arg) { return ((fake_t *)arg)->nmheld >= 1; }

static Plexa__MultiReply *wait_multi(fake_t *cl)
{
    assert_true(run_until(has_reply, cl));
    if (cl->reply->body_case == PLEXA__ENVELOPE__BODY_ERROR)
        fail_msg("error reply: %s", cl->reply->error->message);
    assert_int_equal(cl->reply->body_case, PLEXA__ENVELOPE__BODY_MULTI_REPLY);
    return cl->reply->multi_reply;
}

/* Each serving engine is asked with one ticket of its own, and the client
 * gets the URL with that ticket; an engine that answers with the values
 * (small ones) is passed on as it answered. */
static void test_direct_pull(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO);
    a->serve_direct = b->serve_direct = 1;
    mec_fake_set(c, "x", "small", 5);
    pull(cl, (const fake_t *[]){ a, b, c }, 3, "x", 1, NULL, 0);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_int_equal(mr->n_replies, 3);
    assert_int_equal(a->tickets_asked, 1);
    assert_int_equal(b->tickets_asked, 1);
    assert_int_equal(c->tickets_asked, 1);
    assert_int_equal(a->serve_min_seen, 8u << 20);
    assert_int_equal(a->serve_ttl_seen, 60);
    const char *ua = mr->replies[0]->serve_url, *ub = mr->replies[1]->serve_url;
    assert_non_null(ua);
    assert_non_null(ub);
    assert_non_null(strstr(ua, "plx+tcp://127.0.0.1:9/"));
    assert_null(strstr(ua, ZEROS));          /* a ticket, not the engine's zeros */
    assert_string_not_equal(ua, ub);         /* one each */
    assert_null(mr->replies[2]->serve_url);  /* c answered with the value */
    assert_int_equal(mr->replies[2]->n_values, 1);
    run_for(50);
    assert_int_equal(a->tickets_ended, 0);   /* the client's to use */
    DESTROY(&a, &b, &c, &cl);
}

/* An engine that says it serves somewhere it does not connect from is
 * not believed: its part is a DirectTransferError (the client pulls it
 * again) and it drops what it kept. */
static void test_direct_elsewhere_refused(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = 2;
    pull(cl, (const fake_t *[]){ a }, 1, "x", 1, NULL, 0);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_null(mr->replies[0]->serve_url);
    assert_string_equal(mr->replies[0]->error->ename, "DirectTransferError");
    assert_non_null(strstr(mr->replies[0]->error->evalue, "not at the address it connects from"));
    run_for(50);
    assert_int_equal(a->tickets_ended, 1);
    DESTROY(&a, &cl);
}

/* A pull that does not ask, or a client's own tickets, make no engine
 * serve anything. */
static void test_no_direct_unless_asked(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = 1;
    mec_fake_set(a, "x", "value", 5);
    char t[] = "0123456789abcdef0123456789abcdef";
    char *tickets[] = { t };
    pull(cl, (const fake_t *[]){ a }, 1, "x", 0, tickets, 1);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_null(mr->replies[0]->serve_url);
    assert_int_equal(mr->replies[0]->n_values, 1);
    assert_int_equal(a->tickets_asked, 0);
    DESTROY(&a, &cl);
}

/* Engines on the controller's loopback are reachable only from their own
 * host: a client naming another host pulls through the controller. */
static void test_loopback_engines_only_from_their_host(void **state)
{
    fake_t *a = fake_new(1, B_ECHO);
    fake_hostname = "elsewhere";
    fake_t *cl = fake_new(2, B_ECHO);
    a->serve_direct = 1;
    mec_fake_set(a, "x", "value", 5);
    pull(cl, (const fake_t *[]){ a }, 1, "x", 1, NULL, 0);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_null(mr->replies[0]->serve_url);
    assert_int_equal(a->tickets_asked, 0);
    DESTROY(&a, &cl);
}

/* A pull whose client went before its engine answered leaves nothing
 * served there: the engine is told to drop what it serves. */
static void test_client_gone_ends_tickets(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = 1;
    a->mec_hold = 1;
    pull(cl, (const fake_t *[]){ a }, 1, "x", 1, NULL, 0);
    assert_true(run_until(held_one, a));
    fake_destroy(&cl);
    run_for(100);
    mec_fake_release(a);
    run_for(100);
    assert_int_equal(a->tickets_asked, 1);
    assert_int_equal(a->tickets_ended, 1);
    DESTROY(&a);
}

/* [controller] direct_transfers = false: every pull through the controller. */
static void test_profile_off(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = 1;
    mec_fake_set(a, "x", "value", 5);
    pull(cl, (const fake_t *[]){ a }, 1, "x", 1, NULL, 0);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_null(mr->replies[0]->serve_url);
    assert_int_equal(a->tickets_asked, 0);
    DESTROY(&a, &cl);
}

/* ---- pushes the client serves ------------------------------------------- */

#define SERVED "plx+tcp://127.0.0.1:9/0123456789abcdef0123456789abcdef"

/* A push of "a" (and "b") to targets, served by the client at url; only:
 * names alone, else the bytes values too. */
static void push_served(fake_t *cl, const fake_t *const *targets, size_t n, const char *url,
                        int only)
{
    int32_t ids[8];
    Plexa__Targets t = targets_of(targets, n, ids);
    plx_msg_t *bufs = plx_msg_new(0);
    plx_buf_t *b = plx_buf_copy("inline", 6);
    plx_msg_add_buf(bufs, b);
    plx_buf_unref(&b);
    Plexa__Value v[2];
    Plexa__NamedValue nv[2], *nvp[2];
    const char *names[2] = { "a", "b" };
    for (int i = 0; i < 2; i++) {
        plexa__value__init(&v[i]);
        if (only) {
            v[i].kind_case = PLEXA__VALUE__KIND_NONE;
            v[i].none = 1;
        } else {
            v[i].kind_case = PLEXA__VALUE__KIND_BYTES;
            v[i].bytes = 0;
        }
        plexa__named_value__init(&nv[i]);
        nv[i].name = (char *)names[i];
        nv[i].value = &v[i];
        nvp[i] = &nv[i];
    }
    Plexa__Push p = PLEXA__PUSH__INIT;
    p.n_values = 2;
    p.values = nvp;
    p.served_at = (char *)url;
    p.has_served_only = 1;
    p.served_only = only;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
    env.push = &p;
    env.targets = &t;
    plx_envelope_free(&cl->reply);
    plx_msg_destroy(&cl->reply_msg);
    send_env(cl, &env, only ? NULL : bufs);
    plx_msg_destroy(&bufs);
}

static void assert_held(const fake_t *e, const char *name, const char *want)
{
    size_t n = 0;
    const uint8_t *v = mec_fake_get(e, name, &n);
    assert_non_null(v);
    char got[700];
    snprintf(got, sizeof got, "%.*s", (int)n, (const char *)v);
    assert_string_equal(got, want);
}

/* The engine gets refs to where the client serves, one index per value,
 * and nothing of the values through the controller. */
static void test_served_push(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    push_served(cl, (const fake_t *[]){ a }, 1, SERVED, 1);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_null(mr->replies[0]->error);
    assert_held(a, "a", SERVED "|0");
    assert_held(a, "b", SERVED "|1");
    DESTROY(&a, &cl);
}

/* Served somewhere not of the client's host: refused, logged. With the
 * values along they go instead; with names alone the engine's part is a
 * DirectTransferError (the client pushes them again). */
static void test_served_elsewhere(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    const char *far = "plx+tcp://10.9.9.9:9/0123456789abcdef0123456789abcdef";
    push_served(cl, (const fake_t *[]){ a }, 1, far, 0);
    assert_null(wait_multi(cl)->replies[0]->error);
    assert_held(a, "a", "inline");
    push_served(cl, (const fake_t *[]){ a }, 1, far, 1);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_string_equal(mr->replies[0]->error->ename, "DirectTransferError");
    assert_non_null(strstr(mr->replies[0]->error->evalue, "somewhere other than the client's"));
    assert_int_equal(a->mec_seen, 1);   /* the second push never reached it */
    DESTROY(&a, &cl);
}

/* A ticket is good once: a served push to two engines goes with the
 * values, or fails on both. */
static void test_served_to_two(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    push_served(cl, (const fake_t *[]){ a, b }, 2, SERVED, 0);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_null(mr->replies[0]->error);
    assert_null(mr->replies[1]->error);
    assert_held(b, "b", "inline");
    push_served(cl, (const fake_t *[]){ a, b }, 2, SERVED, 1);
    mr = wait_multi(cl);
    assert_int_equal(mr->n_replies, 2);
    assert_string_equal(mr->replies[0]->error->ename, "DirectTransferError");
    assert_string_equal(mr->replies[1]->error->ename, "DirectTransferError");
    DESTROY(&a, &b, &cl);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_direct_pull, setup, teardown),
    cmocka_unit_test_setup_teardown(test_direct_elsewhere_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_no_direct_unless_asked, setup, teardown),
    cmocka_unit_test_setup_teardown(test_loopback_engines_only_from_their_host, setup, teardown),
    cmocka_unit_test_setup_teardown(test_client_gone_ends_tickets, setup, teardown),
    cmocka_unit_test_setup_teardown(test_profile_off, setup_off, teardown),
    cmocka_unit_test_setup_teardown(test_served_push, setup, teardown),
    cmocka_unit_test_setup_teardown(test_served_elsewhere, setup, teardown),
    cmocka_unit_test_setup_teardown(test_served_to_two, setup, teardown),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("mec_direct", tests, NULL, NULL))
