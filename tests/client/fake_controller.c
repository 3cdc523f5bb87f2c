/* A scripted controller for client tests; see fake_controller.h. */
#include "fake_controller.h"

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_conn.h"
#include "plx_envelope.h"
#include "plx_listener.h"
#include "plx_plugin_loader.h"

#define MAX_CONNS 64
#define DIE_AFTER_S 0.2

struct fake {
    fake_mode                mode;
    struct ev_loop          *loop;
    ev_async                 stop;
    ev_timer                 die;        /* closes `dying` */
    plx_conn_t              *dying;
    pthread_t                thread;
    const plx_transport_ops *ops;
    plx_listener_t          *lis;
    plx_conn_t              *conns[MAX_CONNS];   /* freed at stop: see on_close */
    int                      nconns;
    atomic_int               hellos;
    atomic_int               last_role;
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- replies ------------------------------------------------------------- */

static void send_env(plx_conn_t *c, Plexa__Envelope *env, uint64_t reply_to)
{
    env->has_reply_to = reply_to != 0;
    env->reply_to = reply_to;
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(env, &err);
    if (m)
        plx_conn_send(c, m);
}

static void send_error(plx_conn_t *c, uint64_t reply_to, int code, const char *msg)
{
    Plexa__Error e = PLEXA__ERROR__INIT;
    e.has_code = 1;
    e.code = code;
    e.message = (char *)msg;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_ERROR;
    env.error = &e;
    send_env(c, &env, reply_to);
}

static void on_hello(fake_t *f, plx_conn_t *c, const Plexa__Envelope *req)
{
    atomic_fetch_add(&f->hellos, 1);
    atomic_store(&f->last_role, req->hello->has_role ? (int)req->hello->role : 0);
    const char *tok = req->hello->token ? req->hello->token : "";
    if (f->mode == FAKE_SILENT)
        return;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    if (f->mode == FAKE_REJECT || strcmp(tok, FAKE_TOKEN) != 0) {
        Plexa__Reject rj = PLEXA__REJECT__INIT;
        rj.reason = "token is not valid for this cluster";
        env.body_case = PLEXA__ENVELOPE__BODY_REJECT;
        env.reject = &rj;
        send_env(c, &env, req->id);
        plx_conn_close(c, 1, PLX_EAUTH, "rejected");
        return;
    }
    Plexa__Welcome w = PLEXA__WELCOME__INIT;
    w.has_version = 1;
    w.version = 1;
    env.body_case = PLEXA__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    send_env(c, &env, req->id);
}

static void on_get_ids(plx_conn_t *c, const Plexa__Envelope *req)
{
    int32_t ids[] = { 0, 1 };
    Plexa__IdList il = PLEXA__ID_LIST__INIT;
    il.n_ids = 2;
    il.ids = ids;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_ID_LIST;
    env.id_list = &il;
    send_env(c, &env, req->id);
}

/* Targets of a request as engine ids; returns 0, or the first invalid id. */
static int targets_of(const Plexa__Envelope *req, int32_t *ids, int *n)
{
    const Plexa__Targets *t = req->targets;
    if (!t || t->all) {
        ids[0] = 0;
        ids[1] = 1;
        *n = 2;
        return 0;
    }
    *n = 0;
    for (size_t i = 0; i < t->n_ids && i < 16; i++) {
        if (t->ids[i] != 0 && t->ids[i] != 1)
            return t->ids[i];
        ids[(*n)++] = t->ids[i];
    }
    return 0;
}

static int raises(const char *code, int32_t engine)
{
    return strcmp(code, "1/0") == 0 || (strcmp(code, "raise1") == 0 && engine == 1);
}

static void on_execute(fake_t *f, plx_conn_t *c, const Plexa__Envelope *req)
{
    const char *code = req->execute->code ? req->execute->code : "";
    if (strcmp(code, "hang") == 0)
        return;
    if (strcmp(code, "die") == 0) {
        f->dying = c;
        ev_timer_set(&f->die, DIE_AFTER_S, 0.);
        ev_timer_start(f->loop, &f->die);
        return;
    }
    int32_t ids[16];
    int n = 0, bad = targets_of(req, ids, &n);
    if (bad) {
        char msg[64];
        snprintf(msg, sizeof msg, "invalid engine id: %d", bad);
        send_error(c, req->id, PLX_EBADENGINE, msg);
        return;
    }
    char out[256];
    snprintf(out, sizeof out, "%s\n", code);
    Plexa__ExecuteResult xr[16];
    Plexa__RemoteError re[16];
    Plexa__EngineReply er[16], *erp[16];
    for (int i = 0; i < n; i++) {
        plexa__execute_result__init(&xr[i]);
        plexa__remote_error__init(&re[i]);
        plexa__engine_reply__init(&er[i]);
        xr[i].has_number = 1;
        xr[i].number = 1;
        xr[i].input = (char *)code;
        xr[i].stdout = raises(code, ids[i]) ? "" : out;
        er[i].has_engine_id = 1;
        er[i].engine_id = ids[i];
        er[i].method = "execute";
        er[i].execute = &xr[i];
        if (raises(code, ids[i])) {
            re[i].ename = "ZeroDivisionError";
            re[i].evalue = "division by zero";
            re[i].traceback = "Traceback (most recent call last):\n"
                              "  File \"<plexa-input-1>\", line 1, in <module>\n    1/0\n"
                              "ZeroDivisionError: division by zero\n";
            er[i].error = &re[i];
        }
        erp[i] = &er[i];
    }
    Plexa__MultiReply mr = PLEXA__MULTI_REPLY__INIT;
    mr.n_replies = (size_t)n;
    mr.replies = erp;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_MULTI_REPLY;
    env.multi_reply = &mr;
    send_env(c, &env, req->id);
}

/* ---- connections --------------------------------------------------------- */

static void on_msg(plx_conn_t *c, plx_msg_t *m, void *ud)
{
    fake_t *f = ud;
    plx_err_t err = {0};
    Plexa__Envelope *req = plx_envelope_unpack(m, &err);
    plx_msg_destroy(&m);
    if (!req)
        return;
    switch (req->body_case) {
    case PLEXA__ENVELOPE__BODY_HELLO:   on_hello(f, c, req); break;
    case PLEXA__ENVELOPE__BODY_GET_IDS: on_get_ids(c, req); break;
    case PLEXA__ENVELOPE__BODY_EXECUTE: on_execute(f, c, req); break;
    default: send_error(c, req->id, PLX_EINVAL, "fake controller: unsupported request");
    }
    plx_envelope_free(&req);
}

/* Closed connections stay in conns[] (closed, not freed) until fake_stop:
 * simpler than compacting the array, and tests open only a few. */
static void on_close(plx_conn_t *c, int code, const char *why, void *ud)
{
    fake_t *f = ud;
    if (f->dying == c) {
        ev_timer_stop(f->loop, &f->die);
        f->dying = NULL;
    }
}

static void on_accept(plx_listener_t *l, void *handle, int fd, const char *peer, void *ud)
{
    fake_t *f = ud;
    if (f->nconns == MAX_CONNS) {
        f->ops->close(&handle);
        return;
    }
    plx_limits_t lim = plx_limits_default();
    plx_conn_cbs_t cbs = { .on_msg = on_msg, .on_close = on_close };
    plx_conn_t *c = plx_conn_new(f->loop, f->ops, handle, fd, &lim, &cbs, f, peer);
    if (c)
        f->conns[f->nconns++] = c;
}

static void die_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    fake_t *f = container_of(w, fake_t, die);
    plx_conn_t *c = f->dying;
    f->dying = NULL;
    if (c)
        plx_conn_close(c, 0, PLX_OK, "fake controller died");
}

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    fake_t *f = container_of(w, fake_t, stop);
    for (int i = 0; i < f->nconns; i++)
        plx_conn_destroy(&f->conns[i]);
    plx_listener_destroy(&f->lis);
    ev_timer_stop(loop, &f->die);
    ev_break(loop, EVBREAK_ALL);
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    ev_run(f->loop, 0);
    return NULL;
}

fake_t *fake_start(fake_mode mode)
{
    plx_err_t err = {0};
    fake_t *f = calloc(1, sizeof *f);
    f->mode = mode;
    f->ops = plx_transport_find("tcp", &err);
    if (!f->ops) {
        fprintf(stderr, "fake controller: %s\n", err.msg);
        free(f);
        return NULL;
    }
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->lis = plx_listener_new(f->loop, f->ops, "127.0.0.1", 0, NULL, on_accept, f, &err);
    if (!f->lis) {
        fprintf(stderr, "fake controller: %s\n", err.msg);
        ev_loop_destroy(f->loop);
        free(f);
        return NULL;
    }
    ev_async_init(&f->stop, stop_cb);
    ev_async_start(f->loop, &f->stop);
    ev_init(&f->die, die_cb);
    pthread_create(&f->thread, NULL, fake_main, f);
    return f;
}

uint16_t fake_port(const fake_t *f)
{
    return plx_listener_port(f->lis);
}

int fake_last_role(const fake_t *f)
{
    return atomic_load(&f->last_role);
}

int fake_hellos(const fake_t *f)
{
    return atomic_load(&f->hellos);
}

void fake_stop(fake_t **fp)
{
    fake_t *f = *fp;
    if (!f)
        return;
    *fp = NULL;
    ev_async_send(f->loop, &f->stop);
    pthread_join(f->thread, NULL);
    ev_async_stop(f->loop, &f->stop);
    ev_loop_destroy(f->loop);
    free(f);
}
