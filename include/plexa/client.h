/*
 * plexa C client: talk to a plexa controller from C, as IPython 0.10's
 * MultiEngineClient and TaskClient do from Python.
 *
 *     plx_err_t err = {0};
 *     plx_client_t *c = plx_client_connect("", NULL, 10.0, &err);   // default profile
 *     if (!c) { fprintf(stderr, "%s\n", err.msg); return 1; }
 *     plx_results_t *res = NULL;
 *     if (plx_client_execute(c, NULL, "a = 10", &res, &err) == PLX_OK) {
 *         for (size_t i = 0; i < res->n; i++)
 *             printf("[%d] In [%d]: %s\n", res->r[i].engine_id, res->r[i].number,
 *                    res->r[i].input);
 *         plx_results_destroy(&res);
 *     }
 *     double x[3] = {1, 2, 3};
 *     size_t shape[1] = {3};
 *     plx_value_t *v = plx_value_array(PLX_DTYPE_FLOAT64, 1, shape, x);  // numpy on the engines
 *     const char *name = "x";
 *     plx_client_push(c, NULL, &name, (const plx_value_t *const *)&v, 1, &err);
 *     plx_value_destroy(&v);
 *     plx_client_destroy(&c);
 *
 * What is here: connecting (URL, connection file or profile; TLS
 * certificate pinning comes with the URL's #sha256= fingerprint), engine
 * ids, execute, values (plx_value_t: the wire's language-neutral values,
 * numpy arrays included), push / pull / scatter / gather, StringTasks on
 * the task interface, and non-blocking variants whose completion can be
 * waited for, polled, or delivered as a callback on the caller's libev
 * loop. examples/c/ has complete programs.
 *
 * Link with -lplexa: `pkg-config --cflags --libs plexa`, or in CMake
 * `find_package(plexa)` and the target plexa::plexa. A process may hold
 * any number of clients. Each client owns one I/O thread ("plexa-io")
 * that runs the connection; every function below may be called from any
 * thread, concurrently, on the same client -- except plx_client_destroy,
 * which must not race with other calls on that client. Nothing here calls
 * exit() or prints.
 *
 * Process-wide, shared by all clients: received payloads of 8 MiB and more
 * come from a pool of freed blocks (at most 512 MiB kept, each returned to
 * the system after 2 s unused, all of them when the last client is
 * destroyed), so that pulling large arrays in a loop reuses memory. A
 * blocking call spins on its CPU for up to 1 ms before it sleeps, while
 * the calling thread's recent calls were that fast (a wake-up across CPUs
 * costs more than most replies take); PLEXA_SPIN_US sets the limit in
 * microseconds, 0 turns it off.
 *
 * Errors: functions return PLX_OK (0) or a negative PLX_E* code from
 * plexa/error.h, and fill the caller's plx_err_t (may be NULL) with a
 * message naming what went wrong. Codes a client sees:
 *   PLX_ECONNECT    the controller cannot be reached, or the connection was
 *                   lost; every pending and later request on the client
 *                   fails with it (the message names HOST:PORT). Make a new
 *                   client to reconnect.
 *   PLX_EAUTH       the controller refused the capability token, or its
 *                   certificate does not match the pinned fingerprint.
 *   PLX_EBADENGINE  a target is not a registered engine id.
 *   PLX_ENOENGINES  no engines are registered.
 *   PLX_EREMOTE     Python code raised on an engine where the call cannot
 *                   report it per engine (push, pull, tasks); the message
 *                   names the engine and the exception.
 *   PLX_ETIMEDOUT   a wait passed its deadline (see plx_client_set_timeout).
 *   PLX_ENOTFOUND, PLX_EINVAL  bad URL, missing connection file or plugin,
 *                   bad argument (the message says which).
 *   PLX_ECLOSED     the client was destroyed while the request waited.
 * For execute, a Python exception raised on an engine is not an error of
 * the call: it is reported per engine in plx_engine_result_t.ename/evalue/
 * traceback.
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
 * A task client serves plx_client_get_ids and the task calls
 * (plx_client_task_*); a multi-engine client everything else.
 */
PLX_API plx_client_t *plx_client_connect_role(const char *url_or_file, const char *profile,
                                              plx_client_role_t role, double timeout_s,
                                              plx_err_t *err);

/*
 * plx_client_connect_role through an ssh server (a login node): the
 * controller's address in the URL is reached from sshserver
 * ("[user@]host[:port]") through a port forwarded by the system's OpenSSH
 * (`ssh -N -L`, the user's own ssh config and agent, BatchMode; the
 * command is $PLEXA_SSH, else ssh), with the private key sshkey (NULL:
 * ssh's defaults). TLS, its pinning and the token stay end to end: ssh
 * carries ciphertext. The tunnel lives as long as the client. A tunnel
 * that cannot be made fails within timeout_s with ssh's own words
 * (PLX_ECONNECT), never with a prompt. sshserver NULL or "": as
 * plx_client_connect_role.
 */
PLX_API plx_client_t *plx_client_connect_ssh(const char *url_or_file, const char *profile,
                                             plx_client_role_t role, const char *sshserver,
                                             const char *sshkey, double timeout_s,
                                             plx_err_t *err);

/*
 * Close the connection, stop the I/O thread and free the client. Requests
 * still waiting fail with PLX_ECLOSED. NULL-safe; sets *c to NULL.
 */
PLX_API void plx_client_destroy(plx_client_t **c);

/*
 * Deadline, in seconds, for each blocking call below (get_ids, execute,
 * push, pull, scatter, gather, task submission, blocking task results);
 * < 0 (the default) waits as long as the connection lives. A call that
 * times out returns PLX_ETIMEDOUT; its late reply is discarded.
 */
PLX_API void plx_client_set_timeout(plx_client_t *c, double timeout_s);

/*
 * Direct transfers (on by default; off through an ssh tunnel): pulls and
 * gathers fetch values of 8 MiB or more from each engine that serves them
 * (TLS, a one-time ticket from the controller), and plx_client_scatter's
 * pieces of 8 MiB or more are fetched by each engine from this client,
 * not sent through the controller. An engine that cannot be reached gets
 * its values through the controller instead, and so does everything
 * after. on 0 turns them off.
 */
PLX_API void plx_client_set_direct(plx_client_t *c, int on);

/* "HOST:PORT" of the controller, for messages. Valid while c lives. */
PLX_API const char *plx_client_peer(const plx_client_t *c);

/*
 * 1 when c reached the controller through its shm listener (same host,
 * same user; see docs/shared-memory.md): payloads of 256 KiB and more
 * then move through shared memory, and what pulls return views it
 * copy-on-write. 0 over TCP or TLS.
 */
PLX_API int plx_client_uses_shm(const plx_client_t *c);

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

/* ======================================================================
 * Values: what push, pull, scatter, gather and tasks carry.
 *
 * A plx_value_t is an opaque, immutable value in the wire's language-
 * neutral form, the same one plexa's Python client uses (see
 * python/plexa/_serialize.py): on an engine an ARRAY is a numpy.ndarray of
 * the same dtype and shape, a LIST a Python list (or tuple), a STR a str,
 * BYTES bytes, I64 an int, F64 a float, BOOL a bool, NONE None. Values
 * that have no such form on the engine (dicts, class instances, ...)
 * arrive as PLX_VALUE_PICKLE: opaque pickle bytes C can keep or send back.
 *
 * Ownership: constructors return a value the caller owns and frees with
 * plx_value_destroy (NULL on ENOMEM or bad arguments). Functions that take
 * values (push, scatter, task submission) only read them; the library
 * takes its own references to payloads it still needs, so the caller may
 * destroy its values as soon as the call returns, even for non-blocking
 * calls. Values are immutable once built (except plx_value_list_append
 * while building), so they may be shared between threads.
 * ====================================================================== */

typedef struct plx_value plx_value_t;

typedef enum plx_value_kind {
    PLX_VALUE_NONE   = 0,
    PLX_VALUE_BOOL   = 1,
    PLX_VALUE_I64    = 2,
    PLX_VALUE_F64    = 3,
    PLX_VALUE_STR    = 4,   /* UTF-8, NUL-terminated, no NUL inside */
    PLX_VALUE_BYTES  = 5,
    PLX_VALUE_ARRAY  = 6,   /* n-dimensional array (numpy.ndarray) */
    PLX_VALUE_LIST   = 7,   /* list or tuple of values */
    PLX_VALUE_PICKLE = 8,   /* a Python object C cannot read: its pickle */
    PLX_VALUE_REF    = 9,   /* another engine's value by name: plx_value_ref */
} plx_value_kind_t;

/* Array element types: numpy's dtypes of the same names, native
 * (little-endian) byte order. PLX_DTYPE_OTHER is a received array of any
 * other dtype: plx_value_array_dtype_str names it ("<c16", ">f8", ...). */
typedef enum plx_dtype {
    PLX_DTYPE_OTHER   = 0,
    PLX_DTYPE_FLOAT64 = 1,   /* "<f8", double */
    PLX_DTYPE_FLOAT32 = 2,   /* "<f4", float */
    PLX_DTYPE_INT64   = 3,   /* "<i8", int64_t */
    PLX_DTYPE_INT32   = 4,   /* "<i4", int32_t */
    PLX_DTYPE_UINT8   = 5,   /* "|u1", uint8_t */
} plx_dtype_t;

/* Deepest array rank accepted (numpy's limit). */
#define PLX_ARRAY_MAX_NDIM 32

/* Bytes per element of dtype; 0 for PLX_DTYPE_OTHER. */
PLX_API size_t plx_dtype_size(plx_dtype_t dtype);
/* numpy's name of dtype ("float64", ...); "other" for PLX_DTYPE_OTHER. */
PLX_API const char *plx_dtype_name(plx_dtype_t dtype);
/* "none", "bool", "i64", "f64", "str", "bytes", "array", "list", "pickle",
 * "ref". */
PLX_API const char *plx_value_kind_name(plx_value_kind_t kind);

/* ---- constructors (caller owns the result; NULL on failure) ---------- */

PLX_API plx_value_t *plx_value_none(void);
PLX_API plx_value_t *plx_value_bool(int b);
PLX_API plx_value_t *plx_value_i64(int64_t i);
PLX_API plx_value_t *plx_value_f64(double d);
/* A copy of the NUL-terminated UTF-8 string s (NULL if s is NULL). */
PLX_API plx_value_t *plx_value_str(const char *s);
/* A copy of len bytes at data (data may be NULL when len is 0). */
PLX_API plx_value_t *plx_value_bytes(const void *data, size_t len);
/*
 * The value named key on engine `engine`, by reference (Python's
 * plexa.ref): given to plx_client_push as one of the pushed values, the
 * controller fetches it from that engine and the targets receive the value
 * itself, without it passing through this client (on one host, by shared
 * memory descriptor). Valid only as a pushed value itself: inside a list,
 * or in any other request, the engine that receives it refuses it. The
 * push fails on every target with the source's error (NameError for an
 * unknown key) if the fetch fails. NULL if key is NULL or empty.
 */
PLX_API plx_value_t *plx_value_ref(int32_t engine, const char *key);

/*
 * An array of dtype with ndim dimensions of sizes shape[0..ndim), holding
 * a copy of data (C order: the last index varies fastest; the product of
 * the shape times plx_dtype_size(dtype) bytes). ndim 0 is a scalar array
 * of one element. NULL for PLX_DTYPE_OTHER, ndim > PLX_ARRAY_MAX_NDIM, a
 * size that overflows, or ENOMEM.
 */
PLX_API plx_value_t *plx_value_array(plx_dtype_t dtype, size_t ndim, const size_t *shape,
                                     const void *data);

/* Releases memory lent to plx_value_array_borrow. */
typedef void (*plx_release_fn)(void *data, void *ctx);

/*
 * A zero-copy array over the caller's memory: nothing is copied, now or
 * when the value is sent (its bytes are written to the socket straight
 * from data). The memory must stay valid and unchanged until
 * release(data, ctx) runs, which happens exactly once, when the value is
 * destroyed and the library no longer needs the bytes -- possibly later
 * than plx_value_destroy and on the client's I/O thread, so release must
 * be thread-safe and quick. release may be NULL (memory outlives the
 * client). On failure (NULL) release is not called.
 */
PLX_API plx_value_t *plx_value_array_borrow(plx_dtype_t dtype, size_t ndim, const size_t *shape,
                                            void *data, plx_release_fn release, void *ctx);

/* An empty list (a Python list), or tuple (a Python tuple). */
PLX_API plx_value_t *plx_value_list(void);
PLX_API plx_value_t *plx_value_tuple(void);
/*
 * Append *item to list, taking ownership of it: on PLX_OK *item is NULL.
 * PLX_EINVAL if list is not a list or *item is list itself, PLX_ENOMEM
 * (the caller still owns *item on failure). Only while the list is being
 * built, by one thread.
 */
PLX_API int plx_value_list_append(plx_value_t *list, plx_value_t **item);

/* Free v (NULL-safe) and set *v to NULL. Payload memory shared with
 * requests in flight is freed when they are done with it. */
PLX_API void plx_value_destroy(plx_value_t **v);

/* ---- accessors ------------------------------------------------------- */

PLX_API plx_value_kind_t plx_value_kind(const plx_value_t *v);
/* PLX_OK and *out, or PLX_EINVAL when v is of another kind. as_f64 also
 * converts an I64, as_i64 does not convert an F64. as_bool takes a BOOL. */
PLX_API int plx_value_as_bool(const plx_value_t *v, int *out);
PLX_API int plx_value_as_i64(const plx_value_t *v, int64_t *out);
PLX_API int plx_value_as_f64(const plx_value_t *v, double *out);
/* The string of a STR value (valid while v lives), or NULL. */
PLX_API const char *plx_value_as_str(const plx_value_t *v);
/* The bytes of a BYTES value and their count (valid while v lives), or
 * NULL with *len 0. */
PLX_API const void *plx_value_as_bytes(const plx_value_t *v, size_t *len);

/* Arrays (all return 0 / NULL for a value that is not an ARRAY). Received
 * arrays are views of the received memory: no copy is made. */
PLX_API plx_dtype_t plx_value_array_dtype(const plx_value_t *v);
/* numpy's dtype.str of the array ("<f8", "|u1", ...). */
PLX_API const char *plx_value_array_dtype_str(const plx_value_t *v);
PLX_API size_t plx_value_array_ndim(const plx_value_t *v);
/* ndim sizes; valid while v lives (NULL for ndim 0). */
PLX_API const size_t *plx_value_array_shape(const plx_value_t *v);
/* Number of elements (product of the shape). */
PLX_API size_t plx_value_array_size(const plx_value_t *v);
PLX_API size_t plx_value_array_nbytes(const plx_value_t *v);
/* 1 when the data is in Fortran order (first index fastest), else 0. */
PLX_API int plx_value_array_fortran(const plx_value_t *v);
/* The elements; valid while v lives. Suitably aligned for the dtype. */
PLX_API const void *plx_value_array_data(const plx_value_t *v);

/* Lists: the number of items, and item i (borrowed: valid while the list
 * lives; NULL when out of range or not a list). */
PLX_API size_t plx_value_list_len(const plx_value_t *v);
PLX_API const plx_value_t *plx_value_list_get(const plx_value_t *v, size_t i);
/* 1 for a tuple, 0 for a list (or another kind). */
PLX_API int plx_value_list_is_tuple(const plx_value_t *v);

/* The pickle stream of a PICKLE value (valid while v lives), or NULL. The
 * value may also hold protocol-5 out-of-band buffers, which are sent back
 * with it when it is pushed. */
PLX_API const void *plx_value_pickle(const plx_value_t *v, size_t *len);

/*
 * A short Python-like description of v for messages and debugging:
 * "[1, 2.5, 'x', (None,)]", "array(dtype='<f8', shape=(3, 4))",
 * "<12 bytes>", "<pickle, 40 bytes>" (array and byte contents are not
 * shown). Writes at most size bytes including the NUL, like snprintf, and
 * returns the length the whole text needs (so a return >= size means it
 * was cut).
 */
PLX_API size_t plx_value_repr(const plx_value_t *v, char *buf, size_t size);

/* ======================================================================
 * Moving values to and from engines (multi-engine interface).
 * ====================================================================== */

/* One engine's answer to a pull. */
typedef struct plx_engine_values {
    int32_t       engine_id;
    size_t        n;           /* one value per pulled name; 0 when the pull raised */
    plx_value_t **values;      /* owned by the enclosing plx_pulled_t */
    char         *ename;       /* NULL, or the exception the engine raised ... */
    char         *evalue;      /* ... str(exception) ... */
    char         *traceback;   /* ... and its remote traceback */
} plx_engine_values_t;

/* One entry per target engine, in target order. */
typedef struct plx_pulled {
    size_t               n;
    plx_engine_values_t *r;
} plx_pulled_t;

/* Free a plx_pulled_t (NULL-safe; sets *p to NULL). */
PLX_API void plx_pulled_destroy(plx_pulled_t **p);

/*
 * Assign names[i] = values[i] (i < n) in the namespace of each target
 * engine (t NULL: all), IPython's mec.push(dict(...)), and wait until
 * every engine has them. values are only read. Returns PLX_OK; PLX_EINVAL
 * (NULL or empty name, NULL value); PLX_EREMOTE when an engine raised (the
 * message names the engine and the exception); or the request errors of
 * plx_client_execute.
 */
PLX_API int plx_client_push(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                            const plx_value_t *const *values, size_t n, plx_err_t *err);

/*
 * Fetch names[0..n) from each target engine (t NULL: all). On PLX_OK *out
 * holds one plx_engine_values_t per engine, each with n values in the
 * order of names; the caller frees it with plx_pulled_destroy. When an
 * engine raised (a name is not defined), returns PLX_EREMOTE with a
 * message such as "pull: engine 1 raised NameError: name 'x' is not
 * defined" and *out still set: that engine's entry has ename and no
 * values, the others have theirs. Other failures leave *out NULL.
 */
PLX_API int plx_client_pull(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                            size_t n, plx_pulled_t **out, plx_err_t *err);

/*
 * Partition value along its first axis over the target engines (t NULL:
 * all registered engines, in id order) and push each engine its part as
 * name: IPython 0.10's mec.scatter with the block distribution of
 * plexa/_map.py (k engines, len items: the first len % k engines get
 * len / k + 1 items, the others len / k). value is an ARRAY of at least
 * one dimension in C order (each engine gets an array of the same dtype
 * and trailing shape; no data is copied) or a LIST (each engine gets a
 * list). PLX_EINVAL for other values.
 */
PLX_API int plx_client_scatter(plx_client_t *c, const plx_targets_t *t, const char *name,
                               const plx_value_t *value, plx_err_t *err);

/*
 * Pull name from the target engines (t NULL: all, in id order: the order
 * scatter deals the parts in) and join
 * the parts, the inverse of scatter: arrays (same dtype and trailing
 * shape) are concatenated along their first axis into one C-order array,
 * lists and tuples into one list. Any other kind of part gives a list of
 * the parts (as 0.10's joinPartitions). *out is the caller's. Errors as
 * plx_client_pull (with *out NULL), and PLX_EINVAL for parts that cannot
 * be joined (the message says why).
 */
PLX_API int plx_client_gather(plx_client_t *c, const plx_targets_t *t, const char *name,
                              plx_value_t **out, plx_err_t *err);

/* Which items of len items engine p of k gets under the block partition:
 * [*lo, *lo + *count). For callers that partition their own data. */
PLX_API void plx_block_partition(size_t len, size_t k, size_t p, size_t *lo, size_t *count);

/* ======================================================================
 * Tasks (the load-balanced interface; connect with PLX_CLIENT_ROLE_TASK).
 * ====================================================================== */

/* The status of a task (proto/plexa.proto's TaskStatus). */
typedef enum plx_task_status {
    PLX_TASK_PENDING     = 0,
    PLX_TASK_OK          = 1,
    PLX_TASK_FAILED      = 2,   /* the code raised: ename/evalue/traceback */
    PLX_TASK_ABORTED     = 4,
    PLX_TASK_ENGINE_DIED = 5,
    PLX_TASK_TIMEOUT     = 6,   /* unmet dependencies for too long */
    PLX_TASK_EVICTED     = 7,   /* the result was dropped by retention */
    PLX_TASK_UNKNOWN     = 8,   /* no such task */
} plx_task_status_t;

/*
 * Queue IPython 0.10's StringTask(code, push=dict(push_names=push_values),
 * pull=pull_names) on the task interface: an engine chosen by the
 * scheduler assigns the pushed values, runs code (counted as an In [n]
 * cell, output captured) and sends back the pulled names. n_push /
 * n_pull may be 0 (arrays then NULL). On PLX_OK *task_id is the task's
 * id, for plx_client_task_result. Fails with PLX_EINVAL (no code, a NULL
 * or empty name, a NULL value, a client that is not a task client), or the
 * request errors above.
 */
PLX_API int plx_client_task_submit_string(plx_client_t *c, const char *code,
                                          const char *const *push_names,
                                          const plx_value_t *const *push_values, size_t n_push,
                                          const char *const *pull_names, size_t n_pull,
                                          uint64_t *task_id, plx_err_t *err);

/* The outcome of a task. Strings are NUL-terminated, owned by the
 * record; never NULL unless said. */
typedef struct plx_task_result {
    uint64_t          task_id;
    plx_task_status_t status;
    int32_t           engine_id;     /* -1 when no engine ran it */
    size_t            n;             /* pulled names and their values */
    char            **names;
    plx_value_t     **values;
    /* The pulled names as the engine sent them (a Python dict, pickled)
     * when C could not read them all (then n is 0), else NULL. */
    plx_value_t      *pulled_pickle;
    char             *stdout_text;
    char             *stderr_text;
    char             *ename;         /* NULL unless the task failed */
    char             *evalue;        /* NULL iff ename is NULL */
    char             *traceback;     /* NULL iff ename is NULL */
    double            submitted, started, completed;   /* unix times; 0 if unknown */
} plx_task_result_t;

/* The value pulled as name (borrowed from r), or NULL. */
PLX_API const plx_value_t *plx_task_result_get(const plx_task_result_t *r, const char *name);

/* Free a task result (NULL-safe; sets *r to NULL). */
PLX_API void plx_task_result_destroy(plx_task_result_t **r);

/*
 * The result of task task_id. block non-zero waits until the task is
 * finished (subject to plx_client_set_timeout); block 0 only asks. Returns
 *   PLX_OK        the task succeeded; *out is the caller's;
 *   PLX_EAGAIN    (block 0) not finished yet; *out NULL;
 *   PLX_EREMOTE   the code raised ("task 3: engine 0 raised NameError: ...");
 *   PLX_EENGINE, PLX_EABORTED, PLX_ETIMEDOUT, PLX_EEVICTED, PLX_ENOTFOUND
 *                 the task's engine died, it was aborted, its dependencies
 *                 were never met, its result was evicted, there is no
 *                 such task -- with *out set as well for these, holding
 *                 what is known (status, engine, output);
 *   other codes   the request failed; *out NULL.
 */
PLX_API int plx_client_task_result(plx_client_t *c, uint64_t task_id, int block,
                                   plx_task_result_t **out, plx_err_t *err);

/* ======================================================================
 * Non-blocking calls.
 *
 * The _nb variants send the request and return at once with a handle the
 * caller owns. Completion can be awaited (plx_pending_wait), polled
 * (plx_pending_poll), or delivered as a callback on the caller's own
 * libev loop (plx_pending_on_done). Once complete, read the outcome with
 * the plx_pending_* reader matching the call; each reader may be called
 * any number of times and returns the same as the blocking call would
 * have. Handles stay valid after their client is destroyed (they then
 * complete with PLX_ECLOSED). A handle may be waited on, polled and read
 * from several threads at once; destroying it must not race with those.
 * ====================================================================== */

typedef struct plx_pending plx_pending_t;

/* plx_client_execute, _push and _pull without waiting: the same arguments
 * and argument errors; on PLX_OK *out is a handle the caller owns
 * (plx_pending_destroy), on failure NULL. */
PLX_API int plx_client_execute_nb(plx_client_t *c, const plx_targets_t *t, const char *code,
                                  plx_pending_t **out, plx_err_t *err);
PLX_API int plx_client_push_nb(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                               const plx_value_t *const *values, size_t n, plx_pending_t **out,
                               plx_err_t *err);
PLX_API int plx_client_pull_nb(plx_client_t *c, const plx_targets_t *t, const char *const *names,
                               size_t n, plx_pending_t **out, plx_err_t *err);
/* Like plx_client_scatter; targets "all" (t NULL) are resolved with a
 * blocking get_ids first, since the partition depends on their number. */
PLX_API int plx_client_scatter_nb(plx_client_t *c, const plx_targets_t *t, const char *name,
                                  const plx_value_t *value, plx_pending_t **out, plx_err_t *err);
PLX_API int plx_client_gather_nb(plx_client_t *c, const plx_targets_t *t, const char *name,
                                 plx_pending_t **out, plx_err_t *err);
/* Always waits for the task to finish (the controller answers when it
 * is); the plx_client_set_timeout deadline does not apply. */
PLX_API int plx_client_task_result_nb(plx_client_t *c, uint64_t task_id, plx_pending_t **out,
                                      plx_err_t *err);

/*
 * Wait until p completes or timeout_s passes (< 0: no limit; 0: just
 * look). PLX_OK once complete (whatever the outcome: read it with the
 * reader), PLX_ETIMEDOUT while not.
 */
PLX_API int plx_pending_wait(plx_pending_t *p, double timeout_s, plx_err_t *err);

/* 1 when p has completed, 0 while not. Never blocks. */
PLX_API int plx_pending_poll(plx_pending_t *p);

/* The readers: the outcome of the call p was made by, as the blocking
 * call returns it. PLX_EAGAIN while p is pending; PLX_EINVAL when p was
 * made by another call. */
PLX_API int plx_pending_execute_results(plx_pending_t *p, plx_results_t **out, plx_err_t *err);
PLX_API int plx_pending_push_result(plx_pending_t *p, plx_err_t *err);
PLX_API int plx_pending_pull_results(plx_pending_t *p, plx_pulled_t **out, plx_err_t *err);
PLX_API int plx_pending_task_result(plx_pending_t *p, plx_task_result_t **out, plx_err_t *err);
PLX_API int plx_pending_scatter_result(plx_pending_t *p, plx_err_t *err);
PLX_API int plx_pending_gather_result(plx_pending_t *p, plx_value_t **out, plx_err_t *err);

struct ev_loop;

/* Runs on the thread of the libev loop given to plx_pending_on_done. */
typedef void (*plx_pending_cb)(plx_pending_t *p, void *ud);

/*
 * Call cb(p, ud) once p completes, from the caller's libev loop (never on
 * the client's I/O thread): the handle owns an ev_async watcher started on
 * loop, which the I/O thread signals. Call this from the thread that runs
 * loop (libev loops are not thread-safe), at most once per handle. If p
 * is already complete, cb runs on the next iteration of the loop. The
 * watcher keeps the loop alive (ev_run does not return) until cb has run.
 * cb may destroy p. Otherwise p must be destroyed in the loop's thread,
 * before the loop is destroyed. PLX_EINVAL for a second registration.
 */
PLX_API int plx_pending_on_done(plx_pending_t *p, struct ev_loop *loop, plx_pending_cb cb,
                                void *ud, plx_err_t *err);

/* Drop the handle (NULL-safe; sets *p to NULL). A pending request is
 * forgotten (its reply discarded), and a registered callback never runs. */
PLX_API void plx_pending_destroy(plx_pending_t **p);

#ifdef __cplusplus
}
#endif
#endif
