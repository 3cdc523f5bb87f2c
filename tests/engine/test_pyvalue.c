/*
 * core/pyvalue in an embedded interpreter: Value <-> descriptor for every
 * kind, buffer indices, malformed input, and buffer ownership both ways
 * (RecvBuffer references, exports given back, the deferral hook).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plx_test.h"

#include <string.h>

#include "plx_pyvalue.h"

/* Evaluate a Python expression in a scratch namespace. New reference. */
static PyObject *eval(const char *expr)
{
    static PyObject *ns;
    if (!ns) {
        ns = PyDict_New();
        PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins());
    }
    PyObject *o = PyRun_String(expr, Py_eval_input, ns, ns);
    if (!o)
        PyErr_Print();
    assert_non_null(o);
    return o;
}

static void assert_repr(PyObject *o, const char *want)
{
    PyObject *r = PyObject_Repr(o);
    assert_non_null(r);
    assert_string_equal(PyUnicode_AsUTF8(r), want);
    Py_DECREF(r);
}

/* from_desc, pack, unpack, to_desc: the descriptor must survive. */
static void round_trip(const char *expr, const char *want_repr)
{
    PyObject *d = eval(expr);
    Plexa__Value v;
    plx_msg_t *m = plx_msg_new(0);
    plx_err_t err = {0};
    assert_int_equal(plx_pyvalue_from_desc(d, &v, m, &err), PLX_OK);
    size_t n = plexa__value__get_packed_size(&v);
    uint8_t *buf = malloc(n ? n : 1);
    plexa__value__pack(&v, buf);
    plx_pyvalue_clear(&v);
    Plexa__Value *u = plexa__value__unpack(NULL, n, buf);
    assert_non_null(u);
    PyObject *back = plx_pyvalue_to_desc(u, m->bufs, m->nbufs, &err);
    assert_non_null(back);
    PyObject *dr = PyObject_Repr(d);
    assert_repr(back, want_repr ? want_repr : PyUnicode_AsUTF8(dr));
    Py_DECREF(dr);
    Py_DECREF(back);
    plexa__value__free_unpacked(u, NULL);
    free(buf);
    plx_msg_destroy(&m);
    Py_DECREF(d);
}

static void test_scalars(void **state)
{
    round_trip("('none',)", NULL);
    round_trip("('bool', True)", NULL);
    round_trip("('i64', -9223372036854775808)", NULL);
    round_trip("('f64', 2.5)", NULL);
    round_trip("('str', 'h\\u00e9llo')", "('str', 'héllo')");
    round_trip("('list', [('i64', 1), ('list', [], True), ('str', '')], False)", NULL);
}

static void test_buffers(void **state)
{
    round_trip("('bytes', b'xyz')", "('bytes', <plexa.RecvBuffer of 3 bytes>)");
    round_trip("('ndarray', '<f8', (2, 3), True, bytearray(48))",
               "('ndarray', '<f8', (2, 3), True, <plexa.RecvBuffer of 48 bytes>)");
    round_trip("('pickle', b'data', [b'a', bytearray(b'bc')])",
               "('pickle', <plexa.RecvBuffer of 4 bytes>, [<plexa.RecvBuffer of 1 bytes>, "
               "<plexa.RecvBuffer of 2 bytes>])");
    /* Indices follow the message: buffers already there come first. */
    plx_msg_t *m = plx_msg_new(0);
    plx_buf_t *pre = plx_buf_copy("p", 1);
    plx_msg_add_buf(m, pre);
    plx_buf_unref(&pre);
    Plexa__Value v;
    plx_err_t err = {0};
    PyObject *d = eval("('pickle', b'data', [b'a'])");
    assert_int_equal(plx_pyvalue_from_desc(d, &v, m, &err), PLX_OK);
    assert_int_equal(v.pickle->buf, 1);
    assert_int_equal(v.pickle->oob[0], 2);
    assert_int_equal(m->nbufs, 3);
    assert_memory_equal(m->bufs[1]->data, "data", 4);
    plx_pyvalue_clear(&v);
    plx_msg_destroy(&m);
    Py_DECREF(d);
}

static void test_recvbuffer(void **state)
{
    plx_buf_t *b = plx_buf_copy("hello", 5);
    PyObject *rb = plx_recvbuffer_new(b);
    assert_int_equal(atomic_load(&b->refs), 2);
    PyObject *mv = PyMemoryView_FromObject(rb);
    Py_buffer *view = PyMemoryView_GET_BUFFER(mv);
    assert_int_equal(view->len, 5);
    assert_false(view->readonly);
    ((char *)view->buf)[0] = 'j';   /* writable, and it is the received memory */
    assert_memory_equal(b->data, "jello", 5);
    assert_int_equal(PyObject_Length(rb), 5);
    Py_DECREF(mv);
    Py_DECREF(rb);
    assert_int_equal(atomic_load(&b->refs), 1);
    plx_buf_unref(&b);
}

static void expect_to_desc_error(Plexa__Value *v, size_t nbufs, int code, const char *needle)
{
    plx_err_t err = {0};
    plx_buf_t *b = plx_buf_copy("x", 1);
    PyObject *d = plx_pyvalue_to_desc(v, &b, nbufs, &err);
    assert_null(d);
    assert_false(PyErr_Occurred());
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.msg, needle));
    plx_buf_unref(&b);
}

static void test_bad_values(void **state)
{
    Plexa__Value v = PLEXA__VALUE__INIT;
    v.kind_case = PLEXA__VALUE__KIND_BYTES;
    v.bytes = 3;
    expect_to_desc_error(&v, 1, PLX_EPROTO, "buffer 3");
    Plexa__Pickle p = PLEXA__PICKLE__INIT;
    uint32_t oob[] = { 0, 7 };
    p.has_buf = 1;
    p.n_oob = 2;
    p.oob = oob;
    v.kind_case = PLEXA__VALUE__KIND_PICKLE;
    v.pickle = &p;
    expect_to_desc_error(&v, 1, PLX_EPROTO, "buffer 7");
    Plexa__NdArray nd = PLEXA__ND_ARRAY__INIT;
    v.kind_case = PLEXA__VALUE__KIND_NDARRAY;
    v.ndarray = &nd;
    expect_to_desc_error(&v, 1, PLX_EPROTO, "without");
    v.kind_case = PLEXA__VALUE__KIND_STR;
    v.str = "\xff\xfe";
    expect_to_desc_error(&v, 1, PLX_EPROTO, "str value");
    Plexa__Value none = PLEXA__VALUE__INIT;
    expect_to_desc_error(&none, 1, PLX_EPROTO, "without a kind");

    /* 70 nested lists */
    Plexa__Value lv[70];
    Plexa__ValueList ll[70];
    Plexa__Value *items[70];
    for (int i = 0; i < 70; i++) {
        plexa__value__init(&lv[i]);
        plexa__value_list__init(&ll[i]);
        lv[i].kind_case = PLEXA__VALUE__KIND_LIST;
        lv[i].list = &ll[i];
        if (i < 69) {
            items[i] = &lv[i + 1];
            ll[i].n_items = 1;
            ll[i].items = &items[i];
        }
    }
    expect_to_desc_error(&lv[0], 1, PLX_EPROTO, "deeper");
}

static void expect_from_desc_error(const char *expr, const char *needle)
{
    PyObject *d = eval(expr);
    Plexa__Value v;
    plx_msg_t *m = plx_msg_new(0);
    plx_err_t err = {0};
    assert_int_not_equal(plx_pyvalue_from_desc(d, &v, m, &err), PLX_OK);
    assert_false(PyErr_Occurred());
    if (!strstr(err.msg, needle))
        fprintf(stderr, "%s: got '%s'\n", expr, err.msg);
    assert_non_null(strstr(err.msg, needle));
    plx_pyvalue_clear(&v);   /* partly filled: must free cleanly */
    plx_msg_destroy(&m);
    Py_DECREF(d);
}

static void test_bad_descriptors(void **state)
{
    expect_from_desc_error("5", "tuple starting with its kind");
    expect_from_desc_error("('nope',)", "unknown value descriptor kind 'nope'");
    expect_from_desc_error("('i64',)", "has 1 items, expected 2");
    expect_from_desc_error("('i64', 'x')", "not an int");
    expect_from_desc_error("('i64', 2**64)", "i64 descriptor");
    expect_from_desc_error("('f64', 'x')", "f64 descriptor");
    expect_from_desc_error("('str', 'a\\0b')", "NUL");
    expect_from_desc_error("('str', 3)", "must be a str");
    expect_from_desc_error("('bytes', 3)", "does not export a buffer");
    expect_from_desc_error("('ndarray', '<f8', (-1,), False, b'')", "ndarray shape");
    expect_from_desc_error("('ndarray', '<f8', (1,), False, 7)", "does not export");
    expect_from_desc_error("('list', [('i64', 1), ('bytes', b'x'), ('bad',)], False)",
                           "unknown value descriptor kind 'bad'");
    expect_from_desc_error("('pickle', b'x', [b'y', None])", "does not export");
    expect_from_desc_error("('list', 5, False)", "list descriptor");
    expect_from_desc_error("(lambda f: f(f, 70))"
                           "(lambda f, n: ('list', [f(f, n - 1)] if n else [], False))",
                           "deeper");
}

/* An export holds the object until the message lets it go. */
static void test_export_lifetime(void **state)
{
    PyObject *ba = eval("bytearray(b'0123456789')");
    Py_ssize_t before = Py_REFCNT(ba);
    PyObject *d = Py_BuildValue("(sO)", "bytes", ba);
    Plexa__Value v;
    plx_msg_t *m = plx_msg_new(0);
    plx_err_t err = {0};
    assert_int_equal(plx_pyvalue_from_desc(d, &v, m, &err), PLX_OK);
    Py_DECREF(d);
    assert_int_equal(Py_REFCNT(ba), before + 1);
    assert_ptr_equal(m->bufs[0]->data, PyByteArray_AS_STRING(ba));   /* zero copy */
    /* Exported: the bytearray cannot be resized under the message. */
    assert_int_equal(PyByteArray_Resize(ba, 100), -1);
    PyErr_Clear();
    plx_pyvalue_clear(&v);
    plx_msg_destroy(&m);
    assert_int_equal(Py_REFCNT(ba), before);
    Py_DECREF(ba);
}

static plx_pyexport_t *g_deferred;

static int defer_all(plx_pyexport_t *x, void *ud)
{
    *plx_pyexport_next(x) = g_deferred;
    g_deferred = x;
    return 0;
}

static void test_deferred_release(void **state)
{
    PyObject *ba = eval("bytearray(b'abc')");
    Py_ssize_t before = Py_REFCNT(ba);
    PyObject *d = Py_BuildValue("(sO[O])", "pickle", ba, ba);
    Plexa__Value v;
    plx_msg_t *m = plx_msg_new(0);
    plx_err_t err = {0};
    plx_pyvalue_set_release_defer(defer_all, NULL);
    assert_int_equal(plx_pyvalue_from_desc(d, &v, m, &err), PLX_OK);
    Py_DECREF(d);
    plx_pyvalue_clear(&v);
    plx_msg_destroy(&m);
    assert_int_equal(Py_REFCNT(ba), before + 2);   /* still exported: deferred */
    int n = 0;
    while (g_deferred) {
        plx_pyexport_t *next = *plx_pyexport_next(g_deferred);
        plx_pyexport_release(g_deferred);
        g_deferred = next;
        n++;
    }
    plx_pyvalue_set_release_defer(NULL, NULL);
    assert_int_equal(n, 2);
    assert_int_equal(Py_REFCNT(ba), before);
    Py_DECREF(ba);
}

/* A non-contiguous export is copied rather than refused. */
static void test_non_contiguous(void **state)
{
    PyObject *d = eval("('bytes', memoryview(b'abcdef')[::2])");
    Plexa__Value v;
    plx_msg_t *m = plx_msg_new(0);
    plx_err_t err = {0};
    assert_int_equal(plx_pyvalue_from_desc(d, &v, m, &err), PLX_OK);
    assert_int_equal(m->bufs[0]->len, 3);
    assert_memory_equal(m->bufs[0]->data, "ace", 3);
    plx_pyvalue_clear(&v);
    plx_msg_destroy(&m);
    Py_DECREF(d);
}

/* The interpreter lives for the whole program, as in an engine. */
static int start_python(int argc, char **argv)
{
    PyConfig config;
    (void)argc;
    (void)argv;
    PyConfig_InitIsolatedConfig(&config);
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    return PyStatus_Exception(st) ? 1 : PLX_TEST_RUN;
}

static int stop_python(void)
{
    return Py_FinalizeEx() < 0 ? 1 : 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scalars),
    cmocka_unit_test(test_buffers),
    cmocka_unit_test(test_recvbuffer),
    cmocka_unit_test(test_bad_values),
    cmocka_unit_test(test_bad_descriptors),
    cmocka_unit_test(test_export_lifetime),
    cmocka_unit_test(test_deferred_release),
    cmocka_unit_test(test_non_contiguous),
};

PLX_TEST_SUITE(start_python, stop_python, PLX_TEST_GROUP("pyvalue", tests, NULL, NULL))
