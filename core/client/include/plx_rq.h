/*
 * The protocol in one place: a builder for every request a client sends
 * and a decoder for every reply it reads, in plain C types. The C API
 * (plexa/client.h) and plexa's Python extension both go through these,
 * so that a change to proto/plexa.proto is made here once. Like the rest
 * of plx_client_int.h this is exported (PLX_API) for the extension only
 * and is no stable interface.
 *
 * Values travel as plx_value_t (plexa/client.h): already encoded, their
 * payloads in reference-counted buffers that the request's frame
 * references, never copies. Strings, name and id arrays are only read
 * while the call runs.
 *
 *   plx_rq.h          this: builders (plx_rq_*), replies (plx_reply_*)
 *   plx_rqb.h         inside libplexa: the envelopes the builders fill
 *   plx_rq_build.c    the multi-engine and task requests' envelopes
 *   plx_rq_task.c     TaskSubmit's (buffer runs shared between tasks)
 *   plx_rq_submit.c   sending them: the plx_rq_* functions below
 *   plx_rq_decode.c   the replies
 *
 * Every builder submits its request on c like plx_client_submit (same
 * ordering and failures) and on PLX_OK hands back *req, which the caller
 * owns (plx_request_destroy). t NULL or t->all means every engine.
 */
#ifndef PLX_RQ_H
#define PLX_RQ_H

#include <stddef.h>
#include <stdint.h>

#include "plexa/client.h"
#include "plx_buf.h"

typedef struct plx_request plx_request_t;

/* ---- values over buffers -------------------------------------------------------- */
/*
 * Encoded values whose payloads are buffers the caller made (the
 * extension's exports of Python objects), and their payloads read back
 * without a copy. Each constructor takes its own references; NULL on
 * ENOMEM (and, for an array, with err set when the shape does not match
 * nbytes or the dtype is not a sized numpy dtype.str).
 */
PLX_API plx_value_t *plx_value_bytes_over(plx_buf_t *b);
PLX_API plx_value_t *plx_value_array_over(plx_buf_t *buf, size_t offset, size_t nbytes,
                                          const char *dtype_str, size_t ndim,
                                          const uint64_t *shape, int fortran, plx_err_t *err);
PLX_API plx_value_t *plx_value_pickle_over(plx_buf_t *data, plx_buf_t *const *oob, size_t noob);
/* The payload of a bytes, array or pickle value: its buffer (borrowed)
 * and the bytes [*offset, *offset + *len) of it; NULL for other kinds. */
PLX_API plx_buf_t *plx_value_payload(const plx_value_t *v, size_t *offset, size_t *len);
/* A pickle's out-of-band buffers (borrowed); NULL and *n 0 otherwise. */
PLX_API plx_buf_t *const *plx_value_pickle_oob(const plx_value_t *v, size_t *n);

/* ---- multi-engine requests ------------------------------------------------ */

PLX_API int plx_rq_get_ids(plx_client_t *c, plx_request_t **req, plx_err_t *err);
PLX_API int plx_rq_execute(plx_client_t *c, const plx_targets_t *t, const char *code,
                           plx_request_t **req, plx_err_t *err);
/* names[i] = values[i] for i < n; PLX_EINVAL for a NULL or empty name. */
PLX_API int plx_rq_push(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                        const plx_value_t *const *values, size_t n, plx_request_t **req,
                        plx_err_t *err);
/* plx_rq_push for a caller that waits for the push at once (a blocking
 * scatter's piece): to one engine, values of 8 MiB and more are served by
 * this client and fetched by the engine, not sent through the controller;
 * an engine that cannot fetch them gets them pushed again through the
 * controller before the request completes (docs/shared-memory.md). */
PLX_API int plx_rq_push_direct(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                               const plx_value_t *const *values, size_t n, plx_request_t **req,
                               plx_err_t *err);
PLX_API int plx_rq_pull(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                        size_t n, plx_request_t **req, plx_err_t *err);
/* An engine helper (keys, reset, get_result, map, apply) with args. */
PLX_API int plx_rq_call(plx_client_t *c, const plx_targets_t *t, const char *method,
                        const plx_value_t *const *args, size_t n, plx_request_t **req,
                        plx_err_t *err);
PLX_API int plx_rq_clear_queue(plx_client_t *c, const plx_targets_t *t, plx_request_t **req,
                               plx_err_t *err);
PLX_API int plx_rq_queue_status(plx_client_t *c, const plx_targets_t *t, plx_request_t **req,
                                plx_err_t *err);
/* Cancel requests of this client (plx_request_id) that no engine has been
 * sent yet, all or nothing: they fail with QueueCleared and the reply is
 * an empty multi-engine reply; an Error (PLX_EINVAL) when one has started
 * or finished, and then none is cancelled. Protocol 3. */
PLX_API int plx_rq_cancel(plx_client_t *c, const uint64_t *request_ids, size_t n,
                          plx_request_t **req, plx_err_t *err);
/* Stop the targets; controller non-zero: the controller too, once it answered. */
PLX_API int plx_rq_shutdown(plx_client_t *c, const plx_targets_t *t, int controller,
                            plx_request_t **req, plx_err_t *err);
/* KeyboardInterrupt in whatever the targets run now (nothing queued). */
PLX_API int plx_rq_interrupt(plx_client_t *c, const plx_targets_t *t, plx_request_t **req,
                             plx_err_t *err);

/* ---- task requests --------------------------------------------------------- */

/* A flag a task spec may leave unsaid (the controller's default applies). */
#define PLX_SPEC_UNSET (-1)

/*
 * One task. kind "map" (args: function, args tuple, kwargs dict or None),
 * "chunk" (function, list of args tuples) or "string" (code, push pairs or
 * None, pull names). Values are borrowed; passing the same plx_value_t in
 * several specs of one submission encodes it once (a map's function).
 */
typedef struct plx_task_spec {
    const char                  *kind;
    const plx_value_t *const    *args;
    size_t                       nargs;
    int64_t                      elements;       /* chunk: argument tuples; < 0 unsaid */
    int                          clear_before;   /* 0, 1 or PLX_SPEC_UNSET */
    int                          clear_after;    /* likewise */
    int                          has_retries;
    int32_t                      retries;
    const plx_value_t           *depend;         /* predicate(properties), NULL: none */
    const uint64_t              *after;          /* tasks that must finish first */
    size_t                       nafter;
    const struct plx_task_spec  *recovery;       /* NULL: none; has none of its own */
} plx_task_spec_t;

/* A spec with everything unsaid: fill kind and args. */
PLX_API plx_task_spec_t plx_task_spec_init(void);

/*
 * Submit specs[0..n) in one message; the controller gives them
 * consecutive ids (plx_reply_task_ids). first_id non-zero: the tasks take
 * first_id.. of the block plx_rq_task_reserve gave this connection and go
 * quietly: no reply, req may be NULL and is not set. PLX_ELIMIT when the
 * tasks need more frame buffers than one message may carry.
 */
PLX_API int plx_rq_task_submit(plx_client_t *c, const plx_task_spec_t *specs, size_t n,
                               uint64_t first_id, plx_request_t **req, plx_err_t *err);
PLX_API int plx_rq_task_reserve(plx_client_t *c, uint32_t count, plx_request_t **req,
                                plx_err_t *err);
/* block: answer once all are finished (else at once, unfinished ones
 * PENDING); release: the caller keeps the results (may be evicted first). */
PLX_API int plx_rq_task_wait(plx_client_t *c, const uint64_t *ids, size_t n, int block,
                             int release, plx_request_t **req, plx_err_t *err);
PLX_API int plx_rq_task_abort(plx_client_t *c, const uint64_t *ids, size_t n,
                              plx_request_t **req, plx_err_t *err);
/* Abort the tasks only if none has been sent to an engine (all or nothing;
 * else an Error, PLX_EINVAL, "task N already started"): a future's
 * cancel(). Acknowledged like task_abort. Protocol 3. */
PLX_API int plx_rq_task_cancel(plx_client_t *c, const uint64_t *ids, size_t n,
                               plx_request_t **req, plx_err_t *err);
/* n 0: every finished task. */
PLX_API int plx_rq_task_clear(plx_client_t *c, const uint64_t *ids, size_t n,
                              plx_request_t **req, plx_err_t *err);
PLX_API int plx_rq_task_queue_status(plx_client_t *c, int verbose, plx_request_t **req,
                                     plx_err_t *err);

/* ---- replies ---------------------------------------------------------------- */
/*
 * Each decoder reads a completed request. It returns the request's own
 * failure (an Error reply, a lost connection, PLX_EAGAIN while pending),
 * PLX_EPROTO when the controller answered with another kind of message,
 * or PLX_ENOMEM. Values reference the reply's buffers (no copy) and stay
 * valid after the request is destroyed.
 */

/* One engine's part of a multi-engine reply. Strings are owned by the
 * enclosing plx_multi_reply_t. */
typedef struct plx_engine_reply {
    int32_t       engine_id;     /* -1 when the reply does not say */
    char         *method;        /* "execute", "push", a call's method...; NULL if unsaid */
    int           has_execute;   /* execute, get_result, map: number, input, stdout, stderr */
    int32_t       number;        /* the engine's In [n] */
    char         *input;         /* these three: never NULL, "" when absent */
    char         *stdout_text;
    char         *stderr_text;
    size_t        nvalues;       /* pull: one per name; call: the helper's results */
    plx_value_t **values;
    char         *ename;         /* NULL, or what the engine raised: type name ... */
    char         *evalue;        /* ... str(exception) ... */
    char         *traceback;     /* ... and the remote traceback */
    char         *fault;         /* NULL, or why this engine's values are unreadable
                                  * (a malformed reply; nvalues is then 0) */
} plx_engine_reply_t;

/* One entry per target engine, in target order. */
typedef struct plx_multi_reply {
    size_t              n;
    plx_engine_reply_t *r;
} plx_multi_reply_t;

/* execute, push, pull, call, clear_queue, shutdown, interrupt. */
PLX_API int plx_reply_multi(plx_request_t *req, plx_multi_reply_t **out, plx_err_t *err);
PLX_API void plx_multi_reply_destroy(plx_multi_reply_t **m);

/* What one engine runs (pending: sent to it) and what waits in the
 * controller for it (queue), as request descriptions. */
typedef struct plx_engine_queue {
    int32_t engine_id;
    size_t  npending;
    char  **pending;
    size_t  nqueue;
    char  **queue;
} plx_engine_queue_t;

typedef struct plx_queue_status {
    size_t              n;
    plx_engine_queue_t *e;
} plx_queue_status_t;

PLX_API int plx_reply_queue_status(plx_request_t *req, plx_queue_status_t **out,
                                   plx_err_t *err);
PLX_API void plx_queue_status_destroy(plx_queue_status_t **q);

/* task_submit (not quiet) and task_reserve: ids first..first+count-1
 * (first 0 and count 0 when the controller did not say). */
PLX_API int plx_reply_task_ids(plx_request_t *req, uint64_t *first, uint32_t *count,
                               plx_err_t *err);
/* task_abort and task_clear: PLX_OK once acknowledged. */
PLX_API int plx_reply_ack(plx_request_t *req, plx_err_t *err);

/* The wire's TaskStatus has one more than plx_task_status_t: an engine
 * declined the task (its depend() said no). */
#define PLX_TASK_REJECTED 3

/* One task's outcome as the controller reports it. */
typedef struct plx_task_reply {
    uint64_t      task_id;
    int           has_status;
    int           status;          /* PLX_TASK_*, or PLX_TASK_REJECTED; see has_status */
    int           has_engine_id;
    int32_t       engine_id;
    size_t        nvalues;         /* map [value]; chunk [list, ...]; string [dict, out, err] */
    plx_value_t **values;
    char         *ename;           /* NULL, or the error: remote or the controller's reason */
    char         *evalue;
    char         *traceback;
    char         *fault;           /* NULL, or why the values are unreadable (nvalues 0) */
    char         *stdout_text;     /* what it printed (protocol 4); never NULL, may be "" */
    char         *stderr_text;
    int           has_submitted, has_started, has_completed;
    double        submitted, started, completed;   /* unix times */
} plx_task_reply_t;

/* In the order of the ids asked for. */
typedef struct plx_task_replies {
    size_t            n;
    plx_task_reply_t *r;
} plx_task_replies_t;

PLX_API int plx_reply_task_results(plx_request_t *req, plx_task_replies_t **out,
                                   plx_err_t *err);
PLX_API void plx_task_replies_destroy(plx_task_replies_t **t);

/* The task queue: counts and (verbose) task ids, by state. */
typedef enum plx_tq_state {
    PLX_TQ_PENDING, PLX_TQ_SCHEDULED, PLX_TQ_SUCCEEDED, PLX_TQ_FAILED, PLX_TQ_NSTATES
} plx_tq_state_t;

typedef struct plx_task_queue {
    uint64_t  count[PLX_TQ_NSTATES];
    size_t    nids[PLX_TQ_NSTATES];
    uint64_t *ids[PLX_TQ_NSTATES];
} plx_task_queue_t;

PLX_API int plx_reply_task_queue_status(plx_request_t *req, plx_task_queue_t **out,
                                        plx_err_t *err);
PLX_API void plx_task_queue_destroy(plx_task_queue_t **q);

#endif
