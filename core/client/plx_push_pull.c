/*
 * Values to and from engines by name: push and pull (see plexa/client.h).
 * A blocking call is a request of plx_rq.h, a wait, and its outcome; the
 * outcomes are shared with the non-blocking handles (plx_data_priv.h).
 * Values travel by reference: their payloads are the frame's buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "plx_data_priv.h"
#include "plx_value_int.h"

/* PLX_EREMOTE naming the first engine of a reply that raised. */
static int first_remote_error(const char *what, const plx_multi_reply_t *mr, plx_err_t *err)
{
    for (size_t i = 0; i < mr->n; i++) {
        const plx_engine_reply_t *er = &mr->r[i];
        if (er->ename)
            return plx_err_set(err, PLX_EREMOTE, "%s: engine %d raised %s: %s", what,
                               er->engine_id, er->ename, er->evalue);
    }
    return PLX_OK;
}

int plx_push_outcome(plx_request_t *req, plx_err_t *err)
{
    plx_multi_reply_t *mr = NULL;
    int rc = plx_reply_multi(req, &mr, err);
    if (rc == PLX_OK)
        rc = first_remote_error("push", mr, err);
    plx_multi_reply_destroy(&mr);
    return rc;
}

int plx_client_push(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                    const plx_value_t *const *values, size_t n, plx_err_t *err)
{
    plx_request_t *req = NULL;
    int rc = plx_rq_push(c, t, names, values, n, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, plx_client_timeout_get(c), err);
    if (rc == PLX_OK)
        rc = plx_push_outcome(req, err);
    plx_request_destroy(&req);
    return rc;
}

void plx_pulled_destroy(plx_pulled_t **pp)
{
    plx_pulled_t *p = pp ? *pp : NULL;
    if (!p)
        return;
    *pp = NULL;
    for (size_t i = 0; i < p->n; i++) {
        plx_engine_values_t *e = &p->r[i];
        for (size_t j = 0; j < e->n; j++)
            plx_value_destroy(&e->values[j]);
        free(e->values);
        free(e->ename);
        free(e->evalue);
        free(e->traceback);
    }
    free(p->r);
    free(p);
}

/* Move one engine's answer out of the decoded reply into e. */
static int engine_values_take(plx_engine_values_t *e, plx_engine_reply_t *er, size_t nkeys,
                              plx_err_t *err)
{
    e->engine_id = er->engine_id;
    if (er->ename) {
        e->ename = er->ename;
        e->evalue = er->evalue;
        e->traceback = er->traceback;
        er->ename = er->evalue = er->traceback = NULL;
        return PLX_OK;
    }
    if (er->fault)
        return plx_err_set(err, PLX_EPROTO, "%s", er->fault);
    if (er->nvalues != nkeys)
        return plx_err_set(err, PLX_EPROTO, "engine %d answered a pull of %zu names with %zu "
                           "values", e->engine_id, nkeys, er->nvalues);
    e->values = er->values;
    e->n = er->nvalues;
    er->values = NULL;
    er->nvalues = 0;
    return PLX_OK;
}

/* PLX_EREMOTE naming the first engine of a pull that raised. */
static int first_pull_error(const plx_pulled_t *p, plx_err_t *err)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->r[i].ename)
            return plx_err_set(err, PLX_EREMOTE, "pull: engine %d raised %s: %s",
                               p->r[i].engine_id, p->r[i].ename, p->r[i].evalue);
    return PLX_OK;
}

int plx_pull_outcome(plx_request_t *req, size_t nkeys, plx_pulled_t **out, plx_err_t *err)
{
    plx_multi_reply_t *mr = NULL;
    *out = NULL;
    int rc = plx_reply_multi(req, &mr, err);
    if (rc != PLX_OK)
        return rc;
    plx_pulled_t *p = calloc(1, sizeof *p);
    if (p && mr->n && !(p->r = calloc(mr->n, sizeof *p->r))) {
        free(p);
        p = NULL;
    }
    if (!p)
        rc = plx_err_set(err, PLX_ENOMEM, "out of memory for %zu results", mr->n);
    for (size_t i = 0; rc == PLX_OK && i < mr->n; i++) {
        p->n++;
        rc = engine_values_take(&p->r[i], &mr->r[i], nkeys, err);
    }
    plx_multi_reply_destroy(&mr);
    if (rc != PLX_OK) {
        plx_pulled_destroy(&p);
        return rc;
    }
    *out = p;
    return first_pull_error(p, err);
}

int plx_client_pull(plx_client_t *c, const plx_targets_t *t, const char *const *names, size_t n,
                    plx_pulled_t **out, plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = plx_rq_pull(c, t, names, n, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, plx_client_timeout_get(c), err);
    if (rc == PLX_OK)
        rc = plx_pull_outcome(req, n, out, err);
    plx_request_destroy(&req);
    return rc;
}
