/*
 * plexa._native.Completions: libplexa's completion queue (plx_cq_*, see
 * plx_client_int.h) for plexa's callback thread (plexa._callbacks). The
 * thread blocks in wait() with the GIL released until a watched request
 * completes, so that a future resolves, and its callbacks run, as soon as
 * the reply arrives, without a thread per request or a polling loop.
 *
 *   Completions()                 an open, empty queue
 *     .watch(request, token)      queue the int token when request completes
 *     .post(token)                queue token now (wake the waiter)
 *     .wait(timeout=None)         -> [token, ...] ([] after a timeout), or
 *                                    None once closed
 *     .close()                    wake the waiter (None), drop the rest
 */
#include "_native_int.h"

#define WAIT_BATCH 256

typedef struct {
    PyObject_HEAD
    plx_cq_t *cq;
} CompletionsObject;

static PyObject *Completions_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) || (kw && PyDict_GET_SIZE(kw))) {
        PyErr_SetString(PyExc_TypeError, "Completions() takes no arguments");
        return NULL;
    }
    CompletionsObject *self = (CompletionsObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    plx_err_t err = {0};
    self->cq = plx_cq_new(&err);
    if (!self->cq) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void Completions_dealloc(CompletionsObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    plx_cq_destroy(&self->cq);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* A token: a non-negative int that fits 64 bits. */
static int parse_token(PyObject *o, uint64_t *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

static PyObject *Completions_watch(CompletionsObject *self, PyObject *args)
{
    PyObject *request, *token_o;
    uint64_t token;
    if (!PyArg_ParseTuple(args, "OO:watch", &request, &token_o) ||
        parse_token(token_o, &token) < 0)
        return NULL;
    plx_request_t *r = nv_request_handle(request);
    if (!r)
        return NULL;
    plx_err_t err = {0};
    if (plx_cq_watch(self->cq, r, token, &err) != PLX_OK)
        return nv_raise_err((PyObject *)self, &err);
    Py_RETURN_NONE;
}

static PyObject *Completions_post(CompletionsObject *self, PyObject *token_o)
{
    uint64_t token;
    if (parse_token(token_o, &token) < 0)
        return NULL;
    plx_err_t err = {0};
    if (plx_cq_post(self->cq, token, &err) != PLX_OK)
        return nv_raise_err((PyObject *)self, &err);
    Py_RETURN_NONE;
}

static PyObject *Completions_wait(CompletionsObject *self, PyObject *args, PyObject *kw)
{
    double timeout;
    if (nv_timeout_only(args, kw, "|O:wait", &timeout) < 0)
        return NULL;
    uint64_t tokens[WAIT_BATCH];
    size_t n = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = plx_cq_wait(self->cq, timeout, tokens, WAIT_BATCH, &n);
    Py_END_ALLOW_THREADS
    nv_release_drain();   /* replies may have let go of exported buffers */
    if (rc == PLX_ECLOSED)
        Py_RETURN_NONE;
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(tokens[i]);
        if (!v)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    return list;
}

static PyObject *Completions_close(CompletionsObject *self, PyObject *unused)
{
    plx_cq_close(self->cq);
    Py_RETURN_NONE;
}

static PyMethodDef Completions_methods[] = {
    { "watch", (PyCFunction)Completions_watch, METH_VARARGS,
      "watch(request, token): queue the int token when request completes (at once if it\n"
      "has); a request is watched once." },
    { "post", (PyCFunction)Completions_post, METH_O,
      "post(token): queue token now, as if a watched request completed." },
    { "wait", (PyCFunction)(void (*)(void))Completions_wait, METH_VARARGS | METH_KEYWORDS,
      "wait(timeout=None) -> [token, ...] in completion order ([] after a timeout), or\n"
      "None once closed. Blocks with the GIL released." },
    { "close", (PyCFunction)Completions_close, METH_NOARGS,
      "close(): wake the waiter (wait returns None); later completions are dropped." },
    { NULL, NULL, 0, NULL },
};

static PyType_Slot Completions_slots[] = {
    { Py_tp_new, Completions_new },
    { Py_tp_dealloc, Completions_dealloc },
    { Py_tp_methods, Completions_methods },
    { Py_tp_doc, "Completions(): the completions of watched requests, for one waiting thread\n"
                 "(libplexa's plx_cq_*)." },
    { 0, NULL },
};

PyType_Spec nv_completions_spec = {
    .name = "plexa._native.Completions",
    .basicsize = sizeof(CompletionsObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Completions_slots,
};
