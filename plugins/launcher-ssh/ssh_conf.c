/* launcher-ssh: the [ssh] settings and where each process goes. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ssh_int.h"

/* ---- words ------------------------------------------------------------------ */

void ssh_words_free(ssh_words_t *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

/* Copy one word starting at *p into *dst (NUL-terminated), quotes
 * removed. 0, or -1 on an unbalanced quote. */
static int split_one(const char **p, char **dst)
{
    const char *s = *p;
    char *d = *dst, quote = 0;

    for (; *s && (quote || !isspace((unsigned char)*s)); s++) {
        if (quote && *s == quote)
            quote = 0;
        else if (!quote && (*s == '\'' || *s == '"'))
            quote = *s;
        else if (*s == '\\' && quote != '\'' && s[1])
            *d++ = *++s;
        else
            *d++ = *s;
    }
    if (quote)
        return -1;
    *d++ = '\0';
    *p = s;
    *dst = d;
    return 0;
}

int ssh_words_split(ssh_words_t *w, const char *text, const char *what, plx_err_t *err)
{
    size_t old = 0, add = strlen(text) + 1;
    char *buf, *d;

    /* Words already split point into the old buffer: re-base them. */
    for (int i = 0; i < w->n; i++)
        old += strlen(w->w[i]) + 1;
    buf = malloc(old + add);
    if (!buf)
        return plx_err_set(err, PLX_ENOMEM, "launcher ssh: out of memory");
    d = buf;
    for (int i = 0; i < w->n; i++) {
        size_t n = strlen(w->w[i]) + 1;
        memcpy(d, w->w[i], n);
        w->w[i] = d;
        d += n;
    }
    free(w->buf);
    w->buf = buf;
    for (const char *p = text;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (w->n == SSH_WORDS_MAX)
            return plx_err_set(err, PLX_EINVAL, "[ssh] %s: more than %d words", what,
                               SSH_WORDS_MAX);
        w->w[w->n] = d;
        if (split_one(&p, &d) != 0)
            return plx_err_set(err, PLX_EINVAL, "[ssh] %s: unbalanced quote in '%.64s'", what,
                               text);
        w->n++;
    }
    w->w[w->n] = NULL;
    return PLX_OK;
}

/* ---- hosts ------------------------------------------------------------------ */

/* One "name[:slots]" entry. */
static int parse_host(const char *item, size_t len, ssh_host_t *h, plx_err_t *err)
{
    const char *colon = memchr(item, ':', len);
    size_t nlen = colon ? (size_t)(colon - item) : len;
    char *end;

    if (nlen == 0 || nlen >= sizeof h->name)
        return plx_err_set(err, PLX_EINVAL, "[ssh] hosts: bad host '%.*s' (expected NAME or "
                           "NAME:ENGINES)", (int)len, item);
    memcpy(h->name, item, nlen);
    h->name[nlen] = '\0';
    if (h->name[0] == '-' || strpbrk(h->name, "'\"\\`$;&|<> "))
        return plx_err_set(err, PLX_EINVAL, "[ssh] hosts: '%s' is not a host name", h->name);
    h->slots = 0;
    if (!colon)
        return PLX_OK;
    long v = strtol(colon + 1, &end, 10);
    if (end != item + len || end == colon + 1 || v < 1 || v > 65536)
        return plx_err_set(err, PLX_EINVAL, "[ssh] hosts: '%.*s': the number of engines after "
                           "':' must be 1..65536", (int)len, item);
    h->slots = (int)v;
    return PLX_OK;
}

/* "node1:4, node2:4" or "node1 node2": commas and/or blanks separate. */
static int parse_hosts(const char *text, ssh_conf_t *c, plx_err_t *err)
{
    const char *sep = ", \t";
    c->hosts = calloc(SSH_HOSTS_MAX, sizeof *c->hosts);
    if (!c->hosts)
        return plx_err_set(err, PLX_ENOMEM, "launcher ssh: out of memory");
    for (const char *p = text + strspn(text, sep); *p; p += strspn(p, sep)) {
        size_t len = strcspn(p, sep);
        if (c->nhosts == SSH_HOSTS_MAX)
            return plx_err_set(err, PLX_EINVAL, "[ssh] hosts: more than %d hosts", SSH_HOSTS_MAX);
        int rc = parse_host(p, len, &c->hosts[c->nhosts++], err);
        if (rc != PLX_OK)
            return rc;
        p += len;
    }
    return PLX_OK;
}

/* ---- the section ------------------------------------------------------------- */

static const char *conf_get(const plx_launch_spec *spec, const char *key)
{
    const char *v = spec->conf ? spec->conf(spec->conf_ctx, key) : NULL;
    return v && *v ? v : NULL;
}

static int check_env_words(const ssh_words_t *w, plx_err_t *err)
{
    for (int i = 0; i < w->n; i++) {
        const char *eq = strchr(w->w[i], '=');
        size_t n = eq ? (size_t)(eq - w->w[i]) : 0;
        bool ok = n > 0 && !isdigit((unsigned char)w->w[i][0]);
        for (size_t k = 0; ok && k < n; k++)
            ok = isalnum((unsigned char)w->w[i][k]) || w->w[i][k] == '_';
        if (!ok)
            return plx_err_set(err, PLX_EINVAL, "[ssh] remote_env: '%.64s' is not KEY=VALUE",
                               w->w[i]);
        if (strncmp(w->w[i], "plx_", 4) == 0)
            return plx_err_set(err, PLX_EINVAL, "[ssh] remote_env: '%.*s': names plx_* "
                               "belong to the launcher's remote script", (int)n, w->w[i]);
    }
    return PLX_OK;
}

static int conf_bool(const plx_launch_spec *spec, const char *key, bool *out, plx_err_t *err)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    const char *v = conf_get(spec, key);

    *out = false;
    for (size_t i = 0; v && i < sizeof yes / sizeof *yes; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, PLX_OK;
        if (strcasecmp(v, no[i]) == 0)
            return PLX_OK;
    }
    return v ? plx_err_set(err, PLX_EINVAL, "[ssh] %s: '%.64s' is not a boolean (true or "
                           "false)", key, v) : PLX_OK;
}

/* The sshx script at path into *out (malloc'ed): a text file that fits
 * the stdin protocol (no NUL, at most SSH_SSHX_MAX bytes). */
static int read_sshx(const char *path, char **out, plx_err_t *err)
{
    FILE *f = fopen(path, "rbe");
    char *buf;
    size_t n;

    if (!f)
        return plx_err_set(err, PLX_EINVAL, "[ssh] sshx: cannot read %s: %s", path,
                           strerror(errno));
    if (!(buf = malloc(SSH_SSHX_MAX + 1))) {
        fclose(f);
        return plx_err_set(err, PLX_ENOMEM, "launcher ssh: out of memory");
    }
    errno = 0;
    n = fread(buf, 1, SSH_SSHX_MAX + 1, f);
    if (ferror(f) || n > SSH_SSHX_MAX || memchr(buf, '\0', n)) {
        int bad = ferror(f) ? (errno ? errno : EIO) : 0;
        fclose(f);
        free(buf);
        return bad ? plx_err_set(err, PLX_EINVAL, "[ssh] sshx: cannot read %s: %s", path,
                                 strerror(bad))
                   : plx_err_set(err, PLX_EINVAL, "[ssh] sshx: %s is %s", path,
                                 n > SSH_SSHX_MAX ? "larger than 64 KiB" : "not a text file");
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    return PLX_OK;
}

/* sshx: absolute, or relative to the profile directory. */
static int conf_sshx(const plx_launch_spec *spec, ssh_conf_t *c, plx_err_t *err)
{
    const char *file = conf_get(spec, "sshx");
    char path[4096];

    if (!file)
        return PLX_OK;
    if (file[0] == '/' || !spec->profile_dir)
        snprintf(path, sizeof path, "%s", file);
    else if ((size_t)snprintf(path, sizeof path, "%s/%s", spec->profile_dir, file) >=
             sizeof path)
        return plx_err_set(err, PLX_EINVAL, "[ssh] sshx: path too long: %.64s", file);
    return read_sshx(path, &c->sshx, err);
}

int ssh_conf_read(const plx_launch_spec *spec, ssh_conf_t *c, plx_err_t *err)
{
    const char *ssh = conf_get(spec, "ssh"), *opts = conf_get(spec, "ssh_options");
    const char *hosts = conf_get(spec, "hosts"), *env = conf_get(spec, "remote_env");
    int rc;

    memset(c, 0, sizeof *c);
    c->remote_cwd = conf_get(spec, "remote_cwd");
    c->command = conf_get(spec, spec->role == PLX_LAUNCH_CONTROLLER ? "controller_command"
                                                                     : "engine_command");
    c->controller_host = conf_get(spec, "controller_host");
    if ((rc = ssh_words_split(&c->ssh, ssh ? ssh : "ssh", "ssh", err)) != PLX_OK ||
        (opts && (rc = ssh_words_split(&c->ssh, opts, "ssh_options", err)) != PLX_OK) ||
        (env && (rc = ssh_words_split(&c->remote_env, env, "remote_env", err)) != PLX_OK) ||
        (rc = check_env_words(&c->remote_env, err)) != PLX_OK ||
        (rc = parse_hosts(hosts ? hosts : "", c, err)) != PLX_OK ||
        (rc = conf_bool(spec, "copy_env", &c->copy_env, err)) != PLX_OK ||
        (rc = conf_sshx(spec, c, err)) != PLX_OK)
        return rc;
    if (c->ssh.n == 0)
        return plx_err_set(err, PLX_EINVAL, "[ssh] ssh: empty command");
    if (c->controller_host && (c->controller_host[0] == '-' ||
                               strpbrk(c->controller_host, "'\"\\`$;&|<> ")))
        return plx_err_set(err, PLX_EINVAL, "[ssh] controller_host: '%.64s' is not a host name",
                           c->controller_host);
    if (c->nhosts == 0 && !(spec->role == PLX_LAUNCH_CONTROLLER && c->controller_host))
        return plx_err_set(err, PLX_EINVAL, "[ssh] hosts: no hosts to start %s on: set for "
                           "example `hosts = node1:4, node2:4` in the [ssh] section of "
                           "cluster.conf", spec->role == PLX_LAUNCH_CONTROLLER
                               ? "the controller" : "engines");
    return PLX_OK;
}

void ssh_conf_free(ssh_conf_t *c)
{
    ssh_words_free(&c->ssh);
    ssh_words_free(&c->remote_env);
    free(c->hosts);
    free(c->sshx);
    memset(c, 0, sizeof *c);
}

/* ---- the plan ------------------------------------------------------------------ */

int ssh_plan(const ssh_conf_t *c, const plx_launch_spec *spec, int *host_of, plx_err_t *err)
{
    long total = 0;
    int placed = 0;
    int *used;

    if (spec->role == PLX_LAUNCH_CONTROLLER) {
        for (int i = 0; i < spec->count; i++)
            host_of[i] = c->controller_host ? -1 : 0;
        return PLX_OK;
    }
    for (int h = 0; h < c->nhosts && total >= 0; h++)
        total = c->hosts[h].slots ? total + c->hosts[h].slots : -1;   /* -1: unlimited */
    if (total >= 0 && spec->count > total)
        return plx_err_set(err, PLX_EINVAL, "[ssh] hosts: %d engines asked for, but the hosts "
                           "take %ld (NAME:N gives host NAME N engines; a host without :N "
                           "takes any number)", spec->count, total);
    used = calloc((size_t)c->nhosts, sizeof *used);
    if (!used)
        return plx_err_set(err, PLX_ENOMEM, "launcher ssh: out of memory");
    /* Round-robin within the slots: -n 2 over node1:4, node2:4 is one
     * engine on each, not two on node1. */
    while (placed < spec->count)
        for (int h = 0; h < c->nhosts && placed < spec->count; h++)
            if (!c->hosts[h].slots || used[h] < c->hosts[h].slots) {
                used[h]++;
                host_of[placed++] = h;
            }
    free(used);
    return PLX_OK;
}
