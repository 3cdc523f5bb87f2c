/* Reference-counted buffers; see plx_buf.h. */
#include "plx_buf.h"

#include <stdlib.h>
#include <string.h>

#include "plexa/error.h"
#include "plx_bufpool.h"
#include "plx_region.h"

plx_buf_t *plx_buf_new(size_t len)
{
    plx_buf_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    size_t got = len;
    /* malloc(0) may return NULL; keep data non-NULL for empty buffers. */
    b->data = len >= PLX_BUF_POOL_MIN ? plx_buf_pool_take(len, &got) : NULL;
    if (!b->data)
        b->data = malloc(len ? len : 1);
    if (!b->data) {
        free(b);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    b->len = len;
    b->cap = got;
    return b;
}

plx_buf_t *plx_buf_copy(const void *data, size_t len)
{
    plx_buf_t *b = plx_buf_new(len);
    if (b && len)
        memcpy(b->data, data, len);
    return b;
}

plx_buf_t *plx_buf_wrap(void *data, size_t len, plx_buf_release_fn release, void *ctx)
{
    plx_buf_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->data = data;
    b->len = len;
    b->cap = len;
    b->release = release;
    b->release_ctx = ctx;
    return b;
}

/* Owned memory we are done with: to the pool if it is large and the pool
 * takes it, else back to malloc. */
static void free_block(uint8_t *data, size_t cap)
{
    if (cap < PLX_BUF_POOL_MIN || !plx_buf_pool_put(data, cap))
        free(data);
}

int plx_buf_reserve_pooled(plx_buf_t *b, size_t cap)
{
    if (b->release)
        return PLX_EINVAL;
    if (cap <= b->cap)
        return 1;
    size_t got;
    uint8_t *pooled = cap >= PLX_BUF_POOL_MIN ? plx_buf_pool_take(cap, &got) : NULL;
    if (!pooled)
        return 0;
    memcpy(pooled, b->data, b->len);
    free_block(b->data, b->cap);
    b->data = pooled;
    b->cap = got;
    return 1;
}

int plx_buf_reserve(plx_buf_t *b, size_t cap)
{
    if (b->release)
        return PLX_EINVAL;
    if (cap <= b->cap || plx_buf_reserve_pooled(b, cap) == 1)
        return PLX_OK;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return PLX_ENOMEM;
    b->data = p;
    b->cap = cap;
    return PLX_OK;
}

plx_buf_t *plx_buf_ref(plx_buf_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void plx_buf_charge(plx_buf_t *b, atomic_uint_fast64_t *budget, uint64_t n)
{
    if (b->budget || !budget)
        return;
    b->budget = budget;
    b->charged = n;
    atomic_fetch_add_explicit(budget, n, memory_order_relaxed);
}

void plx_buf_unref(plx_buf_t **bp)
{
    plx_buf_t *b = *bp;
    if (!b)
        return;
    *bp = NULL;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->budget)
        atomic_fetch_sub_explicit(b->budget, b->charged, memory_order_relaxed);
    if (b->release)
        b->release(b->release_ctx, b->data, b->len);
    else
        free_block(b->data, b->cap);
    plx_region_unref(&b->region);
    free(b);
}
