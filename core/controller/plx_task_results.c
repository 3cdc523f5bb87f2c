/*
 * Finished tasks: a task's end (its result stamped, or one the controller
 * makes up), the waiters told, the dependents queued; finished results
 * kept for TaskWait and their retention. See plx_tasks_int.h for the
 * scheduler's other files.
 *
 * Finished results are kept for TaskWait in two lists in completion order
 * — delivered ones and not-yet-delivered ones — and evicted oldest-first,
 * delivered ones before the others, when the count or byte bound is
 * exceeded. An evicted or cleared id answers TASK_EVICTED, never a hang.
 */
#include "plx_tasks_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "plx_time.h"

/* ---- results and waiters ------------------------------------------------ */

static void waiter_unlink(waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (w->peer)
        w->peer->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void task_forget_waiter(task_t *t, waiter_t *w)
{
    for (size_t i = 0; i < t->nwaiters; i++)
        if (t->waiters[i] == w) {
            t->waiters[i] = t->waiters[--t->nwaiters];
            return;
        }
}

static void synth_result(Plexa__TaskResult *r, Plexa__RemoteError *e, char *text,
                         uint64_t id, int status, const char *ename)
{
    plexa__task_result__init(r);
    r->has_task_id = 1;
    r->task_id = id;
    r->has_status = 1;
    r->status = (Plexa__TaskStatus)status;
    if (ename) {
        plexa__remote_error__init(e);
        e->ename = (char *)ename;
        e->evalue = text;
        e->traceback = text;
        r->error = e;
    }
}

/* Send the results of w's tasks (finished, pending, or gone). */
void plx_task_waiter_reply(plx_controller_t *c, waiter_t *w)
{
    sched_t *s = c->sched;
    size_t n = w->n;
    Plexa__TaskResult **rs = calloc(n ? n : 1, sizeof *rs);
    Plexa__TaskResult *tmp = calloc(n ? n : 1, sizeof *tmp);
    Plexa__RemoteError *tmperr = calloc(n ? n : 1, sizeof *tmperr);
    char (*text)[160] = calloc(n ? n : 1, sizeof *text);
    plx_msg_t *m = NULL;
    if (rs && tmp && tmperr && text) {
        uint32_t base = 0;
        for (size_t i = 0; i < n; i++) {
            task_t *t = task_lookup(s, w->ids[i]);
            if (t && t->state == T_DONE) {
                rs[i] = t->result;
                rs[i]->has_buf_base = 1;
                rs[i]->buf_base = base;
                base += t->res_msg ? t->res_msg->nbufs : 0;
                if (!t->delivered) {
                    t->delivered = 1;
                    tl_remove(t);
                    tl_push(&s->done_seen, t, 0);
                }
                continue;
            }
            int st = t ? PLEXA__TASK_STATUS__TASK_PENDING
                       : (w->ids[i] && w->ids[i] < s->next_id ? PLEXA__TASK_STATUS__TASK_EVICTED
                                                             : PLEXA__TASK_STATUS__TASK_UNKNOWN);
            const char *ename = t ? NULL : (st == PLEXA__TASK_STATUS__TASK_EVICTED ? "ResultEvicted"
                                                                                  : "IndexError");
            snprintf(text[i], sizeof text[i],
                     st == PLEXA__TASK_STATUS__TASK_EVICTED
                         ? "the result of task %llu was evicted or cleared from the controller"
                         : "no task with id %llu",
                     (unsigned long long)w->ids[i]);
            synth_result(&tmp[i], &tmperr[i], text[i], w->ids[i], st, ename);
            rs[i] = &tmp[i];
        }
        Plexa__TaskResults trs = PLEXA__TASK_RESULTS__INIT;
        trs.n_results = n;
        trs.results = rs;
        m = ctl_pack(c, w->reply_to, PLEXA__ENVELOPE__BODY_TASK_RESULTS, &trs);
        for (size_t i = 0; m && i < n; i++) {
            task_t *t = task_lookup(s, w->ids[i]);
            if (t && t->state == T_DONE && t->res_msg)
                for (uint32_t b = 0; b < t->res_msg->nbufs; b++)
                    if (plx_msg_add_buf(m, t->res_msg->bufs[b]) != PLX_OK)
                        plx_msg_destroy(&m);
        }
    }
    if (m)
        plx_conn_send(w->peer->conn, m);
    else
        ctl_send_error(w->peer, w->reply_to, PLX_ENOMEM, "out of memory sending task results");
    free(rs);
    free(tmp);
    free(tmperr);
    free(text);
}

static void waiter_free(waiter_t *w)
{
    waiter_unlink(w);
    free(w->ids);
    free(w);
}

void plx_task_evict_one(sched_t *s, task_t *t)
{
    tl_remove(t);
    plx_idmap_del(s->tasks, t->id);
    s->result_bytes -= t->bytes;
    if (t->status == PLEXA__TASK_STATUS__TASK_OK)
        s->succeeded--;
    else
        s->failed--;
    task_free(t);
}

/* Keep finished results within the bounds: delivered ones go first. */
static void enforce_retention(plx_controller_t *c)
{
    sched_t *s = c->sched;
    const plx_controller_opts_t *o = &c->opts;
    while (s->done_seen.n + s->done_new.n > o->results_max || s->result_bytes > o->results_max_bytes) {
        task_t *t = s->done_seen.head;
        if (!t) {
            t = s->done_new.head;
            if (!t || t->nwaiters)
                return;  /* someone waits for it: keep it past the bound */
        }
        plx_task_evict_one(s, t);
    }
}

/* ---- a task's end ------------------------------------------------------- */

/* Take t out of whatever it is in (queue, engine, split, waiting). */
static void task_leave(plx_controller_t *c, task_t *t)
{
    sched_t *s = c->sched;
    switch (t->state) {
    case T_QUEUED:
        tl_remove(t);
        if (t->parent)
            s->pieces_queued--;
        break;
    case T_RUNNING:
        sched_unassign(c, t);
        break;
    case T_WAITING:
        s->waiting--;
        break;
    case T_SPLIT:
        tl_remove(t);
        break;
    case T_DONE:
        break;
    }
}

static void task_stamp(task_t *t)
{
    t->status = t->result->has_status ? (int)t->result->status : PLEXA__TASK_STATUS__TASK_FAILED;
    t->result->has_task_id = 1;
    t->result->task_id = t->id;
    t->result->has_submitted = 1;
    t->result->submitted = t->submitted;
    t->result->has_completed = 1;
    t->result->completed = plx_unix_now();
    if (t->started > 0 && !t->result->has_started) {
        t->result->has_started = 1;
        t->result->started = t->started;
    }
}

void task_finish(plx_controller_t *c, task_t *t)
{
    sched_t *s = c->sched;
    task_leave(c, t);
    t->state = T_DONE;
    task_stamp(t);
    if (t->parent) {
        pieces_done(c, t);   /* the parent finishes once all its pieces have */
        return;
    }
    plx_task_drop_payload(t);
    t->bytes = sizeof *t + (t->res_msg ? plx_msg_wire_size(t->res_msg) : 0);
    s->result_bytes += t->bytes;
    if (t->status == PLEXA__TASK_STATUS__TASK_OK)
        s->succeeded++;
    else
        s->failed++;
    s->finished_total++;
    tl_push(&s->done_new, t, 0);

    for (size_t i = 0; i < t->ndependents; i++) {
        task_t *d = t->dependents[i];
        if (d->state == T_WAITING && --d->deps_left == 0) {
            s->waiting--;
            task_enqueue(c, d, 0);
        }
    }
    t->ndependents = 0;
    while (t->nwaiters) {
        waiter_t *w = t->waiters[--t->nwaiters];
        if (--w->left == 0) {
            plx_task_waiter_reply(c, w);
            waiter_free(w);
        }
    }
    enforce_retention(c);
}

void task_fail(plx_controller_t *c, task_t *t, int status, const char *ename,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->synth_text, sizeof t->synth_text, fmt, ap);
    va_end(ap);
    task_drop_result(t);
    synth_result(&t->synth, &t->synth_err, t->synth_text, t->id, status, ename);
    if (t->eng) {
        t->synth.has_engine_id = 1;
        t->synth.engine_id = t->eng->id;
    }
    t->result = &t->synth;
    task_finish(c, t);
}

void task_aborted(plx_controller_t *c, task_t *t, const char *how)
{
    unsigned long long id = (unsigned long long)(t->parent ? t->parent->id : t->id);
    if (t->revoked || (t->parent && t->parent->revoked))
        task_fail(c, t, PLEXA__TASK_STATUS__TASK_ABORTED, "TaskAborted",
                  "task %llu was cancelled%s: the task capability it was submitted with was "
                  "revoked", id, how);
    else
        task_fail(c, t, PLEXA__TASK_STATUS__TASK_ABORTED, "TaskAborted", "task %llu was "
                  "aborted%s", id, how);
}

/* ---- live output ---------------------------------------------------------- */

void sched_task_output(plx_controller_t *c, engine_t *e, const Plexa__Envelope *env)
{
    task_t *t = task_lookup(c->sched, env->output->task_id);
    if (!t || t->eng != e || t->state != T_RUNNING)
        return;   /* not this engine's to report (finished, stolen, or made up) */
    task_t *shown = t->parent ? t->parent : t;   /* the id its client knows */
    ctl_send_output(shown->owner ? shown->owner->peer : NULL, 0, env->output, e->id, shown->id);
}

/* ---- a client that goes ------------------------------------------------- */

void sched_client_gone(plx_controller_t *c, peer_t *p)
{
    sched_t *s = c->sched;
    if (p->owner) {
        p->owner->peer = NULL;   /* its tasks run on; their output goes nowhere */
        task_owner_unref(&p->owner);
    }
    while (p->waiters) {
        waiter_t *w = p->waiters;
        for (size_t i = 0; i < w->n; i++) {
            task_t *t = task_lookup(s, w->ids[i]);
            if (t)
                task_forget_waiter(t, w);
        }
        w->peer = p;
        waiter_free(w);
    }
}
