/* Decoding replies into the public result types; see plexa/client.h. */
#include <stdlib.h>
#include <string.h>

#include "plx_request_priv.h"

/* The reply envelope of a completed request, checked to carry `body`. */
static int reply_body(plx_request_t *req, Plexa__Envelope__BodyCase body, const char *what,
                      const Plexa__Envelope **env, plx_err_t *err)
{
    int rc = plx_request_reply(req, NULL, env, err);
    if (rc != PLX_OK)
        return rc;
    if ((*env)->body_case != body)
        return plx_err_set(err, PLX_EPROTO, "controller answered request %llu with %s, not %s",
                           (unsigned long long)req->id,
                           (*env)->body_case ? "another message" : "an empty message", what);
    return PLX_OK;
}

int plx_request_ids(plx_request_t *req, int32_t **ids, size_t *n, plx_err_t *err)
{
    const Plexa__Envelope *env;
    *ids = NULL;
    *n = 0;
    int rc = reply_body(req, PLEXA__ENVELOPE__BODY_ID_LIST, "an id list", &env, err);
    if (rc != PLX_OK)
        return rc;
    size_t cnt = env->id_list->n_ids;
    if (cnt == 0)
        return PLX_OK;
    *ids = malloc(cnt * sizeof **ids);
    if (!*ids)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for %zu engine ids", cnt);
    memcpy(*ids, env->id_list->ids, cnt * sizeof **ids);
    *n = cnt;
    return PLX_OK;
}

static void engine_result_free(plx_engine_result_t *r)
{
    free(r->input);
    free(r->stdout_text);
    free(r->stderr_text);
    free(r->ename);
    free(r->evalue);
    free(r->traceback);
}

void plx_results_destroy(plx_results_t **rp)
{
    plx_results_t *res = *rp;
    if (!res)
        return;
    *rp = NULL;
    for (size_t i = 0; i < res->n; i++)
        engine_result_free(&res->r[i]);
    free(res->r);
    free(res);
}

/* strdup treating an absent proto2 string as "". Counts failures. */
static char *dup_or_empty(const char *s, int *failed)
{
    char *d = strdup(s ? s : "");
    if (!d)
        (*failed)++;
    return d;
}

/* Fill one result from one engine's reply. PLX_ENOMEM on failure (the
 * partly filled result is still safe to free). */
static int engine_result_fill(plx_engine_result_t *r, const Plexa__EngineReply *er)
{
    const Plexa__ExecuteResult *x = er->execute;
    int failed = 0;
    r->engine_id = er->has_engine_id ? er->engine_id : -1;
    r->number = x && x->has_number ? x->number : 0;
    r->input = dup_or_empty(x ? x->input : NULL, &failed);
    r->stdout_text = dup_or_empty(x ? x->stdout : NULL, &failed);
    r->stderr_text = dup_or_empty(x ? x->stderr : NULL, &failed);
    if (er->error) {
        /* An exception always has a type name, even from a sloppy peer. */
        const char *ename = er->error->ename && *er->error->ename ? er->error->ename
                                                                  : "RemoteError";
        r->ename = dup_or_empty(ename, &failed);
        r->evalue = dup_or_empty(er->error->evalue, &failed);
        r->traceback = dup_or_empty(er->error->traceback, &failed);
    }
    return failed ? PLX_ENOMEM : PLX_OK;
}

int plx_request_results(plx_request_t *req, plx_results_t **out, plx_err_t *err)
{
    const Plexa__Envelope *env;
    *out = NULL;
    int rc = reply_body(req, PLEXA__ENVELOPE__BODY_MULTI_REPLY, "a multi-engine reply", &env, err);
    if (rc != PLX_OK)
        return rc;
    const Plexa__MultiReply *mr = env->multi_reply;
    plx_results_t *res = calloc(1, sizeof *res);
    if (res && mr->n_replies)
        res->r = calloc(mr->n_replies, sizeof *res->r);
    if (!res || (mr->n_replies && !res->r)) {
        free(res);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for %zu results", mr->n_replies);
    }
    for (size_t i = 0; i < mr->n_replies; i++) {
        res->n++;
        if (engine_result_fill(&res->r[i], mr->replies[i]) != PLX_OK) {
            plx_results_destroy(&res);
            return plx_err_set(err, PLX_ENOMEM, "out of memory copying results");
        }
    }
    *out = res;
    return PLX_OK;
}
