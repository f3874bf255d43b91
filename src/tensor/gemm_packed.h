/* Products on operands packed once and reused (internal): for loops that
 * multiply the same K or V of an attention head with many small blocks,
 * where packing it again for every product cost as much as the product.
 *
 *     ld_gemm_packing pk;
 *     ld_gemm_packing_for(&pk, M, N, K);          kernel of an M x N x K product
 *     ld_gemm_pack_a(&pk, abuf, &A, M, K, tile);  all of A, full depth
 *     ld_gemm_pack_b(&pk, bbuf, &B, K, N, tile);
 *     ld_gemm_packed_run(&pk, M, N, K, abuf, bbuf, C, ldc, load);
 *
 * The kernel is the one ld_gemm would use for the calling thread's
 * precision (bf16 pairs, bf16 emulated by rounding, or f32), and k is summed
 * in order with one fused multiply-add per product, so a result is the same
 * bits as ld_gemm's for the same operands whenever ld_gemm takes its blocked
 * path (ld_gemm_packed_ok says when). Runs on the calling thread only.
 */
#ifndef LD_TENSOR_GEMM_PACKED_H
#define LD_TENSOR_GEMM_PACKED_H

#include <stddef.h>

#include "tensor/gemm.h"
#include "tensor/gemm_kernels.h"

typedef struct {
    const ld_gemm_kernel *kr;
    int round;  /* bf16 precision emulated on the f32 kernel */
    int64_t kc; /* depth per pass over the tiles (even; a multiple of the kernel's kstep) */
} ld_gemm_packing;

/* K = 0: of any depth (never the AMX kernel, whose depths are multiples of 32). */
void ld_gemm_packing_for(ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K);
/* Whether ld_gemm would run an M x N x K product on the packed kernels
 * (tiny ones take an unpacked path with other rounding). */
int ld_gemm_packed_ok(int64_t M, int64_t N, int64_t K);
/* Bytes of all of A (M x K) or B (K x N) packed. */
size_t ld_gemm_packed_a_bytes(const ld_gemm_packing *pk, int64_t M, int64_t K);
size_t ld_gemm_packed_b_bytes(const ld_gemm_packing *pk, int64_t K, int64_t N);
/* Floats of the scratch tile the two packers need (bf16 and rounding only). */
int64_t ld_gemm_packed_tile_floats(const ld_gemm_packing *pk, int64_t K);
void ld_gemm_pack_a(const ld_gemm_packing *pk, void *dst, const ld_mat *A, int64_t M, int64_t K, float *tile);
void ld_gemm_pack_b(const ld_gemm_packing *pk, void *dst, const ld_mat *B, int64_t K, int64_t N, float *tile);
/* Rows k0 .. k0 + kc - 1 of a B packed to depth K at dst, from B (kc x N, its
 * row 0 being row k0): a B packed a few rows at a time (k0 even with bf16
 * pairs; tile: ld_gemm_packed_tile_floats(pk, kc)). */
void ld_gemm_pack_b_rows(const ld_gemm_packing *pk, void *dst, int64_t K, int64_t k0, const ld_mat *B, int64_t kc,
                         int64_t N, float *tile);
/* C (M x N, row stride ldc) = (load ? C : 0) + A B. */
void ld_gemm_packed_run(const ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K, const void *a, const void *b,
                        float *C, int64_t ldc, int load);
/* The same on depth K of panels packed deeper: apan and bpan are the bytes
 * from one panel to the next (ld_gemm_packed_a_bytes(pk, 1, depth) and
 * ld_gemm_packed_b_bytes(pk, depth, 1)); a and b point at the first k of the
 * first panel: depth k0 into a panel is ld_gemm_packed_a_bytes(pk, 1, k0)
 * bytes in (ld_gemm_packed_b_bytes(pk, k0, 1) for B; k0 even for bf16 pairs). */
void ld_gemm_packed_run_in(const ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K, const void *a, size_t apan,
                           const void *b, size_t bpan, float *C, int64_t ldc, int load);
/* ld_gemm_packed_run_in without adding to the FLOP counters (base/flops.h),
 * for an op that counts its own work once (the Winograd convolution). */
void ld_gemm_packed_run_uncounted(const ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K, const void *a,
                                  size_t apan, const void *b, size_t bpan, float *C, int64_t ldc, int load);

#endif
