/*
 * transport-tcp: plain TCP streams (IPv4 and IPv6), loopback by default.
 *
 * Every socket is non-blocking and close-on-exec; the host polls the fd on
 * its own loop and calls back after PLX_EAGAIN (see transport.h). A
 * listener given no host binds 127.0.0.1: exposing a controller to the
 * network must be asked for ("0.0.0.0", "*", "::" or an interface address).
 * Socket set-up (resolve, bind, accept, non-blocking connect) lives in
 * plugins/common/plx_sock.c, shared with transport-tls.
 *
 * Test hook: PLX_TCP_FAULT="eagain_every=N,short=M" (read when a connection
 * is created) makes every Nth recv/sendv report PLX_EAGAIN without touching
 * the socket and caps every recv/sendv at M bytes, so the core's handling
 * of partial and would-block I/O can be exercised on a fast loopback.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "plexa/plugin.h"
#include "plexa/transport.h"
#include "plexa/version.h"
#include "plx_sock.h"

typedef struct tcp_fault {
    unsigned eagain_every;   /* 0 = off */
    size_t   short_io;       /* 0 = off */
    unsigned calls;
} tcp_fault;

/* A short read of less than this ends a message, most likely: the socket
 * is taken as empty. A larger short read is a bulk transfer in flight,
 * where asking again at once usually finds more. */
#define DRAINED_BELOW 16384

typedef struct tcp_conn {
    int       fd;
    int       want;          /* PLX_WANT_* that unblocks the last op */
    bool      connecting;    /* connect() in progress, finished by handshake */
    bool      drained;       /* the last recv returned less than asked: the socket was empty */
    char      peer[PLX_SOCK_ADDR_MAX];
    tcp_fault fault;
} tcp_conn;

typedef struct tcp_listener {
    int  fd;
    char addr[PLX_SOCK_ADDR_MAX];
} tcp_listener;

/* ---- helpers ------------------------------------------------------------ */

static void tcp_fault_init(tcp_fault *f)
{
    const char *spec = getenv("PLX_TCP_FAULT");
    const char *p;

    memset(f, 0, sizeof *f);
    if (spec == NULL)
        return;
    if ((p = strstr(spec, "eagain_every=")) != NULL)
        f->eagain_every = (unsigned)strtoul(p + strlen("eagain_every="), NULL, 10);
    if ((p = strstr(spec, "short=")) != NULL)
        f->short_io = (size_t)strtoul(p + strlen("short="), NULL, 10);
}

/* True when the fault hook swallows this call as a spurious EAGAIN. */
static bool tcp_fault_eagain(tcp_fault *f)
{
    return f->eagain_every != 0 && ++f->calls % f->eagain_every == 0;
}

static tcp_conn *tcp_conn_new(int fd, const char *peer)
{
    tcp_conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->want = PLX_WANT_READ;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    tcp_fault_init(&c->fault);
    return c;
}

/* ---- listener ----------------------------------------------------------- */

static int tcp_listen(const char *host, uint16_t port, const plx_security *sec,
                      void **listener, int *fd, uint16_t *port_out, plx_err_t *err)
{
    char addr[PLX_SOCK_ADDR_MAX];
    tcp_listener *l;
    int s = -1;
    int rc = plx_sock_listen(host, port, &s, port_out, addr, sizeof addr, err);

    if (rc != PLX_OK)
        return rc;
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        close(s);
        return plx_err_set(err, PLX_ENOMEM, "listen on %s: out of memory", addr);
    }
    l->fd = s;
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    *listener = l;
    *fd = s;
    return PLX_OK;
}

static int tcp_accept(void *listener, void **conn, int *fd, char *peer,
                      size_t peerlen, plx_err_t *err)
{
    tcp_listener *l = listener;
    char addr[PLX_SOCK_ADDR_MAX];
    tcp_conn *c;
    int s = -1;
    int rc = plx_sock_accept(l->fd, l->addr, &s, addr, sizeof addr, err);

    if (rc != PLX_OK)
        return rc;
    c = tcp_conn_new(s, addr);
    if (c == NULL) {
        close(s);
        return plx_err_set(err, PLX_ENOMEM, "accept on %s: out of memory", l->addr);
    }
    if (peer != NULL && peerlen > 0)
        snprintf(peer, peerlen, "%s", addr);
    *conn = c;
    *fd = s;
    return PLX_OK;
}

static void tcp_close_listener(void **listener)
{
    tcp_listener *l;

    if (listener == NULL || *listener == NULL)
        return;
    l = *listener;
    close(l->fd);
    free(l);
    *listener = NULL;
}

/* ---- connector ---------------------------------------------------------- */

static int tcp_connect(const char *host, uint16_t port, const plx_security *sec,
                       void **conn, int *fd, plx_err_t *err)
{
    char addr[PLX_SOCK_ADDR_MAX];
    bool inprogress = false;
    tcp_conn *c;
    int s = -1;
    int rc = plx_sock_connect(host, port, &s, &inprogress, addr, sizeof addr, err);

    if (rc != PLX_OK)
        return rc;
    c = tcp_conn_new(s, addr);
    if (c == NULL) {
        close(s);
        return plx_err_set(err, PLX_ENOMEM, "connect to %s: out of memory", addr);
    }
    c->connecting = inprogress;
    c->want = inprogress ? PLX_WANT_WRITE : PLX_WANT_READ;
    *conn = c;
    *fd = s;
    return PLX_OK;
}

static int tcp_handshake(void *conn, plx_err_t *err)
{
    tcp_conn *c = conn;
    int rc;

    if (!c->connecting)
        return PLX_OK;
    rc = plx_sock_connect_finish(c->fd, c->peer, err);
    if (rc == PLX_EAGAIN) {
        c->want = PLX_WANT_WRITE;
        return PLX_EAGAIN;
    }
    if (rc != PLX_OK)
        return rc;
    c->connecting = false;
    c->want = PLX_WANT_READ;
    return PLX_OK;
}

/* ---- stream ------------------------------------------------------------- */

static int tcp_recv(void *conn, void *buf, size_t len, size_t *n, plx_err_t *err)
{
    tcp_conn *c = conn;
    ssize_t r;

    *n = 0;
    if (len == 0)
        return PLX_OK;
    /* The previous read emptied the socket: say so without asking the
     * kernel again (the core polls level-triggered, so bytes that came
     * since wake it at once). Saves a recv() per message. */
    if (c->drained || tcp_fault_eagain(&c->fault)) {
        c->drained = false;
        c->want = PLX_WANT_READ;
        return PLX_EAGAIN;
    }
    if (c->fault.short_io != 0 && len > c->fault.short_io)
        len = c->fault.short_io;
    do {
        r = recv(c->fd, buf, len, 0);
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
        *n = (size_t)r;
        c->drained = (size_t)r < len && r < DRAINED_BELOW;
        return PLX_OK;
    }
    if (r == 0)
        return plx_err_set(err, PLX_ECLOSED, "recv from %s: connection closed by peer",
                           c->peer);
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->want = PLX_WANT_READ;
        return PLX_EAGAIN;
    }
    return plx_err_set(err, PLX_EIO, "recv from %s: %s", c->peer, strerror(errno));
}

/* Trim an iovec array to at most max bytes (fault hook); returns new count. */
static int tcp_iov_cap(const struct iovec *iov, int iovcnt, struct iovec *out, size_t max)
{
    int i;

    for (i = 0; i < iovcnt && max > 0; i++) {
        out[i] = iov[i];
        if (out[i].iov_len > max)
            out[i].iov_len = max;
        max -= out[i].iov_len;
    }
    return i;
}

static int tcp_sendv(void *conn, const struct iovec *iov, int iovcnt, size_t *n,
                     plx_err_t *err)
{
    tcp_conn *c = conn;
    struct iovec capped[16];
    struct msghdr msg = { 0 };
    ssize_t r;

    *n = 0;
    if (tcp_fault_eagain(&c->fault)) {
        c->want = PLX_WANT_WRITE;
        return PLX_EAGAIN;
    }
    /* More than IOV_MAX is EMSGSIZE; a partial write is allowed instead. */
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
    if (c->fault.short_io != 0) {
        msg.msg_iovlen = (size_t)tcp_iov_cap(iov, iovcnt < 16 ? iovcnt : 16, capped,
                                             c->fault.short_io);
        msg.msg_iov = capped;
    }
    do {
        /* MSG_NOSIGNAL: a vanished peer is an error code, not a SIGPIPE. */
        r = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
        *n = (size_t)r;
        return PLX_OK;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->want = PLX_WANT_WRITE;
        return PLX_EAGAIN;
    }
    return plx_err_set(err, PLX_EIO, "sendmsg to %s: %s", c->peer, strerror(errno));
}

static int tcp_want(void *conn)
{
    return ((tcp_conn *)conn)->want;
}

/* TCP buffers nothing itself: readiness of the fd is the whole story. */
static size_t tcp_pending(void *conn)
{
    return 0;
}

static void tcp_close(void **conn)
{
    tcp_conn *c;

    if (conn == NULL || *conn == NULL)
        return;
    c = *conn;
    close(c->fd);
    free(c);
    *conn = NULL;
}

static const plx_transport_ops tcp_ops = {
    .size = sizeof tcp_ops,
    .listen = tcp_listen,
    .accept = tcp_accept,
    .close_listener = tcp_close_listener,
    .connect = tcp_connect,
    .handshake = tcp_handshake,
    .recv = tcp_recv,
    .sendv = tcp_sendv,
    .want = tcp_want,
    .pending = tcp_pending,
    .close = tcp_close,
};

PLX_PLUGIN_DEFINE(PLX_PLUGIN_TRANSPORT, "tcp", "plain TCP (loopback by default)",
                  PLX_VERSION_STRING, &tcp_ops);
