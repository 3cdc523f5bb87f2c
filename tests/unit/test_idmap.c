/* cmocka tests for the id map: against a reference array, with churn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_idmap.h"

/* Insert, look up and delete a million ids in a sliding window, checking
 * every lookup against what must be there. */
static void test_sliding_window(void **state)
{
    plx_idmap_t *m = plx_idmap_new();
    assert_non_null(m);
    const uint64_t window = 1000, total = 1000000;
    for (uint64_t id = 1; id <= total; id++) {
        assert_int_equal(plx_idmap_put(m, id, (void *)(uintptr_t)(id * 3)), 0);
        if (id > window) {
            uint64_t old = id - window;
            assert_ptr_equal(plx_idmap_del(m, old), (void *)(uintptr_t)(old * 3));
            assert_null(plx_idmap_get(m, old));
        }
        if (id % 997 == 0)
            for (uint64_t k = id > window ? id - window + 1 : 1; k <= id; k += 37)
                assert_ptr_equal(plx_idmap_get(m, k), (void *)(uintptr_t)(k * 3));
    }
    assert_int_equal(plx_idmap_count(m), window);
    plx_idmap_destroy(&m);
    assert_null(m);
}

/* Random deletes in the middle of probe runs keep every other key findable. */
static void test_random_churn(void **state)
{
    plx_idmap_t *m = plx_idmap_new();
    enum { N = 20000 };
    static char present[N + 1];
    srand(7);
    for (int i = 0; i < 200000; i++) {
        uint64_t id = (uint64_t)(rand() % N) + 1;
        if (rand() % 2) {
            plx_idmap_put(m, id, (void *)(uintptr_t)id);
            present[id] = 1;
        } else {
            void *v = plx_idmap_del(m, id);
            assert_true(present[id] ? v == (void *)(uintptr_t)id : v == NULL);
            present[id] = 0;
        }
    }
    size_t n = 0;
    for (uint64_t id = 1; id <= N; id++) {
        void *v = plx_idmap_get(m, id);
        assert_true(present[id] ? v == (void *)(uintptr_t)id : v == NULL);
        n += present[id];
    }
    assert_int_equal(plx_idmap_count(m), n);
    plx_idmap_destroy(&m);
}

/* Replacing a value keeps the count; id 0 is never found. */
static void test_replace_and_zero(void **state)
{
    plx_idmap_t *m = plx_idmap_new();
    plx_idmap_put(m, 5, (void *)1);
    plx_idmap_put(m, 5, (void *)2);
    assert_int_equal(plx_idmap_count(m), 1);
    assert_ptr_equal(plx_idmap_get(m, 5), (void *)2);
    assert_null(plx_idmap_get(m, 0));
    assert_null(plx_idmap_del(m, 0));
    plx_idmap_destroy(&m);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sliding_window),
    cmocka_unit_test(test_random_churn),
    cmocka_unit_test(test_replace_and_zero),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("idmap", tests, NULL, NULL))
