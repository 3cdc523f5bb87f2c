/* Adaptive spinning before a blocking wait; see plx_spin.h. */
#include "plx_spin.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "plx_time.h"

/* One long wait must not stop spinning for many short calls after it:
 * waits count at most CAP_FACTOR x the maximum, with weight 1/4, so two
 * or three short waits bring the average back under the maximum. */
#define CAP_FACTOR 4.0
#define WEIGHT     0.25

static pthread_once_t once = PTHREAD_ONCE_INIT;
static double max_us;                       /* process-wide maximum */
static _Thread_local double recent_us;      /* average of this thread's waits */

static void read_config(void)
{
    const char *s = getenv("PLEXA_SPIN_US");
    char *end = NULL;
    double v = s && *s ? strtod(s, &end) : PLX_SPIN_DEFAULT_US;
    if (s && *s && (end == s || *end || v < 0))
        v = PLX_SPIN_DEFAULT_US;   /* a malformed value keeps the default */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < 2)
        v = 0;
    max_us = v;
}

void plx_spin_reset(void)
{
    pthread_once(&once, read_config);
    read_config();
    recent_us = 0;
}

double plx_spin_recent_us(void) { return recent_us; }

double plx_spin_now_us(void) { return plx_now_s() * 1e6; }

void plx_spin_note(double waited_us)
{
    pthread_once(&once, read_config);
    double cap = CAP_FACTOR * max_us;
    double w = waited_us < cap ? waited_us : cap;
    recent_us += WEIGHT * (w - recent_us);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

int plx_spin_until(const atomic_int *flag, double limit_us)
{
    pthread_once(&once, read_config);
    if (atomic_load_explicit(flag, memory_order_acquire))
        return 1;
    if (max_us <= 0 || recent_us > max_us)
        return 0;
    double spin = limit_us >= 0 && limit_us < max_us ? limit_us : max_us;
    double end = plx_spin_now_us() + spin;
    for (unsigned i = 1;; i++) {
        cpu_relax();
        if (atomic_load_explicit(flag, memory_order_acquire))
            return 1;
        if ((i & 63) == 0 && plx_spin_now_us() > end)
            return 0;
    }
}
