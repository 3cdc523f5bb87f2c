/*
 * Profile directories and the small private files kept in them.
 *
 *   $PLEXA_DIR (default ~/.plexa)/
 *     profile_<name>/
 *       cluster.conf    INI, see plx_conf.h
 *       security/       0700: connection files (*.url), certificate, key
 *       log/            process logs
 *       pid/            pid files of the controller and ipcluster
 *
 * Files holding secrets are written atomically (temporary file in the same
 * directory, created O_EXCL with mode 0600, fsync'ed, renamed over the
 * target), so a reader sees either the old content or the new one, never a
 * torn file, and the secret is never readable by anyone else, not even for
 * a moment.
 */
#ifndef PLX_PROFILE_H
#define PLX_PROFILE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "plexa/error.h"

#define PLX_PROFILE_NAME_MAX 63
#define PLX_TOKEN_HEX        64   /* what plx_token_new mints: 256 bits */

typedef struct plx_profile {
    char name[64];            /* "default" when none was given */
    char dir[4096];           /* <root>/profile_<name> */
    char security_dir[4096];  /* <dir>/security */
    char log_dir[4096];       /* <dir>/log */
    char pid_dir[4096];       /* <dir>/pid */
} plx_profile_t;

/*
 * The directory holding all profiles: $PLEXA_DIR if set (made absolute
 * against the current directory, since launched processes may run
 * elsewhere), else $HOME/.plexa, else the password database's home
 * directory + "/.plexa". Returns PLX_OK, PLX_ENOTFOUND (no home at all) or
 * PLX_ELIMIT (does not fit in len).
 */
int plx_profile_root(char *out, size_t len, plx_err_t *err);

/*
 * Fill *p for profile name (NULL or "" means "default"). name must match
 * [A-Za-z0-9_.-]{1,63} and must not contain "..". With create, make the
 * root, the profile directory and its security/, log/ and pid/ (all 0700:
 * logs can hold code and tracebacks), and tighten an existing security/
 * to 0700. Without create, returns PLX_ENOTFOUND if the profile directory
 * does not exist; p's paths are filled even then, for error messages.
 * Other returns: PLX_EINVAL (bad name, or a path that exists but is not a
 * directory), PLX_ELIMIT (path too long), PLX_EIO (mkdir/stat failed).
 */
int plx_profile_open(const char *name, int create, plx_profile_t *p, plx_err_t *err);

/*
 * Path of file inside the profile's sub directory ("security", "log",
 * "pid", or NULL for the profile directory itself); file NULL gives the
 * directory. Returns PLX_OK, or PLX_EINVAL for an unknown sub or a path
 * that does not fit in len.
 */
int plx_profile_file(const plx_profile_t *p, const char *sub, const char *file, char *out,
                     size_t len);

/*
 * Atomically replace path with content, mode 0600 (see the top of this
 * file). On failure path is untouched and no temporary file is left.
 * Returns PLX_OK, PLX_EIO (naming the failed call) or PLX_EINVAL.
 */
int plx_file_write_secret(const char *path, const char *content, plx_err_t *err);

/*
 * Read the whole of a small file into out (at most len-1 bytes), NUL-
 * terminated, trailing whitespace stripped. Returns PLX_OK, PLX_ENOTFOUND
 * (missing), PLX_ELIMIT (longer than len-1), PLX_EINVAL (not a regular
 * file, or contains a NUL byte) or PLX_EIO.
 */
int plx_file_read_small(const char *path, char *out, size_t len, plx_err_t *err);

/*
 * Open a file of plexa's own (in the profile directory) for reading:
 * O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, and only a regular file.
 * A symbolic link is refused rather than followed: anything that can plant
 * one there must not choose what plexa reads. Returns the descriptor, or
 * PLX_ENOTFOUND (missing), PLX_EINVAL (a link, or not a regular file) or
 * PLX_EIO, with the path in err.
 */
int plx_file_open_ro(const char *path, plx_err_t *err);

/* plx_file_open_ro as a stdio stream ("r", close-on-exec); NULL with err set. */
FILE *plx_file_fopen_ro(const char *path, plx_err_t *err);

/*
 * Refuse a secret file that its group or other users can access (any bit
 * of mode & 077): PLX_EAUTH, with a message saying "chmod 600 PATH".
 * PLX_ENOTFOUND if missing, PLX_EIO if stat fails otherwise.
 */
int plx_file_check_private(const char *path, plx_err_t *err);

/*
 * A new capability token: 32 bytes from OpenSSL's RAND_bytes as 64
 * lowercase hex characters plus NUL. PLX_EIO if the RNG fails (it then
 * says why, from OpenSSL's error queue).
 */
int plx_token_new(char out[PLX_TOKEN_HEX + 1], plx_err_t *err);

/*
 * 1 if the tokens are equal, else 0. Takes the same time whatever the
 * content (CRYPTO_memcmp over a fixed 128-byte span), so a peer cannot
 * find a token byte by byte by timing refusals. Empty, NULL or over-long
 * (> 128 characters) tokens never match.
 */
int plx_token_equal(const char *a, const char *b);

/* Atomically write "PID START" to path (0600): the pid and the process's
 * start time, which tells it from a later process given the same pid. */
int plx_pidfile_write(const char *path, pid_t pid, plx_err_t *err);

/*
 * Read a pid file. Returns PLX_OK, PLX_ENOTFOUND (missing, or stale: the
 * process with that pid is not the one that wrote the file, or is not
 * ours, so it must not be signalled), PLX_EINVAL (not a positive decimal
 * pid) or PLX_EIO.
 */
int plx_pidfile_read(const char *path, pid_t *pid, plx_err_t *err);

/*
 * 1 if process pid exists (ours or another user's) and is not a zombie,
 * else 0. A zombie counts as dead: it has exited and only waits to be
 * reaped. Races with pid reuse are the caller's to accept.
 */
int plx_pid_alive(pid_t pid);

#endif
