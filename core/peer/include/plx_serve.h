/*
 * Serving values to peers with one-time tickets (direct transfers:
 * proto/plexa.proto, Ref and Pull). An engine serves a ref's values to
 * other engines and a pull's values to its client; a client serves the
 * pieces of a scatter to the engines that fetch them.
 *
 * An offer is one frame (an EngineReply with the values and their
 * buffers) and the tickets that may take it, each once. The server
 * listens lazily, on the first offer, on the address the owner names (the
 * one its peers reach it at), with the owner's transport: with tls, a key
 * and certificate made for this process alone, whose fingerprint the URL
 * carries. A peer says Hello with role ROLE_PEER and a ticket, gets the
 * frame, and is closed; anything else is refused and logged.
 *
 * Threads: the listener and its connections live on the owner's event
 * loop. Offers come from any thread: the first one asks the loop's thread
 * to listen (the owner's wake callback, after which that thread calls
 * plx_serve_on_wake) and waits for it. The sanitizers' leak checks see
 * every offer freed by plx_serve_destroy.
 */
#ifndef PLX_SERVE_H
#define PLX_SERVE_H

#include <ev.h>
#include <stddef.h>

#include "plexa/error.h"
#include "plx_frame.h"

typedef struct plx_serve plx_serve_t;

/* Wakes the thread that runs the loop (ev_async_send): it then calls
 * plx_serve_on_wake. */
typedef void (*plx_serve_wake_fn)(void *ud);

/* A server that listens nowhere yet; NULL on ENOMEM. what names the owner
 * in logs ("engine", "client"). */
plx_serve_t *plx_serve_new(const char *what, plx_serve_wake_fn wake, void *ud);

/* The loop's thread, from its wake handler: listen if an offer asked. */
void plx_serve_on_wake(plx_serve_t *s, struct ev_loop *loop);

/* The loop's thread, as it stops: close the listener and its peers. */
void plx_serve_io_stop(plx_serve_t *s);

/* Any thread, once the loop no longer runs it: free the offers and s.
 * NULL-safe; NULLs *sp. */
void plx_serve_destroy(plx_serve_t **sp);

/*
 * Any thread: serve *msg to the peers presenting tickets[0..n), each
 * once; ttl_s > 0 drops it after that long even with tickets left (else
 * an hour). host: the address peers reach this process at (the first
 * offer's is where it listens); transport: "tcp" or "tls". url (url_len
 * bytes) gets where it is served, with a token of zeros for the caller to
 * replace with a ticket. On PLX_OK *msg is taken (kept, or freed when its
 * tickets were ended already); otherwise err says why it cannot listen
 * and *msg is the caller's still.
 */
int plx_serve_offer(plx_serve_t *s, const char *transport, const char *host,
                    char *const *tickets, size_t n, double ttl_s, plx_msg_t **msg, char *url,
                    size_t url_len, plx_err_t *err);

/*
 * The loop's thread: serve relay's frame, as it arrives (plx_relay.h), to
 * the peers presenting tickets[0..n), each once, ticket i as reader i;
 * listen first if nothing did yet. Otherwise as plx_serve_offer; s takes a
 * reference to relay, and drops the readers whose peer never comes.
 */
struct plx_relay;
/* A relay's peer is written once this much has come for it (each write
 * costs a system call and, with tls, a record), then all there is; a last
 * part shorter than this goes at the frame's end, or with what follows. */
#define PLX_SERVE_RELAY_BATCH ((size_t)256 << 10)
int plx_serve_offer_relay(plx_serve_t *s, struct ev_loop *loop, const char *transport,
                          const char *host, char *const *tickets, size_t n, double ttl_s,
                          struct plx_relay *relay, char *url, size_t url_len, plx_err_t *err);

/* Any thread: the offers holding these tickets go; tickets not offered
 * yet are remembered, so that a late offer of them is never made. */
void plx_serve_end(plx_serve_t *s, char *const *tickets, size_t n);

#endif
