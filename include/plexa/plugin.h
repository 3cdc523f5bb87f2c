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
 * Write the descriptor with PLX_PLUGIN_DEFINE, giving the plugin's own
 * version:
 *
 *     static const plx_launcher_ops pbs_ops = { .size = sizeof pbs_ops, ... };
 *     PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, "pbs", "PBS/Torque batch jobs", "1.2",
 *                       &pbs_ops);
 *
 * Three versions meet here, each with its own job:
 *   - PLX_PLUGIN_ABI, the descriptor's `abi`: bumped only by a change that a
 *     plugin built before it would not survive. The loader refuses any
 *     other value.
 *   - An ops table's `size`: within one ABI, ops tables only grow, by
 *     members appended at their end. launcher.h and transport.h fence off
 *     what each version of a table added ("Members above are in version N
 *     of this table"); a plugin's `size` (sizeof the table it was built
 *     with) tells which members it has. The loader refuses a table
 *     smaller than version 1; code that calls a plugin tests every later
 *     member with PLX_OPS_HAS.
 *   - The descriptor's `version`: the plugin's own release, for people
 *     (listings, logs, bug reports). plexa never compares it.
 *
 * Naming: the types of the plugin ABI (this header, launcher.h,
 * transport.h) have no _t suffix; those of the client API (client.h) and
 * of error.h, which both sides share, end in _t. The ABI's are layouts that
 * separately built binaries share, named as such tables usually are
 * (SQLite's sqlite3_io_methods, the kernel's file_operations), and
 * renaming them would break every plugin's source. New types follow the
 * header they are declared in. (docs/overview.md, "Naming".)
 *
 * Plugins are loaded once at start-up and never unloaded. They must not
 * depend on symbols of the host program: everything they need from plexa is
 * in the headers (error.h is header-only).
 */
#ifndef PLEXA_PLUGIN_H
#define PLEXA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "plexa/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bump on any change a plugin built against the previous value would not
 * survive. Compatible additions append members to ops tables and are
 * detected through their `size` member instead (PLX_OPS_HAS). */
#define PLX_PLUGIN_ABI 1

typedef enum plx_plugin_kind {
    PLX_PLUGIN_TRANSPORT = 1,   /* ops: const plx_transport_ops * (transport.h) */
    PLX_PLUGIN_LAUNCHER  = 2,   /* ops: const plx_launcher_ops * (launcher.h) */
} plx_plugin_kind;

typedef struct plx_plugin {
    uint32_t        abi;          /* PLX_PLUGIN_ABI the plugin was built against */
    plx_plugin_kind kind;         /* what ops points to */
    const char     *name;         /* "tcp", "tls", "local", "pbs", ...; must match the file name */
    const char     *description;  /* one line for logs and people */
    const char     *version;      /* the plugin's own version string ("1.2") */
    const void     *ops;          /* const plx_transport_ops * or const plx_launcher_ops * */
    void           *reserved[4];  /* zero; room to grow without an ABI bump */
} plx_plugin;

#define PLX_EXPORT __attribute__((visibility("default")))

#define PLX_PLUGIN_SYMBOL "plx_plugin_descriptor"

/*
 * The descriptor, exported: PLX_PLUGIN_DEFINE(kind, name, description,
 * version, ops), version being the plugin's own ("1.2"; plexa's plugins
 * give PLX_VERSION_STRING from plexa/version.h).
 *
 * The four-argument form of the first headers, PLX_PLUGIN_DEFINE(kind,
 * name, description, ops), still compiles and writes version "1", as it
 * always did: a plugin written for it builds unchanged, and one built with
 * it loads as before (the loader reads the version for people only).
 */
#define PLX_PLUGIN_DEFINE(...)                                                   \
    PLX_PLUGIN_DEFINE_PICK_(__VA_ARGS__, PLX_PLUGIN_DEFINE_VERSIONED_,            \
                            PLX_PLUGIN_DEFINE_UNVERSIONED_, )(__VA_ARGS__)
#define PLX_PLUGIN_DEFINE_PICK_(a_, b_, c_, d_, e_, which_, ...) which_
#define PLX_PLUGIN_DEFINE_UNVERSIONED_(kind_, name_, description_, ops_)          \
    PLX_PLUGIN_DEFINE_VERSIONED_(kind_, name_, description_, "1", ops_)
#define PLX_PLUGIN_DEFINE_VERSIONED_(kind_, name_, description_, version_, ops_)  \
    PLX_EXPORT const plx_plugin plx_plugin_descriptor = {                        \
        .abi = PLX_PLUGIN_ABI,                                                   \
        .kind = (kind_),                                                         \
        .name = (name_),                                                         \
        .description = (description_),                                          \
        .version = (version_),                                                   \
        .ops = (ops_),                                                           \
    }

/*
 * Bytes of an ops table (or of a struct with a `size` member, such as
 * plx_launch_spec) up to the end of member: a table whose size is at least
 * this contains member.
 */
#define PLX_OPS_END(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))

/*
 * PLX_OPS_HAS(ops, type, member): is the ops table ops, of type type, long
 * enough to contain member, and is member set?
 *
 * A plugin built against older headers has a shorter table, and reading
 * past its size reads whatever follows it in the plugin's memory. So code
 * that calls a plugin tests every member below a table's version-1 fence
 * with PLX_OPS_HAS before touching it, and optional members too (one test
 * for both: too short, or NULL, means "not provided"):
 *
 *     if (PLX_OPS_HAS(ops, plx_launcher_ops, remote_host))
 *         remote = ops->remote_host(spec, host, sizeof host, err);
 *
 * Version-1 members may be read directly: the loader refuses tables
 * shorter than that (PLX_LAUNCHER_OPS_V1_SIZE, PLX_TRANSPORT_OPS_V1_SIZE).
 */
#define PLX_OPS_HAS(ops, type, member)                                            \
    ((ops)->size >= PLX_OPS_END(type, member) && (ops)->member != NULL)

#ifdef __cplusplus
}
#endif
#endif
