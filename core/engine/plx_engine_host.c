/*
 * plexa._enginehost: the engine as an extension module of python3 itself,
 * so that user code runs on the interpreter's own, faster, statically
 * linked core rather than an embedded shared libpython (see
 * cmd/ipengine.c, which execs python3 to get here).
 *
 *     main(argv) -> exit status      argv: ['ipengine', options...]
 *
 * Must be called from the main thread, once per process; it returns when
 * the engine ends, and python3 then exits with the status.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/prctl.h>

#include "plx_engine_cli.h"

static PyObject *host_main(PyObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "main(argv): argv must be a list of str");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    char **argv = PyMem_Calloc((size_t)n + 1, sizeof *argv);
    if (!argv) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        argv[i] = (char *)PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        if (!argv[i]) {
            PyMem_Free(argv);
            Py_DECREF(seq);
            return NULL;
        }
    }
    /* `pgrep ipengine` and top should see an engine, not "python3". */
    prctl(PR_SET_NAME, "ipengine", 0, 0, 0);
    int status = plx_ipengine_main((int)n, argv);
    PyMem_Free(argv);
    Py_DECREF(seq);
    if (PyErr_Occurred())
        PyErr_Clear();   /* reported by the engine already */
    return PyLong_FromLong(status);
}

static PyMethodDef host_methods[] = {
    { "main", host_main, METH_O,
      "main(argv) -> exit status: run an ipengine with these arguments (argv[0] is the\n"
      "program name) in this interpreter, until the engine ends." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef host_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "plexa._enginehost",
    .m_doc = "The plexa engine hosted by python3 (run by ipengine).",
    .m_size = -1,
    .m_methods = host_methods,
};

PyMODINIT_FUNC PyInit__enginehost(void);
PyMODINIT_FUNC PyInit__enginehost(void)
{
    return PyModule_Create(&host_module);
}
