/* Requests: completion, waiting, callbacks; see plx_client_int.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plx_envelope.h"
#include "plx_direct.h"
#include "plx_request_priv.h"
#include "plx_spin.h"
#include "plx_time.h"

plx_request_t *plx_request_new(uint64_t id)
{
    plx_request_t *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    /* Deadlines must not jump with the wall clock. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&req->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        free(req);
        return NULL;
    }
    pthread_mutex_init(&req->mu, NULL);
    atomic_init(&req->refs, 1);
    req->id = id;
    return req;
}

plx_request_t *plx_request_ref(plx_request_t *req)
{
    atomic_fetch_add_explicit(&req->refs, 1, memory_order_relaxed);
    return req;
}

void plx_request_destroy(plx_request_t **rp)
{
    plx_request_t *req = *rp;
    if (!req)
        return;
    *rp = NULL;
    if (atomic_fetch_sub_explicit(&req->refs, 1, memory_order_acq_rel) != 1)
        return;
    plx_msg_destroy(&req->reply);
    plx_envelope_free(&req->env);
    for (size_t i = 0; i < req->nouts; i++)
        free((char *)req->outs[i].text);
    free(req->outs);
    plx_direct_keys_free(&req->dkeys);
    plx_direct_push_free(&req->dpush);
    pthread_cond_destroy(&req->cond);
    pthread_mutex_destroy(&req->mu);
    free(req);
}

uint64_t plx_request_id(const plx_request_t *req)
{
    return req->id;
}

/* Mark done (the outcome is already stored) and unlock. The callback runs
 * outside the lock, so that it may read the request, while waiters stay
 * blocked until it returns: when a wait returns, the callback has run. */
static void finish_locked(plx_request_t *req)
{
    req->done = 1;
    plx_request_cb cb = req->cb;
    void *ud = req->cb_ud;
    req->cb = NULL;
    req->cb_running = cb != NULL;
    if (!cb) {
        atomic_store_explicit(&req->settled, 1, memory_order_release);
        pthread_cond_broadcast(&req->cond);
    }
    pthread_mutex_unlock(&req->mu);
    if (!cb)
        return;
    cb(req, ud);
    pthread_mutex_lock(&req->mu);
    req->cb_running = 0;
    atomic_store_explicit(&req->settled, 1, memory_order_release);
    pthread_cond_broadcast(&req->cond);
    pthread_mutex_unlock(&req->mu);
}

/* An Error or Reject body is the request's failure; anything else is a
 * reply for the caller to decode. */
static int reply_status(const Plexa__Envelope *env, plx_err_t *err)
{
    if (env->body_case == PLEXA__ENVELOPE__BODY_ERROR) {
        const Plexa__Error *e = env->error;
        int code = e->has_code && e->code < 0 ? e->code : PLX_ERR;
        return plx_err_set(err, code, "%s", e->message ? e->message : plx_strerror(code));
    }
    if (env->body_case == PLEXA__ENVELOPE__BODY_REJECT) {
        const char *why = env->reject->reason ? env->reject->reason : "no reason given";
        return plx_err_set(err, PLX_EAUTH, "controller refused the connection: %s", why);
    }
    return PLX_OK;
}

void plx_request_complete(plx_request_t *req, plx_msg_t *m, Plexa__Envelope *env)
{
    pthread_mutex_lock(&req->mu);
    if (req->done) {
        pthread_mutex_unlock(&req->mu);
        plx_msg_destroy(&m);
        plx_envelope_free(&env);
        return;
    }
    req->rc = reply_status(env, &req->err);
    req->reply = m;
    req->env = env;
    finish_locked(req);
}

void plx_request_fail(plx_request_t *req, int code, const char *msg)
{
    pthread_mutex_lock(&req->mu);
    if (req->done) {
        pthread_mutex_unlock(&req->mu);
        return;
    }
    req->rc = code;
    plx_err_set(&req->err, code, "%s", msg);
    finish_locked(req);
}

void plx_request_cancel(plx_request_t *req)
{
    plx_request_fail(req, PLX_EABORTED, "the request was cancelled");
}

/* The outcome of a completed request, copied out under its lock. */
static int outcome_locked(const plx_request_t *req, plx_err_t *err)
{
    if (req->rc != PLX_OK && err)
        *err = req->err;
    return req->rc;
}

int plx_request_wait(plx_request_t *req, double timeout_s, plx_err_t *err)
{
    struct timespec dl = plx_deadline_after(timeout_s > 0 ? timeout_s : 0);
    /* Most replies to a blocking call come back within a millisecond:
     * keep the CPU for a while instead of paying for a wake-up (plx_spin.h). */
    double t0 = plx_spin_now_us();
    if (timeout_s != 0)
        plx_spin_until(&req->settled, timeout_s > 0 ? timeout_s * 1e6 : -1);
    pthread_mutex_lock(&req->mu);
    while ((!req->done || req->cb_running) && timeout_s != 0) {
        if (timeout_s < 0) {
            pthread_cond_wait(&req->cond, &req->mu);
        } else if (pthread_cond_timedwait(&req->cond, &req->mu, &dl) == ETIMEDOUT) {
            break;
        }
    }
    int rc = req->done && !req->cb_running
                 ? outcome_locked(req, err)
                 : plx_err_set(err, PLX_ETIMEDOUT, "no reply to request %llu after %.3g s",
                                     (unsigned long long)req->id, timeout_s);
    pthread_mutex_unlock(&req->mu);
    if (timeout_s != 0)
        plx_spin_note(plx_spin_now_us() - t0);
    return rc;
}

int plx_request_done(plx_request_t *req)
{
    pthread_mutex_lock(&req->mu);
    int done = req->done;
    pthread_mutex_unlock(&req->mu);
    return done;
}

int plx_request_reply(plx_request_t *req, const plx_msg_t **msg,
                      const Plexa__Envelope **env, plx_err_t *err)
{
    pthread_mutex_lock(&req->mu);
    int rc = req->done ? outcome_locked(req, err)
                       : plx_err_set(err, PLX_EAGAIN, "request %llu is still pending",
                                     (unsigned long long)req->id);
    /* The reply is immutable once set, so it may be read after unlocking. */
    if (msg)
        *msg = rc == PLX_OK ? req->reply : NULL;
    if (env)
        *env = rc == PLX_OK ? req->env : NULL;
    pthread_mutex_unlock(&req->mu);
    return rc;
}

void plx_request_on_done(plx_request_t *req, plx_request_cb cb, void *ud)
{
    pthread_mutex_lock(&req->mu);
    if (!req->done) {
        req->cb = cb;
        req->cb_ud = ud;
        pthread_mutex_unlock(&req->mu);
        return;
    }
    pthread_mutex_unlock(&req->mu);
    if (cb)
        cb(req, ud);
}

/* ---- live output ------------------------------------------------------------ */

#define OUTPUT_BYTES_MAX (16u << 20)

/* Append a piece (mu held); text is taken over. 0, or -1 on ENOMEM. */
static int add_output_locked(plx_request_t *req, int32_t engine_id, int stream, char *text)
{
    if (req->nouts == req->capouts) {
        size_t cap = req->capouts ? 2 * req->capouts : 8;
        plx_output_t *o = realloc(req->outs, cap * sizeof *o);
        if (!o) {
            free(text);
            return -1;
        }
        req->outs = o;
        req->capouts = cap;
    }
    req->outs[req->nouts++] = (plx_output_t){ engine_id, stream, text };
    pthread_cond_broadcast(&req->cond);
    return 0;
}

static const char *const STREAM_NAMES[PLX_OUTPUT_STREAMS] = { "stdout", "stderr", "display" };

int plx_output_stream_of(const char *name)
{
    for (int i = 0; name && i < PLX_OUTPUT_STREAMS; i++)
        if (strcmp(name, STREAM_NAMES[i]) == 0)
            return i;
    return 0;
}

const char *plx_output_stream_name(int stream)
{
    return stream >= 0 && stream < PLX_OUTPUT_STREAMS ? STREAM_NAMES[stream] : STREAM_NAMES[0];
}

void plx_request_add_output(plx_request_t *req, const Plexa__Output *o)
{
    const char *text = o->text ? o->text : "";
    size_t len = strlen(text);
    int stream = plx_output_stream_of(o->name);
    int32_t engine = o->has_engine_id ? o->engine_id : -1;
    pthread_mutex_lock(&req->mu);
    if (!req->done && !req->out_capped) {
        if (req->out_bytes + len > OUTPUT_BYTES_MAX) {
            req->out_capped = 1;
            char *note = strdup("\n[plexa: more live output than this client keeps for one "
                                "request; the result has all of it]\n");
            if (note)
                add_output_locked(req, engine, stream, note);
        } else {
            char *copy = malloc(len + 1);
            if (copy) {
                memcpy(copy, text, len + 1);
                if (add_output_locked(req, engine, stream, copy) == 0)
                    req->out_bytes += len;
            }
        }
    }
    pthread_mutex_unlock(&req->mu);
}

int plx_request_outputs_wait(plx_request_t *req, size_t from, double timeout_s, size_t *n)
{
    struct timespec dl = plx_deadline_after(timeout_s > 0 ? timeout_s : 0);
    pthread_mutex_lock(&req->mu);
    while (req->nouts <= from && !(req->done && !req->cb_running) && timeout_s != 0) {
        if (timeout_s < 0)
            pthread_cond_wait(&req->cond, &req->mu);
        else if (pthread_cond_timedwait(&req->cond, &req->mu, &dl) == ETIMEDOUT)
            break;
    }
    int done = req->done && !req->cb_running;
    if (n)
        *n = req->nouts;
    pthread_mutex_unlock(&req->mu);
    return done;
}

int plx_request_output(plx_request_t *req, size_t i, plx_output_t *out)
{
    pthread_mutex_lock(&req->mu);
    int ok = i < req->nouts;
    if (ok && out)
        *out = req->outs[i];   /* the text stays: pieces are only freed with req */
    pthread_mutex_unlock(&req->mu);
    return ok ? PLX_OK : PLX_EINVAL;
}
