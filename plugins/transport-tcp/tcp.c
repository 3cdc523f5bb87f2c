/*
 * transport-tcp: plain TCP streams (IPv4 and IPv6), loopback by default.
 *
 * Every socket is non-blocking and close-on-exec; the host polls the fd on
 * its own loop and calls back after PLX_EAGAIN (see transport.h). A
 * listener given no host binds 127.0.0.1: exposing a controller to the
 * network must be asked for ("0.0.0.0", "*", "::" or an interface address).
 *
 * Test hook: PLX_TCP_FAULT="eagain_every=N,short=M" (read when a connection
 * is created) makes every Nth recv/sendv report PLX_EAGAIN without touching
 * the socket and caps every recv/sendv at M bytes, so the core's handling
 * of partial and would-block I/O can be exercised on a fast loopback.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "plexa/plugin.h"
#include "plexa/transport.h"

#define TCP_BACKLOG   1024
#define TCP_ADDR_MAX  (NI_MAXHOST + NI_MAXSERV + 4)   /* "[host]:port" */

typedef struct tcp_fault {
    unsigned eagain_every;   /* 0 = off */
    size_t   short_io;       /* 0 = off */
    unsigned calls;
} tcp_fault;

typedef struct tcp_conn {
    int       fd;
    int       want;          /* PLX_WANT_* that unblocks the last op */
    bool      connecting;    /* connect() in progress, finished by handshake */
    char      peer[TCP_ADDR_MAX];
    tcp_fault fault;
} tcp_conn;

typedef struct tcp_listener {
    int  fd;
    char addr[TCP_ADDR_MAX];
} tcp_listener;

/* ---- helpers ------------------------------------------------------------ */

/* "host:port", bracketing IPv6 literals so the port stays readable. */
static void tcp_format_addr(char *out, size_t len, const char *host, const char *port)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, len, "[%s]:%s", host, port);
    else
        snprintf(out, len, "%s:%s", host, port);
}

static void tcp_format_sockaddr(char *out, size_t len, const struct sockaddr *sa,
                                socklen_t salen)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (getnameinfo(sa, salen, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, len, "?");
    else
        tcp_format_addr(out, len, host, port);
}

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

/* Small messages (heartbeats, replies) must not wait for Nagle. */
static void tcp_set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Listening and connecting report failures differently: a connector's
 * caller wants PLX_ECONNECT whatever the cause, with the address in it. */
static int tcp_resolve(const char *host, uint16_t port, bool passive,
                       struct addrinfo **res, char *port_str, size_t plen,
                       plx_err_t *err)
{
    struct addrinfo hints = { 0 };
    char addr[TCP_ADDR_MAX];
    int gai;

    snprintf(port_str, plen, "%u", (unsigned)port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    gai = getaddrinfo(host, port_str, &hints, res);
    if (gai == 0)
        return PLX_OK;
    tcp_format_addr(addr, sizeof addr, host, port_str);
    return plx_err_set(err, !passive ? PLX_ECONNECT : gai == EAI_NONAME ? PLX_EINVAL : PLX_EIO,
                       "%s %s: getaddrinfo: %s", passive ? "listen on" : "connect to", addr,
                       gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
}

/* ---- listener ----------------------------------------------------------- */

/* Empty host means loopback; "*" is the explicit spelling of all IPv4. */
static const char *tcp_listen_host(const char *host)
{
    if (host == NULL || *host == '\0')
        return "127.0.0.1";
    if (strcmp(host, "*") == 0)
        return "0.0.0.0";
    return host;
}

/* socket + SO_REUSEADDR + bind + listen on one address; fd or -1 with err. */
static int tcp_listen_one(const struct addrinfo *ai, const char *addr, plx_err_t *err)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);

    if (fd < 0) {
        plx_err_set(err, PLX_EIO, "listen on %s: socket: %s", addr, strerror(errno));
        return -1;
    }
    /* Restarting a controller must not wait out TIME_WAIT on its port. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, TCP_BACKLOG) < 0) {
        plx_err_set(err, PLX_EIO, "listen on %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int tcp_listen(const char *host, uint16_t port, const plx_security *sec,
                      void **listener, int *fd, uint16_t *port_out, plx_err_t *err)
{
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    char port_str[16], addr[TCP_ADDR_MAX];
    tcp_listener *l;
    int s = -1;
    int rc;

    host = tcp_listen_host(host);
    rc = tcp_resolve(host, port, true, &res, port_str, sizeof port_str, err);
    if (rc != PLX_OK)
        return rc;
    tcp_format_addr(addr, sizeof addr, host, port_str);
    for (const struct addrinfo *ai = res; ai != NULL && s < 0; ai = ai->ai_next)
        s = tcp_listen_one(ai, addr, err);
    freeaddrinfo(res);
    if (s < 0)
        return PLX_EIO;
    if (getsockname(s, (struct sockaddr *)&ss, &sslen) < 0) {
        rc = plx_err_set(err, PLX_EIO, "listen on %s: getsockname: %s", addr,
                         strerror(errno));
        close(s);
        return rc;
    }
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        close(s);
        return plx_err_set(err, PLX_ENOMEM, "listen on %s: out of memory", addr);
    }
    l->fd = s;
    tcp_format_sockaddr(l->addr, sizeof l->addr, (struct sockaddr *)&ss, sslen);
    *listener = l;
    *fd = s;
    if (port_out != NULL)
        *port_out = ntohs(ss.ss_family == AF_INET6
                              ? ((struct sockaddr_in6 *)&ss)->sin6_port
                              : ((struct sockaddr_in *)&ss)->sin_port);
    return PLX_OK;
}

static int tcp_accept(void *listener, void **conn, int *fd, char *peer,
                      size_t peerlen, plx_err_t *err)
{
    tcp_listener *l = listener;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    char addr[TCP_ADDR_MAX];
    tcp_conn *c;
    int s;

    do {
        s = accept4(l->fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (s < 0 && errno == EINTR);
    if (s < 0) {
        /* ECONNABORTED: the peer gave up before we got to it; not our error. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
            return PLX_EAGAIN;
        return plx_err_set(err, PLX_EIO, "accept on %s: %s", l->addr, strerror(errno));
    }
    tcp_set_nodelay(s);
    tcp_format_sockaddr(addr, sizeof addr, (struct sockaddr *)&ss, sslen);
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

/* Start a non-blocking connect to one address: PLX_OK (done or in
 * progress, *fd set, *inprogress says which) or an error in err. */
static int tcp_connect_one(const struct addrinfo *ai, const char *addr, int *fd,
                           bool *inprogress, plx_err_t *err)
{
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   ai->ai_protocol);

    if (s < 0)
        return plx_err_set(err, PLX_ECONNECT, "connect to %s: socket: %s", addr,
                           strerror(errno));
    tcp_set_nodelay(s);
    if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0) {
        *inprogress = false;
    } else if (errno == EINPROGRESS || errno == EINTR) {
        *inprogress = true;
    } else {
        int rc = plx_err_set(err, PLX_ECONNECT, "connect to %s: %s", addr, strerror(errno));
        close(s);
        return rc;
    }
    *fd = s;
    return PLX_OK;
}

/*
 * Addresses that fail at once (no route, address family not configured)
 * are skipped in getaddrinfo order. A failure reported later by handshake
 * is final: the fd has been handed to the caller and cannot be swapped.
 */
static int tcp_connect(const char *host, uint16_t port, const plx_security *sec,
                       void **conn, int *fd, plx_err_t *err)
{
    struct addrinfo *res = NULL;
    char port_str[16], addr[TCP_ADDR_MAX];
    bool inprogress = false;
    tcp_conn *c;
    int s = -1;
    int rc;

    if (host == NULL || *host == '\0')
        host = "127.0.0.1";
    rc = tcp_resolve(host, port, false, &res, port_str, sizeof port_str, err);
    if (rc != PLX_OK)
        return rc;
    tcp_format_addr(addr, sizeof addr, host, port_str);
    rc = PLX_ECONNECT;
    for (const struct addrinfo *ai = res; ai != NULL && s < 0; ai = ai->ai_next)
        rc = tcp_connect_one(ai, addr, &s, &inprogress, err);
    freeaddrinfo(res);
    if (s < 0)
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
    struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
    int soerr = 0;
    socklen_t len = sizeof soerr;

    if (!c->connecting)
        return PLX_OK;
    /* SO_ERROR is 0 both while in progress and on success: writability
     * tells the two apart without blocking. */
    if (poll(&pfd, 1, 0) == 0) {
        c->want = PLX_WANT_WRITE;
        return PLX_EAGAIN;
    }
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr != 0)
        return plx_err_set(err, PLX_ECONNECT, "connect to %s: %s", c->peer, strerror(soerr));
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
    if (tcp_fault_eagain(&c->fault)) {
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

PLX_PLUGIN_DEFINE(PLX_PLUGIN_TRANSPORT, "tcp", "plain TCP (loopback by default)", &tcp_ops);
