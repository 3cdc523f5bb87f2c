/* Accepting connections; see plx_listener.h. */
#include "plx_listener.h"

#include <stdlib.h>

#include "plx_log.h"

#define ACCEPTS_PER_TURN 64
/* After EMFILE/ENFILE (any accept error but a refused peer), stop
 * accepting for a moment instead of spinning. */
#define ACCEPT_BACKOFF_S 0.1

struct plx_listener {
    struct ev_loop          *loop;
    const plx_transport_ops *ops;
    void                    *handle;
    ev_io                    io;
    ev_timer                 backoff;
    uint16_t                 port;
    plx_accept_fn            on_accept;
    void                    *ud;
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    plx_listener_t *l = container_of(w, plx_listener_t, io);
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        void *h = NULL;
        int fd = -1;
        char peer[64] = "";
        plx_err_t err = {0};
        int rc = l->ops->accept(l->handle, &h, &fd, peer, sizeof peer, &err);
        if (rc == PLX_EAGAIN)
            return;
        if (rc == PLX_EAUTH) {
            /* The transport refused that peer (transport-shm: another
             * uid) and closed it; the listener is fine, so the next
             * pending connection is served at once, without the pause. */
            PLX_WARN("accept: %s", err.msg);
            continue;
        }
        if (rc != PLX_OK) {
            PLX_WARN("accept: %s; pausing accepts for %.1fs", err.msg, ACCEPT_BACKOFF_S);
            ev_io_stop(loop, &l->io);
            ev_timer_set(&l->backoff, ACCEPT_BACKOFF_S, 0.);
            ev_timer_start(loop, &l->backoff);
            return;
        }
        l->on_accept(l, h, fd, peer, l->ud);
    }
}

static void backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    plx_listener_t *l = container_of(w, plx_listener_t, backoff);
    ev_io_start(loop, &l->io);
}

plx_listener_t *plx_listener_new(struct ev_loop *loop, const plx_transport_ops *ops,
                                 const char *host, uint16_t port, const plx_security *sec,
                                 plx_accept_fn on_accept, void *ud, plx_err_t *err)
{
    plx_listener_t *l = calloc(1, sizeof *l);
    if (!l) {
        plx_err_set(err, PLX_ENOMEM, "out of memory");
        return NULL;
    }
    int fd = -1;
    if (ops->listen(host, port, sec, &l->handle, &fd, &l->port, err) != PLX_OK) {
        if (l->handle && ops->close_listener)
            ops->close_listener(&l->handle);
        free(l);
        return NULL;
    }
    l->loop = loop;
    l->ops = ops;
    l->on_accept = on_accept;
    l->ud = ud;
    ev_io_init(&l->io, accept_cb, fd, EV_READ);
    ev_init(&l->backoff, backoff_cb);
    ev_io_start(loop, &l->io);
    return l;
}

uint16_t plx_listener_port(const plx_listener_t *l) { return l->port; }
const plx_transport_ops *plx_listener_ops(const plx_listener_t *l) { return l->ops; }

void plx_listener_destroy(plx_listener_t **lp)
{
    plx_listener_t *l = *lp;
    if (!l)
        return;
    *lp = NULL;
    ev_io_stop(l->loop, &l->io);
    ev_timer_stop(l->loop, &l->backoff);
    if (l->ops->close_listener)
        l->ops->close_listener(&l->handle);
    free(l);
}
