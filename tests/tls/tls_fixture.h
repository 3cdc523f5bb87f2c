/*
 * The certificates the TLS tests share, made once per test program in a
 * temporary directory: A is "the controller" and B "another profile" (a
 * man-in-the-middle's), both by plx_cert_ensure, as profiles get theirs;
 * with_ca adds a small CA and leaves it signed (tls_testcerts.c) for the
 * CA-file mode. Also the tls and tcp transports, loaded through the plugin
 * loader exactly as the core loads them.
 */
#ifndef TLS_FIXTURE_H
#define TLS_FIXTURE_H

#include <stdbool.h>

#include "plexa/transport.h"

#define PATH_LEN 512

extern const plx_transport_ops *tls, *tcp;
extern char tmpdir[256];
extern char cert_a[PATH_LEN], key_a[PATH_LEN], fp_a[65];
extern char cert_b[PATH_LEN], key_b[PATH_LEN], fp_b[65];
extern char ca_cert[PATH_LEN], ca_key[PATH_LEN];
extern char leaf_cert[PATH_LEN], leaf_key[PATH_LEN], leaf_fp[65];
extern char far_cert[PATH_LEN], far_key[PATH_LEN];   /* CA-signed, for another host */

/* Load the transports and make the certificates under $TMPDIR/plx-TAG-*;
 * 0, or -1 after printing why (a cmocka group setup's answer). */
int tls_fixture_setup(const char *tag, bool with_ca);
/* Remove the directory. */
int tls_fixture_teardown(void);

#endif
