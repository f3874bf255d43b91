/* Wuerstchen / Stable Cascade shared blocks: LayerNorm2d, GlobalResponseNorm,
 * the r embedding, ResBlock (both orderings), TimestepBlock, AttnBlock.
 * See wuerstchen_blocks.h and specs/wuerstchen.md section 2. */
#include "models/wuerstchen_blocks.h"

#include "tensor/ops.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void wu_layer_norm2d(float *y, const float *x, int64_t B, int64_t C, int64_t HW) {
    ld_layer_norm_channels(y, x, B, C, HW, WU_LN_EPS, NULL, NULL);
}

/* GRN scale per (b, c): N = G / (mean_c G + 1e-6), G the channel norms
 * (from ld_gelu_channel_norms), in place. */
static void grn_scale(float *nrm, int64_t B, int64_t C) {
    for (int64_t b = 0; b < B; b++) {
        float *n = nrm + b * C;
        double mean = 0;
        for (int64_t c = 0; c < C; c++) mean += n[c];
        float denom = (float)(mean / (double)C) + 1e-6f;
        for (int64_t c = 0; c < C; c++) n[c] = n[c] / denom;
    }
}

/* exp(x) rounded the way PyTorch's vectorized CPU kernel rounds it. The
 * reference computes the r-embedding frequencies with torch.exp on a float
 * tensor, i.e. SLEEF's 1-ulp expf (Cody-Waite reduction by ln 2 split in two
 * floats, a degree-6 polynomial evaluated with FMAs, scaling by 2^q). For 3 of
 * the 32 frequencies that differs from a correctly rounded expf in the last
 * bit, and r * 10000 * f amplifies the bit to ~5e-4 in the sine: enough to
 * break the reference tolerance, so the same evaluation order is used here. */
static float torch_vec_expf(float d) {
    float q = rintf(d * 1.44269504088896340736f);
    float s = fmaf(q, -0.693145751953125f, d);
    s = fmaf(q, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    return ldexpf(u, (int)q);
}

void wu_r_embedding(float *emb, int64_t ld, const float *r, int64_t B, int64_t c_r) {
    int64_t half = c_r / 2;
    /* PyTorch: arange(half).float().mul(-k).exp() with the scalar k as f32. */
    float k = (float)(log(10000.0) / (double)(half - 1));
    for (int64_t b = 0; b < B; b++) {
        float rr = r[b] * 10000.0f;
        float *e = emb + b * ld;
        for (int64_t i = 0; i < half; i++) {
            float f = torch_vec_expf((float)i * -k);
            float a = rr * f;
            e[i] = sinf(a);
            e[half + i] = cosf(a);
        }
        if (c_r % 2) e[c_r - 1] = 0.0f;
    }
}

/* every block ends with a cancel check (ld_check_cancel): the prior, DiffNeXt and
 * Stable Cascade forwards are sequences of these blocks */
#define WHERE "model forward"

/* ---- ResBlock ---- */

ld_status wu_resblock_build(ld_ctx *ctx, ld_weights *ws, wu_resblock *rb, const char *prefix, int64_t c,
                            int64_t c_skip, wu_res_kind kind) {
    memset(rb, 0, sizeof *rb);
    rb->kind = kind;
    rb->c = c;
    rb->c_skip = c_skip;
    int64_t c_mlp_in = kind == WU_RES_PRIOR ? c : c + c_skip;
    int64_t dw_in = kind == WU_RES_PRIOR ? (c + c_skip) / c : 1;
    if (kind == WU_RES_PRIOR && (c + c_skip) % c != 0)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%sdepthwise: %lld input channels do not split into %lld groups",
                       prefix, (long long)(c + c_skip), (long long)c);
    int64_t s_dw[4] = {c, dw_in, 3, 3}, s_c[1] = {c}, s_fc1[2] = {4 * c, c_mlp_in}, s_h[1] = {4 * c};
    int64_t s_grn[4] = {1, 1, 1, 4 * c}, s_fc2[2] = {c, 4 * c};
    LD_TRY(ld_weights_get(ctx, ws, &rb->dw_w, 4, s_dw, "%sdepthwise.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &rb->dw_b, 1, s_c, "%sdepthwise.bias", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &rb->fc1_w, 2, s_fc1, "%schannelwise.0.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &rb->fc1_b, 1, s_h, "%schannelwise.0.bias", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &rb->grn_gamma, 4, s_grn, "%schannelwise.2.gamma", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &rb->grn_beta, 4, s_grn, "%schannelwise.2.beta", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &rb->fc2_w, 2, s_fc2, "%schannelwise.4.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &rb->fc2_b, 1, s_c, "%schannelwise.4.bias", prefix));
    return LD_OK;
}

ld_status wu_resblock_forward(ld_ctx *ctx, ld_arena *a, const wu_resblock *rb, float *x, int64_t B, int64_t H,
                              int64_t W, const float *skip) {
    int64_t c = rb->c, cs = rb->c_skip, HW = H * W, c4 = 4 * c;
    int prior = rb->kind == WU_RES_PRIOR;
    size_t mark = ld_arena_mark(a);
    float *cat = NULL, *h, *mid, *gm, *bt, *nrm, *mean, *rstd;
    if (prior && cs) LD_ARENA_F32(cat, ctx, a, B * (c + cs) * HW);
    LD_ARENA_F32(h, ctx, a, B * c * HW);
    LD_ARENA_F32(mid, ctx, a, B * HW * c4);
    LD_ARENA_F32(mean, ctx, a, B * HW);
    LD_ARENA_F32(rstd, ctx, a, B * HW);
    LD_ARENA_F32(gm, ctx, a, c4);
    LD_ARENA_F32(bt, ctx, a, c4);
    LD_ARENA_F32(nrm, ctx, a, B * c4);

    /* prior: h = DW(cat(x, skip)); Stage B: h = DW(x) */
    ld_conv2d_params dw = ld_conv2d_params_make(1, 1);
    dw.groups = (int)c;
    const float *dw_in = x;
    if (prior && cs) {
        ld_concat_channels(cat, x, c, skip, cs, B, HW);
        dw_in = cat;
    }
    ld_conv2d(h, dw_in, B, prior ? c + cs : c, H, W, &rb->dw_w, &rb->dw_b, &dw);
    /* per pixel: Linear -> GELU -> GRN -> Linear, + x, on the MLP input LN(h)
     * (prior) or cat(LN(h), skip) (Stage B). The linears run on the NCHW
     * planes as 1x1 convolutions (W x per image): the same sums, in the same
     * order, as x W^T on channels-last tokens, without the two transposes.
     * The LayerNorm and the concatenation are applied while the first linear
     * packs its input (only the statistics are a pass of their own); GELU and
     * the GRN norms are one pass; the GRN is applied while the second linear
     * packs its input, which adds its result to x (the residual) directly. */
    ld_layer_norm_channels_stats(mean, rstd, h, B, c, HW, WU_LN_EPS);
    ld_conv1x1_cat(mid, 0.0f, h, c, mean, rstd, prior ? NULL : skip, prior ? 0 : cs, B, HW, &rb->fc1_w, &rb->fc1_b);
    ld_gelu_channel_norms(mid, B, c4, HW, nrm);
    grn_scale(nrm, B, c4);
    ld_convert_to_f32(gm, rb->grn_gamma.data, rb->grn_gamma.dtype, 0, c4);
    ld_convert_to_f32(bt, rb->grn_beta.data, rb->grn_beta.dtype, 0, c4);
    ld_conv1x1_grn(x, 1.0f, mid, B, c4, HW, gm, nrm, bt, &rb->fc2_w, &rb->fc2_b);
    ld_arena_reset(a, mark);
    return ld_check_cancel(ctx, WHERE);
}

/* ---- TimestepBlock ---- */

ld_status wu_timestep_block_build(ld_ctx *ctx, ld_weights *ws, wu_timestep_block *tb, const char *prefix, int64_t c,
                                  int64_t c_r, const char *const *conds) {
    memset(tb, 0, sizeof *tb);
    tb->c = c;
    tb->c_r = c_r;
    int64_t s_w[2] = {2 * c, c_r}, s_b[1] = {2 * c};
    LD_TRY(ld_weights_get(ctx, ws, &tb->w, 2, s_w, "%smapper.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &tb->b, 1, s_b, "%smapper.bias", prefix));
    for (int i = 0; conds && conds[i]; i++) {
        if (i >= WU_MAX_CONDS)
            return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: more than %d timestep conditionings", prefix, WU_MAX_CONDS);
        LD_TRY(ld_weights_get(ctx, ws, &tb->cw[i], 2, s_w, "%smapper_%s.weight", prefix, conds[i]));
        LD_TRY(ld_weights_get(ctx, ws, &tb->cb[i], 1, s_b, "%smapper_%s.bias", prefix, conds[i]));
        tb->n_conds = i + 1;
    }
    return LD_OK;
}

ld_status wu_timestep_block_forward(ld_ctx *ctx, ld_arena *a, const wu_timestep_block *tb, float *x, int64_t B,
                                    int64_t HW, const float *t_emb) {
    int64_t c = tb->c, c_r = tb->c_r, ld = c_r * (1 + tb->n_conds);
    size_t mark = ld_arena_mark(a);
    float *ab, *tmp;
    LD_ARENA_F32(ab, ctx, a, B * 2 * c);
    LD_ARENA_F32(tmp, ctx, a, B * 2 * c);
    ld_linear_strided(ab, 2 * c, t_emb, ld, B, &tb->w, &tb->b);
    for (int i = 0; i < tb->n_conds; i++) {
        ld_linear_strided(tmp, 2 * c, t_emb + (i + 1) * c_r, ld, B, &tb->cw[i], &tb->cb[i]);
        ld_add(ab, ab, tmp, B * 2 * c);
    }
    /* x * (1 + a) + b: tmp = [1 + a for every (b, ch); b for every (b, ch)] */
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < c; ch++) {
            tmp[b * c + ch] = 1.0f + ab[b * 2 * c + ch];
            tmp[B * c + b * c + ch] = ab[b * 2 * c + c + ch];
        }
    ld_channel_affine(x, B, c, HW, tmp, tmp + B * c);
    ld_arena_reset(a, mark);
    return ld_check_cancel(ctx, WHERE);
}

/* ---- conditioning memo ---- */

uint64_t wu_cond_gen(wu_cond_memo *m, const float *cond, size_t n) {
    if (m->cond && m->n == n && !memcmp(m->cond, cond, n * sizeof(float))) return m->gen;
    if (m->n != n) {
        free(m->cond);
        m->cond = n ? malloc(n * sizeof(float)) : NULL;
        m->n = m->cond ? n : 0;
    }
    if (!m->cond) return 0;
    memcpy(m->cond, cond, n * sizeof(float));
    return ++m->gen ? m->gen : ++m->gen; /* never 0 */
}

void wu_cond_memo_free(wu_cond_memo *m) {
    free(m->cond);
    memset(m, 0, sizeof *m);
}

/* ---- AttnBlock ---- */

ld_status wu_attn_block_build(ld_ctx *ctx, ld_weights *ws, wu_attn_block *ab, const char *prefix, int64_t c,
                              int64_t c_cond, int64_t nhead) {
    memset(ab, 0, sizeof *ab);
    if (nhead <= 0 || c % nhead != 0)
        return ld_fail(ctx, LD_ERR_MODEL, "%sattention: %lld heads do not divide %lld channels", prefix,
                       (long long)nhead, (long long)c);
    ab->c = c;
    ab->c_cond = c_cond;
    ab->nhead = nhead;
    int64_t s_kv[2] = {c, c_cond}, s_cc[2] = {c, c}, s_c[1] = {c};
    LD_TRY(ld_weights_get(ctx, ws, &ab->kv_w, 2, s_kv, "%skv_mapper.1.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->kv_b, 1, s_c, "%skv_mapper.1.bias", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->q_w, 2, s_cc, "%sattention.to_q.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->q_b, 1, s_c, "%sattention.to_q.bias", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->k_w, 2, s_cc, "%sattention.to_k.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->k_b, 1, s_c, "%sattention.to_k.bias", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->v_w, 2, s_cc, "%sattention.to_v.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->v_b, 1, s_c, "%sattention.to_v.bias", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->o_w, 2, s_cc, "%sattention.to_out.0.weight", prefix));
    LD_TRY(ld_weights_get(ctx, ws, &ab->o_b, 1, s_c, "%sattention.to_out.0.bias", prefix));
    return ld_calloc(ctx, (void **)&ab->text, WU_LANES, sizeof *ab->text, "attention text k/v");
}

void wu_attn_block_free(wu_attn_block *ab) {
    for (int l = 0; ab->text && l < WU_LANES; l++) free(ab->text[l].kv);
    free(ab->text);
    ab->text = NULL;
}

/* k and v of the text tokens, [L, c] each at k + b*ldk and v + b*ldk for
 * image b: from the block's memo when it holds them for this conditioning
 * (and precision), else computed (Linear(SiLU(cond)), then to_k and to_v)
 * and kept when the memo has room. */
static ld_status text_kv(ld_ctx *ctx, ld_arena *a, const wu_attn_block *ab, int64_t B, const float *cond, int64_t L,
                         uint64_t gen, int lane, float *k, float *v, int64_t ldk) {
    const int64_t c = ab->c, lc = L * c;
    const size_t row_bytes = (size_t)lc * sizeof(float);
    wu_text_kv *t = ab->text ? ab->text + lane : NULL;
    const int prec = (int)ld_gemm_get_precision();
    if (t && gen && t->kv && t->gen == gen && t->B == B && t->L == L && t->precision == prec) {
        for (int64_t b = 0; b < B; b++) {
            memcpy(k + b * ldk, t->kv + 2 * b * lc, row_bytes);
            memcpy(v + b * ldk, t->kv + (2 * b + 1) * lc, row_bytes);
        }
        return LD_OK;
    }
    size_t mark = ld_arena_mark(a);
    float *cs, *kvt;
    LD_ARENA_F32(cs, ctx, a, B * L * ab->c_cond);
    LD_ARENA_F32(kvt, ctx, a, B * lc);
    memcpy(cs, cond, (size_t)(B * L * ab->c_cond) * sizeof(float));
    ld_silu(cs, B * L * ab->c_cond);
    ld_linear(kvt, cs, B * L, &ab->kv_w, &ab->kv_b);
    for (int64_t b = 0; b < B; b++) {
        ld_linear(k + b * ldk, kvt + b * lc, L, &ab->k_w, &ab->k_b);
        ld_linear(v + b * ldk, kvt + b * lc, L, &ab->v_w, &ab->v_b);
    }
    ld_arena_reset(a, mark);
    if (!t || !gen) return LD_OK;
    t->gen = 0;
    if (t->B != B || t->L != L) {
        free(t->kv);
        t->kv = malloc(2 * (size_t)B * row_bytes);
        t->B = t->kv ? B : 0;
        t->L = t->kv ? L : 0;
    }
    if (!t->kv) return LD_OK; /* no room: computed again next time */
    for (int64_t b = 0; b < B; b++) {
        memcpy(t->kv + 2 * b * lc, k + b * ldk, row_bytes);
        memcpy(t->kv + (2 * b + 1) * lc, v + b * ldk, row_bytes);
    }
    t->gen = gen;
    t->precision = prec;
    return LD_OK;
}

ld_status wu_attn_block_forward(ld_ctx *ctx, ld_arena *a, const wu_attn_block *ab, float *x, int64_t B,
                                int64_t HW, const float *cond, int64_t L, uint64_t cond_gen, int lane) {
    int64_t c = ab->c, S = HW + L;
    size_t mark = ld_arena_mark(a);
    float *n, *q, *k, *v, *o;
    LD_ARENA_F32(n, ctx, a, B * c * HW);
    LD_ARENA_F32(q, ctx, a, B * HW * c);
    LD_ARENA_F32(k, ctx, a, B * S * c);
    LD_ARENA_F32(v, ctx, a, B * S * c);
    LD_ARENA_F32(o, ctx, a, B * HW * c);
    /* the sequence is [LN2d(x) tokens (HW); kv_mapper(SiLU(cond)) (L)]: LN2d
     * writes the image tokens token-major (n [B, HW, c]), which q, k and v read
     * as whole rows; the text tokens' k and v come from text_kv */
    ld_status st = text_kv(ctx, a, ab, B, cond, L, cond_gen, lane, k + HW * c, v + HW * c, S * c);
    if (st != LD_OK) {
        ld_arena_reset(a, mark);
        return st;
    }
    ld_layer_norm_channels_tokens(n, x, B, c, HW, WU_LN_EPS);
    ld_linear(q, n, B * HW, &ab->q_w, &ab->q_b);
    for (int64_t b = 0; b < B; b++) {
        const float *nb = n + b * HW * c;
        ld_linear(k + b * S * c, nb, HW, &ab->k_w, &ab->k_b);
        ld_linear(v + b * S * c, nb, HW, &ab->v_w, &ab->v_b);
    }
    int64_t D = c / ab->nhead;
    ld_attn_params p;
    memset(&p, 0, sizeof p);
    p.scale = 1.0f / sqrtf((float)D);
    st = ld_attention_checked(ctx, WHERE, 0, o, c, q, c, k, c, v, c, B, ab->nhead, HW, S, D, &p);
    if (st == LD_OK) /* x += to_out(o), written channel-major straight into x */
        for (int64_t b = 0; b < B; b++) ld_linear_to_channels(x + b * c * HW, 1.0f, o + b * HW * c, HW, &ab->o_w, &ab->o_b);
    ld_arena_reset(a, mark);
    return st;
}
