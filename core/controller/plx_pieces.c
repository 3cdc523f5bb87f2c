/*
 * Chunks in pieces. A "chunk" task of a map holds a list of argument
 * tuples (the client says how many: TaskSpec.elements). When the
 * scheduler decides that one chunk is too much for one engine (its
 * measured cost is long, or an engine would idle while it waits), the
 * chunk becomes a split parent and its elements are run as pieces: each
 * piece is an internal task (PIECE_BIT id) sent with the parent's spec and
 * buffers and the range it runs (TaskRun.first/count), scheduled, stolen,
 * retried and timed out like any task. A piece can be cut again.
 *
 * The client still sees one task: once every piece has ended, the parent
 * finishes with their results joined (one list value per piece, in list
 * order; the client concatenates them) or, if a piece failed, with the
 * failure of the first failed piece in list order. Nothing is re-encoded:
 * the pieces' values are moved into one envelope whose buffers are the
 * pieces' buffers, by reference.
 */
#include "plx_tasks_int.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_strbuf.h"

const task_t *pieces_payload(const task_t *t)
{
    return t->parent ? t->parent : t;
}

static int copy_rejected(task_t *to, const task_t *from)
{
    if (!from->nrejected)
        return 0;
    to->rejected = malloc(from->nrejected * sizeof *to->rejected);
    if (!to->rejected)
        return -1;
    memcpy(to->rejected, from->rejected, from->nrejected * sizeof *to->rejected);
    to->nrejected = from->nrejected;
    return 0;
}

/* A new piece of parent for elements first .. first+elems-1, scheduled
 * like `like` (the chunk or the piece it is cut from). Not queued. */
static task_t *piece_new(plx_controller_t *c, task_t *parent, const task_t *like,
                         uint32_t first, uint32_t elems)
{
    sched_t *s = c->sched;
    task_t *p = calloc(1, sizeof *p);
    if (!p || copy_rejected(p, like) != 0 || plx_idmap_put(s->tasks, s->next_piece, p) != PLX_OK) {
        if (p)
            free(p->rejected);
        free(p);
        return NULL;
    }
    p->id = s->next_piece++;
    p->parent = parent;
    p->first = first;
    p->elems = elems;
    p->spec = parent->spec;   /* shared, freed with the parent */
    p->key = parent->key;
    p->payload = parent->payload;
    p->splittable = 1;
    p->retries_left = like->retries_left;
    p->submitted = parent->submitted;
    p->unmet_since = like->unmet_since;
    p->state = T_DONE;   /* until queued */
    return p;
}

static void piece_forget(plx_controller_t *c, task_t *p)
{
    plx_idmap_del(c->sched->tasks, p->id);
    task_free(p);
}

/* Insert p into parent's pieces right after `after` (NULL: at the front). */
static int parent_insert(task_t *parent, const task_t *after, task_t *p)
{
    task_t **np = realloc(parent->pieces, (parent->npieces + 1) * sizeof *np);
    if (!np)
        return -1;
    parent->pieces = np;
    size_t at = 0;
    if (after)
        while (at < parent->npieces && parent->pieces[at++] != after)
            ;
    memmove(np + at + 1, np + at, (parent->npieces - at) * sizeof *np);
    np[at] = p;
    parent->npieces++;
    parent->pieces_left++;
    return 0;
}

/* A whole queued chunk becomes a split parent with pieces [0, keep) and
 * [keep, elems), queued where it was. */
static task_t *split_chunk(plx_controller_t *c, task_t *t, uint32_t keep)
{
    sched_t *s = c->sched;
    task_t *a = piece_new(c, t, t, 0, keep);
    task_t *b = a ? piece_new(c, t, t, keep, t->elems - keep) : NULL;
    if (!b || parent_insert(t, NULL, a) != 0 || parent_insert(t, a, b) != 0) {
        if (a)
            piece_forget(c, a);
        if (b)
            piece_forget(c, b);
        free(t->pieces);
        t->pieces = NULL;
        t->npieces = t->pieces_left = 0;
        return t;
    }
    a->attempt = b->attempt = t->attempt;
    tl_insert_after(t, a);
    tl_insert_after(a, b);
    tl_remove(t);
    a->state = b->state = T_QUEUED;
    s->pieces_queued += 2;
    t->state = T_SPLIT;
    tl_push(&s->split, t, 0);
    PLX_DEBUG("task %llu: chunk of %u elements cut in pieces of %u and %u",
              (unsigned long long)t->id, t->elems, keep, t->elems - keep);
    return a;
}

task_t *pieces_cut(plx_controller_t *c, task_t *t, uint32_t keep)
{
    if (keep == 0 || keep >= t->elems || t->state != T_QUEUED)
        return t;
    if (!t->parent)
        return split_chunk(c, t, keep);
    task_t *b = piece_new(c, t->parent, t, t->first + keep, t->elems - keep);
    if (!b)
        return t;
    if (parent_insert(t->parent, t, b) != 0) {
        piece_forget(c, b);
        return t;
    }
    b->attempt = t->attempt;
    t->elems = keep;
    tl_insert_after(t, b);
    b->state = T_QUEUED;
    c->sched->pieces_queued++;
    return t;
}

/* ---- joining ---------------------------------------------------------------- */

/* A piece's printed text after the others', within the cap an engine
 * keeps for one task, so that the joined result still fits an envelope;
 * from the first piece that does not fit (*cut), none is added. */
#define JOINED_TEXT_MAX (4u << 20)
static void join_text(plx_strbuf_t *b, const char *text, bool *cut)
{
    size_t n = text ? strlen(text) : 0;
    if (*cut)
        return;
    if (b->len + n <= JOINED_TEXT_MAX) {
        plx_strbuf_put(b, text ? text : "", n);
        return;
    }
    plx_strbuf_puts(b, "\n[plexa: the output of later pieces was cut]\n");
    *cut = true;
}

/* The parent's result: every piece's values in list order, in one
 * envelope whose buffers are the pieces' buffers. 0, or -1 on ENOMEM. */
static int join_values(plx_controller_t *c, task_t *parent)
{
    size_t nvals = 0;
    for (size_t i = 0; i < parent->npieces; i++)
        nvals += parent->pieces[i]->result->n_values;
    Plexa__Value **vals = calloc(nvals ? nvals : 1, sizeof *vals);
    if (!vals)
        return -1;
    Plexa__TaskResult r = PLEXA__TASK_RESULT__INIT;
    size_t k = 0;
    uint32_t shift = 0;
    for (size_t i = 0; i < parent->npieces; i++) {
        const task_t *p = parent->pieces[i];
        for (size_t j = 0; j < p->result->n_values; j++) {
            plx_value_shift_bufs(p->result->values[j], shift);
            vals[k++] = p->result->values[j];
        }
        shift += p->res_msg ? p->res_msg->nbufs : 0;
        if (p->result->has_started && (!r.has_started || p->result->started < r.started)) {
            r.has_started = 1;
            r.started = p->result->started;
        }
    }
    r.has_task_id = r.has_status = r.has_engine_id = 1;
    r.task_id = parent->id;
    r.status = PLEXA__TASK_STATUS__TASK_OK;
    r.engine_id = parent->pieces[0]->result->engine_id;
    r.n_values = nvals;
    r.values = vals;
    plx_strbuf_t out = PLX_STRBUF_INIT, err = PLX_STRBUF_INIT;
    bool out_cut = false, err_cut = false;
    for (size_t i = 0; i < parent->npieces; i++) {
        const Plexa__TaskResult *pr = parent->pieces[i]->result;
        join_text(&out, pr->stdout, &out_cut);
        join_text(&err, pr->stderr, &err_cut);
    }
    r.stdout = out.len ? (char *)plx_strbuf_str(&out) : NULL;
    r.stderr = err.len ? (char *)plx_strbuf_str(&err) : NULL;
    Plexa__Envelope env;
    plx_envelope_set(&env, ctl_next_id(c), 0, PLEXA__ENVELOPE__BODY_TASK_RESULT, &r);
    plx_msg_t *m = out.oom || err.oom ? NULL : plx_envelope_pack(&env, NULL);
    plx_strbuf_free(&out);
    plx_strbuf_free(&err);
    free(vals);
    for (size_t i = 0; m && i < parent->npieces; i++) {
        const plx_msg_t *pm = parent->pieces[i]->res_msg;
        for (uint32_t b = 0; pm && b < pm->nbufs; b++)
            if (plx_msg_add_buf(m, pm->bufs[b]) != PLX_OK) {
                plx_msg_destroy(&m);
                break;
            }
    }
    Plexa__Envelope *ue = m ? plx_envelope_unpack(m, NULL) : NULL;
    if (!ue) {
        plx_msg_destroy(&m);
        return -1;
    }
    parent->res_env = ue;
    parent->res_msg = m;
    parent->result = ue->task_result;
    return 0;
}

/* The parent fails as its piece p did: take p's result over. */
static void take_failure(task_t *parent, task_t *p)
{
    if (p->result == &p->synth) {
        memcpy(parent->synth_text, p->synth_text, sizeof parent->synth_text);
        parent->synth = p->synth;
        parent->synth_err = p->synth_err;
        if (parent->synth.error) {
            parent->synth.error = &parent->synth_err;
            parent->synth_err.evalue = parent->synth_err.traceback = parent->synth_text;
        }
        parent->result = &parent->synth;
    } else {
        parent->res_env = p->res_env;
        parent->res_msg = p->res_msg;
        parent->result = p->result;
        p->res_env = NULL;
        p->res_msg = NULL;
        p->result = NULL;
    }
}

static void join(plx_controller_t *c, task_t *parent)
{
    task_t *bad = NULL;
    for (size_t i = 0; i < parent->npieces && !bad; i++)
        if (parent->pieces[i]->status != PLEXA__TASK_STATUS__TASK_OK)
            bad = parent->pieces[i];
    task_drop_result(parent);
    int joined = !bad && !parent->abort_pending && join_values(c, parent) == 0;
    if (!joined && !bad && !parent->abort_pending)
        PLX_ERROR("out of memory joining the %zu pieces of task %llu", parent->npieces,
                  (unsigned long long)parent->id);
    if (bad && !parent->abort_pending)
        take_failure(parent, bad);
    for (size_t i = 0; i < parent->npieces; i++)
        piece_forget(c, parent->pieces[i]);
    free(parent->pieces);
    parent->pieces = NULL;
    parent->npieces = parent->pieces_left = 0;
    if (parent->abort_pending)
        task_aborted(c, parent, "");
    else if (!joined && !bad)
        task_fail(c, parent, PLEXA__TASK_STATUS__TASK_FAILED, "MemoryError",
                  "out of memory joining the results of task %llu",
                  (unsigned long long)parent->id);
    else
        task_finish(c, parent);
}

void pieces_done(plx_controller_t *c, task_t *p)
{
    task_t *parent = p->parent;
    if (--parent->pieces_left == 0)
        join(c, parent);
}

void pieces_abort(plx_controller_t *c, task_t *parent)
{
    parent->abort_pending = 1;
    /* Failing the last piece joins the parent and frees every piece: work
     * from a copy of their ids. */
    size_t n = parent->npieces;
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        PLX_ERROR("out of memory aborting task %llu", (unsigned long long)parent->id);
        return;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = parent->pieces[i]->id;
    for (size_t i = 0; i < n; i++) {
        task_t *p = plx_idmap_get(c->sched->tasks, ids[i]);
        if (!p || p->state == T_DONE || p->abort_pending)
            continue;
        p->abort_pending = 1;
        if (p->state == T_RUNNING)
            sched_interrupt(c, p);
        else
            task_aborted(c, p, " before it ran");
    }
    free(ids);
}
