/*
 * Which address ipcluster offers engines on other hosts when the profile
 * leaves it open (core/cluster/plx_cluster_addr.c, plx_cluster_check.c).
 *
 * Real routes, in a network namespace of the test's own (unshare: root
 * only; a test that cannot make one says so and skips): a veth pair whose
 * end plx0 holds 10.213.7.1/24, so that 10.213.7.2 is "another host" on it,
 * and a default route through it is added half-way. Nothing outside the
 * namespace is touched, and the namespace goes with the process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plx_test.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_cluster_check.h"
#include "plx_conf.h"

static int in_netns;

static int sh(const char *cmd)
{
    char full[512];
    snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
    return system(full);
}

/* A namespace with lo and plx0 (10.213.7.1/24, a veth to plx1) up, no
 * default route. */
static int make_netns(void **state)
{
    (void)state;
    if (unshare(CLONE_NEWNET) != 0)
        return 0;   /* not root: each test skips */
    in_netns = sh("ip link set lo up") == 0 &&
               sh("ip link add plx0 type veth peer name plx1") == 0 &&
               sh("ip addr add 10.213.7.1/24 dev plx0") == 0 && sh("ip link set plx0 up") == 0 &&
               sh("ip link set plx1 up") == 0;
    return 0;
}

#define NEED_NETNS()                                                                       \
    do {                                                                                   \
        if (!in_netns) {                                                                   \
            print_message("skipped: needs root to make a network namespace (unshare, ip)\n"); \
            skip();                                                                        \
        }                                                                                  \
    } while (0)

static const char *remote_answer = "10.213.7.2";

static int fake_remote_host(const plx_launch_spec *spec, char *host, size_t len, plx_err_t *err)
{
    (void)spec;
    (void)err;
    snprintf(host, len, "%s", remote_answer);
    return 1;
}

static const plx_launcher_ops remote_ops = {
    .size = sizeof remote_ops,
    .remote_host = fake_remote_host,
};

static void test_route_to_a_host(void **state)
{
    (void)state;
    NEED_NETNS();
    char addr[64], ifname[64];
    plx_err_t err = {0};
    assert_int_equal(plx_cluster_pick_address("10.213.7.2", addr, sizeof addr, ifname,
                                              sizeof ifname, &err), PLX_OK);
    assert_string_equal(addr, "10.213.7.1");
    assert_string_equal(ifname, "plx0");
    /* no route to elsewhere (yet): refused with the reason */
    assert_int_equal(plx_cluster_pick_address("192.0.2.5", addr, sizeof addr, ifname,
                                              sizeof ifname, &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no route from this host to 192.0.2.5"));
}

static void test_batch_nodes_take_the_default_route(void **state)
{
    (void)state;
    NEED_NETNS();
    char addr[64], ifname[64];
    plx_err_t err = {0};
    const char *nodes = "the batch system's compute nodes";
    assert_int_equal(plx_cluster_pick_address(nodes, addr, sizeof addr, ifname, sizeof ifname,
                                              &err), PLX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no default route"));
    assert_int_equal(sh("ip route add default dev plx0"), 0);
    assert_int_equal(plx_cluster_pick_address(nodes, addr, sizeof addr, ifname, sizeof ifname,
                                              &err), PLX_OK);
    assert_string_equal(addr, "10.213.7.1");
    assert_string_equal(ifname, "plx0");
    assert_int_equal(sh("ip route del default dev plx0"), 0);
}

static plx_conf_t *conf_of(const char *text)
{
    plx_err_t err = {0};
    plx_conf_t *conf = plx_conf_new_defaults();
    assert_non_null(conf);
    assert_int_equal(plx_conf_parse_string(conf, text, "cluster.conf", &err), PLX_OK);
    return conf;
}

static void test_check_picks_and_says_which(void **state)
{
    (void)state;
    NEED_NETNS();
    plx_launch_spec spec = {.size = sizeof spec, .role = PLX_LAUNCH_ENGINES, .count = 2};
    char note[512];
    int picked = 0;
    plx_err_t err = {0};
    plx_conf_t *conf = conf_of("");
    assert_int_equal(plx_cluster_check_reachable(conf, &remote_ops, "ssh", &spec, note,
                                                 sizeof note, &picked, &err), PLX_OK);
    assert_int_equal(picked, 1);
    assert_string_equal(plx_conf_cluster(conf)->listen, "10.213.7.1");
    assert_string_equal(plx_conf_cluster(conf)->location, "10.213.7.1");
    assert_string_equal(note, "engines run on 10.213.7.2: the controller listens on 10.213.7.1 "
                              "(interface plx0), the address written into the connection files "
                              "(--ip / --location choose another)");
    plx_conf_destroy(&conf);

    /* chosen on purpose (a tunnel): kept, with a warning */
    conf = conf_of("[cluster]\nlisten = 127.0.0.1\n");
    assert_int_equal(plx_cluster_check_reachable(conf, &remote_ops, "ssh", &spec, note,
                                                 sizeof note, &picked, &err), PLX_OK);
    assert_int_equal(picked, 0);
    assert_string_equal(plx_conf_cluster(conf)->location, "127.0.0.1");
    assert_non_null(strstr(note, "they can only connect through a tunnel"));
    plx_conf_destroy(&conf);

    /* no way to tell: refused, naming the flags */
    remote_answer = "192.0.2.5";
    conf = conf_of("");
    assert_int_equal(plx_cluster_check_reachable(conf, &remote_ops, "ssh", &spec, note,
                                                 sizeof note, &picked, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "ipcluster --ip ADDRESS"));
    assert_non_null(strstr(err.msg, "no route from this host to 192.0.2.5"));
    remote_answer = "10.213.7.2";
    plx_conf_destroy(&conf);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_route_to_a_host),
    cmocka_unit_test(test_batch_nodes_take_the_default_route),
    cmocka_unit_test(test_check_picks_and_says_which),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("cluster_addr", tests, make_netns, NULL))
