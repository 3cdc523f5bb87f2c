/*
 * The monotonic clock in seconds, for deadlines and idle times: one
 * definition for the modules that each kept a private copy.
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

#endif
