/* Envelope packing; see plx_envelope.h. */
#include "plx_envelope.h"

#include <stdlib.h>

plx_msg_t *plx_envelope_pack(const Plexa__Envelope *env, plx_err_t *err)
{
    size_t len = plexa__envelope__get_packed_size(env);
    if (len > UINT32_MAX) {
        plx_err_set(err, PLX_ELIMIT, "envelope of %zu bytes is too large", len);
        return NULL;
    }
    plx_msg_t *m = plx_msg_new((uint32_t)len);
    if (!m) {
        plx_err_set(err, PLX_ENOMEM, "out of memory packing an envelope");
        return NULL;
    }
    plexa__envelope__pack(env, plx_msg_env(m));
    return m;
}

static void strip_unknown(ProtobufCMessage *m);

/* The sub-messages held by field f of m. */
static void strip_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    char *base = (char *)m;
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
        return;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(uint32_t *)(base + f->quantifier_offset) != f->id)
            return;
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(size_t *)(base + f->quantifier_offset);
        ProtobufCMessage **v = *(ProtobufCMessage ***)(base + f->offset);
        for (size_t i = 0; i < n; i++)
            if (v[i])
                strip_unknown(v[i]);
        return;
    }
    ProtobufCMessage *sub = *(ProtobufCMessage **)(base + f->offset);
    if (sub)
        strip_unknown(sub);
}

/* Drop fields this version does not know, everywhere in m. The controller
 * re-packs what it forwards: unknown data would be relayed unchecked, and
 * protobuf-c accepts some it cannot write back (a non-minimal tag for
 * field 0 becomes a 0 byte its own parser then refuses; found by
 * tests/fuzz/fuzz_dispatch). */
static void strip_unknown(ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        free(m->unknown_fields[i].data);
    free(m->unknown_fields);
    m->unknown_fields = NULL;
    m->n_unknown_fields = 0;
    for (unsigned i = 0; i < m->descriptor->n_fields; i++)
        strip_field(m, &m->descriptor->fields[i]);
}

/* Read a varint; 0 on success. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* How deeply messages nest in the wire bytes of one message of type d,
 * without unpacking: protobuf-c's unpack recurses once per level, so a
 * 16 MiB envelope of nested Value lists would overflow the stack. The walk
 * stops at max, so its own recursion is bounded too. 0 fine, -2 too deep,
 * -1 malformed (left for unpack to refuse). */
static int check_depth(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                       int depth, int max)
{
    const uint8_t *end = p + len;
    if (depth > max)
        return -2;
    while (p < end) {
        uint64_t key, n;
        if (get_varint(&p, end, &key) != 0)
            return -1;
        switch (key & 7) {
        case 0: if (get_varint(&p, end, &n) != 0) return -1; break;
        case 1: if (end - p < 8) return -1; p += 8; break;
        case 5: if (end - p < 4) return -1; p += 4; break;
        case 2: {
            if (get_varint(&p, end, &n) != 0 || n > (uint64_t)(end - p))
                return -1;
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
            int rc = f && f->type == PROTOBUF_C_TYPE_MESSAGE
                         ? check_depth(f->descriptor, p, (size_t)n, depth + 1, max) : 0;
            if (rc != 0)
                return rc;
            p += n;
            break;
        }
        default:
            return -1;
        }
    }
    return 0;
}

Plexa__Envelope *plx_envelope_unpack(const plx_msg_t *m, plx_err_t *err)
{
    if (check_depth(&plexa__envelope__descriptor, plx_msg_env(m), m->env_len, 0,
                    PLX_ENVELOPE_MAX_DEPTH) == -2) {
        plx_err_set(err, PLX_EPROTO, "envelope of %u bytes nests messages more than %d levels "
                    "deep", (unsigned)m->env_len, PLX_ENVELOPE_MAX_DEPTH);
        return NULL;
    }
    Plexa__Envelope *e = plexa__envelope__unpack(NULL, m->env_len, plx_msg_env(m));
    if (!e)
        plx_err_set(err, PLX_EPROTO, "malformed envelope (%u bytes)", (unsigned)m->env_len);
    else
        strip_unknown(&e->base);
    return e;
}

void plx_envelope_free(Plexa__Envelope **ep)
{
    if (*ep) {
        plexa__envelope__free_unpacked(*ep, NULL);
        *ep = NULL;
    }
}

void plx_value_shift_bufs(Plexa__Value *v, uint32_t by)
{
    switch (v->kind_case) {
    case PLEXA__VALUE__KIND_BYTES:
        v->bytes += by;
        break;
    case PLEXA__VALUE__KIND_NDARRAY:
        if (v->ndarray->has_buf)
            v->ndarray->buf += by;
        break;
    case PLEXA__VALUE__KIND_PICKLE:
        if (v->pickle->has_buf)
            v->pickle->buf += by;
        for (size_t i = 0; i < v->pickle->n_oob; i++)
            v->pickle->oob[i] += by;
        break;
    case PLEXA__VALUE__KIND_LIST:
        for (size_t i = 0; i < v->list->n_items; i++)
            plx_value_shift_bufs(v->list->items[i], by);
        break;
    default:
        break;
    }
}

int plx_value_native(const Plexa__Value *v)
{
    if (v->kind_case == PLEXA__VALUE__KIND_PICKLE || v->kind_case == PLEXA__VALUE__KIND_REF)
        return 0;
    if (v->kind_case == PLEXA__VALUE__KIND_LIST)
        for (size_t i = 0; i < v->list->n_items; i++)
            if (!plx_value_native(v->list->items[i]))
                return 0;
    return 1;
}

const char *plx_envelope_body_name(const Plexa__Envelope *env)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&plexa__envelope__descriptor, env->body_case);
    return f ? f->name : "none";
}

void plx_envelope_set(Plexa__Envelope *env, uint64_t id, uint64_t reply_to,
                      Plexa__Envelope__BodyCase bc, void *body)
{
    plexa__envelope__init(env);
    env->has_id = 1;
    env->id = id;
    env->has_reply_to = reply_to != 0;
    env->reply_to = reply_to;
    env->body_case = bc;
    env->hello = body;
}
