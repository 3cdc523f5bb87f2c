/*
 * Values both ways, for plexa._native; see _native_int.h.
 *
 * Sending: plexa._serialize.encode turns an object into a descriptor,
 * plain tuples such as ('i64', 5) or ('ndarray', '<f8', (3,), False, buf),
 * and this file turns the descriptor into libplexa's encoded value
 * (plx_value_t) whose payloads (array data, bytes, pickle-5 buffers) are
 * exports of the objects' own memory (core/pyvalue's plx_pyvalue_export);
 * the request builders of core/client/plx_rq.h put them on the wire and
 * libplexa writes them with writev, so the client copies nothing.
 *
 * Receiving: the reply decoders give values whose payloads are the
 * reply's buffers; they become RecvBuffer objects (core/pyvalue, each
 * holding a reference to its buffer) inside descriptors, and
 * plexa._serialize.decode builds arrays on them, so a pulled array is a
 * view of the received memory and keeps it alive after the request is
 * gone.
 *
 *   descriptors -> values    nv_value_encode, nv_values_encode
 *   values -> objects        nv_value_decode
 *   strings and errors       nv_str, nv_local_error
 */
#include "_native_int.h"
#include "plx_pydesc.h"

#include <stdlib.h>
#include <string.h>

PyObject *nv_str(const char *s)
{
    s = s ? s : "";
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* ---- descriptors -> values ------------------------------------------------------ */

typedef struct fd_ctx {
    int        depth;
    plx_err_t *err;
} fd_ctx_t;

static plx_value_t *from_desc(PyObject *desc, fd_ctx_t *c);

static plx_value_t *nomem(fd_ctx_t *c, const char *what)
{
    plx_err_set(c->err, PLX_ENOMEM, "out of memory for %s", what);
    return NULL;
}

static plx_value_t *failed(fd_ctx_t *c, const char *what)
{
    plx_pyvalue_fail(c->err, PLX_EINVAL, what);
    return NULL;
}

static plx_value_t *fd_none(PyObject *const *a, fd_ctx_t *c)
{
    plx_value_t *v = plx_value_none();
    return v ? v : nomem(c, "a value");
}

static plx_value_t *fd_bool(PyObject *const *a, fd_ctx_t *c)
{
    int t;
    if (plx_pydesc_get_bool(a[0], &t, c->err) != PLX_OK)
        return NULL;
    plx_value_t *v = plx_value_bool(t);
    return v ? v : nomem(c, "a value");
}

static plx_value_t *fd_i64(PyObject *const *a, fd_ctx_t *c)
{
    int64_t n;
    if (plx_pydesc_get_i64(a[0], &n, c->err) != PLX_OK)
        return NULL;
    plx_value_t *v = plx_value_i64(n);
    return v ? v : nomem(c, "a value");
}

static plx_value_t *fd_f64(PyObject *const *a, fd_ctx_t *c)
{
    double d;
    if (plx_pydesc_get_f64(a[0], &d, c->err) != PLX_OK)
        return NULL;
    plx_value_t *v = plx_value_f64(d);
    return v ? v : nomem(c, "a value");
}

/* The UTF-8 of str item o (borrowed), or NULL with err set. */
static const char *utf8_of(PyObject *o, const char *what, plx_err_t *err)
{
    const char *s;
    return plx_pydesc_get_utf8(o, what, &s, err) == PLX_OK ? s : NULL;
}

static plx_value_t *fd_str(PyObject *const *a, fd_ctx_t *c)
{
    const char *s = utf8_of(a[0], "str descriptor", c->err);
    plx_value_t *v = s ? plx_value_str(s) : NULL;
    return v || !s ? v : nomem(c, "a string");
}

/* A plx_buf_t over a buffer object's memory (zero copy); NULL with err. */
static plx_buf_t *export(PyObject *o, fd_ctx_t *c)
{
    plx_buf_t *b = NULL;
    return plx_pyvalue_export(o, &b, c->err) == PLX_OK ? b : NULL;
}

static plx_value_t *fd_bytes(PyObject *const *a, fd_ctx_t *c)
{
    plx_buf_t *b = export(a[0], c);
    if (!b)
        return NULL;
    plx_value_t *v = plx_value_bytes_over(b);
    plx_buf_unref(&b);
    return v ? v : nomem(c, "a bytes value");
}

static int fd_shape(PyObject *shape, uint64_t *dims, size_t *ndim, fd_ctx_t *c)
{
    PyObject *seq = PySequence_Fast(shape, "ndarray shape must be a sequence");
    if (!seq)
        return plx_pyvalue_fail(c->err, PLX_EINVAL, "ndarray descriptor");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int rc = n <= PLX_ARRAY_MAX_NDIM ? PLX_OK
                                     : plx_err_set(c->err, PLX_EINVAL, "ndarray of %zd "
                                                   "dimensions (at most %d)", n,
                                                   PLX_ARRAY_MAX_NDIM);
    for (Py_ssize_t i = 0; rc == PLX_OK && i < n; i++) {
        unsigned long long d = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (d == (unsigned long long)-1 && PyErr_Occurred())
            rc = plx_pyvalue_fail(c->err, PLX_EINVAL, "ndarray shape");
        else
            dims[i] = d;
    }
    *ndim = (size_t)n;
    Py_DECREF(seq);
    return rc;
}

static plx_value_t *fd_ndarray(PyObject *const *a, fd_ctx_t *c)
{
    uint64_t dims[PLX_ARRAY_MAX_NDIM];
    size_t ndim = 0;
    int fortran = PyObject_IsTrue(a[2]);
    if (fortran < 0)
        return failed(c, "ndarray descriptor");
    const char *dtype = utf8_of(a[0], "ndarray dtype", c->err);
    if (!dtype || fd_shape(a[1], dims, &ndim, c) != PLX_OK)
        return NULL;
    plx_buf_t *b = export(a[3], c);
    plx_value_t *v = b ? plx_value_array_over(b, 0, b->len, dtype, ndim, dims, fortran, c->err)
                       : NULL;
    plx_buf_unref(&b);
    if (!v && c->err && c->err->code == PLX_EPROTO)
        c->err->code = PLX_EINVAL;   /* ours to send, not a peer's fault */
    return v;
}

static plx_value_t *fd_list(PyObject *const *a, fd_ctx_t *c)
{
    if (c->depth >= PLX_PYVALUE_MAX_DEPTH) {
        plx_err_set(c->err, PLX_EINVAL, "list descriptor nested deeper than %d",
                    PLX_PYVALUE_MAX_DEPTH);
        return NULL;
    }
    int is_tuple = PyObject_IsTrue(a[1]);
    PyObject *seq = is_tuple < 0 ? NULL : PySequence_Fast(a[0], "list items must be a sequence");
    if (!seq)
        return failed(c, "list descriptor");
    plx_value_t *l = is_tuple ? plx_value_tuple() : plx_value_list();
    c->depth++;
    for (Py_ssize_t i = 0; l && i < PySequence_Fast_GET_SIZE(seq); i++) {
        plx_value_t *it = from_desc(PySequence_Fast_GET_ITEM(seq, i), c);
        if (!it || plx_value_list_append(l, &it) != PLX_OK) {
            if (it) {
                plx_value_destroy(&it);
                nomem(c, "a list item");
            }
            plx_value_destroy(&l);
            c->depth--;
            Py_DECREF(seq);
            return NULL;
        }
    }
    c->depth--;
    Py_DECREF(seq);
    return l ? l : nomem(c, "a list");
}

static plx_value_t *fd_pickle(PyObject *const *a, fd_ctx_t *c)
{
    PyObject *seq = PySequence_Fast(a[1], "pickle buffers must be a sequence");
    if (!seq)
        return failed(c, "pickle descriptor");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    plx_value_t *v = NULL;
    plx_buf_t **oob = calloc(n ? (size_t)n : 1, sizeof *oob);
    plx_buf_t *data = oob ? export(a[0], c) : NULL;
    int ok = data != NULL;
    for (Py_ssize_t i = 0; ok && i < n; i++)
        ok = (oob[i] = export(PySequence_Fast_GET_ITEM(seq, i), c)) != NULL;
    if (!oob)
        nomem(c, "a pickle value");
    else if (ok && !(v = plx_value_pickle_over(data, oob, (size_t)n)))
        nomem(c, "a pickle value");
    for (Py_ssize_t i = 0; oob && i < n; i++)
        plx_buf_unref(&oob[i]);
    free(oob);
    plx_buf_unref(&data);
    Py_DECREF(seq);
    return v;
}

static plx_value_t *fd_ref(PyObject *const *a, fd_ctx_t *c)
{
    int64_t engine;
    const char *key;
    if (plx_pydesc_get_i64(a[0], &engine, c->err) != PLX_OK ||
        plx_pydesc_get_utf8(a[1], "a ref's key", &key, c->err) != PLX_OK)
        return NULL;
    if (engine < INT32_MIN || engine > INT32_MAX || !key[0]) {
        plx_err_set(c->err, PLX_EINVAL, "plexa.ref('%.100s', engine=%lld): %s", key,
                    (long long)engine, key[0] ? "no such engine id" : "empty key");
        return NULL;
    }
    plx_value_t *v = plx_value_ref((int32_t)engine, key);
    return v ? v : nomem(c, "a ref");
}

typedef plx_value_t *(*fd_fn)(PyObject *const *args, fd_ctx_t *c);

static const fd_fn fd_kinds[PLX_PYDESC_NKINDS] = {
    [PLX_PYDESC_NONE] = fd_none,       [PLX_PYDESC_BOOL] = fd_bool,
    [PLX_PYDESC_I64] = fd_i64,         [PLX_PYDESC_F64] = fd_f64,
    [PLX_PYDESC_STR] = fd_str,         [PLX_PYDESC_BYTES] = fd_bytes,
    [PLX_PYDESC_NDARRAY] = fd_ndarray, [PLX_PYDESC_LIST] = fd_list,
    [PLX_PYDESC_PICKLE] = fd_pickle,   [PLX_PYDESC_REF] = fd_ref,
};

static plx_value_t *from_desc(PyObject *desc, fd_ctx_t *c)
{
    plx_pydesc_kind_t kind;
    PyObject *const *args;
    if (plx_pydesc_read(desc, &kind, &args, c->err) != PLX_OK)
        return NULL;
    return fd_kinds[kind](args, c);
}

plx_value_t *nv_value_encode(native_state *st, PyObject *obj, plx_err_t *err)
{
    PyObject *desc = PyObject_CallOneArg(st->encode, obj);
    if (!desc) {
        err->code = PLX_OK;   /* what pickling raised stays raised */
        return NULL;
    }
    fd_ctx_t c = { .depth = 1, .err = err };
    err->code = PLX_OK;
    plx_value_t *v = from_desc(desc, &c);
    Py_DECREF(desc);
    if (!v && err->code == PLX_OK)
        plx_err_set(err, PLX_ENOMEM, "out of memory for a value");
    return v;
}

void nv_values_clear(nv_values_t *vals)
{
    for (size_t i = 0; vals->v && i < vals->n; i++)
        plx_value_destroy(&vals->v[i]);
    PyMem_Free(vals->v);
    memset(vals, 0, sizeof *vals);
}

int nv_values_encode(native_state *st, PyObject *objs, nv_values_t *out)
{
    memset(out, 0, sizeof *out);
    PyObject *seq = PySequence_Fast(objs, "values must be a sequence");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    out->v = PyMem_Calloc(n ? (size_t)n : 1, sizeof *out->v);
    int rc = out->v ? 0 : (PyErr_NoMemory(), -1);
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        plx_err_t err = {0};
        out->v[i] = nv_value_encode(st, PySequence_Fast_GET_ITEM(seq, i), &err);
        out->n = (size_t)i + 1;
        if (out->v[i])
            continue;
        rc = -1;
        if (err.code == PLX_ENOMEM)
            PyErr_NoMemory();
        else if (err.code != PLX_OK)
            PyErr_Format(st->serialization_error, "cannot serialize item %zd: %s", i, err.msg);
    }
    Py_DECREF(seq);
    return rc;
}

/* ---- values -> objects ----------------------------------------------------------- */

static PyObject *to_desc(const plx_value_t *v, int depth, plx_err_t *err);

/* The value's payload (bytes, array data, pickle stream) as a RecvBuffer. */
static PyObject *payload(const plx_value_t *v, plx_err_t *err)
{
    size_t off, len;
    plx_buf_t *b = plx_value_payload(v, &off, &len);
    return plx_pydesc_buf(b, off, len, err);
}

static PyObject *ndarray_desc(const plx_value_t *v, plx_err_t *err)
{
    size_t ndim = plx_value_array_ndim(v);
    const size_t *dims = plx_value_array_shape(v);
    PyObject *shape = plx_pydesc_new_tuple(ndim, err);
    for (size_t i = 0; shape && i < ndim; i++) {
        PyObject *n = PyLong_FromSize_t(dims[i]);
        if (!n) {
            Py_CLEAR(shape);
            plx_pyvalue_fail(err, PLX_ENOMEM, "ndarray shape");
        } else {
            PyTuple_SET_ITEM(shape, (Py_ssize_t)i, n);
        }
    }
    if (!shape)
        return NULL;
    return plx_pydesc_ndarray(plx_value_array_dtype_str(v), shape, plx_value_array_fortran(v),
                              payload(v, err), err);
}

static PyObject *list_desc(const plx_value_t *v, int depth, plx_err_t *err)
{
    size_t n = plx_value_list_len(v);
    PyObject *items = plx_pydesc_new_list(n, err);
    for (size_t i = 0; items && i < n; i++) {
        PyObject *d = to_desc(plx_value_list_get(v, i), depth + 1, err);
        if (!d)
            Py_CLEAR(items);
        else
            PyList_SET_ITEM(items, (Py_ssize_t)i, d);
    }
    return plx_pydesc_list(items, plx_value_list_is_tuple(v), err);
}

static PyObject *pickle_desc(const plx_value_t *v, plx_err_t *err)
{
    size_t noob;
    plx_buf_t *const *oob = plx_value_pickle_oob(v, &noob);
    PyObject *bufs = plx_pydesc_new_list(noob, err);
    for (size_t i = 0; bufs && i < noob; i++) {
        PyObject *b = plx_pydesc_buf(oob[i], 0, oob[i]->len, err);
        if (!b)
            Py_CLEAR(bufs);
        else
            PyList_SET_ITEM(bufs, (Py_ssize_t)i, b);
    }
    if (!bufs)
        return NULL;
    return plx_pydesc_pickle(payload(v, err), bufs, err);
}

static PyObject *to_desc(const plx_value_t *v, int depth, plx_err_t *err)
{
    int b;
    int64_t i;
    double d;
    if (depth > PLX_PYVALUE_MAX_DEPTH) {
        plx_err_set(err, PLX_EPROTO, "value nested deeper than %d lists", PLX_PYVALUE_MAX_DEPTH);
        return NULL;
    }
    switch (plx_value_kind(v)) {
    case PLX_VALUE_NONE:
        return plx_pydesc_none(err);
    case PLX_VALUE_BOOL:
        plx_value_as_bool(v, &b);
        return plx_pydesc_bool(b, err);
    case PLX_VALUE_I64:
        plx_value_as_i64(v, &i);
        return plx_pydesc_i64(i, err);
    case PLX_VALUE_F64:
        plx_value_as_f64(v, &d);
        return plx_pydesc_f64(d, err);
    case PLX_VALUE_STR:
        return plx_pydesc_str(plx_value_as_str(v), err);
    case PLX_VALUE_BYTES:
        return plx_pydesc_bytes(payload(v, err), err);
    case PLX_VALUE_ARRAY:
        return ndarray_desc(v, err);
    case PLX_VALUE_LIST:
        return list_desc(v, depth, err);
    case PLX_VALUE_PICKLE:
        return pickle_desc(v, err);
    case PLX_VALUE_REF:   /* libplexa's decoders never make one */
        break;
    }
    plx_err_set(err, PLX_EPROTO, "value of unknown kind %d", (int)plx_value_kind(v));
    return NULL;
}

PyObject *nv_value_decode(native_state *st, const plx_value_t *v, int *malformed,
                          plx_err_t *err)
{
    PyObject *desc = to_desc(v, 1, err);
    *malformed = desc == NULL;
    if (!desc)
        return NULL;
    PyObject *obj = PyObject_CallOneArg(st->decode, desc);
    Py_DECREF(desc);
    return obj;
}

/* ---- errors --------------------------------------------------------------------------- */

/* The formatted traceback of exception value, "" if it cannot be had. */
static PyObject *format_exception(PyObject *value)
{
    PyObject *text = NULL;
    PyObject *mod = value ? PyImport_ImportModule("traceback") : NULL;
    PyObject *lines = mod ? PyObject_CallMethod(mod, "format_exception", "O", value) : NULL;
    PyObject *empty = lines ? PyUnicode_FromString("") : NULL;
    if (empty)
        text = PyUnicode_Join(empty, lines);
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(mod);
    PyErr_Clear();
    return text ? text : PyUnicode_FromString("");
}

PyObject *nv_local_error(native_state *st, const char *where)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    const char *name = type ? ((PyTypeObject *)type)->tp_name : "SerializationError";
    const char *dot = strrchr(name, '.');
    PyObject *evalue = value ? PyObject_Str(value) : NULL;
    PyErr_Clear();
    PyObject *text = format_exception(value);
    PyObject *tbtext = text ? PyUnicode_FromFormat("%U(raised on the client, %s)\n", text, where)
                            : NULL;
    PyObject *err = nv_remote_error(st, PyUnicode_FromString(dot ? dot + 1 : name),
                                    evalue ? evalue : nv_str("?"), tbtext);
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return err;
}
