/*
 * The replies a client reads, decoded into the plain structs of plx_rq.h:
 * every reply body is read here and nowhere else.
 *
 *   checking     reply_of: a completed request's reply, of the body asked for
 *   id lists     plx_request_ids
 *   multi        MultiReply -> plx_multi_reply_t (values, errors, execute)
 *   queues       QueueStatusReply, TaskQueueStatusReply
 *   tasks        TaskIds (ids, acknowledgements), TaskResults
 */
#include <stdlib.h>
#include <string.h>

#include "plx_request_priv.h"
#include "plx_rqb.h"
#include "plx_value_int.h"

/* ---- checking ------------------------------------------------------------------- */

static int body_check(const Plexa__Envelope *env, Plexa__Envelope__BodyCase body,
                      uint64_t id, const char *what, plx_err_t *err)
{
    if (env->body_case == body)
        return PLX_OK;
    return plx_err_set(err, PLX_EPROTO, "controller answered request %llu with %s, not %s",
                       (unsigned long long)id,
                       env->body_case ? "another message" : "an empty message", what);
}

/* The reply of a completed request, checked to carry body. */
static int reply_of(plx_request_t *req, Plexa__Envelope__BodyCase body, const char *what,
                    const plx_msg_t **msg, const Plexa__Envelope **env, plx_err_t *err)
{
    int rc = plx_request_reply(req, msg, env, err);
    return rc == PLX_OK ? body_check(*env, body, plx_request_id(req), what, err) : rc;
}

/* strdup treating an absent proto2 string as "". */
static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static void free_strs(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

/* The error strings of a RemoteError (an exception always has a type
 * name, even from a sloppy peer). PLX_ENOMEM on failure. */
static int error_fill(const Plexa__RemoteError *e, char **ename, char **evalue, char **tb)
{
    if (!e)
        return PLX_OK;
    *ename = strdup(e->ename && *e->ename ? e->ename : "RemoteError");
    *evalue = dup_or_empty(e->evalue);
    *tb = dup_or_empty(e->traceback);
    return *ename && *evalue && *tb ? PLX_OK : PLX_ENOMEM;
}

/*
 * values[0..n) of a reply whose buffers start at base. A malformed value
 * is not the whole reply's failure: *fault gets why and no value is kept.
 * PLX_ENOMEM only for memory.
 */
static int values_fill(Plexa__Value *const *wv, size_t n, uint32_t base, const plx_msg_t *m,
                       plx_value_t ***values, size_t *nvalues, char **fault)
{
    plx_err_t e = {0};
    if (n == 0)
        return PLX_OK;
    if (base > m->nbufs) {
        plx_err_set(&e, PLX_EPROTO, "reply names buffer %u of %u", (unsigned)base,
                    (unsigned)m->nbufs);
        return (*fault = strdup(e.msg)) ? PLX_OK : PLX_ENOMEM;
    }
    plx_value_t **v = calloc(n, sizeof *v);
    if (!v)
        return PLX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((v[i] = plx_value_from_wire(wv[i], m->bufs + base, m->nbufs - base, &e)))
            continue;
        for (size_t j = 0; j < i; j++)
            plx_value_destroy(&v[j]);
        free(v);
        if (e.code == PLX_ENOMEM)
            return PLX_ENOMEM;
        return (*fault = strdup(e.msg)) ? PLX_OK : PLX_ENOMEM;
    }
    *values = v;
    *nvalues = n;
    return PLX_OK;
}

static void values_free(plx_value_t **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        plx_value_destroy(&v[i]);
    free(v);
}

/* ---- id lists --------------------------------------------------------------------- */

int plx_request_ids(plx_request_t *req, int32_t **ids, size_t *n, plx_err_t *err)
{
    const Plexa__Envelope *env;
    *ids = NULL;
    *n = 0;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_ID_LIST, "an id list", NULL, &env, err);
    if (rc != PLX_OK)
        return rc;
    size_t cnt = env->id_list->n_ids;
    if (cnt == 0)
        return PLX_OK;
    *ids = malloc(cnt * sizeof **ids);
    if (!*ids)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for %zu engine ids", cnt);
    memcpy(*ids, env->id_list->ids, cnt * sizeof **ids);
    *n = cnt;
    return PLX_OK;
}

/* ---- multi-engine replies ------------------------------------------------------------ */

static void engine_reply_free(plx_engine_reply_t *r)
{
    free(r->method);
    free(r->input);
    free(r->stdout_text);
    free(r->stderr_text);
    values_free(r->values, r->nvalues);
    free(r->ename);
    free(r->evalue);
    free(r->traceback);
    free(r->fault);
}

void plx_multi_reply_destroy(plx_multi_reply_t **mp)
{
    plx_multi_reply_t *m = mp ? *mp : NULL;
    if (!m)
        return;
    *mp = NULL;
    for (size_t i = 0; i < m->n; i++)
        engine_reply_free(&m->r[i]);
    free(m->r);
    free(m);
}

static int engine_reply_fill(plx_engine_reply_t *r, const Plexa__EngineReply *er,
                             const plx_msg_t *m)
{
    const Plexa__ExecuteResult *x = er->execute;
    r->engine_id = er->has_engine_id ? er->engine_id : -1;
    if (er->method && !(r->method = strdup(er->method)))
        return PLX_ENOMEM;
    r->has_execute = x != NULL;
    r->number = x && x->has_number ? x->number : 0;
    r->input = dup_or_empty(x ? x->input : NULL);
    r->stdout_text = dup_or_empty(x ? x->stdout : NULL);
    r->stderr_text = dup_or_empty(x ? x->stderr : NULL);
    if (!r->input || !r->stdout_text || !r->stderr_text ||
        error_fill(er->error, &r->ename, &r->evalue, &r->traceback) != PLX_OK)
        return PLX_ENOMEM;
    return values_fill(er->values, er->n_values, er->has_buf_base ? er->buf_base : 0, m,
                       &r->values, &r->nvalues, &r->fault);
}

int plx_decode_multi(const plx_msg_t *m, const Plexa__Envelope *env, plx_multi_reply_t **out,
                     plx_err_t *err)
{
    const Plexa__MultiReply *mr = env->multi_reply;
    plx_multi_reply_t *res = calloc(1, sizeof *res);
    if (res && mr->n_replies)
        res->r = calloc(mr->n_replies, sizeof *res->r);
    if (!res || (mr->n_replies && !res->r)) {
        free(res);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for %zu results", mr->n_replies);
    }
    for (size_t i = 0; i < mr->n_replies; i++) {
        res->n++;
        if (engine_reply_fill(&res->r[i], mr->replies[i], m) != PLX_OK) {
            plx_multi_reply_destroy(&res);
            return plx_err_set(err, PLX_ENOMEM, "out of memory decoding a reply");
        }
    }
    *out = res;
    return PLX_OK;
}

int plx_reply_multi(plx_request_t *req, plx_multi_reply_t **out, plx_err_t *err)
{
    const plx_msg_t *m;
    const Plexa__Envelope *env;
    *out = NULL;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_MULTI_REPLY, "a multi-engine reply", &m, &env,
                      err);
    return rc == PLX_OK ? plx_decode_multi(m, env, out, err) : rc;
}

/* ---- queues ------------------------------------------------------------------------- */

void plx_queue_status_destroy(plx_queue_status_t **qp)
{
    plx_queue_status_t *q = qp ? *qp : NULL;
    if (!q)
        return;
    *qp = NULL;
    for (size_t i = 0; i < q->n; i++) {
        free_strs(q->e[i].pending, q->e[i].npending);
        free_strs(q->e[i].queue, q->e[i].nqueue);
    }
    free(q->e);
    free(q);
}

static int strs_copy(char *const *in, size_t n, char ***out, size_t *nout)
{
    char **s = calloc(n ? n : 1, sizeof *s);
    if (!s)
        return PLX_ENOMEM;
    *out = s;
    for (size_t i = 0; i < n; i++) {
        if (!(s[i] = dup_or_empty(in[i])))
            return PLX_ENOMEM;
        (*nout)++;
    }
    return PLX_OK;
}

int plx_decode_queue_status(const Plexa__Envelope *env, plx_queue_status_t **out,
                            plx_err_t *err)
{
    const Plexa__QueueStatusReply *qr = env->queue_status_reply;
    plx_queue_status_t *q = calloc(1, sizeof *q);
    if (q)
        q->e = calloc(qr->n_engines ? qr->n_engines : 1, sizeof *q->e);
    int rc = q && q->e ? PLX_OK : PLX_ENOMEM;
    for (size_t i = 0; rc == PLX_OK && i < qr->n_engines; i++) {
        const Plexa__EngineQueue *eq = qr->engines[i];
        plx_engine_queue_t *e = &q->e[q->n++];
        e->engine_id = eq->has_engine_id ? eq->engine_id : -1;
        rc = strs_copy(eq->pending, eq->n_pending, &e->pending, &e->npending);
        if (rc == PLX_OK)
            rc = strs_copy(eq->queue, eq->n_queue, &e->queue, &e->nqueue);
    }
    if (rc != PLX_OK) {
        if (q && !q->e)
            free(q);
        else
            plx_queue_status_destroy(&q);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a queue status");
    }
    *out = q;
    return PLX_OK;
}

int plx_reply_queue_status(plx_request_t *req, plx_queue_status_t **out, plx_err_t *err)
{
    const Plexa__Envelope *env;
    *out = NULL;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_QUEUE_STATUS_REPLY, "a queue status", NULL,
                      &env, err);
    return rc == PLX_OK ? plx_decode_queue_status(env, out, err) : rc;
}

void plx_task_queue_destroy(plx_task_queue_t **qp)
{
    plx_task_queue_t *q = qp ? *qp : NULL;
    if (!q)
        return;
    *qp = NULL;
    for (int s = 0; s < PLX_TQ_NSTATES; s++)
        free(q->ids[s]);
    free(q);
}

int plx_decode_task_queue(const Plexa__Envelope *env, plx_task_queue_t **out, plx_err_t *err)
{
    const Plexa__TaskQueueStatusReply *r = env->task_queue_status_reply;
    const uint64_t counts[PLX_TQ_NSTATES] = { r->pending, r->scheduled, r->succeeded, r->failed };
    const uint64_t *ids[PLX_TQ_NSTATES] = { r->pending_ids, r->scheduled_ids, r->succeeded_ids,
                                            r->failed_ids };
    const size_t nids[PLX_TQ_NSTATES] = { r->n_pending_ids, r->n_scheduled_ids,
                                          r->n_succeeded_ids, r->n_failed_ids };
    plx_task_queue_t *q = calloc(1, sizeof *q);
    for (int s = 0; q && s < PLX_TQ_NSTATES; s++) {
        q->count[s] = counts[s];
        if (!(q->ids[s] = malloc((nids[s] ? nids[s] : 1) * sizeof *ids[s]))) {
            plx_task_queue_destroy(&q);
            break;
        }
        if (nids[s])
            memcpy(q->ids[s], ids[s], nids[s] * sizeof *ids[s]);
        q->nids[s] = nids[s];
    }
    if (!q)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a task queue status");
    *out = q;
    return PLX_OK;
}

int plx_reply_task_queue_status(plx_request_t *req, plx_task_queue_t **out, plx_err_t *err)
{
    const Plexa__Envelope *env;
    *out = NULL;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS_REPLY, "a task queue status",
                      NULL, &env, err);
    return rc == PLX_OK ? plx_decode_task_queue(env, out, err) : rc;
}

/* ---- tasks ------------------------------------------------------------------------------ */

int plx_reply_task_ids(plx_request_t *req, uint64_t *first, uint32_t *count, plx_err_t *err)
{
    const Plexa__Envelope *env;
    *first = 0;
    *count = 0;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_TASK_IDS, "task ids", NULL, &env, err);
    if (rc != PLX_OK)
        return rc;
    *first = env->task_ids->has_first ? env->task_ids->first : 0;
    *count = env->task_ids->has_count ? env->task_ids->count : 0;
    return PLX_OK;
}

int plx_reply_ack(plx_request_t *req, plx_err_t *err)
{
    const Plexa__Envelope *env;
    return reply_of(req, PLEXA__ENVELOPE__BODY_TASK_IDS, "an acknowledgement", NULL, &env, err);
}

static void task_reply_free(plx_task_reply_t *r)
{
    values_free(r->values, r->nvalues);
    free(r->ename);
    free(r->evalue);
    free(r->traceback);
    free(r->fault);
    free(r->stdout_text);
    free(r->stderr_text);
}

void plx_task_replies_destroy(plx_task_replies_t **tp)
{
    plx_task_replies_t *t = tp ? *tp : NULL;
    if (!t)
        return;
    *tp = NULL;
    for (size_t i = 0; i < t->n; i++)
        task_reply_free(&t->r[i]);
    free(t->r);
    free(t);
}

static int task_reply_fill(plx_task_reply_t *r, const Plexa__TaskResult *tr, const plx_msg_t *m)
{
    r->task_id = tr->task_id;
    r->has_status = tr->has_status;
    r->status = (int)tr->status;
    r->has_engine_id = tr->has_engine_id;
    r->engine_id = tr->engine_id;
    r->has_submitted = tr->has_submitted;
    r->submitted = tr->submitted;
    r->has_started = tr->has_started;
    r->started = tr->started;
    r->has_completed = tr->has_completed;
    r->completed = tr->completed;
    r->stdout_text = strdup(tr->stdout ? tr->stdout : "");
    r->stderr_text = strdup(tr->stderr ? tr->stderr : "");
    if (!r->stdout_text || !r->stderr_text ||
        error_fill(tr->error, &r->ename, &r->evalue, &r->traceback) != PLX_OK)
        return PLX_ENOMEM;
    return values_fill(tr->values, tr->n_values, tr->has_buf_base ? tr->buf_base : 0, m,
                       &r->values, &r->nvalues, &r->fault);
}

int plx_decode_task_results(const plx_msg_t *m, const Plexa__Envelope *env,
                            plx_task_replies_t **out, plx_err_t *err)
{
    const Plexa__TaskResults *trs = env->task_results;
    plx_task_replies_t *t = calloc(1, sizeof *t);
    if (t && trs->n_results)
        t->r = calloc(trs->n_results, sizeof *t->r);
    if (!t || (trs->n_results && !t->r)) {
        free(t);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for %zu task results",
                           trs->n_results);
    }
    for (size_t i = 0; i < trs->n_results; i++) {
        t->n++;
        if (task_reply_fill(&t->r[i], trs->results[i], m) != PLX_OK) {
            plx_task_replies_destroy(&t);
            return plx_err_set(err, PLX_ENOMEM, "out of memory decoding task results");
        }
    }
    *out = t;
    return PLX_OK;
}

int plx_reply_task_results(plx_request_t *req, plx_task_replies_t **out, plx_err_t *err)
{
    const plx_msg_t *m;
    const Plexa__Envelope *env;
    *out = NULL;
    int rc = reply_of(req, PLEXA__ENVELOPE__BODY_TASK_RESULTS, "task results", &m, &env, err);
    return rc == PLX_OK ? plx_decode_task_results(m, env, out, err) : rc;
}
