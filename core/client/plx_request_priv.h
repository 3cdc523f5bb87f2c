/*
 * Inside the client library: the request object, the table of pending
 * requests, and the envelope-level calls that only the request builders
 * and decoders (plx_rqb.h) use: no protobuf type crosses libplexa's
 * exported interface.
 *
 * Locking: a request's mutex guards its completion state. The client's
 * mutex guards the table. Lock order is client, then request; a request
 * never reaches back to its client, so handles outlive clients safely.
 */
#ifndef PLX_REQUEST_PRIV_H
#define PLX_REQUEST_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

#include "plexa.pb-c.h"
#include "plx_client_int.h"

struct plx_request {
    atomic_int           refs;     /* caller's handle + the pending table's */
    uint64_t             id;
    pthread_mutex_t      mu;
    pthread_cond_t       cond;     /* broadcast on completion */
    int                  done;     /* (mu) */
    int                  rc;       /* (mu) outcome once done */
    plx_err_t            err;      /* (mu) message when rc != PLX_OK */
    plx_msg_t           *reply;    /* (mu) */
    Plexa__Envelope     *env;      /* (mu) reply, unpacked */
    plx_request_cb       cb;       /* (mu) runs once on completion */
    int                  cb_running; /* (mu) waiters are held until it returns */
    atomic_int           settled;  /* done and no callback running: for spinners */
    void                *cb_ud;
    plx_output_t        *outs;     /* (mu) live output so far, in arrival order */
    size_t               nouts, capouts;
    size_t               out_bytes;  /* (mu) their text, for the cap */
    int                  out_capped; /* (mu) the cap was reached: later pieces dropped */
    struct plx_direct_keys *dkeys; /* a direct pull's keys (plx_direct.h), else NULL */
    struct plx_direct_push *dpush; /* a push whose values this client serves, else NULL */
    struct plx_request  *next;     /* bucket chain; owned by the client's table */
};

/*
 * Send env (built by plx_rqb.h) to the controller as a new request. env is packed during the
 * call with its id replaced by a fresh one (ids increase in submission
 * order) and is not kept; each of bufs[0..nbufs) is referenced by the
 * message, the caller keeps its own references. On PLX_OK *req is a
 * handle the caller owns (plx_request_destroy). Fails at once, without a
 * handle, when the connection is already lost (PLX_ECONNECT), the client
 * is closing (PLX_ECLOSED), or on PLX_ENOMEM / PLX_ELIMIT (envelope too
 * large).
 */
int plx_client_submit(plx_client_t *c, const Plexa__Envelope *env, plx_buf_t *const *bufs,
                      size_t nbufs, plx_request_t **req, plx_err_t *err);

/*
 * Send env expecting no reply (a quiet TaskSubmit), with the ordering and
 * failure modes of plx_client_submit but no request to wait for: an Error
 * the controller might still send answers nothing and is dropped.
 */
int plx_client_send(plx_client_t *c, const Plexa__Envelope *env, plx_buf_t *const *bufs,
                    size_t nbufs, plx_err_t *err);

/*
 * The reply of a completed request (for the decoders): the message (with its out-of-band
 * buffers; plx_buf_ref those you keep) and its unpacked envelope. Both
 * belong to the request and live until plx_request_destroy. Returns
 * PLX_OK, or the request's failure code (then *msg and *env are NULL), or
 * PLX_EAGAIN while it is pending. Either out pointer may be NULL.
 */
int plx_request_reply(plx_request_t *req, const plx_msg_t **msg, const Plexa__Envelope **env,
                      plx_err_t *err);

/* A pending request with one reference. NULL on ENOMEM. */
plx_request_t *plx_request_new(uint64_t id);
plx_request_t *plx_request_ref(plx_request_t *req);

/* Complete with a reply (takes ownership of m and env, freed at once when
 * the request was already complete, e.g. cancelled). An Error or Reject
 * body becomes the request's failure code and message. */
void plx_request_complete(plx_request_t *req, plx_msg_t *m, Plexa__Envelope *env);

/* Keep a piece of live output (an Output message answering req; the I/O
 * thread). Ignored once req is complete. */
void plx_request_add_output(plx_request_t *req, const Plexa__Output *o);

/* Complete with a failure (no effect when already complete). */
void plx_request_fail(plx_request_t *req, int code, const char *msg);

/* Pending requests by id: chained hash, ids are dense so id & mask hashes
 * perfectly. Not thread-safe: the client's mutex guards it. */
typedef struct plx_reqtable {
    plx_request_t **b;
    size_t          nb;   /* buckets, a power of two (0 before first put) */
    size_t          n;
} plx_reqtable_t;

/* Add req (the table takes over one reference the caller gave it). */
int plx_reqtable_put(plx_reqtable_t *t, plx_request_t *req);
/* Remove and return the request with this id (its reference goes to the
 * caller), or NULL. */
plx_request_t *plx_reqtable_take(plx_reqtable_t *t, uint64_t id);
/* The request with this id, left in the table (borrowed), or NULL. */
plx_request_t *plx_reqtable_get(const plx_reqtable_t *t, uint64_t id);
/* Remove and return any request, NULL when empty: for draining. */
plx_request_t *plx_reqtable_pop(plx_reqtable_t *t);
/* Free the bucket array; the table must be empty. */
void plx_reqtable_fini(plx_reqtable_t *t);

/* The client's deadline for blocking calls (plx_client_set_timeout) and
 * the capability it connected with; for the C API calls (plx_push_pull.c, ...). */
double plx_client_timeout_get(plx_client_t *c);
plx_client_role_t plx_client_role_get(const plx_client_t *c);

#endif
