/*
 * launcher-ssh: the shell script each ssh runs on the remote host.
 *
 * ssh runs `exec /bin/sh -c '<script>'` there (the command line shows the
 * script, which holds no secret). The script then
 *   1. reads its environment from stdin up to an empty line, one
 *      NAME='value' line per variable (ssh_stdin.c), and exports it: the
 *      capability URL (PLEXA_URL) travels this way, so it never appears on
 *      a command line that `ps` shows;
 *   2. with sshx, reads the sshx script from stdin into a private
 *      temporary file (mktemp, mode 0700), removed when the program ends;
 *   3. changes to the working directory;
 *   4. starts the program (through `sh SSHX`, with sshx) in its own
 *      process group (setsid) and writes its pid to a pid file, for a kill
 *      over a second ssh connection when this one is stuck; the pid file
 *      and the sshx script live in a private directory (mktemp -d, 0700),
 *      so that no other user of the host can plant or replace them;
 *   5. serves the rest of stdin in a watcher subshell: "signal N" sends
 *      signal N to the group, "stop T" (or end of input: ipcluster went
 *      away) sends SIGTERM, then SIGKILL after T tenths of a second;
 *   6. waits for the program and exits with its status, which ssh hands
 *      back to the launcher as its own.
 * The private directory is made before the environment is read, so that
 * the kill connection, which has none of it (no TMPDIR from remote_env or
 * copy_env), looks in the same place: it finds the pid file by its name
 * in a directory of ours.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssh_int.h"

#define SCRIPT_MAX 65536

int ssh_quote(char *out, size_t len, size_t *used, const char *s)
{
    size_t u = *used;

    if (u + 1 >= len)
        return 0;
    out[u++] = '\'';
    for (; *s; s++) {
        const char *piece = *s == '\'' ? "'\\''" : NULL;
        size_t n = piece ? 4 : 1;
        if (u + n + 2 >= len)
            return 0;
        if (piece)
            memcpy(out + u, piece, n);
        else
            out[u] = *s;
        u += n;
    }
    out[u++] = '\'';
    out[u] = '\0';
    *used = u;
    return 1;
}

/* Append plain text. */
static int put(char *out, size_t len, size_t *used, const char *s)
{
    size_t n = strlen(s);
    if (*used + n + 1 > len)
        return 0;
    memcpy(out + *used, s, n + 1);
    *used += n;
    return 1;
}

static int put_cd(const ssh_conf_t *c, const plx_launch_spec *spec, char *out, size_t len,
                  size_t *u)
{
    const char *dir = c->remote_cwd ? c->remote_cwd : spec->cwd;
    if (!dir)
        return 1;
    /* An explicit remote_cwd must exist; the local directory is only a
     * guess (0.10 assumed the same layout everywhere), so fall back. */
    return put(out, len, u, "cd ") && ssh_quote(out, len, u, dir) &&
           put(out, len, u, c->remote_cwd
                   ? " || { echo \"plexa: remote_cwd: cannot enter it on $(hostname)\" >&2; "
                     "exit 126; }\n"
                   : " 2>/dev/null || { echo \"plexa: $(pwd) is used: the working directory "
                     "does not exist on $(hostname)\" >&2; cd; }\n");
}

static int put_argv(const ssh_conf_t *c, const plx_launch_spec *spec, char *out, size_t len,
                    size_t *u)
{
    if (c->sshx && !put(out, len, u, "sh \"$plx_x\" "))
        return 0;
    if (!ssh_quote(out, len, u, c->command ? c->command : spec->argv[0]))
        return 0;
    for (int i = 1; spec->argv[i]; i++)
        if (!put(out, len, u, " ") || !ssh_quote(out, len, u, spec->argv[i]))
            return 0;
    return 1;
}

/* `command` keeps a variable the remote shell holds read-only (bash's
 * UID) from ending the script: the export fails with a message, the
 * script goes on. */
static const char script_env[] =
    "plx_x=\nplx_nl='\n'\n"
    "while IFS= read -r plx_l && [ -n \"$plx_l\" ]; do eval \"command export $plx_l\"; done\n";

/* The private directory and the pid file's path in it (plx_n: its name). */
static const char script_dir[] =
    "plx_d=$(umask 077 && mktemp -d \"${TMPDIR:-/tmp}/plexa-ssh.XXXXXX\") || {\n"
    "  echo \"plexa: cannot create a private directory in ${TMPDIR:-/tmp} on $(hostname)\" >&2;"
    " exit 126; }\n"
    "plx_f=\"$plx_d/$plx_n.pid\"\n";

/* The sshx script: its lines come prefixed by '|' (removed here), "." ends. */
static const char script_sshx[] =
    "plx_x=\"$plx_d/$plx_n.sshx\"\n"
    "while IFS= read -r plx_l && [ \"$plx_l\" != . ]; do printf '%s\\n' \"${plx_l#?}\"; done"
    " >\"$plx_x\" && chmod 700 \"$plx_x\" || {\n"
    "  echo \"plexa: sshx: cannot write the script on $(hostname)\" >&2; exit 126; }\n";

static const char script_serve[] =
    "plx_p=$!\n"
    "echo \"$plx_p\" > \"$plx_f\"\n"
    "plx_kill() { kill -\"$1\" -\"$plx_p\" 2>/dev/null || kill -\"$1\" \"$plx_p\" 2>/dev/null; }\n"
    /* A background list's stdin is /dev/null unless redirected explicitly:
     * hand the watcher ours through fd 3. */
    "exec 3<&0\n"
    "( while read -r plx_c plx_a <&3; do\n"
    "    case \"$plx_c\" in signal) plx_kill \"$plx_a\";; stop) break;; esac\n"
    "  done\n"
    "  plx_kill TERM; plx_i=0\n"
    "  while kill -0 \"$plx_p\" 2>/dev/null && [ \"$plx_i\" -lt \"${plx_a:-20}\" ]; do\n"
    "    sleep 0.1; plx_i=$((plx_i + 1)); done\n"
    "  plx_kill KILL ) >/dev/null 2>&1 &\n"
    "exec 3<&-\n"
    "plx_w=$!\n"
    "wait \"$plx_p\"; plx_st=$?\n"
    "kill \"$plx_w\" 2>/dev/null; rm -rf \"$plx_d\"\n"
    "exit \"$plx_st\"\n";

static char *wrap(const char *script)
{
    size_t len = 2 * strlen(script) + 64, u = 0;
    char *cmd = malloc(len);
    if (!cmd)
        return NULL;
    if (!put(cmd, len, &u, "exec /bin/sh -c ") || !ssh_quote(cmd, len, &u, script)) {
        free(cmd);
        return NULL;
    }
    return cmd;
}

char *ssh_remote_command(const ssh_conf_t *c, const plx_launch_spec *spec, const char *name)
{
    char *s = malloc(SCRIPT_MAX), *cmd = NULL;
    size_t u = 0;

    if (!s)
        return NULL;
    s[0] = '\0';
    if (put(s, SCRIPT_MAX, &u, "plx_n=") && ssh_quote(s, SCRIPT_MAX, &u, name) &&
        put(s, SCRIPT_MAX, &u, "\n") && put(s, SCRIPT_MAX, &u, script_dir) &&
        put(s, SCRIPT_MAX, &u, script_env) &&
        (!c->sshx || put(s, SCRIPT_MAX, &u, script_sshx)) &&
        put_cd(c, spec, s, SCRIPT_MAX, &u) &&
        put(s, SCRIPT_MAX, &u, "if command -v setsid >/dev/null 2>&1; then setsid ") &&
        put_argv(c, spec, s, SCRIPT_MAX, &u) &&
        put(s, SCRIPT_MAX, &u, " </dev/null & else ") && put_argv(c, spec, s, SCRIPT_MAX, &u) &&
        put(s, SCRIPT_MAX, &u, " </dev/null & fi\n") && put(s, SCRIPT_MAX, &u, script_serve))
        cmd = wrap(s);
    free(s);
    return cmd;
}

/* The pid file is found by its name in a private directory of ours: one
 * another user made, or a symbolic link, is not looked into. */
char *ssh_kill_command(const char *name)
{
    char script[1024], quoted[256];
    size_t u = 0;
    if (!ssh_quote(quoted, sizeof quoted, &u, name))
        return NULL;
    snprintf(script, sizeof script,
             "plx_n=%s\n"
             "for plx_f in \"${TMPDIR:-/tmp}\"/plexa-ssh.*/\"$plx_n.pid\"; do\n"
             "  plx_d=${plx_f%%/*}\n"
             "  [ -O \"$plx_d\" ] && [ ! -L \"$plx_d\" ] && [ -f \"$plx_f\" ] || continue\n"
             "  plx_p=$(cat \"$plx_f\" 2>/dev/null) || continue\n"
             "  kill -KILL -\"$plx_p\" 2>/dev/null || kill -KILL \"$plx_p\" 2>/dev/null\n"
             "  rm -rf \"$plx_d\"\n"
             "done\n", quoted);
    return wrap(script);
}
