/*
 * plx_pyvalue: the wire's Value <-> Python value descriptors, zero copy.
 *
 * python/plexa/_serialize.py turns Python objects into *descriptors*,
 * plain tuples such as ('i64', 5) or ('ndarray', '<f8', (3,), False,
 * buffer), and back. This module converts descriptors to and from the
 * protobuf Value of proto/plexa.proto, the part that needs C:
 *
 *  - receiving, payload buffers (plx_buf_t of a received message) become
 *    plexa.RecvBuffer objects: a small type exporting the buffer protocol
 *    (read-write, 1-D bytes) over the received memory. It holds a buffer
 *    reference and drops it when Python drops the object, so numpy arrays
 *    and pickle-5 buffers built on it share the received memory;
 *  - sending, a buffer-like object is exported with PyObject_GetBuffer and
 *    wrapped in a plx_buf_t whose release callback gives the export back
 *    (PyBuffer_Release, which also drops the reference the export holds)
 *    once the last reference goes, possibly on an I/O thread after the
 *    frame was written.
 *
 * Shared by the embedded engine and the client's extension module, so it
 * includes Python.h but does not link libpython. Every function here must
 * be called with the GIL held, except the release callback machinery.
 * On failure the functions return a negative PLX_E* code, fill err, and
 * leave no Python exception set (a Python error is described in err).
 */
#ifndef PLX_PYVALUE_H
#define PLX_PYVALUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "plexa.pb-c.h"
#include "plexa/error.h"
#include "plx_frame.h"

/* Deepest nesting of ValueList accepted either way. */
#define PLX_PYVALUE_MAX_DEPTH 64

/*
 * The descriptor for v. Buffer indices in v are checked against nbufs
 * (PLX_EPROTO naming the index) and bufs[i] is referenced, not copied.
 * Returns a new reference, or NULL with err filled.
 */
PyObject *plx_pyvalue_to_desc(const Plexa__Value *v, plx_buf_t **bufs, size_t nbufs,
                              plx_err_t *err);

/*
 * Fill *out (initialised here) from desc. Buffers are exported from their
 * Python objects without copying and appended to msg; the Value names them
 * by their index in msg (so the first buffer of a fresh message is 0).
 * Sub-messages and strings of *out are allocated: free them with
 * plx_pyvalue_clear, also after a failure (out is then partly filled).
 * Returns PLX_OK, PLX_EINVAL (malformed descriptor, object without the
 * buffer protocol, str containing NUL) or PLX_ENOMEM.
 */
int plx_pyvalue_from_desc(PyObject *desc, Plexa__Value *out, plx_msg_t *msg,
                          plx_err_t *err);

/* Free what plx_pyvalue_from_desc allocated in v (not v itself) and reset
 * it to an empty Value. Only for Values built by plx_pyvalue_from_desc. */
void plx_pyvalue_clear(Plexa__Value *v);

/*
 * *out = a buffer over obj's memory (the buffer protocol), zero copy when
 * it is contiguous in any order, else copied; the export is given back when
 * the last reference goes (see plx_pyvalue_set_release_defer). The caller
 * owns *out. PLX_EINVAL for an object without the buffer protocol.
 */
int plx_pyvalue_export(PyObject *obj, plx_buf_t **out, plx_err_t *err);

/*
 * Exports of writable memory (a numpy array's) not yet given back: the
 * bytes a frame will send may still change under it. An engine waits for
 * none before it runs the next request, so that a pull sends the value as
 * it was (a later `a += 1` must not tear it). Counted until
 * plx_pyexport_release, so deferred ones count until they are drained.
 */
long plx_pyvalue_writable_exports(void);

/* Whether b is such an export (its memory may still change). */
int plx_pyvalue_is_writable_export(const plx_buf_t *b);

/*
 * A RecvBuffer over b (takes its own reference to b). New reference, or
 * NULL with a Python exception set.
 */
PyObject *plx_recvbuffer_new(plx_buf_t *b);

/* Register the RecvBuffer type in module. 0, or -1 with an exception. */
int plx_pyvalue_module_init(PyObject *module);

/*
 * Where exports are given back. By default the release callback takes the
 * GIL (PyGILState_Ensure) on whatever thread drops the last reference. A
 * program whose I/O thread must never wait for the GIL (ipengine) installs
 * a deferral hook instead: the callback then calls defer(x, ud); when it
 * returns 0 the hook has taken x and must later call plx_pyexport_release
 * with the GIL held; non-zero means "release now, here" (take the GIL).
 * Install before any buffer is exported; not thread-safe against exports.
 */
typedef struct plx_pyexport plx_pyexport_t;
typedef int (*plx_pyexport_defer_fn)(plx_pyexport_t *x, void *ud);
void plx_pyvalue_set_release_defer(plx_pyexport_defer_fn defer, void *ud);

/* Give an export back and free x. GIL held. */
void plx_pyexport_release(plx_pyexport_t *x);

/* Deferral hooks may chain exports waiting for release through this link
 * (no allocation needed on the releasing thread). */
plx_pyexport_t **plx_pyexport_next(plx_pyexport_t *x);

/* Describe the pending Python exception in err ("what: Type: message"),
 * clear it, and return code (PLX_ENOMEM for a MemoryError). Needs the GIL. */
int plx_pyvalue_fail(plx_err_t *err, int code, const char *what);

#endif
