/*
 * plx_hostaddr: does a host name stay on this machine? Launchers answer
 * the remote_host op with it (launcher.h). Compiled into each plugin that
 * uses it (plugins/common), never exported.
 */
#ifndef PLX_HOSTADDR_H
#define PLX_HOSTADDR_H

#include <stdbool.h>

/* True when host resolves, and only to loopback addresses (127.0.0.0/8,
 * ::1, ::ffff:127.x). An unresolvable name is not loopback. */
bool plx_host_is_loopback(const char *host);

#endif
