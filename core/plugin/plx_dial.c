/* Dialling the controller; see plx_dial.h. */
#include "plx_dial.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plx_log.h"
#include "plx_plugin_loader.h"

int plx_dial_shm_allowed(void)
{
    const char *v = getenv("PLEXA_SHM");
    return !v || !(strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0 ||
                   strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0);
}

/* The shm listener, if it is ours and answers: 1 dialled, 0 not. */
static int dial_shm(const char *name, plx_dialed_t *out)
{
    plx_err_t err = {0};
    const plx_transport_ops *ops = plx_transport_find("shm", &err);
    if (!ops) {
        PLX_DEBUG("not using shared memory: %s", err.msg);
        return 0;
    }
    void *handle = NULL;
    int fd = -1;
    if (ops->connect(name, 0, NULL, &handle, &fd, &err) != PLX_OK) {
        if (handle)
            ops->close(&handle);
        /* Expected from any other host: say why only when asked. */
        if (err.code == PLX_EAUTH)
            PLX_WARN("%s; using the controller's network address instead", err.msg);
        else
            PLX_DEBUG("not using shared memory: %s", err.msg);
        return 0;
    }
    *out = (plx_dialed_t){.ops = ops, .handle = handle, .fd = fd, .shm = 1};
    return 1;
}

int plx_dial(const char *transport, const char *host, uint16_t port, const plx_security *sec,
             const char *shm_name, plx_dialed_t *out, plx_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (shm_name && *shm_name && plx_dial_shm_allowed() && dial_shm(shm_name, out))
        return PLX_OK;
    const plx_transport_ops *ops = plx_transport_find(transport, err);
    if (!ops)
        return err->code;
    void *handle = NULL;
    int fd = -1;
    int rc = ops->connect(host, port, sec, &handle, &fd, err);
    if (rc != PLX_OK) {
        if (handle)
            ops->close(&handle);
        return rc;
    }
    *out = (plx_dialed_t){.ops = ops, .handle = handle, .fd = fd, .shm = 0};
    return PLX_OK;
}
