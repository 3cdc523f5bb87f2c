/*
 * plx_taskouts: the live output of the tasks a client submitted, by task
 * id (see plx_taskout.c). Thread-safe.
 */
#ifndef PLX_TASKOUT_H
#define PLX_TASKOUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct plx_taskouts plx_taskouts_t;

/* Caller owns; NULL on ENOMEM. */
plx_taskouts_t *plx_taskouts_new(void);
void plx_taskouts_destroy(plx_taskouts_t **t);

/* Append len bytes of UTF-8 that task id printed on engine_id to stdout
 * (stream 0) or stderr (1). Older tasks are forgotten past the bounds. */
void plx_taskouts_add(plx_taskouts_t *t, uint64_t id, int32_t engine_id, int stream,
                      const char *text, size_t len);

/* What task id printed so far: 1 with *out and *err malloc'd copies (the
 * caller frees them) and the engine that printed them, 0 when nothing is
 * kept for it, PLX_ENOMEM. */
int plx_taskouts_get(plx_taskouts_t *t, uint64_t id, int32_t *engine_id, char **out,
                     char **err);

#endif
