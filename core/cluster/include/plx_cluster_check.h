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
 * Listen vs location: when the engine launcher says it would start engines
 * on another host (its remote_host op) while the connection files would
 * name a loopback address, engines could never reach the controller.
 *   - Neither [cluster] listen nor location set (in cluster.conf or with
 *     --ip / --location): this host's address on the network that reaches
 *     the engines is picked (plx_cluster_pick_address) and set as both in
 *     conf; note says which, for the user (*picked = 1).
 *   - One set to loopback on purpose (an ssh tunnel, say): only a warning,
 *     in note (*picked = 0).
 *   - No address can be picked: PLX_EINVAL naming the flags and keys.
 * note is empty when there is nothing to say.
 */
int plx_cluster_check_reachable(plx_conf_t *conf, const plx_launcher_ops *eops,
                                const char *engine_launcher, const plx_launch_spec *spec,
                                char *note, size_t nlen, int *picked, plx_err_t *err);

/*
 * The address of this host that reaches host (a name or address: the
 * route's source address), or, when host is a description rather than a
 * name ("the batch system's compute nodes"), the address of the default
 * route's interface. The interface's name goes to ifname ("" if unknown).
 * PLX_OK, or PLX_ENOTFOUND with err saying why none could be picked.
 */
int plx_cluster_pick_address(const char *host, char *addr, size_t alen, char *ifname,
                             size_t iflen, plx_err_t *err);

/* True when host (a name or an address) resolves to loopback only. */
int plx_cluster_host_is_loopback(const char *host);

#endif
