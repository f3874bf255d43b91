/* Status codes, the error-message context, checked allocation and logging. */
#include "base/status.h"

#include <omp.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

const char *ld_status_name(ld_status st) {
    switch (st) {
    case LD_OK: return "ok";
    case LD_ERR_INVALID_ARGUMENT: return "invalid argument";
    case LD_ERR_IO: return "i/o error";
    case LD_ERR_FORMAT: return "malformed file";
    case LD_ERR_MODEL: return "model error";
    case LD_ERR_UNSUPPORTED: return "unsupported";
    case LD_ERR_NOMEM: return "out of memory";
    case LD_ERR_CANCELLED: return "cancelled";
    case LD_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

ld_ctx *ld_ctx_new(void) { return calloc(1, sizeof(ld_ctx)); }
void ld_ctx_free(ld_ctx *ctx) { free(ctx); }
const char *ld_ctx_error(const ld_ctx *ctx) { return ctx ? ctx->message : ""; }
ld_status ld_ctx_status(const ld_ctx *ctx) { return ctx ? ctx->status : LD_OK; }
void ld_ctx_clear_error(ld_ctx *ctx) {
    if (!ctx) return;
    ctx->status = LD_OK;
    ctx->message[0] = 0;
}

ld_status ld_fail(ld_ctx *ctx, ld_status st, const char *fmt, ...) {
    if (!ctx) return st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->message, sizeof ctx->message, fmt, ap);
    va_end(ap);
    ctx->status = st;
    return st;
}

ld_status ld_check_cancel(ld_ctx *ctx, const char *where) {
    if (!ctx || !ctx->cancel || !ctx->cancel(ctx->cancel_user)) return LD_OK;
    return ld_fail(ctx, LD_ERR_CANCELLED, "generation cancelled during the %s", where);
}

ld_status ld_prefix_error(ld_ctx *ctx, const char *fmt, ...) {
    if (!ctx) return LD_ERR_INTERNAL;
    char prefix[LD_ERROR_MAX], old[LD_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, ctx->message, sizeof old);
    size_t lp = strlen(prefix), lo = strlen(old);
    if (lp > sizeof ctx->message - 1) lp = sizeof ctx->message - 1;
    if (lo > sizeof ctx->message - 1 - lp) lo = sizeof ctx->message - 1 - lp;
    memcpy(ctx->message, prefix, lp);
    memcpy(ctx->message + lp, old, lo);
    ctx->message[lp + lo] = 0;
    return ctx->status == LD_OK ? LD_ERR_INTERNAL : ctx->status;
}

ld_status ld_malloc(ld_ctx *ctx, void **out, size_t bytes, const char *what) {
    *out = malloc(bytes ? bytes : 1);
    if (!*out) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
    return LD_OK;
}

ld_status ld_calloc(ld_ctx *ctx, void **out, size_t count, size_t size, const char *what) {
    *out = calloc(count ? count : 1, size ? size : 1);
    if (!*out) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return LD_OK;
}

/* Blocks of at least LARGE_BYTES (activation arenas, training buffers) are
 * 2 MB aligned and asked for transparent huge pages: the kernel then maps
 * them 2 MB at a time, 512x fewer page faults on first touch (a cold tiled
 * VAE decode faulted 0.9 M times, ~12 s of one core) and fewer TLB misses.
 * Where THP is off or absent this is an ordinary aligned block. */
#define HUGE_ALIGN ((size_t)2 << 20)
#define LARGE_BYTES ((size_t)4 << 20)

ld_status ld_aligned_alloc(ld_ctx *ctx, void **out, size_t bytes, const char *what) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return ld_fail(ctx, LD_ERR_NOMEM, "allocation size overflow for %s", what);
    if (rounded >= LARGE_BYTES) {
        /* aligned_alloc wants a multiple of the alignment; the pages past
         * `bytes` are never touched, so they cost address space only */
        size_t whole = (rounded + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1);
        if (whole < rounded) return ld_fail(ctx, LD_ERR_NOMEM, "allocation size overflow for %s", what);
        *out = aligned_alloc(HUGE_ALIGN, whole);
#ifdef MADV_HUGEPAGE
        /* huge pages for the whole 2 MB extents only: a huge page over the
         * tail would make the untouched rest of it resident too */
        if (*out) madvise(*out, rounded & ~(HUGE_ALIGN - 1), MADV_HUGEPAGE); /* advice: failure changes nothing */
#endif
    } else {
        *out = aligned_alloc(64, rounded ? rounded : 64);
    }
    if (!*out) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
    return LD_OK;
}

void ld_aligned_free(void *p) { free(p); }

ld_status ld_calloc_huge(ld_ctx *ctx, void **out, size_t bytes, const char *what) {
    LD_TRY(ld_calloc(ctx, out, 1, bytes, what));
#ifdef MADV_HUGEPAGE
    const uintptr_t lo = ((uintptr_t)*out + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1);
    const uintptr_t hi = ((uintptr_t)*out + bytes) & ~(uintptr_t)(HUGE_ALIGN - 1);
    if (bytes >= LARGE_BYTES && hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* advice only */
#endif
    return LD_OK;
}

/* ---- logging ---- */

static volatile int g_log_level = LD_LOG_WARN;
static ld_log_fn g_log_fn;
static void *g_log_user;

void ld_set_log_level(ld_log_level level) { g_log_level = level; }
ld_log_level ld_get_log_level(void) { return (ld_log_level)g_log_level; }
void ld_set_log_callback(ld_log_fn fn, void *user) {
    g_log_fn = fn;
    g_log_user = user;
}

void ld_log(ld_log_level level, const char *fmt, ...) {
    if ((int)level > g_log_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g_log_fn) {
        g_log_fn(g_log_user, level, buf);
        return;
    }
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "leandiff %s: %s\n", names[level], buf);
}

/* ---- threads ---- */

void ld_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
}
int ld_get_threads(void) { return omp_get_max_threads(); }

const char *ld_version(void) { return LD_VERSION; }
