/*
 * Serving one request on the Python thread: execute, push, pull, call
 * (keys, reset, get_result, map, apply: plexa._engine.call), task_run
 * (plexa._engine.task, answered with a TaskResult), shutdown (answered,
 * then the engine stops), and a ProtocolError for anything else. Each
 * builds an EngineReply in a reply_t (which owns every string and buffer
 * of it), packs it — as a TaskResult for tasks — and hands the frame to
 * the I/O thread.
 */
#include "plx_engine_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_relay.h"
#include "plx_time.h"

/* Text fields are capped so that a reply always fits the 16 MiB envelope
 * limit the controller enforces (a bigger one would cost the connection):
 * the middle of an over-long text is cut out, head and tail are kept. */
#define LIMIT_ENAME   1024u
#define LIMIT_EVALUE  (1u << 20)
#define LIMIT_TB      (2u << 20)
#define LIMIT_INPUT   (2u << 20)
#define LIMIT_STREAM  (4u << 20)
#define MAX_STRS      16

typedef struct reply {
    Plexa__EngineReply   rep;
    Plexa__TaskResult    task;        /* tasks: sent instead of rep, from rep's fields */
    int                  is_task;
    Plexa__ExecuteResult exec;
    Plexa__RemoteError   error;
    Plexa__Value        *vals;        /* pulled values (nvals), filled by pyvalue */
    Plexa__Value       **valp;
    size_t               nvals;
    plx_msg_t           *bufs;        /* holds the reply's buffers until packing */
    char                *strs[MAX_STRS];
    int                  nstrs;
} reply_t;

static const char NUL_REPLACEMENT[] = "\xef\xbf\xbd";   /* U+FFFD */

static int reply_init(reply_t *r, plx_engine_t *e, const char *method)
{
    memset(r, 0, sizeof *r);
    plexa__engine_reply__init(&r->rep);
    plexa__execute_result__init(&r->exec);
    plexa__remote_error__init(&r->error);
    plexa__task_result__init(&r->task);
    r->rep.has_engine_id = 1;
    r->rep.engine_id = e->engine_id;
    r->rep.has_buf_base = 1;
    r->rep.buf_base = 0;
    r->rep.method = (char *)method;
    r->bufs = plx_msg_new(0);
    return r->bufs ? PLX_OK : PLX_ENOMEM;
}

static void reply_clear_values(reply_t *r)
{
    for (size_t i = 0; i < r->nvals; i++)
        plx_pyvalue_clear(&r->vals[i]);
    free(r->vals);
    free(r->valp);
    r->vals = NULL;
    r->valp = NULL;
    r->nvals = 0;
    r->rep.n_values = 0;
    r->rep.values = NULL;
}

static void reply_clear(reply_t *r)
{
    reply_clear_values(r);
    plx_msg_destroy(&r->bufs);
    for (int i = 0; i < r->nstrs; i++)
        free(r->strs[i]);
    r->nstrs = 0;
}

/* Bytes of s[0..len) with NULs replaced (protobuf-c strings end at NUL). */
static size_t text_size(const char *s, size_t len)
{
    size_t n = len;
    for (const char *p = s; (p = memchr(p, '\0', len - (size_t)(p - s))); p++)
        n += sizeof NUL_REPLACEMENT - 2;
    return n;
}

static char *text_put(char *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i]) {
            *out++ = s[i];
        } else {
            memcpy(out, NUL_REPLACEMENT, sizeof NUL_REPLACEMENT - 1);
            out += sizeof NUL_REPLACEMENT - 1;
        }
    }
    return out;
}

/* An owned, NUL-free, NUL-terminated copy of UTF-8 s[0..len), cut in the
 * middle (on character boundaries) to about limit bytes. NULL on ENOMEM. */
static char *reply_text(reply_t *r, const char *s, size_t len, size_t limit)
{
    if (r->nstrs == MAX_STRS)
        return NULL;
    size_t head = len, tail = len;
    char note[96] = "";
    if (len > limit) {
        head = limit / 2;
        while (head > 0 && ((unsigned char)s[head] & 0xC0) == 0x80)
            head--;
        tail = len - limit / 2;
        while (tail < len && ((unsigned char)s[tail] & 0xC0) == 0x80)
            tail++;
        snprintf(note, sizeof note, "\n[... %zu bytes cut by the engine ...]\n", tail - head);
    }
    size_t n = text_size(s, head) + strlen(note) + text_size(s + tail, len - tail);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    char *p = text_put(out, s, head);
    p = stpcpy(p, note);
    p = text_put(p, s + tail, len - tail);
    *p = '\0';
    r->strs[r->nstrs++] = out;
    return out;
}

/* reply_text of a Python str (None gives NULL: the field stays unset).
 * Lone surrogates are written as \udcxx escapes rather than failing. */
static char *reply_pytext(reply_t *r, PyObject *o, size_t limit)
{
    if (!o || o == Py_None)
        return NULL;
    PyObject *b = PyUnicode_Check(o) ? PyUnicode_AsEncodedString(o, "utf-8", "backslashreplace")
                                     : NULL;
    if (!b) {
        PyErr_Clear();
        return reply_text(r, "<not a str>", 11, limit);
    }
    char *s = reply_text(r, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b), limit);
    Py_DECREF(b);
    return s;
}

static void reply_error(reply_t *r, const char *ename, const char *evalue, const char *tb)
{
    r->error.ename = reply_text(r, ename, strlen(ename), LIMIT_ENAME);
    r->error.evalue = reply_text(r, evalue, strlen(evalue), LIMIT_EVALUE);
    r->error.traceback = reply_text(r, tb, strlen(tb), LIMIT_TB);
    r->rep.error = &r->error;
}

/* An error tuple (ename, evalue, traceback) from plexa._engine. */
static void reply_error_py(reply_t *r, PyObject *t)
{
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
        reply_error(r, "SystemError", "plexa._engine returned a malformed error", "");
        return;
    }
    r->error.ename = reply_pytext(r, PyTuple_GET_ITEM(t, 0), LIMIT_ENAME);
    r->error.evalue = reply_pytext(r, PyTuple_GET_ITEM(t, 1), LIMIT_EVALUE);
    r->error.traceback = reply_pytext(r, PyTuple_GET_ITEM(t, 2), LIMIT_TB);
    r->rep.error = &r->error;
}

/* The pending exception (raised outside plexa._engine's own handling, e.g.
 * a KeyboardInterrupt between two of its statements) as the error. */
static void reply_error_exc(reply_t *r)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (!type) {
        reply_error(r, "SystemError", "plexa._engine returned an unexpected result", "");
        return;
    }
    PyObject *s = value ? PyObject_Str(value) : NULL;
    if (!s)
        PyErr_Clear();
    PyObject *name = PyObject_GetAttrString(type, "__name__");
    PyErr_Clear();
    r->error.ename = reply_pytext(r, name, LIMIT_ENAME);
    Py_XDECREF(name);
    r->error.evalue = reply_pytext(r, s, LIMIT_EVALUE);
    r->error.traceback = NULL;
    r->rep.error = &r->error;
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* A task's result from the reply's values and error. */
static void reply_task_fields(reply_t *r)
{
    r->task.has_engine_id = 1;
    r->task.engine_id = r->rep.engine_id;
    r->task.has_buf_base = 1;
    r->task.buf_base = 0;
    r->task.n_values = r->rep.n_values;
    r->task.values = r->rep.values;
    r->task.error = r->rep.error;
}

/* env packed, with bufs' buffers after it; NULL with err set. */
static plx_msg_t *pack_frame(const Plexa__Envelope *env, const plx_msg_t *bufs, plx_err_t *err)
{
    plx_msg_t *m = plx_envelope_pack(env, err);
    for (uint32_t i = 0; m && bufs && i < bufs->nbufs; i++) {
        if (plx_msg_add_buf(m, bufs->bufs[i]) != PLX_OK) {
            plx_msg_destroy(&m);
            plx_err_set(err, PLX_ENOMEM, "out of memory");
        }
    }
    return m;
}

/* Pack and hand over. A reply over the envelope limit becomes an error. */
static void reply_post(plx_engine_t *e, const plx_engine_req_t *q, reply_t *r)
{
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.has_id = 1;
    env.id = plx_engine_next_id(e);
    env.has_reply_to = q->env->has_id;
    env.reply_to = q->env->id;
    if (r->is_task) {
        reply_task_fields(r);
        env.body_case = PLEXA__ENVELOPE__BODY_TASK_RESULT;
        env.task_result = &r->task;
    } else {
        env.body_case = PLEXA__ENVELOPE__BODY_ENGINE_REPLY;
        env.engine_reply = &r->rep;
    }
    size_t size = plexa__envelope__get_packed_size(&env);
    if (size > plx_limits_default().max_envelope) {
        char msg[160];
        snprintf(msg, sizeof msg, "the %s reply needs %zu bytes, over the %u-byte envelope limit",
                 r->rep.method, size, (unsigned)plx_limits_default().max_envelope);
        PLX_WARN("%s", msg);
        reply_clear_values(r);
        r->rep.execute = NULL;
        reply_error(r, "ReplyTooLarge", msg, "");
        if (r->is_task) {
            reply_task_fields(r);
            r->task.status = PLEXA__TASK_STATUS__TASK_FAILED;
        }
    }
    plx_err_t err = {0};
    plx_msg_t *m = pack_frame(&env, r->bufs, &err);
    if (!m) {
        PLX_ERROR("cannot send the %s reply: %s", r->rep.method, err.msg);
        return;
    }
    plx_engine_io_post(e, m, q->session);
}

/* ---- the requests -------------------------------------------------------- */

/* The execute fields from plexa._engine's number, input, stdout and
 * stderr objects (input NULL: keep the one already set). */
static void reply_exec_fields(reply_t *r, PyObject *number, PyObject *input, PyObject *out,
                              PyObject *err)
{
    r->rep.execute = &r->exec;
    long n = PyLong_AsLong(number);
    PyErr_Clear();
    r->exec.has_number = 1;
    r->exec.number = (int32_t)n;
    if (input)
        r->exec.input = reply_pytext(r, input, LIMIT_INPUT);
    r->exec.stdout = reply_pytext(r, out, LIMIT_STREAM);
    r->exec.stderr = reply_pytext(r, err, LIMIT_STREAM);
}

static void serve_execute(plx_engine_t *e, const plx_engine_req_t *q, reply_t *r)
{
    const char *code = q->env->execute->code ? q->env->execute->code : "";
    size_t len = strlen(code);
    r->rep.execute = &r->exec;
    r->exec.input = reply_text(r, code, len, LIMIT_INPUT);
    PyObject *src = PyUnicode_DecodeUTF8(code, (Py_ssize_t)len, "strict");
    PyObject *res = src ? PyObject_CallOneArg(e->fn_execute, src) : NULL;
    Py_XDECREF(src);
    if (!res || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 4) {
        reply_error_exc(r);
        Py_XDECREF(res);
        return;
    }
    reply_exec_fields(r, PyTuple_GET_ITEM(res, 0), NULL, PyTuple_GET_ITEM(res, 1),
                      PyTuple_GET_ITEM(res, 2));
    if (PyTuple_GET_ITEM(res, 3) != Py_None)
        reply_error_py(r, PyTuple_GET_ITEM(res, 3));
    Py_DECREF(res);
}

/* A direct transfer's values, fetched once per URL for one push. */
typedef struct fetched {
    const char      *url;
    plx_msg_t       *msg;
    Plexa__Envelope *env;
} fetched_t;

#define FETCH_TIMEOUT_S 60.0

static void fetched_clear(fetched_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        plx_envelope_free(&f[i].env);
        plx_msg_destroy(&f[i].msg);
    }
}

/* The descriptor of ref, fetched from the engine serving it (found in, or
 * added to, f[0..*n)); NULL with r's error set. */
static PyObject *ref_desc(const Plexa__Ref *ref, fetched_t *f, size_t *n, plx_relay_t *tee,
                          reply_t *r)
{
    size_t i = 0;
    while (i < *n && strcmp(f[i].url, ref->url) != 0)
        i++;
    plx_err_t err = {0};
    if (i == *n) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = plx_engine_peer_fetch(ref->url, FETCH_TIMEOUT_S, *n ? NULL : tee, &f[i].msg,
                                   &f[i].env, &err);
        Py_END_ALLOW_THREADS
        if (rc != PLX_OK) {
            char msg[PLX_ERR_MSG_MAX + 200], from[40] = "the client";
            if (ref->has_engine)
                snprintf(from, sizeof from, "engine %d", (int)ref->engine);
            snprintf(msg, sizeof msg, "fetching '%s' from %s directly: %s (engines that "
                     "cannot reach each other need [controller] direct_transfers = false)",
                     ref->key ? ref->key : "", from, err.msg);
            reply_error(r, "DirectTransferError", msg, "");
            return NULL;
        }
        f[i].url = ref->url;
        (*n)++;
    }
    const Plexa__EngineReply *got = f[i].env->engine_reply;
    if (!ref->has_index || ref->index >= got->n_values) {
        reply_error(r, "ProtocolError", "a direct transfer without the value asked for", "");
        return NULL;
    }
    if (ref->native && !plx_value_native(got->values[ref->index])) {
        /* A broadcast carries data: a pickle here would run code the
         * serving engine chose. */
        char msg[300];
        snprintf(msg, sizeof msg, "engine %d served '%s' of a broadcast as a pickle: refused",
                 (int)ref->engine, ref->key ? ref->key : "");
        reply_error(r, "DirectTransferError", msg, "");
        return NULL;
    }
    PyObject *desc = plx_pyvalue_to_desc(got->values[ref->index], f[i].msg->bufs,
                                         f[i].msg->nbufs, &err);
    if (!desc)
        reply_error(r, "ProtocolError", err.msg, "");
    return desc;
}

/* [(name, descriptor), ...] for a push, or NULL with r's error set. */
static PyObject *push_pairs(const plx_engine_req_t *q, reply_t *r)
{
    const Plexa__Push *p = q->env->push;
    PyObject *pairs = PyList_New((Py_ssize_t)p->n_values);
    fetched_t *f = calloc(p->n_values ? p->n_values : 1, sizeof *f);
    size_t nf = 0;
    if (!f)
        Py_CLEAR(pairs);
    for (size_t i = 0; pairs && i < p->n_values; i++) {
        const Plexa__NamedValue *nv = p->values[i];
        plx_err_t err = {0};
        if (!nv->name || !nv->value) {
            reply_error(r, "ProtocolError", "push of a value without name or value", "");
            Py_CLEAR(pairs);
            break;
        }
        int direct = nv->value->kind_case == PLEXA__VALUE__KIND_REF && nv->value->ref->url;
        PyObject *desc = direct ? ref_desc(nv->value->ref, f, &nf, q->relay, r)
                                : plx_pyvalue_to_desc(nv->value, q->msg->bufs, q->msg->nbufs,
                                                      &err);
        if (!desc && direct) {
            Py_CLEAR(pairs);
            break;
        }
        if (!desc) {
            reply_error(r, "ProtocolError", err.msg, "");
            Py_CLEAR(pairs);
            break;
        }
        PyObject *pair = Py_BuildValue("(sN)", nv->name, desc);
        if (!pair)
            Py_CLEAR(pairs);
        else
            PyList_SET_ITEM(pairs, (Py_ssize_t)i, pair);
    }
    if (f)
        fetched_clear(f, nf);
    free(f);
    if (!pairs && !r->rep.error)
        reply_error_exc(r);
    return pairs;
}

static void serve_push(plx_engine_t *e, const plx_engine_req_t *q, reply_t *r)
{
    PyObject *pairs = push_pairs(q, r);
    if (!pairs)
        return;
    PyObject *res = PyObject_CallOneArg(e->fn_push, pairs);
    Py_DECREF(pairs);
    if (!res)
        reply_error_exc(r);
    else if (res != Py_None)
        reply_error_py(r, res);
    Py_XDECREF(res);
}

static PyObject *pull_keys(const Plexa__Pull *p)
{
    PyObject *keys = PyList_New((Py_ssize_t)p->n_keys);
    for (size_t i = 0; keys && i < p->n_keys; i++) {
        PyObject *k = PyUnicode_DecodeUTF8(p->keys[i], (Py_ssize_t)strlen(p->keys[i]), "strict");
        if (!k)
            Py_CLEAR(keys);
        else
            PyList_SET_ITEM(keys, (Py_ssize_t)i, k);
    }
    return keys;
}

/* Convert pulled descriptors into the reply's values and buffers. */
static void pull_values(reply_t *r, PyObject *descs, size_t n)
{
    if (!PyList_Check(descs) || (size_t)PyList_GET_SIZE(descs) != n) {
        reply_error(r, "SystemError", "plexa._engine.pull returned a malformed result", "");
        return;
    }
    r->vals = calloc(n ? n : 1, sizeof *r->vals);
    r->valp = calloc(n ? n : 1, sizeof *r->valp);
    if (!r->vals || !r->valp) {
        reply_clear_values(r);
        reply_error(r, "MemoryError", "out of memory for pulled values", "");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        plx_err_t err = {0};
        r->valp[i] = &r->vals[i];
        r->nvals = i + 1;
        if (plx_pyvalue_from_desc(PyList_GET_ITEM(descs, i), &r->vals[i], r->bufs, &err) != PLX_OK) {
            reply_clear_values(r);
            reply_error(r, err.code == PLX_ENOMEM ? "MemoryError" : "ValueError", err.msg, "");
            return;
        }
    }
    r->rep.n_values = n;
    r->rep.values = r->valp;
}

/* Served values are read when the peers come, maybe long after this
 * request: what user code may still change (a numpy array's memory) is
 * copied now, so that they get the values as they were at the pull. */
static int snapshot(plx_msg_t *bufs)
{
    for (uint32_t i = 0; i < bufs->nbufs; i++) {
        plx_buf_t *b = bufs->bufs[i];
        if (!plx_pyvalue_is_writable_export(b))
            continue;
        plx_buf_t *copy = plx_buf_copy(b->data, b->len);
        if (!copy)
            return PLX_ENOMEM;
        bufs->bufs[i] = copy;
        plx_buf_unref(&b);
    }
    return PLX_OK;
}

/* The pulled values in r go to the peers holding p's tickets instead of
 * the controller, which is told where they are. Without an endpoint of
 * its own the engine answers with the values, as for any pull. */
static void serve_directly(plx_engine_t *e, const Plexa__Pull *p, reply_t *r)
{
    Plexa__EngineReply values = PLEXA__ENGINE_REPLY__INIT;
    values.has_engine_id = 1;
    values.engine_id = e->engine_id;
    values.n_values = r->rep.n_values;
    values.values = r->rep.values;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_ENGINE_REPLY;
    env.engine_reply = &values;
    plx_err_t err = {0};
    char url[320];
    plx_msg_t *m = p->serve_hold || snapshot(r->bufs) == PLX_OK ? pack_frame(&env, r->bufs, &err)
                                                                : NULL;
    if (!m || plx_engine_peer_offer(e, p->tickets, p->n_tickets, p->serve_ttl_s, &m, url,
                                    sizeof url, &err) != PLX_OK) {
        PLX_DEBUG("answering a pull for a push with its values: %s", err.msg);
        plx_msg_destroy(&m);
        return;
    }
    char *u = reply_text(r, url, strlen(url), sizeof url);
    if (!u) {
        reply_error(r, "MemoryError", "out of memory", "");
        return;
    }
    reply_clear_values(r);
    plx_msg_destroy(&r->bufs);
    r->bufs = plx_msg_new(0);
    r->rep.serve_url = u;
}

static void serve_pull(plx_engine_t *e, const plx_engine_req_t *q, reply_t *r)
{
    const Plexa__Pull *p = q->env->pull;
    PyObject *keys = pull_keys(p);
    PyObject *res = keys ? PyObject_CallOneArg(e->fn_pull, keys) : NULL;
    Py_XDECREF(keys);
    if (!res || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 2)
        reply_error_exc(r);
    else if (PyTuple_GET_ITEM(res, 1) != Py_None)
        reply_error_py(r, PyTuple_GET_ITEM(res, 1));
    else
        pull_values(r, PyTuple_GET_ITEM(res, 0), p->n_keys);
    Py_XDECREF(res);
    if (p->n_tickets && !r->rep.error && plx_msg_payload(r->bufs) >= p->serve_min)
        serve_directly(e, p, r);
}

/* Descriptors of a call's arguments, or NULL with r's error set. */
/* Descriptors of n Values whose buffers are bufs[0..nbufs); NULL with
 * r's error set. Serves call args and task args alike. */
static PyObject *values_to_descs(Plexa__Value *const *vals, size_t n, plx_buf_t **bufs,
                                 size_t nbufs, reply_t *r)
{
    PyObject *args = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; args && i < n; i++) {
        plx_err_t err = {0};
        PyObject *desc = plx_pyvalue_to_desc(vals[i], bufs, nbufs, &err);
        if (!desc) {
            Py_DECREF(args);
            reply_error(r, "ProtocolError", err.msg, "");
            return NULL;
        }
        PyList_SET_ITEM(args, (Py_ssize_t)i, desc);
    }
    if (!args)
        reply_error_exc(r);
    return args;
}

static PyObject *call_args(const plx_engine_req_t *q, reply_t *r)
{
    const Plexa__Call *c = q->env->call;
    return values_to_descs(c->args, c->n_args, q->msg->bufs, q->msg->nbufs, r);
}

/* (number, input, stdout, stderr) or None, from plexa._engine.call. */
static void reply_exec_tuple(reply_t *r, PyObject *t)
{
    if (t == Py_None)
        return;
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 4) {
        reply_error(r, "SystemError", "plexa._engine.call returned a malformed execute", "");
        return;
    }
    reply_exec_fields(r, PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1), PyTuple_GET_ITEM(t, 2),
                      PyTuple_GET_ITEM(t, 3));
}

/* The helpers of the multi-engine interface, by name; plexa._engine.call
 * does the work and refuses unknown names. The reply carries the method. */
static void serve_call(plx_engine_t *e, const plx_engine_req_t *q, reply_t *r)
{
    const char *method = q->env->call->method ? q->env->call->method : "";
    if (*method)
        r->rep.method = (char *)method;   /* q outlives the reply */
    PyObject *args = call_args(q, r);
    if (!args)
        return;
    PyObject *name = PyUnicode_DecodeUTF8(method, (Py_ssize_t)strlen(method), "replace");
    PyObject *res = name ? PyObject_CallFunctionObjArgs(e->fn_call, name, args, NULL) : NULL;
    Py_XDECREF(name);
    Py_DECREF(args);
    if (!res || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 3 ||
        !PyList_Check(PyTuple_GET_ITEM(res, 1))) {
        reply_error_exc(r);
        Py_XDECREF(res);
        return;
    }
    PyObject *descs = PyTuple_GET_ITEM(res, 1);
    reply_exec_tuple(r, PyTuple_GET_ITEM(res, 0));
    if (PyTuple_GET_ITEM(res, 2) != Py_None)
        reply_error_py(r, PyTuple_GET_ITEM(res, 2));
    if (PyList_GET_SIZE(descs) > 0)
        pull_values(r, descs, (size_t)PyList_GET_SIZE(descs));
    Py_DECREF(res);
}

/* ---- tasks ---------------------------------------------------------------- */

/* Descriptors of a task spec's args, its buffers numbered from its
 * buf_base; NULL with r's error set. */
static PyObject *task_args(const Plexa__TaskSpec *spec, plx_buf_t **bufs, size_t nbufs,
                           reply_t *r)
{
    return values_to_descs(spec->args, spec->n_args, bufs, nbufs, r);
}

/* What the task printed, when it printed anything. */
static void task_output(reply_t *r, PyObject *out, PyObject *err)
{
    if (PyUnicode_Check(out) && PyUnicode_GET_LENGTH(out) > 0)
        r->task.stdout = reply_pytext(r, out, LIMIT_STREAM);
    if (PyUnicode_Check(err) && PyUnicode_GET_LENGTH(err) > 0)
        r->task.stderr = reply_pytext(r, err, LIMIT_STREAM);
}

/* Run the task through plexa._engine.task; fill r's values, error and
 * output and return its TaskStatus. */
static int task_run_py(plx_engine_t *e, const plx_engine_req_t *q, const Plexa__TaskSpec *spec,
                       reply_t *r)
{
    const Plexa__TaskRun *run = q->env->task_run;
    uint32_t base = spec->has_buf_base ? spec->buf_base : 0;
    uint32_t nbufs = q->msg->nbufs;
    if (base > nbufs || (spec->has_buf_count && spec->buf_count > nbufs - base)) {
        char msg[160];
        snprintf(msg, sizeof msg, "task spec names buffers %u..%u, but the message carries %u",
                 (unsigned)base, (unsigned)(base + spec->buf_count), (unsigned)nbufs);
        reply_error(r, "ProtocolError", msg, "");
        return PLEXA__TASK_STATUS__TASK_FAILED;
    }
    size_t n = spec->has_buf_count ? spec->buf_count : nbufs - base;
    plx_buf_t **bufs = q->msg->bufs + base;
    PyObject *args = task_args(spec, bufs, n, r);
    if (!args)
        return PLEXA__TASK_STATUS__TASK_FAILED;
    PyObject *depend = Py_NewRef(Py_None);
    if (spec->depend) {
        plx_err_t err = {0};
        Py_SETREF(depend, plx_pyvalue_to_desc(spec->depend, bufs, n, &err));
        if (!depend) {
            Py_DECREF(args);
            reply_error(r, "ProtocolError", err.msg, "");
            return PLEXA__TASK_STATUS__TASK_FAILED;
        }
    }
    const char *kind = spec->kind ? spec->kind : "";
    /* A piece of a split chunk runs only its range of the list. */
    PyObject *range = run->has_first && run->has_count
                          ? Py_BuildValue("(II)", (unsigned)run->first, (unsigned)run->count)
                          : Py_NewRef(Py_None);
    PyObject *res = range ? PyObject_CallFunction(e->fn_task, "sOOiiO", kind, args, depend,
                                                  spec->has_clear_before && spec->clear_before,
                                                  spec->has_clear_after && spec->clear_after,
                                                  range)
                          : NULL;
    Py_XDECREF(range);
    Py_DECREF(args);
    Py_DECREF(depend);
    if (!res || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 5 ||
        !PyLong_Check(PyTuple_GET_ITEM(res, 0)) || !PyList_Check(PyTuple_GET_ITEM(res, 1))) {
        reply_error_exc(r);   /* e.g. a KeyboardInterrupt outside its handlers */
        Py_XDECREF(res);
        return PLEXA__TASK_STATUS__TASK_FAILED;
    }
    int status = (int)PyLong_AsLong(PyTuple_GET_ITEM(res, 0));
    PyObject *descs = PyTuple_GET_ITEM(res, 1);
    if (PyTuple_GET_ITEM(res, 2) != Py_None)
        reply_error_py(r, PyTuple_GET_ITEM(res, 2));
    task_output(r, PyTuple_GET_ITEM(res, 3), PyTuple_GET_ITEM(res, 4));
    if (PyList_GET_SIZE(descs) > 0) {
        pull_values(r, descs, (size_t)PyList_GET_SIZE(descs));
        if (r->rep.error && status == PLEXA__TASK_STATUS__TASK_OK)
            status = PLEXA__TASK_STATUS__TASK_FAILED;   /* a value failed to convert */
    }
    Py_DECREF(res);
    if (status != PLEXA__TASK_STATUS__TASK_OK && status != PLEXA__TASK_STATUS__TASK_REJECTED)
        status = PLEXA__TASK_STATUS__TASK_FAILED;
    return status;
}

/* TaskRun: decode the packed spec, run it, answer with a TaskResult
 * (started/completed measured here). (A task interrupted while it still
 * waits in the queue never gets here: the I/O thread answers it.) */
static void serve_task(plx_engine_t *e, const plx_engine_req_t *q, reply_t *r)
{
    const Plexa__TaskRun *run = q->env->task_run;
    r->is_task = 1;
    r->rep.method = "task";
    r->task.has_task_id = 1;
    r->task.task_id = run->task_id;
    r->task.has_started = 1;
    r->task.started = plx_unix_now();
    int status = PLEXA__TASK_STATUS__TASK_FAILED;
    Plexa__TaskSpec *spec = run->has_spec
                                ? plexa__task_spec__unpack(NULL, run->spec.len, run->spec.data)
                                : NULL;
    if (!spec)
        reply_error(r, "ProtocolError", "task_run without a valid task spec", "");
    else
        status = task_run_py(e, q, spec, r);
    if (spec)
        plexa__task_spec__free_unpacked(spec, NULL);
    r->task.has_status = 1;
    r->task.status = (Plexa__TaskStatus)status;
    r->task.has_completed = 1;
    r->task.completed = plx_unix_now();
}

int plx_engine_py_serve(plx_engine_t *e, const plx_engine_req_t *q)
{
    const char *name = plx_envelope_body_name(q->env);
    int stop = q->env->body_case == PLEXA__ENVELOPE__BODY_SHUTDOWN;
    if (stop) {
        /* 0.10's kill: answered as "kill", then the engine ends. The reply
         * is queued before the caller stops the I/O thread, which writes
         * out queued replies before it closes (plx_engine_io_stop). */
        PLX_INFO("shutdown requested by the controller");
        name = "kill";
        /* The close that follows is not a loss to recover from. */
        pthread_mutex_lock(&e->mu);
        e->shutting_down = 1;
        pthread_mutex_unlock(&e->mu);
    }
    reply_t r;
    if (reply_init(&r, e, name) != PLX_OK) {
        PLX_ERROR("out of memory serving a %s request", name);
        return stop;
    }
    PLX_DEBUG("serving %s (id %llu)", name, (unsigned long long)q->env->id);
    switch (q->env->body_case) {
    case PLEXA__ENVELOPE__BODY_EXECUTE:
        plx_engine_output_begin(e, q->env->id, 0, q->session);
        serve_execute(e, q, &r);
        break;
    case PLEXA__ENVELOPE__BODY_PUSH:
        serve_push(e, q, &r);
        break;
    case PLEXA__ENVELOPE__BODY_PULL:
        serve_pull(e, q, &r);
        break;
    case PLEXA__ENVELOPE__BODY_CALL:
        plx_engine_output_begin(e, q->env->id, 0, q->session);
        serve_call(e, q, &r);
        break;
    case PLEXA__ENVELOPE__BODY_TASK_RUN:
        plx_engine_output_begin(e, q->env->id, q->env->task_run->task_id, q->session);
        serve_task(e, q, &r);
        break;
    case PLEXA__ENVELOPE__BODY_SHUTDOWN:
        break;
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "unsupported request %s", name);
        PLX_WARN("%s", msg);
        reply_error(&r, "ProtocolError", msg, "");
        break;
    }
    }
    plx_engine_output_end(e);   /* the live output's rest goes before the reply */
    reply_post(e, q, &r);
    reply_clear(&r);
    return stop;
}
