/*
 * plx_tunnel: a TCP port forwarded through the system's OpenSSH, for
 * clients (and engines) that reach the controller only through an ssh
 * server such as a cluster's login node (ipyparallel's sshserver).
 *
 * `ssh -N -L 127.0.0.1:LPORT:HOST:PORT SERVER` runs as a child process
 * with the user's own ssh configuration and agent (so a ControlMaster the
 * user configured is reused), in BatchMode: a password or host-key prompt
 * fails at once with ssh's own words instead of hanging. What crosses the
 * tunnel is the transport's own stream: TLS, its pinning and the tokens
 * stay end to end, and ssh carries only ciphertext.
 *
 * The command is $PLEXA_SSH (words split at spaces, e.g. "ssh -F cfg"),
 * else "ssh". ssh ends with plx_tunnel_close and with the process that
 * opened the tunnel (a keeper process watches it).
 */
#ifndef PLX_TUNNEL_H
#define PLX_TUNNEL_H

#include <stdint.h>

#include "plexa/error.h"

typedef struct plx_tunnel plx_tunnel_t;

/*
 * Forward a free port of 127.0.0.1 to host:port as seen from server
 * ([user@]name[:port], as ssh takes it), with the private key sshkey
 * (NULL: ssh's defaults). Returns once the local port listens: PLX_OK
 * with *t (the caller closes it) and *lport; or, within timeout_s,
 * PLX_ECONNECT with err quoting ssh's error output (authentication,
 * host key, refused forwarding), PLX_ETIMEDOUT, PLX_EINVAL (a server
 * name ssh would take for an option), PLX_EIO.
 */
int plx_tunnel_open(const char *server, const char *sshkey, const char *host, uint16_t port,
                    double timeout_s, plx_tunnel_t **t, uint16_t *lport, plx_err_t *err);

/* 1 while the ssh process runs. */
int plx_tunnel_alive(plx_tunnel_t *t);

/* Stop ssh and free t. NULL-safe; NULLs *t. */
void plx_tunnel_close(plx_tunnel_t **t);

#endif
