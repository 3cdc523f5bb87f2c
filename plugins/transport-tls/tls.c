/*
 * transport-tls: TLS 1.3 streams (OpenSSL 3) over the sockets of
 * plugins/common/plx_sock.c, the same ones transport-tcp uses.
 *
 * Security (docs/security.md; trust details in tls_trust.c):
 *   - Listener: sec->cert_file and sec->key_file (PEM) are required. The
 *     controller asks clients for no certificate: they prove themselves
 *     with a capability token inside the stream.
 *   - Connector: pins sec->fingerprint (SHA-256 of the server
 *     certificate's DER), or verifies against sec->ca_file and the host
 *     name, or both. Neither is PLX_EINVAL. A mismatch is PLX_EAUTH:
 *     "certificate fingerprint mismatch: expected ..., got ...".
 *   - TLS 1.3 only, AES-GCM first, no tickets, no resumption.
 *   - A peer that does not speak TLS is named for what it is: the BIO keeps
 *     the first bytes it sent, so "a plaintext plexa client connected to
 *     the TLS port" (it sent the frame magic "PLX1") or "peer ... does not
 *     speak TLS (it sent 'GET ')" replace OpenSSL's "wrong version number".
 *
 * I/O. Sockets are non-blocking; handshake() drives SSL_do_handshake and
 * want() says what it, recv or sendv waits for. OpenSSL writes into the
 * connection's output buffer (tls_io.c), never into the socket, so it
 * never holds a half-written record; the plugin sends the buffer, several
 * records per syscall.
 *
 * sendv encrypts one record per SSL_write (SSL_MODE_ENABLE_PARTIAL_WRITE):
 * an iovec with a full record left is encrypted in place, smaller ones
 * are coalesced into a 16 KiB record, so a frame of many small pieces
 * costs few records. It stops encrypting when 128 KiB wait for the socket.
 * *n counts the caller's bytes whose records have reached the socket whole:
 * bytes encrypted but still buffered are reported by a later call, so the
 * caller keeps asking for writability until everything is out. Hence the
 * one rule for callers (plx_conn follows it: unwritten bytes stay at the
 * head of its queue): a sendv must start with the bytes not yet reported
 * written. Those already encrypted are skipped, not encrypted twice.
 *
 * recv reads ahead into a 64 KiB buffer (a burst of records per syscall)
 * and fills the caller's buffer as far as decrypted data allows. The pages
 * of a large caller's buffer that data already arrived will fill are mapped
 * in one call (tls_prefault in tls_io.c: faulting them in one by one cost
 * nearly as much as decrypting them). SSL_read decrypts in its own buffer
 * and copies out: OpenSSL 3.0 cannot decrypt into the caller's buffer (the
 * copy costs about 0.02 s per 256 MB here, the decryption 0.07 s). pending()
 * reports decrypted bytes (SSL_pending), else 1 if undecrypted input is
 * buffered (SSL_has_pending), so the caller never waits on the socket for
 * data already in memory. KeyUpdates are handled inside SSL_read/SSL_write;
 * TLS 1.3 has no renegotiation.
 *
 * Kernel TLS (SSL_OP_ENABLE_KTLS) is not used: it needs OpenSSL's own
 * socket BIO (ours is what makes the output buffer and the plaintext-peer
 * messages possible) and the kernel's "tls" ULP, which the machines we
 * measured on do not have: /proc/sys/net/ipv4/tcp_available_ulp lists only
 * mptcp and setsockopt(TCP_ULP, "tls") fails with ENOENT, although
 * Debian's OpenSSL 3.0 is built with ktls.
 *
 * Test hook: PLX_TLS_FAULT="eagain_every=N,short=M,keyupdate=B" (read when
 * a connection is created): every Nth socket read or write fails with
 * EAGAIN, each moves at most M bytes, and sendv requests a KeyUpdate every
 * B bytes, so partial I/O and key updates can be exercised on loopback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "plexa/plugin.h"
#include "plexa/transport.h"
#include "plexa/version.h"
#include "tls_int.h"

typedef struct tls_listener {
    int      fd;
    SSL_CTX *ctx;               /* with the certificate and key */
    char     addr[PLX_SOCK_ADDR_MAX];
} tls_listener;

/* ---- connections --------------------------------------------------------- */

static tls_conn *tls_conn_new(int fd, const char *peer, bool server)
{
    tls_conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->server = server;
    c->want = server ? PLX_WANT_READ : PLX_WANT_WRITE;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    tls_fault_init(&c->fault);
    return c;
}

static void tls_conn_free(tls_conn *c)
{
    SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(c->ca_file);
    free(c->wbuf);
    tls_out_free(c);
    free(c);
}

/* Give c an SSL of ctx and our BIO, ready for its side of the handshake. */
static int tls_conn_ssl(tls_conn *c, SSL_CTX *ctx, plx_err_t *err)
{
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL)
        return tls_ossl_fail(err, PLX_ENOMEM, c->peer, "SSL_new");
    SSL_set_app_data(c->ssl, c);
    if (c->server)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    return tls_attach_bio(c, err);
}

/* Record a fatal error: no more I/O and no close_notify on this stream. */
static int tls_fail(tls_conn *c, int code)
{
    c->failed = true;
    c->fail_code = code;
    return code;
}

static int tls_failed_again(const tls_conn *c, plx_err_t *err)
{
    return plx_err_set(err, c->fail_code, "TLS connection with %s already failed", c->peer);
}

/* ---- listener ------------------------------------------------------------ */

static int tls_listen(const char *host, uint16_t port, const plx_security *sec,
                      void **listener, int *fd, uint16_t *port_out, plx_err_t *err)
{
    tls_listener *l = calloc(1, sizeof *l);
    int rc;

    if (l == NULL)
        return plx_err_set(err, PLX_ENOMEM, "tls listen: out of memory");
    l->fd = -1;
    rc = tls_ctx_new(true, "tls listen", &l->ctx, err);
    if (rc == PLX_OK)
        rc = tls_load_identity(l->ctx, sec, err);
    if (rc == PLX_OK)
        rc = plx_sock_listen(host, port, &l->fd, port_out, l->addr, sizeof l->addr, err);
    if (rc != PLX_OK) {
        SSL_CTX_free(l->ctx);
        free(l);
        return rc;
    }
    *listener = l;
    *fd = l->fd;
    return PLX_OK;
}

static int tls_accept(void *listener, void **conn, int *fd, char *peer, size_t peerlen,
                      plx_err_t *err)
{
    tls_listener *l = listener;
    char addr[PLX_SOCK_ADDR_MAX];
    tls_conn *c;
    int s = -1;
    int rc = plx_sock_accept(l->fd, l->addr, &s, addr, sizeof addr, err);

    if (rc != PLX_OK)
        return rc;
    c = tls_conn_new(s, addr, true);
    if (c == NULL) {
        close(s);
        return plx_err_set(err, PLX_ENOMEM, "accept on %s: out of memory", l->addr);
    }
    rc = tls_conn_ssl(c, l->ctx, err);
    if (rc != PLX_OK) {
        tls_conn_free(c);
        return rc;
    }
    if (peer != NULL && peerlen > 0)
        snprintf(peer, peerlen, "%s", addr);
    *conn = c;
    *fd = s;
    return PLX_OK;
}

/* Connections keep their own reference to the context (SSL_new). */
static void tls_close_listener(void **listener)
{
    tls_listener *l;

    if (listener == NULL || *listener == NULL)
        return;
    l = *listener;
    close(l->fd);
    SSL_CTX_free(l->ctx);
    free(l);
    *listener = NULL;
}

/* ---- connector ------------------------------------------------------------ */

static int tls_connect_setup(tls_conn *c, const char *host, const plx_security *sec,
                             plx_err_t *err)
{
    SSL_CTX *ctx;
    int rc = tls_conn_trust(c, sec, err);

    if (rc != PLX_OK)
        return rc;
    rc = tls_client_ctx(c, &ctx, err);
    if (rc != PLX_OK)
        return rc;
    rc = tls_conn_ssl(c, ctx, err);
    SSL_CTX_free(ctx);   /* the SSL holds its own reference */
    if (rc == PLX_OK)
        rc = tls_expect_host(c, host, err);
    return rc;
}

/*
 * The trust checks come first, so a URL without a fingerprint fails at
 * once, before any packet is sent.
 */
static int tls_connect(const char *host, uint16_t port, const plx_security *sec,
                       void **conn, int *fd, plx_err_t *err)
{
    char addr[PLX_SOCK_ADDR_MAX], port_str[16];
    bool inprogress = false;
    tls_conn *c;
    int s = -1;
    int rc;

    if (host == NULL || *host == '\0')
        host = "127.0.0.1";
    snprintf(port_str, sizeof port_str, "%u", (unsigned)port);
    plx_sock_format_addr(addr, sizeof addr, host, port_str);
    c = tls_conn_new(-1, addr, false);
    if (c == NULL)
        return plx_err_set(err, PLX_ENOMEM, "connect to %s: out of memory", addr);
    rc = tls_connect_setup(c, host, sec, err);
    if (rc == PLX_OK)
        rc = plx_sock_connect(host, port, &s, &inprogress, addr, sizeof addr, err);
    if (rc != PLX_OK) {
        tls_conn_free(c);
        return rc;
    }
    c->fd = s;
    c->connecting = inprogress;
    *conn = c;
    *fd = s;
    return PLX_OK;
}

/* ---- handshake ----------------------------------------------------------- */

/* The peer's first bytes as text and hex, for "does not speak TLS". */
static void tls_show_first(const tls_conn *c, char *out, size_t len)
{
    char text[sizeof c->first + 1], hex[3 * sizeof c->first + 1];
    size_t h = 0;

    for (size_t i = 0; i < c->nfirst; i++) {
        unsigned char ch = c->first[i];
        text[i] = ch >= 0x20 && ch < 0x7f && ch != '\'' ? (char)ch : '.';
        h += (size_t)snprintf(hex + h, sizeof hex - h, "%s%02x", i ? " " : "", ch);
    }
    text[c->nfirst] = '\0';
    hex[h] = '\0';
    snprintf(out, len, "'%s' (%s)", text, hex);
}

/* The peer sent bytes that cannot begin a TLS record (handshake 0x16 or
 * alert 0x15): say who it probably is. PLX_OK if it looks like TLS. */
static int tls_plaintext_peer(const tls_conn *c, plx_err_t *err)
{
    char shown[64];

    if (c->nfirst == 0 || c->first[0] == 0x16 || c->first[0] == 0x15)
        return PLX_OK;
    if (c->nfirst == 4 && memcmp(c->first, "PLX1", 4) == 0)
        return c->server
                   ? plx_err_set(err, PLX_EPROTO,
                                 "a plaintext plexa client connected to the TLS port from %s "
                                 "(it used a plx+tcp:// URL; clients of this controller need "
                                 "its plx+tls:// connection file)",
                                 c->peer)
                   : plx_err_set(err, PLX_EPROTO,
                                 "%s answered in plaintext plexa, not TLS: it is a plx+tcp "
                                 "port (use the cluster's plx+tcp:// URL, or set transport = "
                                 "tls in its cluster.conf)",
                                 c->peer);
    tls_show_first(c, shown, sizeof shown);
    return plx_err_set(err, PLX_EPROTO, "peer %s does not speak TLS (it sent %s)", c->peer,
                       shown);
}

/* The peer hung up before sending a single byte. */
static int tls_silent_close(const tls_conn *c, plx_err_t *err)
{
    const char *how = c->eof ? "closed the connection" : strerror(c->sys_errno);

    if (c->server)
        return plx_err_set(err, PLX_ECLOSED, "%s: %s before the TLS handshake", c->peer, how);
    return plx_err_set(err, PLX_EPROTO,
                       "%s: %s during the TLS handshake without answering: it does not speak "
                       "TLS (a plx+tcp port hangs up on a TLS hello; is the cluster's transport "
                       "tcp?)",
                       c->peer, how);
}

/* The client's certificate check failed (the verify callback's verdict). */
static int tls_cert_refused(tls_conn *c, plx_err_t *err)
{
    char want[2 * TLS_PIN_LEN + 1];

    if (c->pin_mismatch) {
        tls_hex(c->pin, TLS_PIN_LEN, want);
        return plx_err_set(err, PLX_EAUTH,
                           "TLS handshake with %s: certificate fingerprint mismatch: "
                           "expected %s, got %s (is this the right controller? a "
                           "man-in-the-middle?)",
                           c->peer, want, c->got);
    }
    return plx_err_set(err, PLX_EAUTH,
                       "TLS handshake with %s: the certificate does not verify against CA "
                       "file %s: %s",
                       c->peer, c->ca_file ? c->ca_file : "?",
                       X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
}

/* The client turned our certificate down: the controller should log why. */
static bool tls_alert_cert_refused(int reason)
{
    return reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
           reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ||
           reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA;
}

static int tls_handshake_error(tls_conn *c, int e, plx_err_t *err)
{
    char why[TLS_ERRS_MAX];
    bool refused = c->server && tls_alert_cert_refused(tls_first_reason());
    int rc;

    if (c->pin_mismatch || c->verify_failed) {
        ERR_clear_error();
        return tls_cert_refused(c, err);
    }
    rc = tls_plaintext_peer(c, err);
    if (rc == PLX_OK && c->nfirst == 0 && (c->eof || c->sys_errno != 0))
        rc = tls_silent_close(c, err);
    if (rc != PLX_OK) {
        ERR_clear_error();
        return rc;
    }
    tls_errors(why, sizeof why);
    if (refused)
        return plx_err_set(err, PLX_EPROTO,
                           "TLS handshake with client %s: it refused this controller's "
                           "certificate (%s): its connection file pins another fingerprint "
                           "(an old file, another profile's?) or it trusts another CA",
                           c->peer, why);
    if (e == SSL_ERROR_SYSCALL && c->sys_errno != 0)
        return plx_err_set(err, PLX_EIO, "TLS handshake with %s: %s", c->peer,
                           strerror(c->sys_errno));
    return plx_err_set(err, PLX_EPROTO, "TLS handshake with %s%s: SSL_do_handshake: %s",
                       c->server ? "client " : "", c->peer,
                       why[0] ? why : c->eof ? "peer closed the connection" : "unknown error");
}

/* PLX_EAGAIN (want set) if e only says "call again later", else PLX_OK. */
static int tls_would_block(tls_conn *c, int e)
{
    if (e == SSL_ERROR_WANT_READ) {
        c->want = PLX_WANT_READ;
        return PLX_EAGAIN;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->want = PLX_WANT_WRITE;
        return PLX_EAGAIN;
    }
    return PLX_OK;
}

/* One SSL_do_handshake: PLX_OK (done), PLX_EAGAIN, or the failure, after
 * a best-effort send of the alert that tells the peer why. */
static int tls_handshake_step(tls_conn *c, plx_err_t *err)
{
    int r, e, rc;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->hs_done = true;
        return PLX_OK;
    }
    e = SSL_get_error(c->ssl, r);
    if (tls_would_block(c, e) == PLX_EAGAIN)
        return PLX_EAGAIN;
    rc = tls_handshake_error(c, e, err);
    (void)tls_out_flush(c, NULL);
    return tls_fail(c, rc);
}

/* Send our flight: PLX_OK when all of it is out, PLX_EAGAIN (want write)
 * or the failure. */
static int tls_handshake_flush(tls_conn *c, plx_err_t *err)
{
    int rc = tls_out_flush(c, err);

    if (rc == PLX_EAGAIN)
        c->want = PLX_WANT_WRITE;
    if (rc == PLX_EIO)
        return tls_fail(c, tls_handshake_error(c, SSL_ERROR_SYSCALL, err));
    return rc;
}

static int tls_handshake(void *conn, plx_err_t *err)
{
    tls_conn *c = conn;
    int rc;

    if (c->failed)
        return tls_failed_again(c, err);
    if (c->established)
        return PLX_OK;
    if (c->connecting) {
        rc = plx_sock_connect_finish(c->fd, c->peer, err);
        c->want = PLX_WANT_WRITE;
        if (rc != PLX_OK)
            return rc == PLX_EAGAIN ? rc : tls_fail(c, rc);
        c->connecting = false;
    }
    /* Our last flight must be on the wire before the peer can answer it. */
    rc = tls_handshake_flush(c, err);
    if (rc == PLX_OK && !c->hs_done) {
        rc = tls_handshake_step(c, err);
        if (rc != PLX_OK && rc != PLX_EAGAIN)
            return rc;
        rc = tls_handshake_flush(c, err) == PLX_OK ? rc : PLX_EAGAIN;
    }
    if (rc != PLX_OK)
        return c->failed ? c->fail_code : PLX_EAGAIN;
    c->established = true;
    c->want = PLX_WANT_READ;
    tls_out_idle(c);
    return PLX_OK;
}

/* ---- reading -------------------------------------------------------------- */

/* A failed SSL_read/SSL_write (not would-block): code and message. */
static int tls_io_error(tls_conn *c, int e, const char *call, plx_err_t *err)
{
    char why[TLS_ERRS_MAX];
    bool eof = c->eof || tls_first_reason() == SSL_R_UNEXPECTED_EOF_WHILE_READING;
    const char *dir = strcmp(call, "SSL_read") == 0 ? "recv from" : "send to";

    if (e == SSL_ERROR_ZERO_RETURN)
        return plx_err_set(err, PLX_ECLOSED, "%s %s: connection closed by peer", dir, c->peer);
    tls_errors(why, sizeof why);
    if (eof)
        return tls_fail(c, plx_err_set(err, PLX_ECLOSED,
                                       "%s %s: connection closed by peer (without TLS "
                                       "close_notify)",
                                       dir, c->peer));
    if (e == SSL_ERROR_SYSCALL && c->sys_errno != 0)
        return tls_fail(c, plx_err_set(err, PLX_EIO, "%s %s: %s", dir, c->peer,
                                       strerror(c->sys_errno)));
    if (why[0] == '\0')
        snprintf(why, sizeof why, "SSL_get_error %d without a reason", e);
    return tls_fail(c, plx_err_set(err, PLX_EPROTO, "%s %s: %s: %s", dir, c->peer, call, why));
}

/* An error met after some data was read is reported by the next call. */
static int tls_take_deferred(tls_conn *c, plx_err_t *err)
{
    int code = c->deferred.code;

    if (err != NULL)
        *err = c->deferred;
    memset(&c->deferred, 0, sizeof c->deferred);
    return code;
}

/* Fill buf as far as decrypted data allows without waiting on the socket. */
static int tls_recv(void *conn, void *buf, size_t len, size_t *n, plx_err_t *err)
{
    tls_conn *c = conn;
    size_t got = 0, one;
    int e = SSL_ERROR_NONE;

    *n = 0;
    if (c->deferred.code != PLX_OK)
        return tls_take_deferred(c, err);
    if (c->failed)
        return tls_failed_again(c, err);
    /* Everything that had arrived is decrypted and taken: report that
     * without another recv() that would only say EAGAIN (see transport.h;
     * the core polls level-triggered). One system call less per message. */
    if (c->drained && !SSL_has_pending(c->ssl)) {
        c->drained = false;
        c->want = PLX_WANT_READ;
        return len == 0 ? PLX_OK : PLX_EAGAIN;
    }
    while (got < len) {
        tls_prefault(c, (unsigned char *)buf + got, len - got);
        ERR_clear_error();
        if (SSL_read_ex(c->ssl, (char *)buf + got, len - got, &one) != 1) {
            e = SSL_get_error(c->ssl, 0);
            break;
        }
        got += one;
        if (c->drained && !SSL_has_pending(c->ssl))
            break;   /* the next SSL_read would only find the socket empty */
    }
    *n = got;
    if (e != SSL_ERROR_NONE && tls_would_block(c, e) != PLX_EAGAIN) {
        int rc = tls_io_error(c, e, "SSL_read", got > 0 ? &c->deferred : err);
        return got > 0 ? PLX_OK : rc;   /* a deferred error comes next call */
    }
    /* SSL_read may have answered a KeyUpdate: send that along if we can. */
    if (c->out.pend > 0 && tls_out_flush(c, NULL) == PLX_OK)
        tls_out_idle(c);
    return got > 0 || len == 0 ? PLX_OK : PLX_EAGAIN;
}

/* ---- writing ------------------------------------------------------------------ */

/* A position in the caller's iovecs. */
typedef struct tls_cursor {
    const struct iovec *iov;
    int                 cnt;
    int                 i;
    size_t              off;
} tls_cursor;

/* Move k forward n bytes (and past empty iovecs); returns the bytes that
 * were not there to skip. */
static size_t tls_cursor_skip(tls_cursor *k, size_t n)
{
    while (k->i < k->cnt) {
        size_t left = k->iov[k->i].iov_len - k->off;
        if (n < left) {
            k->off += n;
            return 0;
        }
        n -= left;
        k->i++;
        k->off = 0;
    }
    return n;
}

/* The next SSL_write's bytes: in place when the current iovec has a full
 * record left, else up to one record copied into wbuf from the iovecs. */
static size_t tls_chunk(tls_conn *c, const tls_cursor *k, const void **p)
{
    tls_cursor at = *k;
    size_t used = 0;

    if (at.iov[at.i].iov_len - at.off >= TLS_RECORD) {
        *p = (const char *)at.iov[at.i].iov_base + at.off;
        return at.iov[at.i].iov_len - at.off;
    }
    while (at.i < at.cnt && used < TLS_RECORD) {
        size_t take = at.iov[at.i].iov_len - at.off;
        if (take > TLS_RECORD - used)
            take = TLS_RECORD - used;
        memcpy(c->wbuf + used, (const char *)at.iov[at.i].iov_base + at.off, take);
        used += take;
        tls_cursor_skip(&at, take);
    }
    *p = c->wbuf;
    return used;
}

/* Test hook: request a KeyUpdate every fault.keyupdate bytes. */
static void tls_fault_keyupdate(tls_conn *c)
{
    if (c->fault.keyupdate == 0 || c->fault.since_update < c->fault.keyupdate)
        return;
    if (SSL_key_update(c->ssl, SSL_KEY_UPDATE_REQUESTED) == 1)
        c->fault.since_update = 0;
    ERR_clear_error();
}

/* Encrypt one record of the caller's bytes at k into the output buffer. */
static int tls_write_record(tls_conn *c, tls_cursor *k, plx_err_t *err)
{
    const void *p;
    size_t len = tls_chunk(c, k, &p), w = 0;
    int e;

    tls_fault_keyupdate(c);
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, p, len, &w) != 1) {
        e = SSL_get_error(c->ssl, 0);
        return tls_would_block(c, e) == PLX_EAGAIN ? PLX_EAGAIN
                                                   : tls_io_error(c, e, "SSL_write", err);
    }
    tls_out_record(c, w);
    c->fault.since_update += w;
    tls_cursor_skip(k, w);
    return PLX_OK;
}

/* Send what is buffered; *done grows by the caller's bytes now out. */
static int tls_flush_reap(tls_conn *c, size_t *done, plx_err_t *err)
{
    int rc = tls_out_flush(c, err);

    *done += tls_out_reap(c);
    return rc == PLX_EIO ? tls_fail(c, rc) : rc;
}

/* Encrypt from k while the buffer has room, flushing when it fills. */
static int tls_encrypt(tls_conn *c, tls_cursor *k, size_t *done, plx_err_t *err)
{
    int rc;

    for (tls_cursor_skip(k, 0); k->i < k->cnt; tls_cursor_skip(k, 0)) {
        if (!tls_out_room(c)) {
            rc = tls_flush_reap(c, done, err);
            if (rc != PLX_OK)
                return rc;
        }
        rc = tls_write_record(c, k, err);
        if (rc != PLX_OK)
            return rc;
    }
    return tls_flush_reap(c, done, err);
}

static int tls_sendv(void *conn, const struct iovec *iov, int iovcnt, size_t *n,
                     plx_err_t *err)
{
    tls_conn *c = conn;
    tls_cursor k = { iov, iovcnt, 0, 0 };
    size_t done = 0;
    int rc;

    *n = 0;
    if (c->failed)
        return tls_failed_again(c, err);
    if (c->wbuf == NULL && (c->wbuf = malloc(TLS_RECORD)) == NULL)
        return plx_err_set(err, PLX_ENOMEM, "send to %s: out of memory", c->peer);
    rc = tls_flush_reap(c, &done, err);
    if (rc != PLX_OK && rc != PLX_EAGAIN)
        return rc;
    if (tls_cursor_skip(&k, done + c->out.held) != 0)
        return plx_err_set(err, PLX_EINVAL,
                           "send to %s: sendv must start with the %zu bytes not yet reported "
                           "written, and was given fewer",
                           c->peer, done + c->out.held);
    if (rc == PLX_OK)
        rc = tls_encrypt(c, &k, &done, err);
    if (rc != PLX_OK && rc != PLX_EAGAIN)
        return rc;
    tls_out_idle(c);
    *n = done;
    if (done > 0 || (rc == PLX_OK && c->out.held == 0))
        return PLX_OK;
    c->want = PLX_WANT_WRITE;
    return PLX_EAGAIN;
}

/* ---- the rest ---------------------------------------------------------------- */

static int tls_want(void *conn)
{
    return ((tls_conn *)conn)->want;
}

/* Decrypted bytes; else 1 if undecrypted input waits in the read-ahead
 * buffer (recv may then still say PLX_EAGAIN, if a record is incomplete)
 * or an error waits to be reported. */
static size_t tls_pending(void *conn)
{
    tls_conn *c = conn;
    int p;

    if (c->deferred.code != PLX_OK)
        return 1;
    if (c->failed || !c->established)
        return 0;
    p = SSL_pending(c->ssl);
    if (p > 0)
        return (size_t)p;
    return SSL_has_pending(c->ssl) ? 1 : 0;
}

/* close_notify and what is buffered go out if the socket takes them at
 * once; close never waits. */
static void tls_close(void **conn)
{
    tls_conn *c;

    if (conn == NULL || *conn == NULL)
        return;
    c = *conn;
    if (c->established && !c->failed) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
        (void)tls_out_flush(c, NULL);
    }
    tls_conn_free(c);
    *conn = NULL;
}

static const plx_transport_ops tls_ops = {
    .size = sizeof tls_ops,
    .listen = tls_listen,
    .accept = tls_accept,
    .close_listener = tls_close_listener,
    .connect = tls_connect,
    .handshake = tls_handshake,
    .recv = tls_recv,
    .sendv = tls_sendv,
    .want = tls_want,
    .pending = tls_pending,
    .close = tls_close,
};

PLX_PLUGIN_DEFINE(PLX_PLUGIN_TRANSPORT, "tls",
                  "TLS 1.3 (OpenSSL), server certificate pinned by fingerprint",
                  PLX_VERSION_STRING, &tls_ops);
