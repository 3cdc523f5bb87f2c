/*
 * Interrupts and steals, on the I/O thread. Running user code is
 * interrupted for a stop, a lost connection or an Interrupt that names
 * what runs; a request still queued is taken back before it starts: an
 * Interrupt that names it is answered as interrupted without Python, and
 * a TaskSteal with the tasks given back. Both are settled under mu, the
 * lock the Python thread takes its next request with, so a request is
 * either taken here or run there, never both. No GIL is taken here:
 * PyErr_SetInterrupt is documented as safe without it. See
 * plx_engine_int.h for the threads.
 */
#include "plx_engine_int.h"

#include <stdlib.h>

#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_time.h"

/* ---- running code ------------------------------------------------------- */

/* Interrupt running user code so the Python thread can see a stop: a
 * KeyboardInterrupt is made pending, and a signal to the Python thread
 * breaks a blocking system call (time.sleep, a socket read) so that Python
 * looks at it now rather than when the call ends by itself. The signal's
 * handler, running on the Python thread, calls PyErr_SetInterrupt again:
 * only there does CPython also raise its eval-breaker flag (from another
 * thread it only records the signal), without which pure Python code
 * (`while True: pass`) would never notice. interrupt_wanted keeps a late
 * handler from interrupting the next request: the Python thread clears it
 * when the request ends. Called with mu held, so busy cannot change under
 * us. */
void plx_engine_interrupt_if_busy_locked(plx_engine_t *e)
{
    if (!e->busy)
        return;
    atomic_store(&e->interrupt_wanted, 1);
    PyErr_SetInterrupt();
    pthread_kill(e->py_thread, PLX_ENGINE_WAKE_SIGNAL);
}

/* ---- queued requests ---------------------------------------------------- */

/* A request interrupted before it started, answered here without Python:
 * a task with a failed TaskResult, anything else with an EngineReply that
 * carries the KeyboardInterrupt. */
static void io_answer_interrupted(plx_engine_t *e, plx_engine_req_t *r)
{
    double now = plx_unix_now();
    Plexa__RemoteError err = PLEXA__REMOTE_ERROR__INIT;
    err.ename = "KeyboardInterrupt";
    err.evalue = "interrupted before it started";
    err.traceback = "KeyboardInterrupt: interrupted before it started\n";
    int32_t id = plx_engine_id(e);
    Plexa__TaskResult tr = PLEXA__TASK_RESULT__INIT;
    Plexa__EngineReply er = PLEXA__ENGINE_REPLY__INIT;
    Plexa__Envelope env;
    if (r->env->body_case == PLEXA__ENVELOPE__BODY_TASK_RUN) {
        tr.has_task_id = tr.has_status = tr.has_engine_id = 1;
        tr.task_id = r->env->task_run->task_id;
        tr.status = PLEXA__TASK_STATUS__TASK_FAILED;
        tr.engine_id = id;
        tr.error = &err;
        tr.has_started = tr.has_completed = 1;
        tr.started = tr.completed = now;
        plx_envelope_set(&env, plx_engine_next_id(e), r->env->has_id ? r->env->id : 0,
                         PLEXA__ENVELOPE__BODY_TASK_RESULT, &tr);
    } else {
        er.has_engine_id = 1;
        er.engine_id = id;
        er.method = (char *)plx_envelope_body_name(r->env);
        er.error = &err;
        plx_envelope_set(&env, plx_engine_next_id(e), r->env->has_id ? r->env->id : 0,
                         PLEXA__ENVELOPE__BODY_ENGINE_REPLY, &er);
    }
    plx_engine_io_send(e, &env);
}

/* Take out of the queue the first request match(r, key) names; NULL if none. */
static plx_engine_req_t *take_queued_locked(plx_engine_t *e,
                                            int (*match)(const plx_engine_req_t *, uint64_t),
                                            uint64_t key)
{
    plx_engine_req_t *prev = NULL;
    for (plx_engine_req_t *r = e->req_head; r; prev = r, r = r->next)
        if (match(r, key)) {
            if (prev)
                prev->next = r->next;
            else
                e->req_head = r->next;
            if (e->req_tail == r)
                e->req_tail = prev;
            r->next = NULL;
            return r;
        }
    return NULL;
}

static int is_task(const plx_engine_req_t *r, uint64_t task_id)
{
    return r->env->body_case == PLEXA__ENVELOPE__BODY_TASK_RUN &&
           r->env->task_run->task_id == task_id;
}

static int is_request(const plx_engine_req_t *r, uint64_t request_id)
{
    return r->env->has_id && r->env->id == request_id;
}

/* Interrupt{task_id, request_id}: raise KeyboardInterrupt in the running
 * request when both are 0 (whatever runs), or when one names what runs. A
 * task or request still queued here (the controller sends several ahead)
 * is taken out of the queue and answered as interrupted at once, without
 * running. */
void plx_engine_io_interrupt(plx_engine_t *e, uint64_t task_id, uint64_t request_id)
{
    int hit = 0;
    plx_engine_req_t *taken = NULL;
    pthread_mutex_lock(&e->mu);
    int whatever = task_id == 0 && request_id == 0;
    if (e->busy && (whatever || (task_id && e->running_task == task_id) ||
                    (request_id && e->running_req == request_id))) {
        plx_engine_interrupt_if_busy_locked(e);
        hit = 1;
    } else if (!whatever) {
        taken = task_id ? take_queued_locked(e, is_task, task_id)
                        : take_queued_locked(e, is_request, request_id);
        hit = taken ? 2 : 0;
    }
    pthread_mutex_unlock(&e->mu);
    if (taken) {
        io_answer_interrupted(e, taken);
        plx_engine_req_free(taken);   /* received buffers only: no Python in them */
    }
    PLX_DEBUG("interrupt of %s%llu: %s",
              task_id ? "task " : request_id ? "request " : "whatever runs",
              (unsigned long long)(task_id ? task_id : request_id),
              hit == 1 ? "raised KeyboardInterrupt" : hit == 2 ? "answered it unstarted"
                                                             : "nothing to interrupt");
}

/* Whether r is a TaskRun for one of ids[0..n). */
static int is_task_in(const plx_engine_req_t *r, const uint64_t *ids, size_t n)
{
    if (r->env->body_case != PLEXA__ENVELOPE__BODY_TASK_RUN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == r->env->task_run->task_id)
            return 1;
    return 0;
}

/* TaskSteal: give back those of the tasks that still wait in the queue.
 * The Python thread takes requests off the queue under mu, so under mu a
 * task is either still here (given back now, never run) or taken (it
 * runs, and its result goes to the controller): exactly one of the two. */
void plx_engine_io_steal(plx_engine_t *e, const Plexa__Envelope *env)
{
    const Plexa__TaskSteal *ts = env->task_steal;
    uint64_t *back = malloc((ts->n_ids ? ts->n_ids : 1) * sizeof *back);
    plx_engine_req_t *taken = NULL, **tail = &taken;
    size_t n = 0;
    pthread_mutex_lock(&e->mu);
    plx_engine_req_t *prev = NULL;
    for (plx_engine_req_t *r = e->req_head; back && r;) {
        plx_engine_req_t *next = r->next;
        if (n < ts->n_ids && is_task_in(r, ts->ids, ts->n_ids)) {
            if (prev)
                prev->next = next;
            else
                e->req_head = next;
            if (e->req_tail == r)
                e->req_tail = prev;
            r->next = NULL;
            *tail = r;
            tail = &r->next;
            back[n++] = r->env->task_run->task_id;
        } else {
            prev = r;
        }
        r = next;
    }
    pthread_mutex_unlock(&e->mu);
    while (taken) {
        plx_engine_req_t *next = taken->next;
        plx_engine_req_free(taken);   /* received buffers only: no Python in them */
        taken = next;
    }
    /* Without memory for the list nothing was taken: the answer says so. */
    Plexa__TaskStolen st = PLEXA__TASK_STOLEN__INIT;
    st.n_ids = n;
    st.ids = back;
    Plexa__Envelope out;
    plx_envelope_set(&out, plx_engine_next_id(e), env->has_id ? env->id : 0,
                     PLEXA__ENVELOPE__BODY_TASK_STOLEN, &st);
    plx_engine_io_send(e, &out);
    PLX_DEBUG("steal of %zu task(s): gave back %zu", ts->n_ids, n);
    free(back);
}
