/* The vector kernels of ops_vec_kernel.h compiled for AVX2 (picked by
 * ops_vec() when the CPU path is AVX2). */
#include "tensor/ops_internal.h"

#include <immintrin.h>

#define VEC_TABLE ops_vec_avx2
#define ACT_FN vec_act_avx2
#define OPS_VBYTES 32
#define OPS_BCAST(x) _mm256_set1_ps(x)
#include "tensor/ops_vec_kernel.h"
