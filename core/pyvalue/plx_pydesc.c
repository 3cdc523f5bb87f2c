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
