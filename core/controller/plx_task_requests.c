/*
 * Client requests on a task connection: TaskSubmit (ids, dependencies,
 * quiet submissions), TaskReserve, TaskWait, TaskAbort, TaskClear and
 * TaskQueueStatus, and the cancelling of the tasks a revoked task
 * capability submitted. Results are plx_task_results.c; see
 * plx_tasks_int.h for the scheduler's other files.
 */
#include "plx_tasks_int.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_time.h"

/* ---- submitting --------------------------------------------------------- */

static uint64_t bufs_bytes(plx_buf_t **bufs, uint32_t n)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += bufs[i]->len;
    return sum;
}

static task_t *task_from_spec(Plexa__TaskSpec *spec, const plx_msg_t *m)
{
    task_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    uint32_t base = spec->has_buf_base ? spec->buf_base : 0;
    uint32_t n = spec->has_buf_count ? spec->buf_count : 0;
    t->bufs = calloc(n ? n : 1, sizeof *t->bufs);
    if (!t->bufs) {
        free(t);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++)
        t->bufs[i] = plx_buf_ref(m->bufs[base + i]);
    t->nbufs = n;
    t->retries_left = spec->has_retries ? spec->retries : 0;
    t->submitted = plx_unix_now();
    t->payload = bufs_bytes(t->bufs, n);
    sched_describe(t, spec);
    /* The engine sees buffers numbered from 0; the recovery task travels
     * separately (its indices are relative to this task's buffers). */
    Plexa__TaskSpec *recovery = spec->recovery;
    spec->recovery = NULL;
    spec->has_buf_base = 1;
    spec->buf_base = 0;
    t->spec.len = plexa__task_spec__get_packed_size(spec);
    t->spec.data = malloc(t->spec.len ? t->spec.len : 1);
    if (recovery) {
        t->recovery.len = plexa__task_spec__get_packed_size(recovery);
        t->recovery.data = malloc(t->recovery.len ? t->recovery.len : 1);
    }
    if (!t->spec.data || (recovery && !t->recovery.data)) {
        spec->recovery = recovery;
        task_free(t);
        return NULL;
    }
    plexa__task_spec__pack(spec, t->spec.data);
    if (recovery)
        plexa__task_spec__pack(recovery, t->recovery.data);
    spec->recovery = recovery;
    return t;
}

static int check_bufs(const Plexa__TaskSubmit *ts, uint32_t nbufs)
{
    for (size_t i = 0; i < ts->n_tasks; i++) {
        const Plexa__TaskSpec *sp = ts->tasks[i];
        uint64_t end = (uint64_t)(sp->has_buf_base ? sp->buf_base : 0) +
                       (sp->has_buf_count ? sp->buf_count : 0);
        if (end > nbufs)
            return (int)i;
    }
    return -1;
}

/* Link t behind the unfinished tasks it names in `after`. */
static int task_link_after(plx_controller_t *c, task_t *t, const Plexa__TaskSpec *spec)
{
    sched_t *s = c->sched;
    for (size_t i = 0; i < spec->n_after; i++) {
        uint64_t dep = spec->after[i];
        task_t *d = task_lookup(s, dep);
        if (!d && (dep == 0 || dep >= t->id))
            return -1;  /* unknown, or not earlier than t: could never run */
        if (!d || d->state == T_DONE)
            continue;
        task_t **nd = realloc(d->dependents, (d->ndependents + 1) * sizeof *nd);
        if (!nd)
            return -2;
        d->dependents = nd;
        d->dependents[d->ndependents++] = t;
        t->deps_left++;
    }
    return 0;
}

/* Queue one task under id (its spec's buffers are in m). 0, or -1 on ENOMEM. */
static int submit_one(plx_controller_t *c, uint64_t id, Plexa__TaskSpec *spec, plx_msg_t *m,
                      peer_t *p)
{
    sched_t *s = c->sched;
    task_t *t = task_from_spec(spec, m);
    if (!t || plx_idmap_put(s->tasks, id, t) != PLX_OK) {
        if (t)
            task_free(t);
        return -1;
    }
    t->id = id;
    t->cap_epoch = p->cap_epoch;
    t->owner = task_owner_of(p);   /* NULL on ENOMEM: its output is not forwarded */
    int rc = task_link_after(c, t, spec);
    t->state = T_WAITING;
    s->waiting++;
    if (rc < 0) {
        task_fail(c, t, PLEXA__TASK_STATUS__TASK_FAILED, "ValueError",
                  "task %llu depends on a task that does not exist", (unsigned long long)id);
    } else if (t->deps_left == 0) {
        s->waiting--;
        task_enqueue(c, t, 0);
    }
    return 0;
}

/* A quiet submission nobody will hear an Error for: its ids become failed
 * tasks carrying the reason, so get_task_result reports it. */
static void fail_ids(plx_controller_t *c, uint64_t first, size_t n, const char *ename,
                     const char *why)
{
    sched_t *s = c->sched;
    for (size_t i = 0; i < n; i++) {
        task_t *t = calloc(1, sizeof *t);
        if (!t || plx_idmap_put(s->tasks, first + i, t) != PLX_OK) {
            free(t);
            PLX_ERROR("out of memory recording the failure of task %llu: %s",
                      (unsigned long long)(first + i), why);
            continue;
        }
        t->id = first + i;
        t->state = T_WAITING;
        t->submitted = plx_unix_now();
        s->waiting++;
        task_fail(c, t, PLEXA__TASK_STATUS__TASK_FAILED, ename, "%s", why);
    }
}

/* Ids for a submission: its own reserved block (first_id), or the next. */
static int take_ids(plx_controller_t *c, peer_t *p, const Plexa__TaskSubmit *ts, uint64_t *first)
{
    if (!ts->has_first_id) {
        *first = c->sched->next_id;
        c->sched->next_id += ts->n_tasks;
        return 0;
    }
    if (ts->first_id != p->blk_next || ts->n_tasks > p->blk_end - p->blk_next)
        return -1;
    *first = ts->first_id;
    p->blk_next += ts->n_tasks;
    return 0;
}

static void on_submit(plx_controller_t *c, peer_t *p, plx_msg_t *m, Plexa__Envelope *env)
{
    Plexa__TaskSubmit *ts = env->task_submit;
    int quiet = ts->has_quiet && ts->quiet;
    uint64_t first;
    if (take_ids(c, p, ts, &first) != 0) {
        PLX_WARN("client %s submitted tasks under ids %llu.. outside its reserved block",
                 p->addr, (unsigned long long)ts->first_id);
        ctl_send_error(p, env->id, PLX_EPROTO, "task ids %llu..%llu were not reserved by this "
                       "connection", (unsigned long long)ts->first_id,
                       (unsigned long long)(ts->first_id + ts->n_tasks - 1));
        return;
    }
    int bad = check_bufs(ts, m->nbufs);
    if (bad >= 0) {
        char why[128];
        snprintf(why, sizeof why,
                 "task %d of the submission names buffers the frame does not carry", bad);
        if (quiet)
            fail_ids(c, first, ts->n_tasks, "ValueError", why);
        else
            ctl_send_error(p, env->id, PLX_EPROTO, "%s", why);
        return;
    }
    size_t accepted = 0;
    while (accepted < ts->n_tasks && submit_one(c, first + accepted, ts->tasks[accepted], m,
                                                p) == 0)
        accepted++;
    if (accepted < ts->n_tasks)
        fail_ids(c, first + accepted, ts->n_tasks - accepted, "MemoryError",
                 "out of memory queueing the task");
    if (!quiet) {
        Plexa__TaskIds ids = PLEXA__TASK_IDS__INIT;
        ids.has_first = 1;
        ids.first = first;
        ids.has_count = 1;
        ids.count = (uint32_t)ts->n_tasks;
        ctl_send_body(p, env->id, PLEXA__ENVELOPE__BODY_TASK_IDS, &ids);
    }
    sched_pump(c);
}

/* ---- cancelling on revocation, refusing a submission -------------------- */

typedef struct revoke_scan {
    uint64_t *ids;
    size_t    n, cap;
    unsigned  epoch;
    int       oom;
} revoke_scan_t;

static void collect_revoked(uint64_t id, void *value, void *ud)
{
    revoke_scan_t *r = ud;
    const task_t *t = value;
    if ((id & PIECE_BIT) || t->state == T_DONE || t->cap_epoch >= r->epoch || r->oom)
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        uint64_t *ids = realloc(r->ids, cap * sizeof *ids);
        if (!ids) {
            r->oom = 1;
            return;
        }
        r->ids = ids;
        r->cap = cap;
    }
    r->ids[r->n++] = id;
}

void sched_revoked(plx_controller_t *c, unsigned revocations)
{
    sched_t *s = c->sched;
    revoke_scan_t r = {.epoch = revocations};
    /* Ids first: cancelling evicts results, which changes the map. */
    plx_idmap_foreach(s->tasks, collect_revoked, &r);
    if (r.oom)
        PLX_ERROR("out of memory listing the tasks to cancel; some may still run");
    size_t cancelled = 0;
    for (size_t i = 0; i < r.n; i++) {
        task_t *t = task_lookup(s, r.ids[i]);
        if (!t || t->state == T_DONE || t->abort_pending)
            continue;
        t->revoked = 1;
        cancelled++;
        if (t->state == T_RUNNING) {
            t->abort_pending = 1;
            sched_interrupt(c, t);
        } else if (t->state == T_SPLIT) {
            pieces_abort(c, t);
        } else {
            task_aborted(c, t, " before it ran");
        }
    }
    free(r.ids);
    if (cancelled)
        PLX_WARN("cancelled %zu unfinished task%s submitted under the revoked task capability",
                 cancelled, cancelled == 1 ? "" : "s");
    sched_pump(c);
}

void sched_refuse_submission(plx_controller_t *c, peer_t *p, const Plexa__Envelope *env,
                             const char *why)
{
    const Plexa__TaskSubmit *ts = env->task_submit;
    uint64_t first;
    if (take_ids(c, p, ts, &first) != 0) {
        ctl_send_error(p, env->id, PLX_ELIMIT, "%s", why);
        return;
    }
    fail_ids(c, first, ts->n_tasks, "MemoryError", why);
}

/* ---- reserve, wait, abort, clear ---------------------------------------- */

/* Most ids one TaskReserve may take: plenty for streaming, and a client
 * cannot exhaust the 64-bit id space in any useful time. */
#define RESERVE_MAX (1u << 20)

static void on_reserve(plx_controller_t *c, peer_t *p, Plexa__Envelope *env)
{
    uint32_t n = env->task_reserve->has_count ? env->task_reserve->count : 0;
    if (n == 0 || n > RESERVE_MAX) {
        ctl_send_error(p, env->id, PLX_EINVAL, "TaskReserve count %u is not in 1..%u", n,
                       RESERVE_MAX);
        return;
    }
    p->blk_next = c->sched->next_id;
    p->blk_end = p->blk_next + n;
    c->sched->next_id += n;
    Plexa__TaskIds ids = PLEXA__TASK_IDS__INIT;
    ids.has_first = 1;
    ids.first = p->blk_next;
    ids.has_count = 1;
    ids.count = n;
    ctl_send_body(p, env->id, PLEXA__ENVELOPE__BODY_TASK_IDS, &ids);
}

static void on_wait(plx_controller_t *c, peer_t *p, Plexa__Envelope *env)
{
    sched_t *s = c->sched;
    const Plexa__TaskWait *tw = env->task_wait;
    waiter_t *w = calloc(1, sizeof *w);
    if (w)
        w->ids = malloc((tw->n_ids ? tw->n_ids : 1) * sizeof *w->ids);
    if (!w || !w->ids) {
        free(w);
        ctl_send_error(p, env->id, PLX_ENOMEM, "out of memory");
        return;
    }
    if (tw->n_ids)   /* an empty list comes as NULL */
        memcpy(w->ids, tw->ids, tw->n_ids * sizeof *w->ids);
    w->n = tw->n_ids;
    w->peer = p;
    w->reply_to = env->id;
    int block = tw->has_block && tw->block;
    for (size_t i = 0; block && i < w->n; i++) {
        task_t *t = task_lookup(s, w->ids[i]);
        if (!t || t->state == T_DONE)
            continue;
        waiter_t **nw = realloc(t->waiters, (t->nwaiters + 1) * sizeof *nw);
        if (!nw)
            continue;  /* answered as pending rather than never */
        t->waiters = nw;
        t->waiters[t->nwaiters++] = w;
        w->left++;
    }
    if (w->left == 0) {
        plx_task_waiter_reply(c, w);
        free(w->ids);
        free(w);
        return;
    }
    w->next = p->waiters;
    if (p->waiters)
        p->waiters->prev = w;
    p->waiters = w;
}

/* Why task id may not be aborted (queued_only: unless it still waits in
 * the controller), or NULL. */
static const char *abort_refusal(const task_t *t, int queued_only)
{
    if (!t)
        return "does not exist";
    if (t->state == T_DONE)
        return "already completed";
    if (t->abort_pending)
        return "already aborted";
    if (queued_only && t->state != T_QUEUED && t->state != T_WAITING)
        return "already started";   /* sent to an engine, or cut into pieces */
    return NULL;
}

static void on_abort(plx_controller_t *c, peer_t *p, Plexa__Envelope *env)
{
    sched_t *s = c->sched;
    const Plexa__TaskAbort *ta = env->task_abort;
    int queued_only = ta->has_queued_only && ta->queued_only;
    for (size_t i = 0; i < ta->n_ids; i++) {
        const char *why = abort_refusal(task_lookup(s, ta->ids[i]), queued_only);
        if (why) {
            ctl_send_error(p, env->id, PLX_EINVAL, "task %llu %s", (unsigned long long)ta->ids[i],
                           why);
            return;
        }
    }
    for (size_t i = 0; i < ta->n_ids; i++) {
        task_t *t = task_lookup(s, ta->ids[i]);
        if (t->state == T_RUNNING) {
            /* Stolen meanwhile or not, the engine settles it: a task it
             * gave back is answered to the steal, one it runs is
             * interrupted. */
            t->abort_pending = 1;
            sched_interrupt(c, t);
        } else if (t->state == T_SPLIT) {
            pieces_abort(c, t);
        } else {
            task_aborted(c, t, " before it ran");
        }
    }
    Plexa__TaskIds ack = PLEXA__TASK_IDS__INIT;
    ctl_send_body(p, env->id, PLEXA__ENVELOPE__BODY_TASK_IDS, &ack);
}

static void on_clear(plx_controller_t *c, peer_t *p, Plexa__Envelope *env)
{
    sched_t *s = c->sched;
    const Plexa__TaskClear *tc = env->task_clear;
    if (tc->n_ids == 0) {
        tlist_t *lists[2] = {&s->done_seen, &s->done_new};
        for (int l = 0; l < 2; l++) {
            task_t *t = lists[l]->head;
            while (t) {
                task_t *next = t->next;
                if (!t->nwaiters)
                    plx_task_evict_one(s, t);
                t = next;
            }
        }
    }
    for (size_t i = 0; i < tc->n_ids; i++) {
        task_t *t = task_lookup(s, tc->ids[i]);
        if (t && t->state == T_DONE && !t->nwaiters)
            plx_task_evict_one(s, t);
    }
    /* A big clear frees many small blocks: give the memory back to the
     * system so the controller's footprint really drops (glibc keeps freed
     * heap otherwise). */
    malloc_trim(0);
    Plexa__TaskIds ack = PLEXA__TASK_IDS__INIT;
    ctl_send_body(p, env->id, PLEXA__ENVELOPE__BODY_TASK_IDS, &ack);
}

/* ---- queue status ------------------------------------------------------- */

typedef struct idvec {
    uint64_t *v;
    size_t    n;
} idvec_t;

/* Pieces are not listed: their chunk is (as scheduled, on the split list). */
static void collect(const tlist_t *l, idvec_t *out, int status_ok, int filter)
{
    for (const task_t *t = l->head; t; t = t->next)
        if (!t->parent && (!filter || (t->status == PLEXA__TASK_STATUS__TASK_OK) == status_ok))
            out->v[out->n++] = t->id;
}

/* Tasks waiting for their `after` dependencies are on no list. */
static void collect_waiting(uint64_t id, void *value, void *ud)
{
    idvec_t *pending = ud;
    if (((task_t *)value)->state == T_WAITING)
        pending->v[pending->n++] = id;
}

static void collect_ids(plx_controller_t *c, idvec_t *pending, idvec_t *scheduled,
                        idvec_t *ok, idvec_t *bad)
{
    sched_t *s = c->sched;
    collect(&s->queue, pending, 0, 0);
    if (s->waiting)
        plx_idmap_foreach(s->tasks, collect_waiting, pending);
    for (int32_t i = 0; i < c->engines_cap; i++)
        if (c->engines[i])
            collect(&c->engines[i]->trun, scheduled, 0, 0);
    collect(&s->split, scheduled, 0, 0);
    const tlist_t *done[2] = {&s->done_seen, &s->done_new};
    for (int l = 0; l < 2; l++) {
        collect(done[l], ok, 1, 1);
        collect(done[l], bad, 0, 1);
    }
}

void sched_stats(plx_controller_t *c, sched_stats_t *out)
{
    const sched_t *s = c->sched;
    out->queued = s->queue.n - s->pieces_queued;
    out->waiting = s->waiting;
    out->running = s->running - s->pieces_running + s->split.n;
    out->succeeded = s->succeeded;
    out->failed = s->failed;
    out->held_bytes = s->result_bytes;
    out->finished_total = s->finished_total;
}

void sched_queue_status(plx_controller_t *c, peer_t *p, Plexa__Envelope *env)
{
    sched_t *s = c->sched;
    Plexa__TaskQueueStatusReply r = PLEXA__TASK_QUEUE_STATUS_REPLY__INIT;
    r.has_pending = r.has_scheduled = r.has_succeeded = r.has_failed = 1;
    sched_stats_t st;
    sched_stats(c, &st);
    r.pending = st.queued + st.waiting;
    r.scheduled = st.running;
    r.succeeded = s->succeeded;
    r.failed = s->failed;
    idvec_t v[4] = {{0}};
    int verbose = env->task_queue_status->has_verbose && env->task_queue_status->verbose;
    if (verbose) {
        uint64_t sizes[4] = {r.pending, r.scheduled, s->succeeded, s->failed};
        for (int i = 0; i < 4; i++)
            v[i].v = malloc((sizes[i] + 1) * sizeof(uint64_t));
        if (v[0].v && v[1].v && v[2].v && v[3].v) {
            collect_ids(c, &v[0], &v[1], &v[2], &v[3]);
            r.n_pending_ids = v[0].n;
            r.pending_ids = v[0].v;
            r.n_scheduled_ids = v[1].n;
            r.scheduled_ids = v[1].v;
            r.n_succeeded_ids = v[2].n;
            r.succeeded_ids = v[2].v;
            r.n_failed_ids = v[3].n;
            r.failed_ids = v[3].v;
        }
    }
    ctl_send_body(p, env->id, PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS_REPLY, &r);
    for (int i = 0; i < 4; i++)
        free(v[i].v);
}

/* ---- dispatch ----------------------------------------------------------- */

void sched_on_client(plx_controller_t *c, peer_t *p, plx_msg_t *m, Plexa__Envelope *env)
{
    switch (env->body_case) {
    case PLEXA__ENVELOPE__BODY_TASK_SUBMIT:      on_submit(c, p, m, env); break;
    case PLEXA__ENVELOPE__BODY_TASK_RESERVE:     on_reserve(c, p, env); break;
    case PLEXA__ENVELOPE__BODY_TASK_WAIT:        on_wait(c, p, env); break;
    case PLEXA__ENVELOPE__BODY_TASK_ABORT:       on_abort(c, p, env); break;
    case PLEXA__ENVELOPE__BODY_TASK_CLEAR:       on_clear(c, p, env); break;
    case PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS: sched_queue_status(c, p, env); break;
    case PLEXA__ENVELOPE__BODY_GET_IDS:          reg_reply_ids(c, p, env->id); break;
    default:
        ctl_send_error(p, env->id, PLX_EPROTO, "unsupported request '%s' on a task connection",
                       plx_envelope_body_name(env));
        break;
    }
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}
