/*
 * plexa/batch.h: the toolkit for batch launcher plugins (public, version
 * PLX_BATCH_API_VERSION).
 *
 * A batch launcher renders a job script from a template, submits it, reads
 * the job id from the submit command's output, polls the queue and cancels
 * the job. Everything but the system's own words (directives, commands,
 * output formats) is the same for every batch system, so it lives here; a
 * plugin describes its system in a plx_batch_system and gets its
 * plx_launcher_ops from PLX_BATCH_LAUNCHER (or wires plx_batch_start/poll/
 * signal/stop/destroy itself). plexa's own pbs, sge and slurm launchers are
 * built on exactly this, and so can a site's (docs/launcher-plugins.md,
 * examples/launcher-plugin-batch: a whole plugin in under 120 lines).
 *
 * It is a static library (`pkg-config --cflags --libs --static
 * plexa-batch`), compiled with hidden visibility into each plugin: nothing
 * here is exported from a plugin, plugins never clash, and a plugin keeps
 * working with a later plexa as long as the launcher ABI (launcher.h)
 * holds, whatever this toolkit becomes. PLX_BATCH_API_VERSION says which
 * version of this source interface a header offers; additions raise it,
 * and nothing documented here changes meaning within a version.
 *
 * Sources (plugins/common): plx_batch.c (job life cycle), plx_batch_conf.c
 * (keys of the launcher's section), plx_batch_tmpl.c (job script
 * templates), plx_batch_script.c (rendering and writing a job's script),
 * plx_batch_run.c (running qsub/sbatch/... with a timeout and capturing
 * their stdout and stderr apart), plx_batch_tally.c (turning queue states
 * into a plx_job_status).
 */
#ifndef PLX_BATCH_H
#define PLX_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "plexa/error.h"
#include "plexa/launcher.h"
#include "plexa/version.h"

#define PLX_BATCH_API_VERSION 1

#define PLX_BATCH_ARGV_MAX   64
#define PLX_BATCH_ID_MAX     64
#define PLX_BATCH_OUT_MAX    (64 * 1024)   /* command output kept, per stream */

typedef struct plx_batch_job plx_batch_job;

/* ---- running commands (plx_batch_run.c) --------------------------------- */

/* What a finished command said. Both strings are owned, NUL-terminated and
 * cut at PLX_BATCH_OUT_MAX bytes. */
typedef struct plx_batch_out {
    int   status;    /* wait status */
    char *out;       /* stdout */
    char *err;       /* stderr */
} plx_batch_out;

/*
 * Run argv (argv[0] a path, or a name looked up in PATH) with envp as its
 * whole environment (NULL: ours), in cwd (NULL: ours), stdin from
 * /dev/null, and wait at most timeout_s. PLX_OK means it ran to its end,
 * whatever its exit status (see plx_batch_out_ok); a command that cannot
 * be executed ends with status 127 and says why on stderr. Errors:
 * PLX_ETIMEDOUT (killed, with its process group), PLX_EIO, PLX_ENOMEM.
 * The caller frees out with plx_batch_out_free, also after an error.
 */
int  plx_batch_run(const char *const *argv, const char *const *envp, const char *cwd,
                   double timeout_s, plx_batch_out *out, plx_err_t *err);
void plx_batch_out_free(plx_batch_out *out);
bool plx_batch_out_ok(const plx_batch_out *out);

/* Record "PROG failed (exit 1): <its stderr, or stdout, on one line>" and
 * return PLX_ERR. */
int  plx_batch_fail(plx_err_t *err, const char *prog, const plx_batch_out *out);

/* Copy text's non-empty lines, each squeezed, joined by "; ". */
void plx_batch_lines(char *dst, size_t len, const char *text);

/* Copy text with runs of whitespace (newlines too) squeezed to one space
 * and ends trimmed: batch systems' messages span lines. */
void plx_batch_squeeze(char *dst, size_t len, const char *text);

/* ---- argument vectors --------------------------------------------------- */

typedef struct plx_batch_argv {
    const char *v[PLX_BATCH_ARGV_MAX + 1];   /* NULL-terminated */
    int         n;
    bool        overflow;
} plx_batch_argv;

/* Append s (not copied: it must outlive the argv). */
void plx_batch_argv_add(plx_batch_argv *av, const char *s);

/* ---- queue states (plx_batch_tally.c) ------------------------------------ */

typedef enum plx_batch_cat {
    PLX_BATCH_PENDING = 1,   /* queued, held, waiting */
    PLX_BATCH_RUNNING,       /* started (or being cleaned up) */
    PLX_BATCH_DONE,          /* ended well */
    PLX_BATCH_FAILED,        /* ended badly, or left the queue unseen */
} plx_batch_cat;

#define PLX_BATCH_GROUPS 6

/* Engines counted by category, and the batch system's own words for them
 * grouped by (state, reason), e.g. 2 x ("PENDING", "JobHeldUser"). */
typedef struct plx_batch_tally {
    int  count[PLX_BATCH_FAILED + 1];
    int  ngroups;
    struct {
        int  count;
        char state[32];
        char reason[160];
    } group[PLX_BATCH_GROUPS];
} plx_batch_tally;

/* Count k engines in category cat, in the words state (and reason, may be
 * NULL or ""). Groups beyond PLX_BATCH_GROUPS are counted, not described. */
void plx_batch_tally_add(plx_batch_tally *t, plx_batch_cat cat, int k, const char *state,
                         const char *reason);

/* Fill st from a tally of a job of n engines; engines the tally does not
 * mention have left the queue without a known exit status: failed. */
void plx_batch_tally_status(const plx_batch_tally *t, int n, const char *system,
                            const char *job_id, plx_job_status *st);

/* ---- templates (plx_batch_tmpl.c) --------------------------------------- */

/* Value of placeholder name, or NULL if there is no such placeholder. */
typedef const char *(*plx_batch_lookup_fn)(void *ctx, const char *name);

/*
 * Render tmpl: {name} (lowercase letters, digits, _) is replaced by
 * lookup(name); a { after $ is the shell's (${VAR}, ${A:-${B}}) and any
 * other brace is kept as is. There is no escape: shell code never needs
 * a literal {lowercase} word. A line starting with directive
 * ("#SBATCH") in which a placeholder expands to "" is left out, so
 * "#SBATCH --partition={queue}" vanishes when no partition is set. An
 * unknown placeholder is an error naming where (source:line), an empty
 * template PLX_EINVAL. *out is owned by the caller.
 */
int plx_batch_render(const char *tmpl, const char *source, const char *directive,
                     plx_batch_lookup_fn lookup, void *ctx, char **out, plx_err_t *err);

/* argv as one POSIX shell command line: every word single-quoted. Owned
 * by the caller; NULL when out of memory. */
char *plx_batch_shell_join(const char *const *argv);

/* ---- the system a plugin describes -------------------------------------- */

enum { PLX_BATCH_SUBMIT, PLX_BATCH_STATUS, PLX_BATCH_CANCEL, PLX_BATCH_NCMDS };

typedef struct plx_batch_system {
    /* Members marked "optional" may be NULL (or left out of the
     * initializer); the others are required. */
    const char *name;           /* "slurm": section name, messages, script suffix */
    const char *directive;      /* "#SBATCH" */
    const char *queue_key;      /* optional: key that names the queue: "partition", "queue" */
    /* What a template must say, and is given when it does not (as IPython
     * 0.10 added "#PBS -t 1-N" and "#PBS -q" to a user's script): the
     * spellings of the option, and the line's format for its value. */
    const char *array_opts[3];  /* optional: {"-t", "-J"}: an array job (job_array = true) */
    const char *array_fmt;      /* optional: "-t %s", with {array_range} */
    const char *queue_opts[3];  /* optional: {"-q"}: the queue, when the queue key is set */
    const char *queue_fmt;      /* optional: "-q %s" */
    const char *tmpl_array;     /* optional: built-in template, one array task per engine;
                                 * NULL: no job arrays (job_array defaults to false) */
    const char *tmpl_single;    /* built-in template: one job with n engines */
    int         array_first;    /* first array index: {array_range} = F-(F+n-1) */
    bool        url_in_script;  /* default of url_delivery: script (true) or env */
    const char *cmd_key[PLX_BATCH_NCMDS];       /* "sbatch", "squeue", "scancel" */
    const char *cmd_default[PLX_BATCH_NCMDS];
    const plx_launcher_key *keys;               /* the plugin's whole key table */
    /* Optional: add the system's flags for submitting the script (after
     * argv[0] and before the user's submit_args). Strings it adds must live
     * in static storage or in j->sys_arg. */
    void (*submit_flags)(plx_batch_job *j, plx_batch_argv *av);
    /* Optional: the job id in the submit command's stdout: PLX_OK or
     * PLX_EPROTO. NULL: plx_batch_parse_id. */
    int  (*parse_id)(const char *out, char *id, size_t len);
    /* Ask the queue about the job and tally its engines. PLX_OK, or an
     * error naming the command and its words. */
    int  (*query)(plx_batch_job *j, plx_batch_tally *t, plx_err_t *err);
    /* Optional: where the built-in templates have the batch system write
     * engine index's job output: path under j->log_dir. Returns the length
     * snprintf would (>= len: did not fit). */
    int  (*output_path)(const plx_batch_job *j, int index, char *path, size_t len);
} plx_batch_system;

/* What a plugin's submit_flags and query may read of a job. */
struct plx_batch_job {
    const plx_batch_system *sys;
    int         n;                            /* engines */
    bool        array;                        /* job array, else one job */
    bool        url_in_script;
    double      poll_interval;                /* seconds between queue queries */
    char        job_id[PLX_BATCH_ID_MAX];
    char        job_name[64];
    char       *cmd[PLX_BATCH_NCMDS];         /* programs (owned) */
    char       *submit_args;                  /* extra words, split at submit (owned) */
    char       *log_dir;                      /* (owned) */
    char       *cwd;                          /* (owned, may be NULL) */
    char       *script_path;                  /* written job script (owned) */
    char      **envp;                         /* the commands' environment (owned) */
    plx_job_status last;                      /* latest queue answer */
    double      last_poll;                    /* when (monotonic s), 0 = never */
    bool        cancelled;
    char        sys_arg[4200];                /* room for one of the plugin's flag values */
};

/* ---- job scripts (plx_batch_script.c) ---------------------------------- */

typedef struct plx_batch_conf plx_batch_conf;

/* The job's script, rendered from its template; *script owned by the caller. */
int   plx_batch_script_render(const plx_batch_conf *c, const plx_batch_job *j, char **script,
                              plx_err_t *err);
/* Complete a rendered script as IPython 0.10 completed a user's: add the
 * array directive (array jobs) and the queue directive (queue not empty)
 * right after the #! line when no directive line gives them. *script is
 * replaced; on error it is left as it was. */
int   plx_batch_script_complete(const plx_batch_system *sys, bool array, const char *range,
                                const char *queue, char **script, plx_err_t *err);
/* script with "KEY='VALUE'; export KEY" for each env entry after its
 * leading comment block (where directives end). Owned; NULL: no memory. */
char *plx_batch_script_inject_env(const char *script, const char *const *env);
/* Write text to path (created or truncated), mode 0600. */
int   plx_batch_script_write(const char *path, const char *text, plx_err_t *err);
/* Is "KEY=VALUE" a variable a shell can export? */
bool  plx_batch_env_name_ok(const char *kv);

/* ---- launcher ops (plx_batch.c) ------------------------------------------ */

int  plx_batch_start(const plx_batch_system *sys, const plx_launch_spec *spec, void **job,
                     plx_err_t *err);
int  plx_batch_poll(void *job, plx_job_status *st, plx_err_t *err);
int  plx_batch_signal(void *job, int sig, plx_err_t *err);
int  plx_batch_stop(void *job, double grace_s, plx_err_t *err);
void plx_batch_destroy(void **job);
/* Engines of a batch job run wherever the scheduler puts them, which on
 * any real cluster is another host: 1, with a description in host. */
int  plx_batch_remote_host(const plx_launch_spec *spec, char *host, size_t len,
                           plx_err_t *err);

/* The default job id rule: the first word of out that starts with a digit,
 * up to a space, ';', '(' or a quote ("Submitted batch job 17" -> "17",
 * "123.server" -> "123.server", "Your job 9 (\"x\") has been submitted" ->
 * "9", "17;cluster" -> "17"). PLX_OK, or PLX_EPROTO when there is none or
 * it does not fit in len. */
int  plx_batch_parse_id(const char *out, char *id, size_t len);

/* Cancel batch job job_id of sys with its cancel command as spec's section
 * names it (plx_launcher_ops.cancel_job): PLX_OK when the command
 * succeeded, else an error with its words. */
int  plx_batch_cancel_id(const plx_batch_system *sys, const plx_launch_spec *spec,
                         const char *job_id, plx_err_t *err);

/* The job's output file for engine index (plx_launcher_ops.output_file):
 * 1 with its path when it exists, else 0. */
int  plx_batch_output_file(void *job, int index, char *path, size_t len);

/* Run the job's status command with args (job id appended by the caller).
 * Convenience for query implementations. */
int  plx_batch_run_cmd(plx_batch_job *j, int which, const char *const *args,
                       plx_batch_out *out, plx_err_t *err);

/* ---- keys of the section (plx_batch_conf.c) ------------------------------- */

/* A launcher section as the job's start sees it. */
struct plx_batch_conf {
    const plx_launch_spec *spec;
    const plx_batch_system *sys;
};

/* Value of key in the launcher's section, "" if unset. */
const char *plx_batch_conf_str(const plx_batch_conf *c, const char *key);
int plx_batch_conf_bool(const plx_batch_conf *c, const char *key, bool dflt, bool *out,
                        plx_err_t *err);
int plx_batch_conf_seconds(const plx_batch_conf *c, const char *key, double dflt,
                           double *out, plx_err_t *err);
/* Split a value into words (whitespace; '...' and "..." group). The words
 * point into buf, which the caller owns. */
int plx_batch_split_words(char *buf, plx_batch_argv *av, const char *what, plx_err_t *err);

/*
 * The plugin around a batch system: its start (plx_batch_start with sys),
 * the shared poll/signal/stop/destroy, its key table, and the descriptor.
 * NAME is a C identifier and the launcher's name, SYS a plx_batch_system,
 * KEYS its key table, DESC the one-line description, VERSION the plugin's
 * own release (PLX_BATCH_LAUNCHER: plexa's, for plexa's own launchers).
 */
#define PLX_BATCH_LAUNCHER(NAME, SYS, KEYS, DESC) \
    PLX_BATCH_LAUNCHER_VERSION(NAME, SYS, KEYS, DESC, PLX_VERSION_STRING)

#define PLX_BATCH_LAUNCHER_VERSION(NAME, SYS, KEYS, DESC, VERSION)                       \
    static int NAME##_start(const plx_launch_spec *spec, void **job, plx_err_t *err)     \
    {                                                                                    \
        return plx_batch_start(&(SYS), spec, job, err);                                  \
    }                                                                                    \
    static int NAME##_cancel_job(const plx_launch_spec *spec, const char *id,            \
                                 plx_err_t *err)                                         \
    {                                                                                    \
        return plx_batch_cancel_id(&(SYS), spec, id, err);                               \
    }                                                                                    \
    static const plx_launcher_ops NAME##_ops = {                                         \
        .size = sizeof NAME##_ops,                                                       \
        .start = NAME##_start,                                                           \
        .poll = plx_batch_poll,                                                          \
        .signal = plx_batch_signal,                                                      \
        .stop = plx_batch_stop,                                                          \
        .destroy = plx_batch_destroy,                                                    \
        .pids = NULL, /* the engines are the batch system's processes */                 \
        .keys = KEYS,                                                                    \
        .remote_host = plx_batch_remote_host,                                            \
        .output_file = plx_batch_output_file,                                            \
        .cancel_job = NAME##_cancel_job,                                                 \
    };                                                                                   \
    PLX_PLUGIN_DEFINE(PLX_PLUGIN_LAUNCHER, #NAME, DESC, VERSION, &NAME##_ops)

#endif
