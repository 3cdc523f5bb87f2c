/*
 * A hash map from 64-bit ids to pointers (open addressing, linear probing,
 * backward-shift deletion: no tombstones, so a map that sees a million
 * inserts and removals stays as fast as a fresh one).
 */
#ifndef PLX_IDMAP_H
#define PLX_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct plx_idmap plx_idmap_t;

/* Caller owns; NULL on ENOMEM. */
plx_idmap_t *plx_idmap_new(void);
void plx_idmap_destroy(plx_idmap_t **mp);

/* Insert or replace. PLX_OK or PLX_ENOMEM. Id 0 is reserved. */
int plx_idmap_put(plx_idmap_t *m, uint64_t id, void *value);
void *plx_idmap_get(const plx_idmap_t *m, uint64_t id);
/* Remove and return the value (NULL if absent). */
void *plx_idmap_del(plx_idmap_t *m, uint64_t id);
size_t plx_idmap_count(const plx_idmap_t *m);

/* Visit every entry (order unspecified); the callback must not modify m. */
void plx_idmap_foreach(const plx_idmap_t *m, void (*fn)(uint64_t id, void *value, void *ud),
                       void *ud);

#endif
