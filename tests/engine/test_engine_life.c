/*
 * ipengine's life against a fake controller (engine_harness.c): heartbeats
 * and keepalives while Python is busy, where its URL may come from (and
 * where it must not), refusals, and every way an engine ends (signals,
 * shutdown, a lost controller). What it runs: test_engine.c.
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

/* ---- heartbeats while Python is busy ------------------------------------ */

/* Send heartbeats while code runs; each must be answered within 0.5 s. */
static void heartbeats_during(fake_t *f, const char *code, int number)
{
    uint64_t xid = fake_execute(f, code);
    usleep(300000);
    for (int i = 0; i < 3; i++) {
        Plexa__Heartbeat hb = PLEXA__HEARTBEAT__INIT;
        hb.has_seq = 1;
        hb.seq = 77 + (uint64_t)i;
        Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
        env.body_case = PLEXA__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        double t0 = plx_now_s();
        uint64_t hid = fake_send(f, &env, NULL, 0);
        Plexa__Envelope *r = fake_recv_reply(f, 0.5, NULL);   /* skips keepalives */
        assert_non_null(r);
        assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_HEARTBEAT);
        assert_int_equal(r->reply_to, hid);
        assert_int_equal(r->heartbeat->seq, 77 + (uint64_t)i);
        assert_true(plx_now_s() - t0 < 0.5);
        plx_envelope_free(&r);
        usleep(200000);
    }
    Plexa__Envelope *r = fake_recv_reply(f, 5, NULL);
    assert_non_null(r);
    assert_int_equal(r->reply_to, xid);
    assert_null(r->engine_reply->error);
    assert_int_equal(r->engine_reply->execute->number, number);
    plx_envelope_free(&r);
}

static void test_heartbeat_while_busy(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    heartbeats_during(f, "import time; time.sleep(2)", 1);
    /* A C call that holds the GIL for 2 s (ctypes.PyDLL does not release
     * it): the I/O thread must not need it. */
    heartbeats_during(f, "import ctypes; ctypes.PyDLL(None).usleep(2000000)", 2);
}

/* Start an engine with args, take its Hello and welcome it as engine 3
 * with heartbeats every hb_ms (and then say nothing). */
static void start_welcomed(fake_t *f, const char *const *args, uint32_t hb_ms)
{
    assert_int_equal(fake_spawn(f, args), 0);
    assert_int_equal(fake_accept(f, T_START), 0);
    Plexa__Envelope *h = fake_recv(f, T_START, NULL);
    assert_non_null(h);
    plx_envelope_free(&h);
    fake_welcome(f, 3, hb_ms);
}

/* When the controller falls silent (in real life: its pings stuck behind a
 * large frame it is still writing to us), the engine speaks first with
 * unsolicited heartbeats, once per heartbeat period; the requests that
 * follow are served as before. */
static void test_keepalive(void **state)
{
    fake_t *f = *state;
    start_welcomed(f, NULL, 200);
    double t0 = plx_now_s();
    int beats = 0;
    while (plx_now_s() - t0 < 1.5) {
        Plexa__Envelope *r = fake_recv(f, 0.5, NULL);
        assert_non_null(r);
        assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_HEARTBEAT);
        assert_false(r->has_reply_to);
        plx_envelope_free(&r);
        beats++;
    }
    assert_in_range(beats, 4, 10);
    fake_exec_ok(f, "print('served')", "served\n", 1);
}

/* Started with --controller-timeout 1 and welcomed with 100 ms heartbeats. */
static void start_impatient(fake_t *f)
{
    static const char *const args[] = {"--controller-timeout", "1", NULL};
    start_welcomed(f, args, 100);
}

/* A controller that says nothing at all is presumed dead after the
 * --controller-timeout, and the engine (--reconnect 0) ends. */
static void test_silent_controller(void **state)
{
    fake_t *f = *state;
    start_impatient(f);
    double t0 = plx_now_s();
    assert_int_equal(fake_wait_exit(f, 20), 0);
    assert_in_range((long)((plx_now_s() - t0) * 10), 10, 100);
    char *log = fake_log(f);
    assert_non_null(strstr(log, "nothing from the controller for"));
    free(log);
}

/* A frame still arriving is a controller alive, however long it takes:
 * here one execute trickles in over three times the timeout (in CI, a
 * 1 GiB push under AddressSanitizer took longer than the default 30 s). */
static void test_slow_frame_is_not_silence(void **state)
{
    fake_t *f = *state;
    start_impatient(f);
    size_t n = 256 * 1024;
    char *code = malloc(n);
    assert_non_null(code);
    memset(code, '#', n);
    const char *tail = "\nprint('arrived')\n";
    memcpy(code + n - strlen(tail) - 1, tail, strlen(tail) + 1);
    Plexa__Execute ex = PLEXA__EXECUTE__INIT;
    ex.code = code;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_EXECUTE;
    env.execute = &ex;
    uint64_t xid = fake_send_slowly(f, &env, 40, 3.5);
    free(code);
    Plexa__Envelope *r = fake_recv_reply(f, T_REPLY, NULL);
    assert_non_null(r);
    assert_int_equal(r->reply_to, xid);
    assert_null(r->engine_reply->error);
    assert_string_equal(r->engine_reply->execute->stdout, "arrived\n");
    plx_envelope_free(&r);
}

/* --url-file, and PLEXA_URL when nothing else is given. */
static void test_url_sources(void **state)
{
    fake_t *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/engine.url", f->dir);
    FILE *u = fopen(path, "w");
    assert_non_null(u);
    fprintf(u, "%s\n", f->url);
    fclose(u);
    chmod(path, 0600);
    const char *args[] = { "--url-file", path, NULL };
    assert_int_equal(fake_spawn(f, args), 0);
    assert_int_equal(fake_accept(f, T_START), 0);
    Plexa__Envelope *h = fake_recv(f, T_START, NULL);
    assert_non_null(h);
    assert_int_equal(h->body_case, PLEXA__ENVELOPE__BODY_HELLO);
    plx_envelope_free(&h);
    fake_close_conn(f);
    assert_int_equal(fake_wait_exit(f, 10), 0);

    setenv("PLEXA_URL", f->url, 1);
    const char *none[] = { NULL };
    assert_int_equal(fake_spawn(f, none), 0);
    unsetenv("PLEXA_URL");
    assert_int_equal(fake_accept(f, T_START), 0);
    h = fake_recv(f, T_START, NULL);
    assert_non_null(h);
    assert_int_equal(h->body_case, PLEXA__ENVELOPE__BODY_HELLO);
    plx_envelope_free(&h);
}

/* ---- ways to end ---------------------------------------------------------- */

static void test_shutdown(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_exec_ok(f, "a = 1", "", 1);
    Plexa__Shutdown s = PLEXA__SHUTDOWN__INIT;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_SHUTDOWN;
    env.shutdown = &s;
    uint64_t id = fake_send(f, &env, NULL, 0);
    /* answered first (0.10's kill), then the engine waits for the
     * controller to close the connection and exits 0 */
    Plexa__Envelope *r = fake_recv_reply(f, 5, NULL);
    assert_non_null(r);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_ENGINE_REPLY);
    assert_int_equal(r->reply_to, id);
    assert_string_equal(r->engine_reply->method, "kill");
    assert_null(r->engine_reply->error);
    plx_envelope_free(&r);
    fake_close_conn(f);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_true(WIFEXITED(f->status));
    assert_int_equal(WEXITSTATUS(f->status), 0);
}

/* A controller that never closes after the kill reply does not keep the
 * engine alive: it exits after a bounded linger. */
static void test_shutdown_linger(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    Plexa__Shutdown s = PLEXA__SHUTDOWN__INIT;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_SHUTDOWN;
    env.shutdown = &s;
    fake_send(f, &env, NULL, 0);
    double t0 = plx_now_s();
    Plexa__Envelope *r = fake_recv_reply(f, 5, NULL);
    assert_non_null(r);
    assert_string_equal(r->engine_reply->method, "kill");
    plx_envelope_free(&r);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_true(plx_now_s() - t0 < 8);
    assert_int_equal(WEXITSTATUS(f->status), 0);
}

static void test_reject(void **state)
{
    fake_t *f = *state;
    assert_int_equal(fake_spawn(f, NULL), 0);
    assert_int_equal(fake_accept(f, T_START), 0);
    Plexa__Envelope *h = fake_recv(f, T_START, NULL);
    assert_non_null(h);
    plx_envelope_free(&h);
    Plexa__Reject rj = PLEXA__REJECT__INIT;
    rj.reason = "wrong capability token";
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_REJECT;
    env.reject = &rj;
    fake_send(f, &env, NULL, 0);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_true(WIFEXITED(f->status));
    assert_int_equal(WEXITSTATUS(f->status), 1);
    char *log = fake_log(f);
    assert_non_null(strstr(log, "ipengine: controller refused registration: wrong capability token\n"));
    free(log);
}

static void test_connect_refused(void **state)
{
    fake_t *f = *state;
    char url[160];
    close(f->lfd);   /* nobody listens on the port any more */
    f->lfd = -1;
    snprintf(url, sizeof url, "%s", f->url);
    assert_int_equal(fake_spawn(f, NULL), 0);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_int_equal(WEXITSTATUS(f->status), 1);
    char *log = fake_log(f);
    char want[96];
    snprintf(want, sizeof want, "cannot connect to the controller at plx+tcp://127.0.0.1:%u",
             (unsigned)f->port);
    assert_non_null(strstr(log, want));
    assert_null(strstr(log, strrchr(f->url, '/') + 1));   /* the token stays secret */
    free(log);
}

static void test_bad_url(void **state)
{
    fake_t *f = *state;
    f->url_env = "plx+tcp://127.0.0.1/xyz";
    assert_int_equal(fake_spawn(f, NULL), 0);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_int_equal(WEXITSTATUS(f->status), 1);
    char *log = fake_log(f);
    assert_non_null(strstr(log, "ipengine: "));
    free(log);
}

/* The engine token never goes on a command line, where every user of the
 * host can read it: --url with a URL is refused, saying what to do. */
static void test_url_on_command_line_refused(void **state)
{
    fake_t *f = *state;
    const char *args[] = { "--url", f->url, NULL };
    assert_int_equal(fake_spawn(f, args), 0);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_int_equal(WEXITSTATUS(f->status), 2);
    char *log = fake_log(f);
    assert_non_null(strstr(log, "on the command line"));
    assert_non_null(strstr(log, "--url-file"));
    assert_non_null(strstr(log, "--url -"));
    assert_null(strstr(log, strrchr(f->url, '/') + 1));
    free(log);
}

/* A --controller-timeout that is not a positive number is named. */
static void test_bad_controller_timeout(void **state)
{
    fake_t *f = *state;
    const char *args[] = { "--controller-timeout", "-3", NULL };
    assert_int_equal(fake_spawn(f, args), 0);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_int_equal(WEXITSTATUS(f->status), 2);
    char *log = fake_log(f);
    assert_non_null(strstr(log, "--controller-timeout: '-3' is not a positive number"));
    free(log);
}

/* --url - reads the URL from standard input; the engine's environment (as
 * its code sees it, and as /proc shows it) keeps no token. */
static void test_url_from_stdin_and_no_token_left(void **state)
{
    fake_t *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_true(write(p[1], f->url, strlen(f->url)) == (ssize_t)strlen(f->url));
    assert_true(write(p[1], "\n", 1) == 1);
    close(p[1]);
    f->stdin_fd = p[0];
    f->url_env = "plx+tcp://127.0.0.1:1/not-this-one";   /* --url - wins */
    const char *args[] = { "--url", "-", NULL };
    assert_int_equal(fake_spawn(f, args), 0);
    close(p[0]);
    f->stdin_fd = -1;
    assert_int_equal(fake_register(f, -1, 3), 1);
    const char *token = strrchr(f->url, '/') + 1;
    char code[256];
    snprintf(code, sizeof code,
             "import os\n"
             "env = open('/proc/%d/environ', 'rb').read().decode(errors='replace')\n"
             "print('PLEXA_URL' in os.environ, '%s' in env, 'not-this-one' in env)",
             (int)f->pid, token);
    fake_exec_ok(f, code, "False False False\n", 0);
}

static void signal_test(fake_t *f, int sig, const char *busy_code)
{
    fake_start_registered(f);
    fake_exec_ok(f, "a = 1", "", 1);
    if (busy_code)
        fake_execute(f, busy_code);
    usleep(300000);
    double t0 = plx_now_s();
    kill(f->pid, sig);
    if (busy_code) {
        /* The interrupted request is still answered before the engine goes. */
        Plexa__Envelope *r = fake_recv_reply(f, 5, NULL);
        assert_non_null(r);
        assert_non_null(r->engine_reply->error);
        assert_string_equal(r->engine_reply->error->ename, "KeyboardInterrupt");
        plx_envelope_free(&r);
    }
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_true(plx_now_s() - t0 < 5);
    assert_true(WIFEXITED(f->status));
    assert_int_equal(WEXITSTATUS(f->status), 0);
}

static void test_sigterm_idle(void **state)
{
    signal_test(*state, SIGTERM, NULL);
}

static void test_sigint_idle(void **state)
{
    signal_test(*state, SIGINT, NULL);
}

/* A signal while user code runs interrupts it (KeyboardInterrupt) and
 * the engine then exits cleanly. */
static void test_sigterm_busy(void **state)
{
    signal_test(*state, SIGTERM, "import time; time.sleep(60)");
}

/* The controller going away while user code runs ends the engine too. */
static void test_close_busy(void **state)
{
    fake_t *f = *state;
    fake_start_registered(f);
    fake_execute(f, "import time; time.sleep(60)");
    usleep(300000);
    fake_close_conn(f);
    assert_int_equal(fake_wait_exit(f, 10), 0);
    assert_true(WIFEXITED(f->status));
    assert_int_equal(WEXITSTATUS(f->status), 0);
}

static const struct CMUnitTest tests[] = {
    FAKE_TEST(test_heartbeat_while_busy),
    FAKE_TEST(test_keepalive),
    FAKE_TEST(test_silent_controller),
    FAKE_TEST(test_slow_frame_is_not_silence),
    FAKE_TEST(test_bad_controller_timeout),
    FAKE_TEST(test_url_sources),
    FAKE_TEST(test_shutdown),
    FAKE_TEST(test_shutdown_linger),
    FAKE_TEST(test_reject),
    FAKE_TEST(test_connect_refused),
    FAKE_TEST(test_bad_url),
    FAKE_TEST(test_url_on_command_line_refused),
    FAKE_TEST(test_url_from_stdin_and_no_token_left),
    FAKE_TEST(test_sigterm_idle),
    FAKE_TEST(test_sigint_idle),
    FAKE_TEST(test_sigterm_busy),
    FAKE_TEST(test_close_busy),
};

PLX_TEST_SUITE(engine_test_init, NULL, PLX_TEST_GROUP("engine_life", tests, NULL, NULL))
