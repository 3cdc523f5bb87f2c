/*
 * libplexa's values without a controller: constructors and accessors,
 * zero-copy lending, the wire form both ways, the block partition, and
 * the restricted reader of a string task's pickled dict. White-box: the
 * library's value sources are compiled in (their internals are hidden in
 * libplexa.so).
 *
 * The pickles below were written by cloudpickle (protocol 5, numpy 1.24,
 * out-of-band buffers) exactly as an engine writes a string task's pulled
 * names; regenerate them with the snippet in each comment if that changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <stdlib.h>
#include <string.h>

#include "plx_value_int.h"

/* cloudpickle.dumps({'i': -5, 'big': 70000, 'neg': -(2**40), 'f': 2.5,
 *   's': 'h\u00e9', 'b': b'x\x00y', 'l': [1, None, True, (2, 'two')],
 *   'a': numpy.arange(6, dtype='<i4').reshape(2, 3),
 *   'u': numpy.zeros(3, numpy.uint8)}, protocol=5, buffer_callback=oob.append)
 * ({'o': numpy.arange(4.0)[::2]}: not contiguous, numpy's _reconstruct)
 * ({'c': cyc} with cyc = [cyc]) ({}) */
static const uint8_t PK_DICT[] = {
    0x80, 0x05, 0x95, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d,
    0x94, 0x28, 0x8c, 0x01, 0x69, 0x94, 0x4a, 0xfb, 0xff, 0xff, 0xff, 0x8c,
    0x03, 0x62, 0x69, 0x67, 0x94, 0x4a, 0x70, 0x11, 0x01, 0x00, 0x8c, 0x03,
    0x6e, 0x65, 0x67, 0x94, 0x8a, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
    0x8c, 0x01, 0x66, 0x94, 0x47, 0x40, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x8c, 0x01, 0x73, 0x94, 0x8c, 0x03, 0x68, 0xc3, 0xa9, 0x94, 0x8c,
    0x01, 0x62, 0x94, 0x43, 0x03, 0x78, 0x00, 0x79, 0x94, 0x8c, 0x01, 0x6c,
    0x94, 0x5d, 0x94, 0x28, 0x4b, 0x01, 0x4e, 0x88, 0x4b, 0x02, 0x8c, 0x03,
    0x74, 0x77, 0x6f, 0x94, 0x86, 0x94, 0x65, 0x8c, 0x01, 0x61, 0x94, 0x8c,
    0x12, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x2e, 0x63, 0x6f, 0x72, 0x65, 0x2e,
    0x6e, 0x75, 0x6d, 0x65, 0x72, 0x69, 0x63, 0x94, 0x8c, 0x0b, 0x5f, 0x66,
    0x72, 0x6f, 0x6d, 0x62, 0x75, 0x66, 0x66, 0x65, 0x72, 0x94, 0x93, 0x94,
    0x28, 0x97, 0x8c, 0x05, 0x6e, 0x75, 0x6d, 0x70, 0x79, 0x94, 0x8c, 0x05,
    0x64, 0x74, 0x79, 0x70, 0x65, 0x94, 0x93, 0x94, 0x8c, 0x02, 0x69, 0x34,
    0x94, 0x89, 0x88, 0x87, 0x94, 0x52, 0x94, 0x28, 0x4b, 0x03, 0x8c, 0x01,
    0x3c, 0x94, 0x4e, 0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff,
    0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x94, 0x62, 0x4b, 0x02, 0x4b, 0x03,
    0x86, 0x94, 0x8c, 0x01, 0x43, 0x94, 0x74, 0x94, 0x52, 0x94, 0x8c, 0x01,
    0x75, 0x94, 0x68, 0x10, 0x28, 0x97, 0x68, 0x13, 0x8c, 0x02, 0x75, 0x31,
    0x94, 0x89, 0x88, 0x87, 0x94, 0x52, 0x94, 0x28, 0x4b, 0x03, 0x8c, 0x01,
    0x7c, 0x94, 0x4e, 0x4e, 0x4e, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4a, 0xff,
    0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x94, 0x62, 0x4b, 0x03, 0x85, 0x94,
    0x68, 0x1a, 0x74, 0x94, 0x52, 0x94, 0x75, 0x2e,
};

static const uint8_t PK_NONCONTIG[] = {
    0x80, 0x05, 0x95, 0x9f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d,
    0x94, 0x8c, 0x01, 0x6f, 0x94, 0x8c, 0x15, 0x6e, 0x75, 0x6d, 0x70, 0x79,
    0x2e, 0x63, 0x6f, 0x72, 0x65, 0x2e, 0x6d, 0x75, 0x6c, 0x74, 0x69, 0x61,
    0x72, 0x72, 0x61, 0x79, 0x94, 0x8c, 0x0c, 0x5f, 0x72, 0x65, 0x63, 0x6f,
    0x6e, 0x73, 0x74, 0x72, 0x75, 0x63, 0x74, 0x94, 0x93, 0x94, 0x8c, 0x05,
    0x6e, 0x75, 0x6d, 0x70, 0x79, 0x94, 0x8c, 0x07, 0x6e, 0x64, 0x61, 0x72,
    0x72, 0x61, 0x79, 0x94, 0x93, 0x94, 0x4b, 0x00, 0x85, 0x94, 0x43, 0x01,
    0x62, 0x94, 0x87, 0x94, 0x52, 0x94, 0x28, 0x4b, 0x01, 0x4b, 0x02, 0x85,
    0x94, 0x68, 0x05, 0x8c, 0x05, 0x64, 0x74, 0x79, 0x70, 0x65, 0x94, 0x93,
    0x94, 0x8c, 0x02, 0x66, 0x38, 0x94, 0x89, 0x88, 0x87, 0x94, 0x52, 0x94,
    0x28, 0x4b, 0x03, 0x8c, 0x01, 0x3c, 0x94, 0x4e, 0x4e, 0x4e, 0x4a, 0xff,
    0xff, 0xff, 0xff, 0x4a, 0xff, 0xff, 0xff, 0xff, 0x4b, 0x00, 0x74, 0x94,
    0x62, 0x89, 0x43, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x94, 0x74, 0x94, 0x62,
    0x73, 0x2e,
};

static const uint8_t PK_CYCLE[] = {
    0x80, 0x05, 0x95, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7d,
    0x94, 0x8c, 0x01, 0x63, 0x94, 0x5d, 0x94, 0x68, 0x02, 0x61, 0x73, 0x2e,
};

static const uint8_t PK_EMPTY[] = {
    0x80, 0x05, 0x7d, 0x94, 0x2e,
};

/* A PICKLE value over bytes (copied) with the given out-of-band buffers. */
static plx_value_t *pickle_value(const uint8_t *p, size_t n, plx_buf_t **oob, size_t noob)
{
    plx_value_t *v = plx_value_alloc(PLX_VALUE_PICKLE);
    v->u.pickle.buf = plx_buf_copy(p, n);
    v->u.pickle.oob = calloc(noob ? noob : 1, sizeof *v->u.pickle.oob);
    for (size_t i = 0; i < noob; i++)
        v->u.pickle.oob[v->u.pickle.noob++] = plx_buf_ref(oob[i]);
    return v;
}

static const plx_value_t *lookup(char **names, plx_value_t **values, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], k) == 0)
            return values[i];
    return NULL;
}

static void free_dict(char **names, plx_value_t **values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        plx_value_destroy(&values[i]);
    }
    free(names);
    free(values);
}

/* Scalars and strings keep what they were given; kinds are strict. */
static void test_scalars(void **state)
{
    plx_value_t *i = plx_value_i64(-3), *f = plx_value_f64(0.5), *s = plx_value_str("abc");
    plx_value_t *b = plx_value_bool(7), *n = plx_value_none();
    int64_t iv;
    double fv;
    int bv;
    assert_int_equal(plx_value_as_i64(i, &iv), PLX_OK);
    assert_int_equal(iv, -3);
    assert_int_equal(plx_value_as_f64(i, &fv), PLX_OK);   /* ints widen */
    assert_true(fv == -3.0);
    assert_int_equal(plx_value_as_i64(f, &iv), PLX_EINVAL); /* floats do not narrow */
    assert_int_equal(plx_value_as_bool(b, &bv), PLX_OK);
    assert_int_equal(bv, 1);
    assert_string_equal(plx_value_as_str(s), "abc");
    assert_null(plx_value_as_str(i));
    assert_int_equal(plx_value_kind(n), PLX_VALUE_NONE);
    assert_null(plx_value_str(NULL));
    assert_string_equal(plx_value_kind_name(PLX_VALUE_PICKLE), "pickle");
    plx_value_destroy(&i);
    assert_null(i);
    plx_value_destroy(&i);   /* NULL-safe */
    plx_value_destroy(&f);
    plx_value_destroy(&s);
    plx_value_destroy(&b);
    plx_value_destroy(&n);
}

/* Arrays: copies, shapes, and refusals of what numpy could not describe. */
static void test_arrays(void **state)
{
    double d[6] = { 0, 1, 2, 3, 4, 5 };
    size_t shape[2] = { 2, 3 };
    plx_value_t *a = plx_value_array(PLX_DTYPE_FLOAT64, 2, shape, d);
    assert_non_null(a);
    d[0] = 99;   /* a copy: unaffected */
    assert_true(((const double *)plx_value_array_data(a))[0] == 0);
    assert_int_equal(plx_value_array_ndim(a), 2);
    assert_int_equal(plx_value_array_shape(a)[1], 3);
    assert_int_equal(plx_value_array_size(a), 6);
    assert_int_equal(plx_value_array_nbytes(a), 48);
    assert_string_equal(plx_value_array_dtype_str(a), "<f8");
    assert_string_equal(plx_dtype_name(plx_value_array_dtype(a)), "float64");
    plx_value_destroy(&a);
    assert_null(plx_value_array(PLX_DTYPE_OTHER, 1, shape, d));
    size_t huge[2] = { SIZE_MAX / 2, 4 };
    assert_null(plx_value_array(PLX_DTYPE_UINT8, 2, huge, d));
    plx_value_t *scalar = plx_value_array(PLX_DTYPE_INT32, 0, NULL, (int32_t[]){ 7 });
    assert_int_equal(plx_value_array_size(scalar), 1);
    assert_null(plx_value_array_shape(scalar));
    plx_value_destroy(&scalar);
    assert_int_equal(plx_dtype_size(PLX_DTYPE_UINT8), 1);
    assert_int_equal(plx_dtype_from_str("=f4"), PLX_DTYPE_FLOAT32);
    assert_int_equal(plx_dtype_from_str(">f8"), PLX_DTYPE_OTHER);
}

static int released_calls;
static void on_release(void *data, void *ctx)
{
    released_calls++;
    assert_ptr_equal(ctx, &released_calls);
}

/* Lent memory is released once, after the value and every frame holding
 * it are gone; never by a failed constructor. */
static void test_borrow_release(void **state)
{
    float f[4] = { 1, 2, 3, 4 };
    size_t shape[1] = { 4 };
    released_calls = 0;
    plx_value_t *a = plx_value_array_borrow(PLX_DTYPE_FLOAT32, 1, shape, f, on_release,
                                            &released_calls);
    assert_ptr_equal(plx_value_array_data(a), f);   /* no copy */
    plx_msg_t *m = plx_msg_new(0);
    Plexa__Value w;
    assert_int_equal(plx_value_to_wire(a, &w, m, NULL), PLX_OK);
    assert_int_equal(m->nbufs, 1);
    assert_ptr_equal(m->bufs[0]->data, f);
    plx_value_destroy(&a);
    assert_int_equal(released_calls, 0);   /* the frame still reads it */
    plx_value_wire_clear(&w);
    plx_msg_destroy(&m);
    assert_int_equal(released_calls, 1);
    assert_null(plx_value_array_borrow(PLX_DTYPE_OTHER, 1, shape, f, on_release, &released_calls));
    size_t huge[2] = { SIZE_MAX / 2, 4 };
    assert_null(plx_value_array_borrow(PLX_DTYPE_FLOAT32, 2, huge, f, on_release,
                                       &released_calls));
    assert_int_equal(released_calls, 1);
    /* NULL release: memory that outlives the value */
    a = plx_value_array_borrow(PLX_DTYPE_FLOAT32, 1, shape, f, NULL, NULL);
    plx_value_destroy(&a);
}

/* Every kind survives the wire form and back, payloads by reference. */
static void test_wire_roundtrip(void **state)
{
    plx_value_t *l = plx_value_tuple();
    plx_value_t *items[] = { plx_value_i64(1), plx_value_f64(-0.25), plx_value_str("s"),
                             plx_value_bytes("ab", 2), plx_value_none(), plx_value_bool(0),
                             plx_value_array(PLX_DTYPE_UINT8, 1, (size_t[]){ 3 }, "xyz"),
                             plx_value_list() };
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(plx_value_list_append(l, &items[i]), PLX_OK);
    assert_int_equal(plx_value_list_append(items[0], &l), PLX_EINVAL);
    plx_value_t *self = l;
    assert_int_equal(plx_value_list_append(l, &self), PLX_EINVAL);   /* no cycles */
    plx_msg_t *m = plx_msg_new(0);
    Plexa__Value w;
    assert_int_equal(plx_value_to_wire(l, &w, m, NULL), PLX_OK);
    assert_int_equal(m->nbufs, 2);   /* the bytes and the array */
    plx_err_t err = {0};
    plx_value_t *back = plx_value_from_wire(&w, m->bufs, m->nbufs, &err);
    assert_non_null(back);
    assert_true(plx_value_list_is_tuple(back));
    assert_int_equal(plx_value_list_len(back), 8);
    size_t n;
    assert_memory_equal(plx_value_as_bytes(plx_value_list_get(back, 3), &n), "ab", 2);
    const plx_value_t *arr = plx_value_list_get(back, 6);
    assert_int_equal(plx_value_array_dtype(arr), PLX_DTYPE_UINT8);
    assert_memory_equal(plx_value_array_data(arr), "xyz", 3);
    assert_int_equal(plx_value_kind(plx_value_list_get(back, 7)), PLX_VALUE_LIST);
    assert_null(plx_value_list_get(back, 8));
    /* a buffer index past the message is a protocol error, not a crash */
    assert_null(plx_value_from_wire(&w, m->bufs, 1, &err));
    assert_int_equal(err.code, PLX_EPROTO);
    plx_value_wire_clear(&w);
    plx_msg_destroy(&m);
    plx_value_destroy(&back);
    plx_value_destroy(&l);
}

/* repr reads like Python's and truncates like snprintf. */
static void test_repr(void **state)
{
    plx_value_t *l = plx_value_list(), *t = plx_value_tuple();
    plx_value_t *items[] = { plx_value_i64(1), plx_value_f64(2.5), plx_value_str("x"),
                             plx_value_array(PLX_DTYPE_FLOAT64, 2, (size_t[]){ 3, 4 },
                                             (double[12]){ 0 }),
                             plx_value_none() };
    for (int i = 0; i < 4; i++)
        plx_value_list_append(l, &items[i]);
    plx_value_list_append(t, &items[4]);
    plx_value_list_append(l, &t);
    char buf[128];
    const char *want = "[1, 2.5, 'x', array(dtype='<f8', shape=(3, 4)), (None,)]";
    assert_int_equal(plx_value_repr(l, buf, sizeof buf), strlen(want));
    assert_string_equal(buf, want);
    assert_int_equal(plx_value_repr(l, buf, 5), strlen(want));   /* cut, NUL-terminated */
    assert_string_equal(buf, "[1, ");
    assert_int_equal(plx_value_repr(l, NULL, 0), strlen(want));
    plx_value_t *a = plx_value_array(PLX_DTYPE_UINT8, 1, (size_t[]){ 2 }, "ab");
    plx_value_repr(a, buf, sizeof buf);
    assert_string_equal(buf, "array(dtype='|u1', shape=(2,))");
    plx_value_destroy(&a);
    plx_value_destroy(&l);
}

/* An array whose shape does not match its buffer is refused. */
static void test_wire_bad_array(void **state)
{
    plx_buf_t *b = plx_buf_copy("12345678", 8);
    uint64_t shape[1] = { 3 };
    plx_err_t err = {0};
    assert_null(plx_value_array_over(b, 0, 8, "<f8", 1, shape, 0, &err));
    assert_int_equal(err.code, PLX_EPROTO);
    assert_null(plx_value_array_over(b, 0, 8, "<f", 1, shape, 0, &err));
    assert_null(plx_value_array_over(b, 0, 8, "f8", 1, shape, 0, &err));
    shape[0] = 1;
    /* numpy's other dtype strings: UCS-4 characters, datetime units */
    plx_value_t *u = plx_value_array_over(b, 0, 8, "<U2", 1, shape, 0, &err);
    plx_value_t *m = plx_value_array_over(b, 0, 8, "<M8[ns]", 1, shape, 0, &err);
    assert_non_null(u);
    assert_non_null(m);
    plx_value_destroy(&u);
    plx_value_destroy(&m);
    plx_value_t *ok = plx_value_array_over(b, 0, 8, "<c8", 1, shape, 0, &err);
    assert_non_null(ok);   /* another dtype is readable by name */
    assert_int_equal(plx_value_array_dtype(ok), PLX_DTYPE_OTHER);
    assert_string_equal(plx_value_array_dtype_str(ok), "<c8");
    plx_value_destroy(&ok);
    plx_buf_unref(&b);
}

/* 0.10's block partition: the first len % k parts get one more. */
static void test_block_partition(void **state)
{
    size_t lo, n;
    plx_block_partition(7, 2, 0, &lo, &n);
    assert_int_equal(lo, 0);
    assert_int_equal(n, 4);
    plx_block_partition(7, 2, 1, &lo, &n);
    assert_int_equal(lo, 4);
    assert_int_equal(n, 3);
    plx_block_partition(10, 4, 3, &lo, &n);   /* 3 3 2 2 */
    assert_int_equal(lo, 8);
    assert_int_equal(n, 2);
    plx_block_partition(2, 3, 2, &lo, &n);    /* more engines than items */
    assert_int_equal(lo, 2);
    assert_int_equal(n, 0);
    plx_block_partition(5, 0, 0, &lo, &n);
    assert_int_equal(n, 0);
}

/* A string task's pulled dict, as the engine pickles it, reads natively. */
static void test_unpickle_dict(void **state)
{
    int32_t a[6] = { 0, 1, 2, 3, 4, 5 };
    plx_buf_t *oob[2] = { plx_buf_copy(a, sizeof a), plx_buf_copy("\0\0\0", 3) };
    plx_value_t *pk = pickle_value(PK_DICT, sizeof PK_DICT, oob, 2);
    char **names;
    plx_value_t **values;
    size_t n;
    plx_err_t err = {0};
    assert_int_equal(plx_unpickle_dict(pk, &names, &values, &n, &err), PLX_OK);
    assert_int_equal(n, 9);
    int64_t i;
    double f;
    assert_int_equal(plx_value_as_i64(lookup(names, values, n, "i"), &i), PLX_OK);
    assert_int_equal(i, -5);
    plx_value_as_i64(lookup(names, values, n, "big"), &i);
    assert_int_equal(i, 70000);
    plx_value_as_i64(lookup(names, values, n, "neg"), &i);
    assert_true(i == -((int64_t)1 << 40));
    assert_int_equal(plx_value_as_f64(lookup(names, values, n, "f"), &f), PLX_OK);
    assert_true(f == 2.5);
    assert_string_equal(plx_value_as_str(lookup(names, values, n, "s")), "h\xc3\xa9");
    size_t blen;
    assert_memory_equal(plx_value_as_bytes(lookup(names, values, n, "b"), &blen), "x\0y", 3);
    const plx_value_t *l = lookup(names, values, n, "l");
    assert_int_equal(plx_value_list_len(l), 4);
    assert_int_equal(plx_value_kind(plx_value_list_get(l, 1)), PLX_VALUE_NONE);
    assert_true(plx_value_list_is_tuple(plx_value_list_get(l, 3)));
    const plx_value_t *arr = lookup(names, values, n, "a");
    assert_int_equal(plx_value_array_dtype(arr), PLX_DTYPE_INT32);
    assert_int_equal(plx_value_array_ndim(arr), 2);
    assert_int_equal(plx_value_array_shape(arr)[0], 2);
    assert_memory_equal(plx_value_array_data(arr), a, sizeof a);
    assert_string_equal(plx_value_array_dtype_str(lookup(names, values, n, "u")), "|u1");
    free_dict(names, values, n);
    plx_value_destroy(&pk);
    plx_buf_unref(&oob[0]);
    plx_buf_unref(&oob[1]);
}

/* What it cannot read it refuses (the caller keeps the pickle opaque):
 * numpy's non-contiguous form, cycles, truncation, missing buffers. */
static void test_unpickle_refuses(void **state)
{
    char **names;
    plx_value_t **values;
    size_t n;
    plx_value_t *pk = pickle_value(PK_NONCONTIG, sizeof PK_NONCONTIG, NULL, 0);
    assert_int_equal(plx_unpickle_dict(pk, &names, &values, &n, NULL), PLX_EINVAL);
    assert_null(names);
    plx_value_destroy(&pk);
    pk = pickle_value(PK_CYCLE, sizeof PK_CYCLE, NULL, 0);
    assert_int_equal(plx_unpickle_dict(pk, &names, &values, &n, NULL), PLX_EINVAL);
    plx_value_destroy(&pk);
    for (size_t cut = 0; cut < sizeof PK_DICT; cut += 7) {
        pk = pickle_value(PK_DICT, cut, NULL, 0);
        assert_int_equal(plx_unpickle_dict(pk, &names, &values, &n, NULL), PLX_EINVAL);
        plx_value_destroy(&pk);
    }
    pk = pickle_value(PK_DICT, sizeof PK_DICT, NULL, 0);   /* its buffers missing */
    assert_int_equal(plx_unpickle_dict(pk, &names, &values, &n, NULL), PLX_EINVAL);
    plx_value_destroy(&pk);
    pk = pickle_value(PK_EMPTY, sizeof PK_EMPTY, NULL, 0);
    assert_int_equal(plx_unpickle_dict(pk, &names, &values, &n, NULL), PLX_OK);
    assert_int_equal(n, 0);
    free_dict(names, values, n);
    plx_value_destroy(&pk);
}

/* Random bytes never crash the reader. */
static void test_unpickle_garbage(void **state)
{
    uint8_t buf[64];
    srand(1);
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand() % (int)sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(rand() % 4 ? PK_DICT[rand() % (int)sizeof PK_DICT] : rand());
        plx_value_t *pk = pickle_value(buf, len, NULL, 0);
        char **names;
        plx_value_t **values;
        size_t n;
        if (plx_unpickle_dict(pk, &names, &values, &n, NULL) == PLX_OK)
            free_dict(names, values, n);
        plx_value_destroy(&pk);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scalars),
    cmocka_unit_test(test_arrays),
    cmocka_unit_test(test_borrow_release),
    cmocka_unit_test(test_wire_roundtrip),
    cmocka_unit_test(test_wire_bad_array),
    cmocka_unit_test(test_repr),
    cmocka_unit_test(test_block_partition),
    cmocka_unit_test(test_unpickle_dict),
    cmocka_unit_test(test_unpickle_refuses),
    cmocka_unit_test(test_unpickle_garbage),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("values", tests, NULL, NULL))
