/*
 * The C API's tasks (see plexa/client.h): IPython 0.10's StringTask
 * submitted through the task builder of plx_rq.h, and a task's result
 * read from a task_wait reply into a plx_task_result_t (the pulled names
 * unpickled where C can read them, plx_unpickle.c).
 */
#include <stdlib.h>
#include <string.h>

#include "plx_data_priv.h"
#include "plx_value_int.h"

/* ---- submitting ------------------------------------------------------------ */

static int check_names(const char *what, const char *const *names, size_t n, plx_err_t *err)
{
    if (n && !names)
        return plx_err_set(err, PLX_EINVAL, "%s: names is NULL", what);
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !*names[i])
            return plx_err_set(err, PLX_EINVAL, "%s: name %zu is %s", what, i,
                               names[i] ? "empty" : "NULL");
    return PLX_OK;
}

static int check_string_task(plx_client_t *c, const char *code, const char *const *push_names,
                             const plx_value_t *const *push_values, size_t n_push,
                             const char *const *pull_names, size_t n_pull, plx_err_t *err)
{
    if (!code)
        return plx_err_set(err, PLX_EINVAL, "string task: code is NULL");
    if (plx_client_role_get(c) != PLX_CLIENT_ROLE_TASK)
        return plx_err_set(err, PLX_EINVAL, "string task: this client is not connected to the "
                           "task capability (use plx_client_connect_role with "
                           "PLX_CLIENT_ROLE_TASK)");
    int rc = check_names("string task push", push_names, n_push, err);
    if (rc == PLX_OK)
        rc = check_names("string task pull", pull_names, n_pull, err);
    if (rc == PLX_OK && n_push && !push_values)
        rc = plx_err_set(err, PLX_EINVAL, "string task: push values is NULL");
    for (size_t i = 0; rc == PLX_OK && i < n_push; i++)
        if (!push_values[i])
            rc = plx_err_set(err, PLX_EINVAL, "string task: push value %zu is NULL", i);
    return rc;
}

/*
 * The arguments the engine reads, (code, push, pull): push as anything
 * dict() takes (here a list of (name, value) tuples, since a dict has no
 * native form; None when empty, as the Python client sends it), pull as a
 * list of names. The pushed values are borrowed, not copied.
 */
typedef struct string_args {
    plx_value_t  *v[3];
    plx_value_t **pairs;       /* borrowing tuples (name, value) */
    plx_value_t **pair_items;  /* 2 per pair: an owned name, a borrowed value */
    size_t        npairs;
} string_args_t;

static void string_args_clear(string_args_t *a)
{
    for (size_t i = 0; a->pairs && i < a->npairs; i++) {
        plx_value_borrowing_free(&a->pairs[i]);
        plx_value_destroy(&a->pair_items[2 * i]);
    }
    if (a->v[1] && a->v[1]->kind == PLX_VALUE_LIST)
        plx_value_borrowing_free(&a->v[1]);
    plx_value_destroy(&a->v[0]);
    plx_value_destroy(&a->v[1]);
    plx_value_destroy(&a->v[2]);
    free(a->pairs);
    free(a->pair_items);
}

static int string_args_fill(string_args_t *a, const char *code, const char *const *push_names,
                            const plx_value_t *const *push_values, size_t n_push,
                            const char *const *pull_names, size_t n_pull)
{
    a->v[0] = plx_value_str(code);
    a->v[2] = plx_value_list();
    a->pairs = calloc(n_push ? n_push : 1, sizeof *a->pairs);
    a->pair_items = calloc(n_push ? 2 * n_push : 1, sizeof *a->pair_items);
    if (!a->v[0] || !a->v[2] || !a->pairs || !a->pair_items)
        return PLX_ENOMEM;
    a->npairs = n_push;   /* cleared entries are NULL */
    for (size_t i = 0; i < n_push; i++) {
        plx_value_t **it = &a->pair_items[2 * i];
        it[1] = (plx_value_t *)push_values[i];
        if (!(it[0] = plx_value_str(push_names[i])) ||
            !(a->pairs[i] = plx_value_list_borrowing(it, 2, 1)))
            return PLX_ENOMEM;
    }
    a->v[1] = n_push ? plx_value_list_borrowing(a->pairs, n_push, 0) : plx_value_none();
    if (!a->v[1])
        return PLX_ENOMEM;
    for (size_t i = 0; i < n_pull; i++) {
        plx_value_t *k = plx_value_str(pull_names[i]);
        if (!k || plx_value_list_append(a->v[2], &k) != PLX_OK) {
            plx_value_destroy(&k);
            return PLX_ENOMEM;
        }
    }
    return PLX_OK;
}

int plx_client_task_submit_string(plx_client_t *c, const char *code,
                                  const char *const *push_names,
                                  const plx_value_t *const *push_values, size_t n_push,
                                  const char *const *pull_names, size_t n_pull,
                                  uint64_t *task_id, plx_err_t *err)
{
    int rc = check_string_task(c, code, push_names, push_values, n_push, pull_names, n_pull, err);
    if (rc != PLX_OK)
        return rc;
    string_args_t a = {0};
    plx_request_t *req = NULL;
    rc = string_args_fill(&a, code, push_names, push_values, n_push, pull_names, n_pull);
    if (rc != PLX_OK)
        rc = plx_err_set(err, PLX_ENOMEM, "string task: out of memory");
    plx_task_spec_t spec = plx_task_spec_init();
    spec.kind = "string";
    spec.args = (const plx_value_t *const *)a.v;
    spec.nargs = 3;
    if (rc == PLX_OK)
        rc = plx_rq_task_submit(c, &spec, 1, 0, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, plx_client_timeout_get(c), err);
    uint64_t first = 0;
    uint32_t count = 0;
    if (rc == PLX_OK)
        rc = plx_reply_task_ids(req, &first, &count, err);
    if (rc == PLX_OK && (first == 0 || count < 1))
        rc = plx_err_set(err, PLX_EPROTO, "the controller assigned no task id");
    if (rc == PLX_OK && task_id)
        *task_id = first;
    plx_request_destroy(&req);
    string_args_clear(&a);
    return rc;
}

/* ---- results -------------------------------------------------------------------- */

void plx_task_result_destroy(plx_task_result_t **rp)
{
    plx_task_result_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    *rp = NULL;
    for (size_t i = 0; i < r->n; i++) {
        free(r->names[i]);
        plx_value_destroy(&r->values[i]);
    }
    free(r->names);
    free(r->values);
    plx_value_destroy(&r->pulled_pickle);
    free(r->stdout_text);
    free(r->stderr_text);
    free(r->ename);
    free(r->evalue);
    free(r->traceback);
    free(r);
}

const plx_value_t *plx_task_result_get(const plx_task_result_t *r, const char *name)
{
    for (size_t i = 0; r && name && i < r->n; i++)
        if (strcmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

/* A string task's values, [pulled dict, stdout, stderr], into r. */
static int task_values(plx_task_result_t *r, plx_task_reply_t *tr)
{
    plx_value_t **vals = tr->values;
    size_t n = tr->nvalues;
    if (n > 1 && vals[1]->kind == PLX_VALUE_STR) {
        free(r->stdout_text);
        if (!(r->stdout_text = strdup(vals[1]->u.s)))
            return PLX_ENOMEM;
    }
    if (n > 2 && vals[2]->kind == PLX_VALUE_STR) {
        free(r->stderr_text);
        if (!(r->stderr_text = strdup(vals[2]->u.s)))
            return PLX_ENOMEM;
    }
    if (n > 0 && vals[0]->kind == PLX_VALUE_PICKLE &&
        plx_unpickle_dict(vals[0], &r->names, &r->values, &r->n, NULL) != PLX_OK) {
        r->pulled_pickle = vals[0];   /* C cannot read it: hand it over opaque */
        vals[0] = NULL;
    }
    return PLX_OK;
}

static int status_code(plx_task_status_t s)
{
    switch (s) {
    case PLX_TASK_OK:          return PLX_OK;
    case PLX_TASK_PENDING:     return PLX_EAGAIN;
    case PLX_TASK_FAILED:      return PLX_EREMOTE;
    case PLX_TASK_ABORTED:     return PLX_EABORTED;
    case PLX_TASK_ENGINE_DIED: return PLX_EENGINE;
    case PLX_TASK_TIMEOUT:     return PLX_ETIMEDOUT;
    case PLX_TASK_EVICTED:     return PLX_EEVICTED;
    case PLX_TASK_UNKNOWN:     return PLX_ENOTFOUND;
    }
    return PLX_EPROTO;
}

/* The result record of tr (its strings and values moved out of tr). */
static int task_result_of(plx_task_reply_t *tr, plx_task_result_t **out, plx_err_t *err)
{
    if (tr->fault)
        return plx_err_set(err, PLX_EPROTO, "%s", tr->fault);
    plx_task_result_t *r = calloc(1, sizeof *r);
    if (!r)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a task result");
    r->task_id = tr->task_id;
    r->status = (plx_task_status_t)tr->status;
    r->engine_id = tr->has_engine_id ? tr->engine_id : -1;
    r->submitted = tr->submitted;
    r->started = tr->started;
    r->completed = tr->completed;
    r->ename = tr->ename;
    r->evalue = tr->evalue;
    r->traceback = tr->traceback;
    tr->ename = tr->evalue = tr->traceback = NULL;
    r->stdout_text = tr->stdout_text;   /* string tasks' values say the same (task_values) */
    r->stderr_text = tr->stderr_text;
    tr->stdout_text = tr->stderr_text = NULL;
    if (!r->stdout_text || !r->stderr_text || task_values(r, tr) != PLX_OK) {
        plx_task_result_destroy(&r);
        return plx_err_set(err, PLX_ENOMEM, "out of memory for a task result");
    }
    *out = r;
    return PLX_OK;
}

int plx_task_outcome(plx_request_t *req, uint64_t id, plx_task_result_t **out, plx_err_t *err)
{
    plx_task_replies_t *trs = NULL;
    *out = NULL;
    int rc = plx_reply_task_results(req, &trs, err);
    if (rc != PLX_OK)
        return rc;
    plx_task_reply_t *tr = NULL;
    for (size_t i = 0; i < trs->n; i++)
        if (trs->r[i].task_id == id)
            tr = &trs->r[i];
    plx_task_status_t st = tr && tr->has_status ? (plx_task_status_t)tr->status
                                                : PLX_TASK_PENDING;
    if (!tr)
        rc = plx_err_set(err, PLX_EPROTO, "the controller's answer lacks task %llu",
                         (unsigned long long)id);
    else if (st == PLX_TASK_PENDING)
        rc = plx_err_set(err, PLX_EAGAIN, "task %llu has not finished", (unsigned long long)id);
    else
        tr->status = st;
    if (rc == PLX_OK)
        rc = task_result_of(tr, out, err);
    plx_task_replies_destroy(&trs);
    if (rc != PLX_OK || (rc = status_code(st)) == PLX_OK)
        return rc;
    if ((*out)->ename)
        return plx_err_set(err, rc, "task %llu: engine %d raised %s: %s", (unsigned long long)id,
                           (*out)->engine_id, (*out)->ename, (*out)->evalue);
    return plx_err_set(err, rc, "task %llu: %s", (unsigned long long)id, plx_strerror(rc));
}

int plx_client_task_result(plx_client_t *c, uint64_t task_id, int block, plx_task_result_t **out,
                           plx_err_t *err)
{
    plx_request_t *req = NULL;
    *out = NULL;
    int rc = plx_rq_task_wait(c, &task_id, 1, block, 0, &req, err);
    if (rc == PLX_OK)
        rc = plx_request_wait(req, plx_client_timeout_get(c), err);
    if (rc == PLX_OK)
        rc = plx_task_outcome(req, task_id, out, err);
    plx_request_destroy(&req);
    return rc;
}
