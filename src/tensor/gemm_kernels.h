/* Internal interface between the GEMM driver (gemm.c: dispatch, blocking,
 * packing, threading) and the micro-kernels (gemm_avx512.c, gemm_avx2.c,
 * gemm_neon.c, and the portable one in gemm.c). Not part of the public API.
 *
 * Packed layouts, for a block of kc values of k:
 *  f32 kernels:  A panel  a[k*MR + i]        (MR rows of A, k-major)
 *                B panel  b[k*NR + j]        (NR columns of B, k-major)
 *  bf16 kernels: k is taken in pairs p = k/2 (kc rounded up to even, zero pad)
 *                A panel  a[(p*MR + i)*2 + (k&1)]   (uint16 bf16)
 *                B panel  b[(p*NR + j)*2 + (k&1)]
 * Rows/columns past the edge of the matrix are packed as zeros.
 *
 * A micro-kernel computes the MR x NR tile
 *     c[i*ldc + j] = (load ? c[i*ldc + j] : 0) + sum_k a(i,k) b(k,j)
 * summing k in increasing order with one fused multiply-add per product
 * (bf16: vdpbf16ps pairs), so a tile's result never depends on threads.
 */
#ifndef LD_TENSOR_GEMM_KERNELS_H
#define LD_TENSOR_GEMM_KERNELS_H

#include <stdint.h>

#include "tensor/tensor.h"

typedef void (*ld_gemm_micro_fn)(int64_t kc, const void *a, const void *b, float *c, int64_t ldc, int load);
/* The micro-kernel for a product's last k block, with the biases added to
 * the sums before they are stored: c = (sum + bn[x]) + bm[i] (bn: the NR
 * column biases, bm: the MR row biases; either may be NULL), the order of
 * ld_gemm_reference. Saves a pass over C after the tile. */
typedef void (*ld_gemm_micro_bias_fn)(int64_t kc, const void *a, const void *b, float *c, int64_t ldc, int load,
                                      const float *bn, const float *bm);
/* A stack of np micro-tiles against one B panel: A panels a, a + astride
 * bytes, ...; tile t stored whole at c + t*MR*NR (row i at + i*NR), the
 * micro-kernel's sum each (load: added to what c holds). For attention's
 * short products, where one call per tile cost its setup every MR rows. */
typedef void (*ld_gemm_stack_fn)(int64_t np, int64_t kc, const void *a, int64_t astride, const void *b, float *c,
                                 int load);
/* dst[0..n) = f32(src[offset..offset+n)) for a float dtype. */
typedef void (*ld_gemm_convert_fn)(float *dst, const void *src, ld_dtype dtype, int64_t offset, int64_t n);
/* f32 tile rows k < kc of W floats, ld apart -> bf16 pairs
 * dst[(p*W + x)*2 + (k&1)] (round to nearest even), odd kc padded with zeros. */
typedef void (*ld_gemm_to_pairs_fn)(const float *tile, int64_t ld, int64_t kc, int W, uint16_t *dst);
/* Direct bf16-pair packing from the source, without the f32 tile:
 *     dst[(p*W + x)*2 + (k&1)] = bf16(data[base + k*sk + x*sx])
 * for k < kc, x < n <= W; columns n..W-1 and the odd-kc pad are zeros.
 * Returns 0 (nothing written) for stride patterns it does not handle; the
 * AVX-512 one handles k contiguous (sk == 1) and x contiguous (sx == 1). */
typedef int (*ld_gemm_pack_pairs_fn)(uint16_t *dst, const void *data, ld_dtype dtype, int64_t base, int64_t sk,
                                     int64_t sx, int64_t kc, int64_t n, int W);

/* Transposing gather: tile[k*W + x] = f32(data[base + x*sx + k]) for k < kc,
 * x < n <= W (k contiguous in memory); columns n..W-1 are left to the caller,
 * and nothing past column W - 1 of a row is written, whatever W (attention
 * gathers rows of D floats). */
typedef void (*ld_gemm_gather_t_fn)(float *tile, const void *data, ld_dtype dtype, int64_t base, int64_t sx,
                                    int64_t kc, int64_t n, int W);
/* Row gather: tile[k*W + x] = f32(data[base + k*sk + x]) for k < kc, x < n <=
 * W (x contiguous in memory), in one call for the whole panel; columns
 * n..W-1 are left to the caller. */
typedef void (*ld_gemm_gather_rows_fn)(float *tile, const void *data, ld_dtype dtype, int64_t base, int64_t sk,
                                       int64_t kc, int64_t n, int W);

/* One online-softmax step over a block of keys for NR query columns (see
 * gemm_attention.c): st holds scores [nk rows = keys][NR columns = queries];
 * per column q: mn = max(m[q], max_k st), st = exp(st - mn) (exactly 0 for
 * -inf), alpha = exp(m[q] - mn) (0 when m[q] is -inf), l[q] = l[q]*alpha +
 * sum_k st, ot[d*NR + q] *= alpha for d < dp, m[q] = mn. A column with only
 * -inf scores stays at m = -inf, l = 0 and st = 0. */
typedef void (*ld_gemm_softmax_fn)(float *st, int64_t nk, int NR, float *m, float *l, float *ot, int64_t dp);
/* The same step for bf16 kernels, with P^T written only as the bf16-pair B
 * panel pp[(p*NR + q)*2 + (k&1)] (rounded to nearest even from the f32
 * exps that are summed into l; an odd nk padded with zeros); st is left
 * undefined. The exps of P may be less precise than the softmax step's (at
 * most 1e-5 relative: the bf16 rounding, 2^-9, dominates); otherwise it is
 * the softmax step followed by ld_gemm_finish_panel. */
typedef void (*ld_gemm_softmax_pairs_fn)(float *st, int64_t nk, int NR, float *m, float *l, float *ot, int64_t dp,
                                         uint16_t *pp);

/* An A panel of MR rows, just packed as bf16 pairs of depth kcp (a
 * multiple of the kernel's kstep) -> the kernel's own A layout, in place. */
typedef void (*ld_gemm_relayout_fn)(void *panel, int64_t kcp);

typedef struct {
    const char *name;
    int mr, nr;
    int mc, kc, nc; /* blocking: rows of A per packed block, depth (even), columns per task */
    int bf16; /* packed operands are bf16 pairs (see above) */
    ld_gemm_micro_fn micro;
    ld_gemm_micro_bias_fn micro_bias; /* NULL: micro, then a pass over C */
    ld_gemm_stack_fn stack; /* NULL: micro per tile */
    ld_gemm_convert_fn convert; /* NULL: ld_convert_to_f32 */
    ld_gemm_to_pairs_fn to_pairs; /* bf16 kernels only; NULL: scalar */
    ld_gemm_pack_pairs_fn pack_pairs; /* bf16 kernels only; NULL: gather, then to_pairs */
    ld_gemm_gather_t_fn gather_t; /* NULL: scalar loops */
    ld_gemm_gather_rows_fn gather_rows; /* NULL: convert, row by row */
    ld_gemm_softmax_fn softmax;   /* NULL: portable C */
    ld_gemm_softmax_pairs_fn softmax_pairs; /* bf16 kernels only; NULL: softmax, then ld_gemm_finish_panel */
    int kstep; /* k blocks are a multiple of this deep, K too (0: any; bf16 kernels round to 2) */
    ld_gemm_relayout_fn relayout_a; /* NULL: A panels stay bf16 pairs */
    ld_gemm_pack_pairs_fn pack_a; /* A panels straight into the kernel's own layout, depth rounded up to kstep
                                   * (0 for strides it does not handle); NULL: pairs, then relayout_a */
} ld_gemm_kernel;

/* What a kernel's k blocks are a multiple of: its kstep, at least 2 (bf16 pairs). */
static inline int64_t ld_gemm_kstep(const ld_gemm_kernel *kr) { return kr->kstep > 2 ? kr->kstep : 2; }

/* The packed depth of k values of k for a kernel: k for f32 kernels, for
 * bf16 ones rounded up to whole pairs or to the kernel's kstep (zero pad). */
static inline int64_t ld_gemm_depth(const ld_gemm_kernel *kr, int64_t k) {
    const int64_t step = ld_gemm_kstep(kr);
    return kr->bf16 ? (k + step - 1) / step * step : k;
}

/* The f32 kernel of the current CPU level (whatever the precision setting),
 * the default one or the one that pads an M x N product least. */
const ld_gemm_kernel *ld_gemm_kernel_f32(void);
const ld_gemm_kernel *ld_gemm_kernel_f32_for(int64_t M, int64_t N);
/* The bf16 kernel for an M x N x K product, or NULL without bf16
 * instructions: the AMX one where the CPU has it, K is a multiple of 32 and
 * M, N are at least 32 (K = 0: any depth, never AMX), else AVX-512's. */
const ld_gemm_kernel *ld_gemm_kernel_bf16_for(int64_t M, int64_t N, int64_t K);

/* tile[k*W + x] = f32(data[base + k*sk + x*sx]) for k < kc, x < n <= W;
 * columns n..W-1 are zeroed. tmp holds kc floats. */
void ld_gemm_gather(const ld_gemm_kernel *kr, ld_dtype dt, const void *data, int64_t base, int64_t sk, int64_t sx,
                    int64_t kc, int64_t n, int W, float *tile, float *tmp);

/* One packed panel (W = MR rows of A or NR columns of B) of depth kc from
 * data[base + k*sk + x*sx], x < n: f32 for f32 kernels (rounded to bf16 when
 * round), bf16 pairs for bf16 kernels (directly with pack_pairs when it
 * handles the strides, else through tile). tile: kc*W floats, tmp: kc. */
void ld_gemm_pack_panel(const ld_gemm_kernel *kr, int round, void *dst, ld_dtype dt, const void *data, int64_t base,
                        int64_t sk, int64_t sx, int64_t kc, int64_t n, int W, float *tile, float *tmp);
/* The panels of a block of n rows of A (W = MR) or columns of B
 * (W = NR), panel x/W at dst + (x/W)*pan bytes, each as ld_gemm_pack_panel
 * packs it (same values), an x-contiguous block k slice by k slice. */
void ld_gemm_pack_panels(const ld_gemm_kernel *kr, int round, void *dst, size_t pan, ld_dtype dt, const void *data,
                         int64_t base, int64_t sk, int64_t sx, int64_t kc, int64_t n, int W, float *tile, float *tmp);
/* The A panels (W = MR) of a block of n rows, panel x/MR at dst + (x/MR)*pan
 * bytes, in the kernel's own layout: pack_a where the kernel has one and it
 * handles the strides, else ld_gemm_pack_panels, the depth zero-padded to
 * the kernel's kstep and relayout_a. Every packer of A panels goes through it. */
void ld_gemm_pack_a_panels(const ld_gemm_kernel *kr, int round, void *dst, size_t pan, ld_dtype dt, const void *data,
                           int64_t base, int64_t sk, int64_t sx, int64_t kc, int64_t n, float *tile, float *tmp);
/* The last step of ld_gemm_pack_panel for an f32 tile [kc][W] already in tile (for
 * f32 kernels tile is dst itself): to bf16 pairs, or rounding. */
void ld_gemm_finish_panel(const ld_gemm_kernel *kr, int round, float *tile, int64_t kc, int W, void *dst);

/* One MR x NR tile of C, of which me x n lie inside the matrix (edge tiles go
 * through ctile, MR x NR floats); load as for the micro-kernel. */
void ld_gemm_run_tile(const ld_gemm_kernel *kr, int64_t kc, const void *ap, const void *bp, float *c, int64_t ldc,
                      int64_t me, int64_t n, int load, float *ctile);

/* Each returns NULL when the file is not compiled for this architecture. */
const ld_gemm_kernel *ld_gemm_kernel_avx512_f32(void);
const ld_gemm_kernel *ld_gemm_kernel_avx512_bf16(void);
/* 8 x 48 variants of the two above (see pick_kernel in gemm.c). */
const ld_gemm_kernel *ld_gemm_kernel_avx512_f32_alt(void);
const ld_gemm_kernel *ld_gemm_kernel_avx512_bf16_alt(void);
/* The AMX bf16 kernel (gemm_amx.c): 32 x 32 tiles, A in its own layout
 * (relayout_a, pack_a), k blocks multiples of 32; chosen by
 * ld_gemm_kernel_bf16_for for products of depth a multiple of 32 and at
 * least a tile (ld_gemm, the prepacked products, attention). */
const ld_gemm_kernel *ld_gemm_kernel_amx_bf16(void);
/* Flops of reps rounds of six independent TDPBF16PS on this thread (the
 * ld_cpu_probe_fn of ld_gemm_amx_peak_gflops). */
double ld_gemm_amx_probe(long reps, float *sink);
const ld_gemm_kernel *ld_gemm_kernel_avx2_f32(void);
const ld_gemm_kernel *ld_gemm_kernel_neon_f32(void);

/* Software prefetch of the transposing packers (a panel's source rows are
 * kilobytes apart, which the hardware prefetchers follow too late): the
 * element LD_GEMM_PACK_AHEAD past k0 of the same row, or near the end of
 * the kc elements the row n further on, where the packer's next panel of n
 * rows (stride sx) reads. Returns its offset from the row's element 0. */
#define LD_GEMM_PACK_AHEAD 256
static inline int64_t ld_gemm_pack_ahead(int64_t k0, int64_t kc, int64_t n, int64_t sx) {
    const int64_t t = k0 + LD_GEMM_PACK_AHEAD;
    return t < kc ? t : t - kc + n * sx;
}

#endif
