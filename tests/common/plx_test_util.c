/*
 * Scratch directories for the C test suites: created private, removed
 * without a shell (a unit test starts no process).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plx_test.h"

int plx_test_mkdtemp(const char *tmpl, char *out, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    int n;

    if (strchr(tmpl, '/'))
        n = snprintf(out, cap, "%s", tmpl);
    else
        n = snprintf(out, cap, "%s/%s", tmp && *tmp ? tmp : "/tmp", tmpl);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(out) ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

int plx_test_rmtree(const char *path)
{
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return 0;
    /* Depth first, never crossing a symlink or a mount point. */
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int plx_test_copy_file(const char *src, const char *dst)
{
    char buf[65536];
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t n = 0;

    while (out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    int saved = errno, rc = (in < 0 || out < 0 || n < 0) ? -1 : 0;
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    errno = saved;
    return rc;
}
