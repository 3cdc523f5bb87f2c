/* Id → pointer hash map; see plx_idmap.h. */
#include "plx_idmap.h"

#include <stdlib.h>

#include "plexa/error.h"

typedef struct slot {
    uint64_t id;      /* 0 = empty */
    void    *value;
} slot_t;

struct plx_idmap {
    slot_t *slots;
    size_t  cap;      /* power of two */
    size_t  count;
};

/* splitmix64 finaliser: sequential ids spread over the table. */
static size_t hash(uint64_t x, size_t mask)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x & mask;
}

plx_idmap_t *plx_idmap_new(void)
{
    plx_idmap_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void plx_idmap_destroy(plx_idmap_t **mp)
{
    if (!*mp)
        return;
    free((*mp)->slots);
    free(*mp);
    *mp = NULL;
}

static int grow(plx_idmap_t *m)
{
    size_t cap = m->cap * 2;
    slot_t *s = calloc(cap, sizeof *s);
    if (!s)
        return PLX_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].id)
            continue;
        size_t j = hash(m->slots[i].id, cap - 1);
        while (s[j].id)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return PLX_OK;
}

int plx_idmap_put(plx_idmap_t *m, uint64_t id, void *value)
{
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) != PLX_OK)
        return PLX_ENOMEM;
    size_t i = hash(id, m->cap - 1);
    while (m->slots[i].id && m->slots[i].id != id)
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].id)
        m->count++;
    m->slots[i].id = id;
    m->slots[i].value = value;
    return PLX_OK;
}

static size_t find(const plx_idmap_t *m, uint64_t id)
{
    size_t i = hash(id, m->cap - 1);
    while (m->slots[i].id) {
        if (m->slots[i].id == id)
            return i;
        i = (i + 1) & (m->cap - 1);
    }
    return (size_t)-1;
}

void *plx_idmap_get(const plx_idmap_t *m, uint64_t id)
{
    size_t i = id ? find(m, id) : (size_t)-1;
    return i == (size_t)-1 ? NULL : m->slots[i].value;
}

void *plx_idmap_del(plx_idmap_t *m, uint64_t id)
{
    size_t i = id ? find(m, id) : (size_t)-1;
    if (i == (size_t)-1)
        return NULL;
    void *value = m->slots[i].value;
    size_t mask = m->cap - 1;
    /* Shift later members of the probe run back so lookups never stop
     * early at the hole. */
    for (size_t j = (i + 1) & mask; m->slots[j].id; j = (j + 1) & mask) {
        size_t home = hash(m->slots[j].id, mask);
        /* j may move to i if its home is not in the cyclic range (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].id = 0;
    m->slots[i].value = NULL;
    m->count--;
    return value;
}

size_t plx_idmap_count(const plx_idmap_t *m) { return m->count; }

void plx_idmap_foreach(const plx_idmap_t *m, void (*fn)(uint64_t, void *, void *), void *ud)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].id)
            fn(m->slots[i].id, m->slots[i].value, ud);
}
