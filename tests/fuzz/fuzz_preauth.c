/*
 * libFuzzer: what reaches the controller before authentication. A real
 * controller runs in-process on a libev loop (tcp plugin, 127.0.0.1).
 * Each input is
 *
 *     byte 0      bit 0: first send a valid Hello (with the token of the
 *                 role in bits 1-2: engine, mec, task, status), so that
 *                 the rest arrives just after authentication
 *     rest        raw bytes, written as they are on a fresh connection
 *
 * so the frame decoder meets hostile headers under the small
 * pre-authentication limits, and the switch to a role's limits. After
 * each input the connection is closed and a GetIds round trip on an
 * authenticated mec connection checks that the controller still serves.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "plexa/version.h"
#include "plx_conn.h"
#include "plx_controller.h"
#include "plx_envelope.h"
#include "plx_plugin_loader.h"
#include "plx_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;
static plx_controller_t *ctl;
static const plx_transport_ops *tcp;
static char dir[] = "/tmp/plx-fuzz-preauth-XXXXXX";
static plx_url_t urls[4];   /* engine, mec, task, status */
static plx_conn_t *mec;
static int mec_replies, mec_closed, mec_welcomed;

static const char *const files[] = {"ipcontroller-engine.url", "ipcontroller-mec.url",
                                    "ipcontroller-tc.url", "ipcontroller-status.url"};
static const int roles[] = {PLEXA__ROLE__ROLE_ENGINE, PLEXA__ROLE__ROLE_MEC,
                            PLEXA__ROLE__ROLE_TASK, PLEXA__ROLE__ROLE_STATUS};

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    Plexa__Envelope *env = plx_envelope_unpack(m, NULL);
    if (env && env->body_case == PLEXA__ENVELOPE__BODY_WELCOME)
        mec_welcomed = 1;
    else
        mec_replies++;
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

static void on_close(plx_conn_t *c, int code, const char *why, void *ud) { mec_closed = 1; }

static void spin(int (*cond)(void))
{
    for (int i = 0; i < 200000 && !cond(); i++)
        ev_run(loop, EVRUN_NOWAIT);
    if (!cond())
        abort();   /* the controller stopped serving: a finding */
}

static int mec_settled(void) { return mec_welcomed || mec_closed; }
static int mec_answered(void) { return mec_replies > 0 || mec_closed; }

/* A packed Hello frame for role i with its real token. */
static plx_msg_t *hello_frame(int i)
{
    Plexa__Hello h = PLEXA__HELLO__INIT;
    h.has_role = h.has_version = 1;
    h.role = (Plexa__Role)roles[i];
    h.token = urls[i].token;
    h.version = PLX_PROTOCOL_VERSION;
    Plexa__Envelope env;
    plx_envelope_set(&env, 1, 0, PLEXA__ENVELOPE__BODY_HELLO, &h);
    return plx_envelope_pack(&env, NULL);
}

static void mec_open(void)
{
    plx_conn_destroy(&mec);
    mec_replies = mec_closed = mec_welcomed = 0;
    void *h = NULL;
    int fd = -1;
    if (tcp->connect(urls[1].host, urls[1].port, NULL, &h, &fd, NULL) != PLX_OK)
        abort();
    static const plx_conn_cbs_t cbs = {.on_msg = on_msg, .on_close = on_close};
    mec = plx_conn_new(loop, tcp, h, fd, NULL, &cbs, NULL, "fuzz");
    plx_conn_send(mec, hello_frame(1));
    spin(mec_settled);
    if (!mec_welcomed)
        abort();
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!mkdtemp(dir))
        abort();
    setenv("PLEXA_DIR", dir, 1);
    loop = ev_loop_new(EVFLAG_AUTO);
    plx_controller_opts_t o = plx_controller_opts_default();
    o.profile = "fuzz";
    o.transport = "tcp";
    o.results_max = 64;
    o.auth_timeout = 0.05;   /* silent connections go quickly */
    plx_err_t err = {0};
    ctl = plx_controller_new(loop, &o, &err);
    tcp = ctl ? plx_transport_find("tcp", &err) : NULL;
    for (int i = 0; tcp && i < 4; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/profile_fuzz/security/%s", dir, files[i]);
        if (plx_url_resolve(path, NULL, files[i], &urls[i], &err) != PLX_OK)
            tcp = NULL;
    }
    if (!tcp) {
        fprintf(stderr, "fuzz_preauth: %s\n", err.msg);
        abort();
    }
    mec_open();
}

/* Write what the socket takes without blocking; the controller may close it. */
static void write_some(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
        ev_run(loop, EVRUN_NOWAIT);
    }
}

/* A fresh connection to the controller. It is closed with a reset (linger
 * 0) so that closed connections leave no TIME_WAIT behind: at thousands of
 * inputs a second they would otherwise use up the ephemeral ports. A
 * connect interrupted by a signal is tried again. Either way connect would
 * otherwise fail for the harness's reason, not the controller's. */
static int fuzz_connect(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(urls[0].port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            perror("fuzz_preauth: socket");
            abort();
        }
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
        int e = errno;
        close(fd);
        if (e == EINTR)
            continue;   /* libFuzzer's timer signal (-timeout) interrupted it */
        if (e != EADDRNOTAVAIL && e != EAGAIN) {
            /* refused or reset: the controller stopped listening, a finding */
            fprintf(stderr, "fuzz_preauth: connect: %s\n", strerror(e));
            abort();
        }
        for (int i = 0; i < 100; i++)   /* let the controller close what it holds */
            ev_run(loop, EVRUN_NOWAIT);
        usleep(10000);
    }
    fprintf(stderr, "fuzz_preauth: connect: no connection after 100 attempts (no free local port)\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop)
        setup();
    if (size < 1)
        return 0;
    int fd = fuzz_connect();
    if (data[0] & 1) {
        plx_msg_t *h = hello_frame((data[0] >> 1) & 3);
        struct iovec iov[1];
        if (!h || plx_msg_iov(h, iov) != 1)
            abort();
        write_some(fd, iov[0].iov_base, iov[0].iov_len);
        plx_msg_destroy(&h);
    }
    write_some(fd, data + 1, size - 1);
    for (int i = 0; i < 20; i++)
        ev_run(loop, EVRUN_NOWAIT);
    close(fd);
    if (mec_closed)
        mec_open();
    mec_replies = 0;
    Plexa__GetIds g = PLEXA__GET_IDS__INIT;
    Plexa__Envelope env;
    plx_envelope_set(&env, 0, 0, PLEXA__ENVELOPE__BODY_GET_IDS, &g);
    env.has_id = 1;
    env.id = 7;
    plx_msg_t *m = plx_envelope_pack(&env, NULL);
    if (!m)
        abort();
    plx_conn_send(mec, m);
    spin(mec_answered);
    return 0;
}
