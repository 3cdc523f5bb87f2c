/*
 * The non-blocking handles of the C API (plx_pending_t, see
 * plexa/client.h): one or more requests of plx_rq.h (a scatter has one
 * push per engine), polled, waited for, or delivered to a callback in the
 * caller's libev loop; read with the same outcomes as the blocking calls
 * (plx_data_priv.h).
 */
#include <ev.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "plx_data_priv.h"
#include "plx_time.h"

typedef enum { P_EXECUTE, P_PUSH, P_PULL, P_TASK, P_SCATTER, P_GATHER } pkind_t;

/* A handle over one request (several for scatter: one push per engine). */
struct plx_pending {
    plx_request_t **reqs;
    size_t          nreqs;
    pkind_t         kind;
    size_t          nkeys;     /* P_PULL */
    uint64_t        task_id;   /* P_TASK */
    char           *name;      /* P_GATHER */
    int             all;       /* P_GATHER: targets were "all" */
    atomic_size_t   left;      /* requests whose completion was not yet signalled */
    ev_async        async;     /* signalled by the I/O thread, runs in the caller's loop */
    struct ev_loop *loop;
    plx_pending_cb  cb;
    void           *ud;
};

static const char *const pkind_names[] = { "execute", "push", "pull", "task result", "scatter",
                                           "gather" };

/* A handle taking over reqs[0..n) (also on failure, when they are
 * dropped). */
static int pending_new(plx_request_t **reqs, size_t n, pkind_t kind, plx_pending_t **out,
                       plx_err_t *err)
{
    plx_pending_t *p = calloc(1, sizeof *p);
    plx_request_t **copy = calloc(n ? n : 1, sizeof *copy);
    if (!p || !copy) {
        free(p);
        free(copy);
        for (size_t i = 0; i < n; i++)
            plx_request_destroy(&reqs[i]);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a pending handle");
    }
    memcpy(copy, reqs, n * sizeof *copy);
    p->reqs = copy;
    p->nreqs = n;
    p->kind = kind;
    *out = p;
    return PLX_OK;
}

static int pending_one(plx_request_t *req, pkind_t kind, plx_pending_t **out, plx_err_t *err)
{
    return pending_new(&req, 1, kind, out, err);
}

int plx_client_execute_nb(plx_client_t *c, const plx_targets_t *t, const char *code,
                          plx_pending_t **out, plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = plx_rq_execute(c, t, code, &req, err);
    return rc == PLX_OK ? pending_one(req, P_EXECUTE, out, err) : rc;
}

int plx_client_push_nb(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       const plx_value_t *const *values, size_t n, plx_pending_t **out,
                       plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = plx_rq_push(c, t, names, values, n, &req, err);
    return rc == PLX_OK ? pending_one(req, P_PUSH, out, err) : rc;
}

int plx_client_pull_nb(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       size_t n, plx_pending_t **out, plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = plx_rq_pull(c, t, names, n, &req, err);
    if (rc == PLX_OK && (rc = pending_one(req, P_PULL, out, err)) == PLX_OK)
        (*out)->nkeys = n;
    return rc;
}

int plx_client_task_result_nb(plx_client_t *c, uint64_t task_id, plx_pending_t **out,
                              plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = plx_rq_task_wait(c, &task_id, 1, 1, 0, &req, err);
    if (rc == PLX_OK && (rc = pending_one(req, P_TASK, out, err)) == PLX_OK)
        (*out)->task_id = task_id;
    return rc;
}

int plx_client_scatter_nb(plx_client_t *c, const plx_targets_t *t, const char *name,
                          const plx_value_t *value, plx_pending_t **out, plx_err_t *err)
{
    plx_request_t **reqs = NULL;
    size_t k = 0;
    *out = NULL;
    int rc = plx_scatter_submit(c, t, name, value, 0, &reqs, &k, err);
    if (rc == PLX_OK)
        rc = pending_new(reqs, k, P_SCATTER, out, err);
    free(reqs);
    return rc;
}

int plx_client_gather_nb(plx_client_t *c, const plx_targets_t *t, const char *name,
                         plx_pending_t **out, plx_err_t *err)
{
    *out = NULL;
    if (!name || !*name)
        return plx_err_set(err, PLX_EINVAL, "gather: no name");
    char *copy = strdup(name);
    if (!copy)
        return plx_err_set(err, PLX_ENOMEM, "gather: out of memory");
    plx_request_t *req = NULL;
    int rc = plx_rq_pull(c, t, (const char *const *)&copy, 1, &req, err);
    if (rc == PLX_OK && (rc = pending_one(req, P_GATHER, out, err)) == PLX_OK) {
        (*out)->nkeys = 1;
        (*out)->all = !t || t->all;
        (*out)->name = copy;
        copy = NULL;
    }
    free(copy);
    return rc;
}

static int all_done(plx_pending_t *p)
{
    for (size_t i = 0; i < p->nreqs; i++)
        if (!plx_request_done(p->reqs[i]))
            return 0;
    return 1;
}

int plx_pending_wait(plx_pending_t *p, double timeout_s, plx_err_t *err)
{
    double deadline = timeout_s > 0 ? plx_now_s() + timeout_s : 0;
    for (size_t i = 0; i < p->nreqs; i++) {
        double left = timeout_s < 0 ? -1 : timeout_s == 0 ? 0 : deadline - plx_now_s();
        if (timeout_s > 0 && left <= 0)
            left = 0;
        /* The outcome, failures included, is for the reader: only
         * "still pending" matters here. */
        plx_request_wait(p->reqs[i], left, NULL);
        if (!plx_request_done(p->reqs[i]))
            return plx_err_set(err, PLX_ETIMEDOUT, "the %s has not completed after %.3g s",
                               pkind_names[p->kind], timeout_s);
    }
    return PLX_OK;
}

int plx_pending_poll(plx_pending_t *p)
{
    return all_done(p);
}

/* PLX_OK when p was made by kind and has completed. */
static int reader_check(plx_pending_t *p, pkind_t kind, plx_err_t *err)
{
    if (p->kind != kind)
        return plx_err_set(err, PLX_EINVAL, "this handle is for a %s, not a %s",
                           pkind_names[p->kind], pkind_names[kind]);
    if (!all_done(p))
        return plx_err_set(err, PLX_EAGAIN, "the %s has not completed", pkind_names[kind]);
    return PLX_OK;
}

int plx_pending_execute_results(plx_pending_t *p, plx_results_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = reader_check(p, P_EXECUTE, err);
    return rc == PLX_OK ? plx_request_results(p->reqs[0], out, err) : rc;
}

int plx_pending_push_result(plx_pending_t *p, plx_err_t *err)
{
    int rc = reader_check(p, P_PUSH, err);
    return rc == PLX_OK ? plx_push_outcome(p->reqs[0], err) : rc;
}

int plx_pending_pull_results(plx_pending_t *p, plx_pulled_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = reader_check(p, P_PULL, err);
    return rc == PLX_OK ? plx_pull_outcome(p->reqs[0], p->nkeys, out, err) : rc;
}

int plx_pending_task_result(plx_pending_t *p, plx_task_result_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = reader_check(p, P_TASK, err);
    return rc == PLX_OK ? plx_task_outcome(p->reqs[0], p->task_id, out, err) : rc;
}

int plx_pending_scatter_result(plx_pending_t *p, plx_err_t *err)
{
    int rc = reader_check(p, P_SCATTER, err);
    for (size_t i = 0; rc == PLX_OK && i < p->nreqs; i++)
        if ((rc = plx_push_outcome(p->reqs[i], err)) != PLX_OK)
            plx_err_prefix(err, "scatter");
    return rc;
}

int plx_pending_gather_result(plx_pending_t *p, plx_value_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = reader_check(p, P_GATHER, err);
    if (rc != PLX_OK)
        return rc;
    plx_pulled_t *pulled = NULL;
    rc = plx_pull_outcome(p->reqs[0], 1, &pulled, err);
    if (rc == PLX_OK)
        rc = plx_gather_join(pulled, p->all, p->name, out, err);
    else if (rc == PLX_EREMOTE)
        plx_err_prefix(err, "gather");
    plx_pulled_destroy(&pulled);
    return rc;
}

/* I/O thread (or the registering thread): once the last request is
 * done, wake the caller's loop -- nothing else happens here. */
static void pending_done_io(plx_request_t *req, void *ud)
{
    plx_pending_t *p = ud;
    if (atomic_fetch_sub(&p->left, 1) == 1)
        ev_async_send(p->loop, &p->async);
}

/* The caller's loop thread: deliver. */
static void pending_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    plx_pending_t *p = (plx_pending_t *)((char *)w - offsetof(plx_pending_t, async));
    ev_async_stop(loop, w);   /* one delivery; stops keeping the loop alive */
    plx_pending_cb cb = p->cb;
    p->cb = NULL;
    if (cb)
        cb(p, p->ud);   /* may destroy p */
}

int plx_pending_on_done(plx_pending_t *p, struct ev_loop *loop, plx_pending_cb cb, void *ud,
                        plx_err_t *err)
{
    if (!loop || !cb)
        return plx_err_set(err, PLX_EINVAL, "plx_pending_on_done: loop and cb are required");
    if (p->loop)
        return plx_err_set(err, PLX_EINVAL, "plx_pending_on_done: a callback is already set");
    p->loop = loop;
    p->cb = cb;
    p->ud = ud;
    ev_async_init(&p->async, pending_async_cb);
    ev_async_start(loop, &p->async);
    atomic_store(&p->left, p->nreqs);
    if (p->nreqs == 0)
        ev_async_send(loop, &p->async);
    for (size_t i = 0; i < p->nreqs; i++)
        plx_request_on_done(p->reqs[i], pending_done_io, p);   /* runs at once if complete */
    return PLX_OK;
}

void plx_pending_destroy(plx_pending_t **pp)
{
    plx_pending_t *p = pp ? *pp : NULL;
    if (!p)
        return;
    *pp = NULL;
    for (size_t i = 0; p->loop && i < p->nreqs; i++) {
        /* Make sure the I/O thread is not inside pending_done_io, and never
         * will be: unset the callback, and if the request already completed
         * wait for a callback that may be running (the request holds
         * waiters until it returns). */
        plx_request_on_done(p->reqs[i], NULL, NULL);
        if (plx_request_done(p->reqs[i]))
            plx_request_wait(p->reqs[i], -1, NULL);
    }
    if (p->loop)
        ev_async_stop(p->loop, &p->async);
    for (size_t i = 0; i < p->nreqs; i++)
        plx_request_destroy(&p->reqs[i]);
    free(p->reqs);
    free(p->name);
    free(p);
}
