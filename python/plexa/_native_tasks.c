/*
 * The task verbs of plexa._native.Client (see _native.c's module
 * documentation): spec dicts read into libplexa's task specs
 * (plx_task_spec_t), which its TaskSubmit builder puts on the wire
 * (core/client/plx_rq_task.c: buffer runs shared between tasks); the other
 * task requests, and the task constants.
 *
 * Two things make a big map cheap, and both need Python's view of the
 * objects:
 *   - an object that is not a plain scalar, str or tuple/list (a function,
 *     an array, a dict) is encoded once per submission: the next spec that
 *     names the same object gets the same encoded value, which the builder
 *     then converts once (the function of a map is pickled once, not once
 *     per task);
 *   - an empty dict as a map's kwargs or a string task's push travels as
 *     None (the engine reads both alike), so that tasks which differ only
 *     in inline arguments share one buffer run.
 * Everything stays zero copy: payloads are exports of the objects' memory.
 *
 *   submission context   encoded values, the object cache, spec storage
 *   specs                spec dict -> plx_task_spec_t
 *   verbs                submit_tasks, task_reserve, task_wait, task_abort,
 *                        task_clear, task_queue_status; constants
 */
#include "_native_int.h"

#include <stdlib.h>
#include <string.h>

#define RECENT 8   /* cached objects searched per lookup */

/* ---- submission context ------------------------------------------------------ */

typedef struct cache_entry {
    PyObject    *obj;     /* strong reference: its id stays unique */
    plx_value_t *value;
} cache_entry_t;

typedef struct submit_ctx {
    native_state  *st;
    PyObject      *keep;      /* objects whose memory the specs point into (kind strs) */
    plx_value_t  **owned;     /* encoded values, destroyed at the end */
    size_t         nowned, capowned;
    void         **mem;       /* other PyMem blocks */
    size_t         nmem, capmem;
    cache_entry_t  recent[RECENT];
    int            nrecent, next_recent;
} submit_ctx_t;

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
    for (size_t i = 0; i < x->nowned; i++)
        plx_value_destroy(&x->owned[i]);
    PyMem_Free(x->owned);
    for (size_t i = 0; i < x->nmem; i++)
        PyMem_Free(x->mem[i]);
    PyMem_Free(x->mem);
    for (int i = 0; i < x->nrecent; i++)
        Py_XDECREF(x->recent[i].obj);
    Py_XDECREF(x->keep);
    memset(x, 0, sizeof *x);
}

/* Worth caching by identity: anything whose encoding is not cheap inline
 * data rebuilt per object anyway. */
static int cacheable(PyObject *o)
{
    return !(o == Py_None || PyBool_Check(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o) ||
             PyUnicode_CheckExact(o) || PyTuple_CheckExact(o) || PyList_CheckExact(o));
}

/* Remember obj's value; the oldest of RECENT entries makes room. */
static void cache_add(submit_ctx_t *x, PyObject *obj, plx_value_t *v)
{
    cache_entry_t *c;
    if (x->nrecent < RECENT) {
        c = &x->recent[x->nrecent++];
    } else {
        c = &x->recent[x->next_recent];
        x->next_recent = (x->next_recent + 1) % RECENT;
        Py_DECREF(c->obj);
    }
    c->obj = Py_NewRef(obj);
    c->value = v;
}

/* The encoded value of obj, owned by the context (possibly shared between
 * specs). NULL with an exception. */
static const plx_value_t *encode_obj(submit_ctx_t *x, PyObject *obj)
{
    int cache = cacheable(obj);
    for (int i = 0; cache && i < x->nrecent; i++)
        if (x->recent[i].obj == obj)
            return x->recent[i].value;
    if (grow((void **)&x->owned, &x->capowned, x->nowned + 1, sizeof *x->owned) < 0)
        return NULL;
    plx_err_t err = {0};
    plx_value_t *v = nv_value_encode(x->st, obj, &err);
    if (!v) {
        if (err.code == PLX_ENOMEM)
            PyErr_NoMemory();
        else if (err.code != PLX_OK)
            PyErr_Format(x->st->serialization_error, "cannot serialize a %.100s: %s",
                         Py_TYPE(obj)->tp_name, err.msg);
        return NULL;
    }
    x->owned[x->nowned++] = v;
    if (cache)
        cache_add(x, obj, v);
    return v;
}

/* ---- specs -------------------------------------------------------------------- */

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

/* A flag: PLX_SPEC_UNSET for None or absent, else 0 or 1. */
static int get_flag(PyObject *o, int *out)
{
    if (!o || o == Py_None)
        return 0;
    int t = PyObject_IsTrue(o);
    if (t < 0)
        return -1;
    *out = t != 0;
    return 0;
}

static int parse_after(submit_ctx_t *x, PyObject *o, plx_task_spec_t *s, Py_ssize_t index)
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
        s->nafter = (size_t)n;
        s->after = ids;
    }
    return rc;
}

/* The encoded arguments of a spec of kind. */
static int parse_args(submit_ctx_t *x, PyObject *o, const char *kind, plx_task_spec_t *s,
                      Py_ssize_t index)
{
    if (!o || o == Py_None)
        return 0;
    if (PyUnicode_Check(o) || PyBytes_Check(o) || PyDict_Check(o)) {
        PyErr_Format(PyExc_TypeError, "task spec %zd: 'args' must be a list or tuple, not "
                     "'%.100s'", index, Py_TYPE(o)->tp_name);
        return -1;
    }
    /* A snapshot: encoding runs Python code, which could change a list. */
    PyObject *seq = PySequence_Tuple(o);
    if (!seq)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    int is_map = strcmp(kind, "map") == 0, is_string = strcmp(kind, "string") == 0;
    /* A chunk says how many argument tuples it holds, so that the
     * controller may cut it into pieces without unpickling it. */
    if (strcmp(kind, "chunk") == 0 && n == 2 && PyList_Check(PyTuple_GET_ITEM(seq, 1)) &&
        PyList_GET_SIZE(PyTuple_GET_ITEM(seq, 1)) <= UINT32_MAX)
        s->elements = PyList_GET_SIZE(PyTuple_GET_ITEM(seq, 1));
    const plx_value_t **argv = ctx_alloc(x, (size_t)n, sizeof *argv);
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
    if (rc == 0) {
        s->nargs = (size_t)n;
        s->args = argv;
    }
    return rc;
}

static int build_fields(submit_ctx_t *x, PyObject **v, plx_task_spec_t *s, plx_task_spec_t *rec,
                        Py_ssize_t index);

/* Fill s from the spec dict d. A recovery spec goes to *rec (NULL: none
 * allowed, we are one already). */
static int build_spec(submit_ctx_t *x, PyObject *d, plx_task_spec_t *s, plx_task_spec_t *rec,
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

static int build_fields(submit_ctx_t *x, PyObject **v, plx_task_spec_t *s, plx_task_spec_t *rec,
                        Py_ssize_t index)
{
    *s = plx_task_spec_init();
    if (!v[K_KIND] || !PyUnicode_Check(v[K_KIND])) {
        PyErr_Format(PyExc_TypeError, "task spec %zd: 'kind' must be a str", index);
        return -1;
    }
    const char *kind = PyUnicode_AsUTF8(v[K_KIND]);
    if (!kind || PyList_Append(x->keep, v[K_KIND]) < 0)
        return -1;
    s->kind = kind;   /* x->keep holds the str until packing */
    if (parse_args(x, v[K_ARGS], kind, s, index) < 0 ||
        get_flag(v[K_CLEAR_BEFORE], &s->clear_before) < 0 ||
        get_flag(v[K_CLEAR_AFTER], &s->clear_after) < 0)
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
        if (!(s->depend = encode_obj(x, v[K_DEPEND])))
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
        if (build_spec(x, v[K_RECOVERY], rec, NULL, index) < 0)
            return -1;
        s->recovery = rec;
    }
    return 0;
}

/* ---- verbs --------------------------------------------------------------------------- */

/* The C client when it is a task client (or, for read-only requests, a
 * status client); else NULL with an exception. */
static plx_client_t *task_client_of(ClientObject *self, const char *what, int read_only)
{
    plx_client_t *c = nv_client_of(self);
    int ok = self->role == PLX_CLIENT_ROLE_TASK ||
             (read_only && self->role == PLX_CLIENT_ROLE_STATUS);
    if (c && !ok) {
        PyErr_Format(PyExc_TypeError, "%s needs a task client: Client(..., role='task')", what);
        return NULL;
    }
    return c;
}

/* Encode the spec dicts and submit them on c (first_id: see plx_rq_task_submit). */
static int submit_specs(native_state *st, plx_client_t *c, PyObject *seq, uint64_t first_id,
                        plx_request_t **r)
{
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    submit_ctx_t x;
    memset(&x, 0, sizeof x);
    x.st = st;
    x.keep = PyList_New(0);
    plx_task_spec_t *specv = x.keep ? ctx_alloc(&x, (size_t)n, sizeof *specv) : NULL;
    plx_task_spec_t *recv = specv ? ctx_alloc(&x, (size_t)n, sizeof *recv) : NULL;
    int rc = recv ? 0 : -1;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
        rc = build_spec(&x, PyTuple_GET_ITEM(seq, i), &specv[i], &recv[i], i);
    if (rc == 0) {
        plx_err_t err = {0};
        if (plx_rq_task_submit(c, specv, (size_t)n, first_id, r, &err) != PLX_OK) {
            nv_raise(st, err.code, err.msg);
            rc = -1;
        }
    }
    ctx_clear(&x);
    return rc;
}

PyObject *nv_submit_tasks(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "specs", "first_id", NULL };
    PyObject *specs;
    unsigned long long first_id = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|K:submit_tasks", kwlist, &specs, &first_id))
        return NULL;
    native_state *st = nv_state((PyObject *)self);
    plx_client_t *c = st ? task_client_of(self, "submit_tasks", 0) : NULL;
    if (!c)
        return NULL;
    if (PyDict_Check(specs)) {
        PyErr_SetString(PyExc_TypeError, "specs must be a list of dicts, not one dict");
        return NULL;
    }
    PyObject *seq = PySequence_Tuple(specs);   /* a snapshot, see build_spec */
    if (!seq)
        return NULL;
    plx_request_t *r = NULL;
    int rc = submit_specs(st, c, seq, (uint64_t)first_id, &r);
    Py_DECREF(seq);
    nv_release_drain();
    if (rc < 0)
        return NULL;
    if (first_id)
        Py_RETURN_NONE;
    return nv_request_new((PyObject *)self, r, REQ_TASK_IDS);
}

/* Wrap a task request the builder submitted (rc its outcome; r, set by
 * that call, is read only after it). */
static PyObject *task_request(ClientObject *self, int rc, plx_request_t *r,
                              const plx_err_t *err, enum req_kind kind)
{
    if (rc != PLX_OK)
        return nv_raise_err((PyObject *)self, err);
    return nv_request_new((PyObject *)self, r, kind);
}

PyObject *nv_submit_task_reserve(ClientObject *self, PyObject *args)
{
    unsigned int count;
    if (!PyArg_ParseTuple(args, "I:submit_task_reserve", &count))
        return NULL;
    plx_client_t *c = task_client_of(self, "submit_task_reserve", 0);
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!c)
        return NULL;
    int rc = plx_rq_task_reserve(c, count, &r, &err);
    return task_request(self, rc, r, &err, REQ_TASK_IDS);
}

/* None, an int or a sequence of ints -> a PyMem_Malloc'd array (NULL when
 * empty; free with PyMem_Free). */
static int parse_task_ids(PyObject *o, uint64_t **out, size_t *n)
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

PyObject *nv_submit_task_wait(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "ids", "block", "release", NULL };
    PyObject *ids_o;
    int block = 1, release = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pp:submit_task_wait", kwlist, &ids_o, &block,
                                     &release))
        return NULL;
    uint64_t *ids;
    size_t n;
    if (parse_task_ids(ids_o, &ids, &n) < 0)
        return NULL;
    plx_client_t *c = task_client_of(self, "submit_task_wait", 0);
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    PyObject *req = NULL;
    if (c) {
        int rc = plx_rq_task_wait(c, ids, n, block, release, &r, &err);
        req = task_request(self, rc, r, &err, REQ_TASK_RESULTS);
    }
    PyMem_Free(ids);
    return req;
}

/* TaskAbort and TaskClear carry only a list of ids and are acknowledged.
 * abort: 0 clear, 1 abort, 2 abort only if none was sent to an engine. */
static PyObject *submit_task_ids(ClientObject *self, PyObject *ids_o, int abort,
                                 const char *what)
{
    uint64_t *ids;
    size_t n;
    if (parse_task_ids(ids_o, &ids, &n) < 0)
        return NULL;
    plx_client_t *c = task_client_of(self, what, 0);
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    PyObject *req = NULL;
    if (c) {
        int rc = abort == 2 ? plx_rq_task_cancel(c, ids, n, &r, &err)
                 : abort    ? plx_rq_task_abort(c, ids, n, &r, &err)
                            : plx_rq_task_clear(c, ids, n, &r, &err);
        req = task_request(self, rc, r, &err, REQ_ACK);
    }
    PyMem_Free(ids);
    return req;
}

PyObject *nv_submit_task_abort(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "ids", "queued_only", NULL };
    PyObject *ids_o;
    int queued_only = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p:submit_task_abort", kwlist, &ids_o,
                                     &queued_only))
        return NULL;
    return submit_task_ids(self, ids_o, queued_only ? 2 : 1, "submit_task_abort");
}

PyObject *nv_submit_task_clear(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "ids", NULL };
    PyObject *ids_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:submit_task_clear", kwlist, &ids_o))
        return NULL;
    return submit_task_ids(self, ids_o, 0, "submit_task_clear");
}

PyObject *nv_submit_task_queue_status(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "verbose", NULL };
    int verbose = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:submit_task_queue_status", kwlist, &verbose))
        return NULL;
    plx_client_t *c = task_client_of(self, "submit_task_queue_status", 1);
    plx_request_t *r = NULL;
    plx_err_t err = {0};
    if (!c)
        return NULL;
    int rc = plx_rq_task_queue_status(c, verbose, &r, &err);
    return task_request(self, rc, r, &err, verbose ? REQ_TASK_QSTATUS_VERBOSE : REQ_TASK_QSTATUS);
}

int nv_add_task_constants(PyObject *mod)
{
    static const struct { const char *name; int value; } c[] = {
        { "TASK_PENDING", PLX_TASK_PENDING },
        { "TASK_OK", PLX_TASK_OK },
        { "TASK_FAILED", PLX_TASK_FAILED },
        { "TASK_REJECTED", PLX_TASK_REJECTED },
        { "TASK_ABORTED", PLX_TASK_ABORTED },
        { "TASK_ENGINE_DIED", PLX_TASK_ENGINE_DIED },
        { "TASK_TIMEOUT", PLX_TASK_TIMEOUT },
        { "TASK_EVICTED", PLX_TASK_EVICTED },
        { "TASK_UNKNOWN", PLX_TASK_UNKNOWN },
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
