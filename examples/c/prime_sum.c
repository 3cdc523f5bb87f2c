/*
 * prime_sum: the seed tutorial's exercise (examples/prime1_mec.py) from C.
 *
 * sum_primes(n), the sum of the primes below n, is computed for COUNT
 * values up to N, first serially here in C, then on the engines of a
 * running cluster: the inputs are scattered over the engines (0.10's
 * block partition), each engine runs prime1.sum_primes's Python code on
 * its part, and the results are gathered back. Exits non-zero if the two
 * disagree.
 *
 *   ipcluster start -n 2
 *   ./prime_sum [N [COUNT [URL_OR_FILE]]]        # default 200000 16, default profile
 *   Engines: 2
 *   Serial (C) sum_primes time: 0.041 s
 *   Parallel sum_primes time: 0.85 s
 *   Sums agree: 16 values, sum of sums 10261715110
 *
 * Build against an installed plexa:
 *   cc prime_sum.c $(pkg-config --cflags --libs plexa) -o prime_sum
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime in strict C11 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <plexa/client.h>

/* The engines' code: prime1.py's isprime and sum_primes. */
static const char *const PRIME1 =
    "import math\n"
    "def isprime(n):\n"
    "    if n < 2:\n"
    "        return False\n"
    "    if n < 4:\n"
    "        return True\n"
    "    if n % 2 == 0:\n"
    "        return False\n"
    "    limit = int(math.sqrt(n))\n"
    "    i = 3\n"
    "    while i <= limit:\n"
    "        if n % i == 0:\n"
    "            return False\n"
    "        i += 2\n"
    "    return True\n"
    "def sum_primes(n):\n"
    "    return sum(x for x in range(2, n) if isprime(x))\n";

static int isprime(int64_t n)
{
    if (n < 2)
        return 0;
    if (n < 4)
        return 1;
    if (n % 2 == 0)
        return 0;
    for (int64_t i = 3; i * i <= n; i += 2)
        if (n % i == 0)
            return 0;
    return 1;
}

static int64_t sum_primes(int64_t n)
{
    int64_t s = 0;
    for (int64_t x = 2; x < n; x++)
        if (isprime(x))
            s += x;
    return s;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Show a failed call's message and pass its code on. */
static int fail(const char *what, const plx_err_t *err)
{
    fprintf(stderr, "prime_sum: %s: %s (%s)\n", what, err->msg, plx_strerror(err->code));
    return 1;
}

int main(int argc, char **argv)
{
    int64_t N = argc > 1 ? strtoll(argv[1], NULL, 10) : 200000;
    size_t count = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 16;
    const char *url = argc > 3 ? argv[3] : "";
    if (N < 2 || count == 0) {
        fprintf(stderr, "usage: %s [N [COUNT [URL_OR_FILE]]]\n", argv[0]);
        return 2;
    }
    int64_t *inputs = malloc(count * sizeof *inputs);
    int64_t *serial = malloc(count * sizeof *serial);
    if (!inputs || !serial)
        return 1;
    for (size_t i = 0; i < count; i++) {
        int64_t x = N * (int64_t)(i + 1) / (int64_t)count;
        inputs[i] = x < 2 ? 2 : x;
    }

    double t = now();
    for (size_t i = 0; i < count; i++)
        serial[i] = sum_primes(inputs[i]);
    printf("Serial (C) sum_primes time: %.3f s\n", now() - t);

    plx_err_t err = {0};
    plx_client_t *c = plx_client_connect(url, NULL, 10.0, &err);
    if (!c)
        return fail("connect", &err);
    int rc = 1;
    plx_value_t *xs = plx_value_list(), *ys = NULL;
    plx_results_t *res = NULL;
    int32_t *ids = NULL;
    size_t nids = 0;
    if (plx_client_get_ids(c, &ids, &nids, &err) != PLX_OK) {
        fail("get_ids", &err);
        goto out;
    }
    printf("Engines: %zu\n", nids);
    for (size_t i = 0; xs && i < count; i++) {
        plx_value_t *x = plx_value_i64(inputs[i]);
        if (plx_value_list_append(xs, &x) != PLX_OK) {
            plx_value_destroy(&x);
            plx_value_destroy(&xs);
        }
    }
    if (!xs) {
        fprintf(stderr, "prime_sum: out of memory\n");
        goto out;
    }

    t = now();
    /* Define the functions everywhere, hand each engine its block of
     * inputs, compute, and collect the blocks in engine order. */
    if (plx_client_execute(c, NULL, PRIME1, &res, &err) != PLX_OK) {
        fail("execute", &err);
        goto out;
    }
    for (size_t i = 0; i < res->n; i++) {
        if (res->r[i].ename) {
            fprintf(stderr, "prime_sum: engine %d: %s: %s\n", res->r[i].engine_id,
                    res->r[i].ename, res->r[i].evalue);
            goto out;
        }
    }
    plx_results_destroy(&res);
    if (plx_client_scatter(c, NULL, "xs", xs, &err) != PLX_OK) {
        fail("scatter", &err);
        goto out;
    }
    if (plx_client_execute(c, NULL, "ys = [sum_primes(x) for x in xs]", &res, &err) != PLX_OK) {
        fail("execute", &err);
        goto out;
    }
    if (plx_client_gather(c, NULL, "ys", &ys, &err) != PLX_OK) {
        fail("gather", &err);
        goto out;
    }
    printf("Parallel sum_primes time: %.3f s\n", now() - t);

    if (plx_value_list_len(ys) != count) {
        fprintf(stderr, "prime_sum: gathered %zu values, expected %zu\n", plx_value_list_len(ys),
                count);
        goto out;
    }
    int64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        int64_t y;
        if (plx_value_as_i64(plx_value_list_get(ys, i), &y) != PLX_OK || y != serial[i]) {
            fprintf(stderr, "prime_sum: value %zu (sum_primes(%lld)) differs: serial %lld\n", i,
                    (long long)inputs[i], (long long)serial[i]);
            goto out;
        }
        total += y;
    }
    printf("Sums agree: %zu values, sum of sums %lld\n", count, (long long)total);
    rc = 0;
out:
    plx_results_destroy(&res);
    plx_value_destroy(&xs);
    plx_value_destroy(&ys);
    free(ids);
    free(inputs);
    free(serial);
    plx_client_destroy(&c);
    return rc;
}
