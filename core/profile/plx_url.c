/* Capability URL parsing, formatting and lookup; see plx_url.h. */
#include "plx_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plx_profile.h"

#define HEXDIGITS "0123456789abcdefABCDEF"
#define SHOWN_MAX 96   /* characters of a bad URL quoted in an error */

static const struct scheme {
    const char *prefix;
    const char *transport;
    int         pinned;   /* 1: fingerprint required, 0: fingerprint refused */
} schemes[] = {
    { "plx+tcp://", "tcp", 0 },
    { "plx+tls://", "tls", 1 },
};

#define NSCHEMES (sizeof schemes / sizeof schemes[0])

/* Copy n bytes of in for an error message, replacing what a terminal or a
 * log parser could misread (control characters, quotes). */
static void printable(const char *in, size_t n, char *out, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; i < n && in[i] && j + 1 < len; i++) {
        unsigned char c = (unsigned char)in[i];
        out[j++] = (c < 0x20 || c >= 0x7f || c == '\'') ? '?' : (char)c;
    }
    out[j] = '\0';
}

/* The URL as errors show it: cut after HOST:PORT, because the rest is a
 * capability and error messages end up in logs. */
static void url_shown(const char *s, char *out, size_t len)
{
    const char *auth = strstr(s, "://");
    size_t start = auth ? (size_t)(auth + 3 - s) : 0;
    size_t n = start + strcspn(s + start, "/#?");
    const char *more = s[n] ? "/..." : "";
    /* A token typed where the host belongs must not be shown either. */
    for (size_t i = start, run = 0; i < n; i++) {
        run = isxdigit((unsigned char)s[i]) ? run + 1 : 0;
        if (run == PLX_TOKEN_MIN_HEX) {
            n = i + 1 - run;
            more = "...";
            break;
        }
    }
    if (n > SHOWN_MAX) {
        n = SHOWN_MAX;
        more = "...";
    }
    char buf[SHOWN_MAX + 1];
    printable(s, n, buf, sizeof buf);
    snprintf(out, len, "%s%s", buf, more);
}

static int bad(plx_err_t *err, const char *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(plx_err_t *err, const char *s, const char *fmt, ...)
{
    char shown[SHOWN_MAX + 8], msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    url_shown(s, shown, sizeof shown);
    return plx_err_set(err, PLX_EINVAL, "URL '%s': %s", shown, msg);
}

static const struct scheme *scheme_by_prefix(const char *s)
{
    for (size_t i = 0; i < NSCHEMES; i++)
        if (strncasecmp(s, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
            return &schemes[i];
    return NULL;
}

static const struct scheme *scheme_by_transport(const char *t)
{
    for (size_t i = 0; i < NSCHEMES; i++)
        if (strcmp(t, schemes[i].transport) == 0)
            return &schemes[i];
    return NULL;
}

static int bad_scheme(const char *s, plx_err_t *err)
{
    const char *sep = strstr(s, "://");
    if (!sep)
        return bad(err, s, "no scheme (expected plx+tcp:// or plx+tls://)");
    char name[32];
    printable(s, (size_t)(sep - s), name, sizeof name);
    return bad(err, s, "unknown scheme '%s' (expected plx+tcp:// or plx+tls://)", name);
}

/* ---- hosts --------------------------------------------------------------- */

/* DNS name: dot-separated labels of letters, digits, '-' and '_' (some
 * cluster node names have one), each 1..63 long; a final dot is allowed. */
static int check_name(const char *host, const char *shown, plx_err_t *err)
{
    size_t label = 0;
    for (const char *p = host; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return plx_err_set(err, PLX_EINVAL, "host '%.64s' has an empty label", shown);
            label = 0;
        } else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
            if (++label > 63)
                return plx_err_set(err, PLX_EINVAL,
                                   "host '%.64s' has a label longer than 63 characters", shown);
        } else {
            char c[2];
            printable(p, 1, c, sizeof c);
            return plx_err_set(err, PLX_EINVAL, "host '%.64s' contains '%s'", shown, c);
        }
    }
    return PLX_OK;
}

int plx_url_check_host(const char *host, plx_err_t *err)
{
    size_t n = strlen(host);
    unsigned char addr[16];
    char shown[80];
    printable(host, n, shown, sizeof shown);
    if (n == 0)
        return plx_err_set(err, PLX_EINVAL, "empty host");
    if (n > 255)
        return plx_err_set(err, PLX_EINVAL, "host '%.32s...' is longer than 255 characters",
                           shown);
    if (strchr(host, ':')) {
        if (inet_pton(AF_INET6, host, addr) != 1)
            return plx_err_set(err, PLX_EINVAL, "'%s' is not a valid IPv6 address", shown);
        return PLX_OK;
    }
    /* All digits and dots is meant as IPv4, and must be one: "10.0.0.256"
     * would otherwise pass as a name and fail much later in getaddrinfo. */
    if (strspn(host, "0123456789.") == n) {
        if (inet_pton(AF_INET, host, addr) != 1)
            return plx_err_set(err, PLX_EINVAL, "'%s' is not a valid IPv4 address", shown);
        return PLX_OK;
    }
    return check_name(host, shown, err);
}

/* ---- parsing ------------------------------------------------------------ */

/* HOST at *pp (bracketed if IPv6); leaves *pp after it. */
static int parse_host(const char *s, const char **pp, plx_url_t *u, plx_err_t *err)
{
    const char *p = *pp, *end;
    int bracketed = *p == '[';
    size_t n;
    if (bracketed) {
        const char *close = strchr(p, ']');
        if (!close)
            return bad(err, s, "unterminated '[' in the host");
        p++;
        n = (size_t)(close - p);
        end = close + 1;
    } else {
        n = strcspn(p, ":/#?");
        end = p + n;
        if (*end == ':' && memchr(end + 1, ':', strcspn(end + 1, "/#?")))
            return bad(err, s, "an IPv6 host must be in brackets, as in plx+tcp://[::1]:PORT/TOKEN");
    }
    if (n == 0)
        return bad(err, s, "empty host");
    if (n >= sizeof u->host)
        return bad(err, s, "host is longer than %zu characters", sizeof u->host - 1);
    memcpy(u->host, p, n);
    u->host[n] = '\0';
    if (strspn(u->host, HEXDIGITS) >= PLX_TOKEN_MIN_HEX)
        return bad(err, s, "missing HOST:PORT before the token");
    if (bracketed && !strchr(u->host, ':'))
        return bad(err, s, "only IPv6 addresses go in brackets");
    plx_err_t herr = { 0 };
    if (plx_url_check_host(u->host, &herr) != PLX_OK)
        return bad(err, s, "%s", herr.msg);
    *pp = end;
    return PLX_OK;
}

static int parse_port(const char *s, const char **pp, plx_url_t *u, plx_err_t *err)
{
    const char *p = *pp;
    if (*p != ':')
        return bad(err, s, "missing port (expected HOST:PORT)");
    p++;
    size_t n = strspn(p, "0123456789");
    if (n == 0)
        return bad(err, s, "missing port (expected HOST:PORT)");
    if (p[n] && p[n] != '/' && p[n] != '#' && p[n] != '?')
        return bad(err, s, "port is not a number");
    unsigned long port = n > 5 ? 99999 : strtoul(p, NULL, 10);
    if (port < 1 || port > 65535)
        return bad(err, s, "port %.*s out of range (expected 1..65535)", n > 8 ? 8 : (int)n, p);
    u->port = (uint16_t)port;
    *pp = p + n;
    return PLX_OK;
}

/* Copy n hex characters of p, lowercased. */
static void copy_hex(char *dst, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)tolower((unsigned char)p[i]);
    dst[n] = '\0';
}

static int parse_token(const char *s, const char **pp, plx_url_t *u, plx_err_t *err)
{
    const char *p = *pp;
    if (*p != '/' || p[1] == '\0' || p[1] == '#')
        return bad(err, s, "missing capability token (expected /TOKEN after the port)");
    p++;
    size_t n = strspn(p, HEXDIGITS);
    int ends = p[n] == '\0' || p[n] == '#' || p[n] == '?';
    if (!ends && (n < PLX_TOKEN_MIN_HEX || n > PLX_TOKEN_MAX_HEX))
        return bad(err, s, "bad token: character %zu is not a hex digit", n + 1);
    if (n < PLX_TOKEN_MIN_HEX || n > PLX_TOKEN_MAX_HEX)
        return bad(err, s, "bad token: %zu hex characters (expected %d..%d)", n,
                   PLX_TOKEN_MIN_HEX, PLX_TOKEN_MAX_HEX);
    copy_hex(u->token, p, n);
    *pp = p + n;
    return PLX_OK;
}

#define SHM_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

static int parse_query(const char *s, const char **pp, plx_url_t *u, plx_err_t *err)
{
    const char *p = *pp;
    if (*p != '?')
        return PLX_OK;
    if (strncmp(p + 1, "shm=", 4) != 0)
        return bad(err, s, "unknown query (the one a URL takes is ?shm=NAME)");
    p += 5;
    size_t n = strspn(p, SHM_CHARS);
    if (n == 0 || n >= sizeof u->shm || (p[n] && p[n] != '#'))
        return bad(err, s, "bad shm name (expected 1..%zu of [A-Za-z0-9._-])",
                   sizeof u->shm - 1);
    memcpy(u->shm, p, n);
    u->shm[n] = '\0';
    *pp = p + n;
    return PLX_OK;
}

static int parse_fragment(const char *s, const char **pp, plx_url_t *u, plx_err_t *err)
{
    const char *p = *pp;
    if (*p != '#')
        return PLX_OK;
    if (strncasecmp(p + 1, "sha256=", 7) != 0)
        return bad(err, s, "bad fingerprint (expected #sha256=<%d hex characters>)",
                   PLX_FINGERPRINT_HEX);
    p += 8;
    size_t n = strspn(p, HEXDIGITS);
    if (n < PLX_FINGERPRINT_HEX && p[n])
        return bad(err, s, "bad fingerprint: character %zu is not a hex digit", n + 1);
    if (n != PLX_FINGERPRINT_HEX)
        return bad(err, s, "bad fingerprint: %zu hex characters (expected %d)", n,
                   PLX_FINGERPRINT_HEX);
    copy_hex(u->fingerprint, p, n);
    *pp = p + n;
    return PLX_OK;
}

int plx_url_parse(const char *s, plx_url_t *u, plx_err_t *err)
{
    memset(u, 0, sizeof *u);
    if (!s || !*s)
        return plx_err_set(err, PLX_EINVAL,
                           "URL is empty (expected plx+tcp://HOST:PORT/TOKEN or "
                           "plx+tls://HOST:PORT/TOKEN#sha256=FINGERPRINT)");
    const struct scheme *sc = scheme_by_prefix(s);
    if (!sc)
        return bad_scheme(s, err);
    const char *p = s + strlen(sc->prefix);
    int rc = parse_host(s, &p, u, err);
    if (rc == PLX_OK)
        rc = parse_port(s, &p, u, err);
    if (rc == PLX_OK)
        rc = parse_token(s, &p, u, err);
    if (rc == PLX_OK)
        rc = parse_query(s, &p, u, err);
    if (rc == PLX_OK)
        rc = parse_fragment(s, &p, u, err);
    if (rc == PLX_OK && *p) {
        char junk[24];
        printable(p, 20, junk, sizeof junk);
        rc = bad(err, s, "trailing garbage '%s'", junk);
    }
    if (rc == PLX_OK && sc->pinned && !u->fingerprint[0])
        rc = bad(err, s, "plx+tls needs the controller's certificate fingerprint "
                         "(#sha256=<64 hex characters>)");
    if (rc == PLX_OK && !sc->pinned && u->fingerprint[0])
        rc = bad(err, s, "plx+tcp does not take a fingerprint: plaintext TCP cannot check "
                         "one (use plx+tls)");
    if (rc != PLX_OK) {
        memset(u, 0, sizeof *u);
        return rc;
    }
    snprintf(u->transport, sizeof u->transport, "%s", sc->transport);
    return PLX_OK;
}

/* ---- formatting --------------------------------------------------------- */

static int is_lower_hex(const char *s, size_t min, size_t max)
{
    size_t n = strspn(s, "0123456789abcdef");
    return s[n] == '\0' && n >= min && n <= max;
}

static int check_fields(const plx_url_t *u, const struct scheme **sc, plx_err_t *err)
{
    *sc = scheme_by_transport(u->transport);
    if (!*sc)
        return plx_err_set(err, PLX_EINVAL, "transport '%.16s' has no URL scheme (expected tcp or tls)",
                           u->transport);
    int rc = plx_url_check_host(u->host, err);
    if (rc != PLX_OK)
        return rc;
    if (u->port == 0)
        return plx_err_set(err, PLX_EINVAL, "port 0 cannot be put in a URL (expected 1..65535)");
    if (!is_lower_hex(u->token, PLX_TOKEN_MIN_HEX, PLX_TOKEN_MAX_HEX))
        return plx_err_set(err, PLX_EINVAL, "token is not %d..%d lowercase hex characters",
                           PLX_TOKEN_MIN_HEX, PLX_TOKEN_MAX_HEX);
    if ((*sc)->pinned != (u->fingerprint[0] != '\0'))
        return plx_err_set(err, PLX_EINVAL, "plx+%s %s a fingerprint", u->transport,
                           (*sc)->pinned ? "needs" : "does not take");
    if (u->shm[0] && (strspn(u->shm, SHM_CHARS) != strlen(u->shm)))
        return plx_err_set(err, PLX_EINVAL, "shm name is not made of [A-Za-z0-9._-]");
    if (u->fingerprint[0] &&
        !is_lower_hex(u->fingerprint, PLX_FINGERPRINT_HEX, PLX_FINGERPRINT_HEX))
        return plx_err_set(err, PLX_EINVAL, "fingerprint is not %d lowercase hex characters",
                           PLX_FINGERPRINT_HEX);
    return PLX_OK;
}

int plx_url_format(const plx_url_t *u, char *out, size_t len, plx_err_t *err)
{
    const struct scheme *sc;
    if (len)
        out[0] = '\0';
    int rc = check_fields(u, &sc, err);
    if (rc != PLX_OK)
        return rc;
    int v6 = strchr(u->host, ':') != NULL;
    int n = snprintf(out, len, "%s%s%s%s:%u/%s%s%s%s%s", sc->prefix, v6 ? "[" : "", u->host,
                     v6 ? "]" : "", (unsigned)u->port, u->token, u->shm[0] ? "?shm=" : "",
                     u->shm, u->fingerprint[0] ? "#sha256=" : "", u->fingerprint);
    if (n < 0 || (size_t)n >= len) {
        if (len)
            out[0] = '\0';
        return plx_err_set(err, PLX_ELIMIT, "URL needs %d bytes, the buffer has %zu", n + 1, len);
    }
    return PLX_OK;
}

/* ---- finding the URL ---------------------------------------------------- */

/* Read, check and parse a connection file. hint_profile, if not NULL, is
 * the profile whose cluster should have written it. */
static int url_from_file(const char *path, const char *hint_profile, plx_url_t *u,
                         plx_err_t *err)
{
    char text[1024];
    int rc = plx_file_read_small(path, text, sizeof text, err);
    if (rc == PLX_ENOTFOUND && hint_profile)
        return plx_err_set(err, rc,
                           "no connection file at %s: is the cluster running? start it with "
                           "`ipcluster start --profile=%s`",
                           path, hint_profile);
    if (rc == PLX_ENOTFOUND)
        return plx_err_set(err, rc, "no connection file at %s", path);
    if (rc == PLX_OK)
        rc = plx_file_check_private(path, err);
    if (rc != PLX_OK)
        return rc;
    rc = plx_url_parse(text, u, err);
    if (rc != PLX_OK) {
        char prefix[4200];
        snprintf(prefix, sizeof prefix, "connection file %s", path);
        plx_err_prefix(err, prefix);
    }
    return rc;
}

static int url_from_profile(const char *profile, const char *file, plx_url_t *u,
                            plx_err_t *err)
{
    const char *name = profile && *profile ? profile : "default";
    plx_profile_t p;
    int rc = plx_profile_open(profile, 0, &p, err);
    if (rc == PLX_ENOTFOUND)
        return plx_err_set(err, rc,
                           "no profile '%s' at %s: is the cluster running? start it with "
                           "`ipcluster start --profile=%s`",
                           name, p.dir, name);
    if (rc != PLX_OK)
        return rc;
    char path[4096];
    if (plx_profile_file(&p, "security", file, path, sizeof path) != PLX_OK)
        return plx_err_set(err, PLX_EINVAL, "connection file name '%.64s' is not valid", file);
    return url_from_file(path, name, u, err);
}

int plx_url_resolve(const char *url_or_file, const char *profile, const char *default_file,
                    plx_url_t *u, plx_err_t *err)
{
    memset(u, 0, sizeof *u);
    if (url_or_file && strncasecmp(url_or_file, "plx+", 4) == 0)
        return plx_url_parse(url_or_file, u, err);
    if (url_or_file && *url_or_file)
        return url_from_file(url_or_file, NULL, u, err);
    /* An explicitly named profile beats the environment: a user who says
     * --profile=pbs means that cluster even if PLEXA_URL is exported. */
    const char *env = getenv("PLEXA_URL");
    if ((!profile || !*profile) && env && *env) {
        int rc = plx_url_parse(env, u, err);
        if (rc != PLX_OK)
            plx_err_prefix(err, "PLEXA_URL");
        return rc;
    }
    if (!default_file || !*default_file)
        return plx_err_set(err, PLX_EINVAL, "no URL, no connection file and no default file name");
    return url_from_profile(profile, default_file, u, err);
}
