/*
 * tls_stream: the transport plugins alone on one loopback connection, to
 * show what TLS costs with nothing else of plexa in between (no plx_conn,
 * no event loop, no controller). tests/tls/test_tls.c checks the plugin's
 * behaviour; the figures are this program's, and bench/run reports them
 * among its limits (bench/README.md). Built beside engine-swarm, not
 * installed.
 *
 *   tls_stream [--mb N] [--rtt N] [--plugins DIR]
 *
 * plexa-transport-tcp and plexa-transport-tls are loaded through the plugin
 * loader, as the core loads them: from DIR (--plugins DIR sets
 * PLX_PLUGIN_PATH=DIR), else from PLX_PLUGIN_PATH, else from the build
 * tree's plugin directory this program was built beside. Each transport
 * listens on 127.0.0.1, and for each (tcp, then tls):
 *
 *   stream      N MiB (--mb, default 256, 0 skips) from a sender thread to
 *               a receiver thread over one connection, in frames shaped
 *               like plexa's (12-byte header, 200-byte envelope, 8-byte
 *               buffer length, 4 MiB of payload; the last frame carries
 *               what is left), handed to sendv at most 1024 iovecs at a
 *               time as plx_conn does, read with recvs of 4 MiB. Timed by
 *               the wall clock and by the busier thread's CPU time (what a
 *               machine with an idle core per thread would give).
 *   round trip  a 200-byte message (a small plexa frame: header and
 *               envelope, no buffers) there and back, N times (--rtt,
 *               default 2000, 0 skips) after 100 warm-up ones, between a
 *               client and a server thread: mean, p99, and the client's
 *               CPU time per round trip.
 *
 * The TLS listener needs an identity: plx_cert_ensure makes a key and a
 * certificate in a private temporary directory ($TMPDIR or /tmp), which
 * is removed as soon as the listener has loaded them, before anything is
 * measured (so a Ctrl-C during the measurements leaves nothing behind).
 * Clients pin the certificate's fingerprint, as plexa's do.
 *
 * Output: one JSON object on stdout, a summary on stderr. MB/s are 10^6
 * bytes of payload per second. A part skipped with 0 is null:
 *
 *   {"stream": {"mib": 256, "frame_bytes": 4194304,
 *               "tcp": {"seconds", "mb_per_s", "cpu_mb_per_s",
 *                       "sender_cpu_s", "receiver_cpu_s"}, "tls": {...}},
 *    "round_trip": {"n": 2000, "warmup": 100, "message_bytes": 200,
 *                   "tcp": {"mean_us", "p99_us", "client_cpu_us"},
 *                   "tls": {...}}}
 *
 * Exit status: 0; 1 when something fails (a plugin not found or refused,
 * the certificate, a listener, a handshake, a peer that made no progress
 * for 10 s): the message names the transport and the step; 2 for bad
 * usage.
 *
 * File map: options; time; ends and connections; the identity; two
 * threads (a measurement's halves); the stream; round trips; reporting;
 * main.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "plx_cert.h"
#include "plx_plugin_loader.h"

#define DEADLINE_MS  10000          /* longest wait for any progress */
#define FRAME_DATA   (4u << 20)     /* payload bytes per frame */
#define FRAME_HEAD   12             /* magic + lengths */
#define FRAME_ENV    200            /* an envelope */
#define FRAME_BLEN   8              /* a buffer's length */
#define FRAME_IOV    4
#define MAX_IOV      1024           /* what plx_conn hands sendv at most */
#define RTT_MSG      200
#define RTT_WARMUP   100
#define PATH_LEN     512
#define MiB          (1024.0 * 1024.0)

enum { TCP, TLS, NTRANSPORTS };
static const char *const names[NTRANSPORTS] = { "tcp", "tls" };

/* ---- options ---------------------------------------------------------------- */

typedef struct opts {
    size_t      mib;       /* stream size; 0 skips the stream */
    size_t      rtt;       /* round trips; 0 skips them */
    const char *plugins;   /* --plugins DIR, or NULL */
} opts;

static void usage(FILE *to)
{
    fprintf(to, "usage: tls_stream [--mb N] [--rtt N] [--plugins DIR]\n"
                "  --mb N         MiB streamed over each transport (default 256; 0 skips)\n"
                "  --rtt N        round trips of a %d-byte message (default 2000; 0 skips)\n"
                "  --plugins DIR  where plexa-transport-{tcp,tls}.so are (default:\n"
                "                 PLX_PLUGIN_PATH, else %s)\n"
                "Prints one JSON object on stdout and a summary on stderr.\n",
            RTT_MSG, TLS_STREAM_PLUGIN_DIR);
}

/* A whole decimal number in [0, max]; -1 if optarg is anything else. */
static int parse_count(const char *s, size_t max, size_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > max)
        return -1;
    *out = (size_t)v;
    return 0;
}

/* Fill o from the command line. Returns -1 to go on, or the status to
 * exit with (0 after --help, 2 after a usage error, which it explains). */
static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct option longs[] = {
        { "mb", required_argument, 0, 'm' },      { "rtt", required_argument, 0, 'r' },
        { "plugins", required_argument, 0, 'p' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 }
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if ((ch == 'm' && parse_count(optarg, 1u << 20, &o->mib) == 0) ||
            (ch == 'r' && parse_count(optarg, 10000000, &o->rtt) == 0))
            continue;
        if (ch == 'p') {
            o->plugins = optarg;
            continue;
        }
        if (ch == 'm' || ch == 'r')
            fprintf(stderr, "tls_stream: --%s wants a whole number up to %s, not '%s'\n",
                    ch == 'm' ? "mb" : "rtt", ch == 'm' ? "1048576" : "10000000", optarg);
        usage(ch == 'h' ? stdout : stderr);
        return ch == 'h' ? 0 : 2;
    }
    if (optind < argc) {
        fprintf(stderr, "tls_stream: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

/* ---- time --------------------------------------------------------------------- */

static double clock_s(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static double thread_cpu_s(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

/* ---- ends and connections ----------------------------------------------------- */

typedef struct transport {
    const char              *name;
    const plx_transport_ops *ops;
    void                    *listener;
    int                      lfd;
    uint16_t                 port;
    plx_security             csec;     /* what a client presents (tls: the pin) */
} transport;

typedef struct end {
    const plx_transport_ops *ops;
    void                    *conn;
    int                      fd;
} end;

static short poll_events(int want)
{
    return (short)(((want & PLX_WANT_READ) ? POLLIN : 0) | ((want & PLX_WANT_WRITE) ? POLLOUT : 0));
}

/* Wait until e can go on with what its last op waited for. */
static int end_wait(const end *e, plx_err_t *err)
{
    struct pollfd pfd = { e->fd, poll_events(e->ops->want(e->conn)), 0 };
    int n = poll(&pfd, 1, DEADLINE_MS);

    if (n > 0)
        return PLX_OK;
    if (n == 0)
        return plx_err_set(err, PLX_ETIMEDOUT, "no progress for %d s (the peer stalled)",
                           DEADLINE_MS / 1000);
    return plx_err_set(err, PLX_EIO, "poll: %s", strerror(errno));
}

static void end_close(end *e)
{
    if (e->conn != NULL)
        e->ops->close(&e->conn);
}

/* Send every byte of iov[0..count), at most MAX_IOV iovecs per sendv. The
 * iovecs are consumed in place, so each sendv starts with the bytes not
 * yet reported written, as the plugins require. */
static int send_iov(end *e, struct iovec *iov, size_t count, plx_err_t *err)
{
    size_t first = 0;

    while (first < count) {
        size_t n = 0;
        int cnt = count - first > MAX_IOV ? MAX_IOV : (int)(count - first);
        int rc = e->ops->sendv(e->conn, iov + first, cnt, &n, err);
        if (rc == PLX_EAGAIN)
            rc = end_wait(e, err);
        if (rc != PLX_OK)
            return rc;
        for (; first < count && n >= iov[first].iov_len; first++)
            n -= iov[first].iov_len;
        if (first < count) {
            iov[first].iov_base = (char *)iov[first].iov_base + n;
            iov[first].iov_len -= n;
        }
    }
    return PLX_OK;
}

/* Receive at least one byte, at most len; the count goes to *n. */
static int recv_some(end *e, void *buf, size_t len, size_t *n, plx_err_t *err)
{
    int rc;

    while ((rc = e->ops->recv(e->conn, buf, len, n, err)) == PLX_EAGAIN)
        if ((rc = end_wait(e, err)) != PLX_OK)
            return rc;
    return rc;
}

static int transport_open(transport *t, int which, const plx_security *lsec, plx_err_t *err)
{
    int rc;

    t->name = names[which];
    t->ops = plx_transport_find(t->name, err);
    if (t->ops == NULL)
        return err->code;
    rc = t->ops->listen("127.0.0.1", 0, lsec, &t->listener, &t->lfd, &t->port, err);
    if (rc != PLX_OK)
        plx_err_prefix(err, which == TLS ? "tls listener" : "tcp listener");
    return rc;
}

static void transport_close(transport *t)
{
    if (t->listener != NULL && t->ops->close_listener != NULL)
        t->ops->close_listener(&t->listener);
}

static int pair_accept(transport *t, end *s, plx_err_t *err)
{
    struct pollfd pfd = { t->lfd, POLLIN, 0 };
    int rc;

    s->ops = t->ops;
    while ((rc = t->ops->accept(t->listener, &s->conn, &s->fd, NULL, 0, err)) == PLX_EAGAIN)
        if (poll(&pfd, 1, DEADLINE_MS) <= 0)
            return plx_err_set(err, PLX_ETIMEDOUT, "%s: no connection to accept within %d s",
                               t->name, DEADLINE_MS / 1000);
    return rc;
}

/* One handshake step of e if it is still under way; adds its fd to pfd. */
static int handshake_step(end *e, int rc, plx_err_t *err, struct pollfd *pfd, int *k)
{
    if (rc != PLX_EAGAIN)
        return rc;
    rc = e->ops->handshake(e->conn, err);
    if (rc == PLX_EAGAIN)
        pfd[(*k)++] = (struct pollfd){ e->fd, poll_events(e->ops->want(e->conn)), 0 };
    return rc;
}

/* Drive both handshakes to their end; the first side that fails ends it. */
static int pair_handshake(const transport *t, end *c, end *s, plx_err_t *err)
{
    double deadline = mono_s() + DEADLINE_MS / 1000.0;
    plx_err_t cerr = { 0 }, serr = { 0 };
    int crc = PLX_EAGAIN, src = PLX_EAGAIN;

    while (crc == PLX_EAGAIN || src == PLX_EAGAIN) {
        struct pollfd pfd[2];
        int k = 0, left = (int)((deadline - mono_s()) * 1000);
        crc = handshake_step(c, crc, &cerr, pfd, &k);
        src = handshake_step(s, src, &serr, pfd, &k);
        if ((crc != PLX_OK && crc != PLX_EAGAIN) || (src != PLX_OK && src != PLX_EAGAIN))
            break;
        if (k > 0 && (left <= 0 || poll(pfd, (nfds_t)k, left) <= 0))
            return plx_err_set(err, PLX_ETIMEDOUT, "%s handshake: not done within %d s",
                               t->name, DEADLINE_MS / 1000);
    }
    if (crc != PLX_OK && crc != PLX_EAGAIN)
        return plx_err_set(err, crc, "%s handshake failed: client: %s", t->name, cerr.msg);
    if (src != PLX_OK && src != PLX_EAGAIN)
        return plx_err_set(err, src, "%s handshake failed: server: %s", t->name, serr.msg);
    return PLX_OK;
}

/* A fresh connection to t's listener: client end c, server end s. */
static int pair_open(transport *t, end *c, end *s, plx_err_t *err)
{
    int rc;

    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    c->ops = t->ops;
    rc = t->ops->connect("127.0.0.1", t->port, &t->csec, &c->conn, &c->fd, err);
    if (rc != PLX_OK)
        return plx_err_prefix(err, t->name);
    rc = pair_accept(t, s, err);
    if (rc == PLX_OK)
        rc = pair_handshake(t, c, s, err);
    if (rc != PLX_OK) {
        end_close(c);
        end_close(s);
    }
    return rc;
}

/* ---- the identity --------------------------------------------------------------- */

static void scratch_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlinkat(dirfd(d), de->d_name, 0);
    if (d != NULL)
        closedir(d);
    if (rmdir(dir) != 0)
        fprintf(stderr, "tls_stream: could not remove %s: %s\n", dir, strerror(errno));
}

/* Open t as the TLS listener with a key and certificate made for it, and
 * pin them in t->csec (pin holds the text). */
static int tls_open(transport *t, char pin[80], plx_err_t *err)
{
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_LEN], cert[PATH_LEN], key[PATH_LEN], fp[PLX_CERT_FINGERPRINT_HEX + 1];
    plx_security lsec = { .cert_file = cert, .key_file = key };
    int rc;

    snprintf(dir, sizeof dir, "%s/plx-tls-stream-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return plx_err_set(err, PLX_EIO, "tls certificate: mkdtemp %s: %s", dir, strerror(errno));
    rc = plx_cert_ensure(dir, cert, sizeof cert, key, sizeof key, fp, err);
    if (rc != PLX_OK)
        plx_err_prefix(err, "tls certificate");
    else
        rc = transport_open(t, TLS, &lsec, err);
    scratch_remove(dir);   /* the listener holds the key in memory now */
    snprintf(pin, 80, "sha256:%s", fp);
    t->csec.fingerprint = pin;
    return rc;
}

/* ---- two threads ---------------------------------------------------------------- */

/* One thread's half of a measurement. */
typedef struct flow {
    end            *e;
    size_t          count;      /* stream: payload bytes; round trips: how many */
    double          cpu;        /* thread CPU seconds while measured */
    struct iovec   *iov;        /* stream (sender): the frames, iovcnt iovecs */
    size_t          iovcnt;
    unsigned char  *buf;        /* stream (receiver): FRAME_DATA bytes */
    double         *lat;        /* round trips (client): seconds each */
    atomic_int     *failures;   /* shared by both halves */
    int             failed;     /* 0, or 1 for the first failure, 2 for the second */
    plx_err_t       err;
} flow;

/* Note f's failure (err is what went wrong, who which half it was) and
 * shut its socket, so the peer hears of it now rather than after
 * DEADLINE_MS. */
static void *flow_fail(flow *f, const char *who)
{
    plx_err_prefix(&f->err, who);
    f->failed = atomic_fetch_add(f->failures, 1) + 1;
    shutdown(f->e->fd, SHUT_RDWR);
    return NULL;
}

/* Run a and b on threads of their own; the first failure goes to err. */
static int flows_run(void *(*run_a)(void *), flow *a, void *(*run_b)(void *), flow *b,
                     plx_err_t *err)
{
    pthread_t ta, tb;
    int rc = pthread_create(&ta, NULL, run_a, a);

    if (rc != 0)
        return plx_err_set(err, PLX_EIO, "pthread_create: %s", strerror(rc));
    rc = pthread_create(&tb, NULL, run_b, b);
    if (rc != 0) {
        shutdown(a->e->fd, SHUT_RDWR);   /* a cannot finish alone */
        pthread_join(ta, NULL);
        return plx_err_set(err, PLX_EIO, "pthread_create: %s", strerror(rc));
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a->failed == 0 && b->failed == 0)
        return PLX_OK;
    *err = (a->failed == 1 || b->failed == 0) ? a->err : b->err;
    return err->code != PLX_OK ? err->code : PLX_ERR;
}

/* ---- the stream ------------------------------------------------------------------- */

/* Frames for bytes of payload, all from one buffer; *count iovecs. */
static struct iovec *frames_new(size_t bytes, const unsigned char *payload, size_t *count)
{
    static const unsigned char head[FRAME_HEAD] = "PLX1", env[FRAME_ENV], blen[FRAME_BLEN];
    size_t frames = (bytes + FRAME_DATA - 1) / FRAME_DATA;
    struct iovec *iov = calloc(frames * FRAME_IOV, sizeof *iov);

    for (size_t f = 0; iov != NULL && f < frames; f++) {
        size_t len = bytes - f * FRAME_DATA < FRAME_DATA ? bytes - f * FRAME_DATA : FRAME_DATA;
        iov[FRAME_IOV * f] = (struct iovec){ (void *)head, sizeof head };
        iov[FRAME_IOV * f + 1] = (struct iovec){ (void *)env, sizeof env };
        iov[FRAME_IOV * f + 2] = (struct iovec){ (void *)blen, sizeof blen };
        iov[FRAME_IOV * f + 3] = (struct iovec){ (void *)payload, len };
    }
    *count = frames * FRAME_IOV;
    return iov;
}

static size_t frames_wire_bytes(size_t bytes)
{
    return bytes + (bytes + FRAME_DATA - 1) / FRAME_DATA * (FRAME_HEAD + FRAME_ENV + FRAME_BLEN);
}

static void *stream_send(void *arg)
{
    flow *f = arg;
    double cpu0 = thread_cpu_s();
    int rc = send_iov(f->e, f->iov, f->iovcnt, &f->err);

    f->cpu = thread_cpu_s() - cpu0;
    return rc == PLX_OK ? NULL : flow_fail(f, "sender");
}

static void *stream_recv(void *arg)
{
    flow *f = arg;
    size_t want = frames_wire_bytes(f->count), got = 0;
    double cpu0 = thread_cpu_s();
    int rc = PLX_OK;

    while (rc == PLX_OK && got < want) {
        size_t n = 0;
        rc = recv_some(f->e, f->buf, want - got < FRAME_DATA ? want - got : FRAME_DATA, &n,
                       &f->err);
        got += n;
    }
    f->cpu = thread_cpu_s() - cpu0;
    return rc == PLX_OK ? NULL : flow_fail(f, "receiver");
}

typedef struct stream_result {
    double secs, tx_cpu, rx_cpu;
} stream_result;

/* The sender's frames (over payload) and the receiver's buffer, their
 * pages mapped before the clock starts: first touches of fresh memory
 * would weigh on a small stream and are not what is measured. */
static int stream_buffers(flow *tx, flow *rx, unsigned char *payload, plx_err_t *err)
{
    if (payload == NULL || (rx->buf = malloc(FRAME_DATA)) == NULL ||
        (tx->iov = frames_new(tx->count, payload, &tx->iovcnt)) == NULL)
        return plx_err_set(err, PLX_ENOMEM, "out of memory for the buffers");
    memset(payload, 0x5a, FRAME_DATA);
    memset(rx->buf, 0, FRAME_DATA);
    return PLX_OK;
}

static int stream_measure(transport *t, size_t bytes, stream_result *r, plx_err_t *err)
{
    atomic_int failures = 0;
    end c, s;
    flow tx = { .e = &c, .count = bytes, .failures = &failures };
    flow rx = { .e = &s, .count = bytes, .failures = &failures };
    unsigned char *payload = malloc(FRAME_DATA);
    double t0;
    int rc = stream_buffers(&tx, &rx, payload, err);

    if (rc == PLX_OK)
        rc = pair_open(t, &c, &s, err);
    if (rc == PLX_OK) {
        t0 = mono_s();
        rc = flows_run(stream_recv, &rx, stream_send, &tx, err);
        r->secs = mono_s() - t0;
        r->tx_cpu = tx.cpu;
        r->rx_cpu = rx.cpu;
        end_close(&c);
        end_close(&s);
    }
    free(tx.iov);
    free(rx.buf);
    free(payload);
    return rc;
}

/* ---- round trips ------------------------------------------------------------------ */

/* One message, sent as plexa sends a small frame: header, then the rest. */
static int msg_send(end *e, unsigned char *msg, plx_err_t *err)
{
    struct iovec iov[2] = { { msg, FRAME_HEAD }, { msg + FRAME_HEAD, RTT_MSG - FRAME_HEAD } };

    return send_iov(e, iov, 2, err);
}

static int msg_recv(end *e, unsigned char *msg, plx_err_t *err)
{
    size_t got = 0, n = 0;
    int rc = PLX_OK;

    while (rc == PLX_OK && got < RTT_MSG) {
        rc = recv_some(e, msg + got, RTT_MSG - got, &n, err);
        got += n;
    }
    return rc;
}

static void *rtt_client(void *arg)
{
    flow *f = arg;
    unsigned char msg[RTT_MSG] = "PLX1";
    double cpu0 = 0;
    int rc = PLX_OK;

    for (size_t i = 0; rc == PLX_OK && i < RTT_WARMUP + f->count; i++) {
        double t0;
        if (i == RTT_WARMUP)
            cpu0 = thread_cpu_s();
        t0 = mono_s();
        rc = msg_send(f->e, msg, &f->err);
        if (rc == PLX_OK)
            rc = msg_recv(f->e, msg, &f->err);
        if (i >= RTT_WARMUP)
            f->lat[i - RTT_WARMUP] = mono_s() - t0;
    }
    f->cpu = thread_cpu_s() - cpu0;
    return rc == PLX_OK ? NULL : flow_fail(f, "client");
}

static void *rtt_server(void *arg)
{
    flow *f = arg;
    unsigned char msg[RTT_MSG];
    int rc = PLX_OK;

    for (size_t i = 0; rc == PLX_OK && i < RTT_WARMUP + f->count; i++) {
        rc = msg_recv(f->e, msg, &f->err);
        if (rc == PLX_OK)
            rc = msg_send(f->e, msg, &f->err);
    }
    return rc == PLX_OK ? NULL : flow_fail(f, "server");
}

typedef struct rtt_result {
    double mean_us, p99_us, cpu_us;
} rtt_result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void rtt_summarise(double *lat, size_t n, double cpu, rtt_result *r)
{
    double sum = 0;

    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    qsort(lat, n, sizeof *lat, cmp_double);
    r->mean_us = sum / (double)n * 1e6;
    r->p99_us = lat[(size_t)(0.99 * (double)(n - 1) + 0.5)] * 1e6;
    r->cpu_us = cpu / (double)n * 1e6;
}

static int rtt_measure(transport *t, size_t n, rtt_result *r, plx_err_t *err)
{
    atomic_int failures = 0;
    end c, s;
    flow cl = { .e = &c, .count = n, .failures = &failures, .lat = calloc(n, sizeof(double)) };
    flow sv = { .e = &s, .count = n, .failures = &failures };
    int rc = cl.lat ? pair_open(t, &c, &s, err)
                    : plx_err_set(err, PLX_ENOMEM, "round trips: out of memory");

    if (rc == PLX_OK) {
        rc = flows_run(rtt_server, &sv, rtt_client, &cl, err);
        if (rc == PLX_OK)
            rtt_summarise(cl.lat, n, cl.cpu, r);
        end_close(&c);
        end_close(&s);
    }
    free(cl.lat);
    return rc;
}

/* ---- reporting -------------------------------------------------------------------- */

typedef struct results {
    stream_result stream[NTRANSPORTS];
    rtt_result    rtt[NTRANSPORTS];
} results;

/* 10^6 bytes per second of mib MiB in secs (a zero time counts as 1 us). */
static double mb_per_s(size_t mib, double secs)
{
    return (double)mib * MiB / 1e6 / (secs > 1e-6 ? secs : 1e-6);
}

static double busier(const stream_result *s)
{
    return s->tx_cpu > s->rx_cpu ? s->tx_cpu : s->rx_cpu;
}

static void json_stream(const opts *o, const results *r)
{
    if (o->mib == 0) {
        printf("\"stream\": null");
        return;
    }
    printf("\"stream\": {\"mib\": %zu, \"frame_bytes\": %u", o->mib, FRAME_DATA);
    for (int i = 0; i < NTRANSPORTS; i++) {
        const stream_result *s = &r->stream[i];
        printf(", \"%s\": {\"seconds\": %.6f, \"mb_per_s\": %.1f, \"cpu_mb_per_s\": %.1f, "
               "\"sender_cpu_s\": %.6f, \"receiver_cpu_s\": %.6f}",
               names[i], s->secs, mb_per_s(o->mib, s->secs), mb_per_s(o->mib, busier(s)),
               s->tx_cpu, s->rx_cpu);
    }
    printf("}");
}

static void json_rtt(const opts *o, const results *r)
{
    if (o->rtt == 0) {
        printf("\"round_trip\": null");
        return;
    }
    printf("\"round_trip\": {\"n\": %zu, \"warmup\": %d, \"message_bytes\": %d", o->rtt,
           RTT_WARMUP, RTT_MSG);
    for (int i = 0; i < NTRANSPORTS; i++)
        printf(", \"%s\": {\"mean_us\": %.2f, \"p99_us\": %.2f, \"client_cpu_us\": %.2f}",
               names[i], r->rtt[i].mean_us, r->rtt[i].p99_us, r->rtt[i].cpu_us);
    printf("}");
}

static void summary(const opts *o, const results *r)
{
    const stream_result *c = &r->stream[TCP], *t = &r->stream[TLS];
    const rtt_result *rc = &r->rtt[TCP], *rt = &r->rtt[TLS];

    if (o->mib > 0)
        fprintf(stderr,
                "stream of %zu MiB over loopback in 4 MiB frames, a sender and a receiver "
                "thread (MB/s = 10^6 B/s):\n"
                "  by the clock:           tcp %6.0f MB/s, tls %6.0f MB/s (%3.0f%% of tcp)\n"
                "  by the busier thread's CPU time (an idle core per thread):\n"
                "                          tcp %6.0f MB/s, tls %6.0f MB/s (%3.0f%% of tcp)\n"
                "  CPU seconds, sender/receiver: tcp %.3f/%.3f, tls %.3f/%.3f\n",
                o->mib, mb_per_s(o->mib, c->secs), mb_per_s(o->mib, t->secs),
                100.0 * c->secs / (t->secs > 1e-6 ? t->secs : 1e-6),
                mb_per_s(o->mib, busier(c)), mb_per_s(o->mib, busier(t)),
                100.0 * busier(c) / (busier(t) > 1e-6 ? busier(t) : 1e-6), c->tx_cpu, c->rx_cpu,
                t->tx_cpu, t->rx_cpu);
    if (o->rtt > 0)
        fprintf(stderr,
                "round trips of a %d-byte message over loopback, %zu after %d warm-up ones, "
                "two threads:\n"
                "  tcp %6.1f us (p99 %6.1f, client CPU %5.1f us)\n"
                "  tls %6.1f us (p99 %6.1f, client CPU %5.1f us): tls adds %.1f us\n",
                RTT_MSG, o->rtt, RTT_WARMUP, rc->mean_us, rc->p99_us, rc->cpu_us, rt->mean_us,
                rt->p99_us, rt->cpu_us, rt->mean_us - rc->mean_us);
}

/* ---- main ----------------------------------------------------------------------------- */

/* Where the plugins come from: --plugins, PLX_PLUGIN_PATH or the build tree. */
static void plugin_path(const char *dir)
{
    const char *env = getenv("PLX_PLUGIN_PATH");

    if (dir != NULL)
        setenv("PLX_PLUGIN_PATH", dir, 1);
    else if (env == NULL || *env == '\0')
        setenv("PLX_PLUGIN_PATH", TLS_STREAM_PLUGIN_DIR, 1);
}

/* Every measurement asked for; a failure is named "<transport> <what>: ...". */
static int measure(transport *tr, const opts *o, results *r, plx_err_t *err)
{
    char what[64] = "";
    int rc = PLX_OK;

    for (int i = 0; rc == PLX_OK && o->mib > 0 && i < NTRANSPORTS; i++) {
        snprintf(what, sizeof what, "%s stream of %zu MiB", names[i], o->mib);
        fprintf(stderr, "tls_stream: %s\n", what);
        rc = stream_measure(&tr[i], o->mib << 20, &r->stream[i], err);
    }
    for (int i = 0; rc == PLX_OK && o->rtt > 0 && i < NTRANSPORTS; i++) {
        snprintf(what, sizeof what, "%s round trips", names[i]);
        fprintf(stderr, "tls_stream: %s, %zu of them\n", what, o->rtt);
        rc = rtt_measure(&tr[i], o->rtt, &r->rtt[i], err);
    }
    return rc == PLX_OK ? PLX_OK : plx_err_prefix(err, what);
}

int main(int argc, char **argv)
{
    opts o = { .mib = 256, .rtt = 2000 };
    transport tr[NTRANSPORTS] = { { 0 } };
    results r = { 0 };
    plx_err_t err = { 0 };
    char pin[80] = "";
    int rc = parse_opts(argc, argv, &o);

    if (rc >= 0)
        return rc;
    plugin_path(o.plugins);
    rc = transport_open(&tr[TCP], TCP, NULL, &err);
    if (rc == PLX_OK)
        rc = tls_open(&tr[TLS], pin, &err);
    if (rc == PLX_OK)
        rc = measure(tr, &o, &r, &err);
    transport_close(&tr[TCP]);
    transport_close(&tr[TLS]);
    if (rc != PLX_OK) {
        fprintf(stderr, "tls_stream: %s\n", err.msg[0] ? err.msg : plx_strerror(rc));
        return 1;
    }
    printf("{");
    json_stream(&o, &r);
    printf(", ");
    json_rtt(&o, &r);
    printf("}\n");
    summary(&o, &r);
    return fflush(stdout) == 0 ? 0 : 1;
}
