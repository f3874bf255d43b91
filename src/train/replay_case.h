/* The parts of a reference case (testdata README, "Training cases" and
 * "Distillation cases") that every replay reads: step s's batch, the AdamW
 * settings of the metadata, and the dump of a parameter set under the
 * checkpoint's names. Used by train_replay.c and distill/distill_replay.c. */
#ifndef LD_TRAIN_REPLAY_CASE_H
#define LD_TRAIN_REPLAY_CASE_H

#include "io/safetensors.h"
#include "train/train_step.h"

typedef struct {
    ld_tensor x0, noise, ts, ctx, text, ids; /* owned copies (f32; timesteps I64) */
} ld_replay_batch;

/* step{s}.x0, .noise, .timesteps, .encoder_hidden_states, .text_embeds, .time_ids -> b (views into rb). */
ld_status ld_replay_read_batch(ld_ctx *ctx, const ld_safetensors *cs, const char *path, int s, ld_replay_batch *rb,
                               ld_train_batch *b);
void ld_replay_batch_free(ld_replay_batch *b);
/* A number of the metadata (error naming the key). */
ld_status ld_replay_meta_num(ld_ctx *ctx, const ld_safetensors *cs, const char *path, const char *key, double *out);
/* lr, betas (a JSON list), eps, weight_decay, steps. */
ld_status ld_replay_settings(ld_ctx *ctx, const ld_safetensors *cs, const char *path, double *lr, double betas[2],
                             double *eps, double *wd, int *steps);
/* prefix + every tensor name of p, with the values of data (laid out like p). */
ld_status ld_replay_dump_params(ld_ctx *ctx, ld_st_builder *out, const ld_train_params *p, const float *data,
                                const char *prefix);

#endif
