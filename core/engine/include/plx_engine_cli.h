/*
 * ipengine's command line, as a library function: argv as main() gets it
 * (argv[0] is the program name). Returns the process exit status: 0 when
 * the engine ended as engines do, 1 on errors, 2 on usage errors. Prints
 * --help, --version and errors itself. Never exits.
 */
#ifndef PLX_ENGINE_CLI_H
#define PLX_ENGINE_CLI_H

#include <stddef.h>

int plx_ipengine_main(int argc, char **argv);

/*
 * For ipengine's main(): where plexa's package directory is (pkg) when it
 * holds the plexa._enginehost extension, and the directory of the running
 * binary (bin). 0, or -1 when the engine cannot be hosted by python3 (then
 * ipengine embeds the interpreter itself).
 */
int plx_engine_host_module(char *pkg, size_t plen, char *bin, size_t blen);

#endif
