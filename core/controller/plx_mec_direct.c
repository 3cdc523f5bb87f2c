/*
 * Direct pulls: what a client pulls goes from each engine to the client
 * itself, and the controller only issues the tickets.
 *
 * Pulled through the controller, a value crosses the controller's host
 * twice (in and out) and, over TLS, is decrypted and encrypted again
 * there; a gather of a cluster's results makes the controller hold each
 * piece. A client that can reach the engines asks for a direct pull
 * (Pull.direct). Each share then goes to its engine as a Pull with one
 * ticket (as for plexa.ref: plx_mec_serve.c): the engine keeps values of
 * DIRECT_MIN bytes or more and answers with where it serves them, and the
 * controller passes that URL on, with the ticket, in the client's reply.
 * Smaller values, and engines that cannot serve, answer with the values,
 * which reach the client as usual.
 *
 * The engine holds the values themselves, not a copy (Pull.serve_hold):
 * what it runs next waits until the client has fetched them, as it waits
 * for a pull's values to be sent. So a ticket must not outlive its use:
 * the client uses it at once; a client that cannot connect pulls again
 * through the controller with the tickets it could not use, which the
 * controller ends first (ServeEnd); the tickets of a client that goes are
 * ended then (the last DIRECT_KEPT it was given); and the engine drops
 * what nobody came for after DIRECT_TTL_S.
 *
 * Which engines a client can reach is a guess the client can correct: an
 * engine that connects from a network address is reachable from anywhere
 * the controller's clients are; one that connects from loopback only from
 * its own host (the client's Hello names its host). A client behind an
 * ssh tunnel never asks.
 */
#include "plx_controller_int.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plx_conn.h"
#include "plx_log.h"
#include "plx_url.h"

/* Bytes from which a value is worth a connection of its own: a TLS
 * handshake costs this VM ~2 ms, what a pull through the controller loses
 * on ~3 MiB (measured with 1 MiB: 1.7 ms relayed, 3.5 ms direct). */
#define DIRECT_MIN   (8u << 20)
#define DIRECT_TTL_S 60u
#define DIRECT_KEPT  64           /* tickets remembered per client, to end when it goes */
#define ENDS_MAX     64           /* tickets a client's pull may end */

/* A client's latest tickets, with the engine serving each. */
struct mdirect_kept {
    int32_t  engine[DIRECT_KEPT];
    char     ticket[DIRECT_KEPT][PLX_TOKEN_HEX + 1];
    unsigned n;   /* given so far: the ring holds the last DIRECT_KEPT */
};

struct mdirect {
    mserve_t *sv;   /* one per share; no ticket: through the controller */
};

static int client_local(const peer_t *client)
{
    return strncmp(client->addr, "shm:", 4) == 0 || mserve_addr_loopback(client->addr);
}

static int reaches(const peer_t *client, const engine_t *e)
{
    if (!e || strncmp(e->peer->addr, "shm:", 4) == 0)
        return 0;
    if (!mserve_addr_loopback(e->peer->addr))
        return 1;
    return client_local(client) && client->host[0] && strcmp(client->host, e->host) == 0;
}

/* The Pull each share sends: the client's keys; tickets are the
 * controller's to give. */
static int make_out(plx_controller_t *c, sub_t *s, const Plexa__Envelope *env,
                    const mserve_t *sv)
{
    Plexa__Pull pull = *env->pull;
    pull.has_direct = 0;
    pull.n_tickets = sv ? sv->ntickets : 0;
    pull.tickets = sv ? sv->ticketp : NULL;
    pull.has_serve_min = pull.has_serve_ttl_s = pull.has_serve_hold = sv != NULL;
    pull.serve_min = DIRECT_MIN;
    pull.serve_ttl_s = DIRECT_TTL_S;
    pull.serve_hold = 1;
    Plexa__Envelope e = *env;
    e.pull = &pull;
    plx_msg_t none = {0};
    return mec_make_out(c, s, &none, &e);
}

/* The client could not use these tickets of its direct pulls: the targets
 * drop what they serve for them before this pull reaches them. */
static void end_tickets(plx_controller_t *c, const mreq_t *r, const Plexa__Pull *p)
{
    Plexa__ServeEnd se = PLEXA__SERVE_END__INIT;
    se.n_tickets = p->n_tickets < ENDS_MAX ? p->n_tickets : ENDS_MAX;
    se.tickets = p->tickets;
    for (int i = 0; se.n_tickets && i < r->n; i++)
        if (r->subs[i].eng)
            ctl_send_body(r->subs[i].eng->peer, 0, PLEXA__ENVELOPE__BODY_SERVE_END, &se);
}

int mdirect_start(plx_controller_t *c, peer_t *client, mreq_t *r, const Plexa__Envelope *env)
{
    const Plexa__Pull *p = env->pull;
    end_tickets(c, r, p);
    int want = p->has_direct && p->direct && c->opts.direct_transfers && p->n_keys;
    if (want && !(r->direct = calloc(1, sizeof *r->direct)))
        return PLX_ENOMEM;
    if (want && !(r->direct->sv = calloc((size_t)r->n, sizeof *r->direct->sv)))
        return PLX_ENOMEM;
    for (int i = 0; i < r->n; i++) {
        mserve_t *sv = want && reaches(client, r->subs[i].eng) ? &r->direct->sv[i] : NULL;
        if (sv && mserve_tickets(sv, 1) != PLX_OK)
            sv = NULL;   /* this one through the controller */
        int rc = make_out(c, &r->subs[i], env, sv);
        if (rc != PLX_OK)
            return rc;
    }
    return PLX_OK;
}

static void keep(peer_t *client, int32_t engine_id, const char *ticket)
{
    if (!client->direct_kept && !(client->direct_kept = calloc(1, sizeof *client->direct_kept)))
        return;   /* the engine's TTL ends it */
    struct mdirect_kept *k = client->direct_kept;
    unsigned i = k->n++ % DIRECT_KEPT;
    k->engine[i] = engine_id;
    snprintf(k->ticket[i], sizeof k->ticket[i], "%s", ticket);
}

void mdirect_client_gone(plx_controller_t *c, peer_t *client)
{
    struct mdirect_kept *k = client->direct_kept;
    client->direct_kept = NULL;
    for (unsigned i = 0; k && i < DIRECT_KEPT && i < k->n; i++) {
        engine_t *e = reg_engine(c, k->engine[i]);
        char *t = k->ticket[i];
        Plexa__ServeEnd se = PLEXA__SERVE_END__INIT;
        se.n_tickets = 1;
        se.tickets = &t;
        if (e)
            ctl_send_body(e->peer, 0, PLEXA__ENVELOPE__BODY_SERVE_END, &se);
    }
    free(k);
}

void mdirect_answered(sub_t *s)
{
    mreq_t *r = s->req;
    mserve_t *sv = &r->direct->sv[s - r->subs];
    const char *url = s->reply->serve_url;
    if (!sv->ntickets || !url) {
        sv->ntickets = 0;   /* answered with the values: nothing kept */
        return;
    }
    if (!r->client) {
        mserve_end(r->ctl, s->engine_id, sv);   /* nobody will come for them */
        return;
    }
    char why[300] = "", full[600];
    char *copy = NULL;
    if (mserve_accept(r->ctl, s->engine_id, sv, url, why, sizeof why) == PLX_OK &&
        mserve_url(sv, 0, full, sizeof full) == PLX_OK && (copy = strdup(full))) {
        free(s->reply->serve_url);   /* unpacked with the default allocator */
        s->reply->serve_url = copy;
        keep(r->client, s->engine_id, sv->tickets[0]);
        sv->ntickets = 0;   /* the client's now: it ends it by fetching */
        return;
    }
    mserve_end(r->ctl, s->engine_id, sv);
    PLX_WARN("direct pull of %s: %s", r->desc, why[0] ? why : "out of memory");
    mec_sub_synth(s, "DirectTransferError", "engine %d could not serve the pull directly: %s",
                  (int)s->engine_id, why[0] ? why : "out of memory");
}

void mdirect_free(mreq_t *r)
{
    struct mdirect *d = r->direct;
    r->direct = NULL;
    for (int i = 0; d->sv && i < r->n; i++) {
        mserve_end(r->ctl, r->subs[i].engine_id, &d->sv[i]);   /* never answered */
        mserve_clear(&d->sv[i]);
    }
    free(d->sv);
    free(d);
}

/* ---- pushes the client serves --------------------------------------------- */

/* Whether host is an address of this machine: one a socket can be bound
 * to (a client on the controller's host serves where engines reach the
 * controller, which may be any of its addresses). */
static int host_is_here(const char *host)
{
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_DGRAM }, *ai = NULL;
    if (getaddrinfo(host, "0", &hints, &ai) != 0)
        return 0;
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int here = fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return here;
}

/* Why a push served at u by client is refused; NULL if it is not. */
static const char *served_refusal(const plx_controller_t *c, const peer_t *client,
                                  const mreq_t *r, const Plexa__Push *p, const plx_url_t *u,
                                  int url_ok)
{
    if (r->n != 1)
        return "goes to more than one engine (a ticket is good once)";
    if (!url_ok)
        return "names a malformed URL";
    if (client_local(client) ? !host_is_here(u->host) : !mserve_same_host(client->addr, u->host))
        return "is served somewhere other than the client's host";
    for (size_t i = 0; i < p->n_values; i++)
        if (!p->values[i]->name || !p->values[i]->value)
            return "has a value without a name";
    if (!c->opts.direct_transfers && p->served_only)
        return "is off in this profile ([controller] direct_transfers = false)";
    return NULL;
}

/* Share s as refs to url, index i for value i. */
static int make_refs_out(plx_controller_t *c, sub_t *s, const Plexa__Push *p, char *url)
{
    size_t n = p->n_values;
    Plexa__NamedValue *nv = calloc(n ? n : 1, sizeof *nv);
    Plexa__NamedValue **nvp = calloc(n ? n : 1, sizeof *nvp);
    Plexa__Value *v = calloc(n ? n : 1, sizeof *v);
    Plexa__Ref *ref = calloc(n ? n : 1, sizeof *ref);
    int rc = nv && nvp && v && ref ? PLX_OK : PLX_ENOMEM;
    for (size_t i = 0; rc == PLX_OK && i < n; i++) {
        plexa__ref__init(&ref[i]);
        ref[i].key = p->values[i]->name;
        ref[i].url = url;
        ref[i].has_index = 1;
        ref[i].index = (uint32_t)i;
        plexa__value__init(&v[i]);
        v[i].kind_case = PLEXA__VALUE__KIND_REF;
        v[i].ref = &ref[i];
        plexa__named_value__init(&nv[i]);
        nv[i].name = p->values[i]->name;
        nv[i].value = &v[i];
        nvp[i] = &nv[i];
    }
    if (rc == PLX_OK) {
        Plexa__Push push = PLEXA__PUSH__INIT;
        push.n_values = n;
        push.values = nvp;
        Plexa__Envelope env = PLEXA__ENVELOPE__INIT;
        env.body_case = PLEXA__ENVELOPE__BODY_PUSH;
        env.push = &push;
        plx_msg_t none = {0};
        rc = mec_make_out(c, s, &none, &env);
    }
    free(nv);
    free(nvp);
    free(v);
    free(ref);
    return rc;
}

/* The push as the client sent it, without saying where it is served. */
static int make_values_out(plx_controller_t *c, sub_t *s, const plx_msg_t *m,
                           const Plexa__Envelope *env)
{
    Plexa__Push push = *env->push;
    push.served_at = NULL;
    push.has_served_only = 0;
    Plexa__Envelope e = *env;
    e.push = &push;
    return mec_make_out(c, s, m, &e);
}

int mdirect_push(plx_controller_t *c, peer_t *client, mreq_t *r, const plx_msg_t *m,
                 const Plexa__Envelope *env)
{
    if (env->body_case != PLEXA__ENVELOPE__BODY_PUSH || !env->push->served_at)
        return 0;
    const Plexa__Push *p = env->push;
    plx_url_t u;
    int url_ok = plx_url_parse(p->served_at, &u, NULL) == PLX_OK;
    const char *why = served_refusal(c, client, r, p, &u, url_ok);
    if (why)
        PLX_WARN("client %s serves the values of %s itself, which is refused: the push %s; "
                 "they go through the controller", client->addr, r->desc, why);
    sub_t *s = &r->subs[0];
    const engine_t *e = s->eng;
    int fetch = !why && c->opts.direct_transfers && e && strncmp(e->peer->addr, "shm:", 4) != 0;
    int rc = fetch ? make_refs_out(c, s, p, p->served_at) : PLX_ENOTFOUND;
    if (rc == PLX_ENOTFOUND && !p->served_only) {
        rc = PLX_OK;   /* shared memory, or refused: the values */
        for (int i = 0; rc == PLX_OK && i < r->n; i++)
            rc = make_values_out(c, &r->subs[i], m, env);
    }
    if (rc == PLX_ENOTFOUND) {
        /* The client pushes the values again when told why. */
        for (int i = 0; i < r->n; i++)
            mec_sub_synth(&r->subs[i], "DirectTransferError", "engine %d cannot fetch values "
                          "from the client (%s)", (int)r->subs[i].engine_id, why ? why
                          : !e ? "it is gone" : "it is connected through shared memory or "
                          "direct transfers are off");
        return 2;
    }
    if (rc != PLX_OK) {
        ctl_send_error(client, env->id, PLX_ENOMEM, "out of memory");
        return PLX_ENOMEM;
    }
    return 1;
}
