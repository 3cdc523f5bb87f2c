/*
 * libFuzzer: the shm transport's control messages as the receiver decodes
 * them — frames whose buffers are shared-memory references (offset,
 * length) with descriptors passed beside them. The first input bytes
 * choose the read size and which descriptors arrive with the bytes, and
 * when: a sealed memfd of 64 KiB (what honest peers send), an unsealed
 * one, one sealed but of 100 bytes, /dev/null. Every descriptor must end
 * up mapped into a delivered buffer or closed: a leak aborts the run.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plx_envelope.h"
#include "plx_frame.h"
#include "plx_region.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 256; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

static int memfd(size_t len, int seal)
{
    int fd = memfd_create("plexa", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd >= 0 && (ftruncate(fd, (off_t)len) != 0 ||
                    (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))))
        abort();
    return fd;
}

/* The kind-th sort of descriptor a peer could pass. */
static int make_fd(unsigned kind)
{
    switch (kind % 4) {
    case 0: return memfd(65536, 1);
    case 1: return memfd(65536, 0);
    case 2: return memfd(100, 1);
    default: return open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
}

static void take(plx_msg_t *m)
{
    plx_err_t err = {0};
    for (uint32_t i = 0; i < m->nbufs; i++)   /* the mapping must hold what it says */
        if (m->bufs[i]->len)
            (void)((volatile uint8_t *)m->bufs[i]->data)[m->bufs[i]->len - 1];
    Plexa__Envelope *env = plx_envelope_unpack(m, &err);
    if (env)
        plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t step = (size_t)data[0] + 1;
    unsigned plan = data[1];      /* descriptor kinds, two bits each */
    unsigned nfds = data[2] % 5;  /* how many, given before the read they come with */
    data += 3;
    size -= 3;
    int before = open_fds();
    plx_limits_t lim = plx_limits_default();
    lim.max_envelope = 4096;
    lim.max_bufs = 8;
    plx_decoder_t *d = plx_decoder_new(&lim);
    plx_decoder_set_regions(d, (plan & 1) ? PLX_REGION_READONLY : PLX_REGION_PRIVATE);
    size_t pos = 0;
    for (unsigned read = 0; d && pos < size; read++) {
        plx_err_t err = {0};
        if (read < nfds) {   /* one descriptor with each of the first reads */
            int fd = make_fd(plan >> (2 * read));
            if (plx_decoder_give_fds(d, &fd, 1, &err) != PLX_OK)
                break;
        }
        size_t n = size - pos < step ? size - pos : step, used = 0;
        plx_msg_t *m = NULL;
        int rc = plx_decoder_feed(d, data + pos, n, &used, &m, &err);
        if (rc < 0)
            break;
        if (rc == 1)
            take(m);
        pos += used;
    }
    plx_decoder_destroy(&d);
    if (plx_region_live() != 0 || open_fds() != before) {
        fprintf(stderr, "fuzz_shm: %zu regions and %d descriptors left behind\n",
                plx_region_live(), open_fds() - before);
        abort();
    }
    return 0;
}
