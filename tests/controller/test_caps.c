/*
 * Capabilities (plx_caps.c), driven in-process: a real controller on a
 * libev loop and fake peers speaking the real protocol over the tcp plugin
 * on 127.0.0.1. Revocation, the request files of `ipcluster revoke`,
 * expiry, the retired-token messages and the read-only status role.
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

#include "plexa/version.h"
#include "plx_conn.h"
#include "plx_controller.h"
#include "plx_envelope.h"
#include "plx_plugin_loader.h"
#include "plx_profile.h"
#include "plx_url.h"

typedef struct peer {
    plx_conn_t      *conn;
    int              welcomed, closed;
    char             reject[512];    /* the last Reject's reason */
    Plexa__Envelope *reply;          /* the last other message */
    plx_msg_t       *reply_msg;
} peer_t;

static struct ev_loop *loop;
static plx_controller_t *ctl;
static const plx_transport_ops *tcp;
static char tmpdir[] = "/tmp/plx-caps-XXXXXX";
static uint64_t next_id = 1;
static const char *profile = "caps";

static const char *const files[] = {
    [PLEXA__ROLE__ROLE_ENGINE] = "ipcontroller-engine.url",
    [PLEXA__ROLE__ROLE_MEC] = "ipcontroller-mec.url",
    [PLEXA__ROLE__ROLE_TASK] = "ipcontroller-tc.url",
    [PLEXA__ROLE__ROLE_STATUS] = "ipcontroller-status.url",
};

static void url_of(Plexa__Role role, plx_url_t *u)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/profile_%s/security/%s", tmpdir, profile, files[role]);
    plx_err_t err = {0};
    assert_int_equal(plx_url_resolve(path, NULL, files[role], u, &err), PLX_OK);
}

static void send_env(peer_t *p, Plexa__Envelope *env)
{
    env->has_id = 1;
    env->id = next_id++;
    plx_msg_t *m = plx_envelope_pack(env, NULL);
    assert_non_null(m);
    plx_conn_send(p->conn, m);
}

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    peer_t *p = ud;
    Plexa__Envelope *env = plx_envelope_unpack(m, NULL);
    assert_non_null(env);
    if (env->body_case == PLEXA__ENVELOPE__BODY_WELCOME) {
        p->welcomed = 1;
    } else if (env->body_case == PLEXA__ENVELOPE__BODY_REJECT) {
        snprintf(p->reject, sizeof p->reject, "%s", env->reject->reason);
    } else if (env->body_case != PLEXA__ENVELOPE__BODY_HEARTBEAT) {
        plx_envelope_free(&p->reply);
        plx_msg_destroy(&p->reply_msg);
        p->reply = env;
        p->reply_msg = m;
        return;
    }
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

static void on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    ((peer_t *)ud)->closed = 1;
}

static int run_until(int (*cond)(void *), void *arg)
{
    for (int i = 0; i < 100000 && !cond(arg); i++) {
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
        usleep(100);
    }
    return cond(arg);
}

static int settled(void *arg) { return ((peer_t *)arg)->welcomed || ((peer_t *)arg)->closed; }
static int is_closed(void *arg) { return ((peer_t *)arg)->closed; }
static int has_reply(void *arg) { return ((peer_t *)arg)->reply != NULL; }

/* Connect and say Hello{role, token}; returns once welcomed or closed. */
static peer_t *peer_new(Plexa__Role role, const char *token)
{
    plx_url_t u;
    url_of(role, &u);
    peer_t *p = calloc(1, sizeof *p);
    void *h = NULL;
    int fd = -1;
    assert_int_equal(tcp->connect(u.host, u.port, NULL, &h, &fd, NULL), PLX_OK);
    static const plx_conn_cbs_t cbs = {.on_msg = on_msg, .on_close = on_close};
    p->conn = plx_conn_new(loop, tcp, h, fd, NULL, &cbs, p, "fake");
    Plexa__Hello hello = PLEXA__HELLO__INIT;
    hello.has_role = 1;
    hello.role = role;
    hello.token = (char *)(token ? token : u.token);
    hello.has_version = 1;
    hello.version = PLX_PROTOCOL_VERSION;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    send_env(p, &env);
    assert_true(run_until(settled, p));
    return p;
}

static void peer_destroy(peer_t **pp)
{
    peer_t *p = *pp;
    plx_conn_destroy(&p->conn);
    plx_envelope_free(&p->reply);
    plx_msg_destroy(&p->reply_msg);
    free(p);
    *pp = NULL;
}

static Plexa__Envelope *request(peer_t *p, Plexa__Envelope__BodyCase bc, void *body)
{
    Plexa__Envelope env;
    plx_envelope_set(&env, 0, 0, bc, body);
    plx_envelope_free(&p->reply);
    plx_msg_destroy(&p->reply_msg);
    send_env(p, &env);
    assert_true(run_until(has_reply, p));
    return p->reply;
}

static plx_controller_t *start(const char *name, double token_lifetime)
{
    plx_controller_opts_t o = plx_controller_opts_default();
    o.profile = name;
    o.transport = "tcp";
    o.token_lifetime = token_lifetime;
    plx_err_t err = {0};
    plx_controller_t *c = plx_controller_new(loop, &o, &err);
    if (!c)
        fail_msg("controller: %s", err.msg);
    return c;
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    setenv("PLEXA_DIR", tmpdir, 1);
    loop = ev_loop_new(EVFLAG_AUTO);
    ctl = start(profile, 0);
    plx_err_t err = {0};
    tcp = plx_transport_find("tcp", &err);
    assert_non_null(tcp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    plx_controller_destroy(&ctl);
    ev_loop_destroy(loop);
    return plx_test_rmtree(tmpdir);
}

static void test_revoke_drops_and_explains(void **state)
{
    (void)state;
    plx_url_t old;
    url_of(PLEXA__ROLE__ROLE_TASK, &old);
    peer_t *a = peer_new(PLEXA__ROLE__ROLE_TASK, NULL);
    peer_t *b = peer_new(PLEXA__ROLE__ROLE_TASK, NULL);
    peer_t *st = peer_new(PLEXA__ROLE__ROLE_STATUS, NULL);
    assert_true(a->welcomed && b->welcomed && st->welcomed);
    int dropped = -1;
    plx_err_t err = {0};
    assert_int_equal(plx_controller_revoke(ctl, "task", &dropped, &err), PLX_OK);
    assert_int_equal(dropped, 2);
    assert_true(run_until(is_closed, a) && run_until(is_closed, b));
    assert_non_null(strstr(a->reject, "the 'task' capability was revoked"));
    assert_false(st->closed);   /* other capabilities are untouched */

    plx_url_t now;
    url_of(PLEXA__ROLE__ROLE_TASK, &now);
    assert_string_not_equal(old.token, now.token);
    peer_t *again = peer_new(PLEXA__ROLE__ROLE_TASK, old.token);
    assert_false(again->welcomed);
    assert_non_null(strstr(again->reject, "role 'task' was revoked at"));
    assert_non_null(strstr(again->reject, "ipcontroller-tc.url"));
    peer_t *fresh = peer_new(PLEXA__ROLE__ROLE_TASK, NULL);
    assert_true(fresh->welcomed);

    assert_int_equal(plx_controller_revoke(ctl, "root", NULL, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "unknown capability 'root'"));
    peer_destroy(&a);
    peer_destroy(&b);
    peer_destroy(&st);
    peer_destroy(&again);
    peer_destroy(&fresh);
}

static void test_request_file(void **state)
{
    (void)state;
    plx_url_t old, now;
    url_of(PLEXA__ROLE__ROLE_STATUS, &old);
    char path[4096];
    snprintf(path, sizeof path, "%s/profile_%s/security/revoke-status", tmpdir, profile);
    plx_err_t err = {0};
    assert_int_equal(plx_file_write_secret(path, "", &err), PLX_OK);
    plx_controller_serve_requests(ctl);
    assert_int_not_equal(access(path, F_OK), 0);   /* served: removed */
    url_of(PLEXA__ROLE__ROLE_STATUS, &now);
    assert_string_not_equal(old.token, now.token);
    /* a request naming no capability is removed and changes nothing */
    snprintf(path, sizeof path, "%s/profile_%s/security/revoke-nothing", tmpdir, profile);
    assert_int_equal(plx_file_write_secret(path, "", &err), PLX_OK);
    plx_controller_serve_requests(ctl);
    assert_int_not_equal(access(path, F_OK), 0);
}

static int changed(void *arg)
{
    plx_url_t u;
    url_of(PLEXA__ROLE__ROLE_MEC, &u);
    return strcmp(u.token, arg) != 0;
}

static void test_expiry(void **state)
{
    (void)state;
    plx_controller_t *main_ctl = ctl;
    profile = "expiring";
    ctl = start(profile, 0.4);
    plx_url_t mec, eng, eng_after;
    url_of(PLEXA__ROLE__ROLE_MEC, &mec);
    url_of(PLEXA__ROLE__ROLE_ENGINE, &eng);
    peer_t *early = peer_new(PLEXA__ROLE__ROLE_MEC, NULL);
    assert_true(early->welcomed);
    assert_true(run_until(changed, mec.token));
    peer_t *late = peer_new(PLEXA__ROLE__ROLE_MEC, mec.token);
    assert_false(late->welcomed);
    assert_non_null(strstr(late->reject, "role 'mec' expired at"));
    /* connections made in time stay; the engine token never expires */
    Plexa__GetIds g = PLEXA__GET_IDS__INIT;
    assert_int_equal(request(early, PLEXA__ENVELOPE__BODY_GET_IDS, &g)->body_case,
                     PLEXA__ENVELOPE__BODY_ID_LIST);
    url_of(PLEXA__ROLE__ROLE_ENGINE, &eng_after);
    assert_string_equal(eng.token, eng_after.token);
    peer_destroy(&early);
    peer_destroy(&late);
    plx_controller_destroy(&ctl);
    ctl = main_ctl;
    profile = "caps";
}

static void test_status_is_read_only(void **state)
{
    (void)state;
    peer_t *st = peer_new(PLEXA__ROLE__ROLE_STATUS, NULL);
    assert_true(st->welcomed);
    Plexa__GetIds g = PLEXA__GET_IDS__INIT;
    assert_int_equal(request(st, PLEXA__ENVELOPE__BODY_GET_IDS, &g)->body_case,
                     PLEXA__ENVELOPE__BODY_ID_LIST);
    Plexa__TaskQueueStatus q = PLEXA__TASK_QUEUE_STATUS__INIT;
    assert_int_equal(request(st, PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS, &q)->body_case,
                     PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS_REPLY);
    Plexa__Execute ex = PLEXA__EXECUTE__INIT;
    ex.code = "import os";
    Plexa__Envelope *r = request(st, PLEXA__ENVELOPE__BODY_EXECUTE, &ex);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_non_null(strstr(r->error->message, "'status' capability is read-only"));
    Plexa__TaskAbort ab = PLEXA__TASK_ABORT__INIT;
    r = request(st, PLEXA__ENVELOPE__BODY_TASK_ABORT, &ab);
    assert_int_equal(r->body_case, PLEXA__ENVELOPE__BODY_ERROR);
    assert_false(st->closed);   /* refused, not dropped */
    /* a status token is no mec token */
    plx_url_t su;
    url_of(PLEXA__ROLE__ROLE_STATUS, &su);
    peer_t *as_mec = peer_new(PLEXA__ROLE__ROLE_MEC, su.token);
    assert_non_null(strstr(as_mec->reject, "invalid capability token for role 'mec'"));
    peer_destroy(&st);
    peer_destroy(&as_mec);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_revoke_drops_and_explains),
    cmocka_unit_test(test_request_file),
    cmocka_unit_test(test_expiry),
    cmocka_unit_test(test_status_is_read_only),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("caps", tests, setup, teardown))
