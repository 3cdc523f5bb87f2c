/*
 * plx_batch_tmpl: job script templates.
 *
 * The syntax is as small as a job script allows: {name} placeholders, with
 * the shell's own braces (${VAR}, f() { ...; }, {a,b}) left alone, so a
 * template is an ordinary script a site admin can read and test. The one
 * rule beyond substitution is for directive lines, which cannot be
 * conditional in any batch system: one whose placeholder is empty is left
 * out, rather than submitted as "#PBS -q " and refused.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "plx_batch.h"

#define TMPL_NAME_MAX 48

typedef struct tmpl_str {
    char  *data;
    size_t len, cap;
    bool   oom;
} tmpl_str;

static void tmpl_put(tmpl_str *s, const char *p, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *d = realloc(s->data, cap);
        if (d == NULL) {
            s->oom = true;
            return;
        }
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
    s->data[s->len] = '\0';
}

/* Length of a placeholder name at p ({ already consumed) if it is one:
 * [a-z0-9_]+ then '}'. 0 otherwise. */
static size_t tmpl_name_len(const char *p, const char *end)
{
    size_t n = 0;

    while (p + n < end && (islower((unsigned char)p[n]) || isdigit((unsigned char)p[n]) ||
                           p[n] == '_'))
        n++;
    if (n == 0 || n > TMPL_NAME_MAX || p + n >= end || p[n] != '}')
        return 0;
    return n;
}

typedef struct tmpl_ctx {
    plx_batch_lookup_fn lookup;
    void               *ctx;
    const char         *source;
    int                 line;
} tmpl_ctx;

/* Expand one line [p, end) into s. *empty is set when a placeholder
 * expanded to "". */
static int tmpl_line(const tmpl_ctx *c, const char *p, const char *end, tmpl_str *s,
                     bool *empty, plx_err_t *err)
{
    *empty = false;
    while (p < end) {
        size_t n = p[0] == '{' && (s->len == 0 || s->data[s->len - 1] != '$')
                       ? tmpl_name_len(p + 1, end) : 0;
        if (n == 0) {
            tmpl_put(s, p++, 1);
            continue;
        }
        char name[TMPL_NAME_MAX + 1];
        memcpy(name, p + 1, n);
        name[n] = '\0';
        const char *v = c->lookup(c->ctx, name);
        if (v == NULL)
            return plx_err_set(err, PLX_ENOTFOUND, "%s:%d: unknown placeholder {%s}",
                               c->source, c->line, name);
        *empty |= *v == '\0';
        tmpl_put(s, v, strlen(v));
        p += n + 2;
    }
    return PLX_OK;
}

int plx_batch_render(const char *tmpl, const char *source, const char *directive,
                     plx_batch_lookup_fn lookup, void *ctx, char **out, plx_err_t *err)
{
    tmpl_str s = { 0 };
    tmpl_ctx c = { lookup, ctx, source, 0 };
    size_t dlen = strlen(directive);

    *out = NULL;
    for (const char *p = tmpl; *p; ) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);
        size_t mark = s.len;
        bool empty;
        c.line++;
        int rc = tmpl_line(&c, p, end, &s, &empty, err);
        if (rc != PLX_OK) {
            free(s.data);
            return rc;
        }
        if (empty && (size_t)(end - p) >= dlen && strncmp(p, directive, dlen) == 0)
            s.len = mark;              /* drop the directive line */
        else
            tmpl_put(&s, "\n", 1);
        if (s.data)
            s.data[s.len] = '\0';
        p = nl ? nl + 1 : end;
    }
    if (s.oom || s.data == NULL) {
        free(s.data);
        return plx_err_set(err, PLX_ENOMEM, "rendering %s: out of memory", source);
    }
    *out = s.data;
    return PLX_OK;
}

char *plx_batch_shell_join(const char *const *argv)
{
    tmpl_str s = { 0 };

    for (int i = 0; argv[i] != NULL; i++) {
        if (i > 0)
            tmpl_put(&s, " ", 1);
        tmpl_put(&s, "'", 1);
        for (const char *p = argv[i]; *p; p++) {
            if (*p == '\'')
                tmpl_put(&s, "'\\''", 4);   /* close, escaped quote, reopen */
            else
                tmpl_put(&s, p, 1);
        }
        tmpl_put(&s, "'", 1);
    }
    if (s.oom) {
        free(s.data);
        return NULL;
    }
    return s.data ? s.data : strdup("");
}
