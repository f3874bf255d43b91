/* WuerstchenPrior: projection, cond_mapper, depth x [ResBlock, TimestepBlock,
 * AttnBlock], LN2d + 1x1 conv, and the (x - a) / (|1 - b| + 1e-5) output.
 * See wuerstchen_prior.h and specs/wuerstchen.md section 4.1. */
#include "models/wuerstchen_prior.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t c_in, c, c_cond, c_r, depth, nhead;
} prior_config;

static ld_status read_config(ld_ctx *ctx, const char *where, const json_t *cfg, prior_config *pc) {
    /* defaults: the diffusers constructor's */
    LD_TRY(ld_json_int(ctx, where, cfg, "c_in", 16, &pc->c_in));
    LD_TRY(ld_json_int(ctx, where, cfg, "c", 1280, &pc->c));
    LD_TRY(ld_json_int(ctx, where, cfg, "c_cond", 1024, &pc->c_cond));
    LD_TRY(ld_json_int(ctx, where, cfg, "c_r", 64, &pc->c_r));
    LD_TRY(ld_json_int(ctx, where, cfg, "depth", 16, &pc->depth));
    LD_TRY(ld_json_int(ctx, where, cfg, "nhead", 16, &pc->nhead));
    struct { const char *name; int64_t v, max; } f[] = {{"c_in", pc->c_in, 4096},   {"c", pc->c, 65536},
                                                       {"c_cond", pc->c_cond, 65536}, {"c_r", pc->c_r, 4096},
                                                       {"depth", pc->depth, 1024},    {"nhead", pc->nhead, 4096}};
    for (int i = 0; i < 6; i++)
        if (f[i].v < 1 || f[i].v > f[i].max)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s must be between 1 and %lld, got %lld", where, f[i].name,
                           (long long)f[i].max, (long long)f[i].v);
    if (pc->c_r < 4)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: c_r must be at least 4, got %lld", where, (long long)pc->c_r);
    if (pc->c % pc->nhead)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: nhead %lld does not divide c %lld", where, (long long)pc->nhead,
                       (long long)pc->c);
    return LD_OK;
}

ld_status ld_wuerstchen_prior_build(ld_ctx *ctx, const char *where, const json_t *cfg, ld_weights *ws,
                                    ld_wuerstchen_prior **out) {
    *out = NULL;
    prior_config pc;
    LD_TRY(read_config(ctx, where, cfg, &pc));
    ld_wuerstchen_prior *p;
    LD_TRY(ld_calloc(ctx, (void **)&p, 1, sizeof *p, "WuerstchenPrior"));
    p->c_in = pc.c_in;
    p->c = pc.c;
    p->c_cond = pc.c_cond;
    p->c_r = pc.c_r;
    p->depth = pc.depth;
    p->nhead = pc.nhead;
    for (int l = 0; l < WU_LANES; l++) ld_arena_init(&p->arena[l], 0);
    ld_status st = ld_calloc(ctx, (void **)&p->layers, (size_t)pc.depth, sizeof *p->layers, "prior blocks");
    int64_t c = pc.c;
    int64_t s_proj[4] = {c, pc.c_in, 1, 1}, s_c[1] = {c}, s_cm0[2] = {c, pc.c_cond}, s_cm2[2] = {c, c};
    int64_t s_out[4] = {2 * pc.c_in, c, 1, 1}, s_ob[1] = {2 * pc.c_in};
    if (st == LD_OK) st = ld_weights_get(ctx, ws, &p->proj_w, 4, s_proj, "projection.weight");
    if (st == LD_OK) st = ld_weights_get(ctx, ws, &p->proj_b, 1, s_c, "projection.bias");
    if (st == LD_OK) st = ld_weights_get(ctx, ws, &p->cm0_w, 2, s_cm0, "cond_mapper.0.weight");
    if (st == LD_OK) st = ld_weights_get(ctx, ws, &p->cm0_b, 1, s_c, "cond_mapper.0.bias");
    if (st == LD_OK) st = ld_weights_get(ctx, ws, &p->cm2_w, 2, s_cm2, "cond_mapper.2.weight");
    if (st == LD_OK) st = ld_weights_get(ctx, ws, &p->cm2_b, 1, s_c, "cond_mapper.2.bias");
    for (int64_t i = 0; st == LD_OK && i < pc.depth; i++) {
        char pre[64];
        snprintf(pre, sizeof pre, "blocks.%lld.", (long long)(3 * i));
        st = wu_resblock_build(ctx, ws, &p->layers[i].res, pre, c, 0, WU_RES_PRIOR);
        snprintf(pre, sizeof pre, "blocks.%lld.", (long long)(3 * i + 1));
        if (st == LD_OK) st = wu_timestep_block_build(ctx, ws, &p->layers[i].ts, pre, c, pc.c_r, NULL);
        snprintf(pre, sizeof pre, "blocks.%lld.", (long long)(3 * i + 2));
        if (st == LD_OK) st = wu_attn_block_build(ctx, ws, &p->layers[i].attn, pre, c, c, pc.nhead);
    }
    if (st == LD_OK) st = ld_weights_get(ctx, ws, &p->out_w, 4, s_out, "out.1.weight");
    if (st == LD_OK) st = ld_weights_get(ctx, ws, &p->out_b, 1, s_ob, "out.1.bias");
    if (st != LD_OK) {
        ld_wuerstchen_prior_free(p);
        return st;
    }
    *out = p;
    return LD_OK;
}

ld_status ld_wuerstchen_prior_load(ld_ctx *ctx, const char *dir, const char *variant, ld_wuerstchen_prior **out) {
    *out = NULL;
    ld_component_files f;
    LD_TRY(ld_component_files_open(ctx, dir, variant, &f));
    ld_status st = ld_wuerstchen_prior_build(ctx, f.where, f.config, f.ws, out);
    if (st == LD_OK) (*out)->ws = f.ws;
    ld_component_files_close(&f, st == LD_OK);
    return st;
}

void ld_wuerstchen_prior_free(ld_wuerstchen_prior *p) {
    if (!p) return;
    for (int64_t i = 0; p->layers && i < p->depth; i++) wu_attn_block_free(&p->layers[i].attn);
    free(p->layers);
    ld_weights_free(p->ws);
    for (int l = 0; l < WU_LANES; l++) {
        ld_arena_free(&p->arena[l]);
        wu_cond_memo_free(&p->memo[l]);
    }
    free(p);
}

size_t ld_wuerstchen_prior_activation_bytes(const ld_wuerstchen_prior *p) {
    size_t n = 0;
    for (int l = 0; l < WU_LANES; l++) n += p->arena[l].peak;
    return n;
}

static ld_status forward(ld_ctx *ctx, ld_wuerstchen_prior *p, int lane, const ld_wuerstchen_prior_inputs *in,
                         float *out) {
    ld_arena *a = &p->arena[lane];
    const float *x = in->sample;
    int64_t B = in->B, h = in->H, w = in->W, L = in->text_len;
    int64_t C = p->c, HW = h * w;
    float *hx, *cemb, *remb, *ab;
    LD_ARENA_F32(hx, ctx, a, B * C * HW);
    LD_ARENA_F32(cemb, ctx, a, 2 * B * L * C);
    LD_ARENA_F32(remb, ctx, a, B * p->c_r);
    LD_ARENA_F32(ab, ctx, a, B * 2 * p->c_in * HW);
    /* x = projection(x); c = cond_mapper(c); r = gen_r_embedding(r) */
    ld_conv2d_params one = ld_conv2d_params_make(1, 0);
    ld_conv2d(hx, x, B, p->c_in, h, w, &p->proj_w, &p->proj_b, &one);
    float *ctmp = cemb + B * L * C;
    ld_linear(ctmp, in->clip_text, B * L, &p->cm0_w, &p->cm0_b);
    ld_leaky_relu(ctmp, B * L * C, 0.2f);
    ld_linear(cemb, ctmp, B * L, &p->cm2_w, &p->cm2_b);
    wu_r_embedding(remb, p->c_r, in->r, B, p->c_r);
    const uint64_t gen = wu_cond_gen(&p->memo[lane], cemb, (size_t)(B * L * C));
    for (int64_t i = 0; i < p->depth; i++) {
        const wu_prior_layer *ly = &p->layers[i];
        LD_TRY(wu_resblock_forward(ctx, a, &ly->res, hx, B, h, w, NULL));
        LD_TRY(wu_timestep_block_forward(ctx, a, &ly->ts, hx, B, HW, remb));
        LD_TRY(wu_attn_block_forward(ctx, a, &ly->attn, hx, B, HW, cemb, L, gen, lane));
    }
    /* a, b = out(x).chunk(2); eps = (x_in - a) / (|1 - b| + 1e-5) */
    wu_layer_norm2d(hx, hx, B, C, HW);
    ld_conv2d(ab, hx, B, C, h, w, &p->out_w, &p->out_b, &one);
    int64_t ci = p->c_in;
    for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < ci * HW; k++) {
            float av = ab[b * 2 * ci * HW + k], bv = ab[b * 2 * ci * HW + ci * HW + k];
            out[b * ci * HW + k] = (x[b * ci * HW + k] - av) / (fabsf(1.0f - bv) + 1e-5f);
        }
    return LD_OK;
}

ld_status ld_wuerstchen_prior_forward(ld_ctx *ctx, ld_wuerstchen_prior *p, const ld_wuerstchen_prior_inputs *in,
                                      float *out) {
    return ld_wuerstchen_prior_forward_lane(ctx, p, 0, in, out);
}

ld_status ld_wuerstchen_prior_forward_lane(ld_ctx *ctx, ld_wuerstchen_prior *p, int lane,
                                           const ld_wuerstchen_prior_inputs *in, float *out) {
    if (lane < 0 || lane >= WU_LANES)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "WuerstchenPrior: lane %d is not 0..%d", lane, WU_LANES - 1);
    if (!in || !in->sample || !in->r || !in->clip_text || !out || in->B < 1 || in->H < 1 || in->W < 1 ||
        in->text_len < 1)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "WuerstchenPrior: sample, r, clip_text and out are required, with positive sizes");
    ld_arena *a = &p->arena[lane];
    size_t mark = ld_arena_mark(a);
    ld_status st = forward(ctx, p, lane, in, out);
    ld_arena_reset(a, mark);
    /* the first forward at a size plans the memory: one block from now on */
    if (st == LD_OK) st = ld_arena_reserve(ctx, a, a->peak);
    return st;
}

static ld_status record_prior(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder) {
    ld_wuerstchen_prior *p;
    LD_TRY(ld_wuerstchen_prior_build(ctx, where, config, recorder, &p));
    ld_wuerstchen_prior_free(p);
    return LD_OK;
}

const ld_model_type ld_model_wuerstchen_prior = {"WuerstchenPrior", "diffusion_pytorch_model.safetensors",
                                                 record_prior};
