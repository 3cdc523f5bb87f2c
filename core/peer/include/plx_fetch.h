/*
 * Fetching values a peer serves with a one-time ticket (direct transfers:
 * proto/plexa.proto, Ref and Pull). An engine fetches a ref's values from
 * the engine that holds them; a client fetches what it pulled from each
 * engine that served it.
 *
 * Each fetch connects (TLS pinned to the served certificate's
 * fingerprint), says Hello with role ROLE_PEER and the ticket as its
 * token, and keeps the one frame the peer answers with. The fetches of one
 * call run side by side on an event loop of their own, in the calling
 * thread, which blocks until every one has its frame or has failed.
 */
#ifndef PLX_FETCH_H
#define PLX_FETCH_H

#include <stdatomic.h>
#include <stdint.h>

#include "plexa/transport.h"
#include "plexa.pb-c.h"
#include "plx_frame.h"
#include "plx_url.h"

typedef struct plx_fetch {
    /* What to fetch (borrowed for the call). */
    const plx_transport_ops *ops;
    const char              *host;
    uint16_t                 port;
    const char              *fingerprint;   /* lowercase hex SHA-256; "" or NULL: no pin */
    const char              *ticket;
    /* Pass the frame on as it arrives (borrowed; NULL: no): the relay
     * gets every byte, and is finished whole or not when the fetch ends. */
    struct plx_relay        *tee;
    /* The outcome: msg (owned by the caller afterwards), or code and why. */
    plx_msg_t               *msg;
    int                      code;
    char                     why[PLX_ERR_MSG_MAX];
    /* private */
    struct plx_conn         *conn;
    struct plx_fetch_run    *run;
    int                      opened;
} plx_fetch_t;

/*
 * Run the fetches f[0..n). Each ends with f[i].msg set, or with f[i].code
 * (a negative PLX_E* code) and f[i].why. A peer not connected (and its
 * TLS handshake done) within 10 s fails (PLX_ETIMEDOUT): a firewall that
 * drops is not waited for. timeout_s bounds the whole call;
 * a non-NULL stop is polled every 50 ms and, once non-zero, fails the
 * fetches still running (PLX_ECLOSED). Returns how many failed.
 */
size_t plx_fetch_all(plx_fetch_t *f, size_t n, double timeout_s, const atomic_int *stop);

/* Set f up to fetch what is served at url (a URL plx_serve_offer gave,
 * its token the ticket): *u gets the parsed URL, which f borrows (keep u
 * as long as f). PLX_OK, or err says why not (a malformed URL, a
 * transport this process cannot load). */
int plx_fetch_from_url(plx_fetch_t *f, plx_url_t *u, const char *url, plx_err_t *err);

/* The envelope of a fetched frame if it is an EngineReply (the values);
 * else NULL with err (PLX_EPROTO: the peer served something else).
 * Caller frees. */
Plexa__Envelope *plx_fetch_reply(const plx_msg_t *msg, plx_err_t *err);

#endif
