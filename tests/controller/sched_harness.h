/*
 * The task scheduler driven in-process: a real controller on a libev loop,
 * fake engines and fake task clients on the same loop, all speaking the
 * real protocol over the tcp plugin on 127.0.0.1. Shared by
 * test_scheduler.c and test_steal.c.
 *
 * A fake engine answers each TaskRun as its behaviour says. With B_QUEUE
 * it behaves like ipengine: TaskRuns wait in its queue; the test starts
 * the head (TaskStarted is sent) and finishes it (TaskResult) when it
 * likes; a TaskSteal gives back the tasks still queued, unless the engine
 * is frozen (then steals wait until it thaws, as with SIGSTOP).
 *
 * A fake engine also answers multi-engine pushes and pulls of bytes
 * values from a small namespace of its own (mec_fake.c), at once or, with
 * mec_hold, when the test releases them.
 */
#ifndef SCHED_HARNESS_H
#define SCHED_HARNESS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "plexa.pb-c.h"
#include "plx_conn.h"
#include "plx_controller.h"

/* How a fake engine answers TaskRun. */
typedef enum { B_ECHO, B_FAIL, B_HANG, B_DIE, B_REJECT, B_QUEUE } behaviour_t;

#define FAKE_QMAX 4096
#define FAKE_NS    16

struct plx_buf;

/* A TaskRun a B_QUEUE engine holds. */
typedef struct fake_task {
    uint64_t id;
    int64_t  arg;        /* a map task's i64 argument */
    uint32_t first, count;   /* the elements it runs: a chunk's all, or its piece */
    int      chunk;
    int      depend;
} fake_task_t;

typedef struct fake {
    plx_conn_t  *conn;
    int          role;        /* 1 engine, 3 task client */
    int32_t      engine_id;   /* -1 until welcomed */
    behaviour_t  behaviour;
    int          ran;         /* tasks it received (B_QUEUE: started) */
    uint64_t     last_task;
    int          interrupted;
    int          closed;
    int32_t      claim_id;    /* engine id to ask for in Hello, -1 none */
    char         secret[65];  /* the Welcome's engine secret (given back with claim_id) */
    /* B_QUEUE */
    fake_task_t  queue[FAKE_QMAX];   /* tasks received, not started */
    size_t       nqueue;
    fake_task_t  running;            /* started, not finished (id 0: none) */
    uint64_t    *ran_ids;            /* every task it started, in order (ran of them) */
    size_t       ran_cap;
    double       duration;           /* what its results say a task took, s */
    int          frozen;             /* steals wait in `held` until it thaws */
    Plexa__Envelope *held[64];
    size_t       nheld;
    int          steals, asked, stolen;  /* steals answered, tasks asked, given back */
    int          reject_depend;      /* B_QUEUE: answer tasks with depend REJECTED */
    /* multi-engine requests (mec_fake.c) */
    char            *ns_name[FAKE_NS];   /* its namespace: bytes values by name */
    struct plx_buf  *ns_val[FAKE_NS];
    size_t           nns;
    int              mec_seen;           /* pushes and pulls received */
    int              mec_hold;           /* keep them unanswered in mheld */
    Plexa__Envelope *mheld[16];
    plx_msg_t       *mheld_msg[16];
    size_t           nmheld;
    int              bad_pull;           /* answer pulls naming a buffer not sent */
    int              serve_direct;       /* answer pulls with tickets with a serve_url
                                          * (2: on an address it does not connect from) */
    int              tickets_asked;      /* tickets in the pulls it received */
    int              relays_ahead;       /* relay pulls that came before their push */
    uint64_t         serve_min_seen;     /* the last such pull's serve_min ... */
    uint32_t         serve_ttl_seen;     /* ... and serve_ttl_s */
    int              fail_direct;        /* pushes with a direct ref fail (unreachable) */
    int              tickets_ended;      /* tickets in the ServeEnds it received */
    int              replies;            /* replies it received (kept: the last) ... */
    int              replies_failed;     /* ... with an error, or an engine's error */
    /* client side: the last reply */
    Plexa__Envelope *reply;
    plx_msg_t       *reply_msg;
    char         token[129];
} fake_t;

/* The host fakes made from now on name in their Hello ("fakehost"). */
extern const char *fake_hostname;

extern struct ev_loop *loop;
extern plx_controller_t *ctl;

/* Start the controller with o (profile, transport and paths are set here). */
void harness_setup(plx_controller_opts_t o);
void harness_teardown(void);

/* role 1 engine, 2 multi-engine client, 3 task client. */
fake_t *fake_new(int role, behaviour_t b);
/* An engine asking for id claim, proving it with secret (NULL: none). */
fake_t *fake_new_claim(int role, behaviour_t b, int32_t claim, const char *secret);
void fake_destroy(fake_t **fp);
/* fake_destroy each of fs[0..n); DESTROY(&a, &b, ...) says it shorter. */
void fake_destroy_all(fake_t **const *fs, size_t n);
#define DESTROY(...)                                                                  \
    fake_destroy_all((fake_t **const[]){ __VA_ARGS__ },                               \
                     sizeof((fake_t **const[]){ __VA_ARGS__ }) / sizeof(fake_t **))

/* Run the loop until cond(arg) holds (or 10 s pass). */
int run_until(int (*cond)(void *), void *arg);
/* Run the loop for about ms milliseconds. */
void run_for(double ms);
int has_reply(void *arg);
int two_replies(void *arg);   /* replies >= 2 */
int is_closed(void *arg);

void send_env(fake_t *f, Plexa__Envelope *env, plx_msg_t *bufs_from);
/* Send a request and wait for its reply (kept in f->reply). */
Plexa__Envelope *request(fake_t *f, Plexa__Envelope *env, plx_msg_t *bufs);

/* Submit n "map" tasks each carrying one i64 argument (i); returns the
 * first id. with_depend gives each a depend predicate (None). */
uint64_t submit(fake_t *cl, int n, int retries, int with_depend, const uint64_t *after,
                size_t nafter);
/* Submit n "map" tasks of function fn_tag (args [fn_tag, i]: the first
 * argument is what the controller keys costs by). */
uint64_t submit_fn(fake_t *cl, int n, int64_t fn_tag, int with_depend);
/* Submit one "chunk" task of `elements` elements, function value fn_tag
 * (its cost key). */
uint64_t submit_chunk(fake_t *cl, uint32_t elements, int64_t fn_tag);
/* TaskWait; the TaskResults body (owned by cl->reply). */
Plexa__TaskResults *wait_ids(fake_t *cl, uint64_t first, size_t n, int block);
/* TaskAbort of ids; the reply envelope (owned by cl->reply). */
Plexa__Envelope *abort_ids(fake_t *cl, const uint64_t *ids, size_t n);

/* B_QUEUE: start the head of the queue (TaskStarted); 0 if empty or busy. */
int fake_start(fake_t *f);
/* B_QUEUE: finish the running task (TaskResult OK echoing nothing but
 * the time it took); 0 if none. */
int fake_finish(fake_t *f);
/* B_QUEUE: start its held steals' answers (it thaws). */
void fake_thaw(fake_t *f);

/* ---- mec_fake.c ---- */
/* A push or pull for engine f: answered now, or held (mec_hold). */
void mec_fake_on_request(fake_t *f, Plexa__Envelope *env, plx_msg_t *m);
/* A ServeEnd for engine f. */
void mec_fake_serve_end(fake_t *f, const Plexa__ServeEnd *se);
/* Answer f's held requests, in order. */
void mec_fake_release(fake_t *f);
/* Set name in f's namespace to a copy of len bytes. */
void mec_fake_set(fake_t *f, const char *name, const void *data, size_t len);
/* name's value in f's namespace (its length in *len), NULL if unset. */
const uint8_t *mec_fake_get(const fake_t *f, const char *name, size_t *len);
void mec_fake_free(fake_t *f);

#endif
