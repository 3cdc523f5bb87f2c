/*
 * Value descriptors: the tuples plexa._serialize.decode turns into Python
 * objects,
 *
 *     ("none",) ("bool", b) ("i64", n) ("f64", x) ("str", s) ("bytes", buf)
 *     ("ndarray", dtype, shape, fortran, buf) ("list", items, is_tuple)
 *     ("pickle", data, [oob buffers])
 *
 * built here only. Two readers walk values into them: the engine from the
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

#endif
