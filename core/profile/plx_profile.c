/* Profile directories, private files, tokens and pid files; see plx_profile.h. */
#include "plx_profile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#define PATH_LEN 4096
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

static int too_long(plx_err_t *err, const char *what, size_t len)
{
    return plx_err_set(err, PLX_ELIMIT, "%s does not fit in %zu bytes", what, len);
}

/* ---- the root and the profile directories ------------------------------- */

static int root_from_env(const char *env, char *out, size_t len, plx_err_t *err)
{
    int n;
    if (env[0] == '/') {
        n = snprintf(out, len, "%s", env);
    } else {
        char cwd[PATH_LEN];
        if (!getcwd(cwd, sizeof cwd))
            return plx_err_set(err, PLX_EIO, "getcwd (to make PLEXA_DIR=%s absolute): %s", env,
                               strerror(errno));
        n = snprintf(out, len, "%s/%s", cwd, env);
    }
    return n < 0 || (size_t)n >= len ? too_long(err, "PLEXA_DIR", len) : PLX_OK;
}

static int root_from_home(char *out, size_t len, plx_err_t *err)
{
    const char *home = getenv("HOME");
    char pwbuf[4096];
    struct passwd pw, *res = NULL;
    if (!home || !*home) {
        /* cron jobs and some batch systems start us without HOME. */
        if (getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &res) != 0 || !res ||
            !res->pw_dir || !*res->pw_dir)
            return plx_err_set(err, PLX_ENOTFOUND,
                               "cannot find a home directory (HOME is not set and uid %u has "
                               "no passwd entry): set PLEXA_DIR",
                               (unsigned)getuid());
        home = res->pw_dir;
    }
    int n = snprintf(out, len, "%s/.plexa", home);
    return n < 0 || (size_t)n >= len ? too_long(err, "the profile root", len) : PLX_OK;
}

int plx_profile_root(char *out, size_t len, plx_err_t *err)
{
    const char *env = getenv("PLEXA_DIR");
    int rc = env && *env ? root_from_env(env, out, len, err) : root_from_home(out, len, err);
    if (rc != PLX_OK)
        return rc;
    /* "/x/.plexa/" and "/x/.plexa" must name the same profiles in messages. */
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return PLX_OK;
}

static int check_profile_name(const char *name, plx_err_t *err)
{
    size_t n = strlen(name);
    if (n > PLX_PROFILE_NAME_MAX)
        return plx_err_set(err, PLX_EINVAL, "profile name '%.24s...' is longer than %d characters",
                           name, PLX_PROFILE_NAME_MAX);
    if (strspn(name, NAME_CHARS) != n)
        return plx_err_set(err, PLX_EINVAL,
                           "profile name '%s' may only contain letters, digits, '_', '.' and '-'",
                           name);
    if (strstr(name, ".."))
        return plx_err_set(err, PLX_EINVAL, "profile name '%s' must not contain '..'", name);
    return PLX_OK;
}

/* out = a + sep + b; 0 or -1 if it does not fit. */
static int join(char *out, size_t len, const char *a, const char *sep, const char *b)
{
    int n = snprintf(out, len, "%s%s%s", a, sep, b);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int fill_paths(plx_profile_t *p, const char *root, plx_err_t *err)
{
    if (join(p->dir, sizeof p->dir, root, "/profile_", p->name) != 0 ||
        join(p->security_dir, sizeof p->security_dir, p->dir, "/", "security") != 0 ||
        join(p->log_dir, sizeof p->log_dir, p->dir, "/", "log") != 0 ||
        join(p->pid_dir, sizeof p->pid_dir, p->dir, "/", "pid") != 0)
        return too_long(err, "the profile directory's paths", sizeof p->dir);
    return PLX_OK;
}

/* mkdir that accepts an existing directory (and nothing else). */
static int make_dir(const char *path, mode_t mode, plx_err_t *err)
{
    struct stat st;
    if (mkdir(path, mode) == 0)
        return PLX_OK;
    if (errno != EEXIST)
        return plx_err_set(err, PLX_EIO, "mkdir %s: %s", path, strerror(errno));
    if (stat(path, &st) != 0)
        return plx_err_set(err, PLX_EIO, "stat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return plx_err_set(err, PLX_EINVAL, "%s exists but is not a directory", path);
    return PLX_OK;
}

static int make_dirs(const char *path, mode_t mode, plx_err_t *err)
{
    char tmp[PATH_LEN];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        int rc = make_dir(tmp, mode, err);
        if (rc != PLX_OK || c == '\0')
            return rc;
        *s = c;
    }
}

/* security/ may predate us with a looser mode (copied by hand, created by
 * an old umask); the secrets inside are 0600 but the listing would leak. */
static int tighten(const char *dir, plx_err_t *err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return plx_err_set(err, PLX_EIO, "stat %s: %s", dir, strerror(errno));
    if ((st.st_mode & 077) && chmod(dir, 0700) != 0)
        return plx_err_set(err, PLX_EIO, "chmod 700 %s: %s", dir, strerror(errno));
    return PLX_OK;
}

/* OpenSSH's StrictModes for our directories: a directory another user
 * owns, or may write to, lets that user plant files we would trust (a
 * cluster.conf, a log symlinked to somewhere else, a fake pid file). */
static int check_private_dir(const char *path, plx_err_t *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? PLX_OK : plx_err_set(err, PLX_EIO, "stat %s: %s", path,
                                                     strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return plx_err_set(err, PLX_EINVAL, "%s exists but is not a directory", path);
    if (st.st_uid != geteuid())
        return plx_err_set(err, PLX_EAUTH,
                           "refusing to use %s: it belongs to uid %u, not to you (uid %u), "
                           "so its owner could plant files plexa would trust; remove it, or "
                           "use another directory (PLEXA_DIR)",
                           path, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & 022)
        return plx_err_set(err, PLX_EAUTH,
                           "refusing to use %s: its mode %04o lets other users write there, "
                           "so they could plant files plexa would trust; fix it with "
                           "'chmod go-w %s'",
                           path, (unsigned)(st.st_mode & 07777), path);
    return PLX_OK;
}

static int check_profile_dirs(const plx_profile_t *p, const char *root, plx_err_t *err)
{
    const char *dirs[] = {root, p->dir, p->security_dir, p->log_dir, p->pid_dir};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int rc = check_private_dir(dirs[i], err);
        if (rc != PLX_OK)
            return rc;
    }
    return PLX_OK;
}

static int create_profile(const plx_profile_t *p, const char *root, plx_err_t *err)
{
    int rc = make_dirs(root, 0700, err);
    if (rc == PLX_OK)
        rc = check_private_dir(root, err);   /* before we put anything in it */
    if (rc == PLX_OK)
        rc = make_dir(p->dir, 0700, err);
    if (rc == PLX_OK)
        rc = make_dir(p->security_dir, 0700, err);
    if (rc == PLX_OK)
        rc = tighten(p->security_dir, err);
    if (rc == PLX_OK)
        rc = make_dir(p->log_dir, 0700, err);
    if (rc == PLX_OK)
        rc = make_dir(p->pid_dir, 0700, err);
    if (rc == PLX_OK)
        rc = check_profile_dirs(p, root, err);
    return rc;
}

int plx_profile_open(const char *name, int create, plx_profile_t *p, plx_err_t *err)
{
    char root[PATH_LEN];
    struct stat st;
    memset(p, 0, sizeof *p);
    if (!name || !*name)
        name = "default";
    int rc = check_profile_name(name, err);
    if (rc != PLX_OK)
        return rc;
    snprintf(p->name, sizeof p->name, "%s", name);
    rc = plx_profile_root(root, sizeof root, err);
    if (rc == PLX_OK)
        rc = fill_paths(p, root, err);
    if (rc != PLX_OK)
        return rc;
    if (create)
        return create_profile(p, root, err);
    if (stat(p->dir, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? plx_err_set(err, PLX_ENOTFOUND, "no profile '%s': %s does not exist", name,
                                 p->dir)
                   : plx_err_set(err, PLX_EIO, "stat %s: %s", p->dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return plx_err_set(err, PLX_EINVAL, "%s exists but is not a directory", p->dir);
    return check_profile_dirs(p, root, err);
}

int plx_profile_file(const plx_profile_t *p, const char *sub, const char *file, char *out,
                     size_t len)
{
    const char *dir;
    if (!sub)
        dir = p->dir;
    else if (strcmp(sub, "security") == 0)
        dir = p->security_dir;
    else if (strcmp(sub, "log") == 0)
        dir = p->log_dir;
    else if (strcmp(sub, "pid") == 0)
        dir = p->pid_dir;
    else
        return PLX_EINVAL;
    int n = file ? snprintf(out, len, "%s/%s", dir, file) : snprintf(out, len, "%s", dir);
    return n < 0 || (size_t)n >= len ? PLX_EINVAL : PLX_OK;
}

/* ---- small private files ------------------------------------------------ */

static int write_all(int fd, const char *data, size_t len, const char *path, plx_err_t *err)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return plx_err_set(err, PLX_EIO, "write %s: %s", path, strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    return PLX_OK;
}

/* Make a rename durable: fsync the directory holding path. Best effort,
 * since the rename itself already succeeded and some filesystems refuse. */
static void sync_parent(const char *path)
{
    char dir[PATH_LEN];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int plx_file_write_secret(const char *path, const char *content, plx_err_t *err)
{
    char tmp[PATH_LEN];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return plx_err_set(err, PLX_EINVAL, "path %.64s... is too long", path);
    /* mkostemp opens with O_CREAT|O_EXCL and mode 0600: the file is never
     * readable by others, and never one an attacker planted or linked. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return plx_err_set(err, PLX_EIO, "creating a temporary file for %s: %s", path,
                           strerror(errno));
    int rc = write_all(fd, content, strlen(content), tmp, err);
    if (rc == PLX_OK && fsync(fd) != 0)
        rc = plx_err_set(err, PLX_EIO, "fsync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == PLX_OK)
        rc = plx_err_set(err, PLX_EIO, "close %s: %s", tmp, strerror(errno));
    if (rc == PLX_OK && rename(tmp, path) != 0)
        rc = plx_err_set(err, PLX_EIO, "rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != PLX_OK) {
        unlink(tmp);
        return rc;
    }
    sync_parent(path);
    return PLX_OK;
}

static int read_fd(int fd, const char *path, char *out, size_t len, size_t *have,
                   plx_err_t *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return plx_err_set(err, PLX_EIO, "fstat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return plx_err_set(err, PLX_EINVAL, "%s is not a regular file", path);
    *have = 0;
    for (;;) {
        ssize_t n = read(fd, out + *have, len - *have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return plx_err_set(err, PLX_EIO, "read %s: %s", path, strerror(errno));
        if (n == 0)
            return PLX_OK;
        *have += (size_t)n;
        /* A full buffer leaves no room for the NUL: the file is too big. */
        if (*have == len)
            return plx_err_set(err, PLX_ELIMIT, "%s is longer than %zu bytes", path, len - 1);
    }
}

int plx_file_open_ro(const char *path, plx_err_t *err)
{
    /* O_NONBLOCK: a FIFO planted in place of the file must not hang us. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return plx_err_set(err, PLX_ENOTFOUND, "%s: no such file", path);
        if (errno == ELOOP)
            return plx_err_set(err, PLX_EINVAL,
                               "%s is a symbolic link: plexa does not follow links to its own "
                               "files (replace it with the file itself)", path);
        return plx_err_set(err, PLX_EIO, "open %s: %s", path, strerror(errno));
    }
    struct stat st;
    int rc = PLX_OK;
    if (fstat(fd, &st) != 0)
        rc = plx_err_set(err, PLX_EIO, "fstat %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = plx_err_set(err, PLX_EINVAL, "%s is not a regular file", path);
    if (rc != PLX_OK) {
        close(fd);
        return rc;
    }
    return fd;
}

FILE *plx_file_fopen_ro(const char *path, plx_err_t *err)
{
    int fd = plx_file_open_ro(path, err);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        plx_err_set(err, PLX_ENOMEM, "fdopen %s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int plx_file_read_small(const char *path, char *out, size_t len, plx_err_t *err)
{
    size_t have = 0;
    if (len == 0)
        return plx_err_set(err, PLX_EINVAL, "reading %s: no room in the buffer", path);
    out[0] = '\0';
    int fd = plx_file_open_ro(path, err);
    if (fd < 0)
        return fd;
    int rc = read_fd(fd, path, out, len, &have, err);
    close(fd);
    if (rc == PLX_OK && memchr(out, '\0', have))
        rc = plx_err_set(err, PLX_EINVAL, "%s contains a NUL byte: not a text file", path);
    if (rc != PLX_OK) {
        out[0] = '\0';
        return rc;
    }
    while (have > 0 && isspace((unsigned char)out[have - 1]))
        have--;
    out[have] = '\0';
    return PLX_OK;
}

int plx_file_check_private(const char *path, plx_err_t *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? plx_err_set(err, PLX_ENOTFOUND, "%s: no such file", path)
                               : plx_err_set(err, PLX_EIO, "stat %s: %s", path, strerror(errno));
    if (st.st_mode & 077)
        return plx_err_set(err, PLX_EAUTH,
                           "%s holds a secret but other users can access it (mode %03o): "
                           "run chmod 600 %s",
                           path, (unsigned)(st.st_mode & 0777), path);
    return PLX_OK;
}

/* ---- tokens ------------------------------------------------------------- */

int plx_token_new(char out[PLX_TOKEN_HEX + 1], plx_err_t *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[PLX_TOKEN_HEX / 2];
    out[0] = '\0';
    if (RAND_bytes(raw, sizeof raw) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        return plx_err_set(err, PLX_EIO, "RAND_bytes: %s", why);
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[PLX_TOKEN_HEX] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return PLX_OK;
}

int plx_token_equal(const char *a, const char *b)
{
    enum { SPAN = 128 };
    char pa[SPAN] = { 0 }, pb[SPAN] = { 0 };
    if (!a || !b)
        return 0;
    /* Lengths are public (every plexa token has 64 characters); content
     * is what must not leak, so it is compared over a fixed span. */
    size_t la = strnlen(a, SPAN + 1), lb = strnlen(b, SPAN + 1);
    if (la == 0 || lb == 0 || la > SPAN || lb > SPAN)
        return 0;
    memcpy(pa, a, la);
    memcpy(pb, b, lb);
    int same = CRYPTO_memcmp(pa, pb, SPAN) == 0;
    OPENSSL_cleanse(pa, SPAN);
    OPENSSL_cleanse(pb, SPAN);
    return same & (la == lb);
}

/* ---- pid files ---------------------------------------------------------- */

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks
 * after boot. With the pid it names one process for good: a pid that was
 * reused belongs to a process with another start time. 0 if unknown. */
static unsigned long long start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');   /* COMM may hold spaces and ')' */
    if (!p)
        return 0;
    p++;   /* the space before field 3 */
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* Is pid a process of ours? (A pid file's process must be, before we
 * signal it: a stale file could name anybody's.) The Uid line of
 * /proc/PID/status, since /proc/PID itself belongs to root for a process
 * that made itself non-inspectable (PR_SET_DUMPABLE 0), as ours do. */
static int owned_by_us(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 1;   /* no /proc: kill() itself refuses other users' */
    unsigned long real = 0, eff = 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, "Uid: %lu %lu", &real, &eff) == 2;
    fclose(f);
    return !found || real == (unsigned long)geteuid() || eff == (unsigned long)geteuid();
}

int plx_pidfile_write(const char *path, pid_t pid, plx_err_t *err)
{
    char text[64];
    if (pid <= 0)
        return plx_err_set(err, PLX_EINVAL, "pid file %s: %ld is not a process id", path,
                           (long)pid);
    snprintf(text, sizeof text, "%ld %llu\n", (long)pid, start_time(pid));
    return plx_file_write_secret(path, text, err);
}

int plx_pidfile_read(const char *path, pid_t *pid, plx_err_t *err)
{
    char text[64], *end;
    *pid = 0;
    int rc = plx_file_read_small(path, text, sizeof text, err);
    if (rc == PLX_ELIMIT)
        return plx_err_set(err, PLX_EINVAL, "pid file %s is too long to hold a process id", path);
    if (rc != PLX_OK)
        return rc;
    errno = 0;
    long v = strtol(text, &end, 10);
    int start_ok = !*end || (*end == ' ' && isdigit((unsigned char)end[1]) &&
                             strspn(end + 1, "0123456789") == strlen(end + 1));
    if (!isdigit((unsigned char)text[0]) || !start_ok || errno || v <= 0 || v > INT_MAX)
        return plx_err_set(err, PLX_EINVAL, "pid file %s: '%.20s' is not a process id", path,
                           text);
    /* "PID START": the process must still be that one (pids are reused),
     * and ours. */
    unsigned long long started = *end ? strtoull(end + 1, NULL, 10) : 0;
    unsigned long long now = start_time((pid_t)v);
    if ((started && now && started != now) || !owned_by_us((pid_t)v))
        return plx_err_set(err, PLX_ENOTFOUND, "pid file %s is stale: process %ld is not "
                           "the one that wrote it", path, v);
    *pid = (pid_t)v;
    return PLX_OK;
}

/* State letter of /proc/PID/stat: Z (zombie) and X (dead) mean exited. */
static int pid_exited(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;   /* no /proc: trust kill() */
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* "PID (COMM) S ...": COMM may hold spaces and ')', so use the last ')'. */
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

int plx_pid_alive(pid_t pid)
{
    if (pid <= 0)
        return 0;   /* kill(0 or negative) would address process groups */
    if (kill(pid, 0) != 0 && errno != EPERM)
        return 0;
    return !pid_exited(pid);
}
