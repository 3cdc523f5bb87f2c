/*
 * ipengine: run an engine (core/engine/plx_engine_cli.c does the work).
 *
 * By default the engine runs inside the Python interpreter plexa was built
 * for (/usr/bin/python3), as the extension module plexa._enginehost: this
 * process execs `python3 -c BOOT ipengine ARGS...`. Debian's python3 is
 * linked statically with an optimised libpython, which runs user code
 * 25-40% faster than the shared libpython an embedding program must use,
 * and an engine exists to run user code. When that is not possible (no
 * extension next to the package, a sanitizer build, PLX_ENGINE_EMBED=1),
 * the interpreter is embedded in this process instead.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plx_engine_cli.h"

#ifndef PLX_ENGINE_NO_HOST
/* The bootstrap. plexa's package directory comes as the first argument so
 * that nothing is added to the environment user code inherits, and it
 * binds no name: it runs in __main__, the engine's namespace. The package
 * goes first on sys.path, ahead of the start directory: a plexa/ planted
 * there must not run in place of ours. */
static const char boot[] =
    "__import__('sys').path.insert(0, __import__('sys').argv[1]); "
    "__import__('sys').exit(__import__('plexa._enginehost', fromlist=['main'])"
    ".main(__import__('sys').argv[2:]))";

/* PLX_PLUGIN_PATH plus our own plugin directory, which the hosted module
 * cannot find from its own location. */
static void add_plugin_dir(const char *bindir)
{
    char dir[PATH_MAX + 32], val[2 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s/../lib/plexa/plugins", bindir);
    char *real = realpath(dir, NULL);
    if (!real)
        return;   /* installed elsewhere: the loader's own search applies */
    const char *old = getenv("PLX_PLUGIN_PATH");
    snprintf(val, sizeof val, "%s%s%s", old && *old ? old : "", old && *old ? ":" : "", real);
    setenv("PLX_PLUGIN_PATH", val, 1);
    free(real);
}

/* exec the hosted engine; returns only when that is not possible. */
static void exec_hosted(int argc, char **argv)
{
    const char *embed = getenv("PLX_ENGINE_EMBED");
    char pkg[PATH_MAX], bin[PATH_MAX];
    if ((embed && *embed && strcmp(embed, "0") != 0) ||
        plx_engine_host_module(pkg, sizeof pkg, bin, sizeof bin) != 0)
        return;
    add_plugin_dir(bin);
    char **av = calloc((size_t)argc + 6, sizeof *av);
    if (!av)
        return;
    int n = 0;
    av[n++] = (char *)PLX_PYTHON_EXECUTABLE;
    av[n++] = "-c";
    av[n++] = (char *)boot;
    av[n++] = pkg;
    av[n++] = "ipengine";   /* argv[0] of the engine, and what `ps` shows */
    for (int i = 1; i < argc; i++)
        av[n++] = argv[i];
    execv(PLX_PYTHON_EXECUTABLE, av);
    fprintf(stderr, "ipengine: cannot run %s (%m); embedding Python instead\n",
            PLX_PYTHON_EXECUTABLE);
    free(av);
}
#else
/* Sanitizer builds: an instrumented module cannot load into python3. */
static void exec_hosted(int argc, char **argv)
{
    (void)argc;
    (void)argv;
}
#endif

int main(int argc, char **argv)
{
    exec_hosted(argc, argv);
    return plx_ipengine_main(argc, argv);
}
