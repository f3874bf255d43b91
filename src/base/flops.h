/* Process-wide count of the arithmetic the engine executes, for `leandiff
 * bench` (effective GFLOP/s) and for per-op time breakdowns.
 *
 *     ld_flops_reset();
 *     ... run a model forward ...
 *     double gflop = ld_flops_total() * 1e-9;
 *     double t_gemm = ld_flops_seconds(LD_FLOPS_GEMM);  // wall time inside ld_gemm
 *
 * The compute entry points count themselves with one line at their top:
 *     LD_FLOPS_COUNT(LD_FLOPS_GEMM, 2 * M * N * K, 1, M, N, K);
 * which adds the FLOPs (2 per multiply-add) and the wall time of the call up
 * to its return (GCC/Clang cleanup attribute; elsewhere FLOPs only), and
 * names the call's shape for the per-shape split below. The
 * entry points are called from serial code, so their wall times add up
 * without double counting. Counted: ld_gemm (linears, 1x1 convolutions,
 * transposed convolutions), ld_gemm_fill_b (implicit-GEMM k x k
 * convolutions), ld_attention (QK^T and AV: 4*B*H*Lq*Lk*D) and the direct
 * path of ld_conv2d (depthwise: 2*B*Cout*Ho*Wo*kh*kw), its Winograd path
 * (the same 2*B*Cout*Ho*Wo*Cin*9 as the direct form: an effective rate). Norms, activations and
 * softmax are not counted, as in specs/anchors.md §6.
 */
#ifndef LD_BASE_FLOPS_H
#define LD_BASE_FLOPS_H

#include <stdint.h>

typedef enum {
    LD_FLOPS_GEMM = 0,    /* ld_gemm */
    LD_FLOPS_CONV,        /* ld_gemm_fill_b (implicit-GEMM convolutions) */
    LD_FLOPS_ATTENTION,   /* ld_attention */
    LD_FLOPS_DIRECT_CONV, /* ld_conv2d direct loop (depthwise) */
    LD_FLOPS_WINOGRAD,    /* ld_conv2d by Winograd F(2x2,3x3): the direct form's FLOPs (it does 4/9 of them) */
    LD_FLOPS_NCAT
} ld_flops_cat;

/* Adds n FLOPs to category cat (thread-safe, relaxed atomics). */
void ld_flops_add(ld_flops_cat cat, uint64_t n);
/* Zeroes every count and time. */
void ld_flops_reset(void);
/* FLOPs counted since the last reset: one category, or all. */
uint64_t ld_flops_get(ld_flops_cat cat);
uint64_t ld_flops_total(void);
/* Wall seconds spent inside the category's entry points, and its call count. */
double ld_flops_seconds(ld_flops_cat cat);
uint64_t ld_flops_calls(ld_flops_cat cat);
/* "gemm", "conv", "attention", "direct_conv", "winograd". */
const char *ld_flops_cat_name(ld_flops_cat cat);

/* Per-shape split (`leandiff bench --products`): while enabled, every
 * counted call adds its FLOPs, wall time and one call to the entry of its
 * (category, h, m, n, k): for products M x N x K with h = 1 (convolutions:
 * output channels x output pixels x input channels times taps; depthwise:
 * taps only), for attention batch x heads, queries, keys, head size. Up to
 * LD_FLOPS_SHAPES_MAX shapes; calls of further shapes (of any category) are
 * summed in one entry with cat = LD_FLOPS_NCAT and h = m = n = k = 0. Thread-safe (a mutex, taken only while
 * enabled). */
#define LD_FLOPS_SHAPES_MAX 256
typedef struct {
    ld_flops_cat cat;
    int64_t h, m, n, k;
    uint64_t calls, flops, ns;
} ld_flops_shape;
void ld_flops_shapes_enable(int on);
/* Forgets every entry (enabled or not). */
void ld_flops_shapes_reset(void);
/* Copies up to max entries, the most time first (ties: the order they were
 * first seen), into out; returns how many entries there are in all. */
int ld_flops_shapes_get(ld_flops_shape *out, int max);

/* Scope helper behind LD_FLOPS_COUNT (do not use directly). */
typedef struct {
    ld_flops_cat cat;
    uint64_t t0_ns, flops;
    int64_t h, m, n, k;
} ld_flops_scope;
ld_flops_scope ld_flops_scope_begin(ld_flops_cat cat, uint64_t flops, int64_t h, int64_t m, int64_t n, int64_t k);
void ld_flops_scope_end(ld_flops_scope *s);

#if defined(__GNUC__) || defined(__clang__)
#define LD_FLOPS_COUNT(cat, flops, h, m, n, k)                                                                   \
    ld_flops_scope ld_flops_scope_ __attribute__((cleanup(ld_flops_scope_end))) =                                 \
        ld_flops_scope_begin((cat), (uint64_t)(flops), (h), (m), (n), (k))
#else
#define LD_FLOPS_COUNT(cat, flops, h, m, n, k) ld_flops_add((cat), (uint64_t)(flops))
#endif

#endif
