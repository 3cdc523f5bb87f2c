/* Test certificates; see tls_testcerts.h. */
#include "tls_testcerts.h"

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static int tc_fail(const char *what)
{
    fprintf(stderr, "tc_make: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    return -1;
}

static int tc_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? 0 : tc_fail(value);
}

static int tc_write(const char *path, EVP_PKEY *k, X509 *x)
{
    FILE *fp = fopen(path, "w");
    int ok;

    if (fp == NULL)
        return tc_fail(path);
    ok = k != NULL ? PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL)
                   : PEM_write_X509(fp, x);
    fclose(fp);
    return ok == 1 ? 0 : tc_fail(path);
}

static int tc_load_issuer(const char *cert, const char *key, X509 **x, EVP_PKEY **k)
{
    FILE *fc = fopen(cert, "r"), *fk = fopen(key, "r");

    *x = fc ? PEM_read_X509(fc, NULL, NULL, NULL) : NULL;
    *k = fk ? PEM_read_PrivateKey(fk, NULL, NULL, NULL) : NULL;
    if (fc)
        fclose(fc);
    if (fk)
        fclose(fk);
    return *x != NULL && *k != NULL ? 0 : tc_fail("loading the issuer");
}

static int tc_fill(X509 *x, EVP_PKEY *k, const char *cn, const char *san, bool is_ca,
                   X509 *issuer, EVP_PKEY *ikey)
{
    static long serial = 1000;
    X509_NAME *name = X509_get_subject_name(x);

    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_set_version(x, X509_VERSION_3);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(x, k);
    if (tc_ext(x, issuer ? issuer : x, NID_basic_constraints,
               is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") != 0 ||
        tc_ext(x, issuer ? issuer : x, NID_key_usage,
               is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") != 0 ||
        (san != NULL && tc_ext(x, issuer ? issuer : x, NID_subject_alt_name, san) != 0))
        return -1;
    return X509_sign(x, ikey ? ikey : k, EVP_sha256()) > 0 ? 0 : tc_fail("X509_sign");
}

int tc_make(const char *cert_path, const char *key_path, const char *cn, const char *san,
            bool is_ca, const char *issuer_cert, const char *issuer_key)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *ikey = NULL;
    X509 *x = X509_new(), *issuer = NULL;
    int rc = k != NULL && x != NULL ? 0 : tc_fail("keygen");

    if (rc == 0 && issuer_cert != NULL)
        rc = tc_load_issuer(issuer_cert, issuer_key, &issuer, &ikey);
    if (rc == 0)
        rc = tc_fill(x, k, cn, san, is_ca, issuer, ikey);
    if (rc == 0)
        rc = tc_write(key_path, k, NULL);
    if (rc == 0)
        rc = tc_write(cert_path, NULL, x);
    X509_free(x);
    X509_free(issuer);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ikey);
    return rc;
}
