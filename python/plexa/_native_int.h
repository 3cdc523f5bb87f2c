/*
 * Internal to plexa._native: what its three source files share.
 *
 *   _native.c          the module, Client and Request
 *   _native_values.c   Python objects -> wire Values (requests) and
 *                      replies -> Python tuples (results), zero copy
 *   _native_tasks.c    the task interface: TaskSubmit from spec dicts,
 *                      task replies as Python values
 *   _native_release.c  giving exported Python buffers back without ever
 *                      making libplexa's I/O thread wait for the GIL
 *
 * Every function here needs the GIL unless it says otherwise. Functions
 * returning int give 0, or -1 with a Python exception set; functions
 * returning PyObject * give a new reference or NULL with an exception.
 */
#ifndef PLX_NATIVE_INT_H
#define PLX_NATIVE_INT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "plexa/client.h"
#include "plx_client_int.h"
#include "plx_pyvalue.h"

/* Per-module state: the types, and objects of other modules we use. */
typedef struct native_state {
    PyTypeObject *client_type;
    PyTypeObject *request_type;
    PyObject     *kernel_error;
    PyObject     *connection_error;
    PyObject     *security_error;
    PyObject     *invalid_engine_id;
    PyObject     *no_engines;
    PyObject     *serialization_error;   /* KernelError if plexa.error lacks it */
    PyObject     *message_size_error;    /* likewise */
    PyObject     *encode;                /* plexa._serialize.encode */
    PyObject     *decode;                /* plexa._serialize.decode */
    PyObject     *decode_native;         /* ... refusing pickles (trust_engine_pickles off) */
    PyObject     *spec_keys[8];          /* interned task spec keys (_native_tasks.c) */
} native_state;

/* ---- _native.c ---------------------------------------------------------- */

/* Raise the plexa.error exception for a libplexa code. Returns NULL. */
PyObject *nv_raise(native_state *st, int code, const char *msg);

/* ---- _native_values.c ----------------------------------------------------- */

/* Values encoded for one request: v[0..n) with pointers p (what protobuf-c
 * wants), and the frame buffers they name (bufs->bufs[0..bufs->nbufs)),
 * exported from the Python objects without a copy. */
typedef struct nv_values {
    Plexa__Value  *v;
    Plexa__Value **p;
    size_t         n;
    plx_msg_t     *bufs;   /* only its buffer list is used */
} nv_values_t;

/* Encode each object of the sequence objs (plexa._serialize.encode, then
 * core/pyvalue) into out, which the caller clears with nv_values_clear
 * also after a failure. An object that cannot be serialized raises what
 * pickling raised; a malformed result raises SerializationError. */
int nv_values_encode(native_state *st, PyObject *objs, nv_values_t *out);
void nv_values_clear(nv_values_t *vals);

/* The Python value of a multi-engine reply: one tuple per engine, in the
 * reply's (target) order:
 *     (engine_id, method, execute, values, error)
 * method: str or None; execute: None or (number, input, stdout, stderr);
 * values: list of decoded objects (arrays are views of msg's buffers);
 * error: None or (ename, evalue, traceback). A value the client cannot
 * decode (a class it cannot import, a malformed reply) becomes that
 * engine's error instead of failing the whole result. */
PyObject *nv_multi_reply(native_state *st, const plx_msg_t *msg, const Plexa__MultiReply *mr);

/* A Python list of convert(st, msg, items[i]) for n reply items; NULL (with
 * the exception set) if one conversion fails. */
typedef PyObject *(*nv_item_fn)(native_state *st, const plx_msg_t *msg, const void *item);
PyObject *nv_list_of(native_state *st, const plx_msg_t *msg, void *const *items, size_t n,
                     nv_item_fn convert);

/* queue_status's value: [(engine_id, [pending, ...], [queued, ...]), ...]. */
PyObject *nv_queue_status(const Plexa__QueueStatusReply *qr);

/* str from UTF-8 (NULL counts as ""), undecodable bytes replaced. */
PyObject *nv_str(const char *s);

/* (ename, evalue, traceback) of the pending Python exception, raised on
 * this side while `where` ("decoding the result of task 7"); the
 * traceback ends with "(raised on the client, WHERE)". Clears it. */
PyObject *nv_local_error(const char *where);

/* ---- _native_tasks.c ---------------------------------------------------- */

/* Intern the spec keys (module exec). */
int nv_tasks_init(native_state *st);

/* Encode the spec dicts (see _native.c's docstring) into one TaskSubmit and
 * send it on c. first_id 0: the controller assigns ids and *r gets the
 * request its TaskIds answers. Otherwise the tasks take first_id.. from
 * the connection's reserved block and go quietly (no reply, *r untouched).
 * 0, or -1 with an exception. */
int nv_submit_tasks(native_state *st, plx_client_t *c, PyObject *specs, uint64_t first_id,
                    plx_request_t **r);

/* None, an int or a sequence of ints -> a PyMem_Malloc'd array (NULL when
 * empty; free with PyMem_Free). */
int nv_parse_task_ids(PyObject *o, uint64_t **out, size_t *n);

/* (first_id, count) */
PyObject *nv_task_ids(const Plexa__TaskIds *ti);

/* [(task_id, status, engine_id, values, error, submitted, started,
 *   completed), ...]; values decoded (zero copy as for pull). A result whose
 * values cannot be decoded here comes back TASK_FAILED with that error. */
PyObject *nv_task_results(native_state *st, const plx_msg_t *msg, const Plexa__TaskResults *tr);

/* {'pending': n, 'scheduled': n, 'succeeded': n, 'failed': n}; with
 * verbose, lists of task ids instead of the counts (0.10's shape). */
PyObject *nv_task_queue_status(const Plexa__TaskQueueStatusReply *q, int verbose);

/* TASK_* constants and TASK_STATUS_NAMES {int: name}. */
int nv_add_task_constants(PyObject *mod);

/* ---- _native_release.c ------------------------------------------------- */

/* Install the deferral hook of core/pyvalue (once, at module exec): an
 * export whose last reference goes away on any thread is queued, never
 * released there; queued exports are released by nv_release_drain. */
void nv_release_init(void);

/* Release the queued exports now. GIL held. Cheap when none wait. */
void nv_release_drain(void);

/* The interpreter is finalizing: stop scheduling pending calls. */
void nv_release_finalizing(void);

#endif
