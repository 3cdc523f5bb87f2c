/*
 * The fixture of the client's C tests: a scripted controller
 * (fake_controller.c, FAKE_WELCOME) and a libplexa client connected to it
 * over the real tcp plugin. setup_connected/teardown_connected are cmocka
 * setup and teardown functions; *state is the session.
 */
#ifndef CLIENT_SESSION_H
#define CLIENT_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "fake_controller.h"
#include "plexa/client.h"

#define CONNECT_TIMEOUT_S 5.0

typedef struct fixture {
    fake_t       *fake;
    plx_client_t *c;
} fixture_t;

/* "plx+tcp://127.0.0.1:PORT/TOKEN" into out. */
void url_of(char *out, size_t len, uint16_t port, const char *token);

int setup_connected(void **state);
int teardown_connected(void **state);

#endif
