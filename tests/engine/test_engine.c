/*
 * ipengine against a fake controller (engine_harness.c): registration,
 * execute semantics, push/pull of every value kind, the call helpers
 * (keys, reset, get_result, map, apply), and the buffers it gives back.
 * Heartbeats, URLs and endings: test_engine_life.c.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_harness.h"
#include "plx_envelope.h"
#include "plx_time.h"

#define NARRAY   1000000

/* ---- helpers -------------------------------------------------------------- */

/* Run code that must fail with ename; returns the reply (caller frees). */
static Plexa__Envelope *exec_err(fake_t *f, const char *code, const char *ename)
{
    Plexa__Envelope *r = fake_exec_call(f, code, T_REPLY);
    assert_non_null(r);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, ename);
    return r;
}

/* ---- execute -------------------------------------------------------------- */

static void test_execute(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "a = 10", "", 1);
    fake_exec_ok(f, "print(a)", "10\n", 2);

    Plexa__Envelope *r = exec_err(f, "1/0", "ZeroDivisionError");
    assert_int_equal(r->engine_reply->execute->number, 3);
    assert_non_null(strstr(r->engine_reply->error->traceback, "ZeroDivisionError"));
    /* the cell is In [3]: its name and its source line */
    assert_non_null(strstr(r->engine_reply->error->traceback,
                           "File \"<plexa-input-3>\", line 1, in <module>\n    1/0\n"));
    assert_null(strstr(r->engine_reply->error->traceback, "_engine.py"));
    assert_string_equal(r->engine_reply->error->evalue, "division by zero");
    plx_envelope_free(&r);

    fake_exec_ok(f, "a", "10\n", 4);                /* a final expression is displayed */
    fake_exec_ok(f, "_", "10\n", 5);                /* ... and kept in _ */
    fake_exec_ok(f, "None", "", 6);
    fake_exec_ok(f, "id", "3\n", 7);                /* 0.10 pre-pushes the engine id */
    fake_exec_ok(f, "import sys; print('e', file=sys.stderr); print('o')", "o\n", 8);
    fake_exec_ok(f, "import engmod; print(engmod.VALUE)", "from the start directory\n", 9);
    fake_exec_ok(f, "import plexa._engine, sys; print(sys.executable)", "/usr/bin/python3\n", 10);
    fake_exec_ok(f, "import sys; print(sys.argv)", "['ipengine']\n", 11);

    r = exec_err(f, "print('before')\nraise ValueError('boom')", "ValueError");
    assert_string_equal(r->engine_reply->execute->stdout, "before\n");
    assert_string_equal(r->engine_reply->error->evalue, "boom");
    plx_envelope_free(&r);

    r = exec_err(f, "1/", "SyntaxError");
    assert_non_null(strstr(r->engine_reply->error->traceback, "SyntaxError"));
    plx_envelope_free(&r);

    r = exec_err(f, "import sys; sys.exit(4)", "SystemExit");   /* not an exit */
    plx_envelope_free(&r);
    r = exec_err(f, "input()", "EOFError");                      /* no stdin hang */
    plx_envelope_free(&r);
    fake_exec_ok(f, "print(a + 1)", "11\n", 0);                       /* still alive */

    /* Output beyond the per-stream cap is cut in the middle, not fatal. */
    r = fake_exec_call(f, "print('x' * (6 << 20))", T_REPLY);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    assert_true(strlen(r->engine_reply->execute->stdout) < (5u << 20));
    assert_non_null(strstr(r->engine_reply->execute->stdout, "cut by the engine"));
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('a\\0b')", "a\xef\xbf\xbd" "b\n", 0);     /* NUL survives as U+FFFD */

    fake_close_conn(f);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_true(WIFEXITED(f->status));
    assert_int_equal(WEXITSTATUS(f->status), 0);
}

/* A child forked by user code gets its own signals: terminating it must
 * neither stop the engine nor be swallowed by the engine's handler. */
static void test_fork_child(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "import multiprocessing as mp, time\n"
               "p = mp.get_context('fork').Process(target=time.sleep, args=(30,))\n"
               "p.start(); time.sleep(0.5); p.terminate(); p.join(10)\n"
               "print(p.exitcode)", "-15\n", 1);
    fake_exec_ok(f, "print('still here')", "still here\n", 2);
}

/* ---- push and pull ------------------------------------------------------ */

static Plexa__Envelope *push_call(fake_t *f, Plexa__NamedValue **nv, size_t n, plx_buf_t **bufs,
                                  uint32_t nbufs)
{
    Plexa__Push p = PLEXA__PUSH__INIT;
    p.n_values = n;
    p.values = nv;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
    env.push = &p;
    return fake_call(f, &env, bufs, nbufs, T_REPLY, NULL);
}

static Plexa__Envelope *pull_call(fake_t *f, const char **keys, size_t n, plx_msg_t **msg)
{
    Plexa__Pull p = PLEXA__PULL__INIT;
    p.n_keys = n;
    p.keys = (char **)keys;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PULL;
    env.pull = &p;
    return fake_call(f, &env, NULL, 0, T_REPLY, msg);
}

static plx_buf_t *array_buf(void)
{
    plx_buf_t *b = plx_buf_new(NARRAY * sizeof(double));
    double *d = (double *)b->data;
    for (int i = 0; i < NARRAY; i++)
        d[i] = i;
    return b;
}

static void push_natives(fake_t *f, plx_buf_t *arr)
{
    Plexa__Value vx = PLEXA__VALUE__INIT, vs = PLEXA__VALUE__INIT, va = PLEXA__VALUE__INIT;
    vx.kind_case = PLEXA__VALUE__KIND_I64;
    vx.i64 = -42;
    vs.kind_case = PLEXA__VALUE__KIND_STR;
    vs.str = "to the engines!";
    Plexa__NdArray nd = PLEXA__ND_ARRAY__INIT;
    uint64_t shape[1] = { NARRAY };
    nd.dtype = "<f8";
    nd.n_shape = 1;
    nd.shape = shape;
    nd.has_buf = 1;
    nd.buf = 0;
    va.kind_case = PLEXA__VALUE__KIND_NDARRAY;
    va.ndarray = &nd;
    Plexa__NamedValue nx = PLEXA__NAMED_VALUE__INIT, ns = PLEXA__NAMED_VALUE__INIT,
                      na = PLEXA__NAMED_VALUE__INIT;
    nx.name = "x";
    nx.value = &vx;
    ns.name = "s";
    ns.value = &vs;
    na.name = "arr";
    na.value = &va;
    Plexa__NamedValue *nv[] = { &nx, &ns, &na };
    Plexa__Envelope *r = push_call(f, nv, 3, &arr, 1);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->method, "push");
    assert_int_equal(r->engine_reply->n_values, 0);
    plx_envelope_free(&r);
}

static void pull_natives(fake_t *f, plx_buf_t *arr)
{
    const char *keys[] = { "x", "s", "arr", "t" };
    plx_msg_t *m = NULL;
    Plexa__Envelope *r = pull_call(f, keys, 4, &m);
    assert_non_null(r);
    Plexa__EngineReply *er = r->engine_reply;
    assert_null(er->error);
    assert_string_equal(er->method, "pull");
    assert_int_equal(er->n_values, 4);
    assert_int_equal(er->values[0]->kind_case, PLEXA__VALUE__KIND_I64);
    assert_int_equal(er->values[0]->i64, -42);
    assert_int_equal(er->values[1]->kind_case, PLEXA__VALUE__KIND_STR);
    assert_string_equal(er->values[1]->str, "to the engines!");
    Plexa__NdArray *nd = er->values[2]->ndarray;
    assert_int_equal(er->values[2]->kind_case, PLEXA__VALUE__KIND_NDARRAY);
    assert_string_equal(nd->dtype, "<f8");
    assert_int_equal(nd->n_shape, 1);
    assert_int_equal(nd->shape[0], NARRAY);
    assert_true(nd->buf < m->nbufs);
    assert_int_equal(m->bufs[nd->buf]->len, arr->len);
    assert_memory_equal(m->bufs[nd->buf]->data, arr->data, arr->len);
    /* t = (1, 2.5, None, True, b'xy', 'z'): a tuple of natives */
    Plexa__Value *t = er->values[3];
    assert_int_equal(t->kind_case, PLEXA__VALUE__KIND_LIST);
    assert_true(t->list->tuple);
    assert_int_equal(t->list->n_items, 6);
    assert_int_equal(t->list->items[1]->kind_case, PLEXA__VALUE__KIND_F64);
    assert_int_equal(t->list->items[2]->kind_case, PLEXA__VALUE__KIND_NONE);
    assert_int_equal(t->list->items[3]->kind_case, PLEXA__VALUE__KIND_BOOLEAN);
    assert_int_equal(t->list->items[4]->kind_case, PLEXA__VALUE__KIND_BYTES);
    assert_memory_equal(m->bufs[t->list->items[4]->bytes]->data, "xy", 2);
    plx_envelope_free(&r);
    plx_msg_destroy(&m);
}

/* A lambda defined on the engine comes back as a pickle; pushed back under
 * another name (same Value, same buffers) it is callable again. */
static void pickle_round_trip(fake_t *f)
{
    fake_exec_ok(f, "f = lambda x: x * 2", "", 0);
    const char *keys[] = { "f" };
    plx_msg_t *m = NULL;
    Plexa__Envelope *r = pull_call(f, keys, 1, &m);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    assert_int_equal(r->engine_reply->values[0]->kind_case, PLEXA__VALUE__KIND_PICKLE);
    Plexa__NamedValue ng = PLEXA__NAMED_VALUE__INIT;
    ng.name = "g";
    ng.value = r->engine_reply->values[0];
    Plexa__NamedValue *nv[] = { &ng };
    Plexa__Envelope *p = push_call(f, nv, 1, m->bufs, m->nbufs);
    assert_non_null(p);
    assert_null(p->engine_reply->error);
    plx_envelope_free(&p);
    plx_envelope_free(&r);
    plx_msg_destroy(&m);
    fake_exec_ok(f, "print(g(21))", "42\n", 0);
}

static void test_push_pull(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    plx_buf_t *arr = array_buf();
    push_natives(f, arr);
    fake_exec_ok(f, "print(x, s, arr.dtype, arr.shape, arr[123456], arr.sum())",
            "-42 to the engines! float64 (1000000,) 123456.0 499999500000.0\n", 1);
    /* zero copy: the array's memory is the received buffer */
    fake_exec_ok(f, "b = arr\nwhile getattr(b, 'base', None) is not None: b = b.base\n"
               "print(type(b).__name__, arr.flags.writeable)", "RecvBuffer True\n", 2);
    fake_exec_ok(f, "t = (1, 2.5, None, True, b'xy', 'z')", "", 3);
    pull_natives(f, arr);
    plx_buf_unref(&arr);
    pickle_round_trip(f);
    fake_exec_ok(f, "import numpy as np; m = np.arange(6.).reshape(2, 3).T; big = 2**70", "", 0);
    const char *keys[] = { "m", "big" };
    Plexa__Envelope *r = pull_call(f, keys, 2, NULL);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    assert_int_equal(r->engine_reply->values[0]->kind_case, PLEXA__VALUE__KIND_NDARRAY);
    assert_true(r->engine_reply->values[0]->ndarray->fortran);
    assert_int_equal(r->engine_reply->values[1]->kind_case, PLEXA__VALUE__KIND_PICKLE);
    plx_envelope_free(&r);

    const char *unknown[] = { "x", "nope" };
    r = pull_call(f, unknown, 2, NULL);
    assert_non_null(r);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "NameError");
    assert_string_equal(r->engine_reply->error->evalue, "name 'nope' is not defined");
    assert_int_equal(r->engine_reply->n_values, 0);
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('pushes and pulls do not count')", "pushes and pulls do not count\n", 7);
}

/* A push naming a buffer the frame does not carry is refused, not trusted. */
static void test_bad_buffer_index(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    Plexa__Value v = PLEXA__VALUE__INIT;
    v.kind_case = PLEXA__VALUE__KIND_BYTES;
    v.bytes = 5;
    Plexa__NamedValue nv = PLEXA__NAMED_VALUE__INIT;
    nv.name = "b";
    nv.value = &v;
    Plexa__NamedValue *nvs[] = { &nv };
    Plexa__Envelope *r = push_call(f, nvs, 1, NULL, 0);
    assert_non_null(r);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "ProtocolError");
    assert_non_null(strstr(r->engine_reply->error->evalue, "buffer 5"));
    plx_envelope_free(&r);

    Plexa__GetIds g = PLEXA__GET_IDS__INIT;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_GET_IDS;
    env.get_ids = &g;
    r = fake_call(f, &env, NULL, 0, T_REPLY, NULL);
    assert_non_null(r);
    assert_string_equal(r->engine_reply->error->ename, "ProtocolError");
    assert_string_equal(r->engine_reply->error->evalue, "unsupported request get_ids");
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('ok')", "ok\n", 1);
}

/* Resident memory of a process in KiB (VmRSS), or -1. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    long kib = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (fp)
        fclose(fp);
    return kib;
}

/* Buffers must be given back both ways: received ones when Python drops
 * them, sent (exported) ones once written, which the I/O thread hands back
 * to the Python thread. 8 MB each way per round; memory must not grow. */
static void test_buffers_released(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    plx_buf_t *arr = array_buf();
    long before = 0;
    for (int i = 0; i < 60; i++) {
        if (i == 10)
            before = rss_kib(f->pid);
        push_natives(f, arr);
        fake_exec_ok(f, "import numpy as np; fresh = np.ones(1000000)", "", 0);
        const char *keys[] = { "fresh", "arr" };
        Plexa__Envelope *r = pull_call(f, keys, 2, NULL);
        assert_non_null(r);
        assert_null(r->engine_reply->error);
        plx_envelope_free(&r);
    }
    long after = rss_kib(f->pid);
    plx_buf_unref(&arr);
    fprintf(stderr, "engine RSS: %ld KiB after 10 rounds, %ld KiB after 60\n", before, after);
    assert_true(before > 0 && after > 0);
    /* 50 rounds would leak 800 MB; ASan's quarantine alone holds ~40 MB. */
    assert_true(after - before < 120 * 1024);
}

/* ---- call: keys, reset, get_result, map, apply ---------------------------- */

/* Send call{method, args} (buffers bufs) and return the engine_reply. */
static Plexa__Envelope *call_req(fake_t *f, const char *method, Plexa__Value **args,
                                 size_t nargs, plx_buf_t **bufs, uint32_t nbufs,
                                 plx_msg_t **msg)
{
    Plexa__Call c = PLEXA__CALL__INIT;
    c.method = (char *)method;
    c.n_args = nargs;
    c.args = args;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_CALL;
    env.call = &c;
    Plexa__Envelope *r = fake_call(f, &env, bufs, nbufs, T_REPLY, msg);
    assert_non_null(r);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_ENGINE_REPLY);
    assert_string_equal(r->engine_reply->method, method);
    return r;
}

/* A call that must succeed; prints the remote error otherwise. */
static Plexa__Envelope *call_ok(fake_t *f, const char *method, Plexa__Value **args,
                                size_t nargs, plx_buf_t **bufs, uint32_t nbufs, plx_msg_t **msg)
{
    Plexa__Envelope *r = call_req(f, method, args, nargs, bufs, nbufs, msg);
    const Plexa__RemoteError *e = r->engine_reply->error;
    if (e)
        fprintf(stderr, "%s: unexpected %s: %s\n%s\n", method, e->ename, e->evalue,
                e->traceback ? e->traceback : "");
    assert_null(e);
    return r;
}

/* The names keys() reports, joined with spaces. */
static void keys_are(fake_t *f, const char *want)
{
    Plexa__Envelope *r = call_ok(f, "keys", NULL, 0, NULL, 0, NULL);
    Plexa__EngineReply *er = r->engine_reply;
    assert_int_equal(er->n_values, 1);
    assert_int_equal(er->values[0]->kind_case, PLEXA__VALUE__KIND_LIST);
    char got[256] = "";
    const Plexa__ValueList *l = er->values[0]->list;
    for (size_t i = 0; i < l->n_items; i++) {
        assert_int_equal(l->items[i]->kind_case, PLEXA__VALUE__KIND_STR);
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "",
                 l->items[i]->str);
    }
    assert_string_equal(got, want);
    assert_null(er->execute);
    plx_envelope_free(&r);
}

static void test_keys_reset(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    keys_are(f, "id");
    fake_exec_ok(f, "b = 2; a = 1; _hidden = 3; __dunder__ = 4", "", 1);
    keys_are(f, "_hidden a b id");
    Plexa__Envelope *r = call_ok(f, "reset", NULL, 0, NULL, 0, NULL);
    assert_int_equal(r->engine_reply->n_values, 0);
    plx_envelope_free(&r);
    keys_are(f, "id");
    fake_exec_ok(f, "print(id, __name__, len(dir(__builtins__)) > 100)", "3 __main__ True\n", 2);
    r = exec_err(f, "a", "NameError");
    plx_envelope_free(&r);
}

/* get_result(i) for a command in the history: number, input, stdout. */
static void result_is(fake_t *f, Plexa__Value *arg, int number, const char *input,
                      const char *out, const char *ename)
{
    Plexa__Value *args[] = { arg };
    Plexa__Envelope *r = call_req(f, "get_result", args, 1, NULL, 0, NULL);
    Plexa__EngineReply *er = r->engine_reply;
    assert_non_null(er->execute);
    assert_int_equal(er->execute->number, number);
    assert_string_equal(er->execute->input, input);
    assert_string_equal(er->execute->stdout ? er->execute->stdout : "", out);
    if (ename) {
        assert_non_null(er->error);
        assert_string_equal(er->error->ename, ename);
    } else {
        assert_null(er->error);
    }
    plx_envelope_free(&r);
}

static void test_get_result(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    Plexa__Value none = PLEXA__VALUE__INIT;
    none.kind_case = PLEXA__VALUE__KIND_NONE;
    none.none = 1;
    Plexa__Value *args[] = { &none };
    Plexa__Envelope *r = call_req(f, "get_result", args, 1, NULL, 0, NULL);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "IndexError");
    plx_envelope_free(&r);

    fake_exec_ok(f, "print('one')", "one\n", 1);
    r = exec_err(f, "1/0", "ZeroDivisionError");
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('three')", "three\n", 3);
    Plexa__Value one = val_i64(1), two = val_i64(2), five = val_i64(5);
    result_is(f, &one, 1, "print('one')", "one\n", NULL);
    result_is(f, &two, 2, "1/0", "", "ZeroDivisionError");
    result_is(f, &none, 3, "print('three')", "three\n", NULL);

    args[0] = &five;
    r = call_req(f, "get_result", args, 1, NULL, 0, NULL);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "IndexError");
    assert_string_equal(r->engine_reply->error->evalue,
                        "command 5 is not in this engine's history (kept: 1..3)");
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('four')", "four\n", 4);   /* get_result does not count */
}

/* Pull name (a function defined on the engine): its pickle Value, with
 * the frame holding its buffers in *m. */
static Plexa__Envelope *pull_function(fake_t *f, const char *name, plx_msg_t **m)
{
    const char *keys[] = { name };
    Plexa__Envelope *r = pull_call(f, keys, 1, m);
    assert_non_null(r);
    assert_null(r->engine_reply->error);
    assert_int_equal(r->engine_reply->values[0]->kind_case, PLEXA__VALUE__KIND_PICKLE);
    return r;
}

static void test_map_apply(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "def f(x, y=0):\n    print('f', x)\n    return 10 * x + y", "", 1);
    plx_msg_t *m = NULL;
    Plexa__Envelope *pf = pull_function(f, "f", &m);
    Plexa__Value *fv = pf->engine_reply->values[0];

    /* map(f, [1, 2, 3], [4, 5, 6]) counts as command 2 */
    Plexa__Value x[6] = { val_i64(1), val_i64(2), val_i64(3), val_i64(4), val_i64(5), val_i64(6) };
    Plexa__Value *xs[] = { &x[0], &x[1], &x[2] }, *ys[] = { &x[3], &x[4], &x[5] };
    Plexa__ValueList lx, ly, lseqs;
    Plexa__Value sx = val_list(&lx, xs, 3, 0), sy = val_list(&ly, ys, 3, 0);
    Plexa__Value *seqv[] = { &sx, &sy };
    Plexa__Value seqs = val_list(&lseqs, seqv, 2, 0);
    Plexa__Value *margs[] = { fv, &seqs };
    Plexa__Envelope *r = call_ok(f, "map", margs, 2, m->bufs, m->nbufs, NULL);
    Plexa__EngineReply *er = r->engine_reply;
    assert_non_null(er->execute);
    assert_int_equal(er->execute->number, 2);
    assert_string_equal(er->execute->input,
                        "_plexa_map_result = list(map(_plexa_map_func, *_plexa_map_seqs))");
    assert_string_equal(er->execute->stdout, "f 1\nf 2\nf 3\n");
    assert_int_equal(er->n_values, 1);
    const Plexa__ValueList *res = er->values[0]->list;
    assert_int_equal(res->n_items, 3);
    assert_int_equal(res->items[0]->i64, 14);
    assert_int_equal(res->items[2]->i64, 36);
    plx_envelope_free(&r);

    /* apply(f, (7,), None): no counter */
    x[0] = val_i64(7);
    Plexa__Value *a7[] = { &x[0] };
    Plexa__ValueList la;
    Plexa__Value fargs = val_list(&la, a7, 1, 1);
    Plexa__Value none = PLEXA__VALUE__INIT;
    none.kind_case = PLEXA__VALUE__KIND_NONE;
    none.none = 1;
    Plexa__Value *aargs[] = { fv, &fargs, &none };
    r = call_ok(f, "apply", aargs, 3, m->bufs, m->nbufs, NULL);
    assert_null(r->engine_reply->execute);
    assert_int_equal(r->engine_reply->n_values, 1);
    assert_int_equal(r->engine_reply->values[0]->i64, 70);
    plx_envelope_free(&r);

    /* map raising inside f: an error with the user's frame, still counted */
    Plexa__Value s = PLEXA__VALUE__INIT;
    s.kind_case = PLEXA__VALUE__KIND_STR;
    s.str = "text";
    Plexa__Value *bad[] = { &s };
    Plexa__ValueList lb, lbs;
    Plexa__Value sb = val_list(&lb, bad, 1, 0);
    Plexa__Value *sbv[] = { &sb };
    Plexa__Value bseqs = val_list(&lbs, sbv, 1, 0);
    Plexa__Value *bargs[] = { fv, &bseqs };
    r = call_req(f, "map", bargs, 2, m->bufs, m->nbufs, NULL);
    er = r->engine_reply;
    assert_non_null(er->error);
    assert_string_equal(er->error->ename, "TypeError");
    /* the map's own line (In [3]), then f's line from the cell that defined it */
    assert_non_null(strstr(er->error->traceback, "File \"<plexa-input-3>\", line 1, in <module>\n"
                           "    _plexa_map_result = list(map("));
    assert_non_null(strstr(er->error->traceback, "File \"<plexa-input-1>\", line 3, in f\n"
                           "    return 10 * x + y\n"));
    assert_null(strstr(er->error->traceback, "_engine.py"));
    assert_int_equal(er->execute->number, 3);
    assert_int_equal(er->n_values, 0);
    plx_envelope_free(&r);
    plx_envelope_free(&pf);
    plx_msg_destroy(&m);
    fake_exec_ok(f, "print('next')", "next\n", 4);
}

static void test_call_errors(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    Plexa__Envelope *r = call_req(f, "frobnicate", NULL, 0, NULL, 0, NULL);
    assert_non_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->error->ename, "ProtocolError");
    assert_non_null(strstr(r->engine_reply->error->evalue, "'frobnicate'"));
    plx_envelope_free(&r);

    Plexa__Value one = val_i64(1);
    Plexa__Value *args[] = { &one };
    r = call_req(f, "keys", args, 1, NULL, 0, NULL);                /* wrong arity */
    assert_string_equal(r->engine_reply->error->ename, "TypeError");
    assert_string_equal(r->engine_reply->error->evalue, "keys takes 0 arguments (1 given)");
    plx_envelope_free(&r);

    Plexa__Value *aargs[] = { &one, &one, &one };
    r = call_req(f, "apply", aargs, 3, NULL, 0, NULL);              /* 1 is not callable */
    assert_string_equal(r->engine_reply->error->ename, "TypeError");
    plx_envelope_free(&r);

    Plexa__Value b = PLEXA__VALUE__INIT;                              /* bad buffer index */
    b.kind_case = PLEXA__VALUE__KIND_BYTES;
    b.bytes = 9;
    Plexa__Value *bargs[] = { &b };
    r = call_req(f, "get_result", bargs, 1, NULL, 0, NULL);
    assert_string_equal(r->engine_reply->error->ename, "ProtocolError");
    assert_non_null(strstr(r->engine_reply->error->evalue, "buffer 9"));
    plx_envelope_free(&r);
    fake_exec_ok(f, "print('alive')", "alive\n", 1);
}

/* ---- live output ---------------------------------------------------------- */

/* What a running execute prints reaches the controller while it runs, as
 * Output messages answering the request, in order, before its reply; the
 * reply still carries all of it. */
static void test_live_output(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    uint64_t xid = fake_execute(f, "import sys, time\n"
                                   "for i in range(3):\n"
                                   "    print('tick', i)\n"
                                   "    print('warn', i, file=sys.stderr)\n"
                                   "    time.sleep(0.4)\n");
    Plexa__Envelope *r = fake_recv_reply(f, T_REPLY, NULL);
    double done_at = plx_now_s();
    assert_non_null(r);
    assert_int_equal(r->reply_to, xid);
    assert_string_equal(r->engine_reply->execute->stdout, "tick 0\ntick 1\ntick 2\n");
    assert_string_equal(r->engine_reply->execute->stderr, "warn 0\nwarn 1\nwarn 2\n");
    plx_envelope_free(&r);
    /* one chunk per stream per burst (coalesced), the first ~1.2 s early */
    assert_in_range(f->nlive_msgs, 6, 8);
    assert_true(done_at - f->live_first_at > 0.6);
    assert_int_equal(f->live_reply_to, xid);
    assert_non_null(strstr(f->live, "stdout:tick 0\n|"));
    assert_non_null(strstr(f->live, "stderr:warn 2\n|"));
    assert_true(strstr(f->live, "tick 0") < strstr(f->live, "tick 1"));
    /* push and pull print nothing and send no Output */
    f->nlive_msgs = 0;
    fake_exec_ok(f, "x = 1", "", 0);
    assert_int_equal(f->nlive_msgs, 0);
}

/* A request that prints far more than the client can take live in a burst
 * still gets all of it in the reply, and the engine is not held up. */
static void test_live_output_flood(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "for i in range(200000): print('x' * 20)", NULL, 1);
    assert_true(f->nlive_msgs >= 1);
    Plexa__Envelope *r = fake_exec_call(f, "print(len('x'))", T_REPLY);
    assert_non_null(r);
    assert_string_equal(r->engine_reply->execute->stdout, "1\n");
    plx_envelope_free(&r);
}

static const struct CMUnitTest tests[] = {
    FAKE_TEST(test_live_output),
    FAKE_TEST(test_live_output_flood),
    FAKE_TEST(test_execute),
    FAKE_TEST(test_fork_child),
    FAKE_TEST(test_push_pull),
    FAKE_TEST(test_bad_buffer_index),
    FAKE_TEST(test_keys_reset),
    FAKE_TEST(test_get_result),
    FAKE_TEST(test_map_apply),
    FAKE_TEST(test_call_errors),
    FAKE_TEST(test_buffers_released),
};

PLX_TEST_SUITE(engine_test_init, NULL, PLX_TEST_GROUP("engine", tests, NULL, NULL))
