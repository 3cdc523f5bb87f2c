/*
 * libFuzzer: the controller's dispatch of decoded messages. A real
 * controller runs in-process on a libev loop with real peers over the tcp
 * plugin on 127.0.0.1: a fake engine that answers whatever it is sent,
 * and one authenticated connection per client role. Each input is
 *
 *     byte 0      who sends it: engine, mec, task or status connection
 *     byte 1      how many small out-of-band buffers ride along (0..7)
 *     rest        the Envelope bytes (protobuf), sent as they are
 *
 * so the controller sees well-framed messages with hostile contents:
 * unknown targets, huge counts, negative ids, replies to nothing, bodies a
 * role may not send. After each input a GetIds round trip on the mec
 * connection checks that the controller still serves; a peer it dropped
 * is replaced.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_conn.h"
#include "plx_controller.h"
#include "plx_envelope.h"
#include "plx_plugin_loader.h"
#include "plx_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { P_ENGINE, P_MEC, P_TASK, P_STATUS, NPEERS };

typedef struct fpeer {
    plx_conn_t *conn;
    int         role;       /* Plexa__Role */
    int         welcomed, closed, replies;
} fpeer_t;

static struct ev_loop *loop;
static plx_controller_t *ctl;
static const plx_transport_ops *tcp;
static fpeer_t peers[NPEERS];
static char dir[] = "/tmp/plx-fuzz-dispatch-XXXXXX";
static uint64_t next_id = 1;

static const char *const files[] = {"ipcontroller-engine.url", "ipcontroller-mec.url",
                                    "ipcontroller-tc.url", "ipcontroller-status.url"};
static const int roles[] = {PLEXA__ROLE__ROLE_ENGINE, PLEXA__ROLE__ROLE_MEC,
                            PLEXA__ROLE__ROLE_TASK, PLEXA__ROLE__ROLE_STATUS};

static void send_env(fpeer_t *p, Plexa__Envelope *env)
{
    env->has_id = 1;
    env->id = next_id++;
    plx_msg_t *m = plx_envelope_pack(env, NULL);
    if (m)
        plx_conn_send(p->conn, m);
}

/* The fake engine answers every request so nothing piles up. */
static void engine_answer(fpeer_t *p, const Plexa__Envelope *in)
{
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    Plexa__EngineReply er = PLEXA__ENGINE_REPLY__INIT;
    Plexa__TaskResult tr = PLEXA__TASK_RESULT__INIT;
    Plexa__Heartbeat hb = PLEXA__HEARTBEAT__INIT;
    switch (in->body_case) {
    case PLEXA__ENVELOPE__BODY_HEARTBEAT:
        plx_envelope_set(&out, 0, in->id, PLEXA__ENVELOPE__BODY_HEARTBEAT, &hb);
        break;
    case PLEXA__ENVELOPE__BODY_TASK_RUN:
        tr.has_task_id = tr.has_status = 1;
        tr.task_id = in->task_run->task_id;
        tr.status = PLEXA__TASK_STATUS__TASK_OK;
        plx_envelope_set(&out, 0, in->id, PLEXA__ENVELOPE__BODY_TASK_RESULT, &tr);
        break;
    case PLEXA__ENVELOPE__BODY_WELCOME:
    case PLEXA__ENVELOPE__BODY_INTERRUPT:
        return;
    default:
        er.method = "fuzz";
        plx_envelope_set(&out, 0, in->id, PLEXA__ENVELOPE__BODY_ENGINE_REPLY, &er);
        break;
    }
    send_env(p, &out);
}

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    fpeer_t *p = ud;
    plx_err_t err = {0};
    Plexa__Envelope *env = plx_envelope_unpack(m, &err);
    if (!env) {
        /* The controller must only ever send well-formed messages. */
        fprintf(stderr, "fuzz_dispatch: role %d got a malformed message (%s):", p->role,
                err.msg);
        for (uint32_t i = 0; i < m->env_len && i < 256; i++)
            fprintf(stderr, " %02x", plx_msg_env(m)[i]);
        fprintf(stderr, "\n");
        abort();
    }
    if (env->body_case == PLEXA__ENVELOPE__BODY_WELCOME)
        p->welcomed = 1;
    else
        p->replies++;
    if (p->role == PLEXA__ROLE__ROLE_ENGINE)
        engine_answer(p, env);
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

static void on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    ((fpeer_t *)ud)->closed = 1;
}

static void run_until(int (*cond)(fpeer_t *), fpeer_t *p)
{
    for (int i = 0; i < 200000 && !cond(p); i++)
        ev_run(loop, EVRUN_NOWAIT);
    if (!cond(p))
        abort();   /* a request that waits forever is a finding too */
}

static int settled(fpeer_t *p) { return p->welcomed || p->closed; }

static void peer_open(int i)
{
    fpeer_t *p = &peers[i];
    plx_conn_destroy(&p->conn);
    memset(p, 0, sizeof *p);
    p->role = roles[i];
    char path[512];
    snprintf(path, sizeof path, "%s/profile_fuzz/security/%s", dir, files[i]);
    plx_url_t u;
    plx_err_t err = {0};
    void *h = NULL;
    int fd = -1;
    if (plx_url_resolve(path, NULL, files[i], &u, &err) != PLX_OK ||
        tcp->connect(u.host, u.port, NULL, &h, &fd, &err) != PLX_OK) {
        fprintf(stderr, "fuzz_dispatch: %s\n", err.msg);
        abort();
    }
    static const plx_conn_cbs_t cbs = {.on_msg = on_msg, .on_close = on_close};
    p->conn = plx_conn_new(loop, tcp, h, fd, NULL, &cbs, p, "fuzz");
    Plexa__Hello hello = PLEXA__HELLO__INIT;
    hello.has_role = hello.has_version = 1;
    hello.role = (Plexa__Role)p->role;
    hello.token = u.token;
    hello.version = PLX_PROTOCOL_VERSION;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    send_env(p, &env);
    run_until(settled, p);
    if (!p->welcomed)
        abort();
}

static void setup(void)
{
    if (!mkdtemp(dir))
        abort();
    setenv("PLEXA_DIR", dir, 1);
    loop = ev_loop_new(EVFLAG_AUTO);
    plx_controller_opts_t o = plx_controller_opts_default();
    o.profile = "fuzz";
    o.transport = "tcp";
    o.results_max = 64;              /* bounded memory over millions of inputs */
    o.limits.max_envelope = 1 << 16;
    o.depend_timeout = 0.01;
    plx_err_t err = {0};
    ctl = plx_controller_new(loop, &o, &err);
    tcp = ctl ? plx_transport_find("tcp", &err) : NULL;
    if (!tcp) {
        fprintf(stderr, "fuzz_dispatch: %s\n", err.msg);
        abort();
    }
    for (int i = 0; i < NPEERS; i++)
        peer_open(i);
}

static int answered(fpeer_t *p) { return p->replies > 0 || p->closed; }

/* GetIds on the mec connection: the controller still serves. */
static void check_serving(void)
{
    for (int i = 0; i < NPEERS; i++)
        if (peers[i].closed)
            peer_open(i);
    fpeer_t *m = &peers[P_MEC];
    m->replies = 0;
    Plexa__GetIds g = PLEXA__GET_IDS__INIT;
    Plexa__Envelope env;
    plx_envelope_set(&env, 0, 0, PLEXA__ENVELOPE__BODY_GET_IDS, &g);
    send_env(m, &env);
    run_until(answered, m);
    if (m->closed)
        peer_open(P_MEC);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop)
        setup();
    if (size < 2)
        return 0;
    fpeer_t *p = &peers[data[0] % NPEERS];
    plx_msg_t *m = plx_msg_new((uint32_t)(size - 2));
    if (!m)
        return 0;
    memcpy(plx_msg_env(m), data + 2, size - 2);
    for (int i = 0; i < (data[1] & 7); i++) {
        uint8_t fill[16];
        memset(fill, i, sizeof fill);
        plx_buf_t *b = plx_buf_copy(fill, sizeof fill);
        if (b) {
            plx_msg_add_buf(m, b);   /* takes its own reference */
            plx_buf_unref(&b);
        }
    }
    plx_conn_send(p->conn, m);
    check_serving();
    return 0;
}
