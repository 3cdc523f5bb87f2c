/*
 * Both ends of TLS and TCP connections driven from one poll() loop, as the
 * core's event loop would drive them; see tls_ends.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tls_ends.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_time.h"
#include "tls_fixture.h"

#define MAX_IOV 1024   /* what plx_conn hands sendv at most */

int64_t now_ms(void)
{
    return (int64_t)(plx_now_s() * 1000.0);
}

/* Milliseconds left before deadline; running out fails the test. */
static int left_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();

    if (left <= 0)
        fail_msg("timed out: something hangs");
    return (int)left;
}

static short poll_events(int want)
{
    return (short)(((want & PLX_WANT_READ) ? POLLIN : 0) | ((want & PLX_WANT_WRITE) ? POLLOUT : 0));
}

void wait_fd(int fd, int want, int64_t deadline)
{
    struct pollfd pfd = { .fd = fd, .events = poll_events(want) };

    if (poll(&pfd, 1, left_ms(deadline)) <= 0)
        fail_msg("timed out waiting for fd %d", fd);
}

void lsn_open(lsn *l, const plx_transport_ops *ops, const char *cert, const char *key)
{
    plx_security sec = { .cert_file = cert, .key_file = key };
    plx_err_t err = { 0 };
    int rc;

    memset(l, 0, sizeof *l);
    l->ops = ops;
    rc = ops->listen("127.0.0.1", 0, &sec, &l->h, &l->fd, &l->port, &err);
    if (rc != PLX_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, PLX_OK);
}

void lsn_close(lsn *l)
{
    l->ops->close_listener(&l->h);
    assert_null(l->h);
}

void lsn_accept(lsn *l, end *e)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    char peer[128];
    int rc;

    memset(e, 0, sizeof *e);
    e->ops = l->ops;
    while ((rc = l->ops->accept(l->h, &e->conn, &e->fd, peer, sizeof peer, &e->err)) ==
           PLX_EAGAIN)
        wait_fd(l->fd, PLX_WANT_READ, deadline);
    assert_int_equal(rc, PLX_OK);
    assert_non_null(strstr(peer, "127.0.0.1:"));
    e->rc = PLX_EAGAIN;
}

/* Start connecting; returns connect's code (e->rc is PLX_EAGAIN after OK). */
int end_connect(end *e, const plx_transport_ops *ops, uint16_t port,
                       const plx_security *sec)
{
    memset(e, 0, sizeof *e);
    e->ops = ops;
    e->fd = -1;
    e->rc = ops->connect("127.0.0.1", port, sec, &e->conn, &e->fd, &e->err);
    if (e->rc != PLX_OK)
        return e->rc;
    e->rc = PLX_EAGAIN;
    return PLX_OK;
}

void end_close(end *e)
{
    if (e->conn != NULL)
        e->ops->close(&e->conn);
    assert_null(e->conn);
}

/* One handshake step on every end still in progress; returns how many
 * still are, with their fds and wanted events in pfd. */
static int step(end **ends, int n, struct pollfd *pfd)
{
    int k = 0;

    for (int i = 0; i < n; i++) {
        if (ends[i]->rc != PLX_EAGAIN)
            continue;
        ends[i]->rc = ends[i]->ops->handshake(ends[i]->conn, &ends[i]->err);
        if (ends[i]->rc == PLX_EAGAIN) {
            pfd[k].fd = ends[i]->fd;
            pfd[k++].events = poll_events(ends[i]->ops->want(ends[i]->conn));
        }
    }
    return k;
}

/* Drive every handshake to its end (PLX_OK or an error), within the deadline. */
void drive(end **ends, int n)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    struct pollfd pfd[8];
    int k;

    assert_true(n <= 8);
    while ((k = step(ends, n, pfd)) > 0)
        if (poll(pfd, (nfds_t)k, left_ms(deadline)) <= 0)
            fail_msg("handshake stalled");
}

void pin_sec(plx_security *sec, char *buf, const char *fp)
{
    snprintf(buf, 80, "sha256:%s", fp);
    memset(sec, 0, sizeof *sec);
    sec->fingerprint = buf;
}

/* A client pinned to fp, connected to l and handshaken with its server end. */
void pair_open(lsn *l, end *c, end *s, const char *fp)
{
    plx_security sec;
    char pin[80];
    end *both[2] = { c, s };

    pin_sec(&sec, pin, fp);
    assert_int_equal(end_connect(c, tls, l->port, &sec), PLX_OK);
    lsn_accept(l, s);
    drive(both, 2);
    if (c->rc != PLX_OK || s->rc != PLX_OK)
        print_error("client: %s\nserver: %s\n", c->err.msg, s->err.msg);
    assert_int_equal(c->rc, PLX_OK);
    assert_int_equal(s->rc, PLX_OK);
}

/* ---- moving bytes --------------------------------------------------------------- */

/* Send all of len bytes from one buffer (a few small writes). */
void send_all(end *e, const void *buf, size_t len)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    size_t done = 0;

    while (done < len) {
        struct iovec iov = { (char *)buf + done, len - done };
        size_t n = 0;
        int rc = e->ops->sendv(e->conn, &iov, 1, &n, &e->err);
        if (rc == PLX_EAGAIN)
            wait_fd(e->fd, e->ops->want(e->conn), deadline);
        else
            assert_int_equal(rc, PLX_OK);
        done += n;
    }
}

/* Receive exactly len bytes. */
void recv_all(end *e, void *buf, size_t len)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    size_t got = 0;

    while (got < len) {
        size_t n = 0;
        int rc = e->ops->recv(e->conn, (char *)buf + got, len - got, &n, &e->err);
        if (rc == PLX_EAGAIN)
            wait_fd(e->fd, e->ops->want(e->conn), deadline);
        else if (rc != PLX_OK)
            fail_msg("recv: %s", e->err.msg);
        got += n;
    }
}

/* Read until the stream ends; returns the code that ended it. */
int recv_until_error(end *e)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    char buf[4096];
    size_t n;
    int rc;

    while ((rc = e->ops->recv(e->conn, buf, sizeof buf, &n, &e->err)) == PLX_EAGAIN ||
           rc == PLX_OK)
        if (rc == PLX_EAGAIN)
            wait_fd(e->fd, e->ops->want(e->conn), deadline);
    return rc;
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Mostly small pieces (frame headers, envelopes), some around the record
 * size, a few large (array buffers). */
static size_t piece_len(uint32_t *seed)
{
    uint32_t r = rnd(seed), pick = r % 100;

    if (pick < 80)
        return 1 + r % 300;
    if (pick < 90)
        return 300 + r % 20000;
    if (pick < 97)
        return 16383 + r % 3;
    return 100000 + r % 1500000;
}

void stream_init(stream *s, end *from, end *to, size_t size, uint32_t seed)
{
    size_t pos = 0;
    int cap = 1024;

    memset(s, 0, sizeof *s);
    s->from = from;
    s->to = to;
    s->size = size;
    s->src = malloc(size);
    s->dst = malloc(size);
    s->iov = malloc((size_t)cap * sizeof *s->iov);
    assert_true(s->src && s->dst && s->iov);
    for (size_t i = 0; i < size; i++)
        s->src[i] = (unsigned char)(rnd(&seed) >> 7);
    while (pos < size) {
        size_t len = piece_len(&seed);
        if (len > size - pos)
            len = size - pos;
        if (s->cnt == cap) {
            cap *= 2;
            s->iov = realloc(s->iov, (size_t)cap * sizeof *s->iov);
            assert_non_null(s->iov);
        }
        s->iov[s->cnt++] = (struct iovec){ s->src + pos, len };
        pos += len;
    }
}

void stream_free(stream *s)
{
    free(s->src);
    free(s->dst);
    free(s->iov);
}

/* Advance past n written bytes, as plx_conn does (in place). */
static void stream_advance(stream *s, size_t n)
{
    s->sent += n;
    while (s->first < s->cnt && n >= s->iov[s->first].iov_len) {
        n -= s->iov[s->first].iov_len;
        s->first++;
    }
    if (s->first < s->cnt) {
        s->iov[s->first].iov_base = (char *)s->iov[s->first].iov_base + n;
        s->iov[s->first].iov_len -= n;
    }
}

/* One sendv and one recv; returns whether either moved bytes. */
bool stream_step(stream *s)
{
    static const size_t rsizes[] = { 1, 100, 5000, 65536, 1u << 20, 17000 };
    bool moved = false;
    size_t n = 0;
    int rc;

    if (s->sent < s->size) {
        int cnt = s->cnt - s->first > MAX_IOV ? MAX_IOV : s->cnt - s->first;
        rc = s->from->ops->sendv(s->from->conn, s->iov + s->first, cnt, &n, &s->from->err);
        if (rc != PLX_OK && rc != PLX_EAGAIN)
            fail_msg("sendv: %s", s->from->err.msg);
        s->blocked = rc == PLX_EAGAIN;
        stream_advance(s, n);
        moved = n > 0;
    }
    if (s->got < s->size) {
        size_t want = rsizes[s->reads++ % (sizeof rsizes / sizeof rsizes[0])];
        if (want > s->size - s->got || s->whole)
            want = s->size - s->got;
        rc = s->to->ops->recv(s->to->conn, s->dst + s->got, want, &n, &s->to->err);
        if (rc != PLX_OK && rc != PLX_EAGAIN)
            fail_msg("recv: %s", s->to->err.msg);
        s->got += rc == PLX_OK ? n : 0;
        moved = moved || (rc == PLX_OK && n > 0);
    }
    return moved;
}

/* Wait for anything a stalled stream waits for. */
static void streams_wait(stream *s, int n, int64_t deadline)
{
    struct pollfd pfd[8];
    int k = 0;

    for (int i = 0; i < n; i++) {
        if (s[i].sent < s[i].size && s[i].blocked)
            pfd[k++] = (struct pollfd){ s[i].from->fd,
                                        poll_events(s[i].from->ops->want(s[i].from->conn)), 0 };
        if (s[i].got < s[i].size)
            pfd[k++] = (struct pollfd){ s[i].to->fd, POLLIN, 0 };
    }
    if (k > 0 && poll(pfd, (nfds_t)k, left_ms(deadline)) <= 0)
        fail_msg("transfer stalled");
}

/* Move every stream to its end at once, then check the bytes. */
void pump(stream *s, int n)
{
    int64_t deadline = now_ms() + 6 * DEADLINE_MS;
    bool done = false;

    while (!done) {
        bool moved = false;
        done = true;
        for (int i = 0; i < n; i++) {
            moved = stream_step(&s[i]) || moved;
            done = done && s[i].got == s[i].size;
        }
        if (!done && !moved)
            streams_wait(s, n, deadline);
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(s[i].sent, s[i].size);
        assert_memory_equal(s[i].src, s[i].dst, s[i].size);
    }
}

void both_ways(size_t size)
{
    lsn l;
    end c, s;
    stream st[2];

    lsn_open(&l, tls, cert_a, key_a);
    pair_open(&l, &c, &s, fp_a);
    stream_init(&st[0], &c, &s, size, 12345);
    stream_init(&st[1], &s, &c, size, 777);
    print_message("%d and %d iovecs\n", st[0].cnt, st[1].cnt);
    pump(st, 2);
    stream_free(&st[0]);
    stream_free(&st[1]);
    end_close(&c);
    end_close(&s);
    lsn_close(&l);
}

