/*
 * task_loop: the load-balanced task interface from C, driven by a libev
 * loop. COUNT StringTasks (IPython 0.10's StringTask with push and pull)
 * each compute the sum of the primes below n on whichever engine is free;
 * their results arrive as callbacks on this program's own event loop,
 * in completion order, and are checked against a serial C computation.
 *
 *   ipcluster start -n 2
 *   ./task_loop [COUNT [URL_OR_FILE]]     # the task capability: ipcontroller-tc.url
 *   task 1 (n=10000) on engine 0: 5736396
 *   ...
 *   task_loop: 8 tasks done, results agree
 *
 * Build against an installed plexa (libev has no pkg-config file):
 *   cc task_loop.c $(pkg-config --cflags --libs plexa) -lev -o task_loop
 */
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <plexa/client.h>

static const char *const CODE =
    "def isprime(x):\n"
    "    if x < 2:\n"
    "        return False\n"
    "    d = 2\n"
    "    while d * d <= x:\n"
    "        if x % d == 0:\n"
    "            return False\n"
    "        d += 1\n"
    "    return True\n"
    "r = sum(x for x in range(2, n) if isprime(x))\n";

static int64_t sum_primes(int64_t n)
{
    int64_t s = 0;
    for (int64_t x = 2; x < n; x++) {
        int prime = 1;
        for (int64_t d = 2; d * d <= x && prime; d++)
            prime = x % d != 0;
        s += prime ? x : 0;
    }
    return s;
}

/* One submitted task and what we expect of it. */
typedef struct job {
    uint64_t id;
    int64_t  n;
    int      ok;    /* 1 agreed, -1 failed or differed */
} job_t;

static void on_result(plx_pending_t *p, void *ud)
{
    job_t *job = ud;
    plx_err_t err = {0};
    plx_task_result_t *r = NULL;
    int64_t got = 0;
    if (plx_pending_task_result(p, &r, &err) != PLX_OK) {
        fprintf(stderr, "task_loop: %s\n", err.msg);
        job->ok = -1;
    } else if (plx_value_as_i64(plx_task_result_get(r, "r"), &got) != PLX_OK ||
               got != sum_primes(job->n)) {
        fprintf(stderr, "task_loop: task %llu: wrong result\n", (unsigned long long)job->id);
        job->ok = -1;
    } else {
        printf("task %llu (n=%lld) on engine %d: %lld\n", (unsigned long long)job->id,
               (long long)job->n, r->engine_id, (long long)got);
        job->ok = 1;
    }
    plx_task_result_destroy(&r);
    plx_pending_destroy(&p);   /* the handle is ours to drop, here or later */
}

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 8;
    if (count == 0) {
        fprintf(stderr, "usage: %s [COUNT [URL_OR_FILE]]\n", argv[0]);
        return 2;
    }
    plx_err_t err = {0};
    plx_client_t *tc = plx_client_connect_role(argc > 2 ? argv[2] : "", NULL,
                                               PLX_CLIENT_ROLE_TASK, 10.0, &err);
    if (!tc) {
        fprintf(stderr, "task_loop: connect: %s\n", err.msg);
        return 1;
    }
    struct ev_loop *loop = ev_default_loop(0);
    job_t *jobs = calloc(count, sizeof *jobs);
    int rc = jobs ? 0 : 1;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        jobs[i].n = 10000 * (int64_t)(i + 1);
        plx_value_t *n = plx_value_i64(jobs[i].n);
        const char *push = "n", *pull = "r";
        const plx_value_t *pv = n;
        plx_pending_t *p = NULL;
        if (plx_client_task_submit_string(tc, CODE, &push, &pv, 1, &pull, 1, &jobs[i].id,
                                          &err) != PLX_OK ||
            plx_client_task_result_nb(tc, jobs[i].id, &p, &err) != PLX_OK ||
            plx_pending_on_done(p, loop, on_result, &jobs[i], &err) != PLX_OK) {
            fprintf(stderr, "task_loop: task %zu: %s\n", i, err.msg);
            plx_pending_destroy(&p);
            rc = 1;
        }
        plx_value_destroy(&n);
    }
    /* Returns once every callback has run: a pending callback keeps the
     * loop alive. Any other watchers of the program would run meanwhile. */
    ev_run(loop, 0);
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (jobs[i].ok != 1)
            rc = 1;
    if (rc == 0)
        printf("task_loop: %zu tasks done, results agree\n", count);
    free(jobs);
    plx_client_destroy(&tc);
    return rc;
}
