/*
 * The engine's interpreter: start-up of the embedded CPython and the
 * translation of requests into calls of plexa._engine (Python keeps the
 * interpreter logic: cells, capture, tracebacks) and of its results into
 * replies. Runs on the Python (main) thread with the GIL held.
 */
#include "plx_engine_cli.h"
#include "plx_engine_int.h"
#include "plx_pyvalue.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glob.h>
#include <unistd.h>

#include "plx_envelope.h"
#include "plx_log.h"

#ifndef PLX_PYTHON_EXECUTABLE
#define PLX_PYTHON_EXECUTABLE "/usr/bin/python3"
#endif
#ifndef PLX_PYTHON_INSTALL_DIR
#define PLX_PYTHON_INSTALL_DIR "lib/python3/dist-packages"
#endif

/* ---- the _plexa_engine built-in module ---------------------------------- */

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_plexa_engine",
    .m_doc = "ipengine's built-in helpers (plexa.RecvBuffer).",
    .m_size = -1,
};

static PyObject *engine_module_init(void)
{
    PyObject *m = PyModule_Create(&engine_module);
    if (m && (plx_pyvalue_module_init(m) < 0 || plx_engine_capture_module_init(m) < 0))
        Py_CLEAR(m);
    return m;
}

/* ---- start-up ----------------------------------------------------------- */

/* Describe and clear the pending Python exception into err. */

/* Inside python3 (plexa._enginehost): the interpreter runs already; our
 * built-in module goes straight into sys.modules. */
static int py_start_hosted(plx_engine_t *e, plx_err_t *err)
{
    e->hosted = 1;
    PyObject *m = engine_module_init();
    PyObject *mods = PyImport_GetModuleDict();   /* borrowed */
    int rc = m ? PyDict_SetItemString(mods, "_plexa_engine", m) : -1;
    Py_XDECREF(m);
    PyObject *argv = rc == 0 ? Py_BuildValue("[s]", "ipengine") : NULL;
    if (!argv || PySys_SetObject("argv", argv) < 0)   /* as when embedded */
        rc = -1;
    Py_XDECREF(argv);
    return rc == 0 ? PLX_OK : plx_pyvalue_fail(err, PLX_ERR, "creating _plexa_engine");
}

static int py_start(plx_engine_t *e, plx_err_t *err)
{
    if (Py_IsInitialized())
        return py_start_hosted(e, err);
    if (PyImport_AppendInittab("_plexa_engine", engine_module_init) < 0)
        return plx_err_set(err, PLX_ERR, "cannot register the _plexa_engine module");
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    /* Behave like a plain `python3`: site-packages, user site and the
     * PYTHON* variables apply. program_name makes sys.executable and the
     * prefix those of the interpreter (subprocess and multiprocessing run
     * sys.executable, which must not be ipengine). */
    config.parse_argv = 0;
    char *argv[] = { "ipengine", NULL };
    PyStatus st = PyConfig_SetBytesArgv(&config, 1, argv);
    if (!PyStatus_Exception(st))
        st = PyConfig_SetBytesString(&config, &config.program_name, PLX_PYTHON_EXECUTABLE);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    e->owns_python = !PyStatus_Exception(st);
    if (PyStatus_Exception(st))
        return plx_err_set(err, PLX_ERR, "cannot start Python: %s%s%s",
                           st.func ? st.func : "", st.func ? ": " : "",
                           st.err_msg ? st.err_msg : "unknown error");
    return PLX_OK;
}

/* The directory of the running binary, from /proc/self/exe. */
static int exe_dir(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n <= 0)
        return PLX_EIO;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash)
        return PLX_EIO;
    *slash = '\0';
    return PLX_OK;
}

/* Where plexa's Python package is: <bindir>/../python in the build tree,
 * <bindir>/../<python install dir> installed. "" if neither has it. */
static void find_package_dir(char *out, size_t len)
{
    char bin[PATH_MAX];
    out[0] = '\0';
    if (exe_dir(bin, sizeof bin) != PLX_OK)
        return;
    const char *rel[] = { "python", PLX_PYTHON_INSTALL_DIR };
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char probe[PATH_MAX + 64];
        snprintf(probe, sizeof probe, "%s/../%s/plexa/_engine.py", bin, rel[i]);
        char *real = realpath(probe, NULL);
        if (!real)
            continue;
        /* .../plexa/_engine.py -> ... */
        *strrchr(real, '/') = '\0';
        *strrchr(real, '/') = '\0';
        snprintf(out, len, "%s", real);
        free(real);
        return;
    }
}

int plx_engine_host_module(char *pkg, size_t plen, char *bin, size_t blen)
{
    if (exe_dir(bin, blen) != PLX_OK)
        return -1;
    find_package_dir(pkg, plen);
    if (!pkg[0])
        return -1;
    char pattern[PATH_MAX + 64];
    snprintf(pattern, sizeof pattern, "%s/plexa/_enginehost*.so", pkg);
    glob_t g;
    int found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    globfree(&g);
    return found ? 0 : -1;
}

/* sys.path: plexa's package directory first (a plexa/ planted in the
 * start directory must not run in place of ours), then the start directory
 * (like `python -c`, so the user's modules next to where ipcluster started
 * import, as in 0.10), then site-packages. */
static int py_set_path(plx_err_t *err)
{
    char cwd[PATH_MAX], pkg[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, ".");
    find_package_dir(pkg, sizeof pkg);
    PyObject *path = PySys_GetObject("path");   /* borrowed */
    if (!path || !PyList_Check(path))
        return plx_err_set(err, PLX_ERR, "sys.path is not a list");
    PyObject *c = PyUnicode_DecodeFSDefault(cwd);
    int rc = c ? PyList_Insert(path, 0, c) : -1;
    Py_XDECREF(c);
    if (rc == 0 && pkg[0]) {
        PyObject *p = PyUnicode_DecodeFSDefault(pkg);
        rc = p ? PyList_Insert(path, 0, p) : -1;
        Py_XDECREF(p);
    }
    if (rc < 0)
        return plx_pyvalue_fail(err, PLX_ERR, "setting sys.path");
    PLX_DEBUG("sys.path starts with %s%s%s", pkg[0] ? pkg : "", pkg[0] ? ", " : "", cwd);
    return PLX_OK;
}

static int py_bind(plx_engine_t *e, plx_err_t *err)
{
    PyObject *mod = PyImport_ImportModule("plexa._engine");
    if (!mod)
        return plx_pyvalue_fail(err, PLX_ERR, "cannot import plexa._engine");
    struct { PyObject **slot; const char *name; } fns[] = {
        { &e->fn_execute, "execute" },   { &e->fn_push, "push" },
        { &e->fn_pull, "pull" },         { &e->fn_call, "call" },
        { &e->fn_task, "task" },         { &e->fn_set_id, "set_id" },
        { &e->fn_setup_mpi, "setup_mpi" }, { &e->fn_can_finalize, "can_finalize" },
        { &e->fn_warm_up, "warm_up" },
    };
    int rc = PLX_OK;
    if (e->opts.no_ipython && PyObject_SetAttrString(mod, "IPYTHON", Py_False) < 0)
        rc = plx_pyvalue_fail(err, PLX_ERR, "plexa._engine");
    for (size_t i = 0; rc == PLX_OK && i < sizeof fns / sizeof fns[0]; i++) {
        *fns[i].slot = PyObject_GetAttrString(mod, fns[i].name);
        if (!*fns[i].slot)
            rc = plx_pyvalue_fail(err, PLX_ERR, "plexa._engine");
    }
    Py_DECREF(mod);
    return rc;
}

int plx_engine_py_init(plx_engine_t *e, plx_err_t *err)
{
    int rc = py_start(e, err);
    if (rc == PLX_OK)
        rc = py_set_path(err);
    if (rc == PLX_OK)
        rc = py_bind(e, err);
    if (rc == PLX_OK)
        plx_engine_capture_attach(e);
    return rc;
}

void plx_engine_py_fini(plx_engine_t *e)
{
    if (!Py_IsInitialized() || (!e->owns_python && !e->hosted))
        return;   /* never started */
    /* A KeyboardInterrupt we sent to stop running code may still be
     * pending; it has no one to interrupt any more. */
    if (PyErr_CheckSignals() < 0)
        PyErr_Clear();
    PyObject *ok = e->fn_can_finalize ? PyObject_CallNoArgs(e->fn_can_finalize) : NULL;
    int can = ok ? PyObject_IsTrue(ok) : 1;
    Py_XDECREF(ok);
    PyErr_Clear();
    plx_engine_capture_attach(NULL);
    PyObject **fns[] = { &e->fn_execute, &e->fn_push, &e->fn_pull, &e->fn_call, &e->fn_task,
                         &e->fn_set_id,
                         &e->fn_setup_mpi, &e->fn_can_finalize, &e->fn_warm_up };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        Py_CLEAR(*fns[i]);
    if (!e->owns_python)
        return;   /* hosted: python3 finalizes itself once plexa._enginehost.main returns */
    if (can != 1) {
        /* Finalizing would join a thread user code left running, forever. */
        PLX_WARN("user threads are still running; exiting without finalizing Python");
        PyRun_SimpleString("import sys; sys.stdout.flush(); sys.stderr.flush()");
        return;
    }
    if (Py_FinalizeEx() < 0)
        PLX_WARN("Python finalization reported an error (flushing stdout?)");
}

int plx_engine_py_registered(plx_engine_t *e, int32_t engine_id, plx_err_t *err)
{
    PyObject *r = PyObject_CallFunction(e->fn_set_id, "i", (int)engine_id);
    if (!r)
        return plx_pyvalue_fail(err, PLX_ERR, "setting id");
    Py_DECREF(r);
    if (!e->opts.mpi)
        return PLX_OK;
    r = PyObject_CallFunction(e->fn_setup_mpi, "s", e->opts.mpi);
    if (!r)
        return plx_pyvalue_fail(err, PLX_ERR, "--mpi set-up");
    int rc = PLX_OK;
    if (r != Py_None) {
        PyObject *ev = PyTuple_Check(r) && PyTuple_GET_SIZE(r) >= 2 ? PyTuple_GET_ITEM(r, 1) : r;
        PyObject *s = PyObject_Str(ev);
        rc = plx_err_set(err, PLX_EINVAL, "--mpi=%s: %s", e->opts.mpi,
                         s && PyUnicode_AsUTF8(s) ? PyUnicode_AsUTF8(s) : "failed");
        Py_XDECREF(s);
        PyErr_Clear();
    }
    Py_DECREF(r);
    return rc;
}

void plx_engine_release_exports(plx_pyexport_t *list)
{
    while (list) {
        plx_pyexport_t *next = *plx_pyexport_next(list);
        plx_pyexport_release(list);
        list = next;
    }
}
