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

#include "plx_envelope.h"
#include "plx_fetch.h"
#include "plx_plugin_loader.h"
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

/* ---- fetching (Python thread, without the GIL) ----------------------------- */

int plx_engine_peer_fetch(const char *url, double timeout_s, plx_msg_t **msg,
                          Plexa__Envelope **env, plx_err_t *err)
{
    plx_url_t u;
    *msg = NULL;
    *env = NULL;
    if (plx_url_parse(url, &u, err) != PLX_OK)
        return err->code;
    const plx_transport_ops *ops = plx_transport_find(u.transport, err);
    if (!ops)
        return err->code;
    plx_fetch_t f = { .ops = ops, .host = u.host, .port = u.port, .fingerprint = u.fingerprint,
                      .ticket = u.token };
    if (plx_fetch_all(&f, 1, timeout_s, NULL))
        return plx_err_set(err, f.code, "%s", f.why);
    Plexa__Envelope *got = plx_envelope_unpack(f.msg, err);
    if (!got || got->body_case != PLEXA__ENVELOPE__BODY_ENGINE_REPLY) {
        if (got)
            plx_err_set(err, PLX_EPROTO, "the engine answered with a %s, not the values",
                        plx_envelope_body_name(got));
        plx_envelope_free(&got);
        plx_msg_destroy(&f.msg);
        return err->code ? err->code : PLX_EPROTO;
    }
    *msg = f.msg;
    *env = got;
    return PLX_OK;
}
