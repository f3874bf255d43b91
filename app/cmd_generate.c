/* `leandiff generate`: text to PNG, with stable-diffusion.cpp's flag names.
 *
 *     leandiff generate -m koala-lightning-700m -p "a koala reading a newspaper" -o koala.png
 *
 * Parses and range-checks the flags (usage errors: exit 2), opens the
 * pipeline, runs ld_generate once per image of the batch (seed, seed+1, ...),
 * shows a progress bar on stderr, and writes each PNG atomically with the
 * A1111 "parameters" text chunk (runtime errors: exit 1; no partial file).
 * Per-family checks (size multiples, samplers) are the pipeline's job. */
#include "cli_util.h"
#include "commands.h"
#include "io/fileio.h"
#include "io/png.h"
#include "sched/scheduler.h"
#include "pipeline/infotext.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: leandiff generate -m MODEL_DIR -p PROMPT [options]\n"
            "\n"
            "  -m, --model DIR            diffusers pipeline folder (KOALA/SDXL, or Wuerstchen/Cascade prior)\n"
            "  -p, --prompt TEXT          what to draw\n"
            "  -n, --negative-prompt TEXT what to avoid (default: none)\n"
            "  -W, --width N              image width in pixels (default: the model's)\n"
            "  -H, --height N             image height in pixels (default: the model's)\n"
            "      --steps N              denoising steps (default: per model, e.g. 10 Lightning, 25 KOALA)\n"
            "      --cfg-scale X          classifier-free guidance scale (default: per model, 3.5 / 7.5)\n"
            "      --sampler NAME         SDXL family: euler (default), euler_a, dpm++2m, dpm++2m_sde, dpm++2s,\n"
            "                             unipc, ddim, heun, dpm2, lcm, or an A1111 name (\"DPM++ 2M Karras\")\n"
            "      --schedule S           default or karras (euler, dpm++2m, dpm++2m_sde, dpm++2s, heun, dpm2)\n"
            "  -i, --init-image FILE      image-to-image (SDXL family): start from this PNG, resized to -W/-H\n"
            "                             (default: its size rounded down to a multiple of 8)\n"
            "      --strength S           how much of the schedule runs on it, (0, 1] (default 0.75)\n"
            "      --mask FILE            inpainting: PNG (resized like the image), white repaints, black keeps;\n"
            "                             a 9-channel inpainting U-Net gets it as input, others blend\n"
            "      --mask-blur PX         Gaussian blur of the mask (radius in pixels, 0-1024; default 0)\n"
            "      --prompt-syntax S      a1111 (default: (word:1.3), [word], BREAK, prompts of any length)\n"
            "                             or plain (exactly diffusers: 75 tokens, no weights); every family\n"
            "      --lora FILE[:SCALE]    merge a LoRA (peft/diffusers or kohya .safetensors) at strength SCALE\n"
            "                             (default 1) into the U-Net and text encoders; repeatable; KOALA/SDXL\n"
            "      --lora-dir DIR         where <lora:NAME:SCALE> prompt tags find NAME.safetensors\n"
            "      --taesd DIR            AutoencoderTiny folder (madebyollin/taesdxl) for previews / --vae-decoder tiny\n"
            "      --vae-decoder D        full (default: the model's VAE) or tiny (TAESD: fast, approximate)\n"
            "      --preview FILE         rewrite FILE (PNG) with the image forming during the steps (TAESD with\n"
            "                             --taesd, else a cheap 1/8-size color preview)\n"
            "      --preview-every N      steps between previews (default 1; the last step always)\n"
            "  -s, --seed N               random seed (default 42; -1 = random)\n"
            "  -b, --batch-count N        number of images, seeds seed, seed+1, ... (default 1)\n"
            "  -o, --output PATH          output PNG (default output.png); a batch writes out.png, out-1.png, ...\n"
            "                             or fills a printf pattern such as img-%%03d.png with 0, 1, 2, ...;\n"
            "                             - or /dev/stdout: the PNG to standard output. Replaces only a regular\n"
            "                             file of yours; anything else there is an error before any work\n"
            "  -t, --threads N            compute threads (default: all cores)\n"
            "      --variant NAME         prefer <weights>.NAME.safetensors (fp16, bf16)\n"
            "      --precision P          f32 (default) or bf16 arithmetic\n"
            "      --vae-tiling           decode tile by tile (default: automatic above 512x512)\n"
            "      --no-vae-tiling        decode in one piece (faster, more memory)\n"
            "      --decoder DIR          Wuerstchen / Cascade decoder pipeline folder\n"
            "      --prior-steps N        Wuerstchen / Cascade prior steps\n"
            "      --prior-cfg-scale X    Wuerstchen / Cascade prior guidance\n"
            "      --prior-weights FILE   Stable Cascade single-file prior (Stability naming)\n"
            "      --decoder-weights FILE Stable Cascade single-file decoder\n"
            "      --vqgan-weights FILE   Stable Cascade single-file VQGAN\n"
            "      --replay-noise FILE    take the random inputs from a reference case file\n"
            "      --dump FILE            write the intermediate tensors to FILE (.safetensors)\n"
            "      --no-metadata          do not store the parameters text chunk\n"
            "  -q, --quiet                no progress bar\n"
            "  -v, --verbose              more log output (twice: debug)\n");
}

/* ---- progress bar ---- */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

/* Polled inside every model forward (ld_gen_params.cancel): Ctrl-C stops
 * within about a second, not at the end of a step. */
static int cancel_requested(void *user) {
    (void)user;
    return interrupted;
}

typedef struct {
    int tty, quiet, verbose;
    int image, images;
} progress_state;

static int progress(void *user, const char *stage, int step, int total, double secs) {
    progress_state *ps = user;
    if (ps->quiet) return interrupted;
    double per = step > 0 ? secs / step : 0.0;
    double eta = per * (total - step);
    char img[32] = "";
    if (ps->images > 1) snprintf(img, sizeof img, "image %d/%d ", ps->image + 1, ps->images);
    if (ps->tty) {
        int width = 24, fill = total > 0 ? step * width / total : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%s%-7s %3d/%-3d [%s] %6.2f s/step, ETA %5.1fs ", img, stage, step, total, bar, per, eta);
        if (step >= total) fprintf(stderr, "\n");
    } else if (step >= total || ps->verbose) {
        fprintf(stderr, "%s%s %d/%d, %.2f s/step, %.1fs\n", img, stage, step, total, per, secs);
    }
    fflush(stderr);
    return interrupted;
}

/* ---- previews ---- */

typedef struct {
    const char *path;
    ld_ctx *ctx; /* its own: a failed preview write must not clobber the run's error */
    int failed;
} preview_state;

/* Rewrites the preview PNG (atomically: a viewer never sees half a file).
 * A failed write is reported once and does not stop the generation. */
static int write_preview(void *user, const ld_image *img, int step, int total) {
    preview_state *p = user;
    if (ld_png_write(p->ctx, p->path, img->pixels, img->width, img->height, NULL) != LD_OK && !p->failed) {
        fprintf(stderr, "leandiff generate: --preview: %s\n", ld_ctx_error(p->ctx));
        p->failed = 1;
    }
    (void)step;
    (void)total;
    return interrupted;
}

/* ---- output names ---- */

/* A printf-style pattern has exactly one %d / %0Nd (and %% for '%'). Returns
 * 1 for a pattern, 0 for a plain name, -1 for a bad pattern. */
static int output_pattern_kind(const char *s) {
    int conv = 0;
    for (const char *p = s; *p; p++) {
        if (*p != '%') continue;
        if (p[1] == '%') {
            p++;
            continue;
        }
        const char *q = p + 1;
        while (*q >= '0' && *q <= '9') q++;
        if (*q != 'd' || q - p > 4) return -1;
        conv++;
        p = q;
    }
    return conv == 0 ? 0 : conv == 1 ? 1 : -1;
}

static void output_name(char *buf, size_t n, const char *out, int kind, int index) {
    if (kind == 1) {
        size_t o = 0;
        for (const char *p = out; *p && o + 1 < n; p++) {
            if (*p != '%') {
                buf[o++] = *p;
                continue;
            }
            if (p[1] == '%') {
                buf[o++] = '%';
                p++;
                continue;
            }
            int width = 0, zero = p[1] == '0';
            const char *q = p + 1;
            while (*q >= '0' && *q <= '9') width = width * 10 + (*q++ - '0');
            char num[32];
            snprintf(num, sizeof num, zero ? "%0*d" : "%*d", width, index);
            for (const char *r = num; *r && o + 1 < n; r++) buf[o++] = *r;
            p = q;
        }
        buf[o] = 0;
        return;
    }
    if (index == 0) {
        snprintf(buf, n, "%s", out);
        return;
    }
    /* out.png -> out-1.png (suffix before the extension of the last component) */
    const char *slash = strrchr(out, '/');
    const char *dot = strrchr(out, '.');
    if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : out)) dot = out + strlen(out);
    snprintf(buf, n, "%.*s-%d%s", (int)(dot - out), out, index, dot);
}

static uint64_t random_seed(void) {
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&s, sizeof s, 1, f) != 1) s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (f) fclose(f);
    return s & 0xffffffffu; /* small enough to type back in */
}

enum {
    OPT_STEPS = 1000,
    OPT_CFG,
    OPT_SAMPLER,
    OPT_PROMPT_SYNTAX,
    OPT_SCHEDULE,
    OPT_STRENGTH,
    OPT_MASK,
    OPT_MASK_BLUR,
    OPT_TAESD,
    OPT_LORA,
    OPT_LORA_DIR,
    OPT_VAE_DECODER,
    OPT_PREVIEW,
    OPT_PREVIEW_EVERY,
    OPT_VARIANT,
    OPT_PRECISION,
    OPT_VAE_TILING,
    OPT_NO_VAE_TILING,
    OPT_DECODER,
    OPT_PRIOR_STEPS,
    OPT_PRIOR_CFG,
    OPT_PRIOR_W,
    OPT_DECODER_W,
    OPT_VQGAN_W,
    OPT_REPLAY,
    OPT_DUMP,
    OPT_NO_META
};

/* "FILE" or "FILE:SCALE" (the part after the last ':' when it is a number). */
static int parse_lora_arg(char *arg, ld_lora_ref *out) {
    out->path = arg;
    out->scale = 1.0f;
    char *colon = strrchr(arg, ':');
    if (colon && colon != arg) {
        char *end;
        const double v = strtod(colon + 1, &end);
        if (end != colon + 1 && !*end) {
            if (!(v >= -100 && v <= 100)) {
                fprintf(stderr, "leandiff generate: --lora %s: the strength must be within +-100\n", arg);
                return 0;
            }
            *colon = 0;
            out->scale = (float)v;
        }
    }
    return 1;
}

int cmd_generate(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"prompt", required_argument, 0, 'p'},
        {"negative-prompt", required_argument, 0, 'n'},
        {"width", required_argument, 0, 'W'},
        {"height", required_argument, 0, 'H'},
        {"steps", required_argument, 0, OPT_STEPS},
        {"cfg-scale", required_argument, 0, OPT_CFG},
        {"sampler", required_argument, 0, OPT_SAMPLER},
        {"sampling-method", required_argument, 0, OPT_SAMPLER},
        {"prompt-syntax", required_argument, 0, OPT_PROMPT_SYNTAX},
        {"schedule", required_argument, 0, OPT_SCHEDULE},
        {"init-image", required_argument, 0, 'i'},
        {"strength", required_argument, 0, OPT_STRENGTH},
        {"denoising-strength", required_argument, 0, OPT_STRENGTH},
        {"mask", required_argument, 0, OPT_MASK},
        {"mask-blur", required_argument, 0, OPT_MASK_BLUR},
        {"scheduler", required_argument, 0, OPT_SCHEDULE},
        {"taesd", required_argument, 0, OPT_TAESD},
        {"lora", required_argument, 0, OPT_LORA},
        {"lora-dir", required_argument, 0, OPT_LORA_DIR},
        {"vae-decoder", required_argument, 0, OPT_VAE_DECODER},
        {"preview", required_argument, 0, OPT_PREVIEW},
        {"preview-every", required_argument, 0, OPT_PREVIEW_EVERY},
        {"seed", required_argument, 0, 's'},
        {"batch-count", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'},
        {"variant", required_argument, 0, OPT_VARIANT},
        {"output", required_argument, 0, 'o'},
        {"vae-tiling", no_argument, 0, OPT_VAE_TILING},
        {"no-vae-tiling", no_argument, 0, OPT_NO_VAE_TILING},
        {"precision", required_argument, 0, OPT_PRECISION},
        {"decoder", required_argument, 0, OPT_DECODER},
        {"prior-steps", required_argument, 0, OPT_PRIOR_STEPS},
        {"prior-cfg-scale", required_argument, 0, OPT_PRIOR_CFG},
        {"prior-weights", required_argument, 0, OPT_PRIOR_W},
        {"decoder-weights", required_argument, 0, OPT_DECODER_W},
        {"vqgan-weights", required_argument, 0, OPT_VQGAN_W},
        {"replay-noise", required_argument, 0, OPT_REPLAY},
        {"dump", required_argument, 0, OPT_DUMP},
        {"no-metadata", no_argument, 0, OPT_NO_META},
        {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    ld_pipeline_options po;
    ld_pipeline_options_init(&po);
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = NULL;
    const char *output = "output.png";
    preview_state preview = {0};
    ld_lora_ref loras[16];
    int nloras = 0;
    const char *init_path = NULL, *mask_path = NULL;
    float strength = 0.75f;
    long long v, batch = 1, threads = 0;
    double d;
    int seed_random = 0, verbose = 0, quiet = 0, metadata = 1;
    uint64_t seed = 42;
    int c, k;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:p:n:W:H:s:b:t:o:i:qvh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': po.model_dir = optarg; break;
        case 'p': gp.prompt = optarg; break;
        case 'n': gp.negative_prompt = optarg; break;
        case 'W':
            if (!cli_parse_int("--width", optarg, 1, 8192, &v)) return 2;
            gp.width = (int)v;
            break;
        case 'H':
            if (!cli_parse_int("--height", optarg, 1, 8192, &v)) return 2;
            gp.height = (int)v;
            break;
        case OPT_STEPS:
            if (!cli_parse_int("--steps", optarg, 1, 1000, &v)) return 2;
            gp.steps = (int)v;
            break;
        case OPT_CFG:
            if (!cli_parse_float("--cfg-scale", optarg, 0.0, 100.0, &d)) return 2;
            gp.cfg_scale = (float)d;
            break;
        case OPT_SAMPLER: gp.sampler = optarg; break;
        case 'i': init_path = optarg; break;
        case OPT_MASK: mask_path = optarg; break;
        case OPT_MASK_BLUR:
            if (!cli_parse_float("--mask-blur", optarg, 0.0, 1024.0, &d)) return 2;
            gp.mask_blur = (float)d;
            break;
        case OPT_STRENGTH:
            if (!cli_parse_float("--strength", optarg, 0.0, 1.0, &d)) return 2;
            if (d <= 0.0) {
                fprintf(stderr, "leandiff generate: --strength must be above 0 and at most 1\n");
                return 2;
            }
            strength = (float)d;
            break;
        case OPT_SCHEDULE:
            if (cli_parse_choice("--schedule", optarg, (const char *const[]){"default", "karras", NULL}) < 0) return 2;
            gp.schedule = optarg;
            break;
        case OPT_PROMPT_SYNTAX:
            if (cli_parse_choice("--prompt-syntax", optarg, (const char *const[]){"a1111", "plain", NULL}) < 0) return 2;
            gp.prompt_syntax = optarg;
            break;
        case OPT_TAESD: gp.taesd_dir = optarg; break;
        case OPT_LORA:
            if (nloras == (int)(sizeof loras / sizeof *loras)) {
                fprintf(stderr, "leandiff generate: at most %d --lora files\n", (int)(sizeof loras / sizeof *loras));
                return 2;
            }
            if (!parse_lora_arg(optarg, &loras[nloras])) return 2;
            nloras++;
            break;
        case OPT_LORA_DIR: gp.lora_dir = optarg; break;
        case OPT_VAE_DECODER:
            if ((k = cli_parse_choice("--vae-decoder", optarg, (const char *const[]){"full", "tiny", NULL})) < 0) return 2;
            gp.tiny_decoder = k == 1;
            break;
        case OPT_PREVIEW: preview.path = optarg; break;
        case OPT_PREVIEW_EVERY:
            if (!cli_parse_int("--preview-every", optarg, 1, 1000, &v)) return 2;
            gp.preview_every = (int)v;
            break;
        case 's':
            if (optarg[0] == '-') {
                if (!cli_parse_int("--seed", optarg, -1, -1, &v)) return 2;
                seed_random = 1;
            } else {
                if (!cli_parse_u64("--seed", optarg, &seed)) return 2;
                seed_random = 0;
            }
            break;
        case 'b':
            if (!cli_parse_int("--batch-count", optarg, 1, 10000, &batch)) return 2;
            break;
        case 't':
            if (!cli_parse_int("--threads", optarg, 1, 4096, &threads)) return 2;
            break;
        case OPT_VARIANT: po.variant = optarg; break;
        case 'o': output = optarg; break;
        case OPT_VAE_TILING: po.vae_tiling = 1; break;
        case OPT_NO_VAE_TILING: po.vae_tiling = 0; break;
        case OPT_PRECISION:
            if ((k = cli_parse_choice("--precision", optarg, (const char *const[]){"f32", "bf16", NULL})) < 0) return 2;
            po.precision = k == 1 ? LD_PRECISION_BF16 : LD_PRECISION_F32;
            break;
        case OPT_DECODER: po.decoder_dir = optarg; break;
        case OPT_PRIOR_STEPS:
            if (!cli_parse_int("--prior-steps", optarg, 1, 1000, &v)) return 2;
            gp.prior_steps = (int)v;
            break;
        case OPT_PRIOR_CFG:
            if (!cli_parse_float("--prior-cfg-scale", optarg, 0.0, 100.0, &d)) return 2;
            gp.prior_cfg_scale = (float)d;
            break;
        case OPT_PRIOR_W: po.prior_weights = optarg; break;
        case OPT_DECODER_W: po.decoder_weights = optarg; break;
        case OPT_VQGAN_W: po.vqgan_weights = optarg; break;
        case OPT_REPLAY: gp.replay_noise = optarg; break;
        case OPT_DUMP: gp.dump = optarg; break;
        case OPT_NO_META: metadata = 0; break;
        case 'q': quiet = 1; break;
        case 'v': verbose++; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "leandiff generate: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "leandiff generate: unknown option '%s' (see leandiff generate --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "leandiff generate: unexpected argument '%s' (quote the prompt: -p \"...\")\n", argv[optind]);
        return 2;
    }
    if (!po.model_dir || !gp.prompt) {
        fprintf(stderr, "leandiff generate: %s is required (see leandiff generate --help)\n",
                !po.model_dir ? "-m/--model" : "-p/--prompt");
        return 2;
    }
    if (gp.sampler && strcmp(gp.sampler, "ddpm") && !ld_sampler_find(gp.sampler, NULL)) {
        fprintf(stderr, "leandiff generate: unknown --sampler '%s'; one of:", gp.sampler);
        for (int i = 0; ld_sampler_list[i]; i++) fprintf(stderr, "%s %s", i ? "," : "", ld_sampler_list[i]->name);
        fprintf(stderr, " (or an A1111 name such as \"DPM++ 2M Karras\"), ddpm for Wuerstchen / Cascade\n");
        return 2;
    }
    if (!*output) {
        fprintf(stderr, "leandiff generate: --output must not be empty\n");
        return 2;
    }
    int kind = output_pattern_kind(output);
    if (kind < 0) {
        fprintf(stderr, "leandiff generate: --output '%s': a pattern may hold one %%d (or %%03d) and %%%%, nothing else\n",
                output);
        return 2;
    }
    if (seed_random) seed = random_seed();
    if (verbose) ld_set_log_level(verbose > 1 ? LD_LOG_DEBUG : LD_LOG_INFO);
    if (threads) ld_set_threads((int)threads);

    int to_stdout = ld_output_is_stdout(output);
    if (to_stdout && batch > 1) {
        fprintf(stderr, "leandiff generate: --output %s holds one image; give a file name or a pattern for a batch\n",
                output);
        return 2;
    }
    gp.loras = loras;
    gp.nloras = nloras;
    if (gp.tiny_decoder && !gp.taesd_dir) {
        fprintf(stderr, "leandiff generate: --vae-decoder tiny needs --taesd DIR (an AutoencoderTiny folder)\n");
        return 2;
    }
    if (preview.path && ld_output_is_stdout(preview.path)) {
        fprintf(stderr, "leandiff generate: --preview needs a file name\n");
        return 2;
    }
    if (to_stdout && gp.dump && ld_output_is_stdout(gp.dump)) {
        fprintf(stderr, "leandiff generate: --output and --dump cannot both go to standard output\n");
        return 2;
    }
    /* Fail before the long part if an output cannot be written (fileio.h's rules). */
    ld_ctx *ctx = ld_ctx_new();
    char name[4096];
    for (int i = 0; i <= batch + 1; i++) {
        const char *path = i < batch ? name : i == batch ? gp.dump : preview.path;
        if (i < batch) output_name(name, sizeof name, output, kind, i);
        if (path && ld_output_check(ctx, path) != LD_OK) {
            fprintf(stderr, "leandiff generate: %s%s\n",
                    path == gp.dump ? "--dump: " : path == preview.path ? "--preview: " : "", ld_ctx_error(ctx));
            ld_ctx_free(ctx);
            return 1;
        }
    }

    /* image-to-image / inpainting inputs, read before the model is opened */
    ld_png init_png = {0}, mask_png = {0};
    ld_image init_img = {0}, mask_img = {0};
    if ((mask_path && !init_path) || (gp.mask_blur > 0 && !mask_path)) {
        fprintf(stderr, "leandiff generate: %s\n", mask_path ? "--mask needs --init-image" : "--mask-blur needs --mask");
        ld_ctx_free(ctx);
        return 2;
    }
    if (init_path) {
        if (ld_png_read(ctx, init_path, 1, &init_png) != LD_OK ||
            (mask_path && ld_png_read(ctx, mask_path, 1, &mask_png) != LD_OK)) {
            fprintf(stderr, "leandiff generate: %s\n", ld_ctx_error(ctx));
            ld_png_free(&init_png);
            ld_ctx_free(ctx);
            return 1;
        }
        init_img = (ld_image){init_png.width, init_png.height, 3, init_png.rgb};
        mask_img = (ld_image){mask_png.width, mask_png.height, 3, mask_png.rgb};
        gp.init_image = &init_img;
        gp.mask_image = mask_path ? &mask_img : NULL;
        gp.strength = strength;
    }

    ld_pipeline *pipe;
    if (ld_pipeline_open(ctx, &po, &pipe) != LD_OK) {
        fprintf(stderr, "leandiff generate: %s\n", ld_ctx_error(ctx));
        ld_png_free(&init_png);
        ld_png_free(&mask_png);
        ld_ctx_free(ctx);
        return 1;
    }
    progress_state ps = {.tty = isatty(2), .quiet = quiet, .verbose = verbose, .images = (int)batch};
    gp.progress = progress;
    gp.progress_user = &ps;
    gp.cancel = cancel_requested;
    if (preview.path) {
        preview.ctx = ld_ctx_new();
        gp.preview = write_preview;
        gp.preview_user = &preview;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old);

    int rc = 0;
    for (int i = 0; i < batch && rc == 0; i++) {
        ps.image = i;
        gp.seed = seed + (uint64_t)i;
        ld_image img;
        ld_gen_info info;
        if (ld_generate(ctx, pipe, &gp, &img, &info) != LD_OK) {
            fprintf(stderr, "%sleandiff generate: %s\n", ps.tty && !quiet ? "\n" : "", ld_ctx_error(ctx));
            rc = 1;
            break;
        }
        char *text = NULL;
        output_name(name, sizeof name, output, kind, i);
        ld_status st = LD_OK;
        if (metadata) st = ld_infotext_format(ctx, &info, gp.prompt, gp.negative_prompt, &text);
        if (st == LD_OK) {
            const char *chunks[] = {"parameters", text, NULL};
            st = ld_png_write(ctx, name, img.pixels, img.width, img.height, metadata ? chunks : NULL);
        }
        if (st != LD_OK) {
            fprintf(stderr, "leandiff generate: %s\n", ld_ctx_error(ctx));
            rc = 1;
        } else {
            /* The summary goes to stderr when stdout carries the PNG. */
            FILE *say = to_stdout ? stderr : stdout;
            if (info.replay_noise[0]) /* the seed was never drawn */
                fprintf(say, "%s: %dx%d, noise from %s, %d steps, %.1f s\n", to_stdout ? "stdout" : name, img.width,
                        img.height, info.replay_noise, info.steps, info.seconds);
            else
                fprintf(say, "%s: %dx%d, seed %llu, %d steps, %.1f s\n", to_stdout ? "stdout" : name, img.width,
                        img.height, (unsigned long long)info.seed, info.steps, info.seconds);
            fflush(say);
        }
        free(text);
        ld_image_free(&img);
    }
    sigaction(SIGINT, &old, NULL);
    ld_pipeline_free(pipe);
    ld_png_free(&init_png);
    ld_png_free(&mask_png);
    ld_ctx_free(preview.ctx);
    ld_ctx_free(ctx);
    return rc;
}
