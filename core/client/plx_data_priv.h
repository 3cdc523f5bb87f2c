/*
 * Inside libplexa: the outcomes of the value calls, shared by their
 * blocking forms (plx_push_pull.c, plx_scatter_gather.c,
 * plx_string_task.c) and their non-blocking handles (plx_pending.c).
 * Each reads a completed request through the decoders of plx_rq.h.
 */
#ifndef PLX_DATA_PRIV_H
#define PLX_DATA_PRIV_H

#include "plx_request_priv.h"

/* A push's (or a scatter part's) outcome: PLX_EREMOTE naming the first
 * engine that raised. */
int plx_push_outcome(plx_request_t *req, plx_err_t *err);

/* A pull of nkeys names: *out, also with PLX_EREMOTE (then the engines
 * that raised carry their error). */
int plx_pull_outcome(plx_request_t *req, size_t nkeys, plx_pulled_t **out, plx_err_t *err);

/* One task's result (task_id) from a task_wait reply. */
int plx_task_outcome(plx_request_t *req, uint64_t task_id, plx_task_result_t **out,
                     plx_err_t *err);

/* One push per target engine with its block of value; on PLX_OK *reqs
 * holds *k requests (a malloc'd array, the caller's). direct: the caller
 * waits for them all (a blocking scatter), so big pieces may be served by
 * this client to their engines (plx_rq_push_direct). */
int plx_scatter_submit(plx_client_t *c, const plx_targets_t *t, const char *name,
                       const plx_value_t *value, int direct, plx_request_t ***reqs, size_t *k,
                       plx_err_t *err);

/* Join the parts of a gather (moved out of p). With all_targets the parts
 * are put in engine id order first, the order in which scatter deals them. */
int plx_gather_join(plx_pulled_t *p, int all_targets, const char *name, plx_value_t **out,
                    plx_err_t *err);

#endif
