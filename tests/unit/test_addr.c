/*
 * core/net's addresses (plx_addr.h): which are loopback, and where a
 * connected socket leaves from (a real loopback TCP pair and a Unix
 * socket pair).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "plx_test.h"
#include "plx_addr.h"
#include "plexa/error.h"

static void test_loopback(void **state)
{
    (void)state;
    const char *yes[] = { "127.0.0.1", "127.1.2.3", "::1", "localhost", "", NULL };
    const char *no[] = { "10.0.0.1", "128.0.0.1", "::2", "fe80::1", "login", "1.127.0.0" };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        assert_true(plx_addr_is_loopback(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        assert_false(plx_addr_is_loopback(no[i]));
}

static void test_local_host(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t al = sizeof a;
    inet_pton(AF_INET, "127.0.0.7", &a.sin_addr);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    char host[64];
    assert_int_equal(plx_sock_local_host(c, host, sizeof host), PLX_OK);
    assert_true(plx_addr_is_loopback(host));   /* where the kernel routes it from */
    int s = accept(l, NULL, NULL);
    assert_int_equal(plx_sock_local_host(s, host, sizeof host), PLX_OK);
    assert_string_equal(host, "127.0.0.7");
    int u[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, u), 0);
    assert_int_equal(plx_sock_local_host(u[0], host, sizeof host), PLX_ENOTFOUND);
    assert_int_equal(plx_sock_local_host(-1, host, sizeof host), PLX_ENOTFOUND);
    close(u[0]);
    close(u[1]);
    close(s);
    close(c);
    close(l);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_loopback),
    cmocka_unit_test(test_local_host),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("addr", tests, NULL, NULL))
