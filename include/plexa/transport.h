/*
 * plexa transport plugin interface: a non-blocking byte stream.
 *
 * A transport turns a host and port into connected, non-blocking byte
 * streams. It owns sockets and any security layer (TLS); it does not own
 * an event loop. Each listener and connection exposes a file descriptor
 * and the core polls it on its own loop (libev): after PLX_EAGAIN, the
 * core asks `want` which readiness to wait for. This keeps libev out of
 * the ABI, so a plugin does not depend on how the host built its loop.
 *
 * Contract for every op: return PLX_OK or a negative PLX_E* code and fill
 * err with a message naming the failed call and the peer. After any
 * failure, `close` on the handle is still safe. Handles are opaque to the
 * core. All ops are called from one thread per handle.
 */
#ifndef PLEXA_TRANSPORT_H
#define PLEXA_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "plexa/error.h"
#include "plexa/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Readiness flags returned by want(). */
#define PLX_WANT_READ  1
#define PLX_WANT_WRITE 2

/* Security material for a transport. Fields a transport does not use are
 * ignored (tcp ignores all of them). Strings may be NULL. */
typedef struct plx_security {
    const char *cert_file;     /* PEM certificate (listener) */
    const char *key_file;      /* PEM private key (listener) */
    const char *fingerprint;   /* "sha256:HEX" pin of the peer certificate (connector) */
    const char *ca_file;       /* optional CA bundle instead of pinning */
} plx_security;

/*
 * A transport's ops table. Like every ops table it only grows: members are
 * appended behind a fence saying which version of the table added them,
 * never moved or removed. `size` is sizeof(plx_transport_ops) as the
 * plugin was built (write `.size = sizeof my_ops`): it tells which version
 * the plugin has. The loader refuses a table smaller than version 1
 * (PLX_TRANSPORT_OPS_V1_SIZE); members appended later are read only after
 * PLX_OPS_HAS (plugin.h) says the table has them.
 */
typedef struct plx_transport_ops {
    uint32_t size;   /* sizeof(plx_transport_ops) the plugin was built with */

    /* Listen on host:port (port 0 picks one). *fd is the listening socket
     * to poll for readability; *port_out receives the bound port. */
    int (*listen)(const char *host, uint16_t port, const plx_security *sec,
                  void **listener, int *fd, uint16_t *port_out, plx_err_t *err);

    /* Accept one pending connection. PLX_EAGAIN when none is pending.
     * peer receives "ip:port" of the remote side (shm: "shm:pid=N").
     * PLX_EAUTH: the transport refused the pending peer and closed it
     * (shm: another uid); the next call takes the next one. */
    int (*accept)(void *listener, void **conn, int *fd,
                  char *peer, size_t peerlen, plx_err_t *err);

    void (*close_listener)(void **listener);

    /* Start connecting; completion is driven by handshake(). */
    int (*connect)(const char *host, uint16_t port, const plx_security *sec,
                   void **conn, int *fd, plx_err_t *err);

    /* Advance connection set-up (TCP connect, TLS handshake) on either
     * side. PLX_OK when the stream is ready, PLX_EAGAIN to be called again
     * once want() is satisfied. */
    int (*handshake)(void *conn, plx_err_t *err);

    /* Read up to len bytes. PLX_OK with *n > 0, PLX_EAGAIN, or PLX_ECLOSED
     * at orderly end of stream. PLX_EAGAIN may come without a system call
     * when the previous read found the socket empty: the core waits for
     * readiness level-triggered, so bytes that arrived meanwhile wake it. */
    int (*recv)(void *conn, void *buf, size_t len, size_t *n, plx_err_t *err);

    /* Gather-write. PLX_OK with *n bytes written (possibly partial), or
     * PLX_EAGAIN when nothing could be written. */
    int (*sendv)(void *conn, const struct iovec *iov, int iovcnt, size_t *n,
                 plx_err_t *err);

    /* After PLX_EAGAIN: which readiness (PLX_WANT_*) unblocks the last op. */
    int (*want)(void *conn);

    /* Bytes already decrypted/buffered inside the transport that recv()
     * returns without the fd becoming readable. NULL means always 0. */
    size_t (*pending)(void *conn);

    void (*close)(void **conn);

    /* ---- Members above are in version 1 of this table (plugin ABI 1).
     * Version 2 appends the two below: file descriptors travelling beside
     * the bytes (SCM_RIGHTS), which the shm transport uses to hand over
     * shared-memory regions. A transport that cannot pass descriptors
     * leaves both NULL (or is a version-1 table); the core then sends
     * every payload in the stream. Test with PLX_OPS_HAS. */

    /* Like sendv; when nfds > 0 the descriptors fds[0..nfds) travel with
     * the first byte written. They are sent only when *n > 0 (PLX_EAGAIN:
     * nothing was, call again with them). The caller keeps its own
     * descriptors: the receiver gets duplicates. nfds is at most
     * PLX_TRANSPORT_MAX_FDS. */
    int (*sendv_fds)(void *conn, const struct iovec *iov, int iovcnt,
                     const int *fds, int nfds, size_t *n, plx_err_t *err);

    /* Like recv; descriptors that came with the bytes read are stored in
     * fds[0..*nfds) (close-on-exec; the caller owns them and must close
     * them). Never more than PLX_TRANSPORT_MAX_FDS per call, which maxfds
     * must allow for. A peer that sent descriptors the call could not
     * take (truncated ancillary data) is an error (PLX_EPROTO), and any
     * that did arrive are closed. */
    int (*recv_fds)(void *conn, void *buf, size_t len, size_t *n,
                    int *fds, int maxfds, int *nfds, plx_err_t *err);

    /* ---- Members above are in version 2 of this table, the current
     * one. Append new ones below, behind a fence of their own. */
} plx_transport_ops;

/* The size of version 1 of the table: the smallest the loader accepts. */
#define PLX_TRANSPORT_OPS_V1_SIZE PLX_OPS_END(plx_transport_ops, close)
/* The size of version 2 of the table (descriptor passing). */
#define PLX_TRANSPORT_OPS_V2_SIZE PLX_OPS_END(plx_transport_ops, recv_fds)

/* Most descriptors one sendv_fds sends or one recv_fds returns (the
 * kernel's SCM_MAX_FD is 253; frames keep well under it). */
#define PLX_TRANSPORT_MAX_FDS 64

#ifdef __cplusplus
}
#endif
#endif
