/*
 * cluster.conf's internals, shared by its files (not installed):
 *
 *   plx_conf.c           the object: its entries (what was set, where),
 *                        applying one key, the accessors
 *   plx_conf_schema.c    the keys plexa knows (type, range, default,
 *                        help) and its sections; checking section and
 *                        key names, with suggestions for near misses,
 *                        also a launcher's keys against its table
 *   plx_conf_value.c     converting a value by its key's type, and
 *                        committing it to the typed field
 *   plx_conf_parse.c     reading INI text (libinih) into a working copy
 *   plx_conf_template.c  writing the commented cluster.conf template
 */
#ifndef PLX_CONF_INT_H
#define PLX_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plx_conf.h"

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
#define KEY_CHARS  NAME_CHARS "."

enum ktype {
    K_CHOICE,    /* string, one of choices */
    K_NAME,      /* string, a plugin name */
    K_HOST,      /* string, a host (brackets around IPv6 removed) */
    K_OPTHOST,   /* same, or empty */
    K_SSHDEST,   /* string, ssh's destination [user@]host[:port], or empty */
    K_INT,       /* int in [min, max] */
    K_SIZE,      /* uint64_t bytes in [min, max], optional K/M/G/T suffix */
    K_SECONDS,   /* double in (0, max] */
    K_BOOL,      /* bool */
    K_LEVEL,     /* int, a plx_log_level */
};

typedef struct keyspec {
    const char *section;
    const char *key;
    enum ktype  type;
    const char *def;
    long long   min, max;
    const char *choices;   /* K_CHOICE, K_LEVEL: "a|b|c" */
    size_t      off;       /* field in struct plx_conf */
    size_t      size;      /* of that field */
    const char *help;
} keyspec_t;

typedef struct entry {
    char    *section;
    char    *key;
    char    *value;
    char    *file;   /* NULL: set by plx_conf_set */
    int      line;
    unsigned gen;    /* parse that set it; 0 = plx_conf_set */
} entry_t;

struct plx_conf {
    plx_cluster_conf_t    cluster;
    plx_controller_conf_t controller;
    plx_client_conf_t     client;
    entry_t              *entries;   /* keys set explicitly, in order */
    size_t                n, cap;
    unsigned              gen;       /* parses so far */
};

/* A converted value, held until it is committed to the typed field. */
typedef union value {
    int      i;
    uint64_t u;
    double   d;
    bool     b;
    char     s[256];
} value_t;

/* ---- plx_conf_schema.c -------------------------------------------------- */
extern const keyspec_t plx_conf_schema[];
extern const size_t    plx_conf_nschema;
/* The schema entry of section/key, or NULL. */
const keyspec_t *plx_conf_find_spec(const char *section, const char *key);
/* [cluster], [controller] or [client]: a section of plexa's own. */
int plx_conf_is_known_section(const char *section);
/* The section of plexa's own within two edits of section, or NULL. */
const char *plx_conf_closest_section(const char *section);
/* PLX_OK, or PLX_EINVAL for a bad name or a near miss of plexa's own. */
int plx_conf_check_section(const char *section, plx_err_t *err);
/* The PLX_EINVAL for an unknown key of plexa's section: "did you mean",
 * or the keys it knows. */
int plx_conf_unknown_key(const char *section, const char *key, plx_err_t *err);

/* ---- plx_conf_value.c --------------------------------------------------- */
/* Convert v by k's type and range; "'x' is not ..." messages. */
int plx_conf_convert(const keyspec_t *k, const char *v, value_t *out, plx_err_t *err);
/* Store a converted value into k's typed field of c. */
void plx_conf_commit(plx_conf_t *c, const keyspec_t *k, const value_t *v);

/* ---- plx_conf.c --------------------------------------------------------- */
/* A deep copy, so a parse can fail half way without touching the original. */
plx_conf_t *plx_conf_clone(const plx_conf_t *c);
/* Validate section/key/value and apply it; the one path for files and
 * command-line overrides. Messages start with "[section] key: ". */
int plx_conf_apply(plx_conf_t *c, const char *section, const char *key, const char *raw,
                   const char *file, int line, unsigned gen, plx_err_t *err);

#endif
