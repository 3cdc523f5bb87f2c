/*
 * A scripted stand-in for ipcontroller's multi-engine interface, for
 * testing clients: one libev loop on its own thread, listening on
 * 127.0.0.1 with the real tcp transport plugin.
 *
 * Hello with the right token gets Welcome (or Reject / silence, by mode).
 * get_ids answers [0, 1]. execute answers per target (all = engines 0 and
 * 1), as a real controller would relay the engines:
 *   "1/0"          every engine raises ZeroDivisionError
 *   "raise1"       engine 1 raises ZeroDivisionError, engine 0 prints
 *   "hang"         never answered
 *   "die"          the connection is closed 200 ms later
 *   anything else  every engine echoes the code as stdout ("CODE\n")
 * A target other than 0 or 1 gets Error{PLX_EBADENGINE}.
 */
#ifndef FAKE_CONTROLLER_H
#define FAKE_CONTROLLER_H

#include <stdint.h>

#define FAKE_TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef enum fake_mode {
    FAKE_WELCOME,   /* accept the right token, reject others */
    FAKE_REJECT,    /* reject everyone: "token is not valid for this cluster" */
    FAKE_SILENT,    /* never answer Hello */
} fake_mode;

typedef struct fake fake_t;

/* Start a controller on 127.0.0.1 (any free port). NULL on failure, with
 * a message on stderr. */
fake_t *fake_start(fake_mode mode);
uint16_t fake_port(const fake_t *f);
/* Hello messages received so far. */
int fake_hellos(const fake_t *f);
/* The role (Plexa__Role) of the last Hello. */
int fake_last_role(const fake_t *f);
/* Stop the thread, close every connection, free. NULL-safe. */
void fake_stop(fake_t **fp);

#endif
