/* Unit tests of the frame codec: core/wire/plx_frame.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "plx_test.h"

#include <stdlib.h>
#include <string.h>

#include "plx_buf.h"
#include "plx_bufpool.h"
#include "plx_frame.h"

/* ---- helpers --------------------------------------------------------------- */

/* Deterministic content, different for each (seed, index). */
static uint8_t pattern(unsigned seed, size_t i)
{
    return (uint8_t)(i * 31u + seed * 7u + (i >> 8));
}

/* A message with an env_len-byte envelope and buffers of the given sizes. */
static plx_msg_t *make_msg(unsigned seed, uint32_t env_len, const size_t *sizes, size_t nbufs)
{
    plx_msg_t *m = plx_msg_new(env_len);
    assert_non_null(m);
    for (uint32_t i = 0; i < env_len; i++)
        plx_msg_env(m)[i] = pattern(seed, i);
    for (size_t b = 0; b < nbufs; b++) {
        plx_buf_t *buf = plx_buf_new(sizes[b]);
        assert_non_null(buf);
        for (size_t i = 0; i < sizes[b]; i++)
            buf->data[i] = pattern(seed + 1 + (unsigned)b, i);
        assert_int_equal(plx_msg_add_buf(m, buf), PLX_OK);
        plx_buf_unref(&buf);   /* the message holds its own reference */
    }
    return m;
}

/* The frame as one contiguous byte array, built from plx_msg_iov. */
static uint8_t *encode(plx_msg_t *m, size_t *len)
{
    int cnt = plx_msg_iovcnt(m);
    struct iovec *iov = calloc((size_t)cnt, sizeof *iov);
    assert_non_null(iov);
    assert_int_equal(plx_msg_iov(m, iov), cnt);
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    assert_int_equal(total, plx_msg_wire_size(m));
    uint8_t *out = malloc(total ? total : 1), *p = out;
    assert_non_null(out);
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len)
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    free(iov);
    *len = total;
    return out;
}

static void assert_msg_equal(const plx_msg_t *a, const plx_msg_t *b)
{
    assert_int_equal(a->env_len, b->env_len);
    if (a->env_len)
        assert_memory_equal(plx_msg_env(a), plx_msg_env(b), a->env_len);
    assert_int_equal(a->nbufs, b->nbufs);
    for (uint32_t i = 0; i < a->nbufs; i++) {
        assert_int_equal(a->bufs[i]->len, b->bufs[i]->len);
        if (a->bufs[i]->len)
            assert_memory_equal(a->bufs[i]->data, b->bufs[i]->data, a->bufs[i]->len);
    }
}

/* A bare frame header. */
static void put_header(uint8_t *p, const char *magic, uint32_t env_len, uint32_t nbufs)
{
    memcpy(p, magic, 4);
    for (int i = 0; i < 4; i++) {
        p[4 + i] = (uint8_t)(env_len >> (8 * i));
        p[8 + i] = (uint8_t)(nbufs >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static plx_limits_t small_limits(void)
{
    plx_limits_t l = { .max_envelope = 100, .max_bufs = 3, .max_buf = 1000, .max_frame = 1500 };
    return l;
}

/* ---- round trips ------------------------------------------------------------ */

/* Split in two at every possible point, the frame decodes to the same message. */
static void test_every_split(void **state)
{
    (void)state;
    static const size_t sizes[] = { 700, 0, 1300 };
    plx_msg_t *m = make_msg(1, 300, sizes, 3);
    size_t len;
    uint8_t *wire = encode(m, &len);
    assert_int_equal(len, 12 + 300 + 3 * 8 + 700 + 1300);

    for (size_t k = 0; k <= len; k++) {
        plx_decoder_t *d = plx_decoder_new(NULL);
        plx_msg_t *out = NULL;
        plx_err_t err = { 0 };
        size_t used = 99;
        int rc = plx_decoder_feed(d, wire, k, &used, &out, &err);
        assert_int_equal(rc, k == len ? 1 : 0);
        assert_int_equal(used, k);
        if (k < len) {
            assert_null(out);
            assert_int_equal(plx_decoder_idle(d), k == 0);
            rc = plx_decoder_feed(d, wire + k, len - k, &used, &out, &err);
            assert_int_equal(rc, 1);
            assert_int_equal(used, len - k);
        }
        assert_non_null(out);
        assert_msg_equal(m, out);
        assert_true(plx_decoder_idle(d));
        assert_int_equal(plx_decoder_buffered(d), 0);
        plx_msg_destroy(&out);
        plx_decoder_destroy(&d);
        assert_null(d);
    }
    free(wire);
    plx_msg_destroy(&m);
    assert_null(m);
}

/* One byte at a time, through a body larger than the decoder's first
 * allocation (64 KiB), so the growth path is exercised too. Memory grows
 * geometrically: a handful of reallocations, not one per call. */
static void test_byte_by_byte(void **state)
{
    (void)state;
    static const size_t sizes[] = { 100, 0, 200000 };
    plx_msg_t *m = make_msg(2, 5000, sizes, 3);
    size_t len;
    uint8_t *wire = encode(m, &len);
    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    uint64_t last = 0;
    int changes = 0;
    for (size_t i = 0; i < len; i++) {
        size_t used = 0;
        int rc = plx_decoder_feed(d, wire + i, 1, &used, &out, &err);
        assert_int_equal(used, 1);
        if (rc != (i == len - 1 ? 1 : 0))
            fail_msg("byte %zu of %zu: rc %d (%s)", i, len, rc, err.msg);
        /* Memory follows the bytes that arrived, never the announcement. */
        uint64_t held = plx_decoder_buffered(d);
        assert_true(held <= 2 * (i + 1) + 65536);
        changes += held != last;
        last = held;
    }
    if (changes > 32)
        fail_msg("the decoder's memory changed size %d times", changes);
    assert_non_null(out);
    assert_msg_equal(m, out);
    plx_msg_destroy(&out);
    plx_decoder_destroy(&d);
    free(wire);
    plx_msg_destroy(&m);
}

/* Frames back to back: feed stops after the first and says where. */
static void test_back_to_back(void **state)
{
    (void)state;
    static const size_t sa[] = { 10, 0, 20 };
    static const size_t sb[] = { 5 };
    plx_msg_t *a = make_msg(3, 40, sa, 3), *b = make_msg(4, 7, sb, 1), *c = make_msg(5, 0, NULL, 0);
    size_t la, lb, lc;
    uint8_t *wa = encode(a, &la), *wb = encode(b, &lb), *wc = encode(c, &lc);
    uint8_t *all = malloc(la + lb + lc);
    assert_non_null(all);
    memcpy(all, wa, la);
    memcpy(all + la, wb, lb);
    memcpy(all + la + lb, wc, lc);

    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    size_t used, pos = 0;
    assert_int_equal(plx_decoder_feed(d, all, la + lb + lc, &used, &out, &err), 1);
    assert_int_equal(used, la);
    assert_msg_equal(a, out);
    plx_msg_destroy(&out);
    pos += used;
    assert_int_equal(plx_decoder_feed(d, all + pos, la + lb + lc - pos, &used, &out, &err), 1);
    assert_int_equal(used, lb);
    assert_msg_equal(b, out);
    plx_msg_destroy(&out);
    pos += used;
    assert_int_equal(plx_decoder_feed(d, all + pos, la + lb + lc - pos, &used, &out, &err), 1);
    assert_int_equal(used, lc);
    assert_msg_equal(c, out);
    plx_msg_destroy(&out);
    assert_true(plx_decoder_idle(d));

    plx_decoder_destroy(&d);
    free(all);
    free(wa);
    free(wb);
    free(wc);
    plx_msg_destroy(&a);
    plx_msg_destroy(&b);
    plx_msg_destroy(&c);
}

/* No buffers, an empty envelope, empty buffers: all valid. */
static void test_empty_parts(void **state)
{
    (void)state;
    static const size_t empty3[] = { 0, 0, 0 };
    static const struct { uint32_t env; const size_t *sizes; size_t n; } cases[] = {
        { 0, NULL, 0 }, { 0, empty3, 3 }, { 9, NULL, 0 }, { 0, empty3 + 2, 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plx_msg_t *m = make_msg(6, cases[i].env, cases[i].sizes, cases[i].n);
        size_t len, used;
        uint8_t *wire = encode(m, &len);
        assert_int_equal(len, 12 + cases[i].env + 8 * cases[i].n);
        plx_decoder_t *d = plx_decoder_new(NULL);
        plx_msg_t *out = NULL;
        plx_err_t err = { 0 };
        assert_int_equal(plx_decoder_feed(d, wire, len, &used, &out, &err), 1);
        assert_int_equal(used, len);
        assert_msg_equal(m, out);
        plx_msg_destroy(&out);
        plx_decoder_destroy(&d);
        free(wire);
        plx_msg_destroy(&m);
    }
}

/* ---- malformed and hostile input --------------------------------------------- */

static void test_bad_magic(void **state)
{
    (void)state;
    uint8_t hdr[12];
    put_header(hdr, "PLX2", 0, 0);
    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    size_t used;
    assert_int_equal(plx_decoder_feed(d, hdr, sizeof hdr, &used, &out, &err), PLX_EPROTO);
    assert_null(out);
    assert_int_equal(err.code, PLX_EPROTO);
    assert_non_null(strstr(err.msg, "magic"));
    plx_decoder_destroy(&d);
}

/* A frame cut short: nothing delivered, the decoder waits for the rest. */
static void test_truncated(void **state)
{
    (void)state;
    static const size_t sizes[] = { 50, 0 };
    plx_msg_t *m = make_msg(7, 20, sizes, 2);
    size_t len, used;
    uint8_t *wire = encode(m, &len);
    static const size_t cuts[] = { 5, 12, 20, 32, 40, 50 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        plx_decoder_t *d = plx_decoder_new(NULL);
        plx_msg_t *out = NULL;
        plx_err_t err = { 0 };
        assert_int_equal(plx_decoder_feed(d, wire, len - cuts[i], &used, &out, &err), 0);
        assert_int_equal(used, len - cuts[i]);
        assert_null(out);
        assert_false(plx_decoder_idle(d));
        plx_decoder_destroy(&d);   /* frees the partial frame */
    }
    free(wire);
    plx_msg_destroy(&m);
}

/* An envelope over max_envelope fails on the header alone: nothing of the
 * envelope has been read, so nothing was allocated for it. */
static void test_envelope_limit(void **state)
{
    (void)state;
    plx_limits_t lim = small_limits();
    uint8_t frame[12 + 100];
    memset(frame, 0xab, sizeof frame);
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    size_t used;

    put_header(frame, "PLX1", 101, 0);
    plx_decoder_t *d = plx_decoder_new(&lim);
    assert_int_equal(plx_decoder_feed(d, frame, 12, &used, &out, &err), PLX_ELIMIT);
    assert_int_equal(used, 12);
    assert_non_null(strstr(err.msg, "envelope of 101 bytes exceeds the limit of 100"));
    assert_int_equal(plx_decoder_buffered(d), 0);
    plx_decoder_destroy(&d);

    put_header(frame, "PLX1", UINT32_MAX, 0);
    d = plx_decoder_new(&lim);
    assert_int_equal(plx_decoder_feed(d, frame, sizeof frame, &used, &out, &err), PLX_ELIMIT);
    assert_int_equal(plx_decoder_buffered(d), 0);
    plx_decoder_destroy(&d);

    /* Exactly at the limit is fine. */
    put_header(frame, "PLX1", 100, 0);
    d = plx_decoder_new(&lim);
    assert_int_equal(plx_decoder_feed(d, frame, sizeof frame, &used, &out, &err), 1);
    assert_int_equal(out->env_len, 100);
    plx_msg_destroy(&out);
    plx_decoder_destroy(&d);
}

static void test_buffer_count_limit(void **state)
{
    (void)state;
    plx_limits_t lim = small_limits();
    uint8_t frame[12 + 3 * 8];
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    size_t used;

    put_header(frame, "PLX1", 0, 4);
    plx_decoder_t *d = plx_decoder_new(&lim);
    assert_int_equal(plx_decoder_feed(d, frame, 12, &used, &out, &err), PLX_ELIMIT);
    assert_non_null(strstr(err.msg, "4 buffers exceed the limit of 3"));
    plx_decoder_destroy(&d);

    put_header(frame, "PLX1", 0, 3);
    memset(frame + 12, 0, 3 * 8);
    d = plx_decoder_new(&lim);
    assert_int_equal(plx_decoder_feed(d, frame, sizeof frame, &used, &out, &err), 1);
    assert_int_equal(out->nbufs, 3);
    plx_msg_destroy(&out);
    plx_decoder_destroy(&d);
}

static void test_buffer_size_limit(void **state)
{
    (void)state;
    plx_limits_t lim = small_limits();
    uint8_t frame[12 + 8];
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    size_t used;
    put_header(frame, "PLX1", 0, 1);
    put_u64(frame + 12, 1001);
    plx_decoder_t *d = plx_decoder_new(&lim);
    assert_int_equal(plx_decoder_feed(d, frame, sizeof frame, &used, &out, &err), PLX_ELIMIT);
    assert_non_null(strstr(err.msg, "buffer of 1001 bytes exceeds the limit of 1000"));
    plx_decoder_destroy(&d);
}

/* The sum of envelope and buffers over max_frame, each part within its own limit. */
static void test_frame_limit(void **state)
{
    (void)state;
    plx_limits_t lim = small_limits();   /* max_frame 1500 */
    static const size_t sizes[] = { 1000, 450 };
    plx_msg_t *m = make_msg(8, 51, sizes, 2);   /* 51 + 1000 + 450 = 1501 */
    size_t len, used;
    uint8_t *wire = encode(m, &len);
    plx_decoder_t *d = plx_decoder_new(&lim);
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    assert_int_equal(plx_decoder_feed(d, wire, len, &used, &out, &err), PLX_ELIMIT);
    assert_non_null(strstr(err.msg, "frame of 1501 bytes exceeds the limit of 1500"));
    /* It failed on the second length, before reading that buffer. */
    assert_int_equal(used, 12 + 51 + 8 + 1000 + 8);
    plx_decoder_destroy(&d);
    free(wire);
    plx_msg_destroy(&m);

    /* An envelope alone over max_frame (with max_envelope larger). */
    lim.max_envelope = 4096;
    lim.max_frame = 100;
    uint8_t hdr[12];
    put_header(hdr, "PLX1", 101, 0);
    d = plx_decoder_new(&lim);
    assert_int_equal(plx_decoder_feed(d, hdr, sizeof hdr, &used, &out, &err), PLX_ELIMIT);
    assert_non_null(strstr(err.msg, "frame of 101 bytes exceeds the limit of 100"));
    plx_decoder_destroy(&d);
}

/* A peer announcing 1 GiB and sending 100 bytes costs about nothing. */
static void test_announced_but_not_sent(void **state)
{
    (void)state;
    uint8_t frame[12 + 10 + 8 + 100];
    memset(frame, 0x5a, sizeof frame);
    put_header(frame, "PLX1", 10, 1);
    put_u64(frame + 22, 1ull << 30);
    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    size_t used;
    assert_int_equal(plx_decoder_feed(d, frame, sizeof frame, &used, &out, &err), 0);
    assert_int_equal(used, sizeof frame);
    assert_null(out);
    assert_false(plx_decoder_idle(d));
    assert_true(plx_decoder_buffered(d) < (1u << 20));
    /* The direct path too offers a region sized by what is reasonable. */
    uint8_t *ptr;
    size_t room;
    assert_int_equal(plx_decoder_direct(d, 1, &ptr, &room, &err), 1);
    assert_true(room < (1u << 20));
    assert_true(plx_decoder_buffered(d) < (1u << 20));
    plx_decoder_destroy(&d);
}

/* After an error every call fails: the connection must be closed. */
static void test_use_after_error(void **state)
{
    (void)state;
    uint8_t bad[12], good[12];
    put_header(bad, "XXXX", 0, 0);
    put_header(good, "PLX1", 0, 0);
    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_msg_t *out = NULL;
    plx_err_t err = { 0 };
    size_t used = 99;
    assert_int_equal(plx_decoder_feed(d, bad, sizeof bad, &used, &out, &err), PLX_EPROTO);
    assert_true(plx_decoder_feed(d, good, sizeof good, &used, &out, &err) < 0);
    assert_int_equal(used, 0);
    assert_null(out);
    assert_non_null(strstr(err.msg, "after an error"));
    assert_false(plx_decoder_idle(d));
    uint8_t *ptr;
    size_t room;
    assert_int_equal(plx_decoder_direct(d, 1, &ptr, &room, &err), 0);
    assert_true(plx_decoder_commit(d, 1, &out, &err) < 0);
    assert_null(out);
    plx_decoder_destroy(&d);
}

/* ---- the direct-read path ----------------------------------------------------- */

/* Read as much as the decoder offers straight into its memory, as a
 * connection does with read(2); otherwise feed it from a small staging
 * buffer (4 KiB here), as a connection does between bodies. */
static int pump_direct(plx_decoder_t *d, const uint8_t *wire, size_t len, size_t *pos,
                       plx_msg_t **out, int *direct_calls)
{
    plx_err_t err = { 0 };
    while (*pos < len) {
        uint8_t *ptr;
        size_t room, used;
        int rc = plx_decoder_direct(d, 4096, &ptr, &room, &err);
        assert_true(rc >= 0);
        if (rc == 1) {
            assert_true(room > 0);
            size_t n = len - *pos < room ? len - *pos : room;
            memcpy(ptr, wire + *pos, n);
            *pos += n;
            (*direct_calls)++;
            rc = plx_decoder_commit(d, n, out, &err);
        } else {
            size_t chunk = len - *pos < 4096 ? len - *pos : 4096;
            rc = plx_decoder_feed(d, wire + *pos, chunk, &used, out, &err);
            *pos += used;
        }
        assert_true(rc >= 0);
        if (rc == 1)
            return 1;
    }
    return 0;
}

static void test_direct_10mb(void **state)
{
    (void)state;
    static const size_t sizes[] = { 10u * 1000 * 1000, 10, 0 };
    plx_msg_t *m = make_msg(9, 200000, sizes, 3);   /* a large envelope goes direct too */
    size_t len, pos = 0;
    uint8_t *wire = encode(m, &len);
    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_msg_t *out = NULL;
    int direct_calls = 0;

    /* Nothing to offer between frames. */
    uint8_t *ptr;
    size_t room;
    plx_err_t err = { 0 };
    assert_int_equal(plx_decoder_direct(d, 1, &ptr, &room, &err), 0);
    assert_true(plx_decoder_commit(d, 1, &out, &err) < 0);

    assert_int_equal(pump_direct(d, wire, len, &pos, &out, &direct_calls), 1);
    assert_int_equal(pos, len);
    assert_non_null(out);
    assert_msg_equal(m, out);
    /* Geometric growth: a handful of direct reads, not thousands. */
    if (direct_calls < 2 || direct_calls > 40)
        fail_msg("%d direct reads", direct_calls);
    plx_msg_destroy(&out);

    /* Bodies shorter than min are not offered. */
    static const size_t small[] = { 100 };
    plx_msg_t *s = make_msg(10, 0, small, 1);
    size_t slen, used;
    uint8_t *swire = encode(s, &slen);
    assert_int_equal(plx_decoder_feed(d, swire, 12 + 8, &used, &out, &err), 0);
    assert_int_equal(plx_decoder_direct(d, 101, &ptr, &room, &err), 0);
    assert_int_equal(plx_decoder_direct(d, 100, &ptr, &room, &err), 1);
    assert_int_equal(room, 100);
    memcpy(ptr, swire + 20, 100);
    assert_int_equal(plx_decoder_commit(d, 100, &out, &err), 1);
    assert_msg_equal(s, out);
    plx_msg_destroy(&out);

    plx_decoder_destroy(&d);
    free(swire);
    plx_msg_destroy(&s);
    free(wire);
    plx_msg_destroy(&m);
}

/* With the buffer pool on, a body can land in a reused block larger than
 * itself: the direct region must still end where the body ends, or the
 * next frame's bytes would be read into it. Two frames back to back, fed
 * as one stream, both come out intact. */
static void test_direct_into_pooled_block(void **state)
{
    (void)state;
    static const size_t one[] = { 9u << 20 }, two[] = { 5000 };
    plx_msg_t *a = make_msg(11, 10, one, 1), *b = make_msg(12, 10, two, 1);
    plx_buf_pool_set_max((size_t)64 << 20);
    plx_buf_t *big = plx_buf_new((size_t)32 << 20);   /* becomes the pooled block */
    plx_buf_unref(&big);
    size_t alen, blen;
    uint8_t *awire = encode(a, &alen), *bwire = encode(b, &blen);
    uint8_t *wire = malloc(alen + blen);
    memcpy(wire, awire, alen);
    memcpy(wire + alen, bwire, blen);
    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_msg_t *out = NULL;
    size_t pos = 0;
    int calls = 0;
    assert_int_equal(pump_direct(d, wire, alen + blen, &pos, &out, &calls), 1);
    assert_int_equal(pos, alen);
    assert_msg_equal(a, out);
    assert_true(out->bufs[0]->cap >= ((size_t)32 << 20));   /* it did reuse the block */
    plx_msg_destroy(&out);
    assert_int_equal(pump_direct(d, wire, alen + blen, &pos, &out, &calls), 1);
    assert_msg_equal(b, out);
    plx_msg_destroy(&out);
    plx_decoder_destroy(&d);
    plx_msg_destroy(&a);
    plx_msg_destroy(&b);
    free(awire);
    free(bwire);
    free(wire);
    plx_buf_pool_set_max(0);
}

/* ---- taps ------------------------------------------------------------------ */

typedef struct tapped {
    int      heads, ends, whole, take;
    uint32_t env_len, nbufs;
    uint8_t *bytes;
    size_t   n, cap;
} tapped_t;

static int tk_head(void *ud, const uint8_t *env, uint32_t env_len, uint32_t nbufs)
{
    tapped_t *t = ud;
    t->heads++;
    t->env_len = env_len;
    t->nbufs = nbufs;
    if (env_len)
        assert_int_equal(env[0], pattern(t->take ? 21 : 20, 0));
    return t->take ? PLX_TAP_TAKE : PLX_TAP_SKIP;
}

static void tk_bytes(void *ud, const uint8_t *p, size_t n)
{
    tapped_t *t = ud;
    if (t->n + n > t->cap) {
        t->cap = (t->n + n) * 2;
        t->bytes = realloc(t->bytes, t->cap);
        assert_non_null(t->bytes);
    }
    memcpy(t->bytes + t->n, p, n);
    t->n += n;
}

static void tk_end(void *ud, int whole)
{
    tapped_t *t = ud;
    t->ends++;
    t->whole = whole;
}

static plx_tap_t tap_of(tapped_t *t)
{
    return (plx_tap_t){ .head = tk_head, .bytes = tk_bytes, .end = tk_end, .ud = t };
}

/* A tap sees a frame's envelope, then every byte after it as on the wire
 * (fed in pieces and read in place alike), and its end; a frame it skips
 * leaves it set for the next one, and one it took clears it. */
static void test_tap_passes_bytes_on(void **state)
{
    (void)state;
    static const size_t sizes[] = { 3u * 1000 * 1000, 7, 0, 70000 };
    plx_msg_t *skip = make_msg(20, 40, sizes + 1, 1), *take = make_msg(21, 300, sizes, 4);
    size_t slen, tlen, pos = 0;
    uint8_t *sw = encode(skip, &slen), *tw = encode(take, &tlen);
    uint8_t *wire = malloc(slen + 2 * tlen);
    memcpy(wire, sw, slen);
    memcpy(wire + slen, tw, tlen);
    memcpy(wire + slen + tlen, tw, tlen);
    plx_decoder_t *d = plx_decoder_new(NULL);
    tapped_t t = { 0 };
    plx_tap_t tap = tap_of(&t);
    plx_decoder_set_tap(d, &tap);
    plx_msg_t *out = NULL;
    int direct = 0;
    assert_int_equal(pump_direct(d, wire, slen, &pos, &out, &direct), 1);
    assert_int_equal(t.heads, 1);
    assert_int_equal(t.ends + (int)t.n, 0);   /* skipped: nothing passed on */
    plx_msg_destroy(&out);
    t.take = 1;
    assert_int_equal(pump_direct(d, wire, slen + tlen, &pos, &out, &direct), 1);
    assert_true(direct > 0);
    assert_int_equal(t.heads, 2);
    assert_int_equal(t.env_len, 300);
    assert_int_equal(t.nbufs, 4);
    assert_int_equal(t.ends, 1);
    assert_int_equal(t.whole, 1);
    assert_int_equal(t.n, tlen - PLX_FRAME_HDR_LEN - 300);
    assert_memory_equal(t.bytes, tw + PLX_FRAME_HDR_LEN + 300, t.n);
    assert_msg_equal(take, out);   /* the receiver gets its frame as ever */
    plx_msg_destroy(&out);
    assert_int_equal(pump_direct(d, wire, slen + 2 * tlen, &pos, &out, &direct), 1);
    assert_int_equal(t.heads, 2);   /* cleared after the frame it took */
    plx_msg_destroy(&out);
    plx_decoder_destroy(&d);
    free(t.bytes);
    free(wire);
    free(sw);
    free(tw);
    plx_msg_destroy(&skip);
    plx_msg_destroy(&take);
}

/* A tapped frame that will not be whole ends the tap with 0: its buffers
 * refused for the budget, or the decoder destroyed halfway. */
static void test_tap_ends_unwhole(void **state)
{
    (void)state;
    static const size_t sizes[] = { 100000, 100000 };
    plx_msg_t *m = make_msg(21, 16, sizes, 2);
    size_t len, used;
    uint8_t *wire = encode(m, &len);
    plx_err_t err = { 0 };
    plx_msg_t *out = NULL;
    for (int budgeted = 0; budgeted < 2; budgeted++) {
        plx_decoder_t *d = plx_decoder_new(NULL);
        plx_budget_t budget = { .max = 150000 };
        tapped_t t = { .take = 1 };
        plx_tap_t tap = tap_of(&t);
        plx_decoder_set_tap(d, &tap);
        if (budgeted) {
            plx_decoder_set_budget(d, &budget);
            assert_int_equal(plx_decoder_feed(d, wire, len, &used, &out, &err), 1);
            assert_int_equal(out->refused_code, PLX_ELIMIT);
            plx_msg_destroy(&out);
        } else {
            assert_int_equal(plx_decoder_feed(d, wire, len / 2, &used, &out, &err), 0);
        }
        assert_int_equal(t.ends, budgeted);
        plx_decoder_destroy(&d);
        assert_int_equal(t.ends, 1);
        assert_int_equal(t.whole, 0);
        free(t.bytes);
    }
    free(wire);
    plx_msg_destroy(&m);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_split),
    cmocka_unit_test(test_byte_by_byte),
    cmocka_unit_test(test_back_to_back),
    cmocka_unit_test(test_empty_parts),
    cmocka_unit_test(test_bad_magic),
    cmocka_unit_test(test_truncated),
    cmocka_unit_test(test_envelope_limit),
    cmocka_unit_test(test_buffer_count_limit),
    cmocka_unit_test(test_buffer_size_limit),
    cmocka_unit_test(test_frame_limit),
    cmocka_unit_test(test_announced_but_not_sent),
    cmocka_unit_test(test_use_after_error),
    cmocka_unit_test(test_direct_10mb),
    cmocka_unit_test(test_direct_into_pooled_block),
    cmocka_unit_test(test_tap_passes_bytes_on),
    cmocka_unit_test(test_tap_ends_unwhole),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("frame", tests, NULL, NULL))
