/*
 * plexa._native: the Python face of libplexa's client.
 *
 *   Client(url_or_file='', profile=None, timeout=10.0)
 *     .get_ids(timeout=None) -> [int]
 *     .execute(code, targets=None, timeout=None) -> [(engine_id, number, input,
 *                                stdout, stderr, error)], error None or
 *                                (ename, evalue, traceback)
 *     .submit_execute(code, targets=None) -> Request
 *     .submit_get_ids() -> Request
 *     .close(); .closed; .peer
 *   Request: .id, .done(), .wait(timeout=None) -> bool, .result(timeout=None),
 *            .cancel()
 *
 * targets: None or 'all' (every engine), an int, or a sequence of ints.
 * timeout: seconds, None = no limit; a call that times out raises
 * plexa.error.KernelError (the request is forgotten).
 *
 * The GIL is released while waiting. Waits wake every WAIT_SLICE_S to run
 * signal handlers, so Ctrl-C interrupts a long execute (the request is then
 * forgotten; the engines still run it). C errors become the exceptions of
 * plexa.error, each with libplexa's message.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <time.h>

#include "plexa/client.h"
#include "plx_client_int.h"

#define WAIT_SLICE_S 0.1
#define CONNECT_TIMEOUT_S 10.0

typedef struct {
    PyTypeObject *client_type;
    PyTypeObject *request_type;
    PyObject     *kernel_error;
    PyObject     *connection_error;
    PyObject     *security_error;
    PyObject     *invalid_engine_id;
    PyObject     *no_engines;
} native_state;

static struct PyModuleDef native_module;

typedef struct {
    PyObject_HEAD
    plx_client_t *c;
} ClientObject;

enum req_kind { REQ_IDS, REQ_EXECUTE };

typedef struct {
    PyObject_HEAD
    plx_request_t *r;
    enum req_kind  kind;
} RequestObject;

static native_state *state_of(PyObject *self)
{
    PyObject *mod = PyType_GetModuleByDef(Py_TYPE(self), &native_module);
    return mod ? PyModule_GetState(mod) : NULL;
}

/* ---- errors -------------------------------------------------------------- */

/* Raise the plexa.error exception for a libplexa code. Returns NULL. */
static PyObject *raise_plx(native_state *st, int code, const char *msg)
{
    PyObject *cls;
    switch (code) {
    case PLX_ENOMEM:     return PyErr_NoMemory();
    case PLX_ECONNECT:
    case PLX_ECLOSED:    cls = st->connection_error; break;
    case PLX_EAUTH:      cls = st->security_error; break;
    case PLX_EBADENGINE: cls = st->invalid_engine_id; break;
    case PLX_ENOENGINES: cls = st->no_engines; break;
    default:             cls = st->kernel_error; break;
    }
    PyErr_SetString(cls, msg && *msg ? msg : plx_strerror(code));
    return NULL;
}

static PyObject *raise_err(PyObject *self, const plx_err_t *err)
{
    native_state *st = state_of(self);
    return st ? raise_plx(st, err->code, err->msg) : NULL;
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
        if (plx_request_done(r))
            return 1;
        if (PyErr_CheckSignals() < 0)
            return -1;
        if (timeout >= 0 && now_s() >= deadline)
            return 0;
    }
}

/* ---- converting replies -------------------------------------------------- */

static PyObject *str_of(const char *s)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

static PyObject *engine_result_tuple(const plx_engine_result_t *r)
{
    PyObject *error;
    if (r->ename) {
        error = Py_BuildValue("(NNN)", str_of(r->ename), str_of(r->evalue),
                              str_of(r->traceback));
    } else {
        error = Py_NewRef(Py_None);
    }
    if (!error)
        return NULL;
    return Py_BuildValue("(iiNNNN)", (int)r->engine_id, (int)r->number, str_of(r->input),
                         str_of(r->stdout_text), str_of(r->stderr_text), error);
}

static PyObject *results_list(const plx_results_t *res)
{
    PyObject *list = PyList_New((Py_ssize_t)res->n);
    for (size_t i = 0; list && i < res->n; i++) {
        PyObject *t = engine_result_tuple(&res->r[i]);
        if (!t) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

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

/* The Python value of a completed request, or NULL with an exception. */
static PyObject *request_value(PyObject *self, plx_request_t *r, enum req_kind kind)
{
    plx_err_t err = {0};
    if (kind == REQ_IDS) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (plx_request_ids(r, &ids, &n, &err) != PLX_OK)
            return raise_err(self, &err);
        PyObject *list = ids_list(ids, n);
        free(ids);
        return list;
    }
    plx_results_t *res = NULL;
    if (plx_request_results(r, &res, &err) != PLX_OK)
        return raise_err(self, &err);
    PyObject *list = results_list(res);
    plx_results_destroy(&res);
    return list;
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
    if (!st)
        return NULL;
    RequestObject *o = PyObject_New(RequestObject, st->request_type);
    if (!o) {
        plx_request_destroy(&r);
        return NULL;
    }
    o->r = r;
    o->kind = kind;
    return (PyObject *)o;
}

static void Request_dealloc(RequestObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    plx_request_destroy(&self->r);
    PyObject_Free(self);
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
    return finish_request((PyObject *)self, self->r, self->kind, timeout);
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
      "result(timeout=None): wait, then return the value or raise its error." },
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
    { Py_tp_methods, Request_methods },
    { Py_tp_getset, Request_getset },
    { Py_tp_doc, "A request in flight to the controller (from Client.submit_*)." },
    { 0, NULL },
};

static PyType_Spec Request_spec = {
    .name = "plexa._native.Request",
    .basicsize = sizeof(RequestObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Request_slots,
};

/* ---- Client -------------------------------------------------------------- */

static int Client_init(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "url_or_file", "profile", "timeout", NULL };
    const char *url = "", *profile = NULL;
    double timeout = CONNECT_TIMEOUT_S;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zzd:Client", kwlist, &url, &profile, &timeout))
        return -1;
    if (self->c) {
        /* Replacing a live client under threads that use it is a use-after-free. */
        PyErr_SetString(PyExc_RuntimeError, "Client is already connected; make a new one");
        return -1;
    }
    plx_err_t err = {0};
    plx_client_t *c;
    Py_BEGIN_ALLOW_THREADS
    c = plx_client_connect(url ? url : "", profile, timeout, &err);
    Py_END_ALLOW_THREADS
    if (!c) {
        raise_err((PyObject *)self, &err);
        return -1;
    }
    self->c = c;
    return 0;
}

static void Client_dealloc(ClientObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    plx_client_destroy(&self->c);
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
    Py_RETURN_NONE;
}

static PyObject *Client_submit_get_ids(ClientObject *self, PyObject *unused)
{
    plx_client_t *c = client_of(self);
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!c)
        return NULL;
    if (plx_client_submit_get_ids(c, &r, &err) != PLX_OK)
        return raise_err((PyObject *)self, &err);
    return request_new_object((PyObject *)self, r, REQ_IDS);
}

/* Submit an execute; returns the C request or NULL with an exception. */
static plx_request_t *submit_execute(ClientObject *self, const char *code, PyObject *targets)
{
    plx_client_t *c = client_of(self);
    plx_targets_t t;
    int32_t *ids = NULL;
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!c || parse_targets(targets, &t, &ids) < 0)
        return NULL;
    int rc = plx_client_submit_execute(c, &t, code, &r, &err);
    PyMem_Free(ids);
    if (rc != PLX_OK)
        raise_err((PyObject *)self, &err);
    return r;
}

static PyObject *Client_submit_execute(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "code", "targets", NULL };
    const char *code;
    PyObject *targets = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O:submit_execute", kwlist, &code, &targets))
        return NULL;
    plx_request_t *r = submit_execute(self, code, targets);
    return r ? request_new_object((PyObject *)self, r, REQ_EXECUTE) : NULL;
}

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
    PyObject *v = finish_request((PyObject *)self, r, REQ_EXECUTE, timeout);
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
    if (plx_client_submit_get_ids(c, &r, &err) != PLX_OK)
        return raise_err((PyObject *)self, &err);
    PyObject *v = finish_request((PyObject *)self, r, REQ_IDS, timeout);
    plx_request_destroy(&r);
    return v;
}

static PyObject *Client_get_closed(ClientObject *self, void *closure)
{
    return PyBool_FromLong(self->c == NULL);
}

static PyObject *Client_get_peer(ClientObject *self, void *closure)
{
    if (!self->c)
        Py_RETURN_NONE;
    return PyUnicode_FromString(plx_client_peer(self->c));
}

static PyMethodDef Client_methods[] = {
    { "get_ids", (PyCFunction)(void (*)(void))Client_get_ids, METH_VARARGS | METH_KEYWORDS,
      "get_ids(timeout=None) -> list of registered engine ids." },
    { "execute", (PyCFunction)(void (*)(void))Client_execute, METH_VARARGS | METH_KEYWORDS,
      "execute(code, targets=None, timeout=None) -> list of\n"
      "(engine_id, number, input, stdout, stderr, error) per target engine;\n"
      "error is None or (ename, evalue, traceback)." },
    { "submit_execute", (PyCFunction)(void (*)(void))Client_submit_execute,
      METH_VARARGS | METH_KEYWORDS,
      "submit_execute(code, targets=None) -> Request whose result() is execute()'s value." },
    { "submit_get_ids", (PyCFunction)Client_submit_get_ids, METH_NOARGS,
      "submit_get_ids() -> Request whose result() is get_ids()'s value." },
    { "close", (PyCFunction)Client_close, METH_NOARGS,
      "close(): disconnect; waiting requests fail with ConnectionError." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Client_getset[] = {
    { "closed", (getter)Client_get_closed, NULL, "True after close().", NULL },
    { "peer", (getter)Client_get_peer, NULL, "'HOST:PORT' of the controller.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot Client_slots[] = {
    { Py_tp_init, Client_init },
    { Py_tp_new, PyType_GenericNew },
    { Py_tp_dealloc, Client_dealloc },
    { Py_tp_methods, Client_methods },
    { Py_tp_getset, Client_getset },
    { Py_tp_doc, "Client(url_or_file='', profile=None, timeout=10.0): a connection to a\n"
                 "plexa controller's multi-engine interface." },
    { 0, NULL },
};

static PyType_Spec Client_spec = {
    .name = "plexa._native.Client",
    .basicsize = sizeof(ClientObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Client_slots,
};

/* ---- module -------------------------------------------------------------- */

static int load_errors(native_state *st)
{
    PyObject *m = PyImport_ImportModule("plexa.error");
    if (!m)
        return -1;
    st->kernel_error = PyObject_GetAttrString(m, "KernelError");
    st->connection_error = PyObject_GetAttrString(m, "ConnectionError");
    st->security_error = PyObject_GetAttrString(m, "SecurityError");
    st->invalid_engine_id = PyObject_GetAttrString(m, "InvalidEngineID");
    st->no_engines = PyObject_GetAttrString(m, "NoEnginesRegistered");
    Py_DECREF(m);
    return st->kernel_error && st->connection_error && st->security_error &&
           st->invalid_engine_id && st->no_engines ? 0 : -1;
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
    if (load_errors(st) < 0 || add_type(mod, &Client_spec, &st->client_type) < 0 ||
        add_type(mod, &Request_spec, &st->request_type) < 0)
        return -1;
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
