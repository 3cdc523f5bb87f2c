/* Unit tests of cluster.conf: core/profile/plx_conf.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "plx_test.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plx_conf.h"
#include "plx_log.h"

/* ---- fixtures ------------------------------------------------------------- */

static char tmpdir[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plx-test-conf-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void assert_defaults(const plx_conf_t *c)
{
    const plx_cluster_conf_t *cl = plx_conf_cluster(c);
    const plx_controller_conf_t *ct = plx_conf_controller(c);
    assert_string_equal(cl->transport, "tls");
    assert_string_equal(cl->controller_launcher, "local");
    assert_string_equal(cl->engine_launcher, "local");
    assert_int_equal(cl->engines, 2);
    assert_string_equal(cl->listen, "127.0.0.1");
    assert_string_equal(cl->location, "127.0.0.1");
    assert_int_equal(cl->port, 0);
    assert_true(cl->heartbeat_period == 1.0);
    assert_int_equal(cl->heartbeat_misses, 5);
    assert_false(cl->restart_engines);
    assert_int_equal(cl->max_restarts, 3);
    assert_false(cl->allow_insecure);
    assert_true(cl->start_timeout == 60.0);
    assert_int_equal(cl->log_level, PLX_LOG_INFO);
    assert_int_equal(ct->max_envelope, 16777216);
    assert_int_equal(ct->max_buffers, 65536);
    assert_int_equal(ct->results_max, 100000);
    assert_int_equal(ct->results_max_bytes, 268435456);
    assert_int_equal(ct->task_inflight, 0);
    assert_string_equal(ct->scheduler, "adaptive");
}

/* Parse text (named "/x/cluster.conf") into a fresh conf, expecting the
 * exact error message want; the conf must still hold the defaults. */
static void parse_fails(const char *text, const char *want)
{
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    assert_non_null(c);
    int rc = plx_conf_parse_string(c, text, "/x/cluster.conf", &err);
    if (rc != PLX_EINVAL || strcmp(err.msg, want) != 0)
        fail_msg("text:\n%s\nrc %d, message\n  '%s'\nwanted\n  '%s'", text, rc, err.msg, want);
    assert_defaults(c);
    plx_conf_destroy(&c);
}

/* ---- defaults and valid files ------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    plx_conf_t *c = plx_conf_new_defaults();
    assert_non_null(c);
    assert_defaults(c);
    assert_string_equal(plx_conf_get(c, "cluster", "engines"), "2");
    assert_string_equal(plx_conf_get(c, "cluster", "transport"), "tls");
    assert_string_equal(plx_conf_get(c, "cluster", "location"), "");
    assert_string_equal(plx_conf_get(c, "controller", "max_envelope"), "16777216");
    assert_null(plx_conf_get(c, "cluster", "nope"));
    assert_null(plx_conf_get(c, "pbs", "queue"));
    plx_conf_destroy(&c);
    assert_null(c);
    plx_conf_destroy(&c);   /* NULL-safe */
    plx_conf_destroy(NULL);
}

/* Every key set to something other than its default. */
static void test_parse_all_keys(void **state)
{
    (void)state;
    static const char text[] =
        "# a comment\n"
        "; another\n"
        "[cluster]\n"
        "transport = tls\n"
        "controller_launcher = ssh\n"
        "engine_launcher = pbs\n"
        "engines = 64\n"
        "listen = 0.0.0.0\n"
        "location = \"head.example.org\"\n"
        "port = 65535\n"
        "heartbeat_period = 0.25\n"
        "heartbeat_misses = 1\n"
        "restart_engines = yes\n"
        "max_restarts = 0\n"
        "allow_insecure = On\n"
        "start_timeout = 3600.5\n"
        "log_level = debug\n"
        "\n"
        "[controller]\n"
        "max_envelope = 1K\n"
        "max_buffers = 16777216\n"
        "results_max = 1\n"
        "results_max_bytes = 2GiB\n";
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    assert_int_equal(plx_conf_parse_string(c, text, "t", &err), PLX_OK);
    const plx_cluster_conf_t *cl = plx_conf_cluster(c);
    const plx_controller_conf_t *ct = plx_conf_controller(c);
    assert_string_equal(cl->transport, "tls");
    assert_string_equal(cl->controller_launcher, "ssh");
    assert_string_equal(cl->engine_launcher, "pbs");
    assert_int_equal(cl->engines, 64);
    assert_string_equal(cl->listen, "0.0.0.0");
    assert_string_equal(cl->location, "head.example.org");
    assert_int_equal(cl->port, 65535);
    assert_true(cl->heartbeat_period == 0.25);
    assert_int_equal(cl->heartbeat_misses, 1);
    assert_true(cl->restart_engines);
    assert_int_equal(cl->max_restarts, 0);
    assert_true(cl->allow_insecure);
    assert_true(cl->start_timeout == 3600.5);
    assert_int_equal(cl->log_level, PLX_LOG_DEBUG);
    assert_int_equal(ct->max_envelope, 1024);
    assert_int_equal(ct->max_buffers, 16777216);
    assert_int_equal(ct->results_max, 1);
    assert_int_equal(ct->results_max_bytes, 2ull << 30);
    assert_string_equal(plx_conf_get(c, "cluster", "location"), "head.example.org");
    assert_string_equal(plx_conf_get(c, "cluster", "restart_engines"), "yes");
    assert_string_equal(plx_conf_get(c, "controller", "results_max_bytes"), "2GiB");
    plx_conf_destroy(&c);
}

/* Indentation, inline comments, quotes, CRLF, "key: value" and booleans. */
static void test_parse_syntax_variants(void **state)
{
    (void)state;
    static const char *const yes[] = { "true", "TRUE", "yes", "on", "1" };
    static const char *const no[] = { "false", "No", "off", "0" };
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    char text[256];

    /* An indented line is a key of its own, not a continuation. */
    assert_int_equal(plx_conf_parse_string(c, "  [cluster]\r\n\tengines = 7 ; seven\r\n"
                                              "    port: 99\r\n  location = [::1]\r\n"
                                              "listen = \"\"\n", "t", &err), PLX_EINVAL);
    assert_string_equal(err.msg, "t:5: [cluster] listen: empty host");
    assert_int_equal(plx_conf_parse_string(c, "  [cluster]\r\n\tengines = 7 ; seven\r\n"
                                              "    port: 99\r\n  location = [::1]\r\n",
                                           "t", &err), PLX_OK);
    assert_int_equal(plx_conf_cluster(c)->engines, 7);
    assert_int_equal(plx_conf_cluster(c)->port, 99);
    assert_string_equal(plx_conf_cluster(c)->location, "::1");
    assert_string_equal(plx_conf_get(c, "cluster", "location"), "[::1]");

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        snprintf(text, sizeof text, "[cluster]\nrestart_engines = %s\n", yes[i]);
        assert_int_equal(plx_conf_parse_string(c, text, "t", &err), PLX_OK);
        assert_true(plx_conf_cluster(c)->restart_engines);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        snprintf(text, sizeof text, "[cluster]\nrestart_engines = %s\n", no[i]);
        assert_int_equal(plx_conf_parse_string(c, text, "t", &err), PLX_OK);
        assert_false(plx_conf_cluster(c)->restart_engines);
    }
    /* Empty text and comment-only text change nothing. */
    assert_int_equal(plx_conf_parse_string(c, "", "t", &err), PLX_OK);
    assert_int_equal(plx_conf_parse_string(c, "# nothing\n\n", "t", &err), PLX_OK);
    assert_int_equal(plx_conf_cluster(c)->engines, 7);
    /* No trailing newline on the last line. */
    assert_int_equal(plx_conf_parse_string(c, "[cluster]\nengines=9", "t", &err), PLX_OK);
    assert_int_equal(plx_conf_cluster(c)->engines, 9);
    plx_conf_destroy(&c);
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct { const char *text; uint64_t want; } ok[] = {
        { "1024", 1024 }, { "64k", 64 << 10 }, { "16M", 16 << 20 }, { "16MiB", 16 << 20 },
        { "1G", 1 << 30 }, { "2GB", 2ull << 30 }, { "2048m", 2ull << 30 },
    };
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    char text[128];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(text, sizeof text, "[controller]\nmax_envelope = %s\n", ok[i].text);
        assert_int_equal(plx_conf_parse_string(c, text, "t", &err), PLX_OK);
        assert_int_equal(plx_conf_controller(c)->max_envelope, ok[i].want);
    }
    assert_int_equal(plx_conf_parse_string(c, "[controller]\nresults_max_bytes = 1T\n", "t", &err),
                     PLX_OK);
    assert_int_equal(plx_conf_controller(c)->results_max_bytes, 1ull << 40);
    plx_conf_destroy(&c);
}

/* [pbs] and any other section: free-form strings, kept in order. */
typedef struct seen {
    char text[512];
} seen_t;

static int visit(void *ctx, const char *key, const char *value, const char *file, int line)
{
    seen_t *s = ctx;
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof s->text - n, "%s=%s@%s:%d;", key, value, file ? file : "-", line);
    return strcmp(key, "stop") == 0 ? 42 : 0;
}

static void test_launcher_sections(void **state)
{
    (void)state;
    static const char text[] =
        "[cluster]\n"
        "engine_launcher = pbs\n"
        "[pbs]\n"
        "queue = batch\n"
        "walltime = 01:00:00\n"
        "template = engine.pbs ; relative to the profile dir\n"
        "resources = \"nodes=4:ppn=8\"\n"
        "[my-site_launcher2]\n"
        "x.y = anything goes = here\n";
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    assert_int_equal(plx_conf_parse_string(c, text, "f.conf", &err), PLX_OK);
    assert_string_equal(plx_conf_get(c, "pbs", "queue"), "batch");
    assert_string_equal(plx_conf_get(c, "pbs", "walltime"), "01:00:00");
    assert_string_equal(plx_conf_get(c, "pbs", "template"), "engine.pbs");
    assert_string_equal(plx_conf_get(c, "pbs", "resources"), "nodes=4:ppn=8");
    assert_string_equal(plx_conf_get(c, "my-site_launcher2", "x.y"), "anything goes = here");
    assert_null(plx_conf_get(c, "pbs", "missing"));

    seen_t s = { "" };
    assert_int_equal(plx_conf_foreach(c, "pbs", visit, &s), 0);
    assert_string_equal(s.text, "queue=batch@f.conf:4;walltime=01:00:00@f.conf:5;"
                                "template=engine.pbs@f.conf:6;resources=nodes=4:ppn=8@f.conf:7;");

    /* Overrides keep the first position; a non-zero visit stops the walk. */
    assert_int_equal(plx_conf_set(c, "pbs", "queue", "long", &err), PLX_OK);
    assert_int_equal(plx_conf_set(c, "pbs", "stop", "1", &err), PLX_OK);
    assert_int_equal(plx_conf_set(c, "pbs", "after", "1", &err), PLX_OK);
    s.text[0] = '\0';
    assert_int_equal(plx_conf_foreach(c, "pbs", visit, &s), 42);
    assert_string_equal(s.text, "queue=long@-:0;walltime=01:00:00@f.conf:5;"
                                "template=engine.pbs@f.conf:6;resources=nodes=4:ppn=8@f.conf:7;"
                                "stop=1@-:0;");

    /* The view has the shape plx_launch_spec.conf expects. */
    plx_conf_view_t view = { c, "pbs" };
    const char *(*get)(void *, const char *) = plx_conf_view_get;
    assert_string_equal(get(&view, "walltime"), "01:00:00");
    assert_null(get(&view, "nope"));
    plx_conf_destroy(&c);
}

/* ---- errors ------------------------------------------------------------------ */

static void test_error_bad_values(void **state)
{
    (void)state;
    parse_fails("# comment\n\n[cluster]\nengines = abc\n",
                "/x/cluster.conf:4: [cluster] engines: 'abc' is not an integer (expected 1..65536)");
    parse_fails("[cluster]\nengines = 0\n",
                "/x/cluster.conf:2: [cluster] engines: 0 is out of range (expected 1..65536)");
    parse_fails("[cluster]\nengines = 65537\n",
                "/x/cluster.conf:2: [cluster] engines: 65537 is out of range (expected 1..65536)");
    parse_fails("[cluster]\nengines = 99999999999999999999\n",
                "/x/cluster.conf:2: [cluster] engines: '99999999999999999999' is not an integer "
                "(expected 1..65536)");
    parse_fails("[cluster]\nengines = 4.5\n",
                "/x/cluster.conf:2: [cluster] engines: '4.5' is not an integer (expected 1..65536)");
    parse_fails("[cluster]\nengines =\n",
                "/x/cluster.conf:2: [cluster] engines: '' is not an integer (expected 1..65536)");
    parse_fails("[cluster]\nport = 65536\n",
                "/x/cluster.conf:2: [cluster] port: 65536 is out of range (expected 0..65535)");
    parse_fails("[cluster]\nheartbeat_misses = 0\n",
                "/x/cluster.conf:2: [cluster] heartbeat_misses: 0 is out of range (expected 1..1000)");
    parse_fails("[cluster]\nmax_restarts = -1\n",
                "/x/cluster.conf:2: [cluster] max_restarts: -1 is out of range (expected 0..1000)");
    static const char *const bad_seconds[] = { "0", "-1", "abc", "nan", "inf", "3601", "1s", "" };
    for (size_t i = 0; i < sizeof bad_seconds / sizeof bad_seconds[0]; i++) {
        char text[128], want[256];
        snprintf(text, sizeof text, "[cluster]\nheartbeat_period = %s\n", bad_seconds[i]);
        snprintf(want, sizeof want,
                 "/x/cluster.conf:2: [cluster] heartbeat_period: '%s' is not a number of seconds "
                 "(expected > 0 and <= 3600)", bad_seconds[i]);
        parse_fails(text, want);
    }
    parse_fails("[cluster]\nrestart_engines = maybe\n",
                "/x/cluster.conf:2: [cluster] restart_engines: 'maybe' is not a boolean "
                "(expected true/false, yes/no, on/off or 1/0)");
    parse_fails("[cluster]\ntransport = udp\n",
                "/x/cluster.conf:2: [cluster] transport: 'udp' is not one of tcp|tls");
    parse_fails("[cluster]\ntransport = TCP\n",
                "/x/cluster.conf:2: [cluster] transport: 'TCP' is not one of tcp|tls");
    parse_fails("[cluster]\nlog_level = verbose\n",
                "/x/cluster.conf:2: [cluster] log_level: 'verbose' is not one of "
                "debug|info|warn|error");
    parse_fails("[cluster]\nengine_launcher = my launcher\n",
                "/x/cluster.conf:2: [cluster] engine_launcher: 'my launcher' is not a plugin "
                "name (letters, digits, '_' and '-')");
    parse_fails("[cluster]\nengine_launcher = controller\n",
                "/x/cluster.conf:2: [cluster] engine_launcher: 'controller' cannot be a "
                "launcher: [controller] is plexa's own section");
    parse_fails("[cluster]\nlisten = 10.0.0.256\n",
                "/x/cluster.conf:2: [cluster] listen: '10.0.0.256' is not a valid IPv4 address");
    parse_fails("[cluster]\nlocation = a b\n",
                "/x/cluster.conf:2: [cluster] location: host 'a b' contains ' '");
    parse_fails("[controller]\nmax_envelope = 12Q\n",
                "/x/cluster.conf:2: [controller] max_envelope: '12Q' is not a size (expected "
                "bytes, optionally with a K, M, G or T suffix: 1024..2147483648)");
    parse_fails("[controller]\nmax_envelope = 512\n",
                "/x/cluster.conf:2: [controller] max_envelope: 512 is out of range "
                "(expected 1024..2147483648 bytes)");
    parse_fails("[controller]\nmax_envelope = 3G\n",
                "/x/cluster.conf:2: [controller] max_envelope: 3G is out of range "
                "(expected 1024..2147483648 bytes)");
    parse_fails("[controller]\nresults_max_bytes = 99999999T\n",
                "/x/cluster.conf:2: [controller] results_max_bytes: '99999999T' is not a size "
                "(expected bytes, optionally with a K, M, G or T suffix: 1048576..1125899906842624)");
    parse_fails("[controller]\nmax_envelope = -1K\n",
                "/x/cluster.conf:2: [controller] max_envelope: '-1K' is not a size (expected "
                "bytes, optionally with a K, M, G or T suffix: 1024..2147483648)");
}

static void test_error_keys_and_sections(void **state)
{
    (void)state;
    parse_fails("[cluster]\nengins = 4\n",
                "/x/cluster.conf:2: [cluster] engins: unknown key (did you mean 'engines'?)");
    parse_fails("[controller]\nfoo = 1\n",
                "/x/cluster.conf:2: [controller] foo: unknown key (known keys: max_envelope, "
                "max_memory, max_buffers, results_max, results_max_bytes, task_inflight, "
                "scheduler, token_lifetime, status_port, shm, direct_transfers, broadcast_min)");
    parse_fails("[cluster]\nengines = 4\nport = 1\nengines = 5\n",
                "/x/cluster.conf:4: [cluster] engines: set twice (first on line 2)");
    parse_fails("engines = 4\n",
                "/x/cluster.conf:1: engines: key outside any section (put it under [cluster])");
    parse_fails("[clustr]\nengines = 4\n",
                "/x/cluster.conf:2: [clustr]: unknown section (did you mean [cluster]?)");
    parse_fails("[Cluster]\nengines = 4\n",
                "/x/cluster.conf:2: [Cluster]: unknown section (did you mean [cluster]?)");
    parse_fails("[a b]\nx = 4\n",
                "/x/cluster.conf:2: [a b]: section names may only contain letters, digits, '_' "
                "and '-'");
    parse_fails("[pbs]\nq ueue = 4\n",
                "/x/cluster.conf:2: [pbs] 'q ueue': keys may only contain letters, digits, '_', "
                "'.' and '-'");
    parse_fails("[pbs]\n= 4\n",
                "/x/cluster.conf:2: [pbs] '': keys may only contain letters, digits, '_', '.' "
                "and '-'");
}

static void test_error_syntax(void **state)
{
    (void)state;
    parse_fails("[cluster]\nengines\n",
                "/x/cluster.conf:2: syntax error (expected [section], key = value or a comment)");
    parse_fails("[cluster\nengines = 3\n",
                "/x/cluster.conf:1: syntax error (expected [section], key = value or a comment)");
    char text[600];
    memset(text, 0, sizeof text);
    strcpy(text, "[pbs]\nx = ");
    memset(text + strlen(text), 'v', 300);
    strcat(text, "\nengines\n");
    parse_fails(text, "/x/cluster.conf:2: line is longer than 198 characters");
    /* The earliest error is reported, whichever kind it is. */
    parse_fails("[cluster]\nengines = x\nbad line\n",
                "/x/cluster.conf:2: [cluster] engines: 'x' is not an integer (expected 1..65536)");
    parse_fails("[cluster]\nbad line\nengines = x\n",
                "/x/cluster.conf:2: syntax error (expected [section], key = value or a comment)");
}

/* A failed parse changes nothing, even keys before the bad line. */
static void test_error_leaves_conf_unchanged(void **state)
{
    (void)state;
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    assert_int_equal(plx_conf_parse_string(c, "[cluster]\nengines = 8\n[pbs]\nqueue = a\n",
                                           "one", &err), PLX_OK);
    assert_int_equal(plx_conf_parse_string(c, "[cluster]\nengines = 9\nport = 7\n[pbs]\n"
                                              "queue = b\nnew = 1\n[cluster]\nheartbeat_misses = x\n",
                                           "two", &err), PLX_EINVAL);
    assert_string_equal(err.msg, "two:8: [cluster] heartbeat_misses: 'x' is not an integer "
                                "(expected 1..1000)");
    assert_int_equal(plx_conf_cluster(c)->engines, 8);
    assert_int_equal(plx_conf_cluster(c)->port, 0);
    assert_string_equal(plx_conf_get(c, "pbs", "queue"), "a");
    assert_null(plx_conf_get(c, "pbs", "new"));

    /* A second file may override the first: no "set twice" across files. */
    assert_int_equal(plx_conf_parse_string(c, "[cluster]\nengines = 10\n", "three", &err), PLX_OK);
    assert_int_equal(plx_conf_cluster(c)->engines, 10);
    plx_conf_destroy(&c);
}

/* ---- command-line overrides ----------------------------------------------------- */

static void test_set(void **state)
{
    (void)state;
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    assert_int_equal(plx_conf_set(c, "cluster", "engines", "16", &err), PLX_OK);
    assert_int_equal(plx_conf_cluster(c)->engines, 16);
    assert_string_equal(plx_conf_get(c, "cluster", "engines"), "16");
    assert_int_equal(plx_conf_set(c, "cluster", "engines", "17", &err), PLX_OK);
    assert_int_equal(plx_conf_cluster(c)->engines, 17);

    assert_int_equal(plx_conf_set(c, "cluster", "engines", "abc", &err), PLX_EINVAL);
    assert_string_equal(err.msg, "[cluster] engines: 'abc' is not an integer (expected 1..65536)");
    assert_int_equal(plx_conf_cluster(c)->engines, 17);
    assert_string_equal(plx_conf_get(c, "cluster", "engines"), "17");

    assert_int_equal(plx_conf_set(c, "cluster", "nope", "1", &err), PLX_EINVAL);
    assert_int_equal(plx_conf_set(c, "", "engines", "1", &err), PLX_EINVAL);
    assert_int_equal(plx_conf_set(c, NULL, "engines", "1", &err), PLX_EINVAL);
    assert_int_equal(plx_conf_set(c, "cluster", NULL, "1", &err), PLX_EINVAL);
    assert_int_equal(plx_conf_set(c, "cluster", "engines", NULL, &err), PLX_EINVAL);
    assert_int_equal(plx_conf_set(c, "ssh", "hosts", "a,b,c", &err), PLX_OK);
    assert_string_equal(plx_conf_get(c, "ssh", "hosts"), "a,b,c");

    /* A file after a set overrides it too (the caller orders them). */
    assert_int_equal(plx_conf_parse_string(c, "[cluster]\nengines = 3\n", "t", &err), PLX_OK);
    assert_int_equal(plx_conf_cluster(c)->engines, 3);

    /* Long values are refused, not cut. */
    char big[5000];
    memset(big, 'h', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(plx_conf_set(c, "ssh", "hosts", big, &err), PLX_EINVAL);
    assert_int_equal(plx_conf_set(c, "cluster", "listen", big + 4000, &err), PLX_EINVAL);
    plx_conf_destroy(&c);
}

/* location follows listen until it is set itself. */
static void test_location_follows_listen(void **state)
{
    (void)state;
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    assert_int_equal(plx_conf_set(c, "cluster", "listen", "10.1.2.3", &err), PLX_OK);
    assert_string_equal(plx_conf_cluster(c)->location, "10.1.2.3");
    assert_string_equal(plx_conf_get(c, "cluster", "location"), "");
    assert_int_equal(plx_conf_set(c, "cluster", "location", "head", &err), PLX_OK);
    assert_int_equal(plx_conf_set(c, "cluster", "listen", "0.0.0.0", &err), PLX_OK);
    assert_string_equal(plx_conf_cluster(c)->location, "head");
    assert_int_equal(plx_conf_set(c, "cluster", "location", "", &err), PLX_OK);
    assert_string_equal(plx_conf_cluster(c)->location, "0.0.0.0");
    plx_conf_destroy(&c);
}

/* ---- files ----------------------------------------------------------------------- */

static void test_load(void **state)
{
    (void)state;
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = { 0 };
    char path[512], want[1024];

    snprintf(path, sizeof path, "%s/missing.conf", tmpdir);
    assert_int_equal(plx_conf_load(c, path, &err), PLX_OK);
    assert_defaults(c);

    /* A cluster.conf that is a symbolic link is refused, not followed. */
    char target[512];
    snprintf(target, sizeof target, "%s/elsewhere.conf", tmpdir);
    snprintf(path, sizeof path, "%s/cluster.conf", tmpdir);
    FILE *f = fopen(target, "w");
    assert_non_null(f);
    fputs("[cluster]\nengines = 7\n", f);
    fclose(f);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(plx_conf_load(c, path, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "symbolic link"));
    assert_defaults(c);
    assert_int_equal(unlink(path), 0);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[cluster]\nengines = 12\n[slurm]\npartition = gpu\n[cluster]\nport=x\n", f);
    fclose(f);
    assert_int_equal(plx_conf_load(c, path, &err), PLX_EINVAL);
    snprintf(want, sizeof want, "%s:6: [cluster] port: 'x' is not an integer (expected 0..65535)",
             path);
    assert_string_equal(err.msg, want);
    assert_defaults(c);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[cluster]\nengines = 12\n[slurm]\npartition = gpu\n", f);
    fclose(f);
    assert_int_equal(plx_conf_load(c, path, &err), PLX_OK);
    assert_int_equal(plx_conf_cluster(c)->engines, 12);
    assert_string_equal(plx_conf_get(c, "slurm", "partition"), "gpu");

    /* Every typed section survives a load (a load works on a copy), its
     * defaults included. */
    assert_true(plx_conf_client(c)->trust_engine_pickles);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[controller]\ntask_inflight = 3\n", f);
    fclose(f);
    assert_int_equal(plx_conf_load(c, path, &err), PLX_OK);
    assert_true(plx_conf_client(c)->trust_engine_pickles);
    assert_int_equal(plx_conf_controller(c)->task_inflight, 3);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[client]\ntrust_engine_pickles = false\n", f);
    fclose(f);
    assert_int_equal(plx_conf_load(c, path, &err), PLX_OK);
    assert_false(plx_conf_client(c)->trust_engine_pickles);
    assert_int_equal(plx_conf_controller(c)->task_inflight, 3);

    /* A directory: refused, naming it. */
    assert_int_equal(plx_conf_load(c, tmpdir, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, tmpdir));
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(plx_conf_cluster(c)->engines, 12);
    plx_conf_destroy(&c);
}

/* A launcher's key table, as a plugin declares it (launcher.h). */
static const plx_launcher_key pbs_keys[] = {
    { "queue", "batch", "Queue the engines are submitted to." },
    { "walltime", "01:00:00", "Wall-clock limit of the job." },
    { "template", "", "Job script template, relative to the profile dir." },
    { NULL, NULL, NULL },
};

static void test_template(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    char path[512], text[16384];
    struct stat st;

    /* The local template parses back to exactly the defaults. */
    snprintf(path, sizeof path, "%s/local.conf", tmpdir);
    assert_int_equal(plx_conf_write_template(path, NULL, NULL, &err), PLX_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    plx_conf_t *c = plx_conf_new_defaults();
    assert_int_equal(plx_conf_load(c, path, &err), PLX_OK);
    assert_defaults(c);
    plx_conf_destroy(&c);
    assert_int_equal(plx_conf_write_template(path, "pbs", pbs_keys, &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "already exists"));

    /* pbs: engine_launcher set, a [pbs] section, every key documented. */
    snprintf(path, sizeof path, "%s/pbs.conf", tmpdir);
    assert_int_equal(plx_conf_write_template(path, "pbs", pbs_keys, &err), PLX_OK);
    c = plx_conf_new_defaults();
    assert_int_equal(plx_conf_load(c, path, &err), PLX_OK);
    assert_string_equal(plx_conf_cluster(c)->engine_launcher, "pbs");
    assert_int_equal(plx_conf_cluster(c)->engines, 2);
    plx_conf_destroy(&c);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    static const char *const lines[] = {
        "[cluster]\n", "# transport = tls\n", "# controller_launcher = local\n",
        "\nengine_launcher = pbs\n", "# engines = 2\n", "# listen = 127.0.0.1\n", "# location =\n",
        "# port = 0\n", "# heartbeat_period = 1.0\n", "# heartbeat_misses = 5\n",
        "# restart_engines = false\n", "# max_restarts = 3\n", "# allow_insecure = false\n",
        "# start_timeout = 60\n", "# log_level = info\n", "[controller]\n",
        "# max_envelope = 16777216\n", "# max_buffers = 65536\n", "# results_max = 100000\n",
        "# results_max_bytes = 268435456\n", "[pbs]\n", "# queue = batch\n",
        "# Wall-clock limit of the job.\n# walltime = 01:00:00\n", "# template =\n",
        "any other key is an error",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(text, lines[i]))
            fail_msg("template lacks '%s':\n%s", lines[i], text);
    /* Comment lines are wrapped. */
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        assert_true(strlen(line) <= 78);

    snprintf(path, sizeof path, "%s/bad.conf", tmpdir);
    assert_int_equal(plx_conf_write_template(path, "a b", NULL, &err), PLX_EINVAL);
    assert_int_equal(plx_conf_write_template(path, "cluster", NULL, &err), PLX_EINVAL);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof path, "%s/nodir/x.conf", tmpdir);
    assert_int_equal(plx_conf_write_template(path, "ssh", NULL, &err), PLX_EIO);

    /* Unknown key table (plugin not found): the section says so. */
    snprintf(path, sizeof path, "%s/site.conf", tmpdir);
    assert_int_equal(plx_conf_write_template(path, "site", NULL, &err), PLX_OK);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "[site]\n# Settings of the site launcher plugin. It does not list"));
    /* An empty table: the launcher takes no settings. */
    static const plx_launcher_key none[] = { { NULL, NULL, NULL } };
    snprintf(path, sizeof path, "%s/none.conf", tmpdir);
    assert_int_equal(plx_conf_write_template(path, "loc", none, &err), PLX_OK);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "[loc]\n# The loc launcher takes no settings.\n"));
}

/* Launcher sections are checked against a key table: file, line, section,
 * key and a suggestion; a NULL table checks nothing. */
static void test_check_keys(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    plx_conf_t *c = plx_conf_new_defaults();
    assert_int_equal(plx_conf_parse_string(c, "[cluster]\nengine_launcher = pbs\n[pbs]\n"
                                              "queue = a\nwaltime = 1:00\n", "/p/cluster.conf",
                                           &err), PLX_OK);
    assert_int_equal(plx_conf_check_keys(c, "pbs", pbs_keys, "the pbs launcher", &err),
                     PLX_EINVAL);
    assert_string_equal(err.msg, "/p/cluster.conf:5: [pbs] waltime: unknown key of the pbs "
                                 "launcher (did you mean 'walltime'?)");
    assert_int_equal(plx_conf_check_keys(c, "pbs", NULL, "the pbs launcher", &err), PLX_OK);
    assert_int_equal(plx_conf_check_keys(c, "other", pbs_keys, NULL, &err), PLX_OK);
    assert_int_equal(plx_conf_set(c, "pbs", "colour", "red", &err), PLX_OK);
    plx_conf_t *d = plx_conf_new_defaults();
    assert_int_equal(plx_conf_set(d, "pbs", "colour", "red", &err), PLX_OK);
    assert_int_equal(plx_conf_check_keys(d, "pbs", pbs_keys, "the pbs launcher", &err),
                     PLX_EINVAL);
    assert_string_equal(err.msg, "[pbs] colour: unknown key of the pbs launcher (known keys: "
                                 "queue, walltime, template)");
    static const plx_launcher_key none[] = { { NULL, NULL, NULL } };
    assert_int_equal(plx_conf_check_keys(d, "pbs", none, "the local launcher", &err), PLX_EINVAL);
    assert_string_equal(err.msg, "[pbs] colour: unknown key of the local launcher (it takes "
                                 "no keys)");
    plx_conf_destroy(&c);
    plx_conf_destroy(&d);
}

static int count_section(void *ctx, const char *section)
{
    char *out = ctx;
    strcat(out, section);
    strcat(out, ";");
    return strcmp(section, "stop") == 0 ? 7 : 0;
}

/* Sections are visited once each, in the order first seen. */
static void test_foreach_section(void **state)
{
    (void)state;
    plx_err_t err = { 0 };
    char seen[256] = "";
    plx_conf_t *c = plx_conf_new_defaults();
    assert_int_equal(plx_conf_parse_string(c, "[ssh]\nhosts = a\n[cluster]\nengines = 3\n"
                                              "[ssh]\nssh = ssh\n[mpiexec]\nmpi = none\n",
                                           "f", &err), PLX_OK);
    assert_int_equal(plx_conf_foreach_section(c, count_section, seen), 0);
    assert_string_equal(seen, "ssh;cluster;mpiexec;");
    assert_int_equal(plx_conf_set(c, "stop", "x", "1", &err), PLX_OK);
    seen[0] = '\0';
    assert_int_equal(plx_conf_foreach_section(c, count_section, seen), 7);
    plx_conf_destroy(&c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_parse_all_keys),
    cmocka_unit_test(test_parse_syntax_variants),
    cmocka_unit_test(test_sizes),
    cmocka_unit_test(test_launcher_sections),
    cmocka_unit_test(test_error_bad_values),
    cmocka_unit_test(test_error_keys_and_sections),
    cmocka_unit_test(test_error_syntax),
    cmocka_unit_test(test_error_leaves_conf_unchanged),
    cmocka_unit_test(test_set),
    cmocka_unit_test(test_location_follows_listen),
    cmocka_unit_test_setup_teardown(test_load, setup_dir, teardown_dir),
    cmocka_unit_test_setup_teardown(test_template, setup_dir, teardown_dir),
    cmocka_unit_test(test_check_keys),
    cmocka_unit_test(test_foreach_section),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("conf", tests, NULL, NULL))
