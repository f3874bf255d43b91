/* WuerstchenDiffNeXt: the v2 Stage B U-Net. Embedding, a down path and an up
 * path of C/T/A blocks per level with the EfficientNet latent injected into
 * every ResBlock of levels with inject_effnet, and the (x - a) / b output.
 * See wuerstchen_diffnext.h and specs/wuerstchen.md section 4.2. */
#include "models/wuerstchen_diffnext.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t nhead[WU_DN_MAX_LEVELS], blocks[WU_DN_MAX_LEVELS];
    const char *level_config[WU_DN_MAX_LEVELS];
} dn_lists;

static ld_status read_config(ld_ctx *ctx, const char *where, const json_t *cfg, ld_wuerstchen_diffnext *d,
                             dn_lists *ls) {
    LD_TRY(ld_json_int(ctx, where, cfg, "c_in", 4, &d->c_in));
    LD_TRY(ld_json_int(ctx, where, cfg, "c_out", 4, &d->c_out));
    LD_TRY(ld_json_int(ctx, where, cfg, "c_r", 64, &d->c_r));
    LD_TRY(ld_json_int(ctx, where, cfg, "patch_size", 2, &d->patch));
    LD_TRY(ld_json_int(ctx, where, cfg, "c_cond", 1024, &d->c_cond));
    LD_TRY(ld_json_int(ctx, where, cfg, "effnet_embd", 16, &d->effnet_embd));
    LD_TRY(ld_json_int(ctx, where, cfg, "clip_embd", 1024, &d->clip_embd));
    int64_t ks;
    LD_TRY(ld_json_int(ctx, where, cfg, "kernel_size", 3, &ks));
    if (ks != 3)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: kernel_size %lld is not supported (only 3)", where, (long long)ks);
    struct { const char *name; int64_t v; } f[] = {{"c_in", d->c_in}, {"c_out", d->c_out}, {"c_r", d->c_r},
                                                   {"patch_size", d->patch}, {"c_cond", d->c_cond},
                                                   {"effnet_embd", d->effnet_embd}, {"clip_embd", d->clip_embd}};
    for (int i = 0; i < 7; i++)
        if (f[i].v < 1 || f[i].v > 65536)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s must be between 1 and 65536, got %lld", where, f[i].name,
                           (long long)f[i].v);
    if (d->c_r < 4) return ld_fail(ctx, LD_ERR_MODEL, "%s: c_r must be at least 4", where);
    if (d->patch > 16)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: patch_size %lld is too large", where, (long long)d->patch);
    if (d->c_in != d->c_out)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: c_in (%lld) must equal c_out (%lld): the output is (x - a) / b",
                       where, (long long)d->c_in, (long long)d->c_out);
    int n, n2, n3, n4, n5;
    int64_t inj[WU_DN_MAX_LEVELS];
    LD_TRY(ld_json_int_list(ctx, where, cfg, "c_hidden", d->c_hidden, WU_DN_MAX_LEVELS, 0, &n));
    LD_TRY(ld_json_int_list(ctx, where, cfg, "nhead", ls->nhead, WU_DN_MAX_LEVELS, 0, &n2));
    LD_TRY(ld_json_int_list(ctx, where, cfg, "blocks", ls->blocks, WU_DN_MAX_LEVELS, 0, &n3));
    LD_TRY(ld_json_str_list(ctx, where, cfg, "level_config", ls->level_config, WU_DN_MAX_LEVELS, &n4));
    /* inject_effnet: a list of booleans */
    const json_t *ie = json_object_get(cfg, "inject_effnet");
    if (!json_is_array(ie))
        return ld_fail(ctx, LD_ERR_MODEL, "%s: inject_effnet must be a list of booleans", where);
    n5 = (int)json_array_size(ie);
    if (n5 > WU_DN_MAX_LEVELS)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: more than %d levels", where, WU_DN_MAX_LEVELS);
    for (int i = 0; i < n5; i++) {
        const json_t *v = json_array_get(ie, (size_t)i);
        if (!json_is_boolean(v))
            return ld_fail(ctx, LD_ERR_MODEL, "%s: inject_effnet[%d] must be a boolean", where, i);
        inj[i] = json_is_true(v);
    }
    if (n < 1) return ld_fail(ctx, LD_ERR_MODEL, "%s: c_hidden is missing or empty", where);
    if (n2 != n || n3 != n || n4 != n || n5 != n)
        return ld_fail(ctx, LD_ERR_MODEL,
                       "%s: c_hidden has %d entries but nhead has %d, blocks %d, level_config %d, inject_effnet %d",
                       where, n, n2, n3, n4, n5);
    d->n_levels = n;
    for (int i = 0; i < n; i++) {
        d->inject[i] = (int)inj[i];
        if (d->c_hidden[i] < 1 || d->c_hidden[i] > 65536)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: c_hidden[%d] = %lld is out of range", where, i,
                           (long long)d->c_hidden[i]);
        if (ls->blocks[i] < 0 || ls->blocks[i] > 1000)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: blocks[%d] = %lld is out of range", where, i,
                           (long long)ls->blocks[i]);
        const char *lc = ls->level_config[i];
        if (!lc || !*lc || strlen(lc) > 16)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: level_config[%d] must be a string of C, T and A", where, i);
        for (const char *q = lc; *q; q++) {
            if (*q != 'C' && *q != 'T' && *q != 'A')
                return ld_fail(ctx, LD_ERR_MODEL, "%s: level_config[%d] '%s' has block type '%c' (known: C, T, A)",
                               where, i, lc, *q);
            if (*q == 'A' && (ls->nhead[i] < 1 || d->c_hidden[i] % ls->nhead[i]))
                return ld_fail(ctx, LD_ERR_MODEL, "%s: nhead[%d] = %lld does not divide c_hidden[%d] = %lld", where, i,
                               (long long)ls->nhead[i], i, (long long)d->c_hidden[i]);
        }
    }
    return LD_OK;
}

/* One level's blocks: blocks[L] repeats of level_config[L]. skip_first /
 * skip_rest: c_skip of the first / other ResBlocks. */
static ld_status build_level(ld_ctx *ctx, ld_weights *ws, wu_dn_level *lv, const char *list, int li, int first_idx,
                             int64_t c, int64_t repeats, const char *pattern, int64_t nhead, int64_t c_cond,
                             int64_t c_r, int64_t skip_first, int64_t skip_rest) {
    int per = (int)strlen(pattern);
    lv->c = c;
    lv->n_blocks = (int)(repeats * per);
    if (lv->n_blocks)
        LD_TRY(ld_calloc(ctx, (void **)&lv->blocks, (size_t)lv->n_blocks, sizeof *lv->blocks, "DiffNeXt blocks"));
    for (int k = 0; k < lv->n_blocks; k++) {
        wu_dn_block *b = &lv->blocks[k];
        char pre[96];
        snprintf(pre, sizeof pre, "%s.%d.%d.", list, li, first_idx + k);
        b->kind = pattern[k % per];
        if (b->kind == 'C')
            LD_TRY(wu_resblock_build(ctx, ws, &b->res, pre, c, k == 0 ? skip_first : skip_rest, WU_RES_STAGE_B));
        else if (b->kind == 'T')
            LD_TRY(wu_timestep_block_build(ctx, ws, &b->ts, pre, c, c_r, NULL));
        else
            LD_TRY(wu_attn_block_build(ctx, ws, &b->attn, pre, c, c_cond, nhead));
    }
    return LD_OK;
}

static ld_status build_all(ld_ctx *ctx, ld_weights *ws, ld_wuerstchen_diffnext *d, const dn_lists *ls) {
    int n = d->n_levels;
    int64_t p2 = d->patch * d->patch, c0 = d->c_hidden[0];
    int64_t s_cm[2] = {d->c_cond, d->clip_embd}, s_cc[1] = {d->c_cond};
    int64_t s_emb[4] = {c0, d->c_in * p2, 1, 1}, s_c0[1] = {c0};
    int64_t s_clf[4] = {2 * d->c_out * p2, c0, 1, 1}, s_clfb[1] = {2 * d->c_out * p2};
    int64_t s_eff[4] = {d->c_cond, d->effnet_embd, 1, 1};
    LD_TRY(ld_weights_get(ctx, ws, &d->clip_w, 2, s_cm, "clip_mapper.weight"));
    LD_TRY(ld_weights_get(ctx, ws, &d->clip_b, 1, s_cc, "clip_mapper.bias"));
    /* effnet_mappers: slots inject_effnet + reversed(inject_effnet) */
    for (int s = 0; s < 2 * n; s++) {
        int on = s < n ? d->inject[s] : d->inject[2 * n - 1 - s];
        if (!on) continue;
        LD_TRY(ld_weights_get(ctx, ws, &d->eff_w[s], 4, s_eff, "effnet_mappers.%d.weight", s));
        LD_TRY(ld_weights_get(ctx, ws, &d->eff_b[s], 1, s_cc, "effnet_mappers.%d.bias", s));
    }
    LD_TRY(ld_weights_get(ctx, ws, &d->emb_w, 4, s_emb, "embedding.1.weight"));
    LD_TRY(ld_weights_get(ctx, ws, &d->emb_b, 1, s_c0, "embedding.1.bias"));
    for (int L = 0; L < n; L++) {
        wu_dn_level *lv = &d->down[L];
        int64_t c = d->c_hidden[L], skip = d->inject[L] ? d->c_cond : 0;
        if (L > 0) {
            int64_t s_w[4] = {c, d->c_hidden[L - 1], 2, 2}, s_b[1] = {c};
            LD_TRY(ld_weights_get(ctx, ws, &lv->scale_w, 4, s_w, "down_blocks.%d.0.1.weight", L));
            LD_TRY(ld_weights_get(ctx, ws, &lv->scale_b, 1, s_b, "down_blocks.%d.0.1.bias", L));
        }
        LD_TRY(build_level(ctx, ws, lv, "down_blocks", L, L > 0, c, ls->blocks[L], ls->level_config[L], ls->nhead[L],
                           d->c_cond, d->c_r, skip, skip));
    }
    for (int i = 0; i < n; i++) {
        int L = n - 1 - i;
        wu_dn_level *lv = &d->up[i];
        int64_t c = d->c_hidden[L], eff = d->inject[L] ? d->c_cond : 0;
        LD_TRY(build_level(ctx, ws, lv, "up_blocks", i, 0, c, ls->blocks[L], ls->level_config[L], ls->nhead[L],
                           d->c_cond, d->c_r, (L < n - 1 ? c : 0) + eff, eff));
        if (L > 0) {
            int64_t s_w[4] = {c, d->c_hidden[L - 1], 2, 2}, s_b[1] = {d->c_hidden[L - 1]};
            LD_TRY(ld_weights_get(ctx, ws, &lv->scale_w, 4, s_w, "up_blocks.%d.%d.1.weight", i, lv->n_blocks));
            LD_TRY(ld_weights_get(ctx, ws, &lv->scale_b, 1, s_b, "up_blocks.%d.%d.1.bias", i, lv->n_blocks));
        }
    }
    LD_TRY(ld_weights_get(ctx, ws, &d->clf_w, 4, s_clf, "clf.1.weight"));
    LD_TRY(ld_weights_get(ctx, ws, &d->clf_b, 1, s_clfb, "clf.1.bias"));
    return LD_OK;
}

ld_status ld_wuerstchen_diffnext_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws,
                                       ld_wuerstchen_diffnext **out) {
    *out = NULL;
    ld_wuerstchen_diffnext *d;
    LD_TRY(ld_calloc(ctx, (void **)&d, 1, sizeof *d, "WuerstchenDiffNeXt"));
    ld_arena_init(&d->arena, 0);
    dn_lists ls;
    memset(&ls, 0, sizeof ls);
    ld_status st = read_config(ctx, where, cfg, d, &ls);
    if (st == LD_OK) st = build_all(ctx, ws, d, &ls);
    if (st != LD_OK) {
        ld_wuerstchen_diffnext_free(d);
        return st;
    }
    *out = d;
    return LD_OK;
}

ld_status ld_wuerstchen_diffnext_load(ld_ctx *ctx, const char *dir, const char *variant,
                                      ld_wuerstchen_diffnext **out) {
    *out = NULL;
    ld_component_files f;
    LD_TRY(ld_component_files_open(ctx, dir, variant, &f));
    ld_status st = ld_wuerstchen_diffnext_build(ctx, f.where, f.config, f.ws, out);
    if (st == LD_OK) (*out)->ws = f.ws;
    ld_component_files_close(&f, st == LD_OK);
    return st;
}

void ld_wuerstchen_diffnext_free(ld_wuerstchen_diffnext *d) {
    if (!d) return;
    for (int i = 0; i < WU_DN_MAX_LEVELS; i++) {
        wu_dn_level *lv[2] = {&d->down[i], &d->up[i]};
        for (int j = 0; j < 2; j++) {
            for (int k = 0; lv[j]->blocks && k < lv[j]->n_blocks; k++) wu_attn_block_free(&lv[j]->blocks[k].attn);
            free(lv[j]->blocks);
        }
    }
    ld_weights_free(d->ws);
    ld_arena_free(&d->arena);
    wu_cond_memo_free(&d->memo);
    free(d);
}

int64_t ld_wuerstchen_diffnext_size_multiple(const ld_wuerstchen_diffnext *d) {
    return d->patch << (d->n_levels - 1);
}

ld_status ld_wuerstchen_diffnext_check_size(ld_ctx *ctx, const ld_wuerstchen_diffnext *d, int64_t H, int64_t W) {
    int64_t m = ld_wuerstchen_diffnext_size_multiple(d);
    if (H < m || W < m || H % m || W % m)
        return ld_fail(
            ctx, LD_ERR_INVALID_ARGUMENT,
            "WuerstchenDiffNeXt: latent size %lldx%lld is not a multiple of %lld (patch_size x 2^(levels-1))",
            (long long)H, (long long)W, (long long)m);
    return LD_OK;
}

size_t ld_wuerstchen_diffnext_activation_bytes(const ld_wuerstchen_diffnext *d) { return d->arena.peak; }

typedef struct {
    const ld_wuerstchen_diffnext_inputs *in;
    const float *remb; /* [B, c_r] */
    const float *clip; /* [B, text_len, c_cond] */
    uint64_t gen;      /* wu_cond_gen of clip */
} dn_cond;

/* e [B, c_cond, h, w] = effnet_mappers[slot](resize_bicubic_aa(effnet, h x w)) */
static ld_status effnet_cond(ld_ctx *ctx, ld_arena *a, const ld_wuerstchen_diffnext *d, int slot,
                             const ld_wuerstchen_diffnext_inputs *in, int64_t h, int64_t w, float *e) {
    size_t mark = ld_arena_mark(a);
    float *rs;
    LD_ARENA_F32(rs, ctx, a, in->B * d->effnet_embd * h * w);
    ld_resize_bicubic_aa(rs, in->effnet, in->B, d->effnet_embd, in->eh, in->ew, h, w, 1);
    ld_conv2d_params one = ld_conv2d_params_make(1, 0);
    ld_conv2d(e, rs, in->B, d->effnet_embd, h, w, &d->eff_w[slot], &d->eff_b[slot], &one);
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* Runs one level's blocks on x [B, c, h, w] in place. first_skip: extra
 * channels for the first ResBlock (up path), concatenated before e. */
static ld_status run_level(ld_ctx *ctx, ld_arena *a, const ld_wuerstchen_diffnext *d, const wu_dn_level *lv, int slot,
                           float *x, int64_t h, int64_t w, const dn_cond *cond, const float *first_skip) {
    int64_t B = cond->in->B, L = cond->in->text_len;
    size_t mark = ld_arena_mark(a);
    float *e = NULL;
    int has_eff = d->eff_w[slot].ndim > 0;
    for (int k = 0; k < lv->n_blocks; k++) {
        const wu_dn_block *b = &lv->blocks[k];
        if (b->kind == 'T') {
            LD_TRY(wu_timestep_block_forward(ctx, a, &b->ts, x, B, h * w, cond->remb));
        } else if (b->kind == 'A') {
            LD_TRY(wu_attn_block_forward(ctx, a, &b->attn, x, B, h * w, cond->clip, L, cond->gen, 0));
        } else {
            if (has_eff && !e) {
                LD_ARENA_F32(e, ctx, a, B * d->c_cond * h * w);
                LD_TRY(effnet_cond(ctx, a, d, slot, cond->in, h, w, e));
            }
            const float *skip = e;
            if (k == 0 && first_skip) {
                skip = first_skip;
                if (e) { /* cat([level output, effnet]) */
                    float *cat;
                    LD_ARENA_F32(cat, ctx, a, B * (lv->c + d->c_cond) * h * w);
                    ld_concat_channels(cat, first_skip, lv->c, e, d->c_cond, B, h * w);
                    skip = cat;
                }
            }
            LD_TRY(wu_resblock_forward(ctx, a, &b->res, x, B, h, w, skip));
        }
    }
    ld_arena_reset(a, mark);
    return LD_OK;
}

static ld_status forward(ld_ctx *ctx, ld_wuerstchen_diffnext *d, const ld_wuerstchen_diffnext_inputs *in,
                         float *out) {
    ld_arena *a = &d->arena;
    const float *x = in->sample;
    int64_t B = in->B, H = in->H, W = in->W, L = in->text_len;
    int n = d->n_levels;
    int64_t p = d->patch, hs[WU_DN_MAX_LEVELS], ws_[WU_DN_MAX_LEVELS];
    float *lvl[WU_DN_MAX_LEVELS] = {0};
    hs[0] = H / p;
    ws_[0] = W / p;
    for (int i = 1; i < n; i++) {
        hs[i] = hs[i - 1] / 2;
        ws_[i] = ws_[i - 1] / 2;
    }
    /* tmp: the unshuffled input, the LN2d in front of each downscaler and the
     * clf output; level_max: the largest level's activations */
    int64_t c_io = 2 * d->c_out > d->c_in ? 2 * d->c_out : d->c_in;
    int64_t tmp_n = B * c_io * H * W, level_max = 0;
    for (int i = 0; i < n; i++) {
        int64_t nl = B * d->c_hidden[i] * hs[i] * ws_[i];
        if (nl > level_max) level_max = nl;
        if (i < n - 1 && nl > tmp_n) tmp_n = nl;
    }
    float *remb, *cl, *tmp;
    LD_ARENA_F32(remb, ctx, a, B * d->c_r);
    LD_ARENA_F32(cl, ctx, a, B * L * d->c_cond);
    LD_ARENA_F32(tmp, ctx, a, tmp_n);
    /* conditioning: r embedding; clip = LN(clip_mapper(clip)) */
    wu_r_embedding(remb, d->c_r, in->r, B, d->c_r);
    ld_linear(cl, in->clip_text, B * L, &d->clip_w, &d->clip_b);
    ld_layer_norm(cl, cl, B * L, d->c_cond, WU_LN_EPS, NULL, NULL);
    const dn_cond cond = {in, remb, cl, wu_cond_gen(&d->memo, cl, (size_t)(B * L * d->c_cond))};
    /* x = LN2d(conv1x1(pixel_unshuffle(x))) */
    ld_conv2d_params one = ld_conv2d_params_make(1, 0), two = ld_conv2d_params_make(2, 0);
    ld_pixel_unshuffle(tmp, x, B, d->c_in, H, W, (int)p);
    LD_ARENA_F32(lvl[0], ctx, a, B * d->c_hidden[0] * hs[0] * ws_[0]);
    ld_conv2d(lvl[0], tmp, B, d->c_in * p * p, hs[0], ws_[0], &d->emb_w, &d->emb_b, &one);
    wu_layer_norm2d(lvl[0], lvl[0], B, d->c_hidden[0], hs[0] * ws_[0]);
    /* down path: every level's output is kept for the up path's skips */
    for (int Lv = 0; Lv < n; Lv++) {
        const wu_dn_level *lv = &d->down[Lv];
        if (Lv > 0) { /* LN2d, 2x2 stride-2 conv */
            LD_ARENA_F32(lvl[Lv], ctx, a, B * lv->c * hs[Lv] * ws_[Lv]);
            wu_layer_norm2d(tmp, lvl[Lv - 1], B, d->c_hidden[Lv - 1], hs[Lv - 1] * ws_[Lv - 1]);
            ld_conv2d(lvl[Lv], tmp, B, d->c_hidden[Lv - 1], hs[Lv - 1], ws_[Lv - 1], &lv->scale_w, &lv->scale_b, &two);
        }
        LD_TRY(run_level(ctx, a, d, lv, Lv, lvl[Lv], hs[Lv], ws_[Lv], &cond, NULL));
    }
    /* up path: x starts as the deepest level output (updated in place), then
     * alternates between two buffers of the largest level's size */
    float *xu = lvl[n - 1], *pp[2] = {NULL, NULL};
    if (n > 1) {
        LD_ARENA_F32(pp[0], ctx, a, level_max);
        LD_ARENA_F32(pp[1], ctx, a, level_max);
    }
    for (int i = 0; i < n; i++) {
        int Lv = n - 1 - i;
        const wu_dn_level *lv = &d->up[i];
        LD_TRY(run_level(ctx, a, d, lv, n + i, xu, hs[Lv], ws_[Lv], &cond, i > 0 ? lvl[Lv] : NULL));
        if (Lv > 0) { /* LN2d, 2x2 stride-2 transposed conv */
            float *nx = xu == pp[0] ? pp[1] : pp[0];
            wu_layer_norm2d(xu, xu, B, lv->c, hs[Lv] * ws_[Lv]);
            ld_conv_transpose2d(nx, xu, B, lv->c, hs[Lv], ws_[Lv], &lv->scale_w, &lv->scale_b, 2, 0);
            xu = nx;
        }
    }
    /* clf: LN2d, 1x1 conv, pixel shuffle; a, b = chunk(2); b = sigmoid(b)*(1-2e-3)+1e-3 */
    int64_t co = d->c_out, HW = H * W;
    wu_layer_norm2d(xu, xu, B, d->c_hidden[0], hs[0] * ws_[0]);
    ld_conv2d(tmp, xu, B, d->c_hidden[0], hs[0], ws_[0], &d->clf_w, &d->clf_b, &one);
    float *ab;
    LD_ARENA_F32(ab, ctx, a, B * 2 * co * HW);
    ld_pixel_shuffle(ab, tmp, B, 2 * co * p * p, hs[0], ws_[0], (int)p);
    for (int64_t b = 0; b < B; b++) {
        float *bb = ab + (b * 2 + 1) * co * HW;
        ld_sigmoid(bb, co * HW);
        for (int64_t k = 0; k < co * HW; k++) {
            float av = ab[b * 2 * co * HW + k], s = bb[k] * (float)(1.0 - 2e-3) + (float)1e-3;
            out[b * co * HW + k] = (x[b * co * HW + k] - av) / s;
        }
    }
    return LD_OK;
}

ld_status ld_wuerstchen_diffnext_forward(ld_ctx *ctx, ld_wuerstchen_diffnext *d,
                                         const ld_wuerstchen_diffnext_inputs *in, float *out) {
    if (!in || !in->sample || !in->r || !in->effnet || !in->clip_text || !out || in->B < 1 || in->eh < 1 ||
        in->ew < 1 || in->text_len < 1)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "WuerstchenDiffNeXt: sample, r, effnet, clip_text and out are required, with positive sizes");
    LD_TRY(ld_wuerstchen_diffnext_check_size(ctx, d, in->H, in->W));
    size_t mark = ld_arena_mark(&d->arena);
    ld_status st = forward(ctx, d, in, out);
    ld_arena_reset(&d->arena, mark);
    /* the first forward at a size plans the memory: one block from now on */
    if (st == LD_OK) st = ld_arena_reserve(ctx, &d->arena, d->arena.peak);
    return st;
}

static ld_status record_diffnext(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder) {
    ld_wuerstchen_diffnext *d;
    LD_TRY(ld_wuerstchen_diffnext_build(ctx, where, config, recorder, &d));
    ld_wuerstchen_diffnext_free(d);
    return LD_OK;
}

const ld_model_type ld_model_wuerstchen_diffnext = {"WuerstchenDiffNeXt", "diffusion_pytorch_model.safetensors",
                                                    record_diffnext};
