/*
 * Internal to core/engine: the state the two engine threads share.
 *
 * Threads and what they own:
 *  - the Python thread (the process's main thread) owns the interpreter:
 *    it holds the GIL except while it waits on `cv` for the next request;
 *  - the I/O thread owns the libev loop, the connection and its watchers,
 *    and never touches Python (not even the GIL), so heartbeats are
 *    answered while Python is busy in a long C call.
 * Everything between them goes through `mu`: requests and registration
 * news towards Python (signalled on `cv`), replies towards the loop
 * (signalled with the `wake` ev_async), exported buffers whose last
 * reference the I/O thread dropped (`deferred`, released by Python).
 *
 * Files:
 *   plx_engine.c            the engine's life, on the Python thread
 *   plx_engine_io.c         the I/O thread: connection, registration,
 *                           heartbeats, requests in, replies out,
 *                           reconnecting
 *   plx_engine_interrupt.c  interrupts and steals (I/O thread)
 *   plx_engine_signals.c    SIGINT/SIGTERM, the wake signal, fork
 *   plx_engine_serve.c      serving one request (Python thread)
 *   plx_engine_py.c         the interpreter
 *   plx_engine_hide.c       covering the profiles' secrets
 *   plx_engine_cli.c        ipengine's command line
 *   plx_engine_host.c       plexa._enginehost, the engine inside python3
 */
#ifndef PLX_ENGINE_INT_H
#define PLX_ENGINE_INT_H

#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "plexa.pb-c.h"
#include "plexa/transport.h"
#include "plx_conn.h"
#include "plx_engine.h"
#include "plx_pyvalue.h"
#include "plx_strbuf.h"
#include "plx_url.h"

/* Sent by the I/O thread to the Python thread to break a blocking system
 * call when it interrupts running code. A real-time signal: user code is
 * unlikely to use it, and it is never merged with a user's SIGINT. */
#define PLX_ENGINE_WAKE_SIGNAL (SIGRTMIN + 3)

/* A request received from the controller, waiting for the Python thread. */
typedef struct plx_engine_req {
    Plexa__Envelope        *env;   /* unpacked envelope (owned) */
    plx_msg_t              *msg;   /* its frame: the payload buffers (owned) */
    uint64_t                session;      /* the connection it came on */
    struct plx_relay       *relay;        /* its fetch is passed on (a broadcast tree) */
    struct plx_engine_req  *next;
} plx_engine_req_t;

/* A packed reply waiting for the I/O thread. */
typedef struct plx_engine_out {
    plx_msg_t              *msg;
    struct plx_engine_out  *next;
} plx_engine_out_t;

typedef struct plx_engine {
    /* set before the I/O thread starts, read-only afterwards */
    plx_engine_opts_t        opts;
    plx_url_t                url;
    char                     url_shown[300];   /* scheme://host:port, no token */
    const plx_transport_ops *ops;
    struct plx_tunnel       *tunnel;           /* --enginessh: the ssh tunnel url goes through */
    struct plx_serve        *peers;            /* direct transfers (plx_engine_peer.c) */
    struct plx_relay        *relay_next;       /* I/O thread: the next push's relay */
    pthread_t                py_thread;
    pid_t                    pid;              /* the engine process (not a fork of it) */
    pthread_t                io_thread;
    int                      io_started;
    atomic_uint_fast64_t     next_id;          /* envelope ids; 1 is the Hello */

    /* I/O thread only */
    struct ev_loop          *loop;
    plx_conn_t              *conn;
    ev_async                 wake;         /* replies queued or io_stop set */
    ev_async                 sig;          /* SIGINT/SIGTERM arrived */
    ev_timer                 reg_timer;    /* registration deadline */
    ev_timer                 watchdog;     /* controller silence */
    ev_timer                 keepalive;    /* unsolicited heartbeats, see plx_engine_io.c */
    ev_timer                 retry;        /* reconnect attempts, see plx_engine_io.c */
    plx_conn_t              *old_conn;     /* a lost connection, destroyed by the retry timer */
    double                   reconnect_s;  /* 0: never reconnect */
    ev_tstamp                reconnect_deadline;   /* 0: connected (not reconnecting) */
    int                      ever_welcomed;
    char                     secret[72];   /* the first Welcome's: proves our id on a comeback */
    int                      hello_pending;   /* connected, Hello waits for Python */
    char                     lost_why[PLX_ERR_MSG_MAX];   /* why the last connection went */
    double                   hb_period;    /* the controller's heartbeat period (s), 0: none */
    ev_tstamp                last_rx;
    double                   silence_s;    /* 0: watchdog off */
    uint64_t                 wd_bytes;     /* bytes received at the last watchdog check */
    ev_tstamp                wd_progress;  /* when the watchdog last saw them grow */
    int                      welcomed;
    int                      conn_closed;  /* on_close ran; conn kept until the end */

    /* shared, under mu */
    pthread_mutex_t          mu;
    pthread_cond_t           cv;
    plx_engine_req_t        *req_head, *req_tail;
    plx_engine_out_t        *out_head, *out_tail;
    plx_pyexport_t          *deferred;
    int                      opened;         /* transport connected */
    int                      py_ready;       /* Python started: the Hello may go */
    int                      registered;     /* Welcome received */
    int32_t                  engine_id;
    int                      refused;        /* Reject received: reason in why */
    int                      closed;         /* connection gone: code and why */
    int                      close_code;
    char                     why[PLX_ERR_MSG_MAX];
    int                      stop_signal;    /* SIGINT/SIGTERM number, 0 if none */
    int                      busy;           /* Python is running a request */
    atomic_int               interrupt_wanted;  /* set with mu held; read by the wake
                                                 * signal's handler, see
                                                 * plx_engine_interrupt.c */
    uint64_t                 running_task;   /* the TaskRun it runs, 0 if none */
    uint64_t                 running_req;    /* the envelope id of the request it runs */
    uint64_t                 session;        /* bumped when a connection is lost */
    int                      id_news;        /* a re-registration changed engine_id */
    int                      shutting_down;  /* a shutdown was served: no reconnect */
    int                      io_stop;        /* Python thread asks the loop to finish */

    /* live output (plx_engine_output.c), under omu; the timer is the I/O thread's */
    pthread_mutex_t          omu;
    plx_strbuf_t             live[2];         /* stdout, stderr not yet sent */
    size_t                   live_dropped[2]; /* bytes left out since the last send */
    uint64_t                 live_req;        /* the request printing (envelope id), 0: none */
    uint64_t                 live_task;       /* ... the task it runs, 0: not a task */
    uint64_t                 live_session;
    ev_timer                 live_timer;

    /* Python thread only */
    PyObject                *fn_execute, *fn_push, *fn_pull, *fn_call, *fn_task, *fn_set_id;
    PyObject                *fn_setup_mpi, *fn_can_finalize, *fn_warm_up;
    int                      warmed;      /* warm_up() ran, once idle (plx_engine.c) */
    int                      hosted;      /* running inside python3 (plexa._enginehost) */
    int                      owns_python; /* we initialized Python, so we finalize it */
    struct sigaction         old_int, old_term, old_wake;
    int                      handlers_set;
} plx_engine_t;

/* A new envelope id (both threads). */
/* The id the controller gave this engine; any thread. */
static inline int32_t plx_engine_id(plx_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    int32_t id = e->engine_id;
    pthread_mutex_unlock(&e->mu);
    return id;
}

static inline uint64_t plx_engine_next_id(plx_engine_t *e)
{
    return atomic_fetch_add(&e->next_id, 1);
}

/* ---- plx_engine_peer.c: direct transfers between engines --------------- */

/* Before the I/O thread starts / after it ended. */
int  plx_engine_peer_init(plx_engine_t *e);
void plx_engine_peer_fini(plx_engine_t *e);
/* I/O thread: start listening when asked; close everything at the end. */
void plx_engine_peer_on_wake(plx_engine_t *e);
void plx_engine_peer_io_stop(plx_engine_t *e);
/* Python thread: serve *msg (an EngineReply frame; taken on success) to
 * the peers presenting tickets[0..n), each once. Its URL (token all
 * zeros) in url. PLX_ENOTFOUND (with why) when this engine has no
 * endpoint other engines can reach: the caller answers with the values.
 * ttl_s > 0 drops the offer after that long even if tickets are left. */
int  plx_engine_peer_offer(plx_engine_t *e, char *const *tickets, size_t n, double ttl_s,
                           plx_msg_t **msg, char *url, size_t url_len, plx_err_t *err);
/* Any thread: the controller ended these tickets (ServeEnd). */
void plx_engine_peer_end(plx_engine_t *e, char *const *tickets, size_t n);
/* Python thread, without the GIL: the frame served at url (its token the
 * ticket), within timeout_s, passed on to tee as it arrives (NULL: no). */
int  plx_engine_peer_fetch(const char *url, double timeout_s, struct plx_relay *tee,
                           plx_msg_t **msg, Plexa__Envelope **env, plx_err_t *err);
/* I/O thread: a Pull with relay set (a broadcast tree) is answered here,
 * at once: 1; anything else 0. */
int  plx_engine_relay_pull(plx_engine_t *e, const Plexa__Envelope *env);
/* I/O thread: the relay a push of refs passes on as its fetch arrives
 * (the Python thread's, from now on), or NULL. */
struct plx_relay *plx_engine_relay_claim(plx_engine_t *e, const Plexa__Envelope *env);
/* I/O thread: a relay still waiting for its push never gets it. */
void plx_engine_relay_drop(plx_engine_t *e);

/* ---- plx_engine_output.c: live output ----------------------------------- */

/* The mutex and timer (before the I/O thread starts); 0 or an errno. */
int  plx_engine_output_init(plx_engine_t *e);
void plx_engine_output_fini(plx_engine_t *e);
/* Python thread: the request req_id (running task task_id, or 0) of
 * connection session starts printing (output goes to it live), and has ended (the rest is posted, before the
 * caller posts the reply). */
void plx_engine_output_begin(plx_engine_t *e, uint64_t req_id, uint64_t task_id,
                             uint64_t session);
void plx_engine_output_end(plx_engine_t *e);
/* Python thread: n bytes of UTF-8 written to stdout (0) or stderr (1). */
void plx_engine_output_write(plx_engine_t *e, int stream, const char *s, size_t n);
/* Python thread: display data (JSON {"data": ..., "metadata": ...}, a C
 * string) of the running request, after what it printed so far. 1 when
 * sent; 0 when no request takes live output (a task): the caller shows its
 * text instead. */
int  plx_engine_output_display(plx_engine_t *e, const char *json);
/* I/O thread, on every wake: send a full chunk, or arm the timer. */
void plx_engine_output_on_wake(plx_engine_t *e);

/* ---- plx_engine_capture.c: sys.stdout/sys.stderr during a request ------- */

/* Add the Capture type to the _plexa_engine module. 0 or -1 (exception set). */
int  plx_engine_capture_module_init(PyObject *m);
/* Live captures feed e from now on (NULL: none; before e goes away). */
void plx_engine_capture_attach(plx_engine_t *e);

/* ---- plx_engine_io.c: the I/O thread ------------------------------------ */

/* Create the loop and its watchers (before the thread and the signal
 * handlers exist). PLX_ENOMEM on failure. */
int plx_engine_io_init(plx_engine_t *e, plx_err_t *err);

/* Start the I/O thread: it connects and sends the Hello. */
int plx_engine_io_start(plx_engine_t *e, plx_err_t *err);

/* Ask the loop to flush queued replies, close and finish; join the thread
 * and free the loop. Safe if never started. */
void plx_engine_io_stop(plx_engine_t *e);

/* Python is up: let the Hello go (the engine registers only once it can
 * serve; the connection itself is made while Python starts). */
void plx_engine_io_python_ready(plx_engine_t *e);

/* Queue a packed reply to a request of connection `session` (takes
 * ownership) and wake the loop. A reply for a connection that has been
 * lost since is dropped: the controller has failed that request already. */
void plx_engine_io_post(plx_engine_t *e, plx_msg_t *m, uint64_t session);

/* Pack and send env on the connection (dropped when there is none). */
void plx_engine_io_send(plx_engine_t *e, const Plexa__Envelope *env);

/* ---- plx_engine_interrupt.c: interrupts and steals (I/O thread) --------- */

/* Interrupt running user code, if any (mu held): see the file. */
void plx_engine_interrupt_if_busy_locked(plx_engine_t *e);

/* Interrupt{task_id, request_id}: what runs, or a request still queued. */
void plx_engine_io_interrupt(plx_engine_t *e, uint64_t task_id, uint64_t request_id);

/* TaskSteal: give back the named tasks that have not started. */
void plx_engine_io_steal(plx_engine_t *e, const Plexa__Envelope *env);

/* ---- plx_engine_signals.c: signals and fork ----------------------------- */

/* The connection's fd, for closing it in forked children; -1 if none. */
extern atomic_int plx_engine_conn_fd;

/* Install SIGINT/SIGTERM handlers that wake the loop; the first signal
 * asks for a clean stop and restores the default action, so a second one
 * ends the process at once. */
void plx_engine_signals_install(plx_engine_t *e);
void plx_engine_signals_restore(plx_engine_t *e);

/* The loop's side of a SIGINT/SIGTERM (the `sig` ev_async): stop. */
void plx_engine_sig_cb(struct ev_loop *loop, ev_async *w, int revents);

/* ---- plx_engine_hide.c -------------------------------------------------- */

/* Cover every profile's security/ directory (other capabilities' tokens,
 * the controller's key) for this process, for good: nested user and mount
 * namespaces. Call while single-threaded, after the URL is read. PLX_OK
 * (also when there is nothing to hide), or PLX_EDECLINED when the kernel
 * does not allow it (err says why; the process is unchanged). */
int plx_engine_hide_secrets(plx_err_t *err);

/* ---- plx_engine_py.c: the interpreter ----------------------------------- */

/* Start CPython (main thread), set sys.path, import plexa._engine. On
 * return the calling thread holds the GIL. */
int plx_engine_py_init(plx_engine_t *e, plx_err_t *err);

/* Finalize the interpreter if nothing would block it. */
void plx_engine_py_fini(plx_engine_t *e);

/* Set `id` in __main__ to the engine id; run --mpi set-up if asked. */
int plx_engine_py_registered(plx_engine_t *e, int32_t engine_id, plx_err_t *err);

/* Serve one request (GIL held): post its reply. Returns 1 when the
 * request asks the engine to stop (its reply is posted first), else 0. */
int plx_engine_py_serve(plx_engine_t *e, const plx_engine_req_t *r);

/* Give back exports whose release the I/O thread deferred (GIL held). */
void plx_engine_release_exports(plx_pyexport_t *list);

void plx_engine_req_free(plx_engine_req_t *r);

#endif
