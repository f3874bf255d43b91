/* PaellaVQModel: MixingResidualBlock (replicate-padded depthwise conv), the
 * decoder used by the pipelines and the encoder. See paella_vq.h and
 * specs/wuerstchen.md section 3. */
#include "models/paella_vq.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PAELLA_LN_EPS 1e-6f
#define PAELLA_BN_EPS 1e-5f
#define PAELLA_MLP_CHUNK 4096 /* pixels per MLP pass: bounds the 4C-wide hidden buffer */

static ld_status build_mixres(ld_ctx *ctx, ld_weights *ws, ld_paella_mixres *m, const char *pre, int64_t c) {
    m->c = c;
    int64_t s6[1] = {6}, s_dw[4] = {c, 1, 3, 3}, s_c[1] = {c}, s_f1[2] = {4 * c, c}, s_h[1] = {4 * c},
            s_f2[2] = {c, 4 * c};
    LD_TRY(ld_weights_get(ctx, ws, &m->gammas, 1, s6, "%sgammas", pre));
    LD_TRY(ld_weights_get(ctx, ws, &m->dw_w, 4, s_dw, "%sdepthwise.1.weight", pre));
    LD_TRY(ld_weights_get(ctx, ws, &m->dw_b, 1, s_c, "%sdepthwise.1.bias", pre));
    LD_TRY(ld_weights_get(ctx, ws, &m->fc1_w, 2, s_f1, "%schannelwise.0.weight", pre));
    LD_TRY(ld_weights_get(ctx, ws, &m->fc1_b, 1, s_h, "%schannelwise.0.bias", pre));
    LD_TRY(ld_weights_get(ctx, ws, &m->fc2_w, 2, s_f2, "%schannelwise.2.weight", pre));
    LD_TRY(ld_weights_get(ctx, ws, &m->fc2_b, 1, s_c, "%schannelwise.2.bias", pre));
    return LD_OK;
}

static ld_status build_conv(ld_ctx *ctx, ld_weights *ws, ld_paella_stage *s, char kind, int64_t cin, int64_t cout,
                            const char *name) {
    s->kind = kind;
    s->c_in = cin;
    s->c_out = cout;
    int64_t k = kind == '1' ? 1 : 4;
    int64_t sw[4] = {cout, cin, k, k}, sb[1] = {cout};
    if (kind == 'T') { /* ConvTranspose2d weight is [Cin, Cout, k, k] */
        sw[0] = cin;
        sw[1] = cout;
    }
    LD_TRY(ld_weights_get(ctx, ws, &s->w, 4, sw, "%s.weight", name));
    LD_TRY(ld_weights_get(ctx, ws, &s->b, 1, sb, "%s.bias", name));
    return LD_OK;
}

static ld_status build_all(ld_ctx *ctx, ld_weights *ws, ld_paella_vq *vq) {
    int64_t L = vq->levels, cl[LD_PAELLA_MAX_LEVELS], sc2 = vq->scale * vq->scale;
    for (int64_t i = 0; i < L; i++) cl[i] = vq->embed_dim >> (L - 1 - i);
    int64_t s_in[4] = {cl[0], vq->in_channels * sc2, 1, 1}, s_c0[1] = {cl[0]};
    LD_TRY(ld_weights_get(ctx, ws, &vq->in_w, 4, s_in, "in_block.1.weight"));
    LD_TRY(ld_weights_get(ctx, ws, &vq->in_b, 1, s_c0, "in_block.1.bias"));
    /* encoder */
    LD_TRY(ld_calloc(ctx, (void **)&vq->down, (size_t)(2 * L), sizeof *vq->down, "PaellaVQ encoder"));
    char name[96];
    int k = 0;
    for (int64_t i = 0; i < L; i++) {
        if (i > 0) {
            snprintf(name, sizeof name, "down_blocks.%d", k);
            LD_TRY(build_conv(ctx, ws, &vq->down[k++], 'D', cl[i - 1], cl[i], name));
        }
        snprintf(name, sizeof name, "down_blocks.%d.", k);
        vq->down[k].kind = 'M';
        LD_TRY(build_mixres(ctx, ws, &vq->down[k++].m, name, cl[i]));
    }
    vq->n_down = k;
    int64_t lc = vq->latent_channels, s_lat[4] = {lc, cl[L - 1], 1, 1}, s_l[1] = {lc}, s0[1] = {0};
    LD_TRY(ld_weights_get(ctx, ws, &vq->down[k].w, 4, s_lat, "down_blocks.%d.0.weight", k));
    LD_TRY(ld_weights_get(ctx, ws, &vq->bn_w, 1, s_l, "down_blocks.%d.1.weight", k));
    LD_TRY(ld_weights_get(ctx, ws, &vq->bn_b, 1, s_l, "down_blocks.%d.1.bias", k));
    LD_TRY(ld_weights_get(ctx, ws, &vq->bn_mean, 1, s_l, "down_blocks.%d.1.running_mean", k));
    LD_TRY(ld_weights_get(ctx, ws, &vq->bn_var, 1, s_l, "down_blocks.%d.1.running_var", k));
    if (ld_weights_is_recorder(ws)) { /* a checkpoint holds it; nothing reads it */
        ld_tensor nbt;
        LD_TRY(ld_weights_get(ctx, ws, &nbt, 0, s0, "down_blocks.%d.1.num_batches_tracked", k));
    }
    int64_t s_cb[2] = {vq->n_embeddings, lc};
    LD_TRY(ld_weights_get(ctx, ws, &vq->codebook, 2, s_cb, "vquantizer.embedding.weight"));
    /* decoder */
    int n_up = 1 + (int)vq->bottleneck + (int)(L - 1) * 2;
    LD_TRY(ld_calloc(ctx, (void **)&vq->up, (size_t)n_up, sizeof *vq->up, "PaellaVQ decoder"));
    LD_TRY(build_conv(ctx, ws, &vq->up[0], '1', lc, cl[L - 1], "up_blocks.0.0"));
    k = 1;
    for (int64_t i = 0; i < L; i++) {
        int64_t c = cl[L - 1 - i];
        for (int64_t j = 0; j < (i == 0 ? vq->bottleneck : 1); j++) {
            snprintf(name, sizeof name, "up_blocks.%d.", k);
            vq->up[k].kind = 'M';
            LD_TRY(build_mixres(ctx, ws, &vq->up[k++].m, name, c));
        }
        if (i < L - 1) {
            snprintf(name, sizeof name, "up_blocks.%d", k);
            LD_TRY(build_conv(ctx, ws, &vq->up[k++], 'T', c, cl[L - 2 - i], name));
        }
    }
    vq->n_up = k;
    int64_t s_out[4] = {vq->out_channels * sc2, cl[0], 1, 1}, s_ob[1] = {vq->out_channels * sc2};
    LD_TRY(ld_weights_get(ctx, ws, &vq->out_w, 4, s_out, "out_block.0.weight"));
    LD_TRY(ld_weights_get(ctx, ws, &vq->out_b, 1, s_ob, "out_block.0.bias"));
    return LD_OK;
}

ld_status ld_paella_vq_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws, ld_paella_vq **out) {
    *out = NULL;
    ld_paella_vq *vq;
    LD_TRY(ld_calloc(ctx, (void **)&vq, 1, sizeof *vq, "PaellaVQModel"));
    double sf = 0.3764;
    ld_status st = LD_OK;
    struct { const char *key; int64_t dflt, min, max; int64_t *dst;
    } f[] = {{"in_channels", 3, 1, 64, &vq->in_channels},
             {"out_channels", 3, 1, 64, &vq->out_channels},
             {"up_down_scale_factor", 2, 1, 16, &vq->scale},
             {"levels", 2, 1, LD_PAELLA_MAX_LEVELS, &vq->levels},
             {"bottleneck_blocks", 12, 0, 1000, &vq->bottleneck},
             {"embed_dim", 384, 1, 65536, &vq->embed_dim},
             {"latent_channels", 4, 1, 4096, &vq->latent_channels},
             {"num_vq_embeddings", 8192, 1, 1 << 24, &vq->n_embeddings}};
    for (size_t i = 0; st == LD_OK && i < sizeof f / sizeof f[0]; i++) {
        st = ld_json_int(ctx, where, cfg, f[i].key, f[i].dflt, f[i].dst);
        if (st == LD_OK && (*f[i].dst < f[i].min || *f[i].dst > f[i].max))
            st = ld_fail(ctx, LD_ERR_MODEL, "%s: %s must be between %lld and %lld, got %lld", where, f[i].key,
                         (long long)f[i].min, (long long)f[i].max, (long long)*f[i].dst);
    }
    if (st == LD_OK) st = ld_json_num(ctx, where, cfg, "scale_factor", 0.3764, &sf);
    if (st == LD_OK && !(sf > 0 && sf < 1e6))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: scale_factor must be positive, got %g", where, sf);
    if (st == LD_OK && vq->embed_dim % (1LL << (vq->levels - 1)))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s: embed_dim %lld does not halve %lld times", where,
                     (long long)vq->embed_dim, (long long)(vq->levels - 1));
    vq->scale_factor = (float)sf;
    if (st == LD_OK) st = build_all(ctx, ws, vq);
    if (st != LD_OK) {
        ld_paella_vq_free(vq);
        return st;
    }
    *out = vq;
    return LD_OK;
}

ld_status ld_paella_vq_load(ld_ctx *ctx, const char *dir, const char *variant, ld_paella_vq **out) {
    *out = NULL;
    ld_component_files f;
    LD_TRY(ld_component_files_open(ctx, dir, variant, &f));
    ld_status st = ld_paella_vq_build(ctx, f.where, f.config, f.ws, out);
    if (st == LD_OK) (*out)->ws = f.ws;
    ld_component_files_close(&f, st == LD_OK);
    return st;
}

void ld_paella_vq_free(ld_paella_vq *vq) {
    if (!vq) return;
    free(vq->down);
    free(vq->up);
    ld_weights_free(vq->ws);
    free(vq);
}

int64_t ld_paella_vq_factor(const ld_paella_vq *vq) { return vq->scale << (vq->levels - 1); }

/* Scratch of the mixing blocks, kept for a whole decode or encode (one
 * allocation instead of two activation-sized ones per block): t and d hold
 * activations, mid one pixel chunk of the MLP's hidden layer, ga and gb the
 * per-channel form of a LayerNorm's scalar affine. */
typedef struct {
    float *t, *d, *mid, *ga, *gb;
    size_t n_act, n_mid, n_c; /* floats allocated */
} paella_scratch;

static void scratch_free(paella_scratch *sc) {
    ld_aligned_free(sc->t);
    ld_aligned_free(sc->d);
    ld_aligned_free(sc->mid);
    ld_aligned_free(sc->ga);
    ld_aligned_free(sc->gb);
    memset(sc, 0, sizeof *sc);
}

/* Grows one pair of buffers to n floats each (b may be NULL). */
static ld_status scratch_grow(ld_ctx *ctx, float **a, float **b, size_t *have, size_t n, const char *what) {
    if (n <= *have) return LD_OK;
    ld_aligned_free(*a);
    *a = NULL;
    if (b) {
        ld_aligned_free(*b);
        *b = NULL;
    }
    *have = 0;
    LD_TRY(ld_aligned_alloc(ctx, (void **)a, n * sizeof(float), what));
    if (b) LD_TRY(ld_aligned_alloc(ctx, (void **)b, n * sizeof(float), what));
    *have = n;
    return LD_OK;
}

/* ld_layer_norm_channels with the scalar affine LN(x) * (1 + g) + h. */
static void norm_affine(paella_scratch *sc, float *y, const float *x, int64_t B, int64_t C, int64_t HW, float g,
                        float h) {
    for (int64_t c = 0; c < C; c++) {
        sc->ga[c] = 1.0f + g;
        sc->gb[c] = h;
    }
    const ld_tensor ga = {LD_F32, 1, {C}, sc->ga, 0, NULL}, gb = {LD_F32, 1, {C}, sc->gb, 0, NULL};
    ld_layer_norm_channels(y, x, B, C, HW, PAELLA_LN_EPS, &ga, &gb);
}

/* x [B, C, H, W] in place:
 *   t = LN(x)*(1+g0) + g1;  x += DW_replicate(t)*g2;
 *   t = LN(x)*(1+g3) + g4;  x += MLP(t)*g5
 * The MLP (Linear, GELU, Linear per pixel) runs on the NCHW planes as 1x1
 * products over chunks of PAELLA_MLP_CHUNK pixels (the hidden layer is 4C
 * wide), its output gathered in d so that g5 scales it in one pass. */
static ld_status mixres_forward(ld_ctx *ctx, paella_scratch *sc, const ld_paella_mixres *m, float *x, int64_t B,
                                int64_t H, int64_t W) {
    const int64_t C = m->c, HW = H * W, n_all = B * C * HW, chunk = HW < PAELLA_MLP_CHUNK ? HW : PAELLA_MLP_CHUNK;
    float g[6];
    ld_convert_to_f32(g, m->gammas.data, m->gammas.dtype, 0, 6);
    LD_TRY(scratch_grow(ctx, &sc->t, &sc->d, &sc->n_act, (size_t)n_all, "mixres activations"));
    LD_TRY(scratch_grow(ctx, &sc->mid, NULL, &sc->n_mid, (size_t)(4 * C * chunk), "mixres mlp"));
    LD_TRY(scratch_grow(ctx, &sc->ga, &sc->gb, &sc->n_c, (size_t)C, "mixres norm"));
    norm_affine(sc, sc->t, x, B, C, HW, g[0], g[1]);
    ld_conv2d_params dw = ld_conv2d_params_make(1, 1);
    dw.groups = (int)C;
    dw.replicate_pad = 1;
    ld_conv2d(sc->d, sc->t, B, C, H, W, &m->dw_w, &m->dw_b, &dw);
    ld_add_scaled(x, sc->d, g[2], n_all);
    norm_affine(sc, sc->t, x, B, C, HW, g[3], g[4]);
    const ld_mat w1 = {m->fc1_w.dtype, m->fc1_w.data, C, 1}, w2 = {m->fc2_w.dtype, m->fc2_w.data, 4 * C, 1};
    for (int64_t b = 0; b < B; b++)
        for (int64_t p0 = 0; p0 < HW; p0 += chunk) {
            const int64_t n = HW - p0 < chunk ? HW - p0 : chunk, at = b * C * HW + p0;
            const ld_mat in = ld_mat_f32(sc->t + at, HW, 1), hid = ld_mat_f32(sc->mid, n, 1);
            ld_gemm(4 * C, n, C, &w1, &in, sc->mid, n, 0.0f, NULL, &m->fc1_b);
            ld_gelu_erf(sc->mid, 4 * C * n);
            ld_gemm(C, n, 4 * C, &w2, &hid, sc->d + at, HW, 0.0f, NULL, &m->fc2_b);
        }
    ld_add_scaled(x, sc->d, g[5], n_all);
    return ld_check_cancel(ctx, "VQGAN");
}

/* Runs stages[0..n) on *x ([B, *c, *h, *w]); *x may be replaced. */
static ld_status run_stages(ld_ctx *ctx, const ld_paella_stage *stages, int n, float **x, int64_t B, int64_t *c,
                            int64_t *h, int64_t *w) {
    paella_scratch sc = {0};
    ld_status st = LD_OK;
    for (int k = 0; k < n && st == LD_OK; k++) {
        const ld_paella_stage *s = &stages[k];
        if (s->kind == 'M') {
            st = mixres_forward(ctx, &sc, &s->m, *x, B, *h, *w);
            continue;
        }
        int64_t nh = s->kind == 'T' ? *h * 2 : s->kind == 'D' ? *h / 2 : *h;
        int64_t nw = s->kind == 'T' ? *w * 2 : s->kind == 'D' ? *w / 2 : *w;
        float *y;
        st = ld_aligned_alloc(ctx, (void **)&y, (size_t)(B * s->c_out * nh * nw) * sizeof(float),
                              "PaellaVQ activations");
        if (st != LD_OK) break;
        if (s->kind == 'T') {
            ld_conv_transpose2d(y, *x, B, s->c_in, *h, *w, &s->w, &s->b, 2, 1);
        } else {
            ld_conv2d_params p = s->kind == 'D' ? ld_conv2d_params_make(2, 1) : ld_conv2d_params_make(1, 0);
            ld_conv2d(y, *x, B, s->c_in, *h, *w, &s->w, &s->b, &p);
        }
        ld_aligned_free(*x);
        *x = y;
        *c = s->c_out;
        *h = nh;
        *w = nw;
        st = ld_check_cancel(ctx, "VQGAN");
    }
    scratch_free(&sc);
    return st;
}

ld_status ld_paella_vq_decode(ld_ctx *ctx, const ld_paella_vq *vq, float *img, const float *lat, int64_t B, int64_t h,
                              int64_t w) {
    float *x;
    int64_t c = vq->latent_channels;
    LD_TRY(ld_aligned_alloc(ctx, (void **)&x, (size_t)(B * c * h * w) * sizeof(float), "PaellaVQ latent"));
    memcpy(x, lat, (size_t)(B * c * h * w) * sizeof(float));
    ld_status st = run_stages(ctx, vq->up, vq->n_up, &x, B, &c, &h, &w);
    float *y = NULL;
    int64_t co = vq->out_channels * vq->scale * vq->scale;
    if (st == LD_OK)
        st = ld_aligned_alloc(ctx, (void **)&y, (size_t)(B * co * h * w) * sizeof(float), "PaellaVQ output");
    if (st == LD_OK) {
        ld_conv2d_params one = ld_conv2d_params_make(1, 0);
        ld_conv2d(y, x, B, c, h, w, &vq->out_w, &vq->out_b, &one);
        ld_pixel_shuffle(img, y, B, co, h, w, (int)vq->scale);
    }
    ld_aligned_free(x);
    ld_aligned_free(y);
    return st;
}

ld_status ld_paella_vq_encode(ld_ctx *ctx, const ld_paella_vq *vq, float *lat, const float *img, int64_t B, int64_t H,
                              int64_t W) {
    int64_t f = ld_paella_vq_factor(vq), s = vq->scale;
    if (H % f || W % f || H < f || W < f)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "PaellaVQModel.encode: image size %lldx%lld is not a multiple of %lld", (long long)H,
                       (long long)W, (long long)f);
    int64_t ci = vq->in_channels * s * s, h = H / s, w = W / s, c = vq->embed_dim >> (vq->levels - 1);
    float *u = NULL, *x = NULL;
    ld_status st = ld_aligned_alloc(ctx, (void **)&u, (size_t)(B * ci * h * w) * sizeof(float), "PaellaVQ unshuffle");
    if (st == LD_OK)
        st = ld_aligned_alloc(ctx, (void **)&x, (size_t)(B * c * h * w) * sizeof(float), "PaellaVQ activations");
    if (st == LD_OK) {
        ld_pixel_unshuffle(u, img, B, vq->in_channels, H, W, (int)s);
        ld_conv2d_params one = ld_conv2d_params_make(1, 0);
        ld_conv2d(x, u, B, ci, h, w, &vq->in_w, &vq->in_b, &one);
        st = run_stages(ctx, vq->down, vq->n_down, &x, B, &c, &h, &w);
    }
    if (st == LD_OK) { /* 1x1 conv (no bias), BatchNorm (eval) */
        ld_conv2d_params one = ld_conv2d_params_make(1, 0);
        int64_t lc = vq->latent_channels, HW = h * w;
        ld_conv2d(lat, x, B, c, h, w, &vq->down[vq->n_down].w, NULL, &one);
        for (int64_t ch = 0; ch < lc; ch++) {
            float inv = 1.0f / sqrtf(ld_tensor_get_f32(&vq->bn_var, ch) + PAELLA_BN_EPS);
            float a = ld_tensor_get_f32(&vq->bn_w, ch) * inv;
            float bb = ld_tensor_get_f32(&vq->bn_b, ch) - ld_tensor_get_f32(&vq->bn_mean, ch) * a;
            for (int64_t b = 0; b < B; b++)
                for (int64_t i = 0; i < HW; i++) lat[(b * lc + ch) * HW + i] = lat[(b * lc + ch) * HW + i] * a + bb;
        }
    }
    ld_aligned_free(u);
    ld_aligned_free(x);
    return st;
}

static ld_status record_vq(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder) {
    ld_paella_vq *vq;
    LD_TRY(ld_paella_vq_build(ctx, where, config, recorder, &vq));
    ld_paella_vq_free(vq);
    return LD_OK;
}

const ld_model_type ld_model_paella_vq = {"PaellaVQModel", "diffusion_pytorch_model.safetensors", record_vq};
