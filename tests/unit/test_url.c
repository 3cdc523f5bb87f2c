/* Unit tests of capability URLs: core/profile/plx_url.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "plx_test.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plx_profile.h"
#include "plx_url.h"

#define TOK64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP64  "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define TOK32 "0123456789abcdef0123456789abcdef"

/* ---- fixture: a private PLEXA_DIR ---------------------------------------- */

static char tmpdir[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plx-test-url-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    setenv("PLEXA_DIR", tmpdir, 1);
    unsetenv("PLEXA_URL");
    (void)state;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("PLEXA_URL");
    return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Parse s expecting failure with code and a message containing want. */
static void parse_fails(const char *s, int code, const char *want)
{
    plx_url_t u;
    plx_err_t err = { 0 };
    int rc = plx_url_parse(s, &u, &err);
    if (rc != code || !strstr(err.msg, want))
        fail_msg("parse '%s': rc %d msg '%s' (wanted %d, '%s')", s ? s : "(null)", rc, err.msg,
                 code, want);
    assert_string_equal(u.host, "");   /* zeroed on error */
    assert_int_equal(u.port, 0);
}

/* ---- parsing --------------------------------------------------------------- */

/* The plain forms parse into their fields. */
static void test_parse_ok(void **state)
{
    (void)state;
    plx_url_t u;
    plx_err_t err = { 0 };
    assert_int_equal(plx_url_parse("plx+tcp://127.0.0.1:5000/" TOK64, &u, &err), PLX_OK);
    assert_string_equal(u.transport, "tcp");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 5000);
    assert_string_equal(u.token, TOK64);
    assert_string_equal(u.fingerprint, "");

    assert_int_equal(plx_url_parse("plx+tls://node-7.cluster.example:65535/" TOK64
                                   "#sha256=" FP64, &u, &err), PLX_OK);
    assert_string_equal(u.transport, "tls");
    assert_string_equal(u.host, "node-7.cluster.example");
    assert_int_equal(u.port, 65535);
    assert_string_equal(u.fingerprint, FP64);

    assert_int_equal(plx_url_parse("plx+tcp://[::1]:1/" TOK32, &u, &err), PLX_OK);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 1);
    assert_string_equal(u.token, TOK32);
}

/* Hex is accepted in either case and stored lowercase; so is the scheme. */
static void test_parse_normalises_case(void **state)
{
    (void)state;
    plx_url_t u;
    plx_err_t err = { 0 };
    assert_int_equal(plx_url_parse("PLX+TLS://h:9/" "0123456789ABCDEF0123456789ABCDEF"
                                   "#SHA256=" "FEDCBA9876543210FEDCBA9876543210"
                                   "FEDCBA9876543210FEDCBA9876543210", &u, &err), PLX_OK);
    assert_string_equal(u.transport, "tls");
    assert_string_equal(u.token, TOK32);
    assert_string_equal(u.fingerprint, FP64);
}

/* Token lengths 32..128 are accepted, 31 and 129 refused. */
static void test_token_lengths(void **state)
{
    (void)state;
    char s[512], tok[200];
    plx_url_t u;
    plx_err_t err = { 0 };
    for (int n = 30; n <= 130; n++) {
        memset(tok, 'a', (size_t)n);
        tok[n] = '\0';
        snprintf(s, sizeof s, "plx+tcp://h:1/%s", tok);
        int rc = plx_url_parse(s, &u, &err);
        assert_int_equal(rc, n >= 32 && n <= 128 ? PLX_OK : PLX_EINVAL);
        if (rc != PLX_OK)
            assert_non_null(strstr(err.msg, "expected 32..128"));
    }
}

static void test_scheme_errors(void **state)
{
    (void)state;
    parse_fails(NULL, PLX_EINVAL, "URL is empty");
    parse_fails("", PLX_EINVAL, "URL is empty");
    parse_fails("http://h:1/" TOK64, PLX_EINVAL,
                "URL 'http://h:1/...': unknown scheme 'http' (expected plx+tcp:// or plx+tls://)");
    parse_fails("plx+udp://h:1/" TOK64, PLX_EINVAL, "unknown scheme 'plx+udp'");
    parse_fails("h:1/" TOK64, PLX_EINVAL, "no scheme");
    parse_fails("plx+tcp:/h:1/" TOK64, PLX_EINVAL, "no scheme");
}

static void test_host_errors(void **state)
{
    (void)state;
    parse_fails("plx+tcp://:1/" TOK64, PLX_EINVAL, "empty host");
    parse_fails("plx+tcp://[]:1/" TOK64, PLX_EINVAL, "empty host");
    parse_fails("plx+tcp:///" TOK64, PLX_EINVAL, "empty host");
    parse_fails("plx+tcp://::1:5000/" TOK64, PLX_EINVAL, "IPv6 host must be in brackets");
    parse_fails("plx+tcp://fe80::1:5000/" TOK64, PLX_EINVAL, "IPv6 host must be in brackets");
    parse_fails("plx+tcp://[::1:5000/" TOK64, PLX_EINVAL, "unterminated '['");
    parse_fails("plx+tcp://[host]:5000/" TOK64, PLX_EINVAL, "only IPv6 addresses go in brackets");
    parse_fails("plx+tcp://[::g]:5000/" TOK64, PLX_EINVAL, "not a valid IPv6 address");
    parse_fails("plx+tcp://10.0.0.256:5000/" TOK64, PLX_EINVAL, "not a valid IPv4 address");
    parse_fails("plx+tcp://a..b:5000/" TOK64, PLX_EINVAL, "empty label");
    parse_fails("plx+tcp://a b:5000/" TOK64, PLX_EINVAL, "contains ' '");
    parse_fails("plx+tcp://a\tb:5000/" TOK64, PLX_EINVAL, "contains '?'");

    char s[600], host[300];
    memset(host, 'x', 256);
    host[256] = '\0';
    snprintf(s, sizeof s, "plx+tcp://%s:1/" TOK64, host);
    parse_fails(s, PLX_EINVAL, "host is longer than 255 characters");
    memset(host, 'x', 64);
    host[64] = '\0';
    snprintf(s, sizeof s, "plx+tcp://%s:1/" TOK64, host);
    parse_fails(s, PLX_EINVAL, "label longer than 63");
}

static void test_port_errors(void **state)
{
    (void)state;
    parse_fails("plx+tcp://h/" TOK64, PLX_EINVAL, "missing port (expected HOST:PORT)");
    parse_fails("plx+tcp://h:/" TOK64, PLX_EINVAL, "missing port");
    parse_fails("plx+tcp://[::1]/" TOK64, PLX_EINVAL, "missing port");
    parse_fails("plx+tcp://h:0/" TOK64, PLX_EINVAL, "port 0 out of range (expected 1..65535)");
    parse_fails("plx+tcp://h:65536/" TOK64, PLX_EINVAL, "port 65536 out of range");
    parse_fails("plx+tcp://h:123456789012/" TOK64, PLX_EINVAL, "out of range");
    parse_fails("plx+tcp://h:12ab/" TOK64, PLX_EINVAL, "port is not a number");
    parse_fails("plx+tcp://h:-1/" TOK64, PLX_EINVAL, "missing port");
}

static void test_token_errors(void **state)
{
    (void)state;
    parse_fails("plx+tcp://h:1", PLX_EINVAL, "missing capability token (expected /TOKEN");
    parse_fails("plx+tcp://h:1/", PLX_EINVAL, "missing capability token");
    parse_fails("plx+tls://h:1/#sha256=" FP64, PLX_EINVAL, "missing capability token");
    parse_fails("plx+tcp://h:1/0123456789abcdefg123456789abcdef0123", PLX_EINVAL,
                "bad token: character 17 is not a hex digit");
    parse_fails("plx+tcp://h:1/abc", PLX_EINVAL, "bad token: 3 hex characters");
}

static void test_fingerprint_errors(void **state)
{
    (void)state;
    parse_fails("plx+tls://h:1/" TOK64, PLX_EINVAL, "needs the controller's certificate fingerprint");
    parse_fails("plx+tcp://h:1/" TOK64 "#sha256=" FP64, PLX_EINVAL, "does not take a fingerprint");
    parse_fails("plx+tls://h:1/" TOK64 "#md5=" FP64, PLX_EINVAL, "bad fingerprint (expected #sha256=");
    parse_fails("plx+tls://h:1/" TOK64 "#sha256=abc", PLX_EINVAL, "bad fingerprint: 3 hex characters");
    parse_fails("plx+tls://h:1/" TOK64 "#sha256=" FP64 "0", PLX_EINVAL, "65 hex characters");
    parse_fails("plx+tls://h:1/" TOK64 "#sha256=fedcbaz", PLX_EINVAL,
                "bad fingerprint: character 7 is not a hex digit");
}

static void test_trailing_garbage(void **state)
{
    (void)state;
    parse_fails("plx+tcp://h:1/" TOK64 "/x", PLX_EINVAL, "trailing garbage '/x'");
    parse_fails("plx+tcp://h:1/" TOK64 "?a=b", PLX_EINVAL, "unknown query");
    parse_fails("plx+tcp://h:1/" TOK64 " ", PLX_EINVAL, "trailing garbage ' '");
    parse_fails("plx+tcp://h:1/" TOK64 "\n", PLX_EINVAL, "trailing garbage '?'");
    parse_fails("plx+tls://h:1/" TOK64 "#sha256=" FP64 "#", PLX_EINVAL, "trailing garbage '#'");
}

/* The capability never shows up in an error message (they reach logs). */
static void test_errors_hide_token(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "plx+tcp://h:1/" TOK64 "/x",
        "plx+tcp://h:0/" TOK64,
        "plx+tls://h:1/" TOK64,
        "http://h:1/" TOK64,
        "plx+tcp://h:1/" TOK64 "#sha256=" FP64,
        "plx+tcp://" TOK64,
        "plx+tcp://" TOK64 ":1",
        "plx+tcp://" TOK64 ":1/x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        plx_url_t u;
        plx_err_t err = { 0 };
        assert_int_equal(plx_url_parse(bad[i], &u, &err), PLX_EINVAL);
        if (strstr(err.msg, "0123456789abcdef0123"))
            fail_msg("token leaked: %s", err.msg);
    }
}

/* ---- formatting ------------------------------------------------------------ */

static void test_format_round_trip(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "plx+tcp://127.0.0.1:5000/" TOK64,
        "plx+tcp://[::1]:1/" TOK32,
        "plx+tls://[2001:db8::7]:443/" TOK64 "#sha256=" FP64,
        "plx+tls://node_3.example.:65535/" TOK64 "#sha256=" FP64,
        "plx+tls://127.0.0.1:5000/" TOK64 "?shm=plexa-1234-ab.c_d#sha256=" FP64,
        "plx+tcp://127.0.0.1:5000/" TOK64 "?shm=x",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        plx_url_t u, v;
        plx_err_t err = { 0 };
        char out[512];
        assert_int_equal(plx_url_parse(urls[i], &u, &err), PLX_OK);
        assert_int_equal(plx_url_format(&u, out, sizeof out, &err), PLX_OK);
        assert_string_equal(out, urls[i]);
        assert_int_equal(plx_url_parse(out, &v, &err), PLX_OK);
        assert_memory_equal(&u, &v, sizeof u);
    }
}

static void test_shm_query(void **state)
{
    (void)state;
    static const char *const bad_urls[] = {
        "plx+tcp://127.0.0.1:5000/" TOK64 "?shm=",
        "plx+tcp://127.0.0.1:5000/" TOK64 "?shm=a/b",
        "plx+tcp://127.0.0.1:5000/" TOK64 "?shm=a b",
        "plx+tcp://127.0.0.1:5000/" TOK64 "?other=1",
        "plx+tcp://127.0.0.1:5000/" TOK64 "?shm="
        "0123456789012345678901234567890123456789012345678901234567890123",
    };
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        plx_url_t u;
        plx_err_t err = { 0 };
        assert_int_equal(plx_url_parse(bad_urls[i], &u, &err), PLX_EINVAL);
        assert_null(strstr(err.msg, TOK64));   /* the token is never shown */
        assert_string_equal(u.shm, "");
    }
}

static void test_format_errors(void **state)
{
    (void)state;
    plx_url_t u;
    plx_err_t err = { 0 };
    char out[512];
    assert_int_equal(plx_url_parse("plx+tcp://h:1/" TOK64, &u, &err), PLX_OK);

    assert_int_equal(plx_url_format(&u, out, 20, &err), PLX_ELIMIT);
    assert_string_equal(out, "");
    assert_non_null(strstr(err.msg, "the buffer has 20"));

    plx_url_t v = u;
    v.port = 0;
    assert_int_equal(plx_url_format(&v, out, sizeof out, &err), PLX_EINVAL);
    v = u;
    snprintf(v.transport, sizeof v.transport, "udp");
    assert_int_equal(plx_url_format(&v, out, sizeof out, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "transport 'udp'"));
    v = u;
    snprintf(v.fingerprint, sizeof v.fingerprint, "%s", FP64);
    assert_int_equal(plx_url_format(&v, out, sizeof out, &err), PLX_EINVAL);
    v = u;
    v.token[0] = 'A';
    assert_int_equal(plx_url_format(&v, out, sizeof out, &err), PLX_EINVAL);
    v = u;
    snprintf(v.host, sizeof v.host, "bad host");
    assert_int_equal(plx_url_format(&v, out, sizeof out, &err), PLX_EINVAL);
    v = u;
    snprintf(v.transport, sizeof v.transport, "tls");
    assert_int_equal(plx_url_format(&v, out, sizeof out, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "needs a fingerprint"));
}

static void test_check_host(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    assert_int_equal(plx_url_check_host("localhost", &err), PLX_OK);
    assert_int_equal(plx_url_check_host("0.0.0.0", &err), PLX_OK);
    assert_int_equal(plx_url_check_host("::", &err), PLX_OK);
    assert_int_equal(plx_url_check_host("fe80::1", &err), PLX_OK);
    assert_int_equal(plx_url_check_host("", &err), PLX_EINVAL);
    assert_int_equal(plx_url_check_host("1.2.3", &err), PLX_EINVAL);
    assert_int_equal(plx_url_check_host(".a", &err), PLX_EINVAL);
    assert_int_equal(plx_url_check_host("a/b", &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "host 'a/b' contains '/'"));
}

/* ---- resolving ------------------------------------------------------------- */

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

/* A URL given directly, or a file given by path, wins over everything. */
static void test_resolve_direct_and_file(void **state)
{
    (void)state;
    plx_url_t u;
    plx_err_t err = { 0 };
    char path[512];
    setenv("PLEXA_URL", "plx+tcp://env:2/" TOK64, 1);

    assert_int_equal(plx_url_resolve("plx+tcp://direct:1/" TOK64, NULL, "x.url", &u, &err), PLX_OK);
    assert_string_equal(u.host, "direct");

    snprintf(path, sizeof path, "%s/mec.url", tmpdir);
    write_file(path, "plx+tcp://fromfile:3/" TOK64 "\n\n", 0600);
    assert_int_equal(plx_url_resolve(path, NULL, "x.url", &u, &err), PLX_OK);
    assert_string_equal(u.host, "fromfile");
    assert_int_equal(u.port, 3);

    /* Readable by others: refused, with the fix in the message. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(plx_url_resolve(path, NULL, "x.url", &u, &err), PLX_EAUTH);
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_non_null(strstr(err.msg, path));

    write_file(path, "garbage\n", 0600);
    assert_int_equal(plx_url_resolve(path, NULL, "x.url", &u, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "connection file "));
    assert_non_null(strstr(err.msg, "no scheme"));

    snprintf(path, sizeof path, "%s/missing.url", tmpdir);
    assert_int_equal(plx_url_resolve(path, NULL, "x.url", &u, &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no connection file at "));
}

/* PLEXA_URL is used when no profile is named, and only then. */
static void test_resolve_env(void **state)
{
    (void)state;
    plx_url_t u;
    plx_err_t err = { 0 };
    setenv("PLEXA_URL", "plx+tcp://env:2/" TOK64, 1);
    assert_int_equal(plx_url_resolve(NULL, NULL, "x.url", &u, &err), PLX_OK);
    assert_string_equal(u.host, "env");
    assert_int_equal(plx_url_resolve("", NULL, "x.url", &u, &err), PLX_OK);
    assert_string_equal(u.host, "env");

    setenv("PLEXA_URL", "plx+tcp://env/" TOK64, 1);
    assert_int_equal(plx_url_resolve(NULL, NULL, "x.url", &u, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "PLEXA_URL: URL 'plx+tcp://env/...': missing port"));

    /* A named profile beats the environment. */
    assert_int_equal(plx_url_resolve(NULL, "other", "x.url", &u, &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no profile 'other'"));
}

/* Without URL, file or PLEXA_URL, the profile's security/ file is read. */
static void test_resolve_profile(void **state)
{
    (void)state;
    plx_url_t u;
    plx_err_t err = { 0 };
    plx_profile_t p;
    char path[4200], want[8400];

    assert_int_equal(plx_url_resolve(NULL, NULL, "ipcontroller-mec.url", &u, &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no profile 'default'"));
    assert_non_null(strstr(err.msg, "start it with `ipcluster start --profile=default`"));

    assert_int_equal(plx_profile_open("pbs", 1, &p, &err), PLX_OK);
    assert_int_equal(plx_url_resolve(NULL, "pbs", "ipcontroller-mec.url", &u, &err), PLX_ENOTFOUND);
    snprintf(want, sizeof want, "no connection file at %s/ipcontroller-mec.url: is the cluster "
             "running? start it with `ipcluster start --profile=pbs`", p.security_dir);
    assert_string_equal(err.msg, want);

    assert_int_equal(plx_profile_file(&p, "security", "ipcontroller-mec.url", path, sizeof path),
                     PLX_OK);
    assert_int_equal(plx_file_write_secret(path, "plx+tls://[::1]:7/" TOK64 "#sha256=" FP64 "\n",
                                           &err), PLX_OK);
    assert_int_equal(plx_url_resolve(NULL, "pbs", "ipcontroller-mec.url", &u, &err), PLX_OK);
    assert_string_equal(u.transport, "tls");
    assert_string_equal(u.host, "::1");

    assert_int_equal(plx_url_resolve(NULL, "../etc", "x.url", &u, &err), PLX_EINVAL);
    assert_int_equal(plx_url_resolve(NULL, NULL, "", &u, &err), PLX_EINVAL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_ok),
    cmocka_unit_test(test_parse_normalises_case),
    cmocka_unit_test(test_token_lengths),
    cmocka_unit_test(test_scheme_errors),
    cmocka_unit_test(test_host_errors),
    cmocka_unit_test(test_port_errors),
    cmocka_unit_test(test_token_errors),
    cmocka_unit_test(test_fingerprint_errors),
    cmocka_unit_test(test_trailing_garbage),
    cmocka_unit_test(test_errors_hide_token),
    cmocka_unit_test(test_format_round_trip),
    cmocka_unit_test(test_shm_query),
    cmocka_unit_test(test_format_errors),
    cmocka_unit_test(test_check_host),
    cmocka_unit_test_setup_teardown(test_resolve_direct_and_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_resolve_env, setup, teardown),
    cmocka_unit_test_setup_teardown(test_resolve_profile, setup, teardown),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("url", tests, NULL, NULL))
