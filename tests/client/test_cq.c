/*
 * Completion queues (plx_client_int.h: plx_cq_*) over real requests of a
 * client connected to the scripted controller (fake_controller.c): tokens
 * come out as replies arrive on the I/O thread, in completion order; a
 * waiter wakes for a post, a close, or its timeout; a queue outlives its
 * owner while watched requests are pending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "client_session.h"
#include "fake_controller.h"
#include "plx_time.h"
#include "plexa/client.h"
#include "plx_client_int.h"


/* Replies arrive on the I/O thread and come out as their tokens. */
static void test_tokens_as_replies_arrive(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_cq_t *cq = plx_cq_new(&err);
    assert_non_null(cq);
    plx_request_t *a = NULL, *b = NULL;
    assert_int_equal(plx_rq_execute(fx->c, NULL, "x = 1", &a, &err), PLX_OK);
    assert_int_equal(plx_rq_get_ids(fx->c, &b, &err), PLX_OK);
    assert_int_equal(plx_cq_watch(cq, a, 11, &err), PLX_OK);
    assert_int_equal(plx_cq_watch(cq, b, 22, &err), PLX_OK);
    uint64_t got[4] = {0};
    size_t n = 0, total = 0;
    double t0 = plx_now_s();
    while (total < 2 && plx_now_s() - t0 < 5) {
        assert_int_equal(plx_cq_wait(cq, 5.0, got + total, 4 - total, &n), PLX_OK);
        total += n;
    }
    assert_int_equal(total, 2);
    assert_true((got[0] == 11 && got[1] == 22) || (got[0] == 22 && got[1] == 11));
    assert_true(plx_request_done(a) && plx_request_done(b));
    /* Nothing more: a timed wait returns empty, a zero wait at once. */
    t0 = plx_now_s();
    assert_int_equal(plx_cq_wait(cq, 0.05, got, 4, &n), PLX_OK);
    assert_int_equal(n, 0);
    assert_true(plx_now_s() - t0 >= 0.04);
    assert_int_equal(plx_cq_wait(cq, 0, got, 4, &n), PLX_OK);
    assert_int_equal(n, 0);
    /* A request already complete is queued at once. */
    assert_int_equal(plx_cq_watch(cq, a, 33, &err), PLX_OK);
    assert_int_equal(plx_cq_wait(cq, 0, got, 4, &n), PLX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], 33);
    plx_request_destroy(&a);
    plx_request_destroy(&b);
    plx_cq_destroy(&cq);
    assert_null(cq);
}

/* Cancelling, and losing the client, complete watched requests too; max
 * bounds what one wait takes, the rest stays queued in order. */
static void test_cancel_close_and_order(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_cq_t *cq = plx_cq_new(&err);
    plx_request_t *r[3] = {NULL};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(plx_rq_execute(fx->c, NULL, "hang", &r[i], &err), PLX_OK);
        assert_int_equal(plx_cq_watch(cq, r[i], (uint64_t)i, &err), PLX_OK);
    }
    uint64_t got[3];
    size_t n = 0;
    assert_int_equal(plx_cq_wait(cq, 0.05, got, 3, &n), PLX_OK);
    assert_int_equal(n, 0);   /* "hang" is never answered */
    plx_request_cancel(r[2]);
    plx_request_cancel(r[0]);
    assert_int_equal(plx_cq_wait(cq, 1.0, got, 1, &n), PLX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], 2);
    assert_int_equal(plx_cq_wait(cq, 1.0, got, 3, &n), PLX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], 0);
    plx_client_destroy(&fx->c);   /* fails r[1] with PLX_ECLOSED */
    assert_int_equal(plx_cq_wait(cq, 1.0, got, 3, &n), PLX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], 1);
    assert_int_equal(plx_request_wait(r[1], 0, &err), PLX_ECLOSED);
    for (int i = 0; i < 3; i++)
        plx_request_destroy(&r[i]);
    plx_cq_destroy(&cq);
}

typedef struct waiter_arg {
    plx_cq_t *cq;
    int       rc;
    size_t    n;
    uint64_t  token;
    double    waited;
} waiter_arg_t;

static void *waiter_main(void *p)
{
    waiter_arg_t *w = p;
    double t0 = plx_now_s();
    w->rc = plx_cq_wait(w->cq, -1, &w->token, 1, &w->n);
    w->waited = plx_now_s() - t0;
    return NULL;
}

/* A waiter with no limit wakes for a post, then for a close. */
static void test_post_and_close_wake_a_waiter(void **state)
{
    (void)state;
    plx_err_t err = {0};
    plx_cq_t *cq = plx_cq_new(&err);
    waiter_arg_t w = { .cq = cq };
    pthread_t th;
    pthread_create(&th, NULL, waiter_main, &w);
    struct timespec pause = { 0, 50 * 1000000L };
    nanosleep(&pause, NULL);
    assert_int_equal(plx_cq_post(cq, 7, &err), PLX_OK);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, PLX_OK);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.token, 7);
    assert_true(w.waited >= 0.04);

    pthread_create(&th, NULL, waiter_main, &w);
    nanosleep(&pause, NULL);
    plx_cq_close(cq);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, PLX_ECLOSED);
    assert_int_equal(w.n, 0);
    assert_int_equal(plx_cq_post(cq, 8, &err), PLX_ECLOSED);
    size_t n = 0;
    assert_int_equal(plx_cq_wait(cq, -1, &w.token, 1, &n), PLX_ECLOSED);
    plx_cq_destroy(&cq);
    plx_cq_destroy(&cq);   /* NULL-safe */
}

/* The owner may let go while watched requests are pending: their later
 * completion finds the queue still allocated (ASan/valgrind would see
 * otherwise), and is dropped. */
static void test_queue_outlives_its_owner(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_cq_t *cq = plx_cq_new(&err);
    plx_request_t *hung = NULL, *answered = NULL;
    assert_int_equal(plx_rq_execute(fx->c, NULL, "hang", &hung, &err), PLX_OK);
    assert_int_equal(plx_rq_get_ids(fx->c, &answered, &err), PLX_OK);
    assert_int_equal(plx_cq_watch(cq, hung, 1, &err), PLX_OK);
    assert_int_equal(plx_cq_watch(cq, answered, 2, &err), PLX_OK);
    plx_cq_t *owner = cq;
    plx_cq_destroy(&owner);
    assert_int_equal(plx_request_wait(answered, 5.0, &err), PLX_OK);
    plx_request_cancel(hung);
    assert_int_equal(plx_request_wait(hung, 0, &err), PLX_EABORTED);
    plx_request_destroy(&hung);
    plx_request_destroy(&answered);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_tokens_as_replies_arrive, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_cancel_close_and_order, setup_connected,
                                    teardown_connected),
    cmocka_unit_test(test_post_and_close_wake_a_waiter),
    cmocka_unit_test_setup_teardown(test_queue_outlives_its_owner, setup_connected,
                                    teardown_connected),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("cq", tests, NULL, NULL))
