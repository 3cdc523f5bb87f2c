/*
 * _plexa_engine.Capture: what plexa._engine puts behind sys.stdout and
 * sys.stderr while a request runs. Each write keeps the text for the reply
 * (getvalue) and hands a copy to the live-output buffer
 * (plx_engine_output.c) when the capture is live. It is a C type because
 * print() calls write once or twice per call: a Python-level write would
 * cost a tight print loop far more than the 10% the live stream may.
 *
 * The engine it feeds is set by plx_engine_capture_attach once Python runs
 * the engine, and cleared before the engine goes: a capture that user code
 * kept and writes to later (a thread) then only keeps its text.
 */
#include "plx_engine_int.h"

#include <string.h>

typedef struct {
    PyObject_HEAD
    int          stream;   /* 0 stdout, 1 stderr */
    int          live;
    plx_strbuf_t text;
} capture_t;

static plx_engine_t *capture_engine;   /* Python thread (GIL) */

void plx_engine_capture_attach(plx_engine_t *e)
{
    capture_engine = e;
}

static int capture_init(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = { "stream", "live", NULL };
    capture_t *c = (capture_t *)self;
    int stream = 0, live = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|p:Capture", names, &stream, &live))
        return -1;
    if (stream != 0 && stream != 1) {
        PyErr_Format(PyExc_ValueError, "Capture: stream must be 0 (stdout) or 1 (stderr), "
                     "not %d", stream);
        return -1;
    }
    c->stream = stream;
    c->live = live;
    plx_strbuf_free(&c->text);
    return 0;
}

static void capture_dealloc(PyObject *self)
{
    plx_strbuf_free(&((capture_t *)self)->text);
    Py_TYPE(self)->tp_free(self);
}

/* UTF-8 of s; text with lone surrogates (undecodable bytes some code
 * prints) is escaped rather than refused: printing must not raise. */
static PyObject *capture_write(PyObject *self, PyObject *arg)
{
    capture_t *c = (capture_t *)self;
    if (!PyUnicode_Check(arg))
        return PyErr_Format(PyExc_TypeError, "write() argument must be str, not %s",
                            Py_TYPE(arg)->tp_name);
    Py_ssize_t n;
    PyObject *escaped = NULL;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (!s) {
        PyErr_Clear();
        escaped = PyUnicode_AsEncodedString(arg, "utf-8", "backslashreplace");
        if (!escaped)
            return NULL;
        s = PyBytes_AS_STRING(escaped);
        n = PyBytes_GET_SIZE(escaped);
    }
    plx_strbuf_put(&c->text, s, (size_t)n);
    if (c->live && capture_engine)
        plx_engine_output_write(capture_engine, c->stream, s, (size_t)n);
    Py_XDECREF(escaped);
    if (c->text.oom)
        return PyErr_NoMemory();
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

static PyObject *capture_getvalue(PyObject *self, PyObject *unused)
{
    (void)unused;
    const capture_t *c = (const capture_t *)self;
    return PyUnicode_DecodeUTF8(plx_strbuf_str(&c->text), (Py_ssize_t)c->text.len, "replace");
}

static PyMethodDef capture_methods[] = {
    {"write", capture_write, METH_O, "Keep s (and send it live); returns len(s)."},
    {"getvalue", capture_getvalue, METH_NOARGS, "Everything written so far."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject capture_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_plexa_engine.Capture",
    .tp_basicsize = sizeof(capture_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Capture(stream, live=False): the text a request writes to stdout (0) or "
              "stderr (1), kept for its reply and, when live, sent as it is written.",
    .tp_new = PyType_GenericNew,
    .tp_init = capture_init,
    .tp_dealloc = capture_dealloc,
    .tp_methods = capture_methods,
};

/* _plexa_engine.display(json): display data of the running request. */
static PyObject *engine_display(PyObject *mod, PyObject *arg)
{
    (void)mod;
    /* JSON escapes control characters: the text is a C string */
    const char *s = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (!s)
        return PyErr_Occurred() ? NULL
                                : PyErr_Format(PyExc_TypeError, "display() wants a JSON str");
    int sent = capture_engine ? plx_engine_output_display(capture_engine, s) : 0;
    return PyBool_FromLong(sent);
}

static PyMethodDef module_methods[] = {
    {"display", engine_display, METH_O,
     "display(json) -> bool: send display data ({\"data\": {mime: ...}, \"metadata\": {...}}"
     " as JSON) to the client of the running request, after what it printed; False when\n"
     "no request takes live output (a task)."},
    {NULL, NULL, 0, NULL},
};

int plx_engine_capture_module_init(PyObject *m)
{
    if (PyModule_AddFunctions(m, module_methods) < 0 || PyType_Ready(&capture_type) < 0)
        return -1;
    Py_INCREF(&capture_type);
    if (PyModule_AddObject(m, "Capture", (PyObject *)&capture_type) < 0) {
        Py_DECREF(&capture_type);
        return -1;
    }
    return 0;
}
