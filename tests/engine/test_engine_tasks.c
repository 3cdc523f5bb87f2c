/*
 * ipengine's task side against a fake controller (engine_harness.c):
 * TaskRun of every kind (map, chunk, string) with its options (depend and
 * the engine's properties, clear_before/after, recovery-style buf_base),
 * Interrupt (of the running task, of a queued one, of an execute), and
 * reconnecting after the controller connection drops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plx_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_harness.h"
#include "plx_envelope.h"
#include "plx_time.h"

#define OK       ((int)PLEXA__TASK_STATUS__TASK_OK)
#define FAILED   ((int)PLEXA__TASK_STATUS__TASK_FAILED)
#define REJECTED ((int)PLEXA__TASK_STATUS__TASK_REJECTED)

/* ---- helpers -------------------------------------------------------------- */

/* A value defined on the engine by code, pulled back as name: its Value
 * (a pickle for functions and dicts) and, in *m, the frame with its
 * buffers. Free the returned envelope and *m. */
static Plexa__Envelope *pulled(fake_t *f, const char *code, const char *name, plx_msg_t **m)
{
    fake_exec_ok(f, code, NULL, 0);
    Plexa__Pull p = PLEXA__PULL__INIT;
    const char *keys[] = { name };
    p.n_keys = 1;
    p.keys = (char **)keys;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PULL;
    env.pull = &p;
    Plexa__Envelope *r = fake_call(f, &env, NULL, 0, T_REPLY, m);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    assert_int_equal(r->engine_reply->n_values, 1);
    return r;
}

#define WHOLE UINT32_MAX

/* Send TaskRun{task_id, packed spec} with bufs, for elements first ..
 * first+count-1 of a chunk (WHOLE: all); returns the envelope id. */
static uint64_t send_task_range(fake_t *f, uint64_t task_id, Plexa__TaskSpec *spec,
                                plx_buf_t **bufs, uint32_t nbufs, uint32_t first, uint32_t count)
{
    size_t len = plexa__task_spec__get_packed_size(spec);
    uint8_t *data = malloc(len ? len : 1);
    assert_non_null(data);
    plexa__task_spec__pack(spec, data);
    Plexa__TaskRun run = PLEXA__TASK_RUN__INIT;
    run.has_task_id = 1;
    run.task_id = task_id;
    run.has_spec = 1;
    run.spec.len = len;
    run.spec.data = data;
    run.has_attempt = 1;
    run.attempt = 1;
    if (first != WHOLE) {
        run.has_first = run.has_count = 1;
        run.first = first;
        run.count = count;
    }
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_RUN;
    env.task_run = &run;
    uint64_t id = fake_send(f, &env, bufs, nbufs);
    free(data);
    return id;
}

static uint64_t send_task(fake_t *f, uint64_t task_id, Plexa__TaskSpec *spec, plx_buf_t **bufs,
                          uint32_t nbufs)
{
    return send_task_range(f, task_id, spec, bufs, nbufs, WHOLE, 0);
}

/* The TaskResult answering envelope id (free the envelope, and *m if given). */
static Plexa__Envelope *task_result(fake_t *f, uint64_t id, uint64_t task_id, double timeout_s,
                                    plx_msg_t **m)
{
    Plexa__Envelope *r = fake_recv_reply(f, timeout_s, m);
    assert_non_null(r);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_RESULT);
    assert_int_equal(r->reply_to, id);
    assert_int_equal(r->task_result->task_id, task_id);
    assert_true(r->task_result->has_status);
    if (r->task_result->error && (int)r->task_result->status == OK)
        fprintf(stderr, "task %llu: %s: %s\n", (unsigned long long)task_id,
                r->task_result->error->ename, r->task_result->error->evalue);
    return r;
}

static void spec_init(Plexa__TaskSpec *s, const char *kind, Plexa__Value **args, size_t n)
{
    plexa__task_spec__init(s);
    s->kind = (char *)kind;
    s->n_args = n;
    s->args = args;
}

/* Run a "string" task (code, no push, pull keys) and return its result. */
static Plexa__Envelope *string_task(fake_t *f, uint64_t task_id, const char *code,
                                    Plexa__Value *pull, int clear_before, int clear_after)
{
    Plexa__Value vc = val_str(code), vp = val_none(), vn = val_none();
    Plexa__Value *args[] = { &vc, &vp, pull ? pull : &vn };
    Plexa__TaskSpec s;
    spec_init(&s, "string", args, 3);
    s.has_clear_before = clear_before;
    s.clear_before = clear_before;
    s.has_clear_after = clear_after;
    s.clear_after = clear_after;
    uint64_t id = send_task(f, task_id, &s, NULL, 0);
    return task_result(f, id, task_id, T_REPLY, NULL);
}

/* ---- the kinds ------------------------------------------------------------ */

static void test_map_and_chunk(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    plx_msg_t *m = NULL;
    Plexa__Envelope *pf = pulled(f, "def f(x, y=0):\n    return 10 * x + y", "f", &m);
    Plexa__Value *fv = pf->engine_reply->values[0];
    assert_int_equal(fv->kind_case, PLEXA__VALUE__KIND_PICKLE);

    /* map: f(4, y=2) with kwargs as a pickled dict pulled from the engine */
    plx_msg_t *mk = NULL;
    Plexa__Envelope *pk = pulled(f, "kw = {'y': 2}", "kw", &mk);
    assert_int_equal(mk->nbufs, 1);
    assert_int_equal(m->nbufs, 1);
    plx_buf_t *bufs[2] = { m->bufs[0], mk->bufs[0] };
    Plexa__Value kwv = *pk->engine_reply->values[0];
    Plexa__Pickle kwp = *kwv.pickle;
    kwp.buf = 1;   /* second buffer of the task */
    kwv.pickle = &kwp;
    Plexa__Value four = val_i64(4);
    Plexa__Value *a4[] = { &four };
    Plexa__ValueList la;
    Plexa__Value targs = val_list(&la, a4, 1, 1);
    Plexa__Value *margs[] = { fv, &targs, &kwv };
    Plexa__TaskSpec s;
    spec_init(&s, "map", margs, 3);
    s.has_buf_base = 1;
    s.buf_base = 0;
    s.has_buf_count = 1;
    s.buf_count = 2;
    double t0 = plx_unix_now();
    uint64_t id = send_task(f, 11, &s, bufs, 2);
    Plexa__Envelope *r = task_result(f, id, 11, T_REPLY, NULL);
    Plexa__TaskResult *tr = r->task_result;
    assert_int_equal(tr->status, OK);
    assert_null(tr->error);
    assert_int_equal(tr->engine_id, 3);
    assert_int_equal(tr->n_values, 1);
    assert_int_equal(tr->values[0]->i64, 42);
    assert_true(tr->has_started && tr->has_completed);
    assert_true(tr->started >= t0 - 1 && tr->completed >= tr->started &&
                tr->completed <= plx_unix_now() + 1);
    plx_envelope_free(&r);

    /* kwargs None and absent are both fine */
    Plexa__Value none = val_none();
    margs[2] = &none;
    id = send_task(f, 12, &s, bufs, 2);
    r = task_result(f, id, 12, T_REPLY, NULL);
    assert_int_equal(r->task_result->status, OK);
    assert_int_equal(r->task_result->values[0]->i64, 40);
    plx_envelope_free(&r);

    /* A recovery-style spec: its values index from its own buf_base (1),
     * here the function is the task's second buffer. */
    plx_buf_t *rbufs[2] = { mk->bufs[0], m->bufs[0] };
    Plexa__Value fv1 = *fv;
    Plexa__Pickle fp1 = *fv->pickle;
    fp1.buf = 0;
    fv1.pickle = &fp1;
    Plexa__Value *rargs[] = { &fv1, &targs };
    Plexa__TaskSpec rs;
    spec_init(&rs, "map", rargs, 2);
    rs.has_buf_base = 1;
    rs.buf_base = 1;
    rs.has_buf_count = 1;
    rs.buf_count = 1;
    id = send_task(f, 13, &rs, rbufs, 2);
    r = task_result(f, id, 13, T_REPLY, NULL);
    assert_int_equal(r->task_result->status, OK);
    assert_int_equal(r->task_result->values[0]->i64, 40);
    plx_envelope_free(&r);

    /* chunk: [f(1), f(2, 5), f(3)] */
    Plexa__Value x1 = val_i64(1), x2 = val_i64(2), x5 = val_i64(5), x3 = val_i64(3);
    Plexa__Value *t1[] = { &x1 }, *t2[] = { &x2, &x5 }, *t3[] = { &x3 };
    Plexa__ValueList l1, l2, l3, ll;
    Plexa__Value a1 = val_list(&l1, t1, 1, 1), a2 = val_list(&l2, t2, 2, 1);
    Plexa__Value a3 = val_list(&l3, t3, 1, 1);
    Plexa__Value *items[] = { &a1, &a2, &a3 };
    Plexa__Value lst = val_list(&ll, items, 3, 0);
    Plexa__Value *cargs[] = { fv, &lst };
    spec_init(&s, "chunk", cargs, 2);
    id = send_task(f, 14, &s, m->bufs, 1);
    r = task_result(f, id, 14, T_REPLY, NULL);
    tr = r->task_result;
    assert_int_equal(tr->status, OK);
    assert_int_equal(tr->n_values, 1);
    assert_int_equal(tr->values[0]->kind_case, PLEXA__VALUE__KIND_LIST);
    assert_int_equal(tr->values[0]->list->n_items, 3);
    assert_int_equal(tr->values[0]->list->items[0]->i64, 10);
    assert_int_equal(tr->values[0]->list->items[1]->i64, 25);
    assert_int_equal(tr->values[0]->list->items[2]->i64, 30);
    plx_envelope_free(&r);
    assert_true(fake_saw_started(f, 14));

    /* a piece of it (the controller split the chunk): elements 1..2 only */
    id = send_task_range(f, 18, &s, m->bufs, 1, 1, 2);
    r = task_result(f, id, 18, T_REPLY, NULL);
    tr = r->task_result;
    assert_int_equal(tr->status, OK);
    assert_int_equal(tr->values[0]->list->n_items, 2);
    assert_int_equal(tr->values[0]->list->items[0]->i64, 25);
    assert_int_equal(tr->values[0]->list->items[1]->i64, 30);
    plx_envelope_free(&r);

    /* the first exception fails a chunk, with the user's frame */
    Plexa__Value bad = val_str("text");
    Plexa__Value *tb[] = { &bad };
    Plexa__ValueList lb;
    Plexa__Value ab = val_list(&lb, tb, 1, 1);
    items[1] = &ab;
    id = send_task(f, 15, &s, m->bufs, 1);
    r = task_result(f, id, 15, T_REPLY, NULL);
    tr = r->task_result;
    assert_int_equal(tr->status, FAILED);
    assert_int_equal(tr->n_values, 0);
    assert_non_null(tr->error);
    assert_string_equal(tr->error->ename, "TypeError");
    assert_non_null(strstr(tr->error->traceback, "in f"));
    assert_null(strstr(tr->error->traceback, "_engine.py"));
    plx_envelope_free(&r);

    /* an unknown kind, and a spec naming a buffer the frame lacks */
    spec_init(&s, "frobnicate", cargs, 2);
    id = send_task(f, 16, &s, m->bufs, 1);
    r = task_result(f, id, 16, T_REPLY, NULL);
    assert_int_equal(r->task_result->status, FAILED);
    assert_string_equal(r->task_result->error->ename, "ProtocolError");
    plx_envelope_free(&r);
    spec_init(&s, "map", margs, 2);
    id = send_task(f, 17, &s, NULL, 0);
    r = task_result(f, id, 17, T_REPLY, NULL);
    assert_int_equal(r->task_result->status, FAILED);
    assert_string_equal(r->task_result->error->ename, "ProtocolError");
    plx_envelope_free(&r);

    /* map tasks do not count as commands; the engine carries on */
    fake_exec_ok(f, "print(len(__import__('plexa._engine')._engine._history))", "2\n", 0);
    plx_envelope_free(&pf);
    plx_envelope_free(&pk);
    plx_msg_destroy(&m);
    plx_msg_destroy(&mk);
}

static void test_string_tasks(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "a = 5", "", 0);
    Plexa__Value pa = val_str("a"), pb = val_str("b");
    Plexa__Value *keys[] = { &pa, &pb };
    Plexa__ValueList lk;
    Plexa__Value pull = val_list(&lk, keys, 2, 0);
    Plexa__Envelope *r = string_task(f, 21, "b = a * 2\nprint('out', b)\nb", &pull, 0, 0);
    Plexa__TaskResult *tr = r->task_result;
    assert_int_equal(tr->status, OK);
    assert_int_equal(tr->n_values, 3);
    assert_int_equal(tr->values[0]->kind_case, PLEXA__VALUE__KIND_PICKLE);   /* the dict */
    assert_string_equal(tr->values[1]->str, "out 10\n10\n");   /* cell semantics */
    assert_string_equal(tr->values[2]->str, "");
    plx_envelope_free(&r);

    /* a missing pull name: NameError; output still reported */
    Plexa__Value pz = val_str("zzz");
    r = string_task(f, 22, "print('hi')", &pz, 0, 0);
    tr = r->task_result;
    assert_int_equal(tr->status, FAILED);
    assert_string_equal(tr->error->ename, "NameError");
    assert_non_null(strstr(tr->error->evalue, "zzz"));
    assert_int_equal(tr->n_values, 3);
    assert_string_equal(tr->values[1]->str, "hi\n");
    plx_envelope_free(&r);

    /* code raising: the error with the cell's frame */
    r = string_task(f, 23, "1/0", NULL, 0, 0);
    assert_int_equal(r->task_result->status, FAILED);
    assert_string_equal(r->task_result->error->ename, "ZeroDivisionError");
    assert_non_null(strstr(r->task_result->error->traceback, "File \"<plexa-input-"));
    assert_non_null(strstr(r->task_result->error->traceback, "\", line 1, in <module>\n    1/0\n"));
    plx_envelope_free(&r);

    /* clear_after: the namespace is reset after the task (id stays) */
    r = string_task(f, 24, "c = 1", NULL, 0, 1);
    assert_int_equal(r->task_result->status, OK);
    plx_envelope_free(&r);
    r = string_task(f, 25, "print(sorted(k for k in globals() if not k.startswith('__')))", NULL,
                    0, 0);
    assert_string_equal(r->task_result->values[1]->str, "['id']\n");
    plx_envelope_free(&r);
    /* clear_before: reset before it runs */
    fake_exec_ok(f, "d = 1", "", 0);
    r = string_task(f, 26, "print('d' in globals())", NULL, 1, 0);
    assert_string_equal(r->task_result->values[1]->str, "False\n");
    plx_envelope_free(&r);
}

/* depend(properties): False rejects (no values), an exception fails with
 * its traceback, True runs; properties hold engine_id, hostname and pid by
 * default and whatever user code adds. */
static void test_depend(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "import plexa._engine as pe, os\n"
                    "p = pe.properties\n"
                    "print(p['engine_id'], p['pid'] == os.getpid(),"
                    " p['hostname'] == os.uname().nodename)",
                 "3 True True\n", 0);
    plx_msg_t *m = NULL;
    Plexa__Envelope *pd = pulled(f, "def dep(p):\n    return p.get('color') == 'red'", "dep", &m);
    plx_msg_t *mb = NULL;
    Plexa__Envelope *pbad = pulled(f, "def bad(p):\n    return p['missing']", "bad", &mb);

    Plexa__Value vc = val_str("print('ran')"), vn = val_none();
    Plexa__Value *args[] = { &vc, &vn, &vn };
    Plexa__TaskSpec s;
    spec_init(&s, "string", args, 3);
    s.depend = pd->engine_reply->values[0];
    s.has_clear_before = 1;
    s.clear_before = 1;   /* a rejection must not reset anything */
    fake_exec_ok(f, "keep = 1", "", 0);
    uint64_t id = send_task(f, 31, &s, m->bufs, m->nbufs);
    Plexa__Envelope *r = task_result(f, id, 31, T_REPLY, NULL);
    assert_int_equal(r->task_result->status, REJECTED);
    assert_int_equal(r->task_result->n_values, 0);
    assert_null(r->task_result->error);
    plx_envelope_free(&r);
    fake_exec_ok(f, "print(keep)", "1\n", 0);

    fake_exec_ok(f, "pe.properties['color'] = 'red'", "", 0);
    id = send_task(f, 32, &s, m->bufs, m->nbufs);
    r = task_result(f, id, 32, T_REPLY, NULL);
    assert_int_equal(r->task_result->status, OK);
    assert_string_equal(r->task_result->values[1]->str, "ran\n");
    plx_envelope_free(&r);
    /* reset (clear_before above) keeps the properties */
    fake_exec_ok(f, "import plexa._engine as pe; print(pe.properties['color'])", "red\n", 0);

    s.depend = pbad->engine_reply->values[0];
    s.has_clear_before = 0;
    id = send_task(f, 33, &s, mb->bufs, mb->nbufs);
    r = task_result(f, id, 33, T_REPLY, NULL);
    assert_int_equal(r->task_result->status, FAILED);
    assert_string_equal(r->task_result->error->ename, "KeyError");
    assert_non_null(strstr(r->task_result->error->traceback, "in bad"));
    plx_envelope_free(&r);
    plx_envelope_free(&pd);
    plx_envelope_free(&pbad);
    plx_msg_destroy(&m);
    plx_msg_destroy(&mb);
}

/* ---- interrupts ----------------------------------------------------------- */

static void send_interrupt(fake_t *f, uint64_t task_id)
{
    Plexa__Interrupt in = PLEXA__INTERRUPT__INIT;
    in.has_task_id = 1;
    in.task_id = task_id;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_INTERRUPT;
    env.interrupt = &in;
    fake_send(f, &env, NULL, 0);
}

static uint64_t send_string_task(fake_t *f, uint64_t task_id, const char *code)
{
    Plexa__Value vc = val_str(code), vn = val_none();
    Plexa__Value *args[] = { &vc, &vn, &vn };
    Plexa__TaskSpec s;
    spec_init(&s, "string", args, 3);
    return send_task(f, task_id, &s, NULL, 0);
}

static void test_interrupt(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    /* the running task 41 (time.sleep(60)) and a queued one, 42 */
    uint64_t id41 = send_string_task(f, 41, "import time; time.sleep(60)");
    uint64_t id42 = send_string_task(f, 42, "print('second')");
    uint64_t id43 = send_string_task(f, 43, "print('third')");
    usleep(500000);
    send_interrupt(f, 999);   /* neither running nor queued: nothing happens */
    double t0 = plx_now_s();
    send_interrupt(f, 43);    /* queued: answered at once, without running */
    Plexa__Envelope *r = task_result(f, id43, 43, 3, NULL);
    assert_true(plx_now_s() - t0 < 1);
    assert_int_equal(r->task_result->status, FAILED);
    assert_string_equal(r->task_result->error->ename, "KeyboardInterrupt");
    assert_int_equal(r->task_result->engine_id, 3);
    assert_int_equal(r->task_result->n_values, 0);
    plx_envelope_free(&r);
    t0 = plx_now_s();
    send_interrupt(f, 41);
    r = task_result(f, id41, 41, 5, NULL);
    assert_true(plx_now_s() - t0 < 3);
    assert_int_equal(r->task_result->status, FAILED);
    assert_string_equal(r->task_result->error->ename, "KeyboardInterrupt");
    plx_envelope_free(&r);
    r = task_result(f, id42, 42, T_REPLY, NULL);
    assert_int_equal(r->task_result->status, OK);
    assert_string_equal(r->task_result->values[1]->str, "second\n");
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('third ran' if 'third' in "
                    "str(__import__('plexa._engine')._engine._history) else 'third skipped')",
                 "third skipped\n", 0);

    /* task_id 0 interrupts a running execute; the engine stays usable */
    uint64_t xid = fake_execute(f, "import time; time.sleep(60)");
    usleep(300000);
    t0 = plx_now_s();
    send_interrupt(f, 0);
    r = fake_recv_reply(f, 5, NULL);
    assert_non_null(r);
    assert_int_equal(r->reply_to, xid);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "KeyboardInterrupt");
    assert_true(plx_now_s() - t0 < 3);
    plx_envelope_free(&r);
    /* nothing runs: an interrupt now must not hit the next request */
    send_interrupt(f, 0);
    usleep(200000);
    fake_exec_ok(f, "import time; time.sleep(0.3); print('after')", "after\n", 0);
    /* a busy loop in pure Python is interrupted too */
    uint64_t id44 = send_string_task(f, 44, "while True: pass");
    usleep(300000);
    send_interrupt(f, 44);
    r = task_result(f, id44, 44, 5, NULL);
    assert_string_equal(r->task_result->error->ename, "KeyboardInterrupt");
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('alive')", "alive\n", 0);
}

/* ---- reconnecting --------------------------------------------------------- */

/* The controller connection drops: the engine comes back asking for its
 * id, keeps its namespace, and follows an id the controller changes. */
/* ---- work stealing -------------------------------------------------------- */

/* Send TaskSteal{ids}; returns its envelope id. */
static uint64_t send_steal(fake_t *f, const uint64_t *ids, size_t n)
{
    Plexa__TaskSteal ts = PLEXA__TASK_STEAL__INIT;
    ts.n_ids = n;
    ts.ids = (uint64_t *)ids;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_STEAL;
    env.task_steal = &ts;
    return fake_send(f, &env, NULL, 0);
}

/* What came back for a round: results by task id, the ids given back. */
typedef struct outcome {
    int      results[8];      /* TaskResults seen, by task id - base */
    int      started[8];      /* TaskStarted seen before the result */
    uint64_t stolen[8];
    size_t   nstolen;
    int      steal_answered;
} outcome_t;

/* Read messages until the reply to envelope `until` (an execute), sorting
 * them into o; task ids are base .. base+7. */
static void collect_round(fake_t *f, uint64_t steal_id, uint64_t until, uint64_t base,
                          outcome_t *o)
{
    memset(o, 0, sizeof *o);
    for (;;) {
        Plexa__Envelope *r = fake_recv(f, T_REPLY, NULL);
        assert_non_null(r);
        switch (r->body_case) {
        case PLEXA__ENVELOPE__BODY_TASK_STARTED:
            assert_true(r->task_started->task_id - base < 8);
            assert_int_equal(o->results[r->task_started->task_id - base], 0);
            o->started[r->task_started->task_id - base]++;
            break;
        case PLEXA__ENVELOPE__BODY_TASK_RESULT:
            assert_true(r->task_result->task_id - base < 8);
            assert_int_equal(r->task_result->status, OK);
            o->results[r->task_result->task_id - base]++;
            break;
        case PLEXA__ENVELOPE__BODY_TASK_STOLEN:
            assert_int_equal(r->reply_to, steal_id);
            o->steal_answered++;
            for (size_t i = 0; i < r->task_stolen->n_ids && o->nstolen < 8; i++)
                o->stolen[o->nstolen++] = r->task_stolen->ids[i];
            break;
        case PLEXA__ENVELOPE__BODY_ENGINE_REPLY:
            if (r->reply_to == until) {
                plx_envelope_free(&r);
                return;
            }
            break;
        default:
            break;   /* keepalives */
        }
        plx_envelope_free(&r);
    }
}

static int was_stolen(const outcome_t *o, uint64_t id)
{
    for (size_t i = 0; i < o->nstolen; i++)
        if (o->stolen[i] == id)
            return 1;
    return 0;
}

/* Tasks waiting behind a running one are given back, in queue order,
 * without running; the running one finishes; ids the engine does not hold
 * are left out of the answer. */
static void test_steal_queued(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    uint64_t base = 100;
    send_string_task(f, base, "import time\ntime.sleep(0.3)");
    send_string_task(f, base + 1, "given_back_1 = 1");
    send_string_task(f, base + 2, "given_back_2 = 1");
    send_string_task(f, base + 3, "kept = 1");
    usleep(50000);   /* the first has started */
    uint64_t ids[] = { base + 2, 999, base + 1 };
    uint64_t sid = send_steal(f, ids, 3);
    uint64_t marker = fake_execute(f, "pass");
    outcome_t o;
    collect_round(f, sid, marker, base, &o);
    assert_int_equal(o.steal_answered, 1);
    assert_int_equal(o.nstolen, 2);
    assert_int_equal(o.stolen[0], base + 1);
    assert_int_equal(o.stolen[1], base + 2);
    assert_int_equal(o.results[0], 1);
    assert_int_equal(o.results[1] + o.results[2], 0);
    assert_int_equal(o.results[3], 1);
    assert_int_equal(o.started[0], 1);
    assert_int_equal(o.started[1] + o.started[2], 0);
    assert_int_equal(o.started[3], 1);
    fake_exec_ok(f, "print('given_back_1' in globals(), 'given_back_2' in globals(), kept)",
                 "False False 1\n", 0);
}

/* A steal sent while the engine may be starting the very task: over many
 * rounds each task is either given back or run, never both and never
 * neither, and a run task said it started before its result. */
static void test_steal_races_start(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    int given = 0, ran = 0;
    for (int round = 0; round < 2000; round++) {
        uint64_t base = 1000 + 8 * (uint64_t)round;
        send_string_task(f, base, "pass");
        send_string_task(f, base + 1, "pass");
        uint64_t target = base + 1;
        uint64_t sid = send_steal(f, &target, 1);
        uint64_t marker = fake_execute(f, "pass");
        outcome_t o;
        collect_round(f, sid, marker, base, &o);
        assert_int_equal(o.steal_answered, 1);
        assert_int_equal(o.results[0], 1);
        int back = was_stolen(&o, target);
        assert_int_equal(back + o.results[1], 1);   /* exactly once */
        assert_int_equal(o.started[1], o.results[1]);
        given += back;
        ran += o.results[1];
    }
    fprintf(stderr, "2000 races: %d given back, %d run\n", given, ran);
}

static void test_reconnect(void **state)
{
    fake_t *f = *state;
    f->reconnect = "10";
    fake_start_registered(f);
    fake_exec_ok(f, "a = 5", "", 0);
    fake_close_conn(f);
    fake_register(f, 3, 3);
    fake_exec_ok(f, "print(a, id)", "5 3\n", 0);
    /* a request queued behind a running one when the connection drops is
     * void: neither is answered on the new connection */
    fake_execute(f, "import time; time.sleep(60)");
    fake_execute(f, "print('never')");
    usleep(300000);
    fake_close_conn(f);
    double t0 = plx_now_s();
    fake_register(f, 3, 7);   /* the controller gives another id */
    assert_true(plx_now_s() - t0 < 3);
    Plexa__Envelope *r = fake_exec_call(f, "import plexa._engine as pe; print(id, "
                                           "pe.properties['engine_id'])", T_REPLY);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->execute->stdout, "7 7\n");
    assert_int_equal(r->engine_reply->engine_id, 7);
    plx_envelope_free(&r);
    char *log = fake_log(f);
    assert_non_null(strstr(log, "reconnecting for up to 10 s"));
    assert_non_null(strstr(log, "as engine 7 (was 3"));
    free(log);
    /* a shutdown's close is not a loss: the engine ends */
    Plexa__Shutdown sd = PLEXA__SHUTDOWN__INIT;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_SHUTDOWN;
    env.shutdown = &sd;
    fake_send(f, &env, NULL, 0);
    r = fake_recv_reply(f, 5, NULL);
    assert_non_null(r);
    assert_string_equal(r->engine_reply->method, "kill");
    plx_envelope_free(&r);
    fake_close_conn(f);
    assert_int_equal(fake_wait_exit(f, 5), 0);
    assert_int_equal(WEXITSTATUS(f->status), 0);
}

/* Nobody to reconnect to: the engine exits 0 once --reconnect passes. */
static void test_reconnect_gives_up(void **state)
{
    fake_t *f = *state;
    f->reconnect = "1.5";
    fake_start_registered(f);
    fake_exec_ok(f, "a = 1", "", 0);
    close(f->lfd);
    f->lfd = -1;
    double t0 = plx_now_s();
    fake_close_conn(f);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    double took = plx_now_s() - t0;
    assert_true(took > 1.0 && took < 6);
    assert_true(WIFEXITED(f->status));
    assert_int_equal(WEXITSTATUS(f->status), 0);
    char *log = fake_log(f);
    assert_non_null(strstr(log, "could not reconnect within 1.5 s"));
    free(log);
}

/* A controller that accepts the connection but never welcomes the engine
 * back does not keep it alive past --reconnect either; a Reject ends it. */
static void test_reconnect_refused(void **state)
{
    fake_t *f = *state;
    f->reconnect = "10";
    fake_start_registered(f);
    fake_close_conn(f);
    assert_int_equal(fake_accept(f, T_START), 0);
    Plexa__Envelope *h = fake_recv(f, T_START, NULL);
    assert_non_null(h);
    assert_int_equal(h->hello->engine_id, 3);
    plx_envelope_free(&h);
    Plexa__Reject rj = PLEXA__REJECT__INIT;
    rj.reason = "invalid capability token for role 'engine'";
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_REJECT;
    env.reject = &rj;
    fake_send(f, &env, NULL, 0);
    assert_int_equal(fake_wait_exit(f, 5), 0);
    assert_true(WIFEXITED(f->status));
}

static const struct CMUnitTest tests[] = {
    FAKE_TEST(test_map_and_chunk),
    FAKE_TEST(test_string_tasks),
    FAKE_TEST(test_depend),
    FAKE_TEST(test_interrupt),
    FAKE_TEST(test_steal_queued),
    FAKE_TEST(test_steal_races_start),
    FAKE_TEST(test_reconnect),
    FAKE_TEST(test_reconnect_gives_up),
    FAKE_TEST(test_reconnect_refused),
};

PLX_TEST_SUITE(engine_test_init, NULL, PLX_TEST_GROUP("engine_tasks", tests, NULL, NULL))
