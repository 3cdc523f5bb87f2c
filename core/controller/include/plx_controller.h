/*
 * The controller: one libev loop that registers engines, authenticates
 * clients by capability token, fans multi-engine requests out through
 * per-engine FIFO queues and gathers the replies. It never runs user code
 * and never unpickles: payload buffers are forwarded by reference.
 */
#ifndef PLX_CONTROLLER_H
#define PLX_CONTROLLER_H

#include <ev.h>
#include <stdint.h>

#include "plexa/error.h"
#include "plx_frame.h"

typedef struct plx_controller plx_controller_t;

/* Task scheduling policies ([controller] scheduler in cluster.conf). */
enum {
    PLX_SCHED_ADAPTIVE  = 0,   /* prefetch by measured durations, work stealing */
    PLX_SCHED_FIFO      = 1,   /* engines take turns, task_inflight each */
    PLX_SCHED_LEASTLOAD = 2    /* the engine holding the fewest, task_inflight each */
};

typedef struct plx_controller_opts {
    const char  *profile;          /* profile name (connection files go there) */
    const char  *transport;        /* "tls" (default) or "tcp" */
    const char  *listen_host;      /* address to bind, e.g. 127.0.0.1 */
    uint16_t     port;             /* 0 = any */
    const char  *location;         /* host written into connection files (NULL = listen_host) */
    int          allow_insecure;   /* permit plaintext tcp on a non-loopback address */
    double       heartbeat_period; /* seconds between heartbeats to engines */
    int          heartbeat_misses; /* missed periods before an engine is declared dead */
    double       auth_timeout;     /* seconds a new connection has to send Hello */
    int          engine_inflight;  /* requests sent ahead to an engine (pipelining depth) */
    int          task_inflight;    /* adaptive: most tasks an engine holds ahead; fifo and
                                    * leastload: tasks each engine holds; 0 = the policy's
                                    * default (64 and 4) */
    int          scheduler;        /* PLX_SCHED_*: how tasks go to engines */
    uint64_t     results_max;      /* finished task results kept */
    uint64_t     results_max_bytes;/* bytes of finished task results kept */
    double       depend_timeout;   /* seconds a task may wait for an engine its depend() accepts */
    double       token_lifetime;   /* seconds mec/task/status tokens stay valid; 0 = forever */
    int          status_port;      /* the status page on 127.0.0.1: 0 any port, -1 off */
    int          shm;              /* also listen on the shm transport (same host, same user) */
    int          direct_transfers; /* refs' values go engine to engine (plx_mec_refs.c) */
    uint64_t     broadcast_min;    /* buffer bytes from which a push to engines that reach
                                    * each other goes as a tree (plx_mec_bcast.c) */
    int          reuse;            /* a restart: keep the tokens and port of the
                                    * connection files a dead controller left */
    int          keep_files;       /* leave the connection files at exit (0.10's
                                    * -r: the next `-r` start reuses them) */
    /* IPython 0.10's separate client port: when client_port >= 0 or
     * client_host is set, a second listener takes the clients (the mec,
     * task and status files name it); the first one keeps the engines. */
    const char  *client_host;      /* NULL = listen_host */
    int          client_port;      /* -1 = no second listener (unless client_host); 0 = any */
    const char  *client_location;  /* NULL = client_host if set, else location */
    plx_limits_t limits;           /* frame limits for authenticated engines and clients */
    uint64_t     max_memory;       /* payload bytes held at once; 0: 3/4 of what the
                                    * process may use */
} plx_controller_opts_t;

/* Defaults: tcp on 127.0.0.1, any port, heartbeat 1 s x 5, auth 10 s. */
plx_controller_opts_t plx_controller_opts_default(void);

/*
 * Bind, generate capability tokens, and write the connection files and
 * pid file into the profile. Caller owns the result.
 */
plx_controller_t *plx_controller_new(struct ev_loop *loop, const plx_controller_opts_t *opts,
                                     plx_err_t *err);

/* The bound port. */
uint16_t plx_controller_port(const plx_controller_t *c);

/* Ask the loop to stop (after answering in-flight shutdown requests). */
void plx_controller_stop(plx_controller_t *c);

/*
 * Revoke capability `name` (engine, mec, task or status): mint a new token,
 * rewrite its connection file, and drop every connection that authenticated
 * with the old one (each is told why). The old token is then refused with
 * "was revoked". *dropped (may be NULL) gets the number of connections.
 */
int plx_controller_revoke(plx_controller_t *c, const char *name, int *dropped, plx_err_t *err);

/*
 * Serve the requests `ipcluster revoke` leaves in the profile's security/
 * directory (files revoke-NAME, removed once served). ipcontroller calls
 * it on SIGUSR1: only the profile's owner can write there and signal us,
 * so no token is needed to ask.
 */
void plx_controller_serve_requests(plx_controller_t *c);

/* Remove connection files and pid file; close everything; free. */
void plx_controller_destroy(plx_controller_t **cp);

#endif
