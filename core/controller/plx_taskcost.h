/*
 * What tasks cost, as the scheduler learns it: the measured duration per
 * element of each function's tasks, and the prefetch depth a duration
 * implies. Pure bookkeeping, no I/O: the scheduler (plx_sched.c) feeds it
 * the engines' own start and end times and asks it how many tasks an
 * engine should hold ahead.
 *
 * A task's key names what it runs: the function's pickle for map and
 * chunk tasks, the code for string tasks. The controller never unpickles,
 * so the key is a hash of those bytes; two tasks with the same key are
 * assumed to cost alike per element.
 */
#ifndef PLX_TASKCOST_H
#define PLX_TASKCOST_H

#include <stddef.h>
#include <stdint.h>

typedef struct plx_taskcost plx_taskcost_t;

/* Caller owns; NULL on ENOMEM. Remembers a bounded number of keys (the
 * least used is forgotten first). */
plx_taskcost_t *plx_taskcost_new(void);
void plx_taskcost_destroy(plx_taskcost_t **tcp);

/* The key of a task of kind `kind` whose defining bytes (function pickle,
 * code) are data[0..len). Only the first PLX_TASKCOST_KEY_BYTES and the
 * length are hashed: a closure's pickle can be large. Never 0. */
#define PLX_TASKCOST_KEY_BYTES 4096
uint64_t plx_taskcost_key(const char *kind, const void *data, size_t len);

/* A task of `key` ran `elems` elements (>= 1) in `seconds`. */
void plx_taskcost_add(plx_taskcost_t *tc, uint64_t key, double seconds, uint32_t elems);

/* The estimated seconds per element of key's tasks, or -1 when none has
 * finished yet. */
double plx_taskcost_per_elem(const plx_taskcost_t *tc, uint64_t key);

/* How many tasks (beyond the one it runs) an engine should hold ahead when
 * the next takes task_s seconds (< 0: unknown) and a task sent to an idle
 * engine takes rtt_s to start:
 *   unknown        -> 1: enough to hide one round trip, little to undo;
 *   long (>= PLX_PREFETCH_LONG round trips) -> 0: an engine never sits on
 *                     work another could start, at a cost of one round
 *                     trip per task (<= 1/PLX_PREFETCH_LONG of the time);
 *   shorter        -> enough to cover two round trips, at most cap.
 * Always 0..cap (cap >= 1). */
#define PLX_PREFETCH_LONG 50.0
int plx_prefetch_depth(double task_s, double rtt_s, int cap);

#endif
