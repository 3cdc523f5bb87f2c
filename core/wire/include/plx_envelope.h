/*
 * Glue between frames and the protobuf-c Envelope of proto/plexa.proto.
 */
#ifndef PLX_ENVELOPE_H
#define PLX_ENVELOPE_H

#include "plexa.pb-c.h"
#include "plx_frame.h"

/* Pack env into a new message with no buffers. Caller owns the result. */
plx_msg_t *plx_envelope_pack(const Plexa__Envelope *env, plx_err_t *err);

/* Messages may nest this deep in an envelope (a list inside a list takes
 * two levels; plexa's Python encoder nests lists at most 16 deep). */
#define PLX_ENVELOPE_MAX_DEPTH 64

/* Decode a message's envelope. NULL with PLX_EPROTO if it is not a valid
 * Envelope or nests deeper than PLX_ENVELOPE_MAX_DEPTH. Fields this
 * version does not know are dropped. Free with plx_envelope_free. */
Plexa__Envelope *plx_envelope_unpack(const plx_msg_t *m, plx_err_t *err);

void plx_envelope_free(Plexa__Envelope **ep);

/* Initialise env as message `id` answering `reply_to` (0: not a reply)
 * with body `body` of case bc. Every body member of the Envelope is a
 * pointer in one union, so one setter serves every case. */
void plx_envelope_set(Plexa__Envelope *env, uint64_t id, uint64_t reply_to,
                      Plexa__Envelope__BodyCase bc, void *body);

/* Add `by` to every frame buffer index in v (bytes, ndarray, pickle and
 * its out-of-band buffers, list items): v moves behind `by` buffers of
 * another message. v nests at most PLX_ENVELOPE_MAX_DEPTH deep (an
 * unpacked envelope is checked for that). */
void plx_value_shift_bufs(Plexa__Value *v, uint32_t by);

/* Whether v is plexa's own kind of value all through: no pickle (which
 * runs code of the sender's choosing when loaded), no ref. Same depth
 * bound as plx_value_shift_bufs. */
int plx_value_native(const Plexa__Value *v);

/* Name of the body case for logs ("execute", "hello", ...). */
const char *plx_envelope_body_name(const Plexa__Envelope *env);

#endif
