/*
 * plx_sock: the socket half of plexa's transport plugins.
 *
 * transport-tcp streams over these sockets directly; transport-tls layers
 * OpenSSL over the same sockets. Both compile this file into their .so
 * (it is a static library with hidden visibility, so nothing here is
 * exported from a plugin and two plugins never clash).
 *
 * Every socket is non-blocking and close-on-exec. Failures fill err with
 * the failed call, the address and strerror, like every transport op.
 * Addresses are printed "host:port", with IPv6 literals bracketed.
 */
#ifndef PLX_SOCK_H
#define PLX_SOCK_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "plexa/error.h"

#define PLX_SOCK_ADDR_MAX (NI_MAXHOST + NI_MAXSERV + 4)   /* "[host]:port" */

/* "host:port", bracketing IPv6 literals so the port stays readable. */
void plx_sock_format_addr(char *out, size_t len, const char *host, const char *port);

/* A numeric "host:port" for sa, or "?" if it cannot be printed. */
void plx_sock_format_sockaddr(char *out, size_t len, const struct sockaddr *sa,
                              socklen_t salen);

/*
 * Bind and listen on host:port (port 0 picks one). NULL or "" means
 * 127.0.0.1 and "*" means 0.0.0.0: exposing a controller to the network
 * must be asked for. On PLX_OK *fd is the listening socket (owned by the
 * caller), *port_out (if not NULL) the bound port and addr the bound
 * address. Errors: PLX_EINVAL (unknown host), PLX_EIO.
 */
int plx_sock_listen(const char *host, uint16_t port, int *fd, uint16_t *port_out,
                    char *addr, size_t addrlen, plx_err_t *err);

/*
 * Accept one pending connection on lfd (laddr is its address, for
 * messages). PLX_OK with *fd (owned by the caller, TCP_NODELAY set) and
 * peer filled; PLX_EAGAIN when none is pending; PLX_EIO otherwise.
 */
int plx_sock_accept(int lfd, const char *laddr, int *fd, char *peer, size_t peerlen,
                    plx_err_t *err);

/*
 * Start a non-blocking connect to host:port (NULL or "" means
 * 127.0.0.1). Addresses that fail at once are skipped in getaddrinfo
 * order. On PLX_OK *fd is owned by the caller, *inprogress says whether
 * plx_sock_connect_finish must still be called, and addr holds
 * "host:port". Every failure is PLX_ECONNECT naming the address.
 */
int plx_sock_connect(const char *host, uint16_t port, int *fd, bool *inprogress,
                     char *addr, size_t addrlen, plx_err_t *err);

/*
 * Finish a connect that was in progress, without blocking: PLX_OK when
 * connected, PLX_EAGAIN while still in progress (wait for writability),
 * PLX_ECONNECT with the reason (refused, unreachable...).
 */
int plx_sock_connect_finish(int fd, const char *addr, plx_err_t *err);

#endif
