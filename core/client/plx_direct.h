/*
 * Direct pulls, the client's half: fetching what a pull's engines serve
 * (see plx_direct.c). Internal to libplexa.
 */
#ifndef PLX_DIRECT_H
#define PLX_DIRECT_H

#include <stdatomic.h>

#include "plx_request_priv.h"

/* A direct pull's keys, kept with its request to pull again through the
 * controller what could not be fetched. */
typedef struct plx_direct_keys plx_direct_keys_t;

/* The keys of env if it is a direct pull, else (or on ENOMEM) NULL. */
plx_direct_keys_t *plx_direct_keys_of(const Plexa__Envelope *env);
void plx_direct_keys_free(plx_direct_keys_t **k);

/* Wait for r on a direct transfer's thread: PLX_OK once done, PLX_ECLOSED
 * as soon as *stop is set (the client is closing). */
int  plx_direct_wait(plx_request_t *r, const atomic_int *stop);

/* Whether a reply names values to fetch (an EngineReply with serve_url). */
int  plx_direct_wanted(const Plexa__Envelope *env);

/*
 * Fetch what the reply m/env names, pull again through c what cannot be
 * fetched, and complete req with the whole (takes m and env). Blocks: run
 * it on a thread of its own, never the I/O thread (a pull again needs
 * it). A non-zero *stop gives up on what is still running.
 */
void plx_direct_resolve(plx_client_t *c, plx_request_t *req, const plx_direct_keys_t *keys,
                        plx_msg_t *m, Plexa__Envelope *env, const atomic_int *stop);

/* plx_rq_submit.c: a pull through the controller that first ends the
 * tickets of direct pulls this client could not use. */
int plx_rq_pull_ending(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                       size_t n, char *const *tickets, size_t ntickets, plx_request_t **req,
                       plx_err_t *err);

/* ---- direct scatters (plx_direct_push.c) ---- */

/* A push's values served by this client (kept with its request). */
typedef struct plx_direct_push plx_direct_push_t;

void plx_direct_push_free(plx_direct_push_t **dp);
/* The I/O thread: req (a served push) was answered with env; its values
 * are no longer served. 1 if the engine could not fetch them: the caller
 * has them pushed again (plx_direct_run) instead of completing req. */
int  plx_direct_push_answered(plx_client_t *c, plx_request_t *req, const Plexa__Envelope *env);
/* Push req's values again through the controller to engine_id; its reply
 * completes req. Blocks, as plx_direct_resolve does. */
void plx_direct_push_again(plx_client_t *c, plx_request_t *req, int32_t engine_id,
                           const atomic_int *stop);

/* A direct reply's work, on a thread of its own: a served push pushed
 * again, or a direct pull's values fetched (takes m and env). */
void plx_direct_run(plx_client_t *c, plx_request_t *req, plx_msg_t *m, Plexa__Envelope *env,
                    const atomic_int *stop);

/* plx_client.c: plx_client_submit with a served push's values kept with
 * the request (dp taken on PLX_OK). */
int  plx_client_submit_direct(plx_client_t *c, const Plexa__Envelope *env,
                              plx_buf_t *const *bufs, size_t nbufs, plx_direct_push_t *dp,
                              plx_request_t **req, plx_err_t *err);
/* plx_client.c: what this client serves on (plx_serve.h). */
struct plx_serve *plx_client_serve(plx_client_t *c);
/* plx_client.c: the transport and address peers reach this client at
 * (on the controller's host: the address its URL names);
 * *only: the push need not carry the values too (not on shared memory).
 * PLX_ENOTFOUND through an ssh tunnel. */
int  plx_client_serve_where(plx_client_t *c, char *transport, size_t tlen, char *host,
                            size_t hlen, int *only);

/* plx_client.c: this client's pulls go through the controller from now on. */
void plx_client_direct_off(plx_client_t *c);
/* plx_client.c: whether this client's pulls ask to fetch values directly. */
int  plx_client_direct_wanted(plx_client_t *c);

#endif
