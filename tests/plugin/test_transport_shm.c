/*
 * Tests of plugins/transport-shm, loaded through the plugin loader exactly
 * as the core loads it: byte streams over abstract Unix sockets, memfd
 * descriptors passed beside the bytes (and when they arrive), the uid
 * check in both directions, a peer killed mid-transfer, and core/net's
 * listener serving the next connection right after a refused one.
 *
 * Both ends of a connection are driven from one poll() loop, as the core's
 * event loop would; other uids are forked children (setuid 65534, so those
 * tests need root and skip otherwise). Socket names carry this process's
 * pid: the abstract namespace is shared by the whole host. "Nothing leaks"
 * is checked by counting /proc/self/fd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <dirent.h>
#include <ev.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plx_listener.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "transport_ends.h"

#define NOBODY 65534

static const plx_transport_ops *ops;

typedef struct pair {
    char  name[64];
    void *listener;
    int   lfd;
    end   client, server;
} pair;

static int setup(void **state)
{
    plx_err_t err = { 0 };

    ops = plx_transport_find("shm", &err);
    if (ops == NULL)
        print_error("%s\n", err.msg);
    return ops == NULL ? -1 : 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* A name no other test run on this host uses. */
static void fresh_name(char *out, size_t len)
{
    static int seq;

    snprintf(out, len, "plx-test-shm-%d-%d", (int)getpid(), seq++);
}

/* Open descriptors of this process. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the directory's own */
}

static void require_root(void)
{
    if (geteuid() != 0) {
        print_message("not root: cannot run a peer under another uid; skipped\n");
        skip();
    }
}

/* In a forked child, after any change of uid (which clears it): die
 * with the test program, even if a failed test never kills this child. */
static void die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(9);
}

/* In a forked child: become nobody. */
static int become_nobody(pid_t parent)
{
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
        return -1;
    die_with_parent(parent);
    return 0;
}

static void pair_open(pair *p)
{
    plx_err_t err = { 0 };
    char peer[64], want[64];
    int rc;

    memset(p, 0, sizeof *p);
    fresh_name(p->name, sizeof p->name);
    uint16_t port = 99;
    rc = ops->listen(p->name, 7, NULL, &p->listener, &p->lfd, &port, &err);
    if (rc != PLX_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, PLX_OK);
    assert_int_equal(port, 0);
    rc = ops->accept(p->listener, &p->server.conn, &p->server.fd, peer, sizeof peer, &err);
    assert_int_equal(rc, PLX_EAGAIN);        /* nobody has connected yet */
    assert_int_equal(ops->connect(p->name, 0, NULL, &p->client.conn, &p->client.fd, &err),
                     PLX_OK);
    wait_for(p->lfd, PLX_WANT_READ);
    assert_int_equal(ops->accept(p->listener, &p->server.conn, &p->server.fd, peer,
                                 sizeof peer, &err), PLX_OK);
    snprintf(want, sizeof want, "shm:pid=%d", (int)getpid());
    assert_string_equal(peer, want);
    assert_int_equal(ops->handshake(p->client.conn, &err), PLX_OK);
    assert_int_equal(ops->handshake(p->server.conn, &err), PLX_OK);
}

static void pair_close(pair *p)
{
    ops->close(&p->client.conn);
    ops->close(&p->server.conn);
    ops->close_listener(&p->listener);
    assert_null(p->client.conn);
    assert_null(p->server.conn);
    assert_null(p->listener);
}

static void pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131 + (i >> 13) + seed * 7);
}

/* A memfd of size bytes holding pattern(seed). */
static int memfd_with(size_t size, unsigned seed)
{
    unsigned char *buf = malloc(size);
    int fd = memfd_create("plx-test-shm", MFD_CLOEXEC);

    assert_non_null(buf);
    assert_true(fd >= 0);
    pattern(buf, size, seed);
    assert_int_equal(write(fd, buf, size), (ssize_t)size);
    free(buf);
    return fd;
}

/* fd (received) is a memfd of size bytes holding pattern(seed), close-on-exec. */
static void check_memfd(int fd, size_t size, unsigned seed)
{
    unsigned char *want = malloc(size);
    struct stat st;
    void *map;

    assert_non_null(want);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, (off_t)size);
    map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    pattern(want, size, seed);
    assert_int_equal(memcmp(map, want, size), 0);
    munmap(map, size);
    free(want);
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* One read of e that returns bytes (each wait bounded), with the
 * descriptors that came with them. */
static size_t read_some(end *e, unsigned char *buf, size_t cap, int *fds, int *nfds)
{
    plx_err_t err = { 0 };
    size_t n = 0;
    int rc, got = 0;

    do {
        wait_for(e->fd, PLX_WANT_READ);
        rc = ops->recv_fds(e->conn, buf, cap, &n, fds, PLX_TRANSPORT_MAX_FDS, &got, &err);
        if (rc != PLX_OK && rc != PLX_EAGAIN)
            print_error("%s\n", err.msg);
        assert_true(rc == PLX_OK || rc == PLX_EAGAIN);
    } while (rc == PLX_EAGAIN);
    *nfds = got;
    return n;
}

/* ---- 1: bytes ------------------------------------------------------------- */

/* 12 MiB in several iovecs, more than the socket buffers asked for (a
 * kernel gives at most twice SHM_SOCKBUF), arrive intact through partial
 * writes; EOF after. */
static void test_roundtrip_12mb(void **state)
{
    int before = count_fds();
    pair p;

    pair_open(&p);
    assert_int_equal(ops->pending(p.server.conn), 0);
    assert_true(transfer(ops, &p.client, &p.server, 12u << 20) > 0);
    expect_eof(ops, &p.client, &p.server);
    pair_close(&p);
    assert_int_equal(count_fds(), before);
}

/* ---- 2: descriptors ------------------------------------------------------- */

/* Three memfds with a header: the same regions arrive, close-on-exec, as
 * new descriptors, and a write through one is seen through the original. */
static void test_pass_memfds(void **state)
{
    static const size_t sizes[3] = { 4096, 1u << 20, 10 };
    unsigned char head[100], buf[4096];
    int sent[3], got[PLX_TRANSPORT_MAX_FDS], nfds, before = count_fds();
    struct iovec iov = { head, sizeof head };
    plx_err_t err = { 0 };
    size_t n = 0;
    pair p;

    pair_open(&p);
    for (int i = 0; i < 3; i++)
        sent[i] = memfd_with(sizes[i], 10u + (unsigned)i);
    pattern(head, sizeof head, 5);
    assert_int_equal(ops->sendv_fds(p.client.conn, &iov, 1, sent, 3, &n, &err), PLX_OK);
    assert_int_equal(n, sizeof head);
    assert_int_equal(read_some(&p.server, buf, sizeof buf, got, &nfds), sizeof head);
    assert_int_equal(memcmp(buf, head, sizeof head), 0);
    assert_int_equal(nfds, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(got[i] != sent[i]);
        check_memfd(got[i], sizes[i], 10u + (unsigned)i);
    }
    /* One region, two descriptors. */
    unsigned char *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, got[0], 0), c;
    assert_true(w != MAP_FAILED);
    w[17] = 0xA5;
    munmap(w, 4096);
    assert_int_equal(pread(sent[0], &c, 1, 17), 1);
    assert_int_equal(c, 0xA5);
    close_all(got, nfds);
    close_all(sent, 3);
    pair_close(&p);
    assert_int_equal(count_fds(), before);
}

/* PLX_TRANSPORT_MAX_FDS in one call arrive in one read; one more is
 * refused before anything is written, as are descriptors with no byte. */
static void test_fd_limits(void **state)
{
    int dups[PLX_TRANSPORT_MAX_FDS + 1], got[PLX_TRANSPORT_MAX_FDS], nfds;
    int before = count_fds(), mfd = memfd_with(64, 3);
    unsigned char b = 'x', buf[16];
    struct iovec iov = { &b, 1 }, none = { &b, 0 };
    plx_err_t err = { 0 };
    size_t n = 99;
    pair p;

    pair_open(&p);
    for (int i = 0; i <= PLX_TRANSPORT_MAX_FDS; i++)
        dups[i] = mfd;
    assert_int_equal(ops->sendv_fds(p.client.conn, &iov, 1, dups, PLX_TRANSPORT_MAX_FDS + 1,
                                    &n, &err), PLX_EINVAL);
    assert_int_equal(n, 0);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "at most"));
    assert_int_equal(ops->sendv_fds(p.client.conn, &none, 1, dups, 1, &n, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "at least one byte"));
    assert_int_equal(ops->sendv_fds(p.client.conn, &iov, 1, dups, -1, &n, &err), PLX_EINVAL);
    /* Nothing of those reached the reader. */
    assert_int_equal(ops->recv_fds(p.server.conn, buf, sizeof buf, &n, got,
                                   PLX_TRANSPORT_MAX_FDS, &nfds, &err), PLX_EAGAIN);
    assert_int_equal(ops->sendv_fds(p.client.conn, &iov, 1, dups, PLX_TRANSPORT_MAX_FDS, &n,
                                    &err), PLX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(read_some(&p.server, buf, sizeof buf, got, &nfds), 1);
    assert_int_equal(nfds, PLX_TRANSPORT_MAX_FDS);
    check_memfd(got[PLX_TRANSPORT_MAX_FDS - 1], 64, 3);
    close_all(got, nfds);
    close(mfd);
    pair_close(&p);
    assert_int_equal(count_fds(), before);
}

/* The contract the core relies on: a write's descriptors come with the
 * read that returns its first byte, also when the write is split into
 * partial writes, and the descriptors of two writes never share a read. */
static void test_fds_travel_with_their_bytes(void **state)
{
    enum { SMALL = 100, BIG = 3u << 20 };
    size_t total = 3 * SMALL + BIG, starts[3] = { SMALL, 2 * SMALL, 3 * SMALL };
    unsigned char *src = malloc(total), *dst = malloc(total);
    int fd[3] = { memfd_with(4096, 1), memfd_with(8192, 2), memfd_with(12288, 3) };
    int before = count_fds() - 3, arrived = 0;
    size_t got = 0, sent = 0;
    plx_err_t err = { 0 };
    pair p;

    assert_non_null(src);
    assert_non_null(dst);
    pattern(src, total, 9);
    pair_open(&p);
    /* Writes: [SMALL][SMALL + fd0][SMALL + fd1][BIG + fd2], the last one
     * partial many times over. */
    while (got < total) {
        size_t n = 0;
        int rfd[PLX_TRANSPORT_MAX_FDS], nfds = 0, rc;
        if (sent < total) {
            size_t stop = sent < SMALL ? SMALL : sent < 2 * SMALL ? 2 * SMALL
                         : sent < 3 * SMALL ? 3 * SMALL : total;
            int which = -1;
            for (int i = 0; i < 3; i++)
                if (sent == starts[i])
                    which = i;
            struct iovec iov = { src + sent, stop - sent };
            rc = ops->sendv_fds(p.client.conn, &iov, 1, which >= 0 ? &fd[which] : NULL,
                                which >= 0 ? 1 : 0, &n, &err);
            assert_true(rc == PLX_OK || rc == PLX_EAGAIN);
            sent += n;
        }
        rc = ops->recv_fds(p.server.conn, dst + got, total - got, &n, rfd,
                           PLX_TRANSPORT_MAX_FDS, &nfds, &err);
        assert_true(rc == PLX_OK || rc == PLX_EAGAIN);
        assert_true(nfds <= 1);
        if (nfds == 1) {
            /* Which write's descriptor: told apart by its size. */
            struct stat st;
            assert_int_equal(fstat(rfd[0], &st), 0);
            int which = (int)(st.st_size / 4096) - 1;
            assert_int_equal(which, arrived);
            assert_true(got <= starts[which] && starts[which] < got + n);
            check_memfd(rfd[0], (size_t)st.st_size, (unsigned)which + 1);
            close(rfd[0]);
            arrived++;
        }
        got += n;
        if (rc == PLX_EAGAIN) {
            struct pollfd pfd[2] = {
                { .fd = p.server.fd, .events = POLLIN },
                { .fd = p.client.fd, .events = sent < total ? POLLOUT : 0 },
            };
            assert_true(poll(pfd, 2, 5000) > 0);
        }
    }
    assert_int_equal(arrived, 3);
    assert_int_equal(memcmp(src, dst, total), 0);
    close_all(fd, 3);
    pair_close(&p);
    assert_int_equal(count_fds(), before);
    free(src);
    free(dst);
}

/* A raw client of name, to send what the plugin would refuse to. */
static int raw_connect(const char *name)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(s >= 0);
    memcpy(sun.sun_path + 1, name, strlen(name));
    assert_int_equal(connect(s, (struct sockaddr *)&sun,
                             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                                         strlen(name))), 0);
    return s;
}

/* Send one byte with n copies of fd over raw socket s. */
static void raw_send_fds(int s, int fd, int n)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 100)];
    } cbuf;
    char b = 'z';
    struct iovec iov = { &b, 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                          .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

    assert_true(n <= 100);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        memcpy(CMSG_DATA(cm) + i * sizeof(int), &fd, sizeof fd);
    assert_int_equal(sendmsg(s, &msg, 0), 1);
}

/* Reading one chunk that brings descriptors the read cannot take fails
 * with PLX_EPROTO naming the peer, and closes every one. */
static void expect_refused_fds(pair *p, int raw, int sendn, bool with_fds, int maxfds,
                               const char *why)
{
    int mfd = memfd_with(16, 4), got[PLX_TRANSPORT_MAX_FDS], nfds = 99, rc;
    int before = count_fds();
    plx_err_t err = { 0 };
    unsigned char buf[16];
    size_t n = 0;

    raw_send_fds(raw, mfd, sendn);
    wait_for(p->server.fd, PLX_WANT_READ);
    rc = with_fds ? ops->recv_fds(p->server.conn, buf, sizeof buf, &n, got, maxfds, &nfds, &err)
                  : ops->recv(p->server.conn, buf, sizeof buf, &n, &err);
    print_message("%s\n", err.msg);
    assert_int_equal(rc, PLX_EPROTO);
    assert_non_null(strstr(err.msg, why));
    assert_non_null(strstr(err.msg, "pid "));
    if (with_fds)
        assert_int_equal(nfds, 0);
    assert_int_equal(count_fds(), before);
    close(mfd);
}

static void test_unwanted_fds_closed(void **state)
{
    int before = count_fds(), raw, rc;
    plx_err_t err = { 0 };
    char peer[64];
    pair p;

    memset(&p, 0, sizeof p);
    fresh_name(p.name, sizeof p.name);
    assert_int_equal(ops->listen(p.name, 0, NULL, &p.listener, &p.lfd, NULL, &err), PLX_OK);
    raw = raw_connect(p.name);
    rc = ops->accept(p.listener, &p.server.conn, &p.server.fd, peer, sizeof peer, &err);
    assert_int_equal(rc, PLX_OK);
    /* Plain recv takes none; recv_fds with room for 2 gets 3; and more
     * than PLX_TRANSPORT_MAX_FDS truncate the control data. */
    expect_refused_fds(&p, raw, 2, false, 0, "takes none");
    expect_refused_fds(&p, raw, 3, true, 2, "more file descriptors");
    expect_refused_fds(&p, raw, PLX_TRANSPORT_MAX_FDS + 6, true, PLX_TRANSPORT_MAX_FDS,
                       "more file descriptors");
    close(raw);
    pair_close(&p);
    assert_int_equal(count_fds(), before);
}

/* ---- 3: the uid check ----------------------------------------------------- */

/* A child connects as nobody and finds the listener is root's (PLX_EAUTH
 * on its side); our accept refuses it naming uid and pid, then serves a
 * same-uid connection queued behind it. */
static void test_refuse_other_uid(void **state)
{
    char name[64], peer[64], want[128];
    plx_err_t err = { 0 };
    void *l = NULL, *c = NULL, *s = NULL;
    int lfd, cfd, sfd, status;
    pid_t pid;

    require_root();
    fresh_name(name, sizeof name);
    assert_int_equal(ops->listen(name, 0, NULL, &l, &lfd, NULL, &err), PLX_OK);
    pid_t parent = getpid();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *cc = NULL;
        int fd, rc;
        if (become_nobody(parent) != 0)
            _exit(3);
        rc = ops->connect(name, 0, NULL, &cc, &fd, &err);
        _exit(rc == PLX_EAUTH && strstr(err.msg, "belongs to uid 0") && cc == NULL ? 0 : 2);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(ops->connect(name, 0, NULL, &c, &cfd, &err), PLX_OK);

    assert_int_equal(ops->accept(l, &s, &sfd, peer, sizeof peer, &err), PLX_EAUTH);
    print_message("%s\n", err.msg);
    assert_null(s);
    snprintf(want, sizeof want, "refused a connection from uid %d (pid %d) on @%s: only uid 0",
             NOBODY, (int)pid, name);
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(ops->accept(l, &s, &sfd, peer, sizeof peer, &err), PLX_OK);
    assert_int_equal(ops->accept(l, &s, &sfd, peer, sizeof peer, &err), PLX_EAGAIN);
    ops->close(&s);
    ops->close(&c);
    ops->close_listener(&l);
}

/* A listener owned by nobody is refused by our connect, leaving nothing open. */
static void test_refuse_listener_of_other_uid(void **state)
{
    char name[64], want[128], b;
    plx_err_t err = { 0 };
    int ready[2], fd = -1, before, status;
    void *c = NULL;
    pid_t pid;

    require_root();
    fresh_name(name, sizeof name);
    assert_int_equal(pipe(ready), 0);
    pid_t parent = getpid();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *l = NULL;
        int lfd;
        close(ready[0]);
        if (become_nobody(parent) != 0 ||
            ops->listen(name, 0, NULL, &l, &lfd, NULL, &err) != PLX_OK)
            _exit(2);
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        pause();   /* until killed */
        _exit(0);
    }
    close(ready[1]);
    assert_int_equal(read(ready[0], &b, 1), 1);
    close(ready[0]);
    before = count_fds();
    assert_int_equal(ops->connect(name, 0, NULL, &c, &fd, &err), PLX_EAUTH);
    print_message("%s\n", err.msg);
    snprintf(want, sizeof want, "@%s belongs to uid %d, not to us (uid 0)", name, NOBODY);
    assert_non_null(strstr(err.msg, want));
    assert_null(c);
    assert_int_equal(count_fds(), before);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void count_accept(plx_listener_t *l, void *handle, int fd, const char *peer, void *ud)
{
    (*(int *)ud)++;
    ops->close(&handle);
}

static void wake(struct ev_loop *loop, ev_timer *w, int revents)
{
}

/* core/net's listener over shm: a refused peer is logged as a warning and
 * the connection queued behind it is served in the same turn, without the
 * pause that other accept errors cause. */
static void test_listener_serves_past_refusal(void **state)
{
    char name[64], line[PLX_LOG_RECENT_MAX][PLX_LOG_RECENT_LEN], want[64];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    plx_err_t err = { 0 };
    plx_listener_t *lis;
    int accepted = 0, fd, status;
    bool logged = false;
    ev_timer guard;
    void *c = NULL;
    pid_t pid;

    require_root();
    assert_non_null(loop);
    fresh_name(name, sizeof name);
    lis = plx_listener_new(loop, ops, name, 0, NULL, count_accept, &accepted, &err);
    assert_non_null(lis);
    pid_t parent = getpid();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *cc = NULL;
        int cfd;
        if (become_nobody(parent) != 0)
            _exit(3);
        _exit(ops->connect(name, 0, NULL, &cc, &cfd, &err) == PLX_EAUTH ? 0 : 2);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(ops->connect(name, 0, NULL, &c, &fd, &err), PLX_OK);

    ev_timer_init(&guard, wake, 5., 0.);   /* never wait for ever */
    ev_timer_start(loop, &guard);
    ev_run(loop, EVRUN_ONCE);
    assert_int_equal(accepted, 1);
    snprintf(want, sizeof want, "uid %d (pid %d)", NOBODY, (int)pid);
    for (size_t i = 0, n = plx_log_recent(line, PLX_LOG_RECENT_MAX); i < n; i++)
        logged |= strstr(line[i], want) != NULL && strstr(line[i], "WARN") != NULL;
    assert_true(logged);
    ev_timer_stop(loop, &guard);
    ops->close(&c);
    plx_listener_destroy(&lis);
    ev_loop_destroy(loop);
}

/* ---- 4: a peer killed mid-transfer ---------------------------------------- */

/* A child sends memfds with the start of a big write, fills the socket,
 * and is killed: we read every byte it wrote, then PLX_ECLOSED, and once
 * the received descriptors are closed we hold no more than before. */
static void test_peer_killed(void **state)
{
    enum { BIG = 16u << 20 };
    int before = count_fds(), report[2], fds[PLX_TRANSPORT_MAX_FDS], nfds = 0, status, rc;
    unsigned char *buf = malloc(BIG), *want = malloc(BIG);
    char name[64], peer[64];
    size_t total = 0, got = 0;
    plx_err_t err = { 0 };
    void *l = NULL, *s = NULL;
    int lfd, sfd;
    pid_t pid;

    assert_non_null(buf);
    assert_non_null(want);
    pattern(want, BIG, 6);
    fresh_name(name, sizeof name);
    assert_int_equal(ops->listen(name, 0, NULL, &l, &lfd, NULL, &err), PLX_OK);
    assert_int_equal(pipe(report), 0);
    pid_t parent = getpid();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        die_with_parent(parent);
        int cfd, mfd[2] = { memfd_with(4096, 1), memfd_with(8192, 2) };
        struct iovec iov = { want, BIG };
        void *c = NULL;
        size_t n = 0, sent = 0;
        close(report[0]);
        if (ops->connect(name, 0, NULL, &c, &cfd, &err) != PLX_OK)
            _exit(2);
        while ((rc = ops->sendv_fds(c, &iov, 1, sent ? NULL : mfd, sent ? 0 : 2, &n,
                                    &err)) == PLX_OK && n > 0 && sent + n < BIG) {
            sent += n;
            iov.iov_base = want + sent;
            iov.iov_len = BIG - sent;
        }
        if (rc != PLX_EAGAIN || sent == 0 || write(report[1], &sent, sizeof sent) != sizeof sent)
            _exit(2);
        pause();   /* mid-transfer, until killed */
        _exit(0);
    }
    close(report[1]);
    assert_int_equal(read(report[0], &total, sizeof total), sizeof total);
    close(report[0]);
    assert_true(total > 0 && total < BIG);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    wait_for(lfd, PLX_WANT_READ);
    assert_int_equal(ops->accept(l, &s, &sfd, peer, sizeof peer, &err), PLX_OK);
    for (;;) {
        int rfd[PLX_TRANSPORT_MAX_FDS], k = 0;
        size_t n = 0;
        rc = ops->recv_fds(s, buf + got, BIG - got, &n, rfd, PLX_TRANSPORT_MAX_FDS, &k, &err);
        if (rc == PLX_EAGAIN) {
            wait_for(sfd, PLX_WANT_READ);
            continue;
        }
        if (rc != PLX_OK)
            break;
        assert_true(k == 0 || (got == 0 && k == 2));   /* with the first bytes */
        memcpy(fds, rfd, sizeof(int) * (size_t)k);
        nfds += k;
        got += n;
    }
    print_message("%zu bytes, then: %s\n", got, err.msg);
    assert_int_equal(rc, PLX_ECLOSED);
    assert_int_equal(got, total);
    assert_int_equal(memcmp(buf, want, got), 0);
    assert_int_equal(nfds, 2);
    check_memfd(fds[0], 4096, 1);
    check_memfd(fds[1], 8192, 2);
    close_all(fds, nfds);
    ops->close(&s);
    ops->close_listener(&l);
    assert_int_equal(count_fds(), before);
    free(buf);
    free(want);
}

/* ---- 5: names, and nobody there ------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A name nobody listens on (never used, or closed) fails at once with
 * PLX_ECONNECT naming it, leaving nothing open: the caller falls back. */
static void test_connect_nobody(void **state)
{
    char name[64], at[68];
    plx_err_t err = { 0 };
    void *l = NULL, *c = NULL;
    int lfd, fd = -1, before = count_fds();
    double t0 = now_s();

    fresh_name(name, sizeof name);
    snprintf(at, sizeof at, "@%s", name);
    assert_int_equal(ops->connect(name, 0, NULL, &c, &fd, &err), PLX_ECONNECT);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, at));
    assert_non_null(strstr(err.msg, "nobody listens"));
    assert_null(c);
    assert_true(now_s() - t0 < 1.0);
    assert_int_equal(count_fds(), before);

    assert_int_equal(ops->listen(name, 0, NULL, &l, &lfd, NULL, &err), PLX_OK);
    ops->close_listener(&l);
    assert_int_equal(ops->connect(name, 0, NULL, &c, &fd, &err), PLX_ECONNECT);
    assert_non_null(strstr(err.msg, at));
    assert_int_equal(count_fds(), before);
}

/* Bad names are PLX_EINVAL for listen and connect; 100 characters are fine. */
static void test_bad_names(void **state)
{
    char longest[101], toolong[102];
    const char *bad[] = { NULL, "", "@plx", "a/b", "a b", "tab\there", "\x01", toolong };
    plx_err_t err = { 0 };
    void *h = NULL;
    int fd, before = count_fds();

    memset(longest, 'n', 100);
    longest[100] = '\0';
    memset(toolong, 'n', 101);
    toolong[101] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ops->listen(bad[i], 0, NULL, &h, &fd, NULL, &err), PLX_EINVAL);
        assert_non_null(strstr(err.msg, "bad socket name"));
        assert_null(strchr(err.msg, '\t'));   /* printed safely */
        assert_int_equal(ops->connect(bad[i], 0, NULL, &h, &fd, &err), PLX_EINVAL);
        assert_null(h);
    }
    longest[0] = (char)('a' + getpid() % 26);   /* not another run's */
    snprintf(longest + 1, 12, "%010d", (int)getpid());
    longest[11] = '-';
    assert_int_equal(strlen(longest), 100);
    assert_int_equal(ops->listen(longest, 0, NULL, &h, &fd, NULL, &err), PLX_OK);
    ops->close_listener(&h);
    assert_int_equal(count_fds(), before);
}

/* A name in use fails with the name and the reason. */
static void test_listen_in_use(void **state)
{
    char name[64];
    plx_err_t err = { 0 };
    void *a = NULL, *b = NULL;
    int fa, fb;

    fresh_name(name, sizeof name);
    assert_int_equal(ops->listen(name, 0, NULL, &a, &fa, NULL, &err), PLX_OK);
    assert_int_equal(ops->listen(name, 0, NULL, &b, &fb, NULL, &err), PLX_EIO);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, name));
    assert_non_null(strstr(err.msg, "in use"));
    assert_null(b);
    ops->close_listener(&a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_roundtrip_12mb),
    cmocka_unit_test(test_pass_memfds),
    cmocka_unit_test(test_fd_limits),
    cmocka_unit_test(test_fds_travel_with_their_bytes),
    cmocka_unit_test(test_unwanted_fds_closed),
    cmocka_unit_test(test_refuse_other_uid),
    cmocka_unit_test(test_refuse_listener_of_other_uid),
    cmocka_unit_test(test_listener_serves_past_refusal),
    cmocka_unit_test(test_peer_killed),
    cmocka_unit_test(test_connect_nobody),
    cmocka_unit_test(test_bad_names),
    cmocka_unit_test(test_listen_in_use),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("transport_shm", tests, setup, NULL))
