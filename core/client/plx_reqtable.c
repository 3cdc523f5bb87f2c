/* The client's table of pending requests; see plx_request_priv.h. */
#include <stdlib.h>

#include "plx_request_priv.h"

#define FIRST_BUCKETS 64u

static size_t slot(const plx_reqtable_t *t, uint64_t id)
{
    return (size_t)(id & (t->nb - 1));
}

/* Double the bucket array, rehashing every chain. */
static int grow(plx_reqtable_t *t)
{
    size_t nb = t->nb ? t->nb * 2 : FIRST_BUCKETS;
    plx_request_t **b = calloc(nb, sizeof *b);
    if (!b)
        return PLX_ENOMEM;
    plx_reqtable_t bigger = { .b = b, .nb = nb, .n = t->n };
    for (size_t i = 0; i < t->nb; i++) {
        while (t->b[i]) {
            plx_request_t *r = t->b[i];
            t->b[i] = r->next;
            size_t s = slot(&bigger, r->id);
            r->next = b[s];
            b[s] = r;
        }
    }
    free(t->b);
    *t = bigger;
    return PLX_OK;
}

int plx_reqtable_put(plx_reqtable_t *t, plx_request_t *req)
{
    if ((t->nb == 0 || t->n >= t->nb) && grow(t) != PLX_OK)
        return PLX_ENOMEM;
    size_t s = slot(t, req->id);
    req->next = t->b[s];
    t->b[s] = req;
    t->n++;
    return PLX_OK;
}

plx_request_t *plx_reqtable_take(plx_reqtable_t *t, uint64_t id)
{
    if (t->nb == 0)
        return NULL;
    for (plx_request_t **pp = &t->b[slot(t, id)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            plx_request_t *r = *pp;
            *pp = r->next;
            r->next = NULL;
            t->n--;
            return r;
        }
    }
    return NULL;
}

plx_request_t *plx_reqtable_get(const plx_reqtable_t *t, uint64_t id)
{
    if (t->nb == 0)
        return NULL;
    for (plx_request_t *r = t->b[slot(t, id)]; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

plx_request_t *plx_reqtable_pop(plx_reqtable_t *t)
{
    for (size_t i = 0; t->n && i < t->nb; i++) {
        if (t->b[i])
            return plx_reqtable_take(t, t->b[i]->id);
    }
    return NULL;
}

void plx_reqtable_fini(plx_reqtable_t *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}
