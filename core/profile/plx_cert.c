/* The controller's key and self-signed certificate; see plx_cert.h. */
#include "plx_cert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "plx_profile.h"

#define CERT_CN        "plexa controller"
#define CERT_DAYS      3652          /* 10 years, leap days included */
#define CERT_SKEW_S    3600          /* valid from an hour ago: clocks differ */
#define CERT_SERIAL_LEN 16

/* err = "<what>: <call>: <OpenSSL's errors, oldest first>"; returns code. */
static int cert_ossl_fail(plx_err_t *err, int code, const char *what, const char *call)
{
    char why[320] = "";
    size_t used = 0;
    unsigned long e;

    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        if (used + 3 < sizeof why)
            used += (size_t)snprintf(why + used, sizeof why - used, "%s%s", used ? "; " : "",
                                     one);
        if (used >= sizeof why)
            used = sizeof why - 1;
    }
    return plx_err_set(err, code, "%s: %s: %s", what, call, why[0] ? why : "unknown error");
}

/* A key file that asks for a passphrase is refused, never prompted for. */
static int cert_no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    return -1;
}

/* ---- fingerprints --------------------------------------------------------- */

static int cert_fingerprint(X509 *x, char out[PLX_CERT_FINGERPRINT_HEX + 1], const char *what,
                            plx_err_t *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    out[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &len) != 1 || len * 2 != PLX_CERT_FINGERPRINT_HEX)
        return cert_ossl_fail(err, PLX_EIO, what, "X509_digest");
    for (unsigned int i = 0; i < len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[PLX_CERT_FINGERPRINT_HEX] = '\0';
    return PLX_OK;
}

/* *out = path opened for reading as a BIO (caller frees). */
static int cert_open(const char *path, BIO **out, plx_err_t *err)
{
    plx_err_t why = { 0 };
    FILE *f = plx_file_fopen_ro(path, &why);
    *out = NULL;
    if (!f) {
        if (err)
            *err = why;
        return why.code;
    }
    *out = BIO_new_fp(f, BIO_CLOSE);
    if (*out != NULL)
        return PLX_OK;
    fclose(f);
    ERR_clear_error();
    return plx_err_set(err, PLX_ENOMEM, "%s: out of memory for a BIO", path);
}

/* *out = the first certificate of PEM file path (caller frees). */
static int cert_read(const char *path, X509 **out, plx_err_t *err)
{
    BIO *b;
    int rc = cert_open(path, &b, err);

    *out = NULL;
    if (rc != PLX_OK)
        return rc;
    *out = PEM_read_bio_X509(b, NULL, cert_no_passphrase, NULL);
    BIO_free(b);
    if (*out == NULL)
        return cert_ossl_fail(err, PLX_EINVAL, path, "PEM_read_bio_X509 (not a PEM certificate?)");
    return PLX_OK;
}

int plx_cert_fingerprint_file(const char *cert_path,
                              char fingerprint[PLX_CERT_FINGERPRINT_HEX + 1], plx_err_t *err)
{
    X509 *x;
    int rc;

    fingerprint[0] = '\0';
    ERR_clear_error();
    rc = cert_read(cert_path, &x, err);
    if (rc == PLX_OK)
        rc = cert_fingerprint(x, fingerprint, cert_path, err);
    X509_free(x);
    return rc;
}

/* ---- reusing an existing pair --------------------------------------------- */

/* *out = the private key of PEM file path (caller frees). */
static int cert_read_key(const char *path, EVP_PKEY **out, plx_err_t *err)
{
    BIO *b;
    int rc = cert_open(path, &b, err);

    *out = NULL;
    if (rc != PLX_OK)
        return rc;
    *out = PEM_read_bio_PrivateKey(b, NULL, cert_no_passphrase, NULL);
    BIO_free(b);
    if (*out == NULL)
        return cert_ossl_fail(err, PLX_EINVAL, path,
                              "PEM_read_bio_PrivateKey (not a PEM key, or encrypted? plexa "
                              "needs an unencrypted key)");
    return PLX_OK;
}

static int cert_reuse(const char *cert, const char *key, char fp[PLX_CERT_FINGERPRINT_HEX + 1],
                      plx_err_t *err)
{
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    int rc = plx_file_check_private(key, err);

    if (rc == PLX_OK)
        rc = cert_read_key(key, &k, err);
    if (rc == PLX_OK)
        rc = cert_read(cert, &x, err);
    if (rc == PLX_OK && X509_check_private_key(x, k) != 1) {
        ERR_clear_error();
        rc = plx_err_set(err, PLX_EINVAL,
                         "certificate %s does not belong to key %s: restore the matching "
                         "pair, or delete both files to have plexa generate a new one",
                         cert, key);
    }
    if (rc == PLX_OK)
        rc = cert_fingerprint(x, fp, cert, err);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

/* ---- generating a new pair ------------------------------------------------ */

static int cert_set_serial(X509 *x, plx_err_t *err)
{
    unsigned char raw[CERT_SERIAL_LEN];
    BIGNUM *bn = NULL;
    int ok;

    if (RAND_bytes(raw, sizeof raw) != 1)
        return cert_ossl_fail(err, PLX_EIO, "certificate serial", "RAND_bytes");
    raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40);   /* positive, 127 bits */
    ok = (bn = BN_bin2bn(raw, sizeof raw, NULL)) != NULL &&
         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? PLX_OK
              : cert_ossl_fail(err, PLX_ENOMEM, "certificate serial", "BN_to_ASN1_INTEGER");
}

static int cert_set_names_and_dates(X509 *x, plx_err_t *err)
{
    X509_NAME *name = X509_get_subject_name(x);

    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -CERT_SKEW_S) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0, NULL) == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)CERT_CN, -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1)
        return cert_ossl_fail(err, PLX_ENOMEM, "new certificate",
                              "X509_set_version/X509_gmtime_adj/X509_NAME_add_entry_by_txt");
    return PLX_OK;
}

static int cert_add_ext(X509 *x, int nid, const char *value, plx_err_t *err)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? PLX_OK : cert_ossl_fail(err, PLX_EIO, "new certificate", "X509_add_ext");
}

static int cert_add_exts(X509 *x, plx_err_t *err)
{
    int rc = cert_add_ext(x, NID_basic_constraints, "critical,CA:FALSE", err);

    if (rc == PLX_OK)
        rc = cert_add_ext(x, NID_key_usage, "critical,digitalSignature", err);
    if (rc == PLX_OK)
        rc = cert_add_ext(x, NID_ext_key_usage, "serverAuth", err);
    if (rc == PLX_OK)
        rc = cert_add_ext(x, NID_subject_key_identifier, "hash", err);
    return rc;
}

/* *out = a new self-signed certificate for k (caller frees). */
static int cert_make(EVP_PKEY *k, X509 **out, plx_err_t *err)
{
    X509 *x = X509_new();
    int rc;

    *out = NULL;
    if (x == NULL)
        return cert_ossl_fail(err, PLX_ENOMEM, "new certificate", "X509_new");
    rc = cert_set_serial(x, err);
    if (rc == PLX_OK)
        rc = cert_set_names_and_dates(x, err);
    if (rc == PLX_OK && X509_set_pubkey(x, k) != 1)
        rc = cert_ossl_fail(err, PLX_EIO, "new certificate", "X509_set_pubkey");
    if (rc == PLX_OK)
        rc = cert_add_exts(x, err);
    if (rc == PLX_OK && X509_sign(x, k, EVP_sha256()) <= 0)
        rc = cert_ossl_fail(err, PLX_EIO, "new certificate", "X509_sign");
    if (rc != PLX_OK) {
        X509_free(x);
        return rc;
    }
    *out = x;
    return PLX_OK;
}

/* PEM text written by one of the PEM_write_bio_* calls, into a new
 * NUL-terminated string (caller frees, cleansing it if it holds a key). */
static char *cert_pem_text(BIO *mem, size_t *len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(mem, &data);
    char *out = n > 0 ? malloc((size_t)n + 1) : NULL;

    if (out != NULL) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
        *len = (size_t)n;
    }
    return out;
}

/* Write the PEM of key k (if not NULL) or else of certificate x to path,
 * atomically, mode 0600. Copies of the key's text are cleansed. */
static int cert_write_pem(const char *path, EVP_PKEY *k, X509 *x, plx_err_t *err)
{
    BIO *mem = BIO_new(k != NULL ? BIO_s_secmem() : BIO_s_mem());
    char *text = NULL;
    size_t len = 0;
    int ok, rc;

    ok = mem != NULL && (k != NULL ? PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL)
                                   : PEM_write_bio_X509(mem, x)) == 1;
    if (ok)
        text = cert_pem_text(mem, &len);
    BIO_free(mem);   /* a secure-memory BIO is cleansed when freed */
    if (text == NULL)
        return cert_ossl_fail(err, PLX_ENOMEM, path,
                              k != NULL ? "PEM_write_bio_PrivateKey" : "PEM_write_bio_X509");
    rc = plx_file_write_secret(path, text, err);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

static int cert_generate(const char *cert, const char *key, char fp[PLX_CERT_FINGERPRINT_HEX + 1],
                         plx_err_t *err)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = NULL;
    int rc = PLX_OK;

    if (k == NULL)
        rc = cert_ossl_fail(err, PLX_EIO, "new controller key", "EVP_PKEY_Q_keygen(EC P-256)");
    if (rc == PLX_OK)
        rc = cert_make(k, &x, err);
    /* A certificate left without its key must not outlive a crash below
     * and pair up with the new key. */
    if (rc == PLX_OK && unlink(cert) != 0 && errno != ENOENT)
        rc = plx_err_set(err, PLX_EIO, "unlink %s: %s", cert, strerror(errno));
    if (rc == PLX_OK)
        rc = cert_write_pem(key, k, NULL, err);
    if (rc == PLX_OK)
        rc = cert_write_pem(cert, NULL, x, err);
    if (rc == PLX_OK)
        rc = cert_fingerprint(x, fp, cert, err);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

/* ---- the pair in a directory ------------------------------------------------ */

/* 1 if path exists, 0 if not, a PLX_E* code on other stat failures. */
static int cert_exists(const char *path, plx_err_t *err)
{
    struct stat st;

    if (stat(path, &st) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    return plx_err_set(err, PLX_EIO, "stat %s: %s", path, strerror(errno));
}

/* Lock security_dir against concurrent generation: *fd holds the lock
 * until the caller closes it. */
static int cert_lock_dir(const char *dir, int *fd, plx_err_t *err)
{
    int rc;

    *fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0)
        return plx_err_set(err, errno == ENOENT ? PLX_ENOTFOUND : PLX_EIO,
                           "security directory %s: %s", dir, strerror(errno));
    while (flock(*fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            rc = plx_err_set(err, PLX_EIO, "flock %s: %s", dir, strerror(errno));
            close(*fd);
            *fd = -1;
            return rc;
        }
    }
    return PLX_OK;
}

static int cert_paths(const char *dir, char *cert, size_t cert_len, char *key, size_t key_len,
                      plx_err_t *err)
{
    int a = snprintf(cert, cert_len, "%s/%s", dir, PLX_CERT_FILE);
    int b = snprintf(key, key_len, "%s/%s", dir, PLX_CERT_KEY_FILE);

    if (a < 0 || (size_t)a >= cert_len || b < 0 || (size_t)b >= key_len)
        return plx_err_set(err, PLX_ELIMIT,
                           "certificate paths under %.200s do not fit in %zu bytes", dir,
                           (size_t)a >= cert_len ? cert_len : key_len);
    return PLX_OK;
}

static int cert_ensure_locked(const char *cert, const char *key,
                              char fp[PLX_CERT_FINGERPRINT_HEX + 1], plx_err_t *err)
{
    int have_cert = cert_exists(cert, err), have_key;

    if (have_cert < 0)
        return have_cert;
    have_key = cert_exists(key, err);
    if (have_key < 0)
        return have_key;
    if (have_cert && have_key)
        return cert_reuse(cert, key, fp, err);
    return cert_generate(cert, key, fp, err);
}

int plx_cert_ensure(const char *security_dir, char *cert_path, size_t cert_len,
                    char *key_path, size_t key_len,
                    char fingerprint[PLX_CERT_FINGERPRINT_HEX + 1], plx_err_t *err)
{
    int fd = -1, rc;

    fingerprint[0] = '\0';
    ERR_clear_error();
    rc = cert_paths(security_dir, cert_path, cert_len, key_path, key_len, err);
    if (rc == PLX_OK)
        rc = cert_lock_dir(security_dir, &fd, err);
    if (rc == PLX_OK) {
        rc = cert_ensure_locked(cert_path, key_path, fingerprint, err);
        close(fd);   /* releases the lock */
    }
    if (rc != PLX_OK) {
        fingerprint[0] = '\0';
        if (cert_len)
            cert_path[0] = '\0';
        if (key_len)
            key_path[0] = '\0';
    }
    return rc;
}
