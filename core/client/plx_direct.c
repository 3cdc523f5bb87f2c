/*
 * Direct pulls, the client's half (the controller's: plx_mec_direct.c).
 *
 * A pull says it would rather fetch the values itself (Pull.direct). The
 * controller's reply then names, for each engine that served its values,
 * a URL with a one-time ticket instead of the values. Fetching them must
 * not hold up the I/O thread, which carries every other reply, nor block
 * it on a connect: a helper thread fetches them side by side
 * (plx_fetch.h), splices them into the reply, and only then completes the
 * request, so every reader of the request (the C and Python clients'
 * decoders) sees an ordinary MultiReply.
 *
 * Nothing is lost when an engine cannot be reached: its values are pulled
 * again through the controller, and this client pulls through the
 * controller from then on. That second pull gives the values as they are
 * then, not as they were; the first failure says so in the log.
 */
#include "plx_direct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_fetch.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_url.h"

#define FETCH_TIMEOUT_S 600.0   /* the whole fetch; a stalled peer fails it, not the wait */

struct plx_direct_keys {
    char  **keys;
    size_t  n;
};

/* What one engine's part of the reply becomes. */
typedef struct part {
    const Plexa__EngineReply *src;     /* the controller's reply for it */
    plx_fetch_t               f;
    plx_url_t                 url;
    plx_msg_t                *msg;     /* fetched or pulled again: owns buffers */
    Plexa__Envelope          *env;     /* ... its envelope */
    const Plexa__EngineReply *got;     /* ... its EngineReply for this engine */
    char                      why[PLX_ERR_MSG_MAX];
    Plexa__EngineReply        out;     /* what the spliced reply says */
    Plexa__RemoteError        err;
} part_t;

int plx_direct_wanted(const Plexa__Envelope *env)
{
    if (env->body_case != PLEXA__ENVELOPE__BODY_MULTI_REPLY)
        return 0;
    for (size_t i = 0; i < env->multi_reply->n_replies; i++)
        if (env->multi_reply->replies[i]->serve_url)
            return 1;
    return 0;
}

plx_direct_keys_t *plx_direct_keys_of(const Plexa__Envelope *env)
{
    if (env->body_case != PLEXA__ENVELOPE__BODY_PULL || !env->pull->direct)
        return NULL;
    plx_direct_keys_t *k = calloc(1, sizeof *k);
    if (k)
        k->keys = calloc(env->pull->n_keys ? env->pull->n_keys : 1, sizeof *k->keys);
    for (size_t i = 0; k && k->keys && i < env->pull->n_keys; i++) {
        if (!(k->keys[i] = strdup(env->pull->keys[i])))
            break;
        k->n++;
    }
    if (k && (!k->keys || k->n != env->pull->n_keys))
        plx_direct_keys_free(&k);
    return k;
}

void plx_direct_keys_free(plx_direct_keys_t **kp)
{
    plx_direct_keys_t *k = *kp;
    if (!k)
        return;
    *kp = NULL;
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    free(k);
}

/* ---- fetching ------------------------------------------------------------------- */

static void prepare(part_t *p)
{
    plx_err_t err = {0};
    if (plx_fetch_from_url(&p->f, &p->url, p->src->serve_url, &err) != PLX_OK) {
        p->f.ops = NULL;
        p->f.code = err.code ? err.code : PLX_EINVAL;
        snprintf(p->why, sizeof p->why, "%s", err.msg);
    }
}

/* Fetch every part that has a transport; the others failed already. */
static void fetch_parts(part_t *parts, size_t n, const atomic_int *stop)
{
    plx_fetch_t *f = calloc(n ? n : 1, sizeof *f);
    size_t *at = calloc(n ? n : 1, sizeof *at), k = 0;
    for (size_t i = 0; f && at && i < n; i++)
        if (parts[i].f.ops) {
            f[k] = parts[i].f;
            at[k++] = i;
        }
    if (f && at)
        plx_fetch_all(f, k, FETCH_TIMEOUT_S, stop);
    for (size_t j = 0; f && at && j < k; j++) {
        part_t *p = &parts[at[j]];
        p->msg = f[j].msg;
        if (!p->msg)
            snprintf(p->why, sizeof p->why, "%s", f[j].why);
    }
    for (size_t i = 0; (!f || !at) && i < n; i++)
        snprintf(parts[i].why, sizeof parts[i].why, "out of memory");
    free(f);
    free(at);
}

static void check_fetched(part_t *p)
{
    plx_err_t err = {0};
    if (!p->msg)
        return;
    if ((p->env = plx_fetch_reply(p->msg, &err))) {
        p->got = p->env->engine_reply;
        return;
    }
    snprintf(p->why, sizeof p->why, "%s", err.msg);
    plx_msg_destroy(&p->msg);
}

/* ---- pulling again through the controller ---------------------------------------- */

int plx_direct_wait(plx_request_t *r, const atomic_int *stop)
{
    while (!plx_request_done(r)) {
        if (atomic_load(stop))
            return PLX_ECLOSED;
        plx_request_wait(r, 0.1, NULL);
    }
    return PLX_OK;
}

/* Pull the parts that failed through the controller, in one request,
 * which is returned (its reply holds their EngineReplies) or NULL. */
static plx_request_t *pull_again(plx_client_t *c, const plx_direct_keys_t *keys, part_t *parts,
                                 size_t n, const atomic_int *stop)
{
    int32_t *ids = calloc(n ? n : 1, sizeof *ids);
    char **tickets = calloc(n ? n : 1, sizeof *tickets);
    size_t k = 0;
    for (size_t i = 0; ids && tickets && i < n; i++)
        if (parts[i].src->serve_url && !parts[i].got) {
            tickets[k] = parts[i].url.token;   /* "" if the URL did not parse */
            ids[k++] = parts[i].src->engine_id;
        }
    plx_targets_t t = { .ids = ids, .n = k };
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    const Plexa__Envelope *env = NULL;
    const plx_msg_t *m = NULL;
    int rc = !ids || !tickets || !keys ? plx_err_set(&err, PLX_ENOMEM, "out of memory")
           : !k ? PLX_OK : plx_rq_pull_ending(c, &t, (const char *const *)keys->keys, keys->n,
                                              tickets, k, &r, &err);
    if (rc == PLX_OK && r && (rc = plx_direct_wait(r, stop)) == PLX_OK)
        rc = plx_request_reply(r, &m, &env, &err);
    if (rc == PLX_OK && r && (env->body_case != PLEXA__ENVELOPE__BODY_MULTI_REPLY ||
                              env->multi_reply->n_replies != k))
        rc = plx_err_set(&err, PLX_EPROTO, "an answer of the wrong shape");
    for (size_t i = 0, j = 0; r && i < n; i++) {
        part_t *p = &parts[i];
        if (!p->src->serve_url || p->got)
            continue;
        if (rc == PLX_OK) {
            p->got = env->multi_reply->replies[j++];
            p->msg = plx_msg_share(m);   /* its buffers: the EngineReply indexes them */
            if (!p->msg)
                p->got = NULL;
            else
                continue;
        }
        size_t len = strlen(p->why);
        snprintf(p->why + len, sizeof p->why - len, "; pulling through the controller: %s",
                 rc == PLX_OK ? "out of memory" : rc == PLX_ECLOSED ? "the client closed"
                 : err.msg);
    }
    free(ids);
    free(tickets);
    return r;
}

/* ---- splicing --------------------------------------------------------------------- */

/* Part p as the spliced reply says it, its buffers from base on. */
static void part_out(part_t *p, uint32_t base)
{
    if (p->got) {
        p->out = *p->got;
        p->out.buf_base = base + (p->got->has_buf_base ? p->got->buf_base : 0);
    } else {
        plexa__engine_reply__init(&p->out);
        plexa__remote_error__init(&p->err);
        p->err.ename = "DirectTransferError";
        p->err.evalue = p->why;
        p->err.traceback = p->why;
        p->out.error = &p->err;
    }
    p->out.has_buf_base = 1;
    p->out.serve_url = NULL;
    p->out.has_engine_id = 1;
    p->out.engine_id = p->src->engine_id;
    p->out.method = p->src->method;
}

/* The controller's reply m/env with the parts in place of their URLs. */
static int splice(const plx_msg_t *m, const Plexa__Envelope *env, part_t *parts, size_t n,
                  plx_msg_t **out, Plexa__Envelope **out_env, plx_err_t *err)
{
    Plexa__EngineReply **reps = calloc(n ? n : 1, sizeof *reps);
    if (!reps)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    uint32_t base = m->nbufs;
    for (size_t i = 0; i < n; i++) {
        reps[i] = (Plexa__EngineReply *)parts[i].src;
        if (!parts[i].src->serve_url)
            continue;
        part_out(&parts[i], base);
        base += parts[i].msg ? parts[i].msg->nbufs : 0;
        reps[i] = &parts[i].out;
    }
    Plexa__MultiReply mr = *env->multi_reply;
    mr.replies = reps;
    Plexa__Envelope e = *env;
    e.multi_reply = &mr;
    plx_msg_t *nm = plx_envelope_pack(&e, err);
    int rc = nm ? PLX_OK : err->code;
    for (uint32_t b = 0; rc == PLX_OK && b < m->nbufs; b++)
        rc = plx_msg_add_buf(nm, m->bufs[b]);
    for (size_t i = 0; rc == PLX_OK && i < n; i++)
        for (uint32_t b = 0; parts[i].src->serve_url && parts[i].msg && b < parts[i].msg->nbufs
                             && rc == PLX_OK; b++)
            rc = plx_msg_add_buf(nm, parts[i].msg->bufs[b]);
    free(reps);
    if (rc == PLX_OK && !(*out_env = plx_envelope_unpack(nm, err)))
        rc = err->code;
    if (rc != PLX_OK) {
        plx_msg_destroy(&nm);
        return plx_err_set(err, rc, "splicing fetched values: %s",
                           err->msg[0] ? err->msg : "out of memory");
    }
    *out = nm;
    return PLX_OK;
}

/* ---- the whole ---------------------------------------------------------------------- */

void plx_direct_resolve(plx_client_t *c, plx_request_t *req, const plx_direct_keys_t *keys,
                        plx_msg_t *m, Plexa__Envelope *env, const atomic_int *stop)
{
    const Plexa__MultiReply *mr = env->multi_reply;
    size_t n = mr->n_replies;
    part_t *parts = calloc(n ? n : 1, sizeof *parts);
    if (!parts) {
        plx_request_fail(req, PLX_ENOMEM, "out of memory fetching pulled values");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        parts[i].src = mr->replies[i];
        if (parts[i].src->serve_url)
            prepare(&parts[i]);
    }
    fetch_parts(parts, n, stop);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].src->serve_url)
            continue;
        check_fetched(&parts[i]);
        if (!parts[i].got) {
            failed = 1;
            PLX_WARN("engine %d: fetching pulled values directly failed (%s); this client "
                     "pulls through the controller from now on", (int)parts[i].src->engine_id,
                     parts[i].why);
        }
    }
    plx_request_t *again = NULL;
    if (failed) {
        plx_client_direct_off(c);
        again = pull_again(c, keys, parts, n, stop);
    }
    plx_msg_t *nm = NULL;
    Plexa__Envelope *nenv = NULL;
    plx_err_t err = {0};
    if (splice(m, env, parts, n, &nm, &nenv, &err) == PLX_OK)
        plx_request_complete(req, nm, nenv);
    else
        plx_request_fail(req, err.code, err.msg);
    for (size_t i = 0; i < n; i++) {
        if (parts[i].env)
            plx_envelope_free(&parts[i].env);
        plx_msg_destroy(&parts[i].msg);
    }
    plx_request_destroy(&again);
out:
    free(parts);
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

void plx_direct_run(plx_client_t *c, plx_request_t *req, plx_msg_t *m, Plexa__Envelope *env,
                    const atomic_int *stop)
{
    if (req->dpush) {
        int32_t id = env->multi_reply->replies[0]->engine_id;
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        plx_direct_push_again(c, req, id, stop);
        return;
    }
    plx_direct_resolve(c, req, req->dkeys, m, env, stop);
}
