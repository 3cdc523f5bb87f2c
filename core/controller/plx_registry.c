/* Engine registry and heartbeats; see plx_controller_int.h. */
#include "plx_controller_int.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "plexa/version.h"
#include "plx_envelope.h"
#include "plx_bufpool.h"
#include "plx_log.h"

/* Bytes sent to an engine between two heartbeat ticks that prove it reads. */
#define LIVE_SEND_BYTES (1u << 20)
/* Pooled payload memory idle this long goes back to the system. */
#define POOL_IDLE_S 2.0

engine_t *reg_engine(plx_controller_t *c, int32_t id)
{
    if (id < 0 || id >= c->engines_cap)
        return NULL;
    return c->engines[id];
}

static int reg_grow(plx_controller_t *c, int32_t id)
{
    if (id < c->engines_cap)
        return PLX_OK;
    int32_t cap = c->engines_cap ? c->engines_cap * 2 : 64;
    while (cap <= id)
        cap *= 2;
    engine_t **e = realloc(c->engines, (size_t)cap * sizeof *e);
    if (!e)
        return PLX_ENOMEM;
    memset(e + c->engines_cap, 0, (size_t)(cap - c->engines_cap) * sizeof *e);
    c->engines = e;
    char (*s)[PLX_TOKEN_HEX + 1] = realloc(c->engine_secrets, (size_t)cap * sizeof *s);
    if (!s)
        return PLX_ENOMEM;   /* engines grew: harmless, the next call grows the rest */
    memset(s + c->engines_cap, 0, (size_t)(cap - c->engines_cap) * sizeof *s);
    c->engine_secrets = s;
    c->engines_cap = cap;
    return PLX_OK;
}

/* Highest id an engine may ask for: ids index an array. */
#define REQUESTED_ID_MAX 65535

/* Whether Hello h proves it is the engine that held id before: the
 * secret that engine's first Welcome gave it. */
static int proves(const plx_controller_t *c, const Plexa__Hello *h)
{
    int32_t id = h->engine_id;
    return id >= 0 && id < c->engines_cap && c->engine_secrets[id][0] &&
           plx_token_equal(h->engine_secret, c->engine_secrets[id]);
}

/* An engine that lost its connection (network blip, SIGSTOP outliving the
 * heartbeat) comes back with the id it had: it keeps it if nobody else
 * holds it and it proves it is that engine (a rogue engine must not pass
 * for one that died). An engine started as rank r of an MPI job asks for
 * id r, so that ids follow ranks; it gets it while it is free, and new ids
 * then start above it. Anything else gets the next new id. */
static int32_t choose_id(plx_controller_t *c, const Plexa__Hello *h, int *back)
{
    *back = 0;
    if (h->has_engine_id && h->engine_id >= 0 && h->engine_id < c->next_engine_id &&
        !reg_engine(c, h->engine_id) && proves(c, h)) {
        *back = 1;
        return h->engine_id;
    }
    if (h->has_engine_id)
        PLX_WARN("an engine asked for the id %d of an engine it cannot prove it is; it gets "
                 "a new id", h->engine_id);
    if (h->has_requested_id && h->requested_id >= 0 && h->requested_id <= REQUESTED_ID_MAX &&
        !reg_engine(c, h->requested_id))
        return h->requested_id;
    return c->next_engine_id;   /* never held: it stays above every id given */
}

int reg_add_engine(plx_controller_t *c, peer_t *p, const Plexa__Hello *h)
{
    int back;
    int32_t id = choose_id(c, h, &back);
    engine_t *e = calloc(1, sizeof *e);
    if (!e || reg_grow(c, id) != PLX_OK) {
        free(e);
        plx_conn_close(p->conn, 0, PLX_ENOMEM, "out of memory registering an engine");
        return PLX_ENOMEM;
    }
    if (id >= c->next_engine_id)
        c->next_engine_id = id + 1;
    if (back)
        PLX_INFO("engine %d is back", id);
    else if (plx_token_new(c->engine_secrets[id], NULL) != PLX_OK) {
        free(e);
        plx_conn_close(p->conn, 0, PLX_ERR, "cannot make an engine secret");
        return PLX_ERR;
    }
    e->id = id;
    e->peer = p;
    e->last_seen = ev_now(c->loop);
    e->registered = e->last_seen;
    snprintf(e->host, sizeof e->host, "%s", h->hostname ? h->hostname : "?");
    plx_printable(e->host);
    e->pid = h->has_pid ? h->pid : 0;
    c->engines[id] = e;
    c->nengines++;
    p->engine = e;

    Plexa__Welcome w = PLEXA__WELCOME__INIT;
    w.has_version = 1;
    w.version = PLX_PROTOCOL_VERSION;
    w.has_engine_id = 1;
    w.engine_id = id;
    w.has_heartbeat_ms = 1;
    w.heartbeat_ms = (uint32_t)(c->opts.heartbeat_period * 1000);
    w.engine_secret = c->engine_secrets[id];
    ctl_send_body(p, 0, PLEXA__ENVELOPE__BODY_WELCOME, &w);
    PLX_INFO("engine %d registered from %s (host %s, pid %d); %d engine(s)", id, p->addr,
             e->host, e->pid, c->nengines);
    sched_engine_added(c, e);
    return PLX_OK;
}

void reg_engine_gone(plx_controller_t *c, engine_t *e, const char *why)
{
    PLX_WARN("engine %d unregistered: %s", e->id, why);
    c->engines[e->id] = NULL;
    c->nengines--;
    mec_fail_engine(c, e, why);
    sched_engine_gone(c, e);
    free(e);
}

void reg_on_engine_msg(plx_controller_t *c, engine_t *e, plx_msg_t *m, Plexa__Envelope *env)
{
    e->last_seen = ev_now(c->loop);
    switch (env->body_case) {
    case PLEXA__ENVELOPE__BODY_ENGINE_REPLY:
        mec_engine_reply(c, e, m, env);
        return; /* consumed */
    case PLEXA__ENVELOPE__BODY_TASK_RESULT:
        sched_task_result(c, e, m, env);
        return; /* consumed */
    case PLEXA__ENVELOPE__BODY_TASK_STARTED:
        sched_task_started(c, e, env);
        break;
    case PLEXA__ENVELOPE__BODY_TASK_STOLEN:
        sched_task_stolen(c, e, env);
        break;
    case PLEXA__ENVELOPE__BODY_OUTPUT:
        if (env->output->has_task_id && env->output->task_id)
            sched_task_output(c, e, env);
        else
            mec_engine_output(c, e, env);
        break;
    case PLEXA__ENVELOPE__BODY_HEARTBEAT:
        break;
    default:
        PLX_WARN("engine %d sent an unexpected %s; ignored", e->id,
                 plx_envelope_body_name(env));
        break;
    }
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void reg_reply_ids(plx_controller_t *c, peer_t *p, uint64_t reply_to)
{
    int32_t *ids = malloc(((size_t)c->nengines + 1) * sizeof *ids);
    if (!ids) {
        ctl_send_error(p, reply_to, PLX_ENOMEM, "out of memory listing engines");
        return;
    }
    size_t n = 0;
    for (int32_t i = 0; i < c->engines_cap; i++)
        if (c->engines[i])
            ids[n++] = i;
    qsort(ids, n, sizeof *ids, cmp_i32);
    Plexa__IdList l = PLEXA__ID_LIST__INIT;
    l.n_ids = n;
    l.ids = ids;
    ctl_send_body(p, reply_to, PLEXA__ENVELOPE__BODY_ID_LIST, &l);
    free(ids);
}

/* After a big transfer the payload's memory goes back to the system: big
 * blocks are unmapped when freed, but glibc keeps smaller freed chunks in
 * its heap (its mmap threshold grows with the sizes it has seen). */
#define GIVE_BACK_BYTES ((uint64_t)64 << 20)
static void give_back(plx_controller_t *c)
{
    uint64_t held = atomic_load(&c->budget.held);
    if (c->budget.peak > held + GIVE_BACK_BYTES)
        malloc_trim(0);
    c->budget.peak = held;
}

/* Every period: declare silent engines dead, then ping the others. The
 * engine's I/O thread answers without the GIL, so a busy engine is never
 * mistaken for a dead one. */
static void heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_controller_t *c = (plx_controller_t *)((char *)w - offsetof(plx_controller_t, hb_timer));
    double now = ev_now(loop);
    double limit = c->opts.heartbeat_period * c->opts.heartbeat_misses;
    Plexa__Heartbeat hb = PLEXA__HEARTBEAT__INIT;
    hb.has_seq = 1;
    hb.seq = ++c->hb_seq;
    for (int32_t i = 0; i < c->engines_cap; i++) {
        engine_t *e = c->engines[i];
        if (!e)
            continue;
        /* Bytes flowing on a huge frame mean it is alive even though no
         * whole message arrived (pings queue behind the frame). Anything
         * received counts; sent bytes only in bulk, as the kernel buffers a
         * few MB for a peer that reads nothing (a stopped engine). */
        uint64_t in = plx_conn_bytes_received(e->peer->conn);
        uint64_t out = plx_conn_bytes_sent(e->peer->conn);
        if (in != e->last_in || out - e->last_out >= LIVE_SEND_BYTES)
            e->last_seen = now;
        e->last_in = in;
        e->last_out = out;
        if (now - e->last_seen > limit) {
            char why[128];
            snprintf(why, sizeof why, "no heartbeat for %.1fs", now - e->last_seen);
            plx_conn_close(e->peer->conn, 0, PLX_ETIMEDOUT, why);
            continue;
        }
        ctl_send_body(e->peer, 0, PLEXA__ENVELOPE__BODY_HEARTBEAT, &hb);
    }
    plx_buf_pool_trim(POOL_IDLE_S);
    give_back(c);
    status_tick(c);
    sched_tick(c);
}

void reg_start_heartbeat(plx_controller_t *c)
{
    ev_timer_init(&c->hb_timer, heartbeat_cb, c->opts.heartbeat_period,
                  c->opts.heartbeat_period);
    ev_timer_start(c->loop, &c->hb_timer);
}
