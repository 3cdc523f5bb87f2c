/*
 * plx_strbuf: a growable NUL-terminated string with a sticky out-of-memory
 * flag.
 *
 * Text built piece by piece (the status page's JSON, a job script from its
 * template, what ssh's remote script reads on stdin, a command's captured
 * output) appends without checking every step: once an allocation fails,
 * each later append does nothing and `oom` stays set, so the builder checks
 * once, at the end (plx_strbuf_take returns NULL).
 *
 * One implementation for core and plugins: it lives in core/base, the
 * libc-only library that plexa_core links and that plugins/common's static
 * libraries compile into each plugin with hidden visibility (see
 * core/base/CMakeLists.txt). Plugins still see no other core header.
 *
 * Usage:
 *     plx_strbuf_t b = PLX_STRBUF_INIT;
 *     plx_strbuf_printf(&b, "%d engines", n);
 *     char *s = plx_strbuf_take(&b);      // NULL: out of memory
 */
#ifndef PLX_STRBUF_H
#define PLX_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct plx_strbuf {
    char  *data;   /* NUL-terminated after the first append; NULL before */
    size_t len;    /* bytes of text, without the NUL */
    size_t cap;    /* bytes allocated */
    bool   oom;    /* an allocation failed: appends are ignored from then on */
} plx_strbuf_t;

#define PLX_STRBUF_INIT { NULL, 0, 0, false }

/* Append n bytes of s (which may hold NULs; the result stays terminated). */
void plx_strbuf_put(plx_strbuf_t *b, const void *s, size_t n);

/* Append the string s. */
void plx_strbuf_puts(plx_strbuf_t *b, const char *s);

/* Append one character. */
void plx_strbuf_putc(plx_strbuf_t *b, char c);

/* Append printf-formatted text, however long. */
void plx_strbuf_printf(plx_strbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Cut the text back to its first len bytes (len <= b->len; larger is
 * ignored), e.g. to drop a line just written. */
void plx_strbuf_truncate(plx_strbuf_t *b, size_t len);

/* The text so far: "" before the first append, never NULL. Valid until
 * the next append. */
const char *plx_strbuf_str(const plx_strbuf_t *b);

/* Hand the text to the caller (free() it): "" when nothing was appended,
 * NULL when an allocation failed. b is empty afterwards either way. */
char *plx_strbuf_take(plx_strbuf_t *b);

/* Free the text and make b empty (also clears oom). */
void plx_strbuf_free(plx_strbuf_t *b);

#endif
