/* Pre-flight checks of a cluster's configuration; see plx_cluster_check.h. */
#include "plx_cluster_check.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "plx_plugin_loader.h"

/* ---- launcher keys ------------------------------------------------------- */

typedef struct keys_walk {
    const plx_conf_t *conf;
    const char       *in_use[2];   /* controller and engine launcher */
    plx_err_t        *err;
} keys_walk_t;

static int check_section(void *ctx, const char *section)
{
    keys_walk_t *w = ctx;
    plx_err_t lerr = {0};
    char who[96];
    bool used = strcmp(section, w->in_use[0]) == 0 || strcmp(section, w->in_use[1]) == 0;

    if (strcmp(section, "cluster") == 0 || strcmp(section, "controller") == 0)
        return PLX_OK;   /* plx_conf's own schema checked them */
    const plx_launcher_ops *ops = plx_launcher_find(section, used ? w->err : &lerr);
    /* A section of a launcher not in use that does not load here may be
     * meant for another machine: only the launchers in use must load. */
    if (!ops)
        return used ? w->err->code : PLX_OK;
    snprintf(who, sizeof who, "the %s launcher", section);
    return plx_conf_check_keys(w->conf, section, plx_launcher_keys(ops), who, w->err);
}

int plx_cluster_check_launcher_keys(const plx_conf_t *conf, const char *controller_launcher,
                                    const char *engine_launcher, plx_err_t *err)
{
    keys_walk_t w = {.conf = conf, .in_use = {controller_launcher, engine_launcher}, .err = err};
    return plx_conf_foreach_section(conf, check_section, &w);
}

/* ---- listen vs location --------------------------------------------------- */

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

int plx_cluster_host_is_loopback(const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    bool any = false, all = true;

    if (!host || !*host)
        return 0;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        any = true;
        all = all && addr_is_loopback(a->ai_addr);
    }
    freeaddrinfo(res);
    return any && all;
}

typedef struct set_keys {
    bool listen, location;
} set_keys_t;

static int note_set(void *ctx, const char *key, const char *value, const char *file, int line)
{
    set_keys_t *s = ctx;
    (void)value;
    (void)file;
    (void)line;
    s->listen |= strcmp(key, "listen") == 0;
    s->location |= strcmp(key, "location") == 0;
    return 0;
}

/* Neither key set: offer this host's address on the engines' network. */
static int pick_for(plx_conf_t *conf, const char *engine_launcher, const char *host,
                    char *note, size_t nlen, int *picked, plx_err_t *err)
{
    char addr[64], ifname[64];
    plx_err_t why = {0};
    if (plx_cluster_pick_address(host, addr, sizeof addr, ifname, sizeof ifname, &why) != PLX_OK)
        return plx_err_set(err, PLX_EINVAL,
                           "the %s launcher starts engines on other hosts (%s), and this host's "
                           "address for them cannot be told (%s). Say it: ipcluster --ip ADDRESS "
                           "(or --ip 0.0.0.0 --location ADDRESS), or `listen` and `location` "
                           "under [cluster] in the profile's cluster.conf",
                           engine_launcher, host, why.msg);
    if (plx_conf_set(conf, "cluster", "listen", addr, err) != PLX_OK ||
        plx_conf_set(conf, "cluster", "location", addr, err) != PLX_OK)
        return err->code;
    *picked = 1;
    snprintf(note, nlen, "engines run on %s: the controller listens on %s%s%s%s, the address "
             "written into the connection files (--ip / --location choose another)", host, addr,
             ifname[0] ? " (interface " : "", ifname, ifname[0] ? ")" : "");
    return PLX_OK;
}

int plx_cluster_check_reachable(plx_conf_t *conf, const plx_launcher_ops *eops,
                                const char *engine_launcher, const plx_launch_spec *spec,
                                char *note, size_t nlen, int *picked, plx_err_t *err)
{
    const plx_cluster_conf_t *cc = plx_conf_cluster(conf);
    char host[256] = "";
    set_keys_t set = {false, false};

    if (nlen)
        note[0] = '\0';
    *picked = 0;
    if (!PLX_OPS_HAS(eops, plx_launcher_ops, remote_host) ||
        !plx_cluster_host_is_loopback(cc->location) || cc->engine_ssh[0])
        return PLX_OK;   /* (engines that tunnel reach loopback through the ssh server) */
    int remote = eops->remote_host(spec, host, sizeof host, err);
    if (remote <= 0)
        return remote < 0 ? plx_err_prefix(err, "engine launcher") : PLX_OK;
    plx_conf_foreach(conf, "cluster", note_set, &set);
    if (set.listen || set.location) {
        /* Chosen on purpose (a tunnel, a port forward): say it, go on. */
        snprintf(note, nlen, "the %s launcher starts engines on %s, but the controller is "
                 "reached at %s (loopback): they can only connect through a tunnel",
                 engine_launcher, host, cc->location);
        return PLX_OK;
    }
    return pick_for(conf, engine_launcher, host, note, nlen, picked, err);
}
