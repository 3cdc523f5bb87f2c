/* core/base/plx_sigreset: a forked child's clean signal slate; see
 * plx_sigreset.h. */
#include "plx_sigreset.h"

#include <signal.h>

void plx_sigreset(void)
{
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigset_t none;

    sigemptyset(&dfl.sa_mask);
    /* SIGKILL, SIGSTOP and the few the C library keeps for itself refuse
     * (EINVAL); they are at their defaults anyway. */
    for (int s = 1; s < NSIG; s++)
        (void)sigaction(s, &dfl, NULL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}
