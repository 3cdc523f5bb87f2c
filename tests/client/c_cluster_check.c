/*
 * plx-c-cluster-check: libplexa's value, task and non-blocking API against
 * a real cluster. Run by tests/integration/test_c_client.py with the
 * cluster's mec and task connection files; prints one "ok NAME" line per
 * check and exits non-zero at the first failure, saying what differed.
 *
 *   plx-c-cluster-check MEC_URL_FILE TC_URL_FILE
 */
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plexa/client.h>

static int failures;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
            failures++;                                                   \
            return;                                                       \
        }                                                                 \
    } while (0)

static plx_client_t *mec, *tc;

/* Scalars, strings, bytes, nested lists round-trip through an engine. */
static void check_roundtrip(void)
{
    plx_err_t err = {0};
    plx_value_t *l = plx_value_list(), *t = plx_value_tuple();
    plx_value_t *items[] = { plx_value_i64(-7), plx_value_f64(2.5), plx_value_str("h\xc3\xa9"),
                             plx_value_bytes("a\0b", 3), plx_value_none(), plx_value_bool(1) };
    for (size_t i = 0; i < 6; i++)
        plx_value_list_append(i < 3 ? l : t, &items[i]);
    plx_value_list_append(l, &t);
    const char *name = "v";
    const plx_value_t *vals[] = { l };
    int rc = plx_client_push(mec, NULL, &name, vals, 1, &err);
    plx_value_destroy(&l);
    CHECK(rc == PLX_OK, "push: %s", err.msg);
    plx_results_t *res = NULL;
    rc = plx_client_execute(mec, NULL, "w = repr(v)", &res, &err);
    CHECK(rc == PLX_OK && !res->r[0].ename, "execute: %s", err.msg);
    plx_results_destroy(&res);
    const char *names[] = { "v", "w" };
    plx_pulled_t *p = NULL;
    rc = plx_client_pull(mec, NULL, names, 2, &p, &err);
    CHECK(rc == PLX_OK, "pull: %s", err.msg);
    CHECK(p->n == 2 && p->r[0].n == 2, "pull shape");
    const plx_value_t *v = p->r[1].values[0];
    const char *w = plx_value_as_str(p->r[1].values[1]);
    CHECK(w && strcmp(w, "[-7, 2.5, 'h\xc3\xa9', (b'a\\x00b', None, True)]") == 0, "repr: %s",
          w ? w : "(null)");
    int64_t i64;
    double f;
    size_t blen;
    CHECK(plx_value_kind(v) == PLX_VALUE_LIST && plx_value_list_len(v) == 4, "list back");
    CHECK(plx_value_as_i64(plx_value_list_get(v, 0), &i64) == PLX_OK && i64 == -7, "i64");
    CHECK(plx_value_as_f64(plx_value_list_get(v, 1), &f) == PLX_OK && f == 2.5, "f64");
    const plx_value_t *tt = plx_value_list_get(v, 3);
    CHECK(plx_value_list_is_tuple(tt) && plx_value_list_len(tt) == 3, "tuple");
    const char *b = plx_value_as_bytes(plx_value_list_get(tt, 0), &blen);
    CHECK(b && blen == 3 && memcmp(b, "a\0b", 3) == 0, "bytes");
    CHECK(plx_value_kind(plx_value_list_get(tt, 1)) == PLX_VALUE_NONE, "none");
    plx_pulled_destroy(&p);
    printf("ok roundtrip\n");
}

/* A missing name is PLX_EREMOTE naming the engine and the exception. */
static void check_pull_error(void)
{
    plx_err_t err = {0};
    plx_pulled_t *p = NULL;
    int32_t one = 1;
    plx_targets_t t = { .ids = &one, .n = 1 };
    const char *name = "no_such_name";
    int rc = plx_client_pull(mec, &t, &name, 1, &p, &err);
    CHECK(rc == PLX_EREMOTE, "rc %d: %s", rc, err.msg);
    CHECK(strcmp(err.msg, "pull: engine 1 raised NameError: name 'no_such_name' is not defined")
              == 0, "message: %s", err.msg);
    CHECK(p && p->n == 1 && p->r[0].ename && p->r[0].n == 0, "per-engine error");
    plx_pulled_destroy(&p);
    int32_t bad = 99;
    plx_targets_t tb = { .ids = &bad, .n = 1 };
    rc = plx_client_pull(mec, &tb, &name, 1, &p, &err);
    CHECK(rc == PLX_EBADENGINE && !p, "bad engine: %d %s", rc, err.msg);
    printf("ok pull_error\n");
}

/* Objects C cannot read come back as opaque pickles, and go back. */
/* plx_value_ref: engine 0's value pushed to engine 1 by the controller;
 * an unknown name fails the push on its target with the source's error. */
static void check_ref(void)
{
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    plx_targets_t t0 = { .ids = (int32_t[]){ 0 }, .n = 1 };
    plx_targets_t t1 = { .ids = (int32_t[]){ 1 }, .n = 1 };
    int rc = plx_client_execute(mec, &t0, "src = list(range(5))", &res, &err);
    CHECK(rc == PLX_OK && !res->r[0].ename, "execute: %s", err.msg);
    plx_results_destroy(&res);
    plx_value_t *ref = plx_value_ref(0, "src");
    char repr[64];
    plx_value_repr(ref, repr, sizeof repr);
    CHECK(strcmp(repr, "ref('src', engine=0)") == 0, "repr %s", repr);
    const char *name = "dst";
    const plx_value_t *vals[] = { ref };
    rc = plx_client_push(mec, &t1, &name, vals, 1, &err);
    CHECK(rc == PLX_OK, "push of a ref: %s", err.msg);
    rc = plx_client_execute(mec, &t1, "assert dst == [0, 1, 2, 3, 4], dst", &res, &err);
    CHECK(rc == PLX_OK && !res->r[0].ename, "dst on engine 1: %s",
          rc ? err.msg : res->r[0].evalue);
    plx_results_destroy(&res);
    plx_value_destroy(&ref);
    ref = plx_value_ref(0, "no_such_name");
    vals[0] = ref;
    rc = plx_client_push(mec, &t1, &name, vals, 1, &err);
    plx_value_destroy(&ref);
    CHECK(rc == PLX_EREMOTE && strstr(err.msg, "NameError") && strstr(err.msg, "no_such_name"),
          "push of an unknown ref: %d %s", rc, err.msg);
    CHECK(plx_value_ref(0, "") == NULL && plx_value_ref(0, NULL) == NULL, "empty key accepted");
    /* Inside a list the controller does not resolve it: the engine refuses. */
    plx_value_t *l = plx_value_list();
    ref = plx_value_ref(0, "src");
    plx_value_list_append(l, &ref);
    vals[0] = l;
    rc = plx_client_push(mec, &t1, &name, vals, 1, &err);
    plx_value_destroy(&l);
    CHECK(rc == PLX_EREMOTE && strstr(err.msg, "can only be a pushed value itself"),
          "a ref in a list: %d %s", rc, err.msg);
    printf("ok ref\n");
}

static void check_pickle(void)
{
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    int rc = plx_client_execute(mec, NULL, "d = {'k': 1}", &res, &err);
    plx_results_destroy(&res);
    CHECK(rc == PLX_OK, "execute: %s", err.msg);
    const char *name = "d";
    plx_pulled_t *p = NULL;
    rc = plx_client_pull(mec, NULL, &name, 1, &p, &err);
    CHECK(rc == PLX_OK, "pull: %s", err.msg);
    const plx_value_t *d = p->r[0].values[0];
    size_t len;
    CHECK(plx_value_kind(d) == PLX_VALUE_PICKLE && plx_value_pickle(d, &len) && len > 0,
          "kind %s", plx_value_kind_name(plx_value_kind(d)));
    const char *n2 = "d2";
    rc = plx_client_push(mec, NULL, &n2, &d, 1, &err);
    plx_pulled_destroy(&p);
    CHECK(rc == PLX_OK, "push back: %s", err.msg);
    rc = plx_client_execute(mec, NULL, "assert d2 == {'k': 1}", &res, &err);
    CHECK(rc == PLX_OK && !res->r[0].ename && !res->r[1].ename, "d2 differs");
    plx_results_destroy(&res);
    printf("ok pickle\n");
}

/* Arrays of dtypes C has no enum for arrive by name, with their bytes. */
static void check_other_dtypes(void)
{
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    int rc = plx_client_execute(mec, NULL, "import numpy\n"
                                "dt = numpy.array(['2020-01-01', '2020-01-02'], dtype='M8[D]')\n"
                                "us = numpy.array(['ab', 'c'])\n"
                                "cx = numpy.ones((2, 2), dtype=complex, order='F')\n",
                                &res, &err);
    CHECK(rc == PLX_OK && !res->r[0].ename, "execute: %s", rc ? err.msg : res->r[0].evalue);
    plx_results_destroy(&res);
    const char *names[] = { "dt", "us", "cx" };
    plx_pulled_t *p = NULL;
    rc = plx_client_pull(mec, NULL, names, 3, &p, &err);
    CHECK(rc == PLX_OK, "pull: %s", err.msg);
    const plx_value_t *dt = p->r[0].values[0], *us = p->r[0].values[1], *cx = p->r[0].values[2];
    CHECK(plx_value_array_dtype(dt) == PLX_DTYPE_OTHER &&
          strcmp(plx_value_array_dtype_str(dt), "<M8[D]") == 0 && plx_value_array_nbytes(dt) == 16,
          "dt %s", plx_value_array_dtype_str(dt));
    CHECK(strcmp(plx_value_array_dtype_str(us), "<U2") == 0 && plx_value_array_nbytes(us) == 16,
          "us %s", plx_value_array_dtype_str(us));
    CHECK(strcmp(plx_value_array_dtype_str(cx), "<c16") == 0 && plx_value_array_fortran(cx),
          "cx %s", plx_value_array_dtype_str(cx));
    plx_pulled_destroy(&p);
    printf("ok other_dtypes\n");
}

/* A StringTask with a pushed array and pulled scalars and arrays. */
static void check_task(void)
{
    plx_err_t err = {0};
    double xd[4] = { 1, 2, 3, 4 };
    size_t shape[1] = { 4 };
    plx_value_t *x = plx_value_array(PLX_DTYPE_FLOAT64, 1, shape, xd);
    plx_value_t *k = plx_value_i64(3);
    const char *push_names[] = { "x", "k" };
    const plx_value_t *push_vals[] = { x, k };
    const char *pull_names[] = { "y", "s", "msg" };
    uint64_t id = 0;
    int rc = plx_client_task_submit_string(tc, "import numpy\ny = x * k\ns = int(y.sum())\n"
                                               "msg = 'hi'\nprint('ran')",
                                           push_names, push_vals, 2, pull_names, 3, &id, &err);
    plx_value_destroy(&x);
    plx_value_destroy(&k);
    CHECK(rc == PLX_OK, "submit: %s", err.msg);
    plx_task_result_t *r = NULL;
    rc = plx_client_task_result(tc, id, 1, &r, &err);
    CHECK(rc == PLX_OK, "result: %d %s", rc, err.msg);
    CHECK(r->status == PLX_TASK_OK && r->n == 3 && !r->pulled_pickle, "status %d n %zu",
          r->status, r->n);
    const plx_value_t *y = plx_task_result_get(r, "y");
    CHECK(plx_value_array_dtype(y) == PLX_DTYPE_FLOAT64 && plx_value_array_size(y) == 4,
          "y is %s", plx_value_kind_name(plx_value_kind(y)));
    const double *yd = plx_value_array_data(y);
    CHECK(yd[0] == 3 && yd[3] == 12, "y values %g %g", yd[0], yd[3]);
    int64_t s;
    CHECK(plx_value_as_i64(plx_task_result_get(r, "s"), &s) == PLX_OK && s == 30, "s");
    CHECK(strcmp(plx_value_as_str(plx_task_result_get(r, "msg")), "hi") == 0, "msg");
    CHECK(strcmp(r->stdout_text, "ran\n") == 0, "stdout '%s'", r->stdout_text);
    CHECK(r->engine_id >= 0, "engine id");
    plx_task_result_destroy(&r);

    /* what C cannot read comes back as the opaque pickle of the dict */
    const char *pd = "d";
    rc = plx_client_task_submit_string(tc, "d = {1: 2}", NULL, NULL, 0, &pd, 1, &id, &err);
    CHECK(rc == PLX_OK, "submit: %s", err.msg);
    rc = plx_client_task_result(tc, id, 1, &r, &err);
    CHECK(rc == PLX_OK && r->n == 0 && plx_value_kind(r->pulled_pickle) == PLX_VALUE_PICKLE,
          "opaque pull: rc %d", rc);
    plx_task_result_destroy(&r);

    /* a failing task */
    rc = plx_client_task_submit_string(tc, "1/0", NULL, NULL, 0, NULL, 0, &id, &err);
    CHECK(rc == PLX_OK, "submit: %s", err.msg);
    rc = plx_client_task_result(tc, id, 1, &r, &err);
    CHECK(rc == PLX_EREMOTE && r && r->status == PLX_TASK_FAILED, "rc %d", rc);
    CHECK(strstr(err.msg, "raised ZeroDivisionError: division by zero"), "msg %s", err.msg);
    plx_task_result_destroy(&r);

    /* a task client refuses nothing a mec client would need, and vice versa */
    rc = plx_client_task_submit_string(mec, "1", NULL, NULL, 0, NULL, 0, &id, &err);
    CHECK(rc == PLX_EINVAL, "task on a mec client: %d", rc);
    printf("ok task\n");
}

static int cb_calls;

static void on_pull_done(plx_pending_t *p, void *ud)
{
    plx_err_t err = {0};
    plx_pulled_t *pulled = NULL;
    if (plx_pending_pull_results(p, &pulled, &err) == PLX_OK && pulled->n == 2)
        cb_calls++;
    plx_pulled_destroy(&pulled);
    plx_pending_destroy(&p);
}

/* Non-blocking calls: poll, wait, and a callback on our own libev loop. */
static void check_nonblocking(void)
{
    plx_err_t err = {0};
    plx_pending_t *p = NULL;
    int rc = plx_client_execute_nb(mec, NULL, "import time; time.sleep(0.3); z = 5", &p, &err);
    CHECK(rc == PLX_OK, "execute_nb: %s", err.msg);
    CHECK(plx_pending_poll(p) == 0, "done too early");
    CHECK(plx_pending_wait(p, 0.01, &err) == PLX_ETIMEDOUT, "wait timeout");
    CHECK(plx_pending_wait(p, 10, &err) == PLX_OK, "wait: %s", err.msg);
    plx_results_t *res = NULL;
    CHECK(plx_pending_execute_results(p, &res, &err) == PLX_OK && res->n == 2, "results");
    plx_results_destroy(&res);
    plx_pulled_t *pl = NULL;
    CHECK(plx_pending_pull_results(p, &pl, &err) == PLX_EINVAL, "wrong reader");
    plx_pending_destroy(&p);

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    const char *name = "z";
    for (int i = 0; i < 3; i++) {
        rc = plx_client_pull_nb(mec, NULL, &name, 1, &p, &err);
        CHECK(rc == PLX_OK, "pull_nb: %s", err.msg);
        CHECK(plx_pending_on_done(p, loop, on_pull_done, NULL, &err) == PLX_OK, "on_done");
    }
    ev_run(loop, 0);   /* returns once every callback ran: nothing keeps it alive after */
    ev_loop_destroy(loop);
    CHECK(cb_calls == 3, "callbacks: %d", cb_calls);

    /* destroying a handle whose callback never ran is safe */
    loop = ev_loop_new(EVFLAG_AUTO);
    rc = plx_client_execute_nb(mec, NULL, "time.sleep(0.2)", &p, &err);
    CHECK(rc == PLX_OK, "execute_nb: %s", err.msg);
    CHECK(plx_pending_on_done(p, loop, (plx_pending_cb)abort, NULL, &err) == PLX_OK, "on_done");
    plx_pending_destroy(&p);
    ev_run(loop, EVRUN_NOWAIT);
    ev_loop_destroy(loop);

    /* task result, non-blocking */
    uint64_t id;
    const char *pull = "q";
    rc = plx_client_task_submit_string(tc, "q = 42", NULL, NULL, 0, &pull, 1, &id, &err);
    CHECK(rc == PLX_OK, "submit: %s", err.msg);
    rc = plx_client_task_result_nb(tc, id, &p, &err);
    CHECK(rc == PLX_OK && plx_pending_wait(p, 10, &err) == PLX_OK, "task nb: %s", err.msg);
    plx_task_result_t *r = NULL;
    int64_t q = 0;
    CHECK(plx_pending_task_result(p, &r, &err) == PLX_OK &&
          plx_value_as_i64(plx_task_result_get(r, "q"), &q) == PLX_OK && q == 42, "q");
    plx_task_result_destroy(&r);
    plx_pending_destroy(&p);
    printf("ok nonblocking\n");
}

static int scatter_done;

static void on_scatter_done(plx_pending_t *p, void *ud)
{
    plx_err_t err = {0};
    scatter_done = plx_pending_scatter_result(p, &err) == PLX_OK ? 1 : -1;
    plx_pending_destroy(&p);
}

/* Scatter/gather of a 2-D array and a list, uneven over the engines. */
static void check_scatter_gather(void)
{
    plx_err_t err = {0};
    int64_t d[7][2];
    for (int i = 0; i < 7; i++)
        d[i][0] = i, d[i][1] = 10 * i;
    size_t shape[2] = { 7, 2 };
    plx_value_t *a = plx_value_array(PLX_DTYPE_INT64, 2, shape, d);
    int rc = plx_client_scatter(mec, NULL, "part", a, &err);
    plx_value_destroy(&a);
    CHECK(rc == PLX_OK, "scatter: %s", err.msg);
    const char *name = "n";
    plx_results_t *res = NULL;
    rc = plx_client_execute(mec, NULL, "n = len(part)", &res, &err);
    plx_results_destroy(&res);
    plx_pulled_t *p = NULL;
    rc = plx_client_pull(mec, NULL, &name, 1, &p, &err);
    int64_t n0 = 0, n1 = 0;
    CHECK(rc == PLX_OK && p->n == 2, "pull n");
    plx_value_as_i64(p->r[0].values[0], &n0);
    plx_value_as_i64(p->r[1].values[0], &n1);
    plx_pulled_destroy(&p);
    CHECK(n0 == 4 && n1 == 3, "block partition %lld %lld", (long long)n0, (long long)n1);
    plx_value_t *g = NULL;
    rc = plx_client_gather(mec, NULL, "part", &g, &err);
    CHECK(rc == PLX_OK && plx_value_array_ndim(g) == 2 && plx_value_array_shape(g)[0] == 7,
          "gather: %s", err.msg);
    CHECK(memcmp(plx_value_array_data(g), d, sizeof d) == 0, "gathered data differs");
    plx_value_destroy(&g);
    rc = plx_client_gather(mec, NULL, "n", &g, &err);   /* scalars: the list of parts */
    CHECK(rc == PLX_OK && plx_value_list_len(g) == 2, "gather scalars");
    plx_value_destroy(&g);

    /* non-blocking: a list scattered with a callback on our loop, then a
     * gather waited for */
    plx_value_t *l = plx_value_list();
    for (int64_t i = 0; i < 5; i++) {
        plx_value_t *it = plx_value_i64(i * i);
        plx_value_list_append(l, &it);
    }
    plx_pending_t *p2 = NULL;
    rc = plx_client_scatter_nb(mec, NULL, "sq", l, &p2, &err);
    plx_value_destroy(&l);
    CHECK(rc == PLX_OK, "scatter_nb: %s", err.msg);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    scatter_done = 0;
    CHECK(plx_pending_on_done(p2, loop, on_scatter_done, NULL, &err) == PLX_OK, "on_done");
    ev_run(loop, 0);
    ev_loop_destroy(loop);
    CHECK(scatter_done == 1, "scatter callback: %d", scatter_done);
    rc = plx_client_gather_nb(mec, NULL, "sq", &p2, &err);
    CHECK(rc == PLX_OK && plx_pending_wait(p2, 10, &err) == PLX_OK, "gather_nb: %s", err.msg);
    rc = plx_pending_gather_result(p2, &g, &err);
    plx_pending_destroy(&p2);
    CHECK(rc == PLX_OK && plx_value_list_len(g) == 5, "gather_nb result: %s", err.msg);
    for (size_t i = 0; i < 5; i++) {
        int64_t v = -1;
        plx_value_as_i64(plx_value_list_get(g, i), &v);
        CHECK(v == (int64_t)(i * i), "sq[%zu] = %lld", i, (long long)v);
    }
    plx_value_destroy(&g);
    printf("ok scatter_gather\n");
}

/* A 32 MiB array lent without a copy goes to every engine and back. */
static int big_released;
static void big_release(void *data, void *ctx)
{
    free(data);
    big_released = 1;
}

static void check_large(void)
{
    plx_err_t err = {0};
    size_t n = 4u << 20;
    double *d = malloc(n * sizeof *d);
    CHECK(d, "malloc");
    for (size_t i = 0; i < n; i++)
        d[i] = (double)i;
    size_t shape[1] = { n };
    plx_value_t *v = plx_value_array_borrow(PLX_DTYPE_FLOAT64, 1, shape, d, big_release, NULL);
    const char *name = "big";
    const plx_value_t *cv = v;
    int rc = plx_client_push(mec, NULL, &name, &cv, 1, &err);
    plx_value_destroy(&v);
    CHECK(rc == PLX_OK, "push: %s", err.msg);
    CHECK(big_released, "the lent array was not released after the push");
    plx_results_t *res = NULL;
    rc = plx_client_execute(mec, NULL, "big2 = big[::-1].copy()", &res, &err);
    plx_results_destroy(&res);
    const char *n2 = "big2";
    plx_pulled_t *p = NULL;
    rc = plx_client_pull(mec, NULL, &n2, 1, &p, &err);
    CHECK(rc == PLX_OK, "pull: %s", err.msg);
    for (size_t e = 0; e < p->n; e++) {
        const double *b = plx_value_array_data(p->r[e].values[0]);
        CHECK(plx_value_array_size(p->r[e].values[0]) == n && b[0] == (double)(n - 1) &&
                  b[n - 1] == 0.0,
              "engine %d: wrong array back", p->r[e].engine_id);
    }
    plx_pulled_destroy(&p);
    rc = plx_client_execute(mec, NULL, "del big, big2", &res, &err);
    plx_results_destroy(&res);
    printf("ok large\n");
}

/* One client, several threads pushing and pulling at once: each sees
 * its own values (requests are matched to callers, not to arrival). */
#define NTHREADS 4
#define ROUNDS 25

static void *pusher(void *arg)
{
    intptr_t me = (intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "t%d", (int)me);
    const char *np = name;
    for (int64_t r = 0; r < ROUNDS; r++) {
        plx_err_t err = {0};
        plx_value_t *v = plx_value_i64(me * 1000 + r);
        const plx_value_t *cv = v;
        int rc = plx_client_push(mec, NULL, &np, &cv, 1, &err);
        plx_value_destroy(&v);
        plx_pulled_t *p = NULL;
        if (rc == PLX_OK)
            rc = plx_client_pull(mec, NULL, &np, 1, &p, &err);
        int64_t got = -1;
        if (rc == PLX_OK)
            plx_value_as_i64(p->r[p->n - 1].values[0], &got);
        plx_pulled_destroy(&p);
        if (rc != PLX_OK || got != me * 1000 + r) {
            fprintf(stderr, "thread %d round %d: rc %d (%s), got %lld\n", (int)me, (int)r, rc,
                    err.msg, (long long)got);
            return (void *)1;
        }
    }
    return NULL;
}

static void check_threads(void)
{
    pthread_t th[NTHREADS];
    for (intptr_t i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, pusher, (void *)i);
    int bad = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += r != NULL;
    }
    CHECK(bad == 0, "%d threads saw wrong values", bad);
    printf("ok threads\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MEC_URL_FILE TC_URL_FILE\n", argv[0]);
        return 2;
    }
    plx_err_t err = {0};
    mec = plx_client_connect(argv[1], NULL, 10, &err);
    if (!mec) {
        fprintf(stderr, "connect mec: %s\n", err.msg);
        return 1;
    }
    tc = plx_client_connect_role(argv[2], NULL, PLX_CLIENT_ROLE_TASK, 10, &err);
    if (!tc) {
        fprintf(stderr, "connect task: %s\n", err.msg);
        return 1;
    }
    plx_client_set_timeout(mec, 30);
    plx_client_set_timeout(tc, 30);
    check_roundtrip();
    check_pull_error();
    check_pickle();
    check_ref();
    check_other_dtypes();
    check_task();
    check_nonblocking();
    check_scatter_gather();
    check_threads();
    check_large();
    plx_client_destroy(&mec);
    plx_client_destroy(&tc);
    printf(failures ? "FAILED\n" : "all ok\n");
    return failures ? 1 : 0;
}
