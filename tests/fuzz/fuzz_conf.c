/*
 * libFuzzer: cluster.conf parsing and validation (libinih + plexa's
 * schema). Whatever the text, parsing returns OK or an error naming the
 * line, and an accepted configuration reads back consistently.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plx_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int visit(void *ctx, const char *key, const char *value, const char *file, int line)
{
    (void)ctx;
    (void)file;
    (void)line;
    if (!key || !value)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    plx_conf_t *c = plx_conf_new_defaults();
    plx_err_t err = {0};
    if (c && plx_conf_parse_string(c, text, "fuzz.conf", &err) == PLX_OK) {
        const plx_cluster_conf_t *cl = plx_conf_cluster(c);
        if (cl->engines < 1 || cl->port < 0 || cl->port > 65535)
            abort();   /* the schema's bounds must hold for accepted input */
        (void)plx_conf_get(c, "cluster", "transport");
        plx_conf_foreach(c, "cluster", visit, NULL);
        /* Setting a key again with its own text must be accepted. */
        const char *e = plx_conf_get(c, "cluster", "engines");
        if (e && plx_conf_set(c, "cluster", "engines", e, &err) != PLX_OK)
            abort();
    } else if (c && strncmp(err.msg, "fuzz.conf", 9) != 0 && err.code != PLX_ENOMEM) {
        abort();   /* errors name the file */
    }
    plx_conf_destroy(&c);
    free(text);
    return 0;
}
