/*
 * plexa._native: the Python face of libplexa's client.
 *
 *   Client(url_or_file='', profile=None, timeout=10.0, role='mec', trust_pickles=True)
 *     trust_pickles False: values engines send are only plexa's native ones
 *     (None, bool, int, float, str, bytes, arrays, lists and tuples); a
 *     pickle becomes that engine's error (UntrustedPickle) instead of
 *     being unpickled, which would run code the sender chose.
 *     role 'mec': the multi-engine capability (ipcontroller-mec.url,
 *     $PLEXA_URL); role 'task': the task capability (ipcontroller-tc.url,
 *     $PLEXA_TASK_URL); role 'status': the read-only capability
 *     (ipcontroller-status.url), which may only call get_ids,
 *     submit_queue_status and submit_task_queue_status. url_or_file and
 *     profile as for libplexa.
 *     .role -> 'mec' | 'task' | 'status'
 *     .get_ids(timeout=None) -> [int]            (every role)
 *     .close(); .closed; .peer                   (every role)
 *   mec role:
 *     .execute(code, targets=None, timeout=None) -> submit_execute(...).result()
 *     .submit_get_ids() -> Request
 *     .submit_execute(code, targets=None) -> Request
 *     .submit_push(targets, items)          items: [(name, obj), ...] (or a dict)
 *     .submit_pull(targets, keys)           keys: [str, ...]
 *     .submit_call(targets, method, args)   args: [obj, ...]; method: keys, reset,
 *                                           get_result, map, apply (engine side)
 *     .submit_clear_queue(targets)
 *     .submit_queue_status(targets)
 *     .submit_kill(targets, controller=False)
 *     .submit_interrupt(targets=None)       KeyboardInterrupt in whatever the
 *                                           targets run now (not queued)
 *   task role:
 *     .submit_tasks(specs)                  -> Request; result(): (first_id, count)
 *     .submit_tasks(specs, first_id=N)      -> None: the tasks take ids N.. from the
 *                                              block submit_task_reserve gave this
 *                                              connection (in order, no reply; a
 *                                              submission that cannot be queued
 *                                              becomes failed tasks under those ids)
 *     .submit_task_reserve(count)           -> Request; result(): (first_id, count)
 *     .submit_task_wait(ids, block=True, release=False)
 *                                           -> Request; result(): [result tuple, ...]
 *     .submit_task_abort(ids)               -> Request; result(): None
 *     .submit_task_clear(ids=None)          -> Request; result(): None (None/[]: every
 *                                              finished task)
 *     .submit_task_queue_status(verbose=False) -> Request; result(): dict
 *   Request: .id, .done(), .wait(timeout=None) -> bool, .result(timeout=None),
 *            .cancel()
 *
 * Request.result() of every multi-engine request (execute, push, pull,
 * call, clear_queue, kill) is a list with one tuple per target engine, in
 * target order:
 *     (engine_id, method, execute, values, error)
 * method: str ("execute", "push", "pull", the call's method, "clear_queue",
 * "kill") or None; execute: None or (number, input, stdout, stderr);
 * values: list of decoded objects (pull: one per key; call: the helper's
 * results); error: None or (ename, evalue, traceback), the remote
 * exception (or a client-side decoding failure of that engine's values).
 * queue_status: [(engine_id, [pending, ...], [queued, ...]), ...].
 * interrupt: [(engine_id, 'interrupt', None, [], None), ...].
 * get_ids: [int]. The value is computed once and cached by the Request.
 *
 * Tasks. specs is a list of dicts, one per task, with the keys
 *     kind          'map' | 'chunk' | 'string' (required)
 *     args          list of objects: map (func, args, kwargs); chunk (func,
 *                   [args tuple, ...]); string (code, push dict or None,
 *                   pull: None, a str or a list of str)
 *     clear_before, clear_after   bool: reset the engine's namespace
 *     retries       int: re-runs after a failure or an engine death
 *     depend        None or callable(properties) -> bool, run on the engine
 *                   offered the task (False: offer it elsewhere)
 *     after         list of task ids that must finish first
 *     recovery      None or a spec dict (no recovery of its own), run under
 *                   the same id once retries are spent
 * (unknown keys raise ValueError). All tasks of one call go in one message
 * and get consecutive ids: result() is (first_id, count), count being
 * those the controller accepted. A message holds at most 65536 buffers and
 * a 16 MiB envelope: beyond that MessageSizeError (submit in batches).
 * Each task's objects are encoded once per call and object (a map's
 * function is pickled once for all its tasks) and travel zero-copy.
 *
 * ids (task_wait, abort, clear): an int or a sequence of ints (a range too).
 * task_wait: block=True answers once every task is finished; block=False at
 * once, unfinished ones as TASK_PENDING. release=True tells the controller
 * the caller keeps the results (they may be evicted first). result() is a
 * list in ids order of
 *     (task_id, status, engine_id, values, error, submitted, started, completed)
 * status: a TASK_* constant; engine_id: int or None (never ran);
 * values: list of decoded objects, by kind:
 *     map     [func(*args, **kwargs)]
 *     chunk   [[func(*a) for a in arg tuples]]
 *     string  [{pulled name: value}, stdout, stderr] — also when the code
 *             raised (then the dict is {}); a missing pull name fails the
 *             task with NameError
 *     [] when the task was not run or failed before running (rejected,
 *     aborted, engine died, timeout, evicted, unknown, a map/chunk that
 *     raised)
 * error: None or (ename, evalue, traceback): the remote exception, or the
 * controller's reason ('TaskAborted', 'EngineError', 'TaskTimeout',
 * 'ResultEvicted', 'IndexError' for an unknown id); a value this client
 * cannot decode turns the result into TASK_FAILED with that error.
 * submitted/started/completed: unix times (float) or None; started and
 * completed are measured on the engine.
 * task_abort / task_clear: None; a refused abort (a finished or unknown
 * task) raises KernelError with the controller's message, e.g. "task 7
 * already completed". task_queue_status: {'pending', 'scheduled',
 * 'succeeded', 'failed'}: counts, or with verbose lists of task ids (0.10's
 * shape). pending: queued in the controller or waiting for 'after' tasks
 * (the verbose list holds only the queued ones); scheduled: sent to an
 * engine (running or queued there); succeeded/failed: finished results the
 * controller still holds.
 * Module constants: TASK_PENDING (0), TASK_OK, TASK_FAILED, TASK_REJECTED,
 * TASK_ABORTED, TASK_ENGINE_DIED, TASK_TIMEOUT, TASK_EVICTED, TASK_UNKNOWN
 * (8), and TASK_STATUS_NAMES {value: name}.
 *
 * targets: None or 'all' (every engine), an int, or a sequence of ints.
 * timeout: seconds, None = no limit; a call that times out raises
 * plexa.error.KernelError (the request is forgotten).
 *
 * Objects travel as plexa._serialize describes: arrays, bytes and pickle-5
 * buffers zero-copy in both directions (see _native_values.c); exported
 * buffers are given back without the I/O thread taking the GIL (see
 * _native_release.c).
 *
 * The GIL is released while waiting. Waits wake every WAIT_SLICE_S to run
 * signal handlers, so Ctrl-C interrupts a long execute (the request is then
 * forgotten; the engines still run it). C errors become the exceptions of
 * plexa.error, each with libplexa's message.
 */
#include "_native_int.h"

#include <math.h>
#include <time.h>

#define WAIT_SLICE_S 0.1
#define CONNECT_TIMEOUT_S 10.0

static struct PyModuleDef native_module;

typedef struct {
    PyObject_HEAD
    plx_client_t     *c;
    plx_client_role_t role;
    int               trust_pickles;   /* unpickle what engines send */
} ClientObject;

enum req_kind { REQ_IDS, REQ_MULTI, REQ_QUEUE_STATUS, REQ_TASK_IDS, REQ_TASK_RESULTS, REQ_ACK,
                REQ_TASK_QSTATUS, REQ_TASK_QSTATUS_VERBOSE };

typedef struct {
    PyObject_HEAD
    plx_request_t *r;
    enum req_kind  kind;
    PyObject      *value;   /* the converted result, once computed */
    int            trust_pickles;   /* its client's */
} RequestObject;

static native_state *state_of(PyObject *self)
{
    PyObject *mod = PyType_GetModuleByDef(Py_TYPE(self), &native_module);
    return mod ? PyModule_GetState(mod) : NULL;
}

/* ---- errors -------------------------------------------------------------- */

PyObject *nv_raise(native_state *st, int code, const char *msg)
{
    PyObject *cls;
    switch (code) {
    case PLX_ENOMEM:     return PyErr_NoMemory();
    case PLX_ECONNECT:
    case PLX_ECLOSED:    cls = st->connection_error; break;
    case PLX_EAUTH:      cls = st->security_error; break;
    case PLX_EBADENGINE: cls = st->invalid_engine_id; break;
    case PLX_ENOENGINES: cls = st->no_engines; break;
    case PLX_ELIMIT:     cls = st->message_size_error; break;
    default:             cls = st->kernel_error; break;
    }
    PyErr_SetString(cls, msg && *msg ? msg : plx_strerror(code));
    return NULL;
}

static PyObject *raise_err(PyObject *self, const plx_err_t *err)
{
    native_state *st = state_of(self);
    return st ? nv_raise(st, err->code, err->msg) : NULL;
}

/* ---- arguments ----------------------------------------------------------- */

/* None means no limit (-1); otherwise a non-negative number of seconds. */
static int parse_timeout(PyObject *o, double *out)
{
    if (o == NULL || o == Py_None) {
        *out = -1;
        return 0;
    }
    double t = PyFloat_AsDouble(o);
    if (t == -1 && PyErr_Occurred())
        return -1;
    if (t < 0 || isnan(t)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be None or >= 0");
        return -1;
    }
    *out = t;
    return 0;
}

static int to_engine_id(PyObject *o, int32_t *out)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            PyErr_SetString(PyExc_TypeError, "targets must be 'all', an int or a list of ints");
        return -1;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "engine id %ld is out of range", v);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

/* Fill t from None / 'all' / int / sequence of ints. *ids holds storage the
 * caller frees with PyMem_Free. */
static int parse_targets(PyObject *o, plx_targets_t *t, int32_t **ids)
{
    *ids = NULL;
    *t = (plx_targets_t){ .all = 1 };
    if (o == NULL || o == Py_None)
        return 0;
    if (PyUnicode_Check(o)) {
        if (PyUnicode_CompareWithASCIIString(o, "all") == 0)
            return 0;
        PyErr_SetString(PyExc_ValueError, "targets must be 'all', an int or a list of ints");
        return -1;
    }
    PyObject *seq = PyLong_Check(o) ? PyTuple_Pack(1, o)
                                    : PySequence_Fast(o, "targets must be 'all', an int or a list of ints");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    *ids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof **ids);
    if (!*ids) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (to_engine_id(PySequence_Fast_GET_ITEM(seq, i), &(*ids)[i]) < 0) {
            Py_DECREF(seq);
            PyMem_Free(*ids);
            *ids = NULL;
            return -1;
        }
    }
    Py_DECREF(seq);
    *t = (plx_targets_t){ .all = 0, .ids = *ids, .n = (size_t)n };
    return 0;
}

/* ---- waiting ------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait for r with the GIL released. 1 complete, 0 timed out, -1 with an
 * exception set (a signal handler raised, e.g. KeyboardInterrupt). */
static int wait_request(plx_request_t *r, double timeout)
{
    double deadline = timeout >= 0 ? now_s() + timeout : 0;
    for (;;) {
        double slice = WAIT_SLICE_S;
        if (timeout >= 0) {
            double left = deadline - now_s();
            if (left < slice)
                slice = left > 0 ? left : 0;
        }
        Py_BEGIN_ALLOW_THREADS
        plx_request_wait(r, slice, NULL);
        Py_END_ALLOW_THREADS
        nv_release_drain();   /* the main thread may be waiting here */
        if (plx_request_done(r))
            return 1;
        if (PyErr_CheckSignals() < 0)
            return -1;
        if (timeout >= 0 && now_s() >= deadline)
            return 0;
    }
}

/* ---- converting replies -------------------------------------------------- */

static PyObject *ids_list(const int32_t *ids, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    return list;
}

static PyObject *ids_value(PyObject *self, plx_request_t *r)
{
    plx_err_t err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (plx_request_ids(r, &ids, &n, &err) != PLX_OK)
        return raise_err(self, &err);
    PyObject *list = ids_list(ids, n);
    free(ids);
    return list;
}

/* The reply of a completed request, checked to carry body. */
static const Plexa__Envelope *reply_of(PyObject *self, plx_request_t *r,
                                       Plexa__Envelope__BodyCase body, const char *what,
                                       const plx_msg_t **msg)
{
    plx_err_t err = {0};
    const Plexa__Envelope *env = NULL;
    if (plx_request_reply(r, msg, &env, &err) != PLX_OK) {
        raise_err(self, &err);
        return NULL;
    }
    if (env->body_case != body) {
        err.code = PLX_EPROTO;
        snprintf(err.msg, sizeof err.msg, "the controller answered request %llu with %s, not %s",
                 (unsigned long long)plx_request_id(r), env->body_case ? "another message"
                                                                       : "an empty message",
                 what);
        raise_err(self, &err);
        return NULL;
    }
    return env;
}

/* Whether self (a Client, or a Request of one) unpickles engines' values. */
static int trusts_pickles(PyObject *self, const native_state *st)
{
    if (Py_TYPE(self) == st->request_type)
        return ((RequestObject *)self)->trust_pickles;
    return ((ClientObject *)self)->trust_pickles;
}

/* The Python value of a completed request, or NULL with an exception. */
static PyObject *request_value(PyObject *self, plx_request_t *r, enum req_kind kind)
{
    native_state *mod = state_of(self);
    const plx_msg_t *msg = NULL;
    const Plexa__Envelope *env;
    if (!mod)
        return NULL;
    /* The conversions decode with st->decode: a client that does not trust
     * engines' pickles converts through a view whose decode refuses them. */
    native_state view = *mod, *st = &view;
    if (!trusts_pickles(self, mod))
        view.decode = mod->decode_native;
    switch (kind) {
    case REQ_IDS:
        return ids_value(self, r);
    case REQ_QUEUE_STATUS:
        env = reply_of(self, r, PLEXA__ENVELOPE__BODY_QUEUE_STATUS_REPLY, "a queue status", &msg);
        return env ? nv_queue_status(env->queue_status_reply) : NULL;
    case REQ_TASK_IDS:
        env = reply_of(self, r, PLEXA__ENVELOPE__BODY_TASK_IDS, "task ids", &msg);
        return env ? nv_task_ids(env->task_ids) : NULL;
    case REQ_ACK:
        env = reply_of(self, r, PLEXA__ENVELOPE__BODY_TASK_IDS, "an acknowledgement", &msg);
        return env ? Py_NewRef(Py_None) : NULL;
    case REQ_TASK_RESULTS:
        env = reply_of(self, r, PLEXA__ENVELOPE__BODY_TASK_RESULTS, "task results", &msg);
        return env ? nv_task_results(st, msg, env->task_results) : NULL;
    case REQ_TASK_QSTATUS:
    case REQ_TASK_QSTATUS_VERBOSE:
        env = reply_of(self, r, PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS_REPLY,
                       "a task queue status", &msg);
        return env ? nv_task_queue_status(env->task_queue_status_reply,
                                          kind == REQ_TASK_QSTATUS_VERBOSE)
                   : NULL;
    case REQ_MULTI:
    default:
        env = reply_of(self, r, PLEXA__ENVELOPE__BODY_MULTI_REPLY, "a multi-engine reply", &msg);
        return env ? nv_multi_reply(st, msg, env->multi_reply) : NULL;
    }
}

/* Wait for r (up to timeout) and convert its value; the common tail of the
 * blocking calls and Request.result. */
static PyObject *finish_request(PyObject *self, plx_request_t *r, enum req_kind kind,
                                double timeout)
{
    int done = wait_request(r, timeout);
    if (done < 0)
        return NULL;
    if (!done) {
        native_state *st = state_of(self);
        if (st)
            PyErr_Format(st->kernel_error, "no reply to request %llu within %g s",
                         (unsigned long long)plx_request_id(r), timeout);
        return NULL;
    }
    return request_value(self, r, kind);
}

/* ---- Request ------------------------------------------------------------- */

static PyObject *request_new_object(PyObject *owner, plx_request_t *r, enum req_kind kind)
{
    native_state *st = state_of(owner);
    RequestObject *o = st ? PyObject_GC_New(RequestObject, st->request_type) : NULL;
    if (!o) {
        plx_request_destroy(&r);
        return NULL;
    }
    o->r = r;
    o->kind = kind;
    o->value = NULL;
    o->trust_pickles = Py_TYPE(owner) == st->request_type ? ((RequestObject *)owner)->trust_pickles
                                                          : ((ClientObject *)owner)->trust_pickles;
    PyObject_GC_Track(o);
    return (PyObject *)o;
}

/* The cached value may hold user objects that refer back to the request
 * (a PendingResult kept inside a pulled structure): collectable. */
static int Request_traverse(RequestObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->value);
    return 0;
}

static int Request_clear(RequestObject *self)
{
    Py_CLEAR(self->value);
    return 0;
}

static void Request_dealloc(RequestObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Request_clear(self);
    plx_request_destroy(&self->r);
    PyObject_GC_Del(self);
    Py_DECREF(tp);
}

static PyObject *Request_done(RequestObject *self, PyObject *unused)
{
    return PyBool_FromLong(plx_request_done(self->r));
}

static PyObject *Request_wait(RequestObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "timeout", NULL };
    PyObject *to = Py_None;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &to) ||
        parse_timeout(to, &timeout) < 0)
        return NULL;
    int done = wait_request(self->r, timeout);
    return done < 0 ? NULL : PyBool_FromLong(done);
}

static PyObject *Request_result(RequestObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "timeout", NULL };
    PyObject *to = Py_None;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:result", kwlist, &to) ||
        parse_timeout(to, &timeout) < 0)
        return NULL;
    if (!self->value)
        self->value = finish_request((PyObject *)self, self->r, self->kind, timeout);
    return Py_XNewRef(self->value);
}

static PyObject *Request_cancel(RequestObject *self, PyObject *unused)
{
    plx_request_cancel(self->r);
    Py_RETURN_NONE;
}

static PyObject *Request_get_id(RequestObject *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(plx_request_id(self->r));
}

static PyMethodDef Request_methods[] = {
    { "done", (PyCFunction)Request_done, METH_NOARGS,
      "done() -> bool: True once the request has completed (any outcome)." },
    { "wait", (PyCFunction)(void (*)(void))Request_wait, METH_VARARGS | METH_KEYWORDS,
      "wait(timeout=None) -> bool: block (GIL released) until complete or timeout." },
    { "result", (PyCFunction)(void (*)(void))Request_result, METH_VARARGS | METH_KEYWORDS,
      "result(timeout=None): wait, then return the value (computed once) or raise its\n"
      "error; see the module documentation for the shapes." },
    { "cancel", (PyCFunction)Request_cancel, METH_NOARGS,
      "cancel(): stop waiting; the request completes with an error, a late reply is dropped." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Request_getset[] = {
    { "id", (getter)Request_get_id, NULL, "The request id sent to the controller.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot Request_slots[] = {
    { Py_tp_dealloc, Request_dealloc },
    { Py_tp_traverse, Request_traverse },
    { Py_tp_clear, Request_clear },
    { Py_tp_methods, Request_methods },
    { Py_tp_getset, Request_getset },
    { Py_tp_doc, "A request in flight to the controller (from Client.submit_*)." },
    { 0, NULL },
};

static PyType_Spec Request_spec = {
    .name = "plexa._native.Request",
    .basicsize = sizeof(RequestObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_HAVE_GC,
    .slots = Request_slots,
};

/* ---- Client -------------------------------------------------------------- */

static int Client_init(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "url_or_file", "profile", "timeout", "role", "trust_pickles",
                              NULL };
    const char *url = "", *profile = NULL, *role_s = "mec";
    double timeout = CONNECT_TIMEOUT_S;
    int trust = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zzdsp:Client", kwlist, &url, &profile, &timeout,
                                     &role_s, &trust))
        return -1;
    plx_client_role_t role;
    if (strcmp(role_s, "mec") == 0) {
        role = PLX_CLIENT_ROLE_MEC;
    } else if (strcmp(role_s, "task") == 0) {
        role = PLX_CLIENT_ROLE_TASK;
    } else if (strcmp(role_s, "status") == 0) {
        role = PLX_CLIENT_ROLE_STATUS;
    } else {
        PyErr_Format(PyExc_ValueError, "role must be 'mec', 'task' or 'status', not '%.100s'",
                     role_s);
        return -1;
    }
    if (self->c) {
        /* Replacing a live client under threads that use it is a use-after-free. */
        PyErr_SetString(PyExc_RuntimeError, "Client is already connected; make a new one");
        return -1;
    }
    plx_err_t err = {0};
    plx_client_t *c;
    Py_BEGIN_ALLOW_THREADS
    c = plx_client_connect_role(url ? url : "", profile, role, timeout, &err);
    Py_END_ALLOW_THREADS
    if (!c) {
        raise_err((PyObject *)self, &err);
        return -1;
    }
    self->c = c;
    self->role = role;
    self->trust_pickles = trust;
    return 0;
}

static void Client_dealloc(ClientObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    plx_client_destroy(&self->c);
    nv_release_drain();   /* the client's unsent messages held exports */
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* The C client, or NULL with ConnectionError once closed. */
static plx_client_t *client_of(ClientObject *self)
{
    if (!self->c) {
        native_state *st = state_of((PyObject *)self);
        if (st)
            PyErr_SetString(st->connection_error, "the client is closed");
    }
    return self->c;
}

static PyObject *Client_close(ClientObject *self, PyObject *unused)
{
    plx_client_destroy(&self->c);
    nv_release_drain();
    Py_RETURN_NONE;
}

/* ---- submitting ----------------------------------------------------------- */

static void fill_targets(const plx_targets_t *t, Plexa__Targets *tg)
{
    plexa__targets__init(tg);
    if (t->all) {
        tg->has_all = 1;
        tg->all = 1;
    } else {
        tg->n_ids = t->n;
        tg->ids = (int32_t *)t->ids;   /* only read while packing */
    }
}

/* Send env (its body set by the caller) to targets with the buffers of
 * vals (may be NULL). Returns the C request, or NULL with an exception. */
static plx_request_t *submit_env(ClientObject *self, PyObject *targets, Plexa__Envelope *env,
                                 const nv_values_t *vals)
{
    plx_client_t *c = client_of(self);
    plx_targets_t t;
    int32_t *ids = NULL;
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!c || parse_targets(targets, &t, &ids) < 0)
        return NULL;
    Plexa__Targets tg;
    fill_targets(&t, &tg);
    env->targets = &tg;
    const plx_msg_t *bm = vals ? vals->bufs : NULL;
    int rc = plx_client_submit(c, env, bm ? bm->bufs : NULL, bm ? bm->nbufs : 0, &r, &err);
    env->targets = NULL;
    PyMem_Free(ids);
    if (rc != PLX_OK)
        raise_err((PyObject *)self, &err);
    return r;
}

/* submit_env, wrapped in a Request object of kind. */
static PyObject *submit_request(ClientObject *self, PyObject *targets, Plexa__Envelope *env,
                                const nv_values_t *vals, enum req_kind kind)
{
    plx_request_t *r = submit_env(self, targets, env, vals);
    nv_release_drain();
    return r ? request_new_object((PyObject *)self, r, kind) : NULL;
}

static PyObject *Client_submit_get_ids(ClientObject *self, PyObject *unused)
{
    plx_client_t *c = client_of(self);
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!c)
        return NULL;
    if (plx_rq_get_ids(c, &r, &err) != PLX_OK)
        return raise_err((PyObject *)self, &err);
    return request_new_object((PyObject *)self, r, REQ_IDS);
}

static plx_request_t *submit_execute(ClientObject *self, const char *code, PyObject *targets)
{
    Plexa__Execute ex = PLEXA__EXECUTE__INIT;
    ex.code = (char *)code;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_EXECUTE;
    env.execute = &ex;
    return submit_env(self, targets, &env, NULL);
}

static PyObject *Client_submit_execute(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "code", "targets", NULL };
    const char *code;
    PyObject *targets = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O:submit_execute", kwlist, &code, &targets))
        return NULL;
    plx_request_t *r = submit_execute(self, code, targets);
    return r ? request_new_object((PyObject *)self, r, REQ_MULTI) : NULL;
}

/* A str's UTF-8 (borrowed from o), refusing NUL, which would cut it on
 * the wire. what names the argument. NULL with an exception. */
static const char *name_utf8(PyObject *o, const char *what)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not '%.100s'", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s && memchr(s, '\0', (size_t)n)) {
        PyErr_Format(PyExc_ValueError, "%s %R contains a NUL character", what, o);
        return NULL;
    }
    return s;
}

/* The (name, value) pairs of a push: names borrowed from pairs. */
typedef struct push_items {
    PyObject    *pairs;   /* the items as a fast sequence; keeps names alive */
    PyObject    *objs;    /* list of the values */
    const char **names;
    Py_ssize_t   n;
} push_items_t;

static void push_items_clear(push_items_t *a)
{
    Py_CLEAR(a->pairs);
    Py_CLEAR(a->objs);
    PyMem_Free(a->names);
    a->names = NULL;
}

static int push_items_parse(PyObject *items, push_items_t *a)
{
    memset(a, 0, sizeof *a);
    PyObject *src = PyDict_Check(items) ? PyDict_Items(items) : Py_NewRef(items);
    a->pairs = src ? PySequence_Fast(src, "items must be a list of (name, value) pairs") : NULL;
    Py_XDECREF(src);
    if (!a->pairs)
        return -1;
    a->n = PySequence_Fast_GET_SIZE(a->pairs);
    a->objs = PyList_New(a->n);
    a->names = PyMem_Calloc(a->n ? (size_t)a->n : 1, sizeof *a->names);
    if (!a->objs || !a->names) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < a->n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(a->pairs, i);
        if (!(PyTuple_Check(it) && PyTuple_GET_SIZE(it) == 2)) {
            PyErr_Format(PyExc_TypeError, "push item %zd is a '%.100s', not a (name, value) pair",
                         i, Py_TYPE(it)->tp_name);
            return -1;
        }
        a->names[i] = name_utf8(PyTuple_GET_ITEM(it, 0), "a pushed name");
        if (!a->names[i])
            return -1;
        PyList_SET_ITEM(a->objs, i, Py_NewRef(PyTuple_GET_ITEM(it, 1)));
    }
    return 0;
}

/* Build and submit the Push of parsed items (values encoded here). */
static PyObject *submit_push(ClientObject *self, PyObject *targets, const push_items_t *a)
{
    native_state *st = state_of((PyObject *)self);
    nv_values_t vals;
    if (!st || nv_values_encode(st, a->objs, &vals) < 0) {
        if (st)
            nv_values_clear(&vals);
        return NULL;
    }
    Plexa__NamedValue *nv = PyMem_Calloc(a->n ? (size_t)a->n : 1, sizeof *nv);
    Plexa__NamedValue **nvp = PyMem_Calloc(a->n ? (size_t)a->n : 1, sizeof *nvp);
    PyObject *req = NULL;
    if (!nv || !nvp) {
        PyErr_NoMemory();
    } else {
        for (Py_ssize_t i = 0; i < a->n; i++) {
            plexa__named_value__init(&nv[i]);
            nv[i].name = (char *)a->names[i];
            nv[i].value = vals.p[i];
            nvp[i] = &nv[i];
        }
        Plexa__Push push = PLEXA__PUSH__INIT;
        push.n_values = (size_t)a->n;
        push.values = nvp;
        Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
        env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
        env.push = &push;
        req = submit_request(self, targets, &env, &vals, REQ_MULTI);
    }
    PyMem_Free(nv);
    PyMem_Free(nvp);
    nv_values_clear(&vals);
    return req;
}

static PyObject *Client_submit_push(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", "items", NULL };
    PyObject *targets, *items;
    push_items_t a;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:submit_push", kwlist, &targets, &items))
        return NULL;
    PyObject *req = push_items_parse(items, &a) == 0 ? submit_push(self, targets, &a) : NULL;
    push_items_clear(&a);
    return req;
}

static PyObject *Client_submit_pull(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", "keys", NULL };
    PyObject *targets, *keys, *req = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:submit_pull", kwlist, &targets, &keys))
        return NULL;
    if (PyUnicode_Check(keys))   /* a str is a sequence too: of one-letter keys */
        return PyErr_Format(PyExc_TypeError, "keys must be a list of str, not a str");
    PyObject *seq = PySequence_Fast(keys, "keys must be a list of str");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **names = PyMem_Calloc(n ? (size_t)n : 1, sizeof *names);
    int ok = names != NULL;
    if (!ok)
        PyErr_NoMemory();
    for (Py_ssize_t i = 0; ok && i < n; i++)
        ok = (names[i] = name_utf8(PySequence_Fast_GET_ITEM(seq, i), "a key")) != NULL;
    if (ok) {
        Plexa__Pull pull = PLEXA__PULL__INIT;
        pull.n_keys = (size_t)n;
        pull.keys = (char **)names;
        Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
        env.body_case = PLEXA__ENVELOPE__BODY_PULL;
        env.pull = &pull;
        req = submit_request(self, targets, &env, NULL, REQ_MULTI);
    }
    PyMem_Free(names);
    Py_DECREF(seq);
    return req;
}

static PyObject *Client_submit_call(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", "method", "args", NULL };
    PyObject *targets, *cargs, *req = NULL;
    const char *method;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OsO:submit_call", kwlist, &targets, &method,
                                     &cargs))
        return NULL;
    native_state *st = state_of((PyObject *)self);
    if (!st)
        return NULL;
    nv_values_t vals;
    if (nv_values_encode(st, cargs, &vals) == 0) {
        Plexa__Call call = PLEXA__CALL__INIT;
        call.method = (char *)method;
        call.n_args = vals.n;
        call.args = vals.p;
        Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
        env.body_case = PLEXA__ENVELOPE__BODY_CALL;
        env.call = &call;
        req = submit_request(self, targets, &env, &vals, REQ_MULTI);
    }
    nv_values_clear(&vals);
    return req;
}

static PyObject *Client_submit_clear_queue(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", NULL };
    PyObject *targets = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:submit_clear_queue", kwlist, &targets))
        return NULL;
    Plexa__ClearQueue cq = PLEXA__CLEAR_QUEUE__INIT;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_CLEAR_QUEUE;
    env.clear_queue = &cq;
    return submit_request(self, targets, &env, NULL, REQ_MULTI);
}

static PyObject *Client_submit_queue_status(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", NULL };
    PyObject *targets = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:submit_queue_status", kwlist, &targets))
        return NULL;
    Plexa__QueueStatus qs = PLEXA__QUEUE_STATUS__INIT;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_QUEUE_STATUS;
    env.queue_status = &qs;
    return submit_request(self, targets, &env, NULL, REQ_QUEUE_STATUS);
}

static PyObject *Client_submit_kill(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", "controller", NULL };
    PyObject *targets = Py_None;
    int controller = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Op:submit_kill", kwlist, &targets, &controller))
        return NULL;
    Plexa__Shutdown sd = PLEXA__SHUTDOWN__INIT;
    sd.has_controller = 1;
    sd.controller = controller != 0;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_SHUTDOWN;
    env.shutdown = &sd;
    return submit_request(self, targets, &env, NULL, REQ_MULTI);
}

static PyObject *Client_submit_interrupt(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", NULL };
    PyObject *targets = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:submit_interrupt", kwlist, &targets))
        return NULL;
    Plexa__Interrupt in = PLEXA__INTERRUPT__INIT;
    in.has_task_id = 1;
    in.task_id = 0;   /* whatever runs */
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_INTERRUPT;
    env.interrupt = &in;
    return submit_request(self, targets, &env, NULL, REQ_MULTI);
}

/* ---- the task interface ------------------------------------------------------ */

/* The C client when it is a task client (or, for read-only requests, a
 * status client); else NULL with an exception. */
static plx_client_t *task_client_of(ClientObject *self, const char *what, int read_only)
{
    plx_client_t *c = client_of(self);
    int ok = self->role == PLX_CLIENT_ROLE_TASK ||
             (read_only && self->role == PLX_CLIENT_ROLE_STATUS);
    if (c && !ok) {
        PyErr_Format(PyExc_TypeError, "%s needs a task client: Client(..., role='task')", what);
        return NULL;
    }
    return c;
}

/* Submit a task-interface envelope (no targets, no buffers). */
static PyObject *submit_task_env(ClientObject *self, Plexa__Envelope *env, enum req_kind kind,
                                 const char *what)
{
    plx_client_t *c =
        task_client_of(self, what, env->body_case == PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS);
    if (!c)
        return NULL;
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (plx_client_submit(c, env, NULL, 0, &r, &err) != PLX_OK)
        return raise_err((PyObject *)self, &err);
    return request_new_object((PyObject *)self, r, kind);
}

static PyObject *Client_submit_tasks(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "specs", "first_id", NULL };
    PyObject *specs;
    unsigned long long first_id = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|K:submit_tasks", kwlist, &specs, &first_id))
        return NULL;
    native_state *st = state_of((PyObject *)self);
    plx_client_t *c = st ? task_client_of(self, "submit_tasks", 0) : NULL;
    if (!c)
        return NULL;
    plx_request_t *r = NULL;
    int rc = nv_submit_tasks(st, c, specs, (uint64_t)first_id, &r);
    nv_release_drain();
    if (rc < 0)
        return NULL;
    if (first_id)
        Py_RETURN_NONE;
    return request_new_object((PyObject *)self, r, REQ_TASK_IDS);
}

static PyObject *Client_submit_task_reserve(ClientObject *self, PyObject *args)
{
    unsigned int count;
    if (!PyArg_ParseTuple(args, "I:submit_task_reserve", &count))
        return NULL;
    Plexa__TaskReserve tr = PLEXA__TASK_RESERVE__INIT;
    tr.has_count = 1;
    tr.count = count;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_RESERVE;
    env.task_reserve = &tr;
    return submit_task_env(self, &env, REQ_TASK_IDS, "submit_task_reserve");
}

static PyObject *Client_submit_task_wait(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "ids", "block", "release", NULL };
    PyObject *ids_o;
    int block = 1, release = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pp:submit_task_wait", kwlist, &ids_o, &block,
                                     &release))
        return NULL;
    uint64_t *ids;
    size_t n;
    if (nv_parse_task_ids(ids_o, &ids, &n) < 0)
        return NULL;
    Plexa__TaskWait tw = PLEXA__TASK_WAIT__INIT;
    tw.n_ids = n;
    tw.ids = ids;
    tw.has_block = 1;
    tw.block = block != 0;
    tw.has_release = 1;
    tw.release = release != 0;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_WAIT;
    env.task_wait = &tw;
    PyObject *req = submit_task_env(self, &env, REQ_TASK_RESULTS, "submit_task_wait");
    PyMem_Free(ids);
    return req;
}

/* TaskAbort and TaskClear carry only a list of ids and are acknowledged. */
static PyObject *submit_task_ids(ClientObject *self, PyObject *ids_o, int abort,
                                 const char *what)
{
    uint64_t *ids;
    size_t n;
    if (nv_parse_task_ids(ids_o, &ids, &n) < 0)
        return NULL;
    Plexa__TaskAbort ta = PLEXA__TASK_ABORT__INIT;
    Plexa__TaskClear tc = PLEXA__TASK_CLEAR__INIT;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    if (abort) {
        ta.n_ids = n;
        ta.ids = ids;
        env.body_case = PLEXA__ENVELOPE__BODY_TASK_ABORT;
        env.task_abort = &ta;
    } else {
        tc.n_ids = n;
        tc.ids = ids;
        env.body_case = PLEXA__ENVELOPE__BODY_TASK_CLEAR;
        env.task_clear = &tc;
    }
    PyObject *req = submit_task_env(self, &env, REQ_ACK, what);
    PyMem_Free(ids);
    return req;
}

static PyObject *Client_submit_task_abort(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "ids", NULL };
    PyObject *ids_o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:submit_task_abort", kwlist, &ids_o))
        return NULL;
    return submit_task_ids(self, ids_o, 1, "submit_task_abort");
}

static PyObject *Client_submit_task_clear(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "ids", NULL };
    PyObject *ids_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:submit_task_clear", kwlist, &ids_o))
        return NULL;
    return submit_task_ids(self, ids_o, 0, "submit_task_clear");
}

static PyObject *Client_submit_task_queue_status(ClientObject *self, PyObject *args,
                                                 PyObject *kw)
{
    static char *kwlist[] = { "verbose", NULL };
    int verbose = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:submit_task_queue_status", kwlist, &verbose))
        return NULL;
    Plexa__TaskQueueStatus q = PLEXA__TASK_QUEUE_STATUS__INIT;
    q.has_verbose = 1;
    q.verbose = verbose != 0;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS;
    env.task_queue_status = &q;
    return submit_task_env(self, &env, verbose ? REQ_TASK_QSTATUS_VERBOSE : REQ_TASK_QSTATUS,
                           "submit_task_queue_status");
}

/* ---- blocking calls ---------------------------------------------------------- */

static PyObject *Client_execute(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "code", "targets", "timeout", NULL };
    const char *code;
    PyObject *targets = Py_None, *to = Py_None;
    double timeout;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|OO:execute", kwlist, &code, &targets, &to) ||
        parse_timeout(to, &timeout) < 0)
        return NULL;
    plx_request_t *r = submit_execute(self, code, targets);
    if (!r)
        return NULL;
    PyObject *v = finish_request((PyObject *)self, r, REQ_MULTI, timeout);
    plx_request_destroy(&r);
    return v;
}

static PyObject *Client_get_ids(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "timeout", NULL };
    PyObject *to = Py_None;
    double timeout;
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:get_ids", kwlist, &to) ||
        parse_timeout(to, &timeout) < 0)
        return NULL;
    plx_client_t *c = client_of(self);
    if (!c)
        return NULL;
    if (plx_rq_get_ids(c, &r, &err) != PLX_OK)
        return raise_err((PyObject *)self, &err);
    PyObject *v = finish_request((PyObject *)self, r, REQ_IDS, timeout);
    plx_request_destroy(&r);
    return v;
}

static PyObject *Client_get_closed(ClientObject *self, void *closure)
{
    return PyBool_FromLong(self->c == NULL);
}

static PyObject *Client_get_role(ClientObject *self, void *closure)
{
    return PyUnicode_FromString(self->role == PLX_CLIENT_ROLE_TASK     ? "task"
                                : self->role == PLX_CLIENT_ROLE_STATUS ? "status"
                                                                       : "mec");
}

static PyObject *Client_get_peer(ClientObject *self, void *closure)
{
    if (!self->c)
        Py_RETURN_NONE;
    return PyUnicode_FromString(plx_client_peer(self->c));
}

#define METH_KW(fn) (PyCFunction)(void (*)(void))(fn), METH_VARARGS | METH_KEYWORDS

static PyMethodDef Client_methods[] = {
    { "get_ids", METH_KW(Client_get_ids),
      "get_ids(timeout=None) -> list of registered engine ids." },
    { "execute", METH_KW(Client_execute),
      "execute(code, targets=None, timeout=None) -> submit_execute(code, targets).result():\n"
      "[(engine_id, 'execute', (number, input, stdout, stderr), [], error), ...]." },
    { "submit_get_ids", (PyCFunction)Client_submit_get_ids, METH_NOARGS,
      "submit_get_ids() -> Request whose result() is get_ids()'s value." },
    { "submit_execute", METH_KW(Client_submit_execute),
      "submit_execute(code, targets=None) -> Request: run code on the engines." },
    { "submit_push", METH_KW(Client_submit_push),
      "submit_push(targets, items) -> Request: assign [(name, obj), ...] (or a dict)\n"
      "in each target's namespace." },
    { "submit_pull", METH_KW(Client_submit_pull),
      "submit_pull(targets, keys) -> Request: values = the named objects, one per key." },
    { "submit_call", METH_KW(Client_submit_call),
      "submit_call(targets, method, args) -> Request: run an engine helper (keys, reset,\n"
      "get_result, map, apply) with the objects args." },
    { "submit_clear_queue", METH_KW(Client_submit_clear_queue),
      "submit_clear_queue(targets=None) -> Request: drop the requests waiting in the\n"
      "controller for the targets (they fail with QueueCleared)." },
    { "submit_queue_status", METH_KW(Client_submit_queue_status),
      "submit_queue_status(targets=None) -> Request whose result() is\n"
      "[(engine_id, [pending, ...], [queued, ...]), ...]." },
    { "submit_kill", METH_KW(Client_submit_kill),
      "submit_kill(targets=None, controller=False) -> Request: stop the engines (and\n"
      "the controller after it answered)." },
    { "submit_interrupt", METH_KW(Client_submit_interrupt),
      "submit_interrupt(targets=None) -> Request: raise KeyboardInterrupt in whatever the\n"
      "targets run now (requests or tasks); result() [(engine_id, 'interrupt', None, [],\n"
      "None), ...]." },
    { "submit_tasks", METH_KW(Client_submit_tasks),
      "submit_tasks(specs) -> Request whose result() is (first_id, count); task role.\n"
      "specs: [{kind, args, clear_before, clear_after, retries, depend, after, recovery}, ...].\n"
      "submit_tasks(specs, first_id=N) -> None: quietly, under ids N.. of the reserved block." },
    { "submit_task_reserve", (PyCFunction)Client_submit_task_reserve, METH_VARARGS,
      "submit_task_reserve(count) -> Request whose result() is (first_id, count): ids for\n"
      "submit_tasks(..., first_id=...) on this connection; replaces the unused rest of the\n"
      "previous block." },
    { "submit_task_wait", METH_KW(Client_submit_task_wait),
      "submit_task_wait(ids, block=True, release=False) -> Request whose result() is\n"
      "[(task_id, status, engine_id, values, error, submitted, started, completed), ...]." },
    { "submit_task_abort", METH_KW(Client_submit_task_abort),
      "submit_task_abort(ids) -> Request: abort queued or running tasks; result() None." },
    { "submit_task_clear", METH_KW(Client_submit_task_clear),
      "submit_task_clear(ids=None) -> Request: drop finished results (None: all);\n"
      "result() None." },
    { "submit_task_queue_status", METH_KW(Client_submit_task_queue_status),
      "submit_task_queue_status(verbose=False) -> Request whose result() is\n"
      "{'pending', 'scheduled', 'succeeded', 'failed'}: counts, or id lists when verbose." },
    { "close", (PyCFunction)Client_close, METH_NOARGS,
      "close(): disconnect; waiting requests fail with ConnectionError." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Client_getset[] = {
    { "closed", (getter)Client_get_closed, NULL, "True after close().", NULL },
    { "peer", (getter)Client_get_peer, NULL, "'HOST:PORT' of the controller.", NULL },
    { "role", (getter)Client_get_role, NULL, "'mec', 'task' or 'status': the capability connected to.",
      NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot Client_slots[] = {
    { Py_tp_init, Client_init },
    { Py_tp_new, PyType_GenericNew },
    { Py_tp_dealloc, Client_dealloc },
    { Py_tp_methods, Client_methods },
    { Py_tp_getset, Client_getset },
    { Py_tp_doc, "Client(url_or_file='', profile=None, timeout=10.0, role='mec'): a\n"
                 "connection to a plexa controller's multi-engine ('mec') or task ('task')\n"
                 "interface." },
    { 0, NULL },
};

static PyType_Spec Client_spec = {
    .name = "plexa._native.Client",
    .basicsize = sizeof(ClientObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Client_slots,
};

/* ---- module -------------------------------------------------------------- */

/* plexa.error's class name, or KernelError when that module (rewritten
 * alongside) does not define it. */
static PyObject *error_class(PyObject *m, const char *name, PyObject *fallback)
{
    PyObject *cls = PyObject_GetAttrString(m, name);
    if (!cls && fallback) {
        PyErr_Clear();
        cls = Py_NewRef(fallback);
    }
    return cls;
}

static int load_errors(native_state *st)
{
    PyObject *m = PyImport_ImportModule("plexa.error");
    if (!m)
        return -1;
    st->kernel_error = error_class(m, "KernelError", NULL);
    st->connection_error = error_class(m, "ConnectionError", NULL);
    st->security_error = error_class(m, "SecurityError", NULL);
    st->invalid_engine_id = error_class(m, "InvalidEngineID", NULL);
    st->no_engines = error_class(m, "NoEnginesRegistered", NULL);
    st->serialization_error = error_class(m, "SerializationError", st->kernel_error);
    st->message_size_error = error_class(m, "MessageSizeError", st->kernel_error);
    Py_DECREF(m);
    return st->kernel_error && st->connection_error && st->security_error &&
           st->invalid_engine_id && st->no_engines && st->serialization_error &&
           st->message_size_error ? 0 : -1;
}

static int load_serialize(native_state *st)
{
    PyObject *m = PyImport_ImportModule("plexa._serialize");
    if (!m)
        return -1;
    st->encode = PyObject_GetAttrString(m, "encode");
    st->decode = PyObject_GetAttrString(m, "decode");
    st->decode_native = st->decode ? PyObject_GetAttrString(m, "decode_native") : NULL;
    Py_DECREF(m);
    return st->encode && st->decode && st->decode_native ? 0 : -1;
}

static PyObject *at_exit(PyObject *mod, PyObject *unused)
{
    nv_release_finalizing();
    nv_release_drain();
    Py_RETURN_NONE;
}

static PyMethodDef at_exit_def = {
    "_at_exit", at_exit, METH_NOARGS,
    "Run by atexit: no more pending calls for buffer releases once Python finalizes.",
};

/* Release queued exports through pending calls only while the interpreter
 * is not finalizing: a pending call added during finalization could touch
 * freed interpreter state. */
static int register_at_exit(PyObject *mod)
{
    PyObject *fn = PyCFunction_NewEx(&at_exit_def, mod, NULL);
    PyObject *atexit = fn ? PyImport_ImportModule("atexit") : NULL;
    PyObject *r = atexit ? PyObject_CallMethod(atexit, "register", "O", fn) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(atexit);
    Py_XDECREF(fn);
    return r ? 0 : -1;
}

static int add_type(PyObject *mod, PyType_Spec *spec, PyTypeObject **out)
{
    *out = (PyTypeObject *)PyType_FromModuleAndSpec(mod, spec, NULL);
    if (!*out)
        return -1;
    return PyModule_AddType(mod, *out);
}

static int native_exec(PyObject *mod)
{
    native_state *st = PyModule_GetState(mod);
    if (load_errors(st) < 0 || load_serialize(st) < 0 ||
        add_type(mod, &Client_spec, &st->client_type) < 0 ||
        add_type(mod, &Request_spec, &st->request_type) < 0 ||
        plx_pyvalue_module_init(mod) < 0 || register_at_exit(mod) < 0 ||
        nv_tasks_init(st) < 0 || nv_add_task_constants(mod) < 0)
        return -1;
    nv_release_init();
    return 0;
}

static int native_traverse(PyObject *mod, visitproc visit, void *arg)
{
    native_state *st = PyModule_GetState(mod);
    Py_VISIT(st->client_type);
    Py_VISIT(st->request_type);
    Py_VISIT(st->kernel_error);
    Py_VISIT(st->connection_error);
    Py_VISIT(st->security_error);
    Py_VISIT(st->invalid_engine_id);
    Py_VISIT(st->no_engines);
    Py_VISIT(st->serialization_error);
    Py_VISIT(st->message_size_error);
    Py_VISIT(st->encode);
    Py_VISIT(st->decode);
    Py_VISIT(st->decode_native);
    for (size_t i = 0; i < sizeof st->spec_keys / sizeof st->spec_keys[0]; i++)
        Py_VISIT(st->spec_keys[i]);
    return 0;
}

static int native_clear(PyObject *mod)
{
    native_state *st = PyModule_GetState(mod);
    Py_CLEAR(st->client_type);
    Py_CLEAR(st->request_type);
    Py_CLEAR(st->kernel_error);
    Py_CLEAR(st->connection_error);
    Py_CLEAR(st->security_error);
    Py_CLEAR(st->invalid_engine_id);
    Py_CLEAR(st->no_engines);
    Py_CLEAR(st->serialization_error);
    Py_CLEAR(st->message_size_error);
    Py_CLEAR(st->encode);
    Py_CLEAR(st->decode);
    Py_CLEAR(st->decode_native);
    for (size_t i = 0; i < sizeof st->spec_keys / sizeof st->spec_keys[0]; i++)
        Py_CLEAR(st->spec_keys[i]);
    return 0;
}

static void native_free(void *mod)
{
    native_clear(mod);
}

static PyModuleDef_Slot native_slots[] = {
    { Py_mod_exec, native_exec },
    { 0, NULL },
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "plexa._native",
    .m_doc = "plexa's C client (libplexa), for plexa.client.",
    .m_size = sizeof(native_state),
    .m_slots = native_slots,
    .m_traverse = native_traverse,
    .m_clear = native_clear,
    .m_free = native_free,
};

PyMODINIT_FUNC PyInit__native(void);

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}
