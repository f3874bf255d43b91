/* KOALA's student U-Net made from an SDXL-layout teacher (arXiv 2312.04005,
 * after BK-SDM): fewer ResNet/Transformer pairs per block and shallower
 * Transformer stacks, initialised with the teacher's weights.
 *
 *     json_t *scfg;
 *     LD_TRY(ld_student_config_preset(ctx, "unet/config.json", tcfg, "koala-700m", &scfg));
 *     LD_TRY(ld_student_init_write(ctx, "unet/config.json", tcfg, teacher_weights,
 *                                  "student", scfg, "out/diffusion_pytorch_model.safetensors"));
 *
 * The copy rule (as ../shared/testdata/README.md states it for the
 * reference cases, generalised to any depths):
 *   - down block b, layer r (resnets.r, attentions.r) <- the teacher's layer r
 *     (the student keeps the first layers; the downsampler is copied);
 *   - up block b of L layers from one of T layers: layers 0..L-2 <- 0..L-2
 *     and layer L-1 <- T-1 (the last layer takes the skip of the previous
 *     down block, so only it lines up with the teacher's last);
 *   - a Transformer2DModel of depth k from one of depth D keeps its norm,
 *     proj_in and proj_out and the transformer blocks 0..k-2 and D-1;
 *   - the mid block (when the student has one), conv_in, conv_out,
 *     conv_norm_out, time_embedding and add_embedding are copied whole.
 * A pair that does not fit (other widths or block types, more layers or a
 * deeper Transformer stack than the teacher, a mid block the teacher lacks)
 * is an error naming the block; any tensor whose shape still differs is an
 * error naming the tensor.
 */
#ifndef LD_DISTILL_STUDENT_H
#define LD_DISTILL_STUDENT_H

#include "io/weights.h"

#include <jansson.h>
#include <stddef.h>

/* Presets of the KOALA paper, applied to the teacher's config: one layer per
 * block, the deepest Transformer stacks cut to half the teacher's (koala-700m,
 * 10 -> 5 for SDXL, no mid block) or 60 % of it (koala-1b, 10 -> 6, mid block
 * kept); everything else as the teacher. From SDXL-base's config they give
 * exactly the released KOALA configs. *out is a new JSON object. */
ld_status ld_student_config_preset(ld_ctx *ctx, const char *teacher_where, const json_t *teacher_cfg,
                                   const char *preset, json_t **out);
/* Is `name` one of the presets ("koala-700m", "koala-1b")? */
int ld_student_is_preset(const char *name);

/* Checks that the student can be made from the teacher (errors name the
 * block). */
ld_status ld_student_check(ld_ctx *ctx, const char *teacher_where, const json_t *teacher_cfg,
                           const char *student_where, const json_t *student_cfg);

/* The teacher tensor a student tensor is copied from, into buf (n bytes).
 * Both configs must have passed ld_student_check. */
ld_status ld_student_teacher_name(ld_ctx *ctx, const json_t *teacher_cfg, const json_t *student_cfg,
                                  const char *student_name, char *buf, size_t n);

/* Writes the student's weights (every tensor its config implies, each in the
 * teacher's dtype) to a safetensors file, atomically. */
ld_status ld_student_init_write(ld_ctx *ctx, const char *teacher_where, const json_t *teacher_cfg,
                                ld_weights *teacher, const char *student_where, const json_t *student_cfg,
                                const char *out_path);

/* Which features the feature loss pairs (docs/distill.md, "The step"):
 *   LD_FEAT_LAST   KOALA's: for every Transformer2DModel of the student, its
 *                  last transformer block's `kind` output ("attn1", "attn2"
 *                  or "ff") and the same of the last block of the teacher
 *                  stack it was made from;
 *   LD_FEAT_EVERY  every kept transformer block of the student with the
 *                  teacher block it was copied from (the layer rule);
 *   LD_FEAT_BLOCKS BK-SDM's: the output of every down block, the mid block
 *                  (when the student has one) and every up block ("down_blocks.1",
 *                  "mid_block", "up_blocks.0"); `kind` is not used. */
typedef enum { LD_FEAT_LAST = 0, LD_FEAT_EVERY, LD_FEAT_BLOCKS } ld_feature_set;

/* A --distill-features value: "attn1", "attn2", "ff" (LD_FEAT_LAST of that
 * kind), the same with "-all" (LD_FEAT_EVERY) or "blocks" (LD_FEAT_BLOCKS).
 * *kind points into a static string. */
ld_status ld_feature_set_parse(ld_ctx *ctx, const char *spec, ld_feature_set *set, const char **kind);

/* The feature pairs, in the student's module order (down, mid, up).
 * *student and *teacher are arrays of *n malloc'ed names (free with
 * ld_student_pairs_free). */
ld_status ld_student_feature_pairs(ld_ctx *ctx, const json_t *teacher_cfg, const json_t *student_cfg,
                                   ld_feature_set set, const char *kind, char ***student, char ***teacher,
                                   size_t *n);
void ld_student_pairs_free(char **student, char **teacher, size_t n);

#endif
