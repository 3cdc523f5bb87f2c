/* Both ends of a transport connection on one poll loop; see transport_ends.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "transport_ends.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

void wait_for(int fd, int want)
{
    struct pollfd pfd = { .fd = fd, .events = (want & PLX_WANT_WRITE) ? POLLOUT : POLLIN };
    assert_true(poll(&pfd, 1, 5000) > 0);
}

int iov_advance(struct iovec *iov, int first, int cnt, size_t n)
{
    while (first < cnt && n >= iov[first].iov_len) {
        n -= iov[first].iov_len;
        first++;
    }
    if (first < cnt) {
        iov[first].iov_base = (char *)iov[first].iov_base + n;
        iov[first].iov_len -= n;
    }
    return first;
}

int transfer(const plx_transport_ops *ops, end *client, end *server, size_t size)
{
    unsigned char *src = malloc(size), *dst = malloc(size);
    size_t cuts[] = { 1, size / 3, size / 2 + 7, size };
    struct iovec iov[4];
    size_t got = 0, sent = 0;
    int first = 0, partial = 0;
    plx_err_t err = { 0 };

    assert_non_null(src);
    assert_non_null(dst);
    for (size_t i = 0; i < size; i++)
        src[i] = (unsigned char)(i * 131 + (i >> 13));
    for (int i = 0; i < 4; i++) {
        iov[i].iov_base = src + (i ? cuts[i - 1] : 0);
        iov[i].iov_len = cuts[i] - (i ? cuts[i - 1] : 0);
    }
    while (got < size) {
        struct pollfd pfd[2] = {
            { .fd = server->fd, .events = POLLIN },
            { .fd = client->fd, .events = first < 4 ? POLLOUT : 0 },
        };
        size_t n = 0;
        int rc;
        assert_true(poll(pfd, 2, 5000) > 0);
        if (first < 4) {
            rc = ops->sendv(client->conn, iov + first, 4 - first, &n, &err);
            assert_true(rc == PLX_OK || rc == PLX_EAGAIN);
            if (rc == PLX_EAGAIN)
                assert_int_equal(ops->want(client->conn), PLX_WANT_WRITE);
            if (rc == PLX_OK && sent + n < size)
                partial++;
            sent += n;
            first = iov_advance(iov, first, 4, n);
        }
        rc = ops->recv(server->conn, dst + got, size - got, &n, &err);
        assert_true(rc == PLX_OK || rc == PLX_EAGAIN);
        if (rc == PLX_EAGAIN)
            assert_int_equal(ops->want(server->conn), PLX_WANT_READ);
        got += n;
    }
    assert_int_equal(sent, size);
    assert_int_equal(memcmp(src, dst, size), 0);
    free(src);
    free(dst);
    return partial;
}

void expect_eof(const plx_transport_ops *ops, end *client, end *server)
{
    plx_err_t err = { 0 };
    char buf[16];
    size_t n = 99;
    int rc;

    ops->close(&client->conn);
    while ((rc = ops->recv(server->conn, buf, sizeof buf, &n, &err)) == PLX_EAGAIN)
        wait_for(server->fd, ops->want(server->conn));
    assert_int_equal(rc, PLX_ECLOSED);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, "closed"));
}
