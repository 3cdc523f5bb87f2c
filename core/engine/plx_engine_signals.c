/*
 * Signals and fork in the engine process. SIGINT/SIGTERM: the first asks
 * the I/O thread's loop for a clean stop (and interrupts running code),
 * the second ends the process at once. PLX_ENGINE_WAKE_SIGNAL: breaks a
 * blocking system call of the Python thread when running code is
 * interrupted (plx_engine_interrupt.c). A child forked by user code is
 * not the engine: it gets the handlers that were there before us and
 * does not keep the controller connection open. See plx_engine_int.h for
 * the threads.
 */
#include "plx_engine_int.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "plx_log.h"

/* ---- signals and fork ----------------------------------------------------- */

/* The handlers need the engine; there is one per process. */
static plx_engine_t *volatile g_sig_engine;
static volatile sig_atomic_t g_sig_num;
atomic_int plx_engine_conn_fd = -1;       /* for closing it in forked children */
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

/* Put back what was there before us (CPython's SIGINT handler, the default
 * SIGTERM action). Async-signal-safe. */
static void restore_handlers(const plx_engine_t *e)
{
    sigaction(SIGINT, &e->old_int, NULL);
    sigaction(SIGTERM, &e->old_term, NULL);
    sigaction(PLX_ENGINE_WAKE_SIGNAL, &e->old_wake, NULL);
}

/* A child forked by user code (multiprocessing, os.fork) is not the
 * engine: its signals must not stop the engine through the inherited
 * eventfd of our loop, and it must not keep the controller connection
 * open after the engine is gone. */
static void atfork_child(void)
{
    plx_engine_t *e = g_sig_engine;
    g_sig_engine = NULL;
    if (e)
        restore_handlers(e);
    int fd = atomic_exchange(&plx_engine_conn_fd, -1);
    if (fd >= 0)
        close(fd);
}

static void atfork_register(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

static void on_signal(int sig)
{
    int saved = errno;
    plx_engine_t *e = g_sig_engine;
    if (!e || e->pid != getpid()) {
        /* Not the engine (a child that bypassed pthread_atfork): act as if
         * we were never installed. The signal is blocked while we run, so
         * the re-raised one reaches the restored handler on return. */
        if (e)
            restore_handlers(e);
        raise(sig);
        errno = saved;
        return;
    }
    /* First signal: ask for a clean stop, and let the next one end the
     * process at once (a hung C call must not make it unkillable). */
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    g_sig_num = sig;
    ev_async_send(e->loop, &e->sig);   /* async-signal-safe (libev docs) */
    errno = saved;
}

/* PLX_ENGINE_WAKE_SIGNAL, on the Python thread: being delivered (without
 * SA_RESTART) interrupts its system call; PyErr_SetInterrupt (async-signal
 * safe) makes the eval loop look, see plx_engine_interrupt_if_busy_locked. */
static void on_wake_signal(int sig)
{
    int saved = errno;
    plx_engine_t *e = g_sig_engine;
    if (e && atomic_load(&e->interrupt_wanted))
        PyErr_SetInterrupt();
    errno = saved;
}

void plx_engine_sig_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    plx_engine_t *e = w->data;
    int sig = g_sig_num;
    PLX_INFO("received %s; stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&e->mu);
    e->stop_signal = sig;
    plx_engine_interrupt_if_busy_locked(e);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void plx_engine_signals_install(plx_engine_t *e)
{
    pthread_once(&g_atfork_once, atfork_register);
    e->pid = getpid();
    /* Replaces CPython's C-level SIGINT handler but not its Python-level
     * one (default_int_handler), so PyErr_SetInterrupt still raises
     * KeyboardInterrupt in running code. */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    g_sig_engine = e;
    sigaction(SIGINT, &sa, &e->old_int);
    sigaction(SIGTERM, &sa, &e->old_term);
    struct sigaction wake = { .sa_handler = on_wake_signal };
    sigemptyset(&wake.sa_mask);
    sigaction(PLX_ENGINE_WAKE_SIGNAL, &wake, &e->old_wake);
    e->handlers_set = 1;
}

void plx_engine_signals_restore(plx_engine_t *e)
{
    if (!e->handlers_set)
        return;
    g_sig_engine = NULL;
    restore_handlers(e);
    e->handlers_set = 0;
}
