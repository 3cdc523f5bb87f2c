/*
 * Values over the wire: push, pull, scatter, gather, string tasks, and
 * the non-blocking handles (plx_pending_t); see plexa/client.h.
 *
 * Everything here is a request of the request layer (plx_client_submit
 * and plx_request_*): a blocking call is a submit followed by a wait and a
 * decode, a non-blocking one hands out the request inside a plx_pending_t
 * and decodes when asked. Values become wire Values whose payloads are
 * referenced by the frame, never copied (plx_value.c).
 */
#include <ev.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "plx_request_priv.h"
#include "plx_time.h"
#include "plx_value_int.h"

/* ---- helpers ----------------------------------------------------------- */

static void fill_targets(Plexa__Targets *tg, const plx_targets_t *t)
{
    plexa__targets__init(tg);
    if (!t || t->all) {
        tg->has_all = 1;
        tg->all = 1;
    } else {
        tg->n_ids = t->n;
        tg->ids = (int32_t *)t->ids;   /* only read while packing */
    }
}

static int check_names(const char *what, const char *const *names, size_t n, plx_err_t *err)
{
    if (n && !names)
        return plx_err_set(err, PLX_EINVAL, "%s: names is NULL", what);
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !*names[i])
            return plx_err_set(err, PLX_EINVAL, "%s: name %zu is %s", what, i,
                               names[i] ? "empty" : "NULL");
    return PLX_OK;
}

static char *dup_str(const char *s)
{
    return strdup(s ? s : "");
}

/* The reply envelope of a completed request, checked to carry body. */
static int reply_of(plx_request_t *req, Plexa__Envelope__BodyCase body, const char *what,
                    const plx_msg_t **msg, const Plexa__Envelope **env, plx_err_t *err)
{
    int rc = plx_request_reply(req, msg, env, err);
    if (rc != PLX_OK)
        return rc;
    if ((*env)->body_case != body)
        return plx_err_set(err, PLX_EPROTO, "controller answered request %llu with %s, not %s",
                           (unsigned long long)plx_request_id(req),
                           (*env)->body_case ? "another message" : "an empty message", what);
    return PLX_OK;
}

/* The message's buffers from base on, checked. */
static int reply_bufs(const plx_msg_t *m, uint32_t base, plx_buf_t *const **bufs, size_t *n,
                      plx_err_t *err)
{
    if (base > m->nbufs)
        return plx_err_set(err, PLX_EPROTO, "reply names buffer %u of %u", (unsigned)base,
                           (unsigned)m->nbufs);
    *bufs = m->bufs + base;
    *n = m->nbufs - base;
    return PLX_OK;
}

/* ---- push -------------------------------------------------------------- */

/* Build and submit a Push of names/values to t. */
static int submit_push(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       const plx_value_t *const *values, size_t n, plx_request_t **req,
                       plx_err_t *err)
{
    *req = NULL;
    int rc = check_names("push", names, n, err);
    if (rc != PLX_OK)
        return rc;
    if (n && !values)
        return plx_err_set(err, PLX_EINVAL, "push: values is NULL");
    plx_msg_t *bufs = plx_msg_new(0);   /* a list of buffers, never sent itself */
    Plexa__Value *wv = calloc(n ? n : 1, sizeof *wv);
    Plexa__NamedValue *nv = calloc(n ? n : 1, sizeof *nv);
    Plexa__NamedValue **nvp = calloc(n ? n : 1, sizeof *nvp);
    size_t built = 0;
    if (!bufs || !wv || !nv || !nvp) {
        rc = plx_err_set(err, PLX_ENOMEM, "push: out of memory");
        goto out;
    }
    for (; built < n; built++) {
        rc = plx_value_to_wire(values[built], &wv[built], bufs, err);
        if (rc != PLX_OK) {
            built++;   /* partly filled: cleared below */
            plx_err_prefix(err, "push");
            goto out;
        }
        plexa__named_value__init(&nv[built]);
        nv[built].name = (char *)names[built];
        nv[built].value = &wv[built];
        nvp[built] = &nv[built];
    }
    Plexa__Targets tg;
    fill_targets(&tg, t);
    Plexa__Push push = PLEXA__PUSH__INIT;
    push.n_values = n;
    push.values = nvp;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.targets = &tg;
    env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
    env.push = &push;
    rc = plx_client_submit(c, &env, bufs->bufs, bufs->nbufs, req, err);
out:
    for (size_t i = 0; wv && i < built; i++)
        plx_value_wire_clear(&wv[i]);
    free(wv);
    free(nv);
    free(nvp);
    plx_msg_destroy(&bufs);   /* the frame holds its own references */
    return rc;
}

/* PLX_EREMOTE naming the first engine of a MultiReply that raised. */
static int first_remote_error(const char *what, const Plexa__MultiReply *mr, plx_err_t *err)
{
    for (size_t i = 0; i < mr->n_replies; i++) {
        const Plexa__EngineReply *er = mr->replies[i];
        if (er->error)
            return plx_err_set(err, PLX_EREMOTE, "%s: engine %d raised %s: %s", what,
                               er->has_engine_id ? er->engine_id : -1,
                               er->error->ename && *er->error->ename ? er->error->ename
                                                                     : "RemoteError",
                               er->error->evalue ? er->error->evalue : "");
    }
    return PLX_OK;
}

static int push_outcome(plx_request_t *req, plx_err_t *err)
{
    const Plexa__Envelope *env;
    const plx_msg_t *m;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_MULTI_REPLY, "a multi-engine reply", &m, &env,
                      err);
    return rc == PLX_OK ? first_remote_error("push", env->multi_reply, err) : rc;
}

int plx_client_push(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                    const plx_value_t *const *values, size_t n, plx_err_t *err)
{
    plx_request_t *req = NULL;
    int rc = submit_push(c, t, names, values, n, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, plx_client_timeout_get(c), err);
    if (rc == PLX_OK)
        rc = push_outcome(req, err);
    plx_request_destroy(&req);
    return rc;
}

/* ---- pull -------------------------------------------------------------- */

static int submit_pull(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       size_t n, plx_request_t **req, plx_err_t *err)
{
    *req = NULL;
    int rc = check_names("pull", names, n, err);
    if (rc != PLX_OK)
        return rc;
    Plexa__Targets tg;
    fill_targets(&tg, t);
    Plexa__Pull pull = PLEXA__PULL__INIT;
    pull.n_keys = n;
    pull.keys = (char **)names;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.targets = &tg;
    env.body_case = PLEXA__ENVELOPE__BODY_PULL;
    env.pull = &pull;
    return plx_client_submit(c, &env, NULL, 0, req, err);
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

static int engine_values_fill(plx_engine_values_t *e, const Plexa__EngineReply *er,
                              const plx_msg_t *m, size_t nkeys, plx_err_t *err)
{
    e->engine_id = er->has_engine_id ? er->engine_id : -1;
    if (er->error) {
        e->ename = dup_str(er->error->ename && *er->error->ename ? er->error->ename
                                                                 : "RemoteError");
        e->evalue = dup_str(er->error->evalue);
        e->traceback = dup_str(er->error->traceback);
        if (!e->ename || !e->evalue || !e->traceback)
            return plx_err_set(err, PLX_ENOMEM, "out of memory copying an error");
        return PLX_OK;
    }
    if (er->n_values != nkeys)
        return plx_err_set(err, PLX_EPROTO, "engine %d answered a pull of %zu names with %zu "
                           "values", e->engine_id, nkeys, er->n_values);
    plx_buf_t *const *bufs = NULL;
    size_t nbufs = 0;
    int rc = reply_bufs(m, er->has_buf_base ? er->buf_base : 0, &bufs, &nbufs, err);
    if (rc != PLX_OK)
        return rc;
    e->values = calloc(nkeys ? nkeys : 1, sizeof *e->values);
    if (!e->values)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for %zu values", nkeys);
    for (size_t j = 0; j < nkeys; j++) {
        e->values[j] = plx_value_from_wire(er->values[j], bufs, nbufs, err);
        if (!e->values[j])
            return err ? err->code : PLX_EPROTO;
        e->n++;
    }
    return PLX_OK;
}

static int pull_outcome(plx_request_t *req, size_t nkeys, plx_pulled_t **out, plx_err_t *err)
{
    const Plexa__Envelope *env;
    const plx_msg_t *m;
    *out = NULL;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_MULTI_REPLY, "a multi-engine reply", &m, &env,
                      err);
    if (rc != PLX_OK)
        return rc;
    const Plexa__MultiReply *mr = env->multi_reply;
    plx_pulled_t *p = calloc(1, sizeof *p);
    if (p && mr->n_replies)
        p->r = calloc(mr->n_replies, sizeof *p->r);
    if (!p || (mr->n_replies && !p->r)) {
        free(p);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for %zu results", mr->n_replies);
    }
    for (size_t i = 0; i < mr->n_replies; i++) {
        p->n++;
        rc = engine_values_fill(&p->r[i], mr->replies[i], m, nkeys, err);
        if (rc != PLX_OK) {
            plx_pulled_destroy(&p);
            return rc;
        }
    }
    *out = p;
    return first_remote_error("pull", mr, err);
}

int plx_client_pull(plx_client_t *c, const plx_targets_t *t, const char *const *names, size_t n,
                    plx_pulled_t **out, plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = submit_pull(c, t, names, n, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, plx_client_timeout_get(c), err);
    if (rc == PLX_OK)
        rc = pull_outcome(req, n, out, err);
    plx_request_destroy(&req);
    return rc;
}

/* ---- scatter and gather -------------------------------------------------- */

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
    /* A list borrowing the items: only read (to the wire), then its item
     * array is freed without the items. */
    plx_value_t *l = plx_value_alloc(PLX_VALUE_LIST);
    if (!l) {
        plx_err_set(err, PLX_ENOMEM, "out of memory for a list part");
        return NULL;
    }
    l->u.list.items = v->u.list.items + lo;
    l->u.list.n = count;
    l->u.list.cap = 0;   /* marks "borrowed" for part_free */
    return l;
}

static void part_free(plx_value_t **p)
{
    if (*p && (*p)->kind == PLX_VALUE_LIST && (*p)->u.list.cap == 0) {
        free(*p);
        *p = NULL;
    }
    plx_value_destroy(p);
}

/* Submit one push per target engine with its block of value; on PLX_OK
 * *reqs holds *k requests (malloc'd array, the caller's). */
static int scatter_submit(plx_client_t *c, const plx_targets_t *t, const char *name,
                          const plx_value_t *value, plx_request_t ***reqs_out, size_t *k_out,
                          plx_err_t *err)
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
        rc = submit_push(c, &one, &name, &pv, 1, &reqs[i], err);
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
    int rc = scatter_submit(c, t, name, value, &reqs, &k, err);
    double timeout = plx_client_timeout_get(c);
    for (size_t i = 0; i < k; i++) {
        if (rc == PLX_OK) {
            rc = plx_request_wait(reqs[i], timeout, err);
            if (rc == PLX_OK)
                rc = push_outcome(reqs[i], err);
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

/* Join the parts of a gather (consumed: moved out of p). With all_targets
 * the parts are put in engine id order first, the order in which scatter
 * deals them. */
static int join_parts(plx_pulled_t *p, int all_targets, const char *name, plx_value_t **out,
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
        rc = join_parts(p, !t || t->all, name, out, err);
    else if (rc == PLX_EREMOTE)
        plx_err_prefix(err, "gather");
    plx_pulled_destroy(&p);   /* moved items are NULL there: destroy skips them */
    return rc;
}

/* ---- tasks ----------------------------------------------------------------- */

/* A tuple (name, value) on the wire, for a string task's push. name is
 * borrowed (it outlives the packing); cleared by plx_value_wire_clear. */
static int pair_to_wire(const char *name, const plx_value_t *value, Plexa__Value *out,
                        plx_msg_t *bufs, plx_err_t *err)
{
    plexa__value__init(out);
    Plexa__ValueList *l = malloc(sizeof *l);
    Plexa__Value **items = calloc(2, sizeof *items);
    if (l)
        plexa__value_list__init(l);
    if (items) {
        items[0] = malloc(sizeof **items);
        items[1] = malloc(sizeof **items);
    }
    if (!l || !items || !items[0] || !items[1]) {
        if (items) {
            free(items[0]);
            free(items[1]);
        }
        free(items);
        free(l);
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    }
    l->items = items;
    l->n_items = 2;
    l->has_tuple = 1;
    l->tuple = 1;
    out->kind_case = PLEXA__VALUE__KIND_LIST;   /* from here on, clear frees it */
    out->list = l;
    plexa__value__init(items[0]);
    items[0]->kind_case = PLEXA__VALUE__KIND_STR;
    items[0]->str = (char *)name;
    return plx_value_to_wire(value, items[1], bufs, err);
}

int plx_client_task_submit_string(plx_client_t *c, const char *code,
                                  const char *const *push_names,
                                  const plx_value_t *const *push_values, size_t n_push,
                                  const char *const *pull_names, size_t n_pull,
                                  uint64_t *task_id, plx_err_t *err)
{
    if (!code)
        return plx_err_set(err, PLX_EINVAL, "string task: code is NULL");
    if (plx_client_role_get(c) != PLX_CLIENT_ROLE_TASK)
        return plx_err_set(err, PLX_EINVAL, "string task: this client is not connected to the "
                           "task capability (use plx_client_connect_role with "
                           "PLX_CLIENT_ROLE_TASK)");
    int rc = check_names("string task push", push_names, n_push, err);
    if (rc == PLX_OK)
        rc = check_names("string task pull", pull_names, n_pull, err);
    if (rc != PLX_OK)
        return rc;
    if (n_push && !push_values)
        return plx_err_set(err, PLX_EINVAL, "string task: push values is NULL");

    /* The engine reads (code, push, pull): push as anything dict() takes
     * (here a list of (name, value) tuples, since a dict has no native
     * form; None when empty, as the Python client sends it), pull as a
     * list of names. */
    plx_msg_t *bufs = plx_msg_new(0);
    Plexa__Value args[3], *argp[3] = { &args[0], &args[1], &args[2] };
    Plexa__Value *pairs = calloc(n_push ? n_push : 1, sizeof *pairs);
    Plexa__Value **pairp = calloc(n_push ? n_push : 1, sizeof *pairp);
    Plexa__Value *keys = calloc(n_pull ? n_pull : 1, sizeof *keys);
    Plexa__Value **keyp = calloc(n_pull ? n_pull : 1, sizeof *keyp);
    Plexa__ValueList pushl = PLEXA__VALUE_LIST__INIT, pulll = PLEXA__VALUE_LIST__INIT;
    size_t built = 0;
    for (int i = 0; i < 3; i++)
        plexa__value__init(&args[i]);
    if (!bufs || !pairs || !pairp || !keys || !keyp) {
        rc = plx_err_set(err, PLX_ENOMEM, "string task: out of memory");
        goto out;
    }
    args[0].kind_case = PLEXA__VALUE__KIND_STR;
    args[0].str = (char *)code;
    for (; built < n_push; built++) {
        pairp[built] = &pairs[built];
        if (!push_values[built]) {
            rc = plx_err_set(err, PLX_EINVAL, "string task: push value %zu is NULL", built);
            break;
        }
        rc = pair_to_wire(push_names[built], push_values[built], &pairs[built], bufs, err);
        if (rc != PLX_OK) {
            built++;
            plx_err_prefix(err, "string task push");
            break;
        }
    }
    if (rc != PLX_OK)
        goto out;
    if (n_push) {
        pushl.n_items = n_push;
        pushl.items = pairp;
        args[1].kind_case = PLEXA__VALUE__KIND_LIST;
        args[1].list = &pushl;
    } else {
        args[1].kind_case = PLEXA__VALUE__KIND_NONE;
        args[1].none = 1;
    }
    for (size_t i = 0; i < n_pull; i++) {
        plexa__value__init(&keys[i]);
        keys[i].kind_case = PLEXA__VALUE__KIND_STR;
        keys[i].str = (char *)pull_names[i];
        keyp[i] = &keys[i];
    }
    pulll.n_items = n_pull;
    pulll.items = keyp;
    args[2].kind_case = PLEXA__VALUE__KIND_LIST;
    args[2].list = &pulll;

    Plexa__TaskSpec spec = PLEXA__TASK_SPEC__INIT;
    spec.kind = "string";
    spec.n_args = 3;
    spec.args = argp;
    spec.has_buf_base = 1;
    spec.buf_base = 0;
    spec.has_buf_count = 1;
    spec.buf_count = bufs->nbufs;
    Plexa__TaskSpec *specp = &spec;
    Plexa__TaskSubmit ts = PLEXA__TASK_SUBMIT__INIT;
    ts.n_tasks = 1;
    ts.tasks = &specp;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_SUBMIT;
    env.task_submit = &ts;
    plx_request_t *req = NULL;
    rc = plx_client_submit(c, &env, bufs->bufs, bufs->nbufs, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, plx_client_timeout_get(c), err);
    const Plexa__Envelope *renv;
    const plx_msg_t *m;
    if (rc == PLX_OK)
        rc = reply_of(req, PLEXA__ENVELOPE__BODY_TASK_IDS, "task ids", &m, &renv, err);
    if (rc == PLX_OK) {
        if (!renv->task_ids->has_first || renv->task_ids->count < 1)
            rc = plx_err_set(err, PLX_EPROTO, "the controller assigned no task id");
        else if (task_id)
            *task_id = renv->task_ids->first;
    }
    plx_request_destroy(&req);
out:
    for (size_t i = 0; pairs && i < built; i++)
        plx_value_wire_clear(&pairs[i]);
    free(pairs);
    free(pairp);
    free(keys);
    free(keyp);
    plx_msg_destroy(&bufs);
    return rc;
}

void plx_task_result_destroy(plx_task_result_t **rp)
{
    plx_task_result_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    *rp = NULL;
    for (size_t i = 0; i < r->n; i++) {
        free(r->names[i]);
        plx_value_destroy(&r->values[i]);
    }
    free(r->names);
    free(r->values);
    plx_value_destroy(&r->pulled_pickle);
    free(r->stdout_text);
    free(r->stderr_text);
    free(r->ename);
    free(r->evalue);
    free(r->traceback);
    free(r);
}

const plx_value_t *plx_task_result_get(const plx_task_result_t *r, const char *name)
{
    for (size_t i = 0; r && name && i < r->n; i++)
        if (strcmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

static int submit_task_wait(plx_client_t *c, uint64_t id, int block, plx_request_t **req,
                            plx_err_t *err)
{
    Plexa__TaskWait tw = PLEXA__TASK_WAIT__INIT;
    tw.n_ids = 1;
    tw.ids = &id;
    tw.has_block = 1;
    tw.block = block != 0;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_WAIT;
    env.task_wait = &tw;
    return plx_client_submit(c, &env, NULL, 0, req, err);
}

/* The task's values: [pulled dict, stdout, stderr]. */
static int task_values(plx_task_result_t *r, const Plexa__TaskResult *tr, const plx_msg_t *m,
                       plx_err_t *err)
{
    plx_buf_t *const *bufs = NULL;
    size_t nbufs = 0;
    int rc = reply_bufs(m, tr->has_buf_base ? tr->buf_base : 0, &bufs, &nbufs, err);
    if (rc != PLX_OK || tr->n_values == 0)
        return rc;
    plx_value_t *vals[3] = { NULL, NULL, NULL };
    for (size_t i = 0; i < tr->n_values && i < 3; i++)
        if (!(vals[i] = plx_value_from_wire(tr->values[i], bufs, nbufs, err)))
            rc = err ? err->code : PLX_EPROTO;
    if (rc == PLX_OK) {
        if (vals[1] && vals[1]->kind == PLX_VALUE_STR) {
            free(r->stdout_text);
            r->stdout_text = dup_str(vals[1]->u.s);
        }
        if (vals[2] && vals[2]->kind == PLX_VALUE_STR) {
            free(r->stderr_text);
            r->stderr_text = dup_str(vals[2]->u.s);
        }
        if (vals[0] && vals[0]->kind == PLX_VALUE_PICKLE &&
            plx_unpickle_dict(vals[0], &r->names, &r->values, &r->n, NULL) != PLX_OK) {
            r->pulled_pickle = vals[0];   /* C cannot read it: hand it over opaque */
            vals[0] = NULL;
        }
    }
    for (int i = 0; i < 3; i++)
        plx_value_destroy(&vals[i]);
    return rc;
}

static int status_code(plx_task_status_t s)
{
    switch (s) {
    case PLX_TASK_OK:          return PLX_OK;
    case PLX_TASK_PENDING:     return PLX_EAGAIN;
    case PLX_TASK_FAILED:      return PLX_EREMOTE;
    case PLX_TASK_ABORTED:     return PLX_EABORTED;
    case PLX_TASK_ENGINE_DIED: return PLX_EENGINE;
    case PLX_TASK_TIMEOUT:     return PLX_ETIMEDOUT;
    case PLX_TASK_EVICTED:     return PLX_EEVICTED;
    case PLX_TASK_UNKNOWN:     return PLX_ENOTFOUND;
    }
    return PLX_EPROTO;
}

static int task_outcome(plx_request_t *req, uint64_t id, plx_task_result_t **out, plx_err_t *err)
{
    const Plexa__Envelope *env;
    const plx_msg_t *m;
    *out = NULL;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_TASK_RESULTS, "task results", &m, &env, err);
    if (rc != PLX_OK)
        return rc;
    const Plexa__TaskResult *tr = NULL;
    for (size_t i = 0; i < env->task_results->n_results; i++)
        if (env->task_results->results[i]->task_id == id)
            tr = env->task_results->results[i];
    if (!tr)
        return plx_err_set(err, PLX_EPROTO, "the controller's answer lacks task %llu",
                           (unsigned long long)id);
    plx_task_status_t st = tr->has_status ? (plx_task_status_t)tr->status : PLX_TASK_PENDING;
    if (st == PLX_TASK_PENDING)
        return plx_err_set(err, PLX_EAGAIN, "task %llu has not finished",
                           (unsigned long long)id);
    plx_task_result_t *r = calloc(1, sizeof *r);
    if (!r)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a task result");
    r->task_id = id;
    r->status = st;
    r->engine_id = tr->has_engine_id ? tr->engine_id : -1;
    r->submitted = tr->submitted;
    r->started = tr->started;
    r->completed = tr->completed;
    r->stdout_text = dup_str("");
    r->stderr_text = dup_str("");
    if (tr->error) {
        r->ename = dup_str(tr->error->ename && *tr->error->ename ? tr->error->ename
                                                                 : "RemoteError");
        r->evalue = dup_str(tr->error->evalue);
        r->traceback = dup_str(tr->error->traceback);
    }
    rc = task_values(r, tr, m, err);
    if (rc == PLX_OK && (!r->stdout_text || !r->stderr_text ||
                         (tr->error && (!r->ename || !r->evalue || !r->traceback))))
        rc = plx_err_set(err, PLX_ENOMEM, "out of memory for a task result");
    if (rc != PLX_OK) {
        plx_task_result_destroy(&r);
        return rc;
    }
    *out = r;
    rc = status_code(st);
    if (rc == PLX_OK)
        return rc;
    if (r->ename)
        return plx_err_set(err, rc, "task %llu: engine %d raised %s: %s", (unsigned long long)id,
                           r->engine_id, r->ename, r->evalue);
    return plx_err_set(err, rc, "task %llu: %s", (unsigned long long)id, plx_strerror(rc));
}

int plx_client_task_result(plx_client_t *c, uint64_t task_id, int block, plx_task_result_t **out,
                           plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = submit_task_wait(c, task_id, block, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, plx_client_timeout_get(c), err);
    if (rc == PLX_OK)
        rc = task_outcome(req, task_id, out, err);
    plx_request_destroy(&req);
    return rc;
}

/* ---- non-blocking handles ------------------------------------------------ */

typedef enum { P_EXECUTE, P_PUSH, P_PULL, P_TASK, P_SCATTER, P_GATHER } pkind_t;

/* A handle over one request (several for scatter: one push per engine). */
struct plx_pending {
    plx_request_t **reqs;
    size_t          nreqs;
    pkind_t         kind;
    size_t          nkeys;     /* P_PULL */
    uint64_t        task_id;   /* P_TASK */
    char           *name;      /* P_GATHER */
    int             all;       /* P_GATHER: targets were "all" */
    atomic_size_t   left;      /* requests whose completion was not yet signalled */
    ev_async        async;     /* signalled by the I/O thread, runs in the caller's loop */
    struct ev_loop *loop;
    plx_pending_cb  cb;
    void           *ud;
};

static const char *const pkind_names[] = { "execute", "push", "pull", "task result", "scatter",
                                           "gather" };

/* A handle taking over reqs[0..n) (also on failure, when they are
 * dropped). */
static int pending_new(plx_request_t **reqs, size_t n, pkind_t kind, plx_pending_t **out,
                       plx_err_t *err)
{
    plx_pending_t *p = calloc(1, sizeof *p);
    plx_request_t **copy = calloc(n ? n : 1, sizeof *copy);
    if (!p || !copy) {
        free(p);
        free(copy);
        for (size_t i = 0; i < n; i++)
            plx_request_destroy(&reqs[i]);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a pending handle");
    }
    memcpy(copy, reqs, n * sizeof *copy);
    p->reqs = copy;
    p->nreqs = n;
    p->kind = kind;
    *out = p;
    return PLX_OK;
}

static int pending_one(plx_request_t *req, pkind_t kind, plx_pending_t **out, plx_err_t *err)
{
    return pending_new(&req, 1, kind, out, err);
}

int plx_client_execute_nb(plx_client_t *c, const plx_targets_t *t, const char *code,
                          plx_pending_t **out, plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = plx_client_submit_execute(c, t, code, &req, err);
    return rc == PLX_OK ? pending_one(req, P_EXECUTE, out, err) : rc;
}

int plx_client_push_nb(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       const plx_value_t *const *values, size_t n, plx_pending_t **out,
                       plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = submit_push(c, t, names, values, n, &req, err);
    return rc == PLX_OK ? pending_one(req, P_PUSH, out, err) : rc;
}

int plx_client_pull_nb(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       size_t n, plx_pending_t **out, plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = submit_pull(c, t, names, n, &req, err);
    if (rc == PLX_OK && (rc = pending_one(req, P_PULL, out, err)) == PLX_OK)
        (*out)->nkeys = n;
    return rc;
}

int plx_client_task_result_nb(plx_client_t *c, uint64_t task_id, plx_pending_t **out,
                              plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = submit_task_wait(c, task_id, 1, &req, err);
    if (rc == PLX_OK && (rc = pending_one(req, P_TASK, out, err)) == PLX_OK)
        (*out)->task_id = task_id;
    return rc;
}

int plx_client_scatter_nb(plx_client_t *c, const plx_targets_t *t, const char *name,
                          const plx_value_t *value, plx_pending_t **out, plx_err_t *err)
{
    plx_request_t **reqs = NULL;
    size_t k = 0;
    *out = NULL;
    int rc = scatter_submit(c, t, name, value, &reqs, &k, err);
    if (rc == PLX_OK)
        rc = pending_new(reqs, k, P_SCATTER, out, err);
    free(reqs);
    return rc;
}

int plx_client_gather_nb(plx_client_t *c, const plx_targets_t *t, const char *name,
                         plx_pending_t **out, plx_err_t *err)
{
    *out = NULL;
    if (!name || !*name)
        return plx_err_set(err, PLX_EINVAL, "gather: no name");
    char *copy = strdup(name);
    if (!copy)
        return plx_err_set(err, PLX_ENOMEM, "gather: out of memory");
    plx_request_t *req = NULL;
    int rc = submit_pull(c, t, (const char *const *)&copy, 1, &req, err);
    if (rc == PLX_OK && (rc = pending_one(req, P_GATHER, out, err)) == PLX_OK) {
        (*out)->nkeys = 1;
        (*out)->all = !t || t->all;
        (*out)->name = copy;
        copy = NULL;
    }
    free(copy);
    return rc;
}

static int all_done(plx_pending_t *p)
{
    for (size_t i = 0; i < p->nreqs; i++)
        if (!plx_request_done(p->reqs[i]))
            return 0;
    return 1;
}

int plx_pending_wait(plx_pending_t *p, double timeout_s, plx_err_t *err)
{
    double deadline = timeout_s > 0 ? plx_now_s() + timeout_s : 0;
    for (size_t i = 0; i < p->nreqs; i++) {
        double left = timeout_s < 0 ? -1 : timeout_s == 0 ? 0 : deadline - plx_now_s();
        if (timeout_s > 0 && left <= 0)
            left = 0;
        /* The outcome, failures included, is for the reader: only
         * "still pending" matters here. */
        plx_request_wait(p->reqs[i], left, NULL);
        if (!plx_request_done(p->reqs[i]))
            return plx_err_set(err, PLX_ETIMEDOUT, "the %s has not completed after %.3g s",
                               pkind_names[p->kind], timeout_s);
    }
    return PLX_OK;
}

int plx_pending_poll(plx_pending_t *p)
{
    return all_done(p);
}

/* PLX_OK when p was made by kind and has completed. */
static int reader_check(plx_pending_t *p, pkind_t kind, plx_err_t *err)
{
    if (p->kind != kind)
        return plx_err_set(err, PLX_EINVAL, "this handle is for a %s, not a %s",
                           pkind_names[p->kind], pkind_names[kind]);
    if (!all_done(p))
        return plx_err_set(err, PLX_EAGAIN, "the %s has not completed", pkind_names[kind]);
    return PLX_OK;
}

int plx_pending_execute_results(plx_pending_t *p, plx_results_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = reader_check(p, P_EXECUTE, err);
    return rc == PLX_OK ? plx_request_results(p->reqs[0], out, err) : rc;
}

int plx_pending_push_result(plx_pending_t *p, plx_err_t *err)
{
    int rc = reader_check(p, P_PUSH, err);
    return rc == PLX_OK ? push_outcome(p->reqs[0], err) : rc;
}

int plx_pending_pull_results(plx_pending_t *p, plx_pulled_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = reader_check(p, P_PULL, err);
    return rc == PLX_OK ? pull_outcome(p->reqs[0], p->nkeys, out, err) : rc;
}

int plx_pending_task_result(plx_pending_t *p, plx_task_result_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = reader_check(p, P_TASK, err);
    return rc == PLX_OK ? task_outcome(p->reqs[0], p->task_id, out, err) : rc;
}

int plx_pending_scatter_result(plx_pending_t *p, plx_err_t *err)
{
    int rc = reader_check(p, P_SCATTER, err);
    for (size_t i = 0; rc == PLX_OK && i < p->nreqs; i++)
        if ((rc = push_outcome(p->reqs[i], err)) != PLX_OK)
            plx_err_prefix(err, "scatter");
    return rc;
}

int plx_pending_gather_result(plx_pending_t *p, plx_value_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = reader_check(p, P_GATHER, err);
    if (rc != PLX_OK)
        return rc;
    plx_pulled_t *pulled = NULL;
    rc = pull_outcome(p->reqs[0], 1, &pulled, err);
    if (rc == PLX_OK)
        rc = join_parts(pulled, p->all, p->name, out, err);
    else if (rc == PLX_EREMOTE)
        plx_err_prefix(err, "gather");
    plx_pulled_destroy(&pulled);
    return rc;
}

/* I/O thread (or the registering thread): once the last request is
 * done, wake the caller's loop -- nothing else happens here. */
static void pending_done_io(plx_request_t *req, void *ud)
{
    plx_pending_t *p = ud;
    if (atomic_fetch_sub(&p->left, 1) == 1)
        ev_async_send(p->loop, &p->async);
}

/* The caller's loop thread: deliver. */
static void pending_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    plx_pending_t *p = (plx_pending_t *)((char *)w - offsetof(plx_pending_t, async));
    ev_async_stop(loop, w);   /* one delivery; stops keeping the loop alive */
    plx_pending_cb cb = p->cb;
    p->cb = NULL;
    if (cb)
        cb(p, p->ud);   /* may destroy p */
}

int plx_pending_on_done(plx_pending_t *p, struct ev_loop *loop, plx_pending_cb cb, void *ud,
                        plx_err_t *err)
{
    if (!loop || !cb)
        return plx_err_set(err, PLX_EINVAL, "plx_pending_on_done: loop and cb are required");
    if (p->loop)
        return plx_err_set(err, PLX_EINVAL, "plx_pending_on_done: a callback is already set");
    p->loop = loop;
    p->cb = cb;
    p->ud = ud;
    ev_async_init(&p->async, pending_async_cb);
    ev_async_start(loop, &p->async);
    atomic_store(&p->left, p->nreqs);
    if (p->nreqs == 0)
        ev_async_send(loop, &p->async);
    for (size_t i = 0; i < p->nreqs; i++)
        plx_request_on_done(p->reqs[i], pending_done_io, p);   /* runs at once if complete */
    return PLX_OK;
}

void plx_pending_destroy(plx_pending_t **pp)
{
    plx_pending_t *p = pp ? *pp : NULL;
    if (!p)
        return;
    *pp = NULL;
    for (size_t i = 0; p->loop && i < p->nreqs; i++) {
        /* Make sure the I/O thread is not inside pending_done_io, and never
         * will be: unset the callback, and if the request already completed
         * wait for a callback that may be running (the request holds
         * waiters until it returns). */
        plx_request_on_done(p->reqs[i], NULL, NULL);
        if (plx_request_done(p->reqs[i]))
            plx_request_wait(p->reqs[i], -1, NULL);
    }
    if (p->loop)
        ev_async_stop(p->loop, &p->async);
    for (size_t i = 0; i < p->nreqs; i++)
        plx_request_destroy(&p->reqs[i]);
    free(p->reqs);
    free(p->name);
    free(p);
}
