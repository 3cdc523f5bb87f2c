/*
 * ipengine's command line, as a library function: argv as main() gets it
 * (argv[0] is the program name). Returns the process exit status: 0 when
 * the engine ended as engines do, 1 on errors, 2 on usage errors. Prints
 * --help, --version and errors itself. Never exits.
 */
#ifndef PLX_ENGINE_CLI_H
#define PLX_ENGINE_CLI_H

int plx_ipengine_main(int argc, char **argv);

#endif
