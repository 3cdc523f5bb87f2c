/*
 * Internal to plexa._native: what its source files share. Every message
 * to and from the controller is built and read by libplexa's request layer
 * (core/client/plx_rq.h); these files only turn Python objects into its
 * arguments and its decoded replies into Python objects.
 *
 *   _native.c          the module, Client, errors and arguments
 *   _native_request.c  Request: waiting (GIL released) and reply values
 *   _native_mec.c      the multi-engine verbs (Client.submit_execute, ...)
 *   _native_tasks.c    the task verbs; task specs -> plx_task_spec_t
 *   _native_replies.c  the named reply types (EngineReply, TaskReply, ...)
 *   _native_values.c   Python objects <-> encoded values, zero copy
 *   _native_release.c  giving exported Python buffers back without ever
 *                      making libplexa's I/O thread wait for the GIL
 *   _native_cq.c       Completions: libplexa's completion queue, for the
 *                      callback thread that resolves futures (plexa._callbacks)
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

/* The named reply types (_native_replies.c). */
enum nv_reply_type { NV_ENGINE_REPLY, NV_EXECUTE_RESULT, NV_REMOTE_ERROR, NV_ENGINE_QUEUE,
                     NV_TASK_IDS, NV_TASK_REPLY, NV_NREPLY_TYPES };

/* Per-module state: the types, and objects of other modules we use. */
typedef struct native_state {
    PyTypeObject *client_type;
    PyTypeObject *request_type;
    PyTypeObject *completions_type;
    PyTypeObject *reply_types[NV_NREPLY_TYPES];
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

typedef struct {
    PyObject_HEAD
    plx_client_t     *c;
    plx_client_role_t role;
    int               trust_pickles;   /* unpickle what engines send */
} ClientObject;

/* What a Request's reply is read as. */
enum req_kind { REQ_IDS, REQ_MULTI, REQ_QUEUE_STATUS, REQ_TASK_IDS, REQ_TASK_RESULTS, REQ_ACK,
                REQ_TASK_QSTATUS, REQ_TASK_QSTATUS_VERBOSE };

/* ---- _native.c ---------------------------------------------------------------- */

/* The module state of an object of one of our types; NULL with an exception. */
native_state *nv_state(PyObject *self);
/* Raise the plexa.error exception for a libplexa code. Returns NULL. */
PyObject *nv_raise(native_state *st, int code, const char *msg);
PyObject *nv_raise_err(PyObject *self, const plx_err_t *err);
/* None means no limit (-1); otherwise a non-negative number of seconds. */
int nv_parse_timeout(PyObject *o, double *out);
/* Arguments that are only an optional timeout= (fmt: "|O:name"). 0, or -1
 * with an exception. */
int nv_timeout_only(PyObject *args, PyObject *kw, const char *fmt, double *out);
/* t from None / 'all' / int / sequence of ints; *ids (PyMem_Free) holds its storage. */
int nv_parse_targets(PyObject *o, plx_targets_t *t, int32_t **ids);
/* The C client, or NULL with ConnectionError once closed. */
plx_client_t *nv_client_of(ClientObject *self);

/* ---- _native_request.c ----------------------------------------------------------- */

extern PyType_Spec nv_request_spec;
/* A Request object of kind over r (taking it over, also on failure). */
PyObject *nv_request_new(PyObject *owner, plx_request_t *r, enum req_kind kind);
/* The libplexa request of a Request object (borrowed), or NULL with TypeError. */
plx_request_t *nv_request_handle(PyObject *o);
/* Wait for r (up to timeout, GIL released) and convert its value. */
PyObject *nv_finish_request(PyObject *self, plx_request_t *r, enum req_kind kind,
                            double timeout);

/* ---- _native_cq.c -------------------------------------------------------------------- */

extern PyType_Spec nv_completions_spec;

/* ---- _native_mec.c and _native_tasks.c: Client methods ------------------------------- */

PyObject *nv_get_ids(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_execute(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_get_ids(ClientObject *self, PyObject *unused);
PyObject *nv_submit_execute(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_push(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_pull(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_call(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_clear_queue(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_queue_status(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_kill(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_interrupt(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_cancel(ClientObject *self, PyObject *requests);

PyObject *nv_submit_tasks(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_task_reserve(ClientObject *self, PyObject *args);
PyObject *nv_submit_task_wait(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_task_abort(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_task_clear(ClientObject *self, PyObject *args, PyObject *kw);
PyObject *nv_submit_task_queue_status(ClientObject *self, PyObject *args, PyObject *kw);

/* Intern the spec keys (module exec). */
int nv_tasks_init(native_state *st);
/* TASK_* constants and TASK_STATUS_NAMES {int: name}. */
int nv_add_task_constants(PyObject *mod);

/* ---- _native_replies.c --------------------------------------------------------------- */

/* Create the named reply types and add them to the module. */
int nv_replies_init(PyObject *mod, native_state *st);
/* RemoteError(ename, evalue, traceback), stealing the three references
 * (also on failure; NULL arguments give NULL). */
PyObject *nv_remote_error(native_state *st, PyObject *ename, PyObject *evalue, PyObject *tb);
/* [EngineReply(engine_id, method, execute, values, error), ...] in target
 * order; a value this client cannot decode becomes that engine's error. */
PyObject *nv_multi_value(native_state *st, const plx_multi_reply_t *m);
/* [EngineQueue(engine_id, pending, queue), ...] */
PyObject *nv_queue_status_value(native_state *st, const plx_queue_status_t *q);
/* TaskIds(first_id, count) */
PyObject *nv_task_ids_value(native_state *st, uint64_t first, uint32_t count);
/* [TaskReply(task_id, status, engine_id, values, error, submitted, started,
 * completed), ...]; a result this client cannot decode becomes TASK_FAILED. */
PyObject *nv_task_results_value(native_state *st, const plx_task_replies_t *t);
/* {'pending', 'scheduled', 'succeeded', 'failed'}: counts, or with verbose
 * lists of task ids (0.10's shape). */
PyObject *nv_task_queue_value(const plx_task_queue_t *q, int verbose);

/* ---- _native_values.c ------------------------------------------------------------------ */

/* Encoded values for one request; nv_values_clear frees them (also after
 * a failure). */
typedef struct nv_values {
    plx_value_t **v;
    size_t        n;
} nv_values_t;

/* Encode each object of the sequence objs (plexa._serialize.encode, then
 * the descriptor): an object that cannot be serialized raises what
 * pickling raised; a malformed descriptor raises SerializationError. */
int nv_values_encode(native_state *st, PyObject *objs, nv_values_t *out);
void nv_values_clear(nv_values_t *vals);

/* One object's encoded value. NULL: err->code PLX_OK when a Python
 * exception is set (what pickling raised), else err says why (no
 * exception set). */
plx_value_t *nv_value_encode(native_state *st, PyObject *obj, plx_err_t *err);

/* The object of a decoded value (plexa._serialize.decode, st->decode).
 * NULL with *malformed set and err filled (no exception) when the value
 * cannot be a descriptor; NULL with an exception when decoding raised. */
PyObject *nv_value_decode(native_state *st, const plx_value_t *v, int *malformed,
                          plx_err_t *err);

/* str from UTF-8 (NULL counts as ""), undecodable bytes replaced. */
PyObject *nv_str(const char *s);

/* RemoteError of the pending Python exception, raised on this side while
 * `where` ("decoding the result of task 7"); the traceback ends with
 * "(raised on the client, WHERE)". Clears it. */
PyObject *nv_local_error(native_state *st, const char *where);

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
