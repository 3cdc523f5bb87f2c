/* Execute results (plx_results_t) from a decoded multi-engine reply; see
 * plexa/client.h and plx_rq.h. */
#include <stdlib.h>
#include <string.h>

#include "plx_request_priv.h"

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

/* Move one engine's strings from the decoded reply (they are NULLed there). */
static void engine_result_take(plx_engine_result_t *r, plx_engine_reply_t *er)
{
    r->engine_id = er->engine_id;
    r->number = er->number;
    r->input = er->input;
    r->stdout_text = er->stdout_text;
    r->stderr_text = er->stderr_text;
    r->ename = er->ename;
    r->evalue = er->evalue;
    r->traceback = er->traceback;
    er->input = er->stdout_text = er->stderr_text = NULL;
    er->ename = er->evalue = er->traceback = NULL;
}

int plx_request_results(plx_request_t *req, plx_results_t **out, plx_err_t *err)
{
    plx_multi_reply_t *mr = NULL;
    *out = NULL;
    int rc = plx_reply_multi(req, &mr, err);
    if (rc != PLX_OK)
        return rc;
    plx_results_t *res = calloc(1, sizeof *res);
    if (res && mr->n)
        res->r = calloc(mr->n, sizeof *res->r);
    if (!res || (mr->n && !res->r)) {
        free(res);
        plx_multi_reply_destroy(&mr);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for results");
    }
    for (size_t i = 0; i < mr->n; i++)
        engine_result_take(&res->r[res->n++], &mr->r[i]);
    plx_multi_reply_destroy(&mr);
    *out = res;
    return PLX_OK;
}
