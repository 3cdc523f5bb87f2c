/*
 * plexa error codes and the error record that carries a message with them.
 *
 * Every fallible plexa function returns PLX_OK (0) or a negative PLX_E*
 * code, and fills a caller-provided plx_err_t with a message that names
 * what failed (the call, the file, the peer) so the caller can show it.
 * This header is usable by plugins: it has no link-time dependencies.
 */
#ifndef PLEXA_ERROR_H
#define PLEXA_ERROR_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    PLX_OK          = 0,
    PLX_ERR         = -1,   /* unspecified failure */
    PLX_EAGAIN      = -2,   /* non-blocking operation would block */
    PLX_ENOMEM      = -3,   /* out of memory */
    PLX_EIO         = -4,   /* system call failed */
    PLX_EPROTO      = -5,   /* malformed frame or message */
    PLX_EABI        = -6,   /* plugin built against another ABI */
    PLX_EDECLINED   = -7,   /* plugin declines this environment */
    PLX_ELIMIT      = -8,   /* a configured limit was exceeded */
    PLX_EINVAL      = -9,   /* bad argument or configuration value */
    PLX_ECLOSED     = -10,  /* peer closed the connection */
    PLX_ENOTFOUND   = -11,  /* file, plugin or key not found */
    PLX_EAUTH       = -12,  /* capability refused */
    PLX_ETIMEDOUT   = -13,  /* deadline passed */
    PLX_EREMOTE     = -14,  /* remote code raised an exception */
    PLX_ENOENGINES  = -15,  /* no engines registered */
    PLX_EBADENGINE  = -16,  /* invalid engine id */
    PLX_EENGINE     = -17,  /* engine died while serving the request */
    PLX_EEVICTED    = -18,  /* result was evicted from the store */
    PLX_ECONNECT    = -19,  /* could not reach the controller */
    PLX_EABORTED    = -20,  /* request was aborted */
};

#define PLX_ERR_MSG_MAX 512

/* A code plus a human-readable message. Zero-initialise before use. */
typedef struct plx_err {
    int  code;
    char msg[PLX_ERR_MSG_MAX];
} plx_err_t;

/* Short name of an error code ("EPROTO", ...). Never NULL. */
static inline const char *plx_strerror(int code)
{
    switch (code) {
    case PLX_OK:         return "OK";
    case PLX_ERR:        return "error";
    case PLX_EAGAIN:     return "would block";
    case PLX_ENOMEM:     return "out of memory";
    case PLX_EIO:        return "I/O error";
    case PLX_EPROTO:     return "protocol error";
    case PLX_EABI:       return "plugin ABI mismatch";
    case PLX_EDECLINED:  return "declined";
    case PLX_ELIMIT:     return "limit exceeded";
    case PLX_EINVAL:     return "invalid argument";
    case PLX_ECLOSED:    return "connection closed";
    case PLX_ENOTFOUND:  return "not found";
    case PLX_EAUTH:      return "capability refused";
    case PLX_ETIMEDOUT:  return "timed out";
    case PLX_EREMOTE:    return "remote exception";
    case PLX_ENOENGINES: return "no engines registered";
    case PLX_EBADENGINE: return "invalid engine id";
    case PLX_EENGINE:    return "engine died";
    case PLX_EEVICTED:   return "result evicted";
    case PLX_ECONNECT:   return "cannot connect";
    case PLX_EABORTED:   return "aborted";
    default:             return "unknown error";
    }
}

/*
 * Record code and a printf-style message in err (which may be NULL) and
 * return code, so callers can write `return plx_err_set(err, PLX_EIO, ...)`.
 */
static inline int plx_err_set(plx_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int plx_err_set(plx_err_t *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Prefix an existing message with context ("loading tcp: <old msg>"),
 * truncating the old message if needed. Returns err->code. */
static inline int plx_err_prefix(plx_err_t *err, const char *prefix)
{
    if (!err)
        return PLX_ERR;
    size_t cap = sizeof err->msg;
    size_t pl = strlen(prefix), ml = strlen(err->msg);
    if (pl > cap - 3)
        pl = cap - 3;
    if (pl + 2 + ml > cap - 1)
        ml = cap - 1 - pl - 2;
    memmove(err->msg + pl + 2, err->msg, ml);
    memcpy(err->msg, prefix, pl);
    err->msg[pl] = ':';
    err->msg[pl + 1] = ' ';
    err->msg[pl + 2 + ml] = '\0';
    return err->code;
}

#ifdef __cplusplus
}
#endif
#endif
