/* Large weight files read into huge-page memory or mapped (see weights_memory.h). */
#include "io/weights_memory.h"

#include "base/meminfo.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define READ_MIN_BYTES ((size_t)64 << 20)
#define PIECE ((size_t)64 << 20)
#define HUGE ((size_t)2 << 20)

/* "always [madvise] never": the selected mode is in brackets. */
static int thp_offered(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return 0;
    char buf[128] = "";
    const int ok = fgets(buf, sizeof buf, f) && (strstr(buf, "[always]") || strstr(buf, "[madvise]"));
    fclose(f);
    return ok;
}

static _Thread_local int g_prefer_read; /* each thread loads by its own rule */

int ld_weights_prefer_read(int on) {
    const int was = g_prefer_read;
    g_prefer_read = on;
    return was;
}

int ld_weights_should_read(const char *path, size_t size) {
    const char *mode = getenv("LEANDIFF_WEIGHTS");
    if (mode && !strcmp(mode, "mmap")) return 0;
    if (mode && !strcmp(mode, "read")) return size > 0;
    static int warned;
    const int set = mode && *mode;
    if (set && strcmp(mode, "auto") && !warned++)
        ld_log_warn("LEANDIFF_WEIGHTS='%s' is not mmap, read or auto: ignored", mode);
    if (!(set && !strcmp(mode, "auto")) && !g_prefer_read) return 0;
    if (size < READ_MIN_BYTES) return 0;
    if (!thp_offered()) {
        ld_log_debug("%s: mapped (no transparent huge pages)", path);
        return 0;
    }
    double avail = -1;
    char source[64];
    if (ld_memory_available(NULL, &avail, source, sizeof source) != LD_OK || avail < 2.0 * (double)size) {
        ld_log_debug("%s: mapped (%.2f GB is more than half of the %.2f GB available)", path, (double)size / 1e9,
                     avail / 1e9);
        return 0;
    }
    ld_log_debug("%s: read into huge-page memory (%.2f GB)", path, (double)size / 1e9);
    return 1;
}

void *ld_weights_mem_alloc(ld_ctx *ctx, const char *path, size_t n) {
    const size_t whole = (n + HUGE - 1) & ~(HUGE - 1);
    if (!n || whole < n || whole + HUGE < whole) {
        ld_fail(ctx, LD_ERR_NOMEM, "%s: cannot hold %zu bytes in memory", path, n);
        return NULL;
    }
    /* map 2 MB more, keep the 2 MB aligned middle */
    char *m = mmap(NULL, whole + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        ld_fail(ctx, LD_ERR_NOMEM, "%s: out of memory for %zu bytes of weights", path, n);
        return NULL;
    }
    char *p = (char *)(((uintptr_t)m + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    if (p > m) munmap(m, (size_t)(p - m));
    if (m + whole + HUGE > p + whole) munmap(p + whole, (size_t)(m + whole + HUGE - (p + whole)));
#ifdef MADV_HUGEPAGE
    madvise(p, whole, MADV_HUGEPAGE); /* advice: without it, ordinary pages */
#endif
    return p;
}

void ld_weights_mem_free(void *p, size_t n) {
    if (p && n) munmap(p, (n + HUGE - 1) & ~(HUGE - 1));
}

ld_status ld_read_all(ld_ctx *ctx, const char *path, int fd, void *dst, size_t n) {
    const long long pieces = (long long)((n + PIECE - 1) / PIECE);
    int err = 0, shortfile = 0;
    #pragma omp parallel for schedule(dynamic)
    for (long long p = 0; p < pieces; p++) {
        const size_t off = (size_t)p * PIECE, len = n - off < PIECE ? n - off : PIECE;
        size_t done = 0;
        while (done < len) {
            const ssize_t r = pread(fd, (char *)dst + off + done, len - done, (off_t)(off + done));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                #pragma omp atomic write
                err = errno;
            }
            if (r == 0) {
                #pragma omp atomic write
                shortfile = 1;
            }
            if (r <= 0) break;
            done += (size_t)r;
        }
    }
    if (err) return ld_fail(ctx, LD_ERR_IO, "%s: read failed: %s", path, strerror(err));
    if (shortfile) return ld_fail(ctx, LD_ERR_IO, "%s: file shrank while being read (expected %zu bytes)", path, n);
    return LD_OK;
}
