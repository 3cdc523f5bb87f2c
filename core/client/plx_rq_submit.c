/*
 * Sending the requests of plx_rq.h: each exported builder fills its
 * envelope with the plx_rqb_* call of plx_rq_build.c / plx_rq_task.c and
 * hands it to the client (plx_client_submit, or plx_client_send for a
 * quiet TaskSubmit).
 */
#include "plx_request_priv.h"
#include "plx_direct.h"
#include "plx_rqb.h"

/* ---- submitting ---------------------------------------------------------------- */

int plx_rqb_submit(plx_client_t *c, plx_rqb_t *b, plx_request_t **req, plx_err_t *err)
{
    if (!req)
        return plx_client_send(c, &b->env, b->bufs->bufs, b->bufs->nbufs, err);
    return plx_client_submit(c, &b->env, b->bufs->bufs, b->bufs->nbufs, req, err);
}

/* Build with `build` (a plx_rqb_* call) and submit: the body of every
 * exported builder. */
#define RQ_SUBMIT(c, req, err, build)                                   \
    do {                                                                \
        plx_rqb_t b_;                                                   \
        *(req) = NULL;                                                  \
        int rc_ = plx_rqb_init(&b_, (err));                             \
        if (rc_ == PLX_OK)                                              \
            rc_ = (build);                                              \
        if (rc_ == PLX_OK)                                              \
            rc_ = plx_rqb_submit((c), &b_, (req), (err));               \
        plx_rqb_clear(&b_);                                             \
        return rc_;                                                     \
    } while (0)

int plx_rq_get_ids(plx_client_t *c, plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_get_ids(&b_, err));
}

int plx_rq_execute(plx_client_t *c, const plx_targets_t *t, const char *code,
                   plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_execute(&b_, t, code, err));
}

int plx_rq_push(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                const plx_value_t *const *values, size_t n, plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_push(&b_, t, names, values, n, err));
}

/* A pull asks to fetch big values from the engines itself unless the
 * client cannot reach them (plx_direct.c). */
static int pull_build(plx_client_t *c, plx_rqb_t *b, const plx_targets_t *t,
                      const char *const *names, size_t n, plx_err_t *err)
{
    int rc = plx_rqb_pull(b, t, names, n, err);
    if (rc == PLX_OK && plx_client_direct_wanted(c))
        b->body.pull.has_direct = b->body.pull.direct = 1;
    return rc;
}

/* Through the controller, ending the tickets of direct pulls not used. */
static int pull_ending(plx_rqb_t *b, const plx_targets_t *t, const char *const *names, size_t n,
                       char *const *tickets, size_t ntickets, plx_err_t *err)
{
    int rc = plx_rqb_pull(b, t, names, n, err);
    b->body.pull.n_tickets = ntickets;
    b->body.pull.tickets = (char **)tickets;
    return rc;
}

int plx_rq_pull(plx_client_t *c, const plx_targets_t *t, const char *const *names, size_t n,
                plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, pull_build(c, &b_, t, names, n, err));
}

int plx_rq_pull_ending(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       size_t n, char *const *tickets, size_t ntickets, plx_request_t **req,
                       plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, pull_ending(&b_, t, names, n, tickets, ntickets, err));
}

int plx_rq_call(plx_client_t *c, const plx_targets_t *t, const char *method,
                const plx_value_t *const *args, size_t n, plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_call(&b_, t, method, args, n, err));
}

int plx_rq_clear_queue(plx_client_t *c, const plx_targets_t *t, plx_request_t **req,
                       plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_clear_queue(&b_, t, err));
}

int plx_rq_queue_status(plx_client_t *c, const plx_targets_t *t, plx_request_t **req,
                        plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_queue_status(&b_, t, err));
}

int plx_rq_shutdown(plx_client_t *c, const plx_targets_t *t, int controller,
                    plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_shutdown(&b_, t, controller, err));
}

int plx_rq_interrupt(plx_client_t *c, const plx_targets_t *t, plx_request_t **req,
                     plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_interrupt(&b_, t, err));
}

int plx_rq_task_reserve(plx_client_t *c, uint32_t count, plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_task_reserve(&b_, count, err));
}

int plx_rq_task_wait(plx_client_t *c, const uint64_t *ids, size_t n, int block, int release,
                     plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_task_wait(&b_, ids, n, block, release, err));
}

int plx_rq_task_abort(plx_client_t *c, const uint64_t *ids, size_t n, plx_request_t **req,
                      plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_task_abort(&b_, ids, n, 0, err));
}

int plx_rq_task_cancel(plx_client_t *c, const uint64_t *ids, size_t n, plx_request_t **req,
                       plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_task_abort(&b_, ids, n, 1, err));
}

int plx_rq_cancel(plx_client_t *c, const uint64_t *request_ids, size_t n, plx_request_t **req,
                  plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_cancel(&b_, request_ids, n, err));
}

int plx_rq_task_clear(plx_client_t *c, const uint64_t *ids, size_t n, plx_request_t **req,
                      plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_task_clear(&b_, ids, n, err));
}

int plx_rq_task_queue_status(plx_client_t *c, int verbose, plx_request_t **req, plx_err_t *err)
{
    RQ_SUBMIT(c, req, err, plx_rqb_task_queue_status(&b_, verbose, err));
}

int plx_rq_task_submit(plx_client_t *c, const plx_task_spec_t *specs, size_t n,
                       uint64_t first_id, plx_request_t **req, plx_err_t *err)
{
    if (req)
        *req = NULL;
    plx_rqb_t b;
    int rc = plx_rqb_init(&b, err);
    if (rc == PLX_OK)
        rc = plx_rqb_task_submit(&b, specs, n, first_id, err);
    if (rc == PLX_OK)
        rc = plx_rqb_submit(c, &b, first_id ? NULL : req, err);
    plx_rqb_clear(&b);
    return rc;
}
