/* `leandiff train`: fine-tune an SDXL-family U-Net (full or LoRA) on a
 * folder of captioned images (src/train/trainer.h), or replay a reference
 * training case (src/train/train_replay.h). Shows a progress bar with the
 * loss, seconds per step and the ETA; Ctrl-C writes a checkpoint of the last
 * finished step and stops; a loss-curve PNG goes next to the checkpoints.
 * Under `mpirun -np N` the run is data-parallel (app/mpi_comm.h): process 0
 * shows the progress and writes the files. */
#include "cli_util.h"
#include "commands.h"
#include "loss_plot.h"
#include "mpi_comm.h"

#include "train/train_replay.h"
#include "train/trainer.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: leandiff train -m MODEL --data DIR --out DIR [options]\n"
            "       leandiff train -m MODEL --replay CASE --dump OUT\n"
            "Fine-tunes the U-Net of an SDXL-family pipeline folder (KOALA, SDXL) on DIR: images with same-name\n"
            ".txt captions, or a metadata.jsonl with file_name and text. Writes DIR/unet (full fine-tuning) or a\n"
            "LoRA file, checkpoints, loss.csv and loss.png into --out (docs/training.md).\n"
            "  --resolution N         square training size in pixels (default 1024)\n"
            "  --batch N              images per micro-batch (1)\n"
            "  --accum N              micro-batches per optimizer step (gradient accumulation, 1)\n"
            "  --steps N              optimizer steps (1000)\n"
            "  --lr F                 peak learning rate (1e-5; 1e-4 with --lora)\n"
            "  --lr-schedule S        constant | linear | cosine (decay to 0 after the warm-up; constant)\n"
            "  --warmup N             steps of linear warm-up (0)\n"
            "  --weight-decay F       AdamW decoupled weight decay (1e-2)\n"
            "  --max-grad-norm F      clip the gradient's global L2 norm (1; 0 = off)\n"
            "  --caption-dropout P    train on the empty caption with probability P (0), for guidance\n"
            "  --flip                 also train on mirrored images (random per step)\n"
            "  --random-crop          random instead of centred crops\n"
            "  --bucket               aspect-ratio buckets (kohya's): each image keeps its shape, resized and cropped\n"
            "                         to the bucket of the closest aspect ratio; a batch holds one bucket\n"
            "  --bucket-min N, --bucket-max N, --bucket-step N   bucket sides (resolution/4, resolution*2, 64)\n"
            "  --on-bad skip|error    bad images or captions: report and skip (default) or stop\n"
            "  --seed N               data order, noise, timesteps, crops (0)\n"
            "  --save-every N         write a checkpoint every N steps (0: only when stopped)\n"
            "  --resume CHECKPOINT    continue a run from its checkpoint-N folder (same settings)\n"
            "  --save-dtype D         f32 | f16 | bf16 of the final weights (f32)\n"
            "  --precision P          f32 (exact) | bf16 (bf16 products, f32 master weights and sums)\n"
            "  --lora RANK            train LoRA adapters of this rank on the attention projections\n"
            "  --lora-alpha A         LoRA alpha (default: the rank, scale 1)\n"
            "  --lora-targets T       attn (to_q/k/v/out of every attention: peft/diffusers' choice; default) or all\n"
            "                         (also proj_in, proj_out and the feed-forward: every linear of the transformers,\n"
            "                         as kohya's LoRA)\n"
            "  --lora-conv-rank R     also LoRA on the U-Net's convolutions (LoCon, kohya's LoRA-C3Lier): every ResNet's\n"
            "                         conv1/conv2 and every down/upsampler's conv at rank R, the ResNets' conv_shortcut\n"
            "                         and time_emb_proj at the --lora rank (conv_in, conv_out: never); off by default\n"
            "  --lora-conv-alpha A    alpha of the convolution adapters (default: R, scale 1)\n"
            "  --lora-format F        peft (diffusers: pytorch_lora_weights.safetensors) | kohya\n"
            "                         (A1111/ComfyUI: lora_kohya.safetensors)\n"
            "  --teacher DIR          KOALA distillation: MODEL is the student pipeline (leandiff distill --init-only),\n"
            "                         DIR the teacher (pipeline or U-Net folder), run forward only; the loss adds the\n"
            "                         output and self-attention feature terms (docs/distill.md)\n"
            "  --lambda-task F, --lambda-out F, --lambda-feat F   distillation loss weights (1 each)\n"
            "  --teacher-precision P  f32 | bf16 products in the teacher's forward (default: --precision)\n"
            "  --prompts FILE         instead of --data, with --teacher: data-free distillation; the teacher pipeline\n"
            "                         generates each prompt's latents (one prompt per line), kept in\n"
            "                         OUT/teacher_latents.safetensors\n"
            "  --gen-steps N, --gen-cfg F, --gen-sampler S   how it samples them (the teacher's defaults, euler)\n"
            "  --distill-features F   attn1 (self-attention, KOALA's choice; default), attn2 (cross-attention) or ff\n"
            "                         (feed-forward) outputs of each stack's last block; attn1-all, attn2-all, ff-all:\n"
            "                         of every kept block; blocks: every down/mid/up block's output (BK-SDM)\n"
            "  --replay CASE --dump OUT   run a reference training case and dump what it computes\n"
            "Under mpirun -np N (Open MPI) the run is data-parallel: each process takes --batch samples of every\n"
            "micro-batch (global batch = batch x accum x N) and process 0 writes the checkpoints and weights.\n"
            "  --bucket-mb F          gradient bucket size for the sums between processes (25)\n"
            "  -t, --threads N        compute threads (default: all cores)\n"
            "  -q, --quiet            no progress bar\n"
            "  -v, --verbose          info log lines (twice: debug)\n");
}

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
}

/* Under mpirun, SIGTERM means the run is being torn down (a process died or
 * mpirun was stopped): say so before going, the checkpoints are atomic. */
static void on_sigterm(int sig) {
    static const char msg[] = "leandiff train: stopped by mpirun (another process of the run ended or the run was "
                              "stopped); the newest complete checkpoint-N in --out continues it with --resume\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    signal(sig, SIG_DFL);
    raise(sig);
}

typedef struct {
    int tty, quiet;
    double *loss;
    int n, cap;
    double elapsed;
} progress_state;

static int progress(void *user, const ld_train_progress *p) {
    progress_state *s = user;
    if (strcmp(p->stage, "train") == 0) {
        if (s->n == s->cap) {
            int cap = s->cap ? 2 * s->cap : 256;
            double *l = realloc(s->loss, sizeof(double) * (size_t)cap);
            if (l) s->loss = l, s->cap = cap;
        }
        if (s->n < s->cap) s->loss[s->n++] = p->loss;
        s->elapsed += p->seconds;
        if (!s->quiet) {
            const double per = s->elapsed / s->n, eta = per * (p->steps - p->step);
            fprintf(stderr, "%sstep %d/%d  loss %.5f  lr %.3g  %.2f s/step  ETA %d:%02d:%02d%s", s->tty ? "\r" : "",
                    p->step, p->steps, p->loss, p->lr, per, (int)(eta / 3600), (int)(eta / 60) % 60, (int)eta % 60,
                    s->tty ? "   " : "\n");
        }
    } else if (!s->quiet) {
        fprintf(stderr, "%scaching %s %d/%d%s", s->tty ? "\r" : "", p->stage, p->step, p->steps,
                s->tty ? (p->step == p->steps ? "\n" : "") : "\n");
    }
    return g_stop != 0;
}

/* The run itself, once the options are parsed and MPI (if any) started. */
static int run_training(ld_ctx *ctx, ld_train_options *o_, ld_train_comm *comm, const char *replay, const char *dump,
                        int quiet, int lr_given, int *abort_others) {
    ld_train_options o = *o_;
    int rc = 0;
    const int rank = comm ? comm->rank : 0, procs = comm ? comm->size : 1;
    if (replay || dump) {
        if (!replay || !dump || o.data_dir || o.prompts_file || o.out_dir) {
            fprintf(stderr, "leandiff train: --replay CASE and --dump OUT go together, without --data/--out\n");
            return 2;
        }
        if (procs > 1) {
            fprintf(stderr, "leandiff train: --replay runs as one process, not under mpirun -np %d\n", procs);
            return 2;
        }
        if (ld_train_replay(ctx, o.model_dir, replay, dump) != LD_OK) {
            fprintf(stderr, "leandiff train: %s\n", ld_ctx_error(ctx));
            rc = 1;
        } else if (!quiet) {
            printf("%s: replay of %s written\n", dump, replay);
        }
        return rc;
    }
    if (!(o.data_dir || o.prompts_file) || !o.out_dir) {
        fprintf(stderr, "leandiff train: --data DIR (or --prompts FILE) and --out DIR are required (or --replay CASE "
                        "--dump OUT)\n");
        return 2;
    }
    if (o.lora_rank && !lr_given) o.lr = 1e-4f;
    if (o.teacher_dir && !lr_given) o.lr = 1e-5f;
    if (!o.lora_rank && (o.lora_alpha > 0 || o.lora_format != LD_LORA_PEFT)) {
        fprintf(stderr, "leandiff train: --lora-alpha and --lora-format need --lora RANK\n");
        return 2;
    }
    progress_state ps = {.tty = isatty(2), .quiet = quiet || rank > 0};
    o.progress = progress;
    o.user = &ps;
    o.comm = comm;
    struct sigaction sa, old, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);
    sa.sa_handler = procs > 1 && rank == 0 ? on_sigterm : SIG_DFL;
    sigaction(SIGTERM, &sa, &old_term);
    ld_status st = ld_train_run(ctx, &o);
    sigaction(SIGINT, &old, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (ps.tty && !quiet && ps.n) fputc('\n', stderr);
    if (ps.n && rank == 0) {
        char path[4200];
        snprintf(path, sizeof path, "%s/loss.png", o.out_dir);
        ld_ctx *pc = ld_ctx_new();
        if (loss_plot_write(pc, path, ps.loss, ps.n) != LD_OK) fprintf(stderr, "leandiff train: %s\n", ld_ctx_error(pc));
        ld_ctx_free(pc);
    }
    if (st != LD_OK) {
        if (procs > 1) fprintf(stderr, "leandiff train (process %d of %d): %s\n", rank, procs, ld_ctx_error(ctx));
        else fprintf(stderr, "leandiff train: %s\n", ld_ctx_error(ctx));
        rc = 1;
        /* a stop every process agreed on ends them all; any other error leaves the others waiting */
        *abort_others = st != LD_ERR_CANCELLED;
    } else if (!quiet && rank == 0) {
        printf("%s: %d steps, final loss %.5f, %s written\n", o.out_dir, ps.n, ps.n ? ps.loss[ps.n - 1] : 0.0,
               o.lora_rank ? (o.lora_format == LD_LORA_KOHYA ? "lora_kohya.safetensors" : "pytorch_lora_weights.safetensors")
                           : "unet/");
    }
    free(ps.loss);
    return rc;
}

enum { OPT_DATA = 256, OPT_OUT, OPT_RES, OPT_BATCH, OPT_ACCUM, OPT_STEPS, OPT_LR, OPT_SCHED, OPT_WARMUP, OPT_WD,
       OPT_CLIP, OPT_DROP, OPT_FLIP, OPT_CROP, OPT_BAD, OPT_SEED, OPT_SAVE_EVERY, OPT_RESUME, OPT_SAVE_DTYPE,
       OPT_PRECISION, OPT_LORA, OPT_LORA_ALPHA, OPT_LORA_FORMAT, OPT_REPLAY, OPT_DUMP, OPT_TEACHER, OPT_L_TASK,
       OPT_L_OUT, OPT_L_FEAT, OPT_FEATURES, OPT_BUCKET, OPT_T_PRECISION, OPT_PROMPTS, OPT_GEN_STEPS, OPT_GEN_CFG,
       OPT_GEN_SAMPLER, OPT_BUCKET_ON, OPT_BUCKET_MIN, OPT_BUCKET_MAX, OPT_BUCKET_STEP, OPT_LORA_TARGETS,
       OPT_LORA_CONV_RANK, OPT_LORA_CONV_ALPHA };

int cmd_train(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, OPT_DATA},
        {"out", required_argument, 0, OPT_OUT}, {"resolution", required_argument, 0, OPT_RES},
        {"batch", required_argument, 0, OPT_BATCH}, {"accum", required_argument, 0, OPT_ACCUM},
        {"steps", required_argument, 0, OPT_STEPS}, {"lr", required_argument, 0, OPT_LR},
        {"lr-schedule", required_argument, 0, OPT_SCHED}, {"warmup", required_argument, 0, OPT_WARMUP},
        {"weight-decay", required_argument, 0, OPT_WD}, {"max-grad-norm", required_argument, 0, OPT_CLIP},
        {"caption-dropout", required_argument, 0, OPT_DROP}, {"flip", no_argument, 0, OPT_FLIP},
        {"random-crop", no_argument, 0, OPT_CROP}, {"on-bad", required_argument, 0, OPT_BAD},
        {"seed", required_argument, 0, OPT_SEED}, {"save-every", required_argument, 0, OPT_SAVE_EVERY},
        {"resume", required_argument, 0, OPT_RESUME}, {"save-dtype", required_argument, 0, OPT_SAVE_DTYPE},
        {"precision", required_argument, 0, OPT_PRECISION}, {"lora", required_argument, 0, OPT_LORA},
        {"lora-alpha", required_argument, 0, OPT_LORA_ALPHA}, {"lora-format", required_argument, 0, OPT_LORA_FORMAT},
        {"replay", required_argument, 0, OPT_REPLAY}, {"dump", required_argument, 0, OPT_DUMP},
        {"teacher", required_argument, 0, OPT_TEACHER}, {"lambda-task", required_argument, 0, OPT_L_TASK},
        {"lambda-out", required_argument, 0, OPT_L_OUT}, {"lambda-feat", required_argument, 0, OPT_L_FEAT},
        {"distill-features", required_argument, 0, OPT_FEATURES}, {"bucket-mb", required_argument, 0, OPT_BUCKET},
        {"teacher-precision", required_argument, 0, OPT_T_PRECISION}, {"prompts", required_argument, 0, OPT_PROMPTS},
        {"gen-steps", required_argument, 0, OPT_GEN_STEPS}, {"gen-cfg", required_argument, 0, OPT_GEN_CFG},
        {"gen-sampler", required_argument, 0, OPT_GEN_SAMPLER}, {"bucket", no_argument, 0, OPT_BUCKET_ON},
        {"bucket-min", required_argument, 0, OPT_BUCKET_MIN}, {"bucket-max", required_argument, 0, OPT_BUCKET_MAX},
        {"bucket-step", required_argument, 0, OPT_BUCKET_STEP}, {"lora-targets", required_argument, 0, OPT_LORA_TARGETS},
        {"lora-conv-rank", required_argument, 0, OPT_LORA_CONV_RANK},
        {"lora-conv-alpha", required_argument, 0, OPT_LORA_CONV_ALPHA},
        {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
        {"verbose", no_argument, 0, 'v'},
        {0, 0, 0, 0}};
    ld_train_options o;
    ld_train_options_init(&o);
    const char *replay = NULL, *dump = NULL;
    long long v, threads = 0;
    double d;
    int k, quiet = 0, lr_given = 0, verbose = 0, lora_targets_given = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:t:qvh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model_dir = optarg; break;
        case OPT_DATA: o.data_dir = optarg; break;
        case OPT_OUT: o.out_dir = optarg; break;
        case OPT_RES:
            if (!cli_parse_int("--resolution", optarg, 8, 8192, &v)) return 2;
            o.resolution = (int)v;
            break;
        case OPT_BATCH:
            if (!cli_parse_int("--batch", optarg, 1, 1024, &v)) return 2;
            o.batch = (int)v;
            break;
        case OPT_ACCUM:
            if (!cli_parse_int("--accum", optarg, 1, 65536, &v)) return 2;
            o.accum = (int)v;
            break;
        case OPT_STEPS:
            if (!cli_parse_int("--steps", optarg, 1, 1 << 28, &v)) return 2;
            o.steps = (int)v;
            break;
        case OPT_LR:
            if (!cli_parse_float("--lr", optarg, 1e-12, 1, &d)) return 2;
            o.lr = (float)d;
            lr_given = 1;
            break;
        case OPT_SCHED:
            if ((k = cli_parse_choice("--lr-schedule", optarg, (const char *const[]){"constant", "linear", "cosine", NULL})) < 0)
                return 2;
            o.schedule = (ld_lr_schedule)k;
            break;
        case OPT_WARMUP:
            if (!cli_parse_int("--warmup", optarg, 0, 1 << 28, &v)) return 2;
            o.warmup = (int)v;
            break;
        case OPT_WD:
            if (!cli_parse_float("--weight-decay", optarg, 0, 10, &d)) return 2;
            o.weight_decay = (float)d;
            break;
        case OPT_CLIP:
            if (!cli_parse_float("--max-grad-norm", optarg, 0, 1e9, &d)) return 2;
            o.max_grad_norm = (float)d;
            break;
        case OPT_DROP:
            if (!cli_parse_float("--caption-dropout", optarg, 0, 1, &d)) return 2;
            o.caption_dropout = (float)d;
            break;
        case OPT_FLIP: o.flip = 1; break;
        case OPT_CROP: o.random_crop = 1; break;
        case OPT_BAD:
            if ((k = cli_parse_choice("--on-bad", optarg, (const char *const[]){"skip", "error", NULL})) < 0) return 2;
            o.skip_bad = k == 0;
            break;
        case OPT_SEED:
            if (!cli_parse_u64("--seed", optarg, &o.seed)) return 2;
            break;
        case OPT_SAVE_EVERY:
            if (!cli_parse_int("--save-every", optarg, 0, 1 << 28, &v)) return 2;
            o.save_every = (int)v;
            break;
        case OPT_RESUME: o.resume = optarg; break;
        case OPT_SAVE_DTYPE:
            if ((k = cli_parse_choice("--save-dtype", optarg, (const char *const[]){"f32", "f16", "bf16", NULL})) < 0)
                return 2;
            o.save_dtype = k == 0 ? LD_F32 : k == 1 ? LD_F16 : LD_BF16;
            break;
        case OPT_PRECISION:
            if ((k = cli_parse_choice("--precision", optarg, (const char *const[]){"f32", "bf16", NULL})) < 0) return 2;
            o.precision = k ? LD_PRECISION_BF16 : LD_PRECISION_F32;
            break;
        case OPT_PROMPTS: o.prompts_file = optarg; break;
        case OPT_BUCKET_ON: o.bucket = 1; break;
        case OPT_LORA_TARGETS:
            if ((k = cli_parse_choice("--lora-targets", optarg, (const char *const[]){"attn", "all", NULL})) < 0) return 2;
            o.lora_all_linear = k;
            lora_targets_given = 1;
            break;
        case OPT_LORA_CONV_RANK:
            if (!cli_parse_int("--lora-conv-rank", optarg, 1, 1024, &v)) return 2;
            o.lora_conv_rank = (int)v;
            break;
        case OPT_LORA_CONV_ALPHA:
            if (!cli_parse_float("--lora-conv-alpha", optarg, 1e-6, 1e6, &d)) return 2;
            o.lora_conv_alpha = (float)d;
            break;
        case OPT_BUCKET_MIN:
        case OPT_BUCKET_MAX:
        case OPT_BUCKET_STEP:
            if (!cli_parse_int(c == OPT_BUCKET_MIN ? "--bucket-min" : c == OPT_BUCKET_MAX ? "--bucket-max" : "--bucket-step",
                               optarg, 8, 16384, &v))
                return 2;
            *(c == OPT_BUCKET_MIN ? &o.bucket_min : c == OPT_BUCKET_MAX ? &o.bucket_max : &o.bucket_step) = (int)v;
            break;
        case OPT_GEN_STEPS:
            if (!cli_parse_int("--gen-steps", optarg, 1, 1000, &v)) return 2;
            o.gen_steps = (int)v;
            break;
        case OPT_GEN_CFG:
            if (!cli_parse_float("--gen-cfg", optarg, 0, 100, &d)) return 2;
            o.gen_cfg = (float)d;
            break;
        case OPT_GEN_SAMPLER: o.gen_sampler = optarg; break;
        case OPT_T_PRECISION:
            if ((k = cli_parse_choice("--teacher-precision", optarg, (const char *const[]){"f32", "bf16", NULL})) < 0)
                return 2;
            o.teacher_precision = k ? LD_PRECISION_BF16 : LD_PRECISION_F32;
            o.teacher_precision_set = 1;
            break;
        case OPT_LORA:
            if (!cli_parse_int("--lora", optarg, 1, 1024, &v)) return 2;
            o.lora_rank = (int)v;
            break;
        case OPT_LORA_ALPHA:
            if (!cli_parse_float("--lora-alpha", optarg, 1e-6, 1e6, &d)) return 2;
            o.lora_alpha = (float)d;
            break;
        case OPT_LORA_FORMAT:
            if ((k = cli_parse_choice("--lora-format", optarg, (const char *const[]){"peft", "kohya", NULL})) < 0)
                return 2;
            o.lora_format = k ? LD_LORA_KOHYA : LD_LORA_PEFT;
            break;
        case OPT_TEACHER: o.teacher_dir = optarg; break;
        case OPT_L_TASK:
        case OPT_L_OUT:
        case OPT_L_FEAT:
            if (!cli_parse_float(c == OPT_L_TASK ? "--lambda-task" : c == OPT_L_OUT ? "--lambda-out" : "--lambda-feat",
                                 optarg, 0, 1e6, &d))
                return 2;
            *(c == OPT_L_TASK ? &o.lambda_task : c == OPT_L_OUT ? &o.lambda_out : &o.lambda_feat) = (float)d;
            break;
        case OPT_FEATURES:
            if ((k = cli_parse_choice("--distill-features", optarg,
                                      (const char *const[]){"attn1", "attn2", "ff", "attn1-all", "attn2-all", "ff-all",
                                                            "blocks", NULL})) < 0)
                return 2;
            o.distill_features = optarg;
            break;
        case OPT_BUCKET:
            if (!cli_parse_float("--bucket-mb", optarg, 1e-3, 1 << 16, &d)) return 2;
            o.bucket_mb = d;
            break;
        case OPT_REPLAY: replay = optarg; break;
        case OPT_DUMP: dump = optarg; break;
        case 't':
            if (!cli_parse_int("--threads", optarg, 1, 4096, &threads)) return 2;
            break;
        case 'q': quiet = 1; break;
        case 'v': verbose++; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "leandiff train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (lora_targets_given && !o.lora_rank) {
        fprintf(stderr, "leandiff train: --lora-targets needs --lora RANK\n");
        return 2;
    }
    if (o.lora_conv_rank && !o.lora_rank) {
        fprintf(stderr, "leandiff train: --lora-conv-rank needs --lora RANK (the rank of the linear adapters)\n");
        return 2;
    }
    if (o.lora_conv_alpha > 0 && !o.lora_conv_rank) {
        fprintf(stderr, "leandiff train: --lora-conv-alpha needs --lora-conv-rank R\n");
        return 2;
    }
    if (!o.model_dir) {
        fprintf(stderr, "leandiff train: -m MODEL (a pipeline folder) is required\n");
        return 2;
    }
    if (threads) ld_set_threads((int)threads);
    if (verbose) ld_set_log_level(verbose > 1 ? LD_LOG_DEBUG : LD_LOG_INFO);
    ld_ctx *ctx = ld_ctx_new();
    ld_train_comm *comm = NULL;
    if (mpi_comm_start(ctx, &comm) != LD_OK) {
        fprintf(stderr, "leandiff train: %s\n", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return 1;
    }
    int abort_others = 0;
    int rc = run_training(ctx, &o, comm, replay, dump, quiet, lr_given, &abort_others);
    if (abort_others && comm && comm->size > 1) mpi_comm_abort(1);
    mpi_comm_stop();
    ld_ctx_free(ctx);
    return rc;
}
