/*
 * What a plugin file asks of its host, read from the file before it is
 * loaded (so none of its code, constructors included, runs first).
 *
 * A plugin may use only its ops table and the host functions it is handed
 * (include/plexa/plugin.h). plexa's own functions are not part of the ABI:
 * they change between releases, and whether a process even exports them
 * differs (libplexa.so does, ipcluster and ipcontroller do not), so a
 * plugin that calls one would load in one process and not in another.
 * Any undefined dynamic symbol named plx_* is therefore refused by name.
 *
 * File map: bounds-checked views of the ELF headers; the .dynsym scan;
 * plx_plugin_elf_check.
 */
#include "plx_plugin_elf.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOST_PREFIX "plx_"

typedef struct {
    const uint8_t *base;
    size_t         size;
} image_t;

/* The n items of sz bytes at off, or NULL when they do not fit the file. */
static const void *at(const image_t *im, uint64_t off, uint64_t n, uint64_t sz)
{
    if (sz != 0 && n > (UINT64_MAX - off) / sz)
        return NULL;
    return off + n * sz <= im->size ? im->base + off : NULL;
}

/* The first undefined plx_* symbol of a .dynsym section into name (len
 * bytes); 1 if found, 0 if none, -1 if the section is malformed. */
static int undefined_host_symbol(const image_t *im, const ElfW(Shdr) *sh,
                                 const ElfW(Shdr) *shs, size_t nsh, char *name, size_t len)
{
    if (sh->sh_entsize != sizeof(ElfW(Sym)) || sh->sh_link >= nsh)
        return -1;
    const ElfW(Shdr) *str = &shs[sh->sh_link];
    const ElfW(Sym) *syms = at(im, sh->sh_offset, sh->sh_size / sizeof(ElfW(Sym)),
                               sizeof(ElfW(Sym)));
    const char *strs = at(im, str->sh_offset, str->sh_size, 1);
    if (!syms || !strs)
        return -1;
    for (size_t i = 0; i < sh->sh_size / sizeof(ElfW(Sym)); i++) {
        const ElfW(Sym) *s = &syms[i];
        if (s->st_shndx != SHN_UNDEF || s->st_name >= str->sh_size)
            continue;
        const char *n = strs + s->st_name;
        size_t max = str->sh_size - s->st_name;
        if (strnlen(n, max) == max)
            return -1;   /* not terminated inside the table */
        if (strncmp(n, HOST_PREFIX, strlen(HOST_PREFIX)) == 0) {
            snprintf(name, len, "%s", n);
            return 1;
        }
    }
    return 0;
}

/* 1 (name set), 0, or -1 for a file this process could not load anyway
 * (not an ELF file of its own class): dlopen then says why. */
static int scan(const image_t *im, char *name, size_t len)
{
    const ElfW(Ehdr) *eh = at(im, 0, 1, sizeof *eh);
    if (!eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh->e_shentsize != sizeof(ElfW(Shdr)))
        return -1;
    const ElfW(Shdr) *shs = at(im, eh->e_shoff, eh->e_shnum, sizeof *shs);
    if (!shs)
        return -1;
    for (size_t i = 0; i < eh->e_shnum; i++) {
        if (shs[i].sh_type != SHT_DYNSYM)
            continue;
        int rc = undefined_host_symbol(im, &shs[i], shs, eh->e_shnum, name, len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int plx_plugin_elf_check(const char *path, plx_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PLX_OK;   /* the loader reports a file it cannot open */
    struct stat st;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return PLX_OK;
    image_t im = { map, (size_t)st.st_size };
    char name[128] = "";
    int found = scan(&im, name, sizeof name);
    munmap(map, im.size);
    if (found != 1)
        return PLX_OK;
    return plx_err_set(err, PLX_EABI,
                       "plugin %s uses plexa's own function %s, which is not part of the "
                       "plugin ABI: a plugin may use only the host functions it is handed "
                       "(see launcher-plugins.md, \"The plugin ABI\")", path, name);
}
