/* The activation kernels (ops_act_kernel.h) compiled for AVX2; the
 * elementwise ops call it when the CPU path is AVX2 (base/cpu.h). */
#include "tensor/ops_internal.h"

#include <immintrin.h>

#define ACT_FN act_avx2
#define ACT_MUL_FN act_mul_avx2
#define OPS_VBYTES 32
#define OPS_BCAST(x) _mm256_set1_ps(x)
#include "tensor/ops_act_kernel.h"

void ops_act_avx2(int kind, float *y, const float *x, int64_t n) { act_avx2(kind, y, x, n); }
void ops_act_mul_avx2(int kind, float *y, const float *x, const float *m, int64_t n) {
    act_mul_avx2(kind, y, x, m, n);
}
