/*
 * ipcluster's keeper, shared by its files (private to core/cluster):
 * plx_cluster.c starts and watches a cluster, plx_cluster_stop.c ends it.
 */
#ifndef PLX_CLUSTER_INT_H
#define PLX_CLUSTER_INT_H

#include <limits.h>
#include <time.h>

#include "plexa/launcher.h"
#include "plx_cluster.h"
#include "plx_conf.h"
#include "plx_profile.h"

#define POLL_S 0.01
#define MAX_ENGINE_JOBS 256     /* the first job plus replacements */
#define BACKOFF_MAX_S   30.0

typedef struct cluster {
    plx_cluster_opts_t      o;
    plx_profile_t           prof;
    plx_conf_t             *conf;
    const char             *level;
    const plx_launcher_ops *cops, *eops;
    void                   *cjob, *ejob;
    void                   *rjobs[MAX_ENGINE_JOBS];   /* replacement engines */
    int                     nrjobs;
    int                     next_index;    /* the next engine's PLX_ENGINE_INDEX */
    char                    engine_url[1024];
    const char             *engine_launcher;
    const char             *controller_launcher;
    char                    bindir[PATH_MAX];
    char                    cwd[PATH_MAX];
    char                    pidfile[PATH_MAX];
    int                     progress_fd;   /* daemon child: pipe to the waiting parent */
    int                     one_output;    /* stdout and stderr are one file (see progress) */
    int                     owns_pidfile;
    struct timespec         ctl_started;   /* coarse wall clock, as file times are */
} cluster_t;

static inline void plx_cluster_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/*
 * Stop every job of the cluster still running (engines, then the
 * controller). PLX_OK once all have stopped: the pid file and the job
 * list go. Otherwise the jobs that would not stop stay the cluster's (a
 * later call retries them), pid/stop-failed says which and why (ipcluster
 * stop and status print it), and err holds the same.
 */
int plx_cluster_stop_jobs(cluster_t *c, plx_err_t *err);

/* After a start of an engine job: its batch job id, if it has one, joins
 * pid/engine-jobs, so that a stop after ipcluster itself died can still
 * cancel it. */
void plx_cluster_note_job(cluster_t *c, void *job);

#endif
