/*
 * plx_tunnel (core/net/plx_tunnel.c) with stand-ins for ssh chosen through
 * $PLEXA_SSH: one that fails at once (its words and exit status reported),
 * one that never opens the port (a timeout, and nothing left running),
 * one that listens on the forwarded port as ssh would (ready; closing ends
 * it, keeper and all), and a server name ssh would read as an option. The
 * real OpenSSH, across hosts: tests/field/test_field_tunnel.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plx_time.h"
#include "plx_tunnel.h"

/* A stand-in for ssh: listens where -L says, as ssh does once connected. */
static const char FAKE_SSH[] =
    "import socket, sys, time\n"
    "fwd = sys.argv[sys.argv.index('-L') + 1]\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', int(fwd.split(':')[1])))\n"
    "s.listen(1)\n"
    "time.sleep(60)\n";

/* ... and one that refuses, as ssh does on a wrong key. */
static const char FAILING_SSH[] = "echo 'me@login: Permission denied (publickey).' >&2\nexit 255\n";

/* ... and one that hangs (a host that never answers), leaving a child
 * behind it as a ProxyCommand would; it says where in the pid file. */
static const char SLEEPING_SSH[] = "sleep 30 &\necho $! > \"$0.pid\"\nwait\n";

static char fake_path[64], failing_path[64], sleeping_path[64];

static int write_file(char *path, size_t len, const char *name, const char *text)
{
    snprintf(path, len, "/tmp/plx-%s-%d", name, (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fclose(f);
    return 0;
}

static int write_fakes(void **state)
{
    (void)state;
    return write_file(fake_path, sizeof fake_path, "fake-ssh.py", FAKE_SSH) ||
           write_file(failing_path, sizeof failing_path, "failing-ssh.sh", FAILING_SSH) ||
           write_file(sleeping_path, sizeof sleeping_path, "sleeping-ssh.sh", SLEEPING_SSH);
}

static int remove_fakes(void **state)
{
    (void)state;
    unlink(fake_path);
    unlink(failing_path);
    unlink(sleeping_path);
    char pidfile[80];
    snprintf(pidfile, sizeof pidfile, "%s.pid", sleeping_path);
    unlink(pidfile);
    unsetenv("PLEXA_SSH");
    return 0;
}

/* plx_tunnel_open to 10.0.0.1:4000 with $PLEXA_SSH = "sh SCRIPT"; *took:
 * the seconds it took. */
static int open_via(const char *script, const char *server, double timeout, plx_tunnel_t **t,
                    plx_err_t *err, double *took)
{
    char cmd[96];
    uint16_t lport = 0;
    snprintf(cmd, sizeof cmd, "sh %s", script);
    setenv("PLEXA_SSH", cmd, 1);
    double t0 = plx_now_s();
    int rc = plx_tunnel_open(server, NULL, "10.0.0.1", 4000, timeout, t, &lport, err);
    *took = plx_now_s() - t0;
    return rc;
}

static void test_ssh_that_fails_is_quoted(void **state)
{
    (void)state;
    plx_tunnel_t *t = NULL;
    plx_err_t err = {0};
    double took;
    assert_int_equal(open_via(failing_path, "me@login", 10, &t, &err, &took), PLX_ECONNECT);
    assert_null(t);
    assert_true(took < 5);
    assert_non_null(strstr(err.msg, "ssh tunnel through me@login failed (ssh exited with 255)"));
    assert_non_null(strstr(err.msg, "me@login: Permission denied (publickey)."));
}

static void test_ssh_that_never_forwards_times_out(void **state)
{
    (void)state;
    plx_tunnel_t *t = NULL;
    plx_err_t err = {0};
    double took;
    assert_int_equal(open_via(sleeping_path, "login", 1.0, &t, &err, &took), PLX_ETIMEDOUT);
    assert_true(took < 4);
    assert_non_null(strstr(err.msg, "no forwarded port after 1 s"));
    /* and the stand-in was stopped, with the child it started */
    char pidfile[80];
    snprintf(pidfile, sizeof pidfile, "%s.pid", sleeping_path);
    FILE *f = fopen(pidfile, "r");
    int child = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &child), 1);
    fclose(f);
    double until = plx_now_s() + 3;
    while (kill(child, 0) == 0 && plx_now_s() < until)
        usleep(20000);
    assert_int_not_equal(kill(child, 0), 0);
}

static void test_forward_ready_then_closed(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", fake_path);
    setenv("PLEXA_SSH", cmd, 1);
    plx_tunnel_t *t = NULL;
    uint16_t lport = 0;
    plx_err_t err = {0};
    assert_int_equal(plx_tunnel_open("login", "/no/such/key", "::1", 4000, 10, &t, &lport,
                                     &err), PLX_OK);
    assert_non_null(t);
    assert_true(lport > 0);
    assert_true(plx_tunnel_alive(t));
    plx_tunnel_close(&t);
    assert_null(t);
    /* the stand-in is gone with its keeper: its port is free again */
    char probe[96];
    snprintf(probe, sizeof probe, "ss -Hltn 'sport = :%u' | grep -q .", (unsigned)lport);
    assert_int_not_equal(system(probe), 0);
}

static void test_server_that_looks_like_an_option(void **state)
{
    (void)state;
    plx_tunnel_t *t = NULL;
    uint16_t lport = 0;
    plx_err_t err = {0};
    assert_int_equal(plx_tunnel_open("-oProxyCommand=sh", NULL, "h", 1, 1, &t, &lport, &err),
                     PLX_EINVAL);
    assert_non_null(strstr(err.msg, "is not a host name"));
    assert_int_equal(plx_tunnel_open("", NULL, "h", 1, 1, &t, &lport, &err), PLX_EINVAL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ssh_that_fails_is_quoted),
    cmocka_unit_test(test_ssh_that_never_forwards_times_out),
    cmocka_unit_test(test_forward_ready_then_closed),
    cmocka_unit_test(test_server_that_looks_like_an_option),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("tunnel", tests, write_fakes, remove_fakes))
