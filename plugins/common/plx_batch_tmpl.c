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
#include <string.h>

#include "plexa/batch.h"
#include "plx_strbuf.h"

#define TMPL_NAME_MAX 48

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
static int tmpl_line(const tmpl_ctx *c, const char *p, const char *end, plx_strbuf_t *s,
                     bool *empty, plx_err_t *err)
{
    *empty = false;
    while (p < end) {
        size_t n = p[0] == '{' && (s->len == 0 || s->data[s->len - 1] != '$')
                       ? tmpl_name_len(p + 1, end) : 0;
        if (n == 0) {
            plx_strbuf_putc(s, *p++);
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
        plx_strbuf_puts(s, v);
        p += n + 2;
    }
    return PLX_OK;
}

int plx_batch_render(const char *tmpl, const char *source, const char *directive,
                     plx_batch_lookup_fn lookup, void *ctx, char **out, plx_err_t *err)
{
    plx_strbuf_t s = PLX_STRBUF_INIT;
    tmpl_ctx c = { lookup, ctx, source, 0 };
    size_t dlen = strlen(directive);

    *out = NULL;
    if (*tmpl == '\0')   /* nothing to submit: say so rather than submit nothing */
        return plx_err_set(err, PLX_EINVAL, "%s: the template is empty", source);
    for (const char *p = tmpl; *p; ) {
        const char *nl = strchr(p, '\n');
        const char *end = nl ? nl : p + strlen(p);
        size_t mark = s.len;
        bool empty;
        c.line++;
        int rc = tmpl_line(&c, p, end, &s, &empty, err);
        if (rc != PLX_OK) {
            plx_strbuf_free(&s);
            return rc;
        }
        if (empty && (size_t)(end - p) >= dlen && strncmp(p, directive, dlen) == 0)
            plx_strbuf_truncate(&s, mark);   /* drop the directive line */
        else
            plx_strbuf_putc(&s, '\n');
        p = nl ? nl + 1 : end;
    }
    *out = plx_strbuf_take(&s);
    if (*out == NULL)
        return plx_err_set(err, PLX_ENOMEM, "rendering %s: out of memory", source);
    return PLX_OK;
}

char *plx_batch_shell_join(const char *const *argv)
{
    plx_strbuf_t s = PLX_STRBUF_INIT;

    for (int i = 0; argv[i] != NULL; i++) {
        if (i > 0)
            plx_strbuf_putc(&s, ' ');
        plx_strbuf_putc(&s, '\'');
        for (const char *p = argv[i]; *p; p++) {
            if (*p == '\'')
                plx_strbuf_puts(&s, "'\\''");   /* close, escaped quote, reopen */
            else
                plx_strbuf_putc(&s, *p);
        }
        plx_strbuf_putc(&s, '\'');
    }
    return plx_strbuf_take(&s);
}
