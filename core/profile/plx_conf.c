/* cluster.conf parsing and validation; see plx_conf.h. */
#include "plx_conf.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "plx_log.h"
#include "plx_profile.h"
#include "plx_url.h"

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
#define KEY_CHARS  NAME_CHARS "."
#define VALUE_MAX  4096

/* ---- the schema ---------------------------------------------------------- */

enum ktype {
    K_CHOICE,    /* string, one of choices */
    K_NAME,      /* string, a plugin name */
    K_HOST,      /* string, a host (brackets around IPv6 removed) */
    K_OPTHOST,   /* same, or empty */
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

#define CL(f) offsetof(struct plx_conf, cluster.f), sizeof(((plx_cluster_conf_t *)0)->f)
#define CT(f) offsetof(struct plx_conf, controller.f), sizeof(((plx_controller_conf_t *)0)->f)
#define CN(f) offsetof(struct plx_conf, client.f), sizeof(((plx_client_conf_t *)0)->f)

static const keyspec_t schema[] = {
    { "cluster", "transport", K_CHOICE, "tls", 0, 0, "tcp|tls", CL(transport),
      "Transport of every connection: tcp (plaintext; for loopback or a trusted network) or "
      "tls (TLS 1.3, the controller's certificate pinned by the connection files)." },
    { "cluster", "controller_launcher", K_NAME, "local", 0, 0, NULL, CL(controller_launcher),
      "Launcher plugin that starts the controller." },
    { "cluster", "engine_launcher", K_NAME, "local", 0, 0, NULL, CL(engine_launcher),
      "Launcher plugin that starts the engines: local, ssh, mpiexec, pbs, sge, slurm or a "
      "site plugin. Its settings go in the section of the same name." },
    { "cluster", "engines", K_INT, "2", 1, 65536, NULL, CL(engines),
      "Number of engines to start (ipcluster -n overrides it)." },
    { "cluster", "listen", K_HOST, "127.0.0.1", 0, 0, NULL, CL(listen),
      "Address the controller binds: 0.0.0.0 or :: for every interface." },
    { "cluster", "location", K_OPTHOST, "", 0, 0, NULL, CL(location),
      "Address engines and clients use to reach the controller, written into the "
      "connection files. Empty means the listen address; set it when listen is 0.0.0.0 or ::." },
    { "cluster", "port", K_INT, "0", 0, 65535, NULL, CL(port),
      "Port the controller listens on; 0 lets the system pick a free one." },
    { "cluster", "heartbeat_period", K_SECONDS, "1.0", 0, 3600, NULL, CL(heartbeat_period),
      "Seconds between heartbeats from the controller to each engine." },
    { "cluster", "heartbeat_misses", K_INT, "5", 1, 1000, NULL, CL(heartbeat_misses),
      "Heartbeats an engine may miss in a row before it is declared dead." },
    { "cluster", "restart_engines", K_BOOL, "false", 0, 0, NULL, CL(restart_engines),
      "Whether ipcluster restarts engines that die." },
    { "cluster", "max_restarts", K_INT, "3", 0, 1000, NULL, CL(max_restarts),
      "How many times ipcluster restarts one engine (or the controller) before giving up." },
    { "cluster", "restart_controller", K_BOOL, "false", 0, 0, NULL, CL(restart_controller),
      "Whether ipcluster restarts a controller that died, on the same port with the same "
      "tokens: engines reconnect by themselves, clients reconnect with the files they have." },
    { "cluster", "hide_secrets", K_BOOL, "true", 0, 0, NULL, CL(hide_secrets),
      "Whether engines cover every profile's security/ directory (the other capabilities' "
      "tokens, the controller's key) from the code they run, with user and mount "
      "namespaces (ipengine --show-secrets when false). See docs/threat-model.md." },
    { "cluster", "allow_insecure", K_BOOL, "false", 0, 0, NULL, CL(allow_insecure),
      "Allow transport = tcp on an address other than loopback: anyone on the network can "
      "then read the traffic, tokens included." },
    { "cluster", "start_timeout", K_SECONDS, "60", 0, 604800, NULL, CL(start_timeout),
      "Seconds ipcluster waits for the controller and the engines to register." },
    { "cluster", "log_level", K_LEVEL, "info", 0, 0, "debug|info|warn|error", CL(log_level),
      "Least severe log lines written: debug, info, warn or error." },
    { "controller", "max_envelope", K_SIZE, "16777216", 1024, 2147483648LL, NULL,
      CT(max_envelope),
      "Largest message envelope accepted, in bytes (payload buffers do not count). "
      "Sizes may end in K, M, G or T (powers of 1024)." },
    { "controller", "max_memory", K_SIZE, "0", 0, 1LL << 50, NULL, CT(max_memory),
      "Most bytes of payload (pushed arrays, results in flight) the controller holds at "
      "once; a message that would go over is refused with an error naming this bound, "
      "and the connection stays. 0: three quarters of the memory the controller may use "
      "(physical memory, or its address-space or data limit if lower)." },
    { "controller", "max_buffers", K_INT, "65536", 1, 16777216, NULL, CT(max_buffers),
      "Most out-of-band buffers in one message." },
    { "controller", "results_max", K_INT, "100000", 1, INT_MAX, NULL, CT(results_max),
      "Most results kept for get_result; the oldest are evicted first." },
    { "controller", "results_max_bytes", K_SIZE, "268435456", 1048576, 1LL << 50, NULL,
      CT(results_max_bytes),
      "Most bytes of results kept; the oldest are evicted first." },
    { "controller", "task_inflight", K_INT, "0", 0, 1024, NULL, CT(task_inflight),
      "adaptive: the most tasks an engine holds ahead of the one it runs (0: 64); "
      "fifo and leastload: the tasks each engine holds, running included (0: 4)." },
    { "controller", "scheduler", K_CHOICE, "adaptive", 0, 0, "adaptive|fifo|leastload",
      CT(scheduler),
      "How tasks go to engines: adaptive (each engine holds as many tasks ahead as "
      "their measured durations need, none for long tasks, and an idle engine takes "
      "back tasks another holds but has not started), fifo (the engines take turns, "
      "like 0.10's FIFOScheduler) or leastload (the engine with the fewest tasks); "
      "fifo and leastload never take tasks back." },
    { "controller", "token_lifetime", K_INT, "0", 0, 315360000, NULL, CT(token_lifetime),
      "Seconds a mec, task or status token is accepted for new connections; then the "
      "controller mints a new one and rewrites its connection file (connections already "
      "made stay). 0: tokens last until the controller stops. The engine token never "
      "expires, so queued batch jobs can still register." },
    { "controller", "status_port", K_INT, "0", -1, 65535, NULL, CT(status_port),
      "Port of the read-only status page on 127.0.0.1 (its URL, with the status token, "
      "goes to security/ipcontroller-status.http); 0 picks a free port, -1 turns it off." },
    { "client", "trust_engine_pickles", K_BOOL, "true", 0, 0, NULL, CN(trust_engine_pickles),
      "Whether the Python clients of this profile unpickle values engines send. Unpickling "
      "runs code the sender chose, so a rogue engine (anyone holding the engine token) could "
      "run code in the client; false accepts only plexa's native values (None, bool, int, "
      "float, str, bytes, numpy arrays, lists and tuples of them) and turns anything else "
      "into an error naming this key." },
};

#define NSCHEMA (sizeof schema / sizeof schema[0])

static const char *const known_sections[] = { "cluster", "controller", "client" };

/* A converted value, held until it is committed to the typed field. */
typedef union value {
    int      i;
    uint64_t u;
    double   d;
    bool     b;
    char     s[256];
} value_t;

/* ---- small helpers ------------------------------------------------------- */

static int is_known_section(const char *section)
{
    for (size_t i = 0; i < sizeof known_sections / sizeof known_sections[0]; i++)
        if (strcmp(section, known_sections[i]) == 0)
            return 1;
    return 0;
}

static const keyspec_t *find_spec(const char *section, const char *key)
{
    for (size_t i = 0; i < NSCHEMA; i++)
        if (strcmp(schema[i].section, section) == 0 && strcmp(schema[i].key, key) == 0)
            return &schema[i];
    return NULL;
}

/* Edit distance, case-insensitive, capped for names up to 63 characters;
 * used to suggest the key or section the user probably meant. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[64], prev;
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
            prev = row[j];
            row[j] = sub < best ? sub : best;
        }
    }
    return row[lb];
}

static const char *closest_section(const char *section)
{
    for (size_t i = 0; i < sizeof known_sections / sizeof known_sections[0]; i++)
        if (distance(section, known_sections[i]) <= 2)
            return known_sections[i];
    return NULL;
}

static const keyspec_t *closest_key(const char *section, const char *key)
{
    const keyspec_t *best = NULL;
    size_t bestd = 3;   /* suggest only within two edits */
    for (size_t i = 0; i < NSCHEMA; i++) {
        if (strcmp(schema[i].section, section) != 0)
            continue;
        size_t d = distance(key, schema[i].key);
        if (d < bestd) {
            best = &schema[i];
            bestd = d;
        }
    }
    return best;
}

static int unknown_key(const char *section, const char *key, plx_err_t *err)
{
    const keyspec_t *near = closest_key(section, key);
    if (near)
        return plx_err_set(err, PLX_EINVAL, "[%s] %.64s: unknown key (did you mean '%s'?)",
                           section, key, near->key);
    char list[400] = "";
    size_t used = 0;
    for (size_t i = 0; i < NSCHEMA && used < sizeof list; i++)
        if (strcmp(schema[i].section, section) == 0)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "",
                                     schema[i].key);
    return plx_err_set(err, PLX_EINVAL, "[%s] %.64s: unknown key (known keys: %s)", section, key,
                       list);
}

static int check_section(const char *section, plx_err_t *err)
{
    if (strspn(section, NAME_CHARS) != strlen(section))
        return plx_err_set(err, PLX_EINVAL,
                           "[%.64s]: section names may only contain letters, digits, '_' and '-'",
                           section);
    /* Any other section belongs to a launcher, so a misspelt [clustr]
     * would silently be ignored: refuse names close to ours instead. */
    const char *near = is_known_section(section) ? NULL : closest_section(section);
    if (near)
        return plx_err_set(err, PLX_EINVAL, "[%s]: unknown section (did you mean [%s]?)",
                           section, near);
    return PLX_OK;
}

/* ---- converting values --------------------------------------------------- */

static int parse_ll(const char *v, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(v, &end, 10);
    return *v && !isspace((unsigned char)*v) && !*end && errno == 0 ? 0 : -1;
}

/* Bytes with an optional binary suffix: 512, 64K, 16M, 16MiB, 1G, 2T. */
static int parse_size(const char *v, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno)
        return -1;
    const char *units = "KMGT", *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    int shift = u ? 10 * (int)(u - units + 1) : 0;
    if (u)
        end++;
    if (u && (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0))
        end += strlen(end);
    if (*end || (shift && n > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)n << shift;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

/* Is v one of "a|b|c"? */
static int in_choices(const char *v, const char *choices)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        size_t m = strcspn(p, "|");
        if (m == n && n && strncmp(p, v, n) == 0)
            return 1;
        p += m + (p[m] == '|');
    }
    return 0;
}

static int convert_string(const keyspec_t *k, const char *v, value_t *out, plx_err_t *err)
{
    if (k->type == K_CHOICE && !in_choices(v, k->choices))
        return plx_err_set(err, PLX_EINVAL, "'%.64s' is not one of %s", v, k->choices);
    if (k->type == K_NAME && (!*v || strspn(v, NAME_CHARS) != strlen(v)))
        return plx_err_set(err, PLX_EINVAL,
                           "'%.64s' is not a plugin name (letters, digits, '_' and '-')", v);
    /* A launcher's settings live in the section named after it. */
    if (k->type == K_NAME && (is_known_section(v) || closest_section(v)))
        return plx_err_set(err, PLX_EINVAL, "'%s' cannot be a launcher: [%s] is plexa's own section",
                           v, closest_section(v));
    size_t n = strlen(v);
    /* Hosts: "[::1]" is the URL spelling of ::1; keep the bare address. */
    if ((k->type == K_HOST || k->type == K_OPTHOST) && n >= 2 && v[0] == '[' && v[n - 1] == ']') {
        v++;
        n -= 2;
    }
    if (n >= k->size || n >= sizeof out->s)
        return plx_err_set(err, PLX_EINVAL, "'%.32s...' is longer than %zu characters", v,
                           k->size - 1);
    memcpy(out->s, v, n);
    out->s[n] = '\0';
    if (k->type == K_HOST || (k->type == K_OPTHOST && n))
        return plx_url_check_host(out->s, err);
    return PLX_OK;
}

static int convert_number(const keyspec_t *k, const char *v, value_t *out, plx_err_t *err)
{
    long long ll;
    if (k->type == K_INT && parse_ll(v, &ll) != 0)
        return plx_err_set(err, PLX_EINVAL, "'%.64s' is not an integer (expected %lld..%lld)", v,
                           k->min, k->max);
    if (k->type == K_INT && (ll < k->min || ll > k->max))
        return plx_err_set(err, PLX_EINVAL, "%.64s is out of range (expected %lld..%lld)", v,
                           k->min, k->max);
    if (k->type == K_INT) {
        out->i = (int)ll;
        return PLX_OK;
    }
    if (parse_size(v, &out->u) != 0)
        return plx_err_set(err, PLX_EINVAL,
                           "'%.64s' is not a size (expected bytes, optionally with a K, M, G or "
                           "T suffix: %lld..%lld)",
                           v, k->min, k->max);
    if (out->u < (uint64_t)k->min || out->u > (uint64_t)k->max)
        return plx_err_set(err, PLX_EINVAL, "%.64s is out of range (expected %lld..%lld bytes)",
                           v, k->min, k->max);
    return PLX_OK;
}

static int convert(const keyspec_t *k, const char *v, value_t *out, plx_err_t *err)
{
    char *end;
    int level;
    memset(out, 0, sizeof *out);
    switch (k->type) {
    case K_CHOICE:
    case K_NAME:
    case K_HOST:
    case K_OPTHOST:
        return convert_string(k, v, out, err);
    case K_INT:
    case K_SIZE:
        return convert_number(k, v, out, err);
    case K_SECONDS:
        out->d = strtod(v, &end);
        if (!*v || isspace((unsigned char)*v) || *end || !isfinite(out->d) || out->d <= 0 || out->d > (double)k->max)
            return plx_err_set(err, PLX_EINVAL,
                               "'%.64s' is not a number of seconds (expected > 0 and <= %lld)", v,
                               k->max);
        return PLX_OK;
    case K_BOOL:
        if (parse_bool(v, &out->b) != 0)
            return plx_err_set(err, PLX_EINVAL,
                               "'%.64s' is not a boolean (expected true/false, yes/no, on/off "
                               "or 1/0)",
                               v);
        return PLX_OK;
    case K_LEVEL:
        level = in_choices(v, k->choices) ? plx_log_parse_level(v) : -1;
        if (level < 0)
            return plx_err_set(err, PLX_EINVAL, "'%.64s' is not one of %s", v, k->choices);
        out->i = level;
        return PLX_OK;
    }
    return plx_err_set(err, PLX_EINVAL, "unknown type");
}

static void commit(plx_conf_t *c, const keyspec_t *k, const value_t *v)
{
    void *field = (char *)c + k->off;
    switch (k->type) {
    case K_INT:
    case K_LEVEL:
        *(int *)field = v->i;
        break;
    case K_SIZE:
        *(uint64_t *)field = v->u;
        break;
    case K_SECONDS:
        *(double *)field = v->d;
        break;
    case K_BOOL:
        *(bool *)field = v->b;
        break;
    default:
        snprintf(field, k->size, "%s", v->s);
        break;
    }
}

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
static int apply(plx_conf_t *c, const char *section, const char *key, const char *raw,
                 const char *file, int line, unsigned gen, plx_err_t *err)
{
    char v[VALUE_MAX];
    value_t val;
    const keyspec_t *k = NULL;
    if (!*section)
        return plx_err_set(err, PLX_EINVAL, "%.64s: key outside any section (put it under [cluster])",
                           key);
    int rc = check_section(section, err);
    if (rc != PLX_OK)
        return rc;
    if (!*key || strspn(key, KEY_CHARS) != strlen(key))
        return plx_err_set(err, PLX_EINVAL,
                           "[%s] '%.64s': keys may only contain letters, digits, '_', '.' and '-'",
                           section, key);
    if (is_known_section(section) && !(k = find_spec(section, key)))
        return unknown_key(section, key, err);
    entry_t *prev = find_entry(c, section, key);
    if (prev && gen && prev->gen == gen)
        return plx_err_set(err, PLX_EINVAL, "[%s] %s: set twice (first on line %d)", section, key,
                           prev->line);
    if (strlen(raw) >= sizeof v)
        return plx_err_set(err, PLX_EINVAL, "[%s] %s: value longer than %zu characters", section,
                           key, sizeof v - 1);
    unquote(raw, v, sizeof v);
    if (k && convert(k, v, &val, err) != PLX_OK) {
        char prefix[160];
        snprintf(prefix, sizeof prefix, "[%s] %s", section, key);
        return plx_err_prefix(err, prefix);
    }
    if (store(c, section, key, v, file, line, gen) != PLX_OK)
        return plx_err_set(err, PLX_ENOMEM, "[%s] %s: out of memory", section, key);
    if (k)
        commit(c, k, &val);
    finalize(c);
    return PLX_OK;
}

/* ---- the object ---------------------------------------------------------- */

plx_conf_t *plx_conf_new_defaults(void)
{
    plx_conf_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < NSCHEMA; i++) {
        value_t v;
        int rc = convert(&schema[i], schema[i].def, &v, NULL);
        assert(rc == PLX_OK && "schema default must be valid");
        (void)rc;
        commit(c, &schema[i], &v);
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
static plx_conf_t *conf_clone(const plx_conf_t *c)
{
    plx_conf_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->cluster = c->cluster;
    d->controller = c->controller;
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
    const keyspec_t *k = find_spec(section, key);
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

int plx_conf_set(plx_conf_t *c, const char *section, const char *key, const char *value,
                 plx_err_t *err)
{
    if (!section || !key || !value)
        return plx_err_set(err, PLX_EINVAL, "plx_conf_set: NULL section, key or value");
    return apply(c, section, key, value, NULL, 0, 0, err);
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

/* The entry of keys nearest to key within two edits, or NULL. */
static const char *closest_launcher_key(const plx_launcher_key *keys, const char *key)
{
    const char *best = NULL;
    size_t bestd = 3;
    for (size_t i = 0; keys[i].name; i++) {
        size_t d = distance(key, keys[i].name);
        if (d < bestd) {
            best = keys[i].name;
            bestd = d;
        }
    }
    return best;
}

static int unknown_launcher_key(const entry_t *e, const plx_launcher_key *keys, const char *who,
                                plx_err_t *err)
{
    char where[PATH_MAX + 32] = "", list[400] = "";
    size_t used = 0;
    const char *near = closest_launcher_key(keys, e->key);
    if (e->file)
        snprintf(where, sizeof where, "%s:%d: ", e->file, e->line);
    if (near)
        return plx_err_set(err, PLX_EINVAL, "%s[%s] %.64s: unknown key of %s (did you mean "
                           "'%s'?)", where, e->section, e->key, who, near);
    for (size_t i = 0; keys[i].name && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "",
                                 keys[i].name);
    return plx_err_set(err, PLX_EINVAL, "%s[%s] %.64s: unknown key of %s (%s%s)", where,
                       e->section, e->key, who, used ? "known keys: " : "it takes no keys",
                       list);
}

static bool launcher_key_known(const plx_launcher_key *keys, const char *key)
{
    for (size_t i = 0; keys[i].name; i++)
        if (strcmp(keys[i].name, key) == 0)
            return true;
    return false;
}

int plx_conf_check_keys(const plx_conf_t *c, const char *section, const plx_launcher_key *keys,
                        const char *who, plx_err_t *err)
{
    if (!keys)
        return PLX_OK;   /* the table's owner did not declare its keys: it checks them */
    for (size_t i = 0; i < c->n; i++) {
        const entry_t *e = &c->entries[i];
        if (strcmp(e->section, section) == 0 && !launcher_key_known(keys, e->key))
            return unknown_launcher_key(e, keys, who ? who : section, err);
    }
    return PLX_OK;
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct parse_ctx {
    plx_conf_t *conf;       /* the working copy */
    const char *name;       /* file name for messages */
    FILE       *f;          /* source: a file, or */
    const char *text;       /* the rest of a string */
    char       *buf;        /* getline's buffer */
    size_t      bufcap;
    int         line;       /* lines read = the line inih is looking at */
    int         err_line;   /* line of the first error we found, 0 = none */
    plx_err_t   first;      /* that error, without the FILE:LINE: prefix */
} parse_ctx_t;

static void note_error(parse_ctx_t *ctx, const plx_err_t *e)
{
    if (ctx->err_line == 0) {
        ctx->err_line = ctx->line > 0 ? ctx->line : 1;
        ctx->first = *e;
    }
}

/* The next raw line and its length (with its '\n'); -1 at the end. */
static ssize_t next_line(parse_ctx_t *ctx, const char **line)
{
    if (ctx->f) {
        ssize_t n = getline(&ctx->buf, &ctx->bufcap, ctx->f);
        if (n < 0 && ferror(ctx->f)) {
            plx_err_t e;
            plx_err_set(&e, PLX_EIO, "read: %s", strerror(errno));
            ctx->line++;
            note_error(ctx, &e);
        }
        *line = ctx->buf;
        return n;
    }
    if (!*ctx->text)
        return -1;
    *line = ctx->text;
    const char *nl = strchr(ctx->text, '\n');
    size_t n = nl ? (size_t)(nl - ctx->text) + 1 : strlen(ctx->text);
    ctx->text += n;
    return (ssize_t)n;
}

/*
 * inih's fgets-style reader. We feed it ourselves rather than let it read
 * the file, to (1) count lines for messages (Debian's libinih is built
 * without INI_HANDLER_LINENO), (2) refuse over-long lines that inih would
 * silently split in two, and (3) strip indentation, so that an indented
 * "key = value" is a key and not a continuation of the previous value.
 */
static char *conf_reader(char *str, int num, void *stream)
{
    parse_ctx_t *ctx = stream;
    const char *line;
    ssize_t got = next_line(ctx, &line);
    if (got < 0)
        return NULL;
    size_t n = (size_t)got;
    ctx->line++;
    while (n > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    plx_err_t e;
    if (memchr(line, '\0', n)) {
        plx_err_set(&e, PLX_EINVAL, "line contains a NUL byte");
        note_error(ctx, &e);
        n = 0;
    } else if (n + 1 > (size_t)num) {
        plx_err_set(&e, PLX_EINVAL, "line is longer than %d characters", num - 2);
        note_error(ctx, &e);
        n = 0;
    }
    memcpy(str, line, n);
    str[n] = '\0';
    return str;
}

static int conf_handler(void *user, const char *section, const char *key, const char *value)
{
    parse_ctx_t *ctx = user;
    plx_err_t e = { 0 };
    if (apply(ctx->conf, section, key, value, ctx->name, ctx->line, ctx->conf->gen, &e) == PLX_OK)
        return 1;
    note_error(ctx, &e);
    return 0;
}

/* Turn inih's result and our first error into one message. */
static int parse_result(const parse_ctx_t *ctx, int r, plx_err_t *err)
{
    if (r < 0)
        return plx_err_set(err, PLX_ENOMEM, "%s: libinih failed (%d)", ctx->name, r);
    /* inih reports the first line it disliked; it calls no handler for a
     * syntax error, so an earlier line than ours is one. */
    if (r > 0 && (ctx->err_line == 0 || r < ctx->err_line))
        return plx_err_set(err, PLX_EINVAL,
                           "%s:%d: syntax error (expected [section], key = value or a comment)",
                           ctx->name, r);
    if (ctx->err_line)
        return plx_err_set(err, ctx->first.code, "%s:%d: %s", ctx->name, ctx->err_line,
                           ctx->first.msg);
    return PLX_OK;
}

static int parse(plx_conf_t *c, parse_ctx_t *ctx, plx_err_t *err)
{
    ctx->conf = conf_clone(c);
    if (!ctx->conf)
        return plx_err_set(err, PLX_ENOMEM, "%s: out of memory", ctx->name);
    ctx->conf->gen++;
    int r = ini_parse_stream(conf_reader, ctx, conf_handler, ctx);
    free(ctx->buf);
    int rc = parse_result(ctx, r, err);
    if (rc == PLX_OK) {
        /* Commit: c takes the working copy's contents, the copy takes c's. */
        plx_conf_t old = *c;
        *c = *ctx->conf;
        *ctx->conf = old;
    }
    plx_conf_destroy(&ctx->conf);
    return rc;
}

int plx_conf_parse_string(plx_conf_t *c, const char *text, const char *name_for_errors,
                          plx_err_t *err)
{
    parse_ctx_t ctx = { .name = name_for_errors ? name_for_errors : "<string>", .text = text };
    if (!text)
        return plx_err_set(err, PLX_EINVAL, "%s: no text", ctx.name);
    return parse(c, &ctx, err);
}

int plx_conf_load(plx_conf_t *c, const char *path, plx_err_t *err)
{
    if (!path)
        return plx_err_set(err, PLX_EINVAL, "plx_conf_load: no path");
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? PLX_OK
                               : plx_err_set(err, PLX_EIO, "open %s: %s", path, strerror(errno));
    parse_ctx_t ctx = { .name = path, .f = f };
    int rc = parse(c, &ctx, err);
    fclose(f);
    return rc;
}

/* ---- the template -------------------------------------------------------- */

/* Write text as "# " comment lines of at most about 76 columns. */
static void put_comment(FILE *f, const char *text)
{
    while (*text) {
        size_t n = strlen(text);
        if (n > 74) {
            n = 74;
            while (n > 0 && text[n] != ' ')
                n--;
            if (n == 0)
                n = strcspn(text, " ");
        }
        fprintf(f, "# %.*s\n", (int)n, text);
        text += n;
        while (*text == ' ')
            text++;
    }
}

static void put_section(FILE *f, const char *section, const char *launcher)
{
    fprintf(f, "[%s]\n", section);
    for (size_t i = 0; i < NSCHEMA; i++) {
        const keyspec_t *k = &schema[i];
        if (strcmp(k->section, section) != 0)
            continue;
        put_comment(f, k->help);
        if (strcmp(k->key, "engine_launcher") == 0 && strcmp(launcher, "local") != 0)
            fprintf(f, "%s = %s\n\n", k->key, launcher);
        else
            fprintf(f, "# %s =%s%s\n\n", k->key, *k->def ? " " : "", k->def);
    }
}

static void put_launcher(FILE *f, const char *launcher, const plx_launcher_key *keys)
{
    fprintf(f, "[%s]\n", launcher);
    if (!keys) {
        fprintf(f, "# Settings of the %s launcher plugin. It does not list its keys\n"
                   "# (or was not found when this file was written): see its\n"
                   "# documentation.\n", launcher);
        return;
    }
    if (!keys[0].name) {
        fprintf(f, "# The %s launcher takes no settings.\n", launcher);
        return;
    }
    fprintf(f, "# Settings of the %s launcher plugin; any other key is an error.\n", launcher);
    for (size_t i = 0; keys[i].name; i++) {
        fputc('\n', f);
        put_comment(f, keys[i].help);
        fprintf(f, "# %s =%s%s\n", keys[i].name, *keys[i].example ? " " : "", keys[i].example);
    }
}

static char *template_text(const char *launcher, const plx_launcher_key *keys)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "# plexa cluster configuration (cluster.conf) of this profile.\n"
               "# Every key is optional: the commented-out value is the default.\n"
               "# Reference: docs/profiles.md.\n\n");
    put_section(f, "cluster", launcher);
    put_section(f, "controller", launcher);
    put_launcher(f, launcher, keys);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

int plx_conf_write_template(const char *path, const char *engine_launcher,
                            const plx_launcher_key *keys, plx_err_t *err)
{
    const char *launcher = engine_launcher && *engine_launcher ? engine_launcher : "local";
    struct stat st;
    const keyspec_t *k = find_spec("cluster", "engine_launcher");
    value_t v;
    if (convert(k, launcher, &v, err) != PLX_OK)
        return plx_err_prefix(err, "engine_launcher");
    if (lstat(path, &st) == 0)
        return plx_err_set(err, PLX_EINVAL, "%s already exists (not overwriting it)", path);
    char *text = template_text(launcher, keys);
    if (!text)
        return plx_err_set(err, PLX_ENOMEM, "%s: out of memory", path);
    int rc = plx_file_write_secret(path, text, err);
    free(text);
    return rc;
}
