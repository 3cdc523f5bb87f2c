/* Value <-> descriptor conversion; see plx_pyvalue.h. */
#include "plx_pyvalue.h"
#include "plx_pyvalue_int.h"
#include "plx_pydesc.h"

#include <stdlib.h>
#include <string.h>

int plx_pyvalue_fail(plx_err_t *err, int code, const char *what)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type && PyErr_GivenExceptionMatches(type, PyExc_MemoryError))
        code = PLX_ENOMEM;
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    if (!msg)
        PyErr_Clear();
    plx_err_set(err, code, "%s: %s: %s", what,
                type ? ((PyTypeObject *)type)->tp_name : "error", msg ? msg : "?");
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return code;
}

/* ---- Value -> descriptor (the builders are plx_pydesc.c's) ----------------- */

static PyObject *to_desc(const Plexa__Value *v, plx_buf_t **bufs, size_t nbufs, int depth,
                         plx_err_t *err);

/* A RecvBuffer for buffer idx of the message, after checking idx. */
static PyObject *buf_obj(uint32_t idx, plx_buf_t **bufs, size_t nbufs, const char *what,
                         plx_err_t *err)
{
    if (idx >= nbufs) {
        plx_err_set(err, PLX_EPROTO, "%s names buffer %u, but the message carries %zu",
                    what, (unsigned)idx, nbufs);
        return NULL;
    }
    return plx_pydesc_buf(bufs[idx], 0, bufs[idx]->len, err);
}

static PyObject *ndarray_desc(const Plexa__NdArray *a, plx_buf_t **bufs, size_t nbufs,
                              plx_err_t *err)
{
    if (!a->dtype || !a->has_buf) {
        plx_err_set(err, PLX_EPROTO, "ndarray value without %s", a->dtype ? "buf" : "dtype");
        return NULL;
    }
    PyObject *shape = plx_pydesc_new_tuple(a->n_shape, err);
    for (size_t i = 0; shape && i < a->n_shape; i++) {
        PyObject *n = PyLong_FromUnsignedLongLong(a->shape[i]);
        if (!n) {
            Py_CLEAR(shape);
            plx_pyvalue_fail(err, PLX_ENOMEM, "ndarray shape");
        } else {
            PyTuple_SET_ITEM(shape, (Py_ssize_t)i, n);
        }
    }
    if (!shape)
        return NULL;
    return plx_pydesc_ndarray(a->dtype, shape, a->has_fortran && a->fortran,
                              buf_obj(a->buf, bufs, nbufs, "ndarray value", err), err);
}

static PyObject *list_desc(const Plexa__ValueList *l, plx_buf_t **bufs, size_t nbufs,
                           int depth, plx_err_t *err)
{
    PyObject *items = plx_pydesc_new_list(l->n_items, err);
    for (size_t i = 0; items && i < l->n_items; i++) {
        PyObject *d = to_desc(l->items[i], bufs, nbufs, depth + 1, err);
        if (!d)
            Py_CLEAR(items);
        else
            PyList_SET_ITEM(items, (Py_ssize_t)i, d);
    }
    return plx_pydesc_list(items, l->has_tuple && l->tuple, err);
}

static PyObject *pickle_desc(const Plexa__Pickle *p, plx_buf_t **bufs, size_t nbufs,
                             plx_err_t *err)
{
    if (!p->has_buf) {
        plx_err_set(err, PLX_EPROTO, "pickle value without buf");
        return NULL;
    }
    PyObject *oob = plx_pydesc_new_list(p->n_oob, err);
    for (size_t i = 0; oob && i < p->n_oob; i++) {
        PyObject *b = buf_obj(p->oob[i], bufs, nbufs, "pickle out-of-band buffer", err);
        if (!b)
            Py_CLEAR(oob);
        else
            PyList_SET_ITEM(oob, (Py_ssize_t)i, b);
    }
    if (!oob)
        return NULL;
    return plx_pydesc_pickle(buf_obj(p->buf, bufs, nbufs, "pickle value", err), oob, err);
}

static PyObject *to_desc(const Plexa__Value *v, plx_buf_t **bufs, size_t nbufs, int depth,
                         plx_err_t *err)
{
    if (depth > PLX_PYVALUE_MAX_DEPTH) {
        plx_err_set(err, PLX_EPROTO, "value nested deeper than %d lists", PLX_PYVALUE_MAX_DEPTH);
        return NULL;
    }
    switch (v->kind_case) {
    case PLEXA__VALUE__KIND_NONE:
        return plx_pydesc_none(err);
    case PLEXA__VALUE__KIND_BOOLEAN:
        return plx_pydesc_bool(v->boolean, err);
    case PLEXA__VALUE__KIND_I64:
        return plx_pydesc_i64(v->i64, err);
    case PLEXA__VALUE__KIND_F64:
        return plx_pydesc_f64(v->f64, err);
    case PLEXA__VALUE__KIND_STR:
        return plx_pydesc_str(v->str ? v->str : "", err);
    case PLEXA__VALUE__KIND_BYTES:
        return plx_pydesc_bytes(buf_obj(v->bytes, bufs, nbufs, "bytes value", err), err);
    case PLEXA__VALUE__KIND_NDARRAY:
        return ndarray_desc(v->ndarray, bufs, nbufs, err);
    case PLEXA__VALUE__KIND_LIST:
        return list_desc(v->list, bufs, nbufs, depth, err);
    case PLEXA__VALUE__KIND_PICKLE:
        return pickle_desc(v->pickle, bufs, nbufs, err);
    case PLEXA__VALUE__KIND_REF:
        /* The controller resolves a push's own values; this one was not. */
        plx_err_set(err, PLX_EPROTO, "plexa.ref('%.100s', engine=%d) can only be a pushed value "
                    "itself (the controller fetches it); inside a list, or in any other request, "
                    "it is refused", v->ref->key ? v->ref->key : "", (int)v->ref->engine);
        return NULL;
    default:
        plx_err_set(err, PLX_EPROTO, "value without a kind (case %d)", (int)v->kind_case);
        return NULL;
    }
}

PyObject *plx_pyvalue_to_desc(const Plexa__Value *v, plx_buf_t **bufs, size_t nbufs,
                              plx_err_t *err)
{
    return to_desc(v, bufs, nbufs, 1, err);
}

/* ---- descriptor -> Value ------------------------------------------------ */

typedef struct fd_ctx {
    plx_msg_t *msg;
    int        depth;
    plx_err_t *err;
} fd_ctx_t;

static int from_desc(PyObject *desc, Plexa__Value *out, fd_ctx_t *c);

static int fd_none(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    out->kind_case = PLEXA__VALUE__KIND_NONE;
    out->none = 1;
    return PLX_OK;
}

static int fd_bool(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    int t;
    int rc = plx_pydesc_get_bool(a[0], &t, c->err);
    if (rc != PLX_OK)
        return rc;
    out->kind_case = PLEXA__VALUE__KIND_BOOLEAN;
    out->boolean = t;
    return PLX_OK;
}

static int fd_i64(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    int64_t n;
    int rc = plx_pydesc_get_i64(a[0], &n, c->err);
    if (rc != PLX_OK)
        return rc;
    out->kind_case = PLEXA__VALUE__KIND_I64;
    out->i64 = n;
    return PLX_OK;
}

static int fd_f64(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    double d;
    int rc = plx_pydesc_get_f64(a[0], &d, c->err);
    if (rc != PLX_OK)
        return rc;
    out->kind_case = PLEXA__VALUE__KIND_F64;
    out->f64 = d;
    return PLX_OK;
}

/* A malloc'd copy of str item o's UTF-8 (protobuf-c owns its strings). */
static int utf8_dup(PyObject *o, const char *what, char **out, plx_err_t *err)
{
    const char *s;
    int rc = plx_pydesc_get_utf8(o, what, &s, err);
    if (rc != PLX_OK)
        return rc;
    *out = strdup(s);
    return *out ? PLX_OK : plx_err_set(err, PLX_ENOMEM, "out of memory copying %s", what);
}

static int fd_str(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    char *s;
    int rc = utf8_dup(a[0], "str descriptor", &s, c->err);
    if (rc != PLX_OK)
        return rc;
    out->kind_case = PLEXA__VALUE__KIND_STR;
    out->str = s;
    return PLX_OK;
}

static int fd_bytes(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    uint32_t idx;
    int rc = plx_pyvalue_add_buffer(a[0], c->msg, &idx, c->err);
    if (rc != PLX_OK)
        return rc;
    out->kind_case = PLEXA__VALUE__KIND_BYTES;
    out->bytes = idx;
    return PLX_OK;
}

static int fd_shape(PyObject *shape, Plexa__NdArray *nd, plx_err_t *err)
{
    PyObject *seq = PySequence_Fast(shape, "ndarray shape must be a sequence");
    if (!seq)
        return plx_pyvalue_fail(err, PLX_EINVAL, "ndarray descriptor");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int rc = PLX_OK;
    nd->shape = calloc(n ? (size_t)n : 1, sizeof *nd->shape);
    if (!nd->shape)
        rc = plx_err_set(err, PLX_ENOMEM, "out of memory for an ndarray shape");
    for (Py_ssize_t i = 0; rc == PLX_OK && i < n; i++) {
        unsigned long long d = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (d == (unsigned long long)-1 && PyErr_Occurred())
            rc = plx_pyvalue_fail(err, PLX_EINVAL, "ndarray shape");
        else
            nd->shape[nd->n_shape++] = d;
    }
    Py_DECREF(seq);
    return rc;
}

static int fd_ndarray(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    Plexa__NdArray *nd = malloc(sizeof *nd);
    if (!nd)
        return plx_err_set(c->err, PLX_ENOMEM, "out of memory for an ndarray value");
    plexa__nd_array__init(nd);
    out->kind_case = PLEXA__VALUE__KIND_NDARRAY;   /* from here on, clear frees nd */
    out->ndarray = nd;
    int fortran = PyObject_IsTrue(a[2]);
    if (fortran < 0)
        return plx_pyvalue_fail(c->err, PLX_EINVAL, "ndarray descriptor");
    nd->has_fortran = 1;
    nd->fortran = fortran;
    int rc = utf8_dup(a[0], "ndarray dtype", &nd->dtype, c->err);
    if (rc == PLX_OK)
        rc = fd_shape(a[1], nd, c->err);
    if (rc == PLX_OK)
        rc = plx_pyvalue_add_buffer(a[3], c->msg, &nd->buf, c->err);
    nd->has_buf = rc == PLX_OK;
    return rc;
}

static int fd_list(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    if (c->depth >= PLX_PYVALUE_MAX_DEPTH)
        return plx_err_set(c->err, PLX_EINVAL, "list descriptor nested deeper than %d",
                           PLX_PYVALUE_MAX_DEPTH);
    int is_tuple = PyObject_IsTrue(a[1]);
    PyObject *seq = is_tuple < 0 ? NULL : PySequence_Fast(a[0], "list items must be a sequence");
    if (!seq)
        return plx_pyvalue_fail(c->err, PLX_EINVAL, "list descriptor");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Plexa__ValueList *l = malloc(sizeof *l);
    Plexa__Value **items = calloc(n ? (size_t)n : 1, sizeof *items);
    if (!l || !items) {
        free(l);
        free(items);
        Py_DECREF(seq);
        return plx_err_set(c->err, PLX_ENOMEM, "out of memory for a list of %zd values", n);
    }
    plexa__value_list__init(l);
    l->items = items;
    l->has_tuple = 1;
    l->tuple = is_tuple;
    out->kind_case = PLEXA__VALUE__KIND_LIST;   /* from here on, clear frees l */
    out->list = l;
    int rc = PLX_OK;
    c->depth++;
    for (Py_ssize_t i = 0; rc == PLX_OK && i < n; i++) {
        l->items[i] = malloc(sizeof **l->items);
        if (!l->items[i]) {
            rc = plx_err_set(c->err, PLX_ENOMEM, "out of memory for a list item");
            break;
        }
        l->n_items++;
        rc = from_desc(PySequence_Fast_GET_ITEM(seq, i), l->items[i], c);
    }
    c->depth--;
    Py_DECREF(seq);
    return rc;
}

static int fd_pickle(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    PyObject *seq = PySequence_Fast(a[1], "pickle buffers must be a sequence");
    if (!seq)
        return plx_pyvalue_fail(c->err, PLX_EINVAL, "pickle descriptor");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Plexa__Pickle *p = malloc(sizeof *p);
    uint32_t *oob = calloc(n ? (size_t)n : 1, sizeof *oob);
    if (!p || !oob) {
        free(p);
        free(oob);
        Py_DECREF(seq);
        return plx_err_set(c->err, PLX_ENOMEM, "out of memory for a pickle value");
    }
    plexa__pickle__init(p);
    p->oob = oob;
    out->kind_case = PLEXA__VALUE__KIND_PICKLE;   /* from here on, clear frees p */
    out->pickle = p;
    int rc = plx_pyvalue_add_buffer(a[0], c->msg, &p->buf, c->err);
    p->has_buf = rc == PLX_OK;
    for (Py_ssize_t i = 0; rc == PLX_OK && i < n; i++) {
        rc = plx_pyvalue_add_buffer(PySequence_Fast_GET_ITEM(seq, i), c->msg, &p->oob[i], c->err);
        if (rc == PLX_OK)
            p->n_oob++;
    }
    Py_DECREF(seq);
    return rc;
}

/* What an engine sends holds values, never references to them. */
static int fd_ref(PyObject *const *a, Plexa__Value *out, fd_ctx_t *c)
{
    (void)a;
    (void)out;
    return plx_err_set(c->err, PLX_EINVAL, "a plexa.ref cannot be sent from an engine");
}

typedef int (*fd_fn)(PyObject *const *args, Plexa__Value *out, fd_ctx_t *c);

static const fd_fn fd_kinds[PLX_PYDESC_NKINDS] = {
    [PLX_PYDESC_NONE] = fd_none,       [PLX_PYDESC_BOOL] = fd_bool,
    [PLX_PYDESC_I64] = fd_i64,         [PLX_PYDESC_F64] = fd_f64,
    [PLX_PYDESC_STR] = fd_str,         [PLX_PYDESC_BYTES] = fd_bytes,
    [PLX_PYDESC_NDARRAY] = fd_ndarray, [PLX_PYDESC_LIST] = fd_list,
    [PLX_PYDESC_PICKLE] = fd_pickle,   [PLX_PYDESC_REF] = fd_ref,
};

static int from_desc(PyObject *desc, Plexa__Value *out, fd_ctx_t *c)
{
    plexa__value__init(out);
    plx_pydesc_kind_t kind;
    PyObject *const *args;
    int rc = plx_pydesc_read(desc, &kind, &args, c->err);
    return rc != PLX_OK ? rc : fd_kinds[kind](args, out, c);
}

int plx_pyvalue_from_desc(PyObject *desc, Plexa__Value *out, plx_msg_t *msg, plx_err_t *err)
{
    fd_ctx_t c = { .msg = msg, .depth = 1, .err = err };
    return from_desc(desc, out, &c);
}

void plx_pyvalue_clear(Plexa__Value *v)
{
    switch (v->kind_case) {
    case PLEXA__VALUE__KIND_STR:
        free(v->str);
        break;
    case PLEXA__VALUE__KIND_NDARRAY:
        free(v->ndarray->dtype);
        free(v->ndarray->shape);
        free(v->ndarray);
        break;
    case PLEXA__VALUE__KIND_LIST:
        for (size_t i = 0; i < v->list->n_items; i++) {
            plx_pyvalue_clear(v->list->items[i]);
            free(v->list->items[i]);
        }
        free(v->list->items);
        free(v->list);
        break;
    case PLEXA__VALUE__KIND_PICKLE:
        free(v->pickle->oob);
        free(v->pickle);
        break;
    default:
        break;
    }
    plexa__value__init(v);
}
