/*
 * plx_plugin_elf: refuse a plugin file that needs plexa's own functions
 * from its host (private to core/plugin; see plx_plugin_elf.c for why).
 */
#ifndef PLX_PLUGIN_ELF_H
#define PLX_PLUGIN_ELF_H

#include "plexa/error.h"

/*
 * Read path's dynamic symbol table without loading it. PLX_EABI, naming
 * the file and the symbol, if it leaves a plx_* symbol undefined (to be
 * found in the process that loads it); PLX_OK otherwise, also for a file
 * that cannot be read or is no ELF object of this process's class (the
 * loader's dlopen then says why).
 */
int plx_plugin_elf_check(const char *path, plx_err_t *err);

#endif
