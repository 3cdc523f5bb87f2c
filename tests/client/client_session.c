/* The client tests' connected session; see client_session.h. */
#include "client_session.h"

#include <stdio.h>
#include <stdlib.h>

void url_of(char *out, size_t len, uint16_t port, const char *token)
{
    snprintf(out, len, "plx+tcp://127.0.0.1:%u/%s", (unsigned)port, token);
}

int setup_connected(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    fx->fake = fake_start(FAKE_WELCOME);
    if (!fx->fake) {
        free(fx);
        return -1;
    }
    char url[256];
    url_of(url, sizeof url, fake_port(fx->fake), FAKE_TOKEN);
    plx_err_t err = {0};
    fx->c = plx_client_connect(url, NULL, CONNECT_TIMEOUT_S, &err);
    if (!fx->c) {
        fprintf(stderr, "connect: %s\n", err.msg);
        fake_stop(&fx->fake);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

int teardown_connected(void **state)
{
    fixture_t *fx = *state;
    plx_client_destroy(&fx->c);
    fake_stop(&fx->fake);
    free(fx);
    return 0;
}
