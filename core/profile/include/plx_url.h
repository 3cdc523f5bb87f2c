/*
 * Capability URLs: plexa's FURLs.
 *
 *   plx+tcp://HOST:PORT/TOKEN
 *   plx+tls://HOST:PORT/TOKEN#sha256=FINGERPRINT
 *   either with ?shm=NAME after the token
 *
 * HOST is a DNS name, an IPv4 address or a bracketed IPv6 address
 * ("[::1]"). PORT is 1..65535. TOKEN is the capability: 32..128 hex
 * characters (plexa mints 64, i.e. 256 bits). FINGERPRINT is the SHA-256
 * of the controller's certificate as 64 hex characters; it is required for
 * plx+tls (there is no CA: the fingerprint is what authenticates the
 * controller) and refused for plx+tcp (it would suggest a protection that
 * plaintext TCP does not give). Hex is accepted in either case and stored
 * lowercase, so tokens compare byte for byte.
 *
 * NAME is where the controller also listens on this host for peers of its
 * own user (the shm transport: an abstract Unix socket name, 1..63 of
 * [A-Za-z0-9._-]). A peer that can reach it uses it, else HOST:PORT.
 *
 * A URL grants a capability, so error messages never repeat the token:
 * they show the URL cut after HOST:PORT.
 */
#ifndef PLX_URL_H
#define PLX_URL_H

#include <stddef.h>
#include <stdint.h>

#include "plexa/error.h"

#define PLX_TOKEN_MIN_HEX 32
#define PLX_TOKEN_MAX_HEX 128
#define PLX_FINGERPRINT_HEX 64

typedef struct plx_url {
    char     transport[16];   /* "tcp" or "tls": the transport plugin's name */
    char     host[256];       /* name or address; IPv6 without brackets */
    uint16_t port;            /* 1..65535 */
    char     token[129];      /* lowercase hex, 32..128 characters */
    char     fingerprint[65]; /* lowercase hex SHA-256, "" if none */
    char     shm[64];         /* the controller's shm listener on its host, "" if none */
} plx_url_t;

/*
 * Parse s into *u. Returns PLX_OK, or PLX_EINVAL with err saying what is
 * wrong ("URL 'plx+tcp://h/...': missing port (expected HOST:PORT)").
 * *u is zeroed first, so it is never half-filled with stale data.
 */
int plx_url_parse(const char *s, plx_url_t *u, plx_err_t *err);

/*
 * Write u as a URL into out (len bytes, NUL-terminated). Checks u by the
 * same rules as plx_url_parse, so what this writes parses back to u.
 * Returns PLX_OK, PLX_EINVAL (bad field) or PLX_ELIMIT (out too small).
 */
int plx_url_format(const plx_url_t *u, char *out, size_t len, plx_err_t *err);

/*
 * Check a bare host (no brackets): a DNS name, an IPv4 address or an IPv6
 * address. Returns PLX_OK or PLX_EINVAL with a message naming the host.
 * cluster.conf uses it for listen/location.
 */
int plx_url_check_host(const char *host, plx_err_t *err);

/*
 * Find and parse the URL a client or engine should use, in this order:
 *   1. url_or_file starting with "plx+": the URL itself;
 *   2. url_or_file non-empty: a connection file holding the URL;
 *   3. $PLEXA_URL, if set and non-empty and no profile was named (profile
 *      NULL or ""): an explicit --profile beats the environment;
 *   4. <profile dir>/security/<default_file> of profile (NULL = "default").
 * Connection files must be private to their owner (see
 * plx_file_check_private): anyone who can read one holds its capability.
 * Errors name the file and the fix ("no connection file at X: is the
 * cluster running? start it with `ipcluster start --profile=NAME`").
 */
int plx_url_resolve(const char *url_or_file, const char *profile, const char *default_file,
                    plx_url_t *u, plx_err_t *err);

#endif
