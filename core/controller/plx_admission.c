/*
 * What the controller lets in (docs/threat-model.md, "Memory"):
 *
 *  - Before a valid Hello a connection may send only small frames
 *    (PREAUTH_ENVELOPE bytes, no buffers): nobody who cannot authenticate
 *    makes the controller hold memory. At most MAX_UNAUTH connections wait
 *    for their Hello; a newcomer beyond that pushes the oldest out, so a
 *    flood cannot lock out the engines and clients that come next. Each
 *    has auth_timeout to authenticate.
 *  - After the Hello, each role gets its frame limits: engines and
 *    clients the configured ones, the read-only status role small ones.
 *  - Payload the controller receives counts against one budget
 *    ([controller] max_memory): a message whose buffers would go over is
 *    read past and dropped by the decoder, and answered with an error that
 *    names the bound and the size; the connection stays.
 */
#include "plx_controller_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "plx_envelope.h"
#include "plx_log.h"

/* A Hello is well under 1 KiB (role, a 64-character token, a host name,
 * ids); anything larger before authentication is not a Hello. */
#define PREAUTH_ENVELOPE 4096u
/* Status requests and their answers are small, and carry no buffers. */
#define STATUS_ENVELOPE  (64u << 10)
/* Connections waiting for their Hello at once. */
#define MAX_UNAUTH 512u

const plx_limits_t *adm_limits(const plx_controller_t *c, Plexa__Role role)
{
    static const plx_limits_t preauth = {PREAUTH_ENVELOPE, 0, 0, PREAUTH_ENVELOPE};
    static const plx_limits_t status = {STATUS_ENVELOPE, 0, 0, STATUS_ENVELOPE};
    if (role == PLEXA__ROLE__ROLE_NONE)
        return &preauth;
    if (role == PLEXA__ROLE__ROLE_STATUS)
        return &status;
    return &c->opts.limits;
}

/* ---- the payload budget ----------------------------------------------------- */

static uint64_t limit_of(int resource)
{
    struct rlimit r;
    if (getrlimit(resource, &r) != 0 || r.rlim_cur == RLIM_INFINITY)
        return UINT64_MAX;
    return (uint64_t)r.rlim_cur;
}

/* What the process may use: physical memory, or a lower address-space or
 * data limit. Three quarters of it go to payload; the rest is the
 * controller's own (its code, TLS, tasks, results). */
static uint64_t auto_budget(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t mem = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    uint64_t as = limit_of(RLIMIT_AS), data = limit_of(RLIMIT_DATA);
    if (as < mem)
        mem = as;
    if (data < mem)
        mem = data;
    return mem == UINT64_MAX ? 0 : mem / 4 * 3;
}

void adm_init(plx_controller_t *c)
{
    c->budget.max = c->opts.max_memory ? c->opts.max_memory : auto_budget();
    atomic_store(&c->budget.held, 0);
}

/* "1.5 GiB" */
static void size_text(uint64_t n, char *out, size_t len)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%llu bytes", (unsigned long long)n);
    else
        snprintf(out, len, "%.1f %s", v, units[u]);
}

/* Why m's buffers were dropped, in words. */
static void refusal_text(const plx_controller_t *c, const plx_msg_t *m, const char *what,
                         char *out, size_t len)
{
    char size[32], max[32], held[32];
    size_text(m->refused_bytes, size, sizeof size);
    size_text(c->budget.max, max, sizeof max);
    size_text(atomic_load(&c->budget.held), held, sizeof held);
    if (m->refused_code == PLX_ENOMEM)
        snprintf(out, len, "%s of %s was refused: the controller ran out of memory receiving "
                 "it (%s of payload held)", what, size, held);
    else
        snprintf(out, len, "%s of %s was refused: it does not fit the controller's memory "
                 "budget of %s (%s held now; [controller] max_memory in cluster.conf)",
                 what, size, max, held);
}

/* ---- unauthenticated connections ------------------------------------------------ */

static void unauth_unlink(plx_controller_t *c, peer_t *p)
{
    if (p->uprev)
        p->uprev->unext = p->unext;
    else if (c->unauth_head == p)
        c->unauth_head = p->unext;
    else
        return;   /* not on the list */
    if (p->unext)
        p->unext->uprev = p->uprev;
    else
        c->unauth_tail = p->uprev;
    p->uprev = p->unext = NULL;
    c->n_unauth--;
}

void adm_accepted(plx_controller_t *c, peer_t *p)
{
    plx_conn_set_budget(p->conn, &c->budget);
    p->uprev = c->unauth_tail;
    p->unext = NULL;
    if (c->unauth_tail)
        c->unauth_tail->unext = p;
    else
        c->unauth_head = p;
    c->unauth_tail = p;
    if (++c->n_unauth <= MAX_UNAUTH)
        return;
    peer_t *old = c->unauth_head;
    unauth_unlink(c, old);
    PLX_WARN("%u connections wait for their Hello: dropping the oldest, %s", MAX_UNAUTH + 1,
             old->addr);
    plx_conn_close(old->conn, 0, PLX_ELIMIT, "too many connections waiting to authenticate");
}

void adm_authenticated(plx_controller_t *c, peer_t *p)
{
    unauth_unlink(c, p);
    plx_conn_set_limits(p->conn, adm_limits(c, p->role));
}

void adm_forget(plx_controller_t *c, peer_t *p)
{
    unauth_unlink(c, p);
}

/* ---- refused frames -------------------------------------------------------------- */

/* A reply's values and error (owned by its unpacked envelope) become e. */
static void replace_with_error(Plexa__Value ***values, size_t *n, Plexa__RemoteError **error,
                               Plexa__RemoteError *e)
{
    for (size_t i = 0; i < *n; i++)
        protobuf_c_message_free_unpacked(&(*values)[i]->base, NULL);
    free(*values);
    *values = NULL;
    *n = 0;
    if (*error)
        protobuf_c_message_free_unpacked(&(*error)->base, NULL);
    *error = e;
}

/* An error the unpacked envelope owns (freed with it). */
static Plexa__RemoteError *owned_error(const char *ename, const char *text)
{
    Plexa__RemoteError *e = malloc(sizeof *e);
    if (!e)
        return NULL;
    plexa__remote_error__init(e);
    e->ename = strdup(ename);
    e->evalue = strdup(text);
    e->traceback = strdup(text);
    if (!e->ename || !e->evalue || !e->traceback) {
        protobuf_c_message_free_unpacked(&e->base, NULL);
        return NULL;
    }
    return e;
}

/* An engine's reply or task result whose buffers were dropped becomes an
 * error reply from that engine, which the request then reports. */
static int engine_refused(plx_controller_t *c, peer_t *p, plx_msg_t *m, Plexa__Envelope *env)
{
    char text[400];
    refusal_text(c, m, "the engine's reply", text, sizeof text);
    PLX_WARN("engine %d: %s", p->engine ? p->engine->id : -1, text);
    Plexa__RemoteError *e = owned_error("MemoryError", text);
    if (!e)
        return 0;   /* the request fails when its values are missing */
    if (env->body_case == PLEXA__ENVELOPE__BODY_ENGINE_REPLY) {
        Plexa__EngineReply *r = env->engine_reply;
        replace_with_error(&r->values, &r->n_values, &r->error, e);
    } else if (env->body_case == PLEXA__ENVELOPE__BODY_TASK_RESULT) {
        Plexa__TaskResult *r = env->task_result;
        replace_with_error(&r->values, &r->n_values, &r->error, e);
        r->has_status = 1;
        r->status = PLEXA__TASK_STATUS__TASK_FAILED;
    } else {
        protobuf_c_message_free_unpacked(&e->base, NULL);
    }
    return 0;   /* processed as usual, now an error */
}

int adm_refused(peer_t *p, plx_msg_t *m, Plexa__Envelope *env)
{
    plx_controller_t *c = p->ctl;
    if (!m->refused_code)
        return 0;
    if (p->role == PLEXA__ROLE__ROLE_ENGINE)
        return engine_refused(c, p, m, env);
    char text[400];
    refusal_text(c, m, plx_envelope_body_name(env), text, sizeof text);
    PLX_WARN("client %s: %s", p->addr, text);
    if (env->body_case == PLEXA__ENVELOPE__BODY_TASK_SUBMIT && env->task_submit->has_quiet &&
        env->task_submit->quiet)
        sched_refuse_submission(c, p, env, text);   /* nobody waits for an Error */
    else
        ctl_send_error(p, env->id, m->refused_code == PLX_ENOMEM ? PLX_ENOMEM : PLX_ELIMIT,
                       "%s", text);
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
    return 1;
}
