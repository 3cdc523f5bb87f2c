/*
 * Tests of core/plugin/plx_plugin_loader against real shared objects: the
 * shipped tcp, shm and local plugins and the fixtures of fixture_plugin.c,
 * fixture_launcher.c and fixture_launcher_v1.c (a plugin as the first
 * headers built it). ctest sets PLX_PLUGIN_PATH=<fixture dir>:<plugin dir>.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plexa/version.h"
#include "plx_cluster_check.h"
#include "plx_conf.h"
#include "plx_plugin_loader.h"

/* Refusal of fixture `name` with `code`, naming its file. */
static void assert_refused(const char *name, int code, const char *also)
{
    plx_err_t err = { 0 };
    const plx_plugin *p = NULL;
    char file[128];
    int rc = plx_plugin_load(PLX_PLUGIN_TRANSPORT, name, &p, &err);

    snprintf(file, sizeof file, "plexa-transport-%s", name);
    print_message("%s -> %d: %s\n", name, rc, err.msg);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_null(p);
    assert_non_null(strstr(err.msg, file));
    assert_non_null(strstr(err.msg, PLX_TEST_FIXTURE_DIR));
    if (also != NULL)
        assert_non_null(strstr(err.msg, also));
}

static void *load_good_thread(void *arg)
{
    const plx_plugin *p = NULL;
    plx_err_t err = { 0 };

    if (plx_plugin_load(PLX_PLUGIN_TRANSPORT, "good", &p, &err) != PLX_OK)
        return NULL;
    return (void *)p;
}

/* Concurrent first loads of one plugin all get the same descriptor. */
static void test_concurrent_first_load(void **state)
{
    pthread_t t[8];
    void *got[8];

    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, load_good_thread, NULL), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_join(t[i], &got[i]), 0);
    assert_non_null(got[0]);
    for (int i = 1; i < 8; i++)
        assert_ptr_equal(got[i], got[0]);
}

/* The shipped plugins load by name with complete ops tables. */
static void test_load_real_plugins(void **state)
{
    const plx_plugin *tcp = NULL, *local = NULL;
    plx_err_t err = { 0 };

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_TRANSPORT, "tcp", &tcp, &err), PLX_OK);
    assert_int_equal(tcp->kind, PLX_PLUGIN_TRANSPORT);
    assert_string_equal(tcp->name, "tcp");
    assert_true(((const plx_transport_ops *)tcp->ops)->size >= PLX_TRANSPORT_OPS_V1_SIZE);
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "local", &local, &err), PLX_OK);
    assert_int_equal(local->kind, PLX_PLUGIN_LAUNCHER);
    assert_string_equal(local->name, "local");
    assert_true(PLX_OPS_HAS((const plx_launcher_ops *)local->ops, plx_launcher_ops, pids));
}

/* Loading again, by name, through find or by file, gives the same pointer. */
static void test_cache(void **state)
{
    const plx_plugin *a = NULL, *b = NULL, *c = NULL;
    plx_err_t err = { 0 };

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_TRANSPORT, "tcp", &a, &err), PLX_OK);
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_TRANSPORT, "tcp", &b, &err), PLX_OK);
    assert_ptr_equal(a, b);
    assert_ptr_equal(plx_transport_find("tcp", &err), a->ops);
    assert_int_equal(plx_plugin_load_file(PLX_TEST_PLUGIN_DIR "/plexa-transport-tcp.so",
                                          PLX_PLUGIN_TRANSPORT, "tcp", &c, &err), PLX_OK);
    assert_ptr_equal(a, c);
    assert_non_null(plx_launcher_find("local", &err));
    assert_ptr_equal(plx_launcher_find("local", &err), plx_launcher_find("local", &err));
}

static void test_refuse_bad_abi(void **state)
{
    assert_refused("badabi", PLX_EABI, "built against plugin ABI 7, this plexa speaks 1");
}

static void test_refuse_wrong_kind(void **state)
{
    assert_refused("wrongkind", PLX_EINVAL, "launcher plugin, not a transport");
}

static void test_refuse_no_symbol(void **state)
{
    assert_refused("nosym", PLX_EABI, "plx_plugin_descriptor");
}

static void test_refuse_misnamed(void **state)
{
    assert_refused("misnamed", PLX_EINVAL, "'other'");
}

static void test_refuse_bad_ops(void **state)
{
    assert_refused("smallops", PLX_EABI, "ops table is 8 bytes");
    assert_refused("nullop", PLX_EINVAL, "'sendv'");
    assert_refused("noops", PLX_EINVAL, "no ops table");
}

/* Loader messages say what is wrong with the file, in the dynamic
 * linker's words, and a plugin needing plexa's own functions is refused
 * before any of its code runs. */
static void test_refuse_unloadable(void **state)
{
    assert_refused("notelf", PLX_EIO, "invalid ELF header");
    assert_refused("missingdep", PLX_EIO,
                   "libplxfixturedep.so.1: cannot open shared object file");
    assert_refused("hostsym", PLX_EABI, "plx_buf_pool_trim");
    plx_err_t err = { 0 };
    const plx_plugin *p = NULL;
    plx_plugin_load(PLX_PLUGIN_TRANSPORT, "hostsym", &p, &err);
    assert_non_null(strstr(err.msg, "not part of the plugin ABI"));
}

/* A missing plugin's message lists every directory searched. */
static void test_not_found(void **state)
{
    plx_err_t err = { 0 };
    const plx_plugin *p = NULL;

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "nosuch", &p, &err), PLX_ENOTFOUND);
    print_message("%s\n", err.msg);
    assert_null(p);
    assert_non_null(strstr(err.msg, "plexa-launcher-nosuch"));
    assert_non_null(strstr(err.msg, PLX_TEST_FIXTURE_DIR));
    assert_non_null(strstr(err.msg, PLX_TEST_PLUGIN_DIR));
    assert_non_null(strstr(err.msg, "/tests/plexa/plugins"));
    assert_null(plx_transport_find("nosuch", &err));
    assert_int_equal(err.code, PLX_ENOTFOUND);
}

/* Names are file name parts: no path tricks. */
static void test_invalid_name(void **state)
{
    plx_err_t err = { 0 };
    const plx_plugin *p = NULL;

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_TRANSPORT, "../tcp", &p, &err), PLX_EINVAL);
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_TRANSPORT, "", &p, &err), PLX_EINVAL);
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_TRANSPORT, NULL, &p, &err), PLX_EINVAL);
    assert_int_equal(plx_plugin_load((plx_plugin_kind)9, "tcp", &p, &err), PLX_EINVAL);
    assert_null(p);
}

static void test_load_file_checks(void **state)
{
    plx_err_t err = { 0 };
    const plx_plugin *p = NULL;
    const char *good = PLX_TEST_FIXTURE_DIR "/plexa-transport-good";

    assert_int_equal(plx_plugin_load_file(good, PLX_PLUGIN_TRANSPORT, "bad", &p, &err),
                     PLX_EINVAL);
    assert_non_null(strstr(err.msg, "plexa-transport-good"));
    assert_int_equal(plx_plugin_load_file(good, PLX_PLUGIN_LAUNCHER, NULL, &p, &err),
                     PLX_EINVAL);
    assert_int_equal(plx_plugin_load_file(PLX_TEST_FIXTURE_DIR "/plexa-transport-absent",
                                          PLX_PLUGIN_TRANSPORT, NULL, &p, &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "plexa-transport-absent"));
    assert_null(p);
    assert_int_equal(plx_plugin_load_file(good, PLX_PLUGIN_TRANSPORT, NULL, &p, &err), PLX_OK);
    assert_string_equal(p->name, "good");
}

/* A second copy of an already loaded plugin is refused, naming both files. */
static void test_duplicate_refused(void **state)
{
    char dir[] = "/tmp/plx-dup-XXXXXX";
    char cmd[512], copy[256];
    plx_err_t err = { 0 };
    const plx_plugin *p = NULL, *tcp = NULL;

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_TRANSPORT, "tcp", &tcp, &err), PLX_OK);
    assert_non_null(mkdtemp(dir));
    snprintf(copy, sizeof copy, "%s/plexa-transport-tcp.so", dir);
    snprintf(cmd, sizeof cmd, "cp %s/plexa-transport-tcp.so %s", PLX_TEST_PLUGIN_DIR, copy);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(plx_plugin_load_file(copy, PLX_PLUGIN_TRANSPORT, NULL, &p, &err),
                     PLX_EINVAL);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "already loaded"));
    assert_null(p);
    unlink(copy);
    rmdir(dir);
}

/* Test binaries live in build/tests, not bin/: <dir>/plexa/plugins. */
static void test_default_dir(void **state)
{
    char dir[4096], small[4];
    const char *tail = "/tests/plexa/plugins";

    assert_int_equal(plx_plugin_default_dir(dir, sizeof dir), PLX_OK);
    assert_true(strlen(dir) > strlen(tail));
    assert_string_equal(dir + strlen(dir) - strlen(tail), tail);
    assert_int_equal(plx_plugin_default_dir(small, sizeof small), PLX_ELIMIT);
}

/* A copy of this binary in <prefix>/bin finds <prefix>/lib/plexa/plugins. */
static void test_default_dir_from_bin(void **state)
{
    char prefix[] = "/tmp/plx-prefix-XXXXXX";
    char cmd[1024], got[4096] = "", want[4096];
    FILE *out;

    assert_non_null(mkdtemp(prefix));
    snprintf(cmd, sizeof cmd, "mkdir -p %s/bin %s/lib/plexa/plugins && "
             "cp /proc/%d/exe %s/bin/plx-selftest", prefix, prefix, (int)getpid(), prefix);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/bin/plx-selftest --print-default-dir", prefix);
    out = popen(cmd, "r");
    assert_non_null(out);
    assert_non_null(fgets(got, sizeof got, out));
    assert_int_equal(pclose(out), 0);
    snprintf(want, sizeof want, "%s/lib/plexa/plugins\n", prefix);
    assert_string_equal(got, want);
    assert_int_equal(plx_test_rmtree(prefix), 0);
}

typedef struct seen {
    int  n;
    char names[32][64];
} seen;

static void collect(const plx_plugin *p, const char *path, void *ud)
{
    seen *s = ud;

    assert_non_null(strstr(path, p->name));
    if (s->n < 32)
        snprintf(s->names[s->n++], sizeof s->names[0], "%s", p->name);
}

static bool has(const seen *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return true;
    return false;
}

/* Listing reports valid plugins of a kind once each, and skips the broken. */
/* Key tables: read when the ops table is big enough to hold them,
 * refused when malformed, ignored for version-1 plugins (which load). */
static void test_launcher_keys(void **state)
{
    const plx_plugin *p = NULL;
    const plx_launcher_key *keys;
    plx_err_t err = { 0 };

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "keyed", &p, &err), PLX_OK);
    keys = plx_launcher_keys(p->ops);
    assert_non_null(keys);
    assert_string_equal(keys[0].name, "color");
    assert_null(keys[1].name);
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "oldabi", &p, &err), PLX_OK);
    assert_null(plx_launcher_keys(p->ops));
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "badkey", &p, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "plexa-launcher-badkey"));
    assert_non_null(strstr(err.msg, "'Bad Key'"));
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "longkeys", &p, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "no end"));
    /* The shipped launchers declare their keys. */
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "local", &p, &err), PLX_OK);
    keys = plx_launcher_keys(p->ops);
    assert_non_null(keys);
    assert_null(keys[0].name);
}

/* The descriptor's version is the plugin's own; a plugin written for the
 * four-argument PLX_PLUGIN_DEFINE still builds, and says "1" as it did. */
static void test_plugin_versions(void **state)
{
    const plx_plugin *p = NULL;
    plx_err_t err = { 0 };

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "keyed", &p, &err), PLX_OK);
    assert_string_equal(p->version, "2.5-fixture");
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "oldmacro", &p, &err), PLX_OK);
    assert_string_equal(p->version, "1");
    assert_non_null(plx_launcher_keys(p->ops));   /* built with today's table */
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "local", &p, &err), PLX_OK);
    assert_string_equal(p->version, PLX_VERSION_STRING);
    assert_int_equal(plx_plugin_load(PLX_PLUGIN_TRANSPORT, "tcp", &p, &err), PLX_OK);
    assert_string_equal(p->version, PLX_VERSION_STRING);
}

/* A plugin built against the first headers (descriptor "1", an ops table
 * that really ends at pids) loads, works, and nothing reads past its
 * table: not the loader, not the key table lookup, not ipcluster's checks,
 * which would find fx_trap there (see fixture_launcher_v1.c). */
static void test_v1_plugin(void **state)
{
    const plx_plugin *p = NULL;
    plx_err_t err = { 0 };

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "v1", &p, &err), PLX_OK);
    const plx_launcher_ops *ops = p->ops;
    assert_string_equal(p->version, "1");
    assert_int_equal(ops->size, PLX_LAUNCHER_OPS_V1_SIZE);
    assert_true(PLX_OPS_HAS(ops, plx_launcher_ops, destroy));
    assert_false(PLX_OPS_HAS(ops, plx_launcher_ops, pids));          /* NULL */
    assert_false(PLX_OPS_HAS(ops, plx_launcher_ops, keys));          /* past its size */
    assert_false(PLX_OPS_HAS(ops, plx_launcher_ops, remote_host));
    assert_false(PLX_OPS_HAS(ops, plx_launcher_ops, output_file));
    assert_null(plx_launcher_keys(ops));

    const char *argv[] = { "/bin/true", NULL };
    plx_launch_spec spec = { .size = sizeof spec, .role = PLX_LAUNCH_ENGINES, .count = 1,
                             .argv = argv };
    void *job = &spec;
    assert_int_equal(ops->start(&spec, &job, &err), PLX_EDECLINED);
    assert_null(job);

    /* Its section is the plugin's to check; the loopback check is skipped
     * (it cannot say where its processes run). */
    plx_conf_t *conf = plx_conf_new_defaults();
    assert_non_null(conf);
    assert_int_equal(plx_conf_parse_string(conf, "[v1]\nflavour = any\n", "cluster.conf", &err),
                     PLX_OK);
    assert_int_equal(plx_cluster_check_launcher_keys(conf, "local", "v1", &err), PLX_OK);
    char warn[256] = "x";
    int picked = 1;
    assert_int_equal(plx_cluster_check_reachable(conf, ops, "v1", &spec, warn, sizeof warn,
                                                 &picked, &err),
                     PLX_OK);
    assert_string_equal(warn, "");
    assert_int_equal(picked, 0);
    plx_conf_destroy(&conf);
}

/* The control: what lies past the v1 table is a trap, so a caller that
 * skipped PLX_OPS_HAS would not pass the test above by luck. */
static void test_v1_plugin_trap(void **state)
{
    const plx_plugin *p = NULL;
    plx_err_t err = { 0 };

    assert_int_equal(plx_plugin_load(PLX_PLUGIN_LAUNCHER, "v1", &p, &err), PLX_OK);
    const plx_launcher_ops *ops = p->ops;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char host[64];
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);   /* fx_trap's message is expected here */
        if (ops->remote_host != NULL)   /* read without PLX_OPS_HAS */
            ops->remote_host(NULL, host, sizeof host, &err);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* fx_trap's abort(); a sanitizer that checks function types stops the
     * call itself, with its exit code. */
    assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
                (WIFEXITED(status) && WEXITSTATUS(status) != 0));
}

/* A transport table of version 1 still loads, built with today's header
 * but saying so by its size: the descriptor-passing members it holds
 * (fx_trap in fixture_plugin.c) are past that size, and PLX_OPS_HAS says
 * they are absent. The shm plugin has them; tcp is version 2 without them. */
static void test_v1_transport(void **state)
{
    const plx_transport_ops *v1, *shm, *tcp;
    plx_err_t err = { 0 };

    v1 = plx_transport_find("v1", &err);
    if (v1 == NULL)
        print_error("%s\n", err.msg);
    assert_non_null(v1);
    assert_int_equal(v1->size, PLX_TRANSPORT_OPS_V1_SIZE);
    assert_true(PLX_TRANSPORT_OPS_V1_SIZE < sizeof(plx_transport_ops));
    assert_true(PLX_OPS_HAS(v1, plx_transport_ops, sendv));
    assert_true(PLX_OPS_HAS(v1, plx_transport_ops, close));
    /* Set, but past the table's size: the size alone decides. */
    assert_non_null(v1->sendv_fds);
    assert_false(PLX_OPS_HAS(v1, plx_transport_ops, sendv_fds));
    assert_false(PLX_OPS_HAS(v1, plx_transport_ops, recv_fds));

    shm = plx_transport_find("shm", &err);
    assert_non_null(shm);
    assert_int_equal(shm->size, PLX_TRANSPORT_OPS_V2_SIZE);
    assert_true(PLX_OPS_HAS(shm, plx_transport_ops, sendv_fds));
    assert_true(PLX_OPS_HAS(shm, plx_transport_ops, recv_fds));

    tcp = plx_transport_find("tcp", &err);
    assert_non_null(tcp);
    assert_true(tcp->size >= PLX_TRANSPORT_OPS_V2_SIZE);
    assert_false(PLX_OPS_HAS(tcp, plx_transport_ops, sendv_fds));   /* NULL */
}

static void test_list(void **state)
{
    seen t = { 0 }, l = { 0 };
    int n;

    n = plx_plugin_list(PLX_PLUGIN_TRANSPORT, collect, &t);
    assert_int_equal(n, t.n);
    assert_true(has(&t, "tcp"));
    assert_true(has(&t, "tls"));
    assert_true(has(&t, "shm"));
    assert_true(has(&t, "good"));
    assert_true(has(&t, "v1"));
    assert_false(has(&t, "badabi") || has(&t, "other") || has(&t, "wrongkind") ||
                 has(&t, "nosym") || has(&t, "nullop") || has(&t, "hostsym") ||
                 has(&t, "missingdep") || has(&t, "notelf"));
    for (int i = 0; i < t.n; i++)
        print_message("listed: %s\n", t.names[i]);
    assert_int_equal(t.n, 5);
    n = plx_plugin_list(PLX_PLUGIN_LAUNCHER, collect, &l);
    assert_int_equal(n, l.n);
    assert_true(has(&l, "local"));
    assert_false(has(&l, "tcp"));
}

/* The program is also its own helper, for test_default_dir_from_bin:
 * `test_plugin_loader --print-default-dir` prints what the loader finds. */
static int helper_mode(int argc, char **argv)
{
    char dir[4096];

    if (argc != 2 || strcmp(argv[1], "--print-default-dir") != 0)
        return PLX_TEST_RUN;
    if (plx_plugin_default_dir(dir, sizeof dir) != PLX_OK)
        return 1;
    printf("%s\n", dir);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_concurrent_first_load),
    cmocka_unit_test(test_load_real_plugins),
    cmocka_unit_test(test_cache),
    cmocka_unit_test(test_refuse_bad_abi),
    cmocka_unit_test(test_refuse_wrong_kind),
    cmocka_unit_test(test_refuse_no_symbol),
    cmocka_unit_test(test_refuse_misnamed),
    cmocka_unit_test(test_refuse_bad_ops),
    cmocka_unit_test(test_refuse_unloadable),
    cmocka_unit_test(test_not_found),
    cmocka_unit_test(test_invalid_name),
    cmocka_unit_test(test_load_file_checks),
    cmocka_unit_test(test_duplicate_refused),
    cmocka_unit_test(test_default_dir),
    cmocka_unit_test(test_default_dir_from_bin),
    cmocka_unit_test(test_list),
    cmocka_unit_test(test_launcher_keys),
    cmocka_unit_test(test_plugin_versions),
    cmocka_unit_test(test_v1_plugin),
    cmocka_unit_test(test_v1_plugin_trap),
    cmocka_unit_test(test_v1_transport),
};

PLX_TEST_SUITE(helper_mode, NULL, PLX_TEST_GROUP("plugin_loader", tests, NULL, NULL))
