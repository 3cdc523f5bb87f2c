/*
 * Tests of plugins/transport-tls, loaded through the plugin loader exactly
 * as the core loads it, against itself and against transport-tcp. Both
 * ends of each connection are driven from one poll() loop, as the core's
 * event loop would (tls_ends.c; every wait bounded). Behaviour only: the
 * plugin's bandwidth and round trips against tcp's are measured by
 * bench/tls_stream (bench/README.md). Certificates: tls_fixture.h.
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
#include "tls_ends.h"
#include "tls_fixture.h"
#include "tls_testcerts.h"

static int group_setup(void **state)
{
    return tls_fixture_setup("tls", true);
}

static int group_teardown(void **state)
{
    return tls_fixture_teardown();
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
