/* Loopback or not; see plx_hostaddr.h. */
#include "plx_hostaddr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

bool plx_host_is_loopback(const char *host)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    bool any = false, all = true;

    if (host == NULL || *host == '\0' || getaddrinfo(host, NULL, &hints, &res) != 0)
        return false;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        any = true;
        all = all && addr_is_loopback(a->ai_addr);
    }
    freeaddrinfo(res);
    return any && all;
}
