/*
 * Values to and from the wire's Value (proto/plexa.proto): payloads go
 * into the frame's buffers by reference, and come back as views of the
 * received frame's buffers.
 */
#include "plx_value_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- to the wire --------------------------------------------------------- */

/* Append b (a view [off, off+len) of it) to msg; its index in *idx. A view
 * that is not the whole buffer gets a buffer of its own lending the
 * parent's memory (the parent stays referenced until the frame is done). */
static void view_release(void *ctx, uint8_t *data, size_t len)
{
    plx_buf_t *parent = ctx;
    plx_buf_unref(&parent);
}

static int add_buf(plx_msg_t *msg, plx_buf_t *b, size_t off, size_t len, uint32_t *idx,
                   plx_err_t *err)
{
    plx_buf_t *use = b;
    if (off != 0 || len != b->len) {
        use = plx_buf_wrap(b->data + off, len, view_release, plx_buf_ref(b));
        if (!use) {
            plx_buf_unref(&b);   /* the reference taken for the view */
            return plx_err_set(err, PLX_ENOMEM, "out of memory for an array view");
        }
    }
    int rc = plx_msg_add_buf(msg, use);
    if (use != b)
        plx_buf_unref(&use);   /* msg holds it now (or it goes on failure) */
    if (rc != PLX_OK)
        return plx_err_set(err, PLX_ENOMEM, "out of memory adding a buffer");
    *idx = msg->nbufs - 1;
    return PLX_OK;
}

static int to_wire(const plx_value_t *v, Plexa__Value *out, plx_msg_t *msg, int depth,
                   plx_err_t *err)
{
    plexa__value__init(out);
    if (!v)
        return plx_err_set(err, PLX_EINVAL, "a value is NULL");
    if (depth > PLX_VALUE_MAX_DEPTH)
        return plx_err_set(err, PLX_EINVAL, "value nested deeper than %d lists",
                           PLX_VALUE_MAX_DEPTH);
    switch (v->kind) {
    case PLX_VALUE_NONE:
        out->kind_case = PLEXA__VALUE__KIND_NONE;
        out->none = 1;
        return PLX_OK;
    case PLX_VALUE_BOOL:
        out->kind_case = PLEXA__VALUE__KIND_BOOLEAN;
        out->boolean = v->u.b;
        return PLX_OK;
    case PLX_VALUE_I64:
        out->kind_case = PLEXA__VALUE__KIND_I64;
        out->i64 = v->u.i;
        return PLX_OK;
    case PLX_VALUE_F64:
        out->kind_case = PLEXA__VALUE__KIND_F64;
        out->f64 = v->u.f;
        return PLX_OK;
    case PLX_VALUE_STR:
        /* Borrowed: the Value is packed before v can go. */
        out->kind_case = PLEXA__VALUE__KIND_STR;
        out->str = v->u.s;
        return PLX_OK;
    case PLX_VALUE_BYTES: {
        uint32_t idx;
        int rc = add_buf(msg, v->u.bytes, 0, v->u.bytes->len, &idx, err);
        if (rc == PLX_OK) {
            out->kind_case = PLEXA__VALUE__KIND_BYTES;
            out->bytes = idx;
        }
        return rc;
    }
    case PLX_VALUE_ARRAY: {
        Plexa__NdArray *nd = malloc(sizeof *nd);
        if (!nd)
            return plx_err_set(err, PLX_ENOMEM, "out of memory for an array value");
        plexa__nd_array__init(nd);
        out->kind_case = PLEXA__VALUE__KIND_NDARRAY;   /* from here on, clear frees nd */
        out->ndarray = nd;
        nd->dtype = v->u.arr.dtype_str;               /* borrowed, as str */
        nd->n_shape = v->u.arr.ndim;
        nd->shape = calloc(v->u.arr.ndim ? v->u.arr.ndim : 1, sizeof *nd->shape);
        if (!nd->shape)
            return plx_err_set(err, PLX_ENOMEM, "out of memory for an array shape");
        for (size_t i = 0; i < v->u.arr.ndim; i++)
            nd->shape[i] = v->u.arr.shape[i];
        nd->has_fortran = 1;
        nd->fortran = v->u.arr.fortran;
        int rc = add_buf(msg, v->u.arr.buf, v->u.arr.offset, v->u.arr.nbytes, &nd->buf, err);
        nd->has_buf = rc == PLX_OK;
        return rc;
    }
    case PLX_VALUE_LIST: {
        Plexa__ValueList *l = malloc(sizeof *l);
        Plexa__Value **items = calloc(v->u.list.n ? v->u.list.n : 1, sizeof *items);
        if (!l || !items) {
            free(l);
            free(items);
            return plx_err_set(err, PLX_ENOMEM, "out of memory for a list of %zu values",
                               v->u.list.n);
        }
        plexa__value_list__init(l);
        l->items = items;
        l->has_tuple = 1;
        l->tuple = v->u.list.tuple;
        out->kind_case = PLEXA__VALUE__KIND_LIST;
        out->list = l;
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (!(l->items[i] = malloc(sizeof **l->items)))
                return plx_err_set(err, PLX_ENOMEM, "out of memory for a list item");
            l->n_items++;
            int rc = to_wire(v->u.list.items[i], l->items[i], msg, depth + 1, err);
            if (rc != PLX_OK)
                return rc;
        }
        return PLX_OK;
    }
    case PLX_VALUE_PICKLE: {
        Plexa__Pickle *p = malloc(sizeof *p);
        uint32_t *oob = calloc(v->u.pickle.noob ? v->u.pickle.noob : 1, sizeof *oob);
        if (!p || !oob) {
            free(p);
            free(oob);
            return plx_err_set(err, PLX_ENOMEM, "out of memory for a pickle value");
        }
        plexa__pickle__init(p);
        p->oob = oob;
        out->kind_case = PLEXA__VALUE__KIND_PICKLE;
        out->pickle = p;
        int rc = add_buf(msg, v->u.pickle.buf, 0, v->u.pickle.buf->len, &p->buf, err);
        p->has_buf = rc == PLX_OK;
        for (size_t i = 0; rc == PLX_OK && i < v->u.pickle.noob; i++) {
            plx_buf_t *b = v->u.pickle.oob[i];
            rc = add_buf(msg, b, 0, b->len, &p->oob[i], err);
            if (rc == PLX_OK)
                p->n_oob++;
        }
        return rc;
    }
    case PLX_VALUE_REF: {
        Plexa__Ref *r = malloc(sizeof *r);
        if (!r)
            return plx_err_set(err, PLX_ENOMEM, "out of memory for a ref value");
        plexa__ref__init(r);
        r->has_engine = 1;
        r->engine = v->u.ref.engine;
        r->key = v->u.ref.key;   /* borrowed, as str */
        out->kind_case = PLEXA__VALUE__KIND_REF;
        out->ref = r;
        return PLX_OK;
    }
    }
    return plx_err_set(err, PLX_EINVAL, "value of unknown kind %d", (int)v->kind);
}

int plx_value_to_wire(const plx_value_t *v, Plexa__Value *out, plx_msg_t *msg, plx_err_t *err)
{
    return to_wire(v, out, msg, 1, err);
}

void plx_value_wire_clear(Plexa__Value *v)
{
    switch (v->kind_case) {
    case PLEXA__VALUE__KIND_NDARRAY:
        free(v->ndarray->shape);
        free(v->ndarray);
        break;
    case PLEXA__VALUE__KIND_LIST:
        for (size_t i = 0; i < v->list->n_items; i++) {
            plx_value_wire_clear(v->list->items[i]);
            free(v->list->items[i]);
        }
        free(v->list->items);
        free(v->list);
        break;
    case PLEXA__VALUE__KIND_PICKLE:
        free(v->pickle->oob);
        free(v->pickle);
        break;
    case PLEXA__VALUE__KIND_REF:
        free(v->ref);
        break;
    default:
        break;
    }
    plexa__value__init(v);
}

/* ---- from the wire ------------------------------------------------------- */

static plx_buf_t *wire_buf(uint32_t idx, plx_buf_t *const *bufs, size_t nbufs, const char *what,
                           plx_err_t *err)
{
    if (idx >= nbufs) {
        plx_err_set(err, PLX_EPROTO, "%s names buffer %u, but the message carries %zu", what,
                    (unsigned)idx, nbufs);
        return NULL;
    }
    return bufs[idx];
}

static plx_value_t *nomem(plx_err_t *err, const char *what)
{
    plx_err_set(err, PLX_ENOMEM, "out of memory for %s", what);
    return NULL;
}

static plx_value_t *or_nomem(plx_value_t *v, plx_err_t *err, const char *what)
{
    return v ? v : nomem(err, what);
}

static plx_value_t *from_wire(const Plexa__Value *w, plx_buf_t *const *bufs, size_t nbufs,
                              int depth, plx_err_t *err)
{
    if (depth > PLX_VALUE_MAX_DEPTH) {
        plx_err_set(err, PLX_EPROTO, "value nested deeper than %d lists", PLX_VALUE_MAX_DEPTH);
        return NULL;
    }
    plx_value_t *v = NULL;
    switch (w->kind_case) {
    case PLEXA__VALUE__KIND_NONE:
        return or_nomem(plx_value_none(), err, "a value");
    case PLEXA__VALUE__KIND_BOOLEAN:
        return or_nomem(plx_value_bool(w->boolean), err, "a value");
    case PLEXA__VALUE__KIND_I64:
        return or_nomem(plx_value_i64(w->i64), err, "a value");
    case PLEXA__VALUE__KIND_F64:
        return or_nomem(plx_value_f64(w->f64), err, "a value");
    case PLEXA__VALUE__KIND_STR:
        return or_nomem(plx_value_str(w->str ? w->str : ""), err, "a string");
    case PLEXA__VALUE__KIND_BYTES: {
        plx_buf_t *b = wire_buf(w->bytes, bufs, nbufs, "bytes value", err);
        if (!b || !(v = plx_value_alloc(PLX_VALUE_BYTES)))
            return b ? nomem(err, "a value") : NULL;
        v->u.bytes = plx_buf_ref(b);
        return v;
    }
    case PLEXA__VALUE__KIND_NDARRAY: {
        const Plexa__NdArray *a = w->ndarray;
        if (!a->dtype || !a->has_buf) {
            plx_err_set(err, PLX_EPROTO, "ndarray value without %s", a->dtype ? "buf" : "dtype");
            return NULL;
        }
        plx_buf_t *b = wire_buf(a->buf, bufs, nbufs, "ndarray value", err);
        return b ? plx_value_array_over(b, 0, b->len, a->dtype, a->n_shape, a->shape,
                                        a->has_fortran && a->fortran, err)
                 : NULL;
    }
    case PLEXA__VALUE__KIND_LIST: {
        const Plexa__ValueList *l = w->list;
        if (!(v = l->has_tuple && l->tuple ? plx_value_tuple() : plx_value_list()))
            return nomem(err, "a list");
        for (size_t i = 0; i < l->n_items; i++) {
            plx_value_t *it = from_wire(l->items[i], bufs, nbufs, depth + 1, err);
            if (!it || plx_value_list_append(v, &it) != PLX_OK) {
                if (it) {
                    plx_value_destroy(&it);
                    nomem(err, "a list item");
                }
                plx_value_destroy(&v);
                return NULL;
            }
        }
        return v;
    }
    case PLEXA__VALUE__KIND_PICKLE: {
        const Plexa__Pickle *p = w->pickle;
        if (!p->has_buf) {
            plx_err_set(err, PLX_EPROTO, "pickle value without buf");
            return NULL;
        }
        plx_buf_t *b = wire_buf(p->buf, bufs, nbufs, "pickle value", err);
        if (!b)
            return NULL;
        if (!(v = plx_value_alloc(PLX_VALUE_PICKLE)) ||
            !(v->u.pickle.oob = calloc(p->n_oob ? p->n_oob : 1, sizeof *v->u.pickle.oob))) {
            free(v);
            return nomem(err, "a pickle value");
        }
        v->u.pickle.buf = plx_buf_ref(b);
        for (size_t i = 0; i < p->n_oob; i++) {
            plx_buf_t *o = wire_buf(p->oob[i], bufs, nbufs, "pickle out-of-band buffer", err);
            if (!o) {
                plx_value_destroy(&v);
                return NULL;
            }
            v->u.pickle.oob[v->u.pickle.noob++] = plx_buf_ref(o);
        }
        return v;
    }
    case PLEXA__VALUE__KIND_REF:
        /* The controller resolves refs before anyone receives them. */
        plx_err_set(err, PLX_EPROTO, "a reply holds a ref to engine %d's '%.100s': refs are "
                    "only sent in pushes", w->ref->engine, w->ref->key ? w->ref->key : "");
        return NULL;
    default:
        plx_err_set(err, PLX_EPROTO, "value without a kind (case %d)", (int)w->kind_case);
        return NULL;
    }
}

plx_value_t *plx_value_from_wire(const Plexa__Value *w, plx_buf_t *const *bufs, size_t nbufs,
                                 plx_err_t *err)
{
    return from_wire(w, bufs, nbufs, 1, err);
}
