/*
 * Multi-engine requests: a client request is split into one share per
 * target engine, each share waits in that engine's FIFO queue, a few are
 * sent ahead (pipelining) so an engine never idles waiting for the
 * controller, and the replies are gathered into one MultiReply in target
 * order. Payload buffers are shared by reference with every engine.
 */
#include "plx_controller_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"

/* Name the request for error messages and describe it for queue_status. */
static void describe(mreq_t *r, const Plexa__Envelope *env)
{
    const char *m = "request";
    char what[80] = "";
    switch (env->body_case) {
    case PLEXA__ENVELOPE__BODY_EXECUTE:
        m = "execute";
        snprintf(what, sizeof what, "%.*s", (int)strcspn(env->execute->code ? env->execute->code : "", "\n"),
                 env->execute->code ? env->execute->code : "");
        break;
    case PLEXA__ENVELOPE__BODY_PUSH:
        m = "push";
        for (size_t i = 0; i < env->push->n_values && strlen(what) < 60; i++)
            snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", i ? ", " : "",
                     env->push->values[i]->name ? env->push->values[i]->name : "?");
        break;
    case PLEXA__ENVELOPE__BODY_PULL:
        m = "pull";
        for (size_t i = 0; i < env->pull->n_keys && strlen(what) < 60; i++)
            snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", i ? ", " : "",
                     env->pull->keys[i]);
        break;
    case PLEXA__ENVELOPE__BODY_CALL:
        m = env->call->method ? env->call->method : "call";
        break;
    case PLEXA__ENVELOPE__BODY_SHUTDOWN:
        m = "kill";
        r->stop_after = env->shutdown->has_controller && env->shutdown->controller;
        break;
    default:
        break;
    }
    snprintf(r->method, sizeof r->method, "%s", m);
    snprintf(r->desc, sizeof r->desc, "%s%s%s", r->method, what[0] ? ": " : "", what);
    plx_printable(r->method);
    plx_printable(r->desc);
}

/* ---- targets ------------------------------------------------------------ */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static size_t all_ids(plx_controller_t *c, int32_t *ids)
{
    size_t n = 0;
    for (int32_t i = 0; i < c->engines_cap; i++)
        if (c->engines[i])
            ids[n++] = i;
    return n;
}

static void describe_ids(plx_controller_t *c, char *out, size_t len)
{
    size_t pos = 0;
    out[0] = '\0';
    for (int32_t i = 0; i < c->engines_cap && pos + 16 < len; i++)
        if (c->engines[i])
            pos += (size_t)snprintf(out + pos, len - pos, "%s%d", pos ? ", " : "", i);
}

/* The listed targets, first occurrence of each, in the caller's order.
 * Linear in the list (a hostile request may list millions of ids): every
 * id must name a live engine, and duplicates are spotted with a bitmap
 * over the engine table. Sends the error reply itself. */
static int pick_targets(plx_controller_t *c, peer_t *p, const Plexa__Envelope *env,
                        int32_t *ids, size_t *k)
{
    const Plexa__Targets *t = env->targets;
    uint8_t *seen = calloc((size_t)c->engines_cap / 8 + 1, 1);
    if (!seen) {
        ctl_send_error(p, env->id, PLX_ENOMEM, "out of memory");
        return PLX_ENOMEM;
    }
    for (size_t i = 0; i < t->n_ids; i++) {
        int32_t id = t->ids[i];
        if (!reg_engine(c, id)) {
            char known[512];
            describe_ids(c, known, sizeof known);
            ctl_send_error(p, env->id, PLX_EBADENGINE, "invalid engine id %d (registered: [%s])",
                           id, known);
            free(seen);
            return PLX_EBADENGINE;
        }
        if (seen[id / 8] & (1u << (id % 8)))
            continue;
        seen[id / 8] |= (uint8_t)(1u << (id % 8));
        ids[(*k)++] = id;
    }
    free(seen);
    return PLX_OK;
}

/* Resolve the request's targets into ids (caller frees *out). Sends the
 * error reply itself and returns <0 when they are invalid. */
static int resolve_targets(plx_controller_t *c, peer_t *p, const Plexa__Envelope *env,
                           int32_t **out, size_t *n)
{
    const Plexa__Targets *t = env->targets;
    int all = !t || (t->has_all && t->all);
    size_t cap = all ? (size_t)c->nengines : t->n_ids;
    int32_t *ids = malloc((cap + 1) * sizeof *ids);
    if (!ids) {
        ctl_send_error(p, env->id, PLX_ENOMEM, "out of memory");
        return PLX_ENOMEM;
    }
    size_t k = 0;
    if (all) {
        k = all_ids(c, ids);
        qsort(ids, k, sizeof *ids, cmp_i32);
    } else if (pick_targets(c, p, env, ids, &k) != PLX_OK) {
        free(ids);
        return PLX_EBADENGINE;
    }
    if (k == 0) {
        ctl_send_error(p, env->id, PLX_ENOENGINES,
                       all ? "no engines registered" : "empty target list");
        free(ids);
        return PLX_ENOENGINES;
    }
    *out = ids;
    *n = k;
    return PLX_OK;
}

/* ---- requests ----------------------------------------------------------- */

static void mreq_unlink(mreq_t *r)
{
    if (!r->client)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        r->client->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->client = NULL;
    r->prev = r->next = NULL;
}

void mec_free(mreq_t *r)
{
    mreq_unlink(r);
    if (r->refs)
        mrefs_free(r);
    if (r->bcast)
        mbcast_free(r);
    if (r->direct)
        mdirect_free(r);
    for (int i = 0; i < r->n; i++) {
        sub_t *s = &r->subs[i];
        plx_msg_destroy(&s->out);
        plx_envelope_free(&s->reply_env);
        plx_msg_destroy(&s->reply_msg);
    }
    free(r->subs);
    free(r);
}

/* Build and send the gathered reply, then free the request. */
static void mreq_finish(mreq_t *r)
{
    if (r->fetch) {
        if (r->parent && r->parent->bcast)
            mbcast_fetched(r);
        else
            mrefs_fetched(r);
        mec_free(r);
        return;
    }
    if (r->stop_after)
        ctl_stop_soon(r->ctl);
    if (!r->client) {
        mec_free(r);
        return;
    }
    Plexa__EngineReply **replies = malloc((size_t)r->n * sizeof *replies);
    plx_msg_t *m = NULL;
    if (replies) {
        uint32_t base = 0;
        for (int i = 0; i < r->n; i++) {
            replies[i] = r->subs[i].reply;
            replies[i]->has_buf_base = 1;
            replies[i]->buf_base = base;
            base += r->subs[i].reply_msg ? r->subs[i].reply_msg->nbufs : 0;
        }
        Plexa__MultiReply mr = PLEXA__MULTI_REPLY__INIT;
        mr.n_replies = (size_t)r->n;
        mr.replies = replies;
        m = ctl_pack(r->ctl, r->client_id, PLEXA__ENVELOPE__BODY_MULTI_REPLY, &mr);
        for (int i = 0; m && i < r->n; i++)
            for (uint32_t b = 0; r->subs[i].reply_msg && b < r->subs[i].reply_msg->nbufs; b++)
                if (plx_msg_add_buf(m, r->subs[i].reply_msg->bufs[b]) != PLX_OK)
                    plx_msg_destroy(&m);
        free(replies);
    }
    if (m)
        plx_conn_send(r->client->conn, m);
    else
        ctl_send_error(r->client, r->client_id, PLX_ENOMEM, "out of memory gathering replies");
    mec_free(r);
}

static void sub_done(sub_t *s)
{
    s->eng = NULL;
    if (++s->req->ndone == s->req->n)
        mreq_finish(s->req);
}

static void sub_synth_v(sub_t *s, const char *ename, const char *fmt, va_list ap)
{
    mreq_t *r = s->req;
    vsnprintf(s->synth_text, sizeof s->synth_text, fmt, ap);
    plexa__remote_error__init(&s->synth_err);
    snprintf(s->synth_ename, sizeof s->synth_ename, "%s", ename);
    s->synth_err.ename = s->synth_ename;
    s->synth_err.evalue = s->synth_text;
    s->synth_err.traceback = s->synth_text;
    plexa__engine_reply__init(&s->synth);
    s->synth.has_engine_id = 1;
    s->synth.engine_id = s->engine_id;
    s->synth.method = r->method;
    s->synth.error = &s->synth_err;
    s->reply = &s->synth;
}

void mec_sub_synth(sub_t *s, const char *ename, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sub_synth_v(s, ename, fmt, ap);
    va_end(ap);
}

/* Answer a share on the engine's behalf with an error. */
void mec_sub_fail(sub_t *s, const char *ename, const char *fmt, ...)
{
    plx_msg_destroy(&s->out);
    va_list ap;
    va_start(ap, fmt);
    sub_synth_v(s, ename, fmt, ap);
    va_end(ap);
    sub_done(s);
}

int mec_make_out(plx_controller_t *c, sub_t *s, const plx_msg_t *m, Plexa__Envelope *env)
{
    Plexa__Envelope e = *env;
    e.targets = NULL;
    e.has_reply_to = 0;
    e.has_id = 1;
    e.id = s->eng_msg_id = ctl_next_id(c);
    plx_err_t err = {0};
    s->out = plx_envelope_pack(&e, &err);
    if (!s->out)
        return err.code;
    int rc = PLX_OK;
    for (uint32_t b = 0; b < m->nbufs && rc == PLX_OK; b++)
        rc = plx_msg_add_buf(s->out, m->bufs[b]);
    return rc;
}

/* Pack the envelope each target receives: the client's body, a fresh id. */
static int make_outs(plx_controller_t *c, mreq_t *r, plx_msg_t *m, Plexa__Envelope *env)
{
    int rc = PLX_OK;
    for (int i = 0; i < r->n && rc == PLX_OK; i++)
        rc = mec_make_out(c, &r->subs[i], m, env);
    return rc;
}

void mec_enqueue(engine_t *e, sub_t *s)
{
    s->next = NULL;
    if (e->qtail)
        e->qtail->next = s;
    else
        e->qhead = s;
    e->qtail = s;
}

void mec_pump(plx_controller_t *c, engine_t *e)
{
    while (e->qhead && e->qhead->held != MEC_HELD && !e->nsolo) {
        sub_t *s = e->qhead;
        if (s->held != MEC_REFS_FAILED && e->ninflight >= c->opts.engine_inflight)
            break;
        e->qhead = s->next;
        if (!e->qhead)
            e->qtail = NULL;
        s->next = NULL;
        if (s->held == MEC_REFS_FAILED) {
            if (s->req->refs) {
                mrefs_fail_share(s);
            } else {
                s->held = 0;
                mec_sub_fail(s, "MemoryError", "the controller ran out of memory building %s",
                             s->req->desc);
            }
            continue;
        }
        if (e->itail)
            e->itail->next = s;
        else
            e->ihead = s;
        e->itail = s;
        e->ninflight++;
        e->nsolo += s->solo;
        plx_msg_t *out = s->out;
        s->out = NULL;
        plx_conn_send(e->peer->conn, out);
    }
}

void mec_submit(plx_controller_t *c, peer_t *client, plx_msg_t *m, Plexa__Envelope *env)
{
    int32_t *ids = NULL;
    size_t n = 0;
    mreq_t *r = NULL;
    if (resolve_targets(c, client, env, &ids, &n) != PLX_OK)
        goto out;
    r = calloc(1, sizeof *r);
    if (r)
        r->subs = calloc(n, sizeof *r->subs);
    if (!r || !r->subs) {
        free(r);
        ctl_send_error(client, env->id, PLX_ENOMEM, "out of memory");
        goto out;
    }
    r->ctl = c;
    r->client_id = env->id;
    describe(r, env);
    r->n = (int)n;
    for (size_t i = 0; i < n; i++) {
        r->subs[i].req = r;
        r->subs[i].engine_id = ids[i];
        r->subs[i].eng = reg_engine(c, ids[i]);
    }
    int served = mdirect_push(c, client, r, m, env);
    if (served < 0) {
        mec_free(r);
        goto out;
    }
    if (served) {
        /* built (1), or answered (2): the engine cannot fetch what the
         * client serves, and the client pushes the values again */
    } else if (mrefs_wanted(env)) {
        if (mrefs_start(c, client, r, &m, &env) != PLX_OK) {
            mec_free(r);
            goto out;
        }
    } else if (env->body_case == PLEXA__ENVELOPE__BODY_PULL) {
        if (mdirect_start(c, client, r, env) != PLX_OK) {
            mec_free(r);
            ctl_send_error(client, env->id, PLX_ENOMEM, "out of memory");
            goto out;
        }
    } else if (!mbcast_start(c, r, &m, &env) && make_outs(c, r, m, env) != PLX_OK) {
        mec_free(r);
        ctl_send_error(client, env->id, PLX_ENOMEM, "out of memory");
        goto out;
    }
    r->client = client;
    r->next = client->reqs;
    if (client->reqs)
        client->reqs->prev = r;
    client->reqs = r;
    if (served == 2) {
        sub_t *subs = r->subs;   /* the last sub_done frees r */
        for (size_t i = 0; i < n; i++)
            sub_done(&subs[i]);
        goto out;
    }
    if (r->bcast)
        mbcast_queue_relays(r);
    for (size_t i = 0; i < n; i++) {
        mec_enqueue(r->subs[i].eng, &r->subs[i]);
        mec_pump(c, r->subs[i].eng);
    }
out:
    free(ids);
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

void mec_engine_output(plx_controller_t *c, engine_t *e, const Plexa__Envelope *env)
{
    (void)c;
    sub_t *s = e->ihead;
    while (s && !(env->has_reply_to && s->eng_msg_id == env->reply_to))
        s = s->next;
    if (s)   /* else answered already */
        ctl_send_output(s->req->client, s->req->client_id, env->output, e->id, 0);
}

void mec_engine_reply(plx_controller_t *c, engine_t *e, plx_msg_t *m, Plexa__Envelope *env)
{
    sub_t *prev = NULL, *s = e->ihead;
    while (s && !(env->has_reply_to && s->eng_msg_id == env->reply_to)) {
        prev = s;
        s = s->next;
    }
    if (!s) {
        PLX_WARN("engine %d answered unknown request %llu; ignored", e->id,
                 (unsigned long long)env->reply_to);
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        return;
    }
    e->requests_done++;
    if (prev)
        prev->next = s->next;
    else
        e->ihead = s->next;
    if (e->itail == s)
        e->itail = prev;
    e->ninflight--;
    s->reply_msg = m;
    s->reply_env = env;
    s->reply = env->engine_reply;
    s->reply->has_engine_id = 1;
    s->reply->engine_id = e->id;
    if (s->solo) {
        s->solo = 0;
        e->nsolo--;
    }
    if (s->req->refs)
        mrefs_answered(s);
    if (s->req->direct)
        mdirect_answered(s);
    if (s->req->bcast && mbcast_answered(s)) {
        mec_pump(c, e);   /* sent again, first in the queue */
        return;
    }
    int killed = s->req->method[0] == 'k' && strcmp(s->req->method, "kill") == 0;
    sub_done(s);
    if (killed) {
        /* The engine exits after this reply; unregister it now (the close
         * is reported from the loop before any later request is read). */
        plx_conn_close(e->peer->conn, 0, PLX_OK, "killed at a client's request");
        return;
    }
    mec_pump(c, e);
}

void mec_fail_engine(plx_controller_t *c, engine_t *e, const char *why)
{
    sub_t *lists[2] = {e->ihead, e->qhead};
    e->ihead = e->itail = e->qhead = e->qtail = NULL;
    e->ninflight = e->nsolo = 0;
    for (int l = 0; l < 2; l++) {
        sub_t *s = lists[l];
        while (s) {
            sub_t *next = s->next;
            mec_sub_fail(s, "EngineError", "engine %d died while running %s: %s", s->engine_id,
                     s->req->method, why);
            s = next;
        }
    }
}

void mec_client_gone(peer_t *client)
{
    /* Requests already queued still run (they may have side effects the
     * user counts on); their replies are dropped. */
    while (client->reqs)
        mreq_unlink(client->reqs);
    mdirect_client_gone(client->ctl, client);
}

/* Take s out of e's queue of shares not yet sent. */
void mec_unqueue(engine_t *e, sub_t *s)
{
    sub_t *prev = NULL;
    for (sub_t *t = e->qhead; t; prev = t, t = t->next)
        if (t == s) {
            if (prev)
                prev->next = s->next;
            else
                e->qhead = s->next;
            if (e->qtail == s)
                e->qtail = prev;
            s->next = NULL;
            return;
        }
}

/* Whether share s still waits in the controller (built, or held for its
 * refs' values): not sent to its engine, not answered. */
static int sub_waiting(const sub_t *s)
{
    return s->eng && (s->out || s->held);
}

/* Interrupt one request an engine was sent: it stops if it runs, and is
 * dropped (answered as interrupted) if it still waits there. */
static void interrupt_request(engine_t *e, uint64_t request_id)
{
    Plexa__Interrupt in = PLEXA__INTERRUPT__INIT;
    in.has_request_id = 1;
    in.request_id = request_id;
    ctl_send_body(e->peer, 0, PLEXA__ENVELOPE__BODY_INTERRUPT, &in);
}

void mec_client_revoked(plx_controller_t *c, peer_t *client)
{
    while (client->reqs) {
        mreq_t *r = client->reqs;
        mreq_unlink(r);   /* its reply goes nowhere now */
        int queued = 0;
        for (int i = 0; i < r->n; i++) {
            sub_t *s = &r->subs[i];
            if (sub_waiting(s))
                queued++;
            else if (s->eng)
                interrupt_request(s->eng, s->eng_msg_id);   /* sent: stop it there */
        }
        /* Failing the last queued share can finish r, and free it: stop
         * touching r then. */
        for (int i = 0; queued > 0 && i < r->n; i++) {
            sub_t *s = &r->subs[i];
            if (!sub_waiting(s))
                continue;
            queued--;
            mec_unqueue(s->eng, s);
            mec_sub_fail(s, "CapabilityRevoked", "%s on engine %d was cancelled: the mec "
                     "capability it was sent with was revoked", r->desc, s->engine_id);
        }
    }
    /* A held share dropped may have held up other clients' shares. */
    for (int32_t i = 0; i < c->engines_cap; i++)
        if (c->engines[i])
            mec_pump(c, c->engines[i]);
}

/* ---- queue management --------------------------------------------------- */

/* A reply to a controller-side operation: one empty EngineReply per id. */
static void reply_per_engine(plx_controller_t *c, peer_t *p, uint64_t reply_to,
                             const int32_t *ids, size_t n, const char *method)
{
    Plexa__EngineReply *store = calloc(n ? n : 1, sizeof *store);
    Plexa__EngineReply **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    if (!store || !ptrs) {
        free(store);
        free(ptrs);
        ctl_send_error(p, reply_to, PLX_ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        plexa__engine_reply__init(&store[i]);
        store[i].has_engine_id = 1;
        store[i].engine_id = ids[i];
        store[i].method = (char *)method;
        ptrs[i] = &store[i];
    }
    Plexa__MultiReply mr = PLEXA__MULTI_REPLY__INIT;
    mr.n_replies = n;
    mr.replies = ptrs;
    ctl_send_body(p, reply_to, PLEXA__ENVELOPE__BODY_MULTI_REPLY, &mr);
    free(store);
    free(ptrs);
}

/* The client's request sent with envelope id `id`, still unanswered. */
static mreq_t *client_request(peer_t *client, uint64_t id)
{
    for (mreq_t *r = client->reqs; r; r = r->next)
        if (r->client_id == id)
            return r;
    return NULL;
}

/* Why r may not be cancelled (a share was sent to an engine), or NULL. */
static const char *cancel_refusal(const mreq_t *r)
{
    if (!r)
        return "is finished or unknown";
    for (int i = 0; i < r->n; i++)
        if (!sub_waiting(&r->subs[i]))
            return "has started";
    return NULL;
}

/* Drop every share of r (all still queued): it finishes, failed. */
static void cancel_request(mreq_t *r)
{
    plx_controller_t *c = r->ctl;
    r->stop_after = 0;   /* a cancelled kill of the controller does not stop it */
    /* Failing the last share finishes r, and frees it: count first. */
    int left = r->n;
    for (int i = 0; left > 0; i++) {
        sub_t *s = &r->subs[i];
        engine_t *e = s->eng;
        left--;
        mec_unqueue(e, s);
        mec_sub_fail(s, "QueueCleared", "%s on engine %d was cancelled", r->desc, s->engine_id);
        mec_pump(c, e);   /* a held share held up those behind it */
    }
}

/* ClearQueue with requests: a future's cancel(), all or nothing. */
static void cancel_requests(plx_controller_t *c, peer_t *client, const Plexa__Envelope *env)
{
    const Plexa__ClearQueue *cq = env->clear_queue;
    for (size_t i = 0; i < cq->n_requests; i++) {
        const char *why = cancel_refusal(client_request(client, cq->requests[i]));
        if (why) {
            ctl_send_error(client, env->id, PLX_EINVAL, "request %llu %s",
                           (unsigned long long)cq->requests[i], why);
            return;
        }
    }
    for (size_t i = 0; i < cq->n_requests; i++) {
        mreq_t *r = client_request(client, cq->requests[i]);
        if (r)   /* listed twice: cancelled already */
            cancel_request(r);
    }
    reply_per_engine(c, client, env->id, NULL, 0, "clear_queue");
}

void mec_clear_queue(plx_controller_t *c, peer_t *client, Plexa__Envelope *env)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (env->clear_queue->n_requests) {
        cancel_requests(c, client, env);
        return;
    }
    if (resolve_targets(c, client, env, &ids, &n) != PLX_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        engine_t *e = reg_engine(c, ids[i]);
        sub_t *s = e->qhead;
        e->qhead = e->qtail = NULL;
        while (s) {
            sub_t *next = s->next;
            mec_sub_fail(s, "QueueCleared", "%s on engine %d was removed by clear_queue",
                     s->req->desc, s->engine_id);
            s = next;
        }
    }
    reply_per_engine(c, client, env->id, ids, n, "clear_queue");
    free(ids);
}

static char **describe_list(const sub_t *s, size_t *n)
{
    size_t k = 0;
    for (const sub_t *t = s; t; t = t->next)
        k++;
    char **out = calloc(k ? k : 1, sizeof *out);
    *n = 0;
    for (const sub_t *t = s; out && t; t = t->next)
        out[(*n)++] = (char *)t->req->desc;
    return out;
}

void mec_queue_status(plx_controller_t *c, peer_t *client, Plexa__Envelope *env)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (resolve_targets(c, client, env, &ids, &n) != PLX_OK)
        return;
    Plexa__EngineQueue *qs = calloc(n, sizeof *qs);
    Plexa__EngineQueue **ptrs = calloc(n, sizeof *ptrs);
    for (size_t i = 0; qs && ptrs && i < n; i++) {
        engine_t *e = reg_engine(c, ids[i]);
        plexa__engine_queue__init(&qs[i]);
        qs[i].has_engine_id = 1;
        qs[i].engine_id = ids[i];
        qs[i].pending = describe_list(e->ihead, &qs[i].n_pending);
        qs[i].queue = describe_list(e->qhead, &qs[i].n_queue);
        ptrs[i] = &qs[i];
    }
    if (qs && ptrs) {
        Plexa__QueueStatusReply qr = PLEXA__QUEUE_STATUS_REPLY__INIT;
        qr.n_engines = n;
        qr.engines = ptrs;
        ctl_send_body(client, env->id, PLEXA__ENVELOPE__BODY_QUEUE_STATUS_REPLY, &qr);
    } else {
        ctl_send_error(client, env->id, PLX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; qs && i < n; i++) {
        free(qs[i].pending);
        free(qs[i].queue);
    }
    free(qs);
    free(ptrs);
    free(ids);
}

/* interrupt(targets): raise KeyboardInterrupt in whatever each target runs
 * now. Goes around the queues: that is the point of it. */
void mec_interrupt(plx_controller_t *c, peer_t *client, Plexa__Envelope *env)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (resolve_targets(c, client, env, &ids, &n) != PLX_OK)
        return;
    Plexa__Interrupt in = PLEXA__INTERRUPT__INIT;
    in.has_task_id = 1;
    in.task_id = 0;
    for (size_t i = 0; i < n; i++)
        ctl_send_body(reg_engine(c, ids[i])->peer, 0, PLEXA__ENVELOPE__BODY_INTERRUPT, &in);
    reply_per_engine(c, client, env->id, ids, n, "interrupt");
    free(ids);
}
