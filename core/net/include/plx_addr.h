/*
 * Addresses as hosts name them: which are loopback ones, and which
 * address a connected socket leaves from. The controller, its engines and
 * its clients all decide with these where a peer can be reached (direct
 * transfers), so that they decide alike.
 */
#ifndef PLX_ADDR_H
#define PLX_ADDR_H

#include <stddef.h>

/* Whether host ("127.0.0.5", "::1", "localhost"; "" or NULL counts) is a
 * loopback address, reachable only from this host. */
int plx_addr_is_loopback(const char *host);

/* The local address of the connected socket fd, as text into host (the
 * address a peer of that network reaches this host at): PLX_OK, or
 * PLX_ENOTFOUND when fd is no IP connection (a Unix socket: shm). */
int plx_sock_local_host(int fd, char *host, size_t len);

#endif
