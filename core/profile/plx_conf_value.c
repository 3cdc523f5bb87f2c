/*
 * cluster.conf's values: the text of a value converted by its key's type
 * (choices, plugin names, hosts, integers and sizes in range, seconds,
 * booleans, log levels) with messages that say what was expected, and
 * committed to the typed field plx_conf_cluster()/_controller() return.
 * See plx_conf_int.h for the other files.
 */
#include "plx_conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plx_log.h"
#include "plx_url.h"

/* ---- converting values --------------------------------------------------- */

static int parse_ll(const char *v, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(v, &end, 10);
    return *v && !isspace((unsigned char)*v) && !*end && errno == 0 ? 0 : -1;
}

/* Bytes with an optional binary suffix: 512, 64K, 16M, 16MiB, 1G, 2T. */
static int parse_size(const char *v, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno)
        return -1;
    const char *units = "KMGT", *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    int shift = u ? 10 * (int)(u - units + 1) : 0;
    if (u)
        end++;
    if (u && (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0))
        end += strlen(end);
    if (*end || (shift && n > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)n << shift;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

/* Is v one of "a|b|c"? */
static int in_choices(const char *v, const char *choices)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        size_t m = strcspn(p, "|");
        if (m == n && n && strncmp(p, v, n) == 0)
            return 1;
        p += m + (p[m] == '|');
    }
    return 0;
}

static int convert_string(const keyspec_t *k, const char *v, value_t *out, plx_err_t *err)
{
    if (k->type == K_CHOICE && !in_choices(v, k->choices))
        return plx_err_set(err, PLX_EINVAL, "'%.64s' is not one of %s", v, k->choices);
    if (k->type == K_NAME && (!*v || strspn(v, NAME_CHARS) != strlen(v)))
        return plx_err_set(err, PLX_EINVAL,
                           "'%.64s' is not a plugin name (letters, digits, '_' and '-')", v);
    /* A launcher's settings live in the section named after it. */
    if (k->type == K_NAME && (plx_conf_is_known_section(v) || plx_conf_closest_section(v)))
        return plx_err_set(err, PLX_EINVAL, "'%s' cannot be a launcher: [%s] is plexa's own section",
                           v, plx_conf_closest_section(v));
    size_t n = strlen(v);
    /* Hosts: "[::1]" is the URL spelling of ::1; keep the bare address. */
    if ((k->type == K_HOST || k->type == K_OPTHOST) && n >= 2 && v[0] == '[' && v[n - 1] == ']') {
        v++;
        n -= 2;
    }
    if (n >= k->size || n >= sizeof out->s)
        return plx_err_set(err, PLX_EINVAL, "'%.32s...' is longer than %zu characters", v,
                           k->size - 1);
    memcpy(out->s, v, n);
    out->s[n] = '\0';
    if (k->type == K_HOST || (k->type == K_OPTHOST && n))
        return plx_url_check_host(out->s, err);
    /* Given to ssh as its destination: nothing it could read as an option. */
    if (k->type == K_SSHDEST && n &&
        (out->s[0] == '-' || strspn(out->s, NAME_CHARS ".@:[]") != n))
        return plx_err_set(err, PLX_EINVAL, "'%.64s' is not an ssh destination "
                           "([user@]host[:port])", out->s);
    return PLX_OK;
}

static int convert_number(const keyspec_t *k, const char *v, value_t *out, plx_err_t *err)
{
    long long ll;
    if (k->type == K_INT && parse_ll(v, &ll) != 0)
        return plx_err_set(err, PLX_EINVAL, "'%.64s' is not an integer (expected %lld..%lld)", v,
                           k->min, k->max);
    if (k->type == K_INT && (ll < k->min || ll > k->max))
        return plx_err_set(err, PLX_EINVAL, "%.64s is out of range (expected %lld..%lld)", v,
                           k->min, k->max);
    if (k->type == K_INT) {
        out->i = (int)ll;
        return PLX_OK;
    }
    if (parse_size(v, &out->u) != 0)
        return plx_err_set(err, PLX_EINVAL,
                           "'%.64s' is not a size (expected bytes, optionally with a K, M, G or "
                           "T suffix: %lld..%lld)",
                           v, k->min, k->max);
    if (out->u < (uint64_t)k->min || out->u > (uint64_t)k->max)
        return plx_err_set(err, PLX_EINVAL, "%.64s is out of range (expected %lld..%lld bytes)",
                           v, k->min, k->max);
    return PLX_OK;
}

int plx_conf_convert(const keyspec_t *k, const char *v, value_t *out, plx_err_t *err)
{
    char *end;
    int level;
    memset(out, 0, sizeof *out);
    switch (k->type) {
    case K_CHOICE:
    case K_NAME:
    case K_HOST:
    case K_OPTHOST:
    case K_SSHDEST:
        return convert_string(k, v, out, err);
    case K_INT:
    case K_SIZE:
        return convert_number(k, v, out, err);
    case K_SECONDS:
        out->d = strtod(v, &end);
        if (!*v || isspace((unsigned char)*v) || *end || !isfinite(out->d) || out->d <= 0 || out->d > (double)k->max)
            return plx_err_set(err, PLX_EINVAL,
                               "'%.64s' is not a number of seconds (expected > 0 and <= %lld)", v,
                               k->max);
        return PLX_OK;
    case K_BOOL:
        if (parse_bool(v, &out->b) != 0)
            return plx_err_set(err, PLX_EINVAL,
                               "'%.64s' is not a boolean (expected true/false, yes/no, on/off "
                               "or 1/0)",
                               v);
        return PLX_OK;
    case K_LEVEL:
        level = in_choices(v, k->choices) ? plx_log_parse_level(v) : -1;
        if (level < 0)
            return plx_err_set(err, PLX_EINVAL, "'%.64s' is not one of %s", v, k->choices);
        out->i = level;
        return PLX_OK;
    }
    return plx_err_set(err, PLX_EINVAL, "unknown type");
}

void plx_conf_commit(plx_conf_t *c, const keyspec_t *k, const value_t *v)
{
    void *field = (char *)c + k->off;
    switch (k->type) {
    case K_INT:
    case K_LEVEL:
        *(int *)field = v->i;
        break;
    case K_SIZE:
        *(uint64_t *)field = v->u;
        break;
    case K_SECONDS:
        *(double *)field = v->d;
        break;
    case K_BOOL:
        *(bool *)field = v->b;
        break;
    default:
        snprintf(field, k->size, "%s", v->s);
        break;
    }
}
