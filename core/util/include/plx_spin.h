/*
 * Bounded, adaptive spinning before a blocking wait.
 *
 * A blocking call's reply crosses several threads and processes; when the
 * waiting thread sleeps, the last hop must wake it, and on a virtual
 * machine a cross-CPU wake-up costs ~50 us (the loopback ping-pong is
 * 17 us on one CPU, 96 us across two). A thread that keeps its CPU for a
 * short while instead sees a fast reply almost as soon as it lands.
 *
 * Spinning adapts per thread: each wait reports how long it took
 * (plx_spin_note) and a thread spins only while its recent waits average
 * under the maximum, so a thread making a stream of short calls spins and
 * one waiting on long computations stops burning a CPU the engines need.
 * Machines with a single usable CPU never spin (the thread we wait for
 * could not run meanwhile). PLEXA_SPIN_US sets the maximum in
 * microseconds (0 turns spinning off); the default is PLX_SPIN_DEFAULT_US.
 */
#ifndef PLX_SPIN_H
#define PLX_SPIN_H

#include <stdatomic.h>

#define PLX_SPIN_DEFAULT_US 1000

/*
 * Spin while *flag is 0, for at most the maximum and at most limit_us
 * microseconds (< 0: no limit of the caller's), if this thread's recent
 * waits were short. Returns 1 when the flag was seen set, 0 otherwise
 * (the caller then blocks as usual).
 */
int plx_spin_until(const atomic_int *flag, double limit_us);

/* Report how long a whole wait took (spin and sleep), in microseconds. */
void plx_spin_note(double waited_us);

/* This thread's recent average wait, in microseconds (for tests). */
double plx_spin_recent_us(void);

/* Re-read PLEXA_SPIN_US and the CPU count and forget this thread's waits
 * (for tests; the first call to plx_spin_until reads them implicitly). */
void plx_spin_reset(void);

/* Monotonic time in microseconds, for timing waits. */
double plx_spin_now_us(void);

#endif
