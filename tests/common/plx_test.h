/*
 * The shared main of plexa's cmocka test programs (plx_test_main.c).
 *
 * A test file lists its tests and names its groups; the shared main parses
 * the command line, applies a name filter and runs every group:
 *
 *     static const struct CMUnitTest tests[] = {
 *         cmocka_unit_test(test_round_trip),
 *     };
 *     PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("frame", tests, NULL, NULL))
 *
 * Every program then takes the same arguments:
 *
 *     test_frame                  run everything
 *     test_frame '*round*'        only tests whose name matches the pattern
 *                                 (cmocka's glob: * and ?); PLX_TEST_FILTER
 *                                 in the environment does the same
 *     test_frame --list           print the groups and test names, run nothing
 *
 * ctest passes no argument; to run one test under ctest use
 * `PLX_TEST_FILTER='*name*' ctest -R <suite>`.
 */
#ifndef PLX_TEST_H
#define PLX_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

typedef struct plx_test_group {
    const char              *name;
    const struct CMUnitTest *tests;
    size_t                   count;
    CMFixtureFunction        setup;     /* group fixtures, may be NULL */
    CMFixtureFunction        teardown;
} plx_test_group_t;

/* What an init hook returns to let the tests run; any other value ends
 * the program at once with that exit status (a helper mode, or a failed
 * set-up that has printed why). */
#define PLX_TEST_RUN (-1)

typedef struct plx_test_suite {
    /* Before anything else, with the program's arguments (a program that is
     * also its own helper process sees its helper flags here); NULL: none. */
    int (*init)(int argc, char **argv);
    /* After the last group; a non-zero return counts as one failure. */
    int (*fini)(void);
    const plx_test_group_t *groups;
    size_t                  ngroups;
} plx_test_suite_t;

/* Defined by every test program, through PLX_TEST_SUITE. */
extern const plx_test_suite_t plx_test_suite;

#define PLX_TEST_GROUP(name, tests, setup, teardown) \
    { (name), (tests), sizeof(tests) / sizeof((tests)[0]), (setup), (teardown) }

#define PLX_TEST_SUITE(init, fini, ...)                                          \
    static const plx_test_group_t plx_test_groups_[] = { __VA_ARGS__ };           \
    const plx_test_suite_t plx_test_suite = {                                     \
        (init), (fini), plx_test_groups_,                                         \
        sizeof plx_test_groups_ / sizeof plx_test_groups_[0] };

/*
 * Helpers the suites share (plx_test_util.c).
 */

/* Create a private scratch directory from a template ending in XXXXXX
 * (under $TMPDIR or /tmp when tmpl has no '/'); the path is written to out.
 * Returns 0, or -1 with errno set. */
int plx_test_mkdtemp(const char *tmpl, char *out, size_t cap);

/* Remove a directory tree without a shell (symlinks are removed, never
 * followed). A path that does not exist is not an error. Returns 0 or -1. */
int plx_test_rmtree(const char *path);

/* Copy a regular file's bytes to dst (created 0600 or truncated).
 * Returns 0, or -1 with errno set. */
int plx_test_copy_file(const char *src, const char *dst);

#endif
