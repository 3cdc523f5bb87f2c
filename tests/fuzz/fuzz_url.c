/*
 * libFuzzer: capability URLs and connection files. A URL that parses must
 * format back to a URL that parses to the same fields; a connection file
 * holding any bytes must be read or refused with an error, never more.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plx_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const char *s)
{
    plx_url_t u, back;
    plx_err_t err = {0};
    if (plx_url_parse(s, &u, &err) != PLX_OK) {
        if (!err.msg[0])
            abort();   /* a refusal says why */
        return;
    }
    char out[1024];
    if (plx_url_format(&u, out, sizeof out, &err) != PLX_OK ||
        plx_url_parse(out, &back, &err) != PLX_OK || memcmp(&u, &back, sizeof u) != 0)
        abort();
}

/* The same bytes as a connection file (0600, as plexa writes them). */
static void from_file(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/plx-fuzz-url-%d", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return;
    ssize_t w = write(fd, data, size);
    close(fd);
    if (w != (ssize_t)size)
        return;
    plx_url_t u;
    plx_err_t err = {0};
    if (plx_url_resolve(path, NULL, "ipcontroller-mec.url", &u, &err) != PLX_OK && !err.msg[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1) {
        from_file(data + 1, size - 1);
        return 0;
    }
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    round_trip(s);
    free(s);
    return 0;
}
