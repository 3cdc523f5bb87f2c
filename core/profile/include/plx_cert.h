/*
 * The controller's TLS identity: a key and a self-signed certificate kept
 * in a profile's security/ directory, pinned by clients and engines
 * through the fingerprint in their connection files (docs/security.md).
 *
 *   security/ipcontroller-key.pem    PKCS#8 PEM private key, mode 0600
 *   security/ipcontroller-cert.pem   PEM X.509 certificate, mode 0600
 *
 * The key is ECDSA P-256: every TLS 1.3 implementation accepts it (Python's
 * ssl, Go, rustls, Java, browsers), a CA can sign it if a site later moves
 * from pinning to a CA, and OpenSSL's constant-time P-256 code signs a
 * handshake in tens of microseconds, which is nothing next to a plexa
 * connection's lifetime. Ed25519 would be as fast and as good for pinning,
 * but fewer TLS stacks and no public CA accept it.
 *
 * The certificate: version 3, CN "plexa controller" (subject = issuer),
 * a random 127-bit serial, valid from an hour ago (clock skew) for 10
 * years, CA:FALSE, keyUsage digitalSignature, extendedKeyUsage serverAuth,
 * signed with SHA-256. Pinning ignores names and dates; a CA file mode
 * would need a certificate of the site's own.
 *
 * A fingerprint is the SHA-256 of the certificate's DER encoding as 64
 * lowercase hex characters: what `openssl x509 -noout -fingerprint -sha256`
 * prints, without the colons, and what plx+tls URLs carry after #sha256=.
 */
#ifndef PLX_CERT_H
#define PLX_CERT_H

#include <stddef.h>

#include "plexa/error.h"

#define PLX_CERT_FILE "ipcontroller-cert.pem"
#define PLX_CERT_KEY_FILE "ipcontroller-key.pem"
#define PLX_CERT_FINGERPRINT_HEX 64

/*
 * Make sure security_dir (which must exist; plx_profile_open creates it)
 * holds the controller's key and certificate, and return their paths and
 * the certificate's fingerprint.
 *
 * With both files present they are reused: the key must be private to its
 * owner (else PLX_EAUTH, "... run chmod 600 PATH"), both must parse (an
 * encrypted key is refused: nobody could type its passphrase for a
 * controller started by ipcluster) and must belong together (PLX_EINVAL,
 * naming both files). With either missing, a new pair is generated and
 * written atomically, mode 0600 (the key first; a stale certificate is
 * removed before). Concurrent callers on one directory are serialised
 * with flock(2) on it, so they agree on one pair.
 *
 * Returns PLX_OK, PLX_EAUTH, PLX_EINVAL, PLX_ELIMIT (a path does not fit
 * in cert_len/key_len), PLX_ENOTFOUND (no security_dir), PLX_EIO or
 * PLX_ENOMEM, with err naming the file and, for OpenSSL failures, the call
 * and OpenSSL's reason. On failure the outputs are empty strings.
 */
int plx_cert_ensure(const char *security_dir, char *cert_path, size_t cert_len,
                    char *key_path, size_t key_len,
                    char fingerprint[PLX_CERT_FINGERPRINT_HEX + 1], plx_err_t *err);

/*
 * Fingerprint of the first certificate in the PEM file cert_path.
 * Returns PLX_OK, PLX_ENOTFOUND (no such file), PLX_EINVAL (not a PEM
 * certificate) or PLX_EIO; fingerprint is "" on failure.
 */
int plx_cert_fingerprint_file(const char *cert_path,
                              char fingerprint[PLX_CERT_FINGERPRINT_HEX + 1], plx_err_t *err);

#endif
