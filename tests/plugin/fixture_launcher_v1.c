/*
 * A launcher plugin as plexa's first plugin headers built it: the
 * descriptor of plugin ABI 1 with version "1" (what their
 * PLX_PLUGIN_DEFINE wrote) and version 1 of the launcher ops table, which
 * ends at pids. Both layouts are frozen here, copied from those headers,
 * rather than taken from today's: the fixture stays an old binary however
 * plugin.h and launcher.h grow, and the loader must keep accepting it.
 *
 * The table is really that short: what follows it in memory is what
 * today's members keys, remote_host and output_file would be read from,
 * and there it holds pointers to fx_trap, which ends the process saying so.
 * Code that reads a member past the plugin's size instead of asking
 * PLX_OPS_HAS first crashes the test (key tables read from fx_trap's code
 * are garbage) or aborts in fx_trap.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "plexa/error.h"

/* plx_plugin, plugin ABI 1. */
typedef struct v1_plugin {
    uint32_t    abi;
    int         kind;            /* 2: a launcher */
    const char *name;
    const char *description;
    const char *version;
    const void *ops;
    void       *reserved[4];
} v1_plugin;

/* plx_launcher_ops, version 1 (spec is a const plx_launch_spec *). */
typedef struct v1_launcher_ops {
    uint32_t size;
    int  (*start)(const void *spec, void **job, plx_err_t *err);
    int  (*poll)(void *job, void *st, plx_err_t *err);
    int  (*signal)(void *job, int sig, plx_err_t *err);
    int  (*stop)(void *job, double grace_s, plx_err_t *err);
    void (*destroy)(void **job);
    int  (*pids)(void *job, pid_t *out, int max);
} v1_launcher_ops;

static void fx_trap(void)
{
    fprintf(stderr, "fixture launcher v1: a member past its ops table's size was used "
                    "(a caller did not test it with PLX_OPS_HAS)\n");
    abort();
}

static int fx_start(const void *spec, void **job, plx_err_t *err)
{
    (void)spec;
    *job = NULL;
    return plx_err_set(err, PLX_EDECLINED, "fixture v1: starts nothing");
}

static int fx_poll(void *job, void *st, plx_err_t *err)
{
    (void)job;
    (void)st;
    (void)err;
    return PLX_OK;
}

static int fx_signal(void *job, int sig, plx_err_t *err)
{
    (void)job;
    (void)sig;
    (void)err;
    return PLX_OK;
}

static int fx_stop(void *job, double grace_s, plx_err_t *err)
{
    (void)job;
    (void)grace_s;
    (void)err;
    return PLX_OK;
}

static void fx_destroy(void **job)
{
    *job = NULL;
}

/* The table, then what a reader that ignores its size would find. */
static const struct {
    v1_launcher_ops ops;
    void (*beyond[8])(void);
} fx_v1 = {
    .ops = {
        .size = sizeof(v1_launcher_ops),
        .start = fx_start,
        .poll = fx_poll,
        .signal = fx_signal,
        .stop = fx_stop,
        .destroy = fx_destroy,
        .pids = NULL,
    },
    .beyond = { fx_trap, fx_trap, fx_trap, fx_trap, fx_trap, fx_trap, fx_trap, fx_trap },
};

__attribute__((visibility("default"))) const v1_plugin plx_plugin_descriptor = {
    .abi = 1,
    .kind = 2,
    .name = "v1",
    .description = "launcher built against the first plugin headers",
    .version = "1",
    .ops = &fx_v1.ops,
};
