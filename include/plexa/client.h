/*
 * plexa C client: talk to a plexa controller's multi-engine interface.
 *
 *     plx_err_t err = {0};
 *     plx_client_t *c = plx_client_connect("", NULL, 10.0, &err);
 *     if (!c) { fprintf(stderr, "%s\n", err.msg); return 1; }
 *     plx_results_t *res = NULL;
 *     if (plx_client_execute(c, NULL, "a = 10", &res, &err) == PLX_OK) {
 *         for (size_t i = 0; i < res->n; i++)
 *             printf("[%d] In [%d]: %s\n", res->r[i].engine_id, res->r[i].number,
 *                    res->r[i].input);
 *         plx_results_destroy(&res);
 *     }
 *     plx_client_destroy(&c);
 *
 * Link with -lplexa (pkg-config plexa). The library has no global state:
 * a process may hold any number of clients. Each client owns one I/O
 * thread that runs the connection; every function below may be called
 * from any thread, concurrently, on the same client — except
 * plx_client_destroy, which must not race with other calls on that client.
 *
 * Errors: functions return PLX_OK (0) or a negative PLX_E* code from
 * plexa/error.h, and fill the caller's plx_err_t (may be NULL) with a
 * message. Codes a client sees:
 *   PLX_ECONNECT    the controller cannot be reached, or the connection was
 *                   lost; every pending and later request on the client
 *                   fails with it (the message names HOST:PORT). Make a new
 *                   client to reconnect.
 *   PLX_EAUTH       the controller refused the capability token.
 *   PLX_EBADENGINE  a target is not a registered engine id.
 *   PLX_ENOENGINES  no engines are registered.
 *   PLX_ETIMEDOUT   a wait passed its deadline (see plx_client_set_timeout).
 *   PLX_ENOTFOUND, PLX_EINVAL  bad URL, missing connection file or plugin.
 *   PLX_ECLOSED     the client was destroyed while the request waited.
 * A Python exception raised on an engine is not an error of the call: it is
 * reported per engine in plx_engine_result_t.ename/evalue/traceback.
 */
#ifndef PLEXA_CLIENT_H
#define PLEXA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "plexa/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions libplexa exports; everything else is hidden. */
#if defined(__GNUC__)
#define PLX_API __attribute__((visibility("default")))
#else
#define PLX_API
#endif

/* Seconds plx_client_connect waits for the controller when given <= 0. */
#define PLX_CLIENT_CONNECT_TIMEOUT_DEFAULT 10.0

/* A connection to one controller's multi-engine capability. Opaque. */
typedef struct plx_client plx_client_t;

/*
 * Connect to a controller and complete the handshake.
 *
 * url_or_file is a capability URL ("plx+tcp://HOST:PORT/TOKEN"), the path
 * of a connection file holding one, or "" (or NULL): then $PLEXA_URL when
 * profile is NULL, else the profile's connection file
 * <$PLEXA_DIR or ~/.plexa>/profile_<profile>/security/ipcontroller-mec.url
 * (profile NULL means "default"; a profile named explicitly wins over
 * $PLEXA_URL). Connection files must be readable by their owner only.
 *
 * Blocks until the controller welcomes or refuses the client, or until
 * timeout_s seconds pass (<= 0: PLX_CLIENT_CONNECT_TIMEOUT_DEFAULT).
 * Returns a client the caller owns (free with plx_client_destroy), or NULL
 * with err set: PLX_ECONNECT (unreachable, connection lost, or no answer in
 * time; the message names HOST:PORT), PLX_EAUTH ("controller refused the
 * connection: REASON"), PLX_ENOTFOUND/PLX_EINVAL (URL, file or transport
 * plugin), PLX_ENOMEM.
 */
PLX_API plx_client_t *plx_client_connect(const char *url_or_file, const char *profile,
                                         double timeout_s, plx_err_t *err);

/* Which capability a client connects to. */
typedef enum plx_client_role {
    PLX_CLIENT_ROLE_MEC  = 0,   /* the multi-engine interface (ipcontroller-mec.url) */
    PLX_CLIENT_ROLE_TASK = 1,   /* the task interface (ipcontroller-tc.url) */
    PLX_CLIENT_ROLE_STATUS = 2, /* read-only status (ipcontroller-status.url): get_ids,
                                 * queue status and task queue status only */
} plx_client_role_t;

/*
 * plx_client_connect for any capability. With PLX_CLIENT_ROLE_STATUS the
 * file is <profile dir>/security/ipcontroller-status.url (profile NULL or ""
 * means "default"); no environment variable applies. With PLX_CLIENT_ROLE_TASK the
 * connection file is <profile dir>/security/ipcontroller-tc.url, and when
 * url_or_file is "" and no profile is named, $PLEXA_TASK_URL (not
 * $PLEXA_URL, which holds the multi-engine capability) is used if set.
 * The task interface's requests (TaskSubmit, TaskWait, ...) go through the
 * request layer (plexa._native); the blocking calls below are for the
 * multi-engine interface, except plx_client_get_ids, which both serve.
 */
PLX_API plx_client_t *plx_client_connect_role(const char *url_or_file, const char *profile,
                                              plx_client_role_t role, double timeout_s,
                                              plx_err_t *err);

/*
 * Close the connection, stop the I/O thread and free the client. Requests
 * still waiting fail with PLX_ECLOSED. NULL-safe; sets *c to NULL.
 */
PLX_API void plx_client_destroy(plx_client_t **c);

/*
 * Deadline, in seconds, for each blocking call below (get_ids, execute);
 * < 0 (the default) waits as long as the connection lives. A call that
 * times out returns PLX_ETIMEDOUT; its late reply is discarded.
 */
PLX_API void plx_client_set_timeout(plx_client_t *c, double timeout_s);

/* "HOST:PORT" of the controller, for messages. Valid while c lives. */
PLX_API const char *plx_client_peer(const plx_client_t *c);

/*
 * Ids of the registered engines, ascending. On PLX_OK *ids is a malloc'd
 * array of *n ids (NULL when *n is 0) that the caller frees with free().
 */
PLX_API int plx_client_get_ids(plx_client_t *c, int32_t **ids, size_t *n, plx_err_t *err);

/* Which engines a request goes to: all registered engines, or ids[0..n). */
typedef struct plx_targets {
    int            all;   /* non-zero: every engine; ids and n are ignored */
    const int32_t *ids;
    size_t         n;
} plx_targets_t;

/* One engine's outcome of an execute (IPython 0.10's result dict). All
 * strings are NUL-terminated and owned by the enclosing plx_results_t. */
typedef struct plx_engine_result {
    int32_t engine_id;
    int32_t number;        /* the engine's In [n] counter */
    char   *input;         /* the code as the engine ran it; never NULL */
    char   *stdout_text;   /* captured stdout; never NULL, may be "" */
    char   *stderr_text;   /* captured stderr; never NULL, may be "" */
    char   *ename;         /* exception type name; NULL when nothing was raised */
    char   *evalue;        /* str(exception); NULL iff ename is NULL */
    char   *traceback;     /* formatted remote traceback; NULL iff ename is NULL */
} plx_engine_result_t;

/* One result per target engine, in target order. */
typedef struct plx_results {
    size_t               n;
    plx_engine_result_t *r;
} plx_results_t;

/*
 * Run Python source code on the target engines (t NULL: all engines) and
 * wait for every engine's result. Returns PLX_OK with *out set (the caller
 * frees it with plx_results_destroy) even when code raised on some
 * engines: check r[i].ename. An engine that died while running the request
 * reports ename "EngineError". Fails with PLX_EBADENGINE, PLX_ENOENGINES,
 * PLX_ECONNECT, PLX_ETIMEDOUT, ... (see above) and *out NULL.
 */
PLX_API int plx_client_execute(plx_client_t *c, const plx_targets_t *t, const char *code,
                               plx_results_t **out, plx_err_t *err);

/* Free results from plx_client_execute. NULL-safe; sets *r to NULL. */
PLX_API void plx_results_destroy(plx_results_t **r);

#ifdef __cplusplus
}
#endif
#endif
