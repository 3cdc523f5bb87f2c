/*
 * transport-shm: Unix-domain streams in Linux's abstract namespace, for a
 * controller, its clients and its engines on one host under one user,
 * with file descriptors passed beside the bytes (SCM_RIGHTS).
 *
 * The "host" of listen and connect is the abstract socket's name (1 to
 * 100 characters of A-Z a-z 0-9 . _ -, written here as "@NAME"); the port
 * and the security material are ignored. An abstract name has no file and
 * no permission bits: anyone on the host may connect. So both ends check
 * the other's credentials (SO_PEERCRED, taken by the kernel at listen and
 * connect time, not claimed by the peer): accept refuses a peer whose uid
 * is not our effective uid (PLX_EAUTH, one refusal per call, naming the
 * uid and pid; the next call serves the next pending connection), and
 * connect refuses a listener owned by another uid (PLX_EAUTH), which
 * could otherwise pose as the controller. connect completes at once or
 * fails at once (PLX_ECONNECT naming "@NAME", nothing left open): the
 * caller falls back to TCP/TLS.
 *
 * The plugin passes descriptors; what they are (memfd regions of the
 * core) is not its business. The contract the core relies on, from how
 * Linux queues a stream's ancillary data:
 *   - descriptors given to sendv_fds travel with the first byte written by
 *     that call (a call that writes nothing sends none), and the read that
 *     returns that byte returns them: they never arrive after their bytes;
 *   - a read that returns descriptors ends, at the latest, with the last
 *     byte of the write chunk that carried them, so the descriptors of two
 *     writes never arrive in one read (it may begin with earlier bytes);
 *   - plain recv on a stream that brings descriptors is an error
 *     (PLX_EPROTO): the kernel discards them, which would silently lose
 *     regions. A connection that may carry descriptors is read with
 *     recv_fds only.
 * Received descriptors are close-on-exec; those a failed read brought are
 * closed before it returns.
 *
 * Socket buffers are asked for SHM_SOCKBUF bytes (best effort: the kernel
 * caps them at net.core.wmem_max/rmem_max): control messages are small
 * but many.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "plexa/plugin.h"
#include "plexa/transport.h"
#include "plexa/version.h"

#define SHM_NAME_MAX 100                 /* characters of an abstract name */
#define SHM_SOCKBUF  (4 << 20)           /* asked for; the kernel may give less */
#define SHM_PEER_MAX (SHM_NAME_MAX + 48) /* "pid N on @NAME" */

/* A short read of less than this ends a message, most likely: the socket
 * is taken as empty (as in transport-tcp). */
#define DRAINED_BELOW 16384

typedef struct shm_conn {
    int  fd;
    int  want;       /* PLX_WANT_* that unblocks the last op */
    bool drained;    /* the last read returned less than asked: the socket was empty */
    char peer[SHM_PEER_MAX];
} shm_conn;

typedef struct shm_listener {
    int  fd;
    char name[SHM_NAME_MAX + 2];   /* "@NAME", for messages */
} shm_listener;

/* Ancillary data room for PLX_TRANSPORT_MAX_FDS descriptors, aligned. */
typedef union shm_cmsg_buf {
    struct cmsghdr align;
    char           buf[CMSG_SPACE(sizeof(int) * PLX_TRANSPORT_MAX_FDS)];
} shm_cmsg_buf;

/* ---- helpers ------------------------------------------------------------ */

static bool shm_name_ok(const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return n > 0 && n <= SHM_NAME_MAX;
}

/* Check an abstract name and build its address; PLX_EINVAL naming it. */
static int shm_addr(const char *name, const char *op, struct sockaddr_un *addr,
                    socklen_t *len, plx_err_t *err)
{
    size_t n = name != NULL ? strnlen(name, SHM_NAME_MAX + 1) : 0;
    char shown[48];

    if (!shm_name_ok(name, n)) {
        /* Shown cut, and made printable. */
        snprintf(shown, sizeof shown, "%.40s%s", n > 0 ? name : "", n > 40 ? "..." : "");
        for (char *p = shown; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
        return plx_err_set(err, PLX_EINVAL, "shm: %s: bad socket name '%s': an abstract "
                           "name is 1 to %d characters of A-Z a-z 0-9 . _ - (no leading '@')",
                           op, shown, SHM_NAME_MAX);
    }
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    /* sun_path[0] stays 0: the abstract namespace, no file. The length
     * counts the name exactly; a NUL after it would be part of it. */
    memcpy(addr->sun_path + 1, name, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    return PLX_OK;
}

/* A new socket, or code with a message ("shm: <op> @NAME: socket: ..."). */
static int shm_socket(int code, const char *op, const char *name, plx_err_t *err)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (s < 0)
        return plx_err_set(err, code, "shm: %s @%s: socket: %s", op, name, strerror(errno));
    return s;
}

/* Generous buffers, best effort: a refusal or a cap only costs speed. */
static void shm_set_buffers(int s)
{
    int size = SHM_SOCKBUF;

    (void)setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

static int shm_peercred(int s, struct ucred *cred)
{
    socklen_t len = sizeof *cred;

    return getsockopt(s, SOL_SOCKET, SO_PEERCRED, cred, &len) == 0 && len == sizeof *cred
               ? 0 : -1;
}

static void shm_close_fds(const int *fds, int nfds)
{
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

static shm_conn *shm_conn_new(int fd, const char *peer)
{
    shm_conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->want = PLX_WANT_READ;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    return c;
}

/* ---- listener ----------------------------------------------------------- */

static int shm_listen(const char *host, uint16_t port, const plx_security *sec,
                      void **listener, int *fd, uint16_t *port_out, plx_err_t *err)
{
    struct sockaddr_un addr;
    socklen_t len;
    shm_listener *l;
    int s, rc = shm_addr(host, "listen", &addr, &len, err);

    if (rc != PLX_OK)
        return rc;
    if ((s = shm_socket(PLX_EIO, "listen on", host, err)) < 0)
        return s;
    if (bind(s, (struct sockaddr *)&addr, len) != 0) {
        rc = errno == EADDRINUSE
                 ? plx_err_set(err, PLX_EIO, "shm: listen on @%s: the name is in use "
                               "(another process on this host listens there)", host)
                 : plx_err_set(err, PLX_EIO, "shm: listen on @%s: bind: %s", host,
                               strerror(errno));
        close(s);
        return rc;
    }
    if (listen(s, SOMAXCONN) != 0) {
        rc = plx_err_set(err, PLX_EIO, "shm: listen on @%s: %s", host, strerror(errno));
        close(s);
        return rc;
    }
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        close(s);
        return plx_err_set(err, PLX_ENOMEM, "shm: listen on @%s: out of memory", host);
    }
    l->fd = s;
    snprintf(l->name, sizeof l->name, "@%s", host);
    *listener = l;
    *fd = s;
    if (port_out != NULL)
        *port_out = 0;
    return PLX_OK;
}

/* Take one pending connection: PLX_OK with *s, PLX_EAGAIN, PLX_EIO. */
static int shm_accept_one(shm_listener *l, int *s, plx_err_t *err)
{
    do {
        *s = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (*s < 0 && errno == EINTR);
    if (*s >= 0)
        return PLX_OK;
    /* ECONNABORTED: the peer gave up before we got to it; not our error. */
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
        return PLX_EAGAIN;
    return plx_err_set(err, PLX_EIO, "shm: accept on %s: %s", l->name, strerror(errno));
}

/*
 * One connection per call, refused ones included: a refusal is returned
 * (PLX_EAUTH) rather than skipped, so that every one is reported; the
 * core's listener logs it and calls again at once for the next.
 */
static int shm_accept(void *listener, void **conn, int *fd, char *peer,
                      size_t peerlen, plx_err_t *err)
{
    shm_listener *l = listener;
    char name[SHM_PEER_MAX];
    struct ucred cred;
    shm_conn *c;
    int s = -1, rc = shm_accept_one(l, &s, err);

    if (rc != PLX_OK)
        return rc;
    if (shm_peercred(s, &cred) != 0) {
        rc = plx_err_set(err, PLX_EIO, "shm: accept on %s: SO_PEERCRED: %s", l->name,
                         strerror(errno));
        close(s);
        return rc;
    }
    if (cred.uid != geteuid()) {
        close(s);
        return plx_err_set(err, PLX_EAUTH, "shm: refused a connection from uid %u (pid %d) "
                           "on %s: only uid %u may connect", (unsigned)cred.uid,
                           (int)cred.pid, l->name, (unsigned)geteuid());
    }
    shm_set_buffers(s);
    snprintf(name, sizeof name, "pid %d on %s", (int)cred.pid, l->name);
    if ((c = shm_conn_new(s, name)) == NULL) {
        close(s);
        return plx_err_set(err, PLX_ENOMEM, "shm: accept on %s: out of memory", l->name);
    }
    if (peer != NULL && peerlen > 0)
        snprintf(peer, peerlen, "shm:pid=%d", (int)cred.pid);
    *conn = c;
    *fd = s;
    return PLX_OK;
}

static void shm_close_listener(void **listener)
{
    shm_listener *l;

    if (listener == NULL || *listener == NULL)
        return;
    l = *listener;
    close(l->fd);
    free(l);
    *listener = NULL;
}

/* ---- connector ---------------------------------------------------------- */

/* Why connect(2) failed, in words for the fallback's log line. */
static const char *shm_connect_why(int e)
{
    switch (e) {
    case ECONNREFUSED: return "nobody listens on that name";
    case EAGAIN:       return "its backlog is full (the listener is not accepting)";
    default:           return strerror(e);
    }
}

/* The listener's owner must be us: another uid could pose as the controller. */
static int shm_check_listener(int s, const char *name, plx_err_t *err)
{
    struct ucred cred;

    if (shm_peercred(s, &cred) != 0)
        return plx_err_set(err, PLX_ECONNECT, "shm: connect to @%s: SO_PEERCRED: %s", name,
                           strerror(errno));
    if (cred.uid != geteuid())
        return plx_err_set(err, PLX_EAUTH, "shm: @%s belongs to uid %u, not to us (uid %u): "
                           "refusing it", name, (unsigned)cred.uid, (unsigned)geteuid());
    return PLX_OK;
}

/* Abstract Unix connects complete at once (or fail at once): no
 * handshake to drive, and a failure leaves nothing open. */
static int shm_connect(const char *host, uint16_t port, const plx_security *sec,
                       void **conn, int *fd, plx_err_t *err)
{
    char name[SHM_PEER_MAX];
    struct sockaddr_un addr;
    socklen_t len;
    shm_conn *c;
    int s, rc = shm_addr(host, "connect", &addr, &len, err);

    if (rc != PLX_OK)
        return rc;
    if ((s = shm_socket(PLX_ECONNECT, "connect to", host, err)) < 0)
        return s;
    shm_set_buffers(s);
    if (connect(s, (struct sockaddr *)&addr, len) != 0) {
        rc = plx_err_set(err, PLX_ECONNECT, "shm: connect to @%s: %s", host,
                         shm_connect_why(errno));
        close(s);
        return rc;
    }
    if ((rc = shm_check_listener(s, host, err)) != PLX_OK) {
        close(s);
        return rc;
    }
    snprintf(name, sizeof name, "@%s", host);
    if ((c = shm_conn_new(s, name)) == NULL) {
        close(s);
        return plx_err_set(err, PLX_ENOMEM, "shm: connect to @%s: out of memory", host);
    }
    *conn = c;
    *fd = s;
    return PLX_OK;
}

static int shm_handshake(void *conn, plx_err_t *err)
{
    return PLX_OK;
}

/* ---- reading ------------------------------------------------------------ */

/* The SCM_RIGHTS descriptors of msg, in order, into out (room for max);
 * returns how many arrived, which may be more than max (those past max
 * are closed). Other control messages are skipped: without SO_PASSCRED
 * or SO_PASSPIDFD, which this plugin never sets, none carries one. */
static int shm_take_fds(struct msghdr *msg, int *out, int max)
{
    int got = 0;

    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
        size_t bytes;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
            cm->cmsg_len < CMSG_LEN(0))
            continue;
        bytes = cm->cmsg_len - CMSG_LEN(0);
        for (size_t i = 0; i + sizeof(int) <= bytes; i += sizeof(int)) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i, sizeof fd);
            if (got < max)
                out[got] = fd;
            else
                close(fd);
            got++;
        }
    }
    return got;
}

/* A failed recvmsg, as a PLX_* code. */
static int shm_read_error(shm_conn *c, int e, plx_err_t *err)
{
    if (e == EAGAIN || e == EWOULDBLOCK) {
        c->want = PLX_WANT_READ;
        return PLX_EAGAIN;
    }
    if (e == ECONNRESET)
        return plx_err_set(err, PLX_ECLOSED, "shm: recv from %s: connection reset by peer",
                           c->peer);
    return plx_err_set(err, PLX_EIO, "shm: recv from %s: %s", c->peer, strerror(e));
}

/*
 * recv and recv_fds. fds == NULL: the caller takes no descriptors, and
 * any that come are an error (the kernel has already discarded them).
 */
static int shm_read(shm_conn *c, void *buf, size_t len, size_t *n, int *fds, int maxfds,
                    int *nfds, plx_err_t *err)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    int got[PLX_TRANSPORT_MAX_FDS];
    shm_cmsg_buf cbuf;
    int nfd = 0;
    ssize_t r;

    *n = 0;
    if (nfds != NULL)
        *nfds = 0;
    if (len == 0)
        return PLX_OK;
    /* The previous read emptied the socket: say so without asking the
     * kernel again (the core polls level-triggered, so bytes that came
     * since wake it at once). Saves a recvmsg() per message. */
    if (c->drained) {
        c->drained = false;
        c->want = PLX_WANT_READ;
        return PLX_EAGAIN;
    }
    if (fds != NULL) {
        msg.msg_control = cbuf.buf;
        msg.msg_controllen = sizeof cbuf.buf;
    }
    do {
        r = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return shm_read_error(c, errno, err);
    if (fds != NULL)
        nfd = shm_take_fds(&msg, got, PLX_TRANSPORT_MAX_FDS);
    if (nfd > PLX_TRANSPORT_MAX_FDS)
        nfd = PLX_TRANSPORT_MAX_FDS;   /* the rest are closed already */
    if (fds == NULL && (msg.msg_flags & MSG_CTRUNC))
        return plx_err_set(err, PLX_EPROTO, "shm: recv from %s: the peer sent file "
                           "descriptors to a read that takes none", c->peer);
    if ((msg.msg_flags & MSG_CTRUNC) || nfd > maxfds) {
        shm_close_fds(got, nfd);
        return plx_err_set(err, PLX_EPROTO, "shm: recv from %s: the peer sent more file "
                           "descriptors than this read takes (%d); closed them", c->peer,
                           maxfds);
    }
    if (r == 0) {
        shm_close_fds(got, nfd);
        return plx_err_set(err, PLX_ECLOSED, "shm: recv from %s: connection closed by peer",
                           c->peer);
    }
    if (nfd > 0) {
        memcpy(fds, got, sizeof(int) * (size_t)nfd);
        *nfds = nfd;
    }
    *n = (size_t)r;
    /* A read that brought descriptors stopped at their chunk's end, not
     * because the socket ran dry. */
    c->drained = nfd == 0 && (size_t)r < len && r < DRAINED_BELOW;
    return PLX_OK;
}

static int shm_recv(void *conn, void *buf, size_t len, size_t *n, plx_err_t *err)
{
    return shm_read(conn, buf, len, n, NULL, 0, NULL, err);
}

static int shm_recv_fds(void *conn, void *buf, size_t len, size_t *n, int *fds, int maxfds,
                        int *nfds, plx_err_t *err)
{
    shm_conn *c = conn;

    *n = 0;
    *nfds = 0;
    if (fds == NULL || maxfds < 0)
        return plx_err_set(err, PLX_EINVAL, "shm: recv from %s: no room for descriptors",
                           c->peer);
    return shm_read(c, buf, len, n, fds, maxfds, nfds, err);
}

/* ---- writing ------------------------------------------------------------ */

static int shm_send_error(shm_conn *c, int e, plx_err_t *err)
{
    if (e == EAGAIN || e == EWOULDBLOCK) {
        c->want = PLX_WANT_WRITE;
        return PLX_EAGAIN;
    }
    if (e == EPIPE || e == ECONNRESET)
        return plx_err_set(err, PLX_ECLOSED, "shm: sendmsg to %s: connection closed by peer",
                           c->peer);
    if (e == ETOOMANYREFS)
        return plx_err_set(err, PLX_ELIMIT, "shm: sendmsg to %s: too many descriptors in "
                           "flight (the peer is not reading them)", c->peer);
    return plx_err_set(err, PLX_EIO, "shm: sendmsg to %s: %s", c->peer, strerror(e));
}

static bool shm_iov_empty(const struct iovec *iov, int iovcnt)
{
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_len > 0)
            return false;
    return true;
}

static int shm_sendv_fds(void *conn, const struct iovec *iov, int iovcnt, const int *fds,
                         int nfds, size_t *n, plx_err_t *err)
{
    shm_conn *c = conn;
    struct msghdr msg = { 0 };
    shm_cmsg_buf cbuf;
    ssize_t r;

    *n = 0;
    if (nfds < 0 || nfds > PLX_TRANSPORT_MAX_FDS || (nfds > 0 && fds == NULL))
        return plx_err_set(err, PLX_EINVAL, "shm: sendmsg to %s: %d descriptors (at most %d)",
                           c->peer, nfds, PLX_TRANSPORT_MAX_FDS);
    /* More than IOV_MAX is EMSGSIZE; a partial write is allowed instead. */
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
    if (nfds > 0) {
        struct cmsghdr *cm;

        /* A stream drops descriptors sent with no byte to carry them. */
        if (shm_iov_empty(iov, (int)msg.msg_iovlen))
            return plx_err_set(err, PLX_EINVAL, "shm: sendmsg to %s: descriptors need at "
                               "least one byte to travel with", c->peer);
        memset(&cbuf, 0, sizeof cbuf);
        msg.msg_control = cbuf.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    }
    do {
        /* MSG_NOSIGNAL: a vanished peer is an error code, not a SIGPIPE. */
        r = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return shm_send_error(c, errno, err);
    *n = (size_t)r;
    return PLX_OK;
}

static int shm_sendv(void *conn, const struct iovec *iov, int iovcnt, size_t *n,
                     plx_err_t *err)
{
    return shm_sendv_fds(conn, iov, iovcnt, NULL, 0, n, err);
}

/* ---- the rest ----------------------------------------------------------- */

static int shm_want(void *conn)
{
    return ((shm_conn *)conn)->want;
}

/* Nothing is buffered in the plugin: readiness of the fd is the whole story. */
static size_t shm_pending(void *conn)
{
    return 0;
}

static void shm_close(void **conn)
{
    shm_conn *c;

    if (conn == NULL || *conn == NULL)
        return;
    c = *conn;
    close(c->fd);
    free(c);
    *conn = NULL;
}

static const plx_transport_ops shm_ops = {
    .size = sizeof shm_ops,
    .listen = shm_listen,
    .accept = shm_accept,
    .close_listener = shm_close_listener,
    .connect = shm_connect,
    .handshake = shm_handshake,
    .recv = shm_recv,
    .sendv = shm_sendv,
    .want = shm_want,
    .pending = shm_pending,
    .close = shm_close,
    .sendv_fds = shm_sendv_fds,
    .recv_fds = shm_recv_fds,
};

PLX_PLUGIN_DEFINE(PLX_PLUGIN_TRANSPORT, "shm",
                  "Unix sockets on this host, same user, with descriptor passing",
                  PLX_VERSION_STRING, &shm_ops);
