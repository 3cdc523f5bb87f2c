/*
 * The request layer under plexa's client API, for plexa's own Python
 * extension (python/plexa/_native.c). Not a stable interface: it is
 * exported from libplexa.so with PLX_API only so that the extension and
 * the C API share one implementation, and may change with every release.
 *
 * Every call to the controller is a request: a builder of plx_rq.h sends
 * it (the client assigns its id) and hands back a handle, which the caller
 * waits for, polls, or is called back on, then reads with a decoder of
 * plx_rq.h. Blocking calls, non-blocking PendingResults and callbacks are
 * all built from this:
 *
 *     plx_request_t *rq = NULL;
 *     if (plx_rq_execute(c, NULL, "a = 1", &rq, &err) != PLX_OK) ...
 *     rc = plx_request_wait(rq, -1, &err);        // release the GIL around this
 *     if (rc == PLX_OK) rc = plx_request_results(rq, &res, &err);
 *     plx_request_destroy(&rq);
 *
 * A request completes exactly once: with the controller's reply, with the
 * connection's loss (PLX_ECONNECT), with the client's destruction
 * (PLX_ECLOSED), or by plx_request_cancel (PLX_EABORTED). Handles are
 * reference counted and stay valid after their client is destroyed.
 */
#ifndef PLX_CLIENT_INT_H
#define PLX_CLIENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "plexa/client.h"
#include "plx_frame.h"
#include "plx_rq.h"

/* The id the request was sent with (IPython's result_id). */
PLX_API uint64_t plx_request_id(const plx_request_t *req);

/*
 * Wait until the request completes or timeout_s passes (< 0: no limit, 0:
 * just look). Blocks on a condition variable; call it with the GIL
 * released. Returns:
 *   PLX_OK         a reply arrived (the decoders of plx_rq.h read it);
 *   PLX_ETIMEDOUT  still pending (plx_request_done tells it apart from a
 *                  reply that carries PLX_ETIMEDOUT);
 *   < 0 otherwise  the request failed, err says why: an Error reply from
 *                  the controller (its code and message, e.g.
 *                  PLX_EBADENGINE), PLX_ECONNECT, PLX_ECLOSED, PLX_EABORTED.
 * Once complete, every later wait returns the same code and message.
 */
PLX_API int plx_request_wait(plx_request_t *req, double timeout_s, plx_err_t *err);

/* 1 when the request has completed (any outcome), else 0. Never blocks. */
PLX_API int plx_request_done(plx_request_t *req);

/*
 * Completion callback: runs once, on the thread that completes the request
 * (the client's I/O thread for replies and connection loss, the caller's
 * for cancel, destroy, or when set on a request already complete).
 * plx_request_wait on req returns only after the callback has returned;
 * plx_request_done may report 1 while it runs. It must be quick, must not
 * wait (with a timeout other than 0) on this client's requests, nor destroy
 * the client. It may read req (the decoders).
 */
typedef void (*plx_request_cb)(plx_request_t *req, void *ud);

/* Set the completion callback (one per request; a second call replaces a
 * callback that has not run yet). Runs cb at once if already complete. */
PLX_API void plx_request_on_done(plx_request_t *req, plx_request_cb cb, void *ud);

/*
 * Give up on a pending request: it completes with PLX_EABORTED and its
 * reply, if one still comes, is discarded. The controller is not told
 * (the protocol has no abort for multi-engine requests yet). No effect on
 * a completed request.
 */
PLX_API void plx_request_cancel(plx_request_t *req);

/*
 * Drop the caller's handle. A pending request is forgotten, not cancelled:
 * the client discards its reply when it arrives. NULL-safe; NULLs *req.
 */
PLX_API void plx_request_destroy(plx_request_t **req);

/* ---- live output ------------------------------------------------------------ */
/*
 * What engines print while a multi-engine request (execute, map) runs
 * reaches the client before the reply (protocol 4, best effort: the reply
 * still carries everything, these only show it early). A request keeps
 * the pieces in arrival order, up to 16 MiB of text; later pieces are
 * dropped, and a last piece says so.
 */
/* Output.name on the wire <-> plx_output_t.stream: "stdout" 0, "stderr" 1,
 * "display" 2 (anything else reads as stdout). */
#define PLX_OUTPUT_STREAMS 3
PLX_API int plx_output_stream_of(const char *name);
PLX_API const char *plx_output_stream_name(int stream);

typedef struct plx_output {
    int32_t     engine_id;
    int         stream;   /* 0 stdout, 1 stderr, 2 display data: JSON {"data": {mime:
                           * ...}, "metadata": {...}} (engines that speak IPython) */
    const char *text;     /* UTF-8, NUL-terminated; owned by the request */
} plx_output_t;

/*
 * What task task_id, submitted on this connection, has printed so far while
 * it runs (the controller forwards a task's live output to the client that
 * submitted it). Returns 1 with *out and *err (stdout, stderr; malloc'd,
 * the caller frees them) and the engine running it; 0 when nothing is kept
 * for it (it printed nothing yet, or it was forgotten: the client keeps the
 * latest 16 MiB of its tasks' output); PLX_ENOMEM. The task's result holds
 * everything it printed.
 */
PLX_API int plx_client_task_output(plx_client_t *c, uint64_t task_id, int32_t *engine_id,
                                   char **out, char **err);

/*
 * Wait up to timeout_s (< 0: no limit, 0: do not wait) until req has more
 * than `from` pieces or has completed. *n receives how many pieces it has
 * now. Returns 1 when the request has completed (no piece will follow),
 * else 0. Releases nothing: call it with the GIL released.
 */
PLX_API int plx_request_outputs_wait(plx_request_t *req, size_t from, double timeout_s,
                                     size_t *n);

/* Piece i (i < the *n of plx_request_outputs_wait): valid until the
 * request is destroyed. PLX_OK, or PLX_EINVAL for an i it does not have. */
PLX_API int plx_request_output(plx_request_t *req, size_t i, plx_output_t *out);

/*
 * Decode the reply of a completed get_ids request. Same contract as
 * plx_client_get_ids; PLX_EPROTO if the reply is not an id list.
 */
PLX_API int plx_request_ids(plx_request_t *req, int32_t **ids, size_t *n, plx_err_t *err);

/*
 * Decode the reply of a completed execute request into results the caller
 * frees with plx_results_destroy. Same contract as plx_client_execute;
 * PLX_EPROTO if the reply is not a multi-engine reply.
 */
PLX_API int plx_request_results(plx_request_t *req, plx_results_t **out, plx_err_t *err);

/* ---- completion queues ------------------------------------------------------ */
/*
 * A completion queue gathers the completions of the requests it watches
 * for one thread that waits for any of them: plexa._native's callback
 * thread resolves futures as their replies arrive, with no thread per
 * request and no polling. Completions come out in the order they
 * happened, each as the token it was watched with. All calls are
 * thread-safe; plx_cq_wait blocks (call it with the GIL released).
 */
typedef struct plx_cq plx_cq_t;

/* An open, empty queue, owned by the caller (plx_cq_destroy). NULL on ENOMEM. */
PLX_API plx_cq_t *plx_cq_new(plx_err_t *err);

/*
 * Queue token when req completes (at once if it already has). Uses the
 * request's completion callback (plx_request_on_done): a watched request
 * must have no other callback, and is watched once. The queue stays
 * allocated until every watched request has completed, whatever its
 * owner does meanwhile. PLX_ECLOSED once closed, PLX_ENOMEM.
 */
PLX_API int plx_cq_watch(plx_cq_t *cq, plx_request_t *req, uint64_t token, plx_err_t *err);

/* Queue token now, as if a watched request completed (to wake the waiter). */
PLX_API int plx_cq_post(plx_cq_t *cq, uint64_t token, plx_err_t *err);

/*
 * Wait until a completion is queued, the queue is closed, or timeout_s
 * passes (< 0: no limit, 0: just look); then move up to max tokens,
 * oldest first, into tokens[0..*n). PLX_OK (*n is 0 after a timeout), or
 * PLX_ECLOSED once the queue is closed.
 */
PLX_API int plx_cq_wait(plx_cq_t *cq, double timeout_s, uint64_t *tokens, size_t max,
                        size_t *n);

/* Close: wake every waiter (PLX_ECLOSED), drop queued and later completions. */
PLX_API void plx_cq_close(plx_cq_t *cq);

/* Close and drop the caller's queue. NULL-safe; NULLs *cq. */
PLX_API void plx_cq_destroy(plx_cq_t **cq);

#endif
