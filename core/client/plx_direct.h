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

/* plx_client.c: this client's pulls go through the controller from now on. */
void plx_client_direct_off(plx_client_t *c);
/* plx_client.c: whether this client's pulls ask to fetch values directly. */
int  plx_client_direct_wanted(plx_client_t *c);

#endif
