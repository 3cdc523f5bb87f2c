/*
 * Checks ipcluster makes on a profile before it starts anything, so that a
 * mistake is reported at once, naming the cluster.conf key to change,
 * instead of as engines that never register.
 */
#ifndef PLX_CLUSTER_CHECK_H
#define PLX_CLUSTER_CHECK_H

#include <stddef.h>

#include "plexa/error.h"
#include "plexa/launcher.h"
#include "plx_conf.h"

/*
 * Check every launcher section of conf against its plugin's key table
 * (plx_conf_check_keys): the sections of the launchers in use must belong
 * to a plugin that loads; any other section is checked when a launcher
 * plugin of its name is found, and left alone otherwise (a profile may
 * carry settings for a plugin installed only on another machine).
 * Returns PLX_OK, or PLX_EINVAL / the loader's code with err naming the
 * file, line, section and key.
 */
int plx_cluster_check_launcher_keys(const plx_conf_t *conf, const char *controller_launcher,
                                    const char *engine_launcher, plx_err_t *err);

/*
 * The listen-vs-location check: when the engine launcher says it would
 * start engines on another host (its remote_host op) while the connection
 * files will name a loopback address, engines could never reach the
 * controller. If neither [cluster] listen nor location was set explicitly
 * this is PLX_EINVAL with an explanation naming both keys; if one was set
 * to loopback on purpose (an ssh tunnel, say) it is only a warning,
 * written into warn (empty when there is nothing to say).
 */
int plx_cluster_check_reachable(const plx_conf_t *conf, const plx_launcher_ops *eops,
                                const char *engine_launcher, const plx_launch_spec *spec,
                                char *warn, size_t wlen, plx_err_t *err);

/* True when host (a name or an address) resolves to loopback only. */
int plx_cluster_host_is_loopback(const char *host);

#endif
