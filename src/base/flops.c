/* Process-wide FLOP and time counters (see flops.h). */
#include "base/flops.h"

#include <stdatomic.h>
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

ld_flops_scope ld_flops_scope_begin(ld_flops_cat cat, uint64_t n) {
    ld_flops_add(cat, n);
    ld_flops_scope s = {cat, now_ns()};
    return s;
}

void ld_flops_scope_end(ld_flops_scope *s) {
    if (!valid(s->cat)) return;
    atomic_fetch_add_explicit(&g_ns[s->cat], now_ns() - s->t0_ns, memory_order_relaxed);
}
