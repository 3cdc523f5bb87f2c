/*
 * plugins/common/plx_batch in process: job script templates, shell
 * quoting, word splitting, turning queue states into a plx_job_status,
 * and its command runner (plx_batch_run: a missing command, capped output
 * and a timeout, with /bin/sh and /bin/sleep). Submission, polling and
 * cancelling are tested against real Slurm, Grid Engine and PBS wrappers
 * by the pytest files here.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plexa/batch.h"

static const char *lookup(void *ctx, const char *name)
{
    (void)ctx;
    if (strcmp(name, "n") == 0)
        return "4";
    if (strcmp(name, "queue") == 0)
        return "";
    if (strcmp(name, "log_dir") == 0)
        return "/p/log";
    return NULL;
}

static char *render(const char *tmpl, plx_err_t *err)
{
    char *out = NULL;
    int rc = plx_batch_render(tmpl, "t.sbatch", "#SBATCH", lookup, NULL, &out, err);
    return rc == PLX_OK ? out : NULL;
}

/* Placeholders are replaced; the shell's braces are not. */
static void test_render_placeholders(void **state)
{
    (void)state;
    plx_err_t err = {0};
    char *out = render("#SBATCH --ntasks={n}\n"
                       "x=${A:-${B:-$C}} f() { :; } {a,b} {UP}\n"
                       "echo {log_dir}/{n}.out", &err);
    assert_non_null(out);
    assert_string_equal(out, "#SBATCH --ntasks=4\n"
                             "x=${A:-${B:-$C}} f() { :; } {a,b} {UP}\n"
                             "echo /p/log/4.out\n");
    free(out);
}

/* A directive with an empty placeholder is left out; other lines stay. */
static void test_render_drops_empty_directive(void **state)
{
    (void)state;
    plx_err_t err = {0};
    char *out = render("#!/bin/sh\n#SBATCH --partition={queue}\n#SBATCH -n {n}\n"
                       "echo q={queue}\n", &err);
    assert_non_null(out);
    assert_string_equal(out, "#!/bin/sh\n#SBATCH -n 4\necho q=\n");
    free(out);
}

/* An unknown placeholder names the file and line. */
static void test_render_unknown_placeholder(void **state)
{
    (void)state;
    plx_err_t err = {0};
    assert_null(render("#!/bin/sh\n\nexec {engine_comand}\n", &err));
    assert_int_equal(err.code, PLX_ENOTFOUND);
    assert_string_equal(err.msg, "t.sbatch:3: unknown placeholder {engine_comand}");
}

/* An empty template is refused by name; a template whose only line is a
 * dropped directive renders to nothing. */
static void test_render_empty(void **state)
{
    (void)state;
    plx_err_t err = {0};
    assert_null(render("", &err));
    assert_int_equal(err.code, PLX_EINVAL);
    assert_string_equal(err.msg, "t.sbatch: the template is empty");
    char *out = render("#SBATCH --partition={queue}", &err);
    assert_non_null(out);
    assert_string_equal(out, "");
    free(out);
}

/* The empty command line is "", and so is an empty word (quoted). */
/* The default job id rule, on what real submit commands print. */
static void test_parse_id(void **state)
{
    (void)state;
    char id[24];
    assert_int_equal(plx_batch_parse_id("Submitted batch job 17\n", id, sizeof id), PLX_OK);
    assert_string_equal(id, "17");
    assert_int_equal(plx_batch_parse_id("123.server.example\n", id, sizeof id), PLX_OK);
    assert_string_equal(id, "123.server.example");
    assert_int_equal(plx_batch_parse_id("Your job 9 (\"ipengine\") has been submitted\n", id,
                                        sizeof id), PLX_OK);
    assert_string_equal(id, "9");
    assert_int_equal(plx_batch_parse_id("17;cluster\n", id, sizeof id), PLX_OK);
    assert_string_equal(id, "17");
    assert_int_equal(plx_batch_parse_id("job abc2 queued", id, sizeof id), PLX_EPROTO);
    assert_int_equal(plx_batch_parse_id("", id, sizeof id), PLX_EPROTO);
    assert_int_equal(plx_batch_parse_id("123456789012345678901234567890", id, sizeof id),
                     PLX_EPROTO);   /* does not fit */
}

static void test_shell_join_empty(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    char *s = plx_batch_shell_join(none);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    const char *blank[] = {"", NULL};
    s = plx_batch_shell_join(blank);
    assert_string_equal(s, "''");
    free(s);
}

/* Every word is single-quoted, quotes inside included. */
static void test_shell_join(void **state)
{
    (void)state;
    const char *argv[] = {"/opt/x y/ipengine", "it's", "$HOME", NULL};
    char *s = plx_batch_shell_join(argv);
    assert_string_equal(s, "'/opt/x y/ipengine' 'it'\\''s' '$HOME'");
    free(s);
}

/* submit_args: whitespace separates, quotes group. */
static void test_split_words(void **state)
{
    (void)state;
    char buf[] = "  --qos=normal  --comment='two words' -x\"y z\"";
    plx_batch_argv av = {.n = 0};
    plx_err_t err = {0};
    assert_int_equal(plx_batch_split_words(buf, &av, "[slurm] submit_args", &err), PLX_OK);
    assert_int_equal(av.n, 3);
    assert_string_equal(av.v[0], "--qos=normal");
    assert_string_equal(av.v[1], "--comment=two words");
    assert_string_equal(av.v[2], "-xy z");
    char bad[] = "--comment='open";
    plx_batch_argv av2 = {.n = 0};
    assert_int_equal(plx_batch_split_words(bad, &av2, "[slurm] submit_args", &err), PLX_EINVAL);
    assert_non_null(strstr(err.msg, "unterminated quote"));
}

/* Queue states become counts, and keep the batch system's words. */
static void test_tally_pending_with_reason(void **state)
{
    (void)state;
    plx_batch_tally t;
    plx_job_status st;
    memset(&t, 0, sizeof t);
    plx_batch_tally_add(&t, PLX_BATCH_PENDING, 1, "PENDING", "JobHeldUser");
    plx_batch_tally_add(&t, PLX_BATCH_PENDING, 1, "PENDING", "JobHeldUser");
    plx_batch_tally_add(&t, PLX_BATCH_RUNNING, 1, "RUNNING", "");
    plx_batch_tally_status(&t, 3, "slurm", "12", &st);
    assert_int_equal(st.state, PLX_JOB_RUNNING);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.exited, 0);
    assert_string_equal(st.job_id, "12");
    assert_string_equal(st.detail, "slurm job 12: 2 PENDING (JobHeldUser), 1 RUNNING");
}

/* Engines the queue no longer shows ended, status unknown: failed. */
static void test_tally_unseen_are_failed(void **state)
{
    (void)state;
    plx_batch_tally t;
    plx_job_status st;
    memset(&t, 0, sizeof t);
    plx_batch_tally_add(&t, PLX_BATCH_DONE, 1, "COMPLETED", NULL);
    plx_batch_tally_status(&t, 3, "sge", "7", &st);
    assert_int_equal(st.state, PLX_JOB_FINISHED);
    assert_int_equal(st.exited, 3);
    assert_int_equal(st.failed, 2);
    assert_string_equal(st.detail, "sge job 7: 1 COMPLETED, 2 no longer in the queue "
                                   "(exit status unknown)");
}

/* A failed command's stderr lines, joined, after its name and status. */
static void test_fail_message(void **state)
{
    (void)state;
    plx_batch_out out = {.status = 1 << 8,
                         .out = (char *)"",
                         .err = (char *)"sbatch: error: invalid partition specified: nosuch\n"
                                        "sbatch: error: Batch job submission failed\n"};
    plx_err_t err = {0};
    assert_int_equal(plx_batch_fail(&err, "/usr/bin/sbatch", &out), PLX_ERR);
    assert_string_equal(err.msg, "sbatch failed (exit 1): sbatch: error: invalid partition "
                                 "specified: nosuch; sbatch: error: Batch job submission "
                                 "failed");
}

/* A command that cannot be run ends 127 and says why. */
static void test_run_missing_command(void **state)
{
    (void)state;
    const char *argv[] = {"/nonexistent/qsub", NULL};
    plx_batch_out out;
    plx_err_t err = {0};
    assert_int_equal(plx_batch_run(argv, NULL, NULL, 10, &out, &err), PLX_OK);
    assert_false(plx_batch_out_ok(&out));
    assert_int_equal(WEXITSTATUS(out.status), 127);
    assert_non_null(strstr(out.err, "cannot run /nonexistent/qsub: No such file"));
    plx_batch_out_free(&out);
}

/* Output is kept up to PLX_BATCH_OUT_MAX bytes per stream and the rest
 * drained (the command is not blocked on a full pipe); the command gets
 * default signals even when we ignore SIGPIPE, so `yes | head` ends. */
static void test_run_output_capped(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c",
                          "yes 0123456789 | head -c 200000; echo said >&2; "
                          "grep ^SigIgn: /proc/self/status >&2", NULL};
    plx_batch_out out;
    plx_err_t err = {0};
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    int rc = plx_batch_run(argv, NULL, NULL, 20, &out, &err);
    signal(SIGPIPE, old);
    assert_int_equal(rc, PLX_OK);
    assert_true(plx_batch_out_ok(&out));
    assert_int_equal(strlen(out.out), PLX_BATCH_OUT_MAX);
    assert_memory_equal(out.out, "0123456789\n0123456789\n", 22);
    assert_string_equal(out.err, "said\nSigIgn:\t0000000000000000\n");
    plx_batch_out_free(&out);
}

/* A command that hangs is killed at its deadline. */
static void test_run_timeout(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sleep", "30", NULL};
    plx_batch_out out;
    plx_err_t err = {0};
    assert_int_equal(plx_batch_run(argv, NULL, NULL, 0.3, &out, &err), PLX_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "did not finish within"));
    plx_batch_out_free(&out);
}

static int fixture_output_path(const plx_batch_job *j, int index, char *path, size_t len)
{
    return snprintf(path, len, "%s/%s-%s_%d.out", j->log_dir, j->job_name, j->job_id, index);
}

/* The job's output file is reported once it exists, only for a submitted
 * job and an engine it has, and never as a truncated path. */
static void test_output_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/plx-batch-out-XXXXXX", path[64], file[96];
    assert_non_null(mkdtemp(dir));
    plx_batch_system sys = { .name = "fixture", .output_path = fixture_output_path };
    plx_batch_job j = { .sys = &sys, .n = 2, .log_dir = dir };
    snprintf(j.job_name, sizeof j.job_name, "ipengine");
    assert_int_equal(plx_batch_output_file(&j, 0, path, sizeof path), 0);   /* no job id */
    assert_string_equal(path, "");
    snprintf(j.job_id, sizeof j.job_id, "17");
    assert_int_equal(plx_batch_output_file(&j, 0, path, sizeof path), 0);   /* not written */
    snprintf(file, sizeof file, "%s/ipengine-17_1.out", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(plx_batch_output_file(&j, 1, path, sizeof path), 1);
    assert_string_equal(path, file);
    assert_int_equal(plx_batch_output_file(&j, 2, path, sizeof path), 0);   /* no engine 2 */
    assert_int_equal(plx_batch_output_file(&j, 1, path, 20), 0);            /* does not fit */
    assert_string_equal(path, "");
    assert_int_equal(plx_batch_output_file(NULL, 0, path, sizeof path), 0);
    unlink(file);
    rmdir(dir);
}

static const plx_batch_system pbs_like = {
    .name = "pbs", .directive = "#PBS", .array_opts = {"-t", "-J"}, .array_fmt = "-t %s",
    .queue_opts = {"-q"}, .queue_fmt = "-q %s",
};
static const plx_batch_system slurm_like = {
    .name = "slurm", .directive = "#SBATCH", .array_opts = {"--array", "-a"},
    .array_fmt = "--array=%s", .queue_opts = {"--partition", "-p"}, .queue_fmt = "--partition=%s",
};

static char *completed(const plx_batch_system *sys, bool array, const char *queue,
                       const char *text)
{
    char *s = strdup(text);
    plx_err_t err = {0};
    assert_int_equal(plx_batch_script_complete(sys, array, "0-11", queue, &s, &err), PLX_OK);
    return s;
}

/* IPython 0.10's PBS script, given with -s: the array and the queue are
 * added after the #! line, as 0.10 added them. */
static void test_complete_adds_array_and_queue(void **state)
{
    (void)state;
    char *s = completed(&pbs_like, true, "hpc", "#!/bin/sh\n#PBS -V\n#PBS -N ipengine\n"
                        "eid=$(($PBS_ARRAYID - 1))\nipengine --logfile=ipengine${eid}.log\n");
    assert_string_equal(s, "#!/bin/sh\n#PBS -q hpc\n#PBS -t 0-11\n#PBS -V\n#PBS -N ipengine\n"
                           "eid=$(($PBS_ARRAYID - 1))\nipengine --logfile=ipengine${eid}.log\n");
    free(s);
    s = completed(&slurm_like, true, "", "srun true\n");      /* no #! line: at the top */
    assert_string_equal(s, "#SBATCH --array=0-11\nsrun true\n");
    free(s);
    s = completed(&pbs_like, false, NULL, "#!/bin/sh\ntrue\n"); /* one job: no array */
    assert_string_equal(s, "#!/bin/sh\ntrue\n");
    free(s);
}

/* Any spelling of the option the template already has is left alone. */
static void test_complete_keeps_what_the_template_says(void **state)
{
    (void)state;
    static const char *const pbs[] = {"#PBS -t 1-4\n", "#PBS  -J 0-3\n", "#PBS -t1-4\n",
                                      "#PBS\t-t 0-1\n"};
    for (size_t i = 0; i < sizeof pbs / sizeof pbs[0]; i++) {
        char *s = completed(&pbs_like, true, NULL, pbs[i]);
        assert_string_equal(s, pbs[i]);
        free(s);
    }
    static const char *const slurm[] = {"#SBATCH --array=0-3\n#SBATCH -p debug\n",
                                        "#SBATCH -a 0-3\n#SBATCH --partition=debug\n"};
    for (size_t i = 0; i < sizeof slurm / sizeof slurm[0]; i++) {
        char *s = completed(&slurm_like, true, "debug", slurm[i]);
        assert_string_equal(s, slurm[i]);
        free(s);
    }
    /* --account is not -a; a comment or a later word is not a directive */
    char *s = completed(&slurm_like, true, NULL, "#SBATCH --account=x\n# --array=0-3\n");
    assert_string_equal(s, "#SBATCH --array=0-11\n#SBATCH --account=x\n# --array=0-3\n");
    free(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_render_placeholders),
    cmocka_unit_test(test_render_drops_empty_directive),
    cmocka_unit_test(test_render_unknown_placeholder),
    cmocka_unit_test(test_render_empty),
    cmocka_unit_test(test_shell_join),
    cmocka_unit_test(test_parse_id),
    cmocka_unit_test(test_shell_join_empty),
    cmocka_unit_test(test_split_words),
    cmocka_unit_test(test_tally_pending_with_reason),
    cmocka_unit_test(test_tally_unseen_are_failed),
    cmocka_unit_test(test_fail_message),
    cmocka_unit_test(test_run_missing_command),
    cmocka_unit_test(test_run_output_capped),
    cmocka_unit_test(test_run_timeout),
    cmocka_unit_test(test_output_file),
    cmocka_unit_test(test_complete_adds_array_and_queue),
    cmocka_unit_test(test_complete_keeps_what_the_template_says),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("plx_batch", tests, NULL, NULL))
