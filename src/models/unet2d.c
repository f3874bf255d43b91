/* UNet2DConditionModel: build from config + weights, and the forward pass
 * (see unet2d.h; the structure is parsed in unet2d_config.c, the blocks live
 * in unet2d_blocks.c). The forward reads like the block diagram of
 * specs/koala.md §2.3: embeddings, conv_in, down blocks (pushing skips), mid
 * block, up blocks (popping skips, last in first out), output head. */
#include "models/unet2d_internal.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "models/lora_merge.h"
#include "tensor/ops.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- build ---- */

static ld_status build_block(ld_ctx *ctx, ld_weights *ws, const unet_config *c, unet_block *b, const char *kind,
                             int i, int up) {
    char p[128];
    int n = c->nblocks;
    int cout = up ? c->block_out_channels[n - 1 - i] : c->block_out_channels[i];
    int heads = up ? c->heads[n - 1 - i] : c->heads[i];
    b->cout = cout;
    b->cross_attn = up ? c->up_cross_attn[i] : c->down_cross_attn[i];
    b->nlayers = up ? c->layers_per_block[n - 1 - i] + 1 : c->layers_per_block[i];
    b->has_sampler = i != n - 1;
    const int *depth = up ? c->up_depth[i] : c->down_depth[i];
    /* Up block i: layer j takes h (prev_output_channel for j = 0, else cout)
     * concatenated with a skip (cout, or the next-shallower block's channels
     * for the last layer). */
    int prev_out = i == 0 ? c->block_out_channels[n - 1] : c->block_out_channels[n - i];
    int skip_last = c->block_out_channels[n - 2 - i < 0 ? 0 : n - 2 - i];
    b->cin = up ? prev_out : (i == 0 ? c->block_out_channels[0] : c->block_out_channels[i - 1]);
    for (int j = 0; j < b->nlayers; j++) {
        int cin;
        if (up) cin = (j == 0 ? prev_out : cout) + (j == b->nlayers - 1 ? skip_last : cout);
        else cin = j == 0 ? b->cin : cout;
        snprintf(p, sizeof p, "%s.%d.resnets.%d.", kind, i, j);
        LD_TRY(ld_resnet_build(ctx, ws, p, &b->resnets[j], cin, cout, c->temb_dim, c->groups, c->eps,
                               c->resnet_out_scale));
        if (b->cross_attn) {
            snprintf(p, sizeof p, "%s.%d.attentions.%d.", kind, i, j);
            LD_TRY(ld_transformer2d_build(ctx, ws, p, &b->attentions[j], cout, heads, depth[j],
                                          c->cross_attention_dim, c->groups, c->linear_projection));
        }
    }
    if (b->has_sampler) {
        snprintf(p, sizeof p, "%s.%d.%s.0.", kind, i, up ? "upsamplers" : "downsamplers");
        if (up) LD_TRY(ld_upsample_build(ctx, ws, p, &b->up, cout));
        else LD_TRY(ld_downsample_build(ctx, ws, p, &b->down, cout, c->downsample_padding));
    }
    return LD_OK;
}

static ld_status build_all(ld_ctx *ctx, ld_unet2d *u, ld_weights *ws) {
    const unet_config *c = &u->cfg;
    const int c0 = c->block_out_channels[0], clast = c->block_out_channels[c->nblocks - 1];
    LD_TRY(ld_get_conv(ctx, ws, &u->conv_in, "", "conv_in", c0, c->in_channels, c->conv_in_kernel));
    LD_TRY(ld_get_linear(ctx, ws, &u->time_linear_1, "", "time_embedding.linear_1", c->temb_dim, c->time_in_dim, 1));
    LD_TRY(ld_get_linear(ctx, ws, &u->time_linear_2, "", "time_embedding.linear_2", c->temb_dim, c->temb_dim, 1));
    if (c->add_time_dim) {
        LD_TRY(ld_get_linear(ctx, ws, &u->add_linear_1, "", "add_embedding.linear_1", c->temb_dim, c->add_in_dim, 1));
        LD_TRY(ld_get_linear(ctx, ws, &u->add_linear_2, "", "add_embedding.linear_2", c->temb_dim, c->temb_dim, 1));
    }
    for (int i = 0; i < c->nblocks; i++) LD_TRY(build_block(ctx, ws, c, &u->down[i], "down_blocks", i, 0));
    if (c->has_mid) {
        for (int j = 0; j < 2; j++) {
            char p[64];
            snprintf(p, sizeof p, "mid_block.resnets.%d.", j);
            LD_TRY(ld_resnet_build(ctx, ws, p, &u->mid_resnets[j], clast, clast, c->temb_dim, c->groups, c->eps,
                                   c->mid_scale));
        }
        LD_TRY(ld_transformer2d_build(ctx, ws, "mid_block.attentions.0.", &u->mid_attention, clast,
                                      c->heads[c->nblocks - 1], c->mid_depth, c->cross_attention_dim, c->groups,
                                      c->linear_projection));
    }
    for (int i = 0; i < c->nblocks; i++) LD_TRY(build_block(ctx, ws, c, &u->up[i], "up_blocks", i, 1));
    LD_TRY(ld_get_norm(ctx, ws, &u->conv_norm_out, "", "conv_norm_out", c0));
    if (c0 % c->groups)
        return ld_fail(ctx, LD_ERR_MODEL, "conv_norm_out: %d channels are not divisible by norm_num_groups %d", c0,
                       c->groups);
    return ld_get_conv(ctx, ws, &u->conv_out, "", "conv_out", c->out_channels, c0, c->conv_out_kernel);
}

static ld_status build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws, int own_ws,
                       ld_unet2d **out) {
    *out = NULL;
    ld_unet2d *u;
    LD_TRY(ld_calloc(ctx, (void **)&u, 1, sizeof *u, "UNet2DConditionModel"));
    ld_arena_init(&u->arena, 0);
    ld_status st = ld_unet2d_parse_config(ctx, where, config, &u->cfg);
    if (st == LD_OK && (st = build_all(ctx, u, ws)) != LD_OK)
        ld_prefix_error(ctx, "%s: ", where);
    if (st != LD_OK) {
        ld_unet2d_free(u);
        return st;
    }
    u->ws = ws;
    u->owns_ws = own_ws;
    *out = u;
    return LD_OK;
}

ld_status ld_unet2d_build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws, ld_unet2d **out) {
    return build(ctx, where, config, ws, 0, out);
}

void ld_unet2d_own_weights(ld_unet2d *u) { u->owns_ws = 1; }

ld_status ld_unet2d_load(ld_ctx *ctx, const char *unet_dir, const char *variant, ld_unet2d **out) {
    return ld_unet2d_load_lora(ctx, unet_dir, variant, NULL, 0, out);
}

ld_status ld_unet2d_load_lora(ld_ctx *ctx, const char *unet_dir, const char *variant, const ld_lora_ref *loras,
                              int nloras, ld_unet2d **out) {
    *out = NULL;
    ld_component_files f;
    LD_TRY(ld_component_files_open(ctx, unet_dir, variant, &f));
    ld_status st = ld_lora_merge(ctx, f.ws, LD_LORA_UNET, loras, nloras);
    if (st == LD_OK) st = build(ctx, f.where, f.config, f.ws, 1, out); /* the model owns the weights */
    ld_component_files_close(&f, st == LD_OK);
    return st;
}

ld_status ld_unet2d_record(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder) {
    ld_unet2d *u;
    LD_TRY(build(ctx, where, config, recorder, 0, &u));
    ld_unet2d_free(u);
    return LD_OK;
}

const ld_model_type ld_unet2d_model_type = {
    .class_name = "UNet2DConditionModel",
    .weights_file = "diffusion_pytorch_model.safetensors",
    .record = ld_unet2d_record,
};

void ld_unet2d_free(ld_unet2d *u) {
    if (!u) return;
    for (int i = 0; i < UNET_MAX_BLOCKS; i++)
        for (int j = 0; j < UNET_MAX_LAYERS; j++) {
            ld_transformer2d_free(&u->down[i].attentions[j]);
            ld_transformer2d_free(&u->up[i].attentions[j]);
        }
    ld_transformer2d_free(&u->mid_attention);
    if (u->owns_ws) ld_weights_free(u->ws);
    ld_arena_free(&u->arena);
    free(u);
}

int ld_unet2d_in_channels(const ld_unet2d *u) { return u->cfg.in_channels; }
int ld_unet2d_out_channels(const ld_unet2d *u) { return u->cfg.out_channels; }
int ld_unet2d_sample_size(const ld_unet2d *u) { return u->cfg.sample_size; }
int ld_unet2d_cross_attention_dim(const ld_unet2d *u) { return u->cfg.cross_attention_dim; }
int ld_unet2d_text_embeds_dim(const ld_unet2d *u) { return u->cfg.text_embeds_dim; }
int ld_unet2d_addition_time_embed_dim(const ld_unet2d *u) { return u->cfg.add_time_dim; }
int ld_unet2d_num_time_ids(const ld_unet2d *u) { return u->cfg.add_time_dim ? 6 : 0; }
size_t ld_unet2d_activation_bytes(const ld_unet2d *u) { return u->arena.peak; }

/* ---- forward ---- */

typedef struct {
    float *x;
    int C, H, W;
} skip_t;

/* emb = time_embedding(sinusoid(t)) [+ add_embedding(cat(text_embeds, sinusoid(time_ids)))],
 * returned as SiLU(emb): every ResNet applies SiLU before its time_emb_proj. */
static ld_status time_embedding(ld_ctx *ctx, ld_unet2d *u, int B, const float *timesteps, const float *text_embeds,
                                const float *time_ids, float *emb_act) {
    const unet_config *c = &u->cfg;
    ld_arena *a = &u->arena;
    size_t mark = ld_arena_mark(a);
    float *sin_t, *hidden;
    LD_ARENA_F32(sin_t, ctx, a, (int64_t)B * c->time_in_dim);
    LD_ARENA_F32(hidden, ctx, a, (int64_t)B * c->temb_dim);
    ld_timestep_embedding(sin_t, timesteps, B, c->time_in_dim, c->flip_sin_to_cos, c->freq_shift, 1.0f, 10000.0f);
    ld_linear(hidden, sin_t, B, &u->time_linear_1.w, &u->time_linear_1.b);
    ld_silu(hidden, (int64_t)B * c->temb_dim);
    ld_linear(emb_act, hidden, B, &u->time_linear_2.w, &u->time_linear_2.b);

    if (c->add_time_dim) {
        /* add_embeds = [text_embeds | sinusoid(id_0) | ... | sinusoid(id_5)] per sample */
        const int P = c->add_in_dim, T = c->text_embeds_dim;
        float *add_in, *sin_ids, *aug;
        LD_ARENA_F32(add_in, ctx, a, (int64_t)B * P);
        LD_ARENA_F32(sin_ids, ctx, a, (int64_t)B * 6 * c->add_time_dim);
        LD_ARENA_F32(aug, ctx, a, (int64_t)B * c->temb_dim);
        ld_timestep_embedding(sin_ids, time_ids, (int64_t)B * 6, c->add_time_dim, c->flip_sin_to_cos, c->freq_shift,
                              1.0f, 10000.0f);
        for (int b = 0; b < B; b++) {
            memcpy(add_in + (int64_t)b * P, text_embeds + (int64_t)b * T, sizeof(float) * T);
            memcpy(add_in + (int64_t)b * P + T, sin_ids + (int64_t)b * 6 * c->add_time_dim,
                   sizeof(float) * 6 * c->add_time_dim);
        }
        ld_linear(hidden, add_in, B, &u->add_linear_1.w, &u->add_linear_1.b);
        ld_silu(hidden, (int64_t)B * c->temb_dim);
        ld_linear(aug, hidden, B, &u->add_linear_2.w, &u->add_linear_2.b);
        ld_add(emb_act, emb_act, aug, (int64_t)B * c->temb_dim);
    }
    ld_silu(emb_act, (int64_t)B * c->temb_dim);
    ld_arena_reset(a, mark);
    return LD_OK;
}

/* Elements of the largest h the mid block and up path produce (for the two
 * ping-pong buffers): walks the skip stack as the up path will. */
static int64_t up_path_max(const ld_unet2d *u, const skip_t *skips, int nskip, int B) {
    const unet_config *c = &u->cfg;
    int64_t m = (int64_t)B * skips[nskip - 1].C * skips[nskip - 1].H * skips[nskip - 1].W;
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &u->up[i];
        nskip -= b->nlayers;
        const skip_t *s = &skips[nskip];
        int64_t n = (int64_t)B * b->cout * s->H * s->W;
        if (n > m) m = n;
        if (b->has_sampler) n = (int64_t)B * b->cout * skips[nskip - 1].H * skips[nskip - 1].W;
        if (n > m) m = n;
    }
    return m;
}

/* Between blocks the forward polls the caller's cancel callback (ld_check_cancel). */
#define WHERE "U-Net forward"

static ld_status forward(ld_ctx *ctx, ld_unet2d *u, const float *sample, int B, int H, int W, const float *timesteps,
                         const float *context, int L, const float *text_embeds, const float *time_ids, float *out) {
    const unet_config *c = &u->cfg;
    ld_arena *a = &u->arena;
    skip_t skips[1 + UNET_MAX_BLOCKS * (UNET_MAX_LAYERS + 1)];
    int nskip = 0;

    /* 1. time (+ text_time) embedding */
    float *emb_act;
    LD_ARENA_F32(emb_act, ctx, a, (int64_t)B * c->temb_dim);
    LD_TRY(time_embedding(ctx, u, B, timesteps, text_embeds, time_ids, emb_act));

    /* 2. conv_in (after 2x - 1 when center_input_sample) */
    const float *x = sample;
    if (c->center_input_sample) {
        int64_t n = (int64_t)B * c->in_channels * H * W;
        float *xc;
        LD_ARENA_F32(xc, ctx, a, n);
        for (int64_t i = 0; i < n; i++) xc[i] = 2.0f * sample[i] - 1.0f;
        x = xc;
    }
    const int c0 = c->block_out_channels[0];
    float *h;
    LD_ARENA_F32(h, ctx, a, (int64_t)B * c0 * H * W);
    ld_conv2d_params pin = ld_conv2d_params_make(1, c->conv_in_kernel / 2);
    ld_conv2d(h, x, B, c->in_channels, H, W, &u->conv_in.w, &u->conv_in.b, &pin);
    skips[nskip++] = (skip_t){h, c0, H, W};

    /* 3. down blocks: every resnet(+attention) output and every downsampler output is a skip */
    int C = c0;
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &u->down[i];
        for (int j = 0; j < b->nlayers; j++) {
            float *o;
            LD_ARENA_F32(o, ctx, a, (int64_t)B * b->cout * H * W);
            LD_TRY(ld_resnet_forward(ctx, a, &b->resnets[j], o, h, B, H, W, emb_act));
            LD_TRY(ld_check_cancel(ctx, WHERE));
            if (b->cross_attn)
                LD_TRY(ld_transformer2d_forward(ctx, a, &b->attentions[j], o, B, (int64_t)H * W, context, L));
            h = o;
            C = b->cout;
            skips[nskip++] = (skip_t){h, C, H, W};
        }
        if (b->has_sampler) {
            int Ho, Wo;
            ld_downsample_out_size(&b->down, H, W, &Ho, &Wo);
            float *o;
            LD_ARENA_F32(o, ctx, a, (int64_t)B * C * Ho * Wo);
            LD_TRY(ld_downsample_forward(ctx, a, &b->down, o, h, B, H, W));
            LD_TRY(ld_check_cancel(ctx, WHERE));
            h = o;
            H = Ho;
            W = Wo;
            skips[nskip++] = (skip_t){h, C, H, W};
        }
    }

    /* Two ping-pong buffers for the mid block and the up path */
    int64_t maxh = up_path_max(u, skips, nskip, B);
    float *pp[2];
    LD_ARENA_F32(pp[0], ctx, a, maxh);
    LD_ARENA_F32(pp[1], ctx, a, maxh);
    int cur = 0;

    /* 4. mid block: resnet, transformer, resnet */
    if (c->has_mid) {
        LD_TRY(ld_resnet_forward(ctx, a, &u->mid_resnets[0], pp[0], h, B, H, W, emb_act));
        LD_TRY(ld_transformer2d_forward(ctx, a, &u->mid_attention, pp[0], B, (int64_t)H * W, context, L));
        LD_TRY(ld_resnet_forward(ctx, a, &u->mid_resnets[1], pp[1], pp[0], B, H, W, emb_act));
        LD_TRY(ld_check_cancel(ctx, WHERE));
        h = pp[1];
        cur = 1;
    }

    /* 5. up blocks: each layer takes cat([h, skip]) with the skips popped last-in-first-out */
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &u->up[i];
        for (int j = 0; j < b->nlayers; j++) {
            const skip_t *s = &skips[--nskip];
            if (C + s->C != b->resnets[j].cin)
                return ld_fail(ctx, LD_ERR_INTERNAL, "up_blocks.%d.resnets.%d: %d + %d skip channels, expected %d", i,
                               j, C, s->C, b->resnets[j].cin);
            size_t mark = ld_arena_mark(a);
            float *cat;
            LD_ARENA_F32(cat, ctx, a, (int64_t)B * (C + s->C) * H * W);
            ld_concat_channels(cat, h, C, s->x, s->C, B, (int64_t)H * W);
            float *o = pp[cur ^= 1];
            LD_TRY(ld_resnet_forward(ctx, a, &b->resnets[j], o, cat, B, H, W, emb_act));
            ld_arena_reset(a, mark);
            LD_TRY(ld_check_cancel(ctx, WHERE));
            if (b->cross_attn)
                LD_TRY(ld_transformer2d_forward(ctx, a, &b->attentions[j], o, B, (int64_t)H * W, context, L));
            h = o;
            C = b->cout;
        }
        if (b->has_sampler) {
            /* nearest x2, or to the next skip's size when the latent is not divisible */
            const skip_t *next = &skips[nskip - 1];
            float *o = pp[cur ^= 1];
            LD_TRY(ld_upsample_forward(ctx, a, &b->up, o, h, B, H, W, next->H, next->W));
            LD_TRY(ld_check_cancel(ctx, WHERE));
            h = o;
            H = next->H;
            W = next->W;
        }
    }

    /* 6. out = conv_out(SiLU(conv_norm_out(h))) */
    float *t;
    LD_ARENA_F32(t, ctx, a, (int64_t)B * C * H * W);
    ld_group_norm_silu(t, h, B, C, (int64_t)H * W, c->groups, c->eps, &u->conv_norm_out.w, &u->conv_norm_out.b);
    ld_conv2d_params pout = ld_conv2d_params_make(1, c->conv_out_kernel / 2);
    ld_conv2d(out, t, B, C, H, W, &u->conv_out.w, &u->conv_out.b, &pout);
    return LD_OK;
}

/* Arena use walked without running: `cur` holds what stays allocated, `peak`
 * the most seen with a block's scratch on top. In floats. */
typedef struct {
    double cur, peak;
} mem_walk;

static void walk_scratch(mem_walk *m, double floats) {
    if (m->cur + floats > m->peak) m->peak = m->cur + floats;
}
static void walk_keep(mem_walk *m, double floats) {
    m->cur += floats;
    walk_scratch(m, 0);
}

double ld_unet2d_activation_estimate(const ld_unet2d *u, int B, int H, int W, int L) {
    const unet_config *c = &u->cfg;
    mem_walk m = {0, 0};
    skip_t skips[1 + UNET_MAX_BLOCKS * (UNET_MAX_LAYERS + 1)];
    int nskip = 0;
    walk_keep(&m, (double)B * c->temb_dim);
    walk_scratch(&m, (double)B * (c->time_in_dim + 3 * c->temb_dim + c->add_in_dim + 6 * c->add_time_dim));
    if (c->center_input_sample) walk_keep(&m, (double)B * c->in_channels * H * W);
    int C = c->block_out_channels[0];
    walk_keep(&m, (double)B * C * H * W);
    skips[nskip++] = (skip_t){NULL, C, H, W};
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &u->down[i];
        for (int j = 0; j < b->nlayers; j++) {
            walk_keep(&m, (double)B * b->cout * H * W);
            walk_scratch(&m, (double)ld_resnet_scratch_floats(&b->resnets[j], B, (int64_t)H * W));
            if (b->cross_attn)
                walk_scratch(&m, (double)ld_transformer2d_scratch_floats(&b->attentions[j], B, (int64_t)H * W, L));
            C = b->cout;
            skips[nskip++] = (skip_t){NULL, C, H, W};
        }
        if (b->has_sampler) {
            int Ho, Wo;
            ld_downsample_out_size(&b->down, H, W, &Ho, &Wo);
            walk_keep(&m, (double)B * C * Ho * Wo);
            walk_scratch(&m, (double)ld_downsample_scratch_floats(&b->down, B, H, W));
            H = Ho;
            W = Wo;
            skips[nskip++] = (skip_t){NULL, C, H, W};
        }
    }
    walk_keep(&m, 2.0 * (double)up_path_max(u, skips, nskip, B));
    if (c->has_mid) {
        walk_scratch(&m, (double)ld_resnet_scratch_floats(&u->mid_resnets[0], B, (int64_t)H * W));
        walk_scratch(&m, (double)ld_transformer2d_scratch_floats(&u->mid_attention, B, (int64_t)H * W, L));
        walk_scratch(&m, (double)ld_resnet_scratch_floats(&u->mid_resnets[1], B, (int64_t)H * W));
    }
    for (int i = 0; i < c->nblocks; i++) {
        const unet_block *b = &u->up[i];
        for (int j = 0; j < b->nlayers; j++) {
            const skip_t *s = &skips[--nskip];
            walk_scratch(&m, (double)B * (C + s->C) * H * W +
                                 (double)ld_resnet_scratch_floats(&b->resnets[j], B, (int64_t)H * W));
            if (b->cross_attn)
                walk_scratch(&m, (double)ld_transformer2d_scratch_floats(&b->attentions[j], B, (int64_t)H * W, L));
            C = b->cout;
        }
        if (b->has_sampler) {
            const skip_t *next = &skips[nskip - 1];
            walk_scratch(&m, (double)B * C * next->H * next->W);
            H = next->H;
            W = next->W;
        }
    }
    walk_scratch(&m, (double)B * C * H * W);
    return m.peak * sizeof(float);
}

ld_status ld_unet2d_forward(ld_ctx *ctx, ld_unet2d *u, const ld_unet2d_inputs *in, float *out) {
    if (!in) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unet forward: no inputs");
    const int B = in->B, H = in->H, W = in->W, L = in->L;
    const float *sample = in->sample, *timesteps = in->timesteps, *encoder_hidden_states = in->encoder_hidden_states;
    const float *text_embeds = in->text_embeds, *time_ids = in->time_ids;
    if (ld_weights_is_recorder(u->ws))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unet forward: the model was built for recording only");
    if (B < 1 || H < 1 || W < 1 || L < 1 || B > 4096 || H > 16384 || W > 16384 || L > 1 << 20)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unet forward: bad sizes B=%d H=%d W=%d L=%d", B, H, W, L);
    if (!sample || !timesteps || !encoder_hidden_states || !out)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unet forward: sample, timesteps, encoder_hidden_states and out "
                                                     "are required");
    if (u->cfg.add_time_dim && (!text_embeds || !time_ids))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "unet forward: this U-Net has a text_time addition embedding: text_embeds [B, %d] and "
                       "time_ids [B, 6] are required",
                       u->cfg.text_embeds_dim);
    size_t mark = ld_arena_mark(&u->arena);
    /* The first pass at a size runs in one block of the estimate (at least
     * the peak, test_memory_estimate), so its pages are touched once; if the
     * block cannot be had the arena grows by chunks as before. */
    if (mark == 0) ld_arena_reserve(NULL, &u->arena, (size_t)ld_unet2d_activation_estimate(u, B, H, W, L));
    ld_status st = forward(ctx, u, sample, B, H, W, timesteps, encoder_hidden_states, L, text_embeds, time_ids, out);
    ld_arena_reset(&u->arena, mark);
    /* After a first pass the arena knows its peak: make it one block so later
     * passes at this size allocate nothing. */
    if (st == LD_OK) st = ld_arena_reserve(ctx, &u->arena, u->arena.peak);
    return st;
}
