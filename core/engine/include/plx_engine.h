/*
 * plx_engine: an ipengine — a CPython interpreter serving a controller.
 *
 * plx_engine_run connects to the controller named by the options,
 * registers (Hello -> Welcome), then runs requests (execute, push, pull,
 * call: keys, reset, get_result, map, apply; task_run) one at a time in
 * __main__ until the controller goes away for good, sends shutdown
 * (answered with a "kill" reply first), or the process gets
 * SIGINT/SIGTERM. A connection lost unexpectedly is re-established for up
 * to reconnect_s (the engine asks for its old id); what was queued or
 * running for the lost connection is dropped (the controller has failed or
 * re-queued it already). Interrupt messages are handled by the I/O thread
 * at once: KeyboardInterrupt in the running task (or request).
 * docs/overview.md shows the two threads; docs/architecture.md says why
 * Python runs on the main thread.
 *
 * Library code: it never exits the process. It must be called from the
 * process's main thread, once per process (CPython is initialised and
 * finalised inside), and it installs SIGINT/SIGTERM handlers for the time
 * it runs.
 */
#ifndef PLX_ENGINE_H
#define PLX_ENGINE_H

#include "plexa/error.h"

typedef struct plx_engine_opts {
    const char *url;        /* --url: "plx+tcp://..." (wins over everything) */
    const char *url_file;   /* --url-file: a connection file */
    const char *profile;    /* --profile: NULL when not given (then $PLEXA_URL,
                             * then profile "default") */
    const char *mpi;        /* --mpi KIND ("mpi4py") or NULL */
    int         has_requested_id;     /* ask for requested_id at first registration */
    int         requested_id;         /* --id, or the MPI rank under --mpi; the
                                       * controller grants it while it is free */
    double      register_timeout_s;   /* no Welcome by then: give up; 0 = 30 s */
    double      reconnect_s;          /* --reconnect: after an unexpected loss of the
                                       * controller connection, retry for this long
                                       * (re-registering under the same id); 0 = the
                                       * default (10 s), < 0 = never */
    double      silence_s;            /* --controller-timeout: presume the controller
                                       * dead when not one byte came from it for this
                                       * long; 0 = the default (30 s, or 20 heartbeat
                                       * periods when that is longer) */
    const char *enginessh;            /* --enginessh [user@]host: reach the controller
                                       * through an ssh tunnel there (NULL: directly) */
    int         no_ipython;           /* --no-ipython: a plain 0.10 interpreter, no IPython
                                       * features for the code the engine runs */
    int         show_secrets;         /* --show-secrets: leave the profiles' security/
                                       * visible to the code the engine runs */
} plx_engine_opts_t;

/*
 * Run an engine to the end. Returns PLX_OK when it ended as engines should
 * (the controller closed the connection, a shutdown request, a signal),
 * else a negative code with err saying why, for the user:
 *   PLX_EINVAL / PLX_ENOTFOUND  no usable URL (bad URL, missing file)
 *   PLX_ENOTFOUND / PLX_EABI    transport plugin unavailable
 *   PLX_ECONNECT                controller unreachable or gone before Welcome
 *   PLX_EAUTH                   "controller refused registration: REASON"
 *   PLX_ETIMEDOUT               no Welcome within register_timeout_s
 *   PLX_ERR                     the interpreter or plexa._engine failed to start
 */
int plx_engine_run(const plx_engine_opts_t *opts, plx_err_t *err);

#endif
