/*
 * plexa launcher plugin interface: start, watch and stop a set of processes.
 *
 * A launcher is a small state machine, after IPython's launcher classes and
 * Open MPI's process launch modules: start(spec) gives a job handle; poll
 * reports how many of its processes are pending, running or finished (and
 * the batch system's own words when something went wrong); signal and stop
 * act on all of them; destroy frees the handle (it does not stop anything
 * by itself — call stop first). Batch launchers render a job script, submit
 * it, parse the job id, poll the queue and cancel.
 *
 * Everything is called from one thread. poll must not block for long (a
 * batch launcher may run qstat/squeue, which is acceptable).
 */
#ifndef PLEXA_LAUNCHER_H
#define PLEXA_LAUNCHER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plexa/error.h"
#include "plexa/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum plx_launch_role {
    PLX_LAUNCH_CONTROLLER = 1,
    PLX_LAUNCH_ENGINES    = 2,
} plx_launch_role;

/* What to start. The launcher copies whatever it keeps. Like the ops
 * tables the spec only grows: a launcher reads a member past version 1
 * only when spec->size >= PLX_OPS_END(plx_launch_spec, member). */
typedef struct plx_launch_spec {
    uint32_t           size;          /* sizeof(plx_launch_spec) of the caller */
    plx_launch_role    role;
    int                count;         /* number of processes */
    const char *const *argv;          /* command of one process, NULL-terminated; argv[0] absolute */
    const char *const *env;           /* extra "KEY=VALUE" entries, NULL-terminated, may be NULL */
    const char        *cwd;           /* working directory, NULL = inherit */
    const char        *profile_dir;   /* ~/.plexa/profile_NAME */
    const char        *log_dir;       /* where process output goes */
    /* The launcher's own profile section: value of key or NULL. */
    const char *(*conf)(void *conf_ctx, const char *key);
    void              *conf_ctx;
    /* Members above are in version 1 of the spec (plugin ABI 1). Append
     * new ones below, behind a fence of their own. */

    /* ---- version 2 ---- */
    /* The index of this start's first process (role ENGINES): process i
     * is engine first_index + i, its PLX_ENGINE_INDEX and the number in
     * its log file's name. ipcluster numbers every engine of a cluster
     * once: `ipcluster engines -n N` and replacements go on from where
     * the earlier starts ended. Read it with plx_launch_first_index. */
    int                first_index;
} plx_launch_spec;

/* The size of a version-1 spec (what callers built against the first
 * headers pass). */
#define PLX_LAUNCH_SPEC_V1_SIZE PLX_OPS_END(plx_launch_spec, conf_ctx)

/* spec->first_index, or 0 from a caller whose spec predates it. */
static inline int plx_launch_first_index(const plx_launch_spec *spec)
{
    return spec->size >= PLX_OPS_END(plx_launch_spec, first_index) ? spec->first_index : 0;
}

typedef enum plx_job_state {
    PLX_JOB_PENDING  = 1,   /* submitted, not yet running (queued) */
    PLX_JOB_RUNNING  = 2,   /* at least one process runs */
    PLX_JOB_FINISHED = 3,   /* every process has ended */
} plx_job_state;

typedef struct plx_job_status {
    plx_job_state state;
    int  pending;            /* processes not yet started */
    int  running;            /* processes running now */
    int  exited;             /* processes that ended */
    int  failed;             /* of those, ended with a non-zero status or a signal */
    int  last_status;        /* wait status of the last failure (or 0) */
    char job_id[64];         /* batch job id, "" for local */
    char detail[256];        /* batch system's own words about state/reason */
} plx_job_status;

/*
 * One key of the launcher's own cluster.conf section ([ssh], [slurm], ...).
 * ipcluster refuses keys a launcher does not list (naming file, line and
 * key) and `ipcluster profile create --launcher=NAME` writes them, with
 * their help, into the commented template.
 */
typedef struct plx_launcher_key {
    const char *name;      /* key, e.g. "queue" */
    const char *example;   /* example value for the template, "" for none */
    const char *help;      /* one sentence */
} plx_launcher_key;

/*
 * A launcher's ops table. The fences below mark what each version of the
 * table added; members are only ever appended, never moved or removed.
 * `size` is sizeof(plx_launcher_ops) as the plugin was built (write
 * `.size = sizeof my_ops`): it tells which version the plugin has. The
 * loader refuses a table smaller than version 1 (PLX_LAUNCHER_OPS_V1_SIZE);
 * callers test each member below the version-1 fence with PLX_OPS_HAS
 * (plugin.h) before reading it.
 */
typedef struct plx_launcher_ops {
    uint32_t size;   /* sizeof(plx_launcher_ops) the plugin was built with */

    int  (*start)(const plx_launch_spec *spec, void **job, plx_err_t *err);
    int  (*poll)(void *job, plx_job_status *st, plx_err_t *err);
    int  (*signal)(void *job, int sig, plx_err_t *err);
    /* Graceful stop: SIGTERM (or cancel), then SIGKILL after grace_s. Blocks
     * at most about grace_s seconds. */
    int  (*stop)(void *job, double grace_s, plx_err_t *err);
    void (*destroy)(void **job);
    /* Optional (NULL if not known): local pids of the job's processes.
     * Returns how many were written (at most max). */
    int  (*pids)(void *job, pid_t *out, int max);

    /* ---- Members above are in version 1 of this table (plugin ABI 1). */

    /* Optional (NULL: the section takes no keys): the keys of the
     * launcher's section, ended by an entry whose name is NULL. */
    const plx_launcher_key *keys;

    /* ---- Members above are in version 2 of this table. */

    /* Optional (NULL: every process runs on this host). Would start(spec)
     * run processes on another host? Returns 1 and writes the name of one
     * such host into host, 0 when everything runs here, or a negative code
     * with err filled. ipcluster asks before starting engines, to refuse a
     * controller that only listens on loopback for engines that run
     * elsewhere. Must not connect anywhere (a local lookup such as
     * `ssh -G` is fine); spec->argv may be a placeholder. */
    int  (*remote_host)(const plx_launch_spec *spec, char *host, size_t len, plx_err_t *err);

    /* ---- Members above are in version 3 of this table. */

    /* Optional (NULL: nothing beyond log/<prog>-<i>.out). The file where
     * the batch system wrote what process index's job printed itself (a
     * job script that failed before it started the engine says why only
     * there). Writes its path and returns 1 if that file exists, 0 if it
     * does not (not yet written, or a template that sends it elsewhere). */
    int  (*output_file)(void *job, int index, char *path, size_t len);

    /* ---- Members above are in version 4 of this table. */

    /* Optional (NULL: jobs end with the processes that keep them). Cancel
     * batch job job_id (a job_id that poll reported) without its job
     * handle: `ipcluster stop` after the ipcluster that started the job
     * died. spec is the launcher's section as for start (conf readable;
     * argv a placeholder, count 0). PLX_OK once the batch system took the
     * cancel, or a negative code with the batch system's words in err. */
    int  (*cancel_job)(const plx_launch_spec *spec, const char *job_id, plx_err_t *err);

    /* ---- Members above are in version 5 of this table. Append new ones
     * below, each version behind a fence of its own. */
} plx_launcher_ops;

/* The size of version 1 of the table: the smallest the loader accepts. */
#define PLX_LAUNCHER_OPS_V1_SIZE PLX_OPS_END(plx_launcher_ops, pids)

#ifdef __cplusplus
}
#endif
#endif
