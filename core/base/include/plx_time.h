/*
 * Clocks in seconds: the monotonic one for deadlines and idle times, the
 * wall clock for times the user sees (a task's submitted/started/completed).
 * One definition for the modules that each kept a private copy, core's and
 * the plugins' alike: it lives in core/base, the libc-only directory that
 * plugins/common's libraries pass on to the plugins (see
 * core/base/CMakeLists.txt); being inline, it adds no symbol anywhere.
 */
#ifndef PLX_TIME_H
#define PLX_TIME_H

#include <time.h>

static inline double plx_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Unix time, for timestamps that travel (engines and clients compare them). */
static inline double plx_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The CLOCK_MONOTONIC time s seconds from now (s >= 0), for
 * pthread_cond_timedwait on a condition variable set to that clock. */
static inline struct timespec plx_deadline_after(double s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    time_t whole = (time_t)s;
    ts.tv_sec += whole;
    ts.tv_nsec += (long)((s - (double)whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

#endif
