/* Process-wide logger; see plx_log.h. */
#include "plx_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = PLX_LOG_INFO;
static atomic_int log_fd = 2;
static atomic_uint_fast64_t log_dropped;
/* Two buffers and an atomic index: the component may change (an engine
 * learns its id) while another thread formats a line. */
static char log_components[2][32] = {"plexa", "plexa"};
static atomic_int log_comp_idx;

/* Rotation of a log file: when the sink is a regular file, its path is
 * known (from /proc/self/fd), and past rot_max bytes it becomes PATH.1
 * (PATH.1 becomes PATH.2, ... up to rot_keep), and a fresh file takes the
 * same descriptor number (dup2), so writers never see a closed fd. */
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static char sink_path[4096];   /* "" when the sink is not a regular file */
static uint64_t sink_size;
static uint64_t rot_max = PLX_LOG_ROTATE_BYTES;
static int rot_keep = PLX_LOG_ROTATE_KEEP;

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
void plx_log_set_fd(int fd)
{
    struct stat st;
    char link[64];
    pthread_mutex_lock(&sink_mu);
    log_fd = fd;
    sink_path[0] = '\0';
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        ssize_t n = readlink(link, sink_path, sizeof sink_path - 1);
        sink_path[n > 0 ? n : 0] = '\0';
        if (n > 0 && strstr(sink_path, " (deleted)"))
            sink_path[0] = '\0';
        sink_size = (uint64_t)st.st_size;
    }
    pthread_mutex_unlock(&sink_mu);
}

void plx_log_set_rotation(uint64_t max_bytes, int keep)
{
    pthread_mutex_lock(&sink_mu);
    rot_max = max_bytes;
    rot_keep = keep < 1 ? 1 : keep;
    pthread_mutex_unlock(&sink_mu);
}

/* Under sink_mu. Failures leave the current file in use (and growing). */
static void rotate(void)
{
    char from[4200], to[4200];
    for (int i = rot_keep - 1; i >= 1; i--) {
        snprintf(from, sizeof from, "%s.%d", sink_path, i);
        snprintf(to, sizeof to, "%s.%d", sink_path, i + 1);
        (void)rename(from, to);   /* missing generations are fine */
    }
    snprintf(to, sizeof to, "%s.1", sink_path);
    if (rename(sink_path, to) != 0)
        return;
    int fd = open(sink_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, log_fd);
        close(fd);
    }
    sink_size = 0;
}

static void emit(const char *line, size_t len)
{
    if (!sink_path[0]) {
        if (write(log_fd, line, len) != (ssize_t)len)
            log_dropped++;
        return;
    }
    pthread_mutex_lock(&sink_mu);
    if (write(log_fd, line, len) != (ssize_t)len)
        log_dropped++;
    else
        sink_size += len;
    if (rot_max && sink_size > rot_max)
        rotate();
    pthread_mutex_unlock(&sink_mu);
}
uint64_t plx_log_dropped(void) { return log_dropped; }

void plx_log_set_component(const char *component)
{
    int next = !atomic_load(&log_comp_idx);
    snprintf(log_components[next], sizeof log_components[next], "%s", component);
    atomic_store(&log_comp_idx, next);
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

/* Copy msg into out[0..cap) so that it cannot pass for other log lines or
 * drive a terminal: control characters become \xNN, and a line break
 * starts an indented continuation (a forged line never starts with a
 * time stamp). Tabs stay. Returns the length. */
static size_t escape_message(const char *msg, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && o + 6 < cap; p++) {
        if (*p == '\n') {
            memcpy(out + o, "\n    ", 5);
            o += 5;
        } else if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    return o;
}

void plx_log(plx_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if ((int)level < log_level)
        return;
    char line[2048], msg[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s[%d]: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), tags[level], log_components[atomic_load(&log_comp_idx)],
                     (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
        msg[0] = '\0';
    va_end(ap);
    size_t len = (size_t)n + escape_message(msg, line + n, sizeof line - (size_t)n - 1);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    if (level >= PLX_LOG_WARN)
        remember(line, len);
    line[len++] = '\n';
    emit(line, len);
}
