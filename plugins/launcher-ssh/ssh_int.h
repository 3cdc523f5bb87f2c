/*
 * launcher-ssh internals: settings from the [ssh] section, the host plan,
 * and the remote shell script each ssh runs.
 */
#ifndef PLX_SSH_INT_H
#define PLX_SSH_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "plexa/launcher.h"

#define SSH_WORDS_MAX 64     /* words in `ssh` + `ssh_options` */
#define SSH_HOSTS_MAX 1024   /* entries in `hosts` */
#define SSH_HOST_LEN  256

/* A list of words split from a setting, shell-like ('...', "...", \x). */
typedef struct ssh_words {
    char  *buf;                    /* owns the characters */
    char  *w[SSH_WORDS_MAX + 1];   /* NULL-terminated */
    int    n;
} ssh_words_t;

typedef struct ssh_host {
    char name[SSH_HOST_LEN];
    int  slots;                    /* engines it takes; 0 = no limit */
} ssh_host_t;

typedef struct ssh_conf {
    ssh_words_t ssh;               /* `ssh` then `ssh_options` */
    ssh_host_t *hosts;
    int         nhosts;
    ssh_words_t remote_env;        /* KEY=VALUE words */
    const char *remote_cwd;        /* NULL: the local cwd if it exists there, else $HOME */
    const char *command;           /* remote program replacing argv[0], or NULL */
    const char *controller_host;   /* role controller: where; NULL = first host */
    char       *sshx;              /* text of the sshx script (malloc'ed), or NULL */
    bool        copy_env;          /* send the local environment too */
} ssh_conf_t;

#define SSH_SSHX_MAX (64 * 1024)   /* sshx scripts: all of stdin fits a socket buffer */

/* Split text into words (quotes and backslashes as in sh, no expansion),
 * appending to w. PLX_EINVAL naming what when unbalanced or too many. */
int ssh_words_split(ssh_words_t *w, const char *text, const char *what, plx_err_t *err);
void ssh_words_free(ssh_words_t *w);

/* Read the [ssh] section of spec (see ssh.c's key table). */
int ssh_conf_read(const plx_launch_spec *spec, ssh_conf_t *c, plx_err_t *err);
void ssh_conf_free(ssh_conf_t *c);

/* The host of each of spec->count processes (engines round-robin over
 * the hosts within their slots; the controller on controller_host).
 * host_of[i] indexes c->hosts, or -1 for controller_host. */
int ssh_plan(const ssh_conf_t *c, const plx_launch_spec *spec, int *host_of, plx_err_t *err);

/* What process i reads from stdin before anything else: its environment
 * as `NAME='value'` lines (the local one first with copy_env, then
 * spec->env, remote_env, PLX_ENGINE_INDEX), an empty line, then with sshx
 * the script, each line prefixed by '|', ended by a line ".". malloc'ed,
 * its length in *len; NULL when out of memory. */
char *ssh_stdin_payload(const ssh_conf_t *c, const plx_launch_spec *spec, int i, size_t *len);

/* Append s to out, quoted for a POSIX shell ('...'). False if it does
 * not fit. */
int ssh_quote(char *out, size_t len, size_t *used, const char *s);

/* The remote command of process i: `exec /bin/sh -c '<script>'`, where
 * the script makes a private directory, reads its environment from stdin,
 * starts argv in its own process group, records its pid in NAME.pid
 * there, obeys "signal N" / "stop S" lines on stdin (and stops at EOF),
 * and exits with the process's status. name: [A-Za-z0-9._-]. Returns a
 * malloc'ed string or NULL (ENOMEM / too long). */
char *ssh_remote_command(const ssh_conf_t *c, const plx_launch_spec *spec, const char *name);

/* The remote command that kills the process group recorded in NAME.pid in
 * a private directory of ours. */
char *ssh_kill_command(const char *name);

#endif
