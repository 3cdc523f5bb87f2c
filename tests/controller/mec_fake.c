/* Fake engines' pushes and pulls; see sched_harness.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched_harness.h"

#include "plx_buf.h"
#include "plx_envelope.h"

static int find(const fake_t *f, const char *name)
{
    for (size_t i = 0; i < f->nns; i++)
        if (strcmp(f->ns_name[i], name) == 0)
            return (int)i;
    return -1;
}

static void set_buf(fake_t *f, const char *name, plx_buf_t *b)
{
    int i = find(f, name);
    if (i < 0) {
        assert_true(f->nns < FAKE_NS);
        i = (int)f->nns++;
        f->ns_name[i] = strdup(name);
    } else {
        plx_buf_unref(&f->ns_val[i]);
    }
    f->ns_val[i] = plx_buf_ref(b);
}

void mec_fake_set(fake_t *f, const char *name, const void *data, size_t len)
{
    plx_buf_t *b = plx_buf_copy(data, len);
    set_buf(f, name, b);
    plx_buf_unref(&b);
}

const uint8_t *mec_fake_get(const fake_t *f, const char *name, size_t *len)
{
    int i = find(f, name);
    if (i < 0)
        return NULL;
    *len = f->ns_val[i]->len;
    return f->ns_val[i]->data;
}

static void reply(fake_t *f, uint64_t to, Plexa__EngineReply *r, plx_msg_t *bufs)
{
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    out.has_reply_to = 1;
    out.reply_to = to;
    out.body_case = PLEXA__ENVELOPE__BODY_ENGINE_REPLY;
    out.engine_reply = r;
    send_env(f, &out, bufs);
}

/* Bytes values are stored; any other kind is a TypeError, as a real
 * engine's would be for what it cannot hold. */
static void answer_push(fake_t *f, const Plexa__Envelope *env, plx_msg_t *m)
{
    Plexa__EngineReply r = PLEXA__ENGINE_REPLY__INIT;
    Plexa__RemoteError e = PLEXA__REMOTE_ERROR__INIT;
    for (size_t i = 0; i < env->push->n_values; i++) {
        const Plexa__NamedValue *nv = env->push->values[i];
        if (nv->value->kind_case == PLEXA__VALUE__KIND_REF && nv->value->ref->url &&
            f->fail_direct) {
            e.ename = "DirectTransferError";
            e.evalue = "fetching directly: Connection refused";
            r.error = &e;
            break;
        }
        if (nv->value->kind_case == PLEXA__VALUE__KIND_REF && nv->value->ref->url) {
            /* A direct transfer: what is kept is where it would be fetched. */
            char where[700];
            snprintf(where, sizeof where, "%s|%u", nv->value->ref->url, nv->value->ref->index);
            mec_fake_set(f, nv->name, where, strlen(where));
            continue;
        }
        if (nv->value->kind_case != PLEXA__VALUE__KIND_BYTES || nv->value->bytes >= m->nbufs) {
            e.ename = nv->value->kind_case == PLEXA__VALUE__KIND_REF ? "ProtocolError"
                                                                     : "TypeError";
            e.evalue = "not bytes";
            r.error = &e;
            break;
        }
        set_buf(f, nv->name, m->bufs[nv->value->bytes]);
    }
    reply(f, env->id, &r, NULL);
}

static void answer_pull(fake_t *f, const Plexa__Envelope *env)
{
    size_t n = env->pull->n_keys;
    Plexa__EngineReply r = PLEXA__ENGINE_REPLY__INIT;
    f->tickets_asked += (int)env->pull->n_tickets;
    if (env->pull->relay && n && find(f, env->pull->keys[0]) < 0)
        f->relays_ahead++;
    if (env->pull->n_tickets) {
        f->serve_min_seen = env->pull->serve_min;
        f->serve_ttl_seen = env->pull->serve_ttl_s;
    }
    if (f->serve_direct && env->pull->n_tickets) {
        r.serve_url = f->serve_direct == 2
                          ? "plx+tcp://10.9.9.9:9/00000000000000000000000000000000"
                          : "plx+tcp://127.0.0.1:9/00000000000000000000000000000000";
        reply(f, env->id, &r, NULL);
        return;
    }
    Plexa__RemoteError e = PLEXA__REMOTE_ERROR__INIT;
    Plexa__Value *vals = calloc(n ? n : 1, sizeof *vals);
    Plexa__Value **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    plx_msg_t *bufs = plx_msg_new(0);
    char msg[128];
    for (size_t k = 0; k < n && !r.error; k++) {
        int i = find(f, env->pull->keys[k]);
        if (i < 0) {
            snprintf(msg, sizeof msg, "name '%s' is not defined", env->pull->keys[k]);
            e.ename = "NameError";
            e.evalue = msg;
            r.error = &e;
            break;
        }
        plexa__value__init(&vals[k]);
        vals[k].kind_case = PLEXA__VALUE__KIND_BYTES;
        vals[k].bytes = f->bad_pull ? 99 : bufs->nbufs;
        plx_msg_add_buf(bufs, f->ns_val[i]);
        ptrs[k] = &vals[k];
    }
    if (!r.error) {
        r.n_values = n;
        r.values = ptrs;
    }
    reply(f, env->id, &r, bufs);
    plx_msg_destroy(&bufs);
    free(vals);
    free(ptrs);
}

static void answer(fake_t *f, Plexa__Envelope *env, plx_msg_t *m)
{
    if (env->body_case == PLEXA__ENVELOPE__BODY_PUSH)
        answer_push(f, env, m);
    else
        answer_pull(f, env);
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

void mec_fake_on_request(fake_t *f, Plexa__Envelope *env, plx_msg_t *m)
{
    f->mec_seen++;
    if (f->mec_hold && f->nmheld < sizeof f->mheld / sizeof f->mheld[0]) {
        f->mheld[f->nmheld] = env;
        f->mheld_msg[f->nmheld++] = m;
        return;
    }
    answer(f, env, m);
}

void mec_fake_serve_end(fake_t *f, const Plexa__ServeEnd *se)
{
    f->tickets_ended += (int)se->n_tickets;
}

void mec_fake_release(fake_t *f)
{
    f->mec_hold = 0;
    for (size_t i = 0; i < f->nmheld; i++)
        answer(f, f->mheld[i], f->mheld_msg[i]);
    f->nmheld = 0;
}

void mec_fake_free(fake_t *f)
{
    for (size_t i = 0; i < f->nns; i++) {
        free(f->ns_name[i]);
        plx_buf_unref(&f->ns_val[i]);
    }
    for (size_t i = 0; i < f->nmheld; i++) {
        plx_envelope_free(&f->mheld[i]);
        plx_msg_destroy(&f->mheld_msg[i]);
    }
    f->nns = f->nmheld = 0;
}
