/*
 * transport-tls: contexts and trust (see tls_int.h).
 *
 * The listener proves itself with sec->cert_file + sec->key_file. The
 * connector authenticates the server by a pin, sec->fingerprint (SHA-256
 * of the certificate's DER: "sha256:HEX", "sha256=HEX" or bare HEX; 64
 * hex digits, ':' allowed between bytes, any case), checked in the verify
 * callback so a wrong certificate stops the handshake before the client
 * has sent anything; or by sec->ca_file, ordinary chain verification plus
 * the host (or IP address) it connected to. With both, both must pass.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tls_int.h"

#define TLS_SUITES   "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_READ_BUF (64u * 1024u)   /* read-ahead: a burst of records per recv() */

/* ---- contexts ------------------------------------------------------------ */

int tls_ctx_new(bool server, const char *what, SSL_CTX **out, plx_err_t *err)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

    *out = NULL;
    if (ctx == NULL)
        return tls_ossl_fail(err, PLX_ENOMEM, what, "SSL_CTX_new");
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS_SUITES) != 1 || SSL_CTX_set_num_tickets(ctx, 0) != 1) {
        SSL_CTX_free(ctx);
        return tls_ossl_fail(err, PLX_EIO, what, "SSL_CTX_set_ciphersuites (TLS 1.3 only)");
    }
    /* Server order wins: AES-128-GCM, the fastest with AES-NI. No tickets,
     * no resumption: plexa connections are few and long-lived. */
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET |
                                 SSL_OP_NO_RENEGOTIATION);
    /* Not SSL_MODE_RELEASE_BUFFERS: freeing and refaulting the 64 KiB
     * read-ahead buffer after every record cost a third of the bandwidth
     * (measured with tests/tls). A connection keeps ~85 KiB of OpenSSL
     * buffers once it has carried data. PARTIAL_WRITE: one record per
     * SSL_write, so sendv can stop between records. MOVING_WRITE_BUFFER is
     * only a safety net: our BIO never makes OpenSSL retry a write. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUF);
    *out = ctx;
    return PLX_OK;
}

/* A missing file is PLX_ENOTFOUND, anything else wrong with it PLX_EINVAL. */
static int tls_file_code(void)
{
    unsigned long e = ERR_peek_error();

    return ERR_GET_LIB(e) == ERR_LIB_SYS && ERR_GET_REASON(e) == ENOENT ? PLX_ENOTFOUND
                                                                        : PLX_EINVAL;
}

/* A key file that asks for a passphrase is refused, never prompted for on
 * the terminal: a controller started by ipcluster has nobody to type it. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    return -1;
}

int tls_load_identity(SSL_CTX *ctx, const plx_security *sec, plx_err_t *err)
{
    char what[4200];

    if (sec == NULL || sec->cert_file == NULL || !*sec->cert_file || sec->key_file == NULL ||
        !*sec->key_file)
        return plx_err_set(err, PLX_EINVAL,
                           "the tls transport needs a certificate and a key (PEM files) to "
                           "listen");
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
    snprintf(what, sizeof what, "TLS certificate %s", sec->cert_file);
    if (SSL_CTX_use_certificate_chain_file(ctx, sec->cert_file) != 1)
        return tls_ossl_fail(err, tls_file_code(), what, "SSL_CTX_use_certificate_chain_file");
    snprintf(what, sizeof what, "TLS private key %s (for certificate %s)", sec->key_file,
             sec->cert_file);
    if (SSL_CTX_use_PrivateKey_file(ctx, sec->key_file, SSL_FILETYPE_PEM) != 1)
        return tls_ossl_fail(err, tls_file_code(), what, "SSL_CTX_use_PrivateKey_file");
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tls_ossl_fail(err, PLX_EINVAL, what, "SSL_CTX_check_private_key");
    return PLX_OK;
}

/* ---- the pin ------------------------------------------------------------- */

static int tls_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static int tls_parse_pin(const char *s, unsigned char pin[TLS_PIN_LEN], plx_err_t *err)
{
    const char *p = s;
    size_t n = 0;

    if (strncasecmp(p, "sha256", 6) == 0 && (p[6] == ':' || p[6] == '='))
        p += 7;
    for (; *p && n < TLS_PIN_LEN; p++) {
        int hi = tls_hexval(p[0]), lo = hi < 0 ? -1 : tls_hexval(p[1]);
        if (*p == ':' && n > 0)
            continue;
        if (hi < 0 || lo < 0)
            break;
        pin[n++] = (unsigned char)(hi << 4 | lo);
        p++;
    }
    if (n != TLS_PIN_LEN || *p != '\0')
        return plx_err_set(err, PLX_EINVAL,
                           "bad certificate fingerprint '%.100s' (expected sha256:<64 hex "
                           "digits>, the SHA-256 of the controller's certificate)",
                           s);
    return PLX_OK;
}

void tls_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Compare cert's SHA-256 with the pin; keep what we got for the message. */
static bool tls_pin_matches(tls_conn *c, X509 *cert)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (cert == NULL || X509_digest(cert, EVP_sha256(), md, &len) != 1 || len != TLS_PIN_LEN) {
        snprintf(c->got, sizeof c->got, "(no certificate digest)");
        return false;
    }
    tls_hex(md, len, c->got);
    return CRYPTO_memcmp(md, c->pin, TLS_PIN_LEN) == 0;
}

/*
 * Called by OpenSSL for each certificate of the server's chain, with ok
 * saying whether chain verification (against ca_file) passed so far.
 * Pinning alone ignores chain verdicts (a self-signed certificate has no
 * chain) and checks the leaf (depth 0) against the pin.
 */
static int tls_verify_cb(int ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    tls_conn *c = ssl == NULL ? NULL : SSL_get_app_data(ssl);

    if (c == NULL)
        return 0;
    if (c->ca_file == NULL)
        ok = 1;
    if (!ok) {
        c->verify_failed = true;
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(store) > 0 || !c->pinned)
        return 1;
    if (tls_pin_matches(c, X509_STORE_CTX_get_current_cert(store)))
        return 1;
    c->pin_mismatch = true;
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);   /* alert: bad_certificate */
    return 0;
}

/* ---- the connector ------------------------------------------------------- */

int tls_conn_trust(tls_conn *c, const plx_security *sec, plx_err_t *err)
{
    bool has_pin = sec != NULL && sec->fingerprint != NULL && *sec->fingerprint;
    bool has_ca = sec != NULL && sec->ca_file != NULL && *sec->ca_file;

    if (!has_pin && !has_ca)
        return plx_err_set(err, PLX_EINVAL,
                           "connect to %s: plx+tls needs a #sha256= fingerprint or a CA file "
                           "to authenticate the controller",
                           c->peer);
    if (has_pin) {
        if (tls_parse_pin(sec->fingerprint, c->pin, err) != PLX_OK)
            return plx_err_prefix(err, "connect");
        c->pinned = true;
    }
    if (has_ca && (c->ca_file = strdup(sec->ca_file)) == NULL)
        return plx_err_set(err, PLX_ENOMEM, "connect to %s: out of memory", c->peer);
    return PLX_OK;
}

int tls_client_ctx(tls_conn *c, SSL_CTX **out, plx_err_t *err)
{
    char what[4200];
    SSL_CTX *ctx;
    int rc = tls_ctx_new(false, c->peer, &ctx, err);

    *out = NULL;
    if (rc != PLX_OK)
        return rc;
    if (c->ca_file != NULL) {
        snprintf(what, sizeof what, "connect to %s: TLS CA file %s", c->peer, c->ca_file);
        if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1) {
            rc = tls_ossl_fail(err, tls_file_code(), what, "SSL_CTX_load_verify_locations");
            SSL_CTX_free(ctx);
            return rc;
        }
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_cb);
    *out = ctx;
    return PLX_OK;
}

static bool tls_is_ip(const char *host)
{
    unsigned char addr[16];

    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int tls_expect_host(tls_conn *c, const char *host, plx_err_t *err)
{
    X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
    bool ip = tls_is_ip(host);

    if (!ip && SSL_set_tlsext_host_name(c->ssl, host) != 1)
        return tls_ossl_fail(err, PLX_EINVAL, c->peer, "SSL_set_tlsext_host_name");
    if (c->ca_file == NULL)
        return PLX_OK;
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1 : SSL_set1_host(c->ssl, host) != 1)
        return tls_ossl_fail(err, PLX_EINVAL, c->peer,
                             ip ? "X509_VERIFY_PARAM_set1_ip_asc" : "SSL_set1_host");
    return PLX_OK;
}
