/* Value descriptors, built in one place; see plx_pydesc.h. */
#include "plx_pydesc.h"
#include "plx_pyvalue.h"

#include <string.h>

/* Finish a descriptor built by Py_BuildValue ('N' arguments stolen). */
static PyObject *built(PyObject *d, plx_err_t *err)
{
    if (!d)
        plx_pyvalue_fail(err, PLX_ENOMEM, "building a value descriptor");
    return d;
}

PyObject *plx_pydesc_none(plx_err_t *err)
{
    return built(Py_BuildValue("(s)", "none"), err);
}

PyObject *plx_pydesc_bool(int b, plx_err_t *err)
{
    return built(Py_BuildValue("(sO)", "bool", b ? Py_True : Py_False), err);
}

PyObject *plx_pydesc_i64(int64_t n, plx_err_t *err)
{
    return built(Py_BuildValue("(sL)", "i64", (long long)n), err);
}

PyObject *plx_pydesc_f64(double x, plx_err_t *err)
{
    return built(Py_BuildValue("(sd)", "f64", x), err);
}

PyObject *plx_pydesc_str(const char *s, plx_err_t *err)
{
    PyObject *u = PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "strict");
    if (!u) {
        plx_pyvalue_fail(err, PLX_EPROTO, "str value");
        return NULL;
    }
    return built(Py_BuildValue("(sN)", "str", u), err);
}

PyObject *plx_pydesc_buf(plx_buf_t *b, size_t off, size_t len, plx_err_t *err)
{
    PyObject *o = plx_recvbuffer_new(b);
    if (o && (off != 0 || len != b->len)) {
        PyObject *mv = PyMemoryView_FromObject(o);
        Py_SETREF(o, mv ? PySequence_GetSlice(mv, (Py_ssize_t)off, (Py_ssize_t)(off + len))
                        : NULL);
        Py_XDECREF(mv);
    }
    if (!o)
        plx_pyvalue_fail(err, PLX_ENOMEM, "RecvBuffer");
    return o;
}

PyObject *plx_pydesc_bytes(PyObject *data, plx_err_t *err)
{
    return data ? built(Py_BuildValue("(sN)", "bytes", data), err) : NULL;
}

PyObject *plx_pydesc_ndarray(const char *dtype, PyObject *shape, int fortran, PyObject *data,
                             plx_err_t *err)
{
    if (!shape || !data) {
        Py_XDECREF(shape);
        Py_XDECREF(data);
        return NULL;
    }
    return built(Py_BuildValue("(ssNON)", "ndarray", dtype, shape,
                               fortran ? Py_True : Py_False, data), err);
}

PyObject *plx_pydesc_list(PyObject *items, int is_tuple, plx_err_t *err)
{
    if (!items)
        return NULL;
    return built(Py_BuildValue("(sNO)", "list", items, is_tuple ? Py_True : Py_False), err);
}

PyObject *plx_pydesc_pickle(PyObject *data, PyObject *oob, plx_err_t *err)
{
    if (!data || !oob) {
        Py_XDECREF(data);
        Py_XDECREF(oob);
        return NULL;
    }
    return built(Py_BuildValue("(sNN)", "pickle", data, oob), err);
}

PyObject *plx_pydesc_new_list(size_t n, plx_err_t *err)
{
    return built(PyList_New((Py_ssize_t)n), err);
}

PyObject *plx_pydesc_new_tuple(size_t n, plx_err_t *err)
{
    return built(PyTuple_New((Py_ssize_t)n), err);
}

/* ---- reading ------------------------------------------------------------ */

static const struct {
    const char *name;
    Py_ssize_t  nargs;   /* tuple items after the kind's name */
} kinds[PLX_PYDESC_NKINDS] = {
    [PLX_PYDESC_NONE] = { "none", 0 },       [PLX_PYDESC_BOOL] = { "bool", 1 },
    [PLX_PYDESC_I64] = { "i64", 1 },         [PLX_PYDESC_F64] = { "f64", 1 },
    [PLX_PYDESC_STR] = { "str", 1 },         [PLX_PYDESC_BYTES] = { "bytes", 1 },
    [PLX_PYDESC_NDARRAY] = { "ndarray", 4 }, [PLX_PYDESC_LIST] = { "list", 2 },
    [PLX_PYDESC_PICKLE] = { "pickle", 2 },   [PLX_PYDESC_REF] = { "ref", 2 },
};

int plx_pydesc_read(PyObject *desc, plx_pydesc_kind_t *kind, PyObject *const **args,
                    plx_err_t *err)
{
    const char *tag = NULL;
    if (PyTuple_Check(desc) && PyTuple_GET_SIZE(desc) >= 1 &&
        PyUnicode_Check(PyTuple_GET_ITEM(desc, 0)))
        tag = PyUnicode_AsUTF8(PyTuple_GET_ITEM(desc, 0));
    if (!tag) {
        PyErr_Clear();
        return plx_err_set(err, PLX_EINVAL,
                           "a value descriptor is a tuple starting with its kind, not '%.100s'",
                           Py_TYPE(desc)->tp_name);
    }
    for (int k = 0; k < PLX_PYDESC_NKINDS; k++) {
        if (strcmp(tag, kinds[k].name) != 0)
            continue;
        if (PyTuple_GET_SIZE(desc) != kinds[k].nargs + 1)
            return plx_err_set(err, PLX_EINVAL, "'%s' descriptor has %zd items, expected %zd",
                               tag, PyTuple_GET_SIZE(desc), kinds[k].nargs + 1);
        *kind = (plx_pydesc_kind_t)k;
        *args = &PyTuple_GET_ITEM(desc, 1);
        return PLX_OK;
    }
    return plx_err_set(err, PLX_EINVAL, "unknown value descriptor kind '%.50s'", tag);
}

int plx_pydesc_get_bool(PyObject *o, int *out, plx_err_t *err)
{
    *out = PyObject_IsTrue(o);
    return *out < 0 ? plx_pyvalue_fail(err, PLX_EINVAL, "bool descriptor") : PLX_OK;
}

int plx_pydesc_get_i64(PyObject *o, int64_t *out, plx_err_t *err)
{
    if (!PyLong_Check(o))
        return plx_err_set(err, PLX_EINVAL, "i64 descriptor holds a '%.100s', not an int",
                           Py_TYPE(o)->tp_name);
    long long n = PyLong_AsLongLong(o);
    if (n == -1 && PyErr_Occurred())
        return plx_pyvalue_fail(err, PLX_EINVAL, "i64 descriptor");
    *out = n;
    return PLX_OK;
}

int plx_pydesc_get_f64(PyObject *o, double *out, plx_err_t *err)
{
    *out = PyFloat_AsDouble(o);
    if (*out == -1.0 && PyErr_Occurred())
        return plx_pyvalue_fail(err, PLX_EINVAL, "f64 descriptor");
    return PLX_OK;
}

int plx_pydesc_get_utf8(PyObject *o, const char *what, const char **out, plx_err_t *err)
{
    if (!PyUnicode_Check(o))
        return plx_err_set(err, PLX_EINVAL, "%s must be a str, not '%.100s'", what,
                           Py_TYPE(o)->tp_name);
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s)
        return plx_pyvalue_fail(err, PLX_EINVAL, what);
    if (memchr(s, '\0', (size_t)n))
        return plx_err_set(err, PLX_EINVAL, "%s contains a NUL character", what);
    *out = s;
    return PLX_OK;
}
