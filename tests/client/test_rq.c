/*
 * The protocol in one place (core/client/plx_rq.h) without a controller:
 * every request builder's envelope, packed and unpacked as the
 * controller would read it, and every reply decoder on replies built
 * here, read from real request objects. White-box: the builder, decoder
 * and request sources are compiled in (their internals are hidden in
 * libplexa.so); nothing is sent.
 *
 *   requests   push/pull/call/execute and the small ones; task submission
 *              (shared buffer runs, recovery, flags, the buffer limit)
 *   replies    multi-engine (values by reference, errors, faults), queue
 *              status, task results, task queue status
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_request_priv.h"
#include "plx_rqb.h"
#include "plx_value_int.h"

/* The builder's envelope as the controller reads it (free with
 * plexa__envelope__free_unpacked). */
static Plexa__Envelope *packed(const plx_rqb_t *b)
{
    size_t n = plexa__envelope__get_packed_size(&b->env);
    uint8_t *raw = malloc(n ? n : 1);
    assert_non_null(raw);
    plexa__envelope__pack(&b->env, raw);
    Plexa__Envelope *e = plexa__envelope__unpack(NULL, n, raw);
    free(raw);
    assert_non_null(e);
    return e;
}

/* ---- requests ------------------------------------------------------------------ */

static void test_push_names_values_by_reference(void **state)
{
    plx_rqb_t b;
    plx_err_t err = {0};
    assert_int_equal(plx_rqb_init(&b, &err), PLX_OK);
    double d[4] = { 1, 2, 3, 4 };
    plx_value_t *v[] = { plx_value_i64(-7),
                         plx_value_array(PLX_DTYPE_FLOAT64, 1, (size_t[]){ 4 }, d),
                         plx_value_str("s") };
    const char *names[] = { "a", "arr", "s" };
    int32_t ids[] = { 3, 1 };
    plx_targets_t t = { .ids = ids, .n = 2 };
    assert_int_equal(plx_rqb_push(&b, &t, names, (const plx_value_t *const *)v, 3, &err),
                     PLX_OK);
    assert_int_equal(b.bufs->nbufs, 1);   /* the array's payload, referenced */
    assert_ptr_equal(b.bufs->bufs[0], v[1]->u.arr.buf);
    Plexa__Envelope *e = packed(&b);
    assert_int_equal(e->body_case, PLEXA__ENVELOPE__BODY_PUSH);
    assert_false(e->targets->has_all);
    assert_int_equal(e->targets->n_ids, 2);
    assert_int_equal(e->targets->ids[0], 3);
    assert_int_equal(e->push->n_values, 3);
    assert_string_equal(e->push->values[1]->name, "arr");
    assert_int_equal(e->push->values[0]->value->i64, -7);
    assert_int_equal(e->push->values[1]->value->kind_case, PLEXA__VALUE__KIND_NDARRAY);
    assert_int_equal(e->push->values[1]->value->ndarray->buf, 0);
    assert_string_equal(e->push->values[2]->value->str, "s");
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);
    for (int i = 0; i < 3; i++)
        plx_value_destroy(&v[i]);
}

static void test_bad_arguments(void **state)
{
    plx_rqb_t b;
    plx_err_t err = {0};
    const char *names[] = { "a", NULL };
    plx_value_t *v = plx_value_none();
    const plx_value_t *vs[] = { v, v };
    assert_int_equal(plx_rqb_init(&b, &err), PLX_OK);
    assert_int_equal(plx_rqb_push(&b, NULL, names, vs, 2, &err), PLX_EINVAL);
    assert_string_equal(err.msg, "push: name 1 is NULL");
    assert_int_equal(plx_rqb_push(&b, NULL, names, NULL, 1, &err), PLX_EINVAL);
    assert_string_equal(err.msg, "push: values is NULL");
    assert_int_equal(plx_rqb_push(&b, NULL, names, vs, 2, NULL), PLX_EINVAL);   /* err NULL */
    assert_int_equal(plx_rqb_pull(&b, NULL, (const char *[]){ "" }, 1, &err), PLX_EINVAL);
    assert_string_equal(err.msg, "pull: name 0 is empty");
    assert_int_equal(plx_rqb_call(&b, NULL, "", NULL, 0, &err), PLX_EINVAL);
    assert_int_equal(plx_rqb_execute(&b, NULL, NULL, &err), PLX_EINVAL);
    plx_rqb_clear(&b);
    plx_value_destroy(&v);
}

static void test_small_requests(void **state)
{
    plx_rqb_t b;
    plx_err_t err = {0};
    Plexa__Envelope *e;
    uint64_t ids[] = { 5, 9 };

    assert_int_equal(plx_rqb_init(&b, &err), PLX_OK);
    assert_int_equal(plx_rqb_execute(&b, NULL, "a = 1", &err), PLX_OK);
    e = packed(&b);
    assert_true(e->targets->has_all && e->targets->all);
    assert_string_equal(e->execute->code, "a = 1");
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    assert_int_equal(plx_rqb_pull(&b, NULL, (const char *[]){ "x", "y" }, 2, &err), PLX_OK);
    e = packed(&b);
    assert_int_equal(e->pull->n_keys, 2);
    assert_string_equal(e->pull->keys[1], "y");
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_shutdown(&b, NULL, 1, &err);
    e = packed(&b);
    assert_true(e->shutdown->has_controller && e->shutdown->controller);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_interrupt(&b, NULL, &err);
    e = packed(&b);
    assert_true(e->interrupt->has_task_id);
    assert_int_equal(e->interrupt->task_id, 0);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_task_wait(&b, ids, 2, 0, 1, &err);
    e = packed(&b);
    assert_null(e->targets);   /* the task interface has no targets */
    assert_int_equal(e->task_wait->n_ids, 2);
    assert_int_equal(e->task_wait->ids[1], 9);
    assert_true(e->task_wait->has_block && !e->task_wait->block);
    assert_true(e->task_wait->has_release && e->task_wait->release);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_task_clear(&b, NULL, 0, &err);
    e = packed(&b);
    assert_int_equal(e->body_case, PLEXA__ENVELOPE__BODY_TASK_CLEAR);
    assert_int_equal(e->task_clear->n_ids, 0);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_task_abort(&b, ids, 1, 0, &err);
    e = packed(&b);
    assert_int_equal(e->task_abort->ids[0], 5);
    assert_false(e->task_abort->has_queued_only);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_task_abort(&b, ids, 2, 1, &err);   /* a future's cancel() */
    e = packed(&b);
    assert_int_equal(e->task_abort->n_ids, 2);
    assert_true(e->task_abort->has_queued_only && e->task_abort->queued_only);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    assert_int_equal(plx_rqb_cancel(&b, ids, 0, &err), PLX_EINVAL);
    plx_rqb_clear(&b);
    plx_rqb_init(&b, &err);
    assert_int_equal(plx_rqb_cancel(&b, ids, 2, &err), PLX_OK);
    e = packed(&b);
    assert_int_equal(e->body_case, PLEXA__ENVELOPE__BODY_CLEAR_QUEUE);
    assert_int_equal(e->clear_queue->n_requests, 2);
    assert_int_equal(e->clear_queue->requests[1], 9);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    assert_int_equal(plx_rqb_get_ids(&b, &err), PLX_OK);
    e = packed(&b);
    assert_int_equal(e->body_case, PLEXA__ENVELOPE__BODY_GET_IDS);
    assert_null(e->targets);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    const int32_t two[] = { 3, 1 };
    const plx_targets_t some = { .all = 0, .ids = two, .n = 2 };
    plx_rqb_init(&b, &err);
    assert_int_equal(plx_rqb_clear_queue(&b, &some, &err), PLX_OK);
    e = packed(&b);
    assert_int_equal(e->body_case, PLEXA__ENVELOPE__BODY_CLEAR_QUEUE);
    assert_int_equal(e->clear_queue->n_requests, 0);   /* whole queues, not requests */
    assert_int_equal(e->targets->n_ids, 2);
    assert_int_equal(e->targets->ids[0], 3);
    assert_int_equal(e->targets->ids[1], 1);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    assert_int_equal(plx_rqb_queue_status(&b, NULL, &err), PLX_OK);
    e = packed(&b);
    assert_int_equal(e->body_case, PLEXA__ENVELOPE__BODY_QUEUE_STATUS);
    assert_true(e->targets->has_all && e->targets->all);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_task_reserve(&b, 64, &err);
    e = packed(&b);
    assert_int_equal(e->task_reserve->count, 64);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_task_queue_status(&b, 1, &err);
    e = packed(&b);
    assert_true(e->task_queue_status->verbose);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    plx_rqb_init(&b, &err);
    plx_rqb_hello(&b, PLX_CLIENT_ROLE_STATUS, "tok", "host", 42, &err);
    e = packed(&b);
    assert_int_equal(e->hello->role, PLEXA__ROLE__ROLE_STATUS);
    assert_string_equal(e->hello->token, "tok");
    assert_int_equal(e->hello->pid, 42);
    assert_true(e->hello->has_version);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);
}

static void test_call_args(void **state)
{
    plx_rqb_t b;
    plx_err_t err = {0};
    plx_value_t *a = plx_value_bytes("xyz", 3);
    assert_int_equal(plx_rqb_init(&b, &err), PLX_OK);
    assert_int_equal(plx_rqb_call(&b, NULL, "map", (const plx_value_t *const *)&a, 1, &err),
                     PLX_OK);
    Plexa__Envelope *e = packed(&b);
    assert_string_equal(e->call->method, "map");
    assert_int_equal(e->call->n_args, 1);
    assert_int_equal(e->call->args[0]->kind_case, PLEXA__VALUE__KIND_BYTES);
    assert_int_equal(b.bufs->nbufs, 1);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);
    plx_value_destroy(&a);
}

/* Three map tasks with one function: converted once, one buffer run. */
static void test_task_submit_shares_buffers(void **state)
{
    plx_rqb_t b;
    plx_err_t err = {0};
    plx_value_t *fn = plx_value_bytes("pickled function", 16);
    plx_value_t *arg[3] = { plx_value_i64(0), plx_value_i64(1), plx_value_i64(2) };
    plx_value_t *none = plx_value_none();
    const plx_value_t *args[3][3];
    plx_task_spec_t specs[3];
    for (int i = 0; i < 3; i++) {
        args[i][0] = fn;
        args[i][1] = arg[i];
        args[i][2] = none;
        specs[i] = plx_task_spec_init();
        specs[i].kind = "map";
        specs[i].args = args[i];
        specs[i].nargs = 3;
    }
    uint64_t after[] = { 11 };
    specs[1].clear_after = 1;
    specs[1].has_retries = 1;
    specs[1].retries = 2;
    specs[1].after = after;
    specs[1].nafter = 1;
    assert_int_equal(plx_rqb_init(&b, &err), PLX_OK);
    assert_int_equal(plx_rqb_task_submit(&b, specs, 3, 0, &err), PLX_OK);
    assert_int_equal(b.bufs->nbufs, 1);
    Plexa__TaskSubmit *ts = b.env.task_submit;
    assert_ptr_equal(ts->tasks[0]->args[0], ts->tasks[2]->args[0]);
    Plexa__Envelope *e = packed(&b);
    assert_false(e->task_submit->has_quiet);
    for (int i = 0; i < 3; i++) {
        Plexa__TaskSpec *s = e->task_submit->tasks[i];
        assert_string_equal(s->kind, "map");
        assert_int_equal(s->buf_base, 0);
        assert_int_equal(s->buf_count, 1);
        assert_int_equal(s->args[1]->i64, i);
        assert_int_equal(s->args[2]->kind_case, PLEXA__VALUE__KIND_NONE);
        assert_int_equal(s->has_clear_before, 0);
        assert_false(s->has_elements);
    }
    assert_true(e->task_submit->tasks[1]->has_clear_after);
    assert_int_equal(e->task_submit->tasks[1]->retries, 2);
    assert_int_equal(e->task_submit->tasks[1]->after[0], 11);
    assert_false(e->task_submit->tasks[0]->has_retries);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);
    plx_value_destroy(&fn);
    plx_value_destroy(&none);
    for (int i = 0; i < 3; i++)
        plx_value_destroy(&arg[i]);
}

/* A recovery task's buffers follow its parent's, indexed from its own base;
 * a quiet submission names its first id; a recovery has none of its own. */
static void test_task_submit_recovery_quiet(void **state)
{
    plx_rqb_t b;
    plx_err_t err = {0};
    plx_value_t *p = plx_value_bytes("parent", 6), *r = plx_value_bytes("recovery", 8);
    plx_task_spec_t rec = plx_task_spec_init(), spec = plx_task_spec_init(), bad;
    rec.kind = "map";
    rec.args = (const plx_value_t *const *)&r;
    rec.nargs = 1;
    spec.kind = "chunk";
    spec.args = (const plx_value_t *const *)&p;
    spec.nargs = 1;
    spec.elements = 7;
    spec.recovery = &rec;
    assert_int_equal(plx_rqb_init(&b, &err), PLX_OK);
    assert_int_equal(plx_rqb_task_submit(&b, &spec, 1, 100, &err), PLX_OK);
    Plexa__Envelope *e = packed(&b);
    Plexa__TaskSpec *s = e->task_submit->tasks[0];
    assert_true(e->task_submit->quiet);
    assert_int_equal(e->task_submit->first_id, 100);
    assert_int_equal(s->elements, 7);
    assert_int_equal(s->buf_count, 2);
    assert_int_equal(s->args[0]->bytes, 0);
    assert_int_equal(s->recovery->buf_base, 1);
    assert_int_equal(s->recovery->buf_count, 1);
    assert_int_equal(s->recovery->args[0]->bytes, 0);   /* local to its own run */
    assert_int_equal(b.bufs->bufs[1]->len, 8);
    plexa__envelope__free_unpacked(e, NULL);
    plx_rqb_clear(&b);

    bad = rec;
    bad.recovery = &rec;
    spec.recovery = &bad;
    plx_rqb_init(&b, &err);
    assert_int_equal(plx_rqb_task_submit(&b, &spec, 1, 0, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "cannot have a recovery task of its own"));
    plx_rqb_clear(&b);
    plx_value_destroy(&p);
    plx_value_destroy(&r);
}

/* More frame buffers than a message may carry: refused before sending. */
static void test_task_submit_buffer_limit(void **state)
{
    plx_limits_t lim = plx_limits_default();
    size_t n = lim.max_bufs + 1;
    plx_value_t **v = calloc(n, sizeof *v);
    plx_task_spec_t *specs = calloc(n, sizeof *specs);
    assert_non_null(v);
    assert_non_null(specs);
    for (size_t i = 0; i < n; i++) {
        v[i] = plx_value_bytes(&i, sizeof i);   /* distinct: no shared run */
        specs[i] = plx_task_spec_init();
        specs[i].kind = "map";
        specs[i].args = (const plx_value_t *const *)&v[i];
        specs[i].nargs = 1;
    }
    plx_rqb_t b;
    plx_err_t err = {0};
    assert_int_equal(plx_rqb_init(&b, &err), PLX_OK);
    assert_int_equal(plx_rqb_task_submit(&b, specs, n, 0, &err), PLX_ELIMIT);
    assert_non_null(strstr(err.msg, "submit them in smaller batches"));
    plx_rqb_clear(&b);
    for (size_t i = 0; i < n; i++)
        plx_value_destroy(&v[i]);
    free(v);
    free(specs);
}

/* ---- replies --------------------------------------------------------------------- */

static Plexa__Value *wire_i64(int64_t i)
{
    Plexa__Value *v = malloc(sizeof *v);
    plexa__value__init(v);
    v->kind_case = PLEXA__VALUE__KIND_I64;
    v->i64 = i;
    return v;
}

static Plexa__Value *wire_bytes(uint32_t idx)
{
    Plexa__Value *v = malloc(sizeof *v);
    plexa__value__init(v);
    v->kind_case = PLEXA__VALUE__KIND_BYTES;
    v->bytes = idx;
    return v;
}

/* engine 0 pulled (7, its buffer 0 = the message's 1), engine 1 raised
 * with no type name, engine 2 names a buffer the message lacks. */
static void test_decode_multi(void **state)
{
    plx_msg_t *m = plx_msg_new(0);
    plx_buf_t *b0 = plx_buf_copy("zero", 4), *b1 = plx_buf_copy("one", 3);
    plx_msg_add_buf(m, b0);
    plx_msg_add_buf(m, b1);
    Plexa__Value *v0[] = { wire_i64(7), wire_bytes(0) }, *v2[] = { wire_bytes(5) };
    Plexa__ExecuteResult x = PLEXA__EXECUTE_RESULT__INIT;
    x.has_number = 1;
    x.number = 3;
    x.stdout = "out";
    Plexa__RemoteError re = PLEXA__REMOTE_ERROR__INIT;
    re.evalue = "boom";
    Plexa__EngineReply r0 = PLEXA__ENGINE_REPLY__INIT, r1 = PLEXA__ENGINE_REPLY__INIT,
                       r2 = PLEXA__ENGINE_REPLY__INIT;
    r0.has_engine_id = 1;
    r0.engine_id = 0;
    r0.method = "pull";
    r0.has_buf_base = 1;
    r0.buf_base = 1;
    r0.n_values = 2;
    r0.values = v0;
    r0.execute = &x;
    r1.has_engine_id = 1;
    r1.engine_id = 1;
    r1.error = &re;
    r2.n_values = 1;
    r2.values = v2;
    Plexa__EngineReply *rs[] = { &r0, &r1, &r2 };
    Plexa__MultiReply mr = PLEXA__MULTI_REPLY__INIT;
    mr.n_replies = 3;
    mr.replies = rs;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_MULTI_REPLY;
    env.multi_reply = &mr;

    plx_multi_reply_t *out = NULL;
    plx_err_t err = {0};
    assert_int_equal(plx_decode_multi(m, &env, &out, &err), PLX_OK);
    plx_msg_destroy(&m);   /* values keep their buffers */
    assert_int_equal(out->n, 3);
    plx_engine_reply_t *e = &out->r[0];
    assert_string_equal(e->method, "pull");
    assert_true(e->has_execute);
    assert_int_equal(e->number, 3);
    assert_string_equal(e->stdout_text, "out");
    assert_string_equal(e->input, "");
    assert_int_equal(e->nvalues, 2);
    int64_t i;
    assert_int_equal(plx_value_as_i64(e->values[0], &i), PLX_OK);
    assert_int_equal(i, 7);
    size_t len;
    assert_ptr_equal(plx_value_as_bytes(e->values[1], &len), b1->data);   /* no copy */
    assert_null(e->ename);
    e = &out->r[1];
    assert_string_equal(e->ename, "RemoteError");
    assert_string_equal(e->evalue, "boom");
    assert_string_equal(e->traceback, "");
    assert_null(e->method);
    assert_false(e->has_execute);
    e = &out->r[2];
    assert_int_equal(e->engine_id, -1);
    assert_int_equal(e->nvalues, 0);
    assert_non_null(strstr(e->fault, "names buffer 5"));
    plx_multi_reply_destroy(&out);
    assert_null(out);
    plx_buf_unref(&b0);
    plx_buf_unref(&b1);
    free(v0[0]);
    free(v0[1]);
    free(v2[0]);
}

static void test_decode_queues(void **state)
{
    char *pending[] = { "execute: a" }, *queue[] = { "push: b", "pull: c" };
    Plexa__EngineQueue q0 = PLEXA__ENGINE_QUEUE__INIT;
    q0.has_engine_id = 1;
    q0.engine_id = 4;
    q0.n_pending = 1;
    q0.pending = pending;
    q0.n_queue = 2;
    q0.queue = queue;
    Plexa__EngineQueue *qs[] = { &q0 };
    Plexa__QueueStatusReply qr = PLEXA__QUEUE_STATUS_REPLY__INIT;
    qr.n_engines = 1;
    qr.engines = qs;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_QUEUE_STATUS_REPLY;
    env.queue_status_reply = &qr;
    plx_queue_status_t *q = NULL;
    assert_int_equal(plx_decode_queue_status(&env, &q, NULL), PLX_OK);
    assert_int_equal(q->n, 1);
    assert_int_equal(q->e[0].engine_id, 4);
    assert_string_equal(q->e[0].pending[0], "execute: a");
    assert_int_equal(q->e[0].nqueue, 2);
    assert_string_equal(q->e[0].queue[1], "pull: c");
    plx_queue_status_destroy(&q);

    uint64_t failed[] = { 3, 8 };
    Plexa__TaskQueueStatusReply tq = PLEXA__TASK_QUEUE_STATUS_REPLY__INIT;
    tq.pending = 5;
    tq.failed = 2;
    tq.n_failed_ids = 2;
    tq.failed_ids = failed;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS_REPLY;
    env.task_queue_status_reply = &tq;
    plx_task_queue_t *t = NULL;
    assert_int_equal(plx_decode_task_queue(&env, &t, NULL), PLX_OK);
    assert_int_equal(t->count[PLX_TQ_PENDING], 5);
    assert_int_equal(t->count[PLX_TQ_FAILED], 2);
    assert_int_equal(t->nids[PLX_TQ_SCHEDULED], 0);
    assert_int_equal(t->nids[PLX_TQ_FAILED], 2);
    assert_int_equal(t->ids[PLX_TQ_FAILED][1], 8);
    plx_task_queue_destroy(&t);
}

static void test_decode_task_results(void **state)
{
    plx_msg_t *m = plx_msg_new(0);
    plx_buf_t *b0 = plx_buf_copy("res", 3);
    plx_msg_add_buf(m, b0);
    Plexa__Value *v[] = { wire_bytes(0) };
    Plexa__TaskResult ok = PLEXA__TASK_RESULT__INIT, gone = PLEXA__TASK_RESULT__INIT;
    ok.task_id = 7;
    ok.has_status = 1;
    ok.status = PLEXA__TASK_STATUS__TASK_OK;
    ok.has_engine_id = 1;
    ok.engine_id = 1;
    ok.n_values = 1;
    ok.values = v;
    ok.has_submitted = 1;
    ok.submitted = 100.5;
    ok.has_completed = 1;
    ok.completed = 101.0;
    Plexa__RemoteError re = PLEXA__REMOTE_ERROR__INIT;
    re.ename = "IndexError";
    re.evalue = "no task 9";
    gone.task_id = 9;
    gone.has_status = 1;
    gone.status = PLEXA__TASK_STATUS__TASK_UNKNOWN;
    gone.error = &re;
    Plexa__TaskResult *rs[] = { &ok, &gone };
    Plexa__TaskResults trs = PLEXA__TASK_RESULTS__INIT;
    trs.n_results = 2;
    trs.results = rs;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_RESULTS;
    env.task_results = &trs;
    plx_task_replies_t *t = NULL;
    assert_int_equal(plx_decode_task_results(m, &env, &t, NULL), PLX_OK);
    assert_int_equal(t->n, 2);
    assert_int_equal(t->r[0].task_id, 7);
    assert_int_equal(t->r[0].status, PLX_TASK_OK);
    assert_true(t->r[0].has_engine_id);
    assert_int_equal(t->r[0].nvalues, 1);
    size_t len;
    assert_ptr_equal(plx_value_as_bytes(t->r[0].values[0], &len), b0->data);
    assert_true(t->r[0].has_submitted && !t->r[0].has_started && t->r[0].has_completed);
    assert_true(t->r[0].submitted == 100.5);
    assert_null(t->r[0].ename);
    assert_false(t->r[1].has_engine_id);
    assert_int_equal(t->r[1].status, PLX_TASK_UNKNOWN);
    assert_string_equal(t->r[1].ename, "IndexError");
    assert_string_equal(t->r[1].evalue, "no task 9");
    plx_task_replies_destroy(&t);
    plx_msg_destroy(&m);
    plx_buf_unref(&b0);
    free(v[0]);
}

/* A request completed with env (packed and unpacked as the client's I/O
 * thread does), carrying bufs. */
static plx_request_t *answered(const Plexa__Envelope *env, plx_buf_t **bufs, size_t n)
{
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(env, &err);
    assert_non_null(m);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(plx_msg_add_buf(m, bufs[i]), PLX_OK);
    Plexa__Envelope *e = plx_envelope_unpack(m, &err);
    assert_non_null(e);
    plx_request_t *req = plx_request_new(5);
    plx_request_complete(req, m, e);   /* takes both */
    return req;
}

/* The exported decoders on completed requests: the reply they expect, an
 * unexpected kind (EPROTO), an Error reply (its code and message). */
static void test_reply_decoders_on_requests(void **state)
{
    plx_err_t err = {0};
    Plexa__TaskIds ti = PLEXA__TASK_IDS__INIT;
    ti.has_first = 1;
    ti.first = 40;
    ti.has_count = 1;
    ti.count = 3;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_IDS;
    env.task_ids = &ti;
    plx_request_t *req = answered(&env, NULL, 0);
    uint64_t first;
    uint32_t count;
    assert_int_equal(plx_reply_task_ids(req, &first, &count, &err), PLX_OK);
    assert_int_equal(first, 40);
    assert_int_equal(count, 3);
    assert_int_equal(plx_reply_ack(req, &err), PLX_OK);
    plx_multi_reply_t *mr = NULL;
    assert_int_equal(plx_reply_multi(req, &mr, &err), PLX_EPROTO);
    assert_null(mr);
    assert_non_null(strstr(err.msg, "not a multi-engine reply"));
    plx_request_destroy(&req);

    plx_buf_t *b = plx_buf_copy("payload", 7);
    Plexa__Value *v[] = { wire_bytes(0) };
    Plexa__EngineReply er = PLEXA__ENGINE_REPLY__INIT;
    er.has_engine_id = 1;
    er.engine_id = 2;
    er.n_values = 1;
    er.values = v;
    Plexa__EngineReply *ers[] = { &er };
    Plexa__MultiReply multi = PLEXA__MULTI_REPLY__INIT;
    multi.n_replies = 1;
    multi.replies = ers;
    env.body_case = PLEXA__ENVELOPE__BODY_MULTI_REPLY;
    env.multi_reply = &multi;
    req = answered(&env, &b, 1);
    assert_int_equal(plx_reply_multi(req, &mr, &err), PLX_OK);
    plx_request_destroy(&req);   /* the values keep the reply's buffer */
    size_t len;
    assert_memory_equal(plx_value_as_bytes(mr->r[0].values[0], &len), "payload", 7);
    plx_multi_reply_destroy(&mr);
    plx_buf_unref(&b);
    free(v[0]);

    Plexa__Error e = PLEXA__ERROR__INIT;
    e.has_code = 1;
    e.code = PLX_EBADENGINE;
    e.message = "invalid engine id: 9";
    env.body_case = PLEXA__ENVELOPE__BODY_ERROR;
    env.error = &e;
    req = answered(&env, NULL, 0);
    plx_task_replies_t *t = NULL;
    assert_int_equal(plx_reply_task_results(req, &t, &err), PLX_EBADENGINE);
    assert_string_equal(err.msg, "invalid engine id: 9");
    plx_request_destroy(&req);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_push_names_values_by_reference),
    cmocka_unit_test(test_bad_arguments),
    cmocka_unit_test(test_small_requests),
    cmocka_unit_test(test_call_args),
    cmocka_unit_test(test_task_submit_shares_buffers),
    cmocka_unit_test(test_task_submit_recovery_quiet),
    cmocka_unit_test(test_task_submit_buffer_limit),
    cmocka_unit_test(test_decode_multi),
    cmocka_unit_test(test_decode_queues),
    cmocka_unit_test(test_decode_task_results),
    cmocka_unit_test(test_reply_decoders_on_requests),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("rq", tests, NULL, NULL))
