/*
 * plx_procset: a fixed set of local child processes, as launchers need
 * them (the local launcher's processes, the ssh launcher's ssh clients,
 * the mpiexec launcher's mpiexec).
 *
 * Each process is forked and exec'd in its own process group, so signals
 * reach whatever it spawns and a Ctrl-C at the terminal reaches the host
 * alone. Children get PR_SET_PDEATHSIG so they do not outlive a crashed
 * host, stdin from /dev/null (or a socket the set keeps: see stdin_pipe),
 * stdout and stderr appended to their log file. Only our own pids are ever
 * waited for: the host may have other children, and waitpid(-1) would
 * steal their statuses.
 *
 * Caveats for the host: PR_SET_PDEATHSIG fires when the *thread* that
 * spawned exits, so spawn from a long-lived thread; and a SIGCHLD handler
 * that reaps every child takes exit statuses away from poll, which then
 * reports them as unknown.
 *
 * Compiled into each plugin that uses it (plugins/common), never exported.
 */
#ifndef PLX_PROCSET_H
#define PLX_PROCSET_H

#include <stdbool.h>
#include <sys/types.h>

#include "plexa/error.h"
#include "plexa/launcher.h"

/* Exit status of a child that could not be started (like a shell). */
#define PLX_PROCSET_EXEC_FAILED 127

typedef struct plx_procset plx_procset_t;

/* How to start one process. Everything is copied or used before spawn
 * returns. */
typedef struct plx_proc_cmd {
    const char *const *argv;       /* NULL-terminated; argv[0] absolute or found on PATH */
    const char *const *env;        /* extra "KEY=VALUE" entries over ours, or NULL */
    const char        *cwd;        /* NULL: inherit */
    const char        *log_path;   /* stdout+stderr appended there; NULL: inherit ours */
    const char        *label;      /* for messages, e.g. "ipengine #3"; NULL: argv[0] #i */
    bool               index_env;  /* add PLX_ENGINE_INDEX=<index_base + i> (last: nothing
                                    * shadows it) */
    int                index_base; /* the first process's index (plx_launch_first_index) */
    bool               stdin_pipe; /* stdin is a socket whose other end plx_procset_stdin
                                    * gives; closing it is the child's EOF */
} plx_proc_cmd;

/* A set of count processes, none started. who prefixes error messages
 * ("launcher ssh"). Caller owns; NULL on ENOMEM. */
plx_procset_t *plx_procset_new(int count, const char *who);

/* Start process i (0 <= i < count, once). PLX_OK or PLX_EIO/PLX_EINVAL. */
int plx_procset_spawn(plx_procset_t *s, int i, const plx_proc_cmd *cmd, plx_err_t *err);

/* Our end of process i's stdin (stdin_pipe), or -1. Owned by the set:
 * write with send(..., MSG_NOSIGNAL); close it with plx_procset_close_stdin. */
int plx_procset_stdin(const plx_procset_t *s, int i);
void plx_procset_close_stdin(plx_procset_t *s, int i);

/* Reap without blocking and count: state RUNNING while one process runs,
 * FINISHED once all ended (never PENDING); detail describes the latest
 * failure. */
int plx_procset_poll(plx_procset_t *s, plx_job_status *st, plx_err_t *err);

/* Is process i started and not yet reaped? (reaps it if it ended) */
bool plx_procset_running(plx_procset_t *s, int i);

/* Wait up to timeout_s for every started process to end (reaping them).
 * True when none is left. */
bool plx_procset_wait(plx_procset_t *s, double timeout_s);

/* Signal the process group of every unreaped process. */
int plx_procset_signal(plx_procset_t *s, int sig, plx_err_t *err);

/* SIGTERM, then SIGKILL after grace_s, then reap (PLX_ETIMEDOUT if a
 * process outlives SIGKILL by 5 s). Blocks at most about grace_s + 5 s. */
int plx_procset_stop(plx_procset_t *s, double grace_s, plx_err_t *err);

/* Pids of the unreaped processes; returns how many were written. */
int plx_procset_pids(const plx_procset_t *s, pid_t *out, int max);

/* Free the set (does not stop anything: call plx_procset_stop first);
 * closes the stdin sockets still open. NULL-safe; sets *s to NULL. */
void plx_procset_destroy(plx_procset_t **s);

#endif
