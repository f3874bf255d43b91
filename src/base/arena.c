/* Stack arena for activation memory (see arena.h). */
#include "base/arena.h"

#include <stdlib.h>
#include <string.h>

struct ld_arena_chunk {
    ld_arena_chunk *next; /* older chunk */
    size_t base;          /* logical offset of this chunk's first byte */
    size_t size;
    size_t top;           /* bytes used inside this chunk */
    unsigned char *data;
};

void ld_arena_init(ld_arena *a, size_t initial_bytes) {
    memset(a, 0, sizeof *a);
    if (initial_bytes) ld_arena_reserve(NULL, a, initial_bytes);
}

static void free_chunk(ld_arena_chunk *c) {
    ld_aligned_free(c->data);
    free(c);
}

static void free_list(ld_arena_chunk *c) {
    while (c) {
        ld_arena_chunk *n = c->next;
        free_chunk(c);
        c = n;
    }
}

void ld_arena_free(ld_arena *a) {
    free_list(a->chunks);
    free_list(a->spare);
    memset(a, 0, sizeof *a);
}

/* Makes c the newest chunk, starting at the current top. */
static void link_chunk(ld_arena *a, ld_arena_chunk *c) {
    c->base = a->used;
    c->top = 0;
    c->next = a->chunks;
    a->chunks = c;
    a->capacity += c->size;
}

static ld_status push_chunk(ld_ctx *ctx, ld_arena *a, size_t size) {
    ld_arena_chunk *c = calloc(1, sizeof *c);
    if (!c) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for an arena chunk");
    void *data;
    if (ld_aligned_alloc(ctx, &data, size, "activation arena") != LD_OK) {
        free(c);
        return LD_ERR_NOMEM;
    }
    c->data = data;
    c->size = size;
    link_chunk(a, c);
    return LD_OK;
}

/* Takes the smallest spare chunk of at least `need` bytes into use; 0 if none. */
static int reuse_spare(ld_arena *a, size_t need) {
    ld_arena_chunk **best = NULL;
    for (ld_arena_chunk **p = &a->spare; *p; p = &(*p)->next)
        if ((*p)->size >= need && (!best || (*p)->size < (*best)->size)) best = p;
    if (!best) return 0;
    ld_arena_chunk *c = *best;
    *best = c->next;
    link_chunk(a, c);
    return 1;
}

ld_status ld_arena_reserve(ld_ctx *ctx, ld_arena *a, size_t bytes) {
    if (a->used == 0) {
        /* Empty: replace all chunks by one big enough block. */
        size_t have = a->chunks && !a->chunks->next ? a->chunks->size : 0;
        free_list(a->spare);
        a->spare = NULL;
        if (have >= bytes) return LD_OK;
        free_list(a->chunks);
        a->chunks = NULL;
        a->capacity = 0;
        return push_chunk(ctx, a, bytes);
    }
    return LD_OK; /* in use: growth happens on demand */
}

size_t ld_arena_mark(const ld_arena *a) { return a->used; }

void ld_arena_reset(ld_arena *a, size_t mark) {
    if (mark > a->used) return;
    /* Chunks entirely above the mark become spares; the newest one stays if it is the only one. */
    while (a->chunks && a->chunks->base > mark && a->chunks->next) {
        ld_arena_chunk *c = a->chunks;
        a->chunks = c->next;
        a->capacity -= c->size;
        c->next = a->spare;
        a->spare = c;
    }
    ld_arena_chunk *c = a->chunks;
    if (c) {
        if (c->base > mark) c->base = mark; /* the only chunk: rebase it */
        c->top = mark - c->base;
    }
    a->used = mark;
}

void *ld_arena_alloc(ld_ctx *ctx, ld_arena *a, size_t bytes) {
    size_t need = (bytes + 63) & ~(size_t)63;
    if (need < bytes) {
        ld_fail(ctx, LD_ERR_NOMEM, "arena request of %zu bytes overflows", bytes);
        return NULL;
    }
    if (need == 0) need = 64;
    ld_arena_chunk *c = a->chunks;
    if (!c || c->size - c->top < need) {
        size_t size = need;
        size_t grow = a->capacity / 2;
        if (size < grow) size = grow;
        if (size < ((size_t)1 << 20)) size = (size_t)1 << 20;
        if (!reuse_spare(a, need) && push_chunk(ctx, a, size) != LD_OK) return NULL;
        c = a->chunks;
    }
    void *p = c->data + c->top;
    c->top += need;
    a->used = c->base + c->top;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}
