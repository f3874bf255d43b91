/* A training run of an SDXL-family U-Net on a dataset (`leandiff train`):
 * full fine-tuning (f32 master weights) or LoRA on the attention
 * projections (optionally every transformer linear, and the ResNets' and
 * samplers' convolutions: LoCon), with the habits of diffusers' train_text_to_image_sdxl.py
 * and kohya's sd-scripts:
 *
 *   cache latents and captions (train_cache.h), free the VAE and the text
 *   encoders, then per optimizer step: `accum` micro-batches of `batch`
 *   images (epoch-shuffled order), uniform timesteps in [0, 1000), Gaussian
 *   noise, the caption replaced by "" with probability caption_dropout, a
 *   random mirrored view with flip; the gradients averaged over the
 *   micro-batches, clipped to max_grad_norm, one AdamW update at the
 *   schedule's learning rate (constant, linear or cosine decay after a
 *   linear warm-up). With buckets, the micro-batches are whole batches of
 *   one bucket (kohya's order: shuffled within each bucket, then batches
 *   shuffled), at most `batch` images.
 *
 * Every random choice of step s comes from (seed, s) alone, so a run
 * stopped at a checkpoint and resumed ends with the same weights as one
 * that never stopped. Output folder:
 *   unet/                         the fine-tuned U-Net (diffusers layout), or
 *   pytorch_lora_weights.safetensors   the LoRA (peft/diffusers or kohya keys)
 *   checkpoint-<step>/            weights (f32) + optimizer.safetensors (moments, step)
 *   loss.csv                      step, loss (distillation: and its three terms), learning rate, seconds
 *   teacher_latents.safetensors   with prompts_file: the latents the teacher made
 *
 * With teacher_dir the run is KOALA's distillation (distill/distill_step.h):
 * model_dir is the student pipeline (`leandiff distill --init-only` makes
 * one), the teacher runs forward only, the feature pairs are those of
 * ld_student_feature_pairs.
 * Checkpoints are written to a temporary folder and renamed.
 */
#ifndef LD_TRAIN_TRAINER_H
#define LD_TRAIN_TRAINER_H

#include "leandiff.h"
#include "train/lora.h"
#include "train/train_comm.h"

#include <stdint.h>

typedef enum { LD_LR_CONSTANT = 0, LD_LR_LINEAR, LD_LR_COSINE } ld_lr_schedule;

typedef struct {
    int step, steps;   /* optimizer steps done, total */
    double loss;       /* this step's loss (mean over its micro-batches) */
    double lr;
    double seconds;    /* wall time of this step */
    const char *stage; /* "latents", "captions" while caching (step = done, steps = total), "train" */
} ld_train_progress;

typedef struct {
    const char *model_dir; /* StableDiffusionXLPipeline folder */
    const char *data_dir;
    const char *prompts_file; /* instead of data_dir, with teacher_dir: data-free distillation, the teacher
                               * generates each prompt's latents (teacher_latents.h) */
    int gen_steps;            /* their sampling: steps (0: the teacher's default), guidance (< 0: default), */
    float gen_cfg;
    const char *gen_sampler;  /* sampler (NULL: euler) */
    const char *out_dir;
    const char *resume;    /* a checkpoint folder of an earlier run, or NULL */
    int resolution;        /* square crops; default 1024 */
    int random_crop, flip, skip_bad;
    int bucket;            /* aspect-ratio buckets (kohya's enable_bucket; train_cache.h): batches of one size */
    int bucket_min, bucket_max, bucket_step; /* their sizes (defaults resolution/4, resolution*2, 64) */
    int batch, accum, steps, save_every;
    uint64_t seed;
    float lr, beta1, beta2, eps, weight_decay, max_grad_norm, caption_dropout;
    ld_lr_schedule schedule;
    int warmup;            /* steps of linear warm-up */
    ld_precision precision;
    int teacher_precision_set;  /* else the teacher runs at `precision` */
    ld_precision teacher_precision;
    ld_dtype save_dtype;   /* of the final weights (checkpoints are f32) */
    const char *teacher_dir; /* distillation (KOALA): the teacher pipeline or U-Net folder; NULL: plain training */
    float lambda_task, lambda_out, lambda_feat; /* distillation loss weights (default 1) */
    const char *distill_features; /* ld_feature_set_parse: "attn1" (KOALA's, default), "attn2", "ff", "<kind>-all",
                                   * "blocks" (BK-SDM's block outputs) */
    int lora_rank;         /* 0: full fine-tuning */
    float lora_alpha;      /* 0: = rank */
    int lora_all_linear;   /* adapters on every linear of the transformers (kohya's), not only attention's */
    int lora_conv_rank;    /* >0: also the ResNets' and samplers' convolutions (kohya's LoRA-C3Lier) */
    float lora_conv_alpha; /* 0: = lora_conv_rank */
    ld_lora_format lora_format;
    /* data-parallel across processes (train_comm.h), or NULL: this process alone. Each process
     * takes `batch` samples of every micro-batch: the global batch is batch x accum x size. Only
     * process 0 writes checkpoints, loss.csv and the weights; every process can resume. */
    const ld_train_comm *comm;
    double bucket_mb;      /* gradient bucket size for the sums (0: 25 MB, as PyTorch DDP's bucket_cap_mb) */
    /* after each cached image / text batch and each optimizer step (with several processes: the
     * losses are the global batch's); nonzero on any process stops the run (a checkpoint of the
     * last completed step is written first) */
    int (*progress)(void *user, const ld_train_progress *p);
    void *user;
} ld_train_options;

/* The documented defaults: resolution 1024, batch 1, accum 1, steps 1000,
 * lr 1e-5 (1e-4 with LoRA: set by the caller), AdamW (0.9, 0.999, 1e-8,
 * 1e-2), max_grad_norm 1, constant schedule, f32, save f32, peft. */
void ld_train_options_init(ld_train_options *o);

ld_status ld_train_run(ld_ctx *ctx, const ld_train_options *o);

/* The learning rate of step s (0-based) of the schedule. */
double ld_train_lr(const ld_train_options *o, int s);

#endif
