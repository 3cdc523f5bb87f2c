/*
 * plx_sigreset: give a forked child default signal dispositions and an
 * empty signal mask before it execs.
 *
 * Ignored signals and the blocked mask survive exec, handlers do not; a
 * host that ignores SIGPIPE (ipcluster does) or blocks a signal in the
 * thread that forks would hand that to qsub, ssh or an engine, which then
 * dies quietly or cannot be stopped. Starting from a clean slate is what a
 * shell gives the commands it runs.
 *
 * One implementation for every forking launcher (plx_procset's processes,
 * plx_batch_run's commands): it lives in core/base, the libc-only library
 * that plexa_core links and plugins/common passes on to the plugins (see
 * core/base/CMakeLists.txt).
 */
#ifndef PLX_SIGRESET_H
#define PLX_SIGRESET_H

/* Every catchable signal to SIG_DFL, then the mask emptied. For the child
 * between fork and exec: async-signal-safe (sigaction, sigemptyset and
 * sigprocmask only), and it cannot fail in a way worth reporting. */
void plx_sigreset(void);

#endif
