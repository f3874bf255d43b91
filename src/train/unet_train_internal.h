/* Inside the U-Net trainer: the activations it keeps, the units of its
 * forward (one block each) and their forward/backward pairs. Shared by
 * unet_train.c (the plan, the time embedding, the step),
 * unet_train_units.c (the blocks) and unet_train_hooks.c (LoRA, taps). */
#ifndef LD_TRAIN_UNET_TRAIN_INTERNAL_H
#define LD_TRAIN_UNET_TRAIN_INTERNAL_H

#include "models/unet2d_internal.h"
#include "train/lora.h"
#include "train/unet_train.h"

/* A kept activation: the value and, during the backward, its gradient. */
typedef struct {
    float *v, *g;
    int64_t n;
    int owned; /* v is ours (not the caller's sample) */
} tr_act;

typedef enum { U_CONV_IN, U_RESNET, U_TF_IN, U_TBLOCK, U_TF_OUT, U_DOWN, U_UP, U_HEAD } tr_kind;

typedef struct {
    tr_kind kind;
    const void *m;               /* ld_resnet, ld_tblock, ld_downsample, ld_upsample (others: NULL) */
    const ld_transformer2d *tf;  /* U_TF_IN, U_TBLOCK, U_TF_OUT */
    int in, in2, out;            /* activation ids; in2: the skip (U_RESNET) or the residual (U_TF_OUT), else -1 */
    int C, C2, H, W;             /* channels of in and in2, input size */
    int Ho, Wo;                  /* output size */
} tr_unit;

/* A feature tap, kept by the forward for feature distillation: the output of
 * a transformer block's attn1, attn2 or ff (kind 0, 1, 2; before the
 * residual add) as [B * HW, C], or the output of a whole down, mid or up
 * block as [B, C, H, W]. */
#define TR_TAP_KINDS 3
typedef struct {
    const ld_tblock *block; /* NULL for a block-output tap */
    int kind;
    int blk;             /* block-output tap (BK-SDM): down block i = i, mid = n, up block i = n + 1 + i; else -1 */
    int unit;            /* the unit whose output a block-output tap keeps (set per plan) */
    char *name;          /* "down_blocks.1.attentions.0.transformer_blocks.1.attn1" */
    float *value, *grad; /* [B * HW, C]; grad: d(loss)/d(feature), set by the caller, zeroed by the forward */
    int64_t n, tokens, C;
} tr_tap;

struct ld_train_unet {
    ld_unet2d *u;
    ld_train_params p; /* master weights (empty when the base is frozen) */
    ld_lora *lora;     /* adapters, or NULL */
    json_t *config;
    ld_arena scratch; /* one unit's temporaries at a time */
    tr_act *acts;
    int nacts, acts_cap;
    tr_unit *units;
    int nunits, units_cap;
    /* the step's inputs and its time embedding (kept whole: it is small) */
    int B, H, W, L;
    const float *context;
    float *temb_in, *temb_h, *add_in, *add_h, *emb, *emb_act, *d_emb_act;
    size_t kept_bytes;
    tr_tap *taps;
    int ntaps;
    int block_end[2 * UNET_MAX_BLOCKS + 1]; /* the last unit of each block (order of tr_tap.blk), -1: none */
    int planned;      /* the units and activations of (B, H, W, L) are built and reused */
    int forward_done; /* a forward ran that no backward has reversed yet */
    float **pool;     /* gradient buffers returned after use, reused by size (no page faults per step) */
    int64_t *pool_n;
    int npool, pool_cap;
    /* the order in which the backward finishes the parameters' gradients:
     * seq_of[i], the position of the block that last wrote tensor i's
     * gradient (written during a backward, then copied to order) */
    int has_precision; /* ld_train_unet_set_precision was called */
    ld_precision precision;
    int bw_seq;
    int *seq_of, *order;
    int order_known;
    ld_status (*block_done)(ld_ctx *ctx, void *user, int seq);
    void *block_user;
};

/* Floats from the scratch arena (NULL + error on ctx): zeroed (tr_zalloc,
 * for sums and gradients) or as left by earlier use (tr_alloc, for outputs
 * their op writes whole). */
float *tr_zalloc(ld_ctx *ctx, ld_train_unet *t, int64_t n);
float *tr_alloc(ld_ctx *ctx, ld_train_unet *t, int64_t n);
/* The gradient buffer of activation id (allocated zeroed on first use). */
float *tr_grad(ld_ctx *ctx, ld_train_unet *t, int id);
/* d(weight) in the packed gradients (NULL for an absent tensor); notes that
 * the block being reversed writes it. */
float *tr_g(const ld_train_unet *t, const ld_tensor *w);

/* The tap of a transformer block, or NULL (unet_train_hooks.c). */
tr_tap *tr_tap_of(ld_train_unet *t, const ld_tblock *b);
/* Tap buffers sized for the current plan, gradients zeroed. */
ld_status tr_size_taps(ld_ctx *ctx, ld_train_unet *t);
/* Block-output taps of unit i: keep its output (forward), add the tap's
 * gradient to its output's (backward, before the unit's own). */
void tr_tap_unit_forward(ld_train_unet *t, int i);
ld_status tr_tap_unit_backward(ld_ctx *ctx, ld_train_unet *t, int i);
void tr_free_taps(ld_train_unet *t);

/* Runs a unit forward into acts[out].v, with its temporaries on the scratch
 * arena (left there: the caller resets). */
ld_status tr_unit_forward(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u);
/* Recomputes the unit from its kept inputs, then adds the gradients of its
 * inputs and parameters from acts[out].g. */
ld_status tr_unit_backward(ld_ctx *ctx, ld_train_unet *t, const tr_unit *u);

#endif
