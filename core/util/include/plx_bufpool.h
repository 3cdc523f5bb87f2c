/*
 * A per-process pool of large freed buffer blocks (>= PLX_BUF_POOL_MIN),
 * reused by plx_buf for the next large payload instead of fresh memory
 * from the kernel. Off until plx_buf_pool_set_max; thread-safe. A process
 * that enables it must call plx_buf_pool_trim periodically so that idle
 * memory goes back to the system.
 */
#ifndef PLX_BUFPOOL_H
#define PLX_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#define PLX_BUF_POOL_MIN ((size_t)8 << 20)

/* Keep at most max_bytes of blocks (0: none, the default). */
void plx_buf_pool_set_max(size_t max_bytes);

/* Free blocks idle for idle_s seconds or more (0: all). */
void plx_buf_pool_trim(double idle_s);

/* For plx_buf: offer a block being freed (1: the pool took it). */
int plx_buf_pool_put(uint8_t *data, size_t cap);

/* For plx_buf: the smallest pooled block of at least min_cap bytes (its
 * size in *cap), or NULL. */
uint8_t *plx_buf_pool_take(size_t min_cap, size_t *cap);

#endif
