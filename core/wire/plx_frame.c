/* Frame encoding and incremental decoding; see plx_frame.h. */
#include "plx_frame.h"

#include "plx_bufpool.h"
#include "plx_region.h"

#include <unistd.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Initial allocation for a body whose bytes have not arrived yet, and the
 * growth rule after it: never reserve more than twice what has arrived. */
#define GROW_FIRST (64u * 1024u)

plx_limits_t plx_limits_default(void)
{
    plx_limits_t l = {
        .max_envelope = 16u << 20,
        .max_bufs = 65536,
        .max_buf = 64ull << 30,
        .max_frame = 64ull << 30,
    };
    return l;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void plx_frame_header(uint8_t out[PLX_FRAME_HDR_LEN], uint32_t env_len, uint32_t nbufs)
{
    memcpy(out, PLX_FRAME_MAGIC, 4);
    put_u32(out + 4, env_len);
    put_u32(out + 8, nbufs);
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t to_le64(uint64_t v)
{
    uint64_t out;
    uint8_t *p = (uint8_t *)&out;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return out;
}

/* ---- messages ----------------------------------------------------------- */

plx_msg_t *plx_msg_new(uint32_t env_len)
{
    plx_msg_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->raw = malloc(PLX_FRAME_HDR_LEN + (size_t)env_len);
    if (!m->raw) {
        free(m);
        return NULL;
    }
    m->env_len = env_len;
    return m;
}

static int msg_reserve_bufs(plx_msg_t *m, uint32_t want)
{
    if (want <= m->capbufs)
        return PLX_OK;
    uint32_t cap = m->capbufs ? m->capbufs : 4;
    while (cap < want)
        cap *= 2;
    plx_buf_t **b = realloc(m->bufs, cap * sizeof *b);
    if (!b)
        return PLX_ENOMEM;
    m->bufs = b;
    m->capbufs = cap;
    return PLX_OK;
}

int plx_msg_add_buf(plx_msg_t *m, plx_buf_t *b)
{
    if (msg_reserve_bufs(m, m->nbufs + 1) != PLX_OK)
        return PLX_ENOMEM;
    m->bufs[m->nbufs++] = plx_buf_ref(b);
    return PLX_OK;
}

uint64_t plx_msg_wire_size(const plx_msg_t *m)
{
    uint64_t n = PLX_FRAME_HDR_LEN + (uint64_t)m->env_len;
    for (uint32_t i = 0; i < m->nbufs; i++)
        n += PLX_FRAME_BLEN_LEN + m->bufs[i]->len;
    return n;
}

/* The descriptor to send m's buffer i by, lent (plx_region_lend): as it
 * is, or after copying it into a region of its own when it has copy_min
 * bytes or more; -1 when it goes inline (small, or no region to be had). */
static int lend_buf(plx_msg_t *m, uint32_t i, size_t copy_min, uint64_t *off)
{
    int fd = plx_region_lend(m->bufs[i], off);
    plx_buf_t *copy = NULL;
    plx_err_t err = {0};
    if (fd >= 0 || m->bufs[i]->len < copy_min || m->bufs[i]->len == 0 ||
        plx_region_copy(m->bufs[i]->data, m->bufs[i]->len, &copy, &err) != PLX_OK)
        return fd;
    plx_buf_unref(&m->bufs[i]);
    m->bufs[i] = copy;
    return plx_region_lend(copy, off);
}

/* The frame as iovecs; with fds, buffers that can travel by descriptor go
 * as references (three words each in blens: length, offset, size). */
static int msg_iov(plx_msg_t *m, struct iovec *iov, size_t copy_min, int *fds, int maxfds,
                   int *nfds)
{
    plx_frame_header(m->raw, m->env_len, m->nbufs);
    if (m->nbufs) {
        uint64_t *bl = realloc(m->blens, 3 * (size_t)m->nbufs * sizeof *bl);
        if (!bl)
            return PLX_ENOMEM;
        m->blens = bl;
    }
    int n = 0;
    iov[n].iov_base = m->raw;
    iov[n++].iov_len = PLX_FRAME_HDR_LEN + (size_t)m->env_len;
    for (uint32_t i = 0; i < m->nbufs; i++) {
        uint64_t *w = &m->blens[3 * (size_t)i], off = 0;
        int fd = fds && *nfds < maxfds ? lend_buf(m, i, copy_min, &off) : -1;
        iov[n].iov_base = w;
        if (fd >= 0) {
            w[0] = to_le64(PLX_FRAME_REGION_BIT | PLX_FRAME_REF_LEN);
            w[1] = to_le64(off);
            w[2] = to_le64(m->bufs[i]->len);
            iov[n++].iov_len = PLX_FRAME_BLEN_LEN + PLX_FRAME_REF_LEN;
            fds[(*nfds)++] = fd;
            continue;
        }
        w[0] = to_le64(m->bufs[i]->len);
        iov[n++].iov_len = PLX_FRAME_BLEN_LEN;
        iov[n].iov_base = m->bufs[i]->data;
        iov[n++].iov_len = m->bufs[i]->len;
    }
    return n;
}

int plx_msg_iov(plx_msg_t *m, struct iovec *iov)
{
    return msg_iov(m, iov, 0, NULL, 0, NULL);
}

int plx_msg_iov_fds(plx_msg_t *m, struct iovec *iov, size_t copy_min, int *fds, int maxfds,
                    int *nfds)
{
    *nfds = 0;
    return msg_iov(m, iov, copy_min, fds, maxfds, nfds);
}

void plx_msg_destroy(plx_msg_t **mp)
{
    plx_msg_t *m = *mp;
    if (!m)
        return;
    *mp = NULL;
    for (uint32_t i = 0; i < m->nbufs; i++)
        plx_buf_unref(&m->bufs[i]);
    free(m->bufs);
    free(m->blens);
    free(m->raw);
    free(m);
}

/* ---- decoder ------------------------------------------------------------ */

enum dstate { D_HEADER, D_ENV, D_BLEN, D_BODY, D_SKIP, D_REF, D_FAILED };

/* Descriptors a decoder keeps waiting for their references: more than any
 * frame sends (PLX_TRANSPORT_MAX_FDS) plus those of the next one. */
#define FDQ_MAX 256

struct plx_decoder {
    plx_limits_t lim;
    enum dstate  state;
    uint8_t      small[PLX_FRAME_REF_LEN];  /* header, buffer length or reference in progress */
    size_t       small_have;
    plx_msg_t   *msg;          /* frame being assembled */
    uint32_t     env_cap;      /* bytes allocated for the envelope so far */
    size_t       env_have;
    uint32_t     bufs_total;   /* buffers announced */
    plx_buf_t   *body;         /* buffer being filled */
    uint64_t     body_len;     /* its announced length */
    uint64_t     frame_bytes;  /* announced so far, for max_frame */
    plx_budget_t *budget;      /* NULL: none */
    uint64_t     skip_left;    /* D_SKIP: bytes of the dropped body still to come */
    uint64_t     refused;      /* buffer bytes of this frame dropped (0: none yet) */
    int          refused_code;
    uint32_t     bufs_done;    /* buffers of this frame read (kept or dropped) */
    int          regions;      /* plx_region_kind_t to map references as; -1: refused */
    int          fdq[FDQ_MAX]; /* descriptors received, not yet used, oldest first */
    int          fdq_head, fdq_len;
    plx_tap_t    tap;          /* valid while has_tap */
    int          has_tap;
    int          tapping;      /* this frame's bytes go to tap */
};

/* ---- tap ------------------------------------------------------------------ */

static void tap_end(plx_decoder_t *d, int whole)
{
    if (!d->tapping)
        return;
    plx_tap_t t = d->tap;
    d->tapping = d->has_tap = 0;
    t.end(t.ud, whole);
}

void plx_decoder_set_tap(plx_decoder_t *d, const plx_tap_t *tap)
{
    tap_end(d, 0);
    d->has_tap = tap != NULL;
    if (tap)
        d->tap = *tap;
}

/* The envelope is in: does the tap take this frame? */
static void tap_head(plx_decoder_t *d)
{
    if (d->has_tap && d->regions < 0 &&
        d->tap.head(d->tap.ud, plx_msg_env(d->msg), d->msg->env_len, d->bufs_total) ==
            PLX_TAP_TAKE)
        d->tapping = 1;
}

static void tap_bytes(plx_decoder_t *d, const uint8_t *p, size_t n)
{
    if (d->tapping && n)
        d->tap.bytes(d->tap.ud, p, n);
}

plx_decoder_t *plx_decoder_new(const plx_limits_t *lim)
{
    plx_decoder_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->lim = lim ? *lim : plx_limits_default();
    d->regions = -1;
    return d;
}

void plx_decoder_set_regions(plx_decoder_t *d, int kind)
{
    d->regions = kind;
}

static void fdq_close_all(plx_decoder_t *d)
{
    for (; d->fdq_len > 0; d->fdq_len--) {
        close(d->fdq[d->fdq_head]);
        d->fdq_head = (d->fdq_head + 1) % FDQ_MAX;
    }
}

int plx_decoder_give_fds(plx_decoder_t *d, const int *fds, int n, plx_err_t *err)
{
    if (d->regions < 0 || d->fdq_len + n > FDQ_MAX) {
        for (int i = 0; i < n; i++)
            close(fds[i]);
        fdq_close_all(d);
        return plx_err_set(err, PLX_EPROTO, d->regions < 0
                           ? "frame: descriptors on a connection that takes none"
                           : "frame: more than %d descriptors sent ahead of their frames",
                           FDQ_MAX);
    }
    for (int i = 0; i < n; i++)
        d->fdq[(d->fdq_head + d->fdq_len++) % FDQ_MAX] = fds[i];
    return PLX_OK;
}

/* The next descriptor received, or -1. */
static int fdq_pop(plx_decoder_t *d)
{
    if (d->fdq_len == 0)
        return -1;
    int fd = d->fdq[d->fdq_head];
    d->fdq_head = (d->fdq_head + 1) % FDQ_MAX;
    d->fdq_len--;
    return fd;
}

static void decoder_reset(plx_decoder_t *d)
{
    plx_msg_destroy(&d->msg);
    plx_buf_unref(&d->body);
    d->state = D_HEADER;
    d->small_have = 0;
    d->env_cap = 0;
    d->env_have = 0;
    d->bufs_total = 0;
    d->body_len = 0;
    d->frame_bytes = 0;
    d->skip_left = 0;
    d->refused = 0;
    d->refused_code = 0;
    d->bufs_done = 0;
}

void plx_decoder_set_limits(plx_decoder_t *d, const plx_limits_t *lim)
{
    d->lim = lim ? *lim : plx_limits_default();
}

void plx_decoder_set_budget(plx_decoder_t *d, plx_budget_t *budget)
{
    d->budget = budget;
}

/* Drop the frame's buffers from here on (code: why), reading past them:
 * the receiver gets the envelope and can say what went wrong. */
static void refuse(plx_decoder_t *d, int code, uint64_t body_left)
{
    tap_end(d, 0);
    if (!d->refused_code) {
        for (uint32_t i = 0; i < d->msg->nbufs; i++) {
            d->refused += d->msg->bufs[i]->len;
            plx_buf_unref(&d->msg->bufs[i]);
        }
        d->msg->nbufs = 0;
        d->refused_code = code;
    }
    if (d->body) {
        d->refused += d->body->len;
        plx_buf_unref(&d->body);
    }
    d->refused += body_left;
    d->skip_left = body_left;
    d->state = D_SKIP;
}

/* Whether a body of len bytes fits the budget. */
static int admit(const plx_decoder_t *d, uint64_t len)
{
    if (!d->budget || !d->budget->max)
        return 1;
    uint64_t held = atomic_load_explicit(&d->budget->held, memory_order_relaxed);
    return held <= d->budget->max && len <= d->budget->max - held;
}

void plx_decoder_destroy(plx_decoder_t **dp)
{
    plx_decoder_t *d = *dp;
    if (!d)
        return;
    *dp = NULL;
    tap_end(d, 0);
    decoder_reset(d);
    fdq_close_all(d);
    free(d);
}

uint64_t plx_decoder_buffered(const plx_decoder_t *d)
{
    uint64_t n = d->env_cap;
    if (d->msg)
        for (uint32_t i = 0; i < d->msg->nbufs; i++)
            n += d->msg->bufs[i]->len;
    if (d->body)
        n += d->body->cap;
    return n;
}

int plx_decoder_idle(const plx_decoder_t *d)
{
    return d->state == D_HEADER && d->small_have == 0;
}

static int fail(plx_decoder_t *d, plx_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(plx_decoder_t *d, plx_err_t *err, int code, const char *fmt, ...)
{
    tap_end(d, 0);
    decoder_reset(d);
    d->state = D_FAILED;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return plx_err_set(err, code, "frame: %s", msg);
}

/* Capacity to hold `have` bytes of `total` plus what is arriving now. */
static uint64_t grow_target(uint64_t have, uint64_t incoming, uint64_t total)
{
    uint64_t want = have + incoming;
    uint64_t cap = have * 2 > GROW_FIRST ? have * 2 : GROW_FIRST;
    if (cap < want)
        cap = want;
    return cap < total ? cap : total;
}

static int env_reserve(plx_decoder_t *d, size_t incoming)
{
    if (d->env_have + incoming <= d->env_cap)
        return PLX_OK;   /* grow only when full, or every call would realloc */
    uint64_t cap = grow_target(d->env_have, incoming, d->msg->env_len);
    if (cap <= d->env_cap)
        return PLX_OK;
    uint8_t *raw = realloc(d->msg->raw, PLX_FRAME_HDR_LEN + cap);
    if (!raw)
        return PLX_ENOMEM;
    d->msg->raw = raw;
    d->env_cap = (uint32_t)cap;
    return PLX_OK;
}

static int body_reserve(plx_decoder_t *d, size_t incoming)
{
    if (d->body->len + incoming <= d->body->cap)
        return PLX_OK;   /* grow only when full, or every call would realloc */
    /* A large body whose size the pool has: all of it now (no growth
     * steps, no fresh pages for the first 8 MiB). */
    if (d->body_len >= PLX_BUF_POOL_MIN && plx_buf_reserve_pooled(d->body, d->body_len) == 1)
        return PLX_OK;
    uint64_t cap = grow_target(d->body->len, incoming, d->body_len);
    if (cap <= d->body->cap)
        return PLX_OK;
    return plx_buf_reserve(d->body, (size_t)cap);
}

/* After the header: validate and set up the envelope. */
static int begin_frame(plx_decoder_t *d, plx_err_t *err)
{
    const uint8_t *b = d->small;
    if (memcmp(b, PLX_FRAME_MAGIC, 4) != 0)
        /* A TLS record header (handshake, version 3.x) is the usual way to
         * get here: say so rather than leave people to decode the bytes. */
        return fail(d, err, PLX_EPROTO, "bad magic %02x %02x %02x %02x (expected \"PLX1\")%s",
                    b[0], b[1], b[2], b[3],
                    b[0] == 0x16 && b[1] == 0x03
                        ? ": this is a TLS handshake, a plx+tls client on a plaintext (tcp) "
                          "port; its connection file is not this controller's"
                        : "");
    uint32_t env_len = get_u32(d->small + 4);
    uint32_t nbufs = get_u32(d->small + 8);
    if (env_len > d->lim.max_envelope)
        return fail(d, err, PLX_ELIMIT, "envelope of %u bytes exceeds the limit of %u",
                    (unsigned)env_len, (unsigned)d->lim.max_envelope);
    if (nbufs > d->lim.max_bufs)
        return fail(d, err, PLX_ELIMIT, "%u buffers exceed the limit of %u", (unsigned)nbufs,
                    (unsigned)d->lim.max_bufs);
    if (env_len > d->lim.max_frame)
        return fail(d, err, PLX_ELIMIT, "frame of %llu bytes exceeds the limit of %llu",
                    (unsigned long long)env_len, (unsigned long long)d->lim.max_frame);
    d->msg = plx_msg_new(0);
    if (!d->msg || msg_reserve_bufs(d->msg, nbufs < 64 ? nbufs : 64) != PLX_OK)
        return fail(d, err, PLX_ENOMEM, "out of memory");
    d->msg->env_len = env_len;
    d->bufs_total = nbufs;
    d->frame_bytes = env_len;
    d->small_have = 0;
    d->state = D_ENV;
    return PLX_OK;
}

/* The frame's next buffer is done (kept, or dropped with refused). */
static int keep_buf(plx_decoder_t *d, plx_buf_t *b)
{
    if (msg_reserve_bufs(d->msg, d->msg->nbufs + 1) != PLX_OK)
        return PLX_ENOMEM;
    d->msg->bufs[d->msg->nbufs++] = b;
    d->bufs_done++;
    return PLX_OK;
}

/* A whole region reference: map what it names as this frame's next
 * buffer, with the next descriptor received. */
static int take_ref(plx_decoder_t *d, plx_err_t *err)
{
    uint64_t off = get_u64(d->small), len = get_u64(d->small + 8);
    d->small_have = 0;
    d->state = D_BLEN;
    int fd = fdq_pop(d);
    if (fd < 0)
        return fail(d, err, PLX_EPROTO, "a shared-memory reference without its descriptor");
    if (len > d->lim.max_buf || (d->frame_bytes += len) > d->lim.max_frame) {
        close(fd);
        return fail(d, err, PLX_ELIMIT, "shared buffer of %llu bytes exceeds the limits",
                    (unsigned long long)len);
    }
    if (d->refused_code || !admit(d, len)) {
        close(fd);
        refuse(d, d->refused_code ? d->refused_code : PLX_ELIMIT, 0);
        d->refused += len;
        return PLX_OK;
    }
    plx_buf_t *b = NULL;
    plx_err_t why = {0};
    if (plx_region_adopt(fd, off, len, (plx_region_kind_t)d->regions, &b, &why) != PLX_OK)
        return fail(d, err, why.code, "%s", why.msg);
    if (d->budget)
        plx_buf_charge(b, &d->budget->held, len);
    if (keep_buf(d, b) != PLX_OK) {
        plx_buf_unref(&b);
        return fail(d, err, PLX_ENOMEM, "out of memory");
    }
    return PLX_OK;
}

static int begin_body(plx_decoder_t *d, plx_err_t *err)
{
    uint64_t len = get_u64(d->small);
    d->small_have = 0;
    if (len & PLX_FRAME_REGION_BIT) {
        if (d->regions < 0)
            return fail(d, err, PLX_EPROTO, "a shared-memory reference on a connection that "
                        "cannot pass descriptors");
        if (len != (PLX_FRAME_REGION_BIT | PLX_FRAME_REF_LEN))
            return fail(d, err, PLX_EPROTO, "a shared-memory reference of %llu bytes "
                        "(expected %u)", (unsigned long long)(len & ~PLX_FRAME_REGION_BIT),
                        PLX_FRAME_REF_LEN);
        d->state = D_REF;
        return PLX_OK;
    }
    if (len > d->lim.max_buf)
        return fail(d, err, PLX_ELIMIT, "buffer of %llu bytes exceeds the limit of %llu",
                    (unsigned long long)len, (unsigned long long)d->lim.max_buf);
    d->frame_bytes += len;
    if (d->frame_bytes > d->lim.max_frame)
        return fail(d, err, PLX_ELIMIT, "frame of %llu bytes exceeds the limit of %llu",
                    (unsigned long long)d->frame_bytes, (unsigned long long)d->lim.max_frame);
    d->body_len = len;
    if (d->refused_code || !admit(d, len)) {
        refuse(d, d->refused_code ? d->refused_code : PLX_ELIMIT, len);
        return PLX_OK;
    }
    d->body = plx_buf_new(0);
    if (!d->body) {
        refuse(d, PLX_ENOMEM, len);
        return PLX_OK;
    }
    if (d->budget) {
        plx_buf_charge(d->body, &d->budget->held, len);
        uint64_t held = atomic_load_explicit(&d->budget->held, memory_order_relaxed);
        if (held > d->budget->peak)
            d->budget->peak = held;   /* a racy maximum: only a hint to give memory back */
    }
    d->state = D_BODY;
    return PLX_OK;
}

/* Move on after a completed part; returns 1 when the frame is done. */
static int advance(plx_decoder_t *d, plx_msg_t **out, plx_err_t *err)
{
    for (;;) {
        if (d->state == D_ENV && d->env_have == d->msg->env_len) {
            d->state = D_BLEN;
            tap_head(d);
            continue;
        }
        if (d->state == D_SKIP && d->skip_left == 0) {
            d->bufs_done++;
            d->state = D_BLEN;
            continue;
        }
        if (d->state == D_BODY && d->body->len == d->body_len) {
            if (keep_buf(d, d->body) != PLX_OK)
                return fail(d, err, PLX_ENOMEM, "out of memory");
            d->body = NULL;
            d->state = D_BLEN;
            continue;
        }
        if (d->state == D_BLEN && d->bufs_done == d->bufs_total) {
            if (d->refused_code) {
                d->msg->refused_bytes = d->refused;
                d->msg->refused_code = d->refused_code;
            }
            *out = d->msg;
            d->msg = NULL;
            decoder_reset(d);
            tap_end(d, 1);
            return 1;
        }
        return 0;
    }
}

int plx_decoder_feed(plx_decoder_t *d, const uint8_t *data, size_t len, size_t *consumed,
                     plx_msg_t **out, plx_err_t *err)
{
    size_t pos = 0;
    int rc = 0;
    *consumed = 0;
    if (d->state == D_FAILED)
        return plx_err_set(err, PLX_EPROTO, "frame: decoder used after an error");
    while (pos < len) {
        size_t avail = len - pos;
        if (d->state == D_HEADER || d->state == D_BLEN || d->state == D_REF) {
            size_t need = (d->state == D_HEADER ? PLX_FRAME_HDR_LEN
                           : d->state == D_BLEN ? PLX_FRAME_BLEN_LEN
                                                : PLX_FRAME_REF_LEN) - d->small_have;
            size_t n = avail < need ? avail : need;
            memcpy(d->small + d->small_have, data + pos, n);
            d->small_have += n;
            if (d->state != D_HEADER)
                tap_bytes(d, data + pos, n);
            pos += n;
            if (n < need)
                break;
            rc = d->state == D_HEADER ? begin_frame(d, err)
                 : d->state == D_BLEN ? begin_body(d, err) : take_ref(d, err);
        } else if (d->state == D_ENV) {
            size_t need = d->msg->env_len - d->env_have;
            size_t n = avail < need ? avail : need;
            if (env_reserve(d, n) != PLX_OK) {
                rc = fail(d, err, PLX_ENOMEM, "out of memory");
                break;
            }
            memcpy(plx_msg_env(d->msg) + d->env_have, data + pos, n);
            d->env_have += n;
            pos += n;
        } else if (d->state == D_SKIP) {
            size_t n = avail < d->skip_left ? avail : (size_t)d->skip_left;
            d->skip_left -= n;
            pos += n;
        } else {
            uint64_t need = d->body_len - d->body->len;
            size_t n = avail < need ? avail : (size_t)need;
            if (body_reserve(d, n) != PLX_OK) {
                refuse(d, PLX_ENOMEM, need);   /* the connection stays; the frame goes */
            } else {
                memcpy(d->body->data + d->body->len, data + pos, n);
                d->body->len += n;
                tap_bytes(d, data + pos, n);
                pos += n;
            }
        }
        if (rc < 0)
            break;
        rc = advance(d, out, err);
        if (rc != 0)
            break;
    }
    if (rc == 0 && d->state != D_FAILED)
        rc = advance(d, out, err);
    *consumed = pos;
    return rc;
}

int plx_decoder_direct(plx_decoder_t *d, size_t min, uint8_t **ptr, size_t *len, plx_err_t *err)
{
    if (d->state == D_ENV) {
        size_t need = d->msg->env_len - d->env_have;
        if (need < min || need == 0)
            return 0;
        if (env_reserve(d, need < GROW_FIRST ? need : GROW_FIRST) != PLX_OK)
            return fail(d, err, PLX_ENOMEM, "out of memory");
        *ptr = plx_msg_env(d->msg) + d->env_have;
        *len = d->env_cap - d->env_have < need ? d->env_cap - d->env_have : need;
        return 1;
    }
    if (d->state == D_BODY) {
        uint64_t need = d->body_len - d->body->len;
        if (need < min || need == 0)
            return 0;
        if (body_reserve(d, need < GROW_FIRST ? (size_t)need : GROW_FIRST) != PLX_OK) {
            refuse(d, PLX_ENOMEM, need);
            return 0;   /* the rest is read and dropped through plx_decoder_feed */
        }
        /* Bounded by the body, not the capacity: a reused block can be
         * larger than this body, and what follows belongs to the next part. */
        size_t room = d->body->cap - d->body->len;
        *ptr = d->body->data + d->body->len;
        *len = room < need ? room : (size_t)need;
        return 1;
    }
    return 0;
}

int plx_decoder_commit(plx_decoder_t *d, size_t n, plx_msg_t **out, plx_err_t *err)
{
    if (d->state == D_ENV)
        d->env_have += n;
    else if (d->state == D_BODY) {
        tap_bytes(d, d->body->data + d->body->len, n);
        d->body->len += n;
    } else
        return plx_err_set(err, PLX_EINVAL, "frame: commit outside a body");
    return advance(d, out, err);
}

plx_msg_t *plx_msg_share(const plx_msg_t *m)
{
    plx_msg_t *c = plx_msg_new(m->env_len);
    if (!c)
        return NULL;
    memcpy(plx_msg_env(c), plx_msg_env(m), m->env_len);
    for (uint32_t i = 0; i < m->nbufs; i++)
        if (plx_msg_add_buf(c, m->bufs[i]) != PLX_OK) {
            plx_msg_destroy(&c);
            return NULL;
        }
    return c;
}

uint64_t plx_msg_payload(const plx_msg_t *m)
{
    uint64_t n = 0;
    for (uint32_t i = 0; m && i < m->nbufs; i++)
        n += m->bufs[i]->len;
    return n;
}
