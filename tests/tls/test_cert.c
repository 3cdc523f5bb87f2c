/*
 * Tests of core/profile/plx_cert: the controller's key and self-signed
 * certificate in a security directory, and certificate fingerprints.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "plx_cert.h"

#define FP_LEN (PLX_CERT_FINGERPRINT_HEX + 1)

typedef struct fixture {
    char dir[256];    /* a fresh security directory, 0700 */
    char cert[512], key[512];
    char fp[FP_LEN];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/plx-cert-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (plx_test_rmtree(f->dir) != 0)
        print_error("could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void ensure_ok(fixture *f)
{
    plx_err_t err = { 0 };
    int rc = plx_cert_ensure(f->dir, f->cert, sizeof f->cert, f->key, sizeof f->key, f->fp, &err);

    if (rc != PLX_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, PLX_OK);
    assert_int_equal(strlen(f->fp), PLX_CERT_FINGERPRINT_HEX);
    assert_int_equal(strspn(f->fp, "0123456789abcdef"), PLX_CERT_FINGERPRINT_HEX);
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static X509 *load_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    X509 *x;

    assert_non_null(fp);
    x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

/* SHA-256 over the DER, computed without X509_digest. */
static void independent_fingerprint(const char *path, char out[FP_LEN])
{
    X509 *x = load_cert(path);
    unsigned char *der = NULL, md[32];
    int len = i2d_X509(x, &der);
    unsigned int mdlen = 0;

    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    OPENSSL_free(der);
    X509_free(x);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 8192);

    assert_non_null(fp);
    assert_non_null(buf);
    assert_true(fread(buf, 1, 8191, fp) > 0);
    fclose(fp);
    return buf;
}

/* The generated certificate is what plx_cert.h promises. */
static void check_cert_contents(const char *path)
{
    X509 *x = load_cert(path);
    EVP_PKEY *k = X509_get0_pubkey(x);
    char cn[64] = "", group[32] = "";
    size_t glen = 0;
    int days = 0, secs = 0;
    BIGNUM *serial;

    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "plexa controller");
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_true(EVP_PKEY_is_a(k, "EC"));
    assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof group, &glen), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
    assert_true(days >= 3650 && days <= 3653);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);   /* valid now */
    serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    assert_non_null(serial);
    assert_int_equal(BN_num_bits(serial), 127);                        /* random, positive */
    BN_free(serial);
    assert_int_equal(X509_verify(x, k), 1);                            /* self-signed */
    X509_free(x);
}

/* First use generates a 0600 pair; later uses reuse it unchanged. */
static void test_generate_then_reuse(void **state)
{
    fixture *f = *state;
    char fp2[FP_LEN], fp3[FP_LEN], ind[FP_LEN], cert2[512], key2[512];
    char *key_before, *key_after;
    plx_err_t err = { 0 };

    ensure_ok(f);
    assert_non_null(strstr(f->cert, "/ipcontroller-cert.pem"));
    assert_non_null(strstr(f->key, "/ipcontroller-key.pem"));
    assert_int_equal(mode_of(f->cert), 0600);
    assert_int_equal(mode_of(f->key), 0600);
    check_cert_contents(f->cert);
    independent_fingerprint(f->cert, ind);
    assert_string_equal(ind, f->fp);
    assert_int_equal(plx_cert_fingerprint_file(f->cert, fp3, &err), PLX_OK);
    assert_string_equal(fp3, f->fp);

    key_before = slurp(f->key);
    assert_non_null(strstr(key_before, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(plx_cert_ensure(f->dir, cert2, sizeof cert2, key2, sizeof key2, fp2, &err),
                     PLX_OK);
    key_after = slurp(f->key);
    assert_string_equal(fp2, f->fp);
    assert_string_equal(cert2, f->cert);
    assert_string_equal(key_before, key_after);
    free(key_before);
    free(key_after);
}

/* Losing either file gives a new pair (new fingerprint), never a mix. */
static void test_regenerate_when_one_is_missing(void **state)
{
    fixture *f = *state;
    char old[FP_LEN];

    ensure_ok(f);
    snprintf(old, sizeof old, "%s", f->fp);
    assert_int_equal(unlink(f->key), 0);
    ensure_ok(f);
    assert_string_not_equal(old, f->fp);
    snprintf(old, sizeof old, "%s", f->fp);
    assert_int_equal(unlink(f->cert), 0);
    ensure_ok(f);
    assert_string_not_equal(old, f->fp);
    assert_int_equal(mode_of(f->key), 0600);
    assert_int_equal(mode_of(f->cert), 0600);
}

/* A key that group or others can read is refused, with the chmod fix. */
static void test_key_readable_by_others_refused(void **state)
{
    static const mode_t modes[] = { 0644, 0640, 0604, 0660 };
    fixture *f = *state;
    char cert[512], key[512], fp[FP_LEN] = "x";

    ensure_ok(f);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        plx_err_t err = { 0 };
        assert_int_equal(chmod(f->key, modes[i]), 0);
        assert_int_equal(plx_cert_ensure(f->dir, cert, sizeof cert, key, sizeof key, fp, &err),
                         PLX_EAUTH);
        print_message("%s\n", err.msg);
        assert_non_null(strstr(err.msg, "chmod 600"));
        assert_non_null(strstr(err.msg, f->key));
        assert_string_equal(fp, "");
        assert_string_equal(key, "");
    }
    assert_int_equal(chmod(f->key, 0600), 0);
    ensure_ok(f);
}

/* A certificate and a key that do not belong together are named. */
static void test_mismatched_pair(void **state)
{
    fixture *f = *state;
    char other[600], cert[512], key[512], fp[FP_LEN];
    plx_err_t err = { 0 };

    ensure_ok(f);
    snprintf(other, sizeof other, "%s/other", f->dir);
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(plx_cert_ensure(other, cert, sizeof cert, key, sizeof key, fp, &err), PLX_OK);
    assert_int_equal(plx_test_copy_file(cert, f->cert), 0);
    assert_int_equal(plx_cert_ensure(f->dir, cert, sizeof cert, key, sizeof key, fp, &err),
                     PLX_EINVAL);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "does not belong to key"));
    assert_non_null(strstr(err.msg, "ipcontroller-key.pem"));
}

/* Garbage in place of the key: the file and OpenSSL's reason are named. */
static void test_garbage_key(void **state)
{
    fixture *f = *state;
    char cert[512], key[512], fp[FP_LEN];
    plx_err_t err = { 0 };
    FILE *fp_ = NULL;

    ensure_ok(f);
    fp_ = fopen(f->key, "w");
    assert_non_null(fp_);
    fputs("not a key\n", fp_);
    fclose(fp_);
    assert_int_equal(plx_cert_ensure(f->dir, cert, sizeof cert, key, sizeof key, fp, &err),
                     PLX_EINVAL);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, f->key));
    assert_non_null(strstr(err.msg, "PEM_read_bio_PrivateKey"));
    assert_non_null(strstr(err.msg, "error:"));   /* ERR_error_string_n text */
}

static void test_missing_dir_and_small_buffers(void **state)
{
    fixture *f = *state;
    char path[600], cert[512], key[512], small[16], fp[FP_LEN];
    plx_err_t err = { 0 };

    snprintf(path, sizeof path, "%s/nope", f->dir);
    assert_int_equal(plx_cert_ensure(path, cert, sizeof cert, key, sizeof key, fp, &err),
                     PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(plx_cert_ensure(f->dir, cert, sizeof cert, small, sizeof small, fp, &err),
                     PLX_ELIMIT);
    assert_string_equal(small, "");
    assert_string_equal(fp, "");
}

static void test_fingerprint_file_errors(void **state)
{
    fixture *f = *state;
    char path[600], fp[FP_LEN] = "x";
    plx_err_t err = { 0 };
    FILE *out;

    snprintf(path, sizeof path, "%s/missing.pem", f->dir);
    assert_int_equal(plx_cert_fingerprint_file(path, fp, &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, path));
    assert_string_equal(fp, "");
    snprintf(path, sizeof path, "%s/junk.pem", f->dir);
    out = fopen(path, "w");
    assert_non_null(out);
    fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", out);
    fclose(out);
    assert_int_equal(plx_cert_fingerprint_file(path, fp, &err), PLX_EINVAL);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "junk.pem"));

    /* A certificate file that is a symbolic link is refused. */
    char link[620];
    snprintf(link, sizeof link, "%s/link.pem", f->dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(plx_cert_fingerprint_file(link, fp, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "symbolic link"));
    unlink(link);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_generate_then_reuse, setup, teardown),
    cmocka_unit_test_setup_teardown(test_regenerate_when_one_is_missing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_key_readable_by_others_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_mismatched_pair, setup, teardown),
    cmocka_unit_test_setup_teardown(test_garbage_key, setup, teardown),
    cmocka_unit_test_setup_teardown(test_missing_dir_and_small_buffers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fingerprint_file_errors, setup, teardown),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("cert", tests, NULL, NULL))
