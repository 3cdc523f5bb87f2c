/*
 * A fake controller for engine tests: a blocking TCP listener on
 * 127.0.0.1 speaking plexa frames (core/wire), and a real ipengine from
 * the build tree started against it. Tests drive the conversation step by
 * step; every wait has a deadline, and the engine is killed by pid when a
 * test ends without it having exited.
 *
 * Below the fake controller: the cmocka fixtures test_engine and
 * test_engine_tasks share (a fake per test, registering the engine,
 * running code that must succeed) and constructors for request values.
 */
#ifndef ENGINE_HARNESS_H
#define ENGINE_HARNESS_H

#include <stdint.h>
#include <sys/types.h>

#include "plexa.pb-c.h"
#include "plx_frame.h"

#define T_START 20.0   /* engine start-up and registration, seconds */
#define T_REPLY 20.0   /* an ordinary request */

typedef struct fake {
    int            lfd;            /* listening socket */
    int            fd;             /* the engine's connection, -1 if none */
    uint16_t       port;
    char           url[160];
    pid_t          pid;            /* the engine, 0 once reaped */
    int            status;         /* its wait status once reaped */
    char           dir[64];        /* the engine's working directory */
    char           log[128];       /* its stderr */
    plx_decoder_t *dec;
    uint8_t        rbuf[65536];
    size_t         rpos, rlen;
    uint64_t       next_id;
    const char    *reconnect;      /* ipengine --reconnect value; NULL: "0" (off) */
    const char    *url_env;        /* $PLEXA_URL for the engine; NULL: url */
    int            stdin_fd;       /* the engine's stdin; -1: /dev/null */
    uint64_t       started[256];   /* TaskStarted ids fake_recv_reply passed over, in order */
    size_t         nstarted;       /* ... how many (the array keeps the first 256) */
    int32_t        engine_id;      /* as fake_welcome last welcomed it; 0 before */
    char           live[1 << 16];  /* live Output fake_recv_reply passed over: "name:text|"... */
    size_t         nlive;
    int            nlive_msgs;     /* how many Output messages */
    double         live_first_at;  /* plx_now_s() of the first */
    uint64_t       live_reply_to;  /* the last one's reply_to */
} fake_t;

/* A listener and a token; the URL is in f->url. 0 or -1. */
/* The test programs' init hook (plx_test.h): a dead engine's socket must
 * not kill the test with SIGPIPE, and engines get a URL only the way a test
 * says (no PLEXA_URL inherited from the caller). */
int engine_test_init(int argc, char **argv);

int fake_init(fake_t *f);

/* Start ipengine with PLEXA_URL=f->url (or f->url_env), the extra
 * arguments url_args (NULL: none) and --reconnect f->reconnect (default 0:
 * a closed connection ends the engine at once), in f->dir, stderr to
 * f->log, stdin from f->stdin_fd. 0 or -1. */
int fake_spawn(fake_t *f, const char *const *url_args);

/* Accept the engine's connection within timeout_s. 0 or -1. */
int fake_accept(fake_t *f, double timeout_s);

/* Send env with bufs; env->id is set to a fresh id when 0. Returns the id. */
uint64_t fake_send(fake_t *f, Plexa__Envelope *env, plx_buf_t **bufs, uint32_t nbufs);

/* The next envelope within timeout_s, or NULL (timeout, close, error).
 * *msg receives the frame (buffers) when msg is not NULL. Free both. */
Plexa__Envelope *fake_recv(fake_t *f, double timeout_s, plx_msg_t **msg);

/* Like fake_recv, skipping the engine's unsolicited keepalive heartbeats
 * (it sends them when we are silent for a heartbeat period) and recording
 * its TaskStarted notices in f->started and its live Output in f->live. */
Plexa__Envelope *fake_recv_reply(fake_t *f, double timeout_s, plx_msg_t **msg);

/* Send env as fake_send does, but in `pieces` writes spread over `seconds`:
 * a frame that takes that long to arrive (a large push on a slow link). */
uint64_t fake_send_slowly(fake_t *f, Plexa__Envelope *env, int pieces, double seconds);

/* Send env and bufs as fake_send does, in two halves, calling between(ud)
 * after the first: what the engine does with a frame half arrived. */
uint64_t fake_send_halves(fake_t *f, Plexa__Envelope *env, plx_buf_t **bufs, uint32_t nbufs,
                          void (*between)(void *ud), void *ud);

/* Wait for the engine to exit within timeout_s. 0 (f->status set) or -1. */
int fake_wait_exit(fake_t *f, double timeout_s);

/* Close the connection (the engine should then exit 0, or reconnect). */
void fake_close_conn(fake_t *f);

/* Welcome the engine (after its Hello) as engine id, heartbeat period hb_ms;
 * f->engine_id becomes id. */
void fake_welcome(fake_t *f, int32_t id, uint32_t hb_ms);

/* Kill the engine if it still runs, close everything, print its log
 * (when dump), remove the working directory. */
void fake_fini(fake_t *f, int dump);

/* The engine's stderr so far, NUL-terminated, malloc'd. */
char *fake_log(const fake_t *f);

/* Convenience requests. */
uint64_t fake_execute(fake_t *f, const char *code);
/* Send and wait for the engine_reply (heartbeats are not expected here). */
Plexa__Envelope *fake_call(fake_t *f, Plexa__Envelope *req, plx_buf_t **bufs, uint32_t nbufs,
                           double timeout_s, plx_msg_t **msg);
Plexa__Envelope *fake_exec_call(fake_t *f, const char *code, double timeout_s);

/* Whether the engine said it started task_id (a TaskStarted passed over). */
int fake_saw_started(const fake_t *f, uint64_t task_id);

/* ---- cmocka fixtures ---------------------------------------------------- */

/* Group-less setup and teardown: a fresh fake in *state for each test;
 * teardown prints the engine's log (ctest shows it on failure). */
int fake_setup(void **state);
int fake_teardown(void **state);
/* A test with those (where cmocka.h is included). */
#define FAKE_TEST(fn) cmocka_unit_test_setup_teardown(fn, fake_setup, fake_teardown)

/* Accept the engine's connection and check its Hello: an engine's (role,
 * the token of f->url, this protocol version, its pid, a host name),
 * claiming engine id claim (< 0: claiming none). Then welcome it as id
 * (heartbeat 1 s). Returns the Hello's envelope id. */
uint64_t fake_register(fake_t *f, int32_t claim, int32_t id);

/* Start the engine (no extra arguments) and register it as engine 3: its
 * first Hello, envelope id 1, claiming no id. */
void fake_start_registered(fake_t *f);

/* Run code, which must succeed: an execute reply from f->engine_id for
 * code, with In [number] (number <= 0: any) and stdout out (NULL: any). */
void fake_exec_ok(fake_t *f, const char *code, const char *out, int number);

/* ---- values for requests ------------------------------------------------ */

Plexa__Value val_i64(int64_t n);
Plexa__Value val_str(const char *s);   /* s is borrowed, not copied */
Plexa__Value val_none(void);
/* A list (tuple when tuple != 0) of n items, held in *l (the caller's). */
Plexa__Value val_list(Plexa__ValueList *l, Plexa__Value **items, size_t n, int tuple);

#endif
