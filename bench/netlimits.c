/* netlimits: the physical limits bench/run compares plexa against.
 *
 * bench/run compiles this file at run time (cc -O2 ... -lssl -lcrypto) into
 * a temporary directory; it is not part of the build.
 *
 *   netlimits rtt N CPU_A CPU_B      1-byte ping-pong over 127.0.0.1, N round
 *                                    trips after 200 warm-up ones; prints
 *                                    "mean_us p99_us"
 *   netlimits bw BYTES CPU_A CPU_B   one stream of BYTES over 127.0.0.1 in
 *                                    1 MiB writes; prints "MB_per_s" (10^6 B/s)
 *   netlimits tlsbw BYTES CPU_A CPU_B   the same stream over TLS 1.3 with
 *                                    plexa's cipher (TLS_AES_128_GCM_SHA256,
 *                                    OpenSSL, an ephemeral P-256 certificate):
 *                                    what any TLS costs on this machine
 *
 * The parent (the receiving or pinging side) runs on CPU_A, the forked
 * child on CPU_B; -1 leaves a side unpinned. TCP_NODELAY is set on both
 * ends, as any RPC system does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define CHUNK (1 << 20)
#define WARMUP 200

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        die("sched_setaffinity");
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        die("setsockopt TCP_NODELAY");
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Reads exactly n bytes; returns 0 on EOF before that. */
static int read_all(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        if (k == 0)
            return 0;
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Listens on 127.0.0.1 (any port), forks; returns the connected socket in
 * both processes; *child tells which one we are. */
static int connected_pair(int cpu_a, int cpu_b, pid_t *child)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0)
        die("socket");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("bind");
    if (listen(lfd, 1) != 0)
        die("listen");
    if (getsockname(lfd, (struct sockaddr *)&addr, &len) != 0)
        die("getsockname");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(lfd);
        pin(cpu_b);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
            die("connect");
        nodelay(fd);
        *child = 0;
        return fd;
    }
    pin(cpu_a);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        die("accept");
    close(lfd);
    nodelay(fd);
    *child = pid;
    return fd;
}

static int reap(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) < 0)
        die("waitpid");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int rtt(long n, int cpu_a, int cpu_b)
{
    pid_t pid;
    int fd = connected_pair(cpu_a, cpu_b, &pid);
    char b = 'x';
    if (pid == 0) {                     /* echo until EOF */
        while (read_all(fd, &b, 1))
            write_all(fd, &b, 1);
        _exit(0);
    }
    double *t = malloc(sizeof(double) * (size_t)n);
    if (!t)
        die("malloc");
    for (long i = 0; i < WARMUP + n; i++) {
        double t0 = now_us();
        write_all(fd, &b, 1);
        if (!read_all(fd, &b, 1)) {
            fprintf(stderr, "netlimits: echo side closed early\n");
            return 2;
        }
        if (i >= WARMUP)
            t[i - WARMUP] = now_us() - t0;
    }
    close(fd);
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += t[i];
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    long k = (long)(0.99 * (double)(n - 1) + 0.5);
    printf("%.3f %.3f\n", sum / (double)n, t[k]);
    free(t);
    return reap(pid);
}

/* One write's worth of bytes to stream (or to read into). */
static char *chunk_buffer(void)
{
    char *buf = malloc(CHUNK);
    if (!buf)
        die("malloc");
    memset(buf, 0x5a, CHUNK);
    return buf;
}

/* The receiving side's end of a stream: the rate, once all bytes came. */
static int bw_report(int fd, char *buf, long long got, long long bytes, double dt_us,
                     pid_t pid)
{
    close(fd);
    free(buf);
    if (got != bytes) {
        fprintf(stderr, "netlimits: received %lld of %lld bytes\n", got, bytes);
        return 2;
    }
    printf("%.1f\n", (double)bytes / dt_us);   /* bytes per us = MB/s */
    return reap(pid);
}

static int bw(long long bytes, int cpu_a, int cpu_b)
{
    pid_t pid;
    int fd = connected_pair(cpu_a, cpu_b, &pid);
    char *buf = chunk_buffer();
    char go = 'g';
    if (pid == 0) {                     /* sender: wait for go, stream */
        if (!read_all(fd, &go, 1))
            _exit(2);
        long long left = bytes;
        while (left > 0) {
            size_t k = left < CHUNK ? (size_t)left : CHUNK;
            write_all(fd, buf, k);
            left -= (long long)k;
        }
        close(fd);
        _exit(0);
    }
    double t0 = now_us();
    write_all(fd, &go, 1);
    long long got = 0;
    for (;;) {
        ssize_t k = read(fd, buf, CHUNK);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        if (k == 0)
            break;
        got += k;
    }
    return bw_report(fd, buf, got, bytes, now_us() - t0, pid);
}

/* ---- TLS: the same stream through OpenSSL --------------------------------- */

static void ssl_die(const char *what)
{
    fprintf(stderr, "netlimits: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

/* A throwaway P-256 key and self-signed certificate for the server side
 * (the client does not verify: this measures the record layer only). */
static SSL_CTX *server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = X509_new();
    if (!key || !crt)
        ssl_die("EVP_EC_gen/X509_new");
    ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
    X509_gmtime_adj(X509_getm_notBefore(crt), 0);
    X509_gmtime_adj(X509_getm_notAfter(crt), 3600);
    X509_set_pubkey(crt, key);
    X509_NAME *name = X509_get_subject_name(crt);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"netlimits",
                               -1, -1, 0);
    X509_set_issuer_name(crt, name);
    if (!X509_sign(crt, key, EVP_sha256()))
        ssl_die("X509_sign");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate(ctx, crt) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
        ssl_die("SSL_CTX (server)");
    X509_free(crt);
    EVP_PKEY_free(key);
    return ctx;
}

static SSL *tls_wrap(SSL_CTX *ctx, int fd, int server)
{
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1)
        ssl_die("SSL_CTX_set_ciphersuites");
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        ssl_die("SSL_new");
    if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1)
        ssl_die(server ? "SSL_accept" : "SSL_connect");
    return ssl;
}

static int tlsbw(long long bytes, int cpu_a, int cpu_b)
{
    pid_t pid;
    int fd = connected_pair(cpu_a, cpu_b, &pid);
    char *buf = chunk_buffer();
    if (pid == 0) {                     /* client, sender */
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx)
            ssl_die("SSL_CTX_new (client)");
        SSL *ssl = tls_wrap(ctx, fd, 0);
        char go;
        if (SSL_read(ssl, &go, 1) != 1)
            _exit(2);
        long long left = bytes;
        while (left > 0) {
            int k = left < CHUNK ? (int)left : CHUNK;
            if (SSL_write(ssl, buf, k) != k)
                ssl_die("SSL_write");
            left -= k;
        }
        SSL_shutdown(ssl);
        close(fd);
        _exit(0);
    }
    SSL *ssl = tls_wrap(server_ctx(), fd, 1);
    double t0 = now_us();
    if (SSL_write(ssl, "g", 1) != 1)
        ssl_die("SSL_write");
    long long got = 0;
    for (;;) {
        int k = SSL_read(ssl, buf, CHUNK);
        if (k <= 0)
            break;
        got += k;
    }
    return bw_report(fd, buf, got, bytes, now_us() - t0, pid);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc != 5) {
        fprintf(stderr, "usage: netlimits rtt N CPU_A CPU_B | bw|tlsbw BYTES CPU_A CPU_B\n");
        return 2;
    }
    int a = atoi(argv[3]), b = atoi(argv[4]);
    if (strcmp(argv[1], "rtt") == 0) {
        long n = atol(argv[2]);
        if (n < 1)
            n = 1;
        return rtt(n, a, b);
    }
    if (strcmp(argv[1], "bw") == 0)
        return bw(atoll(argv[2]), a, b);
    if (strcmp(argv[1], "tlsbw") == 0)
        return tlsbw(atoll(argv[2]), a, b);
    fprintf(stderr, "netlimits: unknown mode %s\n", argv[1]);
    return 2;
}
