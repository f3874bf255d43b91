/* Products on operands packed once (see gemm_packed.h). A is kept as
 * MR-row panels and B as NR-column panels of the whole depth K; a pass over
 * the tiles takes pk->kc of that depth at a time (a slice of a panel is
 * contiguous), each tile summing into C in order, as gemm.c does. */
#include "tensor/gemm_packed.h"

#include <string.h>

#include "base/flops.h"

static inline int64_t depth(const ld_gemm_packing *pk, int64_t K) { return pk->kr->bf16 ? (K + 1) / 2 * 2 : K; }
static inline int64_t esize(const ld_gemm_packing *pk) { return pk->kr->bf16 ? 2 : 4; }

size_t ld_gemm_packed_a_bytes(const ld_gemm_packing *pk, int64_t M, int64_t K) {
    const int MR = pk->kr->mr;
    return (size_t)((M + MR - 1) / MR) * (size_t)(depth(pk, K) * MR * esize(pk));
}

size_t ld_gemm_packed_b_bytes(const ld_gemm_packing *pk, int64_t K, int64_t N) {
    const int NR = pk->kr->nr;
    return (size_t)((N + NR - 1) / NR) * (size_t)(depth(pk, K) * NR * esize(pk));
}

int64_t ld_gemm_packed_tile_floats(const ld_gemm_packing *pk, int64_t K) {
    const int W = pk->kr->mr > pk->kr->nr ? pk->kr->mr : pk->kr->nr;
    return depth(pk, K) * W + depth(pk, K);
}

void ld_gemm_pack_a(const ld_gemm_packing *pk, void *dst, const ld_mat *A, int64_t M, int64_t K, float *tile) {
    const int MR = pk->kr->mr;
    const size_t pan = (size_t)(depth(pk, K) * MR * esize(pk));
    const int64_t W = pk->kr->mr > pk->kr->nr ? pk->kr->mr : pk->kr->nr;
    for (int64_t i = 0; i < M; i += MR)
        ld_gemm_pack_panel(pk->kr, pk->round, (char *)dst + (size_t)(i / MR) * pan, A->dtype, A->data, i * A->rs,
                           A->cs, A->rs, K, M - i < MR ? M - i : MR, MR, tile, tile + depth(pk, K) * W);
}

void ld_gemm_pack_b(const ld_gemm_packing *pk, void *dst, const ld_mat *B, int64_t K, int64_t N, float *tile) {
    const int NR = pk->kr->nr;
    const size_t pan = (size_t)(depth(pk, K) * NR * esize(pk));
    const int64_t W = pk->kr->mr > pk->kr->nr ? pk->kr->mr : pk->kr->nr;
    for (int64_t j = 0; j < N; j += NR)
        ld_gemm_pack_panel(pk->kr, pk->round, (char *)dst + (size_t)(j / NR) * pan, B->dtype, B->data, j * B->cs,
                           B->rs, B->cs, K, N - j < NR ? N - j : NR, NR, tile, tile + depth(pk, K) * W);
}

void ld_gemm_packed_run(const ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K, const void *a, const void *b,
                        float *C, int64_t ldc, int load) {
    LD_FLOPS_COUNT(LD_FLOPS_GEMM, M > 0 && N > 0 && K > 0 ? 2 * M * N * K : 0); /* counted as ld_gemm counts */
    const ld_gemm_kernel *kr = pk->kr;
    const int MR = kr->mr, NR = kr->nr;
    const int64_t Kp = depth(pk, K), es = esize(pk);
    const size_t apan = (size_t)(Kp * MR * es), bpan = (size_t)(Kp * NR * es);
    _Alignas(64) float ctile[64 * 64];
    for (int64_t pc = 0; pc < K; pc += pk->kc) {
        const int64_t kc = K - pc < pk->kc ? K - pc : pk->kc;
        const int ld = load || pc > 0;
        for (int64_t j = 0; j < N; j += NR) {
            const char *bp = (const char *)b + (size_t)(j / NR) * bpan + (size_t)(pc * NR * es);
            const int64_t n = N - j < NR ? N - j : NR;
            for (int64_t i = 0; i < M; i += MR) {
                const char *ap = (const char *)a + (size_t)(i / MR) * apan + (size_t)(pc * MR * es);
                const int64_t me = M - i < MR ? M - i : MR;
                float *c = C + i * ldc + j;
                if (me == MR && n == NR) {
                    kr->micro(kc, ap, bp, c, ldc, ld);
                    continue;
                }
                if (ld)
                    for (int64_t r = 0; r < me; r++) memcpy(ctile + r * NR, c + r * ldc, sizeof(float) * (size_t)n);
                kr->micro(kc, ap, bp, ctile, NR, ld);
                for (int64_t r = 0; r < me; r++) memcpy(c + r * ldc, ctile + r * NR, sizeof(float) * (size_t)n);
            }
        }
    }
}
