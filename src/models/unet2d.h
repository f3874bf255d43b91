/* UNet2DConditionModel (diffusers), config-driven: SDXL, KOALA-700M/1B,
 * KOALA-Lightning, SSD-1B, Vega ... are all the same code, built from
 * unet/config.json (see specs/koala.md §2, §4.4, §5.1, §7).
 *
 *     ld_unet2d *u;
 *     LD_TRY(ld_unet2d_load(ctx, "model/unet", "fp16", &u));   // variant may be NULL
 *     ld_unet2d_inputs in = {.B = B, .H = h, .W = w, .sample = x, .timesteps = t,
 *                            .encoder_hidden_states = ctx_states, .L = 77,
 *                            .text_embeds = text_embeds, .time_ids = time_ids};
 *     LD_TRY(ld_unet2d_forward(ctx, u, &in, eps));
 *     ld_unet2d_free(u);
 *
 * Weights stay in the (mmapped) safetensors in their stored dtype. Activations
 * come from an arena owned by the model: the first forward at a resolution
 * sizes it, later forwards at the same or smaller size allocate nothing.
 * A model is not thread-safe (one forward at a time).
 */
#ifndef LD_MODELS_UNET2D_H
#define LD_MODELS_UNET2D_H

#include "io/weights.h"
#include "models/model_registry.h"
#include <jansson.h>

typedef struct ld_unet2d ld_unet2d;

/* unet_dir/config.json + weights from ld_weights_open_dir(unet_dir, variant). */
ld_status ld_unet2d_load(ld_ctx *ctx, const char *unet_dir, const char *variant, ld_unet2d **out);
/* The same with LoRA files merged into its weights (models/lora_merge.h). */
ld_status ld_unet2d_load_lora(ld_ctx *ctx, const char *unet_dir, const char *variant, const ld_lora_ref *loras,
                              int nloras, ld_unet2d **out);

/* Builds from a parsed config and a weight source. `where` names the config
 * in messages. ws is borrowed (as every model's build does): it must outlive
 * the model, unless ld_unet2d_own_weights hands it over (what _load does).
 * With a recording source (init-random) the model only records tensor names
 * and shapes and cannot run. */
ld_status ld_unet2d_build(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *ws, ld_unet2d **out);
/* The model frees its weight source when it is freed. */
void ld_unet2d_own_weights(ld_unet2d *u);
void ld_unet2d_free(ld_unet2d *u);

/* Config values the pipeline needs. */
int ld_unet2d_in_channels(const ld_unet2d *u);
int ld_unet2d_out_channels(const ld_unet2d *u);
int ld_unet2d_sample_size(const ld_unet2d *u);         /* latent size; x8 = default image size */
int ld_unet2d_cross_attention_dim(const ld_unet2d *u); /* Dctx of encoder_hidden_states (2048 for SDXL) */
/* text_time addition embedding: width of text_embeds (P = projection_class_embeddings_input_dim
 * - 6 * addition_time_embed_dim, 1280 for SDXL) and the per-id time dim (256); 0 if none. */
int ld_unet2d_text_embeds_dim(const ld_unet2d *u);
int ld_unet2d_addition_time_embed_dim(const ld_unet2d *u);
/* Number of time_ids per sample expected (6 for SDXL). */
int ld_unet2d_num_time_ids(const ld_unet2d *u);

/* The inputs of one evaluation (all borrowed). */
typedef struct {
    int B, H, W;                        /* batch, latent height and width (any size >= 1) */
    const float *sample;                /* [B, in_channels, H, W] */
    const float *timesteps;             /* [B] */
    const float *encoder_hidden_states; /* [B, L, cross_attention_dim] */
    int L;                              /* context tokens */
    const float *text_embeds;           /* [B, P] (NULL only if the model has no addition embedding) */
    const float *time_ids;              /* [B, 6] (same) */
} ld_unet2d_inputs;

/* One evaluation of the noise prediction: out [B, out_channels, H, W].
 * Fails only on bad arguments or out of memory. */
ld_status ld_unet2d_forward(ld_ctx *ctx, ld_unet2d *u, const ld_unet2d_inputs *in, float *out);

/* Bytes of activation memory reserved by the last forward (arena peak). */
size_t ld_unet2d_activation_bytes(const ld_unet2d *u);
/* The bytes of activation memory a forward of B x H x W latents with L
 * context tokens will take, computed from the config without running it (the
 * walk mirrors the forward's arena use): for refusing a size that does not
 * fit before any work starts. */
double ld_unet2d_activation_estimate(const ld_unet2d *u, int B, int H, int W, int L);

/* init-random / registry entry: records every tensor the config implies. */
ld_status ld_unet2d_record(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder);
extern const ld_model_type ld_unet2d_model_type;

#endif
