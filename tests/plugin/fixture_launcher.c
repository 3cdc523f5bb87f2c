/*
 * Launcher fixtures for test_plugin_loader: a minimal launcher whose key
 * table (or ops size) is varied by -D switches, each build checking one
 * rule of the loader (see CMakeLists.txt for the list).
 *
 *   FX_NAME       descriptor name (required)
 *   FX_V1         ops size of version 1 of the table (ends at pids): keys ignored
 *   FX_KEYS_BAD   a key named "Bad Key"
 *   FX_KEYS_LONG  a key table with no NULL end within the loader's limit
 *   FX_OLD_MACRO  the descriptor written with the four-argument
 *                 PLX_PLUGIN_DEFINE of the first headers (no version), as
 *                 a plugin written for them is; otherwise version FX_VERSION
 *
 * (fixture_launcher_v1.c is a plugin as the first headers built it, in
 * layouts of its own.)
 */
#include <stddef.h>

#include "plexa/launcher.h"
#include "plexa/plugin.h"

#define FX_VERSION "2.5-fixture"

static int fx_start(const plx_launch_spec *spec, void **job, plx_err_t *err)
{
    (void)spec;
    (void)job;
    return plx_err_set(err, PLX_EDECLINED, "fixture");
}

static int fx_poll(void *job, plx_job_status *st, plx_err_t *err)
{
    (void)job;
    (void)err;
    st->state = PLX_JOB_FINISHED;
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

#if defined(FX_KEYS_LONG)
#define K { "k", "", "h" }
#define K10 K, K, K, K, K, K, K, K, K, K
static const plx_launcher_key fx_keys[] = { K10, K10, K10, K10, K10, K10, K10, K10, K10, K10,
                                            K10, K10, K10, K10, K10, K10, K10, K10, K10, K10,
                                            K10, K10, K10, K10, K10, K10, K10, K10, K10, K10 };
#elif defined(FX_KEYS_BAD)
static const plx_launcher_key fx_keys[] = { { "good", "", "fine" }, { "Bad Key", "", "no" },
                                            { NULL, NULL, NULL } };
#else
static const plx_launcher_key fx_keys[] = { { "color", "red", "A colour." },
                                            { NULL, NULL, NULL } };
#endif

static const plx_launcher_ops fx_ops = {
#ifdef FX_V1
    .size = offsetof(plx_launcher_ops, pids) + sizeof(void (*)(void)),
#else
    .size = sizeof fx_ops,
#endif
    .start = fx_start,
    .poll = fx_poll,
    .signal = fx_signal,
    .stop = fx_stop,
    .destroy = fx_destroy,
    /* A version-1 plugin has no keys member: whatever follows pids in
     * this bigger struct must be ignored by the loader. */
    .keys = fx_keys,
};

#ifdef FX_OLD_MACRO
PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, FX_NAME, "launcher test fixture", &fx_ops);
#else
PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, FX_NAME, "launcher test fixture", FX_VERSION, &fx_ops);
#endif
