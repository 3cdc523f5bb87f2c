/*
 * plx_plugin_loader: find, open and validate transport and launcher plugins.
 *
 * The only code in plexa that calls libltdl. A plugin named NAME of kind
 * KIND is the shared object `plexa-KIND-NAME` (`.so` optional: opened with
 * lt_dlopenext), where KIND is "transport" or "launcher". It is searched in
 * each directory of the environment variable PLX_PLUGIN_PATH (colon
 * separated, read at every lookup), then in plx_plugin_default_dir(). The
 * first file found wins: if it is refused, the lookup fails with the reason
 * rather than silently falling back to a later directory, so a broken
 * plugin on the path is never masked.
 *
 * Before the file is loaded, its dynamic symbol table is read: a plugin
 * that leaves a plx_* symbol for its host to supply is refused (PLX_EABI,
 * naming the symbol; plx_plugin_elf.c says why). A file that will not
 * load is refused with the dynamic linker's own message (PLX_EIO).
 *
 * Before a descriptor is handed out it is checked (each refusal names the
 * file): the `plx_plugin_descriptor` symbol exists (PLX_EABI), its abi is
 * PLX_PLUGIN_ABI (PLX_EABI), its kind is the one asked for (PLX_EINVAL), its
 * name matches the file name (PLX_EINVAL), ops is set (PLX_EINVAL), ops->size
 * covers the version-1 table (PLX_EABI) and every required op is set
 * (PLX_EINVAL). Optional ops: transport close_listener, want, pending;
 * launcher pids, keys (validated when present: see PLX_LAUNCHER_KEYS_MAX),
 * remote_host and output_file. The descriptor's version string is the
 * plugin's own and is not checked.
 *
 * Accepted plugins are registered by kind and name and never unloaded, so
 * the returned descriptors (and their ops tables) stay valid for the life of
 * the process; the caller does not own or free them. All functions are
 * thread-safe.
 */
#ifndef PLX_PLUGIN_LOADER_H
#define PLX_PLUGIN_LOADER_H

#include <stddef.h>

#include "plexa/error.h"
#include "plexa/launcher.h"
#include "plexa/plugin.h"
#include "plexa/transport.h"

/* The version-1 table sizes (PLX_LAUNCHER_OPS_V1_SIZE, PLX_TRANSPORT_OPS_V1_SIZE)
 * and PLX_OPS_HAS, which every caller of an op appended after version 1
 * uses, are public: launcher.h, transport.h, plugin.h. */

/* A launcher's key table (plx_launcher_ops.keys) is refused when it has
 * no NULL-name end within this many entries or a name outside these
 * characters (the ones a cluster.conf key may use, lowercase). */
#define PLX_LAUNCHER_KEYS_MAX   256
#define PLX_LAUNCHER_KEY_CHARS  "abcdefghijklmnopqrstuvwxyz0123456789_.-"

/*
 * Find plugin `name` of `kind` on the search path, load and validate it.
 * On PLX_OK *out points to the registered descriptor (not owned by the
 * caller, valid forever). Loading the same kind and name again returns the
 * same pointer without touching the file system. Names are limited to
 * [A-Za-z0-9_-]. Returns PLX_ENOTFOUND (message lists the directories
 * searched), PLX_EINVAL, PLX_EABI or PLX_EIO (file exists but the dynamic
 * linker refused it), with err filled.
 */
int plx_plugin_load(plx_plugin_kind kind, const char *name,
                    const plx_plugin **out, plx_err_t *err);

/*
 * Load and validate the plugin file `path` (with or without `.so`) as a
 * plugin of `kind`. The file's base name must be `plexa-KIND-NAME` where
 * NAME is the descriptor's name; when expect_name is not NULL, NAME must
 * also equal it. On success the plugin is registered as if loaded by
 * plx_plugin_load (loading the same file again returns the same pointer; a
 * different file with an already registered kind and name is refused with
 * PLX_EINVAL). *out is not owned by the caller.
 */
int plx_plugin_load_file(const char *path, plx_plugin_kind kind,
                         const char *expect_name, const plx_plugin **out,
                         plx_err_t *err);

/*
 * The built-in plugin directory, relative to the binary or shared library
 * that contains plexa's core: `<prefix>/<libdir>/plexa/plugins` when that
 * object sits in `<prefix>/bin` (the install libdir is tried first, then
 * `lib`; the first that exists is returned), else `<dir of object>/plexa/
 * plugins` (libplexa.so in a libdir). The build tree has the same layout.
 * Writes a NUL-terminated path into out. Returns PLX_OK, PLX_ELIMIT if len
 * is too small, or PLX_EIO if the object cannot be located.
 */
int plx_plugin_default_dir(char *out, size_t len);

/* Name of a kind as used in file names: "transport", "launcher", or "?". */
const char *plx_plugin_kind_name(plx_plugin_kind kind);

/*
 * Shortcuts over plx_plugin_load: the ops table of transport or launcher
 * `name`, or NULL with err filled. The table is not owned by the caller and
 * stays valid for the life of the process.
 */
const plx_transport_ops *plx_transport_find(const char *name, plx_err_t *err);
const plx_launcher_ops *plx_launcher_find(const char *name, plx_err_t *err);

/* The key table of a launcher (NULL-name terminated; checked at load), or
 * NULL when its ops table predates keys or declares none. */
const plx_launcher_key *plx_launcher_keys(const plx_launcher_ops *ops);

/*
 * Call cb once for every valid plugin of `kind` on the search path, in
 * search order, with its descriptor and the path it was loaded from
 * (`path` is only valid during the call). A name found in several
 * directories is reported once (the one plx_plugin_load would pick); files
 * that fail validation are skipped. Listing loads (and registers) every
 * plugin it reports. cb may call other functions of this module. Returns
 * the number of plugins reported, or a negative PLX_E* code.
 */
int plx_plugin_list(plx_plugin_kind kind,
                    void (*cb)(const plx_plugin *p, const char *path, void *ud),
                    void *ud);

/* What plx_plugin_survey reports of each file: its descriptor and the
 * path it was loaded from, or p NULL, the file's path and why the loader
 * refused it (the message plx_plugin_load would give). */
typedef void (*plx_plugin_seen_fn)(const plx_plugin *p, const char *path, const char *why,
                                   void *ud);

/*
 * plx_plugin_list, refusals included (for `ipcluster plugins`): cb once for
 * every file of `kind` on the search path that decides its name. Returns
 * the number of valid plugins, or a negative PLX_E* code.
 */
int plx_plugin_survey(plx_plugin_kind kind, plx_plugin_seen_fn cb, void *ud);

#endif
