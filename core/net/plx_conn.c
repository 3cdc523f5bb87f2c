/* Framed connections; see plx_conn.h. */
#include "plx_conn.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plx_log.h"
#include "plx_region.h"

#define STAGING_SIZE   (256u * 1024u)
#define DIRECT_MIN     (64u * 1024u)   /* bodies this large are read in place */
#define READS_PER_TURN 64              /* fairness between connections */
#define MAX_IOV        1024
#define CLOSE_FLUSH_S  5.0

/* C_CLOSING: closed by a caller, on_close not yet reported (it is, from
 * the loop, so owners never see on_close re-enter their own call). */
enum cstate { C_HANDSHAKE, C_OPEN, C_FLUSHING, C_CLOSING, C_CLOSED };

typedef struct outq {
    plx_msg_t    *msg;
    struct iovec *iov;     /* the frame as iovecs */
    int           iovcnt;
    int           iovpos;  /* first iovec not fully written */
    size_t        iovoff;  /* bytes of iov[iovpos] already written */
    int           fds[PLX_TRANSPORT_MAX_FDS];   /* its regions' descriptors (the buffers') */
    int           nfds;
    int           fds_sent;
    plx_buf_t    *raw;     /* plx_conn_send_bytes: the bytes' buffer (msg is NULL) */
    struct outq  *next;
} outq_t;

struct plx_conn {
    struct ev_loop          *loop;
    const plx_transport_ops *ops;
    void                    *handle;
    int                      fd;
    int                      share;       /* regions by descriptor (plx_conn_share_regions) */
    ev_io                    rio, wio;
    ev_timer                 close_timer;
    enum cstate              state;
    plx_decoder_t           *dec;
    uint8_t                 *staging;
    outq_t                  *qhead, *qtail;
    uint64_t                 out_bytes;
    uint64_t                 received;    /* bytes read from the peer, ever */
    uint64_t                 sent;        /* bytes written to the peer, ever */
    plx_conn_cbs_t           cbs;
    void                    *ud;
    char                     peer[64];
    int                      depth;       /* our callbacks in progress */
    int                      doomed;      /* destroyed inside a callback */
    int                      close_code;
    char                     close_why[PLX_ERR_MSG_MAX];
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void close_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_flush(plx_conn_t *c, int from_caller);
static void conn_enqueue(plx_conn_t *c, outq_t *q);

/* ---- lifecycle ---------------------------------------------------------- */

plx_conn_t *plx_conn_new(struct ev_loop *loop, const plx_transport_ops *ops, void *handle,
                         int fd, const plx_limits_t *lim, const plx_conn_cbs_t *cbs,
                         void *ud, const char *peer)
{
    plx_conn_t *c = calloc(1, sizeof *c);
    if (c) {
        c->dec = plx_decoder_new(lim);
        c->staging = malloc(STAGING_SIZE);
    }
    if (!c || !c->dec || !c->staging) {
        if (c) {
            plx_decoder_destroy(&c->dec);
            free(c->staging);
            free(c);
        }
        ops->close(&handle);
        return NULL;
    }
    c->loop = loop;
    c->ops = ops;
    c->handle = handle;
    c->fd = fd;
    c->cbs = *cbs;
    c->ud = ud;
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "?");
    ev_io_init(&c->rio, read_cb, fd, EV_READ);
    ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
    ev_init(&c->close_timer, close_timer_cb);
    c->state = C_HANDSHAKE;
    /* The handshake starts from the loop (the socket is writable at once,
     * or when connect completes), so on_open never runs before the caller
     * has stored the pointer we return. */
    ev_io_start(loop, &c->wio);
    return c;
}

/* Stopping a watcher also clears any event fed to it but not yet run. */
static void conn_stop_io(plx_conn_t *c)
{
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_timer_stop(c->loop, &c->close_timer);
}

/* A frame written or dropped: its lent descriptors are closed (a copy sent
 * lives on in the kernel's queue and the receiver). */
static void outq_free(outq_t *q)
{
    for (int i = 0; i < q->nfds; i++)
        close(q->fds[i]);
    plx_msg_destroy(&q->msg);
    plx_buf_unref(&q->raw);
    free(q->iov);
    free(q);
}

static void conn_drop_queue(plx_conn_t *c)
{
    while (c->qhead) {
        outq_t *q = c->qhead;
        c->qhead = q->next;
        outq_free(q);
    }
    c->qtail = NULL;
    c->out_bytes = 0;
}

static void conn_shut(plx_conn_t *c)
{
    conn_stop_io(c);
    conn_drop_queue(c);
    if (c->handle)
        c->ops->close(&c->handle);
    c->fd = -1;
    c->state = C_CLOSED;
}

/* Tear down the transport and report once. Only called from our own
 * watcher callbacks. */
static void conn_closed(plx_conn_t *c, int code, const char *why)
{
    if (c->state == C_CLOSED)
        return;
    conn_shut(c);
    if (c->cbs.on_close)
        c->cbs.on_close(c, code, why, c->ud);
}

static void conn_free(plx_conn_t *c)
{
    if (c->state != C_CLOSED)
        conn_shut(c);
    plx_decoder_destroy(&c->dec);
    free(c->staging);
    free(c);
}

void plx_conn_destroy(plx_conn_t **cp)
{
    plx_conn_t *c = *cp;
    if (!c)
        return;
    *cp = NULL;
    if (c->depth > 0) {
        /* Inside one of our callbacks: shut now, free when it returns. */
        c->doomed = 1;
        c->cbs.on_close = NULL;
        c->cbs.on_msg = NULL;
        if (c->state != C_CLOSED)
            conn_shut(c);
        return;
    }
    conn_free(c);
}

/* Enter/leave one of our callbacks; leave returns 1 when c was freed. */
static void conn_enter(plx_conn_t *c) { c->depth++; }

static int conn_leave(plx_conn_t *c)
{
    c->depth--;
    if (c->doomed && c->depth == 0) {
        conn_free(c);
        return 1;
    }
    return c->doomed;
}

static void conn_close_later(plx_conn_t *c, int code, const char *why)
{
    c->close_code = code;
    if (why != c->close_why)
        snprintf(c->close_why, sizeof c->close_why, "%s", why);
    conn_stop_io(c);
    c->state = C_CLOSING;
    ev_feed_event(c->loop, &c->close_timer, EV_TIMER);
}

void plx_conn_close(plx_conn_t *c, int flush, int code, const char *why)
{
    if (c->state == C_CLOSED || c->state == C_FLUSHING || c->state == C_CLOSING)
        return;
    if (flush && c->qhead && c->state == C_OPEN) {
        c->state = C_FLUSHING;
        c->close_code = code;
        snprintf(c->close_why, sizeof c->close_why, "%s", why);
        ev_io_stop(c->loop, &c->rio);
        ev_timer_set(&c->close_timer, CLOSE_FLUSH_S, 0.);
        ev_timer_start(c->loop, &c->close_timer);
        ev_io_start(c->loop, &c->wio);
        return;
    }
    conn_close_later(c, code, why);
}

/* Fires for a deferred close and when a flushing close runs out of time. */
static void close_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_conn_t *c = container_of(w, plx_conn_t, close_timer);
    conn_enter(c);
    conn_closed(c, c->close_code, c->close_why);
    conn_leave(c);
}

void plx_conn_set_limits(plx_conn_t *c, const plx_limits_t *lim)
{
    plx_decoder_set_limits(c->dec, lim);
}

void plx_conn_set_budget(plx_conn_t *c, plx_budget_t *budget)
{
    plx_decoder_set_budget(c->dec, budget);
}

int plx_conn_share_regions(plx_conn_t *c, int kind)
{
    if (!PLX_OPS_HAS(c->ops, plx_transport_ops, sendv_fds) ||
        !PLX_OPS_HAS(c->ops, plx_transport_ops, recv_fds))
        return 0;
    c->share = 1;
    plx_decoder_set_regions(c->dec, kind);
    return 1;
}

void plx_conn_set_ud(plx_conn_t *c, void *ud) { c->ud = ud; }
void *plx_conn_ud(const plx_conn_t *c) { return c->ud; }
const char *plx_conn_peer(const plx_conn_t *c) { return c->peer; }
uint64_t plx_conn_out_bytes(const plx_conn_t *c) { return c->out_bytes; }
void plx_conn_set_tap(plx_conn_t *c, const plx_tap_t *tap) { plx_decoder_set_tap(c->dec, tap); }
int plx_conn_is_open(const plx_conn_t *c) { return c->state == C_OPEN; }
uint64_t plx_conn_bytes_received(const plx_conn_t *c) { return c->received; }
uint64_t plx_conn_bytes_sent(const plx_conn_t *c) { return c->sent; }

/* ---- writing ------------------------------------------------------------ */

int plx_conn_send(plx_conn_t *c, plx_msg_t *m)
{
    if (c->state == C_CLOSED || c->state == C_FLUSHING || c->state == C_CLOSING) {
        plx_msg_destroy(&m);
        return PLX_ECLOSED;
    }
    outq_t *q = calloc(1, sizeof *q);
    if (q)
        q->iov = malloc((size_t)plx_msg_iovcnt(m) * sizeof *q->iov);
    if (q && q->iov)
        q->iovcnt = c->share ? plx_msg_iov_fds(m, q->iov, PLX_CONN_SHARE_MIN, q->fds,
                                               PLX_TRANSPORT_MAX_FDS, &q->nfds)
                             : plx_msg_iov(m, q->iov);
    if (!q || !q->iov || q->iovcnt < 0) {
        if (q)
            free(q->iov);
        free(q);
        plx_msg_destroy(&m);
        return PLX_ENOMEM;
    }
    q->msg = m;
    conn_enqueue(c, q);
    return PLX_OK;
}

int plx_conn_send_bytes(plx_conn_t *c, plx_buf_t *b, size_t off, size_t len)
{
    if (c->state == C_CLOSED || c->state == C_FLUSHING || c->state == C_CLOSING)
        return PLX_ECLOSED;
    outq_t *q = calloc(1, sizeof *q);
    if (q)
        q->iov = malloc(sizeof *q->iov);
    if (!q || !q->iov) {
        if (q)
            free(q->iov);
        free(q);
        return PLX_ENOMEM;
    }
    q->raw = plx_buf_ref(b);
    q->iov[0].iov_base = b->data + off;
    q->iov[0].iov_len = len;
    q->iovcnt = 1;
    conn_enqueue(c, q);
    return PLX_OK;
}

static void conn_enqueue(plx_conn_t *c, outq_t *q)
{
    for (int i = 0; i < q->iovcnt; i++)
        c->out_bytes += q->iov[i].iov_len;
    if (c->qtail)
        c->qtail->next = q;
    else
        c->qhead = q;
    c->qtail = q;
    /* Write at once (lower latency); errors are reported from the loop. */
    if (c->state == C_OPEN && !ev_is_active(&c->wio))
        conn_flush(c, 1);
}

/* Collect iovecs of queued frames, starting mid-frame where we left off,
 * and the descriptors of the frames they begin (every frame's go with the
 * first write that carries any of its bytes, so that they arrive no later
 * than its references). *fdlast: the last frame whose descriptors are in
 * fds, NULL for none. */
static int gather(plx_conn_t *c, struct iovec *iov, int *fds, int *nfds, outq_t **fdlast)
{
    int n = 0;
    *nfds = 0;
    *fdlast = NULL;
    for (outq_t *q = c->qhead; q && n < MAX_IOV; q = q->next) {
        if (q->nfds && !q->fds_sent) {
            if (*nfds + q->nfds > PLX_TRANSPORT_MAX_FDS)
                break;   /* this frame starts with the next write */
            memcpy(fds + *nfds, q->fds, (size_t)q->nfds * sizeof *fds);
            *nfds += q->nfds;
            *fdlast = q;
        }
        for (int i = q->iovpos; i < q->iovcnt && n < MAX_IOV; i++) {
            iov[n] = q->iov[i];
            if (i == q->iovpos) {
                iov[n].iov_base = (char *)iov[n].iov_base + q->iovoff;
                iov[n].iov_len -= q->iovoff;
            }
            if (iov[n].iov_len)
                n++;
        }
    }
    return n;
}

/* Retire n written bytes (and any fully written frames) from the queue. */
static void consume(plx_conn_t *c, size_t n)
{
    c->out_bytes -= n;
    c->sent += n;
    while (c->qhead) {
        outq_t *q = c->qhead;
        while (q->iovpos < q->iovcnt) {
            size_t left = q->iov[q->iovpos].iov_len - q->iovoff;
            if (n < left) {
                q->iovoff += n;
                return;
            }
            n -= left;
            q->iovpos++;
            q->iovoff = 0;
        }
        c->qhead = q->next;
        if (!c->qhead)
            c->qtail = NULL;
        outq_free(q);
    }
}

static void conn_fail(plx_conn_t *c, int from_caller, int code, const char *why)
{
    if (from_caller)
        conn_close_later(c, code, why);
    else
        conn_closed(c, code, why);
}

static void conn_flush(plx_conn_t *c, int from_caller)
{
    struct iovec iov[MAX_IOV];
    int fds[PLX_TRANSPORT_MAX_FDS];
    while (c->qhead) {
        int nfds;
        outq_t *fdlast;
        int cnt = gather(c, iov, fds, &nfds, &fdlast);
        size_t n = 0;
        if (cnt > 0) {
            plx_err_t err = {0};
            int rc = nfds ? c->ops->sendv_fds(c->handle, iov, cnt, fds, nfds, &n, &err)
                          : c->ops->sendv(c->handle, iov, cnt, &n, &err);
            if (rc == PLX_OK && n > 0 && fdlast)
                for (outq_t *q = c->qhead; q; q = q->next) {
                    q->fds_sent = 1;
                    if (q == fdlast)
                        break;
                }
            if (rc == PLX_EAGAIN) {
                int want = c->ops->want ? c->ops->want(c->handle) : PLX_WANT_WRITE;
                if (want & PLX_WANT_WRITE)
                    ev_io_start(c->loop, &c->wio);
                if ((want & PLX_WANT_READ) && c->state == C_OPEN)
                    ev_io_start(c->loop, &c->rio);
                return;
            }
            if (rc != PLX_OK) {
                conn_fail(c, from_caller, rc, err.msg);
                return;
            }
        }
        consume(c, n);
    }
    ev_io_stop(c->loop, &c->wio);
    if (c->state == C_FLUSHING)
        conn_fail(c, from_caller, c->close_code, c->close_why);
}

/* ---- handshake and reading --------------------------------------------- */

static void conn_handshake(plx_conn_t *c)
{
    plx_err_t err = {0};
    int rc = c->ops->handshake(c->handle, &err);
    if (rc == PLX_EAGAIN) {
        int want = c->ops->want ? c->ops->want(c->handle) : PLX_WANT_READ;
        ev_io_stop(c->loop, &c->rio);
        ev_io_stop(c->loop, &c->wio);
        if (want & PLX_WANT_READ)
            ev_io_start(c->loop, &c->rio);
        if (want & PLX_WANT_WRITE)
            ev_io_start(c->loop, &c->wio);
        return;
    }
    if (rc != PLX_OK) {
        conn_closed(c, rc, err.msg);
        return;
    }
    c->state = C_OPEN;
    ev_io_stop(c->loop, &c->wio);
    ev_io_start(c->loop, &c->rio);
    if (c->cbs.on_open)
        c->cbs.on_open(c, c->ud);
    if (c->doomed || c->state != C_OPEN)
        return;
    if (c->qhead)
        conn_flush(c, 0);
    /* TLS may hold application data that arrived with the handshake. */
    if (c->state == C_OPEN && c->ops->pending && c->ops->pending(c->handle))
        ev_feed_event(c->loop, &c->rio, EV_READ);
}

static void deliver(plx_conn_t *c, plx_msg_t *m)
{
    if (c->cbs.on_msg)
        c->cbs.on_msg(c, m, c->ud);
    else
        plx_msg_destroy(&m);
}

static void decode_failed(plx_conn_t *c, int rc, const plx_err_t *err)
{
    PLX_WARN("connection %s: %s; closing it", c->peer, err->msg);
    conn_closed(c, rc, err->msg);
}

/* Feed staged bytes to the decoder, delivering every complete frame. */
static int feed_all(plx_conn_t *c, size_t len)
{
    size_t pos = 0;
    while (pos < len && !c->doomed && c->state == C_OPEN) {
        size_t used = 0;
        plx_msg_t *m = NULL;
        plx_err_t err = {0};
        int rc = plx_decoder_feed(c->dec, c->staging + pos, len - pos, &used, &m, &err);
        pos += used;
        if (rc < 0) {
            decode_failed(c, rc, &err);
            return rc;
        }
        if (rc == 1)
            deliver(c, m);
    }
    return PLX_OK;
}

/* A read; on a sharing connection the descriptors that came with the
 * bytes go to the decoder first, ahead of the references they serve. */
static int conn_recv(plx_conn_t *c, uint8_t *ptr, size_t len, size_t *n, plx_err_t *err)
{
    if (!c->share)
        return c->ops->recv(c->handle, ptr, len, n, err);
    int fds[PLX_TRANSPORT_MAX_FDS], nfds = 0;
    int rc = c->ops->recv_fds(c->handle, ptr, len, n, fds, PLX_TRANSPORT_MAX_FDS, &nfds, err);
    if (nfds > 0) {
        int grc = plx_decoder_give_fds(c->dec, fds, nfds, err);
        if (grc != PLX_OK)
            return grc;
    }
    return rc;
}

/* One read from the transport: straight into a large body, or staged. */
static int read_once(plx_conn_t *c)
{
    uint8_t *ptr;
    size_t len, n = 0;
    plx_err_t err = {0};
    int direct = plx_decoder_direct(c->dec, DIRECT_MIN, &ptr, &len, &err);
    if (direct < 0) {
        decode_failed(c, direct, &err);
        return direct;
    }
    if (!direct) {
        ptr = c->staging;
        len = STAGING_SIZE;
    }
    int rc = conn_recv(c, ptr, len, &n, &err);
    if (rc == PLX_EAGAIN)
        return rc;
    if (rc == PLX_ECLOSED) {
        conn_closed(c, PLX_OK, "peer closed the connection");
        return rc;
    }
    if (rc != PLX_OK) {
        conn_closed(c, rc, err.msg);
        return rc;
    }
    c->received += n;
    if (!direct)
        return feed_all(c, n);
    plx_msg_t *m = NULL;
    rc = plx_decoder_commit(c->dec, n, &m, &err);
    if (rc < 0) {
        decode_failed(c, rc, &err);
        return rc;
    }
    if (rc == 1)
        deliver(c, m);
    return PLX_OK;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    plx_conn_t *c = container_of(w, plx_conn_t, rio);
    conn_enter(c);
    if (c->state == C_HANDSHAKE) {
        conn_handshake(c);
    } else {
        int turns = 0;
        while (c->state == C_OPEN && !c->doomed && turns < READS_PER_TURN) {
            turns++;
            if (read_once(c) != PLX_OK)
                break;
        }
        /* Yielded for fairness with data perhaps still waiting. */
        if (turns == READS_PER_TURN && c->state == C_OPEN && !c->doomed)
            ev_feed_event(loop, &c->rio, EV_READ);
    }
    conn_leave(c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    plx_conn_t *c = container_of(w, plx_conn_t, wio);
    conn_enter(c);
    if (c->state == C_HANDSHAKE)
        conn_handshake(c);
    else if (c->state == C_OPEN || c->state == C_FLUSHING)
        conn_flush(c, 0);
    conn_leave(c);
}

int plx_conn_fd(const plx_conn_t *c)
{
    return c->fd;
}
