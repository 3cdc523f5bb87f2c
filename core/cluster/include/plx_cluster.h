/*
 * ipcluster's machinery: start a controller and N engines through launcher
 * plugins, wait until the engines are registered, watch them, stop them.
 */
#ifndef PLX_CLUSTER_H
#define PLX_CLUSTER_H

#include <stddef.h>
#include <stdio.h>

#include "plexa/error.h"

typedef struct plx_cluster_opts {
    const char *profile;            /* profile name */
    int         engines;            /* engines to start; <=0 = cluster.conf's */
    const char *engine_launcher;    /* NULL = cluster.conf's */
    const char *controller_launcher;/* NULL = cluster.conf's */
    double      timeout;            /* seconds to wait for registration; <=0 = conf */
    int         daemonize;          /* return once registered, keep running detached */
    const char *log_level;          /* passed to the processes; NULL = conf */
    const char *const *set;         /* NULL, or {section, key, value, ..., NULL}: settings
                                     * applied over cluster.conf (0.10 mode options) */
    const char *const *controller_args; /* NULL, or more ipcontroller options (0.10's -r,
                                     * --client-port, --engine-port), NULL-terminated */
} plx_cluster_opts_t;

/*
 * Start the cluster and run until SIGINT/SIGTERM (or, with daemonize,
 * detach once the engines are registered and return 0 in the parent).
 * Returns a process exit status; err says what failed.
 */
int plx_cluster_run(const plx_cluster_opts_t *o, plx_err_t *err);

/* Stop the cluster of a profile (signals its ipcluster). */
int plx_cluster_stop(const char *profile, double timeout, plx_err_t *err);

/* Print the state of a profile's cluster (engines, controller address).
 * Returns PLX_OK when it runs, PLX_ENOTFOUND when it does not. */
int plx_cluster_status(const char *profile, FILE *out, plx_err_t *err);

/* The same from another host, through an ssh server (the login node the
 * cluster runs on): the status page and the status capability through
 * tunnels, with this host's copy of the profile's connection files. */
int plx_cluster_status_via(const char *profile, const char *sshserver, FILE *out,
                           plx_err_t *err);

/* Print the running controller's capability tokens and connection files. */
int plx_cluster_tokens(const char *profile, FILE *out, plx_err_t *err);

/*
 * Revoke capability cap (engine, mec, task or status) of the profile's
 * running controller: it mints a new token, rewrites the connection file
 * and drops the connections that used the old one. Asks through a request
 * file in security/ and SIGUSR1 (see plx_controller_serve_requests).
 */
int plx_cluster_revoke(const char *profile, const char *cap, FILE *out, plx_err_t *err);

/*
 * Start n more engines in the profile's running cluster, with its engine
 * launcher (a new batch job for the batch launchers): asks the running
 * ipcluster (a request file in pid/ and SIGUSR1), then waits until n more
 * engines have registered, at most timeout_s, printing progress to out.
 * ipcluster stop stops them with the rest.
 */
int plx_cluster_add_engines(const char *profile, int n, double timeout_s, FILE *out,
                            plx_err_t *err);

/* Print every profile under the profile root with its state. */
int plx_cluster_list(FILE *out, plx_err_t *err);

/*
 * `ipcluster plugins`: every launcher and transport plugin on the search
 * path (PLX_PLUGIN_PATH, then the built-in directory), one line each with
 * kind, name, version, plugin ABI and file; the files the loader refuses
 * with the reason. Returns PLX_OK, or a negative code when the search
 * path cannot be read.
 */
int plx_cluster_plugins(FILE *out, plx_err_t *err);

/*
 * Read an IPython 0.10 ssh cluster file (`engines = {'host': N, ...}`)
 * into hosts ("host1:2, host2:5", the [ssh] hosts syntax) and the total
 * number of engines. Errors name the file and line.
 */
int plx_cluster_read_clusterfile(const char *path, char *hosts, size_t len, int *total,
                                 plx_err_t *err);

/* Create a profile with a commented cluster.conf for engine_launcher. */
int plx_cluster_profile_create(const char *profile, const char *engine_launcher, FILE *out,
                               plx_err_t *err);

#endif
