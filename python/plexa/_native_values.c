/*
 * Values both ways, for plexa._native; see _native_int.h.
 *
 * Sending: plexa._serialize.encode turns an object into a descriptor and
 * core/pyvalue turns the descriptor into a Value whose payloads (array
 * data, bytes, pickle-5 buffers) are exports of the objects' own memory;
 * libplexa writes them with writev, so the client copies nothing.
 *
 * Receiving: payloads were read by libplexa straight into the reply's
 * buffers; core/pyvalue wraps them in RecvBuffer objects (each holding a
 * reference to its buffer) and plexa._serialize.decode builds arrays on
 * them, so a pulled array is a view of the received memory and keeps it
 * alive after the request is gone.
 */
#include "_native_int.h"

#include <stdlib.h>
#include <string.h>

PyObject *nv_str(const char *s)
{
    s = s ? s : "";
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* ---- encoding --------------------------------------------------------------- */

void nv_values_clear(nv_values_t *vals)
{
    for (size_t i = 0; i < vals->n; i++)
        plx_pyvalue_clear(&vals->v[i]);
    PyMem_Free(vals->v);
    PyMem_Free(vals->p);
    /* Drops our references to the exported buffers; a message still being
     * written holds its own. */
    plx_msg_destroy(&vals->bufs);
    memset(vals, 0, sizeof *vals);
}

/* Raise for a core/pyvalue failure while encoding item i. */
static int encode_failed(native_state *st, const plx_err_t *err, Py_ssize_t i)
{
    if (err->code == PLX_ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    PyErr_Format(st->serialization_error, "cannot serialize item %zd: %s", i, err->msg);
    return -1;
}

static int encode_one(native_state *st, PyObject *obj, nv_values_t *out, Py_ssize_t i)
{
    PyObject *desc = PyObject_CallOneArg(st->encode, obj);
    if (!desc)
        return -1;   /* what pickling raised, unchanged */
    plx_err_t err = {0};
    plexa__value__init(&out->v[i]);
    out->n = (size_t)i + 1;   /* from here on, clear frees it */
    int rc = plx_pyvalue_from_desc(desc, &out->v[i], out->bufs, &err);
    Py_DECREF(desc);
    if (rc != PLX_OK)
        return encode_failed(st, &err, i);
    out->p[i] = &out->v[i];
    return 0;
}

int nv_values_encode(native_state *st, PyObject *objs, nv_values_t *out)
{
    memset(out, 0, sizeof *out);
    PyObject *seq = PySequence_Fast(objs, "values must be a sequence");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    out->bufs = plx_msg_new(0);
    out->v = PyMem_Calloc(n ? (size_t)n : 1, sizeof *out->v);
    out->p = PyMem_Calloc(n ? (size_t)n : 1, sizeof *out->p);
    int rc = 0;
    if (!out->bufs || !out->v || !out->p) {
        PyErr_NoMemory();
        rc = -1;
    }
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
        rc = encode_one(st, PySequence_Fast_GET_ITEM(seq, i), out, i);
    Py_DECREF(seq);
    return rc;
}

/* ---- decoding ------------------------------------------------------------- */

/* The formatted traceback of exception value, "" if it cannot be had. */
static PyObject *format_exception(PyObject *value)
{
    PyObject *text = NULL;
    PyObject *mod = value ? PyImport_ImportModule("traceback") : NULL;
    PyObject *lines = mod ? PyObject_CallMethod(mod, "format_exception", "O", value) : NULL;
    PyObject *empty = lines ? PyUnicode_FromString("") : NULL;
    if (empty)
        text = PyUnicode_Join(empty, lines);
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(mod);
    PyErr_Clear();
    return text ? text : PyUnicode_FromString("");
}

PyObject *nv_local_error(const char *where)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    const char *name = type ? ((PyTypeObject *)type)->tp_name : "SerializationError";
    const char *dot = strrchr(name, '.');
    PyObject *evalue = value ? PyObject_Str(value) : NULL;
    PyErr_Clear();
    PyObject *text = format_exception(value);
    PyObject *tbtext = text ? PyUnicode_FromFormat("%U(raised on the client, %s)\n", text, where)
                            : NULL;
    PyObject *err = Py_BuildValue("(sNN)", dot ? dot + 1 : name,
                                  evalue ? evalue : nv_str("?"), tbtext);
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return err;
}

/* nv_local_error for what engine_id returned from method. */
static PyObject *local_error(int32_t engine_id, const char *method)
{
    char where[160];
    snprintf(where, sizeof where, "decoding what engine %d returned from %s", (int)engine_id,
             method);
    return nv_local_error(where);
}

/* A protocol fault in the reply, as an engine's error. */
static PyObject *reply_fault(const char *msg)
{
    return Py_BuildValue("(sss)", "ProtocolError", msg, msg);
}

/* Decode the values of one engine's reply into a list. On a decoding
 * failure *error becomes that engine's error and the list is empty.
 * NULL only for failures that are not the data's (e.g. no memory). */
static PyObject *decode_values(native_state *st, const plx_msg_t *msg,
                               const Plexa__EngineReply *er, PyObject **error)
{
    uint32_t base = er->has_buf_base ? er->buf_base : 0;
    PyObject *list = PyList_New(0);
    if (!list || er->n_values == 0)
        return list;
    if (base > msg->nbufs) {
        char why[160];
        snprintf(why, sizeof why, "reply of engine %d starts at buffer %u of %u",
                 (int)er->engine_id, (unsigned)base, (unsigned)msg->nbufs);
        Py_XSETREF(*error, reply_fault(why));
        if (!*error)
            Py_CLEAR(list);
        return list;
    }
    const char *method = er->method ? er->method : "request";
    for (size_t i = 0; i < er->n_values; i++) {
        plx_err_t err = {0};
        PyObject *desc = plx_pyvalue_to_desc(er->values[i], msg->bufs + base,
                                             msg->nbufs - base, &err);
        int malformed = desc == NULL;   /* core/pyvalue refused it: err says why */
        PyObject *obj = desc ? PyObject_CallOneArg(st->decode, desc) : NULL;
        Py_XDECREF(desc);
        if (obj && PyList_Append(list, obj) == 0) {
            Py_DECREF(obj);
            continue;
        }
        Py_XDECREF(obj);
        PyObject *e = malformed ? reply_fault(err.msg) : local_error(er->engine_id, method);
        Py_XSETREF(*error, e);
        if (!e || PyList_SetSlice(list, 0, PyList_GET_SIZE(list), NULL) < 0)
            Py_CLEAR(list);
        return list;
    }
    return list;
}

static PyObject *execute_tuple(const Plexa__ExecuteResult *x)
{
    if (!x)
        Py_RETURN_NONE;
    return Py_BuildValue("(iNNN)", x->has_number ? (int)x->number : 0, nv_str(x->input),
                         nv_str(x->stdout), nv_str(x->stderr));
}

static PyObject *error_tuple(const Plexa__RemoteError *e)
{
    if (!e)
        Py_RETURN_NONE;
    /* An exception always has a type name, even from a sloppy peer. */
    const char *ename = e->ename && *e->ename ? e->ename : "RemoteError";
    return Py_BuildValue("(NNN)", nv_str(ename), nv_str(e->evalue), nv_str(e->traceback));
}

static PyObject *engine_tuple(native_state *st, const plx_msg_t *msg, const Plexa__EngineReply *er)
{
    PyObject *error = error_tuple(er->error);
    if (!error)
        return NULL;
    PyObject *values = decode_values(st, msg, er, &error);
    if (!values || !error) {
        Py_XDECREF(values);
        Py_XDECREF(error);
        return NULL;
    }
    PyObject *method = er->method ? nv_str(er->method) : Py_NewRef(Py_None);
    return Py_BuildValue("(iNNNN)", er->has_engine_id ? (int)er->engine_id : -1, method,
                         execute_tuple(er->execute), values, error);
}

PyObject *nv_list_of(native_state *st, const plx_msg_t *msg, void *const *items, size_t n,
                     nv_item_fn convert)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *t = convert(st, msg, items[i]);
        if (!t)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

static PyObject *engine_item(native_state *st, const plx_msg_t *msg, const void *item)
{
    return engine_tuple(st, msg, item);
}

PyObject *nv_multi_reply(native_state *st, const plx_msg_t *msg, const Plexa__MultiReply *mr)
{
    return nv_list_of(st, msg, (void *const *)mr->replies, mr->n_replies, engine_item);
}

static PyObject *str_list(char **items, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *s = nv_str(items[i]);
        if (!s)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    return list;
}

PyObject *nv_queue_status(const Plexa__QueueStatusReply *qr)
{
    PyObject *list = PyList_New((Py_ssize_t)qr->n_engines);
    for (size_t i = 0; list && i < qr->n_engines; i++) {
        const Plexa__EngineQueue *q = qr->engines[i];
        PyObject *t = Py_BuildValue("(iNN)", q->has_engine_id ? (int)q->engine_id : -1,
                                    str_list(q->pending, q->n_pending),
                                    str_list(q->queue, q->n_queue));
        if (!t)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}
