/*
 * Live output: what a running request prints reaches its client while it
 * runs (Output messages, proto/plexa.proto), not only in the reply.
 *
 * The Python thread appends each write to a pending buffer under omu
 * (plx_engine_output_write, called by the _plexa_engine.Capture type that
 * stands in for sys.stdout and sys.stderr); nothing else happens per write,
 * so a tight print loop pays a mutex and a memcpy. The I/O thread sends
 * what is pending about every LIVE_PERIOD_S (a one-shot timer armed by the
 * first write after a send) or at once when LIVE_CHUNK bytes wait. When
 * the request ends, the Python thread posts the rest before the reply, so
 * a request's Output messages always precede its reply on the wire.
 *
 * Order: every Output is taken from the buffer and posted to the I/O
 * thread's queue under omu, by whichever thread sends it, so chunks leave
 * in the order they were written. User code never waits for the network:
 * when LIVE_PENDING_MAX bytes are pending (the I/O thread cannot keep up),
 * later writes are left out of the live stream and a note says how much;
 * the reply still carries everything kept.
 *
 *   state         plx_engine_output_init, _fini
 *   Python side   plx_engine_output_begin, _write, _display, _end
 *   I/O side      plx_engine_output_on_wake (from wake_cb), the timer
 */
#include "plx_engine_int.h"

#include <stdio.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"

#define LIVE_PERIOD_S    0.05
#define LIVE_CHUNK       (64u << 10)
#define LIVE_PENDING_MAX (1u << 20)

static const char *const STREAM_NAMES[2] = { "stdout", "stderr" };

/* Post an Output of the running request named name (omu held). */
static void post_output_locked(plx_engine_t *e, const char *name, const char *text)
{
    Plexa__Output out = PLEXA__OUTPUT__INIT;
    out.name = (char *)name;
    out.text = (char *)text;
    out.has_task_id = e->live_task != 0;
    out.task_id = e->live_task;
    Plexa__Envelope env;
    plx_envelope_set(&env, plx_engine_next_id(e), e->live_req, PLEXA__ENVELOPE__BODY_OUTPUT,
                     &out);
    plx_msg_t *m = plx_envelope_pack(&env, NULL);
    if (m)
        plx_engine_io_post(e, m, e->live_session);
}

/* Post one Output of stream i's pending text and empty it (omu held). */
static void post_stream_locked(plx_engine_t *e, int i)
{
    plx_strbuf_t *b = &e->live[i];
    if (b->len == 0 && !e->live_dropped[i])
        return;
    if (e->live_dropped[i]) {
        plx_strbuf_printf(b, "\n[plexa: %zu bytes of live output left out (the client "
                          "side could not keep up); the result has them]\n",
                          e->live_dropped[i]);
        e->live_dropped[i] = 0;
    }
    if (!b->oom)
        post_output_locked(e, STREAM_NAMES[i], plx_strbuf_str(b));
    plx_strbuf_free(b);
}

static void post_locked(plx_engine_t *e)
{
    if (!e->live_req)
        return;
    post_stream_locked(e, 0);
    post_stream_locked(e, 1);
}

static size_t pending_locked(const plx_engine_t *e)
{
    return e->live[0].len + e->live[1].len;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    plx_engine_t *e = w->data;
    pthread_mutex_lock(&e->omu);
    post_locked(e);
    pthread_mutex_unlock(&e->omu);
}

int plx_engine_output_init(plx_engine_t *e)
{
    ev_timer_init(&e->live_timer, timer_cb, LIVE_PERIOD_S, 0.);
    e->live_timer.data = e;
    return pthread_mutex_init(&e->omu, NULL);
}

void plx_engine_output_fini(plx_engine_t *e)
{
    plx_strbuf_free(&e->live[0]);
    plx_strbuf_free(&e->live[1]);
    pthread_mutex_destroy(&e->omu);
}

void plx_engine_output_begin(plx_engine_t *e, uint64_t req_id, uint64_t task_id,
                             uint64_t session)
{
    pthread_mutex_lock(&e->omu);
    e->live_req = req_id;
    e->live_task = task_id;
    e->live_session = session;
    pthread_mutex_unlock(&e->omu);
}

void plx_engine_output_end(plx_engine_t *e)
{
    pthread_mutex_lock(&e->omu);
    post_locked(e);
    e->live_req = 0;
    e->live_task = 0;
    pthread_mutex_unlock(&e->omu);
}

void plx_engine_output_write(plx_engine_t *e, int stream, const char *s, size_t n)
{
    int wake = 0;
    pthread_mutex_lock(&e->omu);
    if (e->live_req && (stream == 0 || stream == 1) && n > 0) {
        size_t before = pending_locked(e);
        if (before + n > LIVE_PENDING_MAX) {
            e->live_dropped[stream] += n;
        } else {
            plx_strbuf_put(&e->live[stream], s, n);
            /* the first write after a send arms the timer; a full chunk goes at once */
            wake = before == 0 || (before < LIVE_CHUNK && before + n >= LIVE_CHUNK);
        }
    }
    pthread_mutex_unlock(&e->omu);
    if (wake)
        ev_async_send(e->loop, &e->wake);
}

int plx_engine_output_display(plx_engine_t *e, const char *json)
{
    pthread_mutex_lock(&e->omu);
    int live = e->live_req != 0 && e->live_task == 0;   /* a task's result has no displays */
    if (live) {
        post_locked(e);   /* what was printed before it comes first */
        post_output_locked(e, "display", json);
    }
    pthread_mutex_unlock(&e->omu);
    return live;
}

void plx_engine_output_on_wake(plx_engine_t *e)
{
    pthread_mutex_lock(&e->omu);
    size_t pending = pending_locked(e);
    if (pending >= LIVE_CHUNK) {
        ev_timer_stop(e->loop, &e->live_timer);
        post_locked(e);
    } else if (pending > 0 && !ev_is_active(&e->live_timer)) {
        ev_timer_set(&e->live_timer, LIVE_PERIOD_S, 0.);
        ev_timer_start(e->loop, &e->live_timer);
    }
    pthread_mutex_unlock(&e->omu);
}
