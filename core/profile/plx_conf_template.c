/*
 * The cluster.conf template (plx_conf_write_template): every key of the
 * schema with its help and its default, commented out, and the engine
 * launcher's section from its plugin's key table. See plx_conf_int.h for
 * the other files.
 */
#include "plx_conf_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plx_profile.h"

/* ---- the template -------------------------------------------------------- */

/* Write text as "# " comment lines of at most about 76 columns. */
static void put_comment(FILE *f, const char *text)
{
    while (*text) {
        size_t n = strlen(text);
        if (n > 74) {
            n = 74;
            while (n > 0 && text[n] != ' ')
                n--;
            if (n == 0)
                n = strcspn(text, " ");
        }
        fprintf(f, "# %.*s\n", (int)n, text);
        text += n;
        while (*text == ' ')
            text++;
    }
}

static void put_section(FILE *f, const char *section, const char *launcher)
{
    fprintf(f, "[%s]\n", section);
    for (size_t i = 0; i < plx_conf_nschema; i++) {
        const keyspec_t *k = &plx_conf_schema[i];
        if (strcmp(k->section, section) != 0)
            continue;
        put_comment(f, k->help);
        if (strcmp(k->key, "engine_launcher") == 0 && strcmp(launcher, "local") != 0)
            fprintf(f, "%s = %s\n\n", k->key, launcher);
        else
            fprintf(f, "# %s =%s%s\n\n", k->key, *k->def ? " " : "", k->def);
    }
}

static void put_launcher(FILE *f, const char *launcher, const plx_launcher_key *keys)
{
    fprintf(f, "[%s]\n", launcher);
    if (!keys) {
        fprintf(f, "# Settings of the %s launcher plugin. It does not list its keys\n"
                   "# (or was not found when this file was written): see its\n"
                   "# documentation.\n", launcher);
        return;
    }
    if (!keys[0].name) {
        fprintf(f, "# The %s launcher takes no settings.\n", launcher);
        return;
    }
    fprintf(f, "# Settings of the %s launcher plugin; any other key is an error.\n", launcher);
    for (size_t i = 0; keys[i].name; i++) {
        fputc('\n', f);
        put_comment(f, keys[i].help);
        fprintf(f, "# %s =%s%s\n", keys[i].name, *keys[i].example ? " " : "", keys[i].example);
    }
}

static char *template_text(const char *launcher, const plx_launcher_key *keys)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "# plexa cluster configuration (cluster.conf) of this profile.\n"
               "# Every key is optional: the commented-out value is the default.\n"
               "# Reference: docs/profiles.md.\n\n");
    put_section(f, "cluster", launcher);
    put_section(f, "controller", launcher);
    put_launcher(f, launcher, keys);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

int plx_conf_write_template(const char *path, const char *engine_launcher,
                            const plx_launcher_key *keys, plx_err_t *err)
{
    const char *launcher = engine_launcher && *engine_launcher ? engine_launcher : "local";
    struct stat st;
    const keyspec_t *k = plx_conf_find_spec("cluster", "engine_launcher");
    value_t v;
    if (plx_conf_convert(k, launcher, &v, err) != PLX_OK)
        return plx_err_prefix(err, "engine_launcher");
    if (lstat(path, &st) == 0)
        return plx_err_set(err, PLX_EINVAL, "%s already exists (not overwriting it)", path);
    char *text = template_text(launcher, keys);
    if (!text)
        return plx_err_set(err, PLX_ENOMEM, "%s: out of memory", path);
    int rc = plx_file_write_secret(path, text, err);
    free(text);
    return rc;
}
