/*
 * A listening endpoint on a libev loop over a transport plugin: accepts
 * connections and hands each (transport handle, fd, peer) to a callback.
 * A peer the transport refuses (PLX_EAUTH from accept) is logged as a
 * warning and accepting goes on; other accept errors (out of descriptors)
 * are logged and pause accepting for a tenth of a second.
 */
#ifndef PLX_LISTENER_H
#define PLX_LISTENER_H

#include <ev.h>
#include <stdint.h>

#include "plexa/transport.h"

typedef struct plx_listener plx_listener_t;

/* Called per accepted connection; the callee owns handle. */
typedef void (*plx_accept_fn)(plx_listener_t *l, void *handle, int fd, const char *peer,
                              void *ud);

/* The transport the listener accepts with (its connections use it too). */
const plx_transport_ops *plx_listener_ops(const plx_listener_t *l);

/* Listen on host:port (0 = any free port). Caller owns the result. */
plx_listener_t *plx_listener_new(struct ev_loop *loop, const plx_transport_ops *ops,
                                 const char *host, uint16_t port, const plx_security *sec,
                                 plx_accept_fn on_accept, void *ud, plx_err_t *err);

/* The port actually bound. */
uint16_t plx_listener_port(const plx_listener_t *l);

void plx_listener_destroy(plx_listener_t **lp);

#endif
