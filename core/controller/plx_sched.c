/*
 * Task dispatch: which engine runs which task, and when (see
 * plx_tasks_int.h for the scheduler's files, docs/architecture.md "Tasks"
 * for the measurements behind the numbers).
 *
 * Policies ([controller] scheduler):
 *  - adaptive (the default). An engine is sent a task when it holds
 *    nothing, or holds fewer not-yet-started tasks than the prefetch depth
 *    of the next one (plx_prefetch_depth: none for long tasks, enough to
 *    cover the round trip for short ones). Durations are measured per
 *    function by the engines themselves, and the task an engine runs now
 *    counts with the time it has run so far, so that a map learns within
 *    its first tasks. Among engines with room an idle one goes first, then
 *    the one with the least estimated work. An engine left with nothing
 *    while the queue has nothing it may run takes back the last tasks sent
 *    to the engine whose waiting work is largest, about half of that work
 *    (work stealing); a chunk of a map is cut into pieces when its
 *    measured cost is long, or in halves when an engine would idle
 *    (plx_pieces.c).
 *  - fifo / leastload: 0.10's, task_inflight tasks per engine, no stealing.
 *
 * Exactly once. Only the engine knows whether a task it holds has started,
 * so it decides: its I/O thread answers TaskSteal under the lock its
 * Python thread takes the next task with (core/engine). The controller
 * moves a task only once the engine says it gave it back; a task that
 * started reports its result as usual. Each connection keeps its order,
 * so TaskStarted, TaskStolen and TaskResult are handled in any
 * interleaving by the task's own state.
 *
 * Engines that die. A task the engine may have started (it said so, or,
 * when it ran nothing as far as we heard, the first in line: its
 * TaskStarted may have been lost with the connection) counts as run: it
 * is retried if it has retries, else fails with EngineError. The others
 * never ran and go back to the queue.
 */
#include "plx_tasks_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_time.h"

#define CAP_ADAPTIVE   64
#define CAP_FIXED      4
#define RTT_DEFAULT    300e-6   /* s: a task's start round trip before one is measured */
#define RTT_ALPHA      0.2
/* A thief waits this long (at least) for a victim's answer before it tries
 * another victim: the first may be stopped (SIGSTOP) or swamped. */
#define STEAL_PATIENCE_MIN 0.05
#define STEAL_PATIENCE_RTTS 20.0
/* A chunk is halved for an idle engine only if it takes this many round
 * trips or more (or nobody knows yet). */
#define HALVE_RTTS 4.0
/* An engine silent for this many heartbeat periods gets no new tasks. */
#define UNRESPONSIVE_PERIODS 2.0

/* ---- what the scheduler knows about engines and tasks --------------------- */

static int responsive(const plx_controller_t *c, const engine_t *e, double now_ev)
{
    return c->opts.heartbeat_period <= 0 ||
           now_ev - e->last_seen <= UNRESPONSIVE_PERIODS * c->opts.heartbeat_period;
}

static double rtt_of(const engine_t *e)
{
    return e->ts.start_lat > 0 ? e->ts.start_lat : RTT_DEFAULT;
}

/* The task e runs now, or NULL. An engine runs its tasks in the order it
 * was sent them, so a running one is the oldest it holds. */
static const task_t *running_on(const engine_t *e)
{
    const task_t *t = e->trun.head;
    return t && t->started_at > 0 ? t : NULL;
}

/* Estimated seconds for t on e, -1 when unknown: the function's measured
 * cost per element (per, -1 if none yet), raised to what e's running task
 * of the same function has already taken (a slow first task teaches
 * before it ends). That is only a lower bound: while nothing is known it
 * counts once it alone makes the task long. */
static double estimate_on(const engine_t *e, const task_t *t, double per, double now)
{
    const task_t *r = running_on(e);
    if (r && r->key == t->key) {
        double so_far = (now - r->started_at) / (r->elems ? r->elems : 1);
        if (per >= 0 ? so_far > per : so_far >= PLX_PREFETCH_LONG * rtt_of(e))
            per = so_far;
    }
    return per < 0 ? -1.0 : per * (t->elems ? t->elems : 1);
}

static double estimate(plx_controller_t *c, const engine_t *e, const task_t *t, double now)
{
    return estimate_on(e, t, plx_taskcost_per_elem(c->sched->cost, t->key), now);
}

static int rejected_by(const task_t *t, int32_t id)
{
    for (size_t i = 0; i < t->nrejected; i++)
        if (t->rejected[i] == id)
            return 1;
    return 0;
}

void sched_describe(task_t *t, const Plexa__TaskSpec *spec)
{
    const char *kind = spec->kind ? spec->kind : "";
    const Plexa__Value *v = spec->n_args ? spec->args[0] : NULL;
    const void *data = NULL;
    size_t len = 0;
    uint8_t packed[PLX_TASKCOST_KEY_BYTES];
    if (v && v->kind_case == PLEXA__VALUE__KIND_STR && v->str) {
        data = v->str;
        len = strlen(v->str);
    } else if (v && v->kind_case == PLEXA__VALUE__KIND_PICKLE && v->pickle->has_buf &&
               v->pickle->buf < t->nbufs) {
        data = t->bufs[v->pickle->buf]->data;
        len = t->bufs[v->pickle->buf]->len;
    } else if (v && plexa__value__get_packed_size(v) <= sizeof packed) {
        len = plexa__value__pack(v, packed);
        data = packed;
    }
    t->key = plx_taskcost_key(kind, data, len);
    int chunk = strcmp(kind, "chunk") == 0 && spec->has_elements && spec->elements >= 1;
    t->elems = chunk ? spec->elements : 1;
    /* Cutting a chunk sends its whole payload with each piece, and resets
     * around each piece: only light chunks without resets are cut. */
    t->splittable = chunk && spec->elements >= 2 && !spec->recovery &&
                    !(spec->has_clear_before && spec->clear_before) &&
                    !(spec->has_clear_after && spec->clear_after) &&
                    t->payload <= PLX_SPLIT_MAX_BYTES;
}

/* ---- engines' task lists -------------------------------------------------- */

void sched_unassign(plx_controller_t *c, task_t *t)
{
    sched_t *s = c->sched;
    engine_t *e = t->eng;
    if (!e)
        return;
    if (t->started_at == 0 && !t->steal_pending) {
        e->ts.unstarted--;
        s->unstarted--;
    }
    e->ts.backlog -= t->est;
    if (e->ts.backlog < 1e-9 || e->trun.n <= 1)
        e->ts.backlog = 0;
    tl_remove(t);
    t->eng = NULL;
    t->steal_pending = 0;
    t->started_at = 0;
    s->running--;
    if (t->parent)
        s->pieces_running--;
}

static void mark_started(plx_controller_t *c, engine_t *e, task_t *t, double now)
{
    if (t->started_at > 0)
        return;
    t->started_at = now;
    if (!t->steal_pending) {
        e->ts.unstarted--;
        c->sched->unstarted--;
    }
    if (t->sent_idle) {
        double lat = now - t->sent_at;
        e->ts.start_lat = e->ts.start_lat > 0 ? e->ts.start_lat + RTT_ALPHA * (lat - e->ts.start_lat)
                                              : lat;
    }
}

static int dispatch(plx_controller_t *c, task_t *t, engine_t *e, double est)
{
    sched_t *s = c->sched;
    const task_t *pl = pieces_payload(t);
    Plexa__TaskRun run = PLEXA__TASK_RUN__INIT;
    run.has_task_id = 1;
    run.task_id = t->id;
    run.has_spec = 1;
    run.spec = pl->spec;
    run.has_attempt = 1;
    run.attempt = ++t->attempt;
    if (t->parent) {
        run.has_first = run.has_count = 1;
        run.first = t->first;
        run.count = t->elems;
    }
    plx_msg_t *m = ctl_pack(c, 0, PLEXA__ENVELOPE__BODY_TASK_RUN, &run);
    for (uint32_t i = 0; m && i < pl->nbufs; i++)
        if (plx_msg_add_buf(m, pl->bufs[i]) != PLX_OK)
            plx_msg_destroy(&m);
    if (!m)
        return PLX_ENOMEM;
    tl_remove(t);
    if (t->parent)
        s->pieces_queued--;
    t->state = T_RUNNING;
    s->running++;
    if (t->parent)
        s->pieces_running++;
    if (t->started == 0)
        t->started = plx_unix_now();
    t->sent_idle = e->trun.n == 0;
    t->sent_at = plx_now_s();
    t->started_at = 0;
    t->steal_pending = 0;
    t->est = est > 0 ? est : 0;
    e->ts.backlog += t->est;
    e->ts.unstarted++;
    s->unstarted++;
    tl_push(&e->trun, t, 0);
    t->eng = e;
    plx_conn_send(e->peer->conn, m);
    return PLX_OK;
}

/* ---- picking an engine ------------------------------------------------------ */

/* fifo / leastload: the next engine in turn with a free slot, or the least
 * loaded; *any_room says whether some engine had a slot at all. */
static engine_t *pick_fixed(plx_controller_t *c, const task_t *t, int *any_room)
{
    engine_t *best = NULL;
    int32_t n = c->engines_cap;
    *any_room = 0;
    for (int32_t k = 0; k < n; k++) {
        engine_t *e = c->engines[(k + (int32_t)c->sched->rr) % n];
        if (!e || e->trun.n >= (uint64_t)c->sched->cap)
            continue;
        *any_room = 1;
        if (t->nrejected && rejected_by(t, e->id))
            continue;
        if (!best || e->trun.n < best->trun.n)
            best = e;
        if (c->sched->policy == POLICY_FIFO)
            break;
    }
    c->sched->rr++;
    return best;
}

/* adaptive: an idle engine first, then the least estimated work among
 * those holding fewer unstarted tasks than t's prefetch depth there. */
static engine_t *pick_adaptive(plx_controller_t *c, const task_t *t, int *any_room,
                               double *est_out)
{
    sched_t *s = c->sched;
    engine_t *best = NULL;
    double best_score = 0, now = plx_now_s(), now_ev = ev_now(c->loop);
    double per = plx_taskcost_per_elem(s->cost, t->key);
    int32_t n = c->engines_cap;
    *any_room = 0;
    for (int32_t k = 0; k < n; k++) {
        engine_t *e = c->engines[(k + (int32_t)s->rr) % n];
        if (!e || !responsive(c, e, now_ev))
            continue;
        int idle = e->trun.n == 0;
        double est = estimate_on(e, t, per, now);
        if (!idle && e->ts.unstarted >= (uint64_t)plx_prefetch_depth(est, rtt_of(e), s->cap))
            continue;
        *any_room = 1;
        if (t->nrejected && rejected_by(t, e->id))
            continue;
        double score = idle ? -1.0 : e->ts.backlog + 1e-9 * (double)e->trun.n;
        if (!best || score < best_score) {
            best = e;
            best_score = score;
            *est_out = est;
        }
    }
    s->rr++;
    return best;
}

/* Another responsive engine than `but` holds nothing. */
static int other_idle(plx_controller_t *c, const engine_t *but)
{
    double now_ev = ev_now(c->loop);
    for (int32_t i = 0; i < c->engines_cap; i++) {
        const engine_t *e = c->engines[i];
        if (e && e != but && e->trun.n == 0 && responsive(c, e, now_ev))
            return 1;
    }
    return 0;
}

/* Before t goes to e: cut a long chunk into pieces of about
 * PLX_PREFETCH_LONG round trips (so that no engine is left with a long
 * tail), or in halves when it is the last task queued and another engine
 * idles. Returns the task to send (t, or t's first piece). */
static task_t *maybe_cut(plx_controller_t *c, task_t *t, const engine_t *e)
{
    if (!t->splittable || t->elems < 2)
        return t;
    double per = plx_taskcost_per_elem(c->sched->cost, t->key);
    double piece_s = PLX_PREFETCH_LONG * rtt_of(e);
    if (per > 0 && (double)t->elems * per > 2 * piece_s) {
        double keep = floor(piece_s / per);
        return pieces_cut(c, t, keep < 1 ? 1 : (uint32_t)keep);
    }
    /* Halving costs a round trip: worth it unless the chunk is known to
     * take less than a few. */
    if (!t->next && (per < 0 || (double)t->elems * per > HALVE_RTTS * rtt_of(e)) &&
        other_idle(c, e))
        return pieces_cut(c, t, t->elems / 2);
    return t;
}

static void steal_idle(plx_controller_t *c);

void sched_pump(plx_controller_t *c)
{
    sched_t *s = c->sched;
    task_t *t = s->queue.head;
    while (t) {
        int any_room;
        double est = -1;
        engine_t *e = s->policy == POLICY_ADAPTIVE ? pick_adaptive(c, t, &any_room, &est)
                                                   : pick_fixed(c, t, &any_room);
        if (!any_room)
            break;
        if (!e) {
            /* Every engine with room said no to this task: skip it for now. */
            if (t->unmet_since == 0 && (int)t->nrejected >= c->nengines)
                t->unmet_since = ev_now(c->loop);
            t = t->next;
            continue;
        }
        if (s->policy == POLICY_ADAPTIVE) {
            task_t *cut = maybe_cut(c, t, e);
            if (cut != t || cut->elems != t->elems)
                est = estimate(c, e, cut, plx_now_s());
            t = cut;
        }
        task_t *next = t->next;
        if (dispatch(c, t, e, est) != PLX_OK)
            task_fail(c, t, PLEXA__TASK_STATUS__TASK_FAILED, "MemoryError",
                      "out of memory sending task %llu", (unsigned long long)t->id);
        t = next;
    }
    if (s->policy == POLICY_ADAPTIVE)
        steal_idle(c);
}

/* ---- work stealing -------------------------------------------------------- */

static void arm_steal_timer(plx_controller_t *c, double at)
{
    sched_t *s = c->sched;
    double after = at - plx_now_s();
    if (after < 0.001)
        after = 0.001;
    if (ev_is_active(&s->steal_timer) && ev_timer_remaining(c->loop, &s->steal_timer) <= after)
        return;
    ev_timer_stop(c->loop, &s->steal_timer);
    ev_timer_set(&s->steal_timer, after, 0.);
    ev_timer_start(c->loop, &s->steal_timer);
}

static void steal_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    sched_pump(w->data);
}

/* The first task e holds that another engine should rather run: one
 * behind a task e runs. The next task of an engine that runs none starts
 * as soon as e gets to it, and taking it would only bounce it between
 * idle engines; but an engine that stopped answering may never get to
 * it. NULL: nothing to take. */
static const task_t *first_stealable(plx_controller_t *c, const engine_t *e, double now_ev)
{
    if (e->ts.unstarted == 0)
        return NULL;
    const task_t *t = e->trun.head;
    if (!running_on(e) && responsive(c, e, now_ev))
        t = t ? t->next : NULL;
    for (; t; t = t->next)
        if (t->started_at == 0 && !t->steal_pending)
            return t;
    return NULL;
}

/* The engine whose not-yet-started tasks would wait longest, other than
 * the thief; ties by count (estimates may be unknown). One steal at a
 * time per victim: one that has not answered may be stopped, and asking
 * it again would only pile up requests. */
static engine_t *pick_victim(plx_controller_t *c, const engine_t *thief)
{
    engine_t *best = NULL;
    double best_wait = 0;
    double now_ev = ev_now(c->loop);
    for (int32_t i = 0; i < c->engines_cap; i++) {
        engine_t *v = c->engines[i];
        if (!v || v == thief || v->ts.steals || !first_stealable(c, v, now_ev))
            continue;
        double wait = v->ts.backlog + 1e-6 * (double)v->ts.unstarted;
        if (!best || wait > best_wait) {
            best = v;
            best_wait = wait;
        }
    }
    return best;
}

/* Ask v for the last tasks it was sent, about half of its unstarted work,
 * on thief's behalf. 0 when v had none the thief may run. */
static int send_steal(plx_controller_t *c, engine_t *v, engine_t *thief)
{
    sched_t *s = c->sched;
    const task_t *from = first_stealable(c, v, ev_now(c->loop));
    double total = 0;
    uint64_t count = 0;
    for (const task_t *t = from; t; t = t->next)
        if (t->started_at == 0 && !t->steal_pending) {
            total += t->est;
            count++;
        }
    steal_t *st = calloc(1, sizeof *st);
    uint64_t *ids = st ? malloc(count * sizeof *ids) : NULL;
    if (!ids) {
        free(st);
        return 0;
    }
    double taken = 0;
    size_t n = 0;
    for (task_t *t = v->trun.tail; t && count && t != from->prev; t = t->prev) {
        if (t->started_at > 0 || t->steal_pending || rejected_by(t, thief->id))
            continue;
        if (n > 0 && (total > 0 ? 2 * taken >= total : 2 * n >= count))
            break;
        ids[n++] = t->id;
        taken += t->est;
    }
    if (n == 0) {
        free(ids);
        free(st);
        return 0;
    }
    Plexa__TaskSteal ts = PLEXA__TASK_STEAL__INIT;
    ts.n_ids = n;
    ts.ids = ids;
    uint64_t id = ctl_next_id(c);
    Plexa__Envelope env;
    plx_envelope_set(&env, id, 0, PLEXA__ENVELOPE__BODY_TASK_STEAL, &ts);
    if (ctl_send_env(v->peer, &env, NULL) != PLX_OK) {
        free(ids);
        free(st);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        task_t *t = plx_idmap_get(s->tasks, ids[i]);
        t->steal_pending = 1;
        v->ts.unstarted--;
        s->unstarted--;
    }
    st->msg_id = id;
    st->thief = thief->id;
    st->ids = ids;
    st->n = n;
    st->next = v->ts.steals;
    v->ts.steals = st;
    double patience = STEAL_PATIENCE_RTTS * rtt_of(v);
    thief->ts.awaiting++;
    thief->ts.await_until = plx_now_s() + (patience > STEAL_PATIENCE_MIN ? patience
                                                                        : STEAL_PATIENCE_MIN);
    arm_steal_timer(c, thief->ts.await_until);
    PLX_DEBUG("engine %d idles: asking engine %d for %zu of its %llu waiting task(s)",
              thief->id, v->id, n, (unsigned long long)count);
    return 1;
}

/* Every engine that holds nothing takes work from another's waiting tasks. */
static void steal_idle(plx_controller_t *c)
{
    sched_t *s = c->sched;
    double now = plx_now_s(), now_ev = ev_now(c->loop);
    for (int32_t i = 0; i < c->engines_cap && s->unstarted > 0; i++) {
        engine_t *th = c->engines[i];
        if (!th || th->trun.n != 0 || !responsive(c, th, now_ev))
            continue;
        if (th->ts.awaiting > 0 && now < th->ts.await_until)
            continue;
        engine_t *v = pick_victim(c, th);
        if (!v || !send_steal(c, v, th))
            return;   /* nothing left that an idle engine may run */
    }
}

static steal_t *take_steal(engine_t *v, uint64_t msg_id)
{
    for (steal_t **p = &v->ts.steals; *p; p = &(*p)->next)
        if ((*p)->msg_id == msg_id) {
            steal_t *st = *p;
            *p = st->next;
            return st;
        }
    return NULL;
}

static void steal_free(plx_controller_t *c, steal_t *st)
{
    engine_t *thief = reg_engine(c, st->thief);
    if (thief && thief->ts.awaiting > 0)
        thief->ts.awaiting--;
    free(st->ids);
    free(st);
}

/* Those of st's tasks the engine kept have started (or finished). */
static void steal_settle_kept(plx_controller_t *c, engine_t *v, const steal_t *st)
{
    for (size_t i = 0; i < st->n; i++) {
        task_t *t = plx_idmap_get(c->sched->tasks, st->ids[i]);
        if (!t || t->eng != v || !t->steal_pending)
            continue;
        t->steal_pending = 0;
        if (t->started_at == 0) {   /* its TaskStarted is still on the way */
            v->ts.unstarted++;
            c->sched->unstarted++;
        }
    }
}

void sched_task_stolen(plx_controller_t *c, engine_t *v, const Plexa__Envelope *env)
{
    sched_t *s = c->sched;
    steal_t *st = env->has_reply_to ? take_steal(v, env->reply_to) : NULL;
    if (!st) {
        PLX_WARN("engine %d answered a steal that was not asked; ignored", v->id);
        return;
    }
    const Plexa__TaskStolen *ts = env->task_stolen;
    task_t *back = NULL;
    size_t nback = 0;
    /* The engine lists them in the order it held them: put them back at
     * the front of the queue in that order (they were first in line). */
    for (size_t i = ts->n_ids; i-- > 0;) {
        task_t *t = plx_idmap_get(s->tasks, ts->ids[i]);
        if (!t || t->eng != v || !t->steal_pending) {
            PLX_WARN("engine %d gave back task %llu, which it was not asked for; ignored",
                     v->id, (unsigned long long)ts->ids[i]);
            continue;
        }
        sched_unassign(c, t);
        t->attempt--;   /* it never ran there */
        if (t->abort_pending) {
            task_aborted(c, t, " before it ran");
            continue;
        }
        task_enqueue(c, t, 1);
        back = t;
        nback++;
    }
    steal_settle_kept(c, v, st);
    steal_free(c, st);
    /* One chunk taken back whole: the thief shares it with the engine it
     * came from, which is busy with its running task meanwhile. */
    if (nback == 1 && back->splittable && back->elems >= 2)
        pieces_cut(c, back, back->elems / 2);
    sched_pump(c);
}

/* ---- engine events ---------------------------------------------------------- */

void sched_task_started(plx_controller_t *c, engine_t *e, const Plexa__Envelope *env)
{
    const Plexa__TaskStarted *ts = env->task_started;
    task_t *t = ts->has_task_id ? plx_idmap_get(c->sched->tasks, ts->task_id) : NULL;
    if (!t || t->eng != e || t->state != T_RUNNING)
        return;   /* finished or given back meanwhile: nothing to learn */
    mark_started(c, e, t, plx_now_s());
    sched_pump(c);   /* e may now take more ahead */
}

/* Put a task back in the queue (front: it was first in line already). */
static void task_requeue(plx_controller_t *c, task_t *t)
{
    sched_unassign(c, t);
    task_drop_result(t);
    task_enqueue(c, t, 1);
}

static int use_recovery(task_t *t)
{
    if (t->used_recovery || !t->recovery.data)
        return 0;
    free(t->spec.data);
    t->spec = t->recovery;
    t->recovery.data = NULL;
    t->recovery.len = 0;
    t->used_recovery = 1;
    t->recovery_fresh = 1;
    Plexa__TaskSpec *r = plexa__task_spec__unpack(NULL, t->spec.len, t->spec.data);
    t->retries_left = r && r->has_retries ? r->retries : 0;
    if (r)
        plexa__task_spec__free_unpacked(r, NULL);
    return 1;
}

static void learn_cost(plx_controller_t *c, const task_t *t, const Plexa__TaskResult *r)
{
    if (r->has_started && r->has_completed && r->completed >= r->started)
        plx_taskcost_add(c->sched->cost, t->key, r->completed - r->started, t->elems);
}

static void rejected_add(task_t *t, int32_t id)
{
    int32_t *nr = realloc(t->rejected, (t->nrejected + 1) * sizeof *nr);
    if (nr) {
        t->rejected = nr;
        t->rejected[t->nrejected++] = id;
    }
}

void sched_task_result(plx_controller_t *c, engine_t *e, plx_msg_t *m, Plexa__Envelope *env)
{
    Plexa__TaskResult *r = env->task_result;
    task_t *t = r->has_task_id ? plx_idmap_get(c->sched->tasks, r->task_id) : NULL;
    if (!t || t->eng != e || t->state != T_RUNNING) {
        PLX_WARN("engine %d reported task %llu, which it was not running; ignored", e->id,
                 (unsigned long long)r->task_id);
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        return;
    }
    int status = r->has_status ? (int)r->status : PLEXA__TASK_STATUS__TASK_FAILED;
    e->tasks_done++;
    r->has_engine_id = 1;
    r->engine_id = e->id;
    if (status != PLEXA__TASK_STATUS__TASK_REJECTED)
        learn_cost(c, t, r);
    if (!t->abort_pending && status == PLEXA__TASK_STATUS__TASK_REJECTED) {
        rejected_add(t, e->id);
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        task_requeue(c, t);
    } else if (!t->abort_pending && status == PLEXA__TASK_STATUS__TASK_FAILED &&
               (t->retries_left > 0 || use_recovery(t))) {
        /* use_recovery() ran only if no retries were left; its own
         * retries start counting after its first run. */
        if (t->retries_left > 0 && t->attempt > 0 && !(t->used_recovery && t->recovery_fresh))
            t->retries_left--;
        t->recovery_fresh = 0;
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        task_requeue(c, t);
    } else if (t->abort_pending) {
        /* Whatever the engine made of the interrupt, the user asked for an
         * abort: report that, the same way wherever the task was. */
        plx_envelope_free(&env);
        plx_msg_destroy(&m);
        char how[64];
        snprintf(how, sizeof how, " while running on engine %d", e->id);
        task_aborted(c, t, how);
    } else {
        task_drop_result(t);
        t->res_env = env;
        t->res_msg = m;
        t->result = r;
        task_finish(c, t);
    }
    sched_pump(c);
}

void sched_interrupt(plx_controller_t *c, task_t *t)
{
    Plexa__Interrupt in = PLEXA__INTERRUPT__INIT;
    in.has_task_id = 1;
    in.task_id = t->id;
    ctl_send_body(t->eng->peer, 0, PLEXA__ENVELOPE__BODY_INTERRUPT, &in);
}

void sched_engine_added(plx_controller_t *c, engine_t *e)
{
    (void)e;
    /* Tasks every old engine rejected may suit the newcomer. */
    for (task_t *t = c->sched->queue.head; t; t = t->next)
        t->unmet_since = 0;
    sched_pump(c);
}

/* e died holding t: did t perhaps run? */
static void task_lost(plx_controller_t *c, engine_t *e, task_t *t, int may_have_run)
{
    if (t->abort_pending) {
        char how[64];
        snprintf(how, sizeof how, " (its engine %d died)", e->id);
        task_aborted(c, t, how);
    } else if (!may_have_run) {
        t->attempt--;
        task_requeue(c, t);
    } else if (t->retries_left > 0) {
        t->retries_left--;
        PLX_INFO("task %llu: engine %d died; retrying elsewhere (%d retries left)",
                 (unsigned long long)t->id, e->id, t->retries_left);
        task_requeue(c, t);
    } else {
        task_fail(c, t, PLEXA__TASK_STATUS__TASK_ENGINE_DIED, "EngineError",
                  "engine %d died while running task %llu", e->id, (unsigned long long)t->id);
    }
}

void sched_engine_gone(plx_controller_t *c, engine_t *e)
{
    while (e->ts.steals) {
        steal_t *st = e->ts.steals;
        e->ts.steals = st->next;
        steal_free(c, st);
    }
    /* The engine runs its tasks in the order it was sent them. While it
     * ran none (as far as we heard), the first may have started with its
     * TaskStarted lost in the crash: a task that kills its engine at once
     * must not go round killing the others. */
    const task_t *next_in_line = running_on(e) ? NULL : e->trun.head;
    while (e->trun.tail) {   /* from the back: requeued ones keep their order */
        task_t *t = e->trun.tail;
        task_lost(c, e, t, t->started_at > 0 || t == next_in_line);
    }
    e->ts.unstarted = 0;
    e->ts.backlog = 0;
    sched_pump(c);
}

void sched_tick(plx_controller_t *c)
{
    double now = ev_now(c->loop);
    task_t *t = c->sched->queue.head;
    while (t) {
        task_t *next = t->next;
        if (t->unmet_since > 0 && now - t->unmet_since > c->opts.depend_timeout)
            task_fail(c, t, PLEXA__TASK_STATUS__TASK_TIMEOUT, "TaskTimeout",
                      "task %llu failed to execute due to unmet dependencies for %d seconds",
                      (unsigned long long)(t->parent ? t->parent->id : t->id),
                      (int)c->opts.depend_timeout);
        t = next;
    }
    /* An engine that stopped answering has come back, or its work must
     * move on: look again at least once a period. */
    sched_pump(c);
}

/* ---- lifecycle ------------------------------------------------------------ */

int sched_policy_init(plx_controller_t *c)
{
    sched_t *s = c->sched;
    s->policy = c->opts.scheduler == PLX_SCHED_FIFO        ? POLICY_FIFO
                : c->opts.scheduler == PLX_SCHED_LEASTLOAD ? POLICY_LEASTLOAD
                                                           : POLICY_ADAPTIVE;
    s->cap = c->opts.task_inflight > 0 ? c->opts.task_inflight
             : s->policy == POLICY_ADAPTIVE ? CAP_ADAPTIVE
                                            : CAP_FIXED;
    s->cost = plx_taskcost_new();
    if (!s->cost)
        return PLX_ENOMEM;
    ev_init(&s->steal_timer, steal_timer_cb);
    s->steal_timer.data = c;
    return PLX_OK;
}

void sched_policy_fini(plx_controller_t *c)
{
    sched_t *s = c->sched;
    ev_timer_stop(c->loop, &s->steal_timer);
    plx_taskcost_destroy(&s->cost);
    for (int32_t i = 0; i < c->engines_cap; i++) {
        engine_t *e = c->engines[i];
        while (e && e->ts.steals) {
            steal_t *st = e->ts.steals;
            e->ts.steals = st->next;
            free(st->ids);
            free(st);
        }
    }
}
