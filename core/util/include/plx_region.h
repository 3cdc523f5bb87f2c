/*
 * Shared-memory regions: payload that crosses processes by descriptor,
 * not by copy.
 *
 * A region is a sealed memfd (it can neither shrink nor grow, so a
 * mapping of it never faults with SIGBUS) and this process's mapping of
 * it. Buffers (plx_buf_t) are views of regions: a view holds a reference
 * on its region, and the region is unmapped and its descriptor closed
 * when the last view goes. The memory itself lives as long as any process
 * still maps it or holds its descriptor; a process that dies gives both
 * up with everything else, so a crashed peer leaks nothing.
 *
 * Three kinds, by how this process got the region:
 *   - OWN: made here (plx_region_new): mapped shared and writable. Sent
 *     again by descriptor, with no copy: what the process writes later
 *     is seen by whoever maps it (plexa.shared_array's contract).
 *   - READONLY: received, mapped read-only, descriptor kept (a controller
 *     forwarding payload it never reads): sent on by descriptor.
 *   - PRIVATE: received, mapped copy-on-write (an engine or a client:
 *     the value is theirs to modify, as a received copy would be). Its
 *     descriptor is kept (up to 256 of them per process, so that holding
 *     many received arrays does not exhaust descriptors): a view whose
 *     pages this process has not written (/proc/self/pagemap) is sent on
 *     by descriptor, as a pull of what was pushed; one that was written,
 *     or has no descriptor, is copied into a new region.
 *
 * The regions of a process are registered by address, so that memory
 * handed over as a plain pointer (a numpy array's buffer) is recognised
 * as a view of a region that can travel by descriptor (plx_region_find).
 */
#ifndef PLX_REGION_H
#define PLX_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "plexa/error.h"
#include "plx_buf.h"

typedef enum plx_region_kind {
    PLX_REGION_OWN = 0,
    PLX_REGION_READONLY = 1,
    PLX_REGION_PRIVATE = 2,
} plx_region_kind_t;

typedef struct plx_region plx_region_t;

/* A new OWN region of len bytes (len > 0), zero-filled and mapped.
 * Returns PLX_OK with *out holding one reference, PLX_ENOMEM or PLX_EIO
 * (naming the failed call). */
PLX_SHARED int plx_region_new(size_t len, plx_region_t **out, plx_err_t *err);

/* A buffer viewing [off, off + len) of r (takes its own reference on r).
 * NULL on ENOMEM or a range outside the region. */
PLX_SHARED plx_buf_t *plx_region_view(plx_region_t *r, size_t off, size_t len);

/* A new OWN region holding a copy of data[0..len), as one view. The one
 * copy a payload costs on its way into shared memory. */
PLX_SHARED int plx_region_copy(const void *data, size_t len, plx_buf_t **out, plx_err_t *err);

/* A writable buffer of len bytes (len > 0) for this process's own use,
 * its content unspecified: a pooled region when one fits, so its pages
 * are mapped already (on a virtual machine a fresh page costs far more
 * than writing it). Unlike plx_region_copy's, its region is never sent
 * by descriptor (what the process writes there later must not show
 * through someone's view): a push of it is copied like any memory. Back
 * to the pool when its last view goes. PLX_OK, PLX_EINVAL, PLX_ENOMEM or
 * PLX_EIO. */
PLX_SHARED int plx_region_scratch(size_t len, plx_buf_t **out, plx_err_t *err);

/* Copy len bytes at src, which may lie in a received region, to dst.
 * When src is a view that could be sent by descriptor (its file holds
 * what it shows: not written here), the bytes are read from the file
 * (pread), which spares faulting in the view's fresh mapping page by
 * page; otherwise, or if that read falls short, memcpy. */
PLX_SHARED void plx_region_read(const void *src, size_t len, void *dst);

/*
 * A received descriptor: check that it is a sealed memfd of this user
 * holding at least off + len bytes, map [off, off + len) as kind
 * (READONLY or PRIVATE) and return it as one view. Takes ownership of fd
 * in every case (closed on error). Errors
 * (PLX_EPROTO, PLX_EIO, PLX_ENOMEM) say what was wrong with it.
 */
int plx_region_adopt(int fd, uint64_t off, uint64_t len, plx_region_kind_t kind,
                     plx_buf_t **out, plx_err_t *err);

/* If b can travel by descriptor as it is (a view of an OWN or READONLY
 * region, or of a PRIVATE one not written here), the region's descriptor
 * and b's offset in it; else -1. The descriptor stays b's: valid while b
 * is. */
int plx_region_fd_of(const plx_buf_t *b, uint64_t *off);

/* A descriptor of b's region to send (b as for plx_region_fd_of), owned
 * by the caller, who closes it once sent: a file description of its own
 * that holds a read lock for as long as anyone refers to it, which is how
 * this process knows when a region it copied into is free for the next
 * copy (see the pool in plx_region.c). -1 when b cannot travel as it is,
 * or no descriptor was left. */
int plx_region_lend(const plx_buf_t *b, uint64_t *off);

/* The pool of copies' regions: keep at most max_bytes (0, the default:
 * none); free those idle for idle_s seconds or more (0: all).
 * plx_buf_pool_set_max and plx_buf_pool_trim call these, so a process
 * sizes and trims both pools together. */
void plx_region_pool_set_max(size_t max_bytes);
void plx_region_pool_trim(double idle_s);

/* Mark b, a buffer over someone's memory, as a view of the registered
 * region that contains all of it and kept its descriptor, if there is
 * one (b then holds a reference on that region until it is freed; a
 * PRIVATE one still goes by descriptor only while unwritten). Returns 1
 * when it did, 0 when the memory is in no such region. */
PLX_SHARED int plx_region_attach(plx_buf_t *b);

/* Drop a reference; unmaps and closes with the last. NULL-safe. */
PLX_SHARED void plx_region_unref(plx_region_t **rp);

/* Regions in use in this process now: mapped and viewed (tests: nothing
 * is left). Copies' regions kept in the pool for reuse are not counted;
 * plx_region_pool_set_max(0) unmaps those. */
PLX_SHARED size_t plx_region_live(void);

#endif
