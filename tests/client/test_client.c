/*
 * libplexa's client against a scripted controller (fake_controller.c)
 * over the real tcp transport plugin (PLX_PLUGIN_PATH points at the build
 * tree's plugin directory).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "client_session.h"
#include "fake_controller.h"
#include "plx_time.h"
#include "plexa/client.h"
#include "plexa.pb-c.h"   /* the fake controller's Hello roles */
#include "plx_client_int.h"


/* ---- handshake ----------------------------------------------------------- */

static void test_welcome_and_get_ids(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(plx_client_get_ids(fx->c, &ids, &n, &err), PLX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 1);
    free(ids);
    char peer[64];
    snprintf(peer, sizeof peer, "127.0.0.1:%u", (unsigned)fake_port(fx->fake));
    assert_string_equal(plx_client_peer(fx->c), peer);
}

static void expect_reject(fake_mode mode, const char *token)
{
    fake_t *f = fake_start(mode);
    assert_non_null(f);
    char url[256];
    url_of(url, sizeof url, fake_port(f), token);
    plx_err_t err = {0};
    plx_client_t *c = plx_client_connect(url, NULL, CONNECT_TIMEOUT_S, &err);
    assert_null(c);
    assert_int_equal(err.code, PLX_EAUTH);
    assert_non_null(strstr(err.msg, "controller refused the connection: "
                                    "token is not valid for this cluster"));
    fake_stop(&f);
}

static void test_reject(void **state)
{
    expect_reject(FAKE_REJECT, FAKE_TOKEN);
}

static void test_wrong_token(void **state)
{
    expect_reject(FAKE_WELCOME, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
}

/* A port nobody listens on: bind one, note it, close it. */
static uint16_t closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void test_closed_port(void **state)
{
    uint16_t port = closed_port();
    char url[256], where[64];
    url_of(url, sizeof url, port, FAKE_TOKEN);
    snprintf(where, sizeof where, "127.0.0.1:%u", (unsigned)port);
    plx_err_t err = {0};
    double t0 = plx_now_s();
    plx_client_t *c = plx_client_connect(url, NULL, CONNECT_TIMEOUT_S, &err);
    assert_null(c);
    assert_int_equal(err.code, PLX_ECONNECT);
    assert_non_null(strstr(err.msg, where));
    assert_true(plx_now_s() - t0 < 2.0);
}

static void test_silent_controller_times_out(void **state)
{
    fake_t *f = fake_start(FAKE_SILENT);
    assert_non_null(f);
    char url[256];
    url_of(url, sizeof url, fake_port(f), FAKE_TOKEN);
    plx_err_t err = {0};
    double t0 = plx_now_s();
    plx_client_t *c = plx_client_connect(url, NULL, 0.3, &err);
    double dt = plx_now_s() - t0;
    assert_null(c);
    assert_int_equal(err.code, PLX_ECONNECT);
    assert_non_null(strstr(err.msg, "no answer from the controller"));
    assert_true(dt >= 0.29 && dt < 2.0);
    fake_stop(&f);
}

static void test_bad_url(void **state)
{
    plx_err_t err = {0};
    assert_null(plx_client_connect("plx+tcp://127.0.0.1/nope", NULL, 1.0, &err));
    assert_int_equal(err.code, PLX_EINVAL);
}

/* The URL in a private connection file, named by path or found through
 * $PLEXA_URL and the profile directory. */
static void test_connection_file_and_profile(void **state)
{
    fake_t *f = fake_start(FAKE_WELCOME);
    assert_non_null(f);
    char dir[] = "/tmp/plx-client-test-XXXXXX", path[512], url[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/profile_default", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/profile_default/security", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/profile_default/security/ipcontroller-mec.url", dir);
    url_of(url, sizeof url, fake_port(f), FAKE_TOKEN);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, url, strlen(url)), (ssize_t)strlen(url));
    close(fd);

    plx_err_t err = {0};
    plx_client_t *c = plx_client_connect(path, NULL, CONNECT_TIMEOUT_S, &err);
    if (!c)
        fail_msg("file connect: %s", err.msg);
    plx_client_destroy(&c);

    setenv("PLEXA_DIR", dir, 1);
    unsetenv("PLEXA_URL");
    c = plx_client_connect("", NULL, CONNECT_TIMEOUT_S, &err);
    if (!c)
        fail_msg("profile connect: %s", err.msg);
    plx_client_destroy(&c);
    /* $PLEXA_URL applies when no profile is named, and only then. */
    setenv("PLEXA_DIR", "/nonexistent", 1);
    setenv("PLEXA_URL", url, 1);
    c = plx_client_connect(NULL, NULL, CONNECT_TIMEOUT_S, &err);
    if (!c)
        fail_msg("PLEXA_URL connect: %s", err.msg);
    plx_client_destroy(&c);
    assert_null(plx_client_connect(NULL, "nosuchprofile", CONNECT_TIMEOUT_S, &err));
    assert_int_equal(err.code, PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nosuchprofile"));
    unsetenv("PLEXA_URL");
    unsetenv("PLEXA_DIR");

    unlink(path);
    snprintf(path, sizeof path, "%s/profile_default/security", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/profile_default", dir);
    rmdir(path);
    rmdir(dir);
    fake_stop(&f);
}

/* The task role: its Hello says ROLE_TASK, its connection file is
 * ipcontroller-tc.url, $PLEXA_TASK_URL stands in for it, and $PLEXA_URL
 * (the multi-engine capability) is not used for it. */
static void test_task_role(void **state)
{
    fake_t *f = fake_start(FAKE_WELCOME);
    assert_non_null(f);
    char dir[] = "/tmp/plx-client-test-XXXXXX", path[512], url[256];
    assert_non_null(mkdtemp(dir));
    url_of(url, sizeof url, fake_port(f), FAKE_TOKEN);
    plx_err_t err = {0};
    plx_client_t *c = plx_client_connect_role(url, NULL, PLX_CLIENT_ROLE_TASK,
                                              CONNECT_TIMEOUT_S, &err);
    if (!c)
        fail_msg("task connect: %s", err.msg);
    assert_int_equal(fake_last_role(f), PLEXA__ROLE__ROLE_TASK);
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(plx_client_get_ids(c, &ids, &n, &err), PLX_OK);   /* both roles serve it */
    assert_int_equal(n, 2);
    free(ids);
    plx_client_destroy(&c);
    c = plx_client_connect(url, NULL, CONNECT_TIMEOUT_S, &err);
    assert_non_null(c);
    assert_int_equal(fake_last_role(f), PLEXA__ROLE__ROLE_MEC);
    plx_client_destroy(&c);

    /* the profile's ipcontroller-tc.url */
    snprintf(path, sizeof path, "%s/profile_default", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/profile_default/security", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/profile_default/security/ipcontroller-tc.url", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, url, strlen(url)), (ssize_t)strlen(url));
    close(fd);
    setenv("PLEXA_DIR", dir, 1);
    char mec_url[256];
    url_of(mec_url, sizeof mec_url, 1, FAKE_TOKEN);
    setenv("PLEXA_URL", mec_url, 1);   /* the mec URL: not for tasks */
    unsetenv("PLEXA_TASK_URL");
    c = plx_client_connect_role("", NULL, PLX_CLIENT_ROLE_TASK, CONNECT_TIMEOUT_S, &err);
    if (!c)
        fail_msg("task profile connect: %s", err.msg);
    assert_int_equal(fake_last_role(f), PLEXA__ROLE__ROLE_TASK);
    plx_client_destroy(&c);
    /* the mec role finds no ipcontroller-mec.url there: it uses $PLEXA_URL */
    assert_null(plx_client_connect_role("", NULL, PLX_CLIENT_ROLE_MEC, 1.0, &err));
    assert_int_equal(err.code, PLX_ECONNECT);
    assert_non_null(strstr(err.msg, "127.0.0.1:1"));
    /* $PLEXA_TASK_URL wins when no profile is named */
    setenv("PLEXA_DIR", "/nonexistent", 1);
    setenv("PLEXA_TASK_URL", url, 1);
    c = plx_client_connect_role(NULL, NULL, PLX_CLIENT_ROLE_TASK, CONNECT_TIMEOUT_S, &err);
    if (!c)
        fail_msg("PLEXA_TASK_URL connect: %s", err.msg);
    plx_client_destroy(&c);
    setenv("PLEXA_TASK_URL", "garbage", 1);
    assert_null(plx_client_connect_role(NULL, NULL, PLX_CLIENT_ROLE_TASK, 1.0, &err));
    assert_non_null(strstr(err.msg, "PLEXA_TASK_URL"));
    assert_null(plx_client_connect_role(url, NULL, (plx_client_role_t)7, 1.0, &err));
    assert_int_equal(err.code, PLX_EINVAL);
    unsetenv("PLEXA_TASK_URL");
    unsetenv("PLEXA_URL");
    unsetenv("PLEXA_DIR");

    unlink(path);
    snprintf(path, sizeof path, "%s/profile_default/security", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/profile_default", dir);
    rmdir(path);
    rmdir(dir);
    fake_stop(&f);
}

/* ---- execute ------------------------------------------------------------- */

static void test_execute_all(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    assert_int_equal(plx_client_execute(fx->c, NULL, "a = 10", &res, &err), PLX_OK);
    assert_int_equal(res->n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(res->r[i].engine_id, i);
        assert_int_equal(res->r[i].number, 1);
        assert_string_equal(res->r[i].input, "a = 10");
        assert_string_equal(res->r[i].stdout_text, "a = 10\n");
        assert_string_equal(res->r[i].stderr_text, "");
        assert_null(res->r[i].ename);
        assert_null(res->r[i].evalue);
        assert_null(res->r[i].traceback);
    }
    plx_results_destroy(&res);
    assert_null(res);
    plx_results_destroy(&res);   /* NULL-safe */
}

static void test_execute_one_engine_raises(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    assert_int_equal(plx_client_execute(fx->c, NULL, "raise1", &res, &err), PLX_OK);
    assert_int_equal(res->n, 2);
    assert_null(res->r[0].ename);
    assert_string_equal(res->r[0].stdout_text, "raise1\n");
    assert_int_equal(res->r[1].engine_id, 1);
    assert_string_equal(res->r[1].ename, "ZeroDivisionError");
    assert_string_equal(res->r[1].evalue, "division by zero");
    assert_non_null(strstr(res->r[1].traceback, "Traceback (most recent call last)"));
    plx_results_destroy(&res);
}

static void test_execute_targets(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    int32_t one[] = { 1 };
    plx_targets_t t = { .all = 0, .ids = one, .n = 1 };
    assert_int_equal(plx_client_execute(fx->c, &t, "x", &res, &err), PLX_OK);
    assert_int_equal(res->n, 1);
    assert_int_equal(res->r[0].engine_id, 1);
    plx_results_destroy(&res);

    int32_t bad[] = { 0, 7 };
    t = (plx_targets_t){ .all = 0, .ids = bad, .n = 2 };
    assert_int_equal(plx_client_execute(fx->c, &t, "x", &res, &err), PLX_EBADENGINE);
    assert_null(res);
    assert_string_equal(err.msg, "invalid engine id: 7");
    /* The client is still fine after a refused request. */
    assert_int_equal(plx_client_execute(fx->c, NULL, "y", &res, &err), PLX_OK);
    plx_results_destroy(&res);
}

static void test_timeout_then_usable(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    plx_client_set_timeout(fx->c, 0.2);
    double t0 = plx_now_s();
    assert_int_equal(plx_client_execute(fx->c, NULL, "hang", &res, &err), PLX_ETIMEDOUT);
    assert_true(plx_now_s() - t0 < 2.0);
    plx_client_set_timeout(fx->c, -1);
    assert_int_equal(plx_client_execute(fx->c, NULL, "z", &res, &err), PLX_OK);
    plx_results_destroy(&res);
}

/* The controller dies while a request waits: it fails promptly, and so
 * does every later call. */
static void test_connection_lost_while_waiting(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    plx_request_t *hung = NULL;
    assert_int_equal(plx_rq_execute(fx->c, NULL, "hang", &hung, &err), PLX_OK);
    double t0 = plx_now_s();
    assert_int_equal(plx_client_execute(fx->c, NULL, "die", &res, &err), PLX_ECONNECT);
    assert_true(plx_now_s() - t0 < 2.0);
    char where[96];
    snprintf(where, sizeof where, "lost connection to the controller at 127.0.0.1:%u (",
             (unsigned)fake_port(fx->fake));
    assert_non_null(strstr(err.msg, where));
    /* The other pending request failed too, with the same error. */
    plx_err_t err2 = {0};
    assert_int_equal(plx_request_wait(hung, 1.0, &err2), PLX_ECONNECT);
    assert_string_equal(err2.msg, err.msg);
    plx_request_destroy(&hung);
    /* And later calls fail at once. */
    int32_t *ids = NULL;
    size_t n = 0;
    t0 = plx_now_s();
    assert_int_equal(plx_client_get_ids(fx->c, &ids, &n, &err2), PLX_ECONNECT);
    assert_true(plx_now_s() - t0 < 0.5);
    assert_string_equal(err2.msg, err.msg);
}

/* ---- the request layer --------------------------------------------------- */

static void on_done(plx_request_t *req, void *ud)
{
    atomic_fetch_add((atomic_int *)ud, 1);
}

static void test_request_poll_callback_cancel(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_request_t *a = NULL, *b = NULL;
    atomic_int called = 0;
    assert_int_equal(plx_rq_execute(fx->c, NULL, "hang", &a, &err), PLX_OK);
    assert_int_equal(plx_rq_get_ids(fx->c, &b, &err), PLX_OK);
    assert_true(plx_request_id(b) > plx_request_id(a));
    plx_request_on_done(b, on_done, &called);
    assert_int_equal(plx_request_wait(b, 5.0, &err), PLX_OK);
    assert_int_equal(atomic_load(&called), 1);
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(plx_request_ids(b, &ids, &n, &err), PLX_OK);   /* b's own reply */
    assert_int_equal(n, 2);
    free(ids);

    assert_false(plx_request_done(a));
    assert_int_equal(plx_request_wait(a, 0, &err), PLX_ETIMEDOUT);
    assert_int_equal(plx_request_ids(a, &ids, &n, &err), PLX_EAGAIN);
    plx_request_on_done(a, on_done, &called);
    plx_request_cancel(a);
    assert_int_equal(atomic_load(&called), 2);
    assert_true(plx_request_done(a));
    assert_int_equal(plx_request_wait(a, -1, &err), PLX_EABORTED);
    plx_request_cancel(a);   /* no effect once complete */
    plx_request_on_done(a, on_done, &called);   /* runs at once */
    assert_int_equal(atomic_load(&called), 3);
    /* Decoding a reply of the wrong kind is a protocol error. */
    plx_results_t *res = NULL;
    assert_int_equal(plx_request_results(b, &res, &err), PLX_EPROTO);
    plx_request_destroy(&a);
    plx_request_destroy(&b);
    plx_request_destroy(&b);   /* NULL-safe */
}

/* Destroying the client fails what still waits; handles stay valid. */
static void test_destroy_with_pending(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_request_t *r = NULL, *forgotten = NULL;
    assert_int_equal(plx_rq_execute(fx->c, NULL, "hang", &r, &err), PLX_OK);
    assert_int_equal(plx_rq_execute(fx->c, NULL, "hang", &forgotten, &err), PLX_OK);
    plx_request_destroy(&forgotten);
    plx_client_destroy(&fx->c);
    assert_null(fx->c);
    assert_int_equal(plx_request_wait(r, 1.0, &err), PLX_ECLOSED);
    plx_request_destroy(&r);
}

/* ---- threads ------------------------------------------------------------- */

#define THREADS 4
#define CALLS 50

typedef struct worker {
    plx_client_t *c;
    int           id;
    int           failures;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < CALLS; i++) {
        char code[32], want[40];
        snprintf(code, sizeof code, "t%d_%d", w->id, i);
        snprintf(want, sizeof want, "%s\n", code);
        plx_err_t err = {0};
        plx_results_t *res = NULL;
        if (plx_client_execute(w->c, NULL, code, &res, &err) != PLX_OK || res->n != 2 ||
            strcmp(res->r[1].stdout_text, want) != 0)
            w->failures++;
        plx_results_destroy(&res);
    }
    return NULL;
}

static void test_concurrent_callers(void **state)
{
    fixture_t *fx = *state;
    pthread_t th[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){ .c = fx->c, .id = i };
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
}

/* Several clients in one process, each with its own I/O thread. */
static void test_several_clients(void **state)
{
    fake_t *f = fake_start(FAKE_WELCOME);
    assert_non_null(f);
    char url[256];
    url_of(url, sizeof url, fake_port(f), FAKE_TOKEN);
    plx_client_t *c[3];
    plx_err_t err = {0};
    for (int i = 0; i < 3; i++) {
        c[i] = plx_client_connect(url, "default", CONNECT_TIMEOUT_S, &err);
        assert_non_null(c[i]);
    }
    for (int i = 0; i < 3; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(plx_client_get_ids(c[i], &ids, &n, &err), PLX_OK);
        free(ids);
    }
    assert_int_equal(fake_hellos(f), 3);
    for (int i = 0; i < 3; i++)
        plx_client_destroy(&c[i]);
    plx_client_destroy(&c[0]);   /* NULL-safe */
    fake_stop(&f);
}

/* ---- non-blocking handles ------------------------------------------------ */

typedef struct cb_seen {
    int       calls;
    pthread_t thread;
    int       nresults;
    int       rc;
} cb_seen_t;

static void record_cb(plx_pending_t *p, void *ud)
{
    cb_seen_t *seen = ud;
    plx_err_t err = {0};
    plx_results_t *res = NULL;
    seen->calls++;
    seen->thread = pthread_self();
    seen->rc = plx_pending_execute_results(p, &res, &err);
    seen->nresults = res ? (int)res->n : -1;
    plx_results_destroy(&res);
    plx_pending_destroy(&p);   /* a callback may drop its own handle */
}

/* The callback runs in the thread that runs the caller's loop, once, and
 * the loop then has nothing left to wait for. */
static void test_pending_callback_in_loop_thread(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_pending_t *p = NULL;
    cb_seen_t seen = {0};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(plx_client_execute_nb(fx->c, NULL, "x = 1", &p, &err), PLX_OK);
    assert_int_equal(plx_pending_on_done(p, loop, record_cb, &seen, &err), PLX_OK);
    assert_int_equal(plx_pending_on_done(p, loop, record_cb, &seen, &err), PLX_EINVAL);
    ev_run(loop, 0);
    assert_int_equal(seen.calls, 1);
    assert_true(pthread_equal(seen.thread, pthread_self()));
    assert_int_equal(seen.rc, PLX_OK);
    assert_int_equal(seen.nresults, 2);

    /* registered after completion: delivered on the next loop iteration */
    memset(&seen, 0, sizeof seen);
    assert_int_equal(plx_client_execute_nb(fx->c, NULL, "y = 2", &p, &err), PLX_OK);
    assert_int_equal(plx_pending_wait(p, 5, &err), PLX_OK);
    assert_int_equal(plx_pending_poll(p), 1);
    assert_int_equal(plx_pending_on_done(p, loop, record_cb, &seen, &err), PLX_OK);
    assert_int_equal(seen.calls, 0);
    ev_run(loop, 0);
    assert_int_equal(seen.calls, 1);
    ev_loop_destroy(loop);
}

/* A handle destroyed before its reply never calls back; the reply is
 * dropped and the client stays usable. */
static void test_pending_destroy_unfired(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_pending_t *p = NULL;
    cb_seen_t seen = {0};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_int_equal(plx_client_execute_nb(fx->c, NULL, "hang", &p, &err), PLX_OK);
    assert_int_equal(plx_pending_poll(p), 0);
    assert_int_equal(plx_pending_wait(p, 0.05, &err), PLX_ETIMEDOUT);
    plx_results_t *res = NULL;
    assert_int_equal(plx_pending_execute_results(p, &res, &err), PLX_EAGAIN);
    assert_int_equal(plx_pending_on_done(p, loop, record_cb, &seen, &err), PLX_OK);
    plx_pending_destroy(&p);
    assert_null(p);
    plx_pending_destroy(&p);   /* NULL-safe */
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(seen.calls, 0);
    ev_loop_destroy(loop);
    assert_int_equal(plx_client_execute(fx->c, NULL, "z", &res, &err), PLX_OK);
    plx_results_destroy(&res);
}

/* A lost connection completes handles with PLX_ECONNECT; a destroyed
 * client with PLX_ECLOSED, and the handles outlive it. */
static void test_pending_failures(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_pending_t *hang = NULL, *die = NULL;
    plx_results_t *res = NULL;
    assert_int_equal(plx_client_execute_nb(fx->c, NULL, "hang", &hang, &err), PLX_OK);
    plx_client_destroy(&fx->c);
    assert_int_equal(plx_pending_wait(hang, 5, &err), PLX_OK);
    assert_int_equal(plx_pending_execute_results(hang, &res, &err), PLX_ECLOSED);
    assert_null(res);
    plx_pending_destroy(&hang);

    char url[256];
    url_of(url, sizeof url, fake_port(fx->fake), FAKE_TOKEN);
    fx->c = plx_client_connect(url, NULL, CONNECT_TIMEOUT_S, &err);
    assert_non_null(fx->c);
    assert_int_equal(plx_client_execute_nb(fx->c, NULL, "die", &die, &err), PLX_OK);
    assert_int_equal(plx_pending_wait(die, 5, &err), PLX_OK);
    assert_int_equal(plx_pending_execute_results(die, &res, &err), PLX_ECONNECT);
    assert_non_null(strstr(err.msg, "lost connection to the controller at 127.0.0.1:"));
    assert_int_equal(plx_pending_push_result(die, &err), PLX_EINVAL);   /* wrong reader */
    plx_pending_destroy(&die);
}

/* Bad arguments are refused before anything is sent, with messages. */
static void test_value_call_arguments(void **state)
{
    fixture_t *fx = *state;
    plx_err_t err = {0};
    plx_value_t *v = plx_value_i64(1);
    const plx_value_t *vals[] = { v, NULL };
    const char *names[] = { "a", "" };
    assert_int_equal(plx_client_push(fx->c, NULL, names, vals, 2, &err), PLX_EINVAL);
    assert_string_equal(err.msg, "push: name 1 is empty");
    const char *names2[] = { "a", "b" };
    assert_int_equal(plx_client_push(fx->c, NULL, names2, vals, 2, &err), PLX_EINVAL);
    assert_string_equal(err.msg, "push: a value is NULL");
    assert_int_equal(plx_client_scatter(fx->c, NULL, "a", v, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "must be a C-order array of at least one dimension, or a "
                                    "list, not i64"));
    uint64_t id;
    assert_int_equal(plx_client_task_submit_string(fx->c, "x", NULL, NULL, 0, NULL, 0, &id, &err),
                     PLX_EINVAL);
    assert_non_null(strstr(err.msg, "not connected to the task capability"));
    plx_pulled_t *p = NULL;
    assert_int_equal(plx_client_pull(fx->c, NULL, names, 2, &p, &err), PLX_EINVAL);
    assert_null(p);
    plx_value_destroy(&v);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_welcome_and_get_ids, setup_connected, teardown_connected),
    cmocka_unit_test(test_reject),
    cmocka_unit_test(test_wrong_token),
    cmocka_unit_test(test_closed_port),
    cmocka_unit_test(test_silent_controller_times_out),
    cmocka_unit_test(test_bad_url),
    cmocka_unit_test(test_connection_file_and_profile),
    cmocka_unit_test(test_task_role),
    cmocka_unit_test_setup_teardown(test_execute_all, setup_connected, teardown_connected),
    cmocka_unit_test_setup_teardown(test_execute_one_engine_raises, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_execute_targets, setup_connected, teardown_connected),
    cmocka_unit_test_setup_teardown(test_timeout_then_usable, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_connection_lost_while_waiting, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_request_poll_callback_cancel, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_destroy_with_pending, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_concurrent_callers, setup_connected,
                                    teardown_connected),
    cmocka_unit_test(test_several_clients),
    cmocka_unit_test_setup_teardown(test_pending_callback_in_loop_thread, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_pending_destroy_unfired, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_pending_failures, setup_connected,
                                    teardown_connected),
    cmocka_unit_test_setup_teardown(test_value_call_arguments, setup_connected,
                                    teardown_connected),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("client", tests, NULL, NULL))
