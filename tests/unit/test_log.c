/* core/util/plx_log: line format, levels, the component, the ring of
 * recent warnings, and size-based rotation of a file sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_log.h"

static char dir[] = "/tmp/plx-log-XXXXXX";

static char *slurp(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

static int file_at(const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void test_format_levels_component(void **state)
{
    (void)state;
    char path[256];
    int fd = file_at("a.log", path, sizeof path);
    plx_log_set_fd(fd);
    plx_log_set_level(PLX_LOG_INFO);
    plx_log_set_component("engine 3");
    PLX_DEBUG("not shown");
    PLX_INFO("hello %d", 42);
    char *text = slurp(path);
    assert_null(strstr(text, "not shown"));
    assert_non_null(strstr(text, "Z INFO engine 3["));
    assert_non_null(strstr(text, "]: hello 42\n"));
    assert_int_equal(text[4], '-');   /* 2026-11-25T... */
    assert_int_equal(text[10], 'T');
    plx_log_set_fd(2);
    close(fd);
    assert_int_equal(plx_log_parse_level("warning"), PLX_LOG_WARN);
    assert_int_equal(plx_log_parse_level("nope"), -1);
}

/* A message cannot pass for another log line or drive a terminal: a host
 * name with a line break and a fake time stamp, escape sequences. */
static void test_control_characters_are_escaped(void **state)
{
    (void)state;
    char path[256];
    int fd = file_at("c.log", path, sizeof path);
    plx_log_set_fd(fd);
    plx_log_set_level(PLX_LOG_INFO);
    PLX_INFO("engine from host %s", "evil\n2026-01-01T00:00:00.000Z INFO controller[1]: "
             "all is well\r\x1b[2J\ttab");
    char *text = slurp(path);
    assert_non_null(strstr(text, "evil\n    2026-01-01T"));   /* indented: not a new line */
    assert_null(strstr(text, "\n2026-01-01T"));
    assert_non_null(strstr(text, "\\x0d\\x1b[2J\ttab\n"));
    assert_null(strchr(text, 0x1b));
    plx_log_set_fd(2);
    close(fd);
}

/* Names a peer chose lose their control characters before a table shows
 * them; printable text, UTF-8 included, is left as it is. */
static void test_printable(void **state)
{
    (void)state;
    char s[] = "host\nname\r\x1b[2J\t\x7f\x01" "caf\xc3\xa9 ok";
    plx_printable(s);
    assert_string_equal(s, "host?name??[2J???caf\xc3\xa9 ok");
    char empty[] = "";
    plx_printable(empty);
    assert_string_equal(empty, "");
    plx_printable(NULL);   /* nothing to do, and no crash */
}

static void test_recent_ring(void **state)
{
    (void)state;
    int fd = open("/dev/null", O_WRONLY);
    plx_log_set_fd(fd);
    for (int i = 0; i < PLX_LOG_RECENT_MAX + 5; i++)
        PLX_WARN("warning %d", i);
    PLX_INFO("info lines are not kept");
    static char lines[PLX_LOG_RECENT_MAX][PLX_LOG_RECENT_LEN];
    size_t n = plx_log_recent(lines, PLX_LOG_RECENT_MAX);
    assert_int_equal(n, PLX_LOG_RECENT_MAX);
    assert_non_null(strstr(lines[0], "warning 5"));          /* oldest kept */
    assert_non_null(strstr(lines[n - 1], "warning 20"));     /* newest last */
    assert_int_equal(plx_log_recent(lines, 2), 2);
    assert_non_null(strstr(lines[1], "warning 20"));
    plx_log_set_fd(2);
    close(fd);
}

static void test_rotation(void **state)
{
    (void)state;
    char path[256], p1[300], p2[300], p3[300];
    int fd = file_at("r.log", path, sizeof path);
    snprintf(p1, sizeof p1, "%s.1", path);
    snprintf(p2, sizeof p2, "%s.2", path);
    snprintf(p3, sizeof p3, "%s.3", path);
    plx_log_set_fd(fd);
    plx_log_set_rotation(400, 2);
    for (int i = 0; i < 40; i++)
        PLX_INFO("line %02d of the rotation test", i);
    struct stat st;
    assert_int_equal(stat(p1, &st), 0);
    assert_int_equal(stat(p2, &st), 0);
    assert_int_not_equal(stat(p3, &st), 0);   /* only `keep` generations */
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size <= 400 + 100);
    assert_non_null(strstr(slurp(path), "line 39"));   /* the newest in the live file */
    plx_log_set_rotation(PLX_LOG_ROTATE_BYTES, PLX_LOG_ROTATE_KEEP);
    plx_log_set_fd(2);
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return plx_test_rmtree(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_format_levels_component),
    cmocka_unit_test(test_control_characters_are_escaped),
    cmocka_unit_test(test_printable),
    cmocka_unit_test(test_recent_ring),
    cmocka_unit_test(test_rotation),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("log", tests, setup, teardown))
