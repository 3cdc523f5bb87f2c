/* The scheduler test harness; see sched_harness.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sched_harness.h"

#include "plexa/version.h"
#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_profile.h"
#include "plx_url.h"
#include "plx_test.h"

struct ev_loop *loop;
plx_controller_t *ctl;
static const plx_transport_ops *tcp;
static plx_url_t engine_url, task_url, mec_url;
static char tmpdir[64];
static uint64_t next_id = 1;

void send_env(fake_t *f, Plexa__Envelope *env, plx_msg_t *bufs_from)
{
    env->has_id = 1;
    env->id = next_id++;
    plx_msg_t *m = plx_envelope_pack(env, NULL);
    assert_non_null(m);
    for (uint32_t i = 0; bufs_from && i < bufs_from->nbufs; i++)
        plx_msg_add_buf(m, bufs_from->bufs[i]);
    plx_conn_send(f->conn, m);
}

static double unix_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* ---- the immediate behaviours ---------------------------------------------- */

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

/* ---- B_QUEUE: an engine with a queue, started and finished by the test ------ */

static void queue_task(fake_t *f, const Plexa__TaskRun *run)
{
    assert_true(f->nqueue < FAKE_QMAX);
    Plexa__TaskSpec *spec = plexa__task_spec__unpack(NULL, run->spec.len, run->spec.data);
    assert_non_null(spec);
    fake_task_t *q = &f->queue[f->nqueue++];
    memset(q, 0, sizeof *q);
    q->id = run->task_id;
    q->chunk = spec->kind && strcmp(spec->kind, "chunk") == 0;
    q->depend = spec->depend != NULL;
    const Plexa__Value *last = spec->n_args ? spec->args[spec->n_args - 1] : NULL;
    q->arg = last && last->kind_case == PLEXA__VALUE__KIND_I64 ? last->i64 : 0;
    q->first = run->has_first ? run->first : 0;
    q->count = run->has_count ? run->count : (spec->has_elements ? spec->elements : 1);
    plexa__task_spec__free_unpacked(spec, NULL);
}

static void send_started(fake_t *f, uint64_t id)
{
    Plexa__TaskStarted ts = PLEXA__TASK_STARTED__INIT;
    ts.has_task_id = 1;
    ts.task_id = id;
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    out.body_case = PLEXA__ENVELOPE__BODY_TASK_STARTED;
    out.task_started = &ts;
    send_env(f, &out, NULL);
}

int fake_start(fake_t *f)
{
    if (f->running.id || f->nqueue == 0 || f->closed)
        return 0;
    f->running = f->queue[0];
    memmove(f->queue, f->queue + 1, (f->nqueue - 1) * sizeof f->queue[0]);
    f->nqueue--;
    if ((size_t)f->ran == f->ran_cap) {
        f->ran_cap = f->ran_cap ? 2 * f->ran_cap : 1024;
        f->ran_ids = realloc(f->ran_ids, f->ran_cap * sizeof *f->ran_ids);
        assert_non_null(f->ran_ids);
    }
    f->ran_ids[f->ran++] = f->running.id;
    f->last_task = f->running.id;
    send_started(f, f->running.id);
    return 1;
}

int fake_finish(fake_t *f)
{
    if (!f->running.id || f->closed)
        return 0;
    const fake_task_t *q = &f->running;
    Plexa__TaskResult r = PLEXA__TASK_RESULT__INIT;
    r.has_task_id = r.has_status = r.has_started = r.has_completed = 1;
    r.task_id = q->id;
    r.status = q->depend && f->reject_depend ? PLEXA__TASK_STATUS__TASK_REJECTED
                                             : PLEXA__TASK_STATUS__TASK_OK;
    r.completed = unix_now();
    r.started = r.completed - f->duration;
    /* A chunk answers its elements' indices, a map task its argument. */
    Plexa__Value item[64], *items[64], v = PLEXA__VALUE__INIT, *vp = &v;
    Plexa__ValueList l = PLEXA__VALUE_LIST__INIT;
    if (q->chunk) {
        assert_true(q->count <= 64);
        for (uint32_t i = 0; i < q->count; i++) {
            plexa__value__init(&item[i]);
            item[i].kind_case = PLEXA__VALUE__KIND_I64;
            item[i].i64 = q->first + i;
            items[i] = &item[i];
        }
        l.n_items = q->count;
        l.items = items;
        v.kind_case = PLEXA__VALUE__KIND_LIST;
        v.list = &l;
    } else {
        v.kind_case = PLEXA__VALUE__KIND_I64;
        v.i64 = q->arg;
    }
    if (r.status == PLEXA__TASK_STATUS__TASK_OK) {
        r.n_values = 1;
        r.values = &vp;
    }
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    out.body_case = PLEXA__ENVELOPE__BODY_TASK_RESULT;
    out.task_result = &r;
    send_env(f, &out, NULL);
    memset(&f->running, 0, sizeof f->running);
    return 1;
}

static void answer_steal(fake_t *f, const Plexa__Envelope *env)
{
    const Plexa__TaskSteal *ts = env->task_steal;
    uint64_t back[FAKE_QMAX];
    size_t n = 0, kept = 0;
    for (size_t i = 0; i < f->nqueue; i++) {
        int asked = 0;
        for (size_t j = 0; j < ts->n_ids && !asked; j++)
            asked = ts->ids[j] == f->queue[i].id;
        if (asked)
            back[n++] = f->queue[i].id;
        else
            f->queue[kept++] = f->queue[i];
    }
    f->nqueue = kept;
    f->steals++;
    f->asked += (int)ts->n_ids;
    f->stolen += (int)n;
    Plexa__TaskStolen st = PLEXA__TASK_STOLEN__INIT;
    st.n_ids = n;
    st.ids = back;
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    out.body_case = PLEXA__ENVELOPE__BODY_TASK_STOLEN;
    out.has_reply_to = 1;
    out.reply_to = env->id;
    out.task_stolen = &st;
    send_env(f, &out, NULL);
}

void fake_thaw(fake_t *f)
{
    f->frozen = 0;
    for (size_t i = 0; i < f->nheld; i++) {
        answer_steal(f, f->held[i]);
        plx_envelope_free(&f->held[i]);
    }
    f->nheld = 0;
}

/* ---- the connection ----------------------------------------------------------- */

static void on_interrupt(fake_t *f, const Plexa__Envelope *env)
{
    f->interrupted++;
    if (f->behaviour != B_HANG)
        return;
    /* the running task ends as interrupted */
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

static void on_heartbeat(fake_t *f)
{
    if (f->frozen)
        return;   /* a stopped process answers nothing */
    Plexa__Heartbeat hb = PLEXA__HEARTBEAT__INIT;
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    out.body_case = PLEXA__ENVELOPE__BODY_HEARTBEAT;
    out.heartbeat = &hb;
    send_env(f, &out, NULL);
}

static int reply_failed(const Plexa__Envelope *env)
{
    if (env->body_case == PLEXA__ENVELOPE__BODY_ERROR)
        return 1;
    if (env->body_case != PLEXA__ENVELOPE__BODY_MULTI_REPLY)
        return 0;
    for (size_t i = 0; i < env->multi_reply->n_replies; i++)
        if (env->multi_reply->replies[i]->error)
            return 1;
    return 0;
}

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    fake_t *f = ud;
    Plexa__Envelope *env = plx_envelope_unpack(m, NULL);
    assert_non_null(env);
    switch (env->body_case) {
    case PLEXA__ENVELOPE__BODY_WELCOME:
        f->engine_id = env->welcome->has_engine_id ? env->welcome->engine_id : 0;
        snprintf(f->secret, sizeof f->secret, "%s",
                 env->welcome->engine_secret ? env->welcome->engine_secret : "");
        break;
    case PLEXA__ENVELOPE__BODY_HEARTBEAT:
        on_heartbeat(f);
        break;
    case PLEXA__ENVELOPE__BODY_TASK_RUN:
        if (f->behaviour == B_QUEUE)
            queue_task(f, env->task_run);
        else
            answer_task(f, env, m);
        break;
    case PLEXA__ENVELOPE__BODY_TASK_STEAL:
        if (f->frozen && f->nheld < sizeof f->held / sizeof f->held[0]) {
            f->held[f->nheld++] = env;   /* answered once it thaws */
            plx_msg_destroy(&m);
            return;
        }
        answer_steal(f, env);
        break;
    case PLEXA__ENVELOPE__BODY_INTERRUPT:
        on_interrupt(f, env);
        break;
    case PLEXA__ENVELOPE__BODY_SERVE_END:
        mec_fake_serve_end(f, env->serve_end);
        break;
    case PLEXA__ENVELOPE__BODY_PUSH:
    case PLEXA__ENVELOPE__BODY_PULL:
        if (f->role == 1) {
            mec_fake_on_request(f, env, m);   /* takes both */
            return;
        }
        /* fall through */
    default:
        f->replies++;
        f->replies_failed += reply_failed(env);
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

const char *fake_hostname = "fakehost";

static void on_open(plx_conn_t *c, void *ud)
{
    fake_t *f = ud;
    Plexa__Hello h = PLEXA__HELLO__INIT;
    h.has_role = 1;
    h.role = (Plexa__Role)f->role;
    h.token = f->token;
    h.hostname = (char *)fake_hostname;
    h.has_version = 1;
    h.version = PLX_PROTOCOL_VERSION;
    if (f->claim_id >= 0) {
        h.has_engine_id = 1;
        h.engine_id = f->claim_id;
        h.engine_secret = f->secret[0] ? f->secret : NULL;
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

int run_until(int (*cond)(void *), void *arg)
{
    for (int i = 0; i < 100000 && !cond(arg); i++) {
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
        usleep(100);
    }
    return cond(arg);
}

void run_for(double ms)
{
    for (int i = 0; i < (int)(ms * 10); i++) {
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
        usleep(100);
    }
}

static int welcomed(void *arg) { return ((fake_t *)arg)->engine_id >= 0 || ((fake_t *)arg)->closed; }
int has_reply(void *arg) { return ((fake_t *)arg)->reply != NULL; }
int two_replies(void *arg) { return ((fake_t *)arg)->replies >= 2; }
int is_closed(void *arg) { return ((fake_t *)arg)->closed; }

fake_t *fake_new(int role, behaviour_t b) { return fake_new_claim(role, b, -1, NULL); }

fake_t *fake_new_claim(int role, behaviour_t b, int32_t claim, const char *secret)
{
    fake_t *f = calloc(1, sizeof *f);
    f->claim_id = claim;
    snprintf(f->secret, sizeof f->secret, "%s", secret ? secret : "");
    f->role = role;
    f->behaviour = b;
    f->engine_id = -1;
    const plx_url_t *u = role == 1 ? &engine_url : role == 2 ? &mec_url : &task_url;
    snprintf(f->token, sizeof f->token, "%s", u->token);
    void *h = NULL;
    int fd = -1;
    assert_int_equal(tcp->connect(u->host, u->port, NULL, &h, &fd, NULL), PLX_OK);
    static const plx_conn_cbs_t cbs = {.on_open = on_open, .on_msg = on_msg, .on_close = on_close};
    f->conn = plx_conn_new(loop, tcp, h, fd, NULL, &cbs, f, "fake");
    assert_true(run_until(welcomed, f));
    return f;
}

void fake_destroy_all(fake_t **const *fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fake_destroy(fs[i]);
}

void fake_destroy(fake_t **fp)
{
    fake_t *f = *fp;
    plx_conn_destroy(&f->conn);
    plx_envelope_free(&f->reply);
    plx_msg_destroy(&f->reply_msg);
    for (size_t i = 0; i < f->nheld; i++)
        plx_envelope_free(&f->held[i]);
    mec_fake_free(f);
    free(f->ran_ids);
    free(f);
    *fp = NULL;
}

Plexa__Envelope *request(fake_t *f, Plexa__Envelope *env, plx_msg_t *bufs)
{
    plx_envelope_free(&f->reply);
    plx_msg_destroy(&f->reply_msg);
    send_env(f, env, bufs);
    assert_true(run_until(has_reply, f));
    return f->reply;
}

/* ---- client requests ------------------------------------------------------------ */

static uint64_t submit_specs(fake_t *cl, Plexa__TaskSpec **ptrs, size_t n)
{
    Plexa__TaskSubmit ts = PLEXA__TASK_SUBMIT__INIT;
    ts.n_tasks = n;
    ts.tasks = ptrs;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_SUBMIT;
    env.task_submit = &ts;
    Plexa__Envelope *r = request(cl, &env, NULL);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_TASK_IDS);
    assert_int_equal(r->task_ids->count, (uint32_t)n);
    return r->task_ids->first;
}

/* n "map" tasks whose args are [fn] (when fn) then [i]; retries, a
 * depend predicate (None) and after ids as given. */
static uint64_t submit_maps(fake_t *cl, int n, const Plexa__Value *fn, int retries,
                            int with_depend, const uint64_t *after, size_t nafter)
{
    Plexa__TaskSpec *specs = calloc((size_t)n, sizeof *specs);
    Plexa__TaskSpec **ptrs = calloc((size_t)n, sizeof *ptrs);
    Plexa__Value *vals = calloc((size_t)n, sizeof *vals);
    Plexa__Value **vptrs = calloc((size_t)n * 2, sizeof *vptrs);
    Plexa__Value dep = PLEXA__VALUE__INIT;
    dep.kind_case = PLEXA__VALUE__KIND_NONE;
    dep.none = 1;
    size_t per = fn ? 2 : 1;
    for (int i = 0; i < n; i++) {
        plexa__task_spec__init(&specs[i]);
        plexa__value__init(&vals[i]);
        vals[i].kind_case = PLEXA__VALUE__KIND_I64;
        vals[i].i64 = i;
        if (fn)
            vptrs[per * (size_t)i] = (Plexa__Value *)fn;
        vptrs[per * (size_t)i + per - 1] = &vals[i];
        specs[i].kind = "map";
        specs[i].n_args = per;
        specs[i].args = &vptrs[per * (size_t)i];
        specs[i].has_retries = 1;
        specs[i].retries = retries;
        if (with_depend)
            specs[i].depend = &dep;
        specs[i].n_after = nafter;
        specs[i].after = (uint64_t *)after;
        ptrs[i] = &specs[i];
    }
    uint64_t first = submit_specs(cl, ptrs, (size_t)n);
    free(specs);
    free(ptrs);
    free(vals);
    free(vptrs);
    return first;
}

uint64_t submit(fake_t *cl, int n, int retries, int with_depend, const uint64_t *after,
                size_t nafter)
{
    return submit_maps(cl, n, NULL, retries, with_depend, after, nafter);
}

uint64_t submit_fn(fake_t *cl, int n, int64_t fn_tag, int with_depend)
{
    Plexa__Value fn = PLEXA__VALUE__INIT;
    fn.kind_case = PLEXA__VALUE__KIND_I64;
    fn.i64 = fn_tag;
    return submit_maps(cl, n, &fn, 0, with_depend, NULL, 0);
}

uint64_t submit_chunk(fake_t *cl, uint32_t elements, int64_t fn_tag)
{
    Plexa__Value fn = PLEXA__VALUE__INIT, list = PLEXA__VALUE__INIT;
    fn.kind_case = PLEXA__VALUE__KIND_I64;   /* stands for the function: its cost key */
    fn.i64 = fn_tag;
    Plexa__ValueList l = PLEXA__VALUE_LIST__INIT;
    list.kind_case = PLEXA__VALUE__KIND_LIST;
    list.list = &l;
    Plexa__Value *args[2] = {&fn, &list};
    Plexa__TaskSpec spec = PLEXA__TASK_SPEC__INIT, *sp = &spec;
    spec.kind = "chunk";
    spec.n_args = 2;
    spec.args = args;
    spec.has_elements = 1;
    spec.elements = elements;
    return submit_specs(cl, &sp, 1);
}

Plexa__TaskResults *wait_ids(fake_t *cl, uint64_t first, size_t n, int block)
{
    uint64_t *ids = calloc(n ? n : 1, sizeof *ids);
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

Plexa__Envelope *abort_ids(fake_t *cl, const uint64_t *ids, size_t n)
{
    Plexa__TaskAbort ta = PLEXA__TASK_ABORT__INIT;
    ta.n_ids = n;
    ta.ids = (uint64_t *)ids;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_ABORT;
    env.task_abort = &ta;
    return request(cl, &env, NULL);
}

/* ---- the controller ------------------------------------------------------------ */

void harness_setup(plx_controller_opts_t o)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plx-sched-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    setenv("PLEXA_DIR", tmpdir, 1);
    loop = ev_loop_new(EVFLAG_AUTO);
    if (getenv("PLX_TEST_DEBUG"))
        plx_log_set_level(PLX_LOG_DEBUG);
    o.profile = "sched";
    o.transport = "tcp";   /* the fake engines speak plaintext frames */
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
    plx_profile_file(&p, "security", "ipcontroller-mec.url", path, sizeof path);
    assert_int_equal(plx_url_resolve(path, NULL, NULL, &mec_url, &err), PLX_OK);
}

void harness_teardown(void)
{
    plx_controller_destroy(&ctl);
    ev_loop_destroy(loop);
    if (plx_test_rmtree(tmpdir) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}
