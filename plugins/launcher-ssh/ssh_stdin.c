/*
 * launcher-ssh: what the remote script reads from stdin at start.
 *
 * Environment values may hold any byte but NUL (spaces, quotes, newlines
 * with copy_env), and they must stay off every command line. Each variable
 * is therefore one line of sh: NAME='value', a single quote written as
 * '\'' and a newline as '"$plx_nl"' (plx_nl holds a newline on the remote
 * side), which the remote script passes to `eval "command export LINE"`.
 * Names are checked to be sh identifiers, so nothing but the quoted value
 * follows the '='.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "plx_strbuf.h"
#include "ssh_int.h"

extern char **environ;

/* Length of the NAME of "NAME=VALUE" when it is an sh identifier that is
 * not one of the remote script's own (plx_*), else 0. */
static size_t env_name_len(const char *entry)
{
    size_t n = 0;
    if (isdigit((unsigned char)entry[0]) || strncmp(entry, "plx_", 4) == 0)
        return 0;
    while (isalnum((unsigned char)entry[n]) || entry[n] == '_')
        n++;
    return entry[n] == '=' ? n : 0;
}

/* One NAME='value' line; entries whose name is not an identifier (bash's
 * exported functions, BASH_FUNC_f%%) cannot be exported by sh: skipped. */
static void put_env(plx_strbuf_t *b, const char *entry)
{
    size_t n = env_name_len(entry);
    if (n == 0)
        return;
    plx_strbuf_put(b, entry, n + 1);
    plx_strbuf_puts(b, "'");
    for (const char *v = entry + n + 1; *v; v++) {
        if (*v == '\'')
            plx_strbuf_puts(b, "'\\''");
        else if (*v == '\n')
            plx_strbuf_puts(b, "'\"$plx_nl\"'");
        else
            plx_strbuf_putc(b, *v);
    }
    plx_strbuf_puts(b, "'\n");
}

/* Variables that describe this host or this login session, or steer the
 * remote shell itself: copy_env leaves them to the remote side
 * (docs/launcher-plugins.md lists them). A trailing '*' is a prefix. */
static const char *const local_only[] = {
    "SSH_*", "DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR", "XDG_SESSION_*", "HOSTNAME", "HOST", "PWD", "OLDPWD", "SHLVL", "_",
    "IFS", "CDPATH", "ENV", "PPID", "UID", "EUID", "SHELLOPTS", "BASHOPTS",
    NULL,
};

static bool stays_local(const char *entry)
{
    size_t n = strcspn(entry, "=");
    for (const char *const *p = local_only; *p; p++) {
        size_t m = strlen(*p);
        if ((*p)[m - 1] == '*' ? n >= m - 1 && strncmp(entry, *p, m - 1) == 0
                               : n == m && strncmp(entry, *p, m) == 0)
            return true;
    }
    return false;
}

/* The script's lines, each as |LINE: a prefix keeps empty lines from
 * ending the script early; "." (no prefix) ends it. */
static void put_sshx(plx_strbuf_t *b, const char *text)
{
    while (*text) {
        size_t n = strcspn(text, "\n");
        plx_strbuf_puts(b, "|");
        plx_strbuf_put(b, text, n);
        plx_strbuf_puts(b, "\n");
        text += n + (text[n] == '\n');
    }
    plx_strbuf_puts(b, ".\n");
}

char *ssh_stdin_payload(const ssh_conf_t *c, const plx_launch_spec *spec, int i, size_t *len)
{
    plx_strbuf_t b = PLX_STRBUF_INIT;
    char index[32];

    /* Later lines win: the local environment is the base, ours go on top. */
    for (char **e = environ; c->copy_env && e && *e; e++)
        if (!stays_local(*e))
            put_env(&b, *e);
    for (size_t k = 0; spec->env && spec->env[k]; k++)
        put_env(&b, spec->env[k]);
    for (int k = 0; k < c->remote_env.n; k++)
        put_env(&b, c->remote_env.w[k]);
    snprintf(index, sizeof index, "PLX_ENGINE_INDEX=%d", plx_launch_first_index(spec) + i);
    put_env(&b, index);
    plx_strbuf_puts(&b, "\n");
    if (c->sshx)
        put_sshx(&b, c->sshx);
    *len = b.len;
    return plx_strbuf_take(&b);
}
