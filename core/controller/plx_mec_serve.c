/*
 * Engines serving values to other engines, for the controller's users of
 * direct transfers: pushes of plexa.refs (plx_mec_refs.c), broadcast
 * pushes (plx_mec_bcast.c), and clients' direct pulls (plx_mec_direct.c).
 *
 * A source is asked, by a Pull of the controller's own (a "fetch": an
 * mreq with no client, queued on the source like any request), to keep
 * the values of some names and serve them to whoever presents one of the
 * tickets the Pull carries, each ticket once. It answers with where it
 * serves them (serve_url), which must be the address its controller
 * connection comes from; each receiving share then names that URL with a
 * ticket of its own. When the push is over, ServeEnd tells the source to
 * drop what it kept.
 */
#include "plx_controller_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_log.h"
#include "plx_url.h"

int mserve_tickets(mserve_t *sv, size_t n)
{
    sv->tickets = calloc(n ? n : 1, sizeof *sv->tickets);
    sv->ticketp = calloc(n ? n : 1, sizeof *sv->ticketp);
    for (size_t i = 0; sv->tickets && sv->ticketp && i < n; i++) {
        plx_err_t err = {0};
        if (plx_token_new(sv->tickets[i], &err) != PLX_OK)
            break;
        sv->ticketp[i] = sv->tickets[i];
        sv->ntickets++;
    }
    if (sv->ntickets == n)
        return PLX_OK;
    sv->ntickets = 0;
    return PLX_ENOMEM;
}

mreq_t *mserve_fetch(plx_controller_t *c, mreq_t *parent, int idx, int32_t engine_id,
                     char **keys, size_t nkeys, const mserve_t *sv, int relay)
{
    mreq_t *f = calloc(1, sizeof *f);
    if (!f || !(f->subs = calloc(1, sizeof *f->subs))) {
        free(f);
        return NULL;
    }
    f->ctl = c;
    f->fetch = 1;
    f->parent = parent;
    f->fetch_idx = idx;
    f->n = 1;
    snprintf(f->method, sizeof f->method, "pull");
    snprintf(f->desc, sizeof f->desc, "pull: %.40s (for %.70s)", keys[0], parent->desc);
    plx_printable(f->desc);
    sub_t *s = &f->subs[0];
    s->req = f;
    s->engine_id = engine_id;
    s->eng = reg_engine(c, engine_id);
    Plexa__Pull pull = PLEXA__PULL__INIT;
    pull.n_keys = nkeys;
    pull.keys = keys;
    pull.n_tickets = sv ? sv->ntickets : 0;
    pull.tickets = sv ? sv->ticketp : NULL;
    pull.has_relay = relay;
    pull.relay = relay;
    Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
    env.body_case = PLEXA__ENVELOPE__BODY_PULL;
    env.pull = &pull;
    plx_msg_t none = {0};
    if (mec_make_out(c, s, &none, &env) != PLX_OK) {
        free(f->subs);
        free(f);
        return NULL;
    }
    return f;
}

/* The host of addr ("IP:PORT" or "[IP6]:PORT", as the listener names
 * peers) into out; 0 if addr has no port. */
static int addr_host(const char *addr, char *out, size_t len)
{
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return 0;
    const char *h = addr;
    size_t n = (size_t)(colon - addr);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    return snprintf(out, len, "%.*s", (int)n, h) < (int)len;
}

/* Whether url_host is the host of addr. An engine serves on the address
 * its controller connection leaves from, which is where the controller
 * sees it come from: anything else would let a rogue engine send every
 * target, with its ticket, to an address of its choosing. */
static int same_host(const char *addr, const char *url_host)
{
    char h[64];
    return addr_host(addr, h, sizeof h) && strcmp(h, url_host) == 0;
}

int mserve_accept(plx_controller_t *c, int32_t engine_id, mserve_t *sv, const char *url,
                  char *why, size_t whylen)
{
    plx_err_t err = {0};
    engine_t *e = reg_engine(c, engine_id);
    if (plx_url_parse(url, &sv->serve, &err) != PLX_OK) {
        snprintf(why, whylen, "engine %d serves the values at a malformed URL: %s",
                 (int)engine_id, err.msg);
        return PLX_EPROTO;
    }
    if (!e || !same_host(e->peer->addr, sv->serve.host)) {
        snprintf(why, whylen, "engine %d serves the values at %.100s, not at the address it "
                 "connects from (%s): refused", (int)engine_id, sv->serve.host,
                 e ? e->peer->addr : "gone");
        return PLX_EPROTO;
    }
    sv->served = 1;
    return PLX_OK;
}

int mserve_url(const mserve_t *sv, size_t i, char *out, size_t len)
{
    plx_url_t u = sv->serve;
    snprintf(u.token, sizeof u.token, "%s", sv->tickets[i]);
    return plx_url_format(&u, out, len, NULL) == PLX_OK ? PLX_OK : PLX_ELIMIT;
}

int mserve_same_host(const char *addr, const char *host)
{
    return same_host(addr, host);
}

int mserve_addr_loopback(const char *addr)
{
    char h[64];
    return addr_host(addr, h, sizeof h) && plx_addr_is_loopback(h);
}

int mserve_reachable(const engine_t *src, const engine_t *dst)
{
    if (strncmp(src->peer->addr, "shm:", 4) == 0 || dst->no_direct)
        return 0;
    /* Engines reaching the controller through a tunnel all come from its
     * loopback, wherever they run: a loopback source serves only engines
     * of its own host. */
    return !mserve_addr_loopback(src->peer->addr) || strcmp(src->host, dst->host) == 0;
}

int mserve_one_host(const engine_t *a, const engine_t *b)
{
    char ha[64], hb[64];
    if (!addr_host(a->peer->addr, ha, sizeof ha) || !addr_host(b->peer->addr, hb, sizeof hb))
        return 0;
    /* Loopback (tunnels, or the controller's own host): the names they
     * report; else where they connect from. */
    if (plx_addr_is_loopback(ha) || plx_addr_is_loopback(hb))
        return plx_addr_is_loopback(ha) && plx_addr_is_loopback(hb) && strcmp(a->host, b->host) == 0;
    return strcmp(ha, hb) == 0;
}

void mserve_end(plx_controller_t *c, int32_t engine_id, mserve_t *sv)
{
    engine_t *e = reg_engine(c, engine_id);
    if (!sv->ntickets || !e)
        return;
    Plexa__ServeEnd se = PLEXA__SERVE_END__INIT;
    se.n_tickets = sv->ntickets;
    se.tickets = sv->ticketp;
    ctl_send_body(e->peer, 0, PLEXA__ENVELOPE__BODY_SERVE_END, &se);
    sv->ntickets = 0;
}

void mserve_clear(mserve_t *sv)
{
    free(sv->tickets);
    free(sv->ticketp);
    memset(sv, 0, sizeof *sv);
}
