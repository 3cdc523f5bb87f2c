/*
 * transport-tls internals, shared by its three files:
 *   tls.c        the transport ops: listen, accept, connect, handshake,
 *                recv, sendv, close; what a failed handshake means
 *   tls_io.c     OpenSSL's view of the socket: our BIO, the output
 *                buffer, OpenSSL error text, the fault hook
 *   tls_trust.c  TLS contexts, the listener's identity, and how the
 *                connector authenticates the server (pin, CA, host)
 * Everything here has hidden visibility: the plugin exports only its
 * descriptor.
 */
#ifndef PLX_TLS_INT_H
#define PLX_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "plexa/transport.h"
#include "plx_sock.h"

#define TLS_RECORD   16384           /* largest TLS plaintext record */
#define TLS_PIN_LEN  32              /* SHA-256 */
#define TLS_ERRS_MAX 320             /* room for OpenSSL's error text */
#define TLS_RECS     256             /* records tracked in the output buffer */

typedef struct tls_fault {
    unsigned eagain_every;   /* 0 = off */
    size_t   short_io;       /* 0 = off */
    size_t   keyupdate;      /* 0 = off */
    unsigned calls;
    size_t   since_update;   /* bytes sent since the last KeyUpdate */
} tls_fault;

/* An application-data record in the output buffer, not yet reported to
 * sendv's caller: it ends at ciphertext offset `end` of the stream and
 * carries `plain` of the caller's bytes. */
typedef struct tls_rec {
    uint64_t end;
    size_t   plain;
} tls_rec;

/*
 * Ciphertext waiting for the socket. OpenSSL's writes (records, alerts,
 * KeyUpdates) always land here and always succeed, so OpenSSL never holds
 * a half-written record: such a record would break a KeyUpdate arriving
 * meanwhile (OpenSSL 3.0 answers it from inside SSL_read, and fails with
 * "bad length" while an application write is pending). A ring: while the
 * socket is full, moving what waits to the front before each new record
 * would copy up to 128 KiB per 16 KiB record.
 */
typedef struct tls_out {
    unsigned char *buf;          /* NULL when empty */
    size_t         head, pend, cap;  /* pend bytes wait from head, wrapping at cap */
    uint64_t       appended, sent; /* ciphertext totals, for tls_rec.end */
    tls_rec        recs[TLS_RECS]; /* ring */
    size_t         rhead, rcount;
    size_t         held;         /* plain bytes in recs: encrypted, unreported */
} tls_out;

typedef struct tls_conn {
    int           fd;
    SSL          *ssl;            /* owns the BIO */
    int           want;           /* PLX_WANT_* that unblocks the last op */
    bool          server;
    bool          connecting;     /* TCP connect in progress */
    bool          hs_done;        /* SSL_do_handshake said yes */
    bool          established;    /* ... and its last flight is on the wire */
    bool          failed;         /* fatal error: no more I/O, no close_notify */
    int           fail_code;
    plx_err_t     deferred;       /* recv error held back behind data */
    bool          drained;        /* the BIO's last recv returned less than asked */
    /* What the BIO saw, for error messages. */
    bool          eof;
    int           sys_errno;
    unsigned char first[4];       /* first bytes the peer sent */
    size_t        nfirst;
    /* Connector's checks (the verify callback fills the results). */
    bool          pinned;
    unsigned char pin[TLS_PIN_LEN];
    char         *ca_file;        /* owned copy; NULL: pinning alone */
    bool          pin_mismatch;
    bool          verify_failed;
    char          got[2 * TLS_PIN_LEN + 1];
    unsigned char *wbuf;          /* TLS_RECORD bytes, for coalescing */
    tls_out       out;
    uintptr_t     mapped_lo;      /* tls_prefault's last range: [lo, hi) */
    uintptr_t     mapped_hi;
    bool          no_prefault;    /* the kernel refused MADV_POPULATE_WRITE */
    tls_fault     fault;
    char          peer[PLX_SOCK_ADDR_MAX];
} tls_conn;

/* ---- tls_io.c ---- */

/* Drain OpenSSL's error queue into out: every entry's ERR_error_string_n
 * text, oldest (usually the root cause) first; "" if it is empty. */
void tls_errors(char *out, size_t len);

/* err = "<what>: <call>: <OpenSSL's errors>"; returns code. */
int tls_ossl_fail(plx_err_t *err, int code, const char *what, const char *call);

/* Reason code of the oldest queued OpenSSL error, 0 if none (kept queued). */
int tls_first_reason(void);

/* Read PLX_TLS_FAULT into f (see tls.c). */
void tls_fault_init(tls_fault *f);

/* Wire c->ssl to c->fd through our BIO (the SSL then owns the BIO). */
int tls_attach_bio(tls_conn *c, plx_err_t *err);

/* Send buffered ciphertext: PLX_OK when none is left, PLX_EAGAIN when the
 * socket is full, PLX_EIO (err filled, c->sys_errno set) on failure. */
int tls_out_flush(tls_conn *c, plx_err_t *err);

/* True when one more full record fits under the buffer's soft limit. */
bool tls_out_room(const tls_conn *c);

/* Note that an SSL_write just put `plain` caller bytes into the buffer. */
void tls_out_record(tls_conn *c, size_t plain);

/* Caller bytes whose records have all reached the socket since the last
 * call; they leave c->out.held. */
size_t tls_out_reap(tls_conn *c);

/* About to decrypt into [at, at + left) of the caller's buffer: when that
 * is large, map its next pages in one batch (see tls_io.c). */
void tls_prefault(tls_conn *c, unsigned char *at, size_t left);

/* Free the buffer if nothing waits in it (idle connections keep none). */
void tls_out_idle(tls_conn *c);

void tls_out_free(tls_conn *c);

/* ---- tls_trust.c ---- */

/* *out = a new context with what both sides share (TLS 1.3 only, AES-GCM
 * first, partial writes, read-ahead, no tickets); the caller owns it. */
int tls_ctx_new(bool server, const char *what, SSL_CTX **out, plx_err_t *err);

/* Load the listener's certificate chain and key from sec (PEM). */
int tls_load_identity(SSL_CTX *ctx, const plx_security *sec, plx_err_t *err);

/* Read the connector's half of sec into c (pin and/or CA file), refusing
 * neither with PLX_EINVAL. */
int tls_conn_trust(tls_conn *c, const plx_security *sec, plx_err_t *err);

/* *out = a new client context for c's pin and/or CA (caller owns it). */
int tls_client_ctx(tls_conn *c, SSL_CTX **out, plx_err_t *err);

/* SNI, and with a CA the host (or IP) the certificate must name. */
int tls_expect_host(tls_conn *c, const char *host, plx_err_t *err);

/* 2n lowercase hex digits of in, NUL-terminated. */
void tls_hex(const unsigned char *in, size_t n, char *out);

#endif
