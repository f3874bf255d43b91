/* Process-wide FLOP and time counters (see flops.h). */
#include "base/flops.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static _Atomic uint64_t g_flops[LD_FLOPS_NCAT];
static _Atomic uint64_t g_ns[LD_FLOPS_NCAT];
static _Atomic uint64_t g_calls[LD_FLOPS_NCAT];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int valid(ld_flops_cat cat) { return (int)cat >= 0 && cat < LD_FLOPS_NCAT; }

void ld_flops_add(ld_flops_cat cat, uint64_t n) {
    if (!valid(cat)) return;
    atomic_fetch_add_explicit(&g_flops[cat], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_calls[cat], 1, memory_order_relaxed);
}

void ld_flops_reset(void) {
    for (int i = 0; i < LD_FLOPS_NCAT; i++) {
        atomic_store_explicit(&g_flops[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_ns[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_calls[i], 0, memory_order_relaxed);
    }
}

uint64_t ld_flops_get(ld_flops_cat cat) {
    return valid(cat) ? atomic_load_explicit(&g_flops[cat], memory_order_relaxed) : 0;
}

uint64_t ld_flops_total(void) {
    uint64_t s = 0;
    for (int i = 0; i < LD_FLOPS_NCAT; i++) s += atomic_load_explicit(&g_flops[i], memory_order_relaxed);
    return s;
}

double ld_flops_seconds(ld_flops_cat cat) {
    return valid(cat) ? (double)atomic_load_explicit(&g_ns[cat], memory_order_relaxed) * 1e-9 : 0.0;
}

uint64_t ld_flops_calls(ld_flops_cat cat) {
    return valid(cat) ? atomic_load_explicit(&g_calls[cat], memory_order_relaxed) : 0;
}

const char *ld_flops_cat_name(ld_flops_cat cat) {
    static const char *const names[LD_FLOPS_NCAT] = {"gemm", "conv", "attention", "direct_conv", "winograd"};
    return valid(cat) ? names[cat] : "?";
}

/* ---- per-shape split ---- */

static atomic_int g_shapes_on;
static pthread_mutex_t g_shape_lock = PTHREAD_MUTEX_INITIALIZER;
static ld_flops_shape g_shapes[LD_FLOPS_SHAPES_MAX + 1]; /* the last one sums the shapes that did not fit */
static int g_nshapes, g_overflow;

void ld_flops_shapes_enable(int on) { atomic_store(&g_shapes_on, on != 0); }

void ld_flops_shapes_reset(void) {
    pthread_mutex_lock(&g_shape_lock);
    memset(g_shapes, 0, sizeof g_shapes);
    g_nshapes = 0;
    g_overflow = 0;
    pthread_mutex_unlock(&g_shape_lock);
}

static void shape_add(const ld_flops_scope *s, uint64_t ns) {
    pthread_mutex_lock(&g_shape_lock);
    ld_flops_shape *e = NULL;
    for (int i = 0; i < g_nshapes && !e; i++)
        if (g_shapes[i].cat == s->cat && g_shapes[i].h == s->h && g_shapes[i].m == s->m && g_shapes[i].n == s->n &&
            g_shapes[i].k == s->k)
            e = &g_shapes[i];
    if (!e && g_nshapes < LD_FLOPS_SHAPES_MAX) {
        e = &g_shapes[g_nshapes++];
        *e = (ld_flops_shape){s->cat, s->h, s->m, s->n, s->k, 0, 0, 0};
    }
    if (!e) {
        e = &g_shapes[LD_FLOPS_SHAPES_MAX];
        if (!g_overflow) *e = (ld_flops_shape){LD_FLOPS_NCAT, 0, 0, 0, 0, 0, 0, 0};
        g_overflow = 1;
    }
    e->calls++;
    e->flops += s->flops;
    e->ns += ns;
    pthread_mutex_unlock(&g_shape_lock);
}

int ld_flops_shapes_get(ld_flops_shape *out, int max) {
    ld_flops_shape all[LD_FLOPS_SHAPES_MAX + 1];
    pthread_mutex_lock(&g_shape_lock);
    int n = g_nshapes;
    memcpy(all, g_shapes, sizeof(ld_flops_shape) * (size_t)n);
    if (g_overflow) all[n++] = g_shapes[LD_FLOPS_SHAPES_MAX];
    pthread_mutex_unlock(&g_shape_lock);
    /* insertion sort, most time first; stable, so ties keep the order of first sight */
    for (int i = 1; i < n; i++) {
        ld_flops_shape e = all[i];
        int j = i;
        for (; j > 0 && all[j - 1].ns < e.ns; j--) all[j] = all[j - 1];
        all[j] = e;
    }
    for (int i = 0; i < n && i < max; i++) out[i] = all[i];
    return n;
}

ld_flops_scope ld_flops_scope_begin(ld_flops_cat cat, uint64_t flops, int64_t h, int64_t m, int64_t n, int64_t k) {
    ld_flops_add(cat, flops);
    ld_flops_scope s = {cat, now_ns(), flops, h, m, n, k};
    return s;
}

void ld_flops_scope_end(ld_flops_scope *s) {
    if (!valid(s->cat)) return;
    const uint64_t ns = now_ns() - s->t0_ns;
    atomic_fetch_add_explicit(&g_ns[s->cat], ns, memory_order_relaxed);
    if (atomic_load_explicit(&g_shapes_on, memory_order_relaxed)) shape_add(s, ns);
}
