/* Process-wide logger; see plx_log.h. */
#include "plx_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = PLX_LOG_INFO;
static atomic_int log_fd = 2;
static atomic_uint_fast64_t log_dropped;
static char log_component[32] = "plexa";

/* The last warnings and errors, for status pages: a ring under a mutex
 * (lines come from several threads; warnings are rare, so it is cheap). */
static pthread_mutex_t recent_mu = PTHREAD_MUTEX_INITIALIZER;
static char recent[PLX_LOG_RECENT_MAX][PLX_LOG_RECENT_LEN];
static unsigned recent_n;   /* ever recorded */

static void remember(const char *line, size_t len)
{
    pthread_mutex_lock(&recent_mu);
    char *slot = recent[recent_n++ % PLX_LOG_RECENT_MAX];
    if (len >= PLX_LOG_RECENT_LEN)
        len = PLX_LOG_RECENT_LEN - 1;
    memcpy(slot, line, len);
    slot[len] = '\0';
    pthread_mutex_unlock(&recent_mu);
}

size_t plx_log_recent(char (*out)[PLX_LOG_RECENT_LEN], size_t max)
{
    pthread_mutex_lock(&recent_mu);
    size_t have = recent_n < PLX_LOG_RECENT_MAX ? recent_n : PLX_LOG_RECENT_MAX;
    size_t n = have < max ? have : max;
    for (size_t i = 0; i < n; i++)   /* oldest first */
        memcpy(out[i], recent[(recent_n - n + i) % PLX_LOG_RECENT_MAX], PLX_LOG_RECENT_LEN);
    pthread_mutex_unlock(&recent_mu);
    return n;
}

void plx_log_set_level(plx_log_level level) { log_level = level; }
void plx_log_set_fd(int fd) { log_fd = fd; }
uint64_t plx_log_dropped(void) { return log_dropped; }

void plx_log_set_component(const char *component)
{
    snprintf(log_component, sizeof log_component, "%s", component);
}

int plx_log_parse_level(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return PLX_LOG_WARN;
    return -1;
}

void plx_log(plx_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if ((int)level < log_level)
        return;
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s[%d]: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), tags[level], log_component,
                     (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    if (level >= PLX_LOG_WARN)
        remember(line, len);
    line[len++] = '\n';
    if (write(log_fd, line, len) != (ssize_t)len)
        log_dropped++;
}
