/* cmocka tests for core/base/plx_sigreset: a forked child that ignores,
 * catches and blocks signals the way a host does comes out with default
 * dispositions and an empty mask, in itself and in what it execs (which
 * reads its own /proc/self/status). Without the reset the same child
 * hands the ignored and blocked signals on: the check can fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_sigreset.h"

static void on_usr1(int sig)
{
    (void)sig;
}

/* What a host does before it forks: SIGPIPE ignored, a SIGUSR1 handler,
 * SIGTERM and SIGUSR2 blocked. */
static void act_like_a_host(void)
{
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigset_t block;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, NULL);
}

/* In the child itself: 0 when every signal is at SIG_DFL and none is
 * blocked, else the first signal found otherwise. */
static int first_not_default(void)
{
    sigset_t mask;
    sigprocmask(SIG_SETMASK, NULL, &mask);
    for (int s = 1; s < NSIG; s++) {
        struct sigaction old;
        if (sigaction(s, NULL, &old) == 0 && old.sa_handler != SIG_DFL)
            return s;
        if (sigismember(&mask, s) == 1)
            return s;
    }
    return 0;
}

static void test_child_itself(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        act_like_a_host();
        if (first_not_default() == 0)
            _exit(100);   /* the host's setup did not take: test broken */
        plx_sigreset();
        _exit(first_not_default());
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The SigBlk and SigIgn lines of what a child execs, as the kernel shows
 * them; reset or not. */
static void exec_status(int reset, char *out, size_t len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        act_like_a_host();
        if (reset)
            plx_sigreset();
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execlp("grep", "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    for (ssize_t r; got + 1 < len && (r = read(p[0], out + got, len - 1 - got)) > 0;)
        got += (size_t)r;
    out[got] = '\0';
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_what_the_child_execs(void **state)
{
    char got[256];
    exec_status(1, got, sizeof got);
    assert_string_equal(got, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    /* The control: the host's ignored SIGPIPE and blocked SIGTERM and
     * SIGUSR2 survive exec without the reset (bit n-1 is signal n; the
     * test runner may have left others set too). */
    unsigned long long blk = 0, ign = 0;
    exec_status(0, got, sizeof got);
    assert_int_equal(sscanf(got, "SigBlk: %llx SigIgn: %llx", &blk, &ign), 2);
    assert_int_equal(blk & 0x4800, 0x4800);
    assert_int_equal(ign & 0x1000, 0x1000);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_child_itself),
    cmocka_unit_test(test_what_the_child_execs),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("sigreset", tests, NULL, NULL))
