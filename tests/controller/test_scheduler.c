/*
 * The task scheduler's client side and its 0.10 behaviours (retries,
 * depend, abort, after, retention, streaming ids), driven in-process with
 * fake engines and clients over real TCP (sched_harness.c). Work stealing
 * and adaptive prefetch are test_steal.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "plx_test.h"

#include "sched_harness.h"
#include "plx_envelope.h"

/* Every test runs under each policy: 0.10's behaviours do not depend on
 * how tasks are placed. */
static int setup_policy(int policy)
{
    plx_controller_opts_t o = plx_controller_opts_default();
    o.heartbeat_period = 0.2;
    o.depend_timeout = 0.5;
    o.results_max = 50;
    o.task_inflight = 2;   /* test_abort counts on no more than two sent */
    o.scheduler = policy;
    harness_setup(o);
    return 0;
}

static int setup_adaptive(void **state) { return setup_policy(PLX_SCHED_ADAPTIVE); }
static int setup_fifo(void **state) { return setup_policy(PLX_SCHED_FIFO); }
static int setup_leastload(void **state) { return setup_policy(PLX_SCHED_LEASTLOAD); }

static int teardown(void **state)
{
    harness_teardown();
    return 0;
}

/* 40 tasks over two engines: every one succeeds, echoes its argument, and
 * both engines take part (load balancing). */
static void test_balanced_echo(void **state)
{
    fake_t *e1 = fake_new(1, B_ECHO), *e2 = fake_new(1, B_ECHO), *cl = fake_new(3, B_ECHO);
    uint64_t first = submit(cl, 40, 0, 0, NULL, 0);
    Plexa__TaskResults *rs = wait_ids(cl, first, 40, 1);
    for (size_t i = 0; i < 40; i++) {
        assert_int_equal(rs->results[i]->status, PLEXA__TASK_STATUS__TASK_OK);
        assert_int_equal(rs->results[i]->task_id, first + i);
        assert_int_equal(rs->results[i]->n_values, 1);
        assert_int_equal(rs->results[i]->values[0]->i64, (int64_t)i);
    }
    assert_true(e1->ran > 0 && e2->ran > 0);
    assert_int_equal(e1->ran + e2->ran, 40);
    fake_destroy(&e1);
    fake_destroy(&e2);
    fake_destroy(&cl);
}

static int task_seen(void *arg) { return ((fake_t *)arg)->ran > 0; }

/* An engine dies while it holds a task with retries=1: the task completes
 * on the other engine. Without retries it fails with EngineError. */
static void test_engine_death_retries(void **state)
{
    fake_t *dying = fake_new(1, B_DIE), *cl = fake_new(3, B_ECHO);
    uint64_t id = submit(cl, 1, 1, 0, NULL, 0);
    assert_true(run_until(is_closed, dying));
    fake_t *good = fake_new(1, B_ECHO);
    Plexa__TaskResults *rs = wait_ids(cl, id, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_OK);
    assert_int_equal(good->ran, 1);

    fake_t *dying2 = fake_new(1, B_DIE);
    fake_destroy(&good);   /* only the dying engine is left */
    id = submit(cl, 1, 0, 0, NULL, 0);
    rs = wait_ids(cl, id, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_ENGINE_DIED);
    assert_string_equal(rs->results[0]->error->ename, "EngineError");
    fake_destroy(&dying);
    fake_destroy(&dying2);
    fake_destroy(&cl);
}

/* A failing task is retried, then reported as failed with the engine's error. */
static void test_failure_and_retries(void **state)
{
    fake_t *e = fake_new(1, B_FAIL), *cl = fake_new(3, B_ECHO);
    uint64_t id = submit(cl, 1, 2, 0, NULL, 0);
    Plexa__TaskResults *rs = wait_ids(cl, id, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_FAILED);
    assert_string_equal(rs->results[0]->error->ename, "ValueError");
    assert_int_equal(e->ran, 3);   /* first run + 2 retries */
    fake_destroy(&e);
    fake_destroy(&cl);
}

/* depend(): rejected by the only engine, the task times out with 0.10's
 * message; a newcomer that accepts would have run it. */
static void test_depend_rejection_times_out(void **state)
{
    fake_t *e = fake_new(1, B_REJECT), *cl = fake_new(3, B_ECHO);
    uint64_t id = submit(cl, 1, 0, 1, NULL, 0);
    Plexa__TaskResults *rs = wait_ids(cl, id, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_TIMEOUT);
    assert_non_null(strstr(rs->results[0]->error->evalue, "unmet dependencies"));
    fake_destroy(&e);
    fake_destroy(&cl);
}

/* Abort: a queued task ends TaskAborted at once; a running one is
 * interrupted in its engine and ends aborted too. */
static void test_abort(void **state)
{
    fake_t *e = fake_new(1, B_HANG), *cl = fake_new(3, B_ECHO);
    uint64_t first = submit(cl, 4, 0, 0, NULL, 0);   /* 2 run (inflight), 2 queued */
    assert_true(run_until(task_seen, e));
    uint64_t ids[2] = {first, first + 3};
    Plexa__TaskAbort ta = PLEXA__TASK_ABORT__INIT;
    ta.n_ids = 2;
    ta.ids = ids;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_ABORT;
    env.task_abort = &ta;
    Plexa__Envelope *r = request(cl, &env, NULL);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_IDS);
    Plexa__TaskResults *rs = wait_ids(cl, first + 3, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_ABORTED);
    rs = wait_ids(cl, first, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_ABORTED);
    assert_int_equal(e->interrupted, 1);
    /* aborting a finished task is an error that names it */
    r = request(cl, &env, NULL);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(r->error->message, "already completed"));
    fake_destroy(&e);
    fake_destroy(&cl);
}

/* Abort with queued_only (a future's cancel()): all or nothing, and only
 * tasks no engine has been sent (here one waiting for its `after` task,
 * under every policy); the engine is never interrupted. */
static void test_abort_queued_only(void **state)
{
    fake_t *e = fake_new(1, B_HANG), *cl = fake_new(3, B_ECHO);
    uint64_t first = submit(cl, 1, 0, 0, NULL, 0);
    assert_true(run_until(task_seen, e));
    uint64_t waiting = submit(cl, 1, 0, 0, &first, 1);
    uint64_t ids[2] = {waiting, first};
    Plexa__TaskAbort ta = PLEXA__TASK_ABORT__INIT;
    ta.n_ids = 2;
    ta.ids = ids;
    ta.has_queued_only = ta.queued_only = 1;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_ABORT;
    env.task_abort = &ta;
    Plexa__Envelope *r = request(cl, &env, NULL);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(r->error->message, "already started"));
    /* nothing was aborted: the waiting one is still pending */
    Plexa__TaskResults *rs = wait_ids(cl, waiting, 1, 0);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_PENDING);
    ta.n_ids = 1;
    r = request(cl, &env, NULL);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_IDS);
    rs = wait_ids(cl, waiting, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_ABORTED);
    rs = wait_ids(cl, first, 1, 0);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_PENDING);
    assert_int_equal(e->interrupted, 0);
    r = abort_ids(cl, &first, 1);   /* the running one: only a plain abort stops it */
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_IDS);
    rs = wait_ids(cl, first, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_ABORTED);
    assert_int_equal(e->interrupted, 1);
    fake_destroy(&e);
    fake_destroy(&cl);
}

/* `after`: a task waits for the ones it names. Unknown ids are refused. */
static void test_after_dependencies(void **state)
{
    fake_t *e = fake_new(1, B_ECHO), *cl = fake_new(3, B_ECHO);
    uint64_t a = submit(cl, 3, 0, 0, NULL, 0);
    uint64_t after[3] = {a, a + 1, a + 2};
    uint64_t b = submit(cl, 1, 0, 0, after, 3);
    Plexa__TaskResults *rs = wait_ids(cl, b, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_OK);
    assert_true(rs->results[0]->started >= 0);
    uint64_t bogus[1] = {b + 1000};
    uint64_t c = submit(cl, 1, 0, 0, bogus, 1);
    rs = wait_ids(cl, c, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_FAILED);
    fake_destroy(&e);
    fake_destroy(&cl);
}

/* Retention: past results_max (50) the oldest delivered results go first;
 * asking for one gives TASK_EVICTED, an unknown id TASK_UNKNOWN, and
 * pending ones answer at once when not blocking. */
static void test_retention_and_unknown(void **state)
{
    fake_t *e = fake_new(1, B_ECHO), *cl = fake_new(3, B_ECHO);
    uint64_t first = submit(cl, 120, 0, 0, NULL, 0);
    Plexa__TaskResults *rs = wait_ids(cl, first, 120, 1);   /* all delivered */
    assert_int_equal(rs->results[119]->status, PLEXA__TASK_STATUS__TASK_OK);
    uint64_t more = submit(cl, 10, 0, 0, NULL, 0);
    wait_ids(cl, more, 10, 1);
    rs = wait_ids(cl, first, 1, 0);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_EVICTED);
    assert_string_equal(rs->results[0]->error->ename, "ResultEvicted");
    rs = wait_ids(cl, more + 1000000, 1, 0);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_UNKNOWN);
    /* an empty TaskWait (fuzz_dispatch found a memcpy from NULL there) */
    rs = wait_ids(cl, 1, 0, 1);
    assert_int_equal(rs->n_results, 0);
    fake_destroy(&e);
    fake_destroy(&cl);
}

/* Reserve n task ids for cl; returns the first. */
static uint64_t reserve(fake_t *cl, uint32_t n)
{
    Plexa__TaskReserve tr = PLEXA__TASK_RESERVE__INIT;
    tr.has_count = 1;
    tr.count = n;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_RESERVE;
    env.task_reserve = &tr;
    Plexa__Envelope *r = request(cl, &env, NULL);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_IDS);
    assert_int_equal(r->task_ids->count, n);
    return r->task_ids->first;
}

/* A quiet TaskSubmit of n one-argument tasks under ids first..; with
 * bad_bufs the specs name a buffer the frame does not carry. */
static void send_quiet(fake_t *cl, uint64_t first, int n, int bad_bufs)
{
    Plexa__TaskSpec specs[8], *ptrs[8];
    Plexa__Value val = PLEXA__VALUE__INIT, *vp = &val;
    val.kind_case = PLEXA__VALUE__KIND_I64;
    val.i64 = 7;
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        plexa__task_spec__init(&specs[i]);
        specs[i].kind = "map";
        specs[i].n_args = 1;
        specs[i].args = &vp;
        specs[i].has_buf_count = bad_bufs;
        specs[i].buf_count = 1;
        ptrs[i] = &specs[i];
    }
    Plexa__TaskSubmit ts = PLEXA__TASK_SUBMIT__INIT;
    ts.n_tasks = (size_t)n;
    ts.tasks = ptrs;
    ts.has_first_id = ts.has_quiet = ts.quiet = 1;
    ts.first_id = first;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_SUBMIT;
    env.task_submit = &ts;
    send_env(cl, &env, NULL);
}

/* Streaming submission: ids from a reserved block, no reply per submit;
 * ids outside the block are refused; a quiet submission that cannot be
 * queued turns into failed tasks that say why. */
static void test_reserved_quiet_submission(void **state)
{
    fake_t *e = fake_new(1, B_ECHO), *cl = fake_new(3, B_ECHO);
    uint64_t first = reserve(cl, 5);
    send_quiet(cl, first, 2, 0);
    send_quiet(cl, first + 2, 1, 0);
    Plexa__TaskResults *rs = wait_ids(cl, first, 3, 1);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(rs->results[i]->status, PLEXA__TASK_STATUS__TASK_OK);
        assert_int_equal(rs->results[i]->values[0]->i64, 7);
    }
    /* an id another submission already took comes back as an Error */
    plx_envelope_free(&cl->reply);
    plx_msg_destroy(&cl->reply_msg);
    send_quiet(cl, first, 1, 0);
    assert_true(run_until(has_reply, cl));
    assert_int_equal(cl->reply->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(cl->reply->error->message, "were not reserved by this connection"));
    /* bad buffers: failed tasks, each with the reason */
    send_quiet(cl, first + 3, 2, 1);
    rs = wait_ids(cl, first + 3, 2, 1);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(rs->results[i]->status, PLEXA__TASK_STATUS__TASK_FAILED);
        assert_non_null(strstr(rs->results[i]->error->evalue, "buffers the frame does not"));
    }
    /* the block is used up; a reservation of 0 is refused */
    Plexa__TaskReserve tr = PLEXA__TASK_RESERVE__INIT;
    tr.has_count = 1;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_RESERVE;
    env.task_reserve = &tr;
    assert_int_equal(request(cl, &env, NULL)->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_true(reserve(cl, 4) >= first + 5);
    fake_destroy(&e);
    fake_destroy(&cl);
}

/* Verbose queue_status lists a task waiting on `after` as pending, and
 * the counts agree with the lists. */
static void test_queue_status_lists_waiting(void **state)
{
    fake_t *e = fake_new(1, B_HANG), *cl = fake_new(3, B_ECHO);
    uint64_t a = submit(cl, 1, 0, 0, NULL, 0);
    assert_true(run_until(task_seen, e));
    uint64_t b = submit(cl, 1, 0, 0, &a, 1);
    Plexa__TaskQueueStatus qs = PLEXA__TASK_QUEUE_STATUS__INIT;
    qs.has_verbose = 1;
    qs.verbose = 1;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS;
    env.task_queue_status = &qs;
    Plexa__Envelope *r = request(cl, &env, NULL);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS_REPLY);
    Plexa__TaskQueueStatusReply *q = r->task_queue_status_reply;
    assert_int_equal(q->pending, 1);
    assert_int_equal(q->n_pending_ids, 1);
    assert_int_equal(q->pending_ids[0], b);
    assert_int_equal(q->n_scheduled_ids, 1);
    assert_int_equal(q->scheduled_ids[0], a);
    fake_destroy(&e);   /* a dies with its engine; b then runs nowhere yet */
    fake_destroy(&cl);
}

/* An engine that comes back asks for its old id with the secret its
 * Welcome gave it, and gets the id back. One that asks for an id somebody
 * holds, or for a dead engine's id without its secret (a rogue engine with
 * the engine token), gets a fresh id. */
static void test_reregistration(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    int32_t old = a->engine_id, dead = c->engine_id;
    char secret[65];
    snprintf(secret, sizeof secret, "%s", a->secret);
    assert_int_equal(strlen(secret), 64);
    assert_string_not_equal(secret, b->secret);
    fake_destroy(&a);
    fake_destroy(&c);
    for (int i = 0; i < 50; i++)
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
    fake_t *back = fake_new_claim(1, B_ECHO, old, secret);
    assert_int_equal(back->engine_id, old);
    fake_t *thief = fake_new_claim(1, B_ECHO, b->engine_id, b->secret);
    assert_true(thief->engine_id != b->engine_id);
    assert_true(thief->engine_id > b->engine_id);
    fake_t *rogue = fake_new_claim(1, B_ECHO, dead, NULL);
    assert_true(rogue->engine_id != dead);
    fake_t *guess = fake_new_claim(1, B_ECHO, dead, secret);   /* another engine's secret */
    assert_true(guess->engine_id != dead);
    fake_destroy(&back);
    fake_destroy(&thief);
    fake_destroy(&rogue);
    fake_destroy(&guess);
    fake_destroy(&b);
}

static const struct CMUnitTest tests[] = {
    /* first: test_abort leaves a hanging task that an engine of a later
     * test may be sent before its own */
    cmocka_unit_test(test_abort_queued_only),
    cmocka_unit_test(test_balanced_echo),
    cmocka_unit_test(test_engine_death_retries),
    cmocka_unit_test(test_failure_and_retries),
    cmocka_unit_test(test_depend_rejection_times_out),
    cmocka_unit_test(test_abort),
    cmocka_unit_test(test_after_dependencies),
    cmocka_unit_test(test_retention_and_unknown),
    cmocka_unit_test(test_reregistration),
    cmocka_unit_test(test_queue_status_lists_waiting),
    cmocka_unit_test(test_reserved_quiet_submission),
};

/* The same tests under each scheduling policy. */
PLX_TEST_SUITE(NULL, NULL,
               PLX_TEST_GROUP("adaptive", tests, setup_adaptive, teardown),
               PLX_TEST_GROUP("fifo", tests, setup_fifo, teardown),
               PLX_TEST_GROUP("leastload", tests, setup_leastload, teardown))
