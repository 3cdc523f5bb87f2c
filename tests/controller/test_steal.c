/*
 * The adaptive scheduler against fake engines that hold a queue as
 * ipengine does (sched_harness.c, B_QUEUE): work stealing and its race
 * with a task's start (exactly once), engines dying or frozen while they
 * hold stolen and unstolen tasks, depend and abort with stealing, the
 * prefetch depth following measured durations, chunks cut into pieces and
 * their results joined.
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

#define CAP 16

static int setup(void **state)
{
    plx_controller_opts_t o = plx_controller_opts_default();
    o.heartbeat_period = 0.2;
    o.heartbeat_misses = 1000;   /* a frozen fake engine is never declared dead here */
    o.depend_timeout = 5;
    o.results_max = 100000;
    o.task_inflight = CAP;
    o.scheduler = PLX_SCHED_ADAPTIVE;
    harness_setup(o);
    return 0;
}

static int teardown(void **state)
{
    harness_teardown();
    return 0;
}

static int queued_1(void *arg) { return ((fake_t *)arg)->nqueue >= 1; }
static int queued_2(void *arg) { return ((fake_t *)arg)->nqueue >= 2; }

/* Let the controller hear about the last start/finish. */
static void settle(void) { run_for(5); }

/* Teach the controller what fn_tag costs: one task of it, run on
 * whichever of the engines gets it, reported as taking its duration. */
static void teach_on(fake_t *cl, fake_t **engines, size_t n, int64_t fn_tag)
{
    uint64_t id = submit_fn(cl, 1, fn_tag, 0);
    fake_t *got = NULL;
    for (int i = 0; i < 100000 && !got; i++) {
        for (size_t k = 0; k < n && !got; k++)
            if (engines[k]->nqueue)
                got = engines[k];
        if (!got)
            run_for(0.2);
    }
    assert_non_null(got);
    assert_true(fake_start(got));
    assert_true(fake_finish(got));
    assert_int_equal(wait_ids(cl, id, 1, 1)->results[0]->status, PLEXA__TASK_STATUS__TASK_OK);
}

static void teach(fake_t *cl, fake_t *e, int64_t fn_tag) { teach_on(cl, &e, 1, fn_tag); }

/* Which fake ran task id (NULL: none), asserting that at most one did,
 * once. */
static fake_t *ran_by(uint64_t id, fake_t **engines, size_t n)
{
    fake_t *who = NULL;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < engines[i]->ran; k++)
            if (engines[i]->ran_ids[k] == id) {
                if (who)
                    fail_msg("task %llu ran twice (engines %d and %d)",
                             (unsigned long long)id, who->engine_id, engines[i]->engine_id);
                who = engines[i];
            }
    return who;
}

/* Engine *a runs the first of two tasks of fn_tag and holds the second,
 * sent ahead; it freezes (steals then wait for it to thaw) when frozen;
 * then engine *b connects. Returns the first task's id. */
static uint64_t one_running_one_held(fake_t *cl, int64_t fn_tag, int frozen, fake_t **a,
                                     fake_t **b)
{
    *a = fake_new(1, B_QUEUE);
    uint64_t first = submit_fn(cl, 2, fn_tag, 0);
    assert_true(run_until(queued_1, *a));
    assert_true(fake_start(*a));             /* the first runs ... */
    assert_true(run_until(queued_1, *a));    /* ... and the second is sent ahead */
    (*a)->frozen = frozen;
    *b = fake_new(1, B_QUEUE);
    return first;
}

/* An engine that connects while another holds a task it has not started
 * takes that task back: the controller asks, the holder gives it up. */
static void test_idle_engine_steals(void **state)
{
    fake_t *a, *b, *cl = fake_new(3, B_ECHO);
    uint64_t first = one_running_one_held(cl, 1, 0, &a, &b);
    assert_true(run_until(queued_1, b));    /* stolen for b */
    assert_int_equal(a->nqueue, 0);
    assert_int_equal(a->stolen, 1);
    assert_int_equal(b->queue[0].id, first + 1);
    assert_true(fake_start(b));
    assert_true(fake_finish(a));
    assert_true(fake_finish(b));
    Plexa__TaskResults *rs = wait_ids(cl, first, 2, 1);
    assert_int_equal(rs->results[0]->engine_id, a->engine_id);
    assert_int_equal(rs->results[1]->engine_id, b->engine_id);
    fake_destroy(&a);
    fake_destroy(&b);
    fake_destroy(&cl);
}

/* Thousands of tasks, in rounds, over a slow and a fast engine that start
 * and finish at random moments: at the end of each round the fast one
 * idles and steals from the slow one, whose next start keeps crossing the
 * steal. Every task runs exactly once, on the engine its result names,
 * and some steals found their task started (the race happened and was
 * settled). */
static void test_steal_race_exactly_once(void **state)
{
    enum { ROUNDS = 5000, K = 6 };
    fake_t *a = fake_new(1, B_QUEUE), *b = fake_new(1, B_QUEUE), *cl = fake_new(3, B_ECHO);
    fake_t *engines[2] = {a, b};
    a->duration = b->duration = 0.002;
    teach_on(cl, engines, 2, 7);
    int before = a->ran + b->ran;
    srand(12345);
    uint64_t firsts[ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        firsts[round] = submit_fn(cl, K, 7, 0);
        int done = 0;
        for (int iter = 0; iter < 200000 && done < K; iter++) {
            /* a finishes rarely and starts its next at once; b is quick */
            if (rand() % 100 < 25 && fake_finish(a))
                done++;
            fake_start(a);
            if (rand() % 100 < 60 && fake_finish(b))
                done++;
            fake_start(b);
            ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
            if (iter % 8 == 0)
                usleep(20);
        }
        assert_int_equal(done, K);
    }
    /* who ran each task, and how often (ids are consecutive from firsts[0]) */
    size_t span = (size_t)(firsts[ROUNDS - 1] + K - firsts[0]);
    int *runs = calloc(span, sizeof *runs), *runner = calloc(span, sizeof *runner);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < engines[k]->ran; i++) {
            uint64_t id = engines[k]->ran_ids[i];
            if (id < firsts[0])
                continue;   /* the lesson */
            runs[id - firsts[0]]++;
            runner[id - firsts[0]] = engines[k]->engine_id;
        }
    for (int round = 0; round < ROUNDS; round++) {
        Plexa__TaskResults *rs = wait_ids(cl, firsts[round], K, 1);
        for (size_t i = 0; i < K; i++) {
            size_t at = (size_t)(firsts[round] + i - firsts[0]);
            assert_int_equal(rs->results[i]->status, PLEXA__TASK_STATUS__TASK_OK);
            assert_int_equal(runs[at], 1);
            assert_int_equal(rs->results[i]->engine_id, runner[at]);
        }
    }
    free(runs);
    free(runner);
    assert_int_equal(a->ran + b->ran - before, ROUNDS * K);
    fprintf(stderr, "steals: %d answered, %d tasks asked, %d given back, %d found started\n",
            a->steals + b->steals, a->asked + b->asked, a->stolen + b->stolen,
            a->asked + b->asked - a->stolen - b->stolen);
    assert_true(a->stolen + b->stolen > 0);
    assert_true(a->asked + b->asked > a->stolen + b->stolen);   /* the race was run */
    fake_destroy(&a);
    fake_destroy(&b);
    fake_destroy(&cl);
}

/* Short tasks: an engine is sent many ahead. Long ones: none ahead of the
 * one it runs, whatever is queued. */
static void test_prefetch_follows_durations(void **state)
{
    fake_t *a = fake_new(1, B_QUEUE), *cl = fake_new(3, B_ECHO);
    a->duration = 10e-6;
    teach(cl, a, 11);
    uint64_t first = submit_fn(cl, 40, 11, 0);
    assert_true(run_until(queued_1, a));
    settle();
    fprintf(stderr, "10 us tasks: %zu held\n", a->nqueue);
    assert_true(a->nqueue >= 8);
    while (fake_start(a) || fake_finish(a))
        settle();
    wait_ids(cl, first, 40, 1);

    a->duration = 2.0;
    teach(cl, a, 12);
    first = submit_fn(cl, 10, 12, 0);
    assert_true(run_until(queued_1, a));
    settle();
    assert_int_equal(a->nqueue, 1);     /* an idle engine gets one task */
    assert_true(fake_start(a));
    settle();
    assert_int_equal(a->nqueue, 0);     /* and nothing more while it runs */
    for (int i = 0; i < 10; i++) {
        assert_true(fake_finish(a));
        assert_true(i == 9 || run_until(queued_1, a));
        settle();
        assert_true(a->nqueue <= 1);
        fake_start(a);
    }
    wait_ids(cl, first, 10, 1);
    fake_destroy(&a);
    fake_destroy(&cl);
}

/* A frozen engine (steals wait for it to thaw, as under SIGSTOP) holds a
 * task it has not started: the idle engine gets it once the holder
 * answers, and it runs once. An unresponsive engine gets no new task. */
static void test_frozen_engine(void **state)
{
    fake_t *a, *b, *cl = fake_new(3, B_ECHO);
    uint64_t first = one_running_one_held(cl, 21, 1, &a, &b);
    run_for(100);
    assert_int_equal(b->nqueue, 0);      /* asked for, not yet given */
    assert_int_equal(a->nheld, 1);
    fake_thaw(a);
    assert_true(run_until(queued_1, b));
    assert_true(fake_start(b));
    assert_true(fake_finish(b));
    run_for(600);                         /* a stays silent: 3 heartbeat periods */
    a->frozen = 1;
    run_for(600);
    uint64_t more = submit_fn(cl, 1, 21, 0);
    assert_true(run_until(queued_1, b));  /* b, not the silent a */
    assert_int_equal(a->nqueue, 0);
    a->frozen = 0;
    assert_true(fake_start(b));
    assert_true(fake_finish(b));
    assert_true(fake_finish(a));
    Plexa__TaskResults *rs = wait_ids(cl, first, 2, 1);
    assert_int_equal(rs->results[0]->engine_id, a->engine_id);
    assert_int_equal(rs->results[1]->engine_id, b->engine_id);
    assert_int_equal(wait_ids(cl, more, 1, 1)->results[0]->engine_id, b->engine_id);
    fake_t *engines[2] = {a, b};
    for (uint64_t id = first; id < first + 2; id++)
        assert_non_null(ran_by(id, engines, 2));
    fake_destroy(&a);
    fake_destroy(&b);
    fake_destroy(&cl);
}

/* An engine dies holding a task it runs, tasks it was sent ahead, and
 * tasks another engine asked back from it (no answer yet): the running
 * one fails with EngineError, every other one runs once elsewhere. */
static void test_death_with_stolen_and_unstolen(void **state)
{
    fake_t *a = fake_new(1, B_QUEUE), *cl = fake_new(3, B_ECHO);
    a->duration = 10e-6;
    teach(cl, a, 31);
    uint64_t first = submit_fn(cl, 6, 31, 0);
    assert_true(run_until(queued_2, a));
    assert_true(fake_start(a));
    settle();
    size_t held = a->nqueue;
    assert_true(held >= 2);
    a->frozen = 1;
    fake_t *b = fake_new(1, B_QUEUE);
    run_for(50);
    assert_int_equal(a->nheld, 1);   /* a steal waits for the frozen a */
    uint64_t running = a->running.id;
    fake_destroy(&a);                /* dies */
    int n = 0;
    for (int i = 0; i < 1000 && n < 5; i++) {
        if (fake_start(b) && fake_finish(b))
            n++;
        run_for(2);
    }
    assert_int_equal(n, 5);
    Plexa__TaskResults *rs = wait_ids(cl, first, 6, 1);
    for (size_t i = 0; i < 6; i++) {
        if (first + i == running) {
            assert_int_equal(rs->results[i]->status, PLEXA__TASK_STATUS__TASK_ENGINE_DIED);
            assert_string_equal(rs->results[i]->error->ename, "EngineError");
        } else {
            assert_int_equal(rs->results[i]->status, PLEXA__TASK_STATUS__TASK_OK);
            assert_int_equal(rs->results[i]->engine_id, b->engine_id);
        }
    }
    fake_t *engines[1] = {b};
    for (size_t i = 0; i < 6; i++)
        if (first + i != running)
            assert_non_null(ran_by(first + i, engines, 1));
    fake_destroy(&b);
    fake_destroy(&cl);
}

/* depend: an engine whose depend() says no is never given the task again,
 * by dispatch or by stealing; all run on the engine that accepts. */
static void test_depend_with_stealing(void **state)
{
    fake_t *a = fake_new(1, B_QUEUE), *cl = fake_new(3, B_ECHO);
    a->reject_depend = 1;
    uint64_t first = submit_fn(cl, 3, 41, 1);
    assert_true(run_until(queued_1, a));
    assert_true(fake_start(a));
    assert_true(run_until(queued_1, a));   /* one ahead */
    assert_true(fake_finish(a));           /* rejected */
    fake_t *b = fake_new(1, B_QUEUE);
    int n = 0;
    for (int i = 0; i < 2000 && n < 3; i++) {
        if (fake_start(b) && fake_finish(b))
            n++;
        if (fake_start(a))
            fake_finish(a);                /* rejects whatever it gets */
        run_for(1);
    }
    assert_int_equal(n, 3);
    Plexa__TaskResults *rs = wait_ids(cl, first, 3, 1);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(rs->results[i]->status, PLEXA__TASK_STATUS__TASK_OK);
        assert_int_equal(rs->results[i]->engine_id, b->engine_id);
    }
    fake_destroy(&a);
    fake_destroy(&b);
    fake_destroy(&cl);
}

/* Abort of a task being stolen: the holder gives it back, and it ends
 * TaskAborted without running anywhere. */
static void test_abort_stolen_task(void **state)
{
    fake_t *a, *b, *cl = fake_new(3, B_ECHO);
    uint64_t first = one_running_one_held(cl, 51, 1, &a, &b);
    run_for(50);
    assert_int_equal(a->nheld, 1);
    uint64_t victim = first + 1;
    Plexa__Envelope *r = abort_ids(cl, &victim, 1);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_IDS);
    fake_thaw(a);
    Plexa__TaskResults *rs = wait_ids(cl, victim, 1, 1);
    assert_int_equal(rs->results[0]->status, PLEXA__TASK_STATUS__TASK_ABORTED);
    assert_int_equal(b->nqueue, 0);
    assert_int_equal(b->ran, 0);
    assert_true(fake_finish(a));
    assert_int_equal(wait_ids(cl, first, 1, 1)->results[0]->status, PLEXA__TASK_STATUS__TASK_OK);
    fake_destroy(&a);
    fake_destroy(&b);
    fake_destroy(&cl);
}

/* A chunk of long elements is cut into pieces that run on both engines;
 * the client gets one result, the pieces' lists in order, and sees no
 * piece (queue status, unknown ids). */
static void test_chunk_pieces_join(void **state)
{
    fake_t *a = fake_new(1, B_QUEUE), *b = fake_new(1, B_QUEUE), *cl = fake_new(3, B_ECHO);
    a->duration = b->duration = 0.2;
    uint64_t learn = submit_chunk(cl, 2, 61);   /* 0.1 s an element */
    fake_t *engines[2] = {a, b};
    for (int i = 0; i < 2000 && wait_ids(cl, learn, 1, 0)->results[0]->status ==
                                    PLEXA__TASK_STATUS__TASK_PENDING; i++) {
        for (int k = 0; k < 2; k++)
            if (!fake_finish(engines[k]))
                fake_start(engines[k]);
        run_for(1);
    }
    uint64_t id = submit_chunk(cl, 12, 61);
    int pieces = 0;
    for (int i = 0; i < 5000; i++) {
        Plexa__TaskResults *rs = wait_ids(cl, id, 1, 0);
        if (rs->results[0]->status != PLEXA__TASK_STATUS__TASK_PENDING)
            break;
        for (int k = 0; k < 2; k++) {
            if (engines[k]->running.id) {
                assert_true(engines[k]->running.id > (1ull << 62));   /* a piece */
                fake_finish(engines[k]);
                pieces++;
            }
            fake_start(engines[k]);
        }
        run_for(1);
    }
    Plexa__TaskResults *rs = wait_ids(cl, id, 1, 1);
    Plexa__TaskResult *r = rs->results[0];
    assert_int_equal(r->status, PLEXA__TASK_STATUS__TASK_OK);
    assert_int_equal(r->task_id, id);
    assert_true(pieces >= 2);
    assert_true(a->ran > 1 && b->ran > 1);
    int64_t want = 0;
    for (size_t v = 0; v < r->n_values; v++) {
        assert_int_equal(r->values[v]->kind_case, PLEXA__VALUE__KIND_LIST);
        for (size_t k = 0; k < r->values[v]->list->n_items; k++)
            assert_int_equal(r->values[v]->list->items[k]->i64, want++);
    }
    assert_int_equal(want, 12);
    assert_int_equal(wait_ids(cl, a->ran_ids[a->ran - 1], 1, 0)->results[0]->status,
                     PLEXA__TASK_STATUS__TASK_UNKNOWN);
    fake_destroy(&a);
    fake_destroy(&b);
    fake_destroy(&cl);
}

/* A chunk taken back whole from an engine busy with another task is
 * shared: half for the thief, half stays in line. */
static void test_stolen_chunk_is_halved(void **state)
{
    fake_t *a = fake_new(1, B_QUEUE), *cl = fake_new(3, B_ECHO);
    uint64_t c1 = submit_chunk(cl, 10, 71);
    uint64_t c2 = submit_chunk(cl, 10, 71);
    assert_true(run_until(queued_1, a));
    assert_true(fake_start(a));
    assert_true(run_until(queued_1, a));   /* c2 sent ahead */
    fake_t *b = fake_new(1, B_QUEUE);
    assert_true(run_until(queued_1, b));
    assert_int_equal(b->queue[0].count, 5);
    assert_int_equal(b->queue[0].first, 0);
    fake_t *engines[2] = {a, b};
    for (int i = 0; i < 2000; i++) {
        int busy = 0;
        for (int k = 0; k < 2; k++) {
            fake_finish(engines[k]);
            busy += fake_start(engines[k]);
        }
        run_for(1);
        if (!busy && !a->nqueue && !b->nqueue && wait_ids(cl, c2, 1, 0)->results[0]->status !=
                                                     PLEXA__TASK_STATUS__TASK_PENDING)
            break;
    }
    Plexa__TaskResult *r = wait_ids(cl, c2, 1, 1)->results[0];
    assert_int_equal(r->status, PLEXA__TASK_STATUS__TASK_OK);
    assert_int_equal(r->n_values, 2);
    assert_int_equal(r->values[0]->list->n_items + r->values[1]->list->n_items, 10);
    assert_int_equal(wait_ids(cl, c1, 1, 1)->results[0]->n_values, 1);
    fake_destroy(&a);
    fake_destroy(&b);
    fake_destroy(&cl);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_idle_engine_steals, setup, teardown),
    cmocka_unit_test_setup_teardown(test_steal_race_exactly_once, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prefetch_follows_durations, setup, teardown),
    cmocka_unit_test_setup_teardown(test_frozen_engine, setup, teardown),
    cmocka_unit_test_setup_teardown(test_death_with_stolen_and_unstolen, setup, teardown),
    cmocka_unit_test_setup_teardown(test_depend_with_stealing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_abort_stolen_task, setup, teardown),
    cmocka_unit_test_setup_teardown(test_chunk_pieces_join, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stolen_chunk_is_halved, setup, teardown),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("steal", tests, NULL, NULL))
