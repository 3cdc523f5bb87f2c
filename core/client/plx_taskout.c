/*
 * What running tasks printed, as the controller forwards it (protocol 4:
 * Output messages with a task id, sent to the client that submitted the
 * task). Tasks have no request on this connection while they run (their
 * results are fetched by TaskWait, by anyone), so their live output is
 * kept by task id here, for plexa's futures to read while they wait.
 *
 * Bounded: at most TASKOUT_BYTES of text and TASKOUT_TASKS tasks; the
 * tasks heard from first are forgotten first. A task's result still
 * carries everything it printed (TaskResult.stdout/stderr), so forgetting
 * costs only the early view. The I/O thread adds; any thread reads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "plx_client_int.h"
#include "plx_idmap.h"
#include "plx_strbuf.h"
#include "plx_taskout.h"

#define TASKOUT_BYTES (16u << 20)
#define TASKOUT_TASKS 65536u

typedef struct taskout {
    uint64_t        id;
    int32_t         engine_id;
    plx_strbuf_t    text[2];    /* stdout, stderr */
    struct taskout *next;       /* oldest first */
} taskout_t;

struct plx_taskouts {
    pthread_mutex_t mu;
    plx_idmap_t    *map;        /* id -> taskout_t */
    taskout_t      *head, *tail;
    size_t          bytes, n;
};

plx_taskouts_t *plx_taskouts_new(void)
{
    plx_taskouts_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->map = plx_idmap_new();
    if (!t->map) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

static void entry_free(taskout_t *e)
{
    plx_strbuf_free(&e->text[0]);
    plx_strbuf_free(&e->text[1]);
    free(e);
}

void plx_taskouts_destroy(plx_taskouts_t **tp)
{
    plx_taskouts_t *t = tp ? *tp : NULL;
    if (!t)
        return;
    *tp = NULL;
    while (t->head) {
        taskout_t *e = t->head;
        t->head = e->next;
        entry_free(e);
    }
    plx_idmap_destroy(&t->map);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Forget the oldest task (mu held). */
static void evict_oldest(plx_taskouts_t *t)
{
    taskout_t *e = t->head;
    t->head = e->next;
    if (!t->head)
        t->tail = NULL;
    plx_idmap_del(t->map, e->id);
    t->bytes -= e->text[0].len + e->text[1].len;
    t->n--;
    entry_free(e);
}

/* The entry of id, made (newest) if new; NULL on ENOMEM (mu held). */
static taskout_t *entry_for(plx_taskouts_t *t, uint64_t id, int32_t engine_id)
{
    taskout_t *e = plx_idmap_get(t->map, id);
    if (e)
        return e;
    e = calloc(1, sizeof *e);
    if (!e || plx_idmap_put(t->map, id, e) != PLX_OK) {
        free(e);
        return NULL;
    }
    e->id = id;
    e->engine_id = engine_id;
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    t->n++;
    return e;
}

void plx_taskouts_add(plx_taskouts_t *t, uint64_t id, int32_t engine_id, int stream,
                      const char *text, size_t len)
{
    if (!t || id == 0 || len == 0 || len > TASKOUT_BYTES || (stream != 0 && stream != 1))
        return;
    pthread_mutex_lock(&t->mu);
    taskout_t *e = entry_for(t, id, engine_id);
    if (e) {
        e->engine_id = engine_id;   /* a task run again elsewhere: its last engine */
        size_t before = e->text[stream].len;
        plx_strbuf_put(&e->text[stream], text, len);
        if (!e->text[stream].oom)
            t->bytes += e->text[stream].len - before;
        while (t->head && t->head != e && (t->bytes > TASKOUT_BYTES || t->n > TASKOUT_TASKS))
            evict_oldest(t);
    }
    pthread_mutex_unlock(&t->mu);
}

int plx_taskouts_get(plx_taskouts_t *t, uint64_t id, int32_t *engine_id, char **out,
                     char **err)
{
    *out = *err = NULL;
    pthread_mutex_lock(&t->mu);
    taskout_t *e = plx_idmap_get(t->map, id);
    int found = e != NULL;
    if (found) {
        *engine_id = e->engine_id;
        *out = strdup(plx_strbuf_str(&e->text[0]));
        *err = strdup(plx_strbuf_str(&e->text[1]));
    }
    pthread_mutex_unlock(&t->mu);
    if (found && (!*out || !*err)) {
        free(*out);
        free(*err);
        *out = *err = NULL;
        return PLX_ENOMEM;
    }
    return found;
}
