/*
 * Which address of this host the controller offers to engines on other
 * hosts, when the profile leaves it to ipcluster (plx_cluster_check.h).
 *
 * For a named host (ssh, mpiexec): the source address the kernel would use
 * to reach it, read from a UDP socket connected to it (connecting a UDP
 * socket only looks up the route: nothing is sent). For a batch system,
 * whose nodes are not known before the jobs run: the address of the
 * interface that carries the default route. The interface's name comes
 * from getifaddrs, to say which one was picked.
 */
#include "plx_cluster_check.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The local source address for reaching host (IPv4 first). 0 or -1. */
static int source_addr_for(const char *host, char *addr, size_t len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
    if (getaddrinfo(host, "9", &hints, &res) != 0)
        return -1;
    int rc = -1;
    for (int fam = 0; fam < 2 && rc != 0; fam++) {
        for (struct addrinfo *a = res; a && rc != 0; a = a->ai_next) {
            if (a->ai_family != (fam == 0 ? AF_INET : AF_INET6))
                continue;
            int fd = socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
                getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
                getnameinfo((struct sockaddr *)&ss, sl, addr, (socklen_t)len, NULL, 0,
                            NI_NUMERICHOST) == 0)
                rc = 0;
            if (fd >= 0)
                close(fd);
        }
    }
    freeaddrinfo(res);
    return rc;
}

/* The name of the interface holding addr, or "" when none does. */
static void iface_of(const char *addr, char *ifname, size_t len)
{
    struct ifaddrs *ifs = NULL;
    snprintf(ifname, len, "%s", "");
    if (getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        char a[INET6_ADDRSTRLEN];
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET &&
                             i->ifa_addr->sa_family != AF_INET6))
            continue;
        socklen_t sl = i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                        : sizeof(struct sockaddr_in6);
        if (getnameinfo(i->ifa_addr, sl, a, sizeof a, NULL, 0, NI_NUMERICHOST) == 0 &&
            strcmp(a, addr) == 0) {
            snprintf(ifname, len, "%s", i->ifa_name);
            break;
        }
    }
    freeifaddrs(ifs);
}

/* The default route's interface, from /proc/net/route. 0 or -1. */
static int default_route_iface(char *ifname, size_t len)
{
    FILE *f = fopen("/proc/net/route", "re");
    char line[256], name[64];
    unsigned long dest, mask;
    int rc = -1;
    if (!f)
        return -1;
    while (rc != 0 && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s %lx %*x %*x %*d %*d %*d %lx", name, &dest, &mask) == 3 &&
            dest == 0 && mask == 0) {
            snprintf(ifname, len, "%s", name);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* The first IPv4 address of interface ifname. 0 or -1. */
static int iface_addr(const char *ifname, char *addr, size_t len)
{
    struct ifaddrs *ifs = NULL;
    int rc = -1;
    if (getifaddrs(&ifs) != 0)
        return -1;
    for (struct ifaddrs *i = ifs; i && rc != 0; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && strcmp(i->ifa_name, ifname) == 0 &&
            getnameinfo(i->ifa_addr, sizeof(struct sockaddr_in), addr, (socklen_t)len, NULL, 0,
                        NI_NUMERICHOST) == 0)
            rc = 0;
    freeifaddrs(ifs);
    return rc;
}

int plx_cluster_pick_address(const char *host, char *addr, size_t alen, char *ifname,
                             size_t iflen, plx_err_t *err)
{
    /* A launcher that cannot name a host describes its nodes in words. */
    int named = host && *host && !strchr(host, ' ');
    if (named) {
        if (source_addr_for(host, addr, alen) != 0)
            return plx_err_set(err, PLX_ENOTFOUND, "no route from this host to %s", host);
        iface_of(addr, ifname, iflen);
    } else if (default_route_iface(ifname, iflen) != 0 || iface_addr(ifname, addr, alen) != 0) {
        return plx_err_set(err, PLX_ENOTFOUND, "this host has no default route with an IPv4 "
                           "address to offer %s", host && *host ? host : "remote engines");
    }
    if (plx_cluster_host_is_loopback(addr))
        return plx_err_set(err, PLX_ENOTFOUND, "the route to %s leaves from a loopback "
                           "address (%s)", named ? host : "the default route", addr);
    return PLX_OK;
}
