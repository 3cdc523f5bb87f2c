/*
 * The task interface for plexa._native: TaskSubmit built from spec dicts,
 * and the task replies (TaskIds, TaskResults, TaskQueueStatusReply) as
 * Python values. See _native.c's module docstring for the shapes.
 *
 * Building a TaskSubmit. Each task's values index its own run of frame
 * buffers (TaskSpec.buf_base/buf_count), which the controller keeps with
 * the task and sends along with it; a recovery spec indexes relative to
 * its parent's run (its buffers are part of the parent's). The values are
 * encoded into a scratch message, so their indices are local from the
 * start; the scratch buffers are then appended to the frame — or, when
 * they are exactly the previous task's buffers, that run is shared
 * (controller and engine only read them). Two things make a big map
 * cheap:
 *   - an object that is not a plain scalar, str or tuple/list (a function,
 *     an array, a dict) is encoded once per submission and position: the
 *     next task that has the same object at the same local buffer offset
 *     reuses the Value and its buffers (the function of a map is pickled
 *     once, not once per task);
 *   - an empty dict as a map's kwargs or a string task's push travels as
 *     None (the engine reads both alike), so that tasks which differ only
 *     in inline arguments share one buffer run.
 * Everything stays zero copy: buffers are exports of the objects' memory.
 */
#include "_native_int.h"

#include <stdlib.h>
#include <string.h>

#define RECENT 8   /* cache entries searched per lookup */

typedef struct cache_entry {
    PyObject     *obj;      /* strong reference: its id stays unique */
    uint32_t      offset;   /* the local buffer offset it was encoded at */
    Plexa__Value *value;
    plx_buf_t   **bufs;     /* references */
    uint32_t      nbufs;
} cache_entry_t;

typedef struct submit_ctx {
    native_state  *st;
    PyObject      *keep;      /* objects whose memory the specs point into (kind strs) */
    plx_msg_t     *all;       /* the frame's buffers */
    plx_msg_t     *scratch;   /* the current task's, numbered locally */
    Plexa__Value **owned;     /* Values built here: cleared and freed at the end */
    size_t         nowned, capowned;
    void         **mem;       /* other PyMem blocks */
    size_t         nmem, capmem;
    cache_entry_t *cache;
    size_t         ncache, capcache;
    size_t         recent[RECENT];
    int            nrecent, next_recent;
    plx_buf_t    **prev;      /* the previous task's buffers ... */
    uint32_t       nprev;
    size_t         capprev;
    uint32_t       prev_base; /* ... at this index of the frame */
} submit_ctx_t;

/* ---- bookkeeping ------------------------------------------------------------ */

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *p = PyMem_Realloc(*arr, n * size);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    *arr = p;
    *cap = n;
    return 0;
}

/* A zeroed block freed with the context. */
static void *ctx_alloc(submit_ctx_t *x, size_t n, size_t size)
{
    if (grow((void **)&x->mem, &x->capmem, x->nmem + 1, sizeof *x->mem) < 0)
        return NULL;
    void *p = PyMem_Calloc(n ? n : 1, size);
    if (!p) {
        PyErr_NoMemory();
        return NULL;
    }
    x->mem[x->nmem++] = p;
    return p;
}

static void ctx_clear(submit_ctx_t *x)
{
    for (size_t i = 0; i < x->nowned; i++) {
        plx_pyvalue_clear(x->owned[i]);
        PyMem_Free(x->owned[i]);
    }
    PyMem_Free(x->owned);
    for (size_t i = 0; i < x->nmem; i++)
        PyMem_Free(x->mem[i]);
    PyMem_Free(x->mem);
    for (size_t i = 0; i < x->ncache; i++) {
        cache_entry_t *c = &x->cache[i];
        Py_XDECREF(c->obj);
        for (uint32_t b = 0; b < c->nbufs; b++)
            plx_buf_unref(&c->bufs[b]);
        PyMem_Free(c->bufs);
    }
    PyMem_Free(x->cache);
    PyMem_Free(x->prev);
    Py_XDECREF(x->keep);
    /* Our references to exported buffers go; a message being written
     * holds its own. */
    plx_msg_destroy(&x->all);
    plx_msg_destroy(&x->scratch);
    memset(x, 0, sizeof *x);
}

/* ---- values ------------------------------------------------------------------ */

/* Worth caching by identity: anything whose encoding is not cheap inline
 * data rebuilt per object anyway. */
static int cacheable(PyObject *o)
{
    return !(o == Py_None || PyBool_Check(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o) ||
             PyUnicode_CheckExact(o) || PyTuple_CheckExact(o) || PyList_CheckExact(o));
}

static cache_entry_t *cache_find(submit_ctx_t *x, PyObject *obj, uint32_t offset)
{
    for (int i = 0; i < x->nrecent; i++) {
        cache_entry_t *c = &x->cache[x->recent[i]];
        if (c->obj == obj && c->offset == offset)
            return c;
    }
    return NULL;
}

static int cache_add(submit_ctx_t *x, PyObject *obj, uint32_t offset, Plexa__Value *v)
{
    if (grow((void **)&x->cache, &x->capcache, x->ncache + 1, sizeof *x->cache) < 0)
        return -1;
    uint32_t n = x->scratch->nbufs - offset;
    cache_entry_t *c = &x->cache[x->ncache];
    memset(c, 0, sizeof *c);
    c->bufs = PyMem_Calloc(n ? n : 1, sizeof *c->bufs);
    if (!c->bufs) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        c->bufs[i] = plx_buf_ref(x->scratch->bufs[offset + i]);
    c->nbufs = n;
    c->obj = Py_NewRef(obj);
    c->offset = offset;
    c->value = v;
    if (x->nrecent < RECENT) {
        x->recent[x->nrecent++] = x->ncache;
    } else {
        x->recent[x->next_recent] = x->ncache;
        x->next_recent = (x->next_recent + 1) % RECENT;
    }
    x->ncache++;
    return 0;
}

/* The Value of obj, its buffers appended to the scratch message. The
 * Value belongs to the context (possibly shared between tasks). */
static Plexa__Value *encode_obj(submit_ctx_t *x, PyObject *obj)
{
    uint32_t offset = x->scratch->nbufs;
    int cache = cacheable(obj);
    if (cache) {
        cache_entry_t *c = cache_find(x, obj, offset);
        if (c) {
            for (uint32_t i = 0; i < c->nbufs; i++)
                if (plx_msg_add_buf(x->scratch, c->bufs[i]) != PLX_OK) {
                    PyErr_NoMemory();
                    return NULL;
                }
            return c->value;
        }
    }
    if (grow((void **)&x->owned, &x->capowned, x->nowned + 1, sizeof *x->owned) < 0)
        return NULL;
    Plexa__Value *v = PyMem_Calloc(1, sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        return NULL;
    }
    plexa__value__init(v);
    x->owned[x->nowned++] = v;
    PyObject *desc = PyObject_CallOneArg(x->st->encode, obj);
    if (!desc)
        return NULL;   /* what pickling raised, unchanged */
    plx_err_t err = {0};
    int rc = plx_pyvalue_from_desc(desc, v, x->scratch, &err);
    Py_DECREF(desc);
    if (rc != PLX_OK) {
        if (rc == PLX_ENOMEM)
            PyErr_NoMemory();
        else
            PyErr_Format(x->st->serialization_error, "cannot serialize a %.100s: %s",
                         Py_TYPE(obj)->tp_name, err.msg);
        return NULL;
    }
    if (cache && cache_add(x, obj, offset, v) < 0)
        return NULL;
    return v;
}

/* ---- specs ------------------------------------------------------------------ */

static const char *const SPEC_KEYS[] = {
    "kind", "args", "clear_before", "clear_after", "retries", "depend", "after", "recovery",
};
enum { K_KIND, K_ARGS, K_CLEAR_BEFORE, K_CLEAR_AFTER, K_RETRIES, K_DEPEND, K_AFTER,
       K_RECOVERY, K_N };

int nv_tasks_init(native_state *st)
{
    for (int i = 0; i < K_N; i++) {
        st->spec_keys[i] = PyUnicode_InternFromString(SPEC_KEYS[i]);
        if (!st->spec_keys[i])
            return -1;
    }
    return 0;
}

/* Refuse keys a spec does not have (a typo would be silently ignored). */
static int check_keys(submit_ctx_t *x, PyObject *d, int found, Py_ssize_t index)
{
    if (PyDict_GET_SIZE(d) == found)
        return 0;
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &k, &v)) {
        int known = 0;
        for (int i = 0; i < K_N && !known; i++)
            known = PyUnicode_Check(k) && PyUnicode_Compare(k, x->st->spec_keys[i]) == 0;
        if (!known) {
            PyErr_Format(PyExc_ValueError, "task spec %zd: unknown key %R (known: kind, args, "
                         "clear_before, clear_after, retries, depend, after, recovery)",
                         index, k);
            return -1;
        }
    }
    return 0;
}

static int get_bool(PyObject *o, protobuf_c_boolean *has, protobuf_c_boolean *out)
{
    if (!o || o == Py_None)
        return 0;
    int t = PyObject_IsTrue(o);
    if (t < 0)
        return -1;
    *has = 1;
    *out = t != 0;
    return 0;
}

static int parse_after(submit_ctx_t *x, PyObject *o, Plexa__TaskSpec *s, Py_ssize_t index)
{
    if (!o || o == Py_None)
        return 0;
    PyObject *seq = PyLong_Check(o) ? PyTuple_Pack(1, o)
                                    : PySequence_Fast(o, "'after' must be a list of task ids");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint64_t *ids = ctx_alloc(x, (size_t)n, sizeof *ids);
    int rc = ids ? 0 : -1;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        unsigned long long v = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "task spec %zd: 'after' must hold task ids "
                         "(ints > 0)", index);
            rc = -1;
        } else {
            ids[i] = v;
        }
    }
    Py_DECREF(seq);
    if (rc == 0) {
        s->n_after = (size_t)n;
        s->after = ids;
    }
    return rc;
}

static int build_fields(submit_ctx_t *x, PyObject **v, Plexa__TaskSpec *s, Plexa__TaskSpec *rec,
                        Py_ssize_t index);

/* Fill s from the spec dict d (values encoded into the scratch message). A
 * recovery spec goes to *rec (NULL: none allowed, we are one already). */
static int build_spec(submit_ctx_t *x, PyObject *d, Plexa__TaskSpec *s, Plexa__TaskSpec *rec,
                      Py_ssize_t index)
{
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "task spec %zd must be a dict, not '%.100s'", index,
                     Py_TYPE(d)->tp_name);
        return -1;
    }
    /* Strong references: encoding runs Python code, which could change d. */
    PyObject *v[K_N];
    int found = 0, rc = 0;
    for (int i = 0; i < K_N; i++) {
        v[i] = rc == 0 ? PyDict_GetItemWithError(d, x->st->spec_keys[i]) : NULL;
        if (!v[i] && PyErr_Occurred())
            rc = -1;
        Py_XINCREF(v[i]);
        found += v[i] != NULL;
    }
    if (rc == 0)
        rc = check_keys(x, d, found, index);
    if (rc == 0)
        rc = build_fields(x, v, s, rec, index);
    for (int i = 0; i < K_N; i++)
        Py_XDECREF(v[i]);
    return rc;
}

static int build_fields(submit_ctx_t *x, PyObject **v, Plexa__TaskSpec *s, Plexa__TaskSpec *rec,
                        Py_ssize_t index)
{
    plexa__task_spec__init(s);
    if (!v[K_KIND] || !PyUnicode_Check(v[K_KIND])) {
        PyErr_Format(PyExc_TypeError, "task spec %zd: 'kind' must be a str", index);
        return -1;
    }
    Py_ssize_t klen;
    const char *kind = PyUnicode_AsUTF8AndSize(v[K_KIND], &klen);
    if (!kind || PyList_Append(x->keep, v[K_KIND]) < 0)
        return -1;
    s->kind = (char *)kind;   /* x->keep holds the str until packing */
    int is_map = strcmp(kind, "map") == 0, is_string = strcmp(kind, "string") == 0;

    if (v[K_ARGS] && v[K_ARGS] != Py_None) {
        if (PyUnicode_Check(v[K_ARGS]) || PyBytes_Check(v[K_ARGS]) || PyDict_Check(v[K_ARGS])) {
            PyErr_Format(PyExc_TypeError, "task spec %zd: 'args' must be a list or tuple, not "
                         "'%.100s'", index, Py_TYPE(v[K_ARGS])->tp_name);
            return -1;
        }
        /* A snapshot: encoding runs Python code, which could change a list. */
        PyObject *seq = PySequence_Tuple(v[K_ARGS]);
        if (!seq)
            return -1;
        Py_ssize_t n = PyTuple_GET_SIZE(seq);
        /* A chunk says how many argument tuples it holds, so that the
         * controller may cut it into pieces without unpickling it. */
        if (strcmp(kind, "chunk") == 0 && n == 2 && PyList_Check(PyTuple_GET_ITEM(seq, 1)) &&
            PyList_GET_SIZE(PyTuple_GET_ITEM(seq, 1)) <= UINT32_MAX) {
            s->has_elements = 1;
            s->elements = (uint32_t)PyList_GET_SIZE(PyTuple_GET_ITEM(seq, 1));
        }
        Plexa__Value **argv = ctx_alloc(x, (size_t)n, sizeof *argv);
        int rc = argv ? 0 : -1;
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            PyObject *a = PyTuple_GET_ITEM(seq, i);
            /* an empty kwargs / push dict travels as None */
            if (((is_map && i == 2) || (is_string && i == 1)) && PyDict_CheckExact(a) &&
                PyDict_GET_SIZE(a) == 0)
                a = Py_None;
            argv[i] = encode_obj(x, a);
            rc = argv[i] ? 0 : -1;
        }
        Py_DECREF(seq);
        if (rc < 0)
            return -1;
        s->n_args = (size_t)n;
        s->args = argv;
    }
    if (get_bool(v[K_CLEAR_BEFORE], &s->has_clear_before, &s->clear_before) < 0 ||
        get_bool(v[K_CLEAR_AFTER], &s->has_clear_after, &s->clear_after) < 0)
        return -1;
    if (v[K_RETRIES] && v[K_RETRIES] != Py_None) {
        long r = PyLong_AsLong(v[K_RETRIES]);
        if (r == -1 && PyErr_Occurred())
            return -1;
        if (r < INT32_MIN || r > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "task spec %zd: retries %ld is out of range", index, r);
            return -1;
        }
        s->has_retries = 1;
        s->retries = (int32_t)r;
    }
    if (v[K_DEPEND] && v[K_DEPEND] != Py_None) {
        if (!PyCallable_Check(v[K_DEPEND])) {
            PyErr_Format(PyExc_TypeError, "task spec %zd: 'depend' must be callable, not "
                         "'%.100s'", index, Py_TYPE(v[K_DEPEND])->tp_name);
            return -1;
        }
        s->depend = encode_obj(x, v[K_DEPEND]);
        if (!s->depend)
            return -1;
    }
    if (parse_after(x, v[K_AFTER], s, index) < 0)
        return -1;
    if (v[K_RECOVERY] && v[K_RECOVERY] != Py_None) {
        if (!rec) {
            PyErr_Format(PyExc_ValueError, "task spec %zd: a recovery task cannot have a "
                         "recovery task of its own", index);
            return -1;
        }
        /* Its values index from its own buf_base: encode them into a
         * scratch of their own, then append it to the parent's buffers. */
        plx_msg_t *parent = x->scratch, *own = plx_msg_new(0);
        if (!own) {
            PyErr_NoMemory();
            return -1;
        }
        x->scratch = own;
        int rc = build_spec(x, v[K_RECOVERY], rec, NULL, index);
        x->scratch = parent;
        uint32_t start = parent->nbufs;
        for (uint32_t i = 0; rc == 0 && i < own->nbufs; i++)
            if (plx_msg_add_buf(parent, own->bufs[i]) != PLX_OK) {
                PyErr_NoMemory();
                rc = -1;
            }
        rec->has_buf_base = 1;
        rec->buf_base = start;   /* relative to the parent's buffers */
        rec->has_buf_count = 1;
        rec->buf_count = own->nbufs;
        plx_msg_destroy(&own);
        if (rc < 0)
            return -1;
        s->recovery = rec;
    }
    return 0;
}

/* Give the finished task s its run of frame buffers (sharing the
 * previous task's when identical) and empty the scratch message. */
static int place_buffers(submit_ctx_t *x, Plexa__TaskSpec *s)
{
    plx_msg_t *sc = x->scratch;
    uint32_t n = sc->nbufs, base = 0;
    if (n > 0) {
        if (n == x->nprev && memcmp(x->prev, sc->bufs, n * sizeof *sc->bufs) == 0) {
            base = x->prev_base;
        } else {
            base = x->all->nbufs;
            if (grow((void **)&x->prev, &x->capprev, n, sizeof *x->prev) < 0)
                return -1;
            for (uint32_t i = 0; i < n; i++) {
                if (plx_msg_add_buf(x->all, sc->bufs[i]) != PLX_OK) {
                    PyErr_NoMemory();
                    return -1;
                }
                x->prev[i] = sc->bufs[i];
            }
            x->nprev = n;
            x->prev_base = base;
        }
    }
    s->has_buf_base = 1;
    s->buf_base = base;
    s->has_buf_count = 1;
    s->buf_count = n;
    for (uint32_t i = 0; i < n; i++)
        plx_buf_unref(&sc->bufs[i]);
    sc->nbufs = 0;
    return 0;
}

int nv_submit_tasks(native_state *st, plx_client_t *c, PyObject *specs, uint64_t first_id,
                    plx_request_t **r)
{
    int rc = -1;
    if (PyDict_Check(specs)) {
        PyErr_SetString(PyExc_TypeError, "specs must be a list of dicts, not one dict");
        return -1;
    }
    PyObject *seq = PySequence_Tuple(specs);   /* a snapshot, see build_spec */
    if (!seq)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    submit_ctx_t x;
    memset(&x, 0, sizeof x);
    x.st = st;
    x.keep = PyList_New(0);
    x.all = plx_msg_new(0);
    x.scratch = plx_msg_new(0);
    Plexa__TaskSpec *specv = NULL, *recv = NULL, **ptrs = NULL;
    if (!x.keep || !x.all || !x.scratch) {
        PyErr_NoMemory();
        goto out;
    }
    specv = ctx_alloc(&x, (size_t)n, sizeof *specv);
    recv = specv ? ctx_alloc(&x, (size_t)n, sizeof *recv) : NULL;
    ptrs = recv ? ctx_alloc(&x, (size_t)n, sizeof *ptrs) : NULL;
    if (!ptrs)
        goto out;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (build_spec(&x, PyTuple_GET_ITEM(seq, i), &specv[i], &recv[i], i) < 0 ||
            place_buffers(&x, &specv[i]) < 0)
            goto out;
        ptrs[i] = &specv[i];
    }
    plx_limits_t lim = plx_limits_default();
    if (x.all->nbufs > lim.max_bufs) {
        PyErr_Format(st->message_size_error, "these %zd tasks need %u frame buffers, over the "
                     "limit of %u per message: submit them in smaller batches", n,
                     (unsigned)x.all->nbufs, (unsigned)lim.max_bufs);
        goto out;
    }
    Plexa__TaskSubmit ts = PLEXA__TASK_SUBMIT__INIT;
    ts.n_tasks = (size_t)n;
    ts.tasks = ptrs;
    ts.has_first_id = ts.has_quiet = first_id != 0;
    ts.first_id = first_id;
    ts.quiet = first_id != 0;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_TASK_SUBMIT;
    env.task_submit = &ts;
    plx_err_t err = {0};
    int sent = first_id ? plx_client_send(c, &env, x.all->bufs, x.all->nbufs, &err)
                        : plx_client_submit(c, &env, x.all->bufs, x.all->nbufs, r, &err);
    if (sent != PLX_OK)
        nv_raise(st, err.code, err.msg);
    else
        rc = 0;
out:
    ctx_clear(&x);
    Py_DECREF(seq);
    return rc;
}

/* ---- ids ----------------------------------------------------------------------- */

int nv_parse_task_ids(PyObject *o, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (o == NULL || o == Py_None)
        return 0;
    PyObject *seq = PyLong_Check(o) ? PyTuple_Pack(1, o)
                                    : PySequence_Fast(o, "task ids must be an int or a list of ints");
    if (!seq)
        return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    uint64_t *ids = PyMem_Malloc((size_t)(k ? k : 1) * sizeof *ids);
    if (!ids) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        unsigned long long v = PyLong_Check(item) ? PyLong_AsUnsignedLongLong(item)
                                                  : (unsigned long long)-1;
        if (v == (unsigned long long)-1) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError) ||
                PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "task ids must be ints >= 0, not %R", item);
            }
            PyMem_Free(ids);
            Py_DECREF(seq);
            return -1;
        }
        ids[i] = v;
    }
    Py_DECREF(seq);
    *out = ids;
    *n = (size_t)k;
    return 0;
}

/* ---- replies --------------------------------------------------------------------- */

PyObject *nv_task_ids(const Plexa__TaskIds *ti)
{
    return Py_BuildValue("(KI)", (unsigned long long)(ti->has_first ? ti->first : 0),
                         (unsigned)(ti->has_count ? ti->count : 0));
}

static PyObject *opt_double(protobuf_c_boolean has, double v)
{
    if (!has)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

/* The error of a TaskResult as (ename, evalue, traceback), or None. */
static PyObject *task_error(const Plexa__RemoteError *e)
{
    if (!e)
        Py_RETURN_NONE;
    const char *ename = e->ename && *e->ename ? e->ename : "RemoteError";
    return Py_BuildValue("(NNN)", nv_str(ename), nv_str(e->evalue), nv_str(e->traceback));
}

/* nv_local_error for the values of task task_id. */
static PyObject *decode_error(uint64_t task_id)
{
    char where[96];
    snprintf(where, sizeof where, "decoding the result of task %llu",
             (unsigned long long)task_id);
    return nv_local_error(where);
}

/* The decoded values of one result; on a failure to decode, NULL with
 * *error replaced by the reason (status then becomes TASK_FAILED). */
static PyObject *task_values(native_state *st, const plx_msg_t *msg, const Plexa__TaskResult *r,
                             PyObject **error, int *failed)
{
    PyObject *list = PyList_New((Py_ssize_t)r->n_values);
    if (!list)
        return NULL;
    uint32_t base = r->has_buf_base ? r->buf_base : 0;
    uint32_t nbufs = base <= msg->nbufs ? msg->nbufs - base : 0;
    for (size_t i = 0; i < r->n_values; i++) {
        plx_err_t err = {0};
        PyObject *desc = plx_pyvalue_to_desc(r->values[i], msg->bufs + (base <= msg->nbufs ? base : 0),
                                             nbufs, &err);
        PyObject *obj = desc ? PyObject_CallOneArg(st->decode, desc) : NULL;
        Py_XDECREF(desc);
        if (!obj) {
            PyObject *e = desc ? decode_error(r->task_id)
                               : Py_BuildValue("(sss)", "ProtocolError", err.msg, err.msg);
            if (!e) {
                Py_DECREF(list);
                return NULL;
            }
            Py_SETREF(*error, e);
            *failed = 1;
            Py_DECREF(list);
            return PyList_New(0);
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, obj);
    }
    return list;
}

static PyObject *task_tuple(native_state *st, const plx_msg_t *msg, const Plexa__TaskResult *r)
{
    PyObject *error = task_error(r->error);
    if (!error)
        return NULL;
    int failed = 0;
    PyObject *values = task_values(st, msg, r, &error, &failed);
    if (!values) {
        Py_DECREF(error);
        return NULL;
    }
    int status = r->has_status ? (int)r->status : PLEXA__TASK_STATUS__TASK_FAILED;
    if (failed)
        status = PLEXA__TASK_STATUS__TASK_FAILED;
    PyObject *engine = r->has_engine_id ? PyLong_FromLong(r->engine_id) : Py_NewRef(Py_None);
    return Py_BuildValue("(KiNNNNNN)", (unsigned long long)r->task_id, status, engine, values,
                         error, opt_double(r->has_submitted, r->submitted),
                         opt_double(r->has_started, r->started),
                         opt_double(r->has_completed, r->completed));
}

static PyObject *task_item(native_state *st, const plx_msg_t *msg, const void *item)
{
    return task_tuple(st, msg, item);
}

PyObject *nv_task_results(native_state *st, const plx_msg_t *msg, const Plexa__TaskResults *tr)
{
    return nv_list_of(st, msg, (void *const *)tr->results, tr->n_results, task_item);
}

static PyObject *u64_list(const uint64_t *v, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *o = PyLong_FromUnsignedLongLong(v[i]);
        if (!o)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, o);
    }
    return list;
}

PyObject *nv_task_queue_status(const Plexa__TaskQueueStatusReply *q, int verbose)
{
    if (!verbose)
        return Py_BuildValue("{sKsKsKsK}", "pending", (unsigned long long)q->pending,
                             "scheduled", (unsigned long long)q->scheduled,
                             "succeeded", (unsigned long long)q->succeeded,
                             "failed", (unsigned long long)q->failed);
    return Py_BuildValue("{sNsNsNsN}", "pending", u64_list(q->pending_ids, q->n_pending_ids),
                         "scheduled", u64_list(q->scheduled_ids, q->n_scheduled_ids),
                         "succeeded", u64_list(q->succeeded_ids, q->n_succeeded_ids),
                         "failed", u64_list(q->failed_ids, q->n_failed_ids));
}

int nv_add_task_constants(PyObject *mod)
{
    static const struct { const char *name; int value; } c[] = {
        { "TASK_PENDING", PLEXA__TASK_STATUS__TASK_PENDING },
        { "TASK_OK", PLEXA__TASK_STATUS__TASK_OK },
        { "TASK_FAILED", PLEXA__TASK_STATUS__TASK_FAILED },
        { "TASK_REJECTED", PLEXA__TASK_STATUS__TASK_REJECTED },
        { "TASK_ABORTED", PLEXA__TASK_STATUS__TASK_ABORTED },
        { "TASK_ENGINE_DIED", PLEXA__TASK_STATUS__TASK_ENGINE_DIED },
        { "TASK_TIMEOUT", PLEXA__TASK_STATUS__TASK_TIMEOUT },
        { "TASK_EVICTED", PLEXA__TASK_STATUS__TASK_EVICTED },
        { "TASK_UNKNOWN", PLEXA__TASK_STATUS__TASK_UNKNOWN },
    };
    PyObject *names = PyDict_New();
    if (!names)
        return -1;
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        PyObject *k = PyLong_FromLong(c[i].value), *v = PyUnicode_FromString(c[i].name);
        int rc = (k && v) ? PyDict_SetItem(names, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (rc < 0 || PyModule_AddIntConstant(mod, c[i].name, c[i].value) < 0) {
            Py_DECREF(names);
            return -1;
        }
    }
    int rc = PyModule_AddObjectRef(mod, "TASK_STATUS_NAMES", names);
    Py_DECREF(names);
    return rc;
}
