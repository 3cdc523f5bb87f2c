/* core/util/plx_spin: spinning before a blocking wait, only while a
 * thread's waits are short, never past the caller's limit, never on one
 * CPU, and configurable through PLEXA_SPIN_US. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_spin.h"

/* A spin that is allowed to run this long (10 s) and returns well before
 * it shows that the function chose not to spin. */
#define LONG_MAX_US "10000000"
#define WELL_BEFORE_US 5e6

static void use_max(const char *us)
{
    setenv("PLEXA_SPIN_US", us, 1);
    plx_spin_reset();
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("PLEXA_SPIN_US");
    plx_spin_reset();
    return 0;
}

typedef struct {
    atomic_int *flag;
    long        delay_ns;
} setter_t;

static void *set_later(void *arg)
{
    setter_t *s = arg;
    struct timespec ts = { 0, s->delay_ns };
    nanosleep(&ts, NULL);
    atomic_store(s->flag, 1);
    return NULL;
}

static void test_sees_flag_set_by_another_thread(void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    if (CPU_COUNT(&set) < 2)
        skip();   /* one CPU: spinning is off by design (next tests) */
    use_max(LONG_MAX_US);
    atomic_int flag = 0;
    setter_t s = { &flag, 200 * 1000 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, set_later, &s), 0);
    assert_int_equal(plx_spin_until(&flag, -1), 1);
    pthread_join(t, NULL);
    /* Already set: returns 1 at once even with spinning off. */
    use_max("0");
    assert_int_equal(plx_spin_until(&flag, -1), 1);
}

static void test_off_and_malformed(void **state)
{
    (void)state;
    atomic_int never = 0;
    use_max("0");
    double t0 = plx_spin_now_us();
    assert_int_equal(plx_spin_until(&never, -1), 0);
    assert_true(plx_spin_now_us() - t0 < WELL_BEFORE_US);
    /* A malformed value keeps the default (1 ms): it gives up, fast. */
    use_max("lots");
    t0 = plx_spin_now_us();
    assert_int_equal(plx_spin_until(&never, -1), 0);
    assert_true(plx_spin_now_us() - t0 < WELL_BEFORE_US);
}

static void test_callers_limit_bounds_the_spin(void **state)
{
    (void)state;
    use_max(LONG_MAX_US);
    atomic_int never = 0;
    double t0 = plx_spin_now_us();
    assert_int_equal(plx_spin_until(&never, 1000), 0);
    assert_true(plx_spin_now_us() - t0 < WELL_BEFORE_US);
}

static void test_long_waits_stop_spinning_short_ones_resume(void **state)
{
    (void)state;
    use_max("1000");
    plx_spin_note(1e6);                 /* two waits of a second */
    plx_spin_note(1e6);
    assert_true(plx_spin_recent_us() > 1000);
    /* Each counted at most 4 ms: a few short waits bring spinning back. */
    assert_true(plx_spin_recent_us() < 4000);
    int n = 0;
    while (plx_spin_recent_us() > 1000 && n < 10) {
        plx_spin_note(100);
        n++;
    }
    assert_true(n >= 1 && n <= 3);
    /* While recent waits are long, the function does not spin at all. */
    use_max(LONG_MAX_US);
    for (int i = 0; i < 20; i++)
        plx_spin_note(1e9);
    atomic_int never = 0;
    double t0 = plx_spin_now_us();
    assert_int_equal(plx_spin_until(&never, -1), 0);
    assert_true(plx_spin_now_us() - t0 < WELL_BEFORE_US);
}

static void test_one_cpu_never_spins(void **state)
{
    (void)state;
    cpu_set_t all, one;
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &all))
        cpu++;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    use_max(LONG_MAX_US);
    atomic_int never = 0;
    double t0 = plx_spin_now_us();
    assert_int_equal(plx_spin_until(&never, -1), 0);
    double took = plx_spin_now_us() - t0;
    assert_int_equal(sched_setaffinity(0, sizeof all, &all), 0);
    assert_true(took < WELL_BEFORE_US);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(test_sees_flag_set_by_another_thread, teardown),
    cmocka_unit_test_teardown(test_off_and_malformed, teardown),
    cmocka_unit_test_teardown(test_callers_limit_bounds_the_spin, teardown),
    cmocka_unit_test_teardown(test_long_waits_stop_spinning_short_ones_resume, teardown),
    cmocka_unit_test_teardown(test_one_cpu_never_spins, teardown),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("spin", tests, NULL, NULL))
