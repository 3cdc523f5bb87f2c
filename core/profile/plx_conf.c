/*
 * cluster.conf, the object: the keys set explicitly (with the file and
 * line that set them), one key applied after checking its name and value,
 * and the accessors of plx_conf.h. The schema, the checks, the parser and
 * the template are the other files plx_conf_int.h lists.
 */
#include "plx_conf_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX  4096

/* ---- entries ------------------------------------------------------------- */

static entry_t *find_entry(const plx_conf_t *c, const char *section, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->entries[i].section, section) == 0 && strcmp(c->entries[i].key, key) == 0)
            return &c->entries[i];
    return NULL;
}

static void entry_free(entry_t *e)
{
    free(e->section);
    free(e->key);
    free(e->value);
    free(e->file);
}

static int entry_fill(entry_t *e, const char *section, const char *key, const char *value,
                      const char *file, int line, unsigned gen)
{
    memset(e, 0, sizeof *e);
    e->section = strdup(section);
    e->key = strdup(key);
    e->value = strdup(value);
    e->file = file ? strdup(file) : NULL;
    e->line = line;
    e->gen = gen;
    if (e->section && e->key && e->value && (e->file || !file))
        return PLX_OK;
    entry_free(e);
    return PLX_ENOMEM;
}

static int store(plx_conf_t *c, const char *section, const char *key, const char *value,
                 const char *file, int line, unsigned gen)
{
    entry_t fresh, *e = find_entry(c, section, key);
    if (entry_fill(&fresh, section, key, value, file, line, gen) != PLX_OK)
        return PLX_ENOMEM;
    if (!e && c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        entry_t *grown = realloc(c->entries, cap * sizeof *grown);
        if (!grown) {
            entry_free(&fresh);
            return PLX_ENOMEM;
        }
        c->entries = grown;
        c->cap = cap;
    }
    if (e)
        entry_free(e);
    else
        e = &c->entries[c->n++];
    *e = fresh;
    return PLX_OK;
}

/* location left empty means "same as listen", whichever was set last. */
static void finalize(plx_conf_t *c)
{
    const char *loc = plx_conf_get(c, "cluster", "location");
    if (!loc || !*loc)
        snprintf(c->cluster.location, sizeof c->cluster.location, "%s", c->cluster.listen);
}

/* Strip one pair of surrounding double quotes: `location = ""`. */
static void unquote(const char *v, char *out, size_t len)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    snprintf(out, len, "%.*s", (int)n, v);
}

/* Validate section/key/value and apply it; the one path for files and
 * command-line overrides. Messages start with "[section] key: ". */
int plx_conf_apply(plx_conf_t *c, const char *section, const char *key, const char *raw,
                   const char *file, int line, unsigned gen, plx_err_t *err)
{
    char v[VALUE_MAX];
    value_t val;
    const keyspec_t *k = NULL;
    if (!*section)
        return plx_err_set(err, PLX_EINVAL, "%.64s: key outside any section (put it under [cluster])",
                           key);
    int rc = plx_conf_check_section(section, err);
    if (rc != PLX_OK)
        return rc;
    if (!*key || strspn(key, KEY_CHARS) != strlen(key))
        return plx_err_set(err, PLX_EINVAL,
                           "[%s] '%.64s': keys may only contain letters, digits, '_', '.' and '-'",
                           section, key);
    if (plx_conf_is_known_section(section) && !(k = plx_conf_find_spec(section, key)))
        return plx_conf_unknown_key(section, key, err);
    entry_t *prev = find_entry(c, section, key);
    if (prev && gen && prev->gen == gen)
        return plx_err_set(err, PLX_EINVAL, "[%s] %s: set twice (first on line %d)", section, key,
                           prev->line);
    if (strlen(raw) >= sizeof v)
        return plx_err_set(err, PLX_EINVAL, "[%s] %s: value longer than %zu characters", section,
                           key, sizeof v - 1);
    unquote(raw, v, sizeof v);
    if (k && plx_conf_convert(k, v, &val, err) != PLX_OK) {
        char prefix[160];
        snprintf(prefix, sizeof prefix, "[%s] %s", section, key);
        return plx_err_prefix(err, prefix);
    }
    if (store(c, section, key, v, file, line, gen) != PLX_OK)
        return plx_err_set(err, PLX_ENOMEM, "[%s] %s: out of memory", section, key);
    if (k)
        plx_conf_commit(c, k, &val);
    finalize(c);
    return PLX_OK;
}

/* ---- the object ---------------------------------------------------------- */

plx_conf_t *plx_conf_new_defaults(void)
{
    plx_conf_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < plx_conf_nschema; i++) {
        value_t v;
        int rc = plx_conf_convert(&plx_conf_schema[i], plx_conf_schema[i].def, &v, NULL);
        assert(rc == PLX_OK && "schema default must be valid");
        (void)rc;
        plx_conf_commit(c, &plx_conf_schema[i], &v);
    }
    finalize(c);
    return c;
}

static void conf_clear(plx_conf_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        entry_free(&c->entries[i]);
    free(c->entries);
    c->entries = NULL;
    c->n = c->cap = 0;
}

void plx_conf_destroy(plx_conf_t **cp)
{
    if (!cp || !*cp)
        return;
    conf_clear(*cp);
    free(*cp);
    *cp = NULL;
}

/* A deep copy, so a parse can fail half way without touching the original. */
plx_conf_t *plx_conf_clone(const plx_conf_t *c)
{
    plx_conf_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cluster = c->cluster;
    d->controller = c->controller;
    d->client = c->client;
    d->gen = c->gen;
    for (size_t i = 0; i < c->n; i++) {
        const entry_t *e = &c->entries[i];
        if (store(d, e->section, e->key, e->value, e->file, e->line, e->gen) != PLX_OK) {
            plx_conf_destroy(&d);
            return NULL;
        }
    }
    return d;
}

const char *plx_conf_get(const plx_conf_t *c, const char *section, const char *key)
{
    const entry_t *e = find_entry(c, section, key);
    if (e)
        return e->value;
    const keyspec_t *k = plx_conf_find_spec(section, key);
    return k ? k->def : NULL;
}

const plx_cluster_conf_t *plx_conf_cluster(const plx_conf_t *c)
{
    return &c->cluster;
}

const plx_controller_conf_t *plx_conf_controller(const plx_conf_t *c)
{
    return &c->controller;
}

const plx_client_conf_t *plx_conf_client(const plx_conf_t *c)
{
    return &c->client;
}

int plx_conf_set(plx_conf_t *c, const char *section, const char *key, const char *value,
                 plx_err_t *err)
{
    if (!section || !key || !value)
        return plx_err_set(err, PLX_EINVAL, "plx_conf_set: NULL section, key or value");
    return plx_conf_apply(c, section, key, value, NULL, 0, 0, err);
}

int plx_conf_foreach(const plx_conf_t *c, const char *section, plx_conf_visit_fn fn, void *ctx)
{
    for (size_t i = 0; i < c->n; i++) {
        const entry_t *e = &c->entries[i];
        if (strcmp(e->section, section) != 0)
            continue;
        int rc = fn(ctx, e->key, e->value, e->file, e->line);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const char *plx_conf_view_get(void *view, const char *key)
{
    const plx_conf_view_t *v = view;
    return plx_conf_get(v->conf, v->section, key);
}

int plx_conf_foreach_section(const plx_conf_t *c, plx_conf_section_fn fn, void *ctx)
{
    for (size_t i = 0; i < c->n; i++) {
        const char *section = c->entries[i].section;
        size_t j = 0;
        while (j < i && strcmp(c->entries[j].section, section) != 0)
            j++;
        if (j < i)
            continue;   /* visited at its first entry */
        int rc = fn(ctx, section);
        if (rc != 0)
            return rc;
    }
    return 0;
}
