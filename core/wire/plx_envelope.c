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

Plexa__Envelope *plx_envelope_unpack(const plx_msg_t *m, plx_err_t *err)
{
    Plexa__Envelope *e = plexa__envelope__unpack(NULL, m->env_len, plx_msg_env(m));
    if (!e)
        plx_err_set(err, PLX_EPROTO, "malformed envelope (%u bytes)", (unsigned)m->env_len);
    return e;
}

void plx_envelope_free(Plexa__Envelope **ep)
{
    if (*ep) {
        plexa__envelope__free_unpacked(*ep, NULL);
        *ep = NULL;
    }
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
