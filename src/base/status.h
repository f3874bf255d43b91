/* Error reporting and logging inside the library.
 *
 * Every fallible function takes an ld_ctx and returns ld_status. To fail:
 *     return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", ...);
 * To add context while an error travels up:
 *     if ((st = load_unet(...)) != LD_OK) return ld_prefix_error(ctx, "unet/config.json: ");
 * Check-and-return helper:  LD_TRY(call);
 */
#ifndef LD_BASE_STATUS_H
#define LD_BASE_STATUS_H

#include "leandiff.h"
#include <stdarg.h>

#define LD_ERROR_MAX 1024

struct ld_ctx {
    ld_status status;
    char message[LD_ERROR_MAX];
    /* while ld_generate runs: the caller's ld_gen_params.cancel (polled by ld_check_cancel) */
    ld_cancel_fn cancel;
    void *cancel_user;
};

#if defined(__GNUC__)
#define LD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LD_PRINTF(a, b)
#endif

/* Records the failure on ctx (if not NULL) and returns st. */
ld_status ld_fail(ld_ctx *ctx, ld_status st, const char *fmt, ...) LD_PRINTF(3, 4);
/* Prepends text to the current message; returns the current status. */
ld_status ld_prefix_error(ld_ctx *ctx, const char *fmt, ...) LD_PRINTF(2, 3);

#define LD_TRY(expr)                         \
    do {                                     \
        ld_status ld_try_st_ = (expr);       \
        if (ld_try_st_ != LD_OK) return ld_try_st_; \
    } while (0)

/* LD_ERR_CANCELLED ("generation cancelled during the <where>") when the
 * caller's cancel callback asks to stop, else LD_OK. Models call it between
 * blocks of a forward, decoders between tiles, long attentions between
 * slices of queries, so a run stops within a fraction of a second. */
ld_status ld_check_cancel(ld_ctx *ctx, const char *where);

void ld_log(ld_log_level level, const char *fmt, ...) LD_PRINTF(2, 3);
#define ld_log_error(...) ld_log(LD_LOG_ERROR, __VA_ARGS__)
#define ld_log_warn(...) ld_log(LD_LOG_WARN, __VA_ARGS__)
#define ld_log_info(...) ld_log(LD_LOG_INFO, __VA_ARGS__)
#define ld_log_debug(...) ld_log(LD_LOG_DEBUG, __VA_ARGS__)

/* Checked allocation helpers: fail with LD_ERR_NOMEM naming what was allocated. */
ld_status ld_malloc(ld_ctx *ctx, void **out, size_t bytes, const char *what);
ld_status ld_calloc(ld_ctx *ctx, void **out, size_t count, size_t size, const char *what);
/* 64-byte aligned allocation (2 MB aligned with transparent huge pages
 * requested from 4 MB up), release with ld_aligned_free. */
ld_status ld_aligned_alloc(ld_ctx *ctx, void **out, size_t bytes, const char *what);
void ld_aligned_free(void *p);
/* calloc (release with free) whose whole 2 MB extents are asked for
 * transparent huge pages: for large state (training weights, gradients,
 * optimizer moments) whose first touch then takes a fault per 2 MB instead
 * of per 4 KB page, and that the kernel, not a memset, zeroes. */
ld_status ld_calloc_huge(ld_ctx *ctx, void **out, size_t bytes, const char *what);

/* a*b into *out without overflow; returns 0 on overflow. */
static inline int ld_mul_overflow_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

#endif
