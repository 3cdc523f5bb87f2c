/*
 * Certificates for the TLS tests that plx_cert does not make: a small CA
 * and leaves it signs, with subjectAltNames, for the CA-file mode.
 */
#ifndef TLS_TESTCERTS_H
#define TLS_TESTCERTS_H

#include <stdbool.h>

/*
 * Write a new ECDSA P-256 key and a certificate for it as PEM files.
 * cn is the subject's common name; san (may be NULL) a subjectAltName
 * value such as "IP:127.0.0.1,DNS:localhost"; is_ca makes a CA
 * certificate. The certificate is signed by issuer_cert/issuer_key, or is
 * self-signed when they are NULL. Returns 0, or -1 (after printing why).
 */
int tc_make(const char *cert_path, const char *key_path, const char *cn, const char *san,
            bool is_ca, const char *issuer_cert, const char *issuer_key);

#endif
