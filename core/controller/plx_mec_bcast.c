/*
 * Broadcast: a push of big values to several engines goes as a tree.
 *
 * Sent as usual, a push to n engines leaves the controller n times: on a
 * cluster, its host's network link carries every copy. Instead, when the
 * push's buffers hold at least [controller] broadcast_min bytes and the
 * targets reach each other over the network, the controller sends the
 * push to one engine, and each engine that has it serves it to two more
 * (direct transfers, as for plexa.ref: plx_mec_serve.c). The controller
 * sends the values once per tree; the tree is log2(n) levels deep.
 *
 * The tree is pipelined: each level passes the value on while it still
 * arrives. Each serving engine i gets a relay Pull (Pull.relay, one ticket
 * per child) right ahead of its share: its I/O thread answers it at once
 * with its URL, and serves its share's values to the children as they
 * come in (from the controller, or from its own parent: plx_relay.h). A
 * child's share is held in its queue until its parent's relay Pull
 * answers; it then goes with refs naming the parent's URL and the child's
 * ticket, and the child fetches the values itself while its parent still
 * receives them.
 *
 * Whatever goes wrong costs time, never the push: a parent whose share
 * failed, that died, or that cannot serve gives its children the values
 * through the controller; a child that cannot fetch them gets its share
 * again with the values (the share is "solo": nothing after it goes to its
 * engine until it is answered, so sending it again keeps the order), and
 * the engine gets values through the controller from then on
 * (engine_t.no_direct).
 *
 * Only idle engines serve (nothing queued, sent, or running a task): a
 * busy one would hold up its children behind its own queue.
 */
#include "plx_controller_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"

#define FANOUT 2

typedef struct bnode {
    int      parent;      /* share serving it; -1: the controller */
    int      nth;         /* which of the parent's children (its ticket) */
    int      nkids;
    int      kids_left;   /* children sent refs, not answered: ServeEnd at 0 */
    mreq_t  *fetch;       /* the Pull behind its share; NULL once answered */
    mserve_t sv;
    int      share_failed; /* its share was answered with an error */
    int      refs;        /* its share went with refs to its parent, unanswered */
} bnode_t;

typedef struct mbcast {
    plx_msg_t         *msg;   /* the client's push and its buffers */
    Plexa__Envelope   *env;
    char             **keys;  /* the push's names (borrowed from env) */
    size_t             nkeys;
    bnode_t           *nodes; /* one per share */
    /* a child's share, rebuilt for each */
    Plexa__NamedValue *nv;
    Plexa__NamedValue **nvp;
    Plexa__Value      *val;
    Plexa__Ref        *ref;
} mbcast_t;

/* ---- planning ------------------------------------------------------------- */

/* The push's names, if every value is native (no pickle: what a parent
 * serves is data, never code its children run) and no name repeats: what
 * a Pull on a target gives back is then the push itself. */
static char **names(const Plexa__Push *p)
{
    char **keys = calloc(p->n_values ? p->n_values : 1, sizeof *keys);
    for (size_t i = 0; keys && i < p->n_values; i++) {
        const Plexa__NamedValue *nv = p->values[i];
        if (!nv->name || !nv->name[0] || !nv->value || !plx_value_native(nv->value)) {
            free(keys);
            return NULL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(keys[j], nv->name) == 0) {
                free(keys);
                return NULL;
            }
        keys[i] = nv->name;
    }
    return keys;
}

static int idle(const engine_t *e)
{
    return !e->qhead && !e->ninflight && !e->trun.n;
}

static int candidate(const mreq_t *r, int i)
{
    const engine_t *e = r->subs[i].eng;
    if (!e || e->no_direct || strncmp(e->peer->addr, "shm:", 4) == 0)
        return 0;
    for (int j = 0; j < i; j++)
        if (r->subs[j].eng == e)
            return 0;
    return 1;
}

/* A serving share with room for child i, on i's host if any is (so that
 * each host's link carries the value once, and its other engines get it
 * there); -1 if none. */
static int parent_for(const mreq_t *r, const bnode_t *nodes, const int *serv, int nserv, int i)
{
    const engine_t *e = r->subs[i].eng;
    for (int local = 1; local >= 0; local--)
        for (int q = 0; q < nserv; q++) {
            const engine_t *p = r->subs[serv[q]].eng;
            if (nodes[serv[q]].nkids < FANOUT && mserve_reachable(p, e) &&
                (!local || mserve_one_host(p, e)))
                return serv[q];
        }
    return -1;
}

/* Give each share a parent: idle engines first, each serving up to FANOUT
 * engines it can reach. The number of shares with a parent. */
static int plan(const mreq_t *r, bnode_t *nodes)
{
    int *order = calloc((size_t)r->n, sizeof *order), *serv = calloc((size_t)r->n, sizeof *serv);
    int n = 0, nserv = 0, linked = 0;
    for (int pass = 0; order && serv && pass < 2; pass++)
        for (int i = 0; i < r->n; i++)
            if (candidate(r, i) && idle(r->subs[i].eng) == !pass)
                order[n++] = i;
    for (int i = 0; i < r->n; i++)
        nodes[i].parent = -1;
    for (int k = 0; serv && k < n; k++) {
        int i = order[k], p = parent_for(r, nodes, serv, nserv, i);
        if (p >= 0) {
            nodes[i].parent = p;
            nodes[i].nth = nodes[p].nkids++;
            linked++;
        }
        if (idle(r->subs[i].eng))
            serv[nserv++] = i;
    }
    free(order);
    free(serv);
    return linked;
}

static void bcast_free(mbcast_t *b)
{
    free(b->keys);
    free(b->nodes);
    free(b->nv);
    free(b->nvp);
    free(b->val);
    free(b->ref);
    free(b);
}

static mbcast_t *bcast_new(const Plexa__Push *p, int nshares)
{
    mbcast_t *b = calloc(1, sizeof *b);
    size_t n = p->n_values ? p->n_values : 1;
    if (!b)
        return NULL;
    b->keys = names(p);
    b->nkeys = p->n_values;
    b->nodes = calloc((size_t)nshares, sizeof *b->nodes);
    b->nv = calloc(n, sizeof *b->nv);
    b->nvp = calloc(n, sizeof *b->nvp);
    b->val = calloc(n, sizeof *b->val);
    b->ref = calloc(n, sizeof *b->ref);
    if (!b->keys || !b->nodes || !b->nv || !b->nvp || !b->val || !b->ref) {
        bcast_free(b);
        return NULL;
    }
    return b;
}

static void unplan(const mreq_t *r, mbcast_t *b)
{
    for (int i = 0; i < r->n; i++) {
        if (b->nodes[i].fetch)
            mec_free(b->nodes[i].fetch);
        b->nodes[i].fetch = NULL;
        mserve_clear(&b->nodes[i].sv);
    }
}

/* Tickets and a fetch for every engine that serves. */
static int plan_serving(plx_controller_t *c, mreq_t *r, mbcast_t *b)
{
    for (int i = 0; i < r->n; i++) {
        bnode_t *nd = &b->nodes[i];
        if (nd->nkids && (mserve_tickets(&nd->sv, (size_t)nd->nkids) != PLX_OK ||
                          !(nd->fetch = mserve_fetch(c, r, i, r->subs[i].engine_id, b->keys,
                                                     b->nkeys, &nd->sv, 1)))) {
            unplan(r, b);
            return PLX_ENOMEM;
        }
    }
    return PLX_OK;
}

int mbcast_start(plx_controller_t *c, mreq_t *r, plx_msg_t **m, Plexa__Envelope **env)
{
    if (!c->opts.direct_transfers || (*env)->body_case != PLEXA__ENVELOPE__BODY_PUSH ||
        !(*env)->push->n_values || r->n < 2)
        return 0;
    uint64_t bytes = plx_msg_payload(*m);
    if (!bytes || bytes < c->opts.broadcast_min)
        return 0;
    mbcast_t *b = bcast_new((*env)->push, r->n);
    if (!b)
        return 0;
    if (!plan(r, b->nodes) || plan_serving(c, r, b) != PLX_OK) {
        bcast_free(b);
        return 0;
    }
    for (int i = 0; i < r->n; i++) {
        sub_t *s = &r->subs[i];
        if (b->nodes[i].parent >= 0) {
            s->held = MEC_HELD;
            s->solo = 1;
        } else if (mec_make_out(c, s, *m, *env) != PLX_OK) {
            for (int j = 0; j < r->n; j++) {
                plx_msg_destroy(&r->subs[j].out);
                r->subs[j].held = r->subs[j].solo = 0;
            }
            unplan(r, b);
            bcast_free(b);
            return 0;   /* fanned out as usual, if memory allows */
        }
    }
    b->msg = *m;
    b->env = *env;
    *m = NULL;
    *env = NULL;
    r->bcast = b;
    return 1;
}

void mbcast_queue_relays(mreq_t *r)
{
    mbcast_t *b = r->bcast;
    for (int i = 0; i < r->n; i++) {
        mreq_t *f = b->nodes[i].fetch;
        if (f && f->subs[0].eng) {
            mec_enqueue(f->subs[0].eng, &f->subs[0]);
            mec_pump(r->ctl, f->subs[0].eng);
        }
    }
}

/* ---- the tree at work ----------------------------------------------------- */

/* Child share s (index i) with refs to the parent's URL and its ticket. */
static int make_child(plx_controller_t *c, mreq_t *r, int i, const char *url)
{
    mbcast_t *b = r->bcast;
    const bnode_t *nd = &b->nodes[i];
    for (size_t k = 0; k < b->nkeys; k++) {
        plexa__named_value__init(&b->nv[k]);
        plexa__value__init(&b->val[k]);
        plexa__ref__init(&b->ref[k]);
        b->ref[k].has_engine = 1;
        b->ref[k].engine = r->subs[nd->parent].engine_id;
        b->ref[k].key = b->keys[k];
        b->ref[k].url = (char *)url;
        b->ref[k].has_index = 1;
        b->ref[k].index = (uint32_t)k;
        b->ref[k].has_native = 1;
        b->ref[k].native = 1;
        b->val[k].kind_case = PLEXA__VALUE__KIND_REF;
        b->val[k].ref = &b->ref[k];
        b->nv[k].name = b->keys[k];
        b->nv[k].value = &b->val[k];
        b->nvp[k] = &b->nv[k];
    }
    Plexa__Push push = *b->env->push;
    push.values = b->nvp;
    Plexa__Envelope env = *b->env;
    env.push = &push;
    plx_msg_t none = {0};
    return mec_make_out(c, &r->subs[i], &none, &env);
}

/* One child of a parent (served: at url) can go now. 1 if it was sent refs. */
static int release_child(plx_controller_t *c, mreq_t *r, int i, const char *url)
{
    sub_t *s = &r->subs[i];
    if (!s->eng || s->held != MEC_HELD)
        return 0;   /* failed meanwhile (its engine died, a revocation) */
    mbcast_t *b = r->bcast;
    int refs = url && make_child(c, r, i, url) == PLX_OK;
    if (!refs) {
        plx_msg_destroy(&s->out);
        s->solo = 0;
        if (mec_make_out(c, s, b->msg, b->env) != PLX_OK)
            s->held = MEC_REFS_FAILED;   /* mec_pump fails it, as a ref push's */
    }
    if (s->held == MEC_HELD)
        s->held = 0;
    b->nodes[i].refs = refs;
    return refs;
}

void mbcast_fetched(mreq_t *f)
{
    mreq_t *r = f->parent;
    if (!r)
        return;   /* the push is gone */
    f->parent = NULL;
    plx_controller_t *c = r->ctl;
    mbcast_t *b = r->bcast;
    int p = f->fetch_idx;
    bnode_t *nd = &b->nodes[p];
    nd->fetch = NULL;
    const Plexa__EngineReply *rep = f->subs[0].reply;
    char why[300] = "";
    int ok = !nd->share_failed && !rep->error && rep->serve_url &&
             mserve_accept(c, r->subs[p].engine_id, &nd->sv, rep->serve_url, why,
                           sizeof why) == PLX_OK;
    if (!ok && why[0])
        PLX_WARN("broadcast of %s: %s; its values go through the controller", r->desc, why);
    engine_t **es = calloc((size_t)r->n, sizeof *es);
    int nes = 0;
    for (int i = 0; i < r->n; i++) {
        if (b->nodes[i].parent != p)
            continue;
        char url[600];
        int with_url = ok && mserve_url(&nd->sv, (size_t)b->nodes[i].nth, url,
                                        sizeof url) == PLX_OK;
        engine_t *e = r->subs[i].eng;
        nd->kids_left += release_child(c, r, i, with_url ? url : NULL);
        if (e && es)
            es[nes++] = e;
    }
    if (!nd->kids_left)
        mserve_end(c, r->subs[p].engine_id, &nd->sv);
    for (int i = 0; i < nes; i++)
        mec_pump(c, es[i]);
    if (!es)
        for (int i = 0; i < c->engines_cap; i++)
            if (c->engines[i])
                mec_pump(c, c->engines[i]);
    free(es);
}

/* Send s again, first in its engine's queue, with the values. */
static int resend(sub_t *s)
{
    mreq_t *r = s->req;
    mbcast_t *b = r->bcast;
    engine_t *e = s->eng;
    plx_envelope_free(&s->reply_env);
    plx_msg_destroy(&s->reply_msg);
    s->reply = NULL;
    if (mec_make_out(r->ctl, s, b->msg, b->env) != PLX_OK)
        return 0;   /* its failure stands */
    s->next = e->qhead;
    e->qhead = s;
    if (!e->qtail)
        e->qtail = s;
    return 1;
}

int mbcast_answered(sub_t *s)
{
    mreq_t *r = s->req;
    mbcast_t *b = r->bcast;
    int i = (int)(s - r->subs);
    bnode_t *nd = &b->nodes[i];
    const Plexa__RemoteError *err = s->reply->error;
    if (nd->refs) {
        nd->refs = 0;
        bnode_t *pa = &b->nodes[nd->parent];
        if (pa->kids_left && --pa->kids_left == 0)
            mserve_end(r->ctl, r->subs[nd->parent].engine_id, &pa->sv);
        if (err) {
            if (err->ename && strcmp(err->ename, "DirectTransferError") == 0 &&
                !s->eng->no_direct) {
                s->eng->no_direct = 1;
                PLX_WARN("engine %d could not fetch a broadcast from engine %d directly (%s); "
                         "values reach it through the controller from now on", s->engine_id,
                         r->subs[nd->parent].engine_id, err->evalue ? err->evalue : "");
            }
            if (resend(s))
                return 1;
        }
    }
    nd->share_failed = err != NULL;
    return 0;
}

void mbcast_free(mreq_t *r)
{
    mbcast_t *b = r->bcast;
    r->bcast = NULL;
    for (int i = 0; i < r->n; i++) {
        bnode_t *nd = &b->nodes[i];
        if (nd->fetch)
            nd->fetch->parent = NULL;   /* it still runs; its answer goes nowhere */
        mserve_end(r->ctl, r->subs[i].engine_id, &nd->sv);
        mserve_clear(&nd->sv);
    }
    plx_envelope_free(&b->env);
    plx_msg_destroy(&b->msg);
    bcast_free(b);
}
