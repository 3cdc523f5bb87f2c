/*
 * Controller internals shared by its source files (not installed).
 *
 *   plx_controller.c  lifecycle, accepting, authentication, dispatch
 *   plx_registry.c    engines: registration, heartbeats, death
 *   plx_caps.c        capability tokens: checking, expiry, revocation, files
 *   plx_mec.c         multi-engine requests: fan-out, FIFO queues, gather
 *   plx_tasks.c       the load-balanced task scheduler (its files are listed
 *                     in plx_tasks_int.h)
 */
#ifndef PLX_CONTROLLER_INT_H
#define PLX_CONTROLLER_INT_H

#include "plexa.pb-c.h"
#include "plx_addr.h"
#include "plx_conn.h"
#include "plx_controller.h"
#include "plx_listener.h"
#include "plx_profile.h"
#include "plx_url.h"

typedef struct peer   peer_t;
typedef struct engine engine_t;
typedef struct mreq   mreq_t;
typedef struct sub    sub_t;
typedef struct task   task_t;
typedef struct waiter waiter_t;
typedef struct sched  sched_t;

/* Who submitted tasks, for their live output: the peer, NULL once it went
 * (tasks outlive their clients). Counted: the peer's reference and one
 * per task it submitted (plx_tasks.c: task_owner_of, task_owner_unref). */
typedef struct owner {
    peer_t  *peer;
    unsigned refs;
} owner_t;

/* A doubly linked list of tasks (queue, an engine's running tasks, the
 * finished results); a task is on at most one. */
typedef struct tlist {
    task_t  *head, *tail;
    uint64_t n;
} tlist_t;

/* One connection, before and after it authenticated. */
struct peer {
    plx_controller_t *ctl;
    plx_conn_t       *conn;
    Plexa__Role       role;        /* ROLE_NONE until Hello is accepted */
    engine_t         *engine;      /* role == ENGINE */
    mreq_t           *reqs;        /* role == MEC: requests not yet answered */
    waiter_t         *waiters;     /* role == TASK: TaskWaits not yet answered */
    uint64_t          blk_next, blk_end;  /* role == TASK: reserved task ids left */
    ev_timer          auth_timer;  /* drops connections that never say Hello */
    char              addr[64];
    char              host[128];   /* clients: the host their Hello names ("" if none) */
    struct mdirect_kept *direct_kept;  /* mec clients: tickets of their direct pulls */
    peer_t           *prev, *next;
    peer_t           *uprev, *unext;   /* the unauthenticated, oldest first */
    unsigned          cap_epoch;   /* revocations of its capability when it said Hello */
    owner_t          *owner;       /* role == TASK: its tasks' owner, once it submitted */
};

enum { MEC_HELD = 1, MEC_REFS_FAILED = 2 };

/* One target's share of a multi-engine request. */
struct sub {
    mreq_t              *req;
    engine_t            *eng;          /* NULL once answered or failed */
    int32_t              engine_id;
    uint64_t             eng_msg_id;   /* id of the envelope sent to the engine */
    plx_msg_t           *out;          /* built, waiting in the engine queue */
    int                  solo;         /* nothing after it goes to its engine until
                                        * it is answered (plx_mec_bcast.c may send
                                        * it again) */
    int                  held;         /* MEC_HELD: queued, waiting for its refs'
                                        * values, holding up its engine's queue;
                                        * MEC_REFS_FAILED: they failed, and so does
                                        * it on reaching the head (plx_mec_refs.c) */
    plx_msg_t           *reply_msg;    /* the engine's reply frame (owns buffers) */
    Plexa__Envelope     *reply_env;    /* its decoded envelope */
    Plexa__EngineReply  *reply;        /* points into reply_env, or at synth */
    Plexa__EngineReply   synth;        /* a reply made up by the controller */
    Plexa__RemoteError   synth_err;
    char                 synth_ename[48];
    char                 synth_text[256];
    sub_t               *next;         /* engine queue / in-flight list */
};

/* A request from a client, fanned out to n engines. */
struct mreq {
    plx_controller_t *ctl;
    peer_t           *client;      /* NULL once the client went away */
    uint64_t          client_id;   /* id of the client's envelope */
    char              method[32];  /* "execute", "push", "keys", ... (for errors) */
    char              desc[128];   /* what queue_status shows, e.g. "execute: a = 10" */
    int               stop_after;  /* kill(controller=True): stop once answered */
    int               n, ndone;
    sub_t            *subs;        /* n entries */
    mreq_t           *prev, *next; /* client's list */
    struct mrefs     *refs;        /* a push with plexa.refs: what it waits for */
    struct mbcast    *bcast;       /* a push broadcast through a tree of engines */
    struct mdirect   *direct;      /* a pull the client fetches from engines itself */
    int               fetch;       /* a fetch of refs' values (no client) ... */
    mreq_t           *parent;      /* ... for this push, NULL once that went */
    int               fetch_idx;   /* ... its index among the push's fetches */
};

/* The task scheduler's view of one engine (plx_sched.c). */
typedef struct eng_tasks {
    uint64_t      unstarted;     /* tasks sent, not reported started, not being stolen */
    double        backlog;       /* estimated seconds of its unfinished tasks */
    double        start_lat;     /* round trip of a task sent to it idle (EWMA), s */
    struct steal *steals;        /* steals sent to it, unanswered */
    int           awaiting;      /* steals made for it as a thief, unanswered */
    double        await_until;   /* ... waited for until then (a frozen victim) */
} eng_tasks_t;

struct engine {
    int32_t  id;
    peer_t  *peer;
    sub_t   *qhead, *qtail;   /* waiting in the controller */
    sub_t   *ihead, *itail;   /* sent, waiting for the reply */
    int      ninflight;
    int      nsolo;           /* solo shares in flight (0 or 1) */
    double   last_seen;       /* ev_now of the last sign of life */
    uint64_t last_in, last_out;  /* bytes received / sent at the last heartbeat tick */
    char     host[128];
    int32_t  pid;
    tlist_t  trun;            /* tasks sent to it, in the order sent */
    eng_tasks_t ts;
    uint64_t tasks_done;      /* task results it returned (status page) */
    uint64_t requests_done;   /* multi-engine requests it answered */
    double   registered;      /* ev_now at registration */
    int      no_direct;       /* it could not fetch a ref's values directly:
                               * they reach it through the controller now */
};

/* A token that was replaced, kept to tell its holder why it stopped working. */
typedef enum { CAP_EXPIRED = 1, CAP_REVOKED = 2 } cap_retired_why;
typedef struct cap_retired {
    char            token[65];
    cap_retired_why why;
    double          when;      /* wall-clock seconds */
} cap_retired_t;
#define CAP_RETIRED 8
/* One capability: its live token and the last few it replaced. */
typedef struct cap {
    char          token[65];
    double        expires;     /* wall-clock seconds; 0 = never */
    cap_retired_t retired[CAP_RETIRED];
    unsigned      nretired;    /* ever retired; ring index = n % CAP_RETIRED */
    unsigned      revocations; /* work submitted under an older count is cancelled */
} cap_t;
struct plx_controller {
    struct ev_loop          *loop;
    plx_controller_opts_t    opts;
    const plx_transport_ops *tops;
    plx_listener_t          *listener;          /* engines (and clients, if alone) */
    plx_listener_t          *client_listener;   /* clients, with 0.10's client port */
    plx_listener_t          *shm_listener;      /* peers of this host and user (shm) */
    char                     shm_name[64];      /* its abstract socket name */
    cap_t                    caps[PLEXA__ROLE__ROLE_STATUS + 1];  /* by role */
    ev_timer                 cap_timer;   /* renews expired tokens */
    uint16_t                 reuse_port;  /* opts.reuse: the previous controller's port */
    uint16_t                 reuse_client_port;   /* ... and its clients' (the mec file's) */
    engine_t               **engines;   /* by id; NULL where dead */
    char                   (*engine_secrets)[PLX_TOKEN_HEX + 1];   /* by id, kept after death:
                                                                    * what a comeback proves */
    int32_t                  engines_cap;
    int32_t                  next_engine_id;
    int                      nengines;
    peer_t                  *peers;
    peer_t                  *unauth_head, *unauth_tail;   /* oldest first */
    unsigned                 n_unauth;
    plx_budget_t             budget;      /* payload held (plx_frame.h), and its bound */
    uint64_t                 next_msg_id;
    uint64_t                 hb_seq;
    ev_timer                 hb_timer;
    plx_profile_t            profile;
    char                     cert_file[4096], key_file[4096];
    char                     fingerprint[65];   /* "" for plaintext transports */
    int                      wrote_files;
    ev_timer                 stop_timer;  /* lets final replies drain before exit */
    sched_t                 *sched;       /* the task scheduler (plx_tasks.c) */
    struct status           *status;      /* the status page (plx_status.c), or NULL */
    double                   started;     /* ev_now at start */
};

/* plx_controller.c */
int  ctl_send_env(peer_t *p, const Plexa__Envelope *env, plx_msg_t *bufs_from);
/* Pack a message with body `body` of case bc answering reply_to (0: none);
 * the caller adds buffers and sends it. NULL on ENOMEM (logged). */
plx_msg_t *ctl_pack(plx_controller_t *c, uint64_t reply_to, Plexa__Envelope__BodyCase bc,
                    void *body);
/* Send a message with body `body` of case bc answering reply_to (0: none). */
int  ctl_send_body(peer_t *p, uint64_t reply_to, Plexa__Envelope__BodyCase bc, void *body);
/* Forward an engine's live output to client (NULL: nobody) as engine_id's,
 * answering reply_to, or of task task_id (0: none); dropped for a client
 * that has too much unsent (best effort, see proto/plexa.proto). */
void ctl_send_output(peer_t *client, uint64_t reply_to, const Plexa__Output *o,
                     int32_t engine_id, uint64_t task_id);
void ctl_send_error(peer_t *p, uint64_t reply_to, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
uint64_t ctl_next_id(plx_controller_t *c);
/* Tell an authenticated peer why it is dropped (Reject), then close it. */
void ctl_drop_peer(peer_t *p, const char *reason);
/* plx_status.c: the read-only status page and JSON (loopback HTTP) */
int  status_start(plx_controller_t *c, plx_err_t *err);
void status_stop(plx_controller_t *c);
void status_tick(plx_controller_t *c);           /* every heartbeat period */
void status_token_changed(plx_controller_t *c);  /* rewrite its URL file */
/* plx_caps.c */
const char *ctl_role_name(Plexa__Role r);

/* Where clients connect: opts.client_host, else the listen address. */
const char *ctl_client_host(const plx_controller_t *c);
int  caps_init(plx_controller_t *c, plx_err_t *err);
void caps_fini(plx_controller_t *c);
/* 1 if token grants role r; else 0 with the reason in why. */
int  caps_check(plx_controller_t *c, Plexa__Role r, const char *token, char *why, size_t n);
/* Write the pid file and every connection file (engine's last). */
int  caps_write_files(plx_controller_t *c, plx_err_t *err);
void caps_remove_files(plx_controller_t *c);

/* plx_admission.c: frame limits by role, unauthenticated connections, the
 * payload budget and refused frames */
const plx_limits_t *adm_limits(const plx_controller_t *c, Plexa__Role role);
void adm_init(plx_controller_t *c);
void adm_accepted(plx_controller_t *c, peer_t *p);
void adm_authenticated(plx_controller_t *c, peer_t *p);
void adm_forget(plx_controller_t *c, peer_t *p);
/* m's buffers were dropped (over the budget): answer for it. 1 when m and
 * env were consumed; 0 when they go on as usual (an engine's reply, turned
 * into an error). */
int  adm_refused(peer_t *p, plx_msg_t *m, Plexa__Envelope *env);

/* plx_registry.c */
int  reg_add_engine(plx_controller_t *c, peer_t *p, const Plexa__Hello *h);
void reg_engine_gone(plx_controller_t *c, engine_t *e, const char *why);
engine_t *reg_engine(plx_controller_t *c, int32_t id);
void reg_on_engine_msg(plx_controller_t *c, engine_t *e, plx_msg_t *m, Plexa__Envelope *env);
void reg_start_heartbeat(plx_controller_t *c);
void reg_reply_ids(plx_controller_t *c, peer_t *p, uint64_t reply_to);

/* plx_mec.c */
void mec_submit(plx_controller_t *c, peer_t *client, plx_msg_t *m, Plexa__Envelope *env);
void mec_engine_reply(plx_controller_t *c, engine_t *e, plx_msg_t *m, Plexa__Envelope *env);
/* Live output of a request e runs: to its client, as its own (best effort). */
void mec_engine_output(plx_controller_t *c, engine_t *e, const Plexa__Envelope *env);
void mec_fail_engine(plx_controller_t *c, engine_t *e, const char *why);
void mec_client_gone(peer_t *client);
/* The client's capability was revoked: its requests are dropped where they
 * wait and interrupted where they run. */
void mec_client_revoked(plx_controller_t *c, peer_t *client);
void mec_pump(plx_controller_t *c, engine_t *e);
void mec_clear_queue(plx_controller_t *c, peer_t *client, Plexa__Envelope *env);
void mec_queue_status(plx_controller_t *c, peer_t *client, Plexa__Envelope *env);
void mec_interrupt(plx_controller_t *c, peer_t *client, Plexa__Envelope *env);
/* Shares' building blocks, for plx_mec_refs.c. mec_make_out packs what
 * share s sends: env's body (no targets) under a fresh id, m's buffers. */
int  mec_make_out(plx_controller_t *c, sub_t *s, const plx_msg_t *m, Plexa__Envelope *env);
void mec_enqueue(engine_t *e, sub_t *s);
void mec_unqueue(engine_t *e, sub_t *s);
void mec_sub_fail(sub_t *s, const char *ename, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Make s's reply an error of the controller's (s stays answered). */
void mec_sub_synth(sub_t *s, const char *ename, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mec_free(mreq_t *r);

/* plx_mec_refs.c: pushes of plexa.ref values. The push's shares wait,
 * held, in their engines' queues while the controller fetches the values
 * from the engines they name (a Pull queued there, in order); then they
 * are built with the values themselves and sent. */
/* Does this push hold refs? */
int  mrefs_wanted(const Plexa__Envelope *env);
/* Start r's fetches and hold its shares (r->subs set, not yet queued);
 * takes *m and *env. <0 after sending the client its error. */
int  mrefs_start(plx_controller_t *c, peer_t *client, mreq_t *r, plx_msg_t **m,
                 Plexa__Envelope **env);
/* Fail a share whose refs failed (MEC_REFS_FAILED), taken off its queue. */
void mrefs_fail_share(sub_t *s);
/* A fetch finished (answered or failed): on to its push. */
void mrefs_fetched(mreq_t *fetch);
/* Share s's engine answered: one that could not reach a source directly
 * gets refs' values through the controller from now on. */
void mrefs_answered(const sub_t *s);
/* r goes: its fetches no longer serve it. */
void mrefs_free(mreq_t *r);

/* plx_mec_serve.c: engines serving values to engines (direct transfers),
 * for plexa.refs and broadcasts. */
typedef struct mserve {
    char    (*tickets)[PLX_TOKEN_HEX + 1];   /* one per receiving share */
    char    **ticketp;     /* ... as the Pull lists them */
    size_t    ntickets;    /* 0: none issued, or ServeEnd sent */
    int       served;      /* the source serves them itself, at serve */
    plx_url_t serve;
} mserve_t;
/* Whether two network engines run on one host (where they connect from;
 * for loopback ones, the host names they report). */
int  mserve_one_host(const engine_t *a, const engine_t *b);
/* Issue n tickets; PLX_ENOMEM (none issued) if that fails. */
int  mserve_tickets(mserve_t *sv, size_t n);
/* A fetch: a Pull of keys by the controller itself, for parent (its
 * fetch_idx-th), with sv's tickets if sv has any; relay: of the push
 * that follows it, as that push arrives (Pull.relay). NULL on ENOMEM. */
mreq_t *mserve_fetch(plx_controller_t *c, mreq_t *parent, int idx, int32_t engine_id,
                     char **keys, size_t nkeys, const mserve_t *sv, int relay);
/* The source's answer url: accepted (sv->served) only where the engine
 * connects from; else PLX_EPROTO with why written. */
int  mserve_accept(plx_controller_t *c, int32_t engine_id, mserve_t *sv, const char *url,
                   char *why, size_t whylen);
/* The URL that share i fetches from (its own ticket). */
int  mserve_url(const mserve_t *sv, size_t i, char *out, size_t len);
/* Whether host is the host of a peer address ("IP:PORT", "[IP6]:PORT"). */
int  mserve_same_host(const char *addr, const char *host);
/* Whether a peer address ("IP:PORT", "[IP6]:PORT") is a loopback one. */
int  mserve_addr_loopback(const char *addr);
/* Whether dst can be expected to reach src's listener. */
int  mserve_reachable(const engine_t *src, const engine_t *dst);
/* The source drops what it kept for sv's tickets (sent once). */
void mserve_end(plx_controller_t *c, int32_t engine_id, mserve_t *sv);
void mserve_clear(mserve_t *sv);

/* plx_mec_bcast.c: a push of big values to several engines that can
 * reach each other goes as a tree: the controller sends it to one engine,
 * which serves it to two, and so on. */
/* Set r up as a tree if it is worth it (r->subs set, not yet queued):
 * takes *m and *env then. 0 if not (the caller fans out as usual). */
int  mbcast_start(plx_controller_t *c, mreq_t *r, plx_msg_t **m, Plexa__Envelope **env);
/* Queue and send the relay Pulls, ahead of r's shares (queued next). */
void mbcast_queue_relays(mreq_t *r);
/* A fetch finished (answered or failed): on to the shares it serves. */
void mbcast_fetched(mreq_t *fetch);
/* Share s's engine answered. 1 if the share goes again instead (the
 * values through the controller, after a failed direct transfer): the
 * reply is not its outcome. */
int  mbcast_answered(sub_t *s);
void mbcast_free(mreq_t *r);

/* plx_mec_direct.c: a client's pull of values it fetches from the
 * engines itself (Pull.direct), the controller issuing tickets. */
/* Build r's shares of the pull env (every pull goes through here: a
 * client's own tickets are dropped). PLX_ENOMEM: the caller frees r. */
int  mdirect_start(plx_controller_t *c, peer_t *client, mreq_t *r, const Plexa__Envelope *env);
/* Share s's engine answered: pass its serve_url on, with the ticket. */
void mdirect_answered(sub_t *s);
void mdirect_free(mreq_t *r);
/* A push whose values the client serves itself (Push.served_at, a
 * blocking scatter's piece): builds r's one share (refs to the client, or
 * the values; one that cannot be served so is logged and goes with the
 * values). 0 if it is no such push; 1 built; 2 answered already (the
 * engine cannot fetch, and the client sent no values: it pushes them
 * again); < 0 out of memory (error sent). */
int  mdirect_push(plx_controller_t *c, peer_t *client, mreq_t *r, const plx_msg_t *m,
                  const Plexa__Envelope *env);
/* A client went: the engines drop what they still serve for its pulls. */
void mdirect_client_gone(plx_controller_t *c, peer_t *client);

/* plx_controller.c */
void ctl_stop_soon(plx_controller_t *c);

/* The load-balanced task scheduler (plx_tasks.c and the files
 * plx_tasks_int.h lists) */
int  sched_new(plx_controller_t *c);
void sched_destroy(plx_controller_t *c);
void sched_on_client(plx_controller_t *c, peer_t *p, plx_msg_t *m, Plexa__Envelope *env);
void sched_task_result(plx_controller_t *c, engine_t *e, plx_msg_t *m, Plexa__Envelope *env);
void sched_task_started(plx_controller_t *c, engine_t *e, const Plexa__Envelope *env);
void sched_task_stolen(plx_controller_t *c, engine_t *e, const Plexa__Envelope *env);
/* Live output of a task e runs: to the client that submitted it. */
void sched_task_output(plx_controller_t *c, engine_t *e, const Plexa__Envelope *env);
void sched_engine_added(plx_controller_t *c, engine_t *e);
void sched_engine_gone(plx_controller_t *c, engine_t *e);
void sched_client_gone(plx_controller_t *c, peer_t *p);
/* The task capability was revoked: every unfinished task submitted under
 * an older count of revocations is cancelled (interrupted if it runs). */
void sched_revoked(plx_controller_t *c, unsigned revocations);
/* A quiet TaskSubmit whose buffers were refused: its ids fail with why. */
void sched_refuse_submission(plx_controller_t *c, peer_t *p, const Plexa__Envelope *env,
                             const char *why);
void sched_tick(plx_controller_t *c);
/* Counts for the status page. */
typedef struct sched_stats {
    uint64_t queued, waiting, running, succeeded, failed, held_bytes;
    uint64_t finished_total;   /* ever */
} sched_stats_t;
void sched_stats(plx_controller_t *c, sched_stats_t *out);
/* TaskQueueStatus, for task and status connections. */
void sched_queue_status(plx_controller_t *c, peer_t *p, Plexa__Envelope *env);

#endif
