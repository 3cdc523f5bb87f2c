/*
 * The certificates the TLS tests share; see tls_fixture.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tls_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "plx_cert.h"
#include "plx_plugin_loader.h"
#include "plx_test.h"
#include "tls_testcerts.h"

const plx_transport_ops *tls, *tcp;
char tmpdir[256];
char cert_a[PATH_LEN], key_a[PATH_LEN], fp_a[65];
char cert_b[PATH_LEN], key_b[PATH_LEN], fp_b[65];
char ca_cert[PATH_LEN], ca_key[PATH_LEN];
char leaf_cert[PATH_LEN], leaf_key[PATH_LEN], leaf_fp[65];
char far_cert[PATH_LEN], far_key[PATH_LEN];

static void path_in(char *out, const char *name)
{
    snprintf(out, PATH_LEN, "%s/%s", tmpdir, name);
}

static int make_profile_cert(const char *sub, char *cert, char *key, char *fp)
{
    char dir[PATH_LEN];
    plx_err_t err = { 0 };

    path_in(dir, sub);
    if (mkdir(dir, 0700) != 0 ||
        plx_cert_ensure(dir, cert, PATH_LEN, key, PATH_LEN, fp, &err) != PLX_OK) {
        print_error("%s: %s\n", dir, err.msg);
        return -1;
    }
    return 0;
}

static int make_ca_certs(void)
{
    plx_err_t err = { 0 };

    path_in(ca_cert, "ca.pem");
    path_in(ca_key, "ca-key.pem");
    path_in(leaf_cert, "leaf.pem");
    path_in(leaf_key, "leaf-key.pem");
    path_in(far_cert, "far.pem");
    path_in(far_key, "far-key.pem");
    if (tc_make(ca_cert, ca_key, "plexa test CA", NULL, true, NULL, NULL) != 0 ||
        tc_make(leaf_cert, leaf_key, "head node", "IP:127.0.0.1,DNS:localhost", false, ca_cert,
                ca_key) != 0 ||
        tc_make(far_cert, far_key, "far node", "DNS:far.example.org", false, ca_cert, ca_key) != 0)
        return -1;
    return plx_cert_fingerprint_file(leaf_cert, leaf_fp, &err) == PLX_OK ? 0 : -1;
}

int tls_fixture_setup(const char *tag, bool with_ca)
{
    plx_err_t err = { 0 };

    tls = plx_transport_find("tls", &err);
    tcp = tls ? plx_transport_find("tcp", &err) : NULL;
    if (tcp == NULL) {
        print_error("%s\n", err.msg);
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s/plx-%s-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tag);
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    if (make_profile_cert("a", cert_a, key_a, fp_a) != 0 ||
        make_profile_cert("b", cert_b, key_b, fp_b) != 0 || (with_ca && make_ca_certs() != 0))
        return -1;
    return 0;
}

int tls_fixture_teardown(void)
{
    return plx_test_rmtree(tmpdir);
}
