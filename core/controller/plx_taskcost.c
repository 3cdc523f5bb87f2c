/* Task cost bookkeeping; see plx_taskcost.h. */
#include "plx_taskcost.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A fixed table: the keys a cluster sees at once are few (the functions of
 * the maps in flight), and a fixed size bounds the controller's memory
 * whatever clients send. */
#define SLOTS 4096
#define PROBE 8
/* Weight of a new sample: the first tasks of a map say little, so the
 * estimate follows recent ones quickly, but one outlier does not swing it
 * entirely. */
#define ALPHA 0.3

typedef struct slot {
    uint64_t key;        /* 0: empty */
    double   per_elem;   /* seconds */
    uint64_t n;          /* samples */
} slot_t;

struct plx_taskcost {
    slot_t slots[SLOTS];
};

plx_taskcost_t *plx_taskcost_new(void)
{
    return calloc(1, sizeof(plx_taskcost_t));
}

void plx_taskcost_destroy(plx_taskcost_t **tcp)
{
    free(*tcp);
    *tcp = NULL;
}

uint64_t plx_taskcost_key(const char *kind, const void *data, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a */
    for (const char *k = kind ? kind : ""; *k; k++)
        h = (h ^ (unsigned char)*k) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    const unsigned char *p = data;
    size_t n = len < PLX_TASKCOST_KEY_BYTES ? len : PLX_TASKCOST_KEY_BYTES;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    for (int i = 0; i < 8; i++)
        h = (h ^ ((len >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    return h ? h : 1;
}

static slot_t *find(const plx_taskcost_t *tc, uint64_t key)
{
    for (int i = 0; i < PROBE; i++) {
        const slot_t *s = &tc->slots[(key + (uint64_t)i) % SLOTS];
        if (s->key == key)
            return (slot_t *)s;
    }
    return NULL;
}

/* A slot for a new key: an empty one in its probe run, else the least used. */
static slot_t *claim(plx_taskcost_t *tc, uint64_t key)
{
    slot_t *victim = NULL;
    for (int i = 0; i < PROBE; i++) {
        slot_t *s = &tc->slots[(key + (uint64_t)i) % SLOTS];
        if (s->key == 0)
            return s;
        if (!victim || s->n < victim->n)
            victim = s;
    }
    return victim;
}

void plx_taskcost_add(plx_taskcost_t *tc, uint64_t key, double seconds, uint32_t elems)
{
    if (!tc || key == 0 || !(seconds >= 0) || !isfinite(seconds))
        return;
    double x = seconds / (elems ? elems : 1);
    slot_t *s = find(tc, key);
    if (!s) {
        s = claim(tc, key);
        s->key = key;
        s->per_elem = x;
        s->n = 1;
        return;
    }
    s->per_elem += ALPHA * (x - s->per_elem);
    s->n++;
}

double plx_taskcost_per_elem(const plx_taskcost_t *tc, uint64_t key)
{
    const slot_t *s = tc && key ? find(tc, key) : NULL;
    return s ? s->per_elem : -1.0;
}

int plx_prefetch_depth(double task_s, double rtt_s, int cap)
{
    if (cap < 1)
        cap = 1;
    if (task_s < 0)
        return 1;
    if (!(rtt_s > 0))
        rtt_s = 1e-4;
    if (task_s >= PLX_PREFETCH_LONG * rtt_s)
        return 0;
    double d = ceil(2.0 * rtt_s / (task_s > 1e-7 ? task_s : 1e-7));
    if (d < 1)
        d = 1;
    return d > cap ? cap : (int)d;
}
