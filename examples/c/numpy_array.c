/*
 * numpy_array: push a C array to the engines, where Python code sees a
 * numpy.ndarray, run numpy code on it, and pull the numpy result back as
 * a C array. Also scatters an array over the engines and gathers the
 * engines' results (0.10's mec.scatter / mec.gather).
 *
 *   ipcluster start -n 2
 *   ./numpy_array [URL_OR_FILE]
 *   engine 0 sees: ndarray float64 (3, 4)
 *   b = cumsum(2*a + 1, axis=1), pulled from engine 0:
 *     1 4 9 16
 *     ...
 *   gathered y = x**2: 0 1 4 9 16 25 36 49 64 81
 *   numpy_array: OK
 *
 * The 3x4 array is lent to plexa without a copy (plx_value_array_borrow):
 * its bytes go to the socket straight from `a`, and plexa says when it no
 * longer needs them.
 *
 * Build against an installed plexa:
 *   cc numpy_array.c $(pkg-config --cflags --libs plexa) -o numpy_array
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <plexa/client.h>

#define ROWS 3
#define COLS 4

static int fail(const char *what, const plx_err_t *err)
{
    fprintf(stderr, "numpy_array: %s: %s (%s)\n", what, err->msg, plx_strerror(err->code));
    return 1;
}

/* Called once plexa no longer reads the lent array. */
static void released(void *data, void *ctx)
{
    (void)data;   /* static storage: nothing to free */
    *(int *)ctx = 1;
}

/* Run code on all engines; a remote exception is a failure too. */
static int run(plx_client_t *c, const char *code, plx_err_t *err)
{
    plx_results_t *res = NULL;
    int rc = plx_client_execute(c, NULL, code, &res, err);
    for (size_t i = 0; rc == PLX_OK && i < res->n; i++)
        if (res->r[i].ename)
            rc = plx_err_set(err, PLX_EREMOTE, "engine %d raised %s: %s", res->r[i].engine_id,
                             res->r[i].ename, res->r[i].evalue);
    plx_results_destroy(&res);
    return rc;
}

int main(int argc, char **argv)
{
    static double a[ROWS][COLS];
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < COLS; j++)
            a[i][j] = i * COLS + j;

    plx_err_t err = {0};
    plx_client_t *c = plx_client_connect(argc > 1 ? argv[1] : "", NULL, 10.0, &err);
    if (!c)
        return fail("connect", &err);
    int rc = 1, lent_back = 0;
    plx_pulled_t *pulled = NULL;
    plx_value_t *x = NULL, *y = NULL;

    /* push a = the C array, without copying it */
    size_t shape[2] = { ROWS, COLS };
    plx_value_t *av = plx_value_array_borrow(PLX_DTYPE_FLOAT64, 2, shape, a, released, &lent_back);
    const char *name = "a";
    if (!av) {
        fprintf(stderr, "numpy_array: cannot make the array value\n");
        goto out;
    }
    if (plx_client_push(c, NULL, &name, (const plx_value_t *const *)&av, 1, &err) != PLX_OK) {
        fail("push", &err);
        goto out;
    }
    plx_value_destroy(&av);

    if (run(c, "import numpy\n"
               "seen = '%s %s %s' % (type(a).__name__, a.dtype, a.shape)\n"
               "b = numpy.cumsum(2 * a + 1, axis=1)\n", &err) != PLX_OK) {
        fail("execute", &err);
        goto out;
    }
    int32_t zero = 0;
    plx_targets_t engine0 = { .ids = &zero, .n = 1 };
    const char *names[2] = { "seen", "b" };
    if (plx_client_pull(c, &engine0, names, 2, &pulled, &err) != PLX_OK) {
        fail("pull", &err);
        goto out;
    }
    const plx_value_t *seen = pulled->r[0].values[0], *b = pulled->r[0].values[1];
    printf("engine %d sees: %s\n", pulled->r[0].engine_id, plx_value_as_str(seen));
    if (plx_value_array_dtype(b) != PLX_DTYPE_FLOAT64 || plx_value_array_ndim(b) != 2 ||
        plx_value_array_shape(b)[0] != ROWS || plx_value_array_shape(b)[1] != COLS ||
        plx_value_array_fortran(b)) {
        fprintf(stderr, "numpy_array: b is not a %dx%d float64 array\n", ROWS, COLS);
        goto out;
    }
    const double *bd = plx_value_array_data(b);
    printf("b = cumsum(2*a + 1, axis=1), pulled from engine 0:\n");
    for (int i = 0; i < ROWS; i++) {
        double expect = 0;
        printf("  ");
        for (int j = 0; j < COLS; j++) {
            expect += 2 * a[i][j] + 1;
            printf("%g%s", bd[i * COLS + j], j + 1 < COLS ? " " : "\n");
            if (fabs(bd[i * COLS + j] - expect) > 1e-12) {
                fprintf(stderr, "numpy_array: b[%d][%d] = %g, expected %g\n", i, j,
                        bd[i * COLS + j], expect);
                goto out;
            }
        }
    }

    /* scatter x = 0..9 (int32) over the engines, square there, gather */
    int32_t xd[10];
    for (int i = 0; i < 10; i++)
        xd[i] = i;
    size_t xshape[1] = { 10 };
    x = plx_value_array(PLX_DTYPE_INT32, 1, xshape, xd);
    if (!x || plx_client_scatter(c, NULL, "x", x, &err) != PLX_OK) {
        fail("scatter", &err);
        goto out;
    }
    if (run(c, "y = x.astype(numpy.int64) ** 2", &err) != PLX_OK) {
        fail("execute", &err);
        goto out;
    }
    if (plx_client_gather(c, NULL, "y", &y, &err) != PLX_OK) {
        fail("gather", &err);
        goto out;
    }
    if (plx_value_array_dtype(y) != PLX_DTYPE_INT64 || plx_value_array_size(y) != 10) {
        fprintf(stderr, "numpy_array: gathered y is not 10 int64 values\n");
        goto out;
    }
    const int64_t *yd = plx_value_array_data(y);
    printf("gathered y = x**2:");
    for (int i = 0; i < 10; i++) {
        printf(" %lld", (long long)yd[i]);
        if (yd[i] != (int64_t)i * i) {
            fprintf(stderr, "\nnumpy_array: y[%d] = %lld\n", i, (long long)yd[i]);
            goto out;
        }
    }
    printf("\n");
    if (!lent_back) {
        fprintf(stderr, "numpy_array: the lent array was never released\n");
        goto out;
    }
    printf("numpy_array: OK\n");
    rc = 0;
out:
    plx_value_destroy(&av);
    plx_value_destroy(&x);
    plx_value_destroy(&y);
    plx_pulled_destroy(&pulled);
    plx_client_destroy(&c);
    return rc;
}
