/*
 * The task scheduler's internals, shared by its files (not installed):
 *
 *   plx_tasks.c          tasks: their lists, memory, lookup, the queue;
 *                        the scheduler's creation and end
 *   plx_task_requests.c  client requests (submit, reserve, wait, abort,
 *                        clear, queue status), cancelling on revocation
 *   plx_task_results.c   a task's end, finished results, their retention
 *                        and the waiters for them
 *   plx_sched.c          dispatch: the policies (adaptive, fifo,
 *                        leastload), prefetch depth, engine events
 *                        (started, result, gone), work stealing
 *   plx_pieces.c         chunks cut into pieces, and the pieces' results
 *                        joined
 *   plx_taskcost.c       what tasks cost (its own header, plx_taskcost.h)
 *
 * A task is on at most one list at a time: the queue, its engine's
 * running list, the split chunks, or one of the two finished lists.
 */
#ifndef PLX_TASKS_INT_H
#define PLX_TASKS_INT_H

#include "plx_controller_int.h"
#include "plx_idmap.h"
#include "plx_taskcost.h"

/* Piece ids live above every id a client can get (client ids count up
 * from 1): a piece is internal, and a client naming one hears "unknown". */
#define PIECE_BIT (1ull << 62)

enum tstate { T_WAITING, T_QUEUED, T_RUNNING, T_SPLIT, T_DONE };

struct task {
    uint64_t            id;
    enum tstate         state;
    int                 status;          /* PLEXA__TASK_STATUS__* once done */
    int                 retries_left;
    uint32_t            attempt;
    int                 abort_pending;
    int                 revoked;         /* cancelled: its capability was revoked */
    unsigned            cap_epoch;       /* the task capability's revocations at submission */
    int                 delivered;
    int                 used_recovery;
    int                 recovery_fresh;  /* recovery spec swapped in, not yet run */
    ProtobufCBinaryData spec;            /* packed TaskSpec, buf_base 0 (pieces: the parent's) */
    ProtobufCBinaryData recovery;        /* packed recovery TaskSpec, or empty */
    plx_buf_t         **bufs;            /* pieces: none, they send their parent's */
    uint32_t            nbufs;
    uint64_t            bytes;           /* memory held by the finished result */
    engine_t           *eng;
    int32_t            *rejected;        /* engines whose depend() said no */
    size_t              nrejected;
    double              unmet_since;     /* every engine rejected it since then */
    size_t              deps_left;       /* unfinished tasks in `after` */
    task_t            **dependents;
    size_t              ndependents;
    waiter_t          **waiters;
    size_t              nwaiters;
    double              submitted, started;   /* unix time */
    Plexa__Envelope    *res_env;         /* the engine's TaskResult */
    plx_msg_t          *res_msg;
    Plexa__TaskResult  *result;          /* into res_env, or &synth */
    Plexa__TaskResult   synth;
    Plexa__RemoteError  synth_err;
    char                synth_text[256];
    task_t             *prev, *next;     /* on `list` */
    tlist_t            *list;
    /* scheduling (plx_sched.c) */
    uint64_t            key;             /* cost key (plx_taskcost.h) */
    uint32_t            elems;           /* elements it runs: a chunk's (piece's) tuples, else 1 */
    uint64_t            payload;         /* bytes of its buffers */
    double              est;             /* estimated seconds, as added to its engine's backlog */
    double              sent_at;         /* ev_now when sent to eng */
    double              started_at;      /* ev_now of the engine's TaskStarted; 0: not started */
    int                 sent_idle;       /* eng held nothing when it was sent */
    int                 steal_pending;   /* asked back from eng, no answer yet */
    /* pieces (plx_pieces.c) */
    int                 splittable;      /* a chunk whose list may be cut */
    uint32_t            first;           /* a piece: its first element in the parent's list */
    task_t             *parent;          /* a piece: the split chunk */
    owner_t            *owner;           /* who submitted it (pieces: see the parent's) */
    task_t            **pieces;          /* a split chunk: its pieces in list order */
    size_t              npieces, pieces_left;
};

struct waiter {
    peer_t   *peer;
    uint64_t  reply_to;
    uint64_t *ids;
    size_t    n;
    size_t    left;       /* tasks still unfinished */
    waiter_t *prev, *next;
};

/* One TaskSteal sent to a victim engine, until it answers. */
typedef struct steal {
    uint64_t      msg_id;     /* the TaskSteal envelope */
    int32_t       thief;      /* the idle engine it is for */
    uint64_t     *ids;
    size_t        n;
    struct steal *next;
} steal_t;

typedef enum { POLICY_ADAPTIVE, POLICY_FIFO, POLICY_LEASTLOAD } policy_t;

struct sched {
    plx_idmap_t    *tasks;
    uint64_t        next_id;       /* the next id to assign (ids start at 1) */
    uint64_t        next_piece;    /* pieces: PIECE_BIT | n */
    tlist_t         queue;         /* T_QUEUED, FIFO */
    tlist_t         split;         /* T_SPLIT chunks, their pieces elsewhere */
    tlist_t         done_new;      /* finished, not yet delivered */
    tlist_t         done_seen;     /* finished and delivered */
    uint64_t        waiting, running, succeeded, failed;
    uint64_t        pieces_queued, pieces_running;
    uint64_t        finished_total;   /* ever, for rates (succeeded/failed drop on eviction) */
    uint64_t        result_bytes;
    uint64_t        unstarted;     /* over all engines: something to steal */
    uint32_t        rr;            /* round-robin start among equal engines */
    policy_t        policy;
    int             cap;           /* most tasks an engine holds ahead */
    plx_taskcost_t *cost;
    ev_timer        steal_timer;   /* looks again once a thief stops waiting */
};

/* ---- lists (plx_tasks.c) ------------------------------------------------ */
void tl_push(tlist_t *l, task_t *t, int front);
void tl_remove(task_t *t);
/* Insert t right after `after` on after's list. */
void tl_insert_after(task_t *after, task_t *t);

/* ---- plx_tasks.c -------------------------------------------------------- */
/* The client-visible task with this id (pieces are not), or NULL. */
task_t *task_lookup(sched_t *s, uint64_t id);
void task_free(task_t *t);
/* p's owner handle (made on first use), with a reference for the caller;
 * NULL on ENOMEM. */
owner_t *task_owner_of(peer_t *p);
/* Drop a reference (NULL-safe); the last frees the handle. */
void task_owner_unref(owner_t **o);
void task_drop_result(task_t *t);
/* Free the spec and buffers a task is sent with (a finished task keeps
 * only its result). */
void plx_task_drop_payload(task_t *t);
void task_enqueue(plx_controller_t *c, task_t *t, int front);

/* ---- plx_task_results.c ------------------------------------------------- */
/* The task is final: record it, tell waiters and dependents, keep the result. */
void task_finish(plx_controller_t *c, task_t *t);
/* Finish t with a result the controller makes up. */
void task_fail(plx_controller_t *c, task_t *t, int status, const char *ename,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Finish t (or a piece, for its parent) as aborted; how: " before it
 * ran", " while running on engine 3", ... Says so when the reason was a
 * revocation of the capability it was submitted with. */
void task_aborted(plx_controller_t *c, task_t *t, const char *how);
/* Send the results of w's tasks (finished, pending, or gone). */
void plx_task_waiter_reply(plx_controller_t *c, waiter_t *w);
/* Forget a finished task and its result (retention, TaskClear). */
void plx_task_evict_one(sched_t *s, task_t *t);

/* ---- plx_sched.c -------------------------------------------------------- */
int  sched_policy_init(plx_controller_t *c);
void sched_policy_fini(plx_controller_t *c);
/* Send queued tasks to engines, then steal for engines left idle. */
void sched_pump(plx_controller_t *c);
/* Take t off its engine (its counters too). */
void sched_unassign(plx_controller_t *c, task_t *t);
/* Interrupt t where it runs (abort). */
void sched_interrupt(plx_controller_t *c, task_t *t);
/* The task's cost key and element count, from its spec at submission. */
void sched_describe(task_t *t, const Plexa__TaskSpec *spec);

/* ---- plx_pieces.c ------------------------------------------------------- */
/* Chunks heavier than this are never cut: each piece carries the whole
 * chunk's payload. */
#define PLX_SPLIT_MAX_BYTES (1u << 20)
/* Cut t (a queued chunk or piece) after `keep` (1..elems-1) elements: the
 * first ones stay where t is in the queue, a new piece with the rest is
 * queued right behind. A whole chunk becomes a split parent with two
 * pieces. Returns the task holding the first elements (t, or its first
 * piece); on ENOMEM t, unchanged. */
task_t *pieces_cut(plx_controller_t *c, task_t *t, uint32_t keep);
/* A piece reached its end (t->result set, or failed): join the parent
 * once every piece has. */
void pieces_done(plx_controller_t *c, task_t *t);
/* Abort every unfinished piece of a split chunk. */
void pieces_abort(plx_controller_t *c, task_t *parent);
/* The payload a task is sent with: its own, or its parent's. */
const task_t *pieces_payload(const task_t *t);

#endif
