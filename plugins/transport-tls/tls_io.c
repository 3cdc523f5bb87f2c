/*
 * transport-tls: OpenSSL's view of the socket (see tls_int.h).
 *
 * OpenSSL reads through our BIO straight from the socket (recv), keeping
 * the peer's first bytes and end-of-stream/errno for error messages. It
 * writes into the connection's output buffer, which never refuses; the
 * plugin sends that buffer itself (send with MSG_NOSIGNAL: a vanished peer
 * is an error code, never a SIGPIPE), several records per syscall.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include "tls_int.h"

#define TLS_OUT_SOFT  (128u * 1024u)   /* stop encrypting beyond this */
#define TLS_OUT_SLACK 1024             /* record header, tag, KeyUpdates */
#define TLS_PREFAULT_MIN  (64u * 1024u)         /* mapped ahead in one call: at least */
#define TLS_PREFAULT_STEP (2u * 1024u * 1024u)  /* ... and at most */

/* ---- OpenSSL errors ------------------------------------------------------ */

void tls_errors(char *out, size_t len)
{
    unsigned long e;
    size_t used = 0;

    out[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        if (used + 3 < len && strstr(out, one) == NULL)
            used += (size_t)snprintf(out + used, len - used, "%s%s", used ? "; " : "", one);
        if (used >= len)
            used = len - 1;
    }
}

int tls_ossl_fail(plx_err_t *err, int code, const char *what, const char *call)
{
    char why[TLS_ERRS_MAX];

    tls_errors(why, sizeof why);
    return plx_err_set(err, code, "%s: %s: %s", what, call, why[0] ? why : "unknown error");
}

int tls_first_reason(void)
{
    unsigned long e = ERR_peek_error();

    return e == 0 ? 0 : ERR_GET_REASON(e);
}

/* ---- fault hook ---------------------------------------------------------- */

static size_t tls_env_num(const char *spec, const char *key)
{
    const char *p = strstr(spec, key);

    return p == NULL ? 0 : (size_t)strtoul(p + strlen(key), NULL, 10);
}

void tls_fault_init(tls_fault *f)
{
    const char *spec = getenv("PLX_TLS_FAULT");

    memset(f, 0, sizeof *f);
    if (spec == NULL)
        return;
    f->eagain_every = (unsigned)tls_env_num(spec, "eagain_every=");
    f->short_io = tls_env_num(spec, "short=");
    f->keyupdate = tls_env_num(spec, "keyupdate=");
}

/* True when the hook swallows this socket call as a spurious EAGAIN. */
static bool tls_fault_eagain(tls_fault *f)
{
    return f->eagain_every != 0 && ++f->calls % f->eagain_every == 0;
}

static size_t tls_fault_cap(const tls_fault *f, size_t len)
{
    return f->short_io != 0 && len > f->short_io ? f->short_io : len;
}

/* ---- the output buffer --------------------------------------------------- */

/* The waiting bytes that lie contiguous from head (the rest wrapped to
 * the start of the ring). */
static size_t tls_out_first(const tls_out *o)
{
    return o->cap - o->head < o->pend ? o->cap - o->head : o->pend;
}

/* Make room for n more bytes: a larger ring, what waits copied to its
 * front in order (rare: the ring holds the soft limit and a record). */
static int tls_out_reserve(tls_out *o, size_t n)
{
    size_t cap, first;
    unsigned char *nb;

    if (o->pend + n <= o->cap)
        return 0;
    cap = o->cap ? o->cap : TLS_OUT_SOFT + TLS_RECORD + TLS_OUT_SLACK;
    while (cap < o->pend + n)
        cap *= 2;
    nb = malloc(cap);
    if (nb == NULL)
        return -1;
    first = tls_out_first(o);
    if (o->pend > 0) {
        memcpy(nb, o->buf + o->head, first);
        memcpy(nb + first, o->buf, o->pend - first);
    }
    free(o->buf);
    o->buf = nb;
    o->cap = cap;
    o->head = 0;
    return 0;
}

static int tls_out_append(tls_out *o, const void *p, size_t n)
{
    size_t tail, first;

    if (tls_out_reserve(o, n) != 0)
        return -1;
    tail = (o->head + o->pend) % o->cap;
    first = o->cap - tail < n ? o->cap - tail : n;
    memcpy(o->buf + tail, p, first);
    memcpy(o->buf, (const unsigned char *)p + first, n - first);
    o->pend += n;
    o->appended += n;
    return 0;
}

bool tls_out_room(const tls_conn *c)
{
    const tls_out *o = &c->out;

    return o->rcount < TLS_RECS && o->pend + TLS_RECORD + TLS_OUT_SLACK <= TLS_OUT_SOFT;
}

void tls_out_record(tls_conn *c, size_t plain)
{
    tls_out *o = &c->out;

    o->recs[(o->rhead + o->rcount) % TLS_RECS] = (tls_rec){ o->appended, plain };
    o->rcount++;
    o->held += plain;
}

size_t tls_out_reap(tls_conn *c)
{
    tls_out *o = &c->out;
    size_t n = 0;

    while (o->rcount > 0 && o->recs[o->rhead].end <= o->sent) {
        n += o->recs[o->rhead].plain;
        o->rhead = (o->rhead + 1) % TLS_RECS;
        o->rcount--;
    }
    o->held -= n;
    return n;
}

/* Back to no buffer at all. */
static void tls_out_release(tls_out *o)
{
    free(o->buf);
    o->buf = NULL;
    o->head = o->pend = o->cap = 0;
}

void tls_out_free(tls_conn *c)
{
    tls_out_release(&c->out);
}

/* Send the waiting bytes, both pieces of the ring in one call. */
static ssize_t tls_send(tls_conn *c)
{
    tls_out *o = &c->out;
    size_t first = tls_out_first(o);
    size_t cap = tls_fault_cap(&c->fault, o->pend);
    struct iovec iov[2] = {
        { o->buf + o->head, first < cap ? first : cap },
        { o->buf, first < cap ? cap - first : 0 },
    };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2 : 1 };
    ssize_t r;

    if (tls_fault_eagain(&c->fault)) {
        errno = EAGAIN;
        return -1;
    }
    do {
        r = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    return r;
}

int tls_out_flush(tls_conn *c, plx_err_t *err)
{
    tls_out *o = &c->out;

    while (o->pend > 0) {
        ssize_t r = tls_send(c);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return PLX_EAGAIN;
        if (r < 0) {
            c->sys_errno = errno;
            return plx_err_set(err, PLX_EIO, "send to %s: %s", c->peer, strerror(errno));
        }
        o->head = (o->head + (size_t)r) % o->cap;
        o->pend -= (size_t)r;
        o->sent += (uint64_t)r;
    }
    o->head = 0;
    return PLX_OK;
}

void tls_out_idle(tls_conn *c)
{
    if (c->out.pend == 0)
        tls_out_release(&c->out);
}

/* ---- the caller's pages --------------------------------------------------- */

#ifdef MADV_POPULATE_WRITE
/* Plaintext that can be decrypted now without waiting: what OpenSSL holds
 * decrypted, plus the ciphertext queued in the socket (FIONREAD). */
static size_t tls_arrived(const tls_conn *c)
{
    int queued = 0;

    if (ioctl(c->fd, FIONREAD, &queued) != 0 || queued < 0)
        queued = 0;
    return (size_t)queued + (size_t)SSL_pending(c->ssl);
}

/* Map the pages of [p, p + n) in one call; c remembers the range. */
static void tls_populate(tls_conn *c, uintptr_t p, size_t n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = p & ~(page - 1), to = (p + n) & ~(page - 1);

    /* A kernel older than 5.14 says EINVAL: stop asking. */
    if (madvise((void *)from, to - from, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
        c->no_prefault = true;
    c->mapped_lo = from;
    c->mapped_hi = to;
}
#endif

/*
 * plx_conn reads a large body straight into its final buffer, which the
 * decoder has just grown: its pages are not mapped yet. With TCP the kernel
 * maps them while recv copies; here SSL_read's memcpy faults them in from
 * user space one 4 KiB page at a time, which costs nearly as much as the
 * decryption. MADV_POPULATE_WRITE maps them in one call instead. It never
 * changes the bytes there (it is a write fault without the write), and it
 * only maps pages that data which has already arrived is about to fill, up
 * to 2 MiB at a time: a connection that receives small messages into a
 * large staging buffer keeps untouched pages untouched.
 */
void tls_prefault(tls_conn *c, unsigned char *at, size_t left)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t p = (uintptr_t)at;
    size_t n;

    if (left < TLS_PREFAULT_MIN || c->no_prefault)
        return;
    if (p >= c->mapped_lo && p + TLS_RECORD <= c->mapped_hi)
        return;
    n = tls_arrived(c);
    n = n < left ? n : left;
    if (n >= TLS_PREFAULT_MIN) {
        tls_populate(c, p, n < TLS_PREFAULT_STEP ? n : TLS_PREFAULT_STEP);
        return;
    }
    /* Too little has arrived to be worth a call: let these pages fault,
     * and ask again further on (one FIONREAD per TLS_PREFAULT_MIN bytes). */
    c->mapped_lo = p;
    c->mapped_hi = p + TLS_PREFAULT_MIN;
#else
    (void)c;
    (void)at;
    (void)left;
#endif
}

/* ---- the BIO ------------------------------------------------------------- */

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

/* Never blocks: the bytes wait in the output buffer (see tls_int.h). */
static int tls_bio_write(BIO *b, const char *buf, size_t len, size_t *written)
{
    tls_conn *c = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    *written = 0;
    if (tls_out_append(&c->out, buf, len) != 0) {
        c->sys_errno = ENOMEM;
        return 0;
    }
    *written = len;
    return 1;
}

/* Keep the first bytes of the stream: they tell a plaintext peer apart. */
static void tls_bio_note_first(tls_conn *c, const char *buf, size_t n)
{
    while (c->nfirst < sizeof c->first && n > 0) {
        c->first[c->nfirst++] = (unsigned char)*buf++;
        n--;
    }
}

static int tls_bio_read(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    tls_conn *c = BIO_get_data(b);
    ssize_t r;

    BIO_clear_retry_flags(b);
    *readbytes = 0;
    if (tls_fault_eagain(&c->fault)) {
        BIO_set_retry_read(b);
        return 0;
    }
    len = tls_fault_cap(&c->fault, len);
    do {
        r = recv(c->fd, buf, len, 0);
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
        tls_bio_note_first(c, buf, (size_t)r);
        *readbytes = (size_t)r;
        /* A short read of less than a record most likely ended a message;
         * a larger one is a transfer in flight (see tls_recv). */
        c->drained = (size_t)r < len && (size_t)r < TLS_RECORD;
        return 1;
    }
    c->drained = false;
    if (r == 0)
        c->eof = true;
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_read(b);
    else
        c->sys_errno = errno;
    return 0;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    tls_conn *c = BIO_get_data(b);

    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;   /* the plugin flushes the output buffer itself */
    case BIO_CTRL_EOF:
        return c != NULL && c->eof;
    default:
        return 0;
    }
}

static int tls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void tls_bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "plexa socket");

    if (m == NULL)
        return;
    if (!BIO_meth_set_write_ex(m, tls_bio_write) || !BIO_meth_set_read_ex(m, tls_bio_read) ||
        !BIO_meth_set_ctrl(m, tls_bio_ctrl) || !BIO_meth_set_create(m, tls_bio_create)) {
        BIO_meth_free(m);
        return;
    }
    tls_bio_method = m;
}

/* Plugins are never unloaded; this only keeps leak checkers quiet. */
__attribute__((destructor)) static void tls_bio_method_fini(void)
{
    BIO_meth_free(tls_bio_method);
    tls_bio_method = NULL;
}

int tls_attach_bio(tls_conn *c, plx_err_t *err)
{
    BIO *b;

    pthread_once(&tls_bio_once, tls_bio_method_init);
    if (tls_bio_method == NULL)
        return tls_ossl_fail(err, PLX_ENOMEM, c->peer, "BIO_meth_new");
    b = BIO_new(tls_bio_method);
    if (b == NULL)
        return tls_ossl_fail(err, PLX_ENOMEM, c->peer, "BIO_new");
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b);
    return PLX_OK;
}
