/*
 * The multi-engine verbs of plexa._native.Client (see _native.c's module
 * documentation): arguments parsed and values encoded here, each request
 * built by libplexa's builder for it (plx_rq.h), the reply read later by
 * the Request (_native_request.c).
 *
 *   submitting      submit_targeted: targets parsed, request wrapped
 *   verbs           get_ids, execute, push, pull, call, clear_queue,
 *                   queue_status, kill, interrupt (submit_* and blocking)
 *   cancel          submit_cancel: requests still queued in the controller
 */
#include "_native_int.h"

#include <string.h>

/* The verb: build and submit on c to targets t (its storage the caller's). */
typedef int (*targeted_fn)(plx_client_t *c, const plx_targets_t *t, const void *arg,
                           plx_request_t **req, plx_err_t *err);

/* Parse targets, submit with fn, and wrap the request in a Request of kind. */
static PyObject *submit_targeted(ClientObject *self, PyObject *targets, targeted_fn fn,
                                 const void *arg, enum req_kind kind, plx_request_t **keep)
{
    plx_client_t *c = nv_client_of(self);
    plx_targets_t t;
    int32_t *ids = NULL;
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!c || nv_parse_targets(targets, &t, &ids) < 0)
        return NULL;
    int rc = fn(c, &t, arg, &r, &err);
    PyMem_Free(ids);
    nv_release_drain();
    if (rc != PLX_OK)
        return nv_raise_err((PyObject *)self, &err);
    if (keep) {   /* the caller waits itself */
        *keep = r;
        Py_RETURN_NONE;
    }
    return nv_request_new((PyObject *)self, r, kind);
}

/* ---- get_ids and execute ---------------------------------------------------------- */

PyObject *nv_submit_get_ids(ClientObject *self, PyObject *unused)
{
    plx_client_t *c = nv_client_of(self);
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!c)
        return NULL;
    if (plx_rq_get_ids(c, &r, &err) != PLX_OK)
        return nv_raise_err((PyObject *)self, &err);
    return nv_request_new((PyObject *)self, r, REQ_IDS);
}

PyObject *nv_get_ids(ClientObject *self, PyObject *args, PyObject *kw)
{
    double timeout;
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (nv_timeout_only(args, kw, "|O:get_ids", &timeout) < 0)
        return NULL;
    plx_client_t *c = nv_client_of(self);
    if (!c)
        return NULL;
    if (plx_rq_get_ids(c, &r, &err) != PLX_OK)
        return nv_raise_err((PyObject *)self, &err);
    PyObject *v = nv_finish_request((PyObject *)self, r, REQ_IDS, timeout);
    plx_request_destroy(&r);
    return v;
}

static int rq_execute(plx_client_t *c, const plx_targets_t *t, const void *code,
                      plx_request_t **req, plx_err_t *err)
{
    return plx_rq_execute(c, t, code, req, err);
}

PyObject *nv_submit_execute(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "code", "targets", NULL };
    const char *code;
    PyObject *targets = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O:submit_execute", kwlist, &code, &targets))
        return NULL;
    return submit_targeted(self, targets, rq_execute, code, REQ_MULTI, NULL);
}

PyObject *nv_execute(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "code", "targets", "timeout", NULL };
    const char *code;
    PyObject *targets = Py_None, *to = Py_None;
    double timeout;
    plx_request_t *r = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|OO:execute", kwlist, &code, &targets, &to) ||
        nv_parse_timeout(to, &timeout) < 0)
        return NULL;
    PyObject *none = submit_targeted(self, targets, rq_execute, code, REQ_MULTI, &r);
    if (!none)
        return NULL;
    Py_DECREF(none);
    PyObject *v = nv_finish_request((PyObject *)self, r, REQ_MULTI, timeout);
    plx_request_destroy(&r);
    return v;
}

/* ---- push, pull, call ------------------------------------------------------------------ */

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
    nv_values_t  vals;    /* the values, encoded */
} push_items_t;

static void push_items_clear(push_items_t *a)
{
    Py_CLEAR(a->pairs);
    Py_CLEAR(a->objs);
    PyMem_Free(a->names);
    a->names = NULL;
    nv_values_clear(&a->vals);
}

static int push_items_parse(native_state *st, PyObject *items, push_items_t *a)
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
    return nv_values_encode(st, a->objs, &a->vals);
}

static int rq_push(plx_client_t *c, const plx_targets_t *t, const void *arg,
                   plx_request_t **req, plx_err_t *err)
{
    const push_items_t *a = arg;
    return plx_rq_push(c, t, a->names, (const plx_value_t *const *)a->vals.v, (size_t)a->n,
                       req, err);
}

static int rq_push_direct(plx_client_t *c, const plx_targets_t *t, const void *arg,
                          plx_request_t **req, plx_err_t *err)
{
    const push_items_t *a = arg;
    return plx_rq_push_direct(c, t, a->names, (const plx_value_t *const *)a->vals.v,
                              (size_t)a->n, req, err);
}

/* submit_push(targets, items, direct=False): direct, for a caller that
 * waits for the push (a blocking scatter's piece), lets this client serve
 * big values to the one engine itself. */
PyObject *nv_submit_push(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", "items", "direct", NULL };
    PyObject *targets, *items, *req = NULL;
    push_items_t a;
    int direct = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|p:submit_push", kwlist, &targets, &items,
                                     &direct))
        return NULL;
    native_state *st = nv_state((PyObject *)self);
    if (!st)
        return NULL;
    if (push_items_parse(st, items, &a) == 0)
        req = submit_targeted(self, targets, direct ? rq_push_direct : rq_push, &a, REQ_MULTI,
                              NULL);
    push_items_clear(&a);
    return req;
}

typedef struct names_arg {
    const char **names;
    size_t       n;
} names_arg_t;

static int rq_pull(plx_client_t *c, const plx_targets_t *t, const void *arg,
                   plx_request_t **req, plx_err_t *err)
{
    const names_arg_t *a = arg;
    return plx_rq_pull(c, t, a->names, a->n, req, err);
}

PyObject *nv_submit_pull(ClientObject *self, PyObject *args, PyObject *kw)
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
    names_arg_t a = { PyMem_Calloc(n ? (size_t)n : 1, sizeof *a.names), (size_t)n };
    int ok = a.names != NULL;
    if (!ok)
        PyErr_NoMemory();
    for (Py_ssize_t i = 0; ok && i < n; i++)
        ok = (a.names[i] = name_utf8(PySequence_Fast_GET_ITEM(seq, i), "a key")) != NULL;
    if (ok)
        req = submit_targeted(self, targets, rq_pull, &a, REQ_MULTI, NULL);
    PyMem_Free(a.names);
    Py_DECREF(seq);
    return req;
}

typedef struct call_arg {
    const char  *method;
    nv_values_t  vals;
} call_arg_t;

static int rq_call(plx_client_t *c, const plx_targets_t *t, const void *arg,
                   plx_request_t **req, plx_err_t *err)
{
    const call_arg_t *a = arg;
    return plx_rq_call(c, t, a->method, (const plx_value_t *const *)a->vals.v, a->vals.n, req,
                       err);
}

PyObject *nv_submit_call(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", "method", "args", NULL };
    PyObject *targets, *cargs, *req = NULL;
    call_arg_t a = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OsO:submit_call", kwlist, &targets, &a.method,
                                     &cargs))
        return NULL;
    native_state *st = nv_state((PyObject *)self);
    if (!st)
        return NULL;
    if (nv_values_encode(st, cargs, &a.vals) == 0)
        req = submit_targeted(self, targets, rq_call, &a, REQ_MULTI, NULL);
    nv_values_clear(&a.vals);
    return req;
}

/* ---- queue and engine control ------------------------------------------------------------ */

static int rq_clear_queue(plx_client_t *c, const plx_targets_t *t, const void *arg,
                          plx_request_t **req, plx_err_t *err)
{
    return plx_rq_clear_queue(c, t, req, err);
}

static int rq_queue_status(plx_client_t *c, const plx_targets_t *t, const void *arg,
                           plx_request_t **req, plx_err_t *err)
{
    return plx_rq_queue_status(c, t, req, err);
}

static int rq_kill(plx_client_t *c, const plx_targets_t *t, const void *controller,
                   plx_request_t **req, plx_err_t *err)
{
    return plx_rq_shutdown(c, t, *(const int *)controller, req, err);
}

static int rq_interrupt(plx_client_t *c, const plx_targets_t *t, const void *arg,
                        plx_request_t **req, plx_err_t *err)
{
    return plx_rq_interrupt(c, t, req, err);
}

/* A verb whose only argument is targets. */
static PyObject *targets_only(ClientObject *self, PyObject *args, PyObject *kw,
                              const char *format, targeted_fn fn, enum req_kind kind)
{
    static char *kwlist[] = { "targets", NULL };
    PyObject *targets = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, format, kwlist, &targets))
        return NULL;
    return submit_targeted(self, targets, fn, NULL, kind, NULL);
}

PyObject *nv_submit_clear_queue(ClientObject *self, PyObject *args, PyObject *kw)
{
    return targets_only(self, args, kw, "|O:submit_clear_queue", rq_clear_queue, REQ_MULTI);
}

PyObject *nv_submit_queue_status(ClientObject *self, PyObject *args, PyObject *kw)
{
    return targets_only(self, args, kw, "|O:submit_queue_status", rq_queue_status,
                        REQ_QUEUE_STATUS);
}

PyObject *nv_submit_interrupt(ClientObject *self, PyObject *args, PyObject *kw)
{
    return targets_only(self, args, kw, "|O:submit_interrupt", rq_interrupt, REQ_MULTI);
}

PyObject *nv_submit_kill(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "targets", "controller", NULL };
    PyObject *targets = Py_None;
    int controller = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Op:submit_kill", kwlist, &targets, &controller))
        return NULL;
    return submit_targeted(self, targets, rq_kill, &controller, REQ_MULTI, NULL);
}

/* ---- cancel ------------------------------------------------------------------------------- */

PyObject *nv_submit_cancel(ClientObject *self, PyObject *requests)
{
    plx_client_t *c = nv_client_of(self);
    PyObject *seq = c ? PySequence_Fast(requests, "submit_cancel: a list of Requests") : NULL;
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint64_t *ids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        plx_request_t *r = nv_request_handle(PySequence_Fast_GET_ITEM(seq, i));
        if (!r) {
            PyMem_Free(ids);
            Py_DECREF(seq);
            return NULL;
        }
        ids[i] = plx_request_id(r);
    }
    Py_DECREF(seq);
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    int rc = plx_rq_cancel(c, ids, (size_t)n, &r, &err);
    PyMem_Free(ids);
    if (rc != PLX_OK)
        return nv_raise_err((PyObject *)self, &err);
    return nv_request_new((PyObject *)self, r, REQ_MULTI);
}
