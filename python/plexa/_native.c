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
 *     .submit_cancel(requests)              drop these Requests if no engine has
 *                                           any of them yet (all or nothing)
 *   task role:
 *     .submit_tasks(specs)                  -> Request; result(): TaskIds(first_id, count)
 *     .submit_tasks(specs, first_id=N)      -> None: the tasks take ids N.. from the
 *                                              block submit_task_reserve gave this
 *                                              connection (in order, no reply; a
 *                                              submission that cannot be queued
 *                                              becomes failed tasks under those ids)
 *     .submit_task_reserve(count)           -> Request; result(): TaskIds(first_id, count)
 *     .submit_task_wait(ids, block=True, release=False)
 *                                           -> Request; result(): [TaskReply, ...]
 *     .submit_task_abort(ids, queued_only=False) -> Request; result(): None
 *                                              (queued_only: only if none was
 *                                              sent to an engine, all or nothing)
 *     .submit_task_clear(ids=None)          -> Request; result(): None (None/[]: every
 *                                              finished task)
 *     .submit_task_queue_status(verbose=False) -> Request; result(): dict
 *   Request: .id, .done(), .wait(timeout=None) -> bool, .result(timeout=None),
 *            .cancel()
 *   Completions(): .watch(request, token), .post(token), .wait(timeout=None),
 *            .close(): requests' completions for one waiting thread
 *            (_native_cq.c)
 *
 * Replies are named structures (struct sequences, module attributes: tuples
 * whose items also have names; read them by name). Request.result() of
 * every multi-engine request (execute, push, pull, call, clear_queue,
 * kill) is a list with one per target engine, in target order:
 *     EngineReply(engine_id, method, execute, values, error)
 * method: str ("execute", "push", "pull", the call's method, "clear_queue",
 * "kill") or None; execute: None or ExecuteResult(number, input, stdout,
 * stderr); values: list of decoded objects (pull: one per key; call: the
 * helper's results); error: None or RemoteError(ename, evalue, traceback),
 * the remote exception (or a client-side decoding failure of that
 * engine's values).
 * queue_status: [EngineQueue(engine_id, pending, queue), ...], lists of str.
 * interrupt: [EngineReply(engine_id, 'interrupt', None, [], None), ...].
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
 * and get consecutive ids: result() is TaskIds(first_id, count), count being
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
 *     TaskReply(task_id, status, engine_id, values, error, submitted, started,
 *               completed, stdout, stderr)
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
 * error: None or RemoteError(ename, evalue, traceback): the remote exception, or the
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
 * _native_release.c). Every message is built and read by libplexa's
 * request layer (core/client/plx_rq.h), not here.
 *
 * The GIL is released while waiting; Ctrl-C interrupts a long execute (the
 * request is then forgotten; the engines still run it; _native_request.c).
 * C errors become the exceptions of plexa.error, each with libplexa's
 * message.
 *
 * This file: the module, Client, errors and arguments (the verbs are in
 * _native_mec.c and _native_tasks.c; see _native_int.h).
 */
#include "_native_int.h"

#include <math.h>

#define CONNECT_TIMEOUT_S 10.0

static struct PyModuleDef native_module;

native_state *nv_state(PyObject *self)
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

PyObject *nv_raise_err(PyObject *self, const plx_err_t *err)
{
    native_state *st = nv_state(self);
    return st ? nv_raise(st, err->code, err->msg) : NULL;
}

/* ---- arguments ----------------------------------------------------------- */

int nv_parse_timeout(PyObject *o, double *out)
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

int nv_timeout_only(PyObject *args, PyObject *kw, const char *fmt, double *out)
{
    static char *kwlist[] = { "timeout", NULL };
    PyObject *to = Py_None;
    return PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, &to) ? nv_parse_timeout(to, out)
                                                                   : -1;
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

int nv_parse_targets(PyObject *o, plx_targets_t *t, int32_t **ids)
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

/* ---- Client -------------------------------------------------------------- */

static int Client_init(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "url_or_file", "profile", "timeout", "role", "trust_pickles",
                              "sshserver", "sshkey", "direct", NULL };
    const char *url = "", *profile = NULL, *role_s = "mec", *sshserver = NULL, *sshkey = NULL;
    double timeout = CONNECT_TIMEOUT_S;
    int trust = 1, direct = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zzdspzzp:Client", kwlist, &url, &profile,
                                     &timeout, &role_s, &trust, &sshserver, &sshkey, &direct))
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
    c = plx_client_connect_ssh(url ? url : "", profile, role, sshserver, sshkey, timeout, &err);
    Py_END_ALLOW_THREADS
    if (!c) {
        nv_raise_err((PyObject *)self, &err);
        return -1;
    }
    plx_client_set_direct(c, direct);
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

plx_client_t *nv_client_of(ClientObject *self)
{
    if (!self->c) {
        native_state *st = nv_state((PyObject *)self);
        if (st)
            PyErr_SetString(st->connection_error, "the client is closed");
    }
    return self->c;
}

/* task_output(task_id) -> None | (engine_id, stdout, stderr) */
static PyObject *Client_task_output(ClientObject *self, PyObject *arg)
{
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    plx_client_t *c = nv_client_of(self);
    if (!c)
        return NULL;
    int32_t engine = -1;
    char *out = NULL, *err = NULL;
    int rc = plx_client_task_output(c, id, &engine, &out, &err);
    if (rc < 0)
        return PyErr_NoMemory();
    if (rc == 0)
        Py_RETURN_NONE;
    PyObject *t = Py_BuildValue("(iNN)", (int)engine,
                                PyUnicode_DecodeUTF8(out, (Py_ssize_t)strlen(out), "replace"),
                                PyUnicode_DecodeUTF8(err, (Py_ssize_t)strlen(err), "replace"));
    free(out);
    free(err);
    return t;
}

static PyObject *Client_close(ClientObject *self, PyObject *unused)
{
    plx_client_destroy(&self->c);
    nv_release_drain();
    Py_RETURN_NONE;
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

static PyObject *Client_get_shm(ClientObject *self, void *closure)
{
    return PyBool_FromLong(self->c && plx_client_uses_shm(self->c));
}

#define METH_KW(fn) (PyCFunction)(void (*)(void))(fn), METH_VARARGS | METH_KEYWORDS

static PyMethodDef Client_methods[] = {
    { "get_ids", METH_KW(nv_get_ids),
      "get_ids(timeout=None) -> list of registered engine ids." },
    { "execute", METH_KW(nv_execute),
      "execute(code, targets=None, timeout=None) -> submit_execute(code, targets).result():\n"
      "[EngineReply(engine_id, 'execute', ExecuteResult(...), [], error), ...]." },
    { "submit_get_ids", (PyCFunction)nv_submit_get_ids, METH_NOARGS,
      "submit_get_ids() -> Request whose result() is get_ids()'s value." },
    { "submit_execute", METH_KW(nv_submit_execute),
      "submit_execute(code, targets=None) -> Request: run code on the engines." },
    { "submit_push", METH_KW(nv_submit_push),
      "submit_push(targets, items) -> Request: assign [(name, obj), ...] (or a dict)\n"
      "in each target's namespace." },
    { "submit_pull", METH_KW(nv_submit_pull),
      "submit_pull(targets, keys) -> Request: values = the named objects, one per key." },
    { "submit_call", METH_KW(nv_submit_call),
      "submit_call(targets, method, args) -> Request: run an engine helper (keys, reset,\n"
      "get_result, map, apply) with the objects args." },
    { "submit_clear_queue", METH_KW(nv_submit_clear_queue),
      "submit_clear_queue(targets=None) -> Request: drop the requests waiting in the\n"
      "controller for the targets (they fail with QueueCleared)." },
    { "submit_queue_status", METH_KW(nv_submit_queue_status),
      "submit_queue_status(targets=None) -> Request whose result() is\n"
      "[EngineQueue(engine_id, pending, queue), ...]." },
    { "submit_cancel", (PyCFunction)nv_submit_cancel, METH_O,
      "submit_cancel(requests) -> Request: cancel these requests (of this client) if no\n"
      "engine has been sent any of them yet, all or nothing; they fail with QueueCleared.\n"
      "result(): [] when cancelled; KernelError when one has started or finished." },
    { "submit_kill", METH_KW(nv_submit_kill),
      "submit_kill(targets=None, controller=False) -> Request: stop the engines (and\n"
      "the controller after it answered)." },
    { "submit_interrupt", METH_KW(nv_submit_interrupt),
      "submit_interrupt(targets=None) -> Request: raise KeyboardInterrupt in whatever the\n"
      "targets run now (requests or tasks); result() [EngineReply(engine_id, 'interrupt',\n"
      "None, [], None), ...]." },
    { "submit_tasks", METH_KW(nv_submit_tasks),
      "submit_tasks(specs) -> Request whose result() is TaskIds(first_id, count); task role.\n"
      "specs: [{kind, args, clear_before, clear_after, retries, depend, after, recovery}, ...].\n"
      "submit_tasks(specs, first_id=N) -> None: quietly, under ids N.. of the reserved block." },
    { "submit_task_reserve", (PyCFunction)nv_submit_task_reserve, METH_VARARGS,
      "submit_task_reserve(count) -> Request whose result() is TaskIds(first_id, count): ids for\n"
      "submit_tasks(..., first_id=...) on this connection; replaces the unused rest of the\n"
      "previous block." },
    { "submit_task_wait", METH_KW(nv_submit_task_wait),
      "submit_task_wait(ids, block=True, release=False) -> Request whose result() is\n"
      "[TaskReply(task_id, status, engine_id, values, error, submitted, started,\n"
      "completed, stdout, stderr), ...]." },
    { "submit_task_abort", METH_KW(nv_submit_task_abort),
      "submit_task_abort(ids, queued_only=False) -> Request: abort queued or running tasks;\n"
      "result() None. queued_only: only if none was sent to an engine yet (all or nothing;\n"
      "else KernelError 'task N already started')." },
    { "submit_task_clear", METH_KW(nv_submit_task_clear),
      "submit_task_clear(ids=None) -> Request: drop finished results (None: all);\n"
      "result() None." },
    { "submit_task_queue_status", METH_KW(nv_submit_task_queue_status),
      "submit_task_queue_status(verbose=False) -> Request whose result() is\n"
      "{'pending', 'scheduled', 'succeeded', 'failed'}: counts, or id lists when verbose." },
    { "task_output", (PyCFunction)Client_task_output, METH_O,
      "task_output(task_id) -> None or (engine_id, stdout, stderr): what a task this\n"
      "connection submitted has printed so far while it runs (the latest 16 MiB of its\n"
      "tasks' output is kept; the result has all of it)." },
    { "close", (PyCFunction)Client_close, METH_NOARGS,
      "close(): disconnect; waiting requests fail with ConnectionError." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Client_getset[] = {
    { "closed", (getter)Client_get_closed, NULL, "True after close().", NULL },
    { "peer", (getter)Client_get_peer, NULL, "'HOST:PORT' of the controller.", NULL },
    { "shm", (getter)Client_get_shm, NULL,
      "True when connected through the controller's shm listener (payload in shared memory).",
      NULL },
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
        add_type(mod, &nv_request_spec, &st->request_type) < 0 ||
        add_type(mod, &nv_completions_spec, &st->completions_type) < 0 ||
        nv_replies_init(mod, st) < 0 ||
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
    Py_VISIT(st->completions_type);
    for (int i = 0; i < NV_NREPLY_TYPES; i++)
        Py_VISIT(st->reply_types[i]);
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
    Py_CLEAR(st->completions_type);
    for (int i = 0; i < NV_NREPLY_TYPES; i++)
        Py_CLEAR(st->reply_types[i]);
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
