/* Addresses; see plx_addr.h. */
#include "plx_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "plexa/error.h"

int plx_addr_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (!host || !*host || strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int plx_sock_local_host(int fd, char *host, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return PLX_ENOTFOUND;
    const void *a = NULL;
    if (ss.ss_family == AF_INET)
        a = &((const struct sockaddr_in *)&ss)->sin_addr;
    else if (ss.ss_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
    return a && inet_ntop(ss.ss_family, a, host, (socklen_t)len) ? PLX_OK : PLX_ENOTFOUND;
}
