/*
 * Tests of plugins/launcher-ssh and plugins/launcher-mpiexec that need no
 * daemon: their key tables, their settings checks (start refuses bad
 * [ssh]/[mpiexec] settings before running anything), and remote_host,
 * which decides with the real `ssh -G` and the resolver whether processes
 * would leave this machine. Starting real jobs is tests/launchers/.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plx_plugin_loader.h"

/* A launcher section: NULL-terminated key, value pairs. */
typedef struct section {
    const char *kv[16];
} section_t;

static const char *section_get(void *ctx, const char *key)
{
    section_t *s = ctx;
    for (int i = 0; s->kv[i]; i += 2)
        if (strcmp(s->kv[i], key) == 0)
            return s->kv[i + 1];
    return NULL;
}

static const char *const argv_engine[] = { "/usr/bin/ipengine-not-run", "--log-level", "info",
                                           NULL };

static plx_launch_spec spec_for(section_t *s, int count)
{
    plx_launch_spec spec = {
        .size = sizeof spec, .role = PLX_LAUNCH_ENGINES, .count = count,
        .argv = argv_engine, .conf = section_get, .conf_ctx = s,
    };
    return spec;
}

static const plx_launcher_ops *find(const char *name)
{
    plx_err_t err = { 0 };
    const plx_launcher_ops *ops = plx_launcher_find(name, &err);
    if (!ops)
        fail_msg("%s", err.msg);
    return ops;
}

static bool has_key(const plx_launcher_ops *ops, const char *key)
{
    const plx_launcher_key *k = plx_launcher_keys(ops);
    for (; k && k->name; k++)
        if (strcmp(k->name, key) == 0)
            return *k->help != '\0';
    return false;
}

static void test_key_tables(void **state)
{
    (void)state;
    const plx_launcher_ops *ssh = find("ssh"), *mpx = find("mpiexec");
    const char *ssh_keys[] = { "hosts", "ssh", "ssh_options", "engine_command",
                               "controller_host", "remote_env", "remote_cwd" };
    for (size_t i = 0; i < sizeof ssh_keys / sizeof *ssh_keys; i++)
        assert_true(has_key(ssh, ssh_keys[i]));
    assert_true(has_key(mpx, "mpiexec") && has_key(mpx, "mpiexec_args") && has_key(mpx, "mpi"));
    assert_false(has_key(mpx, "hosts"));
}

/* start refuses, naming the key, and starts nothing. */
static void assert_start_refused(const char *launcher, section_t *s, int count, const char *want)
{
    plx_launch_spec spec = spec_for(s, count);
    plx_err_t err = { 0 };
    void *job = NULL;
    int rc = find(launcher)->start(&spec, &job, &err);
    print_message("%s: %s\n", launcher, err.msg);
    assert_int_equal(rc, PLX_EINVAL);
    assert_null(job);
    if (!strstr(err.msg, want))
        fail_msg("'%s' does not contain '%s'", err.msg, want);
}

static void test_ssh_settings_refused(void **state)
{
    (void)state;
    section_t none = { { NULL } };
    assert_start_refused("ssh", &none, 2, "[ssh] hosts: no hosts to start engines on");
    section_t slots = { { "hosts", "node1:2, node2:1", NULL } };
    assert_start_refused("ssh", &slots, 4, "4 engines asked for, but the hosts take 3");
    section_t badn = { { "hosts", "node1:zero", NULL } };
    assert_start_refused("ssh", &badn, 1, "[ssh] hosts: 'node1:zero'");
    section_t inj = { { "hosts", "node1;reboot", NULL } };
    assert_start_refused("ssh", &inj, 1, "is not a host name");
    section_t quote = { { "hosts", "node1", "ssh_options", "-o 'User=x", NULL } };
    assert_start_refused("ssh", &quote, 1, "[ssh] ssh_options: unbalanced quote");
    section_t env = { { "hosts", "node1", "remote_env", "A=1 2B=x", NULL } };
    assert_start_refused("ssh", &env, 1, "[ssh] remote_env: '2B=x' is not KEY=VALUE");
}

static void test_mpiexec_settings_refused(void **state)
{
    (void)state;
    section_t mpi = { { "mpi", "pytrilinos", NULL } };
    assert_start_refused("mpiexec", &mpi, 2, "[mpiexec] mpi: 'pytrilinos' is not none or mpi4py");
    section_t quote = { { "mpiexec_args", "--host \"a", NULL } };
    assert_start_refused("mpiexec", &quote, 2, "[mpiexec] mpiexec_args: unbalanced quote");
}

static int remote(const char *launcher, section_t *s, int count, char *host, size_t len)
{
    plx_launch_spec spec = spec_for(s, count);
    plx_err_t err = { 0 };
    const plx_launcher_ops *ops = find(launcher);
    assert_true(PLX_OPS_HAS(ops, plx_launcher_ops, remote_host));
    host[0] = '\0';
    int rc = ops->remote_host(&spec, host, len, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    return rc;
}

/* Hosts that ssh maps to loopback (ssh -G applies the ssh config) stay
 * here; a name that is not loopback leaves. */
static void test_ssh_remote_host(void **state)
{
    (void)state;
    char host[256], conf[] = "/tmp/plx-ssh-config-XXXXXX", opts[128];
    if (access("/usr/bin/ssh", X_OK) != 0)
        skip();
    int fd = mkstemp(conf);
    assert_true(fd >= 0);
    dprintf(fd, "Host node1 node2\n  HostName 127.0.0.1\nHost faraway\n  HostName 192.0.2.7\n");
    close(fd);
    snprintf(opts, sizeof opts, "-F %s", conf);
    section_t local = { { "hosts", "localhost:2, 127.0.0.1", NULL } };
    assert_int_equal(remote("ssh", &local, 3, host, sizeof host), 0);
    section_t aliased = { { "hosts", "node1, node2", "ssh_options", opts, NULL } };
    assert_int_equal(remote("ssh", &aliased, 4, host, sizeof host), 0);
    section_t far = { { "hosts", "node1:1, far.example.invalid", "ssh_options", opts, NULL } };
    assert_int_equal(remote("ssh", &far, 1, host, sizeof host), 0);   /* -n 1: node1 only */
    assert_int_equal(remote("ssh", &far, 2, host, sizeof host), 1);
    assert_string_equal(host, "far.example.invalid");
    /* an alias names the host ssh connects to: that is where routes go */
    section_t alias = { { "hosts", "faraway", "ssh_options", opts, NULL } };
    assert_int_equal(remote("ssh", &alias, 1, host, sizeof host), 1);
    assert_string_equal(host, "192.0.2.7");
    unlink(conf);
}

static void test_mpiexec_remote_host(void **state)
{
    (void)state;
    char host[256], file[] = "/tmp/plx-hostfile-XXXXXX", args[128];
    section_t plain = { { NULL } };
    assert_int_equal(remote("mpiexec", &plain, 2, host, sizeof host), 0);
    section_t local = { { "mpiexec_args", "--oversubscribe --host localhost:2,127.0.0.1", NULL } };
    assert_int_equal(remote("mpiexec", &local, 2, host, sizeof host), 0);
    section_t far = { { "mpiexec_args", "-H localhost,far.example.invalid:4", NULL } };
    assert_int_equal(remote("mpiexec", &far, 2, host, sizeof host), 1);
    assert_string_equal(host, "far.example.invalid");
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    dprintf(fd, "# hosts\nlocalhost slots=2\n\nfar2.example.invalid slots=4\n");
    close(fd);
    snprintf(args, sizeof args, "--hostfile %s", file);
    section_t hf = { { "mpiexec_args", args, NULL } };
    assert_int_equal(remote("mpiexec", &hf, 2, host, sizeof host), 1);
    assert_string_equal(host, "far2.example.invalid");
    unlink(file);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_key_tables),
    cmocka_unit_test(test_ssh_settings_refused),
    cmocka_unit_test(test_mpiexec_settings_refused),
    cmocka_unit_test(test_ssh_remote_host),
    cmocka_unit_test(test_mpiexec_remote_host),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("launcher_remote", tests, NULL, NULL))
