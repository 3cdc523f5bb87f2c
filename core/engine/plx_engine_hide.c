/*
 * Keep the profiles' secrets out of the code an engine runs.
 *
 * Engines run code that holders of the mec and task capabilities send,
 * as the cluster's owner. Those holders must not learn the other
 * capabilities' tokens or the controller's private key (security/ of
 * every profile). Once the engine has read its own URL, it enters a
 * mount namespace of its own where each profile's security/ directory
 * is covered by an empty read-only tmpfs, then a second, nested user and
 * mount namespace, in which those covers are locked (the kernel does not
 * let a less privileged namespace unmount what would reveal the files
 * beneath). The process keeps its uid and gid (mapped to themselves) and
 * sees the rest of the filesystem as before.
 *
 * What this does not stop is documented in docs/threat-model.md: the
 * engine is still the owner, and another of the owner's processes that
 * the kernel lets it inspect (/proc/PID/root) shows the real directory.
 * plexa's own processes make themselves non-inspectable
 * (PR_SET_DUMPABLE 0).
 *
 * Needs unprivileged user namespaces (on by default in Debian and most
 * distributions); where they are off, the engine says so and runs
 * without the covers.
 */
#include "plx_engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plx_log.h"
#include "plx_profile.h"

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = n == (ssize_t)strlen(text) ? 0 : (n < 0 ? -errno : -EIO);
    close(fd);
    return e;
}

/* A new user and mount namespace in which we are who we were. */
static int enter_namespaces(uid_t uid, gid_t gid, plx_err_t *err)
{
    char map[64];
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
        return plx_err_set(err, PLX_EDECLINED, "unshare(user, mount namespaces): %s",
                           strerror(errno));
    /* Unprivileged gid maps need setgroups denied (kernels >= 3.19). */
    int rc = write_text("/proc/self/setgroups", "deny");
    if (rc != 0 && rc != -ENOENT)
        return plx_err_set(err, PLX_EDECLINED, "/proc/self/setgroups: %s", strerror(-rc));
    snprintf(map, sizeof map, "%u %u 1", (unsigned)uid, (unsigned)uid);
    if ((rc = write_text("/proc/self/uid_map", map)) != 0)
        return plx_err_set(err, PLX_EDECLINED, "/proc/self/uid_map: %s", strerror(-rc));
    snprintf(map, sizeof map, "%u %u 1", (unsigned)gid, (unsigned)gid);
    if ((rc = write_text("/proc/self/gid_map", map)) != 0)
        return plx_err_set(err, PLX_EDECLINED, "/proc/self/gid_map: %s", strerror(-rc));
    return PLX_OK;
}

/* Every profile's security/ under the plexa root. */
static int secret_dirs(glob_t *g)
{
    char root[PATH_MAX], pattern[PATH_MAX + 32];
    if (plx_profile_root(root, sizeof root, NULL) != PLX_OK)
        return -1;
    snprintf(pattern, sizeof pattern, "%s/profile_*/security", root);
    int rc = glob(pattern, GLOB_ONLYDIR | GLOB_NOSORT, NULL, g);
    return rc == 0 ? 0 : -1;
}

/* Whether the kernel lets us do it, tried in a child first: a failure half
 * way (a user namespace entered, its uid map refused) would leave this
 * process unable to work. */
static int can_enter(uid_t uid, gid_t gid, plx_err_t *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return plx_err_set(err, PLX_EDECLINED, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return plx_err_set(err, PLX_EDECLINED, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        plx_err_t e = {0};
        close(p[0]);
        if (enter_namespaces(uid, gid, &e) != PLX_OK && write(p[1], e.msg, strlen(e.msg)) < 0)
            _exit(2);
        _exit(0);
    }
    close(p[1]);
    char why[PLX_ERR_MSG_MAX] = "";
    ssize_t n = read(p[0], why, sizeof why - 1);
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n > 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return plx_err_set(err, PLX_EDECLINED, "%s", n > 0 ? why : "the probe failed");
    return PLX_OK;
}

int plx_engine_hide_secrets(plx_err_t *err)
{
    glob_t g = {0};
    if (secret_dirs(&g) != 0) {
        globfree(&g);
        return PLX_OK;   /* no profile here (an engine on another host): nothing to hide */
    }
    uid_t uid = geteuid();
    gid_t gid = getegid();
    int rc = can_enter(uid, gid, err);
    if (rc == PLX_OK)
        rc = enter_namespaces(uid, gid, err);
    /* Our mounts must not reach the namespace we came from. */
    if (rc == PLX_OK && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        rc = plx_err_set(err, PLX_EDECLINED, "making mounts private: %s", strerror(errno));
    size_t hidden = 0;
    for (size_t i = 0; rc == PLX_OK && i < g.gl_pathc; i++) {
        if (mount("plexa-hidden", g.gl_pathv[i], "tmpfs",
                  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0500") != 0)
            rc = plx_err_set(err, PLX_EDECLINED, "covering %s: %s", g.gl_pathv[i],
                             strerror(errno));
        else
            hidden++;
    }
    /* The nested namespace locks the covers. */
    if (rc == PLX_OK)
        rc = enter_namespaces(uid, gid, err);
    if (rc == PLX_OK)
        PLX_DEBUG("hid %zu profile security director%s from the code this engine runs", hidden,
                  hidden == 1 ? "y" : "ies");
    globfree(&g);
    return rc;
}
