/*
 * plx_plugin_loader: the libltdl side of plexa's plugins.
 *
 * A registry (singly linked list under one mutex) maps kind + name to the
 * descriptor of an accepted plugin. Entries are inserted once and never
 * removed or modified, so a pointer to one stays valid without the lock.
 * See plx_plugin_loader.h for the search order and the checks.
 */
#include "plx_plugin_loader.h"
#include "plx_plugin_elf.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <ltdl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PLX_PLUGIN_SUBDIR
#define PLX_PLUGIN_SUBDIR "plexa/plugins"
#endif
#ifndef PLX_INSTALL_LIBDIR
#define PLX_INSTALL_LIBDIR "lib"
#endif

#define PLX_PLUGIN_NAME_MAX 64
#define PLX_PLUGIN_PREFIX   "plexa-"

typedef struct plx_plugin_entry {
    struct plx_plugin_entry *next;
    plx_plugin_kind          kind;
    const plx_plugin        *desc;     /* lives in the loaded object */
    lt_dlhandle              handle;   /* never closed: ops may be in use anywhere */
    char                     path[PATH_MAX]; /* as opened, for listings and errors */
} plx_plugin_entry;

/* Directories to search, in order: PLX_PLUGIN_PATH entries, then built-in. */
typedef struct plx_search_path {
    char        *env;       /* private copy of PLX_PLUGIN_PATH, split in place */
    const char **dirs;
    size_t       ndirs;
    char         builtin[PATH_MAX];
} plx_search_path;

static pthread_mutex_t   plx_plugin_mutex = PTHREAD_MUTEX_INITIALIZER;
static plx_plugin_entry *plx_plugin_registry;
static bool              plx_plugin_ltdl_ready;
/* Any address inside this object serves dladdr() to find where we live. */
static const char        plx_plugin_anchor;

const char *plx_plugin_kind_name(plx_plugin_kind kind)
{
    switch (kind) {
    case PLX_PLUGIN_TRANSPORT: return "transport";
    case PLX_PLUGIN_LAUNCHER:  return "launcher";
    default:                   return "?";
    }
}

/* Names end up in file names: keep them free of '/', '.' and friends. */
static bool plx_plugin_name_ok(const char *name)
{
    size_t n = 0;

    if (name == NULL || *name == '\0')
        return false;
    for (const char *c = name; *c; c++, n++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
        if (!ok || n >= PLX_PLUGIN_NAME_MAX)
            return false;
    }
    return true;
}

static bool plx_plugin_kind_ok(plx_plugin_kind kind)
{
    return kind == PLX_PLUGIN_TRANSPORT || kind == PLX_PLUGIN_LAUNCHER;
}

/* ---- locating ourselves ------------------------------------------------ */

/* Real path of the executable or shared library containing this code. */
static int plx_plugin_self_path(char *out, size_t len)
{
    Dl_info info;
    struct link_map *map = NULL;
    char resolved[PATH_MAX];
    const char *file;

    if (dladdr1(&plx_plugin_anchor, &info, (void **)&map, RTLD_DL_LINKMAP) == 0)
        return PLX_EIO;
    /* For the main program the link map has an empty name and dladdr
     * reports argv[0], which may be relative or a bare PATH lookup. */
    file = (map != NULL && map->l_name[0] != '\0') ? map->l_name : "/proc/self/exe";
    if (realpath(file, resolved) == NULL)
        return PLX_EIO;
    if ((size_t)snprintf(out, len, "%s", resolved) >= len)
        return PLX_ELIMIT;
    return PLX_OK;
}

static bool plx_plugin_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* <prefix>/<libdir>/SUBDIR, or <libdir>/SUBDIR when libdir is absolute.
 * False when it does not fit. */
static bool plx_plugin_libdir_path(const char *prefix, const char *libdir,
                                   char *out, size_t len)
{
    int n = libdir[0] == '/'
                ? snprintf(out, len, "%s/%s", libdir, PLX_PLUGIN_SUBDIR)
                : snprintf(out, len, "%s/%s/%s", prefix, libdir, PLX_PLUGIN_SUBDIR);
    return n >= 0 && (size_t)n < len;
}

/* For <prefix>/bin/prog: the install libdir (lib/x86_64-linux-gnu on
 * Debian) is preferred; plain lib is taken only when it exists and the
 * preferred one does not (the build tree always uses lib). */
static int plx_plugin_dir_from_bin(const char *prefix, char *out, size_t len)
{
    char pref[PATH_MAX], plain[PATH_MAX];
    const char *pick;

    if (!plx_plugin_libdir_path(prefix, PLX_INSTALL_LIBDIR, pref, sizeof pref) ||
        !plx_plugin_libdir_path(prefix, "lib", plain, sizeof plain))
        return PLX_ELIMIT;
    pick = (!plx_plugin_is_dir(pref) && plx_plugin_is_dir(plain)) ? plain : pref;
    if ((size_t)snprintf(out, len, "%s", pick) >= len)
        return PLX_ELIMIT;
    return PLX_OK;
}

int plx_plugin_default_dir(char *out, size_t len)
{
    char self[PATH_MAX];
    char *slash;
    const char *dirbase;
    int rc;

    if (out == NULL || len == 0)
        return PLX_EINVAL;
    rc = plx_plugin_self_path(self, sizeof self);
    if (rc != PLX_OK)
        return rc;
    slash = strrchr(self, '/');
    if (slash == NULL)
        return PLX_EIO;
    *slash = '\0';                      /* self is now the object's directory */
    slash = strrchr(self, '/');
    dirbase = slash ? slash + 1 : self;
    if (strcmp(dirbase, "bin") == 0 && slash != NULL) {
        *slash = '\0';                  /* self is now the prefix */
        return plx_plugin_dir_from_bin(self, out, len);
    }
    if ((size_t)snprintf(out, len, "%s/%s", self, PLX_PLUGIN_SUBDIR) >= len)
        return PLX_ELIMIT;
    return PLX_OK;
}

/* ---- search path -------------------------------------------------------- */

static void plx_search_path_fini(plx_search_path *sp)
{
    free(sp->env);
    free(sp->dirs);
    memset(sp, 0, sizeof *sp);
}

static int plx_search_path_init(plx_search_path *sp, plx_err_t *err)
{
    const char *env = getenv("PLX_PLUGIN_PATH");
    size_t cap = 2;

    memset(sp, 0, sizeof *sp);
    if (env != NULL) {
        for (const char *c = env; *c; c++)
            cap += (*c == ':');
        sp->env = strdup(env);
        if (sp->env == NULL)
            return plx_err_set(err, PLX_ENOMEM, "plugin search path: out of memory");
    }
    sp->dirs = calloc(cap, sizeof *sp->dirs);
    if (sp->dirs == NULL) {
        plx_search_path_fini(sp);
        return plx_err_set(err, PLX_ENOMEM, "plugin search path: out of memory");
    }
    for (char *save = NULL, *d = sp->env ? strtok_r(sp->env, ":", &save) : NULL;
         d != NULL; d = strtok_r(NULL, ":", &save))
        sp->dirs[sp->ndirs++] = d;
    /* A process that cannot locate itself still honours PLX_PLUGIN_PATH. */
    if (plx_plugin_default_dir(sp->builtin, sizeof sp->builtin) == PLX_OK)
        sp->dirs[sp->ndirs++] = sp->builtin;
    return PLX_OK;
}

/* "dir1, dir2, ..." for error messages (truncated to fit). */
static void plx_search_path_describe(const plx_search_path *sp, char *out, size_t len)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sp->ndirs && used < len; i++) {
        int n = snprintf(out + used, len - used, "%s%s", i ? ", " : "", sp->dirs[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (sp->ndirs == 0)
        snprintf(out, len, "(no directories: PLX_PLUGIN_PATH unset and the "
                           "built-in directory could not be determined)");
}

/* lt_dlopenext tries PATH.la then PATH.so, or PATH itself if it bears one
 * of these extensions. Checking first tells "absent" from "unloadable". */
static bool plx_plugin_file_exists(const char *path)
{
    static const char *const exts[] = { "", ".la", ".so" };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    bool has_ext = dot != NULL && (slash == NULL || dot > slash) &&
                   (strcmp(dot, ".so") == 0 || strcmp(dot, ".la") == 0);
    char cand[PATH_MAX];

    for (size_t i = has_ext ? 0 : 1; i < (has_ext ? 1 : 3); i++) {
        if ((size_t)snprintf(cand, sizeof cand, "%s%s", path, exts[i]) >= sizeof cand)
            continue;
        if (access(cand, F_OK) == 0)
            return true;
    }
    return false;
}

/* ---- validation --------------------------------------------------------- */

static const char *plx_plugin_transport_missing(const plx_transport_ops *o)
{
    if (o->listen == NULL)    return "listen";
    if (o->accept == NULL)    return "accept";
    if (o->connect == NULL)   return "connect";
    if (o->handshake == NULL) return "handshake";
    if (o->recv == NULL)      return "recv";
    if (o->sendv == NULL)     return "sendv";
    if (o->close == NULL)     return "close";
    return NULL;
}

static const char *plx_plugin_launcher_missing(const plx_launcher_ops *o)
{
    if (o->start == NULL)   return "start";
    if (o->poll == NULL)    return "poll";
    if (o->signal == NULL)  return "signal";
    if (o->stop == NULL)    return "stop";
    if (o->destroy == NULL) return "destroy";
    return NULL;
}

/* A launcher's key table is read by cluster.conf validation and template
 * writing: it must end within PLX_LAUNCHER_KEYS_MAX entries and hold
 * names a cluster.conf line can spell, each with help text. */
static int plx_plugin_check_keys(const plx_launcher_ops *o, const char *path, plx_err_t *err)
{
    const plx_launcher_key *k;

    if (!PLX_OPS_HAS(o, plx_launcher_ops, keys))
        return PLX_OK;
    k = o->keys;
    for (size_t i = 0; i < PLX_LAUNCHER_KEYS_MAX; i++) {
        if (k[i].name == NULL)
            return PLX_OK;
        if (*k[i].name == '\0' || strspn(k[i].name, PLX_LAUNCHER_KEY_CHARS) != strlen(k[i].name))
            return plx_err_set(err, PLX_EINVAL, "plugin %s: key #%zu '%s' is not made of "
                               "[a-z0-9_.-]", path, i, k[i].name);
        if (k[i].help == NULL || k[i].example == NULL)
            return plx_err_set(err, PLX_EINVAL, "plugin %s: key '%s' has no help or example "
                               "(use \"\" for none)", path, k[i].name);
    }
    return plx_err_set(err, PLX_EINVAL, "plugin %s: key table has no end (an entry whose "
                       "name is NULL) within %d entries", path, PLX_LAUNCHER_KEYS_MAX);
}

static int plx_plugin_check_ops(const plx_plugin *d, const char *path, plx_err_t *err)
{
    size_t need = d->kind == PLX_PLUGIN_TRANSPORT ? PLX_TRANSPORT_OPS_V1_SIZE
                                                  : PLX_LAUNCHER_OPS_V1_SIZE;
    const char *missing;
    uint32_t size;

    if (d->ops == NULL)
        return plx_err_set(err, PLX_EINVAL, "plugin %s: descriptor has no ops table", path);
    /* Both ops structs start with their uint32_t size. */
    memcpy(&size, d->ops, sizeof size);
    if (size < need)
        return plx_err_set(err, PLX_EABI,
                           "plugin %s: ops table is %u bytes, a plugin ABI %d %s "
                           "table has at least %zu; rebuild it against this "
                           "plexa's headers", path, size, PLX_PLUGIN_ABI,
                           plx_plugin_kind_name(d->kind), need);
    missing = d->kind == PLX_PLUGIN_TRANSPORT
                  ? plx_plugin_transport_missing(d->ops)
                  : plx_plugin_launcher_missing(d->ops);
    if (missing != NULL)
        return plx_err_set(err, PLX_EINVAL, "plugin %s: required %s op '%s' is NULL",
                           path, plx_plugin_kind_name(d->kind), missing);
    if (d->kind == PLX_PLUGIN_LAUNCHER)
        return plx_plugin_check_keys(d->ops, path, err);
    return PLX_OK;
}

/* The file must be called plexa-KIND-NAME[.ext] for the descriptor's NAME,
 * so that lookups by name and the file a site admin sees agree. */
static int plx_plugin_check_name(const plx_plugin *d, const char *path,
                                 const char *expect_name, plx_err_t *err)
{
    const char *base = strrchr(path, '/');
    const char *kname = plx_plugin_kind_name(d->kind);
    char want[PLX_PLUGIN_NAME_MAX + 32];
    size_t blen;

    if (!plx_plugin_name_ok(d->name))
        return plx_err_set(err, PLX_EINVAL, "plugin %s: descriptor name is missing "
                           "or not made of [A-Za-z0-9_-]", path);
    if (expect_name != NULL && strcmp(expect_name, d->name) != 0)
        return plx_err_set(err, PLX_EINVAL, "plugin %s: declares name '%s', "
                           "expected '%s'", path, d->name, expect_name);
    base = base ? base + 1 : path;
    blen = strcspn(base, ".");
    snprintf(want, sizeof want, PLX_PLUGIN_PREFIX "%s-%s", kname, d->name);
    if (blen != strlen(want) || strncmp(base, want, blen) != 0)
        return plx_err_set(err, PLX_EINVAL, "plugin %s: declares name '%s', so "
                           "its file must be named %s.so", path, d->name, want);
    return PLX_OK;
}

static int plx_plugin_check(const plx_plugin *d, plx_plugin_kind kind,
                            const char *path, const char *expect_name, plx_err_t *err)
{
    int rc;

    /* abi first: nothing after it can be trusted on a mismatch. */
    if (d->abi != PLX_PLUGIN_ABI)
        return plx_err_set(err, PLX_EABI, "plugin %s: built against plugin ABI %u, "
                           "this plexa speaks %d; rebuild it against this plexa's "
                           "headers", path, d->abi, PLX_PLUGIN_ABI);
    if (d->kind != kind) {
        if (plx_plugin_kind_ok(d->kind))
            return plx_err_set(err, PLX_EINVAL, "plugin %s: is a %s plugin, not a %s plugin",
                               path, plx_plugin_kind_name(d->kind), plx_plugin_kind_name(kind));
        return plx_err_set(err, PLX_EINVAL, "plugin %s: unknown plugin kind %d, "
                           "expected a %s plugin", path, (int)d->kind,
                           plx_plugin_kind_name(kind));
    }
    rc = plx_plugin_check_name(d, path, expect_name, err);
    if (rc != PLX_OK)
        return rc;
    return plx_plugin_check_ops(d, path, err);
}

/* ---- registry ----------------------------------------------------------- */

static plx_plugin_entry *plx_plugin_find_locked(plx_plugin_kind kind, const char *name)
{
    for (plx_plugin_entry *e = plx_plugin_registry; e != NULL; e = e->next)
        if (e->kind == kind && strcmp(e->desc->name, name) == 0)
            return e;
    return NULL;
}

static int plx_plugin_ltdl_init_locked(plx_err_t *err)
{
    if (plx_plugin_ltdl_ready)
        return PLX_OK;
    if (lt_dlinit() != 0)
        return plx_err_set(err, PLX_EIO, "lt_dlinit: %s", lt_dlerror());
    plx_plugin_ltdl_ready = true;
    return PLX_OK;
}

/* The file lt_dlopenext would take for path (path itself, or path.so),
 * into out; false for none or a libtool archive (.la). */
static bool plx_plugin_object_file(const char *path, char *out, size_t len)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash) && strcmp(dot, ".la") == 0)
        return false;
    if (access(path, F_OK) == 0 && (size_t)snprintf(out, len, "%s", path) < len)
        return true;
    return (size_t)snprintf(out, len, "%s.so", path) < len && access(out, F_OK) == 0;
}

/* Why the object file will not load, in the dynamic linker's own words
 * ("invalid ELF header", "libfoo.so.1: cannot open shared object file"):
 * libltdl, which tries several names, only says "file not found". */
static const char *plx_plugin_dl_reason(const char *file)
{
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (h) {
        dlclose(h);
        return NULL;
    }
    return dlerror();
}

static int plx_plugin_open_locked(const char *path, lt_dlhandle *out, plx_err_t *err)
{
    lt_dladvise advise;
    lt_dlhandle h = NULL;
    const char *why;
    char file[PATH_MAX];

    if (!plx_plugin_file_exists(path))
        return plx_err_set(err, PLX_ENOTFOUND, "plugin %s: no such file "
                           "(also tried .so and .la)", path);
    bool object = plx_plugin_object_file(path, file, sizeof file);
    if (object) {
        int rc = plx_plugin_elf_check(file, err);
        if (rc != PLX_OK)
            return rc;
    }
    if (lt_dladvise_init(&advise) == 0) {
        /* local: every plugin exports the same symbol name. */
        if (lt_dladvise_ext(&advise) == 0 && lt_dladvise_local(&advise) == 0)
            h = lt_dlopenadvise(path, advise);
        lt_dladvise_destroy(&advise);
    }
    if (h == NULL) {
        why = lt_dlerror();
        const char *dl = object ? plx_plugin_dl_reason(file) : NULL;
        if (dl)
            return plx_err_set(err, PLX_EIO, "plugin %s cannot be loaded: %s", path, dl);
        return plx_err_set(err, PLX_EIO, "plugin %s: lt_dlopenext: %s", path,
                           why ? why : "unknown error");
    }
    *out = h;
    return PLX_OK;
}

/* Entry already holding this descriptor (same file opened again). */
static plx_plugin_entry *plx_plugin_find_desc_locked(const plx_plugin *d)
{
    for (plx_plugin_entry *e = plx_plugin_registry; e != NULL; e = e->next)
        if (e->desc == d)
            return e;
    return NULL;
}

static int plx_plugin_register_locked(lt_dlhandle h, const plx_plugin *d,
                                      const char *path, plx_plugin_entry **out,
                                      plx_err_t *err)
{
    plx_plugin_entry *e = plx_plugin_find_desc_locked(d);

    if (e != NULL) {
        lt_dlclose(h);          /* drop the extra reference; e keeps one */
        *out = e;
        return PLX_OK;
    }
    e = plx_plugin_find_locked(d->kind, d->name);
    if (e != NULL) {
        /* Message first: d->name is unmapped by the close. */
        int rc = plx_err_set(err, PLX_EINVAL, "plugin %s: a %s plugin named '%s' "
                             "is already loaded from %s", path,
                             plx_plugin_kind_name(d->kind), d->name, e->path);
        lt_dlclose(h);
        return rc;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL) {
        lt_dlclose(h);
        return plx_err_set(err, PLX_ENOMEM, "plugin %s: out of memory", path);
    }
    e->kind = d->kind;
    e->desc = d;
    e->handle = h;
    snprintf(e->path, sizeof e->path, "%s", path);
    e->next = plx_plugin_registry;
    plx_plugin_registry = e;
    *out = e;
    return PLX_OK;
}

static int plx_plugin_load_file_locked(const char *path, plx_plugin_kind kind,
                                       const char *expect_name,
                                       plx_plugin_entry **out, plx_err_t *err)
{
    const plx_plugin *d;
    lt_dlhandle h = NULL;
    int rc;

    rc = plx_plugin_ltdl_init_locked(err);
    if (rc != PLX_OK)
        return rc;
    rc = plx_plugin_open_locked(path, &h, err);
    if (rc != PLX_OK)
        return rc;
    d = lt_dlsym(h, PLX_PLUGIN_SYMBOL);
    if (d == NULL)
        rc = plx_err_set(err, PLX_EABI, "plugin %s: no symbol %s (not a plexa "
                         "plugin, or not written with PLX_PLUGIN_DEFINE)",
                         path, PLX_PLUGIN_SYMBOL);
    else
        rc = plx_plugin_check(d, kind, path, expect_name, err);
    if (rc != PLX_OK) {
        lt_dlclose(h);
        return rc;
    }
    return plx_plugin_register_locked(h, d, path, out, err);
}

/* ---- public API --------------------------------------------------------- */

int plx_plugin_load_file(const char *path, plx_plugin_kind kind,
                         const char *expect_name, const plx_plugin **out,
                         plx_err_t *err)
{
    char local[PATH_MAX];
    plx_plugin_entry *e = NULL;
    int rc;

    if (path == NULL || *path == '\0' || out == NULL || !plx_plugin_kind_ok(kind))
        return plx_err_set(err, PLX_EINVAL, "plx_plugin_load_file: invalid argument");
    /* Without a '/', libltdl would search library paths instead of cwd. */
    if (strchr(path, '/') == NULL) {
        snprintf(local, sizeof local, "./%s", path);
        path = local;
    }
    pthread_mutex_lock(&plx_plugin_mutex);
    rc = plx_plugin_load_file_locked(path, kind, expect_name, &e, err);
    pthread_mutex_unlock(&plx_plugin_mutex);
    if (rc == PLX_OK)
        *out = e->desc;
    return rc;
}

static int plx_plugin_search_locked(plx_plugin_kind kind, const char *name,
                                    plx_plugin_entry **out, plx_err_t *err)
{
    plx_search_path sp;
    char path[PATH_MAX];
    char where[PLX_ERR_MSG_MAX];
    int rc;

    rc = plx_search_path_init(&sp, err);
    if (rc != PLX_OK)
        return rc;
    for (size_t i = 0; i < sp.ndirs; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s/" PLX_PLUGIN_PREFIX "%s-%s",
                             sp.dirs[i], plx_plugin_kind_name(kind), name) >= sizeof path)
            continue;
        if (!plx_plugin_file_exists(path))
            continue;
        rc = plx_plugin_load_file_locked(path, kind, name, out, err);
        plx_search_path_fini(&sp);
        return rc;
    }
    plx_search_path_describe(&sp, where, sizeof where);
    rc = plx_err_set(err, PLX_ENOTFOUND, "%s plugin '%s' not found: no "
                     PLX_PLUGIN_PREFIX "%s-%s.so in %s (PLX_PLUGIN_PATH adds "
                     "directories)", plx_plugin_kind_name(kind), name,
                     plx_plugin_kind_name(kind), name, where);
    plx_search_path_fini(&sp);
    return rc;
}

static int plx_plugin_load_entry(plx_plugin_kind kind, const char *name,
                                 plx_plugin_entry **out, plx_err_t *err)
{
    int rc;

    if (!plx_plugin_kind_ok(kind))
        return plx_err_set(err, PLX_EINVAL, "unknown plugin kind %d", (int)kind);
    if (!plx_plugin_name_ok(name))
        return plx_err_set(err, PLX_EINVAL, "invalid %s plugin name '%s': use "
                           "[A-Za-z0-9_-], at most %d characters",
                           plx_plugin_kind_name(kind), name ? name : "(null)",
                           PLX_PLUGIN_NAME_MAX);
    pthread_mutex_lock(&plx_plugin_mutex);
    *out = plx_plugin_find_locked(kind, name);
    rc = *out != NULL ? PLX_OK : plx_plugin_search_locked(kind, name, out, err);
    pthread_mutex_unlock(&plx_plugin_mutex);
    return rc;
}

int plx_plugin_load(plx_plugin_kind kind, const char *name,
                    const plx_plugin **out, plx_err_t *err)
{
    plx_plugin_entry *e = NULL;
    int rc;

    if (out == NULL)
        return plx_err_set(err, PLX_EINVAL, "plx_plugin_load: out is NULL");
    rc = plx_plugin_load_entry(kind, name, &e, err);
    if (rc == PLX_OK)
        *out = e->desc;
    return rc;
}

const plx_transport_ops *plx_transport_find(const char *name, plx_err_t *err)
{
    const plx_plugin *p;

    if (plx_plugin_load(PLX_PLUGIN_TRANSPORT, name, &p, err) != PLX_OK)
        return NULL;
    return p->ops;
}

const plx_launcher_ops *plx_launcher_find(const char *name, plx_err_t *err)
{
    const plx_plugin *p;

    if (plx_plugin_load(PLX_PLUGIN_LAUNCHER, name, &p, err) != PLX_OK)
        return NULL;
    return p->ops;
}

const plx_launcher_key *plx_launcher_keys(const plx_launcher_ops *ops)
{
    if (ops == NULL || !PLX_OPS_HAS(ops, plx_launcher_ops, keys))
        return NULL;
    return ops->keys;
}

/* ---- listing ------------------------------------------------------------ */

typedef struct plx_name_set {
    char   (*names)[PLX_PLUGIN_NAME_MAX + 1];
    size_t n, cap;
} plx_name_set;

/* Adds name; false if it was already there, or if out of memory (the
 * name is then left out of the listing rather than listed twice). */
static bool plx_name_set_add(plx_name_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return false;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        void *p = realloc(s->names, cap * sizeof *s->names);
        if (p == NULL)
            return false;
        s->names = p;
        s->cap = cap;
    }
    snprintf(s->names[s->n++], sizeof *s->names, "%s", name);
    return true;
}

/* "plexa-KIND-NAME.so" -> NAME in out; false for any other file name. */
static bool plx_plugin_parse_file_name(const char *file, plx_plugin_kind kind,
                                       char *out, size_t len)
{
    char prefix[32];
    size_t plen, nlen;

    snprintf(prefix, sizeof prefix, PLX_PLUGIN_PREFIX "%s-", plx_plugin_kind_name(kind));
    plen = strlen(prefix);
    if (strncmp(file, prefix, plen) != 0)
        return false;
    nlen = strcspn(file + plen, ".");
    if (nlen == 0 || nlen >= len || strcmp(file + plen + nlen, ".so") != 0)
        return false;
    memcpy(out, file + plen, nlen);
    out[nlen] = '\0';
    return plx_plugin_name_ok(out);
}

static int plx_plugin_list_dir(const char *dir, plx_plugin_kind kind, plx_name_set *seen,
                               plx_plugin_seen_fn cb, void *ud)
{
    struct dirent **ents = NULL;
    char name[PLX_PLUGIN_NAME_MAX + 1], path[PATH_MAX];
    int n = scandir(dir, &ents, NULL, alphasort);
    int reported = 0;

    for (int i = 0; i < n; i++) {
        plx_plugin_entry *e;
        plx_err_t err = { 0 };
        /* The first directory holding a name decides, valid or not,
         * exactly as plx_plugin_load does. */
        if (plx_plugin_parse_file_name(ents[i]->d_name, kind, name, sizeof name) &&
            plx_name_set_add(seen, name)) {
            if (plx_plugin_load_entry(kind, name, &e, &err) == PLX_OK) {
                cb(e->desc, e->path, NULL, ud);
                reported++;
            } else {
                snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
                cb(NULL, path, err.msg, ud);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return reported;
}

int plx_plugin_survey(plx_plugin_kind kind, plx_plugin_seen_fn cb, void *ud)
{
    plx_search_path sp;
    plx_name_set seen = { 0 };
    int total = 0;
    int rc;

    if (cb == NULL || !plx_plugin_kind_ok(kind))
        return PLX_EINVAL;
    rc = plx_search_path_init(&sp, NULL);
    if (rc != PLX_OK)
        return rc;
    for (size_t i = 0; i < sp.ndirs; i++)
        total += plx_plugin_list_dir(sp.dirs[i], kind, &seen, cb, ud);
    free(seen.names);
    plx_search_path_fini(&sp);
    return total;
}

typedef struct {
    void (*cb)(const plx_plugin *p, const char *path, void *ud);
    void *ud;
} valid_only;

static void plx_plugin_valid_only(const plx_plugin *p, const char *path, const char *why,
                                  void *ud)
{
    const valid_only *v = ud;
    (void)why;
    if (p)
        v->cb(p, path, v->ud);
}

int plx_plugin_list(plx_plugin_kind kind,
                    void (*cb)(const plx_plugin *p, const char *path, void *ud),
                    void *ud)
{
    if (cb == NULL)
        return PLX_EINVAL;
    valid_only v = { cb, ud };
    return plx_plugin_survey(kind, plx_plugin_valid_only, &v);
}
