/* ld_gemm: dispatch, packing, cache blocking and threading (see gemm.h), plus
 * the portable C micro-kernel and the reference triple loop.
 *
 * C is cut into independent tasks (at most 4*MC rows x NC columns, enough of
 * them to balance the threads; plan_tasks). The threads take tasks
 * dynamically and never wait for each other. A task runs the classic
 * Goto/BLIS loops with buffers of its thread: for each block of KC depth it
 * packs its kc x nc block of B into NR-wide panels (converting f16/bf16 to
 * f32, or rounding to bf16 pairs for the BF16 kernel), then for each block of
 * MC rows packs the mc x kc block of A into MR-row panels and runs the
 * MR x NR micro-kernel over all panel pairs. With several rows AND columns
 * of tasks (linear layers: M = tokens, N above the column block) a task is a
 * whole row block instead (the "row walk"): for each k block it packs its
 * rows of A once, into its thread buffer (at most 4 MC-row blocks), and walks
 * all column blocks with them, so A is packed once per element rather than
 * once per column block.
 * K is never split, and each C element is summed over k in increasing order
 * by the same kernel whatever the thread count or task grid: results are
 * bitwise identical for any number of threads. SIMD kernels live in gemm_avx512.c,
 * gemm_avx2.c and gemm_neon.c; gemm_kernels.h describes the packed layouts.
 */
#include "tensor/gemm.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/flops.h"
#include "tensor/gemm_cache.h"
#include "tensor/gemm_kernels.h"
#include "tensor/gemm_packed.h"

/* Per thread: each run (a pipeline's generation, a training step) sets the
 * precision of the thread that calls the kernels, so two runs on two threads
 * never see each other's setting. Read once per call, outside the kernels'
 * parallel regions. */
static _Thread_local ld_precision g_precision = LD_PRECISION_F32;

/* Said once per process: bf16 asked for on a CPU without bf16 products, where
 * pick() emulates it on the f32 kernel (the KOALA U-Net ran 14-22 % slower
 * than f32 so on a Zen 3-class AVX2 CPU, bench/RESULTS.md). */
static pthread_once_t g_emulated_once = PTHREAD_ONCE_INIT;

static void say_emulated(void) {
    ld_log_warn("precision bf16: this CPU (%s path) has no bf16 dot products (AVX512_BF16 or AMX), so bf16 is "
                "emulated on the f32 kernel: the results of such a CPU, but slower than the default f32",
                ld_cpu_level_name(ld_cpu_level()));
}

void ld_gemm_set_precision(ld_precision p) {
    g_precision = p;
    if (p == LD_PRECISION_BF16 && !ld_cpu_has_bf16()) pthread_once(&g_emulated_once, say_emulated);
}
ld_precision ld_gemm_get_precision(void) { return g_precision; }

static inline float mat_at(const ld_mat *m, int64_t r, int64_t c) {
    int64_t i = r * m->rs + c * m->cs;
    switch (m->dtype) {
    case LD_F16: return ld_f16_to_f32(((const uint16_t *)m->data)[i]);
    case LD_BF16: return ld_bf16_to_f32(((const uint16_t *)m->data)[i]);
    default: return ((const float *)m->data)[i];
    }
}

static inline float round_bf16(float x) { return ld_bf16_to_f32(ld_f32_to_bf16(x)); }

void ld_gemm_reference(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, float *C, int64_t ldc,
                       float beta, const ld_tensor *bias_n, const ld_tensor *bias_m) {
    int bf16 = g_precision == LD_PRECISION_BF16;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            float s = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                float a = mat_at(A, i, k), b = mat_at(B, k, j);
                if (bf16) {
                    a = round_bf16(a);
                    b = round_bf16(b);
                }
                s += a * b;
            }
            if (bias_n && bias_n->data) s += ld_tensor_get_f32(bias_n, j);
            if (bias_m && bias_m->data) s += ld_tensor_get_f32(bias_m, i);
            float *c = &C[i * ldc + j];
            *c = beta == 0.0f ? s : beta * *c + s;
        }
    }
}

/* ---- portable micro-kernel: plain loops the compiler can vectorize ---- */

#define PMR 4
#define PNR 16

static void micro_portable(int64_t kc, const void *a_, const void *b_, float *c, int64_t ldc, int load) {
    const float *a = a_, *b = b_;
    float acc[PMR][PNR];
    for (int i = 0; i < PMR; i++)
        for (int j = 0; j < PNR; j++) acc[i][j] = load ? c[i * ldc + j] : 0.0f;
    for (int64_t k = 0; k < kc; k++, a += PMR, b += PNR)
        for (int i = 0; i < PMR; i++)
            for (int j = 0; j < PNR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < PMR; i++)
        for (int j = 0; j < PNR; j++) c[i * ldc + j] = acc[i][j];
}

static const ld_gemm_kernel k_portable = {
    .name = "portable-f32 4x16", .mr = PMR, .nr = PNR, .mc = 128, .kc = 256, .nc = 1024,
    .bf16 = 0, .micro = micro_portable,
};

/* LEANDIFF_GEMM_BLOCKS=mc,kc,nc overrides the cache blocking of every kernel
 * (for tuning on a new CPU; 0 keeps a kernel's own value). */
static int g_blocks[3];
static pthread_once_t g_blocks_once = PTHREAD_ONCE_INIT;

static void read_blocks(void) {
    const char *e = getenv("LEANDIFF_GEMM_BLOCKS");
    if (e && sscanf(e, "%d,%d,%d", &g_blocks[0], &g_blocks[1], &g_blocks[2]) != 3) {
        ld_log_warn("LEANDIFF_GEMM_BLOCKS=%s is not mc,kc,nc; ignored", e);
        memset(g_blocks, 0, sizeof g_blocks);
    }
    for (int i = 0; i < 3; i++)
        if (g_blocks[i] < 0 || g_blocks[i] > 1 << 16) g_blocks[i] = 0;
}

#if defined(__x86_64__) || defined(__i386__)
/* Area of C the kernel computes, padding included, relative to M x N. */
static double padded_area(const ld_gemm_kernel *k, int64_t M, int64_t N) {
    return (double)((M + k->mr - 1) / k->mr * k->mr) * (double)((N + k->nr - 1) / k->nr * k->nr) / ((double)M * N);
}
#endif

/* The kernel for an M x N product (M = N = 0: the default one). Depends on
 * the shape only, never on the threads. */
static const ld_gemm_kernel *pick(int64_t M, int64_t N, int bf16, int *emulate_bf16) {
    const ld_gemm_kernel *k = NULL;
#if defined(__x86_64__) || defined(__i386__)
    if (bf16 && ld_cpu_has_bf16()) k = ld_gemm_kernel_avx512_bf16();
    if (!k) k = ld_gemm_kernel_f32();
    if (ld_cpu_level() == LD_CPU_AVX512 && M > 0 && N > 0) {
        const ld_gemm_kernel *alt = k->bf16 ? ld_gemm_kernel_avx512_bf16_alt() : ld_gemm_kernel_avx512_f32_alt();
        if (padded_area(alt, M, N) < padded_area(k, M, N) - 0.005) k = alt;
    }
#endif
    if (!k) k = ld_gemm_kernel_f32();
    /* Without bf16 instructions the BF16 precision is emulated exactly:
     * operands are rounded to bf16 while packing, the f32 kernel does the rest. */
    *emulate_bf16 = bf16 && !k->bf16;
    return k;
}

static const ld_gemm_kernel *pick_kernel_for(int64_t M, int64_t N, int *emulate_bf16) {
    return pick(M, N, g_precision == LD_PRECISION_BF16, emulate_bf16);
}

const ld_gemm_kernel *ld_gemm_kernel_f32_for(int64_t M, int64_t N) {
    int emulate;
    return pick(M, N, 0, &emulate);
}

const ld_gemm_kernel *ld_gemm_kernel_f32(void) {
    const ld_gemm_kernel *k = NULL;
    ld_cpu_level_t level = ld_cpu_level();
#if defined(__x86_64__) || defined(__i386__)
    if (level == LD_CPU_AVX512)
        k = ld_gemm_kernel_avx512_f32();
    else if (level == LD_CPU_AVX2)
        k = ld_gemm_kernel_avx2_f32();
#elif defined(__aarch64__)
    if (level == LD_CPU_NEON) k = ld_gemm_kernel_neon_f32();
#endif
    return k ? k : &k_portable;
}

/* The kernel ld_gemm runs an M x N x K product on (K = 0: of unknown
 * depth): pick's, or on a CPU with AMX the AMX kernel for bf16 products
 * whose depth its tiles fit (k blocks are multiples of 32) and that fill
 * at least a tile (ld_gemm_kernel_bf16_for). */
static const ld_gemm_kernel *product_kernel(int64_t M, int64_t N, int64_t K, int *emulate_bf16) {
    const ld_gemm_kernel *k = pick_kernel_for(M, N, emulate_bf16);
    return k->bf16 ? ld_gemm_kernel_bf16_for(M, N, K) : k;
}

const ld_gemm_kernel *ld_gemm_kernel_bf16_for(int64_t M, int64_t N, int64_t K) {
    int emulate;
    const ld_gemm_kernel *k = pick(M, N, 1, &emulate);
#if defined(__x86_64__) || defined(__i386__)
    if (!emulate && K > 0 && K % 32 == 0 && M >= 32 && N >= 32 && ld_cpu_has_amx()) k = ld_gemm_kernel_amx_bf16();
#else
    (void)K;
#endif
    return emulate ? NULL : k;
}

const char *ld_gemm_kernel_name_for(int64_t M, int64_t N, int64_t K) {
    int emulate;
    const ld_gemm_kernel *k = product_kernel(M, N, K, &emulate);
    return emulate ? "bf16-emulated" : k->name;
}

const char *ld_gemm_kernel_name(void) { return ld_gemm_kernel_name_for(0, 0, 0); }

double ld_gemm_amx_theory_gflops(int threads, double clock_ghz) {
    if (threads <= 0) threads = omp_get_num_procs();
    return ld_cpu_has_amx() ? threads * 1024.0 * clock_ghz : 0.0;
}

double ld_gemm_amx_peak_gflops(int threads, double seconds) {
#if defined(__x86_64__) || defined(__i386__)
    return ld_cpu_has_amx() ? ld_cpu_run_probe(threads, seconds, ld_gemm_amx_probe) : 0.0;
#else
    (void)threads;
    (void)seconds;
    return 0.0;
#endif
}

/* ---- cached buffers ---- */

typedef struct {
    void **t;        /* per thread: packed A and B blocks + scratch */
    size_t t_bytes;
    int nt;
    void *shared;    /* all of A or all of B packed once, shared by the threads (see gemm_blocked) */
    size_t shared_bytes;
} workspace;

#define POOL_MAX 8
static workspace *g_pool[POOL_MAX];
static int g_pool_n;
/* a mutex, not an OpenMP named critical: that would export a symbol from the shared library */
static pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;

static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) & ~(size_t)63); }

static void ws_free(workspace *w) {
    if (!w) return;
    free(w->shared);
    for (int i = 0; i < w->nt; i++) free(w->t[i]);
    free(w->t);
    free(w);
}

/* A workspace with nt buffers of at least t_bytes and a shared one of
 * shared_bytes (if not 0), or NULL when out of memory. */
static workspace *ws_acquire(size_t t_bytes, size_t shared_bytes, int nt) {
    workspace *w = NULL;
    pthread_mutex_lock(&g_pool_lock);
    if (g_pool_n > 0) w = g_pool[--g_pool_n];
    pthread_mutex_unlock(&g_pool_lock);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w) return NULL;
    }
    if (w->nt < nt) {
        void **t = realloc(w->t, sizeof(void *) * (size_t)nt);
        if (!t) {
            ws_free(w);
            return NULL;
        }
        for (int i = w->nt; i < nt; i++) t[i] = NULL;
        w->t = t;
        w->nt = nt;
    }
    if (w->t_bytes < t_bytes) { /* grow: drop the old buffers */
        for (int i = 0; i < w->nt; i++) {
            free(w->t[i]);
            w->t[i] = NULL;
        }
        w->t_bytes = t_bytes;
    }
    for (int i = 0; i < nt; i++) {
        if (!w->t[i]) w->t[i] = alloc64(w->t_bytes);
        if (!w->t[i]) {
            ws_free(w);
            return NULL;
        }
    }
    if (w->shared_bytes < shared_bytes) {
        free(w->shared);
        w->shared = alloc64(shared_bytes);
        w->shared_bytes = w->shared ? shared_bytes : 0;
        if (!w->shared) {
            ws_free(w);
            return NULL;
        }
    }
    return w;
}

static void ws_release(workspace *w) {
    pthread_mutex_lock(&g_pool_lock);
    if (g_pool_n < POOL_MAX) {
        g_pool[g_pool_n++] = w;
        w = NULL;
    }
    pthread_mutex_unlock(&g_pool_lock);
    ws_free(w);
}

void ld_gemm_release_buffers(void) {
    pthread_mutex_lock(&g_pool_lock);
    while (g_pool_n > 0) ws_free(g_pool[--g_pool_n]);
    pthread_mutex_unlock(&g_pool_lock);
}

/* ---- packing ---- */

static inline float load_as_f32(ld_dtype dt, const void *data, int64_t i) {
    switch (dt) {
    case LD_F16: return ld_f16_to_f32(((const uint16_t *)data)[i]);
    case LD_BF16: return ld_bf16_to_f32(((const uint16_t *)data)[i]);
    default: return ((const float *)data)[i];
    }
}

/* See gemm_kernels.h. */
void ld_gemm_gather(const ld_gemm_kernel *kr, ld_dtype dt, const void *data, int64_t base, int64_t sk, int64_t sx,
                   int64_t kc, int64_t n, int W, float *tile, float *tmp) {
    ld_gemm_convert_fn conv = kr->convert ? kr->convert : ld_convert_to_f32;
    if (sx == 1 && kr->gather_rows) {
        kr->gather_rows(tile, data, dt, base, sk, kc, n, W);
    } else if (sx == 1) {
        for (int64_t k = 0; k < kc; k++) conv(tile + k * W, data, dt, base + k * sk, n);
    } else if (sk == 1 && kr->gather_t) {
        kr->gather_t(tile, data, dt, base, sx, kc, n, W);
    } else if (sk == 1 && dt == LD_F32) {
        const float *s = (const float *)data + base;
        for (int64_t k0 = 0; k0 < kc; k0 += 64) {
            int64_t k1 = k0 + 64 < kc ? k0 + 64 : kc;
            for (int64_t x = 0; x < n; x++)
                for (int64_t k = k0; k < k1; k++) tile[k * W + x] = s[x * sx + k];
        }
    } else if (sk == 1) {
        for (int64_t x = 0; x < n; x++) {
            conv(tmp, data, dt, base + x * sx, kc);
            for (int64_t k = 0; k < kc; k++) tile[k * W + x] = tmp[k];
        }
    } else {
        for (int64_t k = 0; k < kc; k++)
            for (int64_t x = 0; x < n; x++) tile[k * W + x] = load_as_f32(dt, data, base + k * sk + x * sx);
    }
    if (n < W)
        for (int64_t k = 0; k < kc; k++) memset(tile + k * W + n, 0, sizeof(float) * (size_t)(W - n));
}

/* f32 tile rows -> bf16 pairs (scalar version of ld_gemm_to_pairs_fn). */
static void to_pairs_scalar(const float *tile, int64_t ld, int64_t kc, int W, uint16_t *dst) {
    for (int64_t p = 0; p < (kc + 1) / 2; p++) {
        const float *r0 = tile + 2 * p * ld, *r1 = r0 + ld;
        int odd = 2 * p + 1 >= kc;
        for (int x = 0; x < W; x++) {
            dst[(p * W + x) * 2] = ld_f32_to_bf16(r0[x]);
            dst[(p * W + x) * 2 + 1] = odd ? 0 : ld_f32_to_bf16(r1[x]);
        }
    }
}

/* Rounds n floats to bf16 in place (BF16 precision on an f32 kernel). */
static void round_tile_bf16(float *t, int64_t n) {
    for (int64_t i = 0; i < n; i++) t[i] = round_bf16(t[i]);
}

/* ---- the blocked product ---- */

typedef struct {
    int64_t M, N, K;
    const ld_mat *A, *B;
    const ld_gemm_bfill *fill;
    float *C;
    int64_t ldc;
    float beta;
    const float *bn, *bm; /* biases as f32, or NULL */
} gemm_args;

/* C rows [i0, i0+m), columns [j0, j0+n) = beta*C + biases (beta 0: C unread). */
static void init_c(const gemm_args *g, int64_t i0, int64_t m, int64_t j0, int64_t n) {
    const float beta = g->beta, *bn = g->bn ? g->bn + j0 : NULL;
    for (int64_t i = i0; i < i0 + m; i++) {
        float *c = g->C + i * g->ldc + j0;
        const float add_m = g->bm ? g->bm[i] : 0.0f;
        /* branch-free inner loops the compiler vectorizes */
        if (beta == 0.0f)
            for (int64_t j = 0; j < n; j++) c[j] = add_m;
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++) c[j] *= beta;
        if (beta != 0.0f && add_m != 0.0f)
            for (int64_t j = 0; j < n; j++) c[j] += add_m;
        if (bn)
            for (int64_t j = 0; j < n; j++) c[j] += bn[j];
    }
}

/* C rows [i0, i0+m), columns [j0, j0+n) *= beta. */
static void scale_block(const gemm_args *g, int64_t i0, int64_t m, int64_t j0, int64_t n) {
    for (int64_t i = i0; i < i0 + m; i++) {
        float *c = g->C + i * g->ldc + j0;
        for (int64_t j = 0; j < n; j++) c[j] *= g->beta;
    }
}

/* Products below this many multiply-adds skip packing and threads. */
#define SMALL_MACS 32768.0
/* Products of fewer multiply-adds per thread run on fewer threads: below
 * this, splitting costs more than it brings (rank-16 LoRA products of a
 * few million multiply-adds gained 5-55 % from two threads at 2e6). */
#define SMALL_TASK_MACS 2e6

/* Unpacked path for small products: f32 copies of A and B, then rows of C
 * accumulated over k in order. Returns 0 if out of memory. */
static int gemm_small(const gemm_args *g, int round) {
    int64_t M = g->M, N = g->N, K = g->K;
    float *a = malloc(sizeof(float) * (size_t)(M * K + 1));
    float *b = malloc(sizeof(float) * (size_t)(K * N + 1));
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) a[i * K + k] = mat_at(g->A, i, k);
    if (g->fill) {
        if (K > 0) g->fill->fill(g->fill->user, 0, K, 0, N, b, N);
    } else {
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) b[k * N + j] = mat_at(g->B, k, j);
    }
    if (round) {
        round_tile_bf16(a, M * K);
        round_tile_bf16(b, K * N);
    }
    init_c(g, 0, M, 0, N);
    for (int64_t i = 0; i < M; i++) {
        float *c = g->C + i * g->ldc;
        for (int64_t k = 0; k < K; k++) {
            float aik = a[i * K + k];
            const float *bk = b + k * N;
            for (int64_t j = 0; j < N; j++) c[j] += aik * bk[j];
        }
    }
    free(a);
    free(b);
    return 1;
}

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* See gemm_kernels.h. */
void ld_gemm_pack_panel(const ld_gemm_kernel *kr, int round, void *dst, ld_dtype dt, const void *data, int64_t base,
                        int64_t sk, int64_t sx, int64_t kc, int64_t n, int W, float *tile, float *tmp) {
    if (kr->bf16 && kr->pack_pairs && kr->pack_pairs(dst, data, dt, base, sk, sx, kc, n, W)) return;
    float *t = kr->bf16 ? tile : dst;
    ld_gemm_gather(kr, dt, data, base, sk, sx, kc, n, W, t, tmp);
    ld_gemm_finish_panel(kr, round, t, kc, W, dst);
}

/* The kernel's pairing of f32 rows into bf16 pairs, or the scalar one. */
static ld_gemm_to_pairs_fn to_pairs_of(const ld_gemm_kernel *kr) {
    return kr->to_pairs ? kr->to_pairs : to_pairs_scalar;
}

void ld_gemm_finish_panel(const ld_gemm_kernel *kr, int round, float *tile, int64_t kc, int W, void *dst) {
    if (kr->bf16)
        to_pairs_of(kr)(tile, W, kc, W, dst);
    else if (round)
        round_tile_bf16(tile, kc * W);
}

/* Depth of the k slices in which ld_gemm_pack_panels packs x-contiguous
 * blocks, and the shortest rows (bytes) it slices: attention's V^T of 64
 * channels (256-byte rows, a few panels) ran 3-7 % slower sliced, the VAE's
 * of 512 (2 KB) 15 % faster. */
#define PACK_SLICE_K 16
#define PACK_SLICE_MIN_BYTES 512

/* See gemm_kernels.h. With x contiguous (A read from NCHW planes, as the
 * q/k/v projections do; B an activation [K, N]; attention's V^T) a panel's
 * source is a few dozen bytes of each of kc rows kilobytes apart: packed
 * panel by panel, every panel reads a cache line and a page per k, half
 * used, and the next panel reads them all again. So such a block is packed
 * in slices of PACK_SLICE_K rows (even: a slice starts at a whole pair), all
 * its panels in turn, and each row of the slice is read once, whole, for all
 * of them, while the next slice's rows are prefetched. */
void ld_gemm_pack_panels(const ld_gemm_kernel *kr, int round, void *dst, size_t pan, ld_dtype dt, const void *data,
                         int64_t base, int64_t sk, int64_t sx, int64_t kc, int64_t n, int W, float *tile, float *tmp) {
    const int64_t ses = dt == LD_F32 ? 4 : 2, esz = kr->bf16 ? 2 : 4;
    const int64_t slice = sx == 1 && sk != 1 && n > W && n * ses >= PACK_SLICE_MIN_BYTES ? PACK_SLICE_K : kc;
    for (int64_t k0 = 0; k0 < kc; k0 += slice) {
        if (slice < kc)
            for (int64_t k = k0 + slice; k < min64(k0 + 2 * slice, kc); k++)
                for (int64_t b = 0; b < n * ses; b += 64)
                    __builtin_prefetch((const char *)data + (base + k * sk) * ses + b, 0, 3);
        for (int64_t x = 0; x < n; x += W)
            ld_gemm_pack_panel(kr, round, (char *)dst + (x / W) * pan + (size_t)(k0 * W * esz), dt, data,
                               base + k0 * sk + x * sx, sk, sx, min64(slice, kc - k0), min64(W, n - x), W, tile, tmp);
    }
}

/* See gemm_kernels.h. */
void ld_gemm_pack_a_panels(const ld_gemm_kernel *kr, int round, void *dst, size_t pan, ld_dtype dt, const void *data,
                           int64_t base, int64_t sk, int64_t sx, int64_t kc, int64_t n, float *tile, float *tmp) {
    const int MR = kr->mr;
    /* a kernel's own packer handles all panels of a block or none (strides, dtype) */
    if (kr->pack_a && kr->pack_a(dst, data, dt, base, sk, sx, kc, min64(MR, n), MR)) {
        for (int64_t x = MR; x < n; x += MR)
            kr->pack_a((uint16_t *)((char *)dst + (x / MR) * pan), data, dt, base + x * sx, sk, sx, kc,
                       min64(MR, n - x), MR);
        return;
    }
    ld_gemm_pack_panels(kr, round, dst, pan, dt, data, base, sk, sx, kc, n, MR, tile, tmp);
    if (!kr->bf16) return;
    const int64_t done = round_up(kc, 2), dk = ld_gemm_depth(kr, kc);
    if (dk == done && !kr->relayout_a) return;
    for (int64_t x = 0; x < n; x += MR) {
        char *p = (char *)dst + (x / MR) * pan;
        memset(p + done * MR * 2, 0, (size_t)((dk - done) * MR * 2));
        if (kr->relayout_a) kr->relayout_a(p, dk);
    }
}

/* Packs rows [i0, i0+m) x depth [pc, pc+kc) of A into MR-row panels. */
static void pack_a_block(const gemm_args *g, const ld_gemm_kernel *kr, int round, int64_t i0,
                         int64_t m, int64_t pc, int64_t kc, char *abuf, size_t apan, float *tile, float *tmp) {
    ld_gemm_pack_a_panels(kr, round, abuf, apan, g->A->dtype, g->A->data, i0 * g->A->rs + pc * g->A->cs, g->A->cs,
                          g->A->rs, kc, m, tile, tmp);
}

/* Implicit-GEMM B for the bf16 kernels: the fill writes a few k rows of all
 * the block's columns at once into an f32 tile (rows apart by the block's
 * width in whole panels, columns past n zero), which each panel then turns
 * into pairs. A fill per panel would pay its per-row work (the source row of
 * each k, edges, a short copy) for NR columns; here it is paid once for the
 * block and the copies are long. FILL_FLOATS (64 KB) keeps the tile in L2
 * next to the packed A; at least 2 rows (the tile is sized for them). */
#define FILL_FLOATS 16384
static int64_t fill_rows(int64_t nw) {
    int64_t r = FILL_FLOATS / nw / 2 * 2;
    return r < 2 ? 2 : r > 64 ? 64 : r;
}

/* Packs columns [j0, j0+n) x depth [pc, pc+kc) of B into NR-column panels. */
static void pack_b_block(const gemm_args *g, const ld_gemm_kernel *kr, int round, int64_t j0,
                         int64_t n, int64_t pc, int64_t kc, char *bbuf, size_t bpan, float *tile, float *tmp) {
    const int NR = kr->nr;
    if (g->fill && kr->bf16) {
        const int64_t nw = round_up(n, NR), rows = fill_rows(nw);
        for (int64_t k0 = 0; k0 < kc; k0 += rows) {
            const int64_t kn = min64(rows, kc - k0);
            g->fill->fill(g->fill->user, pc + k0, kn, j0, n, tile, nw);
            if (nw > n)
                for (int64_t k = 0; k < kn; k++) memset(tile + k * nw + n, 0, sizeof(float) * (size_t)(nw - n));
            for (int64_t jr = 0; jr < n; jr += NR)
                to_pairs_of(kr)(tile + jr, nw, kn, NR, (uint16_t *)(bbuf + (jr / NR) * bpan) + k0 * NR);
        }
        return;
    }
    if (!g->fill) {
        ld_gemm_pack_panels(kr, round, bbuf, bpan, g->B->dtype, g->B->data, pc * g->B->rs + j0 * g->B->cs, g->B->rs,
                            g->B->cs, kc, n, NR, tile, tmp);
        return;
    }
    for (int64_t jr = 0; jr < n; jr += NR) {
        const int64_t ne = min64(NR, n - jr), j = j0 + jr;
        char *dst = bbuf + (jr / NR) * bpan;
        /* f32 kernels: filled straight into the panel */
        float *t = (float *)dst;
        g->fill->fill(g->fill->user, pc, kc, j, ne, t, NR);
        if (ne < NR)
            for (int64_t k = 0; k < kc; k++) memset(t + k * NR + ne, 0, sizeof(float) * (size_t)(NR - ne));
        ld_gemm_finish_panel(kr, round, t, kc, NR, dst);
    }
}

/* Adds the biases to me rows of n floats of C, ldc apart: c[x] += bn[x]
 * (bn not NULL), then c[x] += bm[r] (bm not NULL). The loops are vector
 * loops (omp simd: -O2 leaves them scalar, as C and the biases might
 * overlap); each element gets the same two additions either way, and the
 * same as in the kernels' micro_bias. */
static void bias_rows(float *c, int64_t ldc, int64_t me, int64_t n, const float *bn, const float *bm) {
    for (int64_t r = 0; r < me; r++, c += ldc) {
        if (bn) {
            #pragma omp simd
            for (int64_t x = 0; x < n; x++) c[x] += bn[x];
        }
        if (bm) {
            const float add = bm[r];
            #pragma omp simd
            for (int64_t x = 0; x < n; x++) c[x] += add;
        }
    }
}

/* Asks for the next tile of C while this one runs: with a short depth
 * (weight gradients over a few hundred tokens) and C far bigger than the
 * caches, the kernel would otherwise wait for its rows at the start. */
static inline void prefetch_tile(const float *c, int64_t me, int64_t n, int64_t ldc) {
    for (int64_t i = 0; i < me; i++)
        for (int64_t x = 0; x < n; x += 16) __builtin_prefetch(c + i * ldc + x, 1, 3);
}

/* One MR x NR tile of C (me x n of it inside the matrix). With bn or bm
 * (the tile's column and row biases, for the last k block of a kernel with
 * micro_bias) the biases are added before the tile is stored: by the
 * kernel for a whole tile, else on ctile (in L1) before it is copied out. */
static inline void run_tile(const ld_gemm_kernel *kr, int64_t kc, const void *ap, const void *bp, float *c, int64_t ldc,
                            int64_t me, int64_t n, int load, float *ctile, const float *bn, const float *bm) {
    const int MR = kr->mr, NR = kr->nr;
    if (me == MR && n == NR) {
        if (bn || bm)
            kr->micro_bias(kc, ap, bp, c, ldc, load, bn, bm);
        else
            kr->micro(kc, ap, bp, c, ldc, load);
        return;
    }
    if (load)
        for (int64_t i = 0; i < me; i++) memcpy(ctile + i * NR, c + i * ldc, sizeof(float) * (size_t)n);
    kr->micro(kc, ap, bp, ctile, NR, load);
    if (bn || bm) bias_rows(ctile, NR, me, n, bn, bm);
    for (int64_t i = 0; i < me; i++) memcpy(c + i * ldc, ctile + i * NR, sizeof(float) * (size_t)n);
}

void ld_gemm_run_tile(const ld_gemm_kernel *kr, int64_t kc, const void *ap, const void *bp, float *c, int64_t ldc,
                      int64_t me, int64_t n, int load, float *ctile) {
    run_tile(kr, kc, ap, bp, c, ldc, me, n, load, ctile, NULL, NULL);
}

/* Task grid: C is cut into tm x tn independent tasks (rows x columns); each
 * task runs the whole K loop with its own packed blocks, so threads never
 * wait for each other (robust when other processes share the cores). */
static void plan_tasks(int64_t M, int64_t N, int MR, int NR, int64_t mt_max, int64_t nt_max, int nt, int64_t *task_m,
                       int64_t *task_n) {
    int64_t tm = (M + mt_max - 1) / mt_max, tn = (N + nt_max - 1) / nt_max;
    /* enough tasks for dynamic balancing, without slivers thinner than 2 panels */
    while (nt > 1 && tm * tn < 3 * nt) {
        int64_t rows = M / (tm + 1), cols = N / (tn + 1);
        if (rows >= 2 * MR && (rows >= cols || cols < 2 * NR)) tm++;
        else if (cols >= 2 * NR) tn++;
        else break;
    }
    /* one row of tasks (A is then packed once for all of them): a multiple of
     * the threads, or with 11 equal tasks on 2 threads one thread runs 6 and
     * the other waits for a twelfth of the product. With several rows an
     * extra column block packs A once more, which cost the bf16 U-Net more
     * than the balance gained. */
    for (int64_t more = 1; nt > 1 && tm == 1 && tn % nt && more < nt; more++)
        if ((tn + more) % nt == 0 && N / (tn + more) >= 2 * NR) tn += more;
    *task_m = round_up((M + tm - 1) / tm, MR);
    *task_n = round_up((N + tn - 1) / tn, NR);
}

/* Block b of nb over n elements in whole panels of p: the first blocks take
 * one panel more than the rest, so the blocks differ by at most one panel
 * and the larger ones are handed out first (with equal blocks of
 * round_up(n / nb, p), the last block could be a sliver, and one thread did
 * a whole block more than the other). No block is wider than
 * round_up(n / nb, p), which the buffers are sized for. */
static inline void split_block(int64_t b, int64_t nb, int64_t n, int p, int64_t *lo, int64_t *hi) {
    const int64_t np = (n + p - 1) / p, base = np / nb, extra = np % nb;
    const int64_t p0 = b * base + (b < extra ? b : extra);
    *lo = p0 * p;
    *hi = min64(n, (p0 + base + (b < extra)) * p);
}

/* Per-CPU blocking: the kernels' mc/kc/nc were tuned on a Zen 4-class core
 * (AVX-512 at half width). A core that runs 512-bit FMAs at full width (AMD
 * family 0x1a, Zen 5) needs twice the arithmetic per byte of C moved: depth
 * 1024 and twice the column block lift the large f32 products from ~75 % to
 * ~85 % of its peak and bf16 by 5-16 % (bench_gemm --quick, 2 threads; the
 * sweep is in docs/performance.md). The sums are the same in any blocking
 * (k is summed in order into C), so results do not change. */
static void cpu_blocks(const ld_gemm_kernel *kr, int64_t *kc, int64_t *nc) {
    const ld_cpu_info *ci = ld_cpu_info_get();
    if (ld_cpu_level() == LD_CPU_AVX512 && !strcmp(ci->vendor, "AuthenticAMD") && ci->family >= 0x1a &&
        !strncmp(kr->name, "avx512", 6)) {
        *kc = 1024;
        *nc = 2 * kr->nc;
    }
}

/* Depth of the k blocks of a K-deep product, nominal depth KC: equal
 * blocks (even depth), never a short remainder block, which costs a pass
 * over C for little work. f32 blocks are at most KC deep; bf16 ones (half
 * the bytes) take as many blocks as K / KC rounds to, so up to 1.5 KC deep.
 * Zen 5-class, 2 threads, interleaved runs: the 1280-deep bf16 products of
 * SDXL and KOALA ran 1024 + 256 deep at 616-618 GFLOP/s and 1280 deep at
 * 702-717 (640 + 640: 646-669); f32 2304-deep 576 x 4096 ran 1024 + 1024 +
 * 256 deep at 215 and 3 x 768 at 233-256, but 2 x 1152 at 201-206. The sums
 * are the same in any blocking. */
static int64_t balanced_depth(int64_t K, int64_t KC, int bf16, int64_t step) {
    int64_t n = bf16 ? (K + KC / 2) / KC : (K + KC - 1) / KC;
    if (n < 1) n = 1;
    return round_up((K + n - 1) / n, step);
}

/* See gemm_packed.h: the kernel ld_gemm would use for M x N x K and its nominal
 * depth (ld_gemm evens its k blocks out, balanced_depth, which changes no
 * bits). */
void ld_gemm_packing_for(ld_gemm_packing *pk, int64_t M, int64_t N, int64_t K) {
    int emulate = 0;
    pk->kr = product_kernel(M, N, K, &emulate);
    pk->round = emulate;
    int64_t kc = pk->kr->kc, nc = pk->kr->nc;
    cpu_blocks(pk->kr, &kc, &nc);
    pk->kc = round_up(kc, ld_gemm_kstep(pk->kr));
}

int ld_gemm_packed_ok(int64_t M, int64_t N, int64_t K) {
    return M > 0 && N > 0 && K > 0 && (double)M * N * K >= SMALL_MACS;
}

/* Bytes spanned by a rows x cols half-precision operand (0 for negative strides). */
static size_t operand_bytes(const ld_mat *m, int64_t rows, int64_t cols) {
    if (m->rs < 0 || m->cs < 0) return 0;
    return 2 * (size_t)((rows - 1) * m->rs + (cols - 1) * m->cs + 1);
}

static int cacheable(const ld_mat *m, int64_t rows, int64_t cols) {
    const size_t bytes = operand_bytes(m, rows, cols);
    return bytes && ld_gemm_cache_eligible(m->data, bytes);
}

/* Where block (k block p, row block i) of all of A packed starts: k blocks
 * one after the other, each nmb blocks of mc_max rows; only the last k block
 * (kcp, its depth rounded to even, may be shorter) takes less than a_bytes a block. */
static inline size_t a_offset(int64_t p, int64_t i, int64_t kcp, int64_t nmb, size_t a_bytes, int64_t mc_max,
                              int64_t esz) {
    return (size_t)(p * nmb) * a_bytes + (size_t)i * (size_t)round_up(kcp * mc_max * esz, 64);
}

/* All of A packed, k block by k block, MC rows at a time (a_offset with
 * blocks of a_bytes, mc_max rows). The scratch tile sits tile_off into a
 * thread buffer (after its A region and B block). */
static void pack_all_a(const gemm_args *g, const ld_gemm_kernel *kr, int round, workspace *ws, int nt, size_t a_bytes,
                       size_t tile_off, int64_t tile_floats, int64_t KC, int64_t MC, int64_t mc_max, int64_t npc,
                       int64_t nmb, char *dst) {
    const int MR = kr->mr;
    const int64_t M = g->M, K = g->K, esz = kr->bf16 ? 2 : 4;
    #pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int64_t t = 0; t < npc * nmb; t++) {
        char *mine = ws->t[omp_get_thread_num()];
        float *tile = (float *)(mine + tile_off), *tmp = tile + tile_floats;
        const int64_t pc = (t / nmb) * KC, kc = min64(KC, K - pc), kcp = ld_gemm_depth(kr, kc);
        const int64_t i0 = (t % nmb) * MC;
        char *blk = dst + a_offset(pc / KC, i0 / MC, kcp, nmb, a_bytes, mc_max, esz);
        pack_a_block(g, kr, round, i0, min64(MC, M - i0), pc, kc, blk, (size_t)(kcp * MR * esz), tile, tmp);
    }
}

/* Panels of B per work item of pack_all_b. */
#define PACK_ALL_PANELS 8

/* All of B packed: k block pc at (pc/KC)*bblk, its NR-column panels one after
 * the other. a_bytes: the A region of a thread buffer (the tile follows it and B). */
static void pack_all_b(const gemm_args *g, const ld_gemm_kernel *kr, int round, workspace *ws, int nt, size_t a_bytes,
                       size_t b_bytes, int64_t tile_floats, int64_t KC, int64_t npc, int64_t nbp, size_t bblk,
                       char *dst) {
    const int NR = kr->nr;
    const int64_t N = g->N, K = g->K, esz = kr->bf16 ? 2 : 4;
    const int64_t per = PACK_ALL_PANELS, nchunk = (nbp + per - 1) / per;
    #pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int64_t t = 0; t < npc * nchunk; t++) {
        char *mine = ws->t[omp_get_thread_num()];
        float *tile = (float *)(mine + a_bytes + b_bytes), *tmp = tile + tile_floats;
        const int64_t pc = (t / nchunk) * KC, kc = min64(KC, K - pc), kcp = ld_gemm_depth(kr, kc);
        const int64_t j0 = (t % nchunk) * per * NR;
        const size_t bpan = (size_t)(kcp * NR * esz);
        pack_b_block(g, kr, round, j0, min64(per * NR, N - j0), pc, kc,
                     dst + (size_t)(pc / KC) * bblk + (size_t)(j0 / NR) * bpan, bpan, tile, tmp);
    }
}

/* Returns 0 if the buffers could not be allocated (caller falls back). */
static int gemm_blocked(const gemm_args *g, const ld_gemm_kernel *kr, int round) {
    const int MR = kr->mr, NR = kr->nr, W = MR > NR ? MR : NR;
    const int64_t M = g->M, N = g->N, K = g->K;
    pthread_once(&g_blocks_once, read_blocks);
    int64_t kc_cpu = kr->kc, nc_cpu = kr->nc;
    cpu_blocks(kr, &kc_cpu, &nc_cpu);
    const int64_t step = ld_gemm_kstep(kr);
    const int64_t KC = g_blocks[1] ? round_up(g_blocks[1], step) : balanced_depth(K, kc_cpu, kr->bf16, step);
    const int64_t MC = round_up(g_blocks[0] ? g_blocks[0] : kr->mc, MR);
    const int64_t NCT = round_up(g_blocks[2] ? g_blocks[2] : nc_cpu, NR);
    const int64_t esz = kr->bf16 ? 2 : 4;

    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    double macs = (double)M * N * K;
    if (nt > 1 && macs < SMALL_TASK_MACS * nt) nt = macs < SMALL_TASK_MACS ? 1 : (int)(macs / SMALL_TASK_MACS);
    if (nt < 1) nt = 1;

    /* Implicit-GEMM (convolution) products keep all output channels in one
     * row of tasks: A is then packed once (share_a below) and the costly B
     * fill runs once per element instead of once per row of tasks. */
    const int64_t mt_max = g->fill && M > 4 * MC ? round_up(M, MR) : 4 * MC;
    int64_t task_m, task_n;
    plan_tasks(M, N, MR, NR, mt_max, NCT, nt, &task_m, &task_n);
    int64_t tm = (M + task_m - 1) / task_m;
    const int64_t tn = (N + task_n - 1) / task_n;
    /* Row walk: with several column blocks (and A not shared below), a task
     * is a whole row block that walks all column blocks for each k block, so
     * its rows of A are packed once per k block instead of once per column
     * block. Enough row blocks (3 per thread, each at least 2 panels) keep
     * the dynamic balancing of the grid. */
    /* A filled B (a convolution's built input) joins the walk only when
     * all of it is filled once into the shared buffer below (its size
     * condition), or each row block would fill it again: the pointwise
     * convolutions of Stage B/C (M = 1152-6144 channels, N = 576-4096
     * pixels) otherwise split into task rows and columns, and packed their
     * filters once per column block. */
    const int64_t nbp = (N + NR - 1) / NR;
    const int64_t kcmax = round_up(min64(KC, K), 2);
    const size_t bblk = (size_t)round_up(kcmax * nbp * NR * esz, 64); /* one k block of all of B */
    const int64_t npc = (K + KC - 1) / KC;
    const int b_fits = (double)npc * bblk <= 32.0 * (1 << 20);
    const int walk = (!g->fill || b_fits) && tn >= 2 && !(tm == 1 && tn >= 4);
    if (walk) {
        int64_t want = nt > 1 ? 3 * (int64_t)nt : 1, most = M / (2 * MR);
        if (want > most) want = most;
        if (want > tm) {
            task_m = round_up((M + want - 1) / want, MR);
            tm = (M + task_m - 1) / task_m;
        }
    }
    const int64_t mc_max = min64(MC, task_m);
    const size_t a_bytes = (size_t)round_up(kcmax * mc_max * esz, 64); /* keeps the B block 64-byte aligned */
    /* a row walk keeps all MC-row blocks of its rows packed for one k block */
    const size_t a_region = walk ? (size_t)((task_m + MC - 1) / MC) * a_bytes : a_bytes;
    const size_t b_bytes = (size_t)round_up(kcmax * task_n * esz, 64);
    /* scratch tile: a panel of depth kcmax, or the rows of an implicit-GEMM
     * fill (pack_b_block) over a task's columns or pack_all_b's panels */
    int64_t tile_floats = kcmax * W;
    if (g->fill && kr->bf16) {
        const int64_t most = PACK_ALL_PANELS * NR, nw = round_up(task_n > most ? task_n : most, NR);
        const int64_t need = FILL_FLOATS > 2 * nw ? FILL_FLOATS : 2 * nw;
        if (need > tile_floats) tile_floats = need;
    }
    const size_t t_bytes = a_region + b_bytes + sizeof(float) * (size_t)(tile_floats + kcmax + 2 * W + 64);
    /* One row of tasks over many columns (convolutions: M = output channels,
     * N = pixels): every task would pack the same A, so A is packed once,
     * all of it, into a shared buffer first. Several rows of tasks (linear
     * layers: M = tokens, B = the weights; convolutions of few pixels and
     * many output channels): B is packed (or filled) once the same way, not
     * once per row of tasks. Same bits either way. All of A is shared up
     * to 16 MB: the 29.5 MB of a 1280-channel 3x3 convolution (1280 x 4096
     * x 11520, bf16, Zen 5-class) ran at 462-552 GFLOP/s shared and at
     * 588-706 packed by each task. */
    const int64_t nmb = (M + MC - 1) / MC;
    /* all of A packed (shared or cached) is laid out in blocks of MC rows
     * from row 0 whatever the tasks: with one row of tasks these are the
     * tasks' own blocks (mc_all = mc_max) */
    const int64_t mc_all = min64(MC, round_up(M, MR));
    const size_t a_all_bytes = (size_t)round_up(kcmax * mc_all * esz, 64);
    const int share_a = tm == 1 && tn >= 4 && (double)npc * nmb * a_bytes <= 16.0 * (1 << 20);
    const int share_b = tm >= 2 && b_fits;
    /* Half-precision weights of a constant mapping are packed once for all
     * products from their second on (gemm_cache.h), A and B. A used to be
     * cached only when all rows were one row of tasks; the pointwise
     * convolutions of Stage C (M = 2048-8192 channels, N = 576 pixels) are
     * split into several task rows for balance and re-packed their filters
     * on every call (a third of a bf16 Stage C evaluation). */
    ld_pack_key ka = {0}, kb = {0};
    const int cache_a = kr->bf16 && g->A->dtype != LD_F32 && cacheable(g->A, M, K);
    const int cache_b = kr->bf16 && !g->fill && g->B->dtype != LD_F32 && cacheable(g->B, K, N);
    const void *acached = NULL, *bcached = NULL;
    int pack_a_now = 0, pack_b_now = 0; /* no copy yet: make one now (second use) */
    if (cache_a) {
        ka = (ld_pack_key){g->A->data, M, K, g->A->rs, g->A->cs, (int)g->A->dtype, kr, KC, mc_all, 'A'};
        acached = ld_gemm_cache_find(&ka, &pack_a_now);
    }
    if (cache_b) {
        kb = (ld_pack_key){g->B->data, K, N, g->B->rs, g->B->cs, (int)g->B->dtype, kr, KC, 0, 'B'};
        bcached = ld_gemm_cache_find(&kb, &pack_b_now);
    }
    const int a_read = cache_a && !acached, b_read = cache_b && !bcached; /* packed from the source */
    /* all of A or B packed; the last k block takes only its own depth */
    const int64_t kcp_last = round_up(K - (npc - 1) * KC, 2);
    const size_t a_all = a_offset(npc - 1, nmb, kcp_last, nmb, a_all_bytes, mc_all, esz);
    const size_t b_all = (size_t)(npc - 1) * bblk + (size_t)round_up(kcp_last * nbp * NR * esz, 64);
    const int new_a = cache_a && !acached && pack_a_now, new_b = cache_b && !bcached && pack_b_now;
    const int ws_a = share_a && !acached && !new_a, ws_b = share_b && !bcached && !new_b;
    workspace *ws = ws_acquire(t_bytes, ws_a ? a_all : ws_b ? b_all : 0, nt);
    if (!ws) return 0;
    void *own_a = NULL, *own_b = NULL; /* packed for the cache but not stored: this product's only */
    const char *ashared = acached, *bshared = bcached;
    if (new_a || ws_a) {
        char *dst = ws_a ? ws->shared : (own_a = ld_gemm_cache_alloc(a_all));
        if (dst) {
            pack_all_a(g, kr, round, ws, nt, a_all_bytes, a_region + b_bytes, tile_floats, KC, MC, mc_all, npc, nmb,
                       dst);
            ashared = dst;
            if (own_a && (acached = ld_gemm_cache_insert(&ka, own_a, a_all, operand_bytes(g->A, M, K)))) {
                ashared = acached;
                own_a = NULL;
            }
        }
    }
    if (new_b || ws_b) {
        char *dst = ws_b ? ws->shared : (own_b = ld_gemm_cache_alloc(b_all));
        if (dst) {
            pack_all_b(g, kr, round, ws, nt, a_region, b_bytes, tile_floats, KC, npc, nbp, bblk, dst);
            bshared = dst;
            if (own_b && (bcached = ld_gemm_cache_insert(&kb, own_b, b_all, operand_bytes(g->B, K, N)))) {
                bshared = bcached;
                own_b = NULL;
            }
        }
    }

    /* beta other than 0 and 1 scales C first; the biases are added to each
     * tile after its last k block, by the kernel before it stores the sums
     * (micro_bias) or else after the column of tiles (the order of
     * ld_gemm_reference: sum, then bias_n, then bias_m) */
    const int scale_c = g->beta != 0.0f && g->beta != 1.0f;

    #pragma omp parallel for num_threads(nt) schedule(dynamic)
    for (int64_t task = 0; task < (walk ? tm : tm * tn); task++) {
        char *abuf = ws->t[omp_get_thread_num()];
        char *bbuf = abuf + a_region;
        float *tile = (float *)(bbuf + b_bytes);
        float *tmp = tile + tile_floats;
        _Alignas(64) float ctile[64 * 64];
        int64_t r0, r1;
        split_block(walk ? task : task / tn, tm, M, MR, &r0, &r1);
        const int64_t cb0 = walk ? 0 : task % tn, cb1 = walk ? tn : cb0 + 1; /* column blocks */
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = min64(KC, K - pc), kcp = ld_gemm_depth(kr, kc);
            const size_t bpan = (size_t)(kcp * NR * esz), apan = (size_t)(kcp * MR * esz);
            const int load = pc > 0 || g->beta != 0.0f, last = pc + KC >= K;
            if (walk && !ashared)
                for (int64_t i0 = r0; i0 < r1; i0 += MC)
                    pack_a_block(g, kr, round, i0, min64(MC, r1 - i0), pc, kc, abuf + ((i0 - r0) / MC) * a_bytes,
                                 apan, tile, tmp);
            for (int64_t cb = cb0; cb < cb1; cb++) {
                int64_t c0, c1;
                split_block(cb, tn, N, NR, &c0, &c1);
                const char *bblock = bbuf;
                if (bshared)
                    bblock = bshared + (size_t)(pc / KC) * bblk + (size_t)(c0 / NR) * bpan;
                else
                    pack_b_block(g, kr, round, c0, c1 - c0, pc, kc, bbuf, bpan, tile, tmp);
                for (int64_t i0 = r0; i0 < r1; i0 += MC) {
                    const int64_t m = min64(MC, r1 - i0);
                    const char *ablk = abuf + (walk ? ((i0 - r0) / MC) * a_bytes : 0);
                    if (!ashared && !walk)
                        pack_a_block(g, kr, round, i0, m, pc, kc, abuf, apan, tile, tmp);
                    if (pc == 0 && scale_c) scale_block(g, i0, m, c0, c1 - c0);
                    for (int64_t jr = c0; jr < c1; jr += NR) {
                        const int64_t n = min64(NR, c1 - jr);
                        const char *bp = bblock + ((jr - c0) / NR) * bpan;
                        for (int64_t ir = 0; ir < m; ir += MR) {
                            const int64_t me = min64(MR, m - ir);
                            /* a panel of all of A: block and place of row i0 + ir (a
                             * multiple of MR; task rows need not start at a block) */
                            const int64_t gi = i0 + ir;
                            const char *ap = ashared ? ashared + a_offset(pc / KC, gi / MC, kcp, nmb, a_all_bytes,
                                                                          mc_all, esz) + ((gi % MC) / MR) * apan
                                                     : ablk + (ir / MR) * apan;
                            float *c = g->C + (i0 + ir) * g->ldc + jr;
                            if (load && ir + MR < m) prefetch_tile(c + MR * g->ldc, min64(MR, m - ir - MR), n, g->ldc);
                            const int fuse = last && kr->micro_bias;
                            run_tile(kr, kc, ap, bp, c, g->ldc, me, n, load, ctile,
                                     fuse && g->bn ? g->bn + jr : NULL, fuse && g->bm ? g->bm + i0 + ir : NULL);
                        }
                        /* kernels without micro_bias: a pass after the column's
                         * tiles, not after each (loads right after the kernel's
                         * wide stores wait for them; with C rows a power of two
                         * apart they are out of L1 by then: 2 % of a Stable
                         * Cascade decoder evaluation, which micro_bias saves) */
                        if (last && !kr->micro_bias && (g->bn || g->bm))
                            bias_rows(g->C + i0 * g->ldc + jr, g->ldc, m, n, g->bn ? g->bn + jr : NULL,
                                      g->bm ? g->bm + i0 : NULL);
                    }
                }
            }
        }
    }
    ws_release(ws);
    ld_aligned_free(own_a);
    ld_aligned_free(own_b);
    if (a_read) ld_gemm_cache_source_read(&ka, operand_bytes(g->A, M, K));
    if (b_read) ld_gemm_cache_source_read(&kb, operand_bytes(g->B, K, N));
    return 1;
}

static void gemm_any(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, const ld_gemm_bfill *fill,
                     float *C, int64_t ldc, float beta, const ld_tensor *bias_n, const ld_tensor *bias_m) {
    if (M <= 0 || N <= 0) return;
    if (K < 0) K = 0;
    gemm_args g = {M, N, K, A, B, fill, C, ldc, beta, NULL, NULL};
    float *bn = NULL, *bm = NULL;
    if (bias_n && bias_n->data) {
        bn = malloc(sizeof(float) * (size_t)N);
        if (bn) ld_convert_to_f32(bn, bias_n->data, bias_n->dtype, 0, N);
    }
    if (bias_m && bias_m->data) {
        bm = malloc(sizeof(float) * (size_t)M);
        if (bm) ld_convert_to_f32(bm, bias_m->data, bias_m->dtype, 0, M);
    }
    int ok = !((bias_n && bias_n->data && !bn) || (bias_m && bias_m->data && !bm));
    g.bn = bn;
    g.bm = bm;
    int emulate = 0;
    const ld_gemm_kernel *kr = product_kernel(M, N, K, &emulate);
    if (ok && K == 0) {
        init_c(&g, 0, M, 0, N);
    } else if (ok && (double)M * N * K < SMALL_MACS) {
        ok = gemm_small(&g, g_precision == LD_PRECISION_BF16);
    } else if (ok) {
        ok = gemm_blocked(&g, kr, emulate);
    }
    free(bn);
    free(bm);
    if (ok) return;
    /* Out of memory for the buffers: the unbuffered reference still works. */
    if (fill) {
        ld_log_warn("ld_gemm: out of memory for packing buffers (%lldx%lldx%lld)", (long long)M, (long long)N,
                    (long long)K);
        return;
    }
    ld_gemm_reference(M, N, K, A, B, C, ldc, beta, bias_n, bias_m);
}

void ld_gemm(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_mat *B, float *C, int64_t ldc, float beta,
             const ld_tensor *bias_n, const ld_tensor *bias_m) {
    LD_FLOPS_COUNT(LD_FLOPS_GEMM, M > 0 && N > 0 && K > 0 ? 2 * M * N * K : 0, 1, M, N, K);
    gemm_any(M, N, K, A, B, NULL, C, ldc, beta, bias_n, bias_m);
}

void ld_gemm_fill_b(int64_t M, int64_t N, int64_t K, const ld_mat *A, const ld_gemm_bfill *B, float *C, int64_t ldc,
                    float beta, const ld_tensor *bias_n, const ld_tensor *bias_m) {
    LD_FLOPS_COUNT(LD_FLOPS_CONV, M > 0 && N > 0 && K > 0 ? 2 * M * N * K : 0, 1, M, N, K);
    gemm_any(M, N, K, A, NULL, B, C, ldc, beta, bias_n, bias_m);
}
