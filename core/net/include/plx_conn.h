/*
 * A framed connection on a libev loop over a transport plugin.
 *
 * Owns the transport handle and fd, reads frames with the incremental
 * decoder (reading large payloads straight into their buffers), and
 * writes queued messages with gather writes, batching many small frames
 * into one system call. Single-threaded: every call must come from the
 * thread that runs the loop. Callbacks may call plx_conn_destroy on the
 * connection they are given; the object is freed once the callback
 * returns.
 */
#ifndef PLX_CONN_H
#define PLX_CONN_H

#include <ev.h>
#include <stdint.h>

#include "plexa/transport.h"
#include "plx_frame.h"

typedef struct plx_conn plx_conn_t;

typedef struct plx_conn_cbs {
    /* Transport set-up finished; messages flow. May be NULL. */
    void (*on_open)(plx_conn_t *c, void *ud);
    /* A complete frame arrived. The callee owns m. */
    void (*on_msg)(plx_conn_t *c, plx_msg_t *m, void *ud);
    /* The connection is closed (peer, error, or plx_conn_close): code is
     * PLX_OK for an orderly close, why says what happened. Called once.
     * The callee should destroy the connection. */
    void (*on_close)(plx_conn_t *c, int code, const char *why, void *ud);
} plx_conn_cbs_t;

/*
 * Wrap an accepted or connecting transport handle. Takes ownership of
 * handle (closed with ops->close). peer is copied ("127.0.0.1:5000").
 * Caller owns the result; NULL on ENOMEM (handle is closed then).
 */
plx_conn_t *plx_conn_new(struct ev_loop *loop, const plx_transport_ops *ops, void *handle,
                         int fd, const plx_limits_t *lim, const plx_conn_cbs_t *cbs,
                         void *ud, const char *peer);

/* Queue m for sending (takes ownership, even on error). Writes at once
 * when the socket allows. PLX_ECLOSED once the connection is closing. */
int plx_conn_send(plx_conn_t *c, plx_msg_t *m);

/* Queue len raw bytes of b from off, unframed, after what is queued
 * (takes a new reference to b): a frame passed on in pieces as it arrives
 * (plx_relay.h). PLX_ECLOSED once the connection is closing. */
int plx_conn_send_bytes(plx_conn_t *c, plx_buf_t *b, size_t off, size_t len);

/* Tap the frames received from now on (plx_decoder_set_tap). */
void plx_conn_set_tap(plx_conn_t *c, const plx_tap_t *tap);

/* Close. With flush, queued messages are written first (bounded by a
 * few seconds); on_close runs afterwards with code and why. */
void plx_conn_close(plx_conn_t *c, int flush, int code, const char *why);

/* The connection's socket. */
int plx_conn_fd(const plx_conn_t *c);

/* Close if open (no callback) and free. NULL-safe; NULLs *cp. */
void plx_conn_destroy(plx_conn_t **cp);

/* Frame limits from the next frame on (plx_decoder_set_limits): small
 * ones until a peer authenticates, its role's afterwards. */
void plx_conn_set_limits(plx_conn_t *c, const plx_limits_t *lim);
/* Charge received payload against budget (plx_decoder_set_budget). */
void plx_conn_set_budget(plx_conn_t *c, plx_budget_t *budget);

/* Move payload through shared memory (plx_region.h) when the transport
 * passes descriptors (shm): buffers of PLX_CONN_SHARE_MIN bytes and more
 * go as regions (copied into one first unless they already are a region
 * that can travel), and received ones are mapped as kind
 * (PLX_REGION_READONLY for a process that only forwards them,
 * PLX_REGION_PRIVATE for one that hands them to user code). Returns 1
 * when the connection does so from now on, 0 when its transport cannot.
 * Call before the first frame. */
int plx_conn_share_regions(plx_conn_t *c, int kind);
#define PLX_CONN_SHARE_MIN (256u * 1024u)

void  plx_conn_set_ud(plx_conn_t *c, void *ud);
void *plx_conn_ud(const plx_conn_t *c);
const char *plx_conn_peer(const plx_conn_t *c);
/* Bytes queued for sending and not yet written. */
uint64_t plx_conn_out_bytes(const plx_conn_t *c);
/* Bytes received and sent so far: progress on a large frame is a sign of
 * life long before the frame completes. */
uint64_t plx_conn_bytes_received(const plx_conn_t *c);
uint64_t plx_conn_bytes_sent(const plx_conn_t *c);
/* True once the transport handshake completed and before close. */
int plx_conn_is_open(const plx_conn_t *c);

#endif
