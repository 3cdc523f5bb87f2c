/* plx_taskcost: cost keys, the per-element estimate, the prefetch depth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_taskcost.h"

static void test_keys(void **state)
{
    const char a[] = "def f(x): return x", b[] = "def g(x): return x";
    uint64_t ka = plx_taskcost_key("map", a, sizeof a);
    assert_int_equal(ka, plx_taskcost_key("map", a, sizeof a));
    assert_int_not_equal(ka, plx_taskcost_key("map", b, sizeof b));
    assert_int_not_equal(ka, plx_taskcost_key("chunk", a, sizeof a));
    assert_int_not_equal(plx_taskcost_key("", NULL, 0), 0);
    /* only the first PLX_TASKCOST_KEY_BYTES and the length count */
    static char big1[PLX_TASKCOST_KEY_BYTES + 100], big2[PLX_TASKCOST_KEY_BYTES + 100];
    memset(big1, 'x', sizeof big1);
    memset(big2, 'x', sizeof big2);
    big2[sizeof big2 - 1] = 'y';
    assert_int_equal(plx_taskcost_key("map", big1, sizeof big1),
                     plx_taskcost_key("map", big2, sizeof big2));
    assert_int_not_equal(plx_taskcost_key("map", big1, sizeof big1),
                         plx_taskcost_key("map", big1, sizeof big1 - 1));
}

static void test_estimates(void **state)
{
    plx_taskcost_t *tc = plx_taskcost_new();
    assert_non_null(tc);
    assert_true(plx_taskcost_per_elem(tc, 42) < 0);
    plx_taskcost_add(tc, 42, 2.0, 4);   /* 0.5 s an element */
    assert_true(plx_taskcost_per_elem(tc, 42) > 0.499 && plx_taskcost_per_elem(tc, 42) < 0.501);
    for (int i = 0; i < 50; i++)
        plx_taskcost_add(tc, 42, 0.1, 1);   /* it follows recent samples */
    assert_true(plx_taskcost_per_elem(tc, 42) < 0.11);
    plx_taskcost_add(tc, 42, -1, 1);        /* nonsense is ignored */
    plx_taskcost_add(tc, 42, 1.0 / 0.0, 1);
    assert_true(plx_taskcost_per_elem(tc, 42) < 0.11);
    /* a full table forgets the least used, never fails */
    for (uint64_t k = 1; k < 20000; k++)
        plx_taskcost_add(tc, k * 7919, 0.001, 1);
    plx_taskcost_add(tc, 99999999, 0.25, 1);
    assert_true(plx_taskcost_per_elem(tc, 99999999) > 0.24);
    plx_taskcost_destroy(&tc);
    assert_null(tc);
}

static void test_depth(void **state)
{
    double rtt = 200e-6;
    assert_int_equal(plx_prefetch_depth(-1, rtt, 64), 1);          /* unknown */
    assert_int_equal(plx_prefetch_depth(0.4, rtt, 64), 0);         /* long */
    assert_int_equal(plx_prefetch_depth(PLX_PREFETCH_LONG * rtt, rtt, 64), 0);
    assert_int_equal(plx_prefetch_depth(5e-3, rtt, 64), 1);
    assert_int_equal(plx_prefetch_depth(100e-6, rtt, 64), 4);
    assert_int_equal(plx_prefetch_depth(1e-6, rtt, 64), 64);       /* capped */
    assert_int_equal(plx_prefetch_depth(0, rtt, 8), 8);
    assert_int_equal(plx_prefetch_depth(1e-6, 0, 0), 1);           /* bad inputs */
    /* deeper as tasks get shorter */
    int last = 0;
    for (double d = 0.1; d > 1e-6; d /= 2) {
        int k = plx_prefetch_depth(d, rtt, 1024);
        assert_true(k >= last);
        last = k;
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_keys),
    cmocka_unit_test(test_estimates),
    cmocka_unit_test(test_depth),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("taskcost", tests, NULL, NULL))
