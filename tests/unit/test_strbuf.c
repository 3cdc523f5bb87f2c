/* cmocka tests for core/base/plx_strbuf: appends of every kind against a
 * reference built by hand, printf across every growth boundary, the
 * sticky out-of-memory flag, and what take hands out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_strbuf.h"

static void test_empty(void **state)
{
    plx_strbuf_t b = PLX_STRBUF_INIT;
    assert_string_equal(plx_strbuf_str(&b), "");
    assert_int_equal(b.len, 0);
    char *s = plx_strbuf_take(&b);
    assert_non_null(s);            /* "" to free, never NULL without oom */
    assert_string_equal(s, "");
    free(s);
    assert_null(b.data);
    plx_strbuf_free(&b);           /* on an empty buffer: nothing to do */
}

/* put, puts and putc agree with the same text written into an array;
 * embedded NULs are kept and the text stays terminated. */
static void test_appends(void **state)
{
    plx_strbuf_t b = PLX_STRBUF_INIT;
    char want[200000];
    size_t n = 0;
    for (int i = 0; n + 64 < sizeof want; i++) {
        char word[32];
        int k = snprintf(word, sizeof word, "w%d", i);
        switch (i % 3) {
        case 0: plx_strbuf_puts(&b, word); break;
        case 1: plx_strbuf_put(&b, word, (size_t)k); break;
        default: for (int j = 0; j < k; j++) plx_strbuf_putc(&b, word[j]); break;
        }
        memcpy(want + n, word, (size_t)k);
        n += (size_t)k;
        assert_int_equal(b.len, n);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_memory_equal(b.data, want, n);
    assert_true(b.cap > b.len);
    plx_strbuf_put(&b, "a\0b", 3);
    assert_int_equal(b.len, n + 3);
    assert_memory_equal(b.data + n, "a\0b", 4);
    plx_strbuf_put(&b, NULL, 0);   /* nothing, from nowhere */
    assert_int_equal(b.len, n + 3);
    plx_strbuf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

/* printf output of every length from 0 to 3000 after prefixes of every
 * length around the first few capacities: the fit/grow decision is right
 * at each boundary, and nothing is cut (the status page's private copy
 * cut at 511 bytes). */
static void test_printf_boundaries(void **state)
{
    static char text[3001];
    memset(text, 'x', sizeof text - 1);
    for (size_t pre = 250; pre < 262; pre++)
        for (size_t len = 0; len <= 3000; len += len < 520 ? 1 : 97) {
            plx_strbuf_t b = PLX_STRBUF_INIT;
            plx_strbuf_put(&b, text, pre);
            plx_strbuf_printf(&b, "<%.*s>", (int)len, text);
            assert_false(b.oom);
            assert_int_equal(b.len, pre + len + 2);
            assert_int_equal(strlen(b.data), b.len);
            assert_int_equal(b.data[pre], '<');
            assert_int_equal(b.data[b.len - 1], '>');
            plx_strbuf_free(&b);
        }
    plx_strbuf_t b = PLX_STRBUF_INIT;
    plx_strbuf_printf(&b, "%d engines, %s", 4, "idle");
    plx_strbuf_printf(&b, "%s", "");
    assert_string_equal(b.data, "4 engines, idle");
    plx_strbuf_free(&b);
}

static void test_truncate(void **state)
{
    plx_strbuf_t b = PLX_STRBUF_INIT;
    plx_strbuf_puts(&b, "#!/bin/sh\n#SBATCH -p \n");
    plx_strbuf_truncate(&b, 10);
    assert_string_equal(b.data, "#!/bin/sh\n");
    plx_strbuf_truncate(&b, 99);   /* longer than the text: ignored */
    assert_int_equal(b.len, 10);
    plx_strbuf_puts(&b, "echo");
    assert_string_equal(plx_strbuf_str(&b), "#!/bin/sh\necho");
    char *s = plx_strbuf_take(&b);
    assert_string_equal(s, "#!/bin/sh\necho");
    free(s);
}

/* A request no allocation can meet sets oom; every later append of any
 * kind is ignored, take gives NULL (and frees), free clears the flag. */
static void test_oom_is_sticky(void **state)
{
    plx_strbuf_t b = PLX_STRBUF_INIT;
    plx_strbuf_puts(&b, "kept");
    plx_strbuf_put(&b, "", SIZE_MAX - 2);
    assert_true(b.oom);
    assert_int_equal(b.len, 4);
    plx_strbuf_puts(&b, "more");
    plx_strbuf_putc(&b, '!');
    plx_strbuf_printf(&b, "%d", 42);
    assert_true(b.oom);
    assert_string_equal(plx_strbuf_str(&b), "kept");
    assert_null(plx_strbuf_take(&b));
    assert_null(b.data);
    assert_false(b.oom);

    plx_strbuf_put(&b, "", SIZE_MAX);
    assert_true(b.oom);
    plx_strbuf_free(&b);
    assert_false(b.oom);
    plx_strbuf_puts(&b, "again");
    assert_string_equal(b.data, "again");
    plx_strbuf_free(&b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_appends),
    cmocka_unit_test(test_printf_boundaries),
    cmocka_unit_test(test_truncate),
    cmocka_unit_test(test_oom_is_sticky),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("strbuf", tests, NULL, NULL))
