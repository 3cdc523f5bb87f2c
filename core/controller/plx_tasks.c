/*
 * The load-balanced task interface (0.10's TaskController, in C): its
 * tasks, the lists they are on, their memory, the queue, and the
 * scheduler's creation and end. Client requests are plx_task_requests.c,
 * finished tasks and their results plx_task_results.c, dispatch to
 * engines plx_sched.c; see plx_tasks_int.h for the files.
 */
#include "plx_tasks_int.h"

#include <stdlib.h>

#include "plx_envelope.h"

/* ---- lists -------------------------------------------------------------- */

void tl_push(tlist_t *l, task_t *t, int front)
{
    t->list = l;
    if (front) {
        t->prev = NULL;
        t->next = l->head;
        if (l->head)
            l->head->prev = t;
        else
            l->tail = t;
        l->head = t;
    } else {
        t->next = NULL;
        t->prev = l->tail;
        if (l->tail)
            l->tail->next = t;
        else
            l->head = t;
        l->tail = t;
    }
    l->n++;
}

void tl_remove(task_t *t)
{
    tlist_t *l = t->list;
    if (!l)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        l->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->tail = t->prev;
    l->n--;
    t->prev = t->next = NULL;
    t->list = NULL;
}

void tl_insert_after(task_t *after, task_t *t)
{
    tlist_t *l = after->list;
    t->list = l;
    t->prev = after;
    t->next = after->next;
    if (after->next)
        after->next->prev = t;
    else
        l->tail = t;
    after->next = t;
    l->n++;
}

/* ---- task memory -------------------------------------------------------- */

void plx_task_drop_payload(task_t *t)
{
    for (uint32_t i = 0; i < t->nbufs; i++)
        plx_buf_unref(&t->bufs[i]);
    free(t->bufs);
    t->bufs = NULL;
    t->nbufs = 0;
    if (!t->parent)   /* a piece's spec is its parent's */
        free(t->spec.data);
    free(t->recovery.data);
    t->spec.data = t->recovery.data = NULL;
    t->spec.len = t->recovery.len = 0;
}

void task_drop_result(task_t *t)
{
    plx_envelope_free(&t->res_env);
    plx_msg_destroy(&t->res_msg);
    t->result = NULL;
}

owner_t *task_owner_of(peer_t *p)
{
    if (!p->owner) {
        p->owner = calloc(1, sizeof *p->owner);
        if (!p->owner)
            return NULL;
        p->owner->peer = p;
        p->owner->refs = 1;   /* the peer's own */
    }
    p->owner->refs++;
    return p->owner;
}

void task_owner_unref(owner_t **op)
{
    owner_t *o = *op;
    *op = NULL;
    if (o && --o->refs == 0)
        free(o);
}

void task_free(task_t *t)
{
    task_owner_unref(&t->owner);
    plx_task_drop_payload(t);
    task_drop_result(t);
    free(t->rejected);
    free(t->dependents);
    free(t->waiters);
    free(t->pieces);
    free(t);
}

/* ---- lookup and the queue ----------------------------------------------- */

task_t *task_lookup(sched_t *s, uint64_t id)
{
    return id & PIECE_BIT ? NULL : plx_idmap_get(s->tasks, id);
}

void task_enqueue(plx_controller_t *c, task_t *t, int front)
{
    t->state = T_QUEUED;
    tl_push(&c->sched->queue, t, front);
    if (t->parent)
        c->sched->pieces_queued++;
}

/* ---- lifecycle ---------------------------------------------------------- */

int sched_new(plx_controller_t *c)
{
    c->sched = calloc(1, sizeof *c->sched);
    if (!c->sched || !(c->sched->tasks = plx_idmap_new())) {
        free(c->sched);
        c->sched = NULL;
        return PLX_ENOMEM;
    }
    c->sched->next_id = 1;
    c->sched->next_piece = PIECE_BIT | 1;
    if (sched_policy_init(c) != PLX_OK) {
        plx_idmap_destroy(&c->sched->tasks);
        free(c->sched);
        c->sched = NULL;
        return PLX_ENOMEM;
    }
    return PLX_OK;
}

static void free_task_cb(uint64_t id, void *value, void *ud) { task_free(value); }

void sched_destroy(plx_controller_t *c)
{
    if (!c->sched)
        return;
    sched_policy_fini(c);
    plx_idmap_foreach(c->sched->tasks, free_task_cb, NULL);
    plx_idmap_destroy(&c->sched->tasks);
    free(c->sched);
    c->sched = NULL;
}
