/* Scratch arena for activations: a stack of 64-byte aligned blocks.
 *
 *     ld_arena a; ld_arena_init(&a, 0);
 *     size_t mark = ld_arena_mark(&a);
 *     float *h = ld_arena_alloc_f32(ctx, &a, n);  // NULL + error on ctx on failure
 *     ...
 *     ld_arena_reset(&a, mark);                   // frees everything after mark
 *     ld_arena_free(&a);
 *
 * The arena grows by chunks when it runs out and remembers its peak; calling
 * ld_arena_reserve(&a, a.peak) after a first pass (the memory plan for this
 * resolution) makes later passes allocation-free with one contiguous block,
 * and reserving a model's own estimate before the first pass makes even that
 * one allocation-free. Chunks a reset leaves unused are kept as spares and
 * reused by later growth (a pass repeated before the reserve, e.g. the tiles
 * of a tiled VAE decode, touches its fresh pages once, not once per tile);
 * ld_arena_reserve and ld_arena_free release them.
 */
#ifndef LD_BASE_ARENA_H
#define LD_BASE_ARENA_H

#include "base/status.h"
#include <stddef.h>

typedef struct ld_arena_chunk ld_arena_chunk;

typedef struct {
    ld_arena_chunk *chunks; /* newest first */
    ld_arena_chunk *spare;  /* chunks popped by a reset, kept for reuse */
    size_t used;            /* bytes in use over all chunks (logical stack top) */
    size_t peak;            /* largest `used` seen */
    size_t capacity;        /* bytes reserved over all chunks in use (spares not counted) */
} ld_arena;

void ld_arena_init(ld_arena *a, size_t initial_bytes);
void ld_arena_free(ld_arena *a);
/* Make sure one chunk can hold `bytes` from the bottom (drops chunks when empty). */
ld_status ld_arena_reserve(ld_ctx *ctx, ld_arena *a, size_t bytes);
size_t ld_arena_mark(const ld_arena *a);
void ld_arena_reset(ld_arena *a, size_t mark);
void *ld_arena_alloc(ld_ctx *ctx, ld_arena *a, size_t bytes);
static inline float *ld_arena_alloc_f32(ld_ctx *ctx, ld_arena *a, size_t count) {
    size_t bytes;
    if (!ld_mul_overflow_size(count, sizeof(float), &bytes)) {
        ld_fail(ctx, LD_ERR_NOMEM, "arena request of %zu floats overflows", count);
        return NULL;
    }
    return (float *)ld_arena_alloc(ctx, a, bytes);
}
/* p = n floats from the arena, or return LD_ERR_NOMEM from the enclosing
 * function (the error is on ctx). */
#define LD_ARENA_F32(p, ctx, a, n)                                   \
    do {                                                             \
        if (!((p) = ld_arena_alloc_f32((ctx), (a), (size_t)(n))))    \
            return LD_ERR_NOMEM;                                     \
    } while (0)

#endif
