/*
 * Reading cluster.conf: INI text from a file or a string, fed to libinih
 * line by line, each key applied to a working copy of the configuration
 * that replaces the original only when the whole text was good. Errors
 * read "FILE:LINE: ...". See plx_conf_int.h for the other files.
 */
#include "plx_conf_int.h"
#include "plx_profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

/* ---- parsing ------------------------------------------------------------- */

typedef struct parse_ctx {
    plx_conf_t *conf;       /* the working copy */
    const char *name;       /* file name for messages */
    FILE       *f;          /* source: a file, or */
    const char *text;       /* the rest of a string */
    char       *buf;        /* getline's buffer */
    size_t      bufcap;
    int         line;       /* lines read = the line inih is looking at */
    int         err_line;   /* line of the first error we found, 0 = none */
    plx_err_t   first;      /* that error, without the FILE:LINE: prefix */
} parse_ctx_t;

static void note_error(parse_ctx_t *ctx, const plx_err_t *e)
{
    if (ctx->err_line == 0) {
        ctx->err_line = ctx->line > 0 ? ctx->line : 1;
        ctx->first = *e;
    }
}

/* The next raw line and its length (with its '\n'); -1 at the end. */
static ssize_t next_line(parse_ctx_t *ctx, const char **line)
{
    if (ctx->f) {
        ssize_t n = getline(&ctx->buf, &ctx->bufcap, ctx->f);
        if (n < 0 && ferror(ctx->f)) {
            plx_err_t e;
            plx_err_set(&e, PLX_EIO, "read: %s", strerror(errno));
            ctx->line++;
            note_error(ctx, &e);
        }
        *line = ctx->buf;
        return n;
    }
    if (!*ctx->text)
        return -1;
    *line = ctx->text;
    const char *nl = strchr(ctx->text, '\n');
    size_t n = nl ? (size_t)(nl - ctx->text) + 1 : strlen(ctx->text);
    ctx->text += n;
    return (ssize_t)n;
}

/*
 * inih's fgets-style reader. We feed it ourselves rather than let it read
 * the file, to (1) count lines for messages (Debian's libinih is built
 * without INI_HANDLER_LINENO), (2) refuse over-long lines that inih would
 * silently split in two, and (3) strip indentation, so that an indented
 * "key = value" is a key and not a continuation of the previous value.
 */
static char *conf_reader(char *str, int num, void *stream)
{
    parse_ctx_t *ctx = stream;
    const char *line;
    ssize_t got = next_line(ctx, &line);
    if (got < 0)
        return NULL;
    size_t n = (size_t)got;
    ctx->line++;
    while (n > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    plx_err_t e;
    if (memchr(line, '\0', n)) {
        plx_err_set(&e, PLX_EINVAL, "line contains a NUL byte");
        note_error(ctx, &e);
        n = 0;
    } else if (n + 1 > (size_t)num) {
        plx_err_set(&e, PLX_EINVAL, "line is longer than %d characters", num - 2);
        note_error(ctx, &e);
        n = 0;
    }
    memcpy(str, line, n);
    str[n] = '\0';
    return str;
}

static int conf_handler(void *user, const char *section, const char *key, const char *value)
{
    parse_ctx_t *ctx = user;
    plx_err_t e = { 0 };
    if (plx_conf_apply(ctx->conf, section, key, value, ctx->name, ctx->line, ctx->conf->gen,
                       &e) == PLX_OK)
        return 1;
    note_error(ctx, &e);
    return 0;
}

/* Turn inih's result and our first error into one message. */
static int parse_result(const parse_ctx_t *ctx, int r, plx_err_t *err)
{
    if (r < 0)
        return plx_err_set(err, PLX_ENOMEM, "%s: libinih failed (%d)", ctx->name, r);
    /* inih reports the first line it disliked; it calls no handler for a
     * syntax error, so an earlier line than ours is one. */
    if (r > 0 && (ctx->err_line == 0 || r < ctx->err_line))
        return plx_err_set(err, PLX_EINVAL,
                           "%s:%d: syntax error (expected [section], key = value or a comment)",
                           ctx->name, r);
    if (ctx->err_line)
        return plx_err_set(err, ctx->first.code, "%s:%d: %s", ctx->name, ctx->err_line,
                           ctx->first.msg);
    return PLX_OK;
}

static int parse(plx_conf_t *c, parse_ctx_t *ctx, plx_err_t *err)
{
    ctx->conf = plx_conf_clone(c);
    if (!ctx->conf)
        return plx_err_set(err, PLX_ENOMEM, "%s: out of memory", ctx->name);
    ctx->conf->gen++;
    int r = ini_parse_stream(conf_reader, ctx, conf_handler, ctx);
    free(ctx->buf);
    int rc = parse_result(ctx, r, err);
    if (rc == PLX_OK) {
        /* Commit: c takes the working copy's contents, the copy takes c's. */
        plx_conf_t old = *c;
        *c = *ctx->conf;
        *ctx->conf = old;
    }
    plx_conf_destroy(&ctx->conf);
    return rc;
}

int plx_conf_parse_string(plx_conf_t *c, const char *text, const char *name_for_errors,
                          plx_err_t *err)
{
    parse_ctx_t ctx = { .name = name_for_errors ? name_for_errors : "<string>", .text = text };
    if (!text)
        return plx_err_set(err, PLX_EINVAL, "%s: no text", ctx.name);
    return parse(c, &ctx, err);
}

int plx_conf_load(plx_conf_t *c, const char *path, plx_err_t *err)
{
    if (!path)
        return plx_err_set(err, PLX_EINVAL, "plx_conf_load: no path");
    plx_err_t why = { 0 };
    FILE *f = plx_file_fopen_ro(path, &why);
    if (!f) {
        if (why.code == PLX_ENOTFOUND)
            return PLX_OK;   /* no cluster.conf: every key has its default */
        if (err)
            *err = why;
        return why.code;
    }
    parse_ctx_t ctx = { .name = path, .f = f };
    int rc = parse(c, &ctx, err);
    fclose(f);
    return rc;
}
