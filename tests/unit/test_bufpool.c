/* core/util/plx_bufpool: large freed blocks kept for reuse, best fit,
 * bounded, and given back when idle; plx_buf going through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plexa/error.h"
#include "plx_buf.h"
#include "plx_bufpool.h"

#define MIB ((size_t)1 << 20)

static int teardown(void **state)
{
    (void)state;
    plx_buf_pool_set_max(0);   /* frees what is left */
    return 0;
}

static void test_off_by_default(void **state)
{
    (void)state;
    uint8_t *p = malloc(16 * MIB);
    assert_int_equal(plx_buf_pool_put(p, 16 * MIB), 0);
    free(p);
    size_t cap;
    assert_null(plx_buf_pool_take(PLX_BUF_POOL_MIN, &cap));
}

static void test_best_fit_and_bound(void **state)
{
    (void)state;
    plx_buf_pool_set_max(64 * MIB);
    uint8_t *a = malloc(16 * MIB), *b = malloc(40 * MIB), *c = malloc(16 * MIB);
    assert_int_equal(plx_buf_pool_put(a, 16 * MIB), 1);
    assert_int_equal(plx_buf_pool_put(b, 40 * MIB), 1);
    assert_int_equal(plx_buf_pool_put(c, 16 * MIB), 0);   /* 72 MiB > 64 */
    free(c);
    size_t cap;
    assert_ptr_equal(plx_buf_pool_take(10 * MIB, &cap), a);   /* the smallest that fits */
    assert_int_equal(cap, 16 * MIB);
    assert_null(plx_buf_pool_take(50 * MIB, &cap));            /* none is large enough */
    assert_ptr_equal(plx_buf_pool_take(20 * MIB, &cap), b);
    free(a);
    free(b);
}

static void test_trim_idle(void **state)
{
    (void)state;
    plx_buf_pool_set_max(64 * MIB);
    assert_int_equal(plx_buf_pool_put(malloc(16 * MIB), 16 * MIB), 1);
    plx_buf_pool_trim(60);          /* not idle long enough: kept */
    size_t cap;
    uint8_t *p = plx_buf_pool_take(PLX_BUF_POOL_MIN, &cap);
    assert_non_null(p);
    assert_int_equal(plx_buf_pool_put(p, cap), 1);
    usleep(20000);
    plx_buf_pool_trim(0.01);        /* idle: freed */
    assert_null(plx_buf_pool_take(PLX_BUF_POOL_MIN, &cap));
}

static void test_plx_buf_reuses_blocks(void **state)
{
    (void)state;
    plx_buf_pool_set_max(64 * MIB);
    plx_buf_t *b = plx_buf_new(20 * MIB);
    uint8_t *mem = b->data;
    plx_buf_unref(&b);                       /* to the pool, not to free() */
    b = plx_buf_new(12 * MIB);
    assert_ptr_equal(b->data, mem);
    assert_int_equal(b->len, 12 * MIB);
    assert_int_equal(b->cap, 20 * MIB);
    plx_buf_unref(&b);
    /* growing a small buffer past the threshold takes the block, keeping data */
    b = plx_buf_new(4);
    memcpy(b->data, "abcd", 4);
    assert_int_equal(plx_buf_reserve(b, 9 * MIB), 0);
    assert_ptr_equal(b->data, mem);
    assert_memory_equal(b->data, "abcd", 4);
    plx_buf_unref(&b);
    /* small buffers never touch the pool */
    b = plx_buf_new(1024);
    assert_ptr_not_equal(b->data, mem);
    plx_buf_unref(&b);
}

static void keep(void *ctx, uint8_t *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
}

/* A growing buffer takes a pooled block whole, keeping its bytes, but
 * never allocates fresh memory for it. */
static void test_reserve_pooled(void **state)
{
    (void)state;
    plx_buf_t *b = plx_buf_copy("abc", 3);
    assert_non_null(b);
    assert_int_equal(plx_buf_reserve_pooled(b, 32 * MIB), 0);   /* pool off */
    assert_true(b->cap < 32 * MIB);
    plx_buf_pool_set_max(64 * MIB);
    assert_int_equal(plx_buf_reserve_pooled(b, 32 * MIB), 0);   /* pool empty */
    uint8_t *blk = malloc(40 * MIB);
    assert_int_equal(plx_buf_pool_put(blk, 40 * MIB), 1);
    assert_int_equal(plx_buf_reserve_pooled(b, 32 * MIB), 1);
    assert_ptr_equal(b->data, blk);
    assert_int_equal(b->cap, 40 * MIB);
    assert_int_equal(b->len, 3);
    assert_memory_equal(b->data, "abc", 3);
    assert_int_equal(plx_buf_reserve_pooled(b, 16 * MIB), 1);   /* already large enough */
    plx_buf_unref(&b);                                          /* back to the pool */
    size_t cap;
    assert_ptr_equal(plx_buf_pool_take(PLX_BUF_POOL_MIN, &cap), blk);
    free(blk);
    /* Wrapped memory is not ours to move. */
    static uint8_t outside[8];
    plx_buf_t *w = plx_buf_wrap(outside, sizeof outside, keep, NULL);
    assert_int_equal(plx_buf_reserve_pooled(w, 32 * MIB), PLX_EINVAL);
    plx_buf_unref(&w);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(test_off_by_default, teardown),
    cmocka_unit_test_teardown(test_best_fit_and_bound, teardown),
    cmocka_unit_test_teardown(test_trim_idle, teardown),
    cmocka_unit_test_teardown(test_plx_buf_reuses_blocks, teardown),
    cmocka_unit_test_teardown(test_reserve_pooled, teardown),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("bufpool", tests, NULL, NULL))
