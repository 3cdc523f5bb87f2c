/*
 * plexa._native.Request: a request in flight (see _native.c's module
 * documentation). Waiting releases the GIL and wakes every WAIT_SLICE_S
 * to run signal handlers, so Ctrl-C interrupts a long wait (the request
 * is then forgotten; the engines still run it). The reply is read with
 * libplexa's decoders (plx_rq.h) and converted once (_native_replies.c).
 *
 *   waiting        wait_sliced (wait_request, Request.outputs)
 *   reply values   request_value, nv_finish_request
 *   the type       Request.done/wait/result/cancel/id
 */
#include "_native_int.h"

#include "plx_time.h"

#define WAIT_SLICE_S 0.1

typedef struct {
    PyObject_HEAD
    plx_request_t *r;
    enum req_kind  kind;
    PyObject      *value;   /* the converted result, once computed */
    int            trust_pickles;   /* its client's */
} RequestObject;

/* ---- waiting ------------------------------------------------------------------ */

/* Call step(ctx, slice) with the GIL released, slice by slice, until it
 * says it is done (returns nonzero) or timeout (< 0: none) passes; between
 * slices, deferred buffer releases are drained and signal handlers run.
 * 1 done, 0 timed out, -1 with an exception set (a signal handler raised,
 * e.g. KeyboardInterrupt). */
static int wait_sliced(int (*step)(void *ctx, double slice), void *ctx, double timeout)
{
    double deadline = timeout >= 0 ? plx_now_s() + timeout : 0;
    for (;;) {
        double slice = WAIT_SLICE_S;
        if (timeout >= 0) {
            double left = deadline - plx_now_s();
            if (left < slice)
                slice = left > 0 ? left : 0;
        }
        int done;
        Py_BEGIN_ALLOW_THREADS
        done = step(ctx, slice);
        Py_END_ALLOW_THREADS
        nv_release_drain();   /* the main thread may be waiting here */
        if (done)
            return 1;
        if (PyErr_CheckSignals() < 0)
            return -1;
        if (timeout >= 0 && plx_now_s() >= deadline)
            return 0;
    }
}

static int request_step(void *r, double slice)
{
    plx_request_wait(r, slice, NULL);
    return plx_request_done(r);
}

/* Wait for r with the GIL released (wait_sliced's answers). */
static int wait_request(plx_request_t *r, double timeout)
{
    return wait_sliced(request_step, r, timeout);
}

/* ---- reply values ------------------------------------------------------------------- */

static PyObject *ids_value(PyObject *self, plx_request_t *r)
{
    plx_err_t err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (plx_request_ids(r, &ids, &n, &err) != PLX_OK)
        return nv_raise_err(self, &err);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    free(ids);
    return list;
}

static PyObject *multi_value(PyObject *self, native_state *st, plx_request_t *r)
{
    plx_err_t err = {0};
    plx_multi_reply_t *m = NULL;
    if (plx_reply_multi(r, &m, &err) != PLX_OK)
        return nv_raise_err(self, &err);
    PyObject *v = nv_multi_value(st, m);
    plx_multi_reply_destroy(&m);
    return v;
}

static PyObject *queue_status_value(PyObject *self, native_state *st, plx_request_t *r)
{
    plx_err_t err = {0};
    plx_queue_status_t *q = NULL;
    if (plx_reply_queue_status(r, &q, &err) != PLX_OK)
        return nv_raise_err(self, &err);
    PyObject *v = nv_queue_status_value(st, q);
    plx_queue_status_destroy(&q);
    return v;
}

static PyObject *task_ids_value(PyObject *self, native_state *st, plx_request_t *r)
{
    plx_err_t err = {0};
    uint64_t first;
    uint32_t count;
    if (plx_reply_task_ids(r, &first, &count, &err) != PLX_OK)
        return nv_raise_err(self, &err);
    return nv_task_ids_value(st, first, count);
}

static PyObject *task_results_value(PyObject *self, native_state *st, plx_request_t *r)
{
    plx_err_t err = {0};
    plx_task_replies_t *t = NULL;
    if (plx_reply_task_results(r, &t, &err) != PLX_OK)
        return nv_raise_err(self, &err);
    PyObject *v = nv_task_results_value(st, t);
    plx_task_replies_destroy(&t);
    return v;
}

static PyObject *task_queue_value(PyObject *self, plx_request_t *r, int verbose)
{
    plx_err_t err = {0};
    plx_task_queue_t *q = NULL;
    if (plx_reply_task_queue_status(r, &q, &err) != PLX_OK)
        return nv_raise_err(self, &err);
    PyObject *v = nv_task_queue_value(q, verbose);
    plx_task_queue_destroy(&q);
    return v;
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
    native_state *mod = nv_state(self);
    if (!mod)
        return NULL;
    /* Values decode with st->decode: a client that does not trust engines'
     * pickles converts through a view whose decode refuses them. */
    native_state view = *mod, *st = &view;
    if (!trusts_pickles(self, mod))
        view.decode = mod->decode_native;
    plx_err_t err = {0};
    switch (kind) {
    case REQ_IDS:
        return ids_value(self, r);
    case REQ_QUEUE_STATUS:
        return queue_status_value(self, st, r);
    case REQ_TASK_IDS:
        return task_ids_value(self, st, r);
    case REQ_ACK:
        return plx_reply_ack(r, &err) == PLX_OK ? Py_NewRef(Py_None) : nv_raise_err(self, &err);
    case REQ_TASK_RESULTS:
        return task_results_value(self, st, r);
    case REQ_TASK_QSTATUS:
    case REQ_TASK_QSTATUS_VERBOSE:
        return task_queue_value(self, r, kind == REQ_TASK_QSTATUS_VERBOSE);
    case REQ_MULTI:
    default:
        return multi_value(self, st, r);
    }
}

PyObject *nv_finish_request(PyObject *self, plx_request_t *r, enum req_kind kind, double timeout)
{
    int done = wait_request(r, timeout);
    if (done < 0)
        return NULL;
    if (!done) {
        native_state *st = nv_state(self);
        if (st)
            PyErr_Format(st->kernel_error, "no reply to request %llu within %g s",
                         (unsigned long long)plx_request_id(r), timeout);
        return NULL;
    }
    return request_value(self, r, kind);
}

/* ---- the type ------------------------------------------------------------------------ */

PyObject *nv_request_new(PyObject *owner, plx_request_t *r, enum req_kind kind)
{
    native_state *st = nv_state(owner);
    RequestObject *o = st ? PyObject_GC_New(RequestObject, st->request_type) : NULL;
    if (!o) {
        plx_request_destroy(&r);
        return NULL;
    }
    o->r = r;
    o->kind = kind;
    o->value = NULL;
    o->trust_pickles = trusts_pickles(owner, st);
    PyObject_GC_Track(o);
    return (PyObject *)o;
}

plx_request_t *nv_request_handle(PyObject *o)
{
    native_state *st = nv_state(o);
    if (st && Py_TYPE(o) == st->request_type)
        return ((RequestObject *)o)->r;
    if (st || PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "a plexa._native.Request expected, not %.100s",
                     Py_TYPE(o)->tp_name);
    }
    return NULL;
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
    double timeout;
    if (nv_timeout_only(args, kw, "|O:wait", &timeout) < 0)
        return NULL;
    int done = wait_request(self->r, timeout);
    return done < 0 ? NULL : PyBool_FromLong(done);
}

static PyObject *Request_result(RequestObject *self, PyObject *args, PyObject *kw)
{
    double timeout;
    if (nv_timeout_only(args, kw, "|O:result", &timeout) < 0)
        return NULL;
    if (!self->value)
        self->value = nv_finish_request((PyObject *)self, self->r, self->kind, timeout);
    return Py_XNewRef(self->value);
}

/* Pieces [start, n) as (engine_id, "stdout" | "stderr" | "display", text) tuples. */
static PyObject *outputs_list(plx_request_t *r, size_t start, size_t n)
{
    PyObject *list = PyList_New(0);
    for (size_t i = start; list && i < n; i++) {
        plx_output_t o;
        if (plx_request_output(r, i, &o) != PLX_OK)
            break;
        PyObject *t = Py_BuildValue("(isN)", (int)o.engine_id, plx_output_stream_name(o.stream),
                                    PyUnicode_DecodeUTF8(o.text, (Py_ssize_t)strlen(o.text),
                                                         "replace"));
        if (!t || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

typedef struct outputs_wait {
    plx_request_t *r;
    size_t         start, n;
    int            done;
} outputs_wait_t;

static int outputs_step(void *ctx, double slice)
{
    outputs_wait_t *w = ctx;
    w->done = plx_request_outputs_wait(w->r, w->start, slice, &w->n);
    return w->done || w->n > w->start;
}

/* outputs(start=0, timeout=0): wait (wait_sliced) for live output past
 * `start` or completion. */
static PyObject *Request_outputs(RequestObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "start", "timeout", NULL };
    Py_ssize_t start = 0;
    PyObject *to = NULL;
    double timeout = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|nO:outputs", kwlist, &start, &to) ||
        (to && nv_parse_timeout(to, &timeout) < 0))
        return NULL;
    if (start < 0)
        return PyErr_Format(PyExc_ValueError, "outputs: start must be >= 0, not %zd", start);
    outputs_wait_t w = { self->r, (size_t)start, 0, 0 };
    if (wait_sliced(outputs_step, &w, timeout) < 0)
        return NULL;
    PyObject *list = outputs_list(self->r, w.start, w.n);
    return list ? Py_BuildValue("(NO)", list, w.done ? Py_True : Py_False) : NULL;
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
    { "outputs", (PyCFunction)(void (*)(void))Request_outputs, METH_VARARGS | METH_KEYWORDS,
      "outputs(start=0, timeout=0) -> (pieces, done): the live output that engines printed\n"
      "while the request ran, from piece `start` on, as (engine_id, 'stdout'|'stderr'|\n"
      "'display', text) tuples in arrival order (display: JSON of the display data).\n"
      "Waits up to timeout (None: no limit) for a piece past `start` or the request's\n"
      "completion; done says it has completed (no piece follows)." },
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

PyType_Spec nv_request_spec = {
    .name = "plexa._native.Request",
    .basicsize = sizeof(RequestObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_HAVE_GC,
    .slots = Request_slots,
};
