/* Products on operands packed once (see gemm_packed.h). A is kept as
 * MR-row panels and B as NR-column panels of the whole depth K; a pass over
 * the tiles takes pk->kc of that depth at a time (a slice of a panel is
 * contiguous), each tile summing into C in order, as gemm.c does. */
#include "tensor/gemm_packed.h"

#include "base/flops.h"

static inline int64_t depth(const ld_gemm_packing *pk, int64_t K) { return ld_gemm_depth(pk->kr, K); }
static inline int64_t esize(const ld_gemm_packing *pk) { return pk->kr->bf16 ? 2 : 4; }
/* Widest panel of the kernel: the scratch tile's row length. */
static inline int64_t tile_width(const ld_gemm_packing *pk) {
    return pk->kr->mr > pk->kr->nr ? pk->kr->mr : pk->kr->nr;
}

size_t ld_gemm_packed_a_bytes(const ld_gemm_packing *pk, int64_t M, int64_t K) {
    const int MR = pk->kr->mr;
    return (size_t)((M + MR - 1) / MR) * (size_t)(depth(pk, K) * MR * esize(pk));
}

size_t ld_gemm_packed_b_bytes(const ld_gemm_packing *pk, int64_t K, int64_t N) {
    const int NR = pk->kr->nr;
    return (size_t)((N + NR - 1) / NR) * (size_t)(depth(pk, K) * NR * esize(pk));
}

int64_t ld_gemm_packed_tile_floats(const ld_gemm_packing *pk, int64_t K) {
    return depth(pk, K) * tile_width(pk) + depth(pk, K);
}

/* kc rows of a strided operand (element (x, k) at data[x*sx + k*sk], x <
 * rows) as W-wide panels pan bytes apart. */
static void pack_panels(const ld_gemm_packing *pk, void *dst, size_t pan, const ld_mat *m, int64_t rows, int64_t sk,
                        int64_t sx, int64_t kc, int W, float *tile) {
    ld_gemm_pack_panels(pk->kr, pk->round, dst, pan, m->dtype, m->data, 0, sk, sx, kc, rows, W, tile,
                        tile + depth(pk, kc) * tile_width(pk));
}

void ld_gemm_pack_a(const ld_gemm_packing *pk, void *dst, const ld_mat *A, int64_t M, int64_t K, float *tile) {
    ld_gemm_pack_a_panels(pk->kr, pk->round, dst, ld_gemm_packed_a_bytes(pk, 1, K), A->dtype, A->data, 0, A->cs, A->rs,
                          K, M, tile, tile + depth(pk, K) * tile_width(pk));
}

void ld_gemm_pack_b(const ld_gemm_packing *pk, void *dst, const ld_mat *B, int64_t K, int64_t N, float *tile) {
    pack_panels(pk, dst, ld_gemm_packed_b_bytes(pk, K, 1), B, N, B->rs, B->cs, K, pk->kr->nr, tile);
}

void ld_gemm_pack_b_rows(const ld_gemm_packing *pk, void *dst, int64_t K, int64_t k0, const ld_mat *B, int64_t kc,
                         int64_t N, float *tile) {
    pack_panels(pk, (char *)dst + ld_gemm_packed_b_bytes(pk, k0, 1), ld_gemm_packed_b_bytes(pk, K, 1), B, N, B->rs,
                B->cs, kc, pk->kr->nr, tile);
}

void ld_gemm_packed_run(const ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K, const void *a, const void *b,
                        float *C, int64_t ldc, int load) {
    ld_gemm_packed_run_in(pk, M, N, K, a, ld_gemm_packed_a_bytes(pk, 1, K), b, ld_gemm_packed_b_bytes(pk, K, 1), C,
                          ldc, load);
}

void ld_gemm_packed_run_in(const ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K, const void *a, size_t apan,
                           const void *b, size_t bpan, float *C, int64_t ldc, int load) {
    /* counted as ld_gemm counts */
    LD_FLOPS_COUNT(LD_FLOPS_GEMM, M > 0 && N > 0 && K > 0 ? 2 * M * N * K : 0, 1, M, N, K);
    ld_gemm_packed_run_uncounted(pk, M, N, K, a, apan, b, bpan, C, ldc, load);
}

void ld_gemm_packed_run_uncounted(const ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K, const void *a,
                                  size_t apan, const void *b, size_t bpan, float *C, int64_t ldc, int load) {
    const ld_gemm_kernel *kr = pk->kr;
    const int MR = kr->mr, NR = kr->nr;
    const int64_t es = esize(pk);
    _Alignas(64) float ctile[64 * 64];
    for (int64_t pc = 0; pc < K; pc += pk->kc) {
        const int64_t kc = K - pc < pk->kc ? K - pc : pk->kc;
        const int ld = load || pc > 0;
        for (int64_t j = 0; j < N; j += NR) {
            const char *bp = (const char *)b + (size_t)(j / NR) * bpan + (size_t)(pc * NR * es);
            const int64_t n = N - j < NR ? N - j : NR;
            for (int64_t i = 0; i < M; i += MR) {
                const char *ap = (const char *)a + (size_t)(i / MR) * apan + (size_t)(pc * MR * es);
                ld_gemm_run_tile(kr, kc, ap, bp, C + i * ldc + j, ldc, M - i < MR ? M - i : MR, n, ld, ctile);
            }
        }
    }
}
