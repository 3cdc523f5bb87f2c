/*
 * Fixture plugins for test_plugin_loader: one source, built several times
 * with -D switches, each copy broken in exactly one way the loader must
 * catch (see CMakeLists.txt for the list).
 *
 *   FX_NAME        descriptor name (required)
 *   FX_ABI         descriptor abi (default PLX_PLUGIN_ABI)
 *   FX_KIND        descriptor kind (default PLX_PLUGIN_TRANSPORT)
 *   FX_NO_SYMBOL   export something, but not plx_plugin_descriptor
 *   FX_OPS_SIZE    ops->size (default sizeof(plx_transport_ops))
 *   FX_NULL_SENDV  leave the required sendv op NULL
 *   FX_NO_OPS      descriptor without an ops table
 *   FX_V1_TRAPS    set the members past version 1 of the table (sendv_fds,
 *                  recv_fds) to functions that abort: with FX_OPS_SIZE at
 *                  PLX_TRANSPORT_OPS_V1_SIZE, a version-1 plugin as built
 *                  today, whose size alone says those members are absent
 *   FX_HOST_SYMBOL call one of plexa's own functions (plx_buf_pool_trim),
 *                  left undefined for the host to supply: refused unread
 *   FX_DEP_SYMBOL  call fixture_dep_value from libplxfixturedep.so.1, a
 *                  library the dynamic linker cannot find at run time
 */
#include <stdio.h>
#include <stdlib.h>

#include "plexa/plugin.h"
#include "plexa/transport.h"

#ifndef FX_ABI
#define FX_ABI PLX_PLUGIN_ABI
#endif
#ifndef FX_KIND
#define FX_KIND PLX_PLUGIN_TRANSPORT
#endif
#ifndef FX_OPS_SIZE
#define FX_OPS_SIZE sizeof(plx_transport_ops)
#endif

static int fx_listen(const char *host, uint16_t port, const plx_security *sec,
                     void **listener, int *fd, uint16_t *port_out, plx_err_t *err)
{
    return plx_err_set(err, PLX_EDECLINED, "fixture");
}

static int fx_accept(void *listener, void **conn, int *fd, char *peer,
                     size_t peerlen, plx_err_t *err)
{
    return PLX_EAGAIN;
}

static int fx_connect(const char *host, uint16_t port, const plx_security *sec,
                      void **conn, int *fd, plx_err_t *err)
{
    return plx_err_set(err, PLX_EDECLINED, "fixture");
}

static int fx_handshake(void *conn, plx_err_t *err)
{
    return PLX_OK;
}

static int fx_recv(void *conn, void *buf, size_t len, size_t *n, plx_err_t *err)
{
    return PLX_ECLOSED;
}

#ifndef FX_NULL_SENDV
static int fx_sendv(void *conn, const struct iovec *iov, int iovcnt, size_t *n,
                    plx_err_t *err)
{
    return PLX_ECLOSED;
}
#endif

#ifdef FX_HOST_SYMBOL
extern void plx_buf_pool_trim(double idle_s);
#endif
#ifdef FX_DEP_SYMBOL
extern int fixture_dep_value(void);
#endif

static void fx_close(void **conn)
{
#ifdef FX_HOST_SYMBOL
    plx_buf_pool_trim(0);
#endif
#ifdef FX_DEP_SYMBOL
    if (fixture_dep_value() != 1)
        abort();
#endif
}

#ifdef FX_V1_TRAPS
static void fx_trap(void)
{
    fprintf(stderr, "fixture transport: a member past its ops table's size was used "
                    "(a caller did not test it with PLX_OPS_HAS)\n");
    abort();
}

static int fx_sendv_fds(void *conn, const struct iovec *iov, int iovcnt, const int *fds,
                        int nfds, size_t *n, plx_err_t *err)
{
    fx_trap();
    return PLX_ERR;
}

static int fx_recv_fds(void *conn, void *buf, size_t len, size_t *n, int *fds, int maxfds,
                       int *nfds, plx_err_t *err)
{
    fx_trap();
    return PLX_ERR;
}
#endif

/* unused in the FX_NO_OPS build */
__attribute__((unused)) static const plx_transport_ops fx_ops = {
    .size = FX_OPS_SIZE,
    .listen = fx_listen,
    .accept = fx_accept,
    .connect = fx_connect,
    .handshake = fx_handshake,
    .recv = fx_recv,
#ifndef FX_NULL_SENDV
    .sendv = fx_sendv,
#endif
    .close = fx_close,
#ifdef FX_V1_TRAPS
    .sendv_fds = fx_sendv_fds,
    .recv_fds = fx_recv_fds,
#endif
};

#ifdef FX_NO_SYMBOL
PLX_EXPORT const plx_transport_ops *plx_fixture_ops = &fx_ops;
#else
PLX_EXPORT const plx_plugin plx_plugin_descriptor = {
    .abi = FX_ABI,
    .kind = FX_KIND,
    .name = FX_NAME,
    .description = "test fixture",
    .version = "1",
#ifdef FX_NO_OPS
    .ops = NULL,
#else
    .ops = &fx_ops,
#endif
};
#endif
