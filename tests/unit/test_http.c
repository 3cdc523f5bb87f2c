/* core/net/plx_http: the status page's small HTTP server, driven over a
 * real loopback socket on a libev loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_http.h"

static char last_path[256], last_query[256], last_auth[256];

static void handler(void *ud, const plx_http_req_t *req, plx_http_resp_t *resp)
{
    (void)ud;
    snprintf(last_path, sizeof last_path, "%s", req->path);
    snprintf(last_query, sizeof last_query, "%s", req->query);
    snprintf(last_auth, sizeof last_auth, "%s", req->auth);
    resp->status = strcmp(req->path, "/ok") == 0 ? 200 : 404;
    resp->type = "text/plain";
    resp->body = strdup("hello\n");
    resp->len = 6;
}

/* Send raw bytes, run the loop until the server closes, return the reply. */
static char *exchange(struct ev_loop *loop, uint16_t port, const char *raw)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(write(fd, raw, strlen(raw)), (ssize_t)strlen(raw));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static char buf[65536];
    size_t have = 0;
    for (int i = 0; i < 20000; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n == 0)
            break;
        if (n > 0)
            have += (size_t)n;
        usleep(100);
    }
    close(fd);
    buf[have] = '\0';
    return buf;
}

static void test_requests(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    plx_err_t err = {0};
    plx_http_t *h = plx_http_new(loop, "127.0.0.1", 0, handler, NULL, &err);
    assert_non_null(h);
    uint16_t port = plx_http_port(h);
    assert_true(port > 0);

    char *r = exchange(loop, port, "GET /ok?token=abc&x=1 HTTP/1.1\r\nHost: h\r\n"
                                   "Authorization: Bearer tok\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Length: 6\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nhello\n"));
    assert_string_equal(last_path, "/ok");
    assert_string_equal(last_query, "token=abc&x=1");
    assert_string_equal(last_auth, "Bearer tok");

    r = exchange(loop, port, "GET /nosuch HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found"));
    r = exchange(loop, port, "POST /ok HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r, "405"));
    r = exchange(loop, port, "garbage\r\n\r\n");
    assert_non_null(strstr(r, "400"));
    char *big = malloc(10000);
    memset(big, 'a', 9999);
    big[9999] = '\0';
    r = exchange(loop, port, big);          /* no end of headers within 8 KiB */
    assert_non_null(strstr(r, "request too large"));
    free(big);
    plx_http_destroy(&h);
    assert_null(h);
    ev_loop_destroy(loop);
}

static void test_query_get(void **state)
{
    (void)state;
    char v[16];
    assert_int_equal(plx_http_query_get("a=1&token=ff00&b=", "token", v, sizeof v), 1);
    assert_string_equal(v, "ff00");
    assert_int_equal(plx_http_query_get("a=1&b=", "b", v, sizeof v), 1);
    assert_string_equal(v, "");
    assert_int_equal(plx_http_query_get("tokenx=1", "token", v, sizeof v), 0);
    assert_int_equal(plx_http_query_get("token=0123456789abcdef0", "token", v, sizeof v), 0);
    assert_int_equal(plx_http_query_get("", "token", v, sizeof v), 0);
}

static void test_bad_address(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    plx_err_t err = {0};
    assert_null(plx_http_new(loop, "not-an-ip", 0, handler, NULL, &err));
    assert_non_null(strstr(err.msg, "'not-an-ip' is not an IPv4 address"));
    ev_loop_destroy(loop);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_requests),
    cmocka_unit_test(test_query_get),
    cmocka_unit_test(test_bad_address),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("http", tests, NULL, NULL))
