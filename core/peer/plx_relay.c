/*
 * Relays: see plx_relay.h.
 */
#include "plx_relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "plexa/error.h"

#include "plx_bufpool.h"

/* Pooled blocks (plx_bufpool.h): a relay's pages are warm, not faulted in
 * afresh for every broadcast. */
#define BLOCK       PLX_RELAY_BLOCK
_Static_assert(PLX_RELAY_BLOCK >= PLX_BUF_POOL_MIN, "relay blocks come from the pool");
#define DROPPED     UINT64_MAX

typedef struct blk {
    plx_buf_t  *b;       /* BLOCK bytes */
    uint64_t    start;   /* offset in the frame of b->data[0] */
    size_t      fill;    /* bytes written; beyond them only the producer writes */
    struct blk *next;
} blk_t;

struct plx_relay {
    atomic_int           refs;
    pthread_mutex_t      mu;
    /* under mu */
    blk_t               *head, *tail;   /* held blocks, oldest first */
    uint64_t             size;          /* bytes appended */
    int                  state;         /* 0 arriving, 1 whole, -1 never */
    size_t               n;
    uint64_t            *pos;           /* what each reader took; DROPPED */
    uint64_t             want;          /* a reader ran dry: wake it once size reaches
                                           this; 0: none waits */
    plx_relay_notify_fn  notify;
    void                *notify_ud;
};

plx_relay_t *plx_relay_new(size_t nreaders)
{
    plx_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->pos = calloc(nreaders ? nreaders : 1, sizeof *r->pos);
    if (!r->pos || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->pos);
        free(r);
        return NULL;
    }
    r->n = nreaders;
    atomic_init(&r->refs, 1);
    return r;
}

plx_relay_t *plx_relay_ref(plx_relay_t *r)
{
    atomic_fetch_add(&r->refs, 1);
    return r;
}

static void blocks_free(blk_t *b)
{
    while (b) {
        blk_t *next = b->next;
        plx_buf_unref(&b->b);
        free(b);
        b = next;
    }
}

void plx_relay_unref(plx_relay_t **rp)
{
    plx_relay_t *r = *rp;
    if (!r)
        return;
    *rp = NULL;
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    blocks_free(r->head);
    pthread_mutex_destroy(&r->mu);
    free(r->pos);
    free(r);
}

/* Under mu: the smallest offset a reader still needs; DROPPED if none. */
static uint64_t min_pos_locked(const plx_relay_t *r)
{
    uint64_t m = DROPPED;
    for (size_t i = 0; i < r->n; i++)
        if (r->pos[i] < m)
            m = r->pos[i];
    return m;
}

/* Under mu: full blocks every reader took go (the last reference may be
 * a connection still writing them). Returns them for freeing unlocked. */
static blk_t *trim_locked(plx_relay_t *r)
{
    uint64_t m = min_pos_locked(r);
    blk_t *dead = NULL, **tail = &dead;
    while (r->head && r->head->fill == BLOCK && r->head->start + BLOCK <= m) {
        blk_t *b = r->head;
        r->head = b->next;
        if (r->tail == b)
            r->tail = NULL;
        b->next = NULL;
        *tail = b;
        tail = &b->next;
    }
    return dead;
}

typedef struct wake {
    plx_relay_notify_fn fn;
    void               *ud;
} wake_t;

/* Under mu: whom to wake now, if a reader that ran dry can go on. */
static wake_t wake_locked(plx_relay_t *r)
{
    wake_t w = {0};
    if (!r->want || !r->notify || (r->state == 0 && r->size < r->want))
        return w;
    r->want = 0;
    w.fn = r->notify;
    w.ud = r->notify_ud;
    return w;
}

static void notify(wake_t w)
{
    if (w.fn)
        w.fn(w.ud);
}

/* A new tail block; PLX_ENOMEM. The producer's thread only. */
static int add_block(plx_relay_t *r)
{
    blk_t *b = calloc(1, sizeof *b);
    if (!b || !(b->b = plx_buf_new(BLOCK))) {
        free(b);
        return PLX_ENOMEM;
    }
    pthread_mutex_lock(&r->mu);
    b->start = r->size;
    if (r->tail)
        r->tail->next = b;
    else
        r->head = b;
    r->tail = b;
    pthread_mutex_unlock(&r->mu);
    return PLX_OK;
}

int plx_relay_append(plx_relay_t *r, const void *p, size_t n)
{
    const uint8_t *src = p;
    while (n) {
        pthread_mutex_lock(&r->mu);
        int over = r->state != 0, nobody = min_pos_locked(r) == DROPPED;
        blk_t *t = r->tail;
        size_t room = t && t->start + t->fill == r->size ? BLOCK - t->fill : 0;
        if (nobody && !over)
            r->size += n;   /* counted, not kept: no reader wants it */
        pthread_mutex_unlock(&r->mu);
        if (over || nobody)
            return PLX_OK;
        if (!room) {
            if (add_block(r) != PLX_OK) {
                plx_relay_finish(r, 0);
                return PLX_ENOMEM;
            }
            continue;
        }
        size_t k = n < room ? n : room;
        /* Past fill only this thread writes: copied without the lock. */
        memcpy(t->b->data + t->fill, src, k);
        pthread_mutex_lock(&r->mu);
        t->fill += k;
        r->size += k;
        wake_t w = wake_locked(r);
        pthread_mutex_unlock(&r->mu);
        notify(w);
        src += k;
        n -= k;
    }
    return PLX_OK;
}

void plx_relay_finish(plx_relay_t *r, int ok)
{
    pthread_mutex_lock(&r->mu);
    int first = r->state == 0;
    if (first)
        r->state = ok ? 1 : -1;
    wake_t w = {0};
    if (first)
        w = wake_locked(r);
    pthread_mutex_unlock(&r->mu);
    notify(w);
}

void plx_relay_set_notify(plx_relay_t *r, plx_relay_notify_fn fn, void *ud)
{
    pthread_mutex_lock(&r->mu);
    r->notify = fn;
    r->notify_ud = ud;
    pthread_mutex_unlock(&r->mu);
}

int plx_relay_next(plx_relay_t *r, size_t k, size_t min, plx_buf_t **buf, size_t *off,
                   size_t *len)
{
    int rc;
    blk_t *dead = NULL;
    *buf = NULL;
    pthread_mutex_lock(&r->mu);
    uint64_t at = k < r->n ? r->pos[k] : DROPPED;
    if (at == DROPPED) {
        rc = PLX_EINVAL;
    } else if (r->state < 0) {
        rc = PLX_EIO;
    } else if (at < r->size && (r->size - at >= min || r->state > 0)) {
        blk_t *b = r->head;
        while (b && b->start + b->fill <= at)
            b = b->next;
        /* Blocks go only once every reader took them: at is held. */
        *buf = plx_buf_ref(b->b);
        *off = (size_t)(at - b->start);
        *len = b->fill - *off;
        r->pos[k] = at + *len;
        dead = trim_locked(r);
        rc = PLX_RELAY_MORE;
    } else if (at == r->size && r->state > 0) {
        rc = PLX_RELAY_DONE;
    } else {
        uint64_t want = at + (min ? min : 1);
        if (!r->want || want < r->want)
            r->want = want;
        rc = PLX_RELAY_WAIT;
    }
    pthread_mutex_unlock(&r->mu);
    blocks_free(dead);
    return rc;
}

void plx_relay_drop_reader(plx_relay_t *r, size_t k)
{
    pthread_mutex_lock(&r->mu);
    if (k < r->n)
        r->pos[k] = DROPPED;
    if (min_pos_locked(r) == DROPPED)
        r->notify = NULL;   /* nobody left to wake: its owner may go */
    blk_t *dead = trim_locked(r);
    pthread_mutex_unlock(&r->mu);
    blocks_free(dead);
}

uint64_t plx_relay_size(plx_relay_t *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->size;
    pthread_mutex_unlock(&r->mu);
    return n;
}

uint64_t plx_relay_held(plx_relay_t *r)
{
    uint64_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (const blk_t *b = r->head; b; b = b->next)
        n += BLOCK;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* ---- a tap that passes a frame on unchanged --------------------------------- */

static int tap_head(void *ud, const uint8_t *env, uint32_t env_len, uint32_t nbufs)
{
    uint8_t hdr[PLX_FRAME_HDR_LEN];
    plx_frame_header(hdr, env_len, nbufs);
    if (plx_relay_append(ud, hdr, sizeof hdr) != PLX_OK ||
        plx_relay_append(ud, env, env_len) != PLX_OK)
        return PLX_TAP_SKIP;   /* finished, failed: its readers give up */
    return PLX_TAP_TAKE;
}

static void tap_bytes(void *ud, const uint8_t *p, size_t n)
{
    plx_relay_append(ud, p, n);
}

static void tap_end(void *ud, int whole)
{
    plx_relay_finish(ud, whole);
}

plx_tap_t plx_relay_tap(plx_relay_t *r)
{
    return (plx_tap_t){ .head = tap_head, .bytes = tap_bytes, .end = tap_end, .ud = r };
}
