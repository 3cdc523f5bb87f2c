/*
 * IPython 0.10's ssh-mode cluster file (`ipcluster ssh --clusterfile F`):
 * a Python file whose `engines` dict maps hosts to engine counts,
 *
 *     engines = { 'host1.example.com' : 2,
 *                 'host2.example.com' : 5 }
 *     send_furl = False
 *
 * ipcluster does not run it (0.10 exec'd it): it reads that dict literal,
 * which is what every cluster file in the 0.10 documentation holds, and
 * refuses anything else with the file and line.
 */
#include "plx_cluster.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct scan {
    const char *p, *start, *path;
} scan_t;

static int line_of(const scan_t *s)
{
    int line = 1;
    for (const char *c = s->start; c < s->p; c++)
        line += *c == '\n';
    return line;
}

/* Skip blanks, newlines and # comments. */
static void skip(scan_t *s)
{
    for (;;) {
        while (isspace((unsigned char)*s->p))
            s->p++;
        if (*s->p != '#')
            return;
        while (*s->p && *s->p != '\n')
            s->p++;
    }
}

static int fail(const scan_t *s, const char *what, plx_err_t *err)
{
    return plx_err_set(err, PLX_EINVAL, "%s:%d: %s (expected engines = {'host': N, ...})",
                       s->path, line_of(s), what);
}

/* 'host' or "host" into out. */
static int host_name(scan_t *s, char *out, size_t len, plx_err_t *err)
{
    char q = *s->p;
    if (q != '\'' && q != '"')
        return fail(s, "a host name in quotes", err);
    const char *end = strchr(s->p + 1, q);
    size_t n = end ? (size_t)(end - s->p - 1) : 0;
    if (!end || n == 0 || n >= len || memchr(s->p + 1, '\n', n))
        return fail(s, "an unterminated or empty host name", err);
    memcpy(out, s->p + 1, n);
    out[n] = '\0';
    s->p = end + 1;
    return PLX_OK;
}

static int entry(scan_t *s, char *hosts, size_t len, int *total, plx_err_t *err)
{
    char name[256];
    char *end;
    if (host_name(s, name, sizeof name, err) != PLX_OK)
        return err->code;
    skip(s);
    if (*s->p != ':')
        return fail(s, "':' after the host name", err);
    s->p++;
    skip(s);
    long n = strtol(s->p, &end, 10);
    if (end == s->p || n < 1 || n > 65536)
        return fail(s, "a number of engines 1..65536", err);
    s->p = end;
    size_t used = strlen(hosts);
    if ((size_t)snprintf(hosts + used, len - used, "%s%s:%ld", used ? ", " : "", name, n) >=
        len - used)
        return plx_err_set(err, PLX_ELIMIT, "%s: too many hosts", s->path);
    *total += (int)n;
    return PLX_OK;
}

static int parse(scan_t *s, char *hosts, size_t len, int *total, plx_err_t *err)
{
    const char *at = strstr(s->start, "engines");
    while (at && at > s->start && (isalnum((unsigned char)at[-1]) || at[-1] == '_'))
        at = strstr(at + 1, "engines");
    if (!at)
        return plx_err_set(err, PLX_EINVAL, "%s: no `engines = {'host': N, ...}` in it",
                           s->path);
    s->p = at + strlen("engines");
    skip(s);
    if (*s->p != '=')
        return fail(s, "'=' after engines", err);
    s->p++;
    skip(s);
    if (*s->p != '{')
        return fail(s, "'{'", err);
    s->p++;
    for (;;) {
        skip(s);
        if (*s->p == '}')
            break;
        if (entry(s, hosts, len, total, err) != PLX_OK)
            return err->code;
        skip(s);
        if (*s->p == ',')
            s->p++;
        else if (*s->p != '}')
            return fail(s, "',' or '}'", err);
    }
    if (*total == 0)
        return plx_err_set(err, PLX_EINVAL, "%s: the engines dict is empty", s->path);
    return PLX_OK;
}

int plx_cluster_read_clusterfile(const char *path, char *hosts, size_t len, int *total,
                                 plx_err_t *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return plx_err_set(err, PLX_ENOTFOUND, "--clusterfile %s: cannot open it", path);
    char *text = calloc(1, 1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!text)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    scan_t s = {.p = text, .start = text, .path = path};
    hosts[0] = '\0';
    *total = 0;
    (void)n;
    int rc = parse(&s, hosts, len, total, err);
    free(text);
    return rc;
}
