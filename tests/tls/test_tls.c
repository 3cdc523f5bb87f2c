/*
 * Tests of plugins/transport-tls, loaded through the plugin loader exactly
 * as the core loads it, against itself and against transport-tcp. Both
 * ends of each connection are driven from one poll() loop, as the core's
 * event loop would. Behaviour only: the plugin's bandwidth and round
 * trips against tcp's are measured by bench/tls_stream (bench/README.md).
 * Every wait is bounded: a handshake or transfer that stalls fails the
 * test instead of hanging it.
 *
 * Certificates: A is "the controller" and B "another profile" (the
 * man-in-the-middle's), both made by plx_cert_ensure; a small CA and
 * leaves signed by it (tls_testcerts.c) cover the CA-file mode.
 *
 * `test_tls NAME` runs the tests whose name matches NAME (cmocka filter,
 * '*' wildcards).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plx_cert.h"
#include "plx_plugin_loader.h"
#include "tls_testcerts.h"

#define DEADLINE_MS 10000
#define MAX_IOV     1024      /* what plx_conn hands sendv at most */
#define PATH_LEN    512

static const plx_transport_ops *tls, *tcp;
static char tmpdir[256];
static char cert_a[PATH_LEN], key_a[PATH_LEN], fp_a[65];
static char cert_b[PATH_LEN], key_b[PATH_LEN], fp_b[65];
static char ca_cert[PATH_LEN], ca_key[PATH_LEN];
static char leaf_cert[PATH_LEN], leaf_key[PATH_LEN], leaf_fp[65];
static char far_cert[PATH_LEN], far_key[PATH_LEN];   /* CA-signed, for another host */

/* ---- fixtures --------------------------------------------------------------- */

static void path_in(char *out, const char *name)
{
    snprintf(out, PATH_LEN, "%s/%s", tmpdir, name);
}

static int make_profile_cert(const char *sub, char *cert, char *key, char *fp)
{
    char dir[PATH_LEN];
    plx_err_t err = { 0 };

    path_in(dir, sub);
    if (mkdir(dir, 0700) != 0 ||
        plx_cert_ensure(dir, cert, PATH_LEN, key, PATH_LEN, fp, &err) != PLX_OK) {
        print_error("%s: %s\n", dir, err.msg);
        return -1;
    }
    return 0;
}

static int make_ca_certs(void)
{
    plx_err_t err = { 0 };

    path_in(ca_cert, "ca.pem");
    path_in(ca_key, "ca-key.pem");
    path_in(leaf_cert, "leaf.pem");
    path_in(leaf_key, "leaf-key.pem");
    path_in(far_cert, "far.pem");
    path_in(far_key, "far-key.pem");
    if (tc_make(ca_cert, ca_key, "plexa test CA", NULL, true, NULL, NULL) != 0 ||
        tc_make(leaf_cert, leaf_key, "head node", "IP:127.0.0.1,DNS:localhost", false, ca_cert,
                ca_key) != 0 ||
        tc_make(far_cert, far_key, "far node", "DNS:far.example.org", false, ca_cert, ca_key) != 0)
        return -1;
    return plx_cert_fingerprint_file(leaf_cert, leaf_fp, &err) == PLX_OK ? 0 : -1;
}

static int group_setup(void **state)
{
    plx_err_t err = { 0 };

    tls = plx_transport_find("tls", &err);
    tcp = tls ? plx_transport_find("tcp", &err) : NULL;
    if (tcp == NULL) {
        print_error("%s\n", err.msg);
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s/plx-tls-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    if (make_profile_cert("a", cert_a, key_a, fp_a) != 0 ||
        make_profile_cert("b", cert_b, key_b, fp_b) != 0 || make_ca_certs() != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    return plx_test_rmtree(tmpdir);
}

/* ---- ends, listeners, handshakes ---------------------------------------------- */

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

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

static void wait_fd(int fd, int want, int64_t deadline)
{
    struct pollfd pfd = { .fd = fd, .events = poll_events(want) };

    if (poll(&pfd, 1, left_ms(deadline)) <= 0)
        fail_msg("timed out waiting for fd %d", fd);
}

static void lsn_open(lsn *l, const plx_transport_ops *ops, const char *cert, const char *key)
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

static void lsn_close(lsn *l)
{
    l->ops->close_listener(&l->h);
    assert_null(l->h);
}

static void lsn_accept(lsn *l, end *e)
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
static int end_connect(end *e, const plx_transport_ops *ops, uint16_t port,
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

static void end_close(end *e)
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
static void drive(end **ends, int n)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    struct pollfd pfd[8];
    int k;

    assert_true(n <= 8);
    while ((k = step(ends, n, pfd)) > 0)
        if (poll(pfd, (nfds_t)k, left_ms(deadline)) <= 0)
            fail_msg("handshake stalled");
}

static void pin_sec(plx_security *sec, char *buf, const char *fp)
{
    snprintf(buf, 80, "sha256:%s", fp);
    memset(sec, 0, sizeof *sec);
    sec->fingerprint = buf;
}

/* A client pinned to fp, connected to l and handshaken with its server end. */
static void pair_open(lsn *l, end *c, end *s, const char *fp)
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
static void send_all(end *e, const void *buf, size_t len)
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
static void recv_all(end *e, void *buf, size_t len)
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
static int recv_until_error(end *e)
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

static void stream_init(stream *s, end *from, end *to, size_t size, uint32_t seed)
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

static void stream_free(stream *s)
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
static bool stream_step(stream *s)
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
static void pump(stream *s, int n)
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

static void both_ways(size_t size)
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

/* ---- tests: the good path ---------------------------------------------------------- */

/* Pinned handshake, a message each way, close_notify seen as a clean close. */
static void test_handshake_pinned(void **state)
{
    char buf[6];
    lsn l;
    end c, s;

    lsn_open(&l, tls, cert_a, key_a);
    pair_open(&l, &c, &s, fp_a);
    send_all(&c, "hello", 5);
    recv_all(&s, buf, 5);
    assert_memory_equal(buf, "hello", 5);
    send_all(&s, "world", 5);
    recv_all(&c, buf, 5);
    assert_memory_equal(buf, "world", 5);
    end_close(&c);
    assert_int_equal(recv_until_error(&s), PLX_ECLOSED);
    assert_non_null(strstr(s.err.msg, "closed by peer"));
    assert_null(strstr(s.err.msg, "close_notify"));
    end_close(&s);
    lsn_close(&l);
}

/* The pin may be written bare, in upper case, or with colons. */
static void test_pin_spellings(void **state)
{
    char upper[65], colons[100];
    const char *forms[3];
    lsn l;

    for (int i = 0; i < 64; i++)
        upper[i] = (char)(fp_a[i] >= 'a' ? fp_a[i] - 32 : fp_a[i]);
    upper[64] = '\0';
    for (int i = 0, j = 0; i < 64; i += 2) {
        j += snprintf(colons + j, sizeof colons - (size_t)j, "%s%c%c", i ? ":" : "", upper[i],
                      upper[i + 1]);
    }
    forms[0] = fp_a;
    forms[1] = upper;
    forms[2] = colons;
    lsn_open(&l, tls, cert_a, key_a);
    for (int i = 0; i < 3; i++) {
        plx_security sec = { .fingerprint = forms[i] };
        end c, s, *both[2] = { &c, &s };
        assert_int_equal(end_connect(&c, tls, l.port, &sec), PLX_OK);
        lsn_accept(&l, &s);
        drive(both, 2);
        assert_int_equal(c.rc, PLX_OK);
        end_close(&c);
        end_close(&s);
    }
    lsn_close(&l);
}

/* 10 MB each way at once, many small and some large iovecs, intact. */
static void test_10mb_both_ways(void **state)
{
    both_ways(10u << 20);
}

/* A large body read straight into pages never touched before, as
 * plx_conn's direct reads do, from an address that is not page-aligned:
 * the plugin maps those pages ahead of SSL_read (MADV_POPULATE_WRITE, in
 * steps); the bytes arrive intact and the caller's bytes on either side
 * of the buffer, in the same pages, are left alone. */
static void test_large_recv_into_fresh_pages(void **state)
{
    size_t size = (9u << 20) + 12345, page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = size + 3 * page;
    unsigned char *map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0);
    unsigned char *own, *buf, guard[100];
    stream st;
    lsn l;
    end c, s;

    assert_true(map != MAP_FAILED);
    buf = map + page - 100;
    memset(guard, 0xa5, sizeof guard);
    memcpy(buf - 100, guard, 100);
    memcpy(buf + size, guard, 100);
    lsn_open(&l, tls, cert_a, key_a);
    pair_open(&l, &c, &s, fp_a);
    stream_init(&st, &c, &s, size, 4242);
    own = st.dst;
    st.dst = buf;
    st.whole = true;
    pump(&st, 1);
    assert_memory_equal(buf - 100, guard, 100);
    assert_memory_equal(buf + size, guard, 100);
    st.dst = own;
    stream_free(&st);
    assert_int_equal(munmap(map, span), 0);
    end_close(&c);
    end_close(&s);
    lsn_close(&l);
}

/* Spurious EAGAIN, socket I/O in 7001-byte pieces (records leave and
 * arrive in parts) and KeyUpdates in both directions, while writes are
 * queued, lose nothing. PLX_TEST_FAULT replaces the fault spec (see
 * PLX_TLS_FAULT in plugins/transport-tls/tls.c) to explore others. */
static void test_faults_and_key_updates(void **state)
{
    const char *spec = getenv("PLX_TEST_FAULT");

    setenv("PLX_TLS_FAULT", spec ? spec : "eagain_every=3,short=7001,keyupdate=250000", 1);
    both_ways(4u << 20);
    unsetenv("PLX_TLS_FAULT");
}

/* Data sent right after the client's handshake is found by pending()
 * once the server's handshake ends: the core must not wait on the fd. */
static void test_pending_after_handshake(void **state)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    plx_security sec;
    char pin[80], buf[8];
    size_t n = 0;
    lsn l;
    end c, s;

    lsn_open(&l, tls, cert_a, key_a);
    pin_sec(&sec, pin, fp_a);
    assert_int_equal(end_connect(&c, tls, l.port, &sec), PLX_OK);
    lsn_accept(&l, &s);
    while ((c.rc = tls->handshake(c.conn, &c.err)) == PLX_EAGAIN) {
        if ((s.rc = tls->handshake(s.conn, &s.err)) != PLX_EAGAIN)
            fail_msg("server finished first: %s", s.err.msg);
        wait_fd(c.fd, tls->want(c.conn), deadline);
    }
    assert_int_equal(c.rc, PLX_OK);
    send_all(&c, "early", 5);
    wait_fd(s.fd, PLX_WANT_READ, deadline);
    assert_int_equal(tls->handshake(s.conn, &s.err), PLX_OK);
    assert_true(tls->pending(s.conn) > 0);
    assert_int_equal(tls->recv(s.conn, buf, sizeof buf, &n, &s.err), PLX_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "early", 5);
    assert_int_equal(tls->pending(s.conn), 0);
    end_close(&c);
    end_close(&s);
    lsn_close(&l);
}

/* A peer that vanishes without close_notify is a close, and says so. */
static void test_eof_without_close_notify(void **state)
{
    lsn l;
    end c, s;

    lsn_open(&l, tls, cert_a, key_a);
    pair_open(&l, &c, &s, fp_a);
    assert_int_equal(shutdown(s.fd, SHUT_RDWR), 0);
    assert_int_equal(recv_until_error(&c), PLX_ECLOSED);
    print_message("%s\n", c.err.msg);
    assert_non_null(strstr(c.err.msg, "without TLS close_notify"));
    end_close(&c);
    end_close(&s);
    lsn_close(&l);
}

/* ---- tests: refusals ------------------------------------------------------------------ */

/* Pinning B's fingerprint while A answers: PLX_EAUTH on the client, the
 * controller learns the client refused its certificate. */
static void test_wrong_fingerprint(void **state)
{
    plx_security sec;
    char pin[80];
    lsn l;
    end c, s, *both[2] = { &c, &s };

    lsn_open(&l, tls, cert_a, key_a);
    pin_sec(&sec, pin, fp_b);
    assert_int_equal(end_connect(&c, tls, l.port, &sec), PLX_OK);
    lsn_accept(&l, &s);
    drive(both, 2);
    print_message("client: %s\nserver: %s\n", c.err.msg, s.err.msg);
    assert_int_equal(c.rc, PLX_EAUTH);
    assert_non_null(strstr(c.err.msg, "certificate fingerprint mismatch"));
    assert_non_null(strstr(c.err.msg, fp_b));   /* expected */
    assert_non_null(strstr(c.err.msg, fp_a));   /* got */
    assert_non_null(strstr(c.err.msg, "man-in-the-middle"));
    assert_int_equal(s.rc, PLX_EPROTO);
    assert_non_null(strstr(s.err.msg, "refused this controller's certificate"));
    /* Nothing more goes through either end. */
    assert_int_equal(tls->handshake(c.conn, &c.err), PLX_EAUTH);
    end_close(&c);
    end_close(&s);
    lsn_close(&l);
}

/* No fingerprint and no CA, or a malformed fingerprint: refused at once. */
static void test_connect_needs_pin_or_ca(void **state)
{
    static const char *bad[] = { "sha256:abc", "md5:00", "zz", "sha256:" };
    plx_security none = { 0 };
    plx_err_t err = { 0 };
    void *conn = NULL;
    int fd = -1;

    assert_int_equal(tls->connect("127.0.0.1", 9, NULL, &conn, &fd, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "plx+tls needs a #sha256= fingerprint or a CA file"));
    assert_int_equal(tls->connect("127.0.0.1", 9, &none, &conn, &fd, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "needs a #sha256= fingerprint or a CA file"));
    assert_null(conn);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        plx_security sec = { .fingerprint = bad[i] };
        assert_int_equal(tls->connect("127.0.0.1", 9, &sec, &conn, &fd, &err), PLX_EINVAL);
        assert_non_null(strstr(err.msg, "bad certificate fingerprint"));
    }
    {
        char longer[80];
        plx_security sec = { .fingerprint = longer };
        snprintf(longer, sizeof longer, "%s00", fp_a);
        assert_int_equal(tls->connect("127.0.0.1", 9, &sec, &conn, &fd, &err), PLX_EINVAL);
    }
    assert_null(conn);
}

/* Listening needs a readable certificate and its own key. */
static void test_listen_needs_identity(void **state)
{
    plx_security none = { 0 }, missing = { .cert_file = "/nonexistent/c.pem", .key_file = key_a },
                 mixed = { .cert_file = cert_a, .key_file = key_b };
    plx_err_t err = { 0 };
    void *l = NULL;
    int fd;
    uint16_t port;

    assert_int_equal(tls->listen("127.0.0.1", 0, NULL, &l, &fd, &port, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "needs a certificate and a key"));
    assert_int_equal(tls->listen("127.0.0.1", 0, &none, &l, &fd, &port, &err), PLX_EINVAL);
    assert_int_equal(tls->listen("127.0.0.1", 0, &missing, &l, &fd, &port, &err), PLX_ENOTFOUND);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "/nonexistent/c.pem"));
    assert_non_null(strstr(err.msg, "SSL_CTX_use_certificate_chain_file"));
    assert_non_null(strstr(err.msg, "error:"));
    assert_int_equal(tls->listen("127.0.0.1", 0, &mixed, &l, &fd, &port, &err), PLX_EINVAL);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, key_b));
    assert_non_null(strstr(err.msg, "SSL_CTX_use_PrivateKey_file"));
    assert_null(l);
}

/* A plaintext plexa client on the TLS port is named as such; the client
 * sees its connection end (EOF or reset), not a hang. */
static void plaintext_to_tls(const char *bytes, size_t len, const char *expect)
{
    lsn l;
    end c, s, *cp = &c, *sp = &s;
    int rc;

    lsn_open(&l, tls, cert_a, key_a);
    assert_int_equal(end_connect(&c, tcp, l.port, NULL), PLX_OK);
    drive(&cp, 1);
    assert_int_equal(c.rc, PLX_OK);
    lsn_accept(&l, &s);
    send_all(&c, bytes, len);
    drive(&sp, 1);
    print_message("server: %s\n", s.err.msg);
    assert_int_equal(s.rc, PLX_EPROTO);
    assert_non_null(strstr(s.err.msg, expect));
    end_close(&s);
    rc = recv_until_error(&c);
    print_message("client: %s\n", c.err.msg);
    assert_true(rc == PLX_ECLOSED || rc == PLX_EIO);
    end_close(&c);
    lsn_close(&l);
}

static void test_plaintext_plexa_client_to_tls(void **state)
{
    static const char frame[] = "PLX1\0\0\0\x10\0\0\0\0envelope-bytes..";

    plaintext_to_tls(frame, sizeof frame - 1, "a plaintext plexa client connected to the TLS port");
}

static void test_http_client_to_tls(void **state)
{
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";

    plaintext_to_tls(req, sizeof req - 1, "does not speak TLS (it sent 'GET '");
}

/* A TLS client on a plain tcp port: the server reads the hello, then
 * answers (if reply is not NULL) and hangs up, as a plexa controller
 * does with a frame that does not start with PLX1. */
static void tls_to_plain(const char *reply, size_t len, const char *expect)
{
    int64_t deadline = now_ms() + DEADLINE_MS;
    plx_security sec;
    char pin[80], hello[5];
    lsn l;
    end c, s, *cp = &c;

    lsn_open(&l, tcp, NULL, NULL);
    pin_sec(&sec, pin, fp_a);
    assert_int_equal(end_connect(&c, tls, l.port, &sec), PLX_OK);
    lsn_accept(&l, &s);
    while ((c.rc = tls->handshake(c.conn, &c.err)) == PLX_EAGAIN &&
           tls->want(c.conn) == PLX_WANT_WRITE)
        wait_fd(c.fd, PLX_WANT_WRITE, deadline);
    recv_all(&s, hello, sizeof hello);
    assert_int_equal((unsigned char)hello[0], 0x16);   /* a TLS handshake record */
    if (reply != NULL)
        send_all(&s, reply, len);
    end_close(&s);
    drive(&cp, 1);
    print_message("client: %s\n", c.err.msg);
    assert_int_equal(c.rc, PLX_EPROTO);
    assert_non_null(strstr(c.err.msg, expect));
    end_close(&c);
    lsn_close(&l);
}

static void test_tls_client_to_plain_port_hangs_up(void **state)
{
    tls_to_plain(NULL, 0, "does not speak TLS");
}

static void test_tls_client_to_plain_port_answers(void **state)
{
    static const char frame[] = "PLX1\0\0\0\x04\0\0\0\0oops";

    tls_to_plain(frame, sizeof frame - 1, "answered in plaintext plexa, not TLS");
}

/* ---- man in the middle --------------------------------------------------------------- */

typedef struct mitm {
    lsn up, px;    /* the real controller (A); the proxy (B) */
    end c, ps;     /* client -> proxy */
    end pu, us;    /* proxy -> controller */
} mitm;

/* The proxy terminates TLS with its own certificate and opens its own
 * connection to the controller, whose fingerprint is public. */
static void mitm_open(mitm *m, const char *client_pin)
{
    plx_security csec, psec;
    char cpin[80], ppin[80];
    end *all[4] = { &m->c, &m->ps, &m->pu, &m->us };

    lsn_open(&m->up, tls, cert_a, key_a);
    lsn_open(&m->px, tls, cert_b, key_b);
    pin_sec(&csec, cpin, client_pin);
    pin_sec(&psec, ppin, fp_a);
    assert_int_equal(end_connect(&m->c, tls, m->px.port, &csec), PLX_OK);
    lsn_accept(&m->px, &m->ps);
    assert_int_equal(end_connect(&m->pu, tls, m->up.port, &psec), PLX_OK);
    lsn_accept(&m->up, &m->us);
    drive(all, 4);
    assert_int_equal(m->pu.rc, PLX_OK);
    assert_int_equal(m->us.rc, PLX_OK);
}

static void mitm_close(mitm *m)
{
    end_close(&m->c);
    end_close(&m->ps);
    end_close(&m->pu);
    end_close(&m->us);
    lsn_close(&m->px);
    lsn_close(&m->up);
}

/* A client pinning the controller's certificate notices the proxy. */
static void test_mitm_detected_by_pinning(void **state)
{
    mitm m;

    mitm_open(&m, fp_a);
    print_message("client: %s\nproxy: %s\n", m.c.err.msg, m.ps.err.msg);
    assert_int_equal(m.c.rc, PLX_EAUTH);
    assert_non_null(strstr(m.c.err.msg, "fingerprint mismatch"));
    assert_non_null(strstr(m.c.err.msg, fp_b));   /* the proxy's certificate */
    assert_int_not_equal(m.ps.rc, PLX_OK);
    mitm_close(&m);
}

/* Control: the proxy does work, so only the pin stopped it above. */
static void test_mitm_relays_without_the_right_pin(void **state)
{
    char buf[32];
    mitm m;

    mitm_open(&m, fp_b);
    assert_int_equal(m.c.rc, PLX_OK);
    assert_int_equal(m.ps.rc, PLX_OK);
    send_all(&m.c, "PLX1 hello token", 16);
    recv_all(&m.ps, buf, 16);
    send_all(&m.pu, buf, 16);
    recv_all(&m.us, buf, 16);
    assert_memory_equal(buf, "PLX1 hello token", 16);
    mitm_close(&m);
}

/* ---- CA file instead of (or with) a pin ------------------------------------------------ */

static int ca_connect(const char *cert, const char *key, const char *pin, plx_err_t *cerr)
{
    plx_security sec = { .ca_file = ca_cert, .fingerprint = pin };
    lsn l;
    end c, s, *both[2] = { &c, &s };

    lsn_open(&l, tls, cert, key);
    assert_int_equal(end_connect(&c, tls, l.port, &sec), PLX_OK);
    lsn_accept(&l, &s);
    drive(both, 2);
    *cerr = c.err;
    end_close(&c);
    end_close(&s);
    lsn_close(&l);
    return c.rc;
}

static void test_ca_file_mode(void **state)
{
    plx_security missing = { .ca_file = "/nonexistent/ca.pem" };
    plx_err_t err = { 0 };
    void *conn = NULL;
    int fd;

    assert_int_equal(ca_connect(leaf_cert, leaf_key, NULL, &err), PLX_OK);
    assert_int_equal(ca_connect(leaf_cert, leaf_key, leaf_fp, &err), PLX_OK);
    /* Self-signed A is not from the CA. */
    assert_int_equal(ca_connect(cert_a, key_a, NULL, &err), PLX_EAUTH);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "does not verify against CA file"));
    /* Signed by the CA, but for another host. */
    assert_int_equal(ca_connect(far_cert, far_key, NULL, &err), PLX_EAUTH);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "mismatch"));
    /* CA and pin: both must pass. */
    assert_int_equal(ca_connect(leaf_cert, leaf_key, fp_b, &err), PLX_EAUTH);
    assert_non_null(strstr(err.msg, "fingerprint mismatch"));
    assert_int_equal(tls->connect("127.0.0.1", 9, &missing, &conn, &fd, &err), PLX_ENOTFOUND);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
    assert_null(conn);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handshake_pinned),
    cmocka_unit_test(test_pin_spellings),
    cmocka_unit_test(test_10mb_both_ways),
    cmocka_unit_test(test_large_recv_into_fresh_pages),
    cmocka_unit_test(test_faults_and_key_updates),
    cmocka_unit_test(test_pending_after_handshake),
    cmocka_unit_test(test_eof_without_close_notify),
    cmocka_unit_test(test_wrong_fingerprint),
    cmocka_unit_test(test_connect_needs_pin_or_ca),
    cmocka_unit_test(test_listen_needs_identity),
    cmocka_unit_test(test_plaintext_plexa_client_to_tls),
    cmocka_unit_test(test_http_client_to_tls),
    cmocka_unit_test(test_tls_client_to_plain_port_hangs_up),
    cmocka_unit_test(test_tls_client_to_plain_port_answers),
    cmocka_unit_test(test_mitm_detected_by_pinning),
    cmocka_unit_test(test_mitm_relays_without_the_right_pin),
    cmocka_unit_test(test_ca_file_mode),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("tls", tests, group_setup, group_teardown))
