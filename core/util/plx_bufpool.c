/*
 * The pool of large freed blocks behind plx_buf (see plx_buf.h).
 *
 * Why: a process that forwards big payloads (the controller) would
 * otherwise get fresh memory from the kernel for each one, and fresh
 * memory costs a page fault plus a zeroed page per 4 KiB: a quarter of the
 * controller's time when it forwards 256 MiB pushes (perf). A block kept
 * from the previous payload is already mapped.
 */
#include "plx_bufpool.h"
#include "plx_region.h"
#include "plx_time.h"

#include <pthread.h>
#include <stdlib.h>

#define POOL_SLOTS 8

typedef struct slot {
    uint8_t *data;
    size_t   cap;
    double   since;   /* when it was put back */
} slot_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot_t slots[POOL_SLOTS];
static size_t held, max_held;

void plx_buf_pool_set_max(size_t max_bytes)
{
    pthread_mutex_lock(&mu);
    max_held = max_bytes;
    int over = held > max_held;
    pthread_mutex_unlock(&mu);
    plx_region_pool_set_max(max_bytes);
    if (over)
        plx_buf_pool_trim(0);
}

int plx_buf_pool_put(uint8_t *data, size_t cap)
{
    int kept = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < POOL_SLOTS && !kept && held + cap <= max_held; i++)
        if (!slots[i].data) {
            slots[i] = (slot_t){data, cap, plx_now_s()};
            held += cap;
            kept = 1;
        }
    pthread_mutex_unlock(&mu);
    return kept;
}

uint8_t *plx_buf_pool_take(size_t min_cap, size_t *cap)
{
    int best = -1;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < POOL_SLOTS; i++)
        if (slots[i].data && slots[i].cap >= min_cap &&
            (best < 0 || slots[i].cap < slots[best].cap))
            best = i;
    uint8_t *data = NULL;
    if (best >= 0) {
        data = slots[best].data;
        *cap = slots[best].cap;
        held -= slots[best].cap;
        slots[best].data = NULL;
    }
    pthread_mutex_unlock(&mu);
    return data;
}

void plx_buf_pool_trim(double idle_s)
{
    uint8_t *drop[POOL_SLOTS];
    int n = 0;
    double t = plx_now_s();
    plx_region_pool_trim(idle_s);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < POOL_SLOTS; i++)
        if (slots[i].data && t - slots[i].since >= idle_s) {
            drop[n++] = slots[i].data;
            held -= slots[i].cap;
            slots[i].data = NULL;
        }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++)
        free(drop[i]);   /* outside the lock: munmap of a big block takes time */
}
