/* Registry of constant memory and the packed copies of weight operands made
 * from it (see gemm_cache.h). One mutex guards both; it is taken once or
 * twice per product, never inside the kernels. Copies are found through a
 * small open hash of their source pointer. */
#include "tensor/gemm_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/status.h"

typedef struct {
    const char *base;
    size_t len;
    int fd; /* a read copy of this file (offset 0 at base), MAPPING, or KEEP_PAGES */
} range;

#define MAPPING (-1)    /* a read-only file mapping: pages given back with MADV_DONTNEED */
#define KEEP_PAGES (-2) /* a read copy that is not page aligned: its pages stay */

typedef struct copy {
    ld_pack_key key;
    void *buf;
    size_t bytes;
    struct copy *next; /* same hash bucket */
} copy;

#define NBUCKET 4096

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static range *g_ranges;
static size_t g_nranges, g_cap;
static copy *g_bucket[NBUCKET];
static size_t g_copies, g_bytes;
static int g_enabled;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void read_env(void) {
    const char *e = getenv("LEANDIFF_PACK_CACHE");
    g_enabled = !(e && !strcmp(e, "0"));
}

static int enabled(void) {
    pthread_once(&g_once, read_env);
    return g_enabled;
}

static size_t bucket_of(const void *p) { return ((uintptr_t)p >> 6) * 2654435761u % NBUCKET; }

static int same_key(const ld_pack_key *a, const ld_pack_key *b) {
    return a->data == b->data && a->rows == b->rows && a->cols == b->cols && a->rs == b->rs && a->cs == b->cs &&
           a->dtype == b->dtype && a->kernel == b->kernel && a->kc == b->kc && a->mc == b->mc && a->which == b->which;
}

static void add_range(const void *base, size_t len, int fd) {
    if (!base || !len) return;
    pthread_mutex_lock(&g_lock);
    if (g_nranges == g_cap) {
        size_t cap = g_cap ? 2 * g_cap : 16;
        range *r = realloc(g_ranges, cap * sizeof *r);
        if (!r) { /* not registered: its operands are packed every time, as without the cache */
            pthread_mutex_unlock(&g_lock);
            return;
        }
        g_ranges = r;
        g_cap = cap;
    }
    g_ranges[g_nranges++] = (range){base, len, fd};
    pthread_mutex_unlock(&g_lock);
}

void ld_gemm_const_register(const void *base, size_t len) { add_range(base, len, MAPPING); }

void ld_gemm_const_register_copy(const void *base, size_t len, int fd) {
    const long ps = sysconf(_SC_PAGESIZE);
    add_range(base, len, ps > 0 && (uintptr_t)base % (uintptr_t)ps == 0 ? fd : KEEP_PAGES);
}

static int in_range(const range *r, const void *p, size_t bytes) {
    const char *c = p;
    return c >= r->base && bytes <= r->len && (size_t)(c - r->base) <= r->len - bytes;
}

void ld_gemm_const_unregister(const void *base, size_t len) {
    if (!base || !len) return;
    const range gone = {base, len, MAPPING};
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_nranges; i++)
        if (g_ranges[i].base == (const char *)base && g_ranges[i].len == len) {
            g_ranges[i] = g_ranges[--g_nranges];
            break;
        }
    for (size_t b = 0; b < NBUCKET; b++)
        for (copy **p = &g_bucket[b]; *p;) {
            copy *c = *p;
            if (in_range(&gone, c->key.data, 1)) {
                *p = c->next;
                if (c->buf) {
                    g_copies--;
                    g_bytes -= c->bytes;
                    ld_aligned_free(c->buf);
                }
                free(c);
            } else {
                p = &c->next;
            }
        }
    pthread_mutex_unlock(&g_lock);
}

/* under g_lock */
static const range *registered(const void *data, size_t bytes) {
    for (size_t i = 0; i < g_nranges; i++)
        if (in_range(&g_ranges[i], data, bytes)) return &g_ranges[i];
    return NULL;
}

int ld_gemm_cache_eligible(const void *data, size_t bytes) {
    if (!enabled() || !data || !bytes) return 0;
    pthread_mutex_lock(&g_lock);
    int r = registered(data, bytes) != NULL;
    pthread_mutex_unlock(&g_lock);
    return r;
}

/* under g_lock */
static copy *find(const ld_pack_key *key) {
    for (copy *c = g_bucket[bucket_of(key->data)]; c; c = c->next)
        if (same_key(&c->key, key)) return c;
    return NULL;
}

const void *ld_gemm_cache_find(const ld_pack_key *key, int *pack_now) {
    pthread_mutex_lock(&g_lock);
    copy *c = find(key);
    *pack_now = c != NULL; /* seen before: an entry without a buffer */
    if (!c && (c = malloc(sizeof *c))) { /* first sight: remember the key only */
        *c = (copy){*key, NULL, 0, g_bucket[bucket_of(key->data)]};
        g_bucket[bucket_of(key->data)] = c;
    }
    const void *buf = c ? c->buf : NULL;
    pthread_mutex_unlock(&g_lock);
    return buf;
}

void *ld_gemm_cache_alloc(size_t bytes) {
    void *p = NULL;
    return ld_aligned_alloc(NULL, &p, bytes, "packed weights") == LD_OK ? p : NULL;
}

/* Gives the source's whole pages back. In a read-only file mapping they are
 * clean pages, so a later read faults them in again from the file. A read
 * copy gets the file mapped over those pages instead (same bytes, read from
 * the file when touched again). A copy that is not page aligned keeps them. */
static void drop_source(const range *r, const void *data, size_t bytes) {
    const long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0 || r->fd == KEEP_PAGES) return;
    const uintptr_t lo = ((uintptr_t)data + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    const uintptr_t hi = ((uintptr_t)data + bytes) & ~((uintptr_t)ps - 1);
    if (hi <= lo) return;
    if (r->fd == MAPPING)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
    else /* failure leaves the copy's pages where they were */
        mmap((void *)lo, hi - lo, PROT_READ, MAP_PRIVATE | MAP_FIXED, r->fd, (off_t)(lo - (uintptr_t)r->base));
}

const void *ld_gemm_cache_insert(const ld_pack_key *key, void *buf, size_t bytes, size_t source_bytes) {
    copy *c = malloc(sizeof *c);
    pthread_mutex_lock(&g_lock);
    copy *had = find(key);
    const void *use = NULL;
    void *mine = buf; /* freed below when another thread's copy is used */
    const range *src = NULL;
    if (had && had->buf) {
        use = had->buf;
    } else if ((had || c) && (src = registered(key->data, source_bytes))) {
        if (had) { /* the entry of the first sight takes the copy */
            free(c);
            c = had;
            c->buf = buf;
            c->bytes = bytes;
        } else {
            *c = (copy){*key, buf, bytes, g_bucket[bucket_of(key->data)]};
            g_bucket[bucket_of(key->data)] = c;
        }
        g_copies++;
        g_bytes += bytes;
        use = buf;
        c = NULL;
        mine = NULL;
        drop_source(src, key->data, source_bytes);
    }
    pthread_mutex_unlock(&g_lock);
    free(c);
    if (use && mine) ld_aligned_free(mine);
    return use;
}

void ld_gemm_cache_source_read(const ld_pack_key *key, size_t source_bytes) {
    pthread_mutex_lock(&g_lock);
    const copy *c = find(key);
    const range *src = c && c->buf ? registered(key->data, source_bytes) : NULL;
    if (src) drop_source(src, key->data, source_bytes);
    pthread_mutex_unlock(&g_lock);
}

void ld_gemm_cache_stats(size_t *copies, size_t *bytes) {
    pthread_mutex_lock(&g_lock);
    if (copies) *copies = g_copies;
    if (bytes) *bytes = g_bytes;
    pthread_mutex_unlock(&g_lock);
}
