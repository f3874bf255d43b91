/* Replays a reference training case (testdata README, "Training cases"):
 * the batches come from the case's step{s}.* tensors and the AdamW settings
 * from its metadata; the dump holds step{s}.noisy, step{s}.pred,
 * step{s}.loss, grad.<name> of the first step and param.<name> after the
 * last, under the checkpoint's own names, so it compares key by key with the
 * case. `leandiff train --replay` and the tests call it.
 *
 *     LD_TRY(ld_train_replay(ctx, "$MODELS/koala-700m-tiny", "train/koala-700m-tiny.safetensors", "out.safetensors"));
 */
#ifndef LD_TRAIN_TRAIN_REPLAY_H
#define LD_TRAIN_TRAIN_REPLAY_H

#include "base/status.h"

/* model_dir: a pipeline folder (its unet/ and scheduler/). */
ld_status ld_train_replay(ld_ctx *ctx, const char *model_dir, const char *case_path, const char *dump_path);

#endif
