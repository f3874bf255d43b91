/* The training run (see trainer.h): caches, the step loop, checkpoints and
 * resume. */
#include "train/trainer.h"
#include "base/clock.h"

#include "base/mix.h"
#include "distill/distill_step.h"
#include "distill/student.h"
#include "io/fileio.h"
#include "io/json.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "io/weights_memory.h"
#include "sched/rng.h"
#include "tensor/gemm.h"
#include "train/adamw.h"
#include "train/train_cache.h"
#include "train/train_step.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void ld_train_options_init(ld_train_options *o) {
    *o = (ld_train_options){.resolution = 1024, .skip_bad = 1, .gen_cfg = -1, .lambda_task = 1, .lambda_out = 1, .lambda_feat = 1, .batch = 1, .accum = 1, .steps = 1000,
                            .lr = 1e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-2f,
                            .max_grad_norm = 1.0f, .schedule = LD_LR_CONSTANT, .precision = LD_PRECISION_F32,
                            .save_dtype = LD_F32, .lora_format = LD_LORA_PEFT};
}

double ld_train_lr(const ld_train_options *o, int s) {
    if (o->warmup > 0 && s < o->warmup) return o->lr * (double)(s + 1) / (double)o->warmup;
    const double span = o->steps - o->warmup, prog = span > 0 ? (double)(s - o->warmup) / span : 0;
    switch (o->schedule) {
    case LD_LR_LINEAR: return o->lr * (1.0 - prog);
    case LD_LR_COSINE: return o->lr * 0.5 * (1.0 + cos(M_PI * prog));
    default: return o->lr;
    }
}

typedef struct {
    ld_ctx *ctx;
    const ld_train_options *o;
    ld_train_cache cache;
    ld_train_unet *unet, *teacher;
    ld_scheduler *sched;
    ld_adamw opt;
    int *perm, perm_epoch;
    int rank, size;     /* this process of how many (1 without a comm) */
    int bucketed;       /* items of several sizes: batches from bucket_epoch */
    int (*batches)[2];  /* this epoch's batches: first position in perm, count */
    int nbatches;
    ld_grad_sync sync;  /* the gradient buckets (several processes) */
    /* one micro-batch */
    float *x0, *noise, *context, *pooled, *ids;
    int64_t *tsteps;
    FILE *log;
} run;

/* ---- data order and the step's random choices: functions of (seed, index) only ---- */

static int item_at(run *r, int64_t g) {
    const int n = r->cache.n;
    const int e = (int)(g / n);
    if (e != r->perm_epoch) { /* Fisher-Yates shuffle of epoch e */
        for (int i = 0; i < n; i++) r->perm[i] = i;
        uint64_t st = ld_mix64(r->o->seed ^ ld_mix64(0x5eedull + (uint64_t)e));
        for (int i = n - 1; i > 0; i--) {
            st = ld_mix64(st);
            const int j = (int)(st % (uint64_t)(i + 1)), tmp = r->perm[i];
            r->perm[i] = r->perm[j];
            r->perm[j] = tmp;
        }
        r->perm_epoch = e;
    }
    return r->perm[g % n];
}

/* Aspect-ratio buckets (kohya's BucketManager): each epoch, the items of
 * each size in a shuffled order, cut into batches of `batch` (a size's last
 * batch may be smaller), the batches shuffled. The batch count per epoch is
 * the same every epoch. */
static int cmp_keyed(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static ld_status bucket_epoch(ld_ctx *ctx, run *r, int e) {
    const ld_train_cache *c = &r->cache;
    const int n = c->n, B = r->o->batch;
    int64_t *key = malloc(sizeof(int64_t) * (size_t)n);
    if (!key) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    uint64_t st = ld_mix64(r->o->seed ^ ld_mix64(0xb0c7ull + (uint64_t)e));
    for (int i = 0; i < n; i++) r->perm[i] = i;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates, then a stable grouping by size */
        st = ld_mix64(st);
        const int j = (int)(st % (uint64_t)(i + 1)), tmp = r->perm[i];
        r->perm[i] = r->perm[j];
        r->perm[j] = tmp;
    }
    for (int i = 0; i < n; i++) { /* size (h, w) | position in the shuffle: sorting keeps the shuffle per size */
        const int it = r->perm[i];
        key[i] = ((int64_t)(c->item_h[it] * 4096 + c->item_w[it]) << 32) | i;
    }
    int *item_of_pos = malloc(sizeof(int) * (size_t)n);
    if (!item_of_pos) {
        free(key);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    memcpy(item_of_pos, r->perm, sizeof(int) * (size_t)n);
    qsort(key, (size_t)n, sizeof *key, cmp_keyed);
    r->nbatches = 0;
    for (int i = 0; i < n; i++) {
        r->perm[i] = item_of_pos[key[i] & 0xffffffff];
        const int same = i > 0 && (key[i] >> 32) == (key[i - 1] >> 32);
        if (!same || r->batches[r->nbatches - 1][1] == B) r->batches[r->nbatches][0] = i, r->batches[r->nbatches++][1] = 0;
        r->batches[r->nbatches - 1][1]++;
    }
    for (int i = r->nbatches - 1; i > 0; i--) {
        st = ld_mix64(st);
        const int j = (int)(st % (uint64_t)(i + 1));
        int tmp[2] = {r->batches[i][0], r->batches[i][1]};
        r->batches[i][0] = r->batches[j][0], r->batches[i][1] = r->batches[j][1];
        r->batches[j][0] = tmp[0], r->batches[j][1] = tmp[1];
    }
    free(item_of_pos);
    free(key);
    r->perm_epoch = e;
    return LD_OK;
}

/* The micro-batch (step, micro) of this process into the batch buffers: its
 * size in *nb, its latent size in *h, *w. */
static ld_status fill_batch(run *r, int step, int micro, int *nb, int *h, int *w) {
    const ld_train_cache *c = &r->cache;
    const int B = r->o->batch;
    const int64_t emb = c->L * c->D;
    /* global micro-batch index of the whole run, this process's share of it */
    const int64_t gb = ((int64_t)step * r->o->accum + micro) * r->size + r->rank;
    int64_t g0 = gb * B; /* global sample index of the first sample (without buckets) */
    int count = B, first = 0;
    if (r->bucketed) { /* whole batches of one size; samples numbered by (batch, position) */
        if (r->perm_epoch != gb / r->nbatches) LD_TRY(bucket_epoch(r->ctx, r, (int)(gb / r->nbatches)));
        first = r->batches[gb % r->nbatches][0];
        count = r->batches[gb % r->nbatches][1];
        g0 = gb << 20;
    }
    const int it0 = r->bucketed ? r->perm[first] : item_at(r, g0);
    *nb = count, *h = c->item_h[it0], *w = c->item_w[it0];
    const int64_t lat = (int64_t)c->C * *h * *w;
    const int num_train = ld_scheduler_num_train(r->sched);
    for (int b = 0; b < count; b++) {
        const int it = r->bucketed ? r->perm[first + b] : item_at(r, g0 + b);
        const uint64_t u = ld_mix64(r->o->seed ^ ld_mix64(0xb47c4ull + (uint64_t)(g0 + b)));
        const int view = c->views > 1 ? (int)(u & 1) : 0;
        const int drop = (double)(u >> 11) * (1.0 / 9007199254740992.0) < r->o->caption_dropout;
        const int cap = drop ? c->n : it;
        memcpy(r->x0 + b * lat, c->latents + c->item_off[it] + view * lat, sizeof(float) * (size_t)lat);
        memcpy(r->ids + b * 6, c->time_ids + ((int64_t)it * c->views + view) * 6, sizeof(float) * 6);
        memcpy(r->context + b * emb, c->embeds + (int64_t)cap * emb, sizeof(float) * (size_t)emb);
        memcpy(r->pooled + b * c->P, c->pooled + (int64_t)cap * c->P, sizeof(float) * (size_t)c->P);
        r->tsteps[b] = (int64_t)(ld_mix64(u) % (uint64_t)num_train);
    }
    if (r->bucketed) {
        char items[512];
        int len = 0;
        for (int b = 0; b < count && len < (int)sizeof items - 12; b++)
            len += snprintf(items + len, sizeof items - (size_t)len, " %d", r->perm[first + b]);
        ld_log_debug("micro-batch %lld: %d of latent size %dx%d, items%s", (long long)gb, count, *w, *h, items);
    }
    for (int b = 0; b < count; b++) { /* per sample, so batch x accum splits of a step see the same noise */
        ld_rng rng;
        ld_rng_init(&rng, ld_mix64(r->o->seed ^ ld_mix64(0x7015eull + (uint64_t)(g0 + b))));
        ld_rng_randn(&rng, r->noise + b * lat, lat);
    }
    return LD_OK;
}

/* ---- files ---- */

/* The trained weights into dir: unet/ (full) or the LoRA file. */
static ld_status save_weights(run *r, const char *dir, ld_dtype dtype, ld_lora_format fmt) {
    ld_ctx *ctx = r->ctx;
    char path[4300];
    ld_lora *l = ld_train_unet_lora(r->unet);
    if (l) {
        snprintf(path, sizeof path, "%s/%s", dir,
                 fmt == LD_LORA_KOHYA ? "lora_kohya.safetensors" : "pytorch_lora_weights.safetensors");
        return ld_lora_save(ctx, l, fmt, dtype, path);
    }
    snprintf(path, sizeof path, "%s/unet", dir);
    LD_TRY(ld_output_dir(ctx, path));
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    LD_TRY(ld_json_write_file(ctx, path, ld_train_unet_config(r->unet)));
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    const ld_train_params *p = ld_train_unet_params(r->unet);
    return ld_train_params_save(ctx, p, p->value, "", dtype, path, NULL);
}

static ld_status save_checkpoint(run *r, int step) {
    ld_ctx *ctx = r->ctx;
    char tmp[4200], final[4200], path[4400];
    snprintf(final, sizeof final, "%s/checkpoint-%d", r->o->out_dir, step);
    snprintf(tmp, sizeof tmp, "%s/.checkpoint-%d.partial", r->o->out_dir, step);
    if (ld_dir_exists(final)) return ld_fail(ctx, LD_ERR_IO, "%s already exists; not replacing it", final);
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return ld_fail(ctx, LD_ERR_IO, "%s: %s", tmp, strerror(errno));
    const ld_train_params *tp = ld_train_unet_trainable(r->unet);
    ld_status st = save_weights(r, tmp, LD_F32, LD_LORA_PEFT);
    if (st == LD_OK && ld_train_unet_lora(r->unet)) { /* exact adapter state (the saved file has B pre-scaled) */
        snprintf(path, sizeof path, "%s/lora_state.safetensors", tmp);
        st = ld_train_params_save(ctx, tp, tp->value, "", LD_F32, path, NULL);
    }
    if (st == LD_OK) {
        snprintf(path, sizeof path, "%s/adam_m.safetensors", tmp);
        st = ld_train_params_save(ctx, tp, r->opt.m, "", LD_F32, path, NULL);
    }
    if (st == LD_OK) {
        snprintf(path, sizeof path, "%s/adam_v.safetensors", tmp);
        st = ld_train_params_save(ctx, tp, r->opt.v, "", LD_F32, path, NULL);
    }
    if (st == LD_OK) {
        json_t *j = json_pack("{s:i, s:I, s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:i}", "step", step, "seed",
                              (json_int_t)r->o->seed, "batch", r->o->batch, "accum", r->o->accum, "resolution",
                              r->o->resolution, "lora_rank", r->o->lora_rank, "steps", r->o->steps, "lora_alpha",
                              (double)r->o->lora_alpha, "processes", r->size, "lora_conv_rank",
                              r->o->lora_conv_rank);
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        st = j ? ld_json_write_file(ctx, path, j) : ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        json_decref(j);
    }
    if (st == LD_OK && rename(tmp, final) != 0)
        st = ld_fail(ctx, LD_ERR_IO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    if (st == LD_OK) ld_log_info("checkpoint %s written", final);
    return st;
}

/* An f32 array laid out like p from a file of the same names. */
static ld_status load_like(ld_ctx *ctx, const ld_train_params *p, const char *path, float *dst) {
    ld_safetensors *f;
    LD_TRY(ld_safetensors_open(ctx, path, &f));
    ld_status st = LD_OK;
    for (size_t i = 0; st == LD_OK && i < p->count; i++) {
        const ld_tensor *t = ld_safetensors_find(f, p->tensors[i].name);
        if (!t) st = ld_fail(ctx, LD_ERR_FORMAT, "%s: '%s' is missing", path, p->tensors[i].name);
        else if (t->dtype != LD_F32 || !ld_shape_equal(t->ndim, t->shape, p->tensors[i].ndim, p->tensors[i].shape))
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s: '%s' is not an F32 tensor of the model's shape", path, t->name);
        else
            memcpy(dst + p->offset[i], t->data, ld_tensor_nbytes(t));
    }
    ld_safetensors_close(f);
    return st;
}

/* The step to continue from, after checking the run's settings match. */
static ld_status load_resume(run *r, int *start) {
    ld_ctx *ctx = r->ctx;
    const ld_train_options *o = r->o;
    char path[4300];
    json_t *j;
    snprintf(path, sizeof path, "%s/trainer_state.json", o->resume);
    LD_TRY(ld_json_load_file(ctx, path, &j));
    json_int_t step = -1, seed = -1, batch = -1, accum = -1, res = -1, rank = -1, procs = 1, conv_rank = 0;
    int ok = json_unpack(j, "{s:I, s:I, s:I, s:I, s:I, s:I, s?I, s?I}", "step", &step, "seed", &seed, "batch", &batch,
                         "accum", &accum, "resolution", &res, "lora_rank", &rank, "processes", &procs,
                         "lora_conv_rank", &conv_rank) == 0;
    json_decref(j);
    if (!ok || step < 0 || procs < 1) return ld_fail(ctx, LD_ERR_FORMAT, "%s: not a leandiff trainer state", path);
    /* the data order and every random choice depend on the global batch only, so a run may
     * continue on another number of processes that splits the same global batch */
    if ((uint64_t)seed != o->seed || batch * procs != (json_int_t)o->batch * r->size || accum != o->accum ||
        res != o->resolution || rank != o->lora_rank || conv_rank != o->lora_conv_rank)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "--resume %s: the checkpoint was made with --seed %lld --batch %lld (x %lld processes) --accum "
                       "%lld --resolution %lld --lora %lld --lora-conv-rank %lld; give the same (or the same global "
                       "batch) to continue it exactly",
                       o->resume, (long long)seed, (long long)batch, (long long)procs, (long long)accum,
                       (long long)res, (long long)rank, (long long)conv_rank);
    const ld_train_params *tp = ld_train_unet_trainable(r->unet);
    if (ld_train_unet_lora(r->unet)) {
        snprintf(path, sizeof path, "%s/lora_state.safetensors", o->resume);
        LD_TRY(load_like(ctx, tp, path, tp->value));
    }
    snprintf(path, sizeof path, "%s/adam_m.safetensors", o->resume);
    LD_TRY(load_like(ctx, tp, path, r->opt.m));
    snprintf(path, sizeof path, "%s/adam_v.safetensors", o->resume);
    LD_TRY(load_like(ctx, tp, path, r->opt.v));
    r->opt.step = step;
    *start = (int)step;
    return LD_OK;
}

/* Before continuing in the same folder: no checkpoint newer than the one
 * resumed may be there (it would be overwritten by a different run), and
 * loss.csv loses the lines of steps after it (a killed run wrote them). */
static ld_status prepare_resume_dir(run *r, int start) {
    ld_ctx *ctx = r->ctx;
    char path[4300];
    DIR *d = opendir(r->o->out_dir);
    if (!d) return ld_fail(ctx, LD_ERR_IO, "%s: %s", r->o->out_dir, strerror(errno));
    struct dirent *e;
    int newer = -1;
    while ((e = readdir(d))) {
        int k;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%d%c", &k, &tail) == 1 && k > start && (newer < 0 || k < newer)) newer = k;
    }
    closedir(d);
    if (newer >= 0)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "%s/checkpoint-%d is newer than the checkpoint resumed (step %d): resume from the newest, or "
                       "move it away",
                       r->o->out_dir, newer, start);
    snprintf(path, sizeof path, "%s/loss.csv", r->o->out_dir);
    char *text = NULL;
    size_t len = 0;
    if (!ld_file_exists(path)) return LD_OK;
    LD_TRY(ld_read_file(ctx, path, &text, &len, (size_t)1 << 30));
    size_t keep = 0;
    for (size_t i = 0; i < len;) { /* the header, then lines of steps <= start */
        const char *nl = memchr(text + i, '\n', len - i);
        const size_t end = nl ? (size_t)(nl - text) + 1 : len;
        if (i > 0 && atoi(text + i) > start) break;
        keep = end;
        i = end;
    }
    ld_status st = keep < len ? ld_write_file(ctx, path, text, keep) : LD_OK;
    free(text);
    return st;
}

/* ---- the run ---- */

static ld_status report_cache(ld_ctx *ctx, void *user, const char *stage, int done, int total) {
    run *r = user;
    ld_train_progress p = {.step = done, .steps = total, .stage = stage};
    if (r->o->progress && r->o->progress(r->o->user, &p))
        return ld_fail(ctx, LD_ERR_CANCELLED, "training cancelled while caching %s", stage);
    return LD_OK;
}

/* The teacher (frozen, forward only) and the feature pairs it shares with the student. */
static ld_status open_teacher(run *r) {
    ld_ctx *ctx = r->ctx;
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/unet/config.json", r->o->teacher_dir);
    if (ld_file_exists(dir)) snprintf(dir, sizeof dir, "%s/unet", r->o->teacher_dir);
    else snprintf(dir, sizeof dir, "%s", r->o->teacher_dir);
    LD_TRY(ld_train_unet_open(ctx, dir, 1, &r->teacher));
    if (r->o->teacher_precision_set) ld_train_unet_set_precision(r->teacher, r->o->teacher_precision);
    char **s = NULL, **t = NULL;
    size_t n = 0;
    ld_feature_set set;
    const char *kind;
    LD_TRY(ld_feature_set_parse(ctx, r->o->distill_features, &set, &kind));
    ld_status st = ld_student_feature_pairs(ctx, ld_train_unet_config(r->teacher), ld_train_unet_config(r->unet), set,
                                            kind, &s, &t, &n);
    if (st == LD_OK) st = ld_train_unet_set_taps(ctx, r->unet, (const char *const *)s, (int)n);
    if (st == LD_OK) st = ld_train_unet_set_taps(ctx, r->teacher, (const char *const *)t, (int)n);
    if (st == LD_OK)
        ld_log_info("distilling from %s: %zu feature pairs (%s)", dir, n,
                    r->o->distill_features ? r->o->distill_features : "attn1");
    ld_student_pairs_free(s, t, n);
    return st;
}

static ld_status check_options(ld_ctx *ctx, const ld_train_options *o) {
    if (!o->model_dir || !(o->data_dir || o->prompts_file) || !o->out_dir)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "training needs a model, a dataset and an output folder");
    if (o->data_dir && o->prompts_file)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--data and --prompts: give one of them");
    if (o->prompts_file && !o->teacher_dir)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--prompts needs --teacher (its pipeline generates the latents)");
    if (o->teacher_precision_set && !o->teacher_dir)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--teacher-precision needs --teacher");
    if (o->teacher_dir && o->lora_rank)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "distillation trains the whole student: --lora does not apply");
    if (!(o->lambda_task >= 0 && o->lambda_out >= 0 && o->lambda_feat >= 0))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "the distillation loss weights must be >= 0");
    if (o->batch < 1 || o->batch > 1024 || o->accum < 1 || o->accum > 1 << 16 || o->steps < 1 || o->steps > 1 << 28)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--batch 1..1024, --accum 1..65536 and --steps >= 1 are required");
    if (!(o->lr > 0 && o->lr < 1) || o->warmup < 0 || o->save_every < 0 || !(o->caption_dropout >= 0) ||
        o->caption_dropout > 1 || !(o->max_grad_norm >= 0) || !(o->weight_decay >= 0))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "bad optimizer settings (--lr in (0, 1), --warmup >= 0, --caption-dropout in [0, 1], "
                       "--max-grad-norm >= 0, --weight-decay >= 0)");
    return LD_OK;
}

static ld_status sync_block(ld_ctx *ctx, void *user, int seq) { return ld_grad_sync_ready(ctx, user, seq); }

/* The step's gradients, mean over the global batch; loss and terms[3] likewise. */
static ld_status step_gradients(run *r, int s, double *loss, double terms[3]) {
    ld_ctx *ctx = r->ctx;
    const ld_train_options *o = r->o;
    const ld_train_cache *c = &r->cache;
    const float scale = 1.0f / (float)(o->accum * r->size);
    for (int a = 0; a < o->accum; a++) {
        int nb, h, w;
        LD_TRY(fill_batch(r, s, a, &nb, &h, &w));
        ld_train_batch b = {.B = nb, .H = h, .W = w, .L = (int)c->L, .x0 = r->x0, .noise = r->noise,
                            .timesteps = r->tsteps, .context = r->context, .text_embeds = r->pooled,
                            .time_ids = r->ids};
        if (r->size > 1 && a == o->accum - 1) /* the last backward: sum each bucket as soon as it is final */
            ld_grad_sync_arm(&r->sync, ld_train_unet_lora(r->unet) ? NULL : ld_train_unet_grad_order(r->unet));
        double l = 0;
        if (r->teacher) {
            ld_distill_losses dl;
            const ld_distill_weights w = {o->lambda_task, o->lambda_out, o->lambda_feat};
            LD_TRY(ld_distill_step(ctx, r->unet, r->teacher, r->sched, &b, &w, scale, NULL, NULL, NULL, &dl));
            l = dl.loss;
            terms[0] += dl.task * scale, terms[1] += dl.out * scale, terms[2] += dl.feat * scale;
        } else {
            LD_TRY(ld_train_step(ctx, r->unet, r->sched, &b, scale, NULL, NULL, &l));
        }
        *loss += l * scale;
    }
    if (r->size == 1) return LD_OK;
    LD_TRY(ld_grad_sync_finish(ctx, &r->sync));
    double v[4] = {*loss, terms[0], terms[1], terms[2]};
    LD_TRY(o->comm->sum_doubles(ctx, o->comm->user, v, 4));
    *loss = v[0], terms[0] = v[1], terms[1] = v[2], terms[2] = v[3];
    return LD_OK;
}

static ld_status train_loop(run *r, int start) {
    ld_ctx *ctx = r->ctx;
    const ld_train_options *o = r->o;
    ld_train_params *tp = ld_train_unet_trainable(r->unet);
    if (r->size > 1) {
        const double mb = o->bucket_mb > 0 ? o->bucket_mb : 25;
        LD_TRY(ld_grad_sync_init(ctx, &r->sync, o->comm, tp, (int64_t)(mb * (1 << 20))));
        ld_log_info("gradients summed in %d buckets of about %.3g MB", r->sync.nb, mb);
        ld_train_unet_on_block_done(r->unet, sync_block, &r->sync);
    }
    ld_status st = LD_OK;
    for (int s = start; st == LD_OK && s < o->steps; s++) {
        const double t0 = ld_now_seconds();
        if (s == start) ld_train_params_zero_grad(tp); /* later steps: AdamW leaves them zeroed */
        double loss = 0, terms[3] = {0, 0, 0};
        st = step_gradients(r, s, &loss, terms);
        if (st != LD_OK) break;
        if (!isfinite(loss)) {
            st = ld_fail(ctx, LD_ERR_MODEL, "training diverged at step %d (loss %g): lower --lr", s + 1, loss);
            break;
        }
        if (o->max_grad_norm > 0) ld_clip_grad_norm(tp->grad, tp->total, o->max_grad_norm);
        const double lr = ld_train_lr(o, s);
        ld_adamw_update(&r->opt, tp->value, tp->grad, (float)lr);
        const double secs = ld_now_seconds() - t0;
        if (r->log) {
            if (r->teacher)
                fprintf(r->log, "%d,%.8g,%.8g,%.8g,%.8g,%.6g,%.3f\n", s + 1, loss, terms[0], terms[1], terms[2], lr,
                        secs);
            else
                fprintf(r->log, "%d,%.8g,%.6g,%.3f\n", s + 1, loss, lr, secs);
            fflush(r->log);
        }
        ld_train_progress p = {.step = s + 1, .steps = o->steps, .loss = loss, .lr = lr, .seconds = secs,
                               .stage = "train"};
        double stop = o->progress && o->progress(o->user, &p);
        if (r->size > 1 && (st = o->comm->sum_doubles(ctx, o->comm->user, &stop, 1)) != LD_OK) break;
        if (r->rank == 0 &&
            ((o->save_every && (s + 1) % o->save_every == 0 && s + 1 < o->steps) || (stop > 0 && s + 1 < o->steps)))
            st = save_checkpoint(r, s + 1);
        if (st == LD_OK && stop > 0)
            st = ld_fail(ctx, LD_ERR_CANCELLED, "training stopped after step %d; --resume %s/checkpoint-%d continues it",
                         s + 1, o->out_dir, s + 1);
    }
    ld_train_unet_on_block_done(r->unet, NULL, NULL);
    return st;
}

static ld_status run_all(run *r) {
    ld_ctx *ctx = r->ctx;
    const ld_train_options *o = r->o;
    LD_TRY(check_options(ctx, o));
    LD_TRY(ld_output_dir(ctx, o->out_dir));
    ld_dataset ds;
    if (o->prompts_file) LD_TRY(ld_dataset_open_prompts(ctx, o->prompts_file, o->skip_bad, &ds));
    else LD_TRY(ld_dataset_open(ctx, o->data_dir, o->skip_bad, &ds));
    ld_log_info("dataset %s: %zu %s (%zu skipped)", o->prompts_file ? o->prompts_file : o->data_dir, ds.n,
                o->prompts_file ? "prompts" : "images", ds.skipped);
    char latents_path[4300];
    snprintf(latents_path, sizeof latents_path, "%s/teacher_latents.safetensors", o->out_dir);
    ld_teacher_gen gen = {.pipeline = o->teacher_dir, .steps = o->gen_steps, .cfg = o->gen_cfg,
                          .sampler = o->gen_sampler, .cache_path = latents_path, .read_only = r->rank > 0};
    /* bucket sizes: kohya's defaults scaled to the resolution (256..2048 in steps of 64 at 1024) */
    const int step = o->bucket_step > 0 ? o->bucket_step : 64;
    int bmin = o->bucket_min > 0 ? o->bucket_min : o->resolution / 4 / step * step;
    if (bmin < step) bmin = step;
    ld_train_cache_opts co = {.resolution = o->resolution, .random_crop = o->random_crop, .flip = o->flip,
                              .skip_bad = o->skip_bad, .seed = o->seed, .gen = o->prompts_file ? &gen : NULL,
                              .bucket = o->bucket, .bucket_min = bmin,
                              .bucket_max = o->bucket_max > 0 ? o->bucket_max : 2 * o->resolution,
                              .bucket_step = step,
                              .report = report_cache, .user = r};
    /* several processes: process 0 samples the teacher's latents, the others then read its file */
    const int wait_for_0 = o->prompts_file && r->size > 1;
    ld_status st = wait_for_0 && r->rank > 0 ? o->comm->barrier(ctx, o->comm->user) : LD_OK;
    if (st == LD_OK) st = ld_train_cache_build(ctx, o->model_dir, &ds, &co, &r->cache);
    if (st == LD_OK && wait_for_0 && r->rank == 0) st = o->comm->barrier(ctx, o->comm->user);
    ld_dataset_free(&ds);
    LD_TRY(st);
    char unet_dir[4300];
    if (o->resume && !o->lora_rank) snprintf(unet_dir, sizeof unet_dir, "%s/unet", o->resume);
    else LD_TRY(ld_component_dir(ctx, o->model_dir, NULL, "unet", unet_dir, sizeof unet_dir));
    LD_TRY(ld_train_unet_open(ctx, unet_dir, o->lora_rank > 0, &r->unet));
    if (o->lora_rank > 0) {
        const ld_train_lora_spec sp = {o->lora_rank, o->lora_alpha, o->lora_all_linear, o->lora_conv_rank,
                                       o->lora_conv_alpha};
        LD_TRY(ld_train_unet_add_lora(ctx, r->unet, &sp, o->seed));
    }
    if (o->teacher_dir) LD_TRY(open_teacher(r));
    LD_TRY(ld_train_open_scheduler(ctx, o->model_dir, &r->sched));
    const ld_train_params *tp = ld_train_unet_trainable(r->unet);
    LD_TRY(ld_adamw_init(ctx, &r->opt, tp->total, o->lr, o->beta1, o->beta2, o->eps, o->weight_decay));
    int start = 0;
    if (o->resume) LD_TRY(load_resume(r, &start));
    const ld_train_cache *c = &r->cache;
    const int64_t B = o->batch, lat = (int64_t)c->C * c->h * c->w;
    r->x0 = malloc(sizeof(float) * (size_t)(B * lat));
    r->noise = malloc(sizeof(float) * (size_t)(B * lat));
    r->context = malloc(sizeof(float) * (size_t)(B * c->L * c->D));
    r->pooled = malloc(sizeof(float) * (size_t)(B * c->P));
    r->ids = malloc(sizeof(float) * (size_t)(B * 6));
    r->tsteps = malloc(sizeof(int64_t) * (size_t)B);
    r->perm = malloc(sizeof(int) * (size_t)c->n);
    r->perm_epoch = -1;
    r->bucketed = o->bucket;
    if (r->bucketed && !(r->batches = malloc(sizeof *r->batches * (size_t)c->n)))
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the batches");
    if (r->bucketed) { /* epoch 0 now: every epoch has its batch count */
        LD_TRY(bucket_epoch(ctx, r, 0));
        ld_log_info("%d images in %d buckets, %d batches an epoch", c->n, c->nbuckets, r->nbatches);
    }
    if (!r->x0 || !r->noise || !r->context || !r->pooled || !r->ids || !r->tsteps || !r->perm)
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for a batch");
    char path[4300];
    snprintf(path, sizeof path, "%s/loss.csv", o->out_dir);
    if (r->rank == 0 && start > 0) LD_TRY(prepare_resume_dir(r, start));
    const int fresh = start == 0 || !ld_file_exists(path);
    if (r->rank == 0) {
        r->log = fopen(path, fresh ? "w" : "a");
        if (!r->log) return ld_fail(ctx, LD_ERR_IO, "%s: %s", path, strerror(errno));
        if (fresh)
            fprintf(r->log, r->teacher ? "step,loss,loss_task,loss_out,loss_feat,lr,seconds\n" : "step,loss,lr,seconds\n");
    }
    if (r->size > 1)
        ld_log_info("process %d of %d: batch %d of a global batch of %d", r->rank, r->size, o->batch,
                    o->batch * o->accum * r->size);
    LD_TRY(train_loop(r, start));
    return r->rank == 0 ? save_weights(r, o->out_dir, o->save_dtype, o->lora_format) : LD_OK;
}

ld_status ld_train_run(ld_ctx *ctx, const ld_train_options *o) {
    run r = {.ctx = ctx, .o = o, .size = o->comm ? o->comm->size : 1, .rank = o->comm ? o->comm->rank : 0};
    if (r.size < 1 || r.rank < 0 || r.rank >= r.size)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "training: process %d of %d", r.rank, r.size);
    const ld_precision prev = ld_gemm_get_precision();
    ld_gemm_set_precision(o->precision);
    const int read_was = ld_weights_prefer_read(1); /* weights in huge pages (io/weights_memory.h) */
    ld_status st = run_all(&r);
    ld_weights_prefer_read(read_was);
    ld_gemm_set_precision(prev);
    if (r.log) fclose(r.log);
    free(r.x0), free(r.noise), free(r.context), free(r.pooled), free(r.ids), free(r.tsteps), free(r.perm), free(r.batches);
    ld_adamw_free(&r.opt);
    ld_grad_sync_free(&r.sync);
    ld_scheduler_free(r.sched);
    ld_train_unet_free(r.unet);
    ld_train_unet_free(r.teacher);
    ld_train_cache_free(&r.cache);
    return st;
}
