/*
 * A restricted reader of the pickles an engine sends for a string task's
 * pulled names: a dict {name: value} (python/plexa/_engine.py returns the
 * dict, and a dict has no native Value form, so the engine pickles it).
 * Without this a C program could push to a task but never read what it
 * pulls.
 *
 * It is not an unpickler: it runs no code and imports nothing. It walks
 * the opcodes that pickle/cloudpickle (protocols 2-5) emit for None,
 * bool, int (64-bit), float, str, bytes, list, tuple and dict, plus the
 * exact shape numpy >= 1.16 gives a contiguous ndarray pickled with
 * out-of-band buffers:
 *     numpy.core.numeric._frombuffer(NEXT_BUFFER, numpy.dtype('f8', False,
 *     True) + BUILD state (3, '<', ...), shape, 'C')
 * recognised by name, never called. Anything else (another global, a
 * reduce of something unknown, an opcode not listed) makes the whole dict
 * unreadable (PLX_EINVAL) and the caller keeps the pickle opaque.
 *
 * All nodes live in an arena freed at the end; memo entries point into
 * it, so shared references cost nothing. A container appended to itself
 * (a cycle) is caught by the depth limit when converting.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plx_value_int.h"

enum nkind { N_NONE, N_BOOL, N_INT, N_FLOAT, N_STR, N_BYTES, N_LIST, N_TUPLE, N_DICT,
             N_GLOBAL, N_DTYPE, N_BUF, N_ARRAY, N_MARK };

typedef struct node node_t;
struct node {
    enum nkind kind;
    int64_t    i;
    double     f;
    const char *s;       /* STR, BYTES: into the pickle; GLOBAL: module */
    size_t     len;
    const char *name;    /* GLOBAL: name (len2) */
    size_t     len2;
    char       dtype[24];   /* DTYPE, ARRAY: numpy dtype.str */
    node_t   **items;    /* LIST, TUPLE; DICT: key, value, key, value ... */
    size_t     n, cap;
    node_t    *shape;    /* ARRAY: a tuple of ints */
    int        fortran;  /* ARRAY */
};

typedef struct up {
    const uint8_t *p, *end;
    node_t  **all;  size_t nall, capall;     /* arena */
    node_t  **stk;  size_t nstk, capstk;
    size_t   *marks; size_t nmarks, capmarks;
    node_t  **memo; size_t nmemo, capmemo;
    size_t    nextbuf, nbufs;
} up_t;

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * size);
    if (!p)
        return -1;
    *arr = p;
    *cap = n;
    return 0;
}

static node_t *mk(up_t *u, enum nkind k)
{
    if (grow((void **)&u->all, &u->capall, u->nall + 1, sizeof *u->all) < 0)
        return NULL;
    node_t *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = k;
        u->all[u->nall++] = n;
    }
    return n;
}

static int push(up_t *u, node_t *n)
{
    if (!n || grow((void **)&u->stk, &u->capstk, u->nstk + 1, sizeof *u->stk) < 0)
        return -1;
    u->stk[u->nstk++] = n;
    return 0;
}

static node_t *pop(up_t *u)
{
    size_t floor = u->nmarks ? u->marks[u->nmarks - 1] : 0;
    return u->nstk > floor ? u->stk[--u->nstk] : NULL;
}

static node_t *top(up_t *u)
{
    size_t floor = u->nmarks ? u->marks[u->nmarks - 1] : 0;
    return u->nstk > floor ? u->stk[u->nstk - 1] : NULL;
}

static int add_item(node_t *c, node_t *it)
{
    if (grow((void **)&c->items, &c->cap, c->n + 1, sizeof *c->items) < 0)
        return -1;
    c->items[c->n++] = it;
    return 0;
}

/* Read n bytes. */
static const uint8_t *take(up_t *u, size_t n)
{
    if ((size_t)(u->end - u->p) < n)
        return NULL;
    const uint8_t *r = u->p;
    u->p += n;
    return r;
}

static uint64_t le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* Pop everything above the last mark into a fresh node of kind k. */
static node_t *collect(up_t *u, enum nkind k)
{
    if (!u->nmarks)
        return NULL;
    size_t m = u->marks[--u->nmarks];
    node_t *n = mk(u, k);
    if (!n)
        return NULL;
    for (size_t i = m; i < u->nstk; i++)
        if (add_item(n, u->stk[i]) < 0)
            return NULL;
    u->nstk = m;
    return n;
}

static int str_is(const node_t *n, const char *s)
{
    return n && n->kind == N_STR && n->len == strlen(s) && memcmp(n->s, s, n->len) == 0;
}

static int global_is(const node_t *g, const char *const *mods, const char *name)
{
    if (!g || g->kind != N_GLOBAL || g->len2 != strlen(name) || memcmp(g->name, name, g->len2))
        return 0;
    for (; *mods; mods++)
        if (g->len == strlen(*mods) && memcmp(g->s, *mods, g->len) == 0)
            return 1;
    return 0;
}

static const char *const NUMPY[] = { "numpy", NULL };
static const char *const NUMERIC[] = { "numpy.core.numeric", "numpy._core.numeric", NULL };

/* REDUCE: only numpy.dtype(str, False, True) and _frombuffer(...). */
static node_t *reduce(up_t *u, node_t *f, node_t *args)
{
    if (!args || args->kind != N_TUPLE)
        return NULL;
    if (global_is(f, NUMPY, "dtype")) {
        if (args->n < 1 || args->items[0]->kind != N_STR || args->items[0]->len > 16)
            return NULL;
        node_t *d = mk(u, N_DTYPE);
        if (d) /* order from BUILD's state; '|' until then (one-byte types) */
            snprintf(d->dtype, sizeof d->dtype, "|%.*s", (int)args->items[0]->len,
                     args->items[0]->s);
        return d;
    }
    if (global_is(f, NUMERIC, "_frombuffer")) {
        if (args->n != 4 || args->items[0]->kind != N_BUF || args->items[1]->kind != N_DTYPE ||
            args->items[2]->kind != N_TUPLE || args->items[3]->kind != N_STR)
            return NULL;
        node_t *sh = args->items[2];
        for (size_t i = 0; i < sh->n; i++)
            if (sh->items[i]->kind != N_INT || sh->items[i]->i < 0)
                return NULL;
        node_t *a = mk(u, N_ARRAY);
        if (!a)
            return NULL;
        a->i = args->items[0]->i;
        memcpy(a->dtype, args->items[1]->dtype, sizeof a->dtype);
        a->shape = sh;
        a->fortran = str_is(args->items[3], "F");
        return a;
    }
    return NULL;
}

/* BUILD on a dtype: state (version, byteorder, ...) sets the byte order. */
static int build(node_t *obj, node_t *state)
{
    if (!obj || obj->kind != N_DTYPE || !state || state->kind != N_TUPLE || state->n < 2 ||
        state->items[1]->kind != N_STR || state->items[1]->len != 1)
        return -1;
    char order = state->items[1]->s[0];
    if (order == '=')
        order = '<';   /* native: little-endian on every supported platform */
    obj->dtype[0] = order;
    return 0;
}

static int memo_put(up_t *u, size_t idx, node_t *n)
{
    if (!n || idx > (1u << 24) ||
        grow((void **)&u->memo, &u->capmemo, idx + 1, sizeof *u->memo) < 0)
        return -1;
    while (u->nmemo <= idx)
        u->memo[u->nmemo++] = NULL;
    u->memo[idx] = n;
    return 0;
}

static node_t *memo_get(up_t *u, size_t idx)
{
    return idx < u->nmemo ? u->memo[idx] : NULL;
}

static node_t *mkstr(up_t *u, enum nkind k, size_t len)
{
    const uint8_t *b = take(u, len);
    node_t *n = b ? mk(u, k) : NULL;
    if (n) {
        n->s = (const char *)b;
        n->len = len;
    }
    return n;
}

static node_t *mkint(up_t *u, int64_t v)
{
    node_t *n = mk(u, N_INT);
    if (n)
        n->i = v;
    return n;
}

/* Run the opcodes; the result is the node left by STOP, or NULL. */
static node_t *run(up_t *u)
{
    const uint8_t *b;
    node_t *n, *m;
    while (u->p < u->end) {
        uint8_t op = *u->p++;
        switch (op) {
        case 0x80:   /* PROTO */
            if (!take(u, 1))
                return NULL;
            break;
        case 0x95:   /* FRAME: a length prefix for buffering, nothing to do */
            if (!take(u, 8))
                return NULL;
            break;
        case '.':    /* STOP */
            return u->nstk == 1 && !u->nmarks ? u->stk[0] : NULL;
        case '(':
            if (grow((void **)&u->marks, &u->capmarks, u->nmarks + 1, sizeof *u->marks) < 0)
                return NULL;
            u->marks[u->nmarks++] = u->nstk;
            break;
        case '0':
            if (!pop(u))
                return NULL;
            break;
        case '}': if (push(u, mk(u, N_DICT)) < 0) return NULL; break;
        case ']': if (push(u, mk(u, N_LIST)) < 0) return NULL; break;
        case ')': if (push(u, mk(u, N_TUPLE)) < 0) return NULL; break;
        case 'N': if (push(u, mk(u, N_NONE)) < 0) return NULL; break;
        case 0x88:
        case 0x89:
            if (!(n = mk(u, N_BOOL)))
                return NULL;
            n->i = op == 0x88;
            if (push(u, n) < 0)
                return NULL;
            break;
        case 'K':
            if (!(b = take(u, 1)) || push(u, mkint(u, b[0])) < 0)
                return NULL;
            break;
        case 'M':
            if (!(b = take(u, 2)) || push(u, mkint(u, (int64_t)le(b, 2))) < 0)
                return NULL;
            break;
        case 'J':
            if (!(b = take(u, 4)) || push(u, mkint(u, (int32_t)(uint32_t)le(b, 4))) < 0)
                return NULL;
            break;
        case 0x8a: { /* LONG1: little-endian two's complement, up to 8 bytes here */
            if (!(b = take(u, 1)) || b[0] > 8)
                return NULL;
            int len = b[0];
            if (!(b = take(u, (size_t)len)))
                return NULL;
            uint64_t v = len ? le(b, len) : 0;
            if (len && len < 8 && (b[len - 1] & 0x80))
                v |= ~(uint64_t)0 << (8 * len);
            if (push(u, mkint(u, (int64_t)v)) < 0)
                return NULL;
            break;
        }
        case 'G': {  /* BINFLOAT: big-endian IEEE double */
            if (!(b = take(u, 8)) || !(n = mk(u, N_FLOAT)))
                return NULL;
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++)
                bits = bits << 8 | b[i];
            memcpy(&n->f, &bits, sizeof n->f);
            if (push(u, n) < 0)
                return NULL;
            break;
        }
        case 0x8c: case 'C':
            if (!(b = take(u, 1)) || push(u, mkstr(u, op == 'C' ? N_BYTES : N_STR, b[0])) < 0)
                return NULL;
            break;
        case 'X': case 'B':
            if (!(b = take(u, 4)) ||
                push(u, mkstr(u, op == 'B' ? N_BYTES : N_STR, (size_t)le(b, 4))) < 0)
                return NULL;
            break;
        case 0x8d: case 0x8e:
            if (!(b = take(u, 8)) ||
                push(u, mkstr(u, op == 0x8e ? N_BYTES : N_STR, (size_t)le(b, 8))) < 0)
                return NULL;
            break;
        case 0x94:   /* MEMOIZE */
            if (memo_put(u, u->nmemo, top(u)) < 0)
                return NULL;
            break;
        case 'q':
            if (!(b = take(u, 1)) || memo_put(u, b[0], top(u)) < 0)
                return NULL;
            break;
        case 'r':
            if (!(b = take(u, 4)) || memo_put(u, (size_t)le(b, 4), top(u)) < 0)
                return NULL;
            break;
        case 'h':
            if (!(b = take(u, 1)) || push(u, memo_get(u, b[0])) < 0)
                return NULL;
            break;
        case 'j':
            if (!(b = take(u, 4)) || push(u, memo_get(u, (size_t)le(b, 4))) < 0)
                return NULL;
            break;
        case 'a':
            n = pop(u);
            m = top(u);
            if (!n || !m || m->kind != N_LIST || add_item(m, n) < 0)
                return NULL;
            break;
        case 'e':
            if (!(n = collect(u, N_TUPLE)) || !(m = top(u)) || m->kind != N_LIST)
                return NULL;
            for (size_t i = 0; i < n->n; i++)
                if (add_item(m, n->items[i]) < 0)
                    return NULL;
            break;
        case 's': {
            node_t *v = pop(u), *k = pop(u);
            m = top(u);
            if (!v || !k || !m || m->kind != N_DICT || add_item(m, k) < 0 || add_item(m, v) < 0)
                return NULL;
            break;
        }
        case 'u':
            if (!(n = collect(u, N_TUPLE)) || n->n % 2 || !(m = top(u)) || m->kind != N_DICT)
                return NULL;
            for (size_t i = 0; i < n->n; i++)
                if (add_item(m, n->items[i]) < 0)
                    return NULL;
            break;
        case 't':
            if (push(u, collect(u, N_TUPLE)) < 0)
                return NULL;
            break;
        case 0x85: case 0x86: case 0x87: {
            size_t k = op - 0x84u;
            if (!(n = mk(u, N_TUPLE)))
                return NULL;
            size_t floor = u->nmarks ? u->marks[u->nmarks - 1] : 0;
            if (u->nstk - floor < k)
                return NULL;
            for (size_t i = u->nstk - k; i < u->nstk; i++)
                if (add_item(n, u->stk[i]) < 0)
                    return NULL;
            u->nstk -= k;
            if (push(u, n) < 0)
                return NULL;
            break;
        }
        case 0x93: { /* STACK_GLOBAL: a reference only; nothing is imported */
            node_t *name = pop(u), *mod = pop(u);
            if (!name || !mod || name->kind != N_STR || mod->kind != N_STR ||
                !(n = mk(u, N_GLOBAL)))
                return NULL;
            n->s = mod->s;
            n->len = mod->len;
            n->name = name->s;
            n->len2 = name->len;
            if (push(u, n) < 0)
                return NULL;
            break;
        }
        case 'c': {  /* GLOBAL "module\nname\n" */
            const uint8_t *nl1 = memchr(u->p, '\n', (size_t)(u->end - u->p));
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(u->end - nl1 - 1)) : NULL;
            if (!nl2 || !(n = mk(u, N_GLOBAL)))
                return NULL;
            n->s = (const char *)u->p;
            n->len = (size_t)(nl1 - u->p);
            n->name = (const char *)nl1 + 1;
            n->len2 = (size_t)(nl2 - nl1 - 1);
            u->p = nl2 + 1;
            if (push(u, n) < 0)
                return NULL;
            break;
        }
        case 0x97:   /* NEXT_BUFFER */
            if (u->nextbuf >= u->nbufs || !(n = mk(u, N_BUF)))
                return NULL;
            n->i = (int64_t)u->nextbuf++;
            if (push(u, n) < 0)
                return NULL;
            break;
        case 0x98:   /* READONLY_BUFFER: ours are read as they are */
            if (!top(u) || top(u)->kind != N_BUF)
                return NULL;
            break;
        case 'R': {
            node_t *args = pop(u), *f = pop(u);
            if (push(u, reduce(u, f, args)) < 0)
                return NULL;
            break;
        }
        case 'b': {
            node_t *state = pop(u);
            if (build(top(u), state) < 0)
                return NULL;
            break;
        }
        default:
            return NULL;
        }
    }
    return NULL;
}

/* ---- nodes to values ------------------------------------------------------ */

static plx_value_t *convert(const node_t *n, const plx_value_t *pk, int depth)
{
    if (depth > PLX_VALUE_MAX_DEPTH)
        return NULL;
    switch (n->kind) {
    case N_NONE:  return plx_value_none();
    case N_BOOL:  return plx_value_bool((int)n->i);
    case N_INT:   return plx_value_i64(n->i);
    case N_FLOAT: return plx_value_f64(n->f);
    case N_BYTES: return plx_value_bytes(n->s, n->len);
    case N_STR: {
        if (memchr(n->s, '\0', n->len))
            return NULL;
        char *s = strndup(n->s, n->len);
        plx_value_t *v = s ? plx_value_str(s) : NULL;
        free(s);
        return v;
    }
    case N_LIST:
    case N_TUPLE: {
        plx_value_t *l = n->kind == N_TUPLE ? plx_value_tuple() : plx_value_list();
        for (size_t i = 0; l && i < n->n; i++) {
            plx_value_t *it = convert(n->items[i], pk, depth + 1);
            if (!it || plx_value_list_append(l, &it) != PLX_OK) {
                plx_value_destroy(&it);
                plx_value_destroy(&l);
            }
        }
        return l;
    }
    case N_ARRAY: {
        if ((size_t)n->i >= pk->u.pickle.noob || n->shape->n > PLX_ARRAY_MAX_NDIM)
            return NULL;
        uint64_t shape[PLX_ARRAY_MAX_NDIM];
        for (size_t i = 0; i < n->shape->n; i++)
            shape[i] = (uint64_t)n->shape->items[i]->i;
        plx_buf_t *b = pk->u.pickle.oob[n->i];
        return plx_value_array_over(b, 0, b->len, n->dtype, n->shape->n, shape, n->fortran,
                                    NULL);
    }
    default:
        return NULL;
    }
}

int plx_unpickle_dict(const plx_value_t *pk, char ***names_out, plx_value_t ***values_out,
                      size_t *n_out, plx_err_t *err)
{
    *names_out = NULL;
    *values_out = NULL;
    *n_out = 0;
    if (!pk || pk->kind != PLX_VALUE_PICKLE)
        return plx_err_set(err, PLX_EINVAL, "not a pickle");
    up_t u = { .p = pk->u.pickle.buf->data, .end = pk->u.pickle.buf->data + pk->u.pickle.buf->len,
               .nbufs = pk->u.pickle.noob };
    node_t *d = run(&u);
    int rc = PLX_OK;
    char **names = NULL;
    plx_value_t **values = NULL;
    size_t cnt = 0;
    if (!d || d->kind != N_DICT) {
        rc = plx_err_set(err, PLX_EINVAL, "the pickle is not a dict of plain values");
        goto out;
    }
    size_t pairs = d->n / 2;
    names = calloc(pairs ? pairs : 1, sizeof *names);
    values = calloc(pairs ? pairs : 1, sizeof *values);
    if (!names || !values) {
        rc = plx_err_set(err, PLX_ENOMEM, "out of memory for %zu pulled values", pairs);
        goto out;
    }
    for (; cnt < pairs; cnt++) {
        const node_t *k = d->items[2 * cnt], *v = d->items[2 * cnt + 1];
        if (k->kind != N_STR || memchr(k->s, '\0', k->len) ||
            !(names[cnt] = strndup(k->s, k->len))) {
            rc = plx_err_set(err, PLX_EINVAL, "pulled name %zu is not a str", cnt);
            break;
        }
        if (!(values[cnt] = convert(v, pk, 1))) {
            rc = plx_err_set(err, PLX_EINVAL, "pulled value '%.64s' has no C form", names[cnt]);
            free(names[cnt]);
            break;
        }
    }
out:
    if (rc != PLX_OK && names) {
        for (size_t i = 0; i < cnt; i++) {
            free(names[i]);
            plx_value_destroy(&values[i]);
        }
        free(names);
        free(values);
    } else if (rc == PLX_OK) {
        *names_out = names;
        *values_out = values;
        *n_out = cnt;
    }
    for (size_t i = 0; i < u.nall; i++) {
        free(u.all[i]->items);
        free(u.all[i]);
    }
    free(u.all);
    free(u.stk);
    free(u.marks);
    free(u.memo);
    return rc;
}
