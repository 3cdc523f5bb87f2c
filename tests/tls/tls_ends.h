/*
 * Both ends of TLS and TCP connections, driven from one poll() loop as the
 * core's event loop would drive them: listeners, connecting and accepting
 * ends, handshakes, and streams of random bytes cut into iovecs the way
 * plx_conn cuts frames. Every wait is bounded by DEADLINE_MS: a handshake
 * or transfer that stalls fails the test (cmocka) instead of hanging it.
 */
#ifndef TLS_ENDS_H
#define TLS_ENDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "plexa/transport.h"

#define DEADLINE_MS 10000

/* The monotonic clock (core/base), in milliseconds. */
int64_t now_ms(void);

typedef struct end {
    const plx_transport_ops *ops;
    void     *conn;
    int       fd;
    int       rc;          /* of the last handshake */
    plx_err_t err;
} end;

typedef struct lsn {
    const plx_transport_ops *ops;
    void    *h;
    int      fd;
    uint16_t port;
} lsn;

typedef struct stream {
    end           *from, *to;
    unsigned char *src, *dst;
    size_t         size, sent, got;
    struct iovec  *iov;
    int            cnt, first;
    unsigned       reads;
    bool           blocked;   /* the last sendv said PLX_EAGAIN */
    bool           whole;     /* each recv asks for all that is left */
} stream;

/* Wait until fd is ready for want (PLX_WANT_*), failing at deadline. */
void wait_fd(int fd, int want, int64_t deadline);

/* ---- listeners and ends ---- */

/* A listener on 127.0.0.1, any port (cert/key for tls, NULL for tcp). */
void lsn_open(lsn *l, const plx_transport_ops *ops, const char *cert, const char *key);
void lsn_close(lsn *l);
/* Accept one connection into e, whose handshake is then to be driven. */
void lsn_accept(lsn *l, end *e);

/* Start connecting; returns connect's code (e->rc is PLX_EAGAIN after OK). */
int end_connect(end *e, const plx_transport_ops *ops, uint16_t port, const plx_security *sec);
void end_close(end *e);

/* Drive every handshake to its end (PLX_OK or an error), within the deadline. */
void drive(end **ends, int n);

/* sec pins fingerprint fp ("sha256:" + fp written into buf, 80 bytes). */
void pin_sec(plx_security *sec, char *buf, const char *fp);

/* A client pinned to fp, connected to l and handshaken with its server end. */
void pair_open(lsn *l, end *c, end *s, const char *fp);

/* ---- moving bytes ---- */

/* Send all of len bytes from one buffer (a few small writes). */
void send_all(end *e, const void *buf, size_t len);
/* Receive exactly len bytes. */
void recv_all(end *e, void *buf, size_t len);
/* Read until the stream ends; returns the code that ended it. */
int recv_until_error(end *e);

/* size random bytes (from seed) from one end to the other, cut into
 * pieces of the sizes frames have: small headers and envelopes, some
 * around the TLS record size, a few large array buffers. */
void stream_init(stream *s, end *from, end *to, size_t size, uint32_t seed);
void stream_free(stream *s);
/* One sendv and one recv; returns whether either moved bytes. */
bool stream_step(stream *s);
/* Move every stream to its end at once, then check the bytes. */
void pump(stream *s, int n);

/* size bytes each way at once over a pinned TLS pair (certificate A). */
void both_ways(size_t size);

#endif
