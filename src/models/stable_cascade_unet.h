/* StableCascadeUNet (Stable Cascade / Wuerstchen v3): Stage C "prior" and
 * Stage B "decoder" are this one class with different configs (spec
 * wuerstchen.md §5). Built from config.json; weights looked up by their
 * diffusers names (Stability single files work through the aliases of
 * stability_names.h).
 *
 *     ld_sc_unet *m;
 *     LD_TRY(ld_sc_unet_load(ctx, "stable-cascade-prior/prior", NULL, &m));
 *     ld_sc_inputs in = {.B = 2, .H = 24, .W = 24, .sample = x, .r = r,
 *                        .clip_text_pooled = pooled, .pooled_len = 1,
 *                        .clip_text = text, .text_len = 77, .clip_img = img};
 *     LD_TRY(ld_sc_unet_forward(ctx, m, &in, eps));   // eps [B, out_channels, H, W]
 *     ld_sc_unet_free(m);
 *
 * forward(sample, r, pooled, text?, img?, effnet?):
 *   t   = [emb(r), emb(0) per extra cond]                    (TimestepBlocks)
 *   c   = LN([Lin(text); Lin(pooled).view(4); Lin(img).view(4)])  (AttnBlocks)
 *   x   = LN2d(Conv1x1(PixelUnshuffle_p(sample)))
 *   x  += effnet_mapper(bilinear_ac(effnet)) + pixels_mapper(0)   (decoder)
 *   down levels (downscaler, passes over the blocks with 1x1 repeat mappers),
 *   up levels (first ResBlock of each pass takes the level's skip; x is resized
 *   bilinearly to the skip's size when they differ), upscalers,
 *   out = PixelShuffle_p(Conv1x1(LN2d(x)))                     (epsilon)
 *
 * build borrows the weight source, load owns it. Activations come from an
 * arena owned by the model: the first forward at a size plans it, later
 * forwards at the same or a smaller size allocate nothing. A model runs one
 * forward at a time on each lane (wuerstchen_blocks.h): ld_sc_unet_forward
 * on lane 0, ld_sc_unet_forward_lane on either.
 */
#ifndef LD_MODELS_STABLE_CASCADE_UNET_H
#define LD_MODELS_STABLE_CASCADE_UNET_H

#include "io/weights.h"
#include "models/model_registry.h"
#include "models/stable_cascade_config.h"
#include "models/wuerstchen_blocks.h"

typedef struct {
    char kind; /* LD_SC_RES / LD_SC_TIMESTEP / LD_SC_ATTN */
    union {
        wu_resblock res;
        wu_timestep_block ts;
        wu_attn_block attn;
    } u;
} ld_sc_block;

typedef struct {
    int nblocks;
    ld_sc_block *blocks;
    int nmaps; /* passes - 1 repeat mappers (1x1 convs) */
    ld_tensor *map_w, *map_b;
} ld_sc_stack;

typedef struct {
    ld_sc_stack down, up;     /* down_blocks.L, up_blocks.(n-1-L) */
    ld_tensor down_w, down_b; /* level L > 0: into this level (2x2 s2 conv, or 1x1) */
    ld_tensor up_w, up_b;     /* level L > 0: out of this level (2x2 s2 transposed conv, or 1x1) */
} ld_sc_level;

typedef struct {
    ld_sc_config cfg;
    ld_weights *ws; /* owned when loaded from a folder */
    int owns_ws;
    ld_tensor emb_w, emb_b;                                     /* embedding.1 */
    ld_tensor clf_w, clf_b;                                     /* clf.1 */
    ld_tensor pooled_w, pooled_b, text_w, text_b, img_w, img_b; /* clip_txt_pooled/clip_txt/clip_img_mapper */
    ld_tensor effnet_w[2], effnet_b[2];                         /* effnet_mapper.{0,2} */
    ld_tensor pixels_w[2], pixels_b[2];                         /* pixels_mapper.{0,2} */
    ld_sc_level level[LD_SC_MAX_LEVELS];
    ld_arena arena[WU_LANES];    /* activations of each lane */
    wu_cond_memo memo[WU_LANES]; /* each lane's clip conditioning of its last forward (wuerstchen_blocks.h) */
} ld_sc_unet;

/* Builds from a parsed config and a weight source (a recorder for
 * init-random); ws is borrowed and must outlive the model. */
ld_status ld_sc_unet_build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws, ld_sc_unet **out);
/* Loads <dir>/config.json and the weights of dir (variant "fp16"/"bf16"/NULL),
 * or of weights_file when it is not NULL (e.g. a stage_c.safetensors in
 * Stability naming: aliases are added automatically). */
ld_status ld_sc_unet_load(ld_ctx *ctx, const char *dir, const char *variant, const char *weights_file,
                          ld_sc_unet **out);
void ld_sc_unet_free(ld_sc_unet *m);

typedef struct {
    int64_t B, H, W; /* sample [B, in_channels, H, W] */
    const float *sample;
    const float *r;                /* timestep ratio [B] */
    const float *clip_text_pooled; /* [B, pooled_len, clip_text_pooled_in_channels] */
    int64_t pooled_len;            /* usually 1 */
    const float *clip_text;        /* prior: [B, text_len, clip_text_in_channels], else NULL */
    int64_t text_len;
    const float *clip_img; /* prior: [B, 1, clip_image_in_channels], else NULL */
    const float *effnet;   /* decoder: [B, effnet_in_channels, eh, ew], else NULL */
    int64_t eh, ew;
} ld_sc_inputs;

/* out: [B, out_channels, H, W]. Fails on inputs the config cannot take
 * (sizes not divisible by the patch size, a level becoming empty, missing
 * conditioning). */
ld_status ld_sc_unet_forward(ld_ctx *ctx, ld_sc_unet *m, const ld_sc_inputs *in, float *out);
/* The same on lane (0 or 1): a forward on each lane may run at the same time
 * (on different threads); same bits as on lane 0. */
ld_status ld_sc_unet_forward_lane(ld_ctx *ctx, ld_sc_unet *m, int lane, const ld_sc_inputs *in, float *out);
/* Bytes of activation memory the forwards so far needed (the arenas' peaks). */
size_t ld_sc_unet_activation_bytes(const ld_sc_unet *m);

extern const ld_model_type ld_model_stable_cascade_unet;

#endif
