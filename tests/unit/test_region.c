/* Unit tests of shared-memory regions (core/util/plx_region.c) and of
 * region references in frames (core/wire/plx_frame.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "plx_test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plx_buf.h"
#include "plx_frame.h"
#include "plx_region.h"

/* Mappings of plexa memory files in this process, as /proc/self/maps
 * lists them: what must be back to zero when every view is gone. */
static int mapped_regions(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        n += strstr(line, "/memfd:plexa") != NULL;
    fclose(f);
    return n;
}

static int open_fds(void)
{
    char path[64];
    int n = 0;
    for (int fd = 0; fd < 4096; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        n += access(path, F_OK) == 0;
    }
    return n;
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 13u + seed);
}

static void test_new_view_reclaimed(void **state)
{
    int fds0 = open_fds();
    plx_region_t *r = NULL;
    plx_err_t err = {0};
    assert_int_equal(plx_region_new(3 << 20, &r, &err), PLX_OK);
    plx_buf_t *a = plx_region_view(r, 0, 1 << 20);
    plx_buf_t *b = plx_region_view(r, 1 << 20, 2 << 20);
    assert_null(plx_region_view(r, 2 << 20, 2 << 20));   /* past the end */
    plx_region_unref(&r);
    fill(b->data, b->len, 3);
    uint64_t off = 0;
    assert_true(plx_region_fd_of(b, &off) >= 0);
    assert_int_equal(off, 1 << 20);
    assert_int_equal(plx_region_live(), 1);
    assert_int_equal(mapped_regions(), 1);
    plx_buf_unref(&a);
    assert_int_equal(plx_region_live(), 1);   /* b still views it */
    plx_buf_unref(&b);
    assert_int_equal(plx_region_live(), 0);
    assert_int_equal(mapped_regions(), 0);
    assert_int_equal(open_fds(), fds0);
}

static void no_release(void *ctx, uint8_t *data, size_t len)
{
    (void)ctx, (void)data, (void)len;
}

/* A received descriptor mapped private: the bytes are the sender's, a
 * write stays the receiver's, and the descriptor is closed at once. */
static void test_adopt_private(void **state)
{
    plx_buf_t *src = NULL;
    uint8_t data[10000];
    plx_err_t err = {0};
    fill(data, sizeof data, 7);
    assert_int_equal(plx_region_copy(data, sizeof data, &src, &err), PLX_OK);
    uint64_t off = 0;
    int fd = dup(plx_region_fd_of(src, &off));
    int fds0 = open_fds();
    plx_buf_t *got = NULL;
    assert_int_equal(plx_region_adopt(fd, 5000, 5000, PLX_REGION_PRIVATE, &got, &err), PLX_OK);
    assert_int_equal(open_fds(), fds0);   /* kept, for sending it on */
    assert_memory_equal(got->data, data + 5000, 5000);
    assert_true(plx_region_fd_of(got, &off) >= 0);   /* unwritten: goes on as it is */
    assert_int_equal(off, 5000);
    /* ...also when it is handed back as a bare pointer (a numpy array's
     * export, for a pull of what was pushed) */
    plx_buf_t *bare = plx_buf_wrap(got->data + 100, 1000, no_release, NULL);
    assert_int_equal(plx_region_attach(bare), 1);
    assert_true(plx_region_fd_of(bare, &off) >= 0);
    assert_int_equal(off, 5100);
    plx_buf_unref(&bare);
    got->data[0] ^= 0xff;
    assert_int_equal(src->data[5000], data[5000]);
    assert_int_equal(plx_region_fd_of(got, &off), -1);   /* written: copied when sent */
    assert_int_equal(plx_region_lend(got, &off), -1);
    plx_buf_unref(&got);
    plx_buf_unref(&src);
    assert_int_equal(plx_region_live(), 0);
}

static void test_adopt_refuses(void **state)
{
    plx_err_t err = {0};
    plx_buf_t *got = NULL;
    /* Not sealed: its owner could shrink it under our mapping. */
    int fd = memfd_create("plexa", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_int_equal(ftruncate(fd, 4096), 0);
    assert_int_equal(plx_region_adopt(fd, 0, 4096, PLX_REGION_READONLY, &got, &err),
                     PLX_EPROTO);
    assert_non_null(strstr(err.msg, "not sealed"));
    /* Not a memory file at all. */
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_int_equal(plx_region_adopt(fd, 0, 1, PLX_REGION_READONLY, &got, &err), PLX_EPROTO);
    /* Sealed, but shorter than what the reference names. */
    plx_buf_t *src = NULL;
    uint8_t data[100] = {0};
    assert_int_equal(plx_region_copy(data, sizeof data, &src, &err), PLX_OK);
    uint64_t off;
    fd = dup(plx_region_fd_of(src, &off));
    assert_int_equal(plx_region_adopt(fd, 50, 51, PLX_REGION_READONLY, &got, &err), PLX_EPROTO);
    assert_non_null(strstr(err.msg, "do not fit"));
    assert_null(got);
    plx_buf_unref(&src);
    assert_int_equal(plx_region_live(), 0);
}

/* Memory handed over as a bare pointer is recognised as a region's. */
static void test_attach(void **state)
{
    plx_region_t *r = NULL;
    plx_err_t err = {0};
    assert_int_equal(plx_region_new(1 << 20, &r, &err), PLX_OK);
    plx_buf_t *view = plx_region_view(r, 0, 1 << 20);
    plx_buf_t *inside = plx_buf_wrap(view->data + 4096, 8192, no_release, NULL);
    uint8_t elsewhere[64];
    plx_buf_t *outside = plx_buf_wrap(elsewhere, sizeof elsewhere, no_release, NULL);
    plx_buf_t *across = plx_buf_wrap(view->data + (1 << 20) - 10, 20, no_release, NULL);
    assert_int_equal(plx_region_attach(outside), 0);
    assert_int_equal(plx_region_attach(across), 0);   /* runs past the end */
    plx_region_unref(&r);
    assert_int_equal(plx_region_attach(inside), 1);
    plx_buf_unref(&view);
    uint64_t off = 0;
    assert_true(plx_region_fd_of(inside, &off) >= 0);
    assert_int_equal(off, 4096);
    assert_int_equal(plx_region_live(), 1);   /* inside keeps it */
    plx_buf_unref(&outside);
    plx_buf_unref(&across);
    plx_buf_unref(&inside);
    assert_int_equal(plx_region_live(), 0);
}

/* A copy's region is reused for the next copy only once no receiver maps
 * it any more: the lent description's lock says so. */
static void test_pool_waits_for_receivers(void **state)
{
    plx_region_pool_set_max(64 << 20);
    uint8_t data[300000];
    fill(data, sizeof data, 5);
    plx_err_t err = {0};
    plx_buf_t *a = NULL, *b = NULL, *c = NULL, *got = NULL;
    assert_int_equal(plx_region_copy(data, sizeof data, &a, &err), PLX_OK);
    uint8_t *first = a->data;
    uint64_t off;
    int lent = plx_region_lend(a, &off);
    assert_true(lent >= 0);
    assert_int_equal(plx_region_adopt(lent, off, sizeof data, PLX_REGION_PRIVATE, &got, &err),
                     PLX_OK);
    plx_buf_unref(&a);          /* sent: the sender's view goes, into the pool */
    assert_int_equal(plx_region_copy(data, sizeof data, &b, &err), PLX_OK);
    assert_ptr_not_equal(b->data, first);   /* still mapped by the receiver */
    assert_memory_equal(got->data, data, sizeof data);
    plx_buf_unref(&got);        /* the receiver is done */
    assert_int_equal(plx_region_copy(data, sizeof data, &c, &err), PLX_OK);
    assert_ptr_equal(c->data, first);       /* reused */
    plx_buf_unref(&b);
    plx_buf_unref(&c);
    assert_int_equal(plx_region_live(), 0);   /* none in use... */
    assert_true(mapped_regions() > 0);        /* ...but kept mapped in the pool */
    plx_region_pool_set_max(0);
    assert_int_equal(plx_region_live(), 0);
    assert_int_equal(mapped_regions(), 0);
}

/* A scratch buffer is pooled memory of the process's own: never lent,
 * back to the pool when freed, and the next copy may take it (then lent
 * as any copy). */
static void test_scratch(void **state)
{
    plx_region_pool_set_max(64 << 20);
    plx_err_t err = {0};
    plx_buf_t *s = NULL, *c = NULL;
    uint64_t off;
    assert_int_equal(plx_region_scratch(0, &s, &err), PLX_EINVAL);
    assert_int_equal(plx_region_scratch(300000, &s, &err), PLX_OK);
    fill(s->data, s->len, 3);                        /* writable */
    assert_int_equal(plx_region_fd_of(s, &off), -1); /* never by descriptor */
    assert_int_equal(plx_region_lend(s, &off), -1);
    plx_buf_t *bare = plx_buf_wrap(s->data + 10, 100, no_release, NULL);
    assert_int_equal(plx_region_attach(bare), 1);    /* as a numpy array's export */
    assert_int_equal(plx_region_fd_of(bare, &off), -1);
    plx_buf_unref(&bare);
    uint8_t *first = s->data;
    plx_buf_unref(&s);
    assert_int_equal(plx_region_live(), 0);
    uint8_t data[300000];
    fill(data, sizeof data, 4);
    assert_int_equal(plx_region_copy(data, sizeof data, &c, &err), PLX_OK);
    assert_ptr_equal(c->data, first);                /* the pool's, reused */
    assert_true(plx_region_fd_of(c, &off) >= 0);     /* a copy: lent again */
    plx_buf_unref(&c);
    plx_region_pool_set_max(0);
    assert_int_equal(mapped_regions(), 0);
}

/* The pool hands out the smallest region that fits, keeping a big one
 * for a big need (a gather's join after the scatter copies of its
 * halves). */
static void test_pool_best_fit(void **state)
{
    plx_region_pool_set_max(64 << 20);
    static uint8_t data[300000];
    plx_err_t err = {0};
    plx_buf_t *big = NULL, *small = NULL, *c = NULL;
    assert_int_equal(plx_region_copy(data, 300000, &big, &err), PLX_OK);
    assert_int_equal(plx_region_copy(data, 160000, &small, &err), PLX_OK);
    uint8_t *small_at = small->data, *big_at = big->data;
    plx_buf_unref(&small);
    plx_buf_unref(&big);                 /* the big one is the pool's newest */
    assert_int_equal(plx_region_copy(data, 150000, &c, &err), PLX_OK);
    assert_ptr_equal(c->data, small_at); /* both fit: the smaller is taken */
    plx_buf_t *s = NULL;
    assert_int_equal(plx_region_scratch(290000, &s, &err), PLX_OK);
    assert_ptr_equal(s->data, big_at);
    plx_buf_unref(&c);
    plx_buf_unref(&s);
    plx_region_pool_set_max(0);
    assert_int_equal(mapped_regions(), 0);
}

/* plx_region_read gives what the source shows: from a received view's
 * file while unwritten, from the view itself once written here, and from
 * plain memory. */
static void test_read(void **state)
{
    uint8_t data[20000], out[10000];
    plx_err_t err = {0};
    fill(data, sizeof data, 9);
    plx_buf_t *src = NULL, *got = NULL;
    assert_int_equal(plx_region_copy(data, sizeof data, &src, &err), PLX_OK);
    uint64_t off = 0;
    int fd = dup(plx_region_fd_of(src, &off));
    assert_int_equal(plx_region_adopt(fd, 8192, 10000, PLX_REGION_PRIVATE, &got, &err), PLX_OK);
    memset(out, 0, sizeof out);
    plx_region_read(got->data, 10000, out);
    assert_memory_equal(out, data + 8192, 10000);
    plx_region_read(got->data + 5, 100, out);        /* part of a view */
    assert_memory_equal(out, data + 8197, 100);
    got->data[9000] ^= 0xff;                          /* written here: the file is stale */
    plx_region_read(got->data, 10000, out);
    assert_memory_equal(out, got->data, 10000);
    assert_int_equal(out[9000], (uint8_t)(data[8192 + 9000] ^ 0xff));
    plx_region_read(data, 50, out);                   /* no region at all */
    assert_memory_equal(out, data, 50);
    plx_region_read(data, 0, out);
    plx_buf_unref(&got);
    plx_buf_unref(&src);
    assert_int_equal(plx_region_live(), 0);
}

/* ---- frames ---------------------------------------------------------------- */

#define PLX_TRANSPORT_FDS_TEST 8

/* Encode m over a sharing connection and decode it again, passing the
 * descriptors as a transport would (duplicates). */
static plx_msg_t *roundtrip(plx_msg_t *m, int kind, int *nrefs)
{
    struct iovec iov[16];
    int fds[PLX_TRANSPORT_FDS_TEST], nfds = 0;
    int cnt = plx_msg_iov_fds(m, iov, 1024, fds, PLX_TRANSPORT_FDS_TEST, &nfds);
    assert_true(cnt > 0);
    *nrefs = nfds;
    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_decoder_set_regions(d, kind);
    plx_err_t err = {0};
    /* The lent descriptors go to the decoder, as if the kernel had passed
     * them on (the sender's would be closed once sent). */
    assert_int_equal(plx_decoder_give_fds(d, fds, nfds, &err), PLX_OK);
    plx_msg_t *out = NULL;
    for (int i = 0; i < cnt; i++) {
        size_t used = 0;
        int rc = plx_decoder_feed(d, iov[i].iov_base, iov[i].iov_len, &used, &out, &err);
        assert_true(rc >= 0);
        assert_int_equal(used, iov[i].iov_len);
    }
    assert_non_null(out);
    plx_decoder_destroy(&d);
    return out;
}

static void test_frame_refs(void **state)
{
    int fds0 = open_fds();
    plx_msg_t *m = plx_msg_new(5);
    memcpy(plx_msg_env(m), "hello", 5);
    uint8_t small[100], big[300000];
    fill(small, sizeof small, 1);
    fill(big, sizeof big, 2);
    plx_buf_t *b1 = plx_buf_copy(small, sizeof small), *b2 = plx_buf_copy(big, sizeof big);
    plx_msg_add_buf(m, b1);
    plx_msg_add_buf(m, b2);
    int nrefs = 0;
    plx_msg_t *out = roundtrip(m, PLX_REGION_PRIVATE, &nrefs);
    assert_int_equal(nrefs, 1);   /* the small one went inline */
    assert_int_equal(out->nbufs, 2);
    assert_memory_equal(out->bufs[0]->data, small, sizeof small);
    assert_null(out->bufs[0]->region);
    assert_non_null(out->bufs[1]->region);
    assert_memory_equal(out->bufs[1]->data, big, sizeof big);
    assert_memory_equal(plx_msg_env(out), "hello", 5);
    /* The sender's original stays: m now holds the region copy. */
    assert_ptr_equal(m->bufs[0], b1);
    assert_ptr_not_equal(m->bufs[1], b2);
    plx_buf_unref(&b1);
    plx_buf_unref(&b2);
    plx_msg_destroy(&m);
    plx_msg_destroy(&out);
    assert_int_equal(plx_region_live(), 0);
    assert_int_equal(mapped_regions(), 0);
    assert_int_equal(open_fds(), fds0);
}

/* What a broken or hostile peer can send: a reference on a connection
 * that takes none, one with no descriptor, one of the wrong length. */
static void test_frame_bad_refs(void **state)
{
    uint8_t frame[12 + 8 + 16] = {'P', 'L', 'X', '1', 0, 0, 0, 0, 1, 0, 0, 0};
    uint64_t w = PLX_FRAME_REGION_BIT | PLX_FRAME_REF_LEN;
    memcpy(frame + 12, &w, 8);
    memset(frame + 20, 0, 16);
    frame[28] = 1;   /* length 1 */
    plx_err_t err = {0};
    size_t used;
    plx_msg_t *out = NULL;
    plx_decoder_t *d = plx_decoder_new(NULL);
    assert_int_equal(plx_decoder_feed(d, frame, sizeof frame, &used, &out, &err), PLX_EPROTO);
    assert_non_null(strstr(err.msg, "cannot pass descriptors"));
    plx_decoder_destroy(&d);

    d = plx_decoder_new(NULL);
    plx_decoder_set_regions(d, PLX_REGION_PRIVATE);
    assert_int_equal(plx_decoder_feed(d, frame, sizeof frame, &used, &out, &err), PLX_EPROTO);
    assert_non_null(strstr(err.msg, "without its descriptor"));
    plx_decoder_destroy(&d);

    w = PLX_FRAME_REGION_BIT | 24;
    memcpy(frame + 12, &w, 8);
    d = plx_decoder_new(NULL);
    plx_decoder_set_regions(d, PLX_REGION_PRIVATE);
    assert_int_equal(plx_decoder_feed(d, frame, sizeof frame, &used, &out, &err), PLX_EPROTO);
    plx_decoder_destroy(&d);

    /* Descriptors far ahead of any reference: refused, all closed. */
    int fds0 = open_fds();
    d = plx_decoder_new(NULL);
    plx_decoder_set_regions(d, PLX_REGION_PRIVATE);
    int fds[64];
    int rc = PLX_OK;
    for (int round = 0; round < 5 && rc == PLX_OK; round++) {
        for (int i = 0; i < 64; i++)
            fds[i] = dup(0);
        rc = plx_decoder_give_fds(d, fds, 64, &err);
    }
    assert_int_equal(rc, PLX_EPROTO);
    plx_decoder_destroy(&d);
    assert_int_equal(open_fds(), fds0);
}

/* A reference over the payload budget is dropped, not mapped: the frame
 * arrives refused and its descriptor is closed. */
static void test_frame_ref_over_budget(void **state)
{
    int fds0 = open_fds();
    plx_budget_t budget = {.max = 1000};
    plx_msg_t *m = plx_msg_new(0);
    uint8_t big[200000] = {0};
    plx_buf_t *b = plx_buf_copy(big, sizeof big);
    plx_msg_add_buf(m, b);
    plx_buf_unref(&b);
    struct iovec iov[4];
    int fds[4], nfds = 0;
    int cnt = plx_msg_iov_fds(m, iov, 1024, fds, 4, &nfds);
    plx_decoder_t *d = plx_decoder_new(NULL);
    plx_decoder_set_regions(d, PLX_REGION_READONLY);
    plx_decoder_set_budget(d, &budget);
    plx_err_t err = {0};
    assert_int_equal(plx_decoder_give_fds(d, fds, 1, &err), PLX_OK);
    plx_msg_t *out = NULL;
    for (int i = 0; i < cnt; i++) {
        size_t used;
        assert_true(plx_decoder_feed(d, iov[i].iov_base, iov[i].iov_len, &used, &out, &err) >= 0);
    }
    assert_non_null(out);
    assert_int_equal(out->nbufs, 0);
    assert_int_equal(out->refused_code, PLX_ELIMIT);
    assert_int_equal(out->refused_bytes, sizeof big);
    plx_msg_destroy(&out);
    plx_msg_destroy(&m);
    plx_decoder_destroy(&d);
    assert_int_equal(plx_region_live(), 0);
    assert_int_equal(open_fds(), fds0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_new_view_reclaimed),
    cmocka_unit_test(test_adopt_private),
    cmocka_unit_test(test_adopt_refuses),
    cmocka_unit_test(test_attach),
    cmocka_unit_test(test_pool_waits_for_receivers),
    cmocka_unit_test(test_scratch),
    cmocka_unit_test(test_pool_best_fit),
    cmocka_unit_test(test_read),
    cmocka_unit_test(test_frame_refs),
    cmocka_unit_test(test_frame_bad_refs),
    cmocka_unit_test(test_frame_ref_over_budget),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("region", tests, NULL, NULL))
