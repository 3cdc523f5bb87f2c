/*
 * cluster.conf's schema: every key of [cluster], [controller] and
 * [client] with its type, range, default and help text (a new setting is
 * a row here and a field in plx_conf.h's typed struct), and the sections
 * plexa owns. Names are checked here: a section or key that is
 * not plexa's is refused with the nearest one it knows ("did you mean"),
 * and so are the keys of a launcher's section against the launcher's own
 * table (plx_conf_check_keys). See plx_conf_int.h for the other files.
 */
#include "plx_conf_int.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---- the schema ---------------------------------------------------------- */

#define CL(f) offsetof(struct plx_conf, cluster.f), sizeof(((plx_cluster_conf_t *)0)->f)
#define CT(f) offsetof(struct plx_conf, controller.f), sizeof(((plx_controller_conf_t *)0)->f)
#define CN(f) offsetof(struct plx_conf, client.f), sizeof(((plx_client_conf_t *)0)->f)

const keyspec_t plx_conf_schema[] = {
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
    { "cluster", "engine_ssh", K_SSHDEST, "", 0, 0, NULL, CL(engine_ssh),
      "An ssh server ([user@]host[:port]) through which engines reach the controller, for "
      "engines that cannot open connections to it (a one-way firewall): each opens an ssh "
      "tunnel there (ipengine --enginessh). The controller may then listen on loopback only." },
    { "cluster", "engine_ipython", K_BOOL, "true", 0, 0, NULL, CL(engine_ipython),
      "Whether engines offer IPython to the code they run, where IPython is installed: "
      "magics and shell escapes in cells, get_ipython(), display() and rich reprs sent back "
      "as display data (ipengine --no-ipython when false). IPython is loaded only when a "
      "cell uses it." },
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
    { "controller", "shm", K_BOOL, "true", 0, 0, NULL, CT(shm),
      "Whether clients and engines on the controller's host, running as its user, connect "
      "through the shm transport (a Unix socket only that user may use) and move payloads "
      "of 256 KiB and more through shared memory instead of TCP or TLS. Their connection "
      "files and URLs then name it (?shm=NAME); peers elsewhere use HOST:PORT as before. "
      "See docs/shared-memory.md." },
    { "controller", "direct_transfers", K_BOOL, "true", 0, 0, NULL, CT(direct_transfers),
      "Whether a push of plexa.ref values moves them from the engine that holds them to the "
      "targets directly (each target connects to that engine with TLS and a one-time ticket "
      "the controller issued), instead of through the controller. Engines connected through "
      "shared memory or an ssh tunnel always go through the controller. Set false when "
      "engines cannot reach each other. Also lets clients fetch what they pull from each "
      "engine directly. See docs/shared-memory.md." },
    { "controller", "broadcast_min", K_SIZE, "1048576", 0, 1LL << 50, NULL, CT(broadcast_min),
      "A push whose buffers hold at least this many bytes, to several engines that reach "
      "each other over the network, goes as a tree: the controller sends it to one engine, "
      "and each engine that has it serves it to two more (as plexa.ref values go, with "
      "one-time tickets). Needs direct_transfers; engines on shared memory always get it "
      "from the controller. See docs/shared-memory.md." },
    { "client", "trust_engine_pickles", K_BOOL, "true", 0, 0, NULL, CN(trust_engine_pickles),
      "Whether the Python clients of this profile unpickle values engines send. Unpickling "
      "runs code the sender chose, so a rogue engine (anyone holding the engine token) could "
      "run code in the client; false accepts only plexa's native values (None, bool, int, "
      "float, str, bytes, numpy arrays, lists and tuples of them) and turns anything else "
      "into an error naming this key." },
};

const size_t plx_conf_nschema = sizeof plx_conf_schema / sizeof plx_conf_schema[0];

static const char *const known_sections[] = { "cluster", "controller", "client" };

/* ---- names and suggestions ----------------------------------------------- */

int plx_conf_is_known_section(const char *section)
{
    for (size_t i = 0; i < sizeof known_sections / sizeof known_sections[0]; i++)
        if (strcmp(section, known_sections[i]) == 0)
            return 1;
    return 0;
}

const keyspec_t *plx_conf_find_spec(const char *section, const char *key)
{
    for (size_t i = 0; i < plx_conf_nschema; i++)
        if (strcmp(plx_conf_schema[i].section, section) == 0 &&
            strcmp(plx_conf_schema[i].key, key) == 0)
            return &plx_conf_schema[i];
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

const char *plx_conf_closest_section(const char *section)
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
    for (size_t i = 0; i < plx_conf_nschema; i++) {
        if (strcmp(plx_conf_schema[i].section, section) != 0)
            continue;
        size_t d = distance(key, plx_conf_schema[i].key);
        if (d < bestd) {
            best = &plx_conf_schema[i];
            bestd = d;
        }
    }
    return best;
}

int plx_conf_unknown_key(const char *section, const char *key, plx_err_t *err)
{
    const keyspec_t *near = closest_key(section, key);
    if (near)
        return plx_err_set(err, PLX_EINVAL, "[%s] %.64s: unknown key (did you mean '%s'?)",
                           section, key, near->key);
    char list[400] = "";
    size_t used = 0;
    for (size_t i = 0; i < plx_conf_nschema && used < sizeof list; i++)
        if (strcmp(plx_conf_schema[i].section, section) == 0)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "",
                                     plx_conf_schema[i].key);
    return plx_err_set(err, PLX_EINVAL, "[%s] %.64s: unknown key (known keys: %s)", section, key,
                       list);
}

int plx_conf_check_section(const char *section, plx_err_t *err)
{
    if (strspn(section, NAME_CHARS) != strlen(section))
        return plx_err_set(err, PLX_EINVAL,
                           "[%.64s]: section names may only contain letters, digits, '_' and '-'",
                           section);
    /* Any other section belongs to a launcher, so a misspelt [clustr]
     * would silently be ignored: refuse names close to ours instead. */
    const char *near =
        plx_conf_is_known_section(section) ? NULL : plx_conf_closest_section(section);
    if (near)
        return plx_err_set(err, PLX_EINVAL, "[%s]: unknown section (did you mean [%s]?)",
                           section, near);
    return PLX_OK;
}

/* ---- a launcher's keys --------------------------------------------------- */

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
