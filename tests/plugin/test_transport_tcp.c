/*
 * Tests of plugins/transport-tcp, loaded through the plugin loader exactly
 * as the core loads it. Single-threaded: both ends of each connection are
 * driven from one poll() loop, as the core's event loop would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plx_plugin_loader.h"
#include "transport_ends.h"

static const plx_transport_ops *ops;

typedef struct pair {
    void    *listener;
    int      lfd;
    uint16_t port;
    end      client, server;
} pair;

static int setup(void **state)
{
    plx_err_t err = { 0 };

    ops = plx_transport_find("tcp", &err);
    if (ops == NULL)
        print_error("%s\n", err.msg);
    return ops == NULL ? -1 : 0;
}

/* Accept and handshake a fresh connection from client to listener. */
static void pair_open(pair *p, const char *host)
{
    plx_err_t err = { 0 };
    char peer[128];
    int crc, src = PLX_EAGAIN, rc;

    memset(p, 0, sizeof *p);
    rc = ops->listen(host, 0, NULL, &p->listener, &p->lfd, &p->port, &err);
    if (rc != PLX_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, PLX_OK);
    assert_true(p->port != 0);
    rc = ops->accept(p->listener, &p->server.conn, &p->server.fd, peer, sizeof peer, &err);
    assert_int_equal(rc, PLX_EAGAIN);        /* nobody has connected yet */
    assert_int_equal(ops->connect(host, p->port, NULL, &p->client.conn, &p->client.fd, &err),
                     PLX_OK);
    wait_for(p->lfd, PLX_WANT_READ);
    assert_int_equal(ops->accept(p->listener, &p->server.conn, &p->server.fd, peer,
                                 sizeof peer, &err), PLX_OK);
    assert_non_null(strchr(peer, ':'));
    while ((crc = ops->handshake(p->client.conn, &err)) == PLX_EAGAIN)
        wait_for(p->client.fd, ops->want(p->client.conn));
    assert_int_equal(crc, PLX_OK);
    while ((src = ops->handshake(p->server.conn, &err)) == PLX_EAGAIN)
        wait_for(p->server.fd, ops->want(p->server.conn));
    assert_int_equal(src, PLX_OK);
}

static void pair_close(pair *p)
{
    ops->close(&p->client.conn);
    ops->close(&p->server.conn);
    ops->close_listener(&p->listener);
    assert_null(p->client.conn);
    assert_null(p->listener);
}

/* 10 MB in several iovecs arrives intact; EOF after it. */
static void test_roundtrip_10mb(void **state)
{
    pair p;

    pair_open(&p, "127.0.0.1");
    transfer(ops, &p.client, &p.server, 10u << 20);
    expect_eof(ops, &p.client, &p.server);
    pair_close(&p);
}

/* Spurious EAGAIN and tiny reads/writes (PLX_TCP_FAULT) lose nothing. */
static void test_fault_hook(void **state)
{
    pair p;

    setenv("PLX_TCP_FAULT", "eagain_every=3,short=7001", 1);
    pair_open(&p, "127.0.0.1");
    unsetenv("PLX_TCP_FAULT");
    transfer(ops, &p.client, &p.server, 1u << 20);
    expect_eof(ops, &p.client, &p.server);
    pair_close(&p);
}

/* No host binds loopback only, never all interfaces. */
static void test_default_host_is_loopback(void **state)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    pair p;

    pair_open(&p, NULL);
    assert_int_equal(getsockname(p.lfd, (struct sockaddr *)&sin, &len), 0);
    assert_int_equal(sin.sin_family, AF_INET);
    assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
    transfer(ops, &p.client, &p.server, 4096);
    pair_close(&p);
}

static void test_ipv6_loopback(void **state)
{
    plx_err_t err = { 0 };
    void *l = NULL;
    int fd;
    uint16_t port;
    pair p;

    if (ops->listen("::1", 0, NULL, &l, &fd, &port, &err) != PLX_OK) {
        print_message("no IPv6 loopback here (%s); skipped\n", err.msg);
        skip();
    }
    ops->close_listener(&l);
    pair_open(&p, "::1");
    transfer(ops, &p.client, &p.server, 65536);
    pair_close(&p);
}

/* A closed port is PLX_ECONNECT naming the address, from connect or handshake. */
static void test_connect_refused(void **state)
{
    plx_err_t err = { 0 };
    void *l = NULL, *c = NULL;
    int lfd, fd, rc;
    uint16_t port;

    assert_int_equal(ops->listen("127.0.0.1", 0, NULL, &l, &lfd, &port, &err), PLX_OK);
    ops->close_listener(&l);
    rc = ops->connect("127.0.0.1", port, NULL, &c, &fd, &err);
    if (rc == PLX_OK) {
        while ((rc = ops->handshake(c, &err)) == PLX_EAGAIN)
            wait_for(fd, ops->want(c));
    }
    print_message("%s\n", err.msg);
    assert_int_equal(rc, PLX_ECONNECT);
    assert_non_null(strstr(err.msg, "127.0.0.1"));
    assert_non_null(strstr(err.msg, "refused"));
    ops->close(&c);
    assert_null(c);
}

/* Binding a port in use fails with the address and the reason. */
static void test_listen_in_use(void **state)
{
    plx_err_t err = { 0 };
    void *a = NULL, *b = NULL;
    int fa, fb;
    uint16_t port, port2;

    assert_int_equal(ops->listen("127.0.0.1", 0, NULL, &a, &fa, &port, &err), PLX_OK);
    assert_int_equal(ops->listen("127.0.0.1", port, NULL, &b, &fb, &port2, &err), PLX_EIO);
    assert_non_null(strstr(err.msg, "127.0.0.1"));
    assert_non_null(strstr(err.msg, "in use"));
    ops->close_listener(&a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_roundtrip_10mb),
    cmocka_unit_test(test_fault_hook),
    cmocka_unit_test(test_default_host_is_loopback),
    cmocka_unit_test(test_ipv6_loopback),
    cmocka_unit_test(test_connect_refused),
    cmocka_unit_test(test_listen_in_use),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("transport_tcp", tests, setup, NULL))
