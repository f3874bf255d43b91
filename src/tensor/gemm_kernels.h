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
/* dst[0..n) = f32(src[offset..offset+n)) for a float dtype. */
typedef void (*ld_gemm_convert_fn)(float *dst, const void *src, ld_dtype dtype, int64_t offset, int64_t n);
/* dst[0..n) = bf16 (round to nearest even) of src[0..n). */
typedef void (*ld_gemm_to_bf16_fn)(uint16_t *dst, const float *src, int64_t n);

typedef struct {
    const char *name;
    int mr, nr;
    int mc, kc, nc; /* cache blocking: rows of A, depth (even), columns of B */
    int bf16; /* packed operands are bf16 pairs (see above) */
    ld_gemm_micro_fn micro;
    ld_gemm_convert_fn convert; /* NULL: ld_convert_to_f32 */
    ld_gemm_to_bf16_fn to_bf16; /* bf16 kernels only; NULL: scalar */
} ld_gemm_kernel;

/* Each returns NULL when the file is not compiled for this architecture. */
const ld_gemm_kernel *ld_gemm_kernel_avx512_f32(void);
const ld_gemm_kernel *ld_gemm_kernel_avx512_bf16(void);
const ld_gemm_kernel *ld_gemm_kernel_avx2_f32(void);
const ld_gemm_kernel *ld_gemm_kernel_neon_f32(void);

#endif
