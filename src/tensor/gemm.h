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
 * code (called inside a parallel region it runs on the calling thread only).
 * Results do not depend on the thread count (each C element is summed in the
 * same order whatever the split; only M and N are split, never K).
 *
 * Implementation (gemm.c): cache-blocked and packed, with micro-kernels for
 * AVX-512 (f32 and BF16 dot products), AVX2+FMA, NEON and portable C, chosen
 * at run time from base/cpu.h (LEANDIFF_CPU forces a path). Small products
 * skip the packing. See docs/performance.md.
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

/* C must not overlap A, B or the biases; ldc >= N. Elements between the rows
 * of C (columns N..ldc-1) are never touched; with beta == 0 C is not read. */
void ld_gemm(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, float *C, int64_t ldc, float beta,
             const ld_tensor *bias_n, const ld_tensor *bias_m);

/* Arithmetic of the product: LD_PRECISION_F32 (exact path, default) or
 * LD_PRECISION_BF16 (inputs rounded to bf16, f32 accumulation). Per calling
 * thread: a caller that runs ld_gemm inside its own parallel region hands
 * its setting to the worker threads (ld_gemm_set_precision in the loop body). */
void ld_gemm_set_precision(ld_precision p);
ld_precision ld_gemm_get_precision(void);

/* B given by a callback instead of a strided view (implicit GEMM, e.g. a
 * convolution packing its input straight from NCHW): fill writes
 *     dst[kk*ld + jj] = B(k0 + kk, j0 + jj)   for kk < kc, jj < n
 * as f32. It is called concurrently from several threads on disjoint tiles
 * and must not write anything else. */
typedef struct {
    void (*fill)(const void *user, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *dst, int64_t ld);
    const void *user;
} ld_gemm_bfill;

void ld_gemm_fill_b(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_gemm_bfill *B, float *C, int64_t ldc,
                    float beta, const ld_tensor *bias_n, const ld_tensor *bias_m);

/* Implicit-GEMM B operand of a 2-D convolution, read straight from one NCHW
 * image: B(k, j) = x[c, iy, ix] with k = (c*kh + ky)*kw + kx (the layout of
 * a [Cout, Cin, kh, kw] weight seen as a [Cout, Cin*kh*kw] matrix) and
 * j = oy*Wo + ox, iy = oy*stride_h - pad_h + ky*dil_h (same for x); outside
 * the image 0, or the nearest edge pixel with replicate. Usage:
 *     ld_im2col src = {x_b, Cin, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, 0};
 *     ld_gemm_bfill f = {ld_im2col_fill, &src};
 *     ld_gemm_fill_b(Cout, Ho*Wo, Cin*kh*kw, &Wmat, &f, y_b, Ho*Wo, 0, NULL, bias);
 */
typedef struct {
    const float *x;
    int64_t C, H, W, kh, kw;
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int64_t Ho, Wo;
    int replicate;
} ld_im2col;

void ld_im2col_fill(const void *user, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *dst, int64_t ld);

/* Name of the micro-kernel ld_gemm uses now ("avx512-f32 14x32", ...): the
 * default one, or the one picked for an M x N x K product (the AVX-512 path
 * switches to 8x48 tiles when they pad the product less; bf16 products of
 * depth a multiple of 32 run on AMX tiles where the CPU has them; K = 0:
 * any depth). */
const char *ld_gemm_kernel_name(void);
const char *ld_gemm_kernel_name_for(int64_t M, int64_t N, int64_t K);
/* The AMX bf16 limit of this machine, for benchmarks (0 where the CPU has
 * no AMX in use): the probe runs `threads` threads (0 = all) of independent
 * TDPBF16PS into six tile accumulators for about `seconds`; the theory is
 * threads x 1024 flop per cycle (one 16 x 16 x 32 TDPBF16PS every 16
 * cycles, Intel's optimization manual) x clock_ghz. GFLOP/s. */
double ld_gemm_amx_peak_gflops(int threads, double seconds);
double ld_gemm_amx_theory_gflops(int threads, double clock_ghz);
/* Frees the cached packing buffers (they are reused between calls). */
void ld_gemm_release_buffers(void);

/* Plain triple loop in double-free f32, for tests and as the last fallback. */
void ld_gemm_reference(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, float *C, int64_t ldc,
                       float beta, const ld_tensor *bias_n, const ld_tensor *bias_m);

#endif
