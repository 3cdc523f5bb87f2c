/*
 * Direct transfers between engines, and to clients (proto/plexa.proto, Ref
 * and Pull): the engine's side of core/peer.
 *
 * Serving (the source): for a push of plexa.refs, a broadcast tree or a
 * client's direct pull, the controller asks an engine to serve values
 * itself: a Pull with tickets. The Python thread exports the values as
 * for a pull, packs them into one EngineReply frame and offers it
 * (plx_serve.h) on the address its controller connection goes out from;
 * it answers the controller with the URL instead. The I/O thread runs the
 * listener.
 *
 * Fetching (a target): the Python thread, the GIL released, fetches from
 * the URL the controller put in the Ref (plx_fetch.h).
 *
 * Relaying (a broadcast tree's inner engine, plx_mec_bcast.c): a Pull with
 * relay set asks the I/O thread to serve the next push as it arrives. It
 * offers a relay (plx_relay.h) and answers at once with the URL; then
 * either the push brings the values (the root: a tap on the controller
 * connection passes them on as an EngineReply while they are read) or it
 * brings refs (the Python thread's fetch of them passes that frame on).
 *
 * Engines connected through shared memory or an ssh tunnel have no
 * endpoint other engines could reach: they answer with the values, and the
 * controller forwards them as usual.
 */
#include "plx_engine_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "plx_addr.h"
#include "plx_envelope.h"
#include "plx_fetch.h"
#include "plx_log.h"
#include "plx_plugin_loader.h"
#include "plx_relay.h"
#include "plx_serve.h"

/* ---- serving ---------------------------------------------------------------- */

static void wake_io(void *ud)
{
    plx_engine_t *e = ud;
    ev_async_send(e->loop, &e->wake);
}

int plx_engine_peer_init(plx_engine_t *e)
{
    e->peers = plx_serve_new("engine", wake_io, e);
    return e->peers ? PLX_OK : PLX_ENOMEM;
}

void plx_engine_peer_on_wake(plx_engine_t *e)
{
    plx_serve_on_wake(e->peers, e->loop);
}

void plx_engine_peer_io_stop(plx_engine_t *e)
{
    plx_engine_relay_drop(e);
    plx_serve_io_stop(e->peers);
}

void plx_engine_peer_fini(plx_engine_t *e)
{
    plx_serve_destroy(&e->peers);
}

/* The local address of the controller connection, which other hosts of
 * the cluster reach this one by; PLX_ENOTFOUND when there is none. */
static int local_address(plx_engine_t *e, char *host, size_t len, plx_err_t *err)
{
    if (e->tunnel)
        return plx_err_set(err, PLX_ENOTFOUND, "the engine reaches the controller through "
                           "an ssh tunnel");
    if (plx_sock_local_host(atomic_load(&plx_engine_conn_fd), host, len) != PLX_OK)
        return plx_err_set(err, PLX_ENOTFOUND, "the controller connection is not a network "
                           "one (shared memory), or is gone");
    return PLX_OK;
}

int plx_engine_peer_offer(plx_engine_t *e, char *const *tickets, size_t n, double ttl_s,
                          plx_msg_t **msg, char *url, size_t url_len, plx_err_t *err)
{
    char host[INET6_ADDRSTRLEN];
    if (local_address(e, host, sizeof host, err) != PLX_OK)
        return err->code;
    return plx_serve_offer(e->peers, e->url.transport, host, tickets, n, ttl_s, msg, url,
                           url_len, err);
}

void plx_engine_peer_end(plx_engine_t *e, char *const *tickets, size_t n)
{
    plx_serve_end(e->peers, tickets, n);
}

/* ---- relaying (the I/O thread) ----------------------------------------------- */

void plx_engine_relay_drop(plx_engine_t *e)
{
    if (e->conn)
        plx_conn_set_tap(e->conn, NULL);   /* a push half read ends its relay */
    if (e->relay_next)
        plx_relay_finish(e->relay_next, 0);
    plx_relay_unref(&e->relay_next);
}

/* A push of values alone (no refs): what the tap passes on. */
static int push_of_values(const Plexa__Envelope *env)
{
    if (env->body_case != PLEXA__ENVELOPE__BODY_PUSH)
        return 0;
    for (size_t i = 0; i < env->push->n_values; i++) {
        const Plexa__Value *v = env->push->values[i]->value;
        if (!v || v->kind_case == PLEXA__VALUE__KIND_REF)
            return 0;
    }
    return 1;
}

/* A push's envelope is in: pass it on as an EngineReply of its values (in
 * the push's order, the buffers as they are), the bytes after it as they
 * come. Any other frame is left alone, and the tap waits for the push. */
static int tap_head(void *ud, const uint8_t *bytes, uint32_t len, uint32_t nbufs)
{
    plx_engine_t *e = ud;
    Plexa__Envelope *env = plexa__envelope__unpack(NULL, len, bytes);
    if (!env || !e->relay_next || !push_of_values(env)) {
        if (env)
            plexa__envelope__free_unpacked(env, NULL);
        return PLX_TAP_SKIP;
    }
    size_t n = env->push->n_values;
    Plexa__Value **vals = calloc(n ? n : 1, sizeof *vals);
    for (size_t i = 0; vals && i < n; i++)
        vals[i] = env->push->values[i]->value;
    Plexa__EngineReply rep = PLEXA__ENGINE_REPLY__INIT;
    rep.has_engine_id = 1;
    rep.engine_id = plx_engine_id(e);
    rep.n_values = n;
    rep.values = vals;
    Plexa__Envelope out = PLEXA__ENVELOPE__INIT;
    out.body_case = PLEXA__ENVELOPE__BODY_ENGINE_REPLY;
    out.engine_reply = &rep;
    plx_err_t err = {0};
    plx_msg_t *m = vals ? plx_envelope_pack(&out, &err) : NULL;
    free(vals);
    plexa__envelope__free_unpacked(env, NULL);
    uint8_t hdr[PLX_FRAME_HDR_LEN];
    if (m) {
        plx_frame_header(hdr, m->env_len, nbufs);
        plx_relay_append(e->relay_next, hdr, sizeof hdr);
        plx_relay_append(e->relay_next, plx_msg_env(m), m->env_len);
    } else {
        plx_relay_finish(e->relay_next, 0);
    }
    plx_msg_destroy(&m);
    return PLX_TAP_TAKE;   /* even failed: the tap is done with it */
}

static void tap_bytes(void *ud, const uint8_t *p, size_t n)
{
    plx_engine_t *e = ud;
    if (e->relay_next)
        plx_relay_append(e->relay_next, p, n);
}

static void tap_end(void *ud, int whole)
{
    plx_engine_t *e = ud;
    if (e->relay_next)
        plx_relay_finish(e->relay_next, whole);
    plx_relay_unref(&e->relay_next);
}

/* The answer to a relay Pull: where, or (url NULL) nothing, and the
 * controller sends the engines it was to serve the values itself. */
static void relay_answer(plx_engine_t *e, const Plexa__Envelope *req, const char *url)
{
    Plexa__EngineReply rep = PLEXA__ENGINE_REPLY__INIT;
    rep.has_engine_id = 1;
    rep.engine_id = plx_engine_id(e);
    rep.method = "pull";
    rep.serve_url = (char *)url;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.has_id = 1;
    env.id = plx_engine_next_id(e);
    env.has_reply_to = req->has_id;
    env.reply_to = req->id;
    env.body_case = PLEXA__ENVELOPE__BODY_ENGINE_REPLY;
    env.engine_reply = &rep;
    plx_engine_io_send(e, &env);
}

int plx_engine_relay_pull(plx_engine_t *e, const Plexa__Envelope *env)
{
    if (env->body_case != PLEXA__ENVELOPE__BODY_PULL || !env->pull->relay)
        return 0;
    const Plexa__Pull *p = env->pull;
    plx_engine_relay_drop(e);   /* a tree that never sent its push */
    char host[INET6_ADDRSTRLEN], url[320];
    plx_err_t err = {0};
    plx_relay_t *r = plx_relay_new(p->n_tickets);
    if (!r)
        plx_err_set(&err, PLX_ENOMEM, "out of memory for a relay");
    else if (local_address(e, host, sizeof host, &err) == PLX_OK &&
             plx_serve_offer_relay(e->peers, e->loop, e->url.transport, host, p->tickets,
                                   p->n_tickets, p->serve_ttl_s, r, url, sizeof url,
                                   &err) == PLX_OK) {
        e->relay_next = r;
        plx_tap_t tap = { .head = tap_head, .bytes = tap_bytes, .end = tap_end, .ud = e };
        plx_conn_set_tap(e->conn, &tap);
        relay_answer(e, env, url);
        return 1;
    }
    PLX_DEBUG("not relaying a broadcast: %s", err.msg);
    plx_relay_unref(&r);
    relay_answer(e, env, NULL);
    return 1;
}

plx_relay_t *plx_engine_relay_claim(plx_engine_t *e, const Plexa__Envelope *env)
{
    if (!e->relay_next || env->body_case != PLEXA__ENVELOPE__BODY_PUSH || push_of_values(env))
        return NULL;
    plx_conn_set_tap(e->conn, NULL);
    plx_relay_t *r = e->relay_next;
    e->relay_next = NULL;
    return r;
}

/* ---- fetching (Python thread, without the GIL) ----------------------------- */

int plx_engine_peer_fetch(const char *url, double timeout_s, plx_relay_t *tee, plx_msg_t **msg,
                          Plexa__Envelope **env, plx_err_t *err)
{
    plx_url_t u;
    plx_fetch_t f = { .tee = tee };
    *msg = NULL;
    *env = NULL;
    if (plx_fetch_from_url(&f, &u, url, err) != PLX_OK) {
        if (tee)
            plx_relay_finish(tee, 0);
        return err->code;
    }
    if (plx_fetch_all(&f, 1, timeout_s, NULL))
        return plx_err_set(err, f.code, "%s", f.why);
    if (!(*env = plx_fetch_reply(f.msg, err))) {
        plx_msg_destroy(&f.msg);
        return err->code ? err->code : PLX_EPROTO;
    }
    *msg = f.msg;
    return PLX_OK;
}
