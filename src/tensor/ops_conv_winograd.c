/* 3x3 convolutions (stride 1, zero padding 1, one group) by Winograd's
 * minimal filtering F(m x m, 3x3) (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016): each m x m block of output pixels
 * (a tile) is
 *     Y = A^T [ (G g G^T) . (B^T d B) ] A
 * for its (m + 2) x (m + 2) input patch d and the 3x3 filter g, so the
 * products that dominate a convolution (summed over the input channels)
 * become T = (m + 2)^2 matrix products:
 *     M_xi[cout, tile] = sum_cin U_xi[cout, cin] V_xi[cin, tile],  xi < T
 * F(2x2, 3x3) needs 16 / 36 = 4/9 of the direct form's multiply-adds,
 * F(4x4, 3x3) 36 / 144 = 1/4 but has larger transform constants (up to 8 and
 * 1/24), so it is only taken with f32 products (and enough tiles,
 * F4_MIN_ITEMS).
 * U = G g G^T (the filters) is made and packed for the GEMM kernels once a
 * call, at most U_VALUES of it at a time (blocks of output channels). The
 * tiles are cut into items of ITEM_PANELS kernel panels (128 tiles with the
 * 14x32 kernel; ITEM_PANELS_F4 for F(4x4)); a thread takes an item and runs
 * all of it in its own cache-sized scratch: V = B^T d B of its tiles, the T
 * products on the packed kernels (gemm_packed.h), and the output transform
 * straight into y, so V and M never travel to memory, the input is read
 * about (m + 2) / m times and the output written once.
 *
 * The products run in the calling thread's ld_gemm precision. The sums
 * have other terms than the direct form's: in f32 their error against
 * diffusers is about that of the direct sums (F(2x2)) or twice it (F(4x4)),
 * some 1e-6, far inside the reference tolerances; in bf16 the transformed
 * values are rounded as every product's inputs are. Training keeps the
 * direct sums (ld_conv_set_direct): its backward is the direct form's, and
 * its replay's second step magnifies any difference. LEANDIFF_WINOGRAD=0
 * turns the path off; LEANDIFF_WINOGRAD=2 or 4 makes it use that tile
 * wherever it runs (the tests run the reference cases with F(4x4), which
 * their small sizes would not choose). An item is one thread's from start to
 * end, so results do not depend on the thread count. */
#include "tensor/ops_internal.h"
#include "base/flops.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm_packed.h"

/* Kernel panels (NR tiles each) of an item: each packed U_xi row is used
 * this many panels' tiles over before it is read again. F(4x4) tiles hold
 * 4x the pixels: 2 panels of them beat 1 (fewer loads of U) and 4 (more
 * items: KOALA's 32x32 level, batch 2, has 128 tiles). */
#define ITEM_PANELS 4
#define ITEM_PANELS_F4 2
/* F(4x4, 3x3) is taken (with f32 products) from this many items of tiles
 * up, so that its items still keep a few threads busy; below, F(2x2). */
#define F4_MIN_ITEMS 4
/* Most values of packed U at a time (kept between calls; 32 MB in bf16,
 * 64 MB in f32): a larger U (KOALA's 1280- and 2560-channel convolutions:
 * 26M and 52M values) is done in equal blocks of output channels, each block
 * transforming the input again. In bf16, 8M values made the 2560 -> 1280
 * convolution at 32x32 (batch 2) 34 % slower than one block, 16M 21 %
 * (measured before the filter transform was vectorized); in f32, 8M / 16M /
 * 32M / 64M values took 273 / 247 / 219 / 212 ms. */
#define U_VALUES ((size_t)16 << 20)
/* Output channels per pass over an item's tiles: rows of A kept in cache. */
#define ROW_BLOCK_PANELS 8

static int g_enabled, g_forced_m; /* LEANDIFF_WINOGRAD: 0 off; 2 or 4 that tile wherever the path runs */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Thread_local int t_direct; /* ld_conv_set_direct */

static void read_env(void) {
    const char *e = getenv("LEANDIFF_WINOGRAD");
    g_enabled = !(e && !strcmp(e, "0"));
    g_forced_m = e && (!strcmp(e, "2") || !strcmp(e, "4")) ? e[0] - '0' : 0;
}

int ops_winograd_enabled(void) {
    pthread_once(&g_once, read_env);
    return g_enabled && !t_direct;
}

int ld_conv_set_direct(int on) {
    const int prev = t_direct;
    t_direct = on != 0;
    return prev;
}

/* U_xi[o, i] = (G g G^T)[xi] of the filters g = w[o, i] of one output
 * channel o into u + xi * xs + i: converted to f32, then the filter
 * transform of F(m x m, 3x3). scr: 36 * Cin floats. */
static void filter_row(const ld_gemm_kernel *kr, const ops_wino_transforms *tf, const ld_tensor *w, int64_t o,
                       int64_t Cin, float *u, int64_t xs, float *scr) {
    (kr->convert ? kr->convert : ld_convert_to_f32)(scr, w->data, w->dtype, o * Cin * 9, Cin * 9);
    tf->filter(u, xs, scr, Cin, scr + 9 * Cin);
}

/* The T U_xi of F(m x m, 3x3) of the output channels first .. first +
 * count - 1 packed for the product kernel (A operands, count x Cin): a panel
 * of MR channels at a time, transformed into the thread's scratch (T x MR x
 * Cin floats, then 36 * Cin for filter_row) and packed with ld_gemm_pack_a,
 * which rounds to bf16 when the products do. */
static void pack_filters(const ld_gemm_packing *pk, const ops_wino_transforms *tf, int T, char *apack,
                         size_t xi_bytes, const ld_tensor *w, int64_t first, int64_t count, int64_t Cin, float *scr,
                         int64_t per) {
    const int MR = pk->kr->mr;
    const size_t apan = ld_gemm_packed_a_bytes(pk, MR, Cin);
    const int64_t npan = (count + MR - 1) / MR, ut = T * MR * Cin;
    #pragma omp parallel for schedule(static)
    for (int64_t pn = 0; pn < npan; pn++) {
        float *u = scr + omp_get_thread_num() * per, *rest = u + ut;
        const int64_t o0 = pn * MR, rows = count - o0 < MR ? count - o0 : MR;
        for (int64_t r = 0; r < rows; r++)
            filter_row(pk->kr, tf, w, first + o0 + r, Cin, u + r * Cin, MR * Cin, rest);
        for (int xi = 0; xi < T; xi++) {
            const ld_mat A = ld_mat_f32(u + (int64_t)xi * MR * Cin, Cin, 1);
            ld_gemm_pack_a(pk, apack + xi * xi_bytes + (size_t)pn * apan, &A, rows, Cin, rest);
        }
    }
}

/* The call's buffers: the packed U and the threads' scratch. One set is
 * kept between calls (grown as needed: fresh pages of this size cost more
 * to fault in than the transforms take); a call that finds it busy
 * (another thread's) allocates its own. */
enum { BUF_U, BUF_SCR, NBUF };
typedef struct {
    void *p[NBUF];
    size_t bytes[NBUF];
} buffers;

static buffers g_kept;
static int g_kept_busy;
static pthread_mutex_t g_kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void buffers_free(buffers *b) {
    for (int i = 0; i < NBUF; i++) {
        ld_aligned_free(b->p[i]);
        b->p[i] = NULL;
        b->bytes[i] = 0;
    }
}

/* The kept set (grown to `need`) or, when it is busy, own; on failure the
 * returned set holds no buffers (p[0] NULL). */
static buffers *buffers_get(const size_t need[NBUF], buffers *own) {
    buffers *b = own;
    pthread_mutex_lock(&g_kept_lock);
    if (!g_kept_busy) {
        g_kept_busy = 1;
        b = &g_kept;
    }
    pthread_mutex_unlock(&g_kept_lock);
    for (int i = 0; i < NBUF; i++) {
        if (b->bytes[i] >= need[i]) continue;
        ld_aligned_free(b->p[i]);
        b->p[i] = NULL;
        b->bytes[i] = 0;
        if (ld_aligned_alloc(NULL, &b->p[i], need[i], "") != LD_OK) {
            buffers_free(b);
            return b;
        }
        b->bytes[i] = need[i];
    }
    return b;
}

static void buffers_put(buffers *b) {
    if (b != &g_kept) {
        buffers_free(b);
        return;
    }
    pthread_mutex_lock(&g_kept_lock);
    g_kept_busy = 0;
    pthread_mutex_unlock(&g_kept_lock);
}

/* One call: tiles of m x m output pixels (F(m x m, 3x3), m = 2 or 4; T =
 * (m + 2)^2 products), TH x TW of them a plane, numbered t = (b * TH + ty) *
 * TW + tx; items of at most nb tiles; the output channels o0 .. o0 + ob - 1
 * whose U is packed at apack. */
typedef struct {
    int m, T;
    int64_t B, Cin, Cout, H, W, TH, TW, nb, o0, ob;
    const float *x;
    float *y;
    const ld_tensor *bias;
    const ld_gemm_packing *pk;
    const ops_wino_transforms *tf; /* the transforms of F(m x m) on the CPU path */
    const char *apack;
    size_t xi_bytes;
} wino;

/* V_xi[k] at v + xi * xs + k for the tiles tx0 .. tx0 + n - 1 of tile row
 * `row` (b * TH + ty), input channel c: the m + 2 input rows of the tiles
 * padded to m n + m floats (p[j] = x[m tx0 - 1 + j], 0 outside), then the
 * input transform. scr: 48 * (n + 1) floats. */
static void input_seg(const wino *cv, int64_t c, int64_t row, int64_t tx0, int64_t n, float *v, int64_t xs,
                      float *scr) {
    const int m = cv->m;
    const int64_t b = row / cv->TH, ty = row % cv->TH, np = m * n + m, x0 = m * tx0 - 1;
    const float *plane = cv->x + (b * cv->Cin + c) * cv->H * cv->W;
    const int64_t lo = x0 < 0 ? -x0 : 0, hi = x0 + np > cv->W ? cv->W - x0 : np; /* in-image part of p */
    for (int a = 0; a < m + 2; a++) { /* input rows m ty - 1 .. m ty + m */
        const int64_t iy = m * ty - 1 + a;
        float *p = scr + a * np;
        if (iy < 0 || iy >= cv->H || hi <= lo) {
            memset(p, 0, sizeof(float) * (size_t)np);
            continue;
        }
        for (int64_t j = 0; j < lo; j++) p[j] = 0.0f;
        memcpy(p + lo, plane + iy * cv->W + x0 + lo, sizeof(float) * (size_t)(hi - lo));
        for (int64_t j = hi; j < np; j++) p[j] = 0.0f;
    }
    cv->tf->in(v, xs, scr, n, scr + (m + 2) * np);
}

/* y rows m ty .. m ty + m - 1 of output channel o for the tiles tx0 .. tx0 +
 * n - 1 of tile row `row`, from M_xi[k] at mo + xi * xs + k (the output
 * transform). scr: 16 * n floats. */
static void output_seg(const wino *cv, int64_t o, int64_t row, int64_t tx0, int64_t n, const float *mo, int64_t xs,
                       float bias, float *scr) {
    const int m = cv->m;
    const int64_t b = row / cv->TH, ty = row % cv->TH, x0 = m * tx0, w = x0 + m * n <= cv->W ? m * n : cv->W - x0;
    float *plane = cv->y + (b * cv->Cout + o) * cv->H * cv->W + x0, *y[4];
    for (int r = 0; r < m; r++) y[r] = m * ty + r < cv->H ? plane + (m * ty + r) * cv->W : NULL;
    cv->tf->out(y, w, mo, xs, n, bias, scr);
}

/* Most tiles of an item (ITEM_PANELS of the widest kernel, or a test's). */
#define ITEM_MAX 256

/* A run of an item's tiles within one tile row: tiles tx0 .. tx0 + len - 1
 * of row `row`, at offset off in the item. */
typedef struct {
    int64_t row, tx0, len, off;
} segment;

/* The runs of tiles [t0, t0 + n); returns how many. */
static int segments(const wino *cv, int64_t t0, int64_t n, segment *sg) {
    int ns = 0;
    for (int64_t off = 0; off < n; ns++) {
        const int64_t t = t0 + off, tx0 = t % cv->TW, len = cv->TW - tx0 < n - off ? cv->TW - tx0 : n - off;
        sg[ns] = (segment){t / cv->TW, tx0, len, off};
        off += len;
    }
    return ns;
}

/* Input channels transformed at a time before their rows of V are packed. */
#define CHANNEL_BLOCK 32

/* Byte offsets in a thread's scratch for items of nb tiles: the f32 V of a
 * block of input channels, V packed for the kernels (all T xi), M of a
 * block of output channels, the packing tile, the transforms' rows. */
typedef struct {
    size_t vc, vp, m, tile, rows, total, v_bytes;
} item_layout;

static item_layout layout_of(const wino *cv) {
    item_layout l;
    const int64_t nb = cv->nb, mb = ROW_BLOCK_PANELS * cv->pk->kr->mr;
    l.v_bytes = ld_gemm_packed_b_bytes(cv->pk, cv->Cin, nb);
    l.vc = 0;
    l.vp = l.vc + sizeof(float) * (size_t)(cv->T * CHANNEL_BLOCK * nb);
    l.m = l.vp + (cv->T * l.v_bytes + 63) / 64 * 64;
    l.tile = l.m + sizeof(float) * (size_t)(cv->T * mb * nb);
    l.rows = l.tile + sizeof(float) * (size_t)(ld_gemm_packed_tile_floats(cv->pk, CHANNEL_BLOCK) + 16);
    l.total = l.rows + sizeof(float) * (size_t)(48 * (nb + 1)) + 64;
    return l;
}

/* One item, tiles [t0, t0 + n): V of its tiles, CHANNEL_BLOCK input
 * channels at a time, packed for the kernels; then for each block of
 * output channels the 16 products M_xi = U_xi V_xi and the output
 * transform of those channels straight into y. */
static void run_item(const wino *cv, const item_layout *l, int64_t t0, int64_t n, char *scr) {
    const ld_gemm_packing *pk = cv->pk;
    const int MR = pk->kr->mr, NR = pk->kr->nr;
    const int64_t ld = cv->nb, K = cv->Cin, mb = ROW_BLOCK_PANELS * MR, CB = CHANNEL_BLOCK;
    float *vc = (float *)(scr + l->vc), *m = (float *)(scr + l->m), *tile = (float *)(scr + l->tile);
    float *rows = (float *)(scr + l->rows);
    char *vp = scr + l->vp;
    const size_t apan = ld_gemm_packed_a_bytes(pk, MR, K), bpan = ld_gemm_packed_b_bytes(pk, K, NR);
    segment sg[ITEM_MAX];
    const int ns = segments(cv, t0, n, sg);
    for (int64_t c0 = 0; c0 < K; c0 += CB) {
        const int64_t kc = K - c0 < CB ? K - c0 : CB;
        for (int i = 0; i < ns; i++)
            for (int64_t c = 0; c < kc; c++)
                input_seg(cv, c0 + c, sg[i].row, sg[i].tx0, sg[i].len, vc + c * ld + sg[i].off, CB * ld, rows);
        for (int xi = 0; xi < cv->T; xi++) {
            const ld_mat V = ld_mat_f32(vc + (int64_t)xi * CB * ld, ld, 1);
            ld_gemm_pack_b_rows(pk, vp + xi * l->v_bytes, K, c0, &V, kc, n, tile);
        }
    }
    for (int64_t i0 = 0; i0 < cv->ob; i0 += mb) {
        const int64_t rows_m = cv->ob - i0 < mb ? cv->ob - i0 : mb;
        for (int xi = 0; xi < cv->T; xi++)
            ld_gemm_packed_run_uncounted(pk, rows_m, n, K, cv->apack + xi * cv->xi_bytes + (size_t)(i0 / MR) * apan,
                                         apan, vp + xi * l->v_bytes, bpan, m + (int64_t)xi * mb * ld, ld, 0);
        for (int64_t r = 0; r < rows_m; r++) {
            const int64_t o = cv->o0 + i0 + r;
            const float bias = ops_has(cv->bias) ? ops_wget(cv->bias, o) : 0.0f;
            for (int i = 0; i < ns; i++)
                output_seg(cv, o, sg[i].row, sg[i].tx0, sg[i].len, m + r * ld + sg[i].off, mb * ld, bias, rows);
        }
    }
}

int ops_conv3x3_winograd(float *y, const float *x, int64_t B, int64_t Cin, int64_t H, int64_t W, const ld_tensor *w,
                         const ld_tensor *bias, int m, int64_t item_tiles, size_t u_bytes) {
    const int64_t Cout = w->shape[0];
    ld_gemm_packing pk;
    ld_gemm_packing_for(&pk, Cout, ITEM_PANELS * 32, Cin); /* the kernel of Cout x (an item) products */
    const int64_t MR = pk.kr->mr, NR = pk.kr->nr;
    pthread_once(&g_once, read_env);
    if (m != 2 && m != 4) m = g_forced_m;
    if (m != 2 && m != 4) /* F(4x4, 3x3) for f32 products over enough tiles */
        m = ld_gemm_get_precision() == LD_PRECISION_F32 &&
                    B * ((H + 3) / 4) * ((W + 3) / 4) >= F4_MIN_ITEMS * ITEM_PANELS_F4 * NR
                ? 4
                : 2;
    const int T = (m + 2) * (m + 2);
    wino c = {m, T, B, Cin, Cout, H, W, (H + m - 1) / m, (W + m - 1) / m, 0, 0, Cout, x, y, bias, &pk,
              m == 4 ? &ops_vec()->wino4 : &ops_vec()->wino2, NULL, 0};
    const int64_t tiles = B * c.TH * c.TW;
    c.nb = item_tiles > 0 ? item_tiles : (m == 4 ? ITEM_PANELS_F4 : ITEM_PANELS) * NR;
    if (c.nb > ITEM_MAX) c.nb = ITEM_MAX;
    if (c.nb > tiles) c.nb = tiles;
    const int64_t tile = ld_gemm_packed_tile_floats(&pk, Cin), nt = omp_get_max_threads();
    const item_layout lay = layout_of(&c);
    /* a thread's scratch: an item's, or pack_filters' (T MR rows of U, then
     * filter_row's 36 Cin or the packing tile) */
    int64_t per = (int64_t)(lay.total + 3) / 4;
    const int64_t filt = T * MR * Cin + (36 * Cin > tile ? 36 * Cin : tile);
    if (filt > per) per = filt;
    per = (per + 15) / 16 * 16; /* 64-byte aligned per thread */
    /* output channels in blocks whose packed U stays within U_VALUES */
    const size_t u_max = u_bytes ? u_bytes : U_VALUES * (pk.kr->bf16 ? 2 : 4);
    const int64_t panels = (Cout + MR - 1) / MR;
    int64_t fit = (int64_t)(u_max / (T * ld_gemm_packed_a_bytes(&pk, MR, Cin))); /* panels a block holds */
    if (fit < 1) fit = 1;
    const int64_t nblocks = (panels + fit - 1) / fit;
    c.ob = (panels + nblocks - 1) / nblocks * MR; /* equal blocks of whole panels */
    c.xi_bytes = ld_gemm_packed_a_bytes(&pk, c.ob, Cin);
    const size_t need[NBUF] = {T * c.xi_bytes, sizeof(float) * (size_t)(nt * per)};
    buffers own = {0}, *bufs = buffers_get(need, &own);
    if (!bufs->p[0]) {
        buffers_put(bufs);
        return 0;
    }
    LD_FLOPS_COUNT(LD_FLOPS_WINOGRAD, 2 * B * Cout * H * W * Cin * 9, 1, Cout, B * H * W, Cin * 9);
    float *scr = bufs->p[BUF_SCR];
    c.apack = bufs->p[BUF_U];
    const int64_t items = (tiles + c.nb - 1) / c.nb, block = c.ob;
    for (c.o0 = 0; c.o0 < Cout; c.o0 += block) {
        c.ob = Cout - c.o0 < block ? Cout - c.o0 : block;
        pack_filters(&pk, c.tf, T, bufs->p[BUF_U], c.xi_bytes, w, c.o0, c.ob, Cin, scr, per);
        #pragma omp parallel for schedule(dynamic)
        for (int64_t it = 0; it < items; it++) {
            const int64_t t0 = it * c.nb;
            run_item(&c, &lay, t0, tiles - t0 < c.nb ? tiles - t0 : c.nb, (char *)(scr + omp_get_thread_num() * per));
        }
    }
    buffers_put(bufs);
    return 1;
}
