/* Sockets for the transport plugins; see plx_sock.h. */
#include "plx_sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SOCK_BACKLOG 1024

void plx_sock_format_addr(char *out, size_t len, const char *host, const char *port)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, len, "[%s]:%s", host, port);
    else
        snprintf(out, len, "%s:%s", host, port);
}

void plx_sock_format_sockaddr(char *out, size_t len, const struct sockaddr *sa,
                              socklen_t salen)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (getnameinfo(sa, salen, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, len, "?");
    else
        plx_sock_format_addr(out, len, host, port);
}

/* Small messages (heartbeats, replies) must not wait for Nagle. */
static void sock_set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Listening and connecting report failures differently: a connector's
 * caller wants PLX_ECONNECT whatever the cause, with the address in it. */
static int sock_resolve(const char *host, uint16_t port, bool passive,
                        struct addrinfo **res, char *port_str, size_t plen,
                        plx_err_t *err)
{
    struct addrinfo hints = { 0 };
    char addr[PLX_SOCK_ADDR_MAX];
    int gai;

    snprintf(port_str, plen, "%u", (unsigned)port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    gai = getaddrinfo(host, port_str, &hints, res);
    if (gai == 0)
        return PLX_OK;
    plx_sock_format_addr(addr, sizeof addr, host, port_str);
    return plx_err_set(err, !passive ? PLX_ECONNECT : gai == EAI_NONAME ? PLX_EINVAL : PLX_EIO,
                       "%s %s: getaddrinfo: %s", passive ? "listen on" : "connect to", addr,
                       gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
}

/* ---- listening ---------------------------------------------------------- */

/* Empty host means loopback; "*" is the explicit spelling of all IPv4. */
static const char *sock_listen_host(const char *host)
{
    if (host == NULL || *host == '\0')
        return "127.0.0.1";
    if (strcmp(host, "*") == 0)
        return "0.0.0.0";
    return host;
}

/* socket + SO_REUSEADDR + bind + listen on one address; fd or -1 with err. */
static int sock_listen_one(const struct addrinfo *ai, const char *addr, plx_err_t *err)
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
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOCK_BACKLOG) < 0) {
        plx_err_set(err, PLX_EIO, "listen on %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static uint16_t sock_port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

int plx_sock_listen(const char *host, uint16_t port, int *fd, uint16_t *port_out,
                    char *addr, size_t addrlen, plx_err_t *err)
{
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    char port_str[16], want[PLX_SOCK_ADDR_MAX];
    int s = -1;
    int rc;

    host = sock_listen_host(host);
    rc = sock_resolve(host, port, true, &res, port_str, sizeof port_str, err);
    if (rc != PLX_OK)
        return rc;
    plx_sock_format_addr(want, sizeof want, host, port_str);
    for (const struct addrinfo *ai = res; ai != NULL && s < 0; ai = ai->ai_next)
        s = sock_listen_one(ai, want, err);
    freeaddrinfo(res);
    if (s < 0)
        return PLX_EIO;
    if (getsockname(s, (struct sockaddr *)&ss, &sslen) < 0) {
        rc = plx_err_set(err, PLX_EIO, "listen on %s: getsockname: %s", want, strerror(errno));
        close(s);
        return rc;
    }
    plx_sock_format_sockaddr(addr, addrlen, (struct sockaddr *)&ss, sslen);
    if (port_out != NULL)
        *port_out = sock_port_of(&ss);
    *fd = s;
    return PLX_OK;
}

int plx_sock_accept(int lfd, const char *laddr, int *fd, char *peer, size_t peerlen,
                    plx_err_t *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    int s;

    do {
        s = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (s < 0 && errno == EINTR);
    if (s < 0) {
        /* ECONNABORTED: the peer gave up before we got to it; not our error. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
            return PLX_EAGAIN;
        return plx_err_set(err, PLX_EIO, "accept on %s: %s", laddr, strerror(errno));
    }
    sock_set_nodelay(s);
    plx_sock_format_sockaddr(peer, peerlen, (struct sockaddr *)&ss, sslen);
    *fd = s;
    return PLX_OK;
}

/* ---- connecting --------------------------------------------------------- */

/* Start a non-blocking connect to one address: PLX_OK (done or in
 * progress, *fd set, *inprogress says which) or an error in err. */
static int sock_connect_one(const struct addrinfo *ai, const char *addr, int *fd,
                            bool *inprogress, plx_err_t *err)
{
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   ai->ai_protocol);

    if (s < 0)
        return plx_err_set(err, PLX_ECONNECT, "connect to %s: socket: %s", addr,
                           strerror(errno));
    sock_set_nodelay(s);
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
 * A failure reported later by plx_sock_connect_finish is final: the fd
 * has been handed to the caller and cannot be swapped for the next address.
 */
int plx_sock_connect(const char *host, uint16_t port, int *fd, bool *inprogress,
                     char *addr, size_t addrlen, plx_err_t *err)
{
    struct addrinfo *res = NULL;
    char port_str[16];
    int s = -1;
    int rc;

    if (host == NULL || *host == '\0')
        host = "127.0.0.1";
    rc = sock_resolve(host, port, false, &res, port_str, sizeof port_str, err);
    if (rc != PLX_OK)
        return rc;
    plx_sock_format_addr(addr, addrlen, host, port_str);
    rc = PLX_ECONNECT;
    for (const struct addrinfo *ai = res; ai != NULL && s < 0; ai = ai->ai_next)
        rc = sock_connect_one(ai, addr, &s, inprogress, err);
    freeaddrinfo(res);
    if (s < 0)
        return rc;
    *fd = s;
    return PLX_OK;
}

int plx_sock_connect_finish(int fd, const char *addr, plx_err_t *err)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    int soerr = 0;
    socklen_t len = sizeof soerr;

    /* SO_ERROR is 0 both while in progress and on success: writability
     * tells the two apart without blocking. */
    if (poll(&pfd, 1, 0) == 0)
        return PLX_EAGAIN;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr != 0)
        return plx_err_set(err, PLX_ECONNECT, "connect to %s: %s", addr, strerror(soerr));
    return PLX_OK;
}
