/*
 * Values dealt out and joined (see plexa/client.h): scatter partitions an
 * array (axis 0) or list over the target engines, one push per engine,
 * each part sharing the original's payload; gather pulls the parts and
 * joins them (arrays concatenated, lists joined, anything else listed).
 * Partitions follow IPython 0.10's block map (plx_block_partition).
 */
#include <stdlib.h>
#include <string.h>

#include "plx_data_priv.h"
#include "plx_direct.h"
#include "plx_value_int.h"

void plx_block_partition(size_t len, size_t k, size_t p, size_t *lo, size_t *count)
{
    /* plexa/_map.py's Map.getPartition (IPython 0.10's block map). */
    if (k == 0 || p >= k) {
        *lo = *count = 0;
        return;
    }
    size_t rem = len % k, base = len / k;
    if (p < rem) {
        *lo = p * (base + 1);
        *count = base + 1;
    } else {
        *lo = p * base + rem;
        *count = base;
    }
}

/* The engines t names, in order (all: the registered ones). */
static int target_ids(plx_client_t *c, const plx_targets_t *t, int32_t **ids, size_t *n,
                      plx_err_t *err)
{
    if (!t || t->all) {
        int rc = plx_client_get_ids(c, ids, n, err);
        if (rc == PLX_OK && *n == 0)
            rc = plx_err_set(err, PLX_ENOENGINES, "no engines are registered");
        return rc;
    }
    if (t->n == 0)
        return plx_err_set(err, PLX_EINVAL, "no target engines");
    *ids = malloc(t->n * sizeof **ids);
    if (!*ids)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for %zu targets", t->n);
    memcpy(*ids, t->ids, t->n * sizeof **ids);
    *n = t->n;
    return PLX_OK;
}

/* Items [lo, lo+count) of an array (axis 0) or list as a value sharing
 * the original's payloads. */
static plx_value_t *part_of(const plx_value_t *v, size_t lo, size_t count, plx_err_t *err)
{
    if (v->kind == PLX_VALUE_ARRAY) {
        size_t rows = v->u.arr.shape[0];
        size_t row = rows ? v->u.arr.nbytes / rows : 0;
        uint64_t shape[PLX_ARRAY_MAX_NDIM];
        for (size_t i = 0; i < v->u.arr.ndim; i++)
            shape[i] = v->u.arr.shape[i];
        shape[0] = count;
        return plx_value_array_over(v->u.arr.buf, v->u.arr.offset + lo * row, count * row,
                                    v->u.arr.dtype_str, v->u.arr.ndim, shape, 0, err);
    }
    /* A list borrowing the items: only read (to the wire). */
    plx_value_t *l = plx_value_list_borrowing(v->u.list.items + lo, count, 0);
    if (!l)
        plx_err_set(err, PLX_ENOMEM, "out of memory for a list part");
    return l;
}

static void part_free(plx_value_t **p)
{
    if (*p && (*p)->kind == PLX_VALUE_LIST)
        plx_value_borrowing_free(p);
    plx_value_destroy(p);
}

int plx_scatter_submit(plx_client_t *c, const plx_targets_t *t, const char *name,
                          const plx_value_t *value, int direct, plx_request_t ***reqs_out,
                          size_t *k_out, plx_err_t *err)
{
    *reqs_out = NULL;
    *k_out = 0;
    if (!name || !*name)
        return plx_err_set(err, PLX_EINVAL, "scatter: no name");
    if (!value || !((value->kind == PLX_VALUE_ARRAY && value->u.arr.ndim >= 1 &&
                     !value->u.arr.fortran) || value->kind == PLX_VALUE_LIST))
        return plx_err_set(err, PLX_EINVAL, "scatter: '%s' must be a C-order array of at least "
                           "one dimension, or a list, not %s", name,
                           value ? (value->kind == PLX_VALUE_ARRAY ? "a Fortran-order or 0-d array"
                                                                   : plx_value_kind_name(value->kind))
                                 : "NULL");
    int32_t *ids = NULL;
    size_t k = 0;
    int rc = target_ids(c, t, &ids, &k, err);
    if (rc != PLX_OK)
        return rc;
    size_t len = value->kind == PLX_VALUE_ARRAY ? value->u.arr.shape[0] : value->u.list.n;
    plx_request_t **reqs = calloc(k, sizeof *reqs);
    if (!reqs) {
        free(ids);
        return plx_err_set(err, PLX_ENOMEM, "scatter: out of memory");
    }
    for (size_t i = 0; rc == PLX_OK && i < k; i++) {
        size_t lo, count;
        plx_block_partition(len, k, i, &lo, &count);
        plx_value_t *part = part_of(value, lo, count, err);
        if (!part) {
            rc = err ? err->code : PLX_ENOMEM;
            break;
        }
        plx_targets_t one = { .ids = &ids[i], .n = 1 };
        const plx_value_t *pv = part;
        rc = direct ? plx_rq_push_direct(c, &one, &name, &pv, 1, &reqs[i], err)
                    : plx_rq_push(c, &one, &name, &pv, 1, &reqs[i], err);
        part_free(&part);
    }
    free(ids);
    if (rc != PLX_OK) {
        for (size_t i = 0; i < k; i++)
            plx_request_destroy(&reqs[i]);   /* forgotten: their replies are dropped */
        free(reqs);
        return rc;
    }
    *reqs_out = reqs;
    *k_out = k;
    return PLX_OK;
}

int plx_client_scatter(plx_client_t *c, const plx_targets_t *t, const char *name,
                       const plx_value_t *value, plx_err_t *err)
{
    plx_request_t **reqs = NULL;
    size_t k = 0;
    /* Every part is sent before any reply is awaited: the engines work in
     * parallel. */
    int rc = plx_scatter_submit(c, t, name, value, 1, &reqs, &k, err);
    double timeout = plx_client_timeout_get(c);
    for (size_t i = 0; i < k; i++) {
        if (rc == PLX_OK) {
            rc = plx_request_wait(reqs[i], timeout, err);
            if (rc == PLX_OK)
                rc = plx_push_outcome(reqs[i], err);
            if (rc != PLX_OK)
                plx_err_prefix(err, "scatter");
        }
        plx_request_destroy(&reqs[i]);
    }
    free(reqs);
    return rc;
}

/* Join arrays along axis 0 into a new C-order array. */
static plx_value_t *concat_arrays(plx_value_t **parts, size_t n, const char *name, plx_err_t *err)
{
    const plx_value_t *a0 = parts[0];
    size_t total_rows = 0, total_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const plx_value_t *a = parts[i];
        int same = a->u.arr.ndim == a0->u.arr.ndim && a->u.arr.ndim >= 1 &&
                   strcmp(a->u.arr.dtype_str, a0->u.arr.dtype_str) == 0 &&
                   (a->u.arr.ndim < 2 || !a->u.arr.fortran);
        for (size_t d = 1; same && d < a->u.arr.ndim; d++)
            same = a->u.arr.shape[d] == a0->u.arr.shape[d];
        if (!same) {
            plx_err_set(err, PLX_EINVAL, "gather: the parts of '%s' cannot be concatenated "
                        "(part %zu differs in dtype or trailing shape, is 0-d or Fortran-order)",
                        name, i);
            return NULL;
        }
        total_rows += a->u.arr.shape[0];
        total_bytes += a->u.arr.nbytes;
    }
    plx_buf_t *b = plx_buf_new(total_bytes);
    if (!b) {
        plx_err_set(err, PLX_ENOMEM, "gather: out of memory for %zu bytes", total_bytes);
        return NULL;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (parts[i]->u.arr.nbytes)
            memcpy(b->data + off, parts[i]->u.arr.buf->data + parts[i]->u.arr.offset,
                   parts[i]->u.arr.nbytes);
        off += parts[i]->u.arr.nbytes;
    }
    uint64_t shape[PLX_ARRAY_MAX_NDIM];
    for (size_t d = 0; d < a0->u.arr.ndim; d++)
        shape[d] = a0->u.arr.shape[d];
    shape[0] = total_rows;
    plx_value_t *v = plx_value_array_over(b, 0, total_bytes, a0->u.arr.dtype_str,
                                          a0->u.arr.ndim, shape, 0, err);
    plx_buf_unref(&b);
    return v;
}

static int by_engine_id(const void *a, const void *b)
{
    int32_t x = ((const plx_engine_values_t *)a)->engine_id;
    int32_t y = ((const plx_engine_values_t *)b)->engine_id;
    return (x > y) - (x < y);
}

int plx_gather_join(plx_pulled_t *p, int all_targets, const char *name, plx_value_t **out,
                      plx_err_t *err)
{
    int rc = PLX_OK;
    if (all_targets)
        qsort(p->r, p->n, sizeof *p->r, by_engine_id);
    plx_value_t **parts = calloc(p->n ? p->n : 1, sizeof *parts);
    if (!parts)
        return plx_err_set(err, PLX_ENOMEM, "gather: out of memory");
    int all_arrays = p->n > 0, all_lists = p->n > 0;
    for (size_t i = 0; i < p->n; i++) {
        parts[i] = p->r[i].values[0];
        all_arrays = all_arrays && parts[i]->kind == PLX_VALUE_ARRAY;
        all_lists = all_lists && parts[i]->kind == PLX_VALUE_LIST;
    }
    plx_value_t *v = NULL;
    if (all_arrays) {
        v = concat_arrays(parts, p->n, name, err);
        rc = v ? PLX_OK : (err ? err->code : PLX_EINVAL);
    } else {
        /* Lists are joined by moving their items; anything else becomes
         * the list of the parts (moved out of the pull result). */
        v = plx_value_list();
        for (size_t i = 0; v && rc == PLX_OK && i < p->n; i++) {
            if (all_lists) {
                plx_value_t *part = parts[i];
                for (size_t j = 0; rc == PLX_OK && j < part->u.list.n; j++)
                    if (plx_value_list_append(v, &part->u.list.items[j]) != PLX_OK)
                        rc = plx_err_set(err, PLX_ENOMEM, "gather: out of memory");
            } else if (plx_value_list_append(v, &p->r[i].values[0]) != PLX_OK) {
                rc = plx_err_set(err, PLX_ENOMEM, "gather: out of memory");
            }
        }
        if (!v)
            rc = plx_err_set(err, PLX_ENOMEM, "gather: out of memory");
    }
    free(parts);
    if (rc != PLX_OK) {
        plx_value_destroy(&v);
        return rc;
    }
    *out = v;
    return PLX_OK;
}

int plx_client_gather(plx_client_t *c, const plx_targets_t *t, const char *name,
                      plx_value_t **out, plx_err_t *err)
{
    *out = NULL;
    if (!name || !*name)
        return plx_err_set(err, PLX_EINVAL, "gather: no name");
    plx_pulled_t *p = NULL;
    int rc = plx_client_pull(c, t, &name, 1, &p, err);
    if (rc == PLX_OK)
        rc = plx_gather_join(p, !t || t->all, name, out, err);
    else if (rc == PLX_EREMOTE)
        plx_err_prefix(err, "gather");
    plx_pulled_destroy(&p);   /* moved items are NULL there: destroy skips them */
    return rc;
}
