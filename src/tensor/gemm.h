/* General matrix product, the engine's hot spot.
 *
 *     C[i*ldc + j] = beta * C[i*ldc + j] + sum_k A(i,k) * B(k,j)
 *                    (+ bias_n[j]) (+ bias_m[i])
 *
 * Operands are strided views in f32, f16 or bf16: element (r, c) of an
 * ld_mat lives at data[r*rs + c*cs]. A linear layer y = x W^T is
 *     A = {F32, x, K, 1}, B = {w->dtype, w->data, 1, K}   (W is [N, K] row-major)
 * Half-precision operands are converted while packing, never expanded to a
 * full f32 copy.
 *
 * ld_gemm splits the work over the OpenMP threads itself: call it from serial
 * code. Results do not depend on the thread count (each C element is summed
 * in the same order whatever the split).
 */
#ifndef LD_TENSOR_GEMM_H
#define LD_TENSOR_GEMM_H

#include "tensor/tensor.h"
#include "leandiff.h"

typedef struct {
    ld_dtype dtype; /* LD_F32, LD_F16 or LD_BF16 */
    const void *data;
    int64_t rs, cs; /* element strides between rows and between columns */
} ld_mat;

static inline ld_mat ld_mat_f32(const float *p, int64_t rs, int64_t cs) {
    ld_mat m = {LD_F32, p, rs, cs};
    return m;
}

void ld_gemm(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, float *C, int64_t ldc, float beta,
             const ld_tensor *bias_n, const ld_tensor *bias_m);

/* Arithmetic of the product: LD_PRECISION_F32 (exact path, default) or
 * LD_PRECISION_BF16 (inputs rounded to bf16, f32 accumulation). Process-wide. */
void ld_gemm_set_precision(ld_precision p);
ld_precision ld_gemm_get_precision(void);

/* Plain triple loop in double-free f32, for tests and as the last fallback. */
void ld_gemm_reference(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, float *C, int64_t ldc,
                       float beta, const ld_tensor *bias_n, const ld_tensor *bias_m);

#endif
