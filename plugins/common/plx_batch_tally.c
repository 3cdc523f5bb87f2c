/*
 * plx_batch_tally: from the queue's view of a job to a plx_job_status.
 *
 * The queue reports tasks or jobs in its own words (PENDING/JobHeldUser,
 * hqw, Q); launchers report engines as pending, running or exited. The
 * tally keeps both: the counts for ipcluster's logic and the words, so
 * that a start that times out can say what the batch system said.
 */
#include <stdio.h>
#include <string.h>

#include "plexa/batch.h"

void plx_batch_tally_add(plx_batch_tally *t, plx_batch_cat cat, int k, const char *state,
                         const char *reason)
{
    if (k <= 0 || cat < PLX_BATCH_PENDING || cat > PLX_BATCH_FAILED)
        return;
    t->count[cat] += k;
    if (reason == NULL)
        reason = "";
    for (int i = 0; i < t->ngroups; i++)
        if (strcmp(t->group[i].state, state) == 0 && strcmp(t->group[i].reason, reason) == 0) {
            t->group[i].count += k;
            return;
        }
    if (t->ngroups == PLX_BATCH_GROUPS)
        return;
    t->group[t->ngroups].count = k;
    snprintf(t->group[t->ngroups].state, sizeof t->group[0].state, "%s", state);
    snprintf(t->group[t->ngroups].reason, sizeof t->group[0].reason, "%s", reason);
    t->ngroups++;
}

/* "slurm job 12: 2 PENDING (JobHeldUser), 1 RUNNING" */
static void tally_describe(const plx_batch_tally *t, int unseen, const char *system,
                           const char *job_id, char *out, size_t len)
{
    size_t k = (size_t)snprintf(out, len, "%s job %s:", system, job_id);

    for (int i = 0; i < t->ngroups && k < len; i++)
        k += (size_t)snprintf(out + k, len - k, "%s %d %s%s%s%s", i ? "," : "",
                              t->group[i].count, t->group[i].state,
                              t->group[i].reason[0] ? " (" : "", t->group[i].reason,
                              t->group[i].reason[0] ? ")" : "");
    if (unseen > 0 && k < len)
        snprintf(out + k, len - k, "%s %d no longer in the queue (exit status unknown)",
                 t->ngroups ? "," : "", unseen);
}

void plx_batch_tally_status(const plx_batch_tally *t, int n, const char *system,
                            const char *job_id, plx_job_status *st)
{
    int seen = t->count[PLX_BATCH_PENDING] + t->count[PLX_BATCH_RUNNING] +
               t->count[PLX_BATCH_DONE] + t->count[PLX_BATCH_FAILED];
    /* A job that left the queue before we saw how it ended: squeue and
     * qstat forget finished jobs, and an engine that never registered
     * is what ipcluster needs to hear about. */
    int unseen = seen < n ? n - seen : 0;

    memset(st, 0, sizeof *st);
    st->pending = t->count[PLX_BATCH_PENDING];
    st->running = t->count[PLX_BATCH_RUNNING];
    st->failed = t->count[PLX_BATCH_FAILED] + unseen;
    st->exited = t->count[PLX_BATCH_DONE] + st->failed;
    if (st->running > 0)
        st->state = PLX_JOB_RUNNING;
    else if (st->pending > 0)
        st->state = PLX_JOB_PENDING;
    else
        st->state = PLX_JOB_FINISHED;
    snprintf(st->job_id, sizeof st->job_id, "%s", job_id);
    tally_describe(t, unseen, system, job_id, st->detail, sizeof st->detail);
}
