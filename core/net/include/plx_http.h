/*
 * A deliberately small HTTP/1.1 server on a libev loop, for the
 * controller's status page: GET only, one request per connection
 * (Connection: close), requests up to 8 KiB, bodies built whole by the
 * handler. Loopback by design; it carries no payloads, so it needs none of
 * the frame machinery. Hostile clients cost little: at most 64 open
 * connections, each dropped after 5 s or on a malformed request.
 */
#ifndef PLX_HTTP_H
#define PLX_HTTP_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "plexa/error.h"

typedef struct plx_http plx_http_t;

typedef struct plx_http_req {
    const char *method;   /* "GET" */
    const char *path;     /* "/status.json" (without the query) */
    const char *query;    /* "token=...", "" if none */
    const char *auth;     /* the Authorization header's value, or "" */
} plx_http_req_t;

typedef struct plx_http_resp {
    int         status;   /* 200, 403, 404, ... */
    const char *type;     /* Content-Type */
    char       *body;     /* malloc'd by the handler; the server frees it */
    size_t      len;
} plx_http_resp_t;

/* Fill resp for req; called on the loop's thread. */
typedef void (*plx_http_handler)(void *ud, const plx_http_req_t *req, plx_http_resp_t *resp);

/* Listen on host:port (port 0: any free one). NULL with err on failure. */
plx_http_t *plx_http_new(struct ev_loop *loop, const char *host, uint16_t port,
                         plx_http_handler handler, void *ud, plx_err_t *err);

uint16_t plx_http_port(const plx_http_t *h);

/* Close the listener and every connection; NULL-safe; NULLs *hp. */
void plx_http_destroy(plx_http_t **hp);

/* The value of key in a query string ("a=1&token=x"), copied into out
 * (no percent-decoding: plexa's values are hex). 1 if found. */
int plx_http_query_get(const char *query, const char *key, char *out, size_t len);

#endif
