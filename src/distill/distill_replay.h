/* Replays a reference distillation case (testdata README, "Distillation
 * cases"): the student is built from the teacher by the case's
 * student_config (distill/student.h), the feature pairs, loss weights and
 * AdamW settings come from its metadata, the batches from its step{s}.*
 * tensors. The dump holds student_init.<name>, per step noisy, pred,
 * teacher_pred, loss, loss_task, loss_out, loss_feat, feat_student.<m>,
 * feat_teacher.<m>, then grad.<name> of the first step and param.<name>
 * after the last, under the case's key names.
 *
 *     LD_TRY(ld_distill_replay(ctx, "$MODELS/sdxl-teacher-tiny/unet", NULL, "distill.safetensors", "out.st"));
 */
#ifndef LD_DISTILL_DISTILL_REPLAY_H
#define LD_DISTILL_DISTILL_REPLAY_H

#include "base/status.h"

/* teacher_dir: a pipeline folder (its unet/ is the teacher, its scheduler/
 * the noise schedule) or a U-Net folder (SDXL's training schedule).
 * student_cfg: a config.json for the student, or NULL for the case's
 * student_config. */
ld_status ld_distill_replay(ld_ctx *ctx, const char *teacher_dir, const char *student_cfg, const char *case_path,
                            const char *dump_path);

#endif
