/* Shared-memory regions; see plx_region.h. */
#include "plx_region.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plx_time.h"

/* The seals a region must carry before anyone maps it: with them the
 * file can never become shorter than a mapping of it. */
#define REGION_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

struct plx_region {
    atomic_int         refs;
    int                fd;       /* -1 once closed (PRIVATE) */
    uint8_t           *map;      /* this process's mapping */
    size_t             maplen;
    uint64_t           file_off; /* where in the file the mapping starts */
    plx_region_kind_t  kind;
    atomic_int         reusable; /* a copy (plx_region_copy) every receiver of which was lent a locked descriptor */
    int                scratch;  /* plx_region_scratch's: the user's own memory, never lent */
    double             idle_since;   /* in the pool: since when */
    struct plx_region *prev, *next;   /* the registry (by address) */
    struct plx_region *pool_next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static plx_region_t *reg_head;
static size_t reg_count;


/*
 * The pool: copies' regions whose last view here went, kept mapped for the
 * next copy. Fresh pages cost far more than the copy itself (zeroing, and
 * on virtual machines a trip to the hypervisor per page), so a push that
 * reuses a region costs a memcpy. A region may be reused only once no
 * other process maps it: every descriptor lent out (plx_region_lend) is a
 * file description of its own holding a read lock (OFD lock) that lives
 * as long as anything refers to that description (the descriptor in
 * flight, the receiver's descriptor, its mapping), so the region is free
 * exactly when a write lock over it could be taken.
 */
static plx_region_t *pool_head;
static size_t pool_bytes, pool_max;   /* off until plx_region_pool_set_max */
static size_t pool_count;

/* Descriptors of received copy-on-write regions kept open (see
 * plx_region_adopt), and how many may be: past that, the next ones are
 * closed and their values copied when sent on. */
static atomic_int private_fds;
#define PRIVATE_FDS_MAX 256
/* Each pooled region keeps a descriptor open: a bound on how many. */
#define POOL_REGIONS_MAX 64

static void registry_add(plx_region_t *r)
{
    pthread_mutex_lock(&reg_mu);
    r->next = reg_head;
    if (reg_head)
        reg_head->prev = r;
    reg_head = r;
    reg_count++;
    pthread_mutex_unlock(&reg_mu);
}

static void registry_remove(plx_region_t *r)
{
    pthread_mutex_lock(&reg_mu);
    if (r->prev)
        r->prev->next = r->next;
    else
        reg_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    reg_count--;
    pthread_mutex_unlock(&reg_mu);
}

size_t plx_region_live(void)
{
    pthread_mutex_lock(&reg_mu);
    size_t n = reg_count - pool_count;
    pthread_mutex_unlock(&reg_mu);
    return n;
}

static plx_region_t *region_alloc(int fd, uint8_t *map, size_t maplen, uint64_t file_off,
                                  plx_region_kind_t kind)
{
    plx_region_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    atomic_init(&r->reusable, 0);
    r->fd = fd;
    r->map = map;
    r->maplen = maplen;
    r->file_off = file_off;
    r->kind = kind;
    registry_add(r);
    return r;
}

static void region_free(plx_region_t *r)
{
    registry_remove(r);
    munmap(r->map, r->maplen);
    if (r->fd >= 0) {
        close(r->fd);
        if (r->kind == PLX_REGION_PRIVATE)
            atomic_fetch_sub(&private_fds, 1);
    }
    free(r);
}

/*
 * Has this process written to [p, p + len) of its copy-on-write mapping of
 * a received region? A page written is a page of its own (anonymous) in
 * place of the file's: /proc/self/pagemap says which (bit 63 present, 62
 * swapped, 61 file page). Unwritten, the bytes are the file's, and the
 * region can be sent on as it is. When pagemap cannot be read: written.
 */
static int private_unwritten(const uint8_t *p, size_t len)
{
    static pthread_mutex_t pm_mu = PTHREAD_MUTEX_INITIALIZER;
    static int pm_fd = -2;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), first = (uintptr_t)p / page;
    uint64_t n = ((uintptr_t)p + len + page - 1) / page - first, e[512];
    int clean = 1;
    pthread_mutex_lock(&pm_mu);
    if (pm_fd == -2)
        pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    for (uint64_t i = 0; clean && i < n;) {
        size_t k = n - i < 512 ? (size_t)(n - i) : 512;
        ssize_t got = pm_fd < 0 ? -1 : pread(pm_fd, e, k * 8, (off_t)((first + i) * 8));
        if (got != (ssize_t)(k * 8)) {
            clean = 0;
            break;
        }
        for (size_t j = 0; j < k && clean; j++)
            clean = !(e[j] >> 62 & 1) && (!(e[j] >> 63 & 1) || (e[j] >> 61 & 1));
        i += k;
    }
    pthread_mutex_unlock(&pm_mu);
    return clean;
}

/* Can b go by its region's descriptor as it is? */
static int sendable(const plx_buf_t *b)
{
    const plx_region_t *r = b->region;
    if (!r || r->fd < 0 || r->scratch)
        return 0;
    return r->kind != PLX_REGION_PRIVATE || private_unwritten(b->data, b->len);
}

/* Take pooled regions out, the longest idle first, until need more bytes
 * fit under the bound; returns them as a list to free outside the lock. */
static plx_region_t *pool_make_room_locked(size_t need)
{
    plx_region_t *drop = NULL;
    while (pool_head && (pool_bytes + need > pool_max || pool_count >= POOL_REGIONS_MAX)) {
        /* The list is newest first: its tail has been idle longest. */
        plx_region_t **pp = &pool_head;
        while ((*pp)->pool_next)
            pp = &(*pp)->pool_next;
        plx_region_t *r = *pp;
        *pp = NULL;
        pool_bytes -= r->maplen;
        pool_count--;
        r->pool_next = drop;
        drop = r;
    }
    return drop;
}

static void free_list(plx_region_t *drop)
{
    while (drop) {
        plx_region_t *r = drop;
        drop = r->pool_next;
        region_free(r);
    }
}

/* Keep r for a later copy, making room for it by giving up the regions
 * idle longest: the latest sizes are the likeliest to come again. */
static int pool_put(plx_region_t *r)
{
    if (!atomic_load(&r->reusable))
        return 0;
    pthread_mutex_lock(&reg_mu);
    int keep = r->maplen <= pool_max;
    plx_region_t *drop = keep ? pool_make_room_locked(r->maplen) : NULL;
    if (keep) {
        r->idle_since = plx_now_s();
        r->pool_next = pool_head;
        pool_head = r;
        pool_bytes += r->maplen;
        pool_count++;
    }
    pthread_mutex_unlock(&reg_mu);
    free_list(drop);
    return keep;
}

/* Does no other process map r (no lent description still holds its lock)? */
static int region_unshared(const plx_region_t *r)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    return fcntl(r->fd, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_UNLCK;
}

/* The smallest pooled region of at least len bytes (and not wastefully
 * larger) that nobody maps any more, taken out of the pool with one
 * reference; NULL if none. Smallest, so that a big one stays for a big
 * need: a gather's join after the scatter copies of its halves. */
static plx_region_t *pool_take(size_t len)
{
    plx_region_t **best = NULL;
    pthread_mutex_lock(&reg_mu);
    for (plx_region_t **pp = &pool_head; *pp; pp = &(*pp)->pool_next) {
        plx_region_t *r = *pp;
        if (r->maplen < len || r->maplen / 2 > len || (best && (*best)->maplen <= r->maplen) ||
            !region_unshared(r))
            continue;
        best = pp;
    }
    plx_region_t *got = best ? *best : NULL;
    if (got) {
        *best = got->pool_next;
        pool_bytes -= got->maplen;
        pool_count--;
        atomic_store(&got->refs, 1);
    }
    pthread_mutex_unlock(&reg_mu);
    return got;
}

void plx_region_pool_set_max(size_t max_bytes)
{
    pthread_mutex_lock(&reg_mu);
    pool_max = max_bytes;
    pthread_mutex_unlock(&reg_mu);
    plx_region_pool_trim(1e300);   /* only what is over the new bound */
}

void plx_region_pool_trim(double idle_s)
{
    plx_region_t *drop = NULL;
    double t = plx_now_s();
    pthread_mutex_lock(&reg_mu);
    for (plx_region_t **pp = &pool_head; *pp;) {
        plx_region_t *r = *pp;
        if (t - r->idle_since >= idle_s || pool_bytes > pool_max) {
            *pp = r->pool_next;
            pool_bytes -= r->maplen;
            pool_count--;
            r->pool_next = drop;
            drop = r;
        } else {
            pp = &r->pool_next;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    free_list(drop);
}

void plx_region_unref(plx_region_t **rp)
{
    plx_region_t *r = *rp;
    if (!r)
        return;
    *rp = NULL;
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (!pool_put(r))
        region_free(r);
}

int plx_region_lend(const plx_buf_t *b, uint64_t *off)
{
    plx_region_t *r = b->region;
    if (!sendable(b))
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", r->fd);
    /* Read-only: what receivers may do with it is read and map privately. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        /* No /proc, or no locks: lend the region's own description, and
         * never reuse the region, since we could not tell when it is free. */
        atomic_store(&r->reusable, 0);
        fd = fcntl(r->fd, F_DUPFD_CLOEXEC, 0);
    }
    *off = b->region_off;
    return fd;
}

int plx_region_new(size_t len, plx_region_t **out, plx_err_t *err)
{
    *out = NULL;
    if (len == 0)
        return plx_err_set(err, PLX_EINVAL, "region: an empty region");
    int fd = memfd_create("plexa", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return plx_err_set(err, PLX_EIO, "region: memfd_create: %s", strerror(errno));
    if (ftruncate(fd, (off_t)len) != 0 || fcntl(fd, F_ADD_SEALS, REGION_SEALS) != 0) {
        int e = errno;
        close(fd);
        return plx_err_set(err, e == ENOSPC || e == ENOMEM ? PLX_ENOMEM : PLX_EIO,
                           "region: sizing a memfd of %zu bytes: %s", len, strerror(e));
    }
    /* Populated now: one call maps every page, where touching them one by
     * one would take a fault each. */
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        close(fd);
        return plx_err_set(err, PLX_ENOMEM, "region: mapping %zu bytes: %s", len, strerror(e));
    }
    *out = region_alloc(fd, map, len, 0, PLX_REGION_OWN);
    if (!*out) {
        munmap(map, len);
        close(fd);
        return plx_err_set(err, PLX_ENOMEM, "region: out of memory");
    }
    return PLX_OK;
}

static void view_release(void *ctx, uint8_t *data, size_t len)
{
    (void)ctx, (void)data, (void)len;   /* the region goes with b->region */
}

plx_buf_t *plx_region_view(plx_region_t *r, size_t off, size_t len)
{
    if (off > r->maplen || len > r->maplen - off)
        return NULL;
    plx_buf_t *b = plx_buf_wrap(r->map + off, len, view_release, NULL);
    if (!b)
        return NULL;
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    b->region = r;
    b->region_off = r->file_off + off;
    return b;
}

/* A region of at least len bytes for a copy or a scratch buffer: a pooled
 * one (its pages mapped already) or a new one; reusable once freed. */
static int region_for_copy(size_t len, int scratch, plx_region_t **out, plx_err_t *err)
{
    plx_region_t *r = len ? pool_take(len) : NULL;
    if (!r) {
        int rc = plx_region_new(len, &r, err);
        if (rc != PLX_OK)
            return rc;
        atomic_store(&r->reusable, 1);
    }
    r->scratch = scratch;   /* ours alone until a view is handed out */
    *out = r;
    return PLX_OK;
}

static int one_view(plx_region_t *r, size_t len, plx_buf_t **out, plx_err_t *err)
{
    *out = plx_region_view(r, 0, len);
    plx_region_unref(&r);
    return *out ? PLX_OK : plx_err_set(err, PLX_ENOMEM, "region: out of memory");
}

int plx_region_copy(const void *data, size_t len, plx_buf_t **out, plx_err_t *err)
{
    plx_region_t *r = NULL;
    *out = NULL;
    int rc = region_for_copy(len, 0, &r, err);
    if (rc != PLX_OK)
        return rc;
    memcpy(r->map, data, len);
    return one_view(r, len, out, err);
}

int plx_region_scratch(size_t len, plx_buf_t **out, plx_err_t *err)
{
    plx_region_t *r = NULL;
    *out = NULL;
    if (len == 0)
        return plx_err_set(err, PLX_EINVAL, "region: a scratch buffer of 0 bytes");
    int rc = region_for_copy(len, 1, &r, err);
    return rc == PLX_OK ? one_view(r, len, out, err) : rc;
}

void plx_region_read(const void *src, size_t len, void *dst)
{
    plx_buf_t b = {.data = (uint8_t *)src, .len = len};
    size_t got = 0;
    if (len && plx_region_attach(&b) && sendable(&b)) {
        /* The file holds what the view shows: read it from there, which
         * costs the kernel's copy and no fault on the view's fresh pages. */
        while (got < len) {
            ssize_t n = pread(b.region->fd, (uint8_t *)dst + got, len - got,
                              (off_t)(b.region_off + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    if (got < len)
        memcpy((uint8_t *)dst + got, (const uint8_t *)src + got, len - got);
    plx_region_unref(&b.region);
}

/* Is fd something we may map for off + len bytes: a memfd of ours whose
 * seals keep it from shrinking? */
static int check_received(int fd, uint64_t off, uint64_t len, plx_err_t *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return plx_err_set(err, PLX_EIO, "region: fstat of a received descriptor: %s",
                           strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
        return plx_err_set(err, PLX_EPROTO, "region: the descriptor received is not a "
                           "memory file of this user");
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_SEAL)) != (F_SEAL_SHRINK | F_SEAL_SEAL))
        return plx_err_set(err, PLX_EPROTO, "region: the memory file received is not sealed "
                           "against shrinking: refusing to map it");
    if (len == 0 || off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off)
        return plx_err_set(err, PLX_EPROTO, "region: %llu bytes at %llu do not fit the "
                           "%llu-byte memory file received", (unsigned long long)len,
                           (unsigned long long)off, (unsigned long long)st.st_size);
    return PLX_OK;
}

int plx_region_adopt(int fd, uint64_t off, uint64_t len, plx_region_kind_t kind,
                     plx_buf_t **out, plx_err_t *err)
{
    *out = NULL;
    int rc = check_received(fd, off, len, err);
    if (rc != PLX_OK) {
        close(fd);
        return rc;
    }
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t start = off - off % page;
    size_t maplen = (size_t)(len + (off - start));
    int priv = kind == PLX_REGION_PRIVATE;
    void *map = mmap(NULL, maplen, priv ? PROT_READ | PROT_WRITE : PROT_READ,
                     priv ? MAP_PRIVATE : MAP_SHARED, fd, (off_t)start);
    if (map == MAP_FAILED) {
        int e = errno;
        close(fd);
        return plx_err_set(err, PLX_ENOMEM, "region: mapping %llu received bytes: %s",
                           (unsigned long long)len, strerror(e));
    }
    if (priv) {
        /* What the receiver's code reads it will read all of, as a whole
         * array: one call maps every page (read-only until written, so
         * nothing is copied), where touching them would take a fault
         * each. Best effort: a kernel before 5.14 says EINVAL. */
        madvise(map, maplen, MADV_POPULATE_READ);
        /* Kept, a bounded number of them, so that a value sent on
         * unchanged (a pull of what was pushed) goes by descriptor too. */
        if (atomic_fetch_add(&private_fds, 1) >= PRIVATE_FDS_MAX) {
            atomic_fetch_sub(&private_fds, 1);
            close(fd);
            fd = -1;
        }
    }
    plx_region_t *r = region_alloc(fd, map, maplen, start, kind);
    if (!r) {
        munmap(map, maplen);
        if (fd >= 0) {
            close(fd);
            if (priv)
                atomic_fetch_sub(&private_fds, 1);
        }
        return plx_err_set(err, PLX_ENOMEM, "region: out of memory");
    }
    *out = plx_region_view(r, (size_t)(off - start), (size_t)len);
    plx_region_unref(&r);
    return *out ? PLX_OK : plx_err_set(err, PLX_ENOMEM, "region: out of memory");
}

int plx_region_fd_of(const plx_buf_t *b, uint64_t *off)
{
    const plx_region_t *r = b->region;
    if (!sendable(b))
        return -1;
    *off = b->region_off;
    return r->fd;
}

int plx_region_attach(plx_buf_t *b)
{
    if (b->region)
        return 1;
    const uint8_t *p = b->data;
    int found = 0;
    pthread_mutex_lock(&reg_mu);
    for (plx_region_t *r = reg_head; r; r = r->next) {
        if (r->fd < 0 || p < r->map || p > r->map + r->maplen ||
            b->len > (size_t)(r->map + r->maplen - p))
            continue;
        /* A region whose last reference is going is not taken back. */
        int n = atomic_load_explicit(&r->refs, memory_order_relaxed);
        while (n > 0 && !atomic_compare_exchange_weak(&r->refs, &n, n + 1))
            ;
        if (n == 0)
            continue;
        b->region = r;
        b->region_off = r->file_off + (uint64_t)(p - r->map);
        found = 1;
        break;
    }
    pthread_mutex_unlock(&reg_mu);
    return found;
}
