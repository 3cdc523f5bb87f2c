/*
 * cluster.conf: a profile's settings, INI parsed by libinih against a
 * schema.
 *
 *   [cluster]      how the cluster is started and watched (typed keys)
 *   [controller]   controller limits (typed keys)
 *   [<anything>]   a launcher's own settings ([local], [ssh], [pbs], ...):
 *                  "key = value" strings, checked against the launcher
 *                  plugin's key table with plx_conf_check_keys (this
 *                  module does not load plugins)
 *
 * Every key is optional; the defaults are in plx_conf_schema.c and in
 * docs/profiles.md. An unknown key in [cluster]/[controller], a bad value,
 * a key set twice in one file or a syntax error is an error
 * "FILE:LINE: [section] key: message", and the configuration is left as
 * it was before the call. Lines may be indented (an indented line is a
 * key of its own, never the continuation of the previous value); comments
 * start with '#' or ';' at the start of a line, or with " ;" after a
 * value. A value may be wrapped in double quotes ("" is the empty value).
 * Lines are limited to 198 characters (libinih's line buffer).
 */
#ifndef PLX_CONF_H
#define PLX_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plexa/error.h"
#include "plexa/launcher.h"

/* The [cluster] section, typed. */
typedef struct plx_cluster_conf {
    char   transport[8];             /* "tcp" or "tls" */
    char   controller_launcher[32];  /* launcher plugin name */
    char   engine_launcher[32];      /* launcher plugin name */
    int    engines;                  /* 1..65536 */
    char   listen[256];              /* host the controller binds (IPv6 without brackets) */
    char   location[256];            /* host clients/engines connect to; listen if not set */
    int    port;                     /* 0..65535, 0 = any free port */
    double heartbeat_period;         /* seconds, > 0 */
    int    heartbeat_misses;         /* >= 1 */
    bool   restart_engines;
    int    max_restarts;             /* per engine (and for the controller), >= 0 */
    bool   restart_controller;       /* ipcluster restarts a controller that died */
    bool   allow_insecure;           /* plaintext tcp beyond loopback */
    bool   hide_secrets;             /* engines cover the profiles' security/ */
    bool   engine_ipython;           /* engines offer IPython (else --no-ipython) */
    char   engine_ssh[256];          /* engines tunnel through this ssh server ("": no) */
    double start_timeout;            /* seconds, > 0 */
    int    log_level;                /* a plx_log_level (plx_log.h) */
} plx_cluster_conf_t;

/* The [controller] section, typed. */
typedef struct plx_controller_conf {
    uint64_t max_envelope;       /* bytes, 1 KiB..2 GiB (fits plx_limits_t) */
    int      max_buffers;        /* per message, 1..16777216 */
    uint64_t max_memory;         /* payload bytes held at once; 0: automatic */
    int      results_max;        /* results kept, 1..2^31-1 */
    uint64_t results_max_bytes;  /* bytes of results kept, >= 1 MiB */
    int      task_inflight;      /* tasks held per engine, 0..1024 (0: the policy's default) */
    char     scheduler[16];      /* "adaptive", "fifo" or "leastload" */
    int      token_lifetime;     /* seconds a client token is accepted; 0 = until stop */
    int      status_port;        /* status page on 127.0.0.1; 0 any, -1 off */
    bool     shm;                /* a shm listener for peers of this host and user */
    bool     direct_transfers;   /* refs' values go engine to engine */
    uint64_t broadcast_min;      /* bytes from which a push to several engines goes as a tree */
} plx_controller_conf_t;

/* The [client] section, typed (read by the Python clients; here so that
 * cluster.conf is checked as one file). */
typedef struct plx_client_conf {
    bool trust_engine_pickles;   /* clients unpickle what engines send */
} plx_client_conf_t;

typedef struct plx_conf plx_conf_t;

/* A configuration holding the defaults. Caller owns; NULL on ENOMEM. */
plx_conf_t *plx_conf_new_defaults(void);

/* Free c and set *c to NULL; NULL-safe. */
void plx_conf_destroy(plx_conf_t **c);

/*
 * Apply the file at path on top of c. A missing file is not an error
 * (PLX_OK, c unchanged): a profile needs no cluster.conf. Returns PLX_OK,
 * PLX_EINVAL ("FILE:LINE: ..."), PLX_EIO or PLX_ENOMEM; on error c is
 * unchanged. Keys may not repeat within the file, but a later load or
 * plx_conf_set overrides an earlier one.
 */
int plx_conf_load(plx_conf_t *c, const char *path, plx_err_t *err);

/* Same as plx_conf_load for text in memory; name_for_errors stands for the
 * file name in messages. */
int plx_conf_parse_string(plx_conf_t *c, const char *text, const char *name_for_errors,
                          plx_err_t *err);

/*
 * Set one key, validated as if read from a file (for command-line
 * overrides such as `ipcluster -n 8`). Errors read "[cluster] engines:
 * 'x' is not an integer (expected 1..65536)"; the caller may prefix them.
 * Returns PLX_OK, PLX_EINVAL or PLX_ENOMEM; on error c is unchanged.
 */
int plx_conf_set(plx_conf_t *c, const char *section, const char *key, const char *value,
                 plx_err_t *err);

/*
 * The value of section/key as text: what was set (quotes removed), else
 * the default for a known key, else NULL. Owned by c, valid until c
 * changes. For [cluster] location this is the configured value ("" when
 * unset); plx_conf_cluster() gives the effective one.
 */
const char *plx_conf_get(const plx_conf_t *c, const char *section, const char *key);

/* The typed [cluster] / [controller] values. Owned by c. */
const plx_cluster_conf_t *plx_conf_cluster(const plx_conf_t *c);
const plx_controller_conf_t *plx_conf_controller(const plx_conf_t *c);
const plx_client_conf_t *plx_conf_client(const plx_conf_t *c);

/*
 * Call fn for each key explicitly set in section (defaults are not
 * visited), in the order the keys were first set. file is the file that
 * set it (NULL for plx_conf_set), line its line. A non-zero return from fn
 * stops the walk and is returned. A launcher uses this to refuse unknown
 * keys with "FILE:LINE: [pbs] key: ..." messages.
 */
typedef int (*plx_conf_visit_fn)(void *ctx, const char *key, const char *value,
                                 const char *file, int line);
int plx_conf_foreach(const plx_conf_t *c, const char *section, plx_conf_visit_fn fn, void *ctx);

/*
 * One section seen as a key -> value lookup, in the shape of
 * plx_launch_spec's conf/conf_ctx: spec.conf = plx_conf_view_get,
 * spec.conf_ctx = &view. The view borrows conf and section.
 */
typedef struct plx_conf_view {
    const plx_conf_t *conf;
    const char       *section;
} plx_conf_view_t;
const char *plx_conf_view_get(void *view, const char *key);

/* Call fn once for every section with a key set (including [cluster]
 * and [controller]), in the order first seen; a non-zero return stops the
 * walk and is returned. */
typedef int (*plx_conf_section_fn)(void *ctx, const char *section);
int plx_conf_foreach_section(const plx_conf_t *c, plx_conf_section_fn fn, void *ctx);

/*
 * Check the keys set in section against a launcher's key table (ended by
 * a NULL name; launcher.h). NULL keys means the launcher did not declare
 * its keys, and nothing is checked. who names the launcher in messages
 * ("the ssh launcher"). An unknown key is PLX_EINVAL: "FILE:LINE: [ssh]
 * hots: unknown key of the ssh launcher (did you mean 'hosts'?)", or with
 * the list of known keys when none is close.
 */
int plx_conf_check_keys(const plx_conf_t *c, const char *section, const plx_launcher_key *keys,
                        const char *who, plx_err_t *err);

/*
 * Write a commented cluster.conf template to path (mode 0600, atomic):
 * every known key with its help text and its default, commented out,
 * except engine_launcher when it is not "local", followed by the
 * engine launcher's section with every key of keys (its plugin's table:
 * help and example, commented out; NULL when unknown). engine_launcher
 * NULL or "" means "local". Refuses (PLX_EINVAL) to overwrite an existing
 * file.
 */
int plx_conf_write_template(const char *path, const char *engine_launcher,
                            const plx_launcher_key *keys, plx_err_t *err);

#endif
