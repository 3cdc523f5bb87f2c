/*
 * Direct scatters, the client's half: the pieces of a blocking scatter go
 * from the client to each engine, not through the controller.
 *
 * The client serves each piece itself (plx_serve.h, on its I/O thread's
 * loop, at the address its controller connection leaves from, or on all
 * addresses on the controller's host), with a ticket of its own, and the
 * push it sends says where (Push.served_at): with names alone, or, through
 * shared memory, with the values too. The controller checks the address
 * and sends the engine refs to it (core/controller/plx_mec_direct.c), or
 * the values when the engine is on shared memory; the engine fetches them
 * when it runs the push, as it fetches a plexa.ref's.
 *
 * Nothing is lost when the engine cannot reach the client: it answers
 * DirectTransferError, and the same values are pushed again through the
 * controller (a thread of the client's, as for direct pulls) before the
 * request completes; this client's pushes then go through the controller
 * from then on. Only blocking scatters take this path: the caller waits
 * for the request, so nothing of its own can run on the engine between
 * the failed push and the one again.
 */
#include "plx_direct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_profile.h"
#include "plx_rqb.h"
#include "plx_serve.h"
#include "plx_url.h"

#define DIRECT_MIN   (8u << 20)   /* bytes: as plx_mec_direct.c's, for the same reason */
#define OFFER_TTL_S  60.0         /* an engine that never came (it died) */

struct plx_direct_push {
    plx_msg_t *frame;   /* what is served: an EngineReply of the values, with their buffers */
    char     **names;
    size_t     n;
    char       ticket[PLX_TOKEN_HEX + 1];
};

void plx_direct_push_free(plx_direct_push_t **dpp)
{
    plx_direct_push_t *dp = *dpp;
    if (!dp)
        return;
    *dpp = NULL;
    plx_msg_destroy(&dp->frame);
    for (size_t i = 0; i < dp->n; i++)
        free(dp->names[i]);
    free(dp->names);
    free(dp);
}

/* The frame a peer is served: the push's values as a pull's reply. */
static plx_msg_t *frame_of(const plx_rqb_t *b)
{
    const Plexa__Push *p = &b->body.push;
    Plexa__Value **vals = calloc(p->n_values ? p->n_values : 1, sizeof *vals);
    if (!vals)
        return NULL;
    for (size_t i = 0; i < p->n_values; i++)
        vals[i] = p->values[i]->value;
    Plexa__EngineReply er = PLEXA__ENGINE_REPLY__INIT;
    er.n_values = p->n_values;
    er.values = vals;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_ENGINE_REPLY;
    env.engine_reply = &er;
    plx_msg_t *m = plx_envelope_pack(&env, NULL);
    free(vals);
    for (uint32_t i = 0; m && i < b->bufs->nbufs; i++)
        if (plx_msg_add_buf(m, b->bufs->bufs[i]) != PLX_OK)
            plx_msg_destroy(&m);
    return m;
}

static plx_direct_push_t *dp_new(const plx_rqb_t *b)
{
    const Plexa__Push *p = &b->body.push;
    plx_direct_push_t *dp = calloc(1, sizeof *dp);
    if (!dp || !(dp->names = calloc(p->n_values ? p->n_values : 1, sizeof *dp->names))) {
        free(dp);
        return NULL;
    }
    for (size_t i = 0; i < p->n_values; i++, dp->n++)
        if (!(dp->names[i] = strdup(p->values[i]->name)))
            break;
    plx_err_t err = {0};
    if (dp->n != p->n_values || !(dp->frame = frame_of(b)) ||
        plx_token_new(dp->ticket, &err) != PLX_OK)
        plx_direct_push_free(&dp);
    return dp;
}

/* Whether the push holds a plexa.ref: the controller resolves those, and
 * a served frame may not carry one. */
static int holds_ref(const Plexa__Push *p)
{
    for (size_t i = 0; i < p->n_values; i++)
        if (p->values[i]->value->kind_case == PLEXA__VALUE__KIND_REF)
            return 1;
    return 0;
}

/* Serve b's values (a push to one engine) and say where in the push.
 * NULL, b untouched, when not worth it or not possible. */
static plx_direct_push_t *serve_values(plx_client_t *c, plx_rqb_t *b)
{
    char transport[16], host[64], zeros[320], url[600];
    int only = 1;
    if (!plx_client_direct_wanted(c) || plx_msg_payload(b->bufs) < DIRECT_MIN ||
        holds_ref(&b->body.push) ||
        plx_client_serve_where(c, transport, sizeof transport, host, sizeof host, &only)
            != PLX_OK)
        return NULL;
    plx_direct_push_t *dp = dp_new(b);
    plx_msg_t *offered = dp ? plx_msg_share(dp->frame) : NULL;
    char *ticket = dp ? dp->ticket : NULL;
    plx_err_t err = {0};
    plx_url_t u;
    if (!offered || plx_serve_offer(plx_client_serve(c), transport, host, &ticket, 1,
                                    OFFER_TTL_S, &offered, zeros, sizeof zeros, &err) != PLX_OK) {
        if (err.msg[0])
            PLX_DEBUG("a scatter goes through the controller: %s", err.msg);
        plx_msg_destroy(&offered);
        plx_direct_push_free(&dp);
        return NULL;
    }
    int ok = plx_url_parse(zeros, &u, &err) == PLX_OK;
    if (ok)
        snprintf(u.token, sizeof u.token, "%s", dp->ticket);
    if (!ok || plx_url_format(&u, url, sizeof url, &err) != PLX_OK ||
        plx_rqb_push_served(b, url, only, &err) != PLX_OK) {
        plx_serve_end(plx_client_serve(c), &ticket, 1);
        plx_direct_push_free(&dp);
        return NULL;
    }
    return dp;
}

int plx_rq_push_direct(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       const plx_value_t *const *values, size_t n, plx_request_t **req,
                       plx_err_t *err)
{
    plx_rqb_t b;
    *req = NULL;
    int rc = plx_rqb_init(&b, err);
    if (rc == PLX_OK)
        rc = plx_rqb_push(&b, t, names, values, n, err);
    plx_direct_push_t *dp = rc == PLX_OK && !t->all && t->n == 1 ? serve_values(c, &b) : NULL;
    if (rc == PLX_OK)
        rc = plx_client_submit_direct(c, &b.env, b.bufs->bufs, b.bufs->nbufs, dp, req, err);
    if (rc != PLX_OK && dp) {
        char *ticket = dp->ticket;
        plx_serve_end(plx_client_serve(c), &ticket, 1);
        plx_direct_push_free(&dp);
    }
    plx_rqb_clear(&b);
    return rc;
}

/* ---- the engine's answer -------------------------------------------------------- */

int plx_direct_push_answered(plx_client_t *c, plx_request_t *req, const Plexa__Envelope *env)
{
    plx_direct_push_t *dp = req->dpush;
    char *ticket = dp->ticket;
    plx_serve_end(plx_client_serve(c), &ticket, 1);   /* fetched, or never will be */
    if (env->body_case != PLEXA__ENVELOPE__BODY_MULTI_REPLY || env->multi_reply->n_replies != 1)
        return 0;
    const Plexa__EngineReply *r = env->multi_reply->replies[0];
    if (!r->error || !r->error->ename || strcmp(r->error->ename, "DirectTransferError") != 0)
        return 0;
    PLX_WARN("engine %d could not fetch a scatter's values from this client (%s); they go "
             "through the controller, and so do this client's from now on", (int)r->engine_id,
             r->error->evalue ? r->error->evalue : "");
    plx_client_direct_off(c);
    return 1;
}

/* The values again, through the controller, to the engine that could not
 * fetch them; its reply completes req. */
void plx_direct_push_again(plx_client_t *c, plx_request_t *req, int32_t engine_id,
                           const atomic_int *stop)
{
    plx_direct_push_t *dp = req->dpush;
    plx_err_t err = {0};
    Plexa__Envelope *fenv = plx_envelope_unpack(dp->frame, &err);
    plx_request_t *r = NULL;
    plx_rqb_t b;
    int rc = fenv ? plx_rqb_init(&b, &err) : err.code;
    if (rc == PLX_OK) {
        plx_targets_t t = { .ids = &engine_id, .n = 1 };
        rc = plx_rqb_push_wire(&b, &t, dp->names, fenv->engine_reply->values, dp->n, dp->frame,
                               &err);
        if (rc == PLX_OK)
            rc = plx_rqb_submit(c, &b, &r, &err);
        plx_rqb_clear(&b);
    }
    if (rc == PLX_OK && plx_direct_wait(r, stop) != PLX_OK)
        rc = plx_err_set(&err, PLX_ECLOSED, "the client closed");
    const plx_msg_t *m = NULL;
    const Plexa__Envelope *renv = NULL;
    if (rc == PLX_OK)
        rc = plx_request_reply(r, &m, &renv, &err);
    plx_msg_t *copy = rc == PLX_OK ? plx_msg_share(m) : NULL;
    Plexa__Envelope *cenv = copy ? plx_envelope_unpack(copy, &err) : NULL;
    if (cenv)
        plx_request_complete(req, copy, cenv);
    else {
        plx_msg_destroy(&copy);
        plx_request_fail(req, rc != PLX_OK ? rc : PLX_ENOMEM, rc != PLX_OK ? err.msg
                         : "out of memory pushing a scatter's values again");
    }
    plx_request_destroy(&r);
    plx_envelope_free(&fenv);
}
