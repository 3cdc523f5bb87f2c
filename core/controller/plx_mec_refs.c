/*
 * Pushes of plexa.ref values: mec.push(dict(b=plexa.ref('a', engine=0)),
 * targets=[1, 2, 3]) gives the targets engine 0's value without it passing
 * through the client.
 *
 * The push's shares are queued on their targets at once, held: a held
 * share holds up its engine's queue, so what the client sends the targets
 * later still runs after the push. For each engine the refs name, a Pull
 * of their keys (a "fetch", a request of the controller's own) is queued
 * on that engine, behind what the client sent it before. When every fetch
 * has answered, the pulled values replace the refs in the push's envelope,
 * their buffers follow the client's, and each held share is built and sent
 * like any other. If a fetch fails (an unknown name, the engine died, its
 * queue was cleared), every share of the push fails with that error.
 *
 * On one host the pulled buffers are shared-memory regions: the
 * controller maps them read-only, never touches them, and hands the same
 * descriptor to every target.
 *
 * Across the network the values skip the controller ([controller]
 * direct_transfers): the fetch carries one ticket per share, the source
 * keeps the values and answers with where it serves them (serve_url), and
 * each share goes with its refs still refs, now holding that URL with its
 * own ticket as the token; the target fetches from the source itself
 * (core/engine/plx_engine_peer.c). A source that cannot serve (it has no
 * network endpoint of its own) answers with the values. When the push is
 * over, the source is told to drop what it served (ServeEnd).
 *
 * Failing a share can finish, and free, its request. Shares are failed
 * from loops over an engine's detached queue (mec_fail_engine,
 * mec_clear_queue) that a fetch may be part of, so a failed fetch does not
 * fail the push's shares itself: it marks them MEC_REFS_FAILED, and each
 * fails when its queue reaches it (mec_pump), or in the loop that holds it.
 */
#include "plx_controller_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"

/* More would make the key bookkeeping quadratic for no use. */
#define MREFS_MAX 1024
/* As deep as the wire's lists go (core/pyvalue). */
#define MREFS_MAX_DEPTH 64

/* One pushed value that is a ref, and where its value comes from. */
typedef struct mref {
    Plexa__NamedValue *nv;      /* in the push's envelope */
    Plexa__Value      *orig;    /* its Ref, put back before the envelope is freed */
    int                fetch;   /* the fetch that brings it ... */
    size_t             key;     /* ... as which of its keys */
} mref_t;

/* One source engine: the keys pulled from it, and its answer. */
typedef struct msrc {
    int32_t          engine_id;
    char           **keys;      /* borrowed from the push's envelope */
    size_t           nkeys;
    mreq_t          *fetch;     /* NULL once answered */
    plx_msg_t       *got_msg;   /* its reply, kept while the values are used */
    Plexa__Envelope *got_env;
    mserve_t         sv;        /* direct transfers: one ticket per share */
    char             url[600];  /* where, with one share's ticket */
} msrc_t;

typedef struct mrefs {
    plx_msg_t       *msg;       /* the client's frame: its buffers, then the pulled ones */
    Plexa__Envelope *env;       /* the push, refs replaced once all are fetched */
    mref_t          *refs;
    size_t           nrefs;
    msrc_t          *srcs;
    int              nsrcs, pending;
    int              failed;
    char             ename[48];
    char             etext[256];
} mrefs_t;

int mrefs_wanted(const Plexa__Envelope *env)
{
    if (env->body_case != PLEXA__ENVELOPE__BODY_PUSH)
        return 0;
    for (size_t i = 0; i < env->push->n_values; i++)
        if (env->push->values[i]->value &&
            env->push->values[i]->value->kind_case == PLEXA__VALUE__KIND_REF)
            return 1;
    return 0;
}

/* ---- starting ------------------------------------------------------------ */

/* The source for engine id (added if new), or -1 when there is no room. */
static int source_of(mrefs_t *m, int32_t id, size_t cap)
{
    for (int j = 0; j < m->nsrcs; j++)
        if (m->srcs[j].engine_id == id)
            return j;
    if ((size_t)m->nsrcs >= cap)
        return -1;
    msrc_t *s = &m->srcs[m->nsrcs];
    s->engine_id = id;
    s->keys = calloc(cap, sizeof *s->keys);
    return s->keys ? m->nsrcs++ : -1;
}

static size_t key_of(msrc_t *s, char *key)
{
    for (size_t k = 0; k < s->nkeys; k++)
        if (strcmp(s->keys[k], key) == 0)
            return k;
    s->keys[s->nkeys] = key;
    return s->nkeys++;
}

/* Check every ref and sort them by source. Sends the error itself. */
static int plan(plx_controller_t *c, peer_t *client, uint64_t id, mrefs_t *m,
                const Plexa__Push *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_values; i++)
        n += p->values[i]->value && p->values[i]->value->kind_case == PLEXA__VALUE__KIND_REF;
    if (n > MREFS_MAX) {
        ctl_send_error(client, id, PLX_ELIMIT, "a push holds %zu plexa.refs; at most %d",
                       n, MREFS_MAX);
        return PLX_ELIMIT;
    }
    m->srcs = calloc(n, sizeof *m->srcs);
    m->refs = calloc(n, sizeof *m->refs);
    if (!m->srcs || !m->refs) {
        ctl_send_error(client, id, PLX_ENOMEM, "out of memory");
        return PLX_ENOMEM;
    }
    for (size_t i = 0; i < p->n_values; i++) {
        Plexa__NamedValue *nv = p->values[i];
        if (!nv->value || nv->value->kind_case != PLEXA__VALUE__KIND_REF)
            continue;
        const Plexa__Ref *ref = nv->value->ref;
        if (ref->url || ref->has_index) {
            ctl_send_error(client, id, PLX_EINVAL, "push of '%.100s': a plexa.ref names no "
                           "place to fetch from (the controller does)", nv->name ? nv->name : "");
            return PLX_EINVAL;
        }
        if (!ref->key || !ref->key[0] || !ref->has_engine) {
            ctl_send_error(client, id, PLX_EINVAL, "push of '%.100s': a plexa.ref without %s",
                           nv->name ? nv->name : "", ref->has_engine ? "a key" : "an engine");
            return PLX_EINVAL;
        }
        if (!reg_engine(c, ref->engine)) {
            ctl_send_error(client, id, PLX_EBADENGINE, "push of '%.100s': plexa.ref('%.100s', "
                           "engine=%d) names no registered engine", nv->name ? nv->name : "",
                           ref->key, (int)ref->engine);
            return PLX_EBADENGINE;
        }
        int j = source_of(m, ref->engine, n);
        if (j < 0) {
            ctl_send_error(client, id, PLX_ENOMEM, "out of memory");
            return PLX_ENOMEM;
        }
        mref_t *r = &m->refs[m->nrefs++];
        r->nv = nv;
        r->orig = nv->value;
        r->fetch = j;
        r->key = key_of(&m->srcs[j], ref->key);
    }
    return PLX_OK;
}

/* Whether src's values may go to the targets directly: one ticket per
 * share. An engine on shared memory is best served through the
 * controller, which forwards its regions without touching them. */
static void plan_direct(plx_controller_t *c, const mreq_t *r, msrc_t *src, size_t nshares)
{
    engine_t *e = reg_engine(c, src->engine_id);
    if (!c->opts.direct_transfers)
        return;
    for (int i = 0; i < r->n; i++)
        if (r->subs[i].eng && !mserve_reachable(e, r->subs[i].eng))
            return;
    mserve_tickets(&src->sv, nshares);   /* none: through the controller, then */
}

int mrefs_start(plx_controller_t *c, peer_t *client, mreq_t *r, plx_msg_t **m,
                Plexa__Envelope **env)
{
    uint64_t id = (*env)->id;
    mrefs_t *mr = calloc(1, sizeof *mr);
    if (!mr) {
        ctl_send_error(client, id, PLX_ENOMEM, "out of memory");
        return PLX_ENOMEM;
    }
    r->refs = mr;   /* from here on, mec_free(r) frees mr */
    int rc = plan(c, client, id, mr, (*env)->push);
    for (int j = 0; rc == PLX_OK && j < mr->nsrcs; j++)
        plan_direct(c, r, &mr->srcs[j], (size_t)r->n);
    for (int j = 0; rc == PLX_OK && j < mr->nsrcs; j++)
        if (!(mr->srcs[j].fetch = mserve_fetch(c, r, j, mr->srcs[j].engine_id, mr->srcs[j].keys,
                                               mr->srcs[j].nkeys, &mr->srcs[j].sv, 0))) {
            ctl_send_error(client, id, PLX_ENOMEM, "out of memory");
            rc = PLX_ENOMEM;
        }
    if (rc != PLX_OK) {
        for (int j = 0; j < mr->nsrcs; j++)
            if (mr->srcs[j].fetch) {
                mreq_t *f = mr->srcs[j].fetch;
                mr->srcs[j].fetch = NULL;
                mec_free(f);
            }
        return rc;
    }
    mr->msg = *m;
    mr->env = *env;
    *m = NULL;
    *env = NULL;
    mr->pending = mr->nsrcs;
    for (int i = 0; i < r->n; i++)
        r->subs[i].held = MEC_HELD;
    /* Queued before the push's own shares: a source that is also a target
     * answers the fetch first. */
    for (int j = 0; j < mr->nsrcs; j++) {
        sub_t *s = &mr->srcs[j].fetch->subs[0];
        mec_enqueue(s->eng, s);
        mec_pump(c, s->eng);
    }
    return PLX_OK;
}

/* ---- resolving ----------------------------------------------------------- */

static void fail_all(mrefs_t *m, const char *ename, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_all(mrefs_t *m, const char *ename, const char *fmt, ...)
{
    if (m->failed)   /* the first failure is the one to report */
        return;
    m->failed = 1;
    snprintf(m->ename, sizeof m->ename, "%s", ename && ename[0] ? ename : "RemoteError");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->etext, sizeof m->etext, fmt, ap);
    va_end(ap);
    plx_printable(m->ename);
}

void mrefs_fail_share(sub_t *s)
{
    const mrefs_t *m = s->req->refs;
    s->held = 0;
    mec_sub_fail(s, m->ename, "%s", m->etext);
}

/* Move v's buffer indices by base, checking each names one of the n
 * buffers its own reply carried. */
static int rebase(Plexa__Value *v, uint32_t base, uint32_t n, int depth)
{
    if (depth > MREFS_MAX_DEPTH)
        return PLX_EPROTO;
    uint32_t *idx = NULL;
    switch (v->kind_case) {
    case PLEXA__VALUE__KIND_BYTES:
        idx = &v->bytes;
        break;
    case PLEXA__VALUE__KIND_NDARRAY:
        idx = v->ndarray->has_buf ? &v->ndarray->buf : NULL;
        break;
    case PLEXA__VALUE__KIND_PICKLE:
        idx = v->pickle->has_buf ? &v->pickle->buf : NULL;
        for (size_t i = 0; i < v->pickle->n_oob; i++) {
            if (v->pickle->oob[i] >= n)
                return PLX_EPROTO;
            v->pickle->oob[i] += base;
        }
        break;
    case PLEXA__VALUE__KIND_LIST:
        for (size_t i = 0; i < v->list->n_items; i++)
            if (rebase(v->list->items[i], base, n, depth + 1) != PLX_OK)
                return PLX_EPROTO;
        break;
    case PLEXA__VALUE__KIND_REF:
        return PLX_EPROTO;
    default:
        break;
    }
    if (!idx)
        return PLX_OK;
    if (*idx >= n)
        return PLX_EPROTO;
    *idx += base;
    return PLX_OK;
}

/* Append source j's buffers to the push's and point its values at them. */
static int take_values(mrefs_t *m, msrc_t *src)
{
    Plexa__EngineReply *rep = src->got_env->engine_reply;
    uint32_t base = m->msg->nbufs, n = src->got_msg->nbufs;
    for (size_t k = 0; k < rep->n_values; k++)
        if (rebase(rep->values[k], base, n, 1) != PLX_OK) {
            fail_all(m, "ProtocolError", "engine %d answered the pull of '%.100s' with a "
                     "malformed value", (int)src->engine_id, src->keys[k]);
            return PLX_EPROTO;
        }
    for (uint32_t b = 0; b < n; b++)
        if (plx_msg_add_buf(m->msg, src->got_msg->bufs[b]) != PLX_OK) {
            fail_all(m, "MemoryError", "the controller ran out of memory for pulled values");
            return PLX_ENOMEM;
        }
    return PLX_OK;
}

/* Pack share i: refs to sources that serve directly carry their URL with
 * this share's ticket (pointers set for the packing only: the envelope
 * owns none of them). */
static int make_share(plx_controller_t *c, mrefs_t *m, sub_t *s, int i)
{
    for (int j = 0; j < m->nsrcs; j++)
        if (m->srcs[j].sv.served &&
            mserve_url(&m->srcs[j].sv, (size_t)i, m->srcs[j].url, sizeof m->srcs[j].url) != PLX_OK)
            return PLX_ELIMIT;
    for (size_t k = 0; k < m->nrefs; k++) {
        const mref_t *ref = &m->refs[k];
        if (!m->srcs[ref->fetch].sv.served)
            continue;
        ref->orig->ref->url = m->srcs[ref->fetch].url;
        ref->orig->ref->has_index = 1;
        ref->orig->ref->index = (uint32_t)ref->key;
    }
    int rc = mec_make_out(c, s, m->msg, m->env);
    for (size_t k = 0; k < m->nrefs; k++) {
        m->refs[k].orig->ref->url = NULL;
        m->refs[k].orig->ref->has_index = 0;
    }
    return rc;
}

/* Every fetch answered: the held shares go, or fail. */
static void resolve(mreq_t *r)
{
    plx_controller_t *c = r->ctl;
    mrefs_t *m = r->refs;
    for (int j = 0; !m->failed && j < m->nsrcs; j++)
        if (!m->srcs[j].sv.served)
            take_values(m, &m->srcs[j]);
    for (size_t i = 0; !m->failed && i < m->nrefs; i++) {
        const mref_t *ref = &m->refs[i];
        if (!m->srcs[ref->fetch].sv.served)
            ref->nv->value = m->srcs[ref->fetch].got_env->engine_reply->values[ref->key];
    }
    engine_t **es = calloc((size_t)r->n, sizeof *es);
    int nes = 0;
    for (int i = 0; i < r->n; i++) {
        sub_t *s = &r->subs[i];
        if (!s->eng || s->held != MEC_HELD)
            continue;
        if (!m->failed && make_share(c, m, s, i) != PLX_OK)
            fail_all(m, "MemoryError", "the controller ran out of memory building the push");
        s->held = m->failed ? MEC_REFS_FAILED : 0;
        if (es)
            es[nes++] = s->eng;
    }
    /* Pumping may fail the last share and free r: engines were noted. */
    for (int i = 0; i < nes; i++)
        mec_pump(c, es[i]);
    if (!es)   /* no list, no pumping: fail what can be failed here */
        for (int i = 0; i < c->engines_cap; i++)
            if (c->engines[i])
                mec_pump(c, c->engines[i]);
    free(es);
}

void mrefs_fetched(mreq_t *f)
{
    mreq_t *r = f->parent;
    if (!r)
        return;   /* the push is gone: the values are not needed */
    f->parent = NULL;
    mrefs_t *m = r->refs;
    msrc_t *src = &m->srcs[f->fetch_idx];
    src->fetch = NULL;
    sub_t *s = &f->subs[0];
    const Plexa__EngineReply *rep = s->reply;
    if (rep->error)
        fail_all(m, rep->error->ename, "%s (pulling '%.100s' from engine %d for this push)",
                 rep->error->evalue ? rep->error->evalue : "", src->keys[0],
                 (int)src->engine_id);
    else if (rep->serve_url && src->sv.ntickets) {
        char why[300];
        if (mserve_accept(r->ctl, src->engine_id, &src->sv, rep->serve_url, why,
                          sizeof why) != PLX_OK)
            fail_all(m, "ProtocolError", "%s", why);
    } else if (rep->n_values != src->nkeys || !s->reply_env)
        fail_all(m, "ProtocolError", "engine %d answered a pull of %zu names with %zu values",
                 (int)src->engine_id, src->nkeys, rep->n_values);
    else {
        src->got_msg = s->reply_msg;
        src->got_env = s->reply_env;
        s->reply_msg = NULL;
        s->reply_env = NULL;
        s->reply = NULL;
    }
    if (--m->pending == 0)
        resolve(r);
}

void mrefs_answered(const sub_t *s)
{
    const Plexa__RemoteError *err = s->reply->error;
    engine_t *e = s->eng;
    if (!e || e->no_direct || !err || !err->ename ||
        strcmp(err->ename, "DirectTransferError") != 0)
        return;
    e->no_direct = 1;
    PLX_WARN("engine %d could not fetch a value from another engine directly; the values of "
             "refs pushed to it go through the controller from now on", e->id);
}

void mrefs_free(mreq_t *r)
{
    mrefs_t *m = r->refs;
    r->refs = NULL;
    for (size_t i = 0; i < m->nrefs; i++)
        m->refs[i].nv->value = m->refs[i].orig;
    for (int j = 0; j < m->nsrcs; j++) {
        msrc_t *src = &m->srcs[j];
        if (src->fetch)
            src->fetch->parent = NULL;   /* it still runs; its answer goes nowhere */
        /* Served, refused, or still to be: no ticket may linger (an engine
         * that answered with the values only notes tickets it never saw). */
        mserve_end(r->ctl, src->engine_id, &src->sv);
        mserve_clear(&src->sv);
        plx_envelope_free(&src->got_env);
        plx_msg_destroy(&src->got_msg);
        free(src->keys);
    }
    free(m->srcs);
    free(m->refs);
    plx_envelope_free(&m->env);
    plx_msg_destroy(&m->msg);
    free(m);
}
