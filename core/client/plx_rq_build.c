/*
 * The requests of the multi-engine interface, the task interface's small
 * ones and Hello: each envelope is built here and nowhere else (see
 * plx_rq.h; TaskSubmit is in plx_rq_task.c).
 *
 *   builder storage    plx_rqb_init/clear/alloc/value
 *   multi-engine       get_ids, execute, push, pull, call, clear_queue,
 *                      queue_status, shutdown, interrupt
 *   task interface     reserve, wait, abort, clear, queue_status
 *
 * Nothing here sends: plx_rq_submit.c does.
 */
#include <stdlib.h>
#include <string.h>

#include "plexa/version.h"
#include "plx_request_priv.h"
#include "plx_rqb.h"
#include "plx_value_int.h"

/* ---- builder storage ------------------------------------------------------- */

int plx_rqb_init(plx_rqb_t *b, plx_err_t *err)
{
    memset(b, 0, sizeof *b);
    plexa__envelope__init(&b->env);
    b->bufs = plx_msg_new(0);
    return b->bufs ? PLX_OK : plx_err_set(err, PLX_ENOMEM, "out of memory for a request");
}

void plx_rqb_clear(plx_rqb_t *b)
{
    for (size_t i = 0; i < b->nwire; i++) {
        plx_value_wire_clear(b->wire[i]);
        free(b->wire[i]);
    }
    free(b->wire);
    for (size_t i = 0; i < b->nmem; i++)
        free(b->mem[i]);
    free(b->mem);
    plx_msg_destroy(&b->bufs);   /* a frame being written holds its own references */
    memset(b, 0, sizeof *b);
}

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return PLX_OK;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * size);
    if (!p)
        return PLX_ENOMEM;
    *arr = p;
    *cap = n;
    return PLX_OK;
}

void *plx_rqb_alloc(plx_rqb_t *b, size_t n, size_t size)
{
    if (grow((void **)&b->mem, &b->capmem, b->nmem + 1, sizeof *b->mem) != PLX_OK)
        return NULL;
    void *p = calloc(n ? n : 1, size);
    if (p)
        b->mem[b->nmem++] = p;
    return p;
}

Plexa__Value *plx_rqb_value(plx_rqb_t *b, const plx_value_t *v, plx_msg_t *msg, plx_err_t *err)
{
    Plexa__Value *w = malloc(sizeof *w);
    if (!w || grow((void **)&b->wire, &b->capwire, b->nwire + 1, sizeof *b->wire) != PLX_OK) {
        free(w);
        plx_err_set(err, PLX_ENOMEM, "out of memory for a value");
        return NULL;
    }
    b->wire[b->nwire++] = w;   /* from here on, clear frees it, also partly filled */
    return plx_value_to_wire(v, w, msg, err) == PLX_OK ? w : NULL;
}

/* The values in wire form, their buffers appended to the frame's; NULL
 * with *rc the failure. */
static Plexa__Value **wire_values(plx_rqb_t *b, const plx_value_t *const *values, size_t n,
                                  int *rc, plx_err_t *err)
{
    plx_err_t e = {0};
    Plexa__Value **w = NULL;
    if (n && !values)
        *rc = plx_err_set(&e, PLX_EINVAL, "values is NULL");
    else if (!(w = plx_rqb_alloc(b, n, sizeof *w)))
        *rc = plx_err_set(&e, PLX_ENOMEM, "out of memory for %zu values", n);
    for (size_t i = 0; w && i < n; i++)
        if (!(w[i] = plx_rqb_value(b, values[i], b->bufs, &e))) {
            *rc = e.code;
            w = NULL;
        }
    if (!w && err)
        *err = e;
    return w;
}

/* rc, with what's message prefixed "what: " (err may be NULL). */
static int prefixed(int rc, plx_err_t *err, const char *what)
{
    if (err)
        plx_err_prefix(err, what);
    return rc;
}

static int check_names(const char *const *names, size_t n, plx_err_t *err)
{
    if (n && !names)
        return plx_err_set(err, PLX_EINVAL, "names is NULL");
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !*names[i])
            return plx_err_set(err, PLX_EINVAL, "name %zu is %s", i,
                               names[i] ? "empty" : "NULL");
    return PLX_OK;
}

static void set_targets(plx_rqb_t *b, const plx_targets_t *t)
{
    plexa__targets__init(&b->tg);
    if (!t || t->all) {
        b->tg.has_all = 1;
        b->tg.all = 1;
    } else {
        b->tg.n_ids = t->n;
        b->tg.ids = (int32_t *)t->ids;   /* only read while packing */
    }
    b->env.targets = &b->tg;
}

/* ---- Hello ------------------------------------------------------------------ */

int plx_rqb_hello(plx_rqb_t *b, plx_client_role_t role, const char *token, const char *hostname,
                  int32_t pid, plx_err_t *err)
{
    Plexa__Hello *h = &b->body.hello;
    plexa__hello__init(h);
    h->has_role = 1;
    h->role = role == PLX_CLIENT_ROLE_TASK     ? PLEXA__ROLE__ROLE_TASK
              : role == PLX_CLIENT_ROLE_STATUS ? PLEXA__ROLE__ROLE_STATUS
                                               : PLEXA__ROLE__ROLE_MEC;
    h->token = (char *)token;
    h->has_version = 1;
    h->version = PLX_PROTOCOL_VERSION;
    h->hostname = (char *)hostname;
    h->has_pid = 1;
    h->pid = pid;
    b->env.body_case = PLEXA__ENVELOPE__BODY_HELLO;
    b->env.hello = h;
    return PLX_OK;
}

/* ---- multi-engine requests ---------------------------------------------------- */

int plx_rqb_get_ids(plx_rqb_t *b, plx_err_t *err)
{
    plexa__get_ids__init(&b->body.get_ids);
    b->env.body_case = PLEXA__ENVELOPE__BODY_GET_IDS;
    b->env.get_ids = &b->body.get_ids;
    return PLX_OK;
}

int plx_rqb_execute(plx_rqb_t *b, const plx_targets_t *t, const char *code, plx_err_t *err)
{
    if (!code)
        return plx_err_set(err, PLX_EINVAL, "execute: code is NULL");
    Plexa__Execute *ex = &b->body.execute;
    plexa__execute__init(ex);
    ex->code = (char *)code;
    set_targets(b, t);
    b->env.body_case = PLEXA__ENVELOPE__BODY_EXECUTE;
    b->env.execute = ex;
    return PLX_OK;
}

/* The Push of names[i] = vals[i] (wire values over b's buffers). */
static int push_body(plx_rqb_t *b, const plx_targets_t *t, char *const *names,
                     Plexa__Value *const *vals, size_t n, plx_err_t *err)
{
    Plexa__NamedValue *nv = plx_rqb_alloc(b, n, sizeof *nv);
    Plexa__NamedValue **nvp = nv ? plx_rqb_alloc(b, n, sizeof *nvp) : NULL;
    if (!nvp)
        return plx_err_set(err, PLX_ENOMEM, "push: out of memory");
    for (size_t i = 0; i < n; i++) {
        plexa__named_value__init(&nv[i]);
        nv[i].name = names[i];
        nv[i].value = vals[i];
        nvp[i] = &nv[i];
    }
    Plexa__Push *push = &b->body.push;
    plexa__push__init(push);
    push->n_values = n;
    push->values = nvp;
    set_targets(b, t);
    b->env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
    b->env.push = push;
    return PLX_OK;
}

int plx_rqb_push(plx_rqb_t *b, const plx_targets_t *t, const char *const *names,
                 const plx_value_t *const *values, size_t n, plx_err_t *err)
{
    int rc = check_names(names, n, err);
    if (rc != PLX_OK)
        return prefixed(rc, err, "push");
    Plexa__Value **w = wire_values(b, values, n, &rc, err);
    if (!w)
        return prefixed(rc, err, "push");
    return push_body(b, t, (char *const *)names, w, n, err);
}

int plx_rqb_push_wire(plx_rqb_t *b, const plx_targets_t *t, char *const *names,
                      Plexa__Value *const *vals, size_t n, const plx_msg_t *bufs, plx_err_t *err)
{
    for (uint32_t i = 0; i < bufs->nbufs; i++)
        if (plx_msg_add_buf(b->bufs, bufs->bufs[i]) != PLX_OK)
            return plx_err_set(err, PLX_ENOMEM, "push: out of memory");
    return push_body(b, t, names, vals, n, err);
}

int plx_rqb_push_served(plx_rqb_t *b, const char *url, int only, plx_err_t *err)
{
    Plexa__Push *push = &b->body.push;
    size_t n = push->n_values;
    Plexa__Value *none = plx_rqb_alloc(b, n ? n : 1, sizeof *none);
    char *u = none ? plx_rqb_alloc(b, strlen(url) + 1, 1) : NULL;
    plx_msg_t *empty = u && only ? plx_msg_new(0) : NULL;
    if (!u || (only && !empty))
        return plx_err_set(err, PLX_ENOMEM, "push: out of memory");
    memcpy(u, url, strlen(url) + 1);
    push->served_at = u;
    push->has_served_only = 1;
    push->served_only = only;
    if (!only)
        return PLX_OK;
    for (size_t i = 0; i < n; i++) {
        plexa__value__init(&none[i]);
        none[i].kind_case = PLEXA__VALUE__KIND_NONE;
        none[i].none = 1;
        push->values[i]->value = &none[i];
    }
    plx_msg_destroy(&b->bufs);   /* the served frame holds them */
    b->bufs = empty;
    return PLX_OK;
}

int plx_rqb_pull(plx_rqb_t *b, const plx_targets_t *t, const char *const *names, size_t n,
                 plx_err_t *err)
{
    int rc = check_names(names, n, err);
    if (rc != PLX_OK)
        return prefixed(rc, err, "pull");
    Plexa__Pull *pull = &b->body.pull;
    plexa__pull__init(pull);
    pull->n_keys = n;
    pull->keys = (char **)names;
    set_targets(b, t);
    b->env.body_case = PLEXA__ENVELOPE__BODY_PULL;
    b->env.pull = pull;
    return PLX_OK;
}

int plx_rqb_call(plx_rqb_t *b, const plx_targets_t *t, const char *method,
                 const plx_value_t *const *args, size_t n, plx_err_t *err)
{
    if (!method || !*method)
        return plx_err_set(err, PLX_EINVAL, "call: no method");
    int rc;
    Plexa__Value **w = wire_values(b, args, n, &rc, err);
    if (!w)
        return prefixed(rc, err, "call");
    Plexa__Call *call = &b->body.call;
    plexa__call__init(call);
    call->method = (char *)method;
    call->n_args = n;
    call->args = w;
    set_targets(b, t);
    b->env.body_case = PLEXA__ENVELOPE__BODY_CALL;
    b->env.call = call;
    return PLX_OK;
}

int plx_rqb_clear_queue(plx_rqb_t *b, const plx_targets_t *t, plx_err_t *err)
{
    plexa__clear_queue__init(&b->body.clear_queue);
    set_targets(b, t);
    b->env.body_case = PLEXA__ENVELOPE__BODY_CLEAR_QUEUE;
    b->env.clear_queue = &b->body.clear_queue;
    return PLX_OK;
}

int plx_rqb_cancel(plx_rqb_t *b, const uint64_t *request_ids, size_t n, plx_err_t *err)
{
    if (n == 0)
        return plx_err_set(err, PLX_EINVAL, "no request to cancel");
    Plexa__ClearQueue *cq = &b->body.clear_queue;
    plexa__clear_queue__init(cq);
    cq->n_requests = n;
    cq->requests = (uint64_t *)request_ids;
    b->env.body_case = PLEXA__ENVELOPE__BODY_CLEAR_QUEUE;
    b->env.clear_queue = cq;
    return PLX_OK;
}

int plx_rqb_queue_status(plx_rqb_t *b, const plx_targets_t *t, plx_err_t *err)
{
    plexa__queue_status__init(&b->body.queue_status);
    set_targets(b, t);
    b->env.body_case = PLEXA__ENVELOPE__BODY_QUEUE_STATUS;
    b->env.queue_status = &b->body.queue_status;
    return PLX_OK;
}

int plx_rqb_shutdown(plx_rqb_t *b, const plx_targets_t *t, int controller, plx_err_t *err)
{
    Plexa__Shutdown *sd = &b->body.shutdown;
    plexa__shutdown__init(sd);
    sd->has_controller = 1;
    sd->controller = controller != 0;
    set_targets(b, t);
    b->env.body_case = PLEXA__ENVELOPE__BODY_SHUTDOWN;
    b->env.shutdown = sd;
    return PLX_OK;
}

int plx_rqb_interrupt(plx_rqb_t *b, const plx_targets_t *t, plx_err_t *err)
{
    Plexa__Interrupt *in = &b->body.interrupt;
    plexa__interrupt__init(in);
    in->has_task_id = 1;
    in->task_id = 0;   /* whatever runs */
    set_targets(b, t);
    b->env.body_case = PLEXA__ENVELOPE__BODY_INTERRUPT;
    b->env.interrupt = in;
    return PLX_OK;
}

/* ---- the task interface's small requests ------------------------------------------ */

int plx_rqb_task_reserve(plx_rqb_t *b, uint32_t count, plx_err_t *err)
{
    Plexa__TaskReserve *tr = &b->body.task_reserve;
    plexa__task_reserve__init(tr);
    tr->has_count = 1;
    tr->count = count;
    b->env.body_case = PLEXA__ENVELOPE__BODY_TASK_RESERVE;
    b->env.task_reserve = tr;
    return PLX_OK;
}

int plx_rqb_task_wait(plx_rqb_t *b, const uint64_t *ids, size_t n, int block, int release,
                      plx_err_t *err)
{
    Plexa__TaskWait *tw = &b->body.task_wait;
    plexa__task_wait__init(tw);
    tw->n_ids = n;
    tw->ids = (uint64_t *)ids;
    tw->has_block = 1;
    tw->block = block != 0;
    tw->has_release = 1;
    tw->release = release != 0;
    b->env.body_case = PLEXA__ENVELOPE__BODY_TASK_WAIT;
    b->env.task_wait = tw;
    return PLX_OK;
}

int plx_rqb_task_abort(plx_rqb_t *b, const uint64_t *ids, size_t n, int queued_only,
                       plx_err_t *err)
{
    Plexa__TaskAbort *ta = &b->body.task_abort;
    plexa__task_abort__init(ta);
    ta->n_ids = n;
    ta->ids = (uint64_t *)ids;
    if (queued_only) {
        ta->has_queued_only = 1;
        ta->queued_only = 1;
    }
    b->env.body_case = PLEXA__ENVELOPE__BODY_TASK_ABORT;
    b->env.task_abort = ta;
    return PLX_OK;
}

int plx_rqb_task_clear(plx_rqb_t *b, const uint64_t *ids, size_t n, plx_err_t *err)
{
    Plexa__TaskClear *tc = &b->body.task_clear;
    plexa__task_clear__init(tc);
    tc->n_ids = n;
    tc->ids = (uint64_t *)ids;
    b->env.body_case = PLEXA__ENVELOPE__BODY_TASK_CLEAR;
    b->env.task_clear = tc;
    return PLX_OK;
}

int plx_rqb_task_queue_status(plx_rqb_t *b, int verbose, plx_err_t *err)
{
    Plexa__TaskQueueStatus *q = &b->body.task_queue_status;
    plexa__task_queue_status__init(q);
    q->has_verbose = 1;
    q->verbose = verbose != 0;
    b->env.body_case = PLEXA__ENVELOPE__BODY_TASK_QUEUE_STATUS;
    b->env.task_queue_status = q;
    return PLX_OK;
}
