/*
 * Inside libplexa: the envelopes behind the request builders of plx_rq.h.
 * Each plx_rqb_VERB fills b->env (and b->bufs, the frame buffers its
 * values name) without sending anything; plx_rq_VERB submits it. The
 * split lets tests (tests/client/test_rq.c) check every message without a
 * controller.
 *
 * b borrows the caller's strings and arrays (only read until b is packed)
 * and owns what it allocated: plx_rqb_clear frees it, also after a
 * failure. The Hello is built here too (plx_client.c sends it).
 */
#ifndef PLX_RQB_H
#define PLX_RQB_H

#include "plexa.pb-c.h"
#include "plx_frame.h"
#include "plx_rq.h"

typedef struct plx_rqb {
    Plexa__Envelope env;
    Plexa__Targets  tg;
    union {
        Plexa__Hello           hello;
        Plexa__GetIds          get_ids;
        Plexa__Execute         execute;
        Plexa__Push            push;
        Plexa__Pull            pull;
        Plexa__Call            call;
        Plexa__ClearQueue      clear_queue;
        Plexa__QueueStatus     queue_status;
        Plexa__Shutdown        shutdown;
        Plexa__Interrupt       interrupt;
        Plexa__TaskSubmit      task_submit;
        Plexa__TaskReserve     task_reserve;
        Plexa__TaskWait        task_wait;
        Plexa__TaskAbort       task_abort;
        Plexa__TaskClear       task_clear;
        Plexa__TaskQueueStatus task_queue_status;
    } body;
    plx_msg_t      *bufs;     /* the frame's buffers, in order (a list, never sent) */
    void          **mem;      /* blocks freed by plx_rqb_clear */
    size_t          nmem, capmem;
    Plexa__Value  **wire;     /* Values filled by plx_value_to_wire: cleared, then freed */
    size_t          nwire, capwire;
} plx_rqb_t;

/* An empty builder (no body yet). PLX_ENOMEM when its buffer list cannot
 * be had; b is then still safe to clear. */
int plx_rqb_init(plx_rqb_t *b, plx_err_t *err);
void plx_rqb_clear(plx_rqb_t *b);

/* A zeroed block of n * size bytes owned by b; NULL on ENOMEM. */
void *plx_rqb_alloc(plx_rqb_t *b, size_t n, size_t size);
/* v in wire form, its payload buffers appended to msg; owned by b. */
Plexa__Value *plx_rqb_value(plx_rqb_t *b, const plx_value_t *v, plx_msg_t *msg, plx_err_t *err);

int plx_rqb_hello(plx_rqb_t *b, plx_client_role_t role, const char *token, const char *hostname,
                  int32_t pid, plx_err_t *err);
int plx_rqb_get_ids(plx_rqb_t *b, plx_err_t *err);
int plx_rqb_execute(plx_rqb_t *b, const plx_targets_t *t, const char *code, plx_err_t *err);
int plx_rqb_push(plx_rqb_t *b, const plx_targets_t *t, const char *const *names,
                 const plx_value_t *const *values, size_t n, plx_err_t *err);
/* A push of wire values whose buffers are bufs' (referenced): the same
 * values again, as a served push failed (plx_direct_push.c). */
int plx_rqb_push_wire(plx_rqb_t *b, const plx_targets_t *t, char *const *names,
                      Plexa__Value *const *vals, size_t n, const plx_msg_t *bufs, plx_err_t *err);
/* The push built in b says its values are served at url (Push.served_at);
 * only: it carries their names alone (each value none, no buffer). */
int plx_rqb_push_served(plx_rqb_t *b, const char *url, int only, plx_err_t *err);
int plx_rqb_pull(plx_rqb_t *b, const plx_targets_t *t, const char *const *names, size_t n,
                 plx_err_t *err);
int plx_rqb_call(plx_rqb_t *b, const plx_targets_t *t, const char *method,
                 const plx_value_t *const *args, size_t n, plx_err_t *err);
int plx_rqb_clear_queue(plx_rqb_t *b, const plx_targets_t *t, plx_err_t *err);
/* ClearQueue of these requests only (a future's cancel); ids borrowed. */
int plx_rqb_cancel(plx_rqb_t *b, const uint64_t *request_ids, size_t n, plx_err_t *err);
int plx_rqb_queue_status(plx_rqb_t *b, const plx_targets_t *t, plx_err_t *err);
int plx_rqb_shutdown(plx_rqb_t *b, const plx_targets_t *t, int controller, plx_err_t *err);
int plx_rqb_interrupt(plx_rqb_t *b, const plx_targets_t *t, plx_err_t *err);

/* plx_rq_task.c */
int plx_rqb_task_submit(plx_rqb_t *b, const plx_task_spec_t *specs, size_t n,
                        uint64_t first_id, plx_err_t *err);
int plx_rqb_task_reserve(plx_rqb_t *b, uint32_t count, plx_err_t *err);
int plx_rqb_task_wait(plx_rqb_t *b, const uint64_t *ids, size_t n, int block, int release,
                      plx_err_t *err);
int plx_rqb_task_abort(plx_rqb_t *b, const uint64_t *ids, size_t n, int queued_only,
                       plx_err_t *err);
int plx_rqb_task_clear(plx_rqb_t *b, const uint64_t *ids, size_t n, plx_err_t *err);
int plx_rqb_task_queue_status(plx_rqb_t *b, int verbose, plx_err_t *err);

/* Submit the built envelope with its buffers (plx_client_submit), or
 * send it expecting no reply (plx_client_send) when req is NULL. */
int plx_rqb_submit(plx_client_t *c, plx_rqb_t *b, plx_request_t **req, plx_err_t *err);

/*
 * Replies, from a reply's message and envelope (plx_rq_decode.c; the
 * plx_reply_* functions take them from a request). *out is set only on
 * PLX_OK.
 */
int plx_decode_multi(const plx_msg_t *m, const Plexa__Envelope *env, plx_multi_reply_t **out,
                     plx_err_t *err);
int plx_decode_task_results(const plx_msg_t *m, const Plexa__Envelope *env,
                            plx_task_replies_t **out, plx_err_t *err);
int plx_decode_queue_status(const Plexa__Envelope *env, plx_queue_status_t **out,
                            plx_err_t *err);
int plx_decode_task_queue(const Plexa__Envelope *env, plx_task_queue_t **out, plx_err_t *err);

#endif
