/*
 * plx_batch_conf: the keys of a batch launcher's cluster.conf section.
 *
 * ipcluster hands the section over as strings (spec->conf); values are
 * checked here, when the job is started, and errors name the section and
 * key the way the rest of cluster.conf's errors do.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plexa/batch.h"

const char *plx_batch_conf_str(const plx_batch_conf *c, const char *key)
{
    const char *v = c->spec->conf ? c->spec->conf(c->spec->conf_ctx, key) : NULL;
    return v ? v : "";
}

int plx_batch_conf_bool(const plx_batch_conf *c, const char *key, bool dflt, bool *out,
                        plx_err_t *err)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    const char *v = plx_batch_conf_str(c, key);

    *out = dflt;
    if (*v == '\0')
        return PLX_OK;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, PLX_OK;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, PLX_OK;
    }
    return plx_err_set(err, PLX_EINVAL, "[%s] %s: '%s' is not a boolean (true or false)",
                       c->sys->name, key, v);
}

int plx_batch_conf_seconds(const plx_batch_conf *c, const char *key, double dflt,
                           double *out, plx_err_t *err)
{
    const char *v = plx_batch_conf_str(c, key);
    char *end;

    *out = dflt;
    if (*v == '\0')
        return PLX_OK;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || !isfinite(d) || d <= 0 || d > 3600)
        return plx_err_set(err, PLX_EINVAL, "[%s] %s: '%s' is not a number of seconds "
                           "(0 < s <= 3600)", c->sys->name, key, v);
    *out = d;
    return PLX_OK;
}

/* One word at *p: quotes group and are removed. Returns the word's end in
 * buf terms, or NULL for an unterminated quote. */
static char *conf_word(char **p)
{
    char *r = *p, *w = *p;
    char quote = 0;

    for (; *r; r++) {
        if (quote) {
            if (*r == quote)
                quote = 0;
            else
                *w++ = *r;
        } else if (*r == '\'' || *r == '"') {
            quote = *r;
        } else if (isspace((unsigned char)*r)) {
            break;
        } else {
            *w++ = *r;
        }
    }
    if (quote)
        return NULL;
    *p = *r ? r + 1 : r;
    *w = '\0';
    return w;
}

int plx_batch_split_words(char *buf, plx_batch_argv *av, const char *what, plx_err_t *err)
{
    char *p = buf;

    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        char *start = p;
        if (conf_word(&p) == NULL)
            return plx_err_set(err, PLX_EINVAL, "%s: unterminated quote in '%s'", what,
                               start);
        plx_batch_argv_add(av, start);
    }
    if (av->overflow)
        return plx_err_set(err, PLX_EINVAL, "%s: too many words (at most %d in all)", what,
                           PLX_BATCH_ARGV_MAX);
    return PLX_OK;
}
