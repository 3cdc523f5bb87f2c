/*
 * libFuzzer: the frame decoder and envelope unpacking. The first two input
 * bytes choose how the rest is split into reads (as a socket would deliver
 * it) and whether the zero-copy direct path is used; every completed frame
 * is unpacked as an Envelope, as the controller does next.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "plx_envelope.h"
#include "plx_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits, so that "over the limit" paths are reachable. */
static plx_limits_t limits(void)
{
    plx_limits_t l = plx_limits_default();
    l.max_envelope = 4096;
    l.max_bufs = 8;
    l.max_buf = 1 << 16;
    return l;
}

static void take(plx_msg_t *m)
{
    plx_err_t err = {0};
    Plexa__Envelope *env = plx_envelope_unpack(m, &err);
    if (env) {
        (void)plx_envelope_body_name(env);
        plx_envelope_free(&env);
    }
    plx_msg_destroy(&m);
}

/* Direct path: copy up to step bytes into the decoder's own region. */
static int feed_direct(plx_decoder_t *d, const uint8_t *p, size_t n, size_t *used)
{
    uint8_t *dst;
    size_t room;
    plx_err_t err = {0};
    *used = 0;
    int rc = plx_decoder_direct(d, 1, &dst, &room, &err);
    if (rc <= 0)
        return rc;
    size_t k = n < room ? n : room;
    memcpy(dst, p, k);
    *used = k;
    plx_msg_t *m = NULL;
    rc = plx_decoder_commit(d, k, &m, &err);
    if (rc == 1)
        take(m);
    return rc < 0 ? rc : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = (size_t)data[0] + 1;
    int direct = data[1] & 1;
    data += 2;
    size -= 2;
    plx_limits_t lim = limits();
    plx_decoder_t *d = plx_decoder_new(&lim);
    size_t pos = 0;
    while (d && pos < size) {
        size_t n = size - pos < step ? size - pos : step, used = 0;
        int rc = direct ? feed_direct(d, data + pos, n, &used) : 0;
        if (rc < 0)
            break;
        if (used == 0) {
            plx_msg_t *m = NULL;
            plx_err_t err = {0};
            rc = plx_decoder_feed(d, data + pos, n, &used, &m, &err);
            if (rc < 0)
                break;
            if (rc == 1)
                take(m);
        }
        pos += used;
    }
    (void)plx_decoder_buffered(d);
    plx_decoder_destroy(&d);
    return 0;
}
