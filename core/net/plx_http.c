/* The status page's HTTP server; see plx_http.h. */
#include "plx_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plx_log.h"

#define REQ_MAX    8192
#define CONN_MAX   64
#define CONN_TIMEOUT_S 5.0
/* Connections one address may hold (loopback excepted: every local user
 * shares it, and they are told apart by nothing but their behaviour). */
#define PEER_MAX   8

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

typedef struct hconn hconn_t;

struct plx_http {
    struct ev_loop  *loop;
    int              fd;
    uint16_t         port;
    ev_io            accept_w;
    plx_http_handler handler;
    void            *ud;
    hconn_t         *conns;
    int              nconns;
};

struct hconn {
    plx_http_t *h;
    int         fd;
    ev_io       io;
    ev_timer    timer;
    char        in[REQ_MAX + 1];
    size_t      have;
    char       *out;       /* response being written */
    size_t      out_len, out_off;
    struct in_addr peer;
    hconn_t    *prev, *next;   /* newest first */
};

static void conn_free(hconn_t *c)
{
    plx_http_t *h = c->h;
    ev_io_stop(h->loop, &c->io);
    ev_timer_stop(h->loop, &c->timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    free(c->out);
    free(c);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    default:  return "Internal Server Error";
    }
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hconn_t *c = container_of(w, hconn_t, io);
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0)
            break;
        c->out_off += (size_t)n;
    }
    conn_free(c);
}

/* Queue the whole response (headers + body) and switch to writing. */
static void respond(hconn_t *c, plx_http_resp_t *r)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                     "Connection: close\r\n\r\n",
                     r->status, reason(r->status), r->type ? r->type : "text/plain", r->len);
    c->out = malloc((size_t)n + r->len);
    if (!c->out) {
        free(r->body);
        conn_free(c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    if (r->len)
        memcpy(c->out + n, r->body, r->len);
    free(r->body);
    c->out_len = (size_t)n + r->len;
    ev_io_stop(c->h->loop, &c->io);
    ev_io_init(&c->io, write_cb, c->fd, EV_WRITE);
    ev_io_start(c->h->loop, &c->io);
}

static void respond_text(hconn_t *c, int status, const char *text)
{
    plx_http_resp_t r = {.status = status, .type = "text/plain; charset=utf-8"};
    r.body = strdup(text);
    r.len = r.body ? strlen(r.body) : 0;
    respond(c, &r);
}

/* "Authorization: value" among the header lines after the request line. */
static const char *find_auth(char *headers)
{
    for (char *line = headers; line && *line;) {
        char *end = strstr(line, "\r\n");
        if (end)
            *end = '\0';
        if (strncasecmp(line, "Authorization:", 14) == 0) {
            line += 14;
            while (*line == ' ')
                line++;
            return line;
        }
        line = end ? end + 2 : NULL;
    }
    return "";
}

static void handle(hconn_t *c)
{
    char *sp1 = strchr(c->in, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    char *eol = strstr(c->in, "\r\n");
    if (!sp1 || !sp2 || !eol || sp2 > eol) {
        respond_text(c, 400, "malformed request line\n");
        return;
    }
    *sp1 = *sp2 = '\0';
    plx_http_req_t req = {.method = c->in, .path = sp1 + 1, .query = ""};
    req.auth = find_auth(eol + 2);
    if (strcmp(req.method, "GET") != 0) {
        respond_text(c, 405, "only GET is served here\n");
        return;
    }
    char *q = strchr(sp1 + 1, '?');
    if (q) {
        *q = '\0';
        req.query = q + 1;
    }
    plx_http_resp_t r = {.status = 500};
    c->h->handler(c->h->ud, &req, &r);
    respond(c, &r);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    hconn_t *c = container_of(w, hconn_t, io);
    ssize_t n = recv(c->fd, c->in + c->have, REQ_MAX - c->have, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_free(c);
        return;
    }
    c->have += (size_t)n;
    c->in[c->have] = '\0';
    if (strstr(c->in, "\r\n\r\n"))
        handle(c);
    else if (c->have == REQ_MAX)
        respond_text(c, 400, "request too large\n");
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    conn_free(container_of(w, hconn_t, timer));
}

/* Full: the connection that has been sending its request longest goes,
 * so that slow clients (slowloris) cannot keep the page from others. 0 if
 * every one is being answered. */
static int drop_slowest(plx_http_t *h)
{
    hconn_t *slowest = NULL;
    for (hconn_t *c = h->conns; c; c = c->next)
        if (!c->out)
            slowest = c;   /* the list is newest first: the last one is the oldest */
    if (!slowest)
        return 0;
    conn_free(slowest);
    return 1;
}

static int peer_conns(const plx_http_t *h, struct in_addr a)
{
    int n = 0;
    for (const hconn_t *c = h->conns; c; c = c->next)
        n += c->peer.s_addr == a.s_addr;
    return n;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    plx_http_t *h = container_of(w, plx_http_t, accept_w);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int fd = accept4(h->fd, (struct sockaddr *)&a, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;   /* EMFILE and friends: the next event retries */
    int loopback = (ntohl(a.sin_addr.s_addr) >> 24) == 127;
    if ((!loopback && peer_conns(h, a.sin_addr) >= PEER_MAX) ||
        (h->nconns >= CONN_MAX && !drop_slowest(h))) {
        close(fd);
        return;
    }
    hconn_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->h = h;
    c->fd = fd;
    c->peer = a.sin_addr;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    ev_io_init(&c->io, read_cb, fd, EV_READ);
    ev_io_start(loop, &c->io);
    ev_timer_init(&c->timer, timeout_cb, CONN_TIMEOUT_S, 0.);
    ev_timer_start(loop, &c->timer);
}

static int listen_on(const char *host, uint16_t port, uint16_t *bound, plx_err_t *err)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return plx_err_set(err, PLX_EINVAL, "status page: '%s' is not an IPv4 address", host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t len = sizeof a;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return plx_err_set(err, PLX_EIO, "status page: cannot listen on %s:%u: %s", host,
                           (unsigned)port, strerror(e));
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

plx_http_t *plx_http_new(struct ev_loop *loop, const char *host, uint16_t port,
                         plx_http_handler handler, void *ud, plx_err_t *err)
{
    plx_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        plx_err_set(err, PLX_ENOMEM, "out of memory");
        return NULL;
    }
    h->fd = listen_on(host, port, &h->port, err);
    if (h->fd < 0) {
        free(h);
        return NULL;
    }
    h->loop = loop;
    h->handler = handler;
    h->ud = ud;
    ev_io_init(&h->accept_w, accept_cb, h->fd, EV_READ);
    ev_io_start(loop, &h->accept_w);
    return h;
}

uint16_t plx_http_port(const plx_http_t *h) { return h->port; }

void plx_http_destroy(plx_http_t **hp)
{
    plx_http_t *h = *hp;
    if (!h)
        return;
    *hp = NULL;
    while (h->conns)
        conn_free(h->conns);
    ev_io_stop(h->loop, &h->accept_w);
    close(h->fd);
    free(h);
}

int plx_http_query_get(const char *query, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = plen - klen - 1;
            if (vlen >= len)
                return 0;
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}
