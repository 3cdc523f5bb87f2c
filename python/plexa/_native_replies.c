/*
 * Replies as Python sees them: libplexa's decoded replies (plx_rq.h)
 * turned into named structures (struct sequences: tuples whose items also
 * have names, which plexa.client reads), values decoded zero copy.
 *
 *   types          EngineReply, ExecuteResult, RemoteError, EngineQueue,
 *                  TaskIds, TaskReply (module attributes)
 *   multi-engine   nv_multi_value, nv_queue_status_value
 *   tasks          nv_task_ids_value, nv_task_results_value, nv_task_queue_value
 */
#include "_native_int.h"

#include <string.h>

/* ---- types --------------------------------------------------------------------- */

static PyStructSequence_Field engine_reply_fields[] = {
    { "engine_id", "the engine's id (-1 when the reply does not say)" },
    { "method", "what ran: 'execute', 'push', a call's method...; None if unsaid" },
    { "execute", "ExecuteResult, or None" },
    { "values", "list of decoded objects (pull: one per key; call: the results)" },
    { "error", "RemoteError, or None" },
    { NULL, NULL },
};

static PyStructSequence_Field execute_result_fields[] = {
    { "number", "the engine's In [n] counter" },
    { "input", "the code as the engine ran it" },
    { "stdout", "captured standard output" },
    { "stderr", "captured standard error" },
    { NULL, NULL },
};

static PyStructSequence_Field remote_error_fields[] = {
    { "ename", "exception type name" },
    { "evalue", "str(exception)" },
    { "traceback", "formatted traceback" },
    { NULL, NULL },
};

static PyStructSequence_Field engine_queue_fields[] = {
    { "engine_id", "the engine's id" },
    { "pending", "requests sent to the engine, not yet answered" },
    { "queue", "requests waiting in the controller for it" },
    { NULL, NULL },
};

static PyStructSequence_Field task_ids_fields[] = {
    { "first_id", "the first task id" },
    { "count", "how many consecutive ids" },
    { NULL, NULL },
};

static PyStructSequence_Field task_reply_fields[] = {
    { "task_id", "the task's id" },
    { "status", "a TASK_* constant" },
    { "engine_id", "the engine that ran it, or None" },
    { "values", "list of decoded objects (map [value]; chunk [list, ...]; "
                "string [dict, stdout, stderr]); [] when it did not run" },
    { "error", "RemoteError (remote, or the controller's reason), or None" },
    { "submitted", "unix time, or None" },
    { "started", "unix time on the engine, or None" },
    { "completed", "unix time on the engine, or None" },
    { "stdout", "what the task printed (str)" },
    { "stderr", "what it printed to stderr (str)" },
    { NULL, NULL },
};

static PyStructSequence_Desc reply_descs[NV_NREPLY_TYPES] = {
    [NV_ENGINE_REPLY] = { "plexa._native.EngineReply", "One engine's answer to a request.",
                          engine_reply_fields, 5 },
    [NV_EXECUTE_RESULT] = { "plexa._native.ExecuteResult", "The outcome of code on an engine.",
                            execute_result_fields, 4 },
    [NV_REMOTE_ERROR] = { "plexa._native.RemoteError", "An exception, as (ename, evalue, "
                          "traceback).", remote_error_fields, 3 },
    [NV_ENGINE_QUEUE] = { "plexa._native.EngineQueue", "What an engine runs and what waits "
                          "for it.", engine_queue_fields, 3 },
    [NV_TASK_IDS] = { "plexa._native.TaskIds", "Consecutive task ids.", task_ids_fields, 2 },
    [NV_TASK_REPLY] = { "plexa._native.TaskReply", "A task's outcome.", task_reply_fields, 10 },
};

int nv_replies_init(PyObject *mod, native_state *st)
{
    for (int i = 0; i < NV_NREPLY_TYPES; i++) {
        st->reply_types[i] = PyStructSequence_NewType(&reply_descs[i]);
        if (!st->reply_types[i] || PyModule_AddType(mod, st->reply_types[i]) < 0)
            return -1;
    }
    return 0;
}

/* A struct sequence of type t from n new references (stolen, also on
 * failure; a NULL among them gives NULL). */
static PyObject *named(native_state *st, enum nv_reply_type t, PyObject **items, int n)
{
    int ok = 1;
    for (int i = 0; i < n; i++)
        ok = ok && items[i];
    PyObject *o = ok ? PyStructSequence_New(st->reply_types[t]) : NULL;
    for (int i = 0; i < n; i++) {
        if (o)
            PyStructSequence_SET_ITEM(o, i, items[i]);
        else
            Py_XDECREF(items[i]);
    }
    return o;
}

PyObject *nv_remote_error(native_state *st, PyObject *ename, PyObject *evalue, PyObject *tb)
{
    PyObject *items[] = { ename, evalue, tb };
    return named(st, NV_REMOTE_ERROR, items, 3);
}

static PyObject *error_of(native_state *st, const char *ename, const char *evalue,
                          const char *tb)
{
    if (!ename)
        Py_RETURN_NONE;
    return nv_remote_error(st, nv_str(ename), nv_str(evalue), nv_str(tb));
}

/* A protocol fault in a reply, as an engine's (or a task's) error. */
static PyObject *fault_error(native_state *st, const char *msg)
{
    return error_of(st, "ProtocolError", msg, msg);
}

static PyObject *new_list_of(size_t n)
{
    return PyList_New((Py_ssize_t)n);
}

/*
 * The objects of values[0..n): a list, or on a failure to decode an empty
 * one with *failed set and *error replaced by why (a malformed value, or what decoding
 * raised, described by where()). NULL only for failures that are not the
 * data's (no memory).
 */
typedef PyObject *(*where_fn)(native_state *st, const void *ctx);

static PyObject *decode_list(native_state *st, plx_value_t *const *values, size_t n,
                             PyObject **error, int *failed, where_fn where, const void *ctx)
{
    PyObject *list = new_list_of(n);
    for (size_t i = 0; list && i < n; i++) {
        plx_err_t err = {0};
        int malformed = 0;
        PyObject *obj = nv_value_decode(st, values[i], &malformed, &err);
        if (obj) {
            PyList_SET_ITEM(list, (Py_ssize_t)i, obj);
            continue;
        }
        PyObject *e = malformed ? fault_error(st, err.msg) : where(st, ctx);
        Py_XSETREF(*error, e);
        *failed = 1;
        Py_SETREF(list, e ? new_list_of(0) : NULL);
        return list;
    }
    return list;
}

/* ---- multi-engine --------------------------------------------------------------------- */

static PyObject *engine_where(native_state *st, const void *ctx)
{
    const plx_engine_reply_t *er = ctx;
    char where[160];
    snprintf(where, sizeof where, "decoding what engine %d returned from %s",
             (int)er->engine_id, er->method ? er->method : "request");
    return nv_local_error(st, where);
}

static PyObject *execute_of(native_state *st, const plx_engine_reply_t *er)
{
    if (!er->has_execute)
        Py_RETURN_NONE;
    PyObject *items[] = { PyLong_FromLong(er->number), nv_str(er->input),
                          nv_str(er->stdout_text), nv_str(er->stderr_text) };
    return named(st, NV_EXECUTE_RESULT, items, 4);
}

static PyObject *engine_reply(native_state *st, const plx_engine_reply_t *er)
{
    PyObject *error = er->fault ? fault_error(st, er->fault)
                                : error_of(st, er->ename, er->evalue, er->traceback);
    int failed = 0;
    PyObject *values = error ? decode_list(st, er->values, er->nvalues, &error, &failed,
                                           engine_where, er)
                             : NULL;
    PyObject *items[] = { PyLong_FromLong(er->engine_id),
                          er->method ? nv_str(er->method) : Py_NewRef(Py_None),
                          execute_of(st, er), values, error };
    return named(st, NV_ENGINE_REPLY, items, 5);
}

PyObject *nv_multi_value(native_state *st, const plx_multi_reply_t *m)
{
    PyObject *list = new_list_of(m->n);
    for (size_t i = 0; list && i < m->n; i++) {
        PyObject *r = engine_reply(st, &m->r[i]);
        if (!r)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, r);
    }
    return list;
}

static PyObject *str_list(char *const *items, size_t n)
{
    PyObject *list = new_list_of(n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *s = nv_str(items[i]);
        if (!s)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    return list;
}

PyObject *nv_queue_status_value(native_state *st, const plx_queue_status_t *q)
{
    PyObject *list = new_list_of(q->n);
    for (size_t i = 0; list && i < q->n; i++) {
        const plx_engine_queue_t *e = &q->e[i];
        PyObject *items[] = { PyLong_FromLong(e->engine_id), str_list(e->pending, e->npending),
                              str_list(e->queue, e->nqueue) };
        PyObject *t = named(st, NV_ENGINE_QUEUE, items, 3);
        if (!t)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

/* ---- tasks ------------------------------------------------------------------------------ */

PyObject *nv_task_ids_value(native_state *st, uint64_t first, uint32_t count)
{
    PyObject *items[] = { PyLong_FromUnsignedLongLong(first), PyLong_FromUnsignedLong(count) };
    return named(st, NV_TASK_IDS, items, 2);
}

static PyObject *opt_double(int has, double v)
{
    if (!has)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyObject *text_or_empty(const char *s)
{
    return PyUnicode_DecodeUTF8(s ? s : "", s ? (Py_ssize_t)strlen(s) : 0, "replace");
}

static PyObject *task_where(native_state *st, const void *ctx)
{
    const plx_task_reply_t *r = ctx;
    char where[96];
    snprintf(where, sizeof where, "decoding the result of task %llu",
             (unsigned long long)r->task_id);
    return nv_local_error(st, where);
}

static PyObject *task_reply(native_state *st, const plx_task_reply_t *r)
{
    PyObject *error = r->fault ? fault_error(st, r->fault)
                               : error_of(st, r->ename, r->evalue, r->traceback);
    int failed = r->fault != NULL;   /* values this client cannot read fail the task */
    PyObject *values = error ? decode_list(st, r->values, r->nvalues, &error, &failed,
                                           task_where, r)
                             : NULL;
    int status = r->has_status && !failed ? r->status : PLX_TASK_FAILED;
    PyObject *items[] = { PyLong_FromUnsignedLongLong(r->task_id), PyLong_FromLong(status),
                          r->has_engine_id ? PyLong_FromLong(r->engine_id) : Py_NewRef(Py_None),
                          values, error, opt_double(r->has_submitted, r->submitted),
                          opt_double(r->has_started, r->started),
                          opt_double(r->has_completed, r->completed),
                          text_or_empty(r->stdout_text), text_or_empty(r->stderr_text) };
    return named(st, NV_TASK_REPLY, items, 10);
}

PyObject *nv_task_results_value(native_state *st, const plx_task_replies_t *t)
{
    PyObject *list = new_list_of(t->n);
    for (size_t i = 0; list && i < t->n; i++) {
        PyObject *r = task_reply(st, &t->r[i]);
        if (!r)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, r);
    }
    return list;
}

static PyObject *u64_list(const uint64_t *v, size_t n)
{
    PyObject *list = new_list_of(n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *o = PyLong_FromUnsignedLongLong(v[i]);
        if (!o)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, o);
    }
    return list;
}

PyObject *nv_task_queue_value(const plx_task_queue_t *q, int verbose)
{
    static const char *const names[PLX_TQ_NSTATES] = { "pending", "scheduled", "succeeded",
                                                       "failed" };
    PyObject *d = PyDict_New();
    for (int s = 0; d && s < PLX_TQ_NSTATES; s++) {
        PyObject *v = verbose ? u64_list(q->ids[s], q->nids[s])
                              : PyLong_FromUnsignedLongLong(q->count[s]);
        if (!v || PyDict_SetItemString(d, names[s], v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}
