/*
 * Direct transfers between engines, driven in-process: pushes of plexa.ref
 * values (core/controller/plx_mec_refs.c) and broadcast trees
 * (plx_mec_bcast.c). Pushes of plexa.ref values are
 * in-process: a real controller, fake engines holding bytes values by name
 * and a fake multi-engine client, over real TCP (sched_harness.c). Each
 * race the controller must settle is made to happen: a source that dies,
 * a target that dies, a client that goes, a cancel and a clear_queue while
 * the push waits for its values; and a source that answers with nonsense.
 * Under the sanitizers, nothing leaks in any of them.
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

static int setup(void **state)
{
    plx_controller_opts_t o = plx_controller_opts_default();
    o.heartbeat_period = 0.2;
    o.engine_inflight = 1;   /* a held engine keeps what follows in the controller */
    harness_setup(o);
    return 0;
}

/* Every push with a payload goes as a tree where it can; two requests
 * in flight per engine, so that a solo share's hold shows. */
static int setup_bcast(void **state)
{
    plx_controller_opts_t o = plx_controller_opts_default();
    o.heartbeat_period = 0.2;
    o.engine_inflight = 2;
    o.broadcast_min = 1;
    harness_setup(o);
    return 0;
}

static int teardown(void **state)
{
    harness_teardown();
    return 0;
}

/* ---- building pushes ------------------------------------------------------ */

typedef struct push {
    Plexa__NamedValue  nv[8];
    Plexa__NamedValue *nvp[8];
    Plexa__Value       v[8];
    Plexa__Ref         ref[8];
    size_t             n;
    plx_msg_t         *bufs;     /* the client's own buffers */
    Plexa__Push        body;
    Plexa__Targets     targets;
    int32_t            ids[8];
    Plexa__Envelope    env;
} push_t;

static void push_init(push_t *p, const fake_t *const *targets, size_t nt)
{
    memset(p, 0, sizeof *p);
    p->bufs = plx_msg_new(0);
    plexa__targets__init(&p->targets);
    for (size_t i = 0; i < nt; i++)
        p->ids[i] = targets[i]->engine_id;
    p->targets.n_ids = nt;
    p->targets.ids = p->ids;
}

static Plexa__Value *push_add(push_t *p, const char *name)
{
    size_t i = p->n++;
    plexa__named_value__init(&p->nv[i]);
    plexa__value__init(&p->v[i]);
    p->nv[i].name = (char *)name;
    p->nv[i].value = &p->v[i];
    p->nvp[i] = &p->nv[i];
    return &p->v[i];
}

static void push_ref(push_t *p, const char *name, const fake_t *src, const char *key)
{
    Plexa__Value *v = push_add(p, name);
    plexa__ref__init(&p->ref[p->n - 1]);
    p->ref[p->n - 1].has_engine = 1;
    p->ref[p->n - 1].engine = src ? src->engine_id : 77;
    p->ref[p->n - 1].key = (char *)key;
    v->kind_case = PLEXA__VALUE__KIND_REF;
    v->ref = &p->ref[p->n - 1];
}

static void push_bytes(push_t *p, const char *name, const char *s)
{
    Plexa__Value *v = push_add(p, name);
    plx_buf_t *b = plx_buf_copy(s, strlen(s));
    plx_msg_add_buf(p->bufs, b);
    plx_buf_unref(&b);
    v->kind_case = PLEXA__VALUE__KIND_BYTES;
    v->bytes = p->bufs->nbufs - 1;
}

/* Send it; its envelope id is p->env.id. */
static void push_send(fake_t *cl, push_t *p)
{
    p->body = (Plexa__Push)PLEXA__PUSH__INIT;
    p->body.n_values = p->n;
    p->body.values = p->nvp;
    p->env = (Plexa__Envelope)PLEXA__ENVELOPE__INIT;
    p->env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
    p->env.push = &p->body;
    p->env.targets = &p->targets;
    plx_envelope_free(&cl->reply);
    plx_msg_destroy(&cl->reply_msg);
    send_env(cl, &p->env, p->bufs);
}

static void push_done(push_t *p)
{
    plx_msg_destroy(&p->bufs);
}

static Plexa__MultiReply *wait_multi(fake_t *cl)
{
    assert_true(run_until(has_reply, cl));
    if (cl->reply->body_case == PLEXA__ENVELOPE__BODY_ERROR)
        fail_msg("error reply: %s", cl->reply->error->message);
    assert_int_equal(cl->reply->body_case, PLEXA__ENVELOPE__BODY_MULTI_REPLY);
    return cl->reply->multi_reply;
}

static void assert_value(const fake_t *e, const char *name, const char *want)
{
    size_t len = 0;
    const uint8_t *got = mec_fake_get(e, name, &len);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
}

static int held_one(void *arg) { return ((fake_t *)arg)->nmheld >= 1; }
static int seen_one(void *arg) { return ((fake_t *)arg)->mec_seen >= 1; }

/* Engine a (mec_hold set) holds a push of cl's, unanswered: what is sent
 * to it next waits in the controller (engine_inflight is 1). */
static void keep_busy(fake_t *cl, fake_t *a, push_t *busy)
{
    push_init(busy, (const fake_t *[]){ a }, 1);
    push_bytes(busy, "w", "w");
    push_send(cl, busy);
    assert_true(run_until(held_one, a));
}

/* ---- tests ----------------------------------------------------------------- */

/* Values from two sources, one renamed twice, beside the client's own
 * bytes (the pulled buffers follow the client's: their indices move), to
 * two targets, one of which is a source. */
static void test_values_arrive(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO);
    mec_fake_set(a, "x", "from a", 6);
    mec_fake_set(b, "x", "from b!", 7);
    push_t p;
    push_init(&p, (const fake_t *[]){ b, c }, 2);
    push_bytes(&p, "own", "client's");
    push_ref(&p, "ya", a, "x");
    push_ref(&p, "yb", b, "x");
    push_ref(&p, "za", a, "x");
    push_send(cl, &p);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_int_equal(mr->n_replies, 2);
    for (size_t i = 0; i < 2; i++)
        assert_null(mr->replies[i]->error);
    for (fake_t *t = b; t; t = t == b ? c : NULL) {
        assert_value(t, "own", "client's");
        assert_value(t, "ya", "from a");
        assert_value(t, "yb", "from b!");
        assert_value(t, "za", "from a");
    }
    assert_int_equal(a->mec_seen, 1);   /* one fetch for two refs to it */
    push_done(&p);
    DESTROY(&a, &b, &c, &cl);
}

/* The fetch waits behind what the source was sent before; the push's
 * shares hold their engines' queues, so what the targets are sent after
 * the push waits for it. */
static void test_order_kept(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->mec_hold = 1;
    push_t first, p, after;
    push_init(&first, (const fake_t *[]){ a }, 1);
    push_bytes(&first, "x", "new");
    push_send(cl, &first);
    assert_true(run_until(held_one, a));
    mec_fake_set(a, "x", "old", 3);   /* what a would answer if asked too early */
    push_init(&p, (const fake_t *[]){ b }, 1);
    push_ref(&p, "y", a, "x");
    push_send(cl, &p);
    push_init(&after, (const fake_t *[]){ b }, 1);
    push_bytes(&after, "y", "later");
    push_send(cl, &after);
    run_for(50);
    assert_int_equal(b->mec_seen, 0);   /* held: neither the push nor what follows */
    assert_int_equal(a->nmheld, 1);     /* the fetch waits in the controller */
    mec_fake_release(a);
    assert_true(run_until(has_reply, cl));
    run_for(50);
    assert_int_equal(b->mec_seen, 2);
    assert_value(b, "y", "later");      /* the push first, then the later one */
    assert_value(a, "x", "new");
    push_done(&first);
    push_done(&p);
    push_done(&after);
    DESTROY(&a, &b, &cl);
}

static void test_unknown_name_fails_every_target(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO);
    push_t p;
    push_init(&p, (const fake_t *[]){ b, c }, 2);
    push_ref(&p, "y", a, "nope");
    push_bytes(&p, "z", "zz");
    push_send(cl, &p);
    Plexa__MultiReply *mr = wait_multi(cl);
    for (size_t i = 0; i < 2; i++) {
        assert_non_null(mr->replies[i]->error);
        assert_string_equal(mr->replies[i]->error->ename, "NameError");
        assert_non_null(strstr(mr->replies[i]->error->evalue, "'nope' is not defined"));
        assert_non_null(strstr(mr->replies[i]->error->evalue, "from engine"));
    }
    assert_int_equal(b->mec_seen + c->mec_seen, 0);   /* nothing half-pushed */
    push_done(&p);
    DESTROY(&a, &b, &c, &cl);
}

static void test_refused_before_queueing(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    push_t p;
    push_init(&p, (const fake_t *[]){ a }, 1);
    push_ref(&p, "y", NULL, "x");   /* engine 77: not registered */
    push_send(cl, &p);
    assert_true(run_until(has_reply, cl));
    assert_int_equal(cl->reply->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(cl->reply->error->message, "engine=77) names no registered engine"));
    push_done(&p);
    /* Where an engine fetches from is the controller's to say, not a client's. */
    push_init(&p, (const fake_t *[]){ a }, 1);
    push_ref(&p, "y", a, "x");
    p.ref[0].url = "plx+tcp://10.0.0.1:9/00000000000000000000000000000000";
    push_send(cl, &p);
    assert_true(run_until(has_reply, cl));
    assert_int_equal(cl->reply->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(cl->reply->error->message, "names no place to fetch from"));
    push_done(&p);
    /* 1025 refs: over the limit. */
    static Plexa__NamedValue nv[1025];
    static Plexa__NamedValue *nvp[1025];
    Plexa__Value v = PLEXA__VALUE__INIT;
    Plexa__Ref r = PLEXA__REF__INIT;
    r.has_engine = 1;
    r.engine = a->engine_id;
    r.key = "x";
    v.kind_case = PLEXA__VALUE__KIND_REF;
    v.ref = &r;
    for (size_t i = 0; i < 1025; i++) {
        plexa__named_value__init(&nv[i]);
        nv[i].name = "y";
        nv[i].value = &v;
        nvp[i] = &nv[i];
    }
    Plexa__Push body = PLEXA__PUSH__INIT;
    body.n_values = 1025;
    body.values = nvp;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
    env.push = &body;
    Plexa__Envelope *rep = request(cl, &env, NULL);
    assert_int_equal(rep->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(rep->error->message, "1025 plexa.refs; at most 1024"));
    assert_int_equal(a->mec_seen, 0);
    DESTROY(&a, &cl);
}

/* The source dies holding the request before the fetch: the push fails on
 * every target, whose queues go on. */
static void test_source_dies(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    mec_fake_set(a, "x", "x", 1);
    a->mec_hold = 1;
    push_t busy, p, after;
    keep_busy(cl, a, &busy);
    push_init(&p, (const fake_t *[]){ b }, 1);
    push_ref(&p, "y", a, "x");
    push_send(cl, &p);
    run_for(20);
    fake_destroy(&a);   /* dies */
    /* Two replies come: the busy push's (EngineError) and p's. Wait for p's. */
    int got = 0;
    for (int i = 0; i < 2 && !got; i++) {
        assert_true(run_until(has_reply, cl));
        if (cl->reply->reply_to == p.env.id) {
            Plexa__MultiReply *mr = cl->reply->multi_reply;
            assert_non_null(mr->replies[0]->error);
            assert_string_equal(mr->replies[0]->error->ename, "EngineError");
            got = 1;
        } else {
            plx_envelope_free(&cl->reply);
            plx_msg_destroy(&cl->reply_msg);
        }
    }
    assert_true(got);
    push_init(&after, (const fake_t *[]){ b }, 1);
    push_bytes(&after, "y", "later");
    push_send(cl, &after);
    assert_null(wait_multi(cl)->replies[0]->error);
    assert_value(b, "y", "later");
    push_done(&busy);
    push_done(&p);
    push_done(&after);
    DESTROY(&b, &cl);
}

/* A target dies while the push waits: the other target gets the value,
 * the client an EngineError for the dead one. */
static void test_target_dies(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO);
    mec_fake_set(a, "x", "value", 5);
    a->mec_hold = 1;
    push_t p;
    push_init(&p, (const fake_t *[]){ b, c }, 2);
    push_ref(&p, "y", a, "x");
    push_send(cl, &p);
    assert_true(run_until(held_one, a));
    int32_t cid = c->engine_id;
    fake_destroy(&c);
    run_for(50);
    mec_fake_release(a);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_null(mr->replies[0]->error);
    assert_int_equal(mr->replies[1]->engine_id, cid);
    assert_string_equal(mr->replies[1]->error->ename, "EngineError");
    assert_value(b, "y", "value");
    push_done(&p);
    DESTROY(&a, &b, &cl);
}

/* The client goes while its push waits: the push still completes on the
 * targets (as any request already queued), and nothing leaks. */
static void test_client_goes(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    mec_fake_set(a, "x", "value", 5);
    a->mec_hold = 1;
    push_t p;
    push_init(&p, (const fake_t *[]){ b }, 1);
    push_ref(&p, "y", a, "x");
    push_send(cl, &p);
    assert_true(run_until(held_one, a));
    fake_destroy(&cl);
    run_for(50);
    mec_fake_release(a);
    assert_true(run_until(seen_one, b));
    run_for(20);
    assert_value(b, "y", "value");
    push_done(&p);
    DESTROY(&a, &b);
}

static Plexa__Envelope *clear(fake_t *cl, const fake_t *engine, uint64_t req)
{
    Plexa__ClearQueue cq = PLEXA__CLEAR_QUEUE__INIT;
    Plexa__Targets t = PLEXA__TARGETS__INIT;
    int32_t id = engine ? engine->engine_id : 0;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_CLEAR_QUEUE;
    env.clear_queue = &cq;
    if (engine) {
        t.n_ids = 1;
        t.ids = &id;
        env.targets = &t;
    } else {
        cq.n_requests = 1;
        cq.requests = &req;
    }
    return request(cl, &env, NULL);
}

/* A future's cancel() while the push waits for its values: it may be
 * cancelled (nothing was sent to its targets), and the targets' queues
 * it held go on. */
static void test_cancel_while_waiting(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    fake_t *cl2 = fake_new(2, B_ECHO);
    mec_fake_set(a, "x", "value", 5);
    a->mec_hold = 1;
    push_t busy, p, other;
    keep_busy(cl, a, &busy);
    push_init(&p, (const fake_t *[]){ b }, 1);
    push_ref(&p, "y", a, "x");
    push_send(cl, &p);
    run_for(20);   /* the controller has it before the other client's */
    push_init(&other, (const fake_t *[]){ b }, 1);   /* another client's, behind it */
    push_bytes(&other, "o", "other");
    push_send(cl2, &other);
    run_for(20);
    assert_int_equal(b->mec_seen, 0);
    Plexa__Envelope *r = clear(cl, NULL, p.env.id);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_MULTI_REPLY);
    assert_null(wait_multi(cl2)->replies[0]->error);   /* no longer held up */
    assert_value(b, "o", "other");
    mec_fake_release(a);
    run_for(50);
    assert_value(b, "y", NULL);
    push_done(&busy);
    push_done(&p);
    push_done(&other);
    DESTROY(&a, &b, &cl, &cl2);
}

/* clear_queue on the source drops the fetch waiting there: the push fails
 * with QueueCleared. On a target, it drops the held share. */
static void test_clear_queue(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO), *cl2 = fake_new(2, B_ECHO);
    mec_fake_set(a, "x", "value", 5);
    a->mec_hold = 1;
    push_t busy, p;
    keep_busy(cl, a, &busy);
    push_init(&p, (const fake_t *[]){ b, c }, 2);
    push_ref(&p, "y", a, "x");
    push_send(cl2, &p);
    run_for(20);
    clear(cl, c, 0);   /* c's held share goes first */
    clear(cl, a, 0);   /* then the fetch */
    Plexa__MultiReply *mr = wait_multi(cl2);
    assert_string_equal(mr->replies[0]->error->ename, "QueueCleared");
    assert_string_equal(mr->replies[1]->error->ename, "QueueCleared");
    mec_fake_release(a);
    run_for(50);
    assert_int_equal(b->mec_seen + c->mec_seen, 0);
    push_done(&busy);
    push_done(&p);
    DESTROY(&a, &b, &c, &cl, &cl2);
}

/* A source answering with a value that names a buffer it did not send
 * fails the push, naming the source. */
static void test_malformed_answer(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    mec_fake_set(a, "x", "value", 5);
    a->bad_pull = 1;
    push_t p;
    push_init(&p, (const fake_t *[]){ b }, 1);
    push_ref(&p, "y", a, "x");
    push_send(cl, &p);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_string_equal(mr->replies[0]->error->ename, "ProtocolError");
    assert_non_null(strstr(mr->replies[0]->error->evalue, "malformed value"));
    assert_int_equal(b->mec_seen, 0);
    push_done(&p);
    DESTROY(&a, &b, &cl);
}

/* A source that serves its values itself: each target's share keeps its
 * refs, holding the source's URL with a ticket of its own; the source is
 * told when the push is over. A source on shared memory is not asked. */
static void test_direct(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO);
    a->serve_direct = 1;
    push_t p;
    push_init(&p, (const fake_t *[]){ b, c }, 2);
    push_ref(&p, "y", a, "x");
    push_ref(&p, "w", a, "v");
    push_bytes(&p, "own", "mine");
    push_send(cl, &p);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_null(mr->replies[0]->error);
    assert_null(mr->replies[1]->error);
    assert_int_equal(a->tickets_asked, 2);   /* one per target */
    size_t lb, lc, lw;
    const uint8_t *yb = mec_fake_get(b, "y", &lb), *yc = mec_fake_get(c, "y", &lc);
    const uint8_t *wb = mec_fake_get(b, "w", &lw);
    assert_non_null(yb);
    assert_non_null(yc);
    char sb[700], sc[700], sw[700];
    snprintf(sb, sizeof sb, "%.*s", (int)lb, (const char *)yb);
    snprintf(sc, sizeof sc, "%.*s", (int)lc, (const char *)yc);
    snprintf(sw, sizeof sw, "%.*s", (int)lw, (const char *)wb);
    assert_non_null(strstr(sb, "plx+tcp://127.0.0.1:9/"));
    assert_null(strstr(sb, "/00000000000000000000000000000000|"));   /* a ticket, not zeros */
    assert_string_not_equal(sb, sc);                  /* a ticket per target */
    assert_int_equal(sb[strlen(sb) - 1], '0');        /* y is the source's key 0 ... */
    assert_int_equal(sw[strlen(sw) - 1], '1');        /* ... and w its key 1 */
    assert_memory_equal(sb, sw, strlen(sb) - 1);      /* same source, same ticket */
    assert_value(b, "own", "mine");
    run_for(50);
    assert_int_equal(a->tickets_ended, 2);
    push_done(&p);
    DESTROY(&a, &b, &c, &cl);
}

/* A source that says it serves somewhere other than where it connects
 * from is not believed: no target is sent there. */
static void test_direct_elsewhere_refused(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = 2;
    push_t p;
    push_init(&p, (const fake_t *[]){ b }, 1);
    push_ref(&p, "y", a, "x");
    push_send(cl, &p);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_string_equal(mr->replies[0]->error->ename, "ProtocolError");
    assert_non_null(strstr(mr->replies[0]->error->evalue, "serves the values at 10.9.9.9, not at "
                                                          "the address it connects from"));
    assert_int_equal(b->mec_seen, 0);
    run_for(50);
    assert_int_equal(a->tickets_ended, 1);   /* and told to drop them */
    push_done(&p);
    DESTROY(&a, &b, &cl);
}

/* A target that could not reach the source directly gets refs' values
 * through the controller from then on. */
static void test_unreachable_then_relayed(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = 1;
    b->fail_direct = 1;
    mec_fake_set(a, "x", "value", 5);
    push_t p;
    push_init(&p, (const fake_t *[]){ b }, 1);
    push_ref(&p, "y", a, "x");
    push_send(cl, &p);
    assert_string_equal(wait_multi(cl)->replies[0]->error->ename, "DirectTransferError");
    assert_int_equal(a->tickets_asked, 1);
    push_send(cl, &p);
    assert_null(wait_multi(cl)->replies[0]->error);
    assert_int_equal(a->tickets_asked, 1);   /* asked for the values themselves */
    assert_value(b, "y", "value");
    push_done(&p);
    DESTROY(&a, &b, &cl);
}

/* ---- broadcast trees --------------------------------------------------------- */

/* What engine e holds as name: "URL|index" when it was sent a ref. */
static void held(const fake_t *e, const char *name, char *out, size_t len)
{
    size_t n = 0;
    const uint8_t *v = mec_fake_get(e, name, &n);
    assert_non_null(v);
    snprintf(out, len, "%.*s", (int)n, (const char *)v);
}

static void assert_ref(const fake_t *e, const char *name)
{
    char v[700];
    held(e, name, v, sizeof v);
    assert_non_null(strstr(v, "plx+tcp://127.0.0.1:9/"));
    assert_int_equal(v[strlen(v) - 1], '0');
}

static void push_big(fake_t *cl, push_t *p, const fake_t *const *targets, size_t n)
{
    push_init(p, targets, n);
    push_bytes(p, "big", "data");
    push_send(cl, p);
}

static void assert_all_ok(fake_t *cl, size_t n)
{
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_int_equal(mr->n_replies, n);
    for (size_t i = 0; i < n; i++)
        assert_null(mr->replies[i]->error);
}

/* Four engines: the controller sends to a, a serves b and c, b serves d,
 * each with a ticket of its own, asked to relay ahead of its share (a
 * pipelined tree); each source is told to drop the values once its
 * children have them. */
static void test_bcast_tree(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *d = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = b->serve_direct = c->serve_direct = d->serve_direct = 1;
    push_t p;
    push_big(cl, &p, (const fake_t *[]){ a, b, c, d }, 4);
    assert_all_ok(cl, 4);
    assert_value(a, "big", "data");
    assert_ref(b, "big");
    assert_ref(c, "big");
    assert_ref(d, "big");
    char vb[700], vc[700];
    held(b, "big", vb, sizeof vb);
    held(c, "big", vc, sizeof vc);
    assert_string_not_equal(vb, vc);   /* a ticket each */
    assert_int_equal(a->tickets_asked, 2);
    assert_int_equal(b->tickets_asked, 1);
    assert_int_equal(c->tickets_asked + d->tickets_asked, 0);
    assert_int_equal(a->relays_ahead, 1);
    assert_int_equal(b->relays_ahead, 1);
    run_for(50);
    assert_int_equal(a->tickets_ended, 2);
    assert_int_equal(b->tickets_ended, 1);
    push_done(&p);
    DESTROY(&a, &b, &c, &d, &cl);
}

/* A source that answers with the values (it cannot serve): its children
 * get them from the controller. */
static void test_bcast_source_cannot_serve(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO);
    push_t p;
    push_big(cl, &p, (const fake_t *[]){ a, b, c }, 3);
    assert_all_ok(cl, 3);
    assert_value(a, "big", "data");
    assert_value(b, "big", "data");
    assert_value(c, "big", "data");
    assert_int_equal(a->tickets_asked, 2);
    push_done(&p);
    DESTROY(&a, &b, &c, &cl);
}

/* A child that cannot reach its source gets its share again with the
 * values, before what the client sent it next (which was held back: the
 * share was solo); from then on it gets values from the controller. */
static void test_bcast_child_cannot_fetch(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = b->serve_direct = 1;
    b->fail_direct = 1;
    push_t p, after, again;
    push_big(cl, &p, (const fake_t *[]){ a, b }, 2);
    push_init(&after, (const fake_t *[]){ b }, 1);
    push_bytes(&after, "big", "later");
    push_send(cl, &after);
    assert_true(run_until(two_replies, cl));
    assert_int_equal(cl->replies_failed, 0);
    assert_int_equal(cl->reply->reply_to, after.env.id);
    assert_value(b, "big", "later");   /* the resent share did not overtake */
    push_big(cl, &again, (const fake_t *[]){ a, b }, 2);
    assert_all_ok(cl, 2);
    assert_value(b, "big", "data");
    assert_int_equal(a->tickets_asked, 1);   /* b is not a child any more */
    push_done(&p);
    push_done(&after);
    push_done(&again);
    DESTROY(&a, &b, &cl);
}

/* A push holding a pickle goes to every target from the controller: an
 * engine serving it would choose code its children run. */
static void test_bcast_not_for_pickles(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *cl = fake_new(2, B_ECHO);
    a->serve_direct = b->serve_direct = 1;
    push_t p;
    push_init(&p, (const fake_t *[]){ a, b }, 2);
    push_bytes(&p, "big", "data");
    Plexa__Pickle pk = PLEXA__PICKLE__INIT;
    pk.has_buf = 1;
    pk.buf = 0;
    Plexa__Value *v = push_add(&p, "obj");
    v->kind_case = PLEXA__VALUE__KIND_PICKLE;
    v->pickle = &pk;
    push_send(cl, &p);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_string_equal(mr->replies[0]->error->ename, "TypeError");   /* the fakes hold bytes */
    assert_string_equal(mr->replies[1]->error->ename, "TypeError");
    assert_int_equal(a->tickets_asked + b->tickets_asked, 0);
    assert_int_equal(a->mec_seen + b->mec_seen, 2);
    push_done(&p);
    DESTROY(&a, &b, &cl);
}

/* A busy engine does not serve (its children would wait behind its
 * queue): the idle b is the root, and serves both others. */
static void test_bcast_busy_engine_is_a_leaf(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO);
    a->serve_direct = b->serve_direct = c->serve_direct = 1;
    a->mec_hold = 1;
    push_t busy, p;
    keep_busy(cl, a, &busy);
    push_big(cl, &p, (const fake_t *[]){ a, b, c }, 3);
    run_for(50);
    assert_int_equal(b->tickets_asked, 2);
    mec_fake_release(a);
    assert_true(run_until(two_replies, cl));
    assert_int_equal(cl->replies_failed, 0);
    assert_value(b, "big", "data");
    assert_ref(a, "big");
    assert_ref(c, "big");
    assert_int_equal(a->tickets_asked + c->tickets_asked, 0);
    push_done(&busy);
    push_done(&p);
    DESTROY(&a, &b, &c, &cl);
}

/* The root dies before it answers: its children get the values from the
 * controller, the client an EngineError for it alone. */
static void test_bcast_source_dies(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO), *c = fake_new(1, B_ECHO);
    fake_t *cl = fake_new(2, B_ECHO);
    a->serve_direct = b->serve_direct = c->serve_direct = 1;
    push_t p;
    a->mec_hold = 1;
    push_big(cl, &p, (const fake_t *[]){ a, b, c }, 3);
    assert_true(run_until(held_one, a));
    run_for(20);
    assert_int_equal(b->mec_seen + c->mec_seen, 0);   /* held for a's fetch */
    fake_destroy(&a);
    Plexa__MultiReply *mr = wait_multi(cl);
    assert_string_equal(mr->replies[0]->error->ename, "EngineError");
    assert_null(mr->replies[1]->error);
    assert_null(mr->replies[2]->error);
    assert_value(b, "big", "data");
    assert_value(c, "big", "data");
    push_done(&p);
    DESTROY(&b, &c, &cl);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_bcast_tree, setup_bcast, teardown),
    cmocka_unit_test_setup_teardown(test_bcast_source_cannot_serve, setup_bcast, teardown),
    cmocka_unit_test_setup_teardown(test_bcast_child_cannot_fetch, setup_bcast, teardown),
    cmocka_unit_test_setup_teardown(test_bcast_busy_engine_is_a_leaf, setup_bcast, teardown),
    cmocka_unit_test_setup_teardown(test_bcast_not_for_pickles, setup_bcast, teardown),
    cmocka_unit_test_setup_teardown(test_bcast_source_dies, setup_bcast, teardown),
    cmocka_unit_test_setup_teardown(test_unreachable_then_relayed, setup, teardown),
    cmocka_unit_test_setup_teardown(test_direct_elsewhere_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_direct, setup, teardown),
    cmocka_unit_test_setup_teardown(test_values_arrive, setup, teardown),
    cmocka_unit_test_setup_teardown(test_order_kept, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unknown_name_fails_every_target, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refused_before_queueing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_source_dies, setup, teardown),
    cmocka_unit_test_setup_teardown(test_target_dies, setup, teardown),
    cmocka_unit_test_setup_teardown(test_client_goes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cancel_while_waiting, setup, teardown),
    cmocka_unit_test_setup_teardown(test_clear_queue, setup, teardown),
    cmocka_unit_test_setup_teardown(test_malformed_answer, setup, teardown),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("mec_refs", tests, NULL, NULL))
