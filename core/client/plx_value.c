/*
 * Values: construction, access, and conversion to and from the wire's
 * Value; see plexa/client.h and plx_value_int.h.
 *
 * Array and bytes payloads are plx_buf_t shared by reference with the
 * frames that carry them, so pushing an array writes it straight from the
 * caller's memory and pulling one leaves it in the buffer it was read
 * into.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_value_int.h"

static const struct {
    plx_dtype_t dtype;
    const char *str;
    const char *name;
    size_t      size;
} dtypes[] = {
    { PLX_DTYPE_FLOAT64, "<f8", "float64", 8 },
    { PLX_DTYPE_FLOAT32, "<f4", "float32", 4 },
    { PLX_DTYPE_INT64,   "<i8", "int64",   8 },
    { PLX_DTYPE_INT32,   "<i4", "int32",   4 },
    { PLX_DTYPE_UINT8,   "|u1", "uint8",   1 },
};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

size_t plx_dtype_size(plx_dtype_t dtype)
{
    for (size_t i = 0; i < NDTYPES; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].size;
    return 0;
}

const char *plx_dtype_name(plx_dtype_t dtype)
{
    for (size_t i = 0; i < NDTYPES; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].name;
    return "other";
}

const char *plx_dtype_str(plx_dtype_t dtype)
{
    for (size_t i = 0; i < NDTYPES; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].str;
    return NULL;
}

plx_dtype_t plx_dtype_from_str(const char *s)
{
    /* "=" is native order, which is little-endian on every platform plexa
     * supports (frame integers are little-endian too). */
    for (size_t i = 0; i < NDTYPES; i++) {
        const char *d = dtypes[i].str;
        if (strcmp(s, d) == 0 || (s[0] == '=' && strcmp(s + 1, d + 1) == 0))
            return dtypes[i].dtype;
    }
    return PLX_DTYPE_OTHER;
}

/* Bytes per element of a numpy dtype.str: byte order, kind letter, count
 * ("<f8", "|u1", "<M8[ns]"; "<U5" counts UCS-4 characters). 0 when the
 * string has another form. */
static size_t dtype_str_itemsize(const char *s)
{
    if (strlen(s) < 3 || !strchr("<>|=", s[0]) || s[2] < '0' || s[2] > '9')
        return 0;
    char *end;
    unsigned long n = strtoul(s + 2, &end, 10);
    if (*end != '\0' && *end != '[')   /* datetime units: "[ns]" */
        return 0;
    return s[1] == 'U' ? (size_t)n * 4 : (size_t)n;
}

const char *plx_value_kind_name(plx_value_kind_t kind)
{
    static const char *const names[] = { "none", "bool", "i64", "f64", "str",
                                         "bytes", "array", "list", "pickle", "ref" };
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

/* ---- construction ------------------------------------------------------ */

plx_value_t *plx_value_alloc(plx_value_kind_t kind)
{
    plx_value_t *v = calloc(1, sizeof *v);
    if (v)
        v->kind = kind;
    return v;
}

plx_value_t *plx_value_none(void)
{
    return plx_value_alloc(PLX_VALUE_NONE);
}

plx_value_t *plx_value_bool(int b)
{
    plx_value_t *v = plx_value_alloc(PLX_VALUE_BOOL);
    if (v)
        v->u.b = b != 0;
    return v;
}

plx_value_t *plx_value_i64(int64_t i)
{
    plx_value_t *v = plx_value_alloc(PLX_VALUE_I64);
    if (v)
        v->u.i = i;
    return v;
}

plx_value_t *plx_value_f64(double d)
{
    plx_value_t *v = plx_value_alloc(PLX_VALUE_F64);
    if (v)
        v->u.f = d;
    return v;
}

plx_value_t *plx_value_str(const char *s)
{
    if (!s)
        return NULL;
    plx_value_t *v = plx_value_alloc(PLX_VALUE_STR);
    if (v && !(v->u.s = strdup(s))) {
        free(v);
        v = NULL;
    }
    return v;
}

plx_value_t *plx_value_bytes(const void *data, size_t len)
{
    if (!data && len)
        return NULL;
    plx_value_t *v = plx_value_alloc(PLX_VALUE_BYTES);
    if (v && !(v->u.bytes = plx_buf_copy(data ? data : "", len))) {
        free(v);
        v = NULL;
    }
    return v;
}

/* Elements of shape, or 0 with *ok 0 on overflow. */
static size_t shape_elems(size_t ndim, const uint64_t *shape, int *ok)
{
    size_t n = 1;
    *ok = 1;
    for (size_t i = 0; i < ndim; i++) {
        if (shape[i] && n > SIZE_MAX / shape[i]) {
            *ok = 0;
            return 0;
        }
        n *= (size_t)shape[i];
    }
    return n;
}

plx_value_t *plx_value_array_over(plx_buf_t *buf, size_t offset, size_t nbytes,
                                  const char *dtype_str, size_t ndim, const uint64_t *shape,
                                  int fortran, plx_err_t *err)
{
    if (ndim > PLX_ARRAY_MAX_NDIM) {
        plx_err_set(err, PLX_EPROTO, "array of %zu dimensions (at most %d)", ndim,
                    PLX_ARRAY_MAX_NDIM);
        return NULL;
    }
    size_t item = dtype_str_itemsize(dtype_str);
    int ok;
    size_t elems = shape_elems(ndim, shape, &ok);
    if (!item || !ok || (elems && item > SIZE_MAX / elems) || elems * item != nbytes ||
        offset > buf->len || buf->len - offset < nbytes) {
        plx_err_set(err, PLX_EPROTO, "array of dtype '%.20s' and %zu dimensions does not match "
                    "its %zu-byte buffer", dtype_str, ndim, nbytes);
        return NULL;
    }
    plx_value_t *v = plx_value_alloc(PLX_VALUE_ARRAY);
    if (!v || !(v->u.arr.dtype_str = strdup(dtype_str)) ||
        !(v->u.arr.shape = calloc(ndim ? ndim : 1, sizeof *v->u.arr.shape))) {
        if (v)
            free(v->u.arr.dtype_str);
        free(v);
        plx_err_set(err, PLX_ENOMEM, "out of memory for an array value");
        return NULL;
    }
    for (size_t i = 0; i < ndim; i++)
        v->u.arr.shape[i] = (size_t)shape[i];
    v->u.arr.ndim = ndim;
    v->u.arr.dtype = plx_dtype_from_str(dtype_str);
    v->u.arr.buf = plx_buf_ref(buf);
    v->u.arr.offset = offset;
    v->u.arr.nbytes = nbytes;
    v->u.arr.fortran = fortran && ndim > 1;
    return v;
}

/* The caller's release callback, run when the last reference to its
 * memory goes (value destroyed and frames written). */
typedef struct lent lent_t;
struct lent {
    void          *data;
    plx_release_fn release;
    void          *ctx;
    lent_t        *made;   /* in the prototype: the copy the buffer got */
};

static void lent_release(void *ctx, uint8_t *data, size_t len)
{
    lent_t *l = ctx;
    if (l->release)
        l->release(l->data, l->ctx);
    free(l);
}

static plx_buf_t *make_borrowed(size_t nbytes, void *arg)
{
    lent_t *proto = arg;
    if (!proto->data && nbytes)
        return NULL;
    lent_t *l = malloc(sizeof *l);
    if (!l)
        return NULL;
    *l = *proto;
    plx_buf_t *b = plx_buf_wrap(proto->data, nbytes, lent_release, l);
    if (!b)
        free(l);
    else
        proto->made = l;
    return b;
}

/* The buffer of an array built from C arguments, or NULL. */
static plx_value_t *array_from_c(plx_dtype_t dtype, size_t ndim, const size_t *shape,
                                 plx_buf_t *(*make)(size_t nbytes, void *arg), void *arg)
{
    const char *ds = plx_dtype_str(dtype);
    if (!ds || ndim > PLX_ARRAY_MAX_NDIM || (ndim && !shape))
        return NULL;
    uint64_t sh[PLX_ARRAY_MAX_NDIM];
    for (size_t i = 0; i < ndim; i++)
        sh[i] = shape[i];
    int ok;
    size_t elems = shape_elems(ndim, sh, &ok);
    size_t item = plx_dtype_size(dtype);
    if (!ok || (elems && item > SIZE_MAX / elems))
        return NULL;
    plx_buf_t *b = make(elems * item, arg);
    if (!b)
        return NULL;
    plx_value_t *v = plx_value_array_over(b, 0, elems * item, ds, ndim, sh, 0, NULL);
    if (!v && make == make_borrowed)
        ((lent_t *)arg)->made->release = NULL;   /* a failed constructor never releases */
    plx_buf_unref(&b);   /* the value holds its own reference, or the buffer goes */
    return v;
}

static plx_buf_t *make_copy(size_t nbytes, void *arg)
{
    if (!arg && nbytes)
        return NULL;
    return plx_buf_copy(nbytes ? arg : "", nbytes);
}

plx_value_t *plx_value_array(plx_dtype_t dtype, size_t ndim, const size_t *shape,
                             const void *data)
{
    return array_from_c(dtype, ndim, shape, make_copy, (void *)data);
}

plx_value_t *plx_value_array_borrow(plx_dtype_t dtype, size_t ndim, const size_t *shape,
                                    void *data, plx_release_fn release, void *ctx)
{
    lent_t proto = { .data = data, .release = release, .ctx = ctx };
    return array_from_c(dtype, ndim, shape, make_borrowed, &proto);
}

static plx_value_t *new_list(int tuple)
{
    plx_value_t *v = plx_value_alloc(PLX_VALUE_LIST);
    if (v)
        v->u.list.tuple = tuple;
    return v;
}

plx_value_t *plx_value_list(void)
{
    return new_list(0);
}

plx_value_t *plx_value_ref(int32_t engine, const char *key)
{
    if (!key || !key[0])
        return NULL;
    plx_value_t *v = plx_value_alloc(PLX_VALUE_REF);
    if (v && !(v->u.ref.key = strdup(key))) {
        free(v);
        return NULL;
    }
    if (v)
        v->u.ref.engine = engine;
    return v;
}

plx_value_t *plx_value_bytes_over(plx_buf_t *b)
{
    plx_value_t *v = plx_value_alloc(PLX_VALUE_BYTES);
    if (v)
        v->u.bytes = plx_buf_ref(b);
    return v;
}

plx_value_t *plx_value_pickle_over(plx_buf_t *data, plx_buf_t *const *oob, size_t noob)
{
    plx_value_t *v = plx_value_alloc(PLX_VALUE_PICKLE);
    if (v && !(v->u.pickle.oob = calloc(noob ? noob : 1, sizeof *v->u.pickle.oob))) {
        free(v);
        return NULL;
    }
    if (!v)
        return NULL;
    v->u.pickle.buf = plx_buf_ref(data);
    for (size_t i = 0; i < noob; i++)
        v->u.pickle.oob[v->u.pickle.noob++] = plx_buf_ref(oob[i]);
    return v;
}

plx_buf_t *plx_value_payload(const plx_value_t *v, size_t *offset, size_t *len)
{
    plx_buf_t *b = !v                            ? NULL
                   : v->kind == PLX_VALUE_BYTES  ? v->u.bytes
                   : v->kind == PLX_VALUE_ARRAY  ? v->u.arr.buf
                   : v->kind == PLX_VALUE_PICKLE ? v->u.pickle.buf
                                                 : NULL;
    *offset = b && v->kind == PLX_VALUE_ARRAY ? v->u.arr.offset : 0;
    *len = !b ? 0 : v->kind == PLX_VALUE_ARRAY ? v->u.arr.nbytes : b->len;
    return b;
}

plx_buf_t *const *plx_value_pickle_oob(const plx_value_t *v, size_t *n)
{
    int pk = v && v->kind == PLX_VALUE_PICKLE;
    *n = pk ? v->u.pickle.noob : 0;
    return pk ? v->u.pickle.oob : NULL;
}

plx_value_t *plx_value_list_borrowing(plx_value_t *const *items, size_t n, int tuple)
{
    plx_value_t *v = new_list(tuple);
    if (v) {
        v->u.list.items = (plx_value_t **)items;
        v->u.list.n = n;
        v->u.list.cap = 0;   /* never grown, never freed by it */
    }
    return v;
}

void plx_value_borrowing_free(plx_value_t **v)
{
    free(*v);
    *v = NULL;
}

plx_value_t *plx_value_tuple(void)
{
    return new_list(1);
}

int plx_value_list_append(plx_value_t *list, plx_value_t **item)
{
    /* A list inside itself would be freed twice and never finish encoding. */
    if (!list || list->kind != PLX_VALUE_LIST || !item || !*item || *item == list)
        return PLX_EINVAL;
    if (list->u.list.n == list->u.list.cap) {
        size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 8;
        plx_value_t **p = realloc(list->u.list.items, cap * sizeof *p);
        if (!p)
            return PLX_ENOMEM;
        list->u.list.items = p;
        list->u.list.cap = cap;
    }
    list->u.list.items[list->u.list.n++] = *item;
    *item = NULL;
    return PLX_OK;
}

void plx_value_destroy(plx_value_t **vp)
{
    plx_value_t *v = vp ? *vp : NULL;
    if (!v)
        return;
    *vp = NULL;
    switch (v->kind) {
    case PLX_VALUE_STR:
        free(v->u.s);
        break;
    case PLX_VALUE_BYTES:
        plx_buf_unref(&v->u.bytes);
        break;
    case PLX_VALUE_ARRAY:
        plx_buf_unref(&v->u.arr.buf);
        free(v->u.arr.dtype_str);
        free(v->u.arr.shape);
        break;
    case PLX_VALUE_LIST:
        for (size_t i = 0; i < v->u.list.n; i++)
            plx_value_destroy(&v->u.list.items[i]);
        free(v->u.list.items);
        break;
    case PLX_VALUE_PICKLE:
        plx_buf_unref(&v->u.pickle.buf);
        for (size_t i = 0; i < v->u.pickle.noob; i++)
            plx_buf_unref(&v->u.pickle.oob[i]);
        free(v->u.pickle.oob);
        break;
    case PLX_VALUE_REF:
        free(v->u.ref.key);
        break;
    default:
        break;
    }
    free(v);
}

/* ---- access -------------------------------------------------------------- */

plx_value_kind_t plx_value_kind(const plx_value_t *v)
{
    return v ? v->kind : PLX_VALUE_NONE;
}

int plx_value_as_bool(const plx_value_t *v, int *out)
{
    if (!v || v->kind != PLX_VALUE_BOOL)
        return PLX_EINVAL;
    *out = v->u.b;
    return PLX_OK;
}

int plx_value_as_i64(const plx_value_t *v, int64_t *out)
{
    if (!v || v->kind != PLX_VALUE_I64)
        return PLX_EINVAL;
    *out = v->u.i;
    return PLX_OK;
}

int plx_value_as_f64(const plx_value_t *v, double *out)
{
    if (v && v->kind == PLX_VALUE_I64) {
        *out = (double)v->u.i;
        return PLX_OK;
    }
    if (!v || v->kind != PLX_VALUE_F64)
        return PLX_EINVAL;
    *out = v->u.f;
    return PLX_OK;
}

const char *plx_value_as_str(const plx_value_t *v)
{
    return v && v->kind == PLX_VALUE_STR ? v->u.s : NULL;
}

const void *plx_value_as_bytes(const plx_value_t *v, size_t *len)
{
    if (!v || v->kind != PLX_VALUE_BYTES) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->u.bytes->len;
    return v->u.bytes->data;
}

#define IS_ARRAY(v) ((v) && (v)->kind == PLX_VALUE_ARRAY)

plx_dtype_t plx_value_array_dtype(const plx_value_t *v)
{
    return IS_ARRAY(v) ? v->u.arr.dtype : PLX_DTYPE_OTHER;
}

const char *plx_value_array_dtype_str(const plx_value_t *v)
{
    return IS_ARRAY(v) ? v->u.arr.dtype_str : NULL;
}

size_t plx_value_array_ndim(const plx_value_t *v)
{
    return IS_ARRAY(v) ? v->u.arr.ndim : 0;
}

const size_t *plx_value_array_shape(const plx_value_t *v)
{
    return IS_ARRAY(v) && v->u.arr.ndim ? v->u.arr.shape : NULL;
}

size_t plx_value_array_size(const plx_value_t *v)
{
    if (!IS_ARRAY(v))
        return 0;
    size_t n = 1;
    for (size_t i = 0; i < v->u.arr.ndim; i++)
        n *= v->u.arr.shape[i];
    return n;
}

size_t plx_value_array_nbytes(const plx_value_t *v)
{
    return IS_ARRAY(v) ? v->u.arr.nbytes : 0;
}

int plx_value_array_fortran(const plx_value_t *v)
{
    return IS_ARRAY(v) ? v->u.arr.fortran : 0;
}

const void *plx_value_array_data(const plx_value_t *v)
{
    return IS_ARRAY(v) ? v->u.arr.buf->data + v->u.arr.offset : NULL;
}

size_t plx_value_list_len(const plx_value_t *v)
{
    return v && v->kind == PLX_VALUE_LIST ? v->u.list.n : 0;
}

const plx_value_t *plx_value_list_get(const plx_value_t *v, size_t i)
{
    return v && v->kind == PLX_VALUE_LIST && i < v->u.list.n ? v->u.list.items[i] : NULL;
}

int plx_value_list_is_tuple(const plx_value_t *v)
{
    return v && v->kind == PLX_VALUE_LIST ? v->u.list.tuple : 0;
}

const void *plx_value_pickle(const plx_value_t *v, size_t *len)
{
    if (!v || v->kind != PLX_VALUE_PICKLE) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->u.pickle.buf->len;
    return v->u.pickle.buf->data;
}

/* ---- repr ------------------------------------------------------------------ */

typedef struct sbuf {
    char  *p;
    size_t cap, len;   /* len counts what would have been written */
} sbuf_t;

static void put(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->len < b->cap ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n;
}

static void repr(sbuf_t *b, const plx_value_t *v, int depth)
{
    if (!v) {
        put(b, "NULL");
        return;
    }
    if (depth > PLX_VALUE_MAX_DEPTH) {
        put(b, "...");
        return;
    }
    switch (v->kind) {
    case PLX_VALUE_NONE:  put(b, "None"); return;
    case PLX_VALUE_BOOL:  put(b, "%s", v->u.b ? "True" : "False"); return;
    case PLX_VALUE_I64:   put(b, "%lld", (long long)v->u.i); return;
    case PLX_VALUE_F64:   put(b, "%.17g", v->u.f); return;
    case PLX_VALUE_STR:   put(b, "'%s'", v->u.s); return;
    case PLX_VALUE_BYTES: put(b, "<%zu bytes>", v->u.bytes->len); return;
    case PLX_VALUE_PICKLE:
        put(b, "<pickle, %zu bytes>", v->u.pickle.buf->len);
        return;
    case PLX_VALUE_REF:
        put(b, "ref('%s', engine=%d)", v->u.ref.key, (int)v->u.ref.engine);
        return;
    case PLX_VALUE_ARRAY:
        put(b, "array(dtype='%s', shape=(", v->u.arr.dtype_str);
        for (size_t i = 0; i < v->u.arr.ndim; i++)
            put(b, "%s%zu", i ? ", " : "", v->u.arr.shape[i]);
        put(b, "%s)%s)", v->u.arr.ndim == 1 ? "," : "", v->u.arr.fortran ? ", order='F'" : "");
        return;
    case PLX_VALUE_LIST:
        put(b, "%c", v->u.list.tuple ? '(' : '[');
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i)
                put(b, ", ");
            repr(b, v->u.list.items[i], depth + 1);
        }
        put(b, "%s", v->u.list.tuple ? (v->u.list.n == 1 ? ",)" : ")") : "]");
        return;
    }
}

size_t plx_value_repr(const plx_value_t *v, char *buf, size_t size)
{
    sbuf_t b = { .p = buf, .cap = size };
    if (buf && size)
        buf[0] = '\0';
    repr(&b, v, 1);
    return b.len;
}
