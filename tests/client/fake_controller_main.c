/*
 * plx-fake-controller MODE: run fake_controller.c for out-of-process tests
 * (the Python client's). MODE is welcome, reject or silent. Prints the
 * port on the first line of stdout and serves until stdin reaches EOF.
 */
#include <stdio.h>
#include <string.h>

#include "fake_controller.h"

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "welcome";
    fake_mode m = strcmp(mode, "reject") == 0   ? FAKE_REJECT
                  : strcmp(mode, "silent") == 0 ? FAKE_SILENT
                                                : FAKE_WELCOME;
    fake_t *f = fake_start(m);
    if (!f)
        return 1;
    printf("%u\n", (unsigned)fake_port(f));
    fflush(stdout);
    while (getchar() != EOF)
        ;
    fake_stop(&f);
    return 0;
}
