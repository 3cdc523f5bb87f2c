/*
 * Giving exported buffers back, off the I/O thread.
 *
 * A pushed array travels zero-copy: core/pyvalue exports its memory
 * (PyObject_GetBuffer) into a plx_buf_t, and the export must be given back
 * (PyBuffer_Release, which needs the GIL) when the last reference to that
 * buffer goes. That is usually libplexa's I/O thread, right after writev
 * finished with the frame. Taking the GIL there would stall every
 * connection of the client for as long as some Python thread holds it
 * (seconds, in a long C call), so the I/O thread only queues the export:
 *
 *   - a lock-free stack (push with compare-and-swap, pop all at once with
 *     exchange: no ABA hazard, no lock the I/O thread could block on);
 *   - a pending call (Py_AddPendingCall: documented safe without the GIL
 *     from any thread) asks the interpreter's main thread to drain it at
 *     its next bytecode boundary; at most one is scheduled at a time;
 *   - every entry into _native that holds the GIL also drains (submits,
 *     the wait loop every 0.1 s, close), so a main thread that sits in a
 *     blocking call without running bytecode still sees its buffers go.
 *
 * A queued export only delays PyBuffer_Release: the memory is the user's
 * object's, alive anyway while the user holds it.
 */
#include "_native_int.h"

#include <stdatomic.h>

static _Atomic(plx_pyexport_t *) g_queued;     /* exports waiting for the GIL */
static atomic_int                g_scheduled;  /* a pending call will drain */
static atomic_int                g_finalizing; /* no more pending calls */

void nv_release_drain(void)
{
    plx_pyexport_t *x = atomic_exchange(&g_queued, NULL);
    while (x) {
        plx_pyexport_t *next = *plx_pyexport_next(x);
        plx_pyexport_release(x);
        x = next;
    }
}

/* Runs on the main thread with the GIL, from the eval loop. */
static int drain_pending(void *unused)
{
    /* Cleared first: an export queued from now on schedules a new call. */
    atomic_store(&g_scheduled, 0);
    nv_release_drain();
    return 0;
}

/* core/pyvalue's hook; any thread, GIL held or not. Never blocks. */
static int defer_release(plx_pyexport_t *x, void *unused)
{
    plx_pyexport_t *head = atomic_load(&g_queued);
    do {
        *plx_pyexport_next(x) = head;
    } while (!atomic_compare_exchange_weak(&g_queued, &head, x));
    if (atomic_exchange(&g_scheduled, 1) == 0) {
        /* Refused (queue of pending calls full) or finalizing: the next
         * drain from a _native entry point takes it. */
        if (atomic_load(&g_finalizing) || Py_AddPendingCall(drain_pending, NULL) != 0)
            atomic_store(&g_scheduled, 0);
    }
    return 0;
}

void nv_release_init(void)
{
    plx_pyvalue_set_release_defer(defer_release, NULL);
}

void nv_release_finalizing(void)
{
    atomic_store(&g_finalizing, 1);
}
