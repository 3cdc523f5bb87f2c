/*
 * Structured log lines: "2026-11-25T19:40:00.123Z LEVEL component: message".
 *
 * One sink per process (stderr by default, or a file such as the profile's
 * log/ipcontroller.log). Writes are single write(2) calls so lines from
 * several threads never interleave. A failing sink (full disk) drops the
 * line and counts it; logging never aborts the caller.
 */
#ifndef PLX_LOG_H
#define PLX_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum plx_log_level {
    PLX_LOG_DEBUG = 0,
    PLX_LOG_INFO  = 1,
    PLX_LOG_WARN  = 2,
    PLX_LOG_ERROR = 3,
} plx_log_level;

/* Set the minimum level written. */
void plx_log_set_level(plx_log_level level);

/* Parse "debug", "info", "warn", "error"; -1 if unknown. */
int plx_log_parse_level(const char *name);

/* Send lines to fd (not closed by the logger). Default: 2 (stderr). When
 * fd is a regular file, it is rotated by size (see plx_log_set_rotation). */
void plx_log_set_fd(int fd);

/* Rotation of a file sink: past max_bytes (0: never) the file becomes
 * FILE.1, older ones FILE.2 .. FILE.keep (the oldest is dropped), and a
 * fresh FILE continues on the same descriptor. Default 10 MiB, keep 3. */
#define PLX_LOG_ROTATE_BYTES ((uint64_t)10 << 20)
#define PLX_LOG_ROTATE_KEEP  3
void plx_log_set_rotation(uint64_t max_bytes, int keep);

/* Name of the process component put on every line ("controller",
 * "engine 3", ...). Safe to change while other threads log. */
void plx_log_set_component(const char *component);

/* The last warning and error lines (at most PLX_LOG_RECENT_MAX, each cut
 * to PLX_LOG_RECENT_LEN - 1 characters), oldest first, copied into out;
 * returns how many. For status pages. */
#define PLX_LOG_RECENT_MAX 16
#define PLX_LOG_RECENT_LEN 240
size_t plx_log_recent(char (*out)[PLX_LOG_RECENT_LEN], size_t max);

/* Lines that could not be written (e.g. ENOSPC). */
uint64_t plx_log_dropped(void);

void plx_log(plx_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define PLX_DEBUG(...) plx_log(PLX_LOG_DEBUG, __VA_ARGS__)
#define PLX_INFO(...)  plx_log(PLX_LOG_INFO, __VA_ARGS__)
#define PLX_WARN(...)  plx_log(PLX_LOG_WARN, __VA_ARGS__)
#define PLX_ERROR(...) plx_log(PLX_LOG_ERROR, __VA_ARGS__)

/* Replace control characters in s with '?', in place: for names a peer
 * chose (a host name, the start of submitted code) that plexa shows in
 * tables and terminals (`ipcluster status`), where an escape sequence or
 * a line break would pass for something else. */
static inline void plx_printable(char *s)
{
    for (unsigned char *p = (unsigned char *)s; p && *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

#endif
