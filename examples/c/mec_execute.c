/*
 * mec_execute: run Python code on every engine of a running plexa cluster
 * from C, and print the results the way IPython 0.10's Results List does.
 *
 *   ipcluster local -n 2
 *   ./mec_execute 'import os; print(os.getpid())'      # default profile
 *   ./mec_execute 'print(1/0)' plx+tcp://host:port/TOKEN
 *
 * Build against an installed plexa:
 *   cc mec_execute.c $(pkg-config --cflags --libs plexa) -o mec_execute
 */
#include <stdio.h>
#include <stdlib.h>

#include <plexa/client.h>

static void print_result(const plx_engine_result_t *r)
{
    printf("[%d] In [%d]: %s\n", r->engine_id, r->number, r->input);
    if (*r->stdout_text)
        printf("[%d] Out[%d]: %s\n", r->engine_id, r->number, r->stdout_text);
    if (*r->stderr_text)
        printf("[%d] Err[%d]:\n %s", r->engine_id, r->number, r->stderr_text);
    if (r->ename)
        printf("[%d:execute]: %s: %s\n%s", r->engine_id, r->ename, r->evalue, r->traceback);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CODE [URL_OR_FILE]\n", argv[0]);
        return 2;
    }
    plx_err_t err = {0};
    plx_client_t *c = plx_client_connect(argc > 2 ? argv[2] : "", NULL, 10.0, &err);
    if (!c) {
        fprintf(stderr, "mec_execute: %s\n", err.msg);
        return 1;
    }
    plx_results_t *res = NULL;
    int rc = plx_client_execute(c, NULL, argv[1], &res, &err);
    if (rc == PLX_OK) {
        printf("<Results List>\n");
        for (size_t i = 0; i < res->n; i++)
            print_result(&res->r[i]);
        plx_results_destroy(&res);
    } else {
        fprintf(stderr, "mec_execute: %s\n", err.msg);
    }
    plx_client_destroy(&c);
    return rc == PLX_OK ? 0 : 1;
}
