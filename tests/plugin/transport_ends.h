/*
 * Both ends of a transport connection driven from one poll() loop, as the
 * core's event loop would drive them: the stream helpers that the tests
 * of the plain transports share (test_transport_tcp.c,
 * test_transport_shm.c). Failures are cmocka assertions; every wait is
 * bounded (5 s), so a stalled transfer fails instead of hanging.
 */
#ifndef TRANSPORT_ENDS_H
#define TRANSPORT_ENDS_H

#include <stddef.h>
#include <sys/uio.h>

#include "plexa/transport.h"

/* One end of a connection: the transport's handle and its descriptor. */
typedef struct end {
    void *conn;
    int   fd;
} end;

/* Wait until fd is ready for what the last op wanted (PLX_WANT_*). */
void wait_for(int fd, int want);

/* Advance iov past n written bytes; returns the new first index. */
int iov_advance(struct iovec *iov, int first, int cnt, size_t n);

/* Send size bytes as 4 iovecs client -> server, interleaving reads, and
 * check they arrive intact. Returns how many sendv calls wrote only part
 * of what was left. */
int transfer(const plx_transport_ops *ops, end *client, end *server, size_t size);

/* Close client; server's reads end with PLX_ECLOSED saying "closed". */
void expect_eof(const plx_transport_ops *ops, end *client, end *server);

#endif
