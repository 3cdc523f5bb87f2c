/*
 * Value descriptors: the tuples plexa._serialize.decode turns into Python
 * objects,
 *
 *     ("none",) ("bool", b) ("i64", n) ("f64", x) ("str", s) ("bytes", buf)
 *     ("ndarray", dtype, shape, fortran, buf) ("list", items, is_tuple)
 *     ("pickle", data, [oob buffers])
 *
 * built and read here only. Two readers walk values into them: the engine from the
 * wire's Value (plx_pyvalue_to_desc) and plexa._native from libplexa's
 * plx_value_t; both use these builders, so the format is written once.
 *
 * Every builder needs the GIL and returns a new reference, or NULL with err
 * filled. PyObject arguments are stolen, also on failure; a NULL argument
 * means its builder already failed (err is filled): the call then releases
 * the other arguments and returns NULL, so calls can be nested.
 */
#ifndef PLX_PYDESC_H
#define PLX_PYDESC_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#include "plexa/error.h"
#include "plx_buf.h"

PyObject *plx_pydesc_none(plx_err_t *err);
PyObject *plx_pydesc_bool(int b, plx_err_t *err);
PyObject *plx_pydesc_i64(int64_t n, plx_err_t *err);
PyObject *plx_pydesc_f64(double x, plx_err_t *err);
/* s must be valid UTF-8: a peer that sends anything else is broken
 * (PLX_EPROTO). */
PyObject *plx_pydesc_str(const char *s, plx_err_t *err);

/* A RecvBuffer over bytes [off, off + len) of b (b itself when that is all
 * of it, else a memoryview slice), referencing b rather than copying. */
PyObject *plx_pydesc_buf(plx_buf_t *b, size_t off, size_t len, plx_err_t *err);

PyObject *plx_pydesc_bytes(PyObject *data, plx_err_t *err);
/* shape: a tuple of ints. */
PyObject *plx_pydesc_ndarray(const char *dtype, PyObject *shape, int fortran, PyObject *data,
                             plx_err_t *err);
/* items: a list of descriptors. */
PyObject *plx_pydesc_list(PyObject *items, int is_tuple, plx_err_t *err);
/* oob: a list of buffers (pickle protocol 5's out-of-band buffers). */
PyObject *plx_pydesc_pickle(PyObject *data, PyObject *oob, plx_err_t *err);

/* A new list or tuple of n items, for the builders above (NULL with err
 * filled when out of memory). */
PyObject *plx_pydesc_new_list(size_t n, plx_err_t *err);
PyObject *plx_pydesc_new_tuple(size_t n, plx_err_t *err);

/* ---- reading a descriptor (the other way: objects -> values) ---- */

typedef enum plx_pydesc_kind {
    PLX_PYDESC_NONE, PLX_PYDESC_BOOL, PLX_PYDESC_I64, PLX_PYDESC_F64, PLX_PYDESC_STR,
    PLX_PYDESC_BYTES, PLX_PYDESC_NDARRAY, PLX_PYDESC_LIST, PLX_PYDESC_PICKLE,
    PLX_PYDESC_REF,   /* ('ref', engine, key): plexa.ref, only a client sends one */
    PLX_PYDESC_NKINDS
} plx_pydesc_kind_t;

/* desc's kind, and in *args its items after the kind's name (borrowed from
 * desc), checked to be as many as the kind has. PLX_OK, or PLX_EINVAL
 * naming what is wrong (not a tuple, an unknown kind, the item count). */
int plx_pydesc_read(PyObject *desc, plx_pydesc_kind_t *kind, PyObject *const **args,
                    plx_err_t *err);

/* A descriptor's scalar items. PLX_OK, or PLX_EINVAL naming the kind. */
int plx_pydesc_get_bool(PyObject *o, int *out, plx_err_t *err);
int plx_pydesc_get_i64(PyObject *o, int64_t *out, plx_err_t *err);
int plx_pydesc_get_f64(PyObject *o, double *out, plx_err_t *err);
/* The UTF-8 of str item o (borrowed from it; what names it in errors). The
 * wire's strings end at the first NUL, so one inside is refused rather
 * than silently cut. */
int plx_pydesc_get_utf8(PyObject *o, const char *what, const char **out, plx_err_t *err);

#endif
