/*
 * plexa.RecvBuffer and buffer exports: the two directions of zero-copy
 * payloads between plx_buf_t and Python. See plx_pyvalue.h.
 */
#include "plx_pyvalue.h"
#include "plx_pyvalue_int.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "plx_pydesc.h"
#include "plx_region.h"

/* ---- RecvBuffer: received memory seen from Python ----------------------- */

typedef struct recvbuf {
    PyObject_HEAD
    plx_buf_t *buf;   /* one reference, dropped in dealloc */
} recvbuf_t;

static int recvbuf_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    recvbuf_t *rb = (recvbuf_t *)self;
    /* Read-write: the memory is ours alone (a received frame), and numpy
     * arrays built on it should be writable like any pushed array. */
    return PyBuffer_FillInfo(view, self, rb->buf->data, (Py_ssize_t)rb->buf->len, 0, flags);
}

static void recvbuf_dealloc(PyObject *self)
{
    recvbuf_t *rb = (recvbuf_t *)self;
    /* Owned memory of a received frame: freeing it needs no GIL, and it
     * is the last use of this buffer on this side. */
    plx_buf_unref(&rb->buf);
    Py_TYPE(self)->tp_free(self);
}

static Py_ssize_t recvbuf_length(PyObject *self)
{
    return (Py_ssize_t)((recvbuf_t *)self)->buf->len;
}

static PyObject *recvbuf_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<plexa.RecvBuffer of %zd bytes>", recvbuf_length(self));
}

static PyBufferProcs recvbuf_as_buffer = {
    .bf_getbuffer = recvbuf_getbuffer,
};

static PySequenceMethods recvbuf_as_sequence = {
    .sq_length = recvbuf_length,
};

/* Not constructible from Python (no tp_new): only received frames make one. */
static PyTypeObject recvbuf_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "plexa.RecvBuffer",
    .tp_doc = PyDoc_STR("Received payload memory, exported through the buffer protocol."),
    .tp_basicsize = sizeof(recvbuf_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = recvbuf_dealloc,
    .tp_repr = recvbuf_repr,
    .tp_as_buffer = &recvbuf_as_buffer,
    .tp_as_sequence = &recvbuf_as_sequence,
};

static int recvbuf_ready(void)
{
    if (recvbuf_type.tp_flags & Py_TPFLAGS_READY)
        return 0;
    return PyType_Ready(&recvbuf_type);
}

PyObject *plx_recvbuffer_new(plx_buf_t *b)
{
    if (recvbuf_ready() < 0)
        return NULL;
    recvbuf_t *rb = PyObject_New(recvbuf_t, &recvbuf_type);
    if (!rb)
        return NULL;
    rb->buf = plx_buf_ref(b);
    return (PyObject *)rb;
}

/* A new region of n bytes of this process's, as one view (plx_region_new:
 * made here, so sent by descriptor). */
static int new_shared(size_t n, plx_buf_t **out, plx_err_t *err)
{
    plx_region_t *r = NULL;
    int rc = plx_region_new(n, &r, err);
    if (rc != PLX_OK)
        return rc;
    *out = plx_region_view(r, 0, n);
    plx_region_unref(&r);
    return *out ? PLX_OK : plx_err_set(err, PLX_ENOMEM, "region: out of memory");
}

/* A writable RecvBuffer of nbytes made by make (GIL released); who names
 * the Python function in errors. */
static PyObject *region_buffer(PyObject *arg, const char *who,
                               int (*make)(size_t, plx_buf_t **, plx_err_t *))
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 && PyErr_Occurred())
        return NULL;
    if (n <= 0)
        return PyErr_Format(PyExc_ValueError, "%s: %zd bytes (expected > 0)", who, n);
    plx_buf_t *b = NULL;
    plx_err_t err = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = make((size_t)n, &b, &err);
    Py_END_ALLOW_THREADS
    if (rc != PLX_OK)
        return PyErr_Format(rc == PLX_ENOMEM ? PyExc_MemoryError : PyExc_OSError, "%s", err.msg);
    PyObject *o = plx_pydesc_buf(b, 0, b->len, &err);
    plx_buf_unref(&b);
    if (!o && !PyErr_Occurred())
        PyErr_SetString(PyExc_MemoryError, err.msg);
    return o;
}

/* shared_buffer(nbytes): a writable RecvBuffer over a new shared-memory
 * region of this process (plx_region.h), for plexa.shared_array: what
 * lives there is sent by descriptor, without a copy. */
static PyObject *shared_buffer(PyObject *mod, PyObject *arg)
{
    return region_buffer(arg, "shared_buffer", new_shared);
}

/* scratch_buffer(nbytes): a writable RecvBuffer over a pooled region
 * (plx_region_scratch): memory already mapped, for a gather's result. */
static PyObject *scratch_buffer(PyObject *mod, PyObject *arg)
{
    return region_buffer(arg, "scratch_buffer", plx_region_scratch);
}

/* read_into(dst, offset, src): copy the bytes of src (C-contiguous) into
 * the writable buffer dst at offset, reading a received region's file
 * rather than its fresh mapping (plx_region_read); the GIL is released. */
static PyObject *read_into(PyObject *mod, PyObject *args)
{
    PyObject *dst_o, *src_o;
    Py_ssize_t off;
    if (!PyArg_ParseTuple(args, "OnO:read_into", &dst_o, &off, &src_o))
        return NULL;
    Py_buffer dst, src;
    if (PyObject_GetBuffer(dst_o, &dst, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (PyObject_GetBuffer(src_o, &src, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&dst);
        return NULL;
    }
    PyObject *ret = Py_None;
    if (off < 0 || off > dst.len || src.len > dst.len - off) {
        PyErr_Format(PyExc_ValueError, "read_into: %zd bytes at offset %zd do not fit in %zd",
                     src.len, off, dst.len);
        ret = NULL;
    } else {
        Py_BEGIN_ALLOW_THREADS
        plx_region_read(src.buf, (size_t)src.len, (uint8_t *)dst.buf + off);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_XINCREF(ret);
    return ret;
}

static PyObject *shared_regions(PyObject *mod, PyObject *unused)
{
    return PyLong_FromSize_t(plx_region_live());
}

static PyMethodDef region_defs[] = {
    { "shared_buffer", shared_buffer, METH_O,
      "shared_buffer(nbytes) -> RecvBuffer over new shared memory (plexa.shared_array)." },
    { "scratch_buffer", scratch_buffer, METH_O,
      "scratch_buffer(nbytes) -> RecvBuffer over pooled shared memory, never lent." },
    { "read_into", read_into, METH_VARARGS,
      "read_into(dst, offset, src): copy src into dst at offset (a region's file read)." },
    { "shared_regions", shared_regions, METH_NOARGS,
      "shared_regions() -> how many shared-memory regions this process maps." },
    { NULL, NULL, 0, NULL },
};

int plx_pyvalue_module_init(PyObject *module)
{
    if (recvbuf_ready() < 0 || PyModule_AddFunctions(module, region_defs) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "RecvBuffer", (PyObject *)&recvbuf_type);
}

/* ---- exports: Python memory lent to a plx_buf_t ------------------------ */

struct plx_pyexport {
    Py_buffer       view;   /* holds a reference to the exporting object */
    plx_pyexport_t *next;   /* for deferral hooks */
    int             writable;   /* counted in g_writable */
};

static atomic_long g_writable;

static void export_release_cb(void *ctx, uint8_t *data, size_t len);

static plx_pyexport_defer_fn g_defer;
static void *g_defer_ud;

void plx_pyvalue_set_release_defer(plx_pyexport_defer_fn defer, void *ud)
{
    g_defer = defer;
    g_defer_ud = ud;
}

plx_pyexport_t **plx_pyexport_next(plx_pyexport_t *x)
{
    return &x->next;
}

void plx_pyexport_release(plx_pyexport_t *x)
{
    if (x->writable)
        atomic_fetch_sub(&g_writable, 1);
    PyBuffer_Release(&x->view);
    free(x);
}

long plx_pyvalue_writable_exports(void)
{
    return atomic_load(&g_writable);
}

int plx_pyvalue_is_writable_export(const plx_buf_t *b)
{
    return b->release == export_release_cb && ((const plx_pyexport_t *)b->release_ctx)->writable;
}

/* plx_buf release callback: may run on any thread, with or without the GIL. */
static void export_release_cb(void *ctx, uint8_t *data, size_t len)
{
    plx_pyexport_t *x = ctx;
    if (g_defer && g_defer(x, g_defer_ud) == 0)
        return;
    PyGILState_STATE st = PyGILState_Ensure();
    plx_pyexport_release(x);
    PyGILState_Release(st);
}

/* Copy a non-contiguous export into owned memory (rare: _serialize makes
 * arrays contiguous before we see them), then give the export back. */
static int export_copy(Py_buffer *view, plx_buf_t **out, plx_err_t *err)
{
    int rc = PLX_OK;
    plx_buf_t *b = plx_buf_new((size_t)view->len);
    if (!b) {
        rc = plx_err_set(err, PLX_ENOMEM, "out of memory copying a %zd-byte buffer", view->len);
    } else if (PyBuffer_ToContiguous(b->data, view, view->len, 'C') < 0) {
        PyErr_Clear();
        plx_buf_unref(&b);
        rc = plx_err_set(err, PLX_EINVAL, "cannot copy a non-contiguous buffer");
    }
    PyBuffer_Release(view);
    *out = b;
    return rc;
}

/* Export obj's memory: contiguous C (the usual case), else any layout. */
static int export_get(PyObject *obj, Py_buffer *view, plx_err_t *err)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_CONTIG_RO) == 0)
        return PLX_OK;
    PyErr_Clear();
    if (PyObject_GetBuffer(obj, view, PyBUF_FULL_RO) == 0)
        return PLX_OK;
    PyErr_Clear();
    return plx_err_set(err, PLX_EINVAL, "a '%.100s' object does not export a buffer",
                       Py_TYPE(obj)->tp_name);
}

int plx_pyvalue_export(PyObject *obj, plx_buf_t **out, plx_err_t *err)
{
    *out = NULL;
    plx_pyexport_t *x = calloc(1, sizeof *x);
    if (!x)
        return plx_err_set(err, PLX_ENOMEM, "out of memory exporting a buffer");
    int rc = export_get(obj, &x->view, err);
    if (rc != PLX_OK) {
        free(x);
        return rc;
    }
    if (!PyBuffer_IsContiguous(&x->view, 'A')) {
        rc = export_copy(&x->view, out, err);
        free(x);
        return rc;
    }
    x->writable = !x->view.readonly;
    if (x->writable)
        atomic_fetch_add(&g_writable, 1);
    *out = plx_buf_wrap(x->view.buf, (size_t)x->view.len, export_release_cb, x);
    if (!*out) {
        plx_pyexport_release(x);
        return plx_err_set(err, PLX_ENOMEM, "out of memory exporting a buffer");
    }
    /* Memory of a shared array (or of one received read-only) can travel
     * by descriptor as it is. */
    plx_region_attach(*out);
    return PLX_OK;
}

int plx_pyvalue_add_buffer(PyObject *obj, plx_msg_t *msg, uint32_t *idx, plx_err_t *err)
{
    plx_buf_t *b;
    int rc = plx_pyvalue_export(obj, &b, err);
    if (rc != PLX_OK)
        return rc;
    *idx = msg->nbufs;
    rc = plx_msg_add_buf(msg, b);
    plx_buf_unref(&b);   /* the message holds its own reference (or none on failure) */
    if (rc != PLX_OK)
        return plx_err_set(err, rc, "out of memory adding a buffer to a message");
    return PLX_OK;
}
