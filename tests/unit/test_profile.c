/* Unit tests of profile directories, private files, tokens and pid files:
 * core/profile/plx_profile.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "plx_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plx_profile.h"

/* ---- fixture: a private PLEXA_DIR ---------------------------------------- */

static char tmpdir[256];
static char *saved_home;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plx-test-profile-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    setenv("PLEXA_DIR", tmpdir, 1);
    const char *home = getenv("HOME");
    saved_home = home ? strdup(home) : NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (saved_home)
        setenv("HOME", saved_home, 1);
    free(saved_home);
    saved_home = NULL;
    return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

/* Entries of dir other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* ---- the root ------------------------------------------------------------- */

static void test_root(void **state)
{
    (void)state;
    char out[4096], want[4200], cwd[4096];
    plx_err_t err = { 0 };

    assert_int_equal(plx_profile_root(out, sizeof out, &err), PLX_OK);
    assert_string_equal(out, tmpdir);

    snprintf(want, sizeof want, "%s///", tmpdir);
    setenv("PLEXA_DIR", want, 1);
    assert_int_equal(plx_profile_root(out, sizeof out, &err), PLX_OK);
    assert_string_equal(out, tmpdir);

    /* Relative: made absolute, since launched processes run elsewhere. */
    setenv("PLEXA_DIR", "rel/dir", 1);
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/rel/dir", cwd);
    assert_int_equal(plx_profile_root(out, sizeof out, &err), PLX_OK);
    assert_string_equal(out, want);

    unsetenv("PLEXA_DIR");
    setenv("HOME", "/home/someone", 1);
    assert_int_equal(plx_profile_root(out, sizeof out, &err), PLX_OK);
    assert_string_equal(out, "/home/someone/.plexa");

    /* No HOME: the password database. */
    unsetenv("HOME");
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_dir && *pw->pw_dir) {
        snprintf(want, sizeof want, "%s/.plexa", pw->pw_dir);
        assert_int_equal(plx_profile_root(out, sizeof out, &err), PLX_OK);
        assert_string_equal(out, want);
    }

    setenv("PLEXA_DIR", tmpdir, 1);
    assert_int_equal(plx_profile_root(out, 8, &err), PLX_ELIMIT);
    assert_non_null(strstr(err.msg, "PLEXA_DIR does not fit"));
}

/* ---- opening and creating profiles ----------------------------------------- */

/* create makes every directory 0700; then open without create finds it. */
static void test_open_create(void **state)
{
    (void)state;
    plx_profile_t p;
    plx_err_t err = { 0 };
    char want[4200];

    /* A root that does not exist yet, two levels deep. */
    snprintf(want, sizeof want, "%s/a/b", tmpdir);
    setenv("PLEXA_DIR", want, 1);

    assert_int_equal(plx_profile_open(NULL, 0, &p, &err), PLX_ENOTFOUND);
    assert_string_equal(p.name, "default");
    snprintf(want, sizeof want, "no profile 'default': %s/a/b/profile_default does not exist",
             tmpdir);
    assert_string_equal(err.msg, want);

    assert_int_equal(plx_profile_open(NULL, 1, &p, &err), PLX_OK);
    snprintf(want, sizeof want, "%s/a/b/profile_default", tmpdir);
    assert_string_equal(p.dir, want);
    snprintf(want, sizeof want, "%s/a/b/profile_default/security", tmpdir);
    assert_string_equal(p.security_dir, want);
    snprintf(want, sizeof want, "%s/a/b/profile_default/log", tmpdir);
    assert_string_equal(p.log_dir, want);
    snprintf(want, sizeof want, "%s/a/b/profile_default/pid", tmpdir);
    assert_string_equal(p.pid_dir, want);
    assert_int_equal(mode_of(p.dir), 0700);
    assert_int_equal(mode_of(p.security_dir), 0700);
    assert_int_equal(mode_of(p.log_dir), 0700);
    assert_int_equal(mode_of(p.pid_dir), 0700);

    plx_profile_t q;
    assert_int_equal(plx_profile_open("", 0, &q, &err), PLX_OK);
    assert_memory_equal(&p, &q, sizeof p);
    /* Creating again is harmless. */
    assert_int_equal(plx_profile_open("default", 1, &q, &err), PLX_OK);
}

/* An existing security/ with a loose mode is tightened to 0700. */
static void test_open_tightens_security(void **state)
{
    (void)state;
    plx_profile_t p;
    plx_err_t err = { 0 };
    assert_int_equal(plx_profile_open("x", 1, &p, &err), PLX_OK);
    assert_int_equal(chmod(p.security_dir, 0755), 0);
    assert_int_equal(plx_profile_open("x", 1, &p, &err), PLX_OK);
    assert_int_equal(mode_of(p.security_dir), 0700);
}

static void test_open_bad_names(void **state)
{
    (void)state;
    static const char *const bad[] = { "..", "../x", "a/b", "a..b", "a b", "x\n", "é", "a*" };
    plx_profile_t p;
    plx_err_t err = { 0 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(plx_profile_open(bad[i], 1, &p, &err), PLX_EINVAL);
        assert_non_null(strstr(err.msg, "profile name"));
    }
    char name[80];
    memset(name, 'n', 64);
    name[64] = '\0';
    assert_int_equal(plx_profile_open(name, 1, &p, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "longer than 63"));
    name[63] = '\0';
    assert_int_equal(plx_profile_open(name, 1, &p, &err), PLX_OK);
    assert_int_equal(plx_profile_open("Pbs_2.test-x", 1, &p, &err), PLX_OK);
    assert_int_equal(count_entries(tmpdir), 2);   /* nothing created for the bad names */
}

/* A file where a directory belongs is an error, with or without create. */
static void test_open_not_a_directory(void **state)
{
    (void)state;
    plx_profile_t p;
    plx_err_t err = { 0 };
    char path[512];
    snprintf(path, sizeof path, "%s/profile_f", tmpdir);
    write_file(path, "", 0, 0600);
    assert_int_equal(plx_profile_open("f", 0, &p, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "exists but is not a directory"));
    assert_int_equal(plx_profile_open("f", 1, &p, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "exists but is not a directory"));

    /* A file on the way to PLEXA_DIR: refused, naming it. */
    snprintf(path, sizeof path, "%s/plainfile", tmpdir);
    write_file(path, "", 0, 0600);
    char root[600];
    snprintf(root, sizeof root, "%s/sub", path);
    setenv("PLEXA_DIR", root, 1);
    assert_int_equal(plx_profile_open("g", 1, &p, &err), PLX_EINVAL);
    snprintf(root, sizeof root, "%s exists but is not a directory", path);
    assert_string_equal(err.msg, root);
}

static void test_profile_file(void **state)
{
    (void)state;
    plx_profile_t p;
    plx_err_t err = { 0 };
    char out[4200], want[4200];
    assert_int_equal(plx_profile_open("ff", 1, &p, &err), PLX_OK);

    assert_int_equal(plx_profile_file(&p, "security", "a.url", out, sizeof out), PLX_OK);
    snprintf(want, sizeof want, "%s/a.url", p.security_dir);
    assert_string_equal(out, want);
    assert_int_equal(plx_profile_file(&p, "log", "c.log", out, sizeof out), PLX_OK);
    snprintf(want, sizeof want, "%s/c.log", p.log_dir);
    assert_string_equal(out, want);
    assert_int_equal(plx_profile_file(&p, "pid", "c.pid", out, sizeof out), PLX_OK);
    snprintf(want, sizeof want, "%s/c.pid", p.pid_dir);
    assert_string_equal(out, want);
    assert_int_equal(plx_profile_file(&p, NULL, "cluster.conf", out, sizeof out), PLX_OK);
    snprintf(want, sizeof want, "%s/cluster.conf", p.dir);
    assert_string_equal(out, want);
    assert_int_equal(plx_profile_file(&p, "pid", NULL, out, sizeof out), PLX_OK);
    assert_string_equal(out, p.pid_dir);

    assert_int_equal(plx_profile_file(&p, "etc", "x", out, sizeof out), PLX_EINVAL);
    assert_int_equal(plx_profile_file(&p, "log", "x", out, 10), PLX_EINVAL);
}

/* ---- small private files ---------------------------------------------------- */

static void test_write_secret(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    char path[512], text[64];
    snprintf(path, sizeof path, "%s/secret", tmpdir);

    mode_t old = umask(0);   /* the mode must not depend on the umask */
    assert_int_equal(plx_file_write_secret(path, "one\n", &err), PLX_OK);
    umask(old);
    assert_int_equal(mode_of(path), 0600);
    assert_int_equal(plx_file_read_small(path, text, sizeof text, &err), PLX_OK);
    assert_string_equal(text, "one");

    /* Replacing a file with a looser mode: the new file is 0600. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(plx_file_write_secret(path, "two", &err), PLX_OK);
    assert_int_equal(mode_of(path), 0600);
    assert_int_equal(plx_file_read_small(path, text, sizeof text, &err), PLX_OK);
    assert_string_equal(text, "two");
    assert_int_equal(count_entries(tmpdir), 1);   /* no temporary file left */

    /* A directory that does not exist: EIO naming the file, nothing left. */
    snprintf(path, sizeof path, "%s/nodir/secret", tmpdir);
    assert_int_equal(plx_file_write_secret(path, "x", &err), PLX_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "No such file or directory"));

    /* rename onto a directory fails: the temporary file is removed. */
    snprintf(path, sizeof path, "%s/adir", tmpdir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(plx_file_write_secret(path, "x", &err), PLX_EIO);
    assert_non_null(strstr(err.msg, "rename"));
    assert_int_equal(count_entries(tmpdir), 2);
}

static void test_read_small(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    char path[512], out[16];
    snprintf(path, sizeof path, "%s/f", tmpdir);

    write_file(path, "hello \t\r\n\n", 10, 0600);
    assert_int_equal(plx_file_read_small(path, out, sizeof out, &err), PLX_OK);
    assert_string_equal(out, "hello");

    write_file(path, "", 0, 0600);
    assert_int_equal(plx_file_read_small(path, out, sizeof out, &err), PLX_OK);
    assert_string_equal(out, "");

    write_file(path, "123456789012345", 15, 0600);   /* exactly len - 1 */
    assert_int_equal(plx_file_read_small(path, out, sizeof out, &err), PLX_OK);
    assert_string_equal(out, "123456789012345");

    write_file(path, "1234567890123456", 16, 0600);
    assert_int_equal(plx_file_read_small(path, out, sizeof out, &err), PLX_ELIMIT);
    assert_non_null(strstr(err.msg, "is longer than 15 bytes"));
    assert_string_equal(out, "");

    write_file(path, "a\0b", 3, 0600);
    assert_int_equal(plx_file_read_small(path, out, sizeof out, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "NUL byte"));

    assert_int_equal(plx_file_read_small(tmpdir, out, sizeof out, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));

    /* A FIFO is refused without blocking on it. */
    snprintf(path, sizeof path, "%s/fifo", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(plx_file_read_small(path, out, sizeof out, &err), PLX_EINVAL);

    snprintf(path, sizeof path, "%s/missing", tmpdir);
    assert_int_equal(plx_file_read_small(path, out, sizeof out, &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(plx_file_read_small(path, out, 0, &err), PLX_EINVAL);
}

/* A symbolic link planted in place of one of plexa's files is refused,
 * with a message that names it, and the file it points at is not read. */
static void test_read_refuses_symlink(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    char target[512], link[512], out[64];
    snprintf(target, sizeof target, "%s/theirs", tmpdir);
    snprintf(link, sizeof link, "%s/url", tmpdir);
    write_file(target, "what they chose", 15, 0600);
    assert_int_equal(symlink(target, link), 0);

    strcpy(out, "x");
    assert_int_equal(plx_file_read_small(link, out, sizeof out, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, link));
    assert_non_null(strstr(err.msg, "symbolic link"));
    assert_string_equal(out, "");
    assert_int_equal(plx_file_open_ro(link, &err), PLX_EINVAL);
    assert_null(plx_file_fopen_ro(link, &err));
    assert_non_null(strstr(err.msg, "symbolic link"));

    /* The file itself opens, close-on-exec. */
    int fd = plx_file_open_ro(target, &err);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    FILE *f = plx_file_fopen_ro(target, &err);
    assert_non_null(f);
    assert_true(fcntl(fileno(f), F_GETFD) & FD_CLOEXEC);
    fclose(f);
}

static void test_check_private(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    char path[512], want[1200];
    snprintf(path, sizeof path, "%s/s", tmpdir);
    write_file(path, "x", 1, 0600);
    assert_int_equal(plx_file_check_private(path, &err), PLX_OK);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(plx_file_check_private(path, &err), PLX_OK);

    static const mode_t loose[] = { 0640, 0604, 0620, 0602, 0610, 0601, 0666 };
    for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
        assert_int_equal(chmod(path, loose[i]), 0);
        assert_int_equal(plx_file_check_private(path, &err), PLX_EAUTH);
        snprintf(want, sizeof want, "(mode %03o): run chmod 600 %s", (unsigned)loose[i], path);
        assert_non_null(strstr(err.msg, want));
    }
    snprintf(path, sizeof path, "%s/missing", tmpdir);
    assert_int_equal(plx_file_check_private(path, &err), PLX_ENOTFOUND);
}

/* ---- tokens ----------------------------------------------------------------- */

static void test_token_new(void **state)
{
    (void)state;
    char a[65], b[65];
    plx_err_t err = { 0 };
    assert_int_equal(plx_token_new(a, &err), PLX_OK);
    assert_int_equal(plx_token_new(b, &err), PLX_OK);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(strspn(a, "0123456789abcdef"), 64);
    assert_string_not_equal(a, b);
    assert_true(plx_token_equal(a, a));
    assert_false(plx_token_equal(a, b));
}

static void test_token_equal(void **state)
{
    (void)state;
    char a[200], b[200];
    memset(a, 'a', sizeof a);
    memset(b, 'a', sizeof b);
    a[64] = b[64] = '\0';
    assert_true(plx_token_equal(a, b));
    b[63] = 'b';
    assert_false(plx_token_equal(a, b));
    b[63] = 'a';
    b[0] = 'b';
    assert_false(plx_token_equal(a, b));
    b[0] = 'a';
    b[63] = '\0';   /* a prefix is not equal */
    assert_false(plx_token_equal(a, b));
    assert_false(plx_token_equal(b, a));
    assert_false(plx_token_equal("", ""));
    assert_false(plx_token_equal(NULL, a));
    assert_false(plx_token_equal(a, NULL));
    memset(a, 'a', 128);
    memset(b, 'a', 128);
    a[128] = b[128] = '\0';
    assert_true(plx_token_equal(a, b));   /* the longest accepted */
    a[128] = b[128] = 'a';
    a[129] = b[129] = '\0';
    assert_false(plx_token_equal(a, b));  /* over-long never matches */
}

/* ---- pid files --------------------------------------------------------------- */

static void test_pidfile(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    char path[512];
    pid_t pid;
    snprintf(path, sizeof path, "%s/c.pid", tmpdir);

    assert_int_equal(plx_pidfile_read(path, &pid, &err), PLX_ENOTFOUND);
    assert_int_equal(plx_pidfile_write(path, 4242, &err), PLX_OK);
    assert_int_equal(mode_of(path), 0600);
    assert_int_equal(plx_pidfile_read(path, &pid, &err), PLX_OK);
    assert_int_equal(pid, 4242);
    assert_int_equal(plx_pidfile_write(path, 0, &err), PLX_EINVAL);

    static const char *const garbage[] = { "abc", "12abc", "-5", "0", "", " 42", "+42",
                                           "99999999999", "1 x2", "1 2 3", "0x10" };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        write_file(path, garbage[i], strlen(garbage[i]), 0600);
        assert_int_equal(plx_pidfile_read(path, &pid, &err), PLX_EINVAL);
        assert_non_null(strstr(err.msg, "is not a process id"));
        assert_int_equal(pid, 0);
    }
    char big[100];
    memset(big, '1', sizeof big);
    write_file(path, big, sizeof big, 0600);
    assert_int_equal(plx_pidfile_read(path, &pid, &err), PLX_EINVAL);
    write_file(path, "77\n", 3, 0644);
    assert_int_equal(plx_pidfile_read(path, &pid, &err), PLX_OK);
    assert_int_equal(pid, 77);

    /* A pid reused by another process: its start time differs. The file
     * holds ours: field 22 of /proc/self/stat. */
    assert_int_equal(plx_pidfile_write(path, getpid(), &err), PLX_OK);
    assert_int_equal(plx_pidfile_read(path, &pid, &err), PLX_OK);
    assert_int_equal(pid, getpid());
    char stat[1024] = "", text[64] = "";
    FILE *f = fopen("/proc/self/stat", "r");
    assert_non_null(f);
    assert_non_null(fgets(stat, sizeof stat, f));
    fclose(f);
    char *field = strrchr(stat, ')') + 2;   /* field 3 */
    for (int i = 3; i < 22; i++)
        field = strchr(field, ' ') + 1;
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    assert_int_equal(strtoull(strchr(text, ' ') + 1, NULL, 10), strtoull(field, NULL, 10));
    char stale[64];
    int n = snprintf(stale, sizeof stale, "%d 1\n", (int)getpid());
    write_file(path, stale, (size_t)n, 0600);
    assert_int_equal(plx_pidfile_read(path, &pid, &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "is stale"));
    assert_int_equal(pid, 0);
}

static void test_pid_alive(void **state)
{
    (void)state;
    assert_true(plx_pid_alive(getpid()));
    assert_false(plx_pid_alive(0));
    assert_false(plx_pid_alive(-1));
    assert_true(plx_pid_alive(1));   /* not ours (EPERM when unprivileged), alive */

    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    assert_true(plx_pid_alive(child));
    kill(child, SIGKILL);
    /* Dead but not reaped: a zombie counts as dead. */
    for (int i = 0; i < 200 && plx_pid_alive(child); i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    assert_false(plx_pid_alive(child));
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_false(plx_pid_alive(child));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_root, setup, teardown),
    cmocka_unit_test_setup_teardown(test_open_create, setup, teardown),
    cmocka_unit_test_setup_teardown(test_open_tightens_security, setup, teardown),
    cmocka_unit_test_setup_teardown(test_open_bad_names, setup, teardown),
    cmocka_unit_test_setup_teardown(test_open_not_a_directory, setup, teardown),
    cmocka_unit_test_setup_teardown(test_profile_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_write_secret, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_small, setup, teardown),
    cmocka_unit_test_setup_teardown(test_check_private, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_refuses_symlink, setup, teardown),
    cmocka_unit_test(test_token_new),
    cmocka_unit_test(test_token_equal),
    cmocka_unit_test_setup_teardown(test_pidfile, setup, teardown),
    cmocka_unit_test(test_pid_alive),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("profile", tests, NULL, NULL))
