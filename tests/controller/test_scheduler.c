/*
 * The task scheduler, driven in-process: a real controller on a libev loop,
 * fake engines and a fake task client on the same loop, all speaking the
 * real protocol over the tcp plugin on 127.0.0.1.
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

#include "plexa/version.h"
#include "plx_conn.h"
#include "plx_controller.h"
#include "plx_envelope.h"
#include "plx_plugin_loader.h"
#include "plx_profile.h"
#include "plx_url.h"

/* How a fake engine answers TaskRun. */
typedef enum { B_ECHO, B_FAIL, B_HANG, B_DIE, B_REJECT } behaviour_t;

typedef struct fake {
    plx_conn_t  *conn;
    int          role;        /* 1 engine, 3 task client */
    int32_t      engine_id;   /* -1 until welcomed */
    behaviour_t  behaviour;
    int          ran;         /* tasks it received */
    uint64_t     last_task;
    int          interrupted;
    int          closed;
    int32_t      claim_id;    /* engine id to ask for in Hello, -1 none */
    /* client side: the last reply */
    Plexa__Envelope *reply;
    plx_msg_t       *reply_msg;
    char         token[129];
} fake_t;

static struct ev_loop *loop;
static plx_controller_t *ctl;
static const plx_transport_ops *tcp;
static plx_url_t engine_url, task_url;
static char tmpdir[] = "/tmp/plx-sched-XXXXXX";
static uint64_t next_id = 1;

static void send_env(fake_t *f, Plexa__Envelope *env, plx_msg_t *bufs_from)
{
    env->has_id = 1;
    env->id = next_id++;
    plx_msg_t *m = plx_envelope_pack(env, NULL);
    assert_non_null(m);
    for (uint32_t i = 0; bufs_from && i < bufs_from->nbufs; i++)
        plx_msg_add_buf(m, bufs_from->bufs[i]);
    plx_conn_send(f->conn, m);
}

static void answer_task(fake_t *f, Plexa__Envelope *env, plx_msg_t *m)
{
    Plexa__TaskRun *run = env->task_run;
    f->ran++;
    f->last_task = run->task_id;
    if (f->behaviour == B_HANG)
        return;
    if (f->behaviour == B_DIE) {
        plx_conn_close(f->conn, 0, PLX_OK, "dying");
        return;
    }
    Plexa__TaskSpec *spec = plexa__task_spec__unpack(NULL, run->spec.len, run->spec.data);
    assert_non_null(spec);
    Plexa__TaskResult r = PLEXA__TASK_RESULT__INIT;
    r.has_task_id = 1;
    r.task_id = run->task_id;
    r.has_status = 1;
    Plexa__RemoteError err = PLEXA__REMOTE_ERROR__INIT;
    if (f->behaviour == B_ECHO) {
        r.status = PLEXA__TASK_STATUS__TASK_OK;
        r.n_values = spec->n_args;   /* echo the arguments (buffers forwarded as they came) */
        r.values = spec->args;
    } else if (f->behaviour == B_REJECT && spec->depend) {
        r.status = PLEXA__TASK_STATUS__TASK_REJECTED;
    } else if (f->behaviour == B_REJECT) {
        r.status = PLEXA__TASK_STATUS__TASK_OK;
    } else {
        r.status = PLEXA__TASK_STATUS__TASK_FAILED;
        err.ename = "ValueError";
        err.evalue = "boom";
        r.error = &err;
    }
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    out.body_case = PLEXA__ENVELOPE__BODY_TASK_RESULT;
    out.task_result = &r;
    send_env(f, &out, f->behaviour == B_ECHO ? m : NULL);
    plexa__task_spec__free_unpacked(spec, NULL);
}

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    fake_t *f = ud;
    Plexa__Envelope *env = plx_envelope_unpack(m, NULL);
    assert_non_null(env);
    switch (env->body_case) {
    case PLEXA__ENVELOPE__BODY_WELCOME:
        f->engine_id = env->welcome->has_engine_id ? env->welcome->engine_id : 0;
        break;
    case PLEXA__ENVELOPE__BODY_HEARTBEAT: {
        Plexa__Heartbeat hb = PLEXA__HEARTBEAT__INIT;
        Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
        out.body_case = PLEXA__ENVELOPE__BODY_HEARTBEAT;
        out.heartbeat = &hb;
        send_env(f, &out, NULL);
        break;
    }
    case PLEXA__ENVELOPE__BODY_TASK_RUN:
        answer_task(f, env, m);
        break;
    case PLEXA__ENVELOPE__BODY_INTERRUPT:
        f->interrupted++;
        if (f->behaviour == B_HANG) {   /* the running task ends as interrupted */
            Plexa__TaskResult r = PLEXA__TASK_RESULT__INIT;
            r.has_task_id = 1;
            r.task_id = env->interrupt->task_id;
            r.has_status = 1;
            r.status = PLEXA__TASK_STATUS__TASK_FAILED;
            Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
            out.body_case = PLEXA__ENVELOPE__BODY_TASK_RESULT;
            out.task_result = &r;
            send_env(f, &out, NULL);
        }
        break;
    default:
        if (f->reply) {
            plx_envelope_free(&f->reply);
            plx_msg_destroy(&f->reply_msg);
        }
        f->reply = env;
        f->reply_msg = m;
        return;
    }
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

static void on_open(plx_conn_t *c, void *ud)
{
    fake_t *f = ud;
    Plexa__Hello h = PLEXA__HELLO__INIT;
    h.has_role = 1;
    h.role = (Plexa__Role)f->role;
    h.token = f->token;
    h.has_version = 1;
    h.version = PLX_PROTOCOL_VERSION;
    if (f->claim_id >= 0) {
        h.has_engine_id = 1;
        h.engine_id = f->claim_id;
    }
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    send_env(f, &env, NULL);
}

static void on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    fake_t *f = ud;
    f->closed = 1;
}

/* Run the loop until cond(arg) holds (or 10 s pass). */
static int run_until(int (*cond)(void *), void *arg)
{
    for (int i = 0; i < 100000 && !cond(arg); i++) {
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
        usleep(100);
    }
    return cond(arg);
}

static int welcomed(void *arg) { return ((fake_t *)arg)->engine_id >= 0 || ((fake_t *)arg)->closed; }
static int has_reply(void *arg) { return ((fake_t *)arg)->reply != NULL; }
static int is_closed(void *arg) { return ((fake_t *)arg)->closed; }

static fake_t *fake_new_claim(int role, behaviour_t b, int32_t claim);

static fake_t *fake_new(int role, behaviour_t b) { return fake_new_claim(role, b, -1); }

static fake_t *fake_new_claim(int role, behaviour_t b, int32_t claim)
{
    fake_t *f = calloc(1, sizeof *f);
    f->claim_id = claim;
    f->role = role;
    f->behaviour = b;
    f->engine_id = -1;
    const plx_url_t *u = role == 1 ? &engine_url : &task_url;
    snprintf(f->token, sizeof f->token, "%s", u->token);
    void *h = NULL;
    int fd = -1;
    assert_int_equal(tcp->connect(u->host, u->port, NULL, &h, &fd, NULL), PLX_OK);
    static const plx_conn_cbs_t cbs = {.on_open = on_open, .on_msg = on_msg, .on_close = on_close};
    f->conn = plx_conn_new(loop, tcp, h, fd, NULL, &cbs, f, "fake");
    assert_true(run_until(welcomed, f));
    return f;
}

static void fake_destroy(fake_t **fp)
{
    fake_t *f = *fp;
    plx_conn_destroy(&f->conn);
    plx_envelope_free(&f->reply);
    plx_msg_destroy(&f->reply_msg);
    free(f);
    *fp = NULL;
}

/* Send a request and wait for its reply (kept in f->reply). */
static Plexa__Envelope *request(fake_t *f, Plexa__Envelope *env, plx_msg_t *bufs)
{
    plx_envelope_free(&f->reply);
    plx_msg_destroy(&f->reply_msg);
    send_env(f, env, bufs);
    assert_true(run_until(has_reply, f));
    return f->reply;
}

/* Submit n tasks each carrying one i64 argument (i) and, when with_buf, a
 * buffer; returns the first id. */
static uint64_t submit(fake_t *cl, int n, int retries, int with_depend, const uint64_t *after,
                       size_t nafter)
{
    Plexa__TaskSpec *specs = calloc((size_t)n, sizeof *specs);
    Plexa__TaskSpec **ptrs = calloc((size_t)n, sizeof *ptrs);
    Plexa__Value *vals = calloc((size_t)n, sizeof *vals);
    Plexa__Value **vptrs = calloc((size_t)n, sizeof *vptrs);
    Plexa__Value dep = PLEXA__VALUE__INIT;
    dep.kind_case = PLEXA__VALUE__KIND_NONE;
    dep.none = 1;
    for (int i = 0; i < n; i++) {
        plexa__task_spec__init(&specs[i]);
        plexa__value__init(&vals[i]);
        vals[i].kind_case = PLEXA__VALUE__KIND_I64;
        vals[i].i64 = i;
        vptrs[i] = &vals[i];
        specs[i].kind = "map";
        specs[i].n_args = 1;
        specs[i].args = &vptrs[i];
        specs[i].has_retries = 1;
        specs[i].retries = retries;
        if (with_depend)
            specs[i].depend = &dep;
        specs[i].n_after = nafter;
        specs[i].after = (uint64_t *)after;
        ptrs[i] = &specs[i];
    }
    Plexa__TaskSubmit ts = PLEXA__TASK_SUBMIT__INIT;
    ts.n_tasks = (size_t)n;
    ts.tasks = ptrs;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_SUBMIT;
    env.task_submit = &ts;
    Plexa__Envelope *r = request(cl, &env, NULL);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_IDS);
    assert_int_equal(r->task_ids->count, (uint32_t)n);
    uint64_t first = r->task_ids->first;
    free(specs);
    free(ptrs);
    free(vals);
    free(vptrs);
    return first;
}

/* TaskWait; returns the TaskResults body (owned by cl->reply). */
static Plexa__TaskResults *wait_ids(fake_t *cl, uint64_t first, size_t n, int block)
{
    uint64_t *ids = calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = first + i;
    Plexa__TaskWait tw = PLEXA__TASK_WAIT__INIT;
    tw.n_ids = n;
    tw.ids = ids;
    tw.has_block = 1;
    tw.block = block;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_WAIT;
    env.task_wait = &tw;
    Plexa__Envelope *r = request(cl, &env, NULL);
    free(ids);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_RESULTS);
    assert_int_equal(r->task_results->n_results, n);
    return r->task_results;
}

static int setup(void **state)
{
    assert_non_null(mkdtemp(tmpdir));
    setenv("PLEXA_DIR", tmpdir, 1);
    loop = ev_loop_new(EVFLAG_AUTO);
    plx_controller_opts_t o = plx_controller_opts_default();
    o.profile = "sched";
    o.transport = "tcp";   /* the fake engines speak plaintext frames */
    o.heartbeat_period = 0.2;
    o.depend_timeout = 0.5;
    o.results_max = 50;
    o.task_inflight = 2;   /* test_abort counts on two running, the rest queued */
    plx_err_t err = {0};
    ctl = plx_controller_new(loop, &o, &err);
    if (!ctl)
        fail_msg("controller: %s", err.msg);
    tcp = plx_transport_find("tcp", &err);
    assert_non_null(tcp);
    plx_profile_t p;
    char path[4096];
    assert_int_equal(plx_profile_open("sched", 0, &p, &err), PLX_OK);
    plx_profile_file(&p, "security", "ipcontroller-engine.url", path, sizeof path);
    assert_int_equal(plx_url_resolve(path, NULL, NULL, &engine_url, &err), PLX_OK);
    plx_profile_file(&p, "security", "ipcontroller-tc.url", path, sizeof path);
    assert_int_equal(plx_url_resolve(path, NULL, NULL, &task_url, &err), PLX_OK);
    return 0;
}

static int teardown(void **state)
{
    plx_controller_destroy(&ctl);
    ev_loop_destroy(loop);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
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

/* An engine that comes back asks for its old id and gets it; one that
 * asks for an id somebody holds, or a new engine, gets a fresh id. */
static void test_reregistration(void **state)
{
    fake_t *a = fake_new(1, B_ECHO), *b = fake_new(1, B_ECHO);
    int32_t old = a->engine_id;
    fake_destroy(&a);
    for (int i = 0; i < 50; i++)
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
    fake_t *back = fake_new_claim(1, B_ECHO, old);
    assert_int_equal(back->engine_id, old);
    fake_t *thief = fake_new_claim(1, B_ECHO, b->engine_id);
    assert_true(thief->engine_id != b->engine_id);
    assert_true(thief->engine_id > b->engine_id);
    fake_destroy(&back);
    fake_destroy(&thief);
    fake_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
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
    return cmocka_run_group_tests(tests, setup, teardown);
}
