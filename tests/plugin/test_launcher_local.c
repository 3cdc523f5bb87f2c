/*
 * Tests of plugins/launcher-local, loaded through the plugin loader. Each
 * test gets a fresh log directory under /tmp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plx_plugin_loader.h"

static const plx_launcher_ops *ops;

static int group_setup(void **state)
{
    plx_err_t err = { 0 };

    ops = plx_launcher_find("local", &err);
    if (ops == NULL)
        print_error("%s\n", err.msg);
    return ops == NULL ? -1 : 0;
}

static int setup(void **state)
{
    char *dir = strdup("/tmp/plx-local-XXXXXX");

    if (dir == NULL || mkdtemp(dir) == NULL)
        return -1;
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    char *dir = *state;
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) < 0)
            rmdir(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
    free(dir);
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(void)
{
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    nanosleep(&ts, NULL);
}

static plx_launch_spec make_spec(const char *const *argv, int count, const char *log_dir)
{
    plx_launch_spec spec = {
        .size = sizeof spec, .role = PLX_LAUNCH_ENGINES, .count = count,
        .argv = argv, .log_dir = log_dir,
    };
    return spec;
}

static void *start(const plx_launch_spec *spec)
{
    plx_err_t err = { 0 };
    void *job = NULL;
    int rc = ops->start(spec, &job, &err);

    if (rc != PLX_OK)
        print_error("start: %s\n", err.msg);
    assert_int_equal(rc, PLX_OK);
    assert_non_null(job);
    return job;
}

/* Poll until the job is FINISHED (at most 10 s). */
static plx_job_status wait_finished(void *job)
{
    plx_job_status st;
    plx_err_t err = { 0 };
    double deadline = now() + 10;

    do {
        assert_int_equal(ops->poll(job, &st, &err), PLX_OK);
        if (st.state == PLX_JOB_FINISHED)
            return st;
        nap();
    } while (now() < deadline);
    fail_msg("job still running after 10 s");
    return st;
}

/* Read the file (up to 4 KiB), waiting up to 5 s for it to contain `want`. */
static void wait_file_contains(const char *path, const char *want)
{
    char buf[4096];
    double deadline = now() + 5;

    do {
        FILE *f = fopen(path, "r");
        size_t n = 0;
        if (f != NULL) {
            n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
        }
        buf[n] = '\0';
        if (strstr(buf, want) != NULL)
            return;
        nap();
    } while (now() < deadline);
    fail_msg("%s: wanted \"%s\", has \"%s\"", path, want, buf);
}

/* Three shells run, log their index, and are all gone after stop. */
static void test_start_poll_stop(void **state)
{
    const char *dir = *state;
    const char *argv[] = { "/bin/sh", "-c", "echo $PLX_ENGINE_INDEX; sleep 30", NULL };
    plx_launch_spec spec = make_spec(argv, 3, dir);
    plx_job_status st;
    plx_err_t err = { 0 };
    pid_t pids[8];
    char path[512], want[8];
    void *job = start(&spec);
    double t0;

    assert_int_equal(ops->poll(job, &st, &err), PLX_OK);
    assert_int_equal(st.state, PLX_JOB_RUNNING);
    assert_int_equal(st.running, 3);
    assert_int_equal(st.exited, 0);
    assert_int_equal(ops->pids(job, pids, 8), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kill(pids[i], 0), 0);
        snprintf(path, sizeof path, "%s/sh-%d.out", dir, i);
        snprintf(want, sizeof want, "%d\n", i);
        wait_file_contains(path, want);
    }
    t0 = now();
    assert_int_equal(ops->stop(job, 1.0, &err), PLX_OK);
    assert_true(now() - t0 < 1.0);           /* they obey SIGTERM: no full grace */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kill(pids[i], 0), -1);
        assert_int_equal(errno, ESRCH);
    }
    assert_int_equal(ops->poll(job, &st, &err), PLX_OK);
    assert_int_equal(st.state, PLX_JOB_FINISHED);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.exited, 3);
    assert_int_equal(ops->pids(job, pids, 8), 0);
    ops->destroy(&job);
    assert_null(job);
}

/* Extra env, cwd and /dev/null stdin reach the process. */
static void test_env_cwd_stdin(void **state)
{
    const char *dir = *state;
    const char *argv[] = { "/bin/sh", "-c",
                           "read x; echo \"read=$? $PLX_TEST_VAR $(pwd)\"", NULL };
    const char *env[] = { "PLX_TEST_VAR=hello", "PLX_ENGINE_INDEX=99", NULL };
    plx_launch_spec spec = make_spec(argv, 1, dir);
    plx_job_status st;
    char path[512], want[512];
    void *job;

    spec.env = env;
    spec.cwd = dir;
    job = start(&spec);
    st = wait_finished(job);
    assert_int_equal(st.exited, 1);
    assert_int_equal(st.failed, 0);
    snprintf(path, sizeof path, "%s/sh-0.out", dir);
    snprintf(want, sizeof want, "read=1 hello %s\n", dir);
    wait_file_contains(path, want);
    ops->destroy(&job);
}

/* Non-zero exits are failures, with the status and a description. */
static void test_false_fails(void **state)
{
    const char *argv[] = { "/bin/false", NULL };
    plx_launch_spec spec = make_spec(argv, 2, *state);
    void *job = start(&spec);
    plx_job_status st = wait_finished(job);

    assert_int_equal(st.exited, 2);
    assert_int_equal(st.failed, 2);
    assert_true(WIFEXITED(st.last_status));
    assert_int_equal(WEXITSTATUS(st.last_status), 1);
    assert_non_null(strstr(st.detail, "false"));
    ops->destroy(&job);
}

/* A program that does not exist fails with 127 and says why in its log. */
static void test_missing_program(void **state)
{
    const char *dir = *state;
    const char *argv[] = { "/nonexistent/plx-prog", NULL };
    plx_launch_spec spec = make_spec(argv, 1, dir);
    void *job = start(&spec);
    plx_job_status st = wait_finished(job);
    char path[512];

    assert_int_equal(st.failed, 1);
    assert_int_equal(WEXITSTATUS(st.last_status), 127);
    snprintf(path, sizeof path, "%s/plx-prog-0.out", dir);
    wait_file_contains(path, "exec /nonexistent/plx-prog: No such file or directory");
    ops->destroy(&job);
}

/* A process ignoring SIGTERM is SIGKILLed once the grace period is over. */
static void test_kill_after_grace(void **state)
{
    const char *dir = *state;
    const char *argv[] = { "/bin/sh", "-c", "trap '' TERM; echo ready; sleep 30", NULL };
    plx_launch_spec spec = make_spec(argv, 1, dir);
    plx_err_t err = { 0 };
    plx_job_status st;
    char path[512];
    void *job = start(&spec);
    pid_t pid;
    double t0;

    assert_int_equal(ops->pids(job, &pid, 1), 1);
    snprintf(path, sizeof path, "%s/sh-0.out", dir);
    wait_file_contains(path, "ready");
    t0 = now();
    assert_int_equal(ops->stop(job, 0.5, &err), PLX_OK);
    assert_true(now() - t0 >= 0.5);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(ops->poll(job, &st, &err), PLX_OK);
    assert_int_equal(st.state, PLX_JOB_FINISHED);
    assert_int_equal(st.failed, 1);
    assert_true(WIFSIGNALED(st.last_status));
    assert_int_equal(WTERMSIG(st.last_status), SIGKILL);
    ops->destroy(&job);
}

/* signal() reaches the processes (and their process groups). */
static void test_signal(void **state)
{
    const char *argv[] = { "/bin/sh", "-c", "trap 'exit 5' USR1; echo ready; "
                           "while :; do sleep 0.05; done", NULL };
    plx_launch_spec spec = make_spec(argv, 1, *state);
    plx_err_t err = { 0 };
    plx_job_status st;
    char path[512];
    void *job = start(&spec);

    snprintf(path, sizeof path, "%s/sh-0.out", (char *)*state);
    wait_file_contains(path, "ready");
    assert_int_equal(ops->signal(job, SIGUSR1, &err), PLX_OK);
    st = wait_finished(job);
    assert_int_equal(WEXITSTATUS(st.last_status), 5);
    ops->destroy(&job);
}

/* The launcher never reaps children it did not start. */
static void test_foreign_child_untouched(void **state)
{
    const char *argv[] = { "/bin/true", NULL };
    plx_launch_spec spec = make_spec(argv, 2, *state);
    plx_err_t err = { 0 };
    pid_t mine = fork();
    void *job;
    int status;

    if (mine == 0)
        _exit(3);
    assert_true(mine > 0);
    job = start(&spec);
    (void)wait_finished(job);
    assert_int_equal(ops->stop(job, 0.1, &err), PLX_OK);
    ops->destroy(&job);
    assert_int_equal(waitpid(mine, &status, 0), mine);
    assert_int_equal(WEXITSTATUS(status), 3);
}

/* Bad specs and unusable log directories fail start, leaving nothing behind. */
static void test_start_errors(void **state)
{
    const char *argv[] = { "/bin/sh", "-c", "sleep 30", NULL };
    plx_launch_spec spec = make_spec(argv, 0, *state);
    plx_err_t err = { 0 };
    char path[512];
    void *job = NULL;

    assert_int_equal(ops->start(&spec, &job, &err), PLX_EINVAL);
    spec.count = 2;
    spec.log_dir = "/nonexistent/plx-logs";
    assert_int_equal(ops->start(&spec, &job, &err), PLX_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/plx-logs/sh-0.out"));
    assert_null(job);
    /* Process 0 starts, then the log of process 1 cannot be opened. */
    snprintf(path, sizeof path, "%s/sh-1.out", (char *)*state);
    assert_int_equal(mkdir(path, 0700), 0);
    spec.log_dir = *state;
    assert_int_equal(ops->start(&spec, &job, &err), PLX_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_null(job);
    spec.argv = NULL;
    assert_int_equal(ops->start(&spec, &job, &err), PLX_EINVAL);
    /* No stray child (the one started was taken down and reaped);
     * waitpid(-1) is fine here: the test owns all its children. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_start_poll_stop, setup, teardown),
    cmocka_unit_test_setup_teardown(test_env_cwd_stdin, setup, teardown),
    cmocka_unit_test_setup_teardown(test_false_fails, setup, teardown),
    cmocka_unit_test_setup_teardown(test_missing_program, setup, teardown),
    cmocka_unit_test_setup_teardown(test_kill_after_grace, setup, teardown),
    cmocka_unit_test_setup_teardown(test_signal, setup, teardown),
    cmocka_unit_test_setup_teardown(test_foreign_child_untouched, setup, teardown),
    cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("launcher_local", tests, group_setup, NULL))
