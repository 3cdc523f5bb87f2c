/* core/base/plx_strbuf: a growable string; see plx_strbuf.h. */
#include "plx_strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRBUF_FIRST_CAP 256

/* Room for n more bytes and the NUL; false (oom set) when there is none. */
static bool strbuf_room(plx_strbuf_t *b, size_t n)
{
    if (b->oom)
        return false;
    if (n > SIZE_MAX - b->len - 1) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : STRBUF_FIRST_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void plx_strbuf_put(plx_strbuf_t *b, const void *s, size_t n)
{
    if (!strbuf_room(b, n))
        return;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void plx_strbuf_puts(plx_strbuf_t *b, const char *s)
{
    plx_strbuf_put(b, s, strlen(s));
}

void plx_strbuf_putc(plx_strbuf_t *b, char c)
{
    plx_strbuf_put(b, &c, 1);
}

void plx_strbuf_printf(plx_strbuf_t *b, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    /* Format straight into the spare room; when it does not fit, make room
     * for the length vsnprintf reported and format once more. */
    size_t spare = b->cap > b->len ? b->cap - b->len : 0;
    int n = b->oom ? -1 : vsnprintf(spare ? b->data + b->len : NULL, spare, fmt, ap);
    if (n >= 0 && (size_t)n >= spare) {
        if (strbuf_room(b, (size_t)n))
            vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        else
            n = -1;
    }
    if (n >= 0)
        b->len += (size_t)n;
    else if (b->data != NULL)
        b->data[b->len] = '\0';   /* drop what a failed attempt left */
    va_end(again);
    va_end(ap);
}

void plx_strbuf_truncate(plx_strbuf_t *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

const char *plx_strbuf_str(const plx_strbuf_t *b)
{
    return b->data ? b->data : "";
}

char *plx_strbuf_take(plx_strbuf_t *b)
{
    char *s = b->oom ? NULL : b->data ? b->data : strdup("");
    if (b->oom)
        free(b->data);
    *b = (plx_strbuf_t)PLX_STRBUF_INIT;
    return s;
}

void plx_strbuf_free(plx_strbuf_t *b)
{
    free(b->data);
    *b = (plx_strbuf_t)PLX_STRBUF_INIT;
}
