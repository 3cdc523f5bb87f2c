/* cmocka tests for core/base/plx_time: the monotonic clock never goes
 * back and measures a sleep, the wall clock is Unix time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_time.h"

static void test_monotonic(void **state)
{
    double prev = plx_now_s();
    for (int i = 0; i < 100000; i++) {
        double t = plx_now_s();
        assert_true(t >= prev);
        prev = t;
    }
    double t0 = plx_now_s();
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    double took = plx_now_s() - t0;
    assert_true(took >= 0.05);
    assert_true(took < 5.0);   /* a loaded machine, not a broken clock */
}

static void test_unix(void **state)
{
    time_t before = time(NULL);
    double now = plx_unix_now();
    time_t after = time(NULL);
    /* time() may read a coarser clock: a second of slack either way. */
    assert_true(now > (double)before - 1 && now < (double)after + 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_monotonic),
    cmocka_unit_test(test_unix),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("time", tests, NULL, NULL))
