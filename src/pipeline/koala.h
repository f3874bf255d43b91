/* The SDXL-family text-to-image pipeline (KOALA-700M/1B, KOALA-Lightning,
 * SDXL, SSD-1B, Vega: any StableDiffusionXLPipeline folder; also
 * StableDiffusionXLInpaintPipeline folders, whose U-Net may take 2C + 1
 * input channels: latents, mask, masked-image latents), registered as
 * family "sdxl" in pipeline_registry.c and used through ld_pipeline_open /
 * ld_generate (include/leandiff.h). It computes what diffusers'
 * StableDiffusionXLPipeline computes (specs/koala.md §3, §4, §6):
 *
 *   ids1, ids2      = tokenizer(prompt), tokenizer_2(prompt)   (77 ids each)
 *   prompt_embeds   = concat(text_encoder(ids1).hidden_states[-2],
 *                            text_encoder_2(ids2).hidden_states[-2])   [1,77,768+1280]
 *   pooled          = text_encoder_2(ids2).text_embeds                 [1,1280]
 *   uncond          = zeros when no negative prompt was given and
 *                     force_zeros_for_empty_prompt (model_index.json), else
 *                     the encoded negative prompt ("" is encoded)
 *   time_ids        = (H, W, 0, 0, H, W)
 *   x               = noise * init_noise_sigma
 *   per step        : eps = unet([x;x]/sqrt(s^2+1), t, [uncond;cond]);
 *                     eps = eps_u + g (eps_c - eps_u)  (CFG only when g > 1);
 *                     x = euler(_a) step
 *   image           = vae.decode(x / scaling_factor); u8 = rint(clamp(image/2+0.5)*255)
 *
 * Stages run one after another and release their models: the text encoders
 * are freed before the U-Net is loaded, the U-Net before the VAE.
 *
 * Defaults: KOALA-Lightning (decided from the model's files, never the
 * folder name: see koala_defaults.h) 10 steps at CFG 3.5 with trailing
 * timestep spacing; other models 25 steps at CFG 7.5; size unet sample_size *
 * 8; sampler "euler" ("euler_a" also).
 *
 * Replay and dump (params->replay_noise / params->dump) use the key names of
 * the reference pipeline cases (testdata/README.md): latents0 (noise before
 * scaling) and step{i}.noise (euler_a) are read from the replay file; a dump
 * holds them too (so a dump can be replayed) with ids1, ids2, prompt_embeds,
 * pooled_prompt_embeds, negative_prompt_embeds, negative_pooled_prompt_embeds,
 * time_ids, timesteps, step{i}.latents (after step i), final_latents, image
 * and image_u8, and the case metadata (prompt, steps, guidance_scale, ...).
 * Image-to-image and inpainting (koala_init.h, docs/generate.md) add
 * encode_noise and masked_encode_noise (read) and image_latents,
 * mask_latents and masked_image_latents (dumped).
 */
#ifndef LD_PIPELINE_KOALA_H
#define LD_PIPELINE_KOALA_H

#include "pipeline/pipeline.h"

extern const ld_pipeline_impl ld_koala_pipeline;

#endif
