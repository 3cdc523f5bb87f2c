/*
 * Reference-counted byte buffers: the unit of out-of-band payload.
 *
 * A buffer received from one connection is forwarded to many others by
 * taking references, never by copying. Memory is either owned (malloc) or
 * borrowed from someone else (a Python object's buffer) with a release
 * callback run when the last reference goes. Reference counts are atomic:
 * a client's I/O thread and the caller's thread share buffers.
 */
#ifndef PLX_BUF_H
#define PLX_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * libplexa exports the functions marked PLX_SHARED (buffers, messages):
 * the Python extension links core/pyvalue statically and must call
 * libplexa's copies, not a private copy of its own, or a buffer libplexa
 * received would be freed by code that does not know libplexa's block
 * pool (plx_bufpool.h), and every large pull would fault in fresh pages.
 * tests/client checks that _native.so defines none of them itself.
 */
#define PLX_SHARED __attribute__((visibility("default")))

typedef void (*plx_buf_release_fn)(void *ctx, uint8_t *data, size_t len);

typedef struct plx_buf {
    atomic_int          refs;
    size_t              len;       /* bytes of payload */
    size_t              cap;       /* bytes allocated (owned memory only) */
    uint8_t            *data;
    plx_buf_release_fn  release;   /* NULL: data is malloc'd and freed by us */
    void               *release_ctx;
    /* A memory budget this buffer counts against (plx_buf_charge), given
     * back when the last reference goes; NULL: none. */
    atomic_uint_fast64_t *budget;
    uint64_t             charged;
    /* The shared-memory region this buffer views (plx_region.h), counted,
     * and where in the region's file its data starts; NULL: none. */
    struct plx_region   *region;
    uint64_t             region_off;
} plx_buf_t;

/* A new owned buffer of len bytes (uninitialised), refs = 1. NULL on ENOMEM. */
PLX_SHARED plx_buf_t *plx_buf_new(size_t len);

/* A new buffer holding a copy of data. */
PLX_SHARED plx_buf_t *plx_buf_copy(const void *data, size_t len);

/* Borrow memory: release(ctx, data, len) runs when the last reference goes. */
PLX_SHARED plx_buf_t *plx_buf_wrap(void *data, size_t len, plx_buf_release_fn release, void *ctx);

/* Grow an owned buffer's capacity to at least cap (len unchanged). Uses
 * realloc, which for large blocks remaps pages instead of copying. */
PLX_SHARED int plx_buf_reserve(plx_buf_t *b, size_t cap);

/* Grow to at least cap only if the block pool (plx_bufpool.h) has one
 * that large: 1 when it did, 0 when it did not (b unchanged), or
 * PLX_EINVAL for a wrapped buffer. Pooled memory is already mapped, so
 * taking all of it at once costs nothing that growing would save. */
int plx_buf_reserve_pooled(plx_buf_t *b, size_t cap);

PLX_SHARED plx_buf_t *plx_buf_ref(plx_buf_t *b);

/* Count n bytes of b against *budget until b is freed (a controller's
 * bound on the payload it holds). A buffer is charged at most once. */
void plx_buf_charge(plx_buf_t *b, atomic_uint_fast64_t *budget, uint64_t n);

/* Drop a reference and NULL the pointer; NULL-safe. */
PLX_SHARED void plx_buf_unref(plx_buf_t **bp);

#endif
