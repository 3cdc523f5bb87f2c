/*
 * main() of every cmocka test program (see plx_test.h for the interface):
 * one place for the name filter, --list and the exit status, so that a
 * test file holds tests only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_test.h"

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--list] [PATTERN]\n"
            "  PATTERN  run only the tests whose name matches (glob: * and ?);\n"
            "           the environment variable PLX_TEST_FILTER does the same\n"
            "  --list   print the groups and their tests, run nothing\n", prog);
}

static void list(const plx_test_suite_t *s)
{
    for (size_t g = 0; g < s->ngroups; g++) {
        printf("%s\n", s->groups[g].name);
        for (size_t i = 0; i < s->groups[g].count; i++)
            printf("  %s\n", s->groups[g].tests[i].name);
    }
}

int main(int argc, char **argv)
{
    const plx_test_suite_t *s = &plx_test_suite;
    const char *filter = getenv("PLX_TEST_FILTER");
    int failed = 0;

    if (s->init) {
        int rc = s->init(argc, argv);
        if (rc != PLX_TEST_RUN)
            return rc;
    }
    if (argc > 2 || (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
                                   strcmp(argv[1], "--help") == 0))) {
        usage(argv[0]);
        return 2;
    }
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        list(s);
        return 0;
    }
    if (argc == 2)
        filter = argv[1];
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    for (size_t g = 0; g < s->ngroups; g++) {
        const plx_test_group_t *grp = &s->groups[g];
        failed += _cmocka_run_group_tests(grp->name, grp->tests, grp->count,
                                          grp->setup, grp->teardown);
    }
    if (s->fini && s->fini() != 0)
        failed++;
    return failed;
}
