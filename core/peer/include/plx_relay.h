/*
 * A relay: one frame passed on to peers while it still arrives (a
 * pipelined broadcast tree: core/controller/plx_mec_bcast.c).
 *
 * A producer appends the frame's bytes as they come (an engine's decoder
 * tap on its controller connection, or on the fetch from its own parent);
 * readers, one per ticket of the offer serving it (plx_serve.h), take
 * what has arrived and write it to their peers. So every level of a tree
 * starts as soon as the level above has its first bytes, not its last.
 *
 * The bytes are copied once, into blocks that go as soon as every reader
 * has taken them: a relay holds the distance between its slowest reader
 * and its producer, not the value. A reader whose peer never comes holds
 * everything until it is dropped (its ticket ended, or expired).
 *
 * Threads: the producer and the readers may be on different threads
 * (an engine's fetch runs on its Python thread, its server on its I/O
 * thread); the relay has a lock of its own. Reference-counted.
 */
#ifndef PLX_RELAY_H
#define PLX_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "plx_buf.h"
#include "plx_frame.h"

typedef struct plx_relay plx_relay_t;

/* The unit a relay holds bytes in (pooled blocks: plx_bufpool.h). */
#define PLX_RELAY_BLOCK ((size_t)8 << 20)

/* Called, from the producer's thread, when a reader that ran dry has
 * something to take, or the relay ended. */
typedef void (*plx_relay_notify_fn)(void *ud);

/* A relay for nreaders readers; NULL on ENOMEM. refs = 1. */
plx_relay_t *plx_relay_new(size_t nreaders);
plx_relay_t *plx_relay_ref(plx_relay_t *r);
/* Drop a reference; NULL-safe; NULLs *rp. */
void plx_relay_unref(plx_relay_t **rp);

/* ---- producer ---- */

/* Append n bytes. PLX_ENOMEM ends the relay, failed. Ignored once ended. */
int plx_relay_append(plx_relay_t *r, const void *p, size_t n);

/* The frame is whole (ok) or will never be (0). The first call counts. */
void plx_relay_finish(plx_relay_t *r, int ok);

/* A tap (plx_frame.h) that appends a whole frame as it arrives, header
 * and envelope included, and finishes r at its end: a frame passed on
 * unchanged. Its ud is r (borrowed: keep r alive while it is set). */
plx_tap_t plx_relay_tap(plx_relay_t *r);

/* ---- readers ---- */

/* Who to tell when a reader that ran dry can go on; fn may be NULL.
 * Cleared once every reader is dropped, so that its owner may go. */
void plx_relay_set_notify(plx_relay_t *r, plx_relay_notify_fn fn, void *ud);

enum {
    PLX_RELAY_MORE = 1,   /* *buf holds bytes for the reader */
    PLX_RELAY_WAIT = 0,   /* none yet: notify is called when there are */
    PLX_RELAY_DONE = 2,   /* the reader has the whole frame */
};

/*
 * The next bytes for reader k, if at least min have come for it (or the
 * frame is whole): *buf (a new reference) holds them at [*off, *off +
 * *len), and the reader is counted as having taken them. Returns
 * PLX_RELAY_MORE, PLX_RELAY_WAIT (notify is called once min have come,
 * or at the end), PLX_RELAY_DONE, or PLX_EIO when the frame will never be
 * whole (the reader should drop its peer). A reader that writes to a
 * socket asks for a batch first (each write has its cost, a TLS record's
 * more) and then takes whatever is there.
 */
int plx_relay_next(plx_relay_t *r, size_t k, size_t min, plx_buf_t **buf, size_t *off,
                   size_t *len);

/* Reader k takes nothing more (done, its peer gone, its ticket ended). */
void plx_relay_drop_reader(plx_relay_t *r, size_t k);

/* Bytes appended so far, and bytes held in blocks now (for tests). */
uint64_t plx_relay_size(plx_relay_t *r);
uint64_t plx_relay_held(plx_relay_t *r);

#endif
