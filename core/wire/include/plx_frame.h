/*
 * The plexa frame: one envelope plus out-of-band buffers.
 *
 *   frame = "PLX1" | u32 envelope_len | u32 nbufs | envelope
 *           | nbufs x (u64 len | bytes)
 *
 * All integers are little-endian (every platform we run on is, so encoding
 * costs nothing). A message (plx_msg_t) is the in-memory form of a frame:
 * the packed envelope, with room for the 12-byte header in front so that
 * sending needs no extra copy, and references to its buffers.
 *
 * The decoder is incremental: it accepts the byte stream split anywhere,
 * checks every length against plx_limits_t before allocating for it, and
 * grows buffers as bytes actually arrive, so a peer that announces 1 GiB
 * and sends nothing costs almost nothing.
 */
#ifndef PLX_FRAME_H
#define PLX_FRAME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "plexa/error.h"
#include "plx_buf.h"

#define PLX_FRAME_MAGIC    "PLX1"
#define PLX_FRAME_HDR_LEN  12u
#define PLX_FRAME_BLEN_LEN 8u

typedef struct plx_limits {
    uint32_t max_envelope;   /* bytes; default 16 MiB */
    uint32_t max_bufs;       /* buffers per frame; default 65536 */
    uint64_t max_buf;        /* bytes per buffer; default 64 GiB */
    uint64_t max_frame;      /* envelope + all buffers; default 64 GiB */
} plx_limits_t;

/* The defaults above. */
PLX_SHARED plx_limits_t plx_limits_default(void);

typedef struct plx_msg {
    uint8_t    *raw;       /* PLX_FRAME_HDR_LEN headroom, then the envelope */
    uint32_t    env_len;
    uint32_t    nbufs;
    uint32_t    capbufs;
    plx_buf_t **bufs;
    uint64_t   *blens;     /* little-endian buffer lengths, filled by plx_msg_iov */
    /* A received frame whose buffers the decoder did not keep (they were
     * over its budget, or memory ran out): the envelope is intact, nbufs
     * is 0, and these say how many buffer bytes were dropped and why
     * (PLX_ELIMIT, PLX_ENOMEM). 0 for every other message. */
    uint64_t    refused_bytes;
    int         refused_code;
} plx_msg_t;

/* A bound on the payload bytes a process holds from what it received: a
 * decoder charges each buffer against it (until the buffer is freed) and
 * refuses buffers that would exceed it. */
typedef struct plx_budget {
    atomic_uint_fast64_t held;   /* bytes charged now */
    uint64_t             max;    /* 0: no bound */
    uint64_t             peak;   /* most held since the owner last reset it */
} plx_budget_t;

/* A message whose envelope has env_len bytes (uninitialised). Caller owns. */
PLX_SHARED plx_msg_t *plx_msg_new(uint32_t env_len);

/* Pointer to the envelope bytes. */
static inline uint8_t *plx_msg_env(const plx_msg_t *m) { return m->raw + PLX_FRAME_HDR_LEN; }

/* Append a buffer; takes a new reference (the caller keeps its own). */
PLX_SHARED int plx_msg_add_buf(plx_msg_t *m, plx_buf_t *b);

/* Another message with m's envelope and buffers (referenced, not copied);
 * NULL on ENOMEM. */
plx_msg_t *plx_msg_share(const plx_msg_t *m);

/* The bytes of m's buffers, envelope and header not counted. */
uint64_t plx_msg_payload(const plx_msg_t *m);

/* Total bytes the frame occupies on the wire. */
uint64_t plx_msg_wire_size(const plx_msg_t *m);

/* Number of iovecs plx_msg_iov needs. */
static inline int plx_msg_iovcnt(const plx_msg_t *m) { return 1 + 2 * (int)m->nbufs; }

/* Write the frame header in place and describe the frame as iovecs (at
 * most plx_msg_iovcnt). Returns the count, or PLX_ENOMEM. */
int plx_msg_iov(plx_msg_t *m, struct iovec *iov);

/*
 * Shared-memory references (connections whose transport passes
 * descriptors, such as shm). A buffer that views a region (plx_region.h)
 * travels as a reference instead of its bytes: its length word has
 * PLX_FRAME_REGION_BIT set and says PLX_FRAME_REF_LEN, and its body is
 * u64 offset | u64 length into the region, whose descriptor travels with
 * the frame. Descriptors are consumed in the order the references appear.
 */
#define PLX_FRAME_REGION_BIT (1ull << 63)
#define PLX_FRAME_REF_LEN    16u

/* As plx_msg_iov, for a connection that passes descriptors: a buffer
 * that can travel by descriptor as it is goes as a reference, and so does
 * one of copy_min bytes or more after it is copied into a new region (the
 * one copy; m then holds the copy in its place). Their descriptors are
 * stored in fds[0..*nfds), at most maxfds; later buffers, and any whose
 * copy fails (no memory for a region), go inline: the frame is whole
 * either way. The descriptors are lent (plx_region_lend): the caller
 * closes them once the frame is sent, or dropped. */
int plx_msg_iov_fds(plx_msg_t *m, struct iovec *iov, size_t copy_min, int *fds, int maxfds,
                    int *nfds);

PLX_SHARED void plx_msg_destroy(plx_msg_t **mp);

typedef struct plx_decoder plx_decoder_t;

/* A decoder enforcing lim (copied). Caller owns; NULL on ENOMEM. */
plx_decoder_t *plx_decoder_new(const plx_limits_t *lim);
void plx_decoder_destroy(plx_decoder_t **dp);

/* New limits, from the next frame on (a frame begun keeps the ones it was
 * checked against). A connection that authenticates gets larger ones. */
void plx_decoder_set_limits(plx_decoder_t *d, const plx_limits_t *lim);

/* Charge received buffers against budget (NULL: none). A buffer that does
 * not fit, or for which memory runs out, is not kept: the rest of its
 * frame is read and dropped, and the frame is delivered without buffers,
 * marked refused (plx_msg_t.refused_bytes), so that the receiver can
 * answer the request with a clear error and the connection stays. */
void plx_decoder_set_budget(plx_decoder_t *d, plx_budget_t *budget);

/*
 * Consume bytes from data[0..len). Stops after completing one frame.
 * Returns 1 with *out set (caller owns it) when a frame completed, 0 when
 * all input was consumed without completing one, or a negative code
 * (PLX_EPROTO bad magic, PLX_ELIMIT a length over a limit, PLX_ENOMEM)
 * with err naming the field. *consumed is always set. After an error the
 * decoder is unusable: close the connection.
 */
int plx_decoder_feed(plx_decoder_t *d, const uint8_t *data, size_t len,
                     size_t *consumed, plx_msg_t **out, plx_err_t *err);

/*
 * Zero-copy path for large payloads: when the decoder is inside an
 * envelope or buffer body with at least min bytes still to come, return
 * 1 and a region (*ptr, *len) the caller may read into directly, then call
 * plx_decoder_commit with the byte count read. Returns 0 otherwise.
 */
int plx_decoder_direct(plx_decoder_t *d, size_t min, uint8_t **ptr, size_t *len,
                       plx_err_t *err);

/* Account n bytes written into the direct region. Same returns as feed. */
int plx_decoder_commit(plx_decoder_t *d, size_t n, plx_msg_t **out, plx_err_t *err);

/* Accept region references, mapping what they name as kind
 * (PLX_REGION_READONLY or PLX_REGION_PRIVATE, plx_region.h). Off by
 * default: on a connection that did not ask for them a reference is a
 * protocol error. */
void plx_decoder_set_regions(plx_decoder_t *d, int kind);

/* Descriptors that arrived with the bytes, in order: the decoder owns
 * them from here on and gives one to each region reference it decodes.
 * PLX_EPROTO (and all of them closed) when more are waiting than a frame
 * could ever use, which only a broken peer sends. */
int plx_decoder_give_fds(plx_decoder_t *d, const int *fds, int n, plx_err_t *err);

/*
 * A tap: a frame's bytes as they arrive, for passing them on before the
 * frame is whole (a pipelined broadcast tree: plx_relay.h). Once a
 * frame's envelope is in, head() sees it and says whether to tap that
 * frame (PLX_TAP_TAKE) or not (PLX_TAP_SKIP: the tap waits for the next
 * frame). A tapped frame's remaining bytes (its buffer lengths and bodies,
 * exactly as on the wire) go to bytes() as they are read, and end() says
 * how it ended: 1 whole, 0 not (its buffers refused for the budget or for
 * memory, the decoder failed or was destroyed, the tap was replaced). The
 * tap is cleared before end() runs, so end() may set the next one.
 * Connections that pass descriptors (shm) are never tapped.
 */
enum { PLX_TAP_SKIP = 0, PLX_TAP_TAKE = 1 };
typedef struct plx_tap {
    int  (*head)(void *ud, const uint8_t *env, uint32_t env_len, uint32_t nbufs);
    void (*bytes)(void *ud, const uint8_t *p, size_t n);
    void (*end)(void *ud, int whole);
    void *ud;
} plx_tap_t;

/* Tap the next frames (copied); NULL: none. */
void plx_decoder_set_tap(plx_decoder_t *d, const plx_tap_t *tap);

/* Write the 12-byte frame header of a frame with this envelope length and
 * buffer count into out. */
void plx_frame_header(uint8_t out[PLX_FRAME_HDR_LEN], uint32_t env_len, uint32_t nbufs);

/* Bytes the decoder holds for an incomplete frame (for memory accounting). */
uint64_t plx_decoder_buffered(const plx_decoder_t *d);

/* True when the decoder is between frames. */
int plx_decoder_idle(const plx_decoder_t *d);

#endif
