/*
 * Completion queues (plx_client_int.h): the completions of watched
 * requests, in the order they happened, for one thread that waits for any
 * of them. plexa._native's callback thread sits on one per Python client,
 * so that futures resolve as soon as their reply arrives without a thread
 * per request or a polling loop.
 *
 * The I/O thread only appends a node that plx_cq_watch allocated and
 * signals a condition variable: it never allocates, never waits for the
 * waiter, never takes the GIL. A queue is reference counted (its owner
 * plus one per watched request not yet completed), so that a request
 * completing after the owner let go never touches freed memory.
 *
 *   nodes and references   cq_unref, cq_done
 *   the API                plx_cq_new, _watch, _post, _wait, _close, _destroy
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "plx_client_int.h"
#include "plx_time.h"

typedef struct cq_node {
    struct plx_cq  *cq;
    uint64_t        token;
    struct cq_node *next;
} cq_node_t;

struct plx_cq {
    atomic_int      refs;     /* the owner's + one per watch not yet completed */
    pthread_mutex_t mu;
    pthread_cond_t  cond;     /* signalled on every append and on close */
    cq_node_t      *head;     /* (mu) completed, oldest first */
    cq_node_t      *tail;     /* (mu) */
    int             closed;   /* (mu) */
};

/* ---- nodes and references ------------------------------------------------------ */

static void free_nodes(cq_node_t *n)
{
    while (n) {
        cq_node_t *next = n->next;
        free(n);
        n = next;
    }
}

static void cq_unref(plx_cq_t *cq)
{
    if (atomic_fetch_sub_explicit(&cq->refs, 1, memory_order_acq_rel) != 1)
        return;
    free_nodes(cq->head);
    pthread_cond_destroy(&cq->cond);
    pthread_mutex_destroy(&cq->mu);
    free(cq);
}

/* Append n (taken over) unless the queue is closed. */
static void cq_append(plx_cq_t *cq, cq_node_t *n)
{
    pthread_mutex_lock(&cq->mu);
    if (cq->closed) {
        pthread_mutex_unlock(&cq->mu);
        free(n);
        return;
    }
    n->next = NULL;
    if (cq->tail)
        cq->tail->next = n;
    else
        cq->head = n;
    cq->tail = n;
    pthread_cond_signal(&cq->cond);
    pthread_mutex_unlock(&cq->mu);
}

/* The request's completion callback: any thread, usually the I/O thread. */
static void cq_done(plx_request_t *req, void *ud)
{
    (void)req;
    cq_node_t *n = ud;
    plx_cq_t *cq = n->cq;
    cq_append(cq, n);
    cq_unref(cq);   /* the watch's reference */
}

/* ---- the API ----------------------------------------------------------------------- */

plx_cq_t *plx_cq_new(plx_err_t *err)
{
    plx_cq_t *cq = calloc(1, sizeof *cq);
    if (!cq) {
        plx_err_set(err, PLX_ENOMEM, "out of memory for a completion queue");
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    /* Deadlines must not jump with the wall clock. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&cq->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        free(cq);
        plx_err_set(err, PLX_ENOMEM, "cannot make a condition variable");
        return NULL;
    }
    pthread_mutex_init(&cq->mu, NULL);
    atomic_init(&cq->refs, 1);
    return cq;
}

/* *out = a node for token; PLX_OK, or the error (cq closed, out of memory). */
static int node_new(plx_cq_t *cq, uint64_t token, const char *doing, cq_node_t **out,
                    plx_err_t *err)
{
    pthread_mutex_lock(&cq->mu);
    int closed = cq->closed;
    pthread_mutex_unlock(&cq->mu);
    if (closed)
        return plx_err_set(err, PLX_ECLOSED, "the completion queue is closed");
    cq_node_t *n = calloc(1, sizeof *n);
    if (!n)
        return plx_err_set(err, PLX_ENOMEM, "out of memory %s", doing);
    n->cq = cq;
    n->token = token;
    *out = n;
    return PLX_OK;
}

int plx_cq_watch(plx_cq_t *cq, plx_request_t *req, uint64_t token, plx_err_t *err)
{
    cq_node_t *n;
    int rc = node_new(cq, token, "watching a request", &n, err);
    if (rc != PLX_OK)
        return rc;
    atomic_fetch_add_explicit(&cq->refs, 1, memory_order_relaxed);
    plx_request_on_done(req, cq_done, n);   /* runs at once if already complete */
    return PLX_OK;
}

int plx_cq_post(plx_cq_t *cq, uint64_t token, plx_err_t *err)
{
    cq_node_t *n;
    int rc = node_new(cq, token, "posting to a completion queue", &n, err);
    if (rc != PLX_OK)
        return rc;
    cq_append(cq, n);
    return PLX_OK;
}

int plx_cq_wait(plx_cq_t *cq, double timeout_s, uint64_t *tokens, size_t max, size_t *n)
{
    struct timespec dl = plx_deadline_after(timeout_s > 0 ? timeout_s : 0);
    *n = 0;
    /* Held while waiting: plx_cq_destroy on another thread wakes us, and
     * the queue must outlive that wake-up. */
    atomic_fetch_add_explicit(&cq->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&cq->mu);
    while (!cq->head && !cq->closed && timeout_s != 0) {
        if (timeout_s < 0)
            pthread_cond_wait(&cq->cond, &cq->mu);
        else if (pthread_cond_timedwait(&cq->cond, &cq->mu, &dl) == ETIMEDOUT)
            break;
    }
    cq_node_t *taken = NULL, **last = &taken;
    while (cq->head && *n < max) {
        cq_node_t *h = cq->head;
        cq->head = h->next;
        tokens[(*n)++] = h->token;
        *last = h;
        last = &h->next;
    }
    *last = NULL;
    if (!cq->head)
        cq->tail = NULL;
    int rc = *n == 0 && cq->closed ? PLX_ECLOSED : PLX_OK;
    pthread_mutex_unlock(&cq->mu);
    free_nodes(taken);
    cq_unref(cq);
    return rc;
}

void plx_cq_close(plx_cq_t *cq)
{
    pthread_mutex_lock(&cq->mu);
    cq->closed = 1;
    cq_node_t *dropped = cq->head;
    cq->head = cq->tail = NULL;
    pthread_cond_broadcast(&cq->cond);
    pthread_mutex_unlock(&cq->mu);
    free_nodes(dropped);
}

void plx_cq_destroy(plx_cq_t **cqp)
{
    plx_cq_t *cq = cqp ? *cqp : NULL;
    if (!cq)
        return;
    *cqp = NULL;
    plx_cq_close(cq);
    cq_unref(cq);
}
