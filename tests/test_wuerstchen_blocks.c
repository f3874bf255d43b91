/* Wuerstchen shared blocks (src/models/wuerstchen_blocks.h) against naive
 * double-precision implementations written plainly here, on random weights
 * made through the init-random recorder (which also checks the names). */
#include "models/wuerstchen_blocks.h"
#include "tensor/gemm.h"
#include "test_util.h"

#include <math.h>

static ld_ctx *ctx;

typedef enum { BK_RES, BK_TS, BK_ATTN } bk_kind;

/* Records one block's tensors, writes random f16 weights, reopens them. */
static ld_weights *random_weights(const char *name, bk_kind kind, int64_t c, int64_t c2, int64_t nh, int prior) {
    ld_weights *rec;
    if (ld_weights_new_recorder(ctx, &rec) != LD_OK) return NULL;
    wu_resblock rb;
    wu_timestep_block tb;
    wu_attn_block ab;
    const char *conds[] = {"sca", "crp", NULL};
    ld_status st = kind == BK_RES
                       ? wu_resblock_build(ctx, rec, &rb, "blk.", c, c2, prior ? WU_RES_PRIOR : WU_RES_STAGE_B)
                   : kind == BK_TS ? wu_timestep_block_build(ctx, rec, &tb, "blk.", c, c2, conds)
                                   : wu_attn_block_build(ctx, rec, &ab, "blk.", c, c2, nh);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.safetensors", test_tmp_dir("wuerstchen_blocks"), name);
    if (st == LD_OK) st = ld_weights_write_random(ctx, rec, path, LD_F16, 1234);
    if (kind == BK_ATTN) wu_attn_block_free(&ab);
    ld_weights_free(rec);
    ld_weights *ws = NULL;
    if (st == LD_OK) st = ld_weights_open_file(ctx, path, &ws);
    if (st != LD_OK) fprintf(stderr, "%s\n", ld_ctx_error(ctx));
    return ws;
}

static double W(ld_weights *ws, const char *name, int64_t i) {
    char full[256];
    snprintf(full, sizeof full, "blk.%s", name);
    const ld_tensor *t = ld_weights_find(ws, full);
    return ld_tensor_get_f32(t, i);
}

static double gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }

/* LN over channels at one pixel of a [C, HW] image */
static void ln_pixel(double *v, int64_t C) {
    double m = 0, s = 0;
    for (int64_t c = 0; c < C; c++) m += v[c];
    m /= C;
    for (int64_t c = 0; c < C; c++) s += (v[c] - m) * (v[c] - m);
    s /= C;
    for (int64_t c = 0; c < C; c++) v[c] = (v[c] - m) / sqrt(s + 1e-6);
}

/* naive ResBlock (one batch item at a time) */
static void ref_resblock(ld_weights *ws, float *out, const float *x, const float *skip, int64_t B, int64_t c,
                         int64_t cs, int64_t H, int64_t Wd, int prior) {
    int64_t HW = H * Wd, cin = prior ? c : c + cs, cdw = prior ? c + cs : c, gin = cdw / c;
    double *dwin = calloc((size_t)(cdw * HW), 8), *h = calloc((size_t)(cin * HW), 8);
    double *mid = calloc((size_t)(4 * c * HW), 8), *g = calloc((size_t)(4 * c), 8);
    for (int64_t b = 0; b < B; b++) {
        for (int64_t ch = 0; ch < cdw; ch++)
            for (int64_t p = 0; p < HW; p++)
                dwin[ch * HW + p] = ch < c ? x[(b * c + ch) * HW + p] : skip[(b * cs + ch - c) * HW + p];
        for (int64_t o = 0; o < c; o++)
            for (int64_t i = 0; i < H; i++)
                for (int64_t j = 0; j < Wd; j++) {
                    double s = W(ws, "depthwise.bias", o);
                    for (int64_t gi = 0; gi < gin; gi++)
                        for (int64_t di = -1; di <= 1; di++)
                            for (int64_t dj = -1; dj <= 1; dj++) {
                                int64_t ii = i + di, jj = j + dj;
                                if (ii < 0 || jj < 0 || ii >= H || jj >= Wd) continue;
                                s += dwin[(o * gin + gi) * HW + ii * Wd + jj] *
                                     W(ws, "depthwise.weight", ((o * gin + gi) * 3 + di + 1) * 3 + dj + 1);
                            }
                    h[o * HW + i * Wd + j] = s;
                }
        double v[512];
        for (int64_t p = 0; p < HW; p++) {
            for (int64_t ch = 0; ch < c; ch++) v[ch] = h[ch * HW + p];
            ln_pixel(v, c);
            for (int64_t ch = 0; ch < c; ch++) h[ch * HW + p] = v[ch];
        }
        if (!prior)
            for (int64_t ch = c; ch < cin; ch++)
                for (int64_t p = 0; p < HW; p++) h[ch * HW + p] = skip[(b * cs + ch - c) * HW + p];
        for (int64_t p = 0; p < HW; p++)
            for (int64_t o = 0; o < 4 * c; o++) {
                double s = W(ws, "channelwise.0.bias", o);
                for (int64_t i = 0; i < cin; i++) s += h[i * HW + p] * W(ws, "channelwise.0.weight", o * cin + i);
                mid[p * 4 * c + o] = gelu(s);
            }
        double mean = 0;
        for (int64_t o = 0; o < 4 * c; o++) {
            double s = 0;
            for (int64_t p = 0; p < HW; p++) s += mid[p * 4 * c + o] * mid[p * 4 * c + o];
            g[o] = sqrt(s);
            mean += g[o] / (double)(4 * c);
        }
        for (int64_t p = 0; p < HW; p++)
            for (int64_t o = 0; o < 4 * c; o++) {
                double m = mid[p * 4 * c + o];
                mid[p * 4 * c + o] = W(ws, "channelwise.2.gamma", o) * (m * g[o] / (mean + 1e-6)) +
                                     W(ws, "channelwise.2.beta", o) + m;
            }
        for (int64_t p = 0; p < HW; p++)
            for (int64_t o = 0; o < c; o++) {
                double s = W(ws, "channelwise.4.bias", o);
                for (int64_t i = 0; i < 4 * c; i++)
                    s += mid[p * 4 * c + i] * W(ws, "channelwise.4.weight", o * 4 * c + i);
                out[(b * c + o) * HW + p] = (float)(x[(b * c + o) * HW + p] + s);
            }
    }
    free(dwin);
    free(h);
    free(mid);
    free(g);
}

static void test_resblock(int64_t c, int64_t cs, int prior) {
    char name[64];
    snprintf(name, sizeof name, "res_%lld_%lld_%d", (long long)c, (long long)cs, prior);
    ld_weights *ws = random_weights(name, BK_RES, c, cs, 0, prior);
    CHECK(ws != NULL, "weights for %s", name);
    if (!ws) return;
    int64_t B = 2, H = 5, Wd = 6, HW = H * Wd;
    wu_resblock rb;
    CHECK(wu_resblock_build(ctx, ws, &rb, "blk.", c, cs, prior ? WU_RES_PRIOR : WU_RES_STAGE_B) == LD_OK, "build");
    float *x = malloc((size_t)(B * c * HW) * 4), *ref = malloc((size_t)(B * c * HW) * 4);
    float *skip = cs ? malloc((size_t)(B * cs * HW) * 4) : NULL;
    test_fill(x, B * c * HW, 1);
    if (skip) test_fill(skip, B * cs * HW, 2);
    ref_resblock(ws, ref, x, skip, B, c, cs, H, Wd, prior);
    ld_arena a;
    ld_arena_init(&a, 0);
    CHECK(wu_resblock_forward(ctx, &a, &rb, x, B, H, Wd, skip) == LD_OK, "forward");
    CHECK(a.used == 0 && a.peak > 0, "resblock leaves the arena as it found it (used %zu)", a.used);
    ld_arena_free(&a);
    test_close(name, x, ref, B * c * HW, 1e-4);
    free(x);
    free(ref);
    free(skip);
    ld_weights_free(ws);
}

static void test_timestep(void) {
    int64_t c = 12, c_r = 8, B = 2, HW = 7, n = 3;
    ld_weights *ws = random_weights("ts", BK_TS, c, c_r, 0, 0);
    CHECK(ws != NULL, "weights for timestep block");
    if (!ws) return;
    const char *conds[] = {"sca", "crp", NULL};
    wu_timestep_block tb;
    CHECK(wu_timestep_block_build(ctx, ws, &tb, "blk.", c, c_r, conds) == LD_OK, "build");
    float x[2 * 12 * 7], ref[2 * 12 * 7], t[2 * 24];
    test_fill(x, B * c * HW, 3);
    test_fill(t, B * c_r * n, 4);
    const char *names[3] = {"mapper", "mapper_sca", "mapper_crp"};
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < c; ch++) {
            double a = 0, bb = 0;
            for (int k = 0; k < 3; k++) {
                char wn[64], bn[64];
                snprintf(wn, sizeof wn, "%s.weight", names[k]);
                snprintf(bn, sizeof bn, "%s.bias", names[k]);
                a += W(ws, bn, ch);
                bb += W(ws, bn, c + ch);
                for (int64_t i = 0; i < c_r; i++) {
                    a += W(ws, wn, ch * c_r + i) * t[b * n * c_r + k * c_r + i];
                    bb += W(ws, wn, (c + ch) * c_r + i) * t[b * n * c_r + k * c_r + i];
                }
            }
            for (int64_t p = 0; p < HW; p++)
                ref[(b * c + ch) * HW + p] = (float)(x[(b * c + ch) * HW + p] * (1 + a) + bb);
        }
    ld_arena a;
    ld_arena_init(&a, 0);
    CHECK(wu_timestep_block_forward(ctx, &a, &tb, x, B, HW, t) == LD_OK, "forward");
    CHECK(a.used == 0 && a.peak > 0, "timestep block leaves the arena as it found it (used %zu)", a.used);
    ld_arena_free(&a);
    test_close("timestep block (2 extra conds)", x, ref, B * c * HW, 1e-4);
    ld_weights_free(ws);
}

static void lin(ld_weights *ws, const char *nm, const double *in, double *out, int64_t n_out, int64_t n_in) {
    char wn[96], bn[96];
    snprintf(wn, sizeof wn, "%s.weight", nm);
    snprintf(bn, sizeof bn, "%s.bias", nm);
    for (int64_t o = 0; o < n_out; o++) {
        double s = W(ws, bn, o);
        for (int64_t i = 0; i < n_in; i++) s += W(ws, wn, o * n_in + i) * in[i];
        out[o] = s;
    }
}

static void test_attn(void) {
    int64_t c = 16, cc = 10, nh = 4, D = 4, B = 2, HW = 6, L = 3, S = HW + L;
    ld_weights *ws = random_weights("attn", BK_ATTN, c, cc, nh, 0);
    CHECK(ws != NULL, "weights for attn block");
    if (!ws) return;
    wu_attn_block ab;
    CHECK(wu_attn_block_build(ctx, ws, &ab, "blk.", c, cc, nh) == LD_OK, "build");
    float x[2 * 16 * 6], ref[2 * 16 * 6], cond[2 * 3 * 10];
    test_fill(x, B * c * HW, 5);
    test_fill(cond, B * L * cc, 6);
    for (int64_t b = 0; b < B; b++) {
        double seq[9][16], q[6][16], k[9][16], v[9][16], o[16], in[16], out[16];
        for (int64_t p = 0; p < HW; p++) {
            for (int64_t ch = 0; ch < c; ch++) seq[p][ch] = x[(b * c + ch) * HW + p];
            ln_pixel(seq[p], c);
        }
        for (int64_t l = 0; l < L; l++) {
            double sc[10];
            for (int64_t i = 0; i < cc; i++) {
                double u = cond[(b * L + l) * cc + i];
                sc[i] = u / (1 + exp(-u));
            }
            lin(ws, "kv_mapper.1", sc, seq[HW + l], c, cc);
        }
        for (int64_t p = 0; p < HW; p++) lin(ws, "attention.to_q", seq[p], q[p], c, c);
        for (int64_t s = 0; s < S; s++) {
            lin(ws, "attention.to_k", seq[s], k[s], c, c);
            lin(ws, "attention.to_v", seq[s], v[s], c, c);
        }
        for (int64_t p = 0; p < HW; p++) {
            for (int64_t h = 0; h < nh; h++) {
                double w[9], mx = -1e300, z = 0;
                for (int64_t s = 0; s < S; s++) {
                    double d = 0;
                    for (int64_t e = 0; e < D; e++) d += q[p][h * D + e] * k[s][h * D + e];
                    w[s] = d / sqrt((double)D);
                    if (w[s] > mx) mx = w[s];
                }
                for (int64_t s = 0; s < S; s++) z += (w[s] = exp(w[s] - mx));
                for (int64_t e = 0; e < D; e++) {
                    double a = 0;
                    for (int64_t s = 0; s < S; s++) a += w[s] * v[s][h * D + e];
                    o[h * D + e] = a / z;
                }
            }
            for (int64_t ch = 0; ch < c; ch++) in[ch] = o[ch];
            lin(ws, "attention.to_out.0", in, out, c, c);
            for (int64_t ch = 0; ch < c; ch++) ref[(b * c + ch) * HW + p] = (float)(x[(b * c + ch) * HW + p] + out[ch]);
        }
    }
    ld_arena a;
    ld_arena_init(&a, 0);
    float x0[2 * 16 * 6], fresh[2 * 16 * 6], y[2 * 16 * 6], cond2[2 * 3 * 10];
    memcpy(x0, x, sizeof x);
    CHECK(wu_attn_block_forward(ctx, &a, &ab, x, B, HW, cond, L, 0, 0) == LD_OK, "forward");
    CHECK(a.used == 0 && a.peak > 0, "attn block leaves the arena as it found it (used %zu)", a.used);
    test_close("attn block (self + cross)", x, ref, B * c * HW, 1e-4);
    memcpy(fresh, x, sizeof x);

    /* the text k/v kept between forwards: the same bits as computed afresh,
     * and recomputed when the conditioning or the precision changes */
    wu_cond_memo memo = {0};
    uint64_t g1 = wu_cond_gen(&memo, cond, (size_t)(B * L * cc));
    CHECK(g1 != 0 && wu_cond_gen(&memo, cond, (size_t)(B * L * cc)) == g1, "same conditioning, same generation");
    for (int round = 0; round < 2; round++) { /* round 0 keeps them, round 1 reuses them */
        memcpy(y, x0, sizeof y);
        CHECK(wu_attn_block_forward(ctx, &a, &ab, y, B, HW, cond, L, g1, 0) == LD_OK, "forward with memo");
        CHECK(!memcmp(y, fresh, sizeof y), "memo round %d: same bits as without it", round);
    }
    CHECK(ab.text->kv && ab.text->gen == g1, "the block keeps the text k/v of generation %llu", (unsigned long long)g1);
    memcpy(cond2, cond, sizeof cond);
    cond2[B * L * cc - 1] += 0.5f; /* the last text token of the last image */
    /* lane 1 keeps its own: a forward there with other conditioning leaves
     * lane 0's text k/v in place, and each lane's result is its own */
    wu_cond_memo memo1 = {0};
    const uint64_t h = wu_cond_gen(&memo1, cond2, (size_t)(B * L * cc));
    float y1[2 * 16 * 6];
    memcpy(y1, x0, sizeof y1);
    CHECK(wu_attn_block_forward(ctx, &a, &ab, y1, B, HW, cond2, L, h, 1) == LD_OK, "forward on lane 1");
    CHECK(ab.text[1].kv && ab.text[1].gen == h && ab.text[0].gen == g1, "lane 1 keeps its text k/v apart");
    memcpy(y, x0, sizeof y);
    CHECK(wu_attn_block_forward(ctx, &a, &ab, y, B, HW, cond, L, g1, 0) == LD_OK, "lane 0 after lane 1");
    CHECK(!memcmp(y, fresh, sizeof y) && memcmp(y1, y, sizeof y), "lane 0 still reuses its own text k/v");
    wu_cond_memo_free(&memo1);
    uint64_t g2 = wu_cond_gen(&memo, cond2, (size_t)(B * L * cc));
    CHECK(g2 != 0 && g2 != g1, "changed conditioning, new generation");
    memcpy(fresh, x0, sizeof fresh);
    CHECK(wu_attn_block_forward(ctx, &a, &ab, fresh, B, HW, cond2, L, 0, 0) == LD_OK, "forward, new cond");
    memcpy(y, x0, sizeof y);
    CHECK(wu_attn_block_forward(ctx, &a, &ab, y, B, HW, cond2, L, g2, 0) == LD_OK, "forward, new cond, memo");
    CHECK(!memcmp(y, fresh, sizeof y) && memcmp(fresh, x, sizeof x), "new conditioning: text k/v recomputed");
    ld_precision prec = ld_gemm_get_precision();
    ld_gemm_set_precision(LD_PRECISION_BF16);
    memcpy(fresh, x0, sizeof fresh);
    CHECK(wu_attn_block_forward(ctx, &a, &ab, fresh, B, HW, cond2, L, 0, 0) == LD_OK, "forward bf16");
    memcpy(y, x0, sizeof y);
    CHECK(wu_attn_block_forward(ctx, &a, &ab, y, B, HW, cond2, L, g2, 0) == LD_OK, "forward bf16, memo");
    CHECK(!memcmp(y, fresh, sizeof y), "precision changed: text k/v recomputed");
    ld_gemm_set_precision(prec);
    wu_cond_memo_free(&memo);
    wu_attn_block_free(&ab);
    ld_arena_free(&a);
    ld_weights_free(ws);
}

static void test_r_embedding(void) {
    float r[4] = {0.0f, 0.25f, 0.6666667f, 1.0f}, emb[4 * 64], ref[4 * 64];
    wu_r_embedding(emb, 64, r, 4, 64);
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 32; i++) {
            double a = (double)r[b] * 10000.0 * exp(-log(10000.0) / 31.0 * i);
            ref[b * 64 + i] = (float)sin(a);
            ref[b * 64 + 32 + i] = (float)cos(a);
        }
    /* The f32 argument r*1e4*f (up to 1e4) carries an ulp of ~1e-3. */
    test_close("r embedding vs double formula", emb, ref, 4 * 64, 2e-3);
    CHECK(emb[0] == 0.0f && emb[32] == 1.0f, "r = 0 gives sin 0, cos 1");
}

static void test_errors(void) {
    ld_weights *rec;
    CHECK(ld_weights_new_recorder(ctx, &rec) == LD_OK, "recorder");
    wu_attn_block ab;
    CHECK(wu_attn_block_build(ctx, rec, &ab, "x.", 30, 8, 4) == LD_ERR_MODEL, "heads must divide channels");
    CHECK(strstr(ld_ctx_error(ctx), "x.attention") != NULL, "message names the block: %s", ld_ctx_error(ctx));
    ld_weights_free(rec);
    /* shape mismatch: a resblock built with the wrong width names the tensor */
    ld_weights *ws = random_weights("res_err", BK_RES, 8, 0, 0, 0);
    wu_resblock rb;
    CHECK(ws && wu_resblock_build(ctx, ws, &rb, "blk.", 12, 0, WU_RES_STAGE_B) != LD_OK, "wrong width rejected");
    CHECK(strstr(ld_ctx_error(ctx), "blk.depthwise.weight") != NULL, "message names the tensor: %s",
          ld_ctx_error(ctx));
    ld_weights_free(ws);
}

int main(void) {
    ctx = ld_ctx_new();
    test_resblock(8, 0, 0);
    test_resblock(8, 6, 0);
    test_resblock(8, 0, 1);
    test_resblock(8, 8, 1);
    test_timestep();
    test_attn();
    test_r_embedding();
    test_errors();
    ld_ctx_free(ctx);
    return test_finish();
}
