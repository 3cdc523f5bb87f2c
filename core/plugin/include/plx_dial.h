/*
 * Dialling the controller: the shm listener on this host when it answers,
 * else HOST:PORT over the URL's own transport.
 *
 * A URL may name the controller's shm listener (plx_url.h, ?shm=NAME). A
 * client or an engine on the controller's host, running as the
 * controller's user, reaches it there: payload then moves through shared
 * memory instead of sockets (plx_region.h). Anywhere else the name is not
 * found (abstract Unix names are per host and network namespace), or its
 * owner is someone else (refused by the shm transport's uid check), and
 * the dial goes on to HOST:PORT as if the URL had no name. Setting
 * PLEXA_SHM=0 in the environment skips the shm listener.
 */
#ifndef PLX_DIAL_H
#define PLX_DIAL_H

#include <stdint.h>

#include "plexa/error.h"
#include "plexa/transport.h"

typedef struct plx_dialed {
    const plx_transport_ops *ops;
    void                    *handle;   /* the transport's connection, connecting */
    int                      fd;
    int                      shm;      /* 1: through the shm listener */
} plx_dialed_t;

/* Start a connection (the transport's handshake finishes it). transport,
 * host, port and sec are the URL's; shm_name its shm listener ("" or
 * NULL: none). PLX_OK with *out filled, or the TCP/TLS connect's error. */
int plx_dial(const char *transport, const char *host, uint16_t port, const plx_security *sec,
             const char *shm_name, plx_dialed_t *out, plx_err_t *err);

/* Whether this process may use shm listeners ($PLEXA_SHM is not 0/off/no/false). */
int plx_dial_shm_allowed(void);

#endif
