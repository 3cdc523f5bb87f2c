/*
 * TaskSubmit, the one request whose building is more than filling fields
 * (see plx_rq.h, plx_rqb.h).
 *
 * Each task's values index its own run of frame buffers (TaskSpec
 * buf_base/buf_count), which the controller keeps with the task and
 * sends along with it; a recovery spec indexes relative to its parent's
 * run (its buffers are part of the parent's). Values are converted into
 * a scratch list first, so their indices are local from the start; the
 * scratch buffers are then appended to the frame -- or, when they are
 * exactly the previous task's buffers, that run is shared (controller
 * and engine only read them). A value passed at the same position of
 * several tasks (the same plx_value_t: a map's function) is converted
 * once and its buffers reused, so a big map costs one pickle of its
 * function, not one per task. Everything stays zero copy.
 */
#include <stdlib.h>
#include <string.h>

#include "plx_request_priv.h"
#include "plx_rqb.h"
#include "plx_value_int.h"

#define RECENT 8   /* cache entries searched per lookup */

typedef struct cache_entry {
    const plx_value_t *v;
    uint32_t           offset;   /* the local buffer offset it was converted at */
    Plexa__Value      *w;
    plx_buf_t        **bufs;     /* references */
    uint32_t           nbufs;
} cache_entry_t;

typedef struct task_ctx {
    plx_rqb_t     *b;
    plx_msg_t     *scratch;   /* the current task's buffers, numbered locally */
    cache_entry_t *cache;
    size_t         ncache, capcache;
    size_t         recent[RECENT];
    int            nrecent, next_recent;
    plx_buf_t    **prev;      /* the previous task's buffers ... */
    uint32_t       nprev;
    uint32_t       prev_base; /* ... at this index of the frame */
    plx_err_t     *err;
} task_ctx_t;

static void ctx_clear(task_ctx_t *x)
{
    for (size_t i = 0; i < x->ncache; i++) {
        for (uint32_t j = 0; j < x->cache[i].nbufs; j++)
            plx_buf_unref(&x->cache[i].bufs[j]);
        free(x->cache[i].bufs);
    }
    free(x->cache);
    free(x->prev);
    plx_msg_destroy(&x->scratch);
}

static int nomem(task_ctx_t *x)
{
    return plx_err_set(x->err, PLX_ENOMEM, "task submission: out of memory");
}

/* ---- values ------------------------------------------------------------------ */

/* Worth converting once: anything but inline scalars and strings. */
static int cacheable(const plx_value_t *v)
{
    return v && (v->kind == PLX_VALUE_BYTES || v->kind == PLX_VALUE_ARRAY ||
                 v->kind == PLX_VALUE_LIST || v->kind == PLX_VALUE_PICKLE);
}

static cache_entry_t *cache_find(task_ctx_t *x, const plx_value_t *v, uint32_t offset)
{
    for (int i = 0; i < x->nrecent; i++) {
        cache_entry_t *c = &x->cache[x->recent[i]];
        if (c->v == v && c->offset == offset)
            return c;
    }
    return NULL;
}

static int cache_add(task_ctx_t *x, const plx_value_t *v, uint32_t offset, Plexa__Value *w)
{
    if (x->ncache == x->capcache) {
        size_t cap = x->capcache ? x->capcache * 2 : 16;
        cache_entry_t *c = realloc(x->cache, cap * sizeof *c);
        if (!c)
            return nomem(x);
        x->cache = c;
        x->capcache = cap;
    }
    uint32_t n = x->scratch->nbufs - offset;
    cache_entry_t *c = &x->cache[x->ncache];
    c->bufs = calloc(n ? n : 1, sizeof *c->bufs);
    if (!c->bufs)
        return nomem(x);
    for (uint32_t i = 0; i < n; i++)
        c->bufs[i] = plx_buf_ref(x->scratch->bufs[offset + i]);
    c->nbufs = n;
    c->v = v;
    c->offset = offset;
    c->w = w;
    if (x->nrecent < RECENT) {
        x->recent[x->nrecent++] = x->ncache;
    } else {
        x->recent[x->next_recent] = x->ncache;
        x->next_recent = (x->next_recent + 1) % RECENT;
    }
    x->ncache++;
    return PLX_OK;
}

/* v in wire form, its buffers appended to the scratch list; possibly
 * shared with an earlier task. NULL with x->err set. */
static Plexa__Value *convert(task_ctx_t *x, const plx_value_t *v)
{
    uint32_t offset = x->scratch->nbufs;
    int cache = cacheable(v);
    cache_entry_t *c = cache ? cache_find(x, v, offset) : NULL;
    if (c) {
        for (uint32_t i = 0; i < c->nbufs; i++)
            if (plx_msg_add_buf(x->scratch, c->bufs[i]) != PLX_OK) {
                nomem(x);
                return NULL;
            }
        return c->w;
    }
    Plexa__Value *w = plx_rqb_value(x->b, v, x->scratch, x->err);
    if (w && cache && cache_add(x, v, offset, w) != PLX_OK)
        return NULL;
    return w;
}

/* ---- specs ------------------------------------------------------------------- */

static int fill_spec(task_ctx_t *x, const plx_task_spec_t *in, Plexa__TaskSpec *s,
                     Plexa__TaskSpec *rec, size_t index);

/* The recovery spec in, its values in a scratch list of their own that is
 * then appended to the parent's (it indexes relative to the parent's run). */
static int fill_recovery(task_ctx_t *x, const plx_task_spec_t *in, Plexa__TaskSpec *rec,
                         size_t index)
{
    plx_msg_t *parent = x->scratch, *own = plx_msg_new(0);
    if (!own)
        return nomem(x);
    x->scratch = own;
    int rc = fill_spec(x, in, rec, NULL, index);
    x->scratch = parent;
    uint32_t start = parent->nbufs;
    for (uint32_t i = 0; rc == PLX_OK && i < own->nbufs; i++)
        if (plx_msg_add_buf(parent, own->bufs[i]) != PLX_OK)
            rc = nomem(x);
    rec->has_buf_base = 1;
    rec->buf_base = start;
    rec->has_buf_count = 1;
    rec->buf_count = own->nbufs;
    plx_msg_destroy(&own);
    return rc;
}

static void fill_flag(int v, protobuf_c_boolean *has, protobuf_c_boolean *out)
{
    if (v == PLX_SPEC_UNSET)
        return;
    *has = 1;
    *out = v != 0;
}

static int fill_spec(task_ctx_t *x, const plx_task_spec_t *in, Plexa__TaskSpec *s,
                     Plexa__TaskSpec *rec, size_t index)
{
    plexa__task_spec__init(s);
    if (!in->kind || !*in->kind)
        return plx_err_set(x->err, PLX_EINVAL, "task spec %zu: no kind", index);
    s->kind = (char *)in->kind;
    if (in->elements >= 0 && in->elements <= UINT32_MAX) {
        s->has_elements = 1;
        s->elements = (uint32_t)in->elements;
    }
    if (in->nargs && !in->args)
        return plx_err_set(x->err, PLX_EINVAL, "task spec %zu: args is NULL", index);
    Plexa__Value **argv = plx_rqb_alloc(x->b, in->nargs, sizeof *argv);
    if (!argv)
        return nomem(x);
    for (size_t i = 0; i < in->nargs; i++)
        if (!(argv[i] = convert(x, in->args[i])))
            return x->err ? x->err->code : PLX_ERR;
    s->n_args = in->nargs;
    s->args = argv;
    fill_flag(in->clear_before, &s->has_clear_before, &s->clear_before);
    fill_flag(in->clear_after, &s->has_clear_after, &s->clear_after);
    s->has_retries = in->has_retries != 0;
    s->retries = in->retries;
    if (in->depend && !(s->depend = convert(x, in->depend)))
        return x->err ? x->err->code : PLX_ERR;
    s->n_after = in->nafter;
    s->after = (uint64_t *)in->after;   /* only read while packing */
    if (!in->recovery)
        return PLX_OK;
    if (!rec)
        return plx_err_set(x->err, PLX_EINVAL, "task spec %zu: a recovery task cannot have a "
                           "recovery task of its own", index);
    int rc = fill_recovery(x, in->recovery, rec, index);
    if (rc == PLX_OK)
        s->recovery = rec;
    return rc;
}

/* Give the finished task s its run of frame buffers (sharing the previous
 * task's when identical) and empty the scratch list. */
static int place_buffers(task_ctx_t *x, Plexa__TaskSpec *s)
{
    plx_msg_t *sc = x->scratch, *all = x->b->bufs;
    uint32_t n = sc->nbufs, base = 0;
    if (n > 0 && n == x->nprev && memcmp(x->prev, sc->bufs, n * sizeof *sc->bufs) == 0) {
        base = x->prev_base;
    } else if (n > 0) {
        base = all->nbufs;
        plx_buf_t **prev = realloc(x->prev, n * sizeof *prev);
        if (!prev)
            return nomem(x);
        x->prev = prev;
        for (uint32_t i = 0; i < n; i++) {
            if (plx_msg_add_buf(all, sc->bufs[i]) != PLX_OK)
                return nomem(x);
            x->prev[i] = sc->bufs[i];
        }
        x->nprev = n;
        x->prev_base = base;
    }
    s->has_buf_base = 1;
    s->buf_base = base;
    s->has_buf_count = 1;
    s->buf_count = n;
    for (uint32_t i = 0; i < n; i++)
        plx_buf_unref(&sc->bufs[i]);
    sc->nbufs = 0;
    return PLX_OK;
}

plx_task_spec_t plx_task_spec_init(void)
{
    return (plx_task_spec_t){ .elements = -1, .clear_before = PLX_SPEC_UNSET,
                              .clear_after = PLX_SPEC_UNSET };
}

int plx_rqb_task_submit(plx_rqb_t *b, const plx_task_spec_t *specs, size_t n,
                        uint64_t first_id, plx_err_t *err)
{
    plx_err_t e = {0};
    task_ctx_t x = { .b = b, .scratch = plx_msg_new(0), .err = &e };
    Plexa__TaskSpec *specv = plx_rqb_alloc(b, n, sizeof *specv);
    Plexa__TaskSpec *recv = plx_rqb_alloc(b, n, sizeof *recv);
    Plexa__TaskSpec **ptrs = plx_rqb_alloc(b, n, sizeof *ptrs);
    int rc = x.scratch && specv && recv && ptrs ? PLX_OK : nomem(&x);
    if (rc == PLX_OK && n && !specs)
        rc = plx_err_set(&e, PLX_EINVAL, "task submission: specs is NULL");
    for (size_t i = 0; rc == PLX_OK && i < n; i++) {
        rc = fill_spec(&x, &specs[i], &specv[i], &recv[i], i);
        if (rc == PLX_OK)
            rc = place_buffers(&x, &specv[i]);
        ptrs[i] = &specv[i];
    }
    plx_limits_t lim = plx_limits_default();
    if (rc == PLX_OK && b->bufs->nbufs > lim.max_bufs)
        rc = plx_err_set(&e, PLX_ELIMIT, "these %zu tasks need %u frame buffers, over the "
                         "limit of %u per message: submit them in smaller batches", n,
                         (unsigned)b->bufs->nbufs, (unsigned)lim.max_bufs);
    ctx_clear(&x);
    if (rc != PLX_OK) {
        if (err)
            *err = e;
        return rc;
    }
    Plexa__TaskSubmit *ts = &b->body.task_submit;
    plexa__task_submit__init(ts);
    ts->n_tasks = n;
    ts->tasks = ptrs;
    ts->has_first_id = ts->has_quiet = first_id != 0;
    ts->first_id = first_id;
    ts->quiet = first_id != 0;
    b->env.body_case = PLEXA__ENVELOPE__BODY_TASK_SUBMIT;
    b->env.task_submit = ts;
    return PLX_OK;
}
