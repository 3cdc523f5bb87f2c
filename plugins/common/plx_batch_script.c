/*
 * plx_batch_script: the job script -- its template (the profile's file or
 * the system's built-in one), the placeholders' values, the environment
 * written into it when url_delivery = script, and the private file it is
 * submitted from.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plexa/batch.h"

#define BATCH_TEMPLATE_MAX (256 * 1024)

static const char *batch_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int batch_read_file(const char *path, const char *what, char **out, plx_err_t *err)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t n = 0;

    *out = NULL;
    if (f == NULL)
        return plx_err_set(err, PLX_ENOTFOUND, "%s: cannot read %s: %s", what, path,
                           strerror(errno));
    buf = malloc(BATCH_TEMPLATE_MAX + 1);
    if (buf != NULL)
        n = fread(buf, 1, BATCH_TEMPLATE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (buf == NULL)
        return plx_err_set(err, PLX_ENOMEM, "%s: out of memory", what);
    if (bad || n > BATCH_TEMPLATE_MAX || memchr(buf, '\0', n) != NULL) {
        free(buf);
        return plx_err_set(err, PLX_EINVAL, "%s: %s is %s", what, path,
                           bad ? "unreadable" : n > BATCH_TEMPLATE_MAX
                                                    ? "larger than 256 KiB" : "not text");
    }
    buf[n] = '\0';
    *out = buf;
    return PLX_OK;
}

/* The template: the profile's file (relative to the profile directory) or
 * the built-in one for the job's shape. *source names it in messages. */
static int batch_template(const plx_batch_conf *c, const plx_batch_job *j, char **tmpl,
                          char *source, size_t len, plx_err_t *err)
{
    const char *file = plx_batch_conf_str(c, "template");
    char what[64];

    if (*file == '\0') {
        snprintf(source, len, "built-in %s template (%s)", c->sys->name,
                 j->array ? "job_array = true" : "job_array = false");
        *tmpl = strdup(j->array ? c->sys->tmpl_array : c->sys->tmpl_single);
        return *tmpl ? PLX_OK : plx_err_set(err, PLX_ENOMEM, "out of memory");
    }
    if (file[0] == '/' || c->spec->profile_dir == NULL)
        snprintf(source, len, "%s", file);
    else if ((size_t)snprintf(source, len, "%s/%s", c->spec->profile_dir, file) >= len)
        return plx_err_set(err, PLX_EINVAL, "[%s] template: path too long", c->sys->name);
    snprintf(what, sizeof what, "[%s] template", c->sys->name);
    return batch_read_file(source, what, tmpl, err);
}

typedef struct batch_vars {
    const plx_batch_conf *conf;
    const plx_batch_job  *job;
    char                  n[16], range[48], first[16];
    const char           *engine_command, *work_dir;
} batch_vars;

static const char *batch_lookup(void *ctx, const char *name)
{
    const batch_vars *v = ctx;
    const plx_launch_spec *s = v->conf->spec;
    const struct { const char *name, *value; } fixed[] = {
        { "n", v->n },                     { "array_range", v->range },
        { "first_index", v->first },
        { "job_name", v->job->job_name },  { "engine_command", v->engine_command },
        { "profile_dir", s->profile_dir ? s->profile_dir : "" },
        { "log_dir", v->job->log_dir },    { "work_dir", v->work_dir },
        { "prog", batch_basename(s->argv[0]) },
        { "queue", v->conf->sys->queue_key
                       ? plx_batch_conf_str(v->conf, v->conf->sys->queue_key) : "" },
    };

    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (strcmp(name, fixed[i].name) == 0)
            return fixed[i].value;
    for (const plx_launcher_key *k = v->conf->sys->keys; k && k->name; k++)
        if (strcmp(name, k->name) == 0)
            return plx_batch_conf_str(v->conf, name);
    return NULL;
}

/* Paths go into the script inside double quotes: refuse what would end
 * or expand inside them rather than quote it in a way no template expects. */
static int batch_check_path(const char *sys, const char *what, const char *path,
                            plx_err_t *err)
{
    if (path[strcspn(path, "\"$`\\\n")] != '\0')
        return plx_err_set(err, PLX_EINVAL, "launcher %s: the %s '%s' contains one of "
                           "\" $ ` \\ or a newline, which job scripts cannot quote safely",
                           sys, what, path);
    return PLX_OK;
}

/* Does this line (of a script) give one of opts after directive? */
static bool batch_line_gives(const char *line, const char *directive, const char *const *opts)
{
    size_t dl = strlen(directive);
    if (strncmp(line, directive, dl) != 0 || (line[dl] != ' ' && line[dl] != '\t'))
        return false;
    const char *w = line + dl + strspn(line + dl, " \t");
    for (int i = 0; i < 3 && opts[i]; i++) {
        size_t ol = strlen(opts[i]);
        if (strncmp(w, opts[i], ol) != 0)
            continue;
        /* "-t 0-3", "--array=0-3", and a short option glued to its value */
        char after = w[ol];
        if (after == ' ' || after == '\t' || after == '=' ||
            (opts[i][1] != '-' && after != '\n' && after != '\0'))
            return true;
    }
    return false;
}

/* Does a directive line of script give one of opts ("#PBS -t 0-3",
 * "#SBATCH --array=0-3", "#SBATCH -a0-3")? */
static bool batch_has_directive(const char *script, const char *directive,
                                const char *const *opts)
{
    for (const char *line = script; *line;) {
        if (batch_line_gives(line, directive, opts))
            return true;
        size_t len = strcspn(line, "\n");
        line += len + (line[len] == '\n');
    }
    return false;
}

/* script with "directive line" right after its #! line, if it has none of
 * opts. *script is replaced (PLX_ENOMEM leaves it as it was). */
static int batch_ensure_directive(char **script, const char *directive, const char *const *opts,
                                  const char *fmt, const char *value, plx_err_t *err)
{
    if (!fmt || !opts[0] || batch_has_directive(*script, directive, opts))
        return PLX_OK;
    const char *s = *script;
    size_t head = strncmp(s, "#!", 2) == 0 ? strcspn(s, "\n") : 0;
    if (head && s[head] == '\n')
        head++;
    size_t cap = strlen(s) + strlen(directive) + strlen(fmt) + strlen(value) + 4;
    char *out = malloc(cap), line[512];
    if (out == NULL)
        return plx_err_set(err, PLX_ENOMEM, "out of memory");
    snprintf(line, sizeof line, fmt, value);
    snprintf(out, cap, "%.*s%s %s\n%s", (int)head, s, directive, line, s + head);
    free(*script);
    *script = out;
    return PLX_OK;
}

int plx_batch_script_complete(const plx_batch_system *sys, bool array, const char *range,
                              const char *queue, char **script, plx_err_t *err)
{
    int rc = array ? batch_ensure_directive(script, sys->directive, sys->array_opts,
                                            sys->array_fmt, range, err)
                   : PLX_OK;
    if (rc == PLX_OK && queue && queue[0])
        rc = batch_ensure_directive(script, sys->directive, sys->queue_opts, sys->queue_fmt,
                                    queue, err);
    return rc;
}

int plx_batch_script_render(const plx_batch_conf *c, const plx_batch_job *j, char **script,
                            plx_err_t *err)
{
    batch_vars v = { .conf = c, .job = j };
    char source[PATH_MAX + 64], cwd[PATH_MAX];
    char *tmpl = NULL;
    int rc;

    v.work_dir = j->cwd ? j->cwd : getcwd(cwd, sizeof cwd) ? cwd : ".";
    snprintf(v.n, sizeof v.n, "%d", j->n);
    snprintf(v.first, sizeof v.first, "%d", plx_launch_first_index(c->spec));
    snprintf(v.range, sizeof v.range, "%d-%d", c->sys->array_first,
             c->sys->array_first + j->n - 1);
    if ((rc = batch_check_path(c->sys->name, "log directory", j->log_dir, err)) ||
        (rc = batch_check_path(c->sys->name, "working directory", v.work_dir, err)) ||
        (rc = batch_template(c, j, &tmpl, source, sizeof source, err)))
        return rc;
    char *cmd = plx_batch_shell_join(c->spec->argv);
    v.engine_command = cmd;
    rc = cmd ? plx_batch_render(tmpl, source, c->sys->directive, batch_lookup, &v, script,
                                err)
             : plx_err_set(err, PLX_ENOMEM, "out of memory");
    if (rc == PLX_ENOTFOUND)
        plx_err_prefix(err, "job script template (placeholders: n, array_range, first_index, "
                       "job_name, engine_command, queue, profile_dir, log_dir, work_dir, "
                       "prog, and the section's keys)");
    const char *queue = c->sys->queue_key ? plx_batch_conf_str(c, c->sys->queue_key) : "";
    if (rc == PLX_OK &&
        (rc = plx_batch_script_complete(c->sys, j->array, v.range, queue, script, err)) !=
            PLX_OK) {
        free(*script);
        *script = NULL;
    }
    free(cmd);
    free(tmpl);
    return rc;
}

/* Is "KEY=VALUE" a variable a shell can export? */
bool plx_batch_env_name_ok(const char *kv)
{
    size_t n = strcspn(kv, "=");
    if (n == 0 || kv[n] != '=' || (kv[0] >= '0' && kv[0] <= '9'))
        return false;
    return strspn(kv, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* script with spec->env exported right after its leading comment block
 * (where directives end: batch systems stop reading them at the first
 * command). */
char *plx_batch_script_inject_env(const char *script, const char *const *env)
{
    const char *p = script;
    size_t cap = strlen(script) + 256;

    while (*p == '#' || *p == '\n') {
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
    }
    for (size_t i = 0; env && env[i]; i++)
        cap += strlen(env[i]) * 4 + 64;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    size_t k = (size_t)snprintf(out, cap, "%.*s# plexa: set at submission; this file was "
                                "rewritten without it\n", (int)(p - script), script);
    for (size_t i = 0; env && env[i]; i++) {
        size_t n = strcspn(env[i], "=");
        const char *arg[] = { env[i] + n + 1, NULL };
        char *q = plx_batch_shell_join(arg);
        if (q == NULL) {
            free(out);
            return NULL;
        }
        k += (size_t)snprintf(out + k, cap - k, "%.*s=%s; export %.*s\n", (int)n, env[i], q,
                              (int)n, env[i]);
        free(q);
    }
    snprintf(out + k, cap - k, "%s", p);
    return out;
}

/* Write text to path, private to us whatever was there before. */
int plx_batch_script_write(const char *path, const char *text, plx_err_t *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t len = strlen(text), off = 0;

    if (fd < 0 || fchmod(fd, 0600) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return plx_err_set(err, PLX_EIO, "writing job script %s: %s", path, strerror(e));
    }
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            return plx_err_set(err, PLX_EIO, "writing job script %s: %s", path, strerror(e));
        }
        off += (size_t)w;
    }
    if (close(fd) < 0)
        return plx_err_set(err, PLX_EIO, "writing job script %s: %s", path, strerror(errno));
    return PLX_OK;
}

