/*
 * plexa plugin ABI: how a shared object describes itself to the loader.
 *
 * A plugin is a shared object named plexa-<kind>-<name>.so (for example
 * plexa-launcher-pbs.so) that exports exactly one symbol,
 * `plx_plugin_descriptor`, of type `const plx_plugin`. The loader (core/plugin)
 * finds it on PLX_PLUGIN_PATH, then in <libdir>/plexa/plugins next to the
 * binary or library that loads it, and refuses it — with a message that
 * names the file — when the ABI, the kind or the name does not match.
 *
 * Write the descriptor with PLX_PLUGIN_DEFINE:
 *
 *     static const plx_launcher_ops pbs_ops = { .size = sizeof pbs_ops, ... };
 *     PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, "pbs", "PBS/Torque batch jobs", &pbs_ops);
 *
 * Plugins are loaded once at start-up and never unloaded. They must not
 * depend on symbols of the host program: everything they need from plexa is
 * in the headers (error.h is header-only).
 */
#ifndef PLEXA_PLUGIN_H
#define PLEXA_PLUGIN_H

#include <stdint.h>

#include "plexa/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bump on any change a plugin built against the previous value would not
 * survive. Compatible additions append fields to ops tables and are
 * detected through their `size` member instead. */
#define PLX_PLUGIN_ABI 1

typedef enum plx_plugin_kind {
    PLX_PLUGIN_TRANSPORT = 1,   /* ops: const plx_transport_ops * (transport.h) */
    PLX_PLUGIN_LAUNCHER  = 2,   /* ops: const plx_launcher_ops * (launcher.h) */
} plx_plugin_kind;

typedef struct plx_plugin {
    uint32_t        abi;          /* PLX_PLUGIN_ABI the plugin was built against */
    plx_plugin_kind kind;         /* what ops points to */
    const char     *name;         /* "tcp", "tls", "local", "pbs", ...; must match the file name */
    const char     *description;  /* one line for `ipcluster plugins` and logs */
    const char     *version;      /* the plugin's own version string */
    const void     *ops;          /* const plx_transport_ops * or const plx_launcher_ops * */
    void           *reserved[4];  /* zero; room to grow without an ABI bump */
} plx_plugin;

#define PLX_EXPORT __attribute__((visibility("default")))

#define PLX_PLUGIN_SYMBOL "plx_plugin_descriptor"

#define PLX_PLUGIN_DEFINE(kind_, name_, description_, ops_)                 \
    PLX_EXPORT const plx_plugin plx_plugin_descriptor = {                    \
        .abi = PLX_PLUGIN_ABI,                                               \
        .kind = (kind_),                                                     \
        .name = (name_),                                                     \
        .description = (description_),                                      \
        .version = "1",                                                      \
        .ops = (ops_),                                                       \
    }

#ifdef __cplusplus
}
#endif
#endif
