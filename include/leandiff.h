/* leandiff: text-to-image inference for KOALA (distilled SDXL), Wuerstchen v2
 * and Stable Cascade, on the CPU, from the Hugging Face checkpoints as released.
 *
 * The whole public API is on this page. Every call that can fail takes an
 * ld_ctx and returns an ld_status; on failure ld_ctx_error() holds a message
 * that names the problem (file, tensor, field, value). The library never exits
 * or aborts on bad input.
 *
 *     ld_ctx *ctx = ld_ctx_new();
 *     ld_pipeline_options opt;
 *     ld_pipeline_options_init(&opt);
 *     opt.model_dir = "koala-lightning-700m";
 *     ld_pipeline *p;
 *     if (ld_pipeline_open(ctx, &opt, &p) != LD_OK) fprintf(stderr, "%s\n", ld_ctx_error(ctx));
 *     ld_gen_params gp; ld_gen_params_init(&gp);
 *     gp.prompt = "a koala reading a newspaper";
 *     ld_image img; ld_gen_info info;
 *     if (ld_generate(ctx, p, &gp, &img, &info) == LD_OK) { ... img.pixels ...; ld_image_free(&img); }
 *     ld_pipeline_free(p); ld_ctx_free(ctx);
 */
#ifndef LEANDIFF_H
#define LEANDIFF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library exports these functions and nothing else. */
#if defined(__GNUC__)
#define LD_API __attribute__((visibility("default")))
#else
#define LD_API
#endif

/* ---- status and context ------------------------------------------------ */

typedef enum {
    LD_OK = 0,
    LD_ERR_INVALID_ARGUMENT, /* a parameter value is out of range or malformed */
    LD_ERR_IO,               /* a file cannot be opened, read or written */
    LD_ERR_FORMAT,           /* file content is malformed (safetensors, JSON, PNG) */
    LD_ERR_MODEL,            /* model folder, config and weights disagree */
    LD_ERR_UNSUPPORTED,      /* valid input that leandiff does not handle */
    LD_ERR_NOMEM,            /* an allocation failed */
    LD_ERR_CANCELLED,        /* the progress callback asked to stop */
    LD_ERR_INTERNAL          /* a bug: please report it */
} ld_status;

LD_API const char *ld_status_name(ld_status st);

typedef struct ld_ctx ld_ctx;

LD_API ld_ctx *ld_ctx_new(void);
LD_API void ld_ctx_free(ld_ctx *ctx);
/* Message of the most recent failure on this context ("" if none). */
LD_API const char *ld_ctx_error(const ld_ctx *ctx);
LD_API ld_status ld_ctx_status(const ld_ctx *ctx);
LD_API void ld_ctx_clear_error(ld_ctx *ctx);

typedef enum { LD_LOG_ERROR = 0, LD_LOG_WARN, LD_LOG_INFO, LD_LOG_DEBUG } ld_log_level;
/* Process-wide logging to stderr (or the callback). Default level: WARN. */
LD_API void ld_set_log_level(ld_log_level level);
LD_API ld_log_level ld_get_log_level(void);
typedef void (*ld_log_fn)(void *user, ld_log_level level, const char *message);
LD_API void ld_set_log_callback(ld_log_fn fn, void *user);

/* Compute threads for every hot loop (0 = number of cores). */
LD_API void ld_set_threads(int n);
LD_API int ld_get_threads(void);

LD_API const char *ld_version(void);

/* ---- pipelines --------------------------------------------------------- */

typedef enum { LD_PRECISION_F32 = 0, LD_PRECISION_BF16 = 1 } ld_precision;

typedef struct {
    const char *model_dir;       /* diffusers folder: SDXL/KOALA pipeline, or a Wuerstchen / Cascade prior */
    const char *decoder_dir;     /* Wuerstchen / Cascade decoder pipeline folder (NULL for KOALA) */
    const char *variant;         /* "fp16", "bf16" or NULL: prefer <name>.<variant>.safetensors */
    const char *prior_weights;   /* Stable Cascade single files (Stability naming), optional */
    const char *decoder_weights;
    const char *vqgan_weights;
    ld_precision precision;
    int vae_tiling;              /* -1 auto (tile above 512x512), 0 off, 1 on */
} ld_pipeline_options;

typedef struct ld_pipeline ld_pipeline;

/* The documented defaults: no variant, f32, VAE tiling automatic (above 512x512). */
LD_API void ld_pipeline_options_init(ld_pipeline_options *opt);
LD_API ld_status ld_pipeline_open(ld_ctx *ctx, const ld_pipeline_options *opt, ld_pipeline **out);
LD_API void ld_pipeline_free(ld_pipeline *p);
/* "sdxl" (KOALA and every SDXL-architecture model), "wuerstchen" or "stable-cascade". */
LD_API const char *ld_pipeline_family(const ld_pipeline *p);
/* Short model name for metadata (folder name). */
LD_API const char *ld_pipeline_model_name(const ld_pipeline *p);

/* What a pipeline does when not told (the defaults ld_generate resolves for
 * 0 / negative fields) and what it accepts, so front ends (the CLI, the
 * server, the page, bench) never restate them. */
typedef struct {
    const char *family;           /* as ld_pipeline_family */
    int width, height;            /* default image size */
    int steps;                    /* default steps (Wuerstchen/Cascade: decoder steps) */
    float cfg_scale;              /* default guidance (Wuerstchen/Cascade: decoder guidance) */
    int prior_steps;              /* Wuerstchen/Cascade default prior steps; 0 for the SDXL family */
    float prior_cfg_scale;        /* Wuerstchen/Cascade default prior guidance; 0 for the SDXL family */
    int size_multiple;            /* width and height that are multiples of this always work */
    const char *sampler;          /* default sampler (short name) */
    const char *schedule;         /* its default schedule: "default", or "karras" when the folder's config asks */
    int nsamplers;                /* the samplers it accepts (short names) */
    const char *samplers[16];
    int karras;                   /* takes --schedule karras (with the samplers that do) */
    int init_image;               /* takes an init image and a mask (image-to-image, inpainting) */
    int loras;                    /* takes LoRA files */
    int preview;                  /* calls the preview callback */
} ld_pipeline_desc;

LD_API void ld_pipeline_describe(const ld_pipeline *p, ld_pipeline_desc *out);

/* Progress: called after each step of each stage ("text", "unet", "vae",
 * "prior", "decoder", "vqgan"). Return nonzero to cancel (ld_generate then
 * returns LD_ERR_CANCELLED). */
typedef int (*ld_progress_fn)(void *user, const char *stage, int step, int total, double stage_seconds);

/* Cancel: polled between the blocks of every model forward, between decoder
 * tiles and between slices of a long attention (many times a second, from the
 * thread that called ld_generate). Return nonzero to stop: ld_generate then
 * returns LD_ERR_CANCELLED within about a second and produces no image. Keep
 * it cheap (read a flag). The progress callback can cancel too, but only
 * between steps. */
typedef int (*ld_cancel_fn)(void *user);

/* Live preview (KOALA/SDXL): called during the denoising stage with the
 * current estimate of the final image (RGB8; TAESD's decode at full size when
 * taesd_dir is set, else a linear latent-to-RGB map at 1/8 size). The image is
 * only valid during the call. Return nonzero to cancel. */
/* A LoRA file and its strength (1 = as trained). */
typedef struct {
    const char *path;
    float scale;
} ld_lora_ref;

struct ld_image;
typedef int (*ld_preview_fn)(void *user, const struct ld_image *img, int step, int total);

typedef struct {
    const char *prompt;
    const char *negative_prompt;  /* NULL: none given (SDXL: zero uncond embeddings) */
    int width, height;            /* 0: the model's default */
    int steps;                    /* 0: default (Wuerstchen/Cascade: decoder steps) */
    float cfg_scale;              /* < 0: default (Wuerstchen/Cascade: decoder guidance) */
    int prior_steps;              /* Wuerstchen/Cascade prior; 0: default */
    float prior_cfg_scale;        /* < 0: default */
    const char *sampler;          /* SDXL family: euler, euler_a, dpm++2m, dpm++2m_sde, dpm++2s, unipc, ddim, heun,
                                     dpm2, lcm or an A1111 label ("DPM++ 2M Karras"); NULL: euler */
    uint64_t seed;
    const char *replay_noise;     /* safetensors with the random inputs to use instead of the RNG */
    const char *dump;             /* safetensors to write the intermediate tensors to */
    ld_progress_fn progress;
    void *progress_user;
    const char *prompt_syntax;    /* "a1111" (default: emphasis, BREAK, any length) or "plain" (diffusers:
                                     75 tokens, no weights); every family (docs/text.md) */
    const char *taesd_dir;        /* AutoencoderTiny folder (madebyollin/taesdxl) for previews / tiny decoding */
    int tiny_decoder;             /* 1: decode the final image with taesd_dir instead of the VAE */
    const char *schedule;         /* "default" or "karras" (SDXL family; NULL: default, or what the label says) */
    const struct ld_image *init_image; /* image-to-image / inpainting (SDXL family): RGB8 of any size, resized to
                                     the output size (PIL LANCZOS, as diffusers); width/height 0: the image's
                                     size rounded down to a multiple of 8 */
    const struct ld_image *mask_image; /* inpainting: white repaints, black keeps (any size, resized like the
                                     image, then binarised at half grey) */
    float strength;               /* with init_image: the share of the schedule that runs, (0, 1] */
    ld_preview_fn preview;        /* NULL: no previews */
    void *preview_user;
    int preview_every;            /* steps between previews (0 = 1); the last step always previews */
    const ld_lora_ref *loras;     /* SDXL family: LoRA files (peft/diffusers or kohya keys) merged into the
                                     U-Net and text encoders for this call */
    int nloras;
    const char *lora_dir;         /* where <lora:NAME:SCALE> prompt tags (A1111 syntax) find NAME.safetensors;
                                     NULL: tags are an error */
    float mask_blur;              /* inpainting: Gaussian blur radius in pixels applied to the mask before it
                                     is resized (diffusers' VaeImageProcessor.blur); 0: none, at most 1024 */
    float *latents_out;           /* SDXL family: receives the final latents [4, height/8, width/8] (what the VAE
                                     would decode, before dividing by its scaling factor) and nothing is decoded:
                                     the image stays empty (diffusers' output_type="latent"); NULL: decode */
    ld_cancel_fn cancel;          /* NULL: only the progress callback can stop a run (between steps) */
    void *cancel_user;
} ld_gen_params;

LD_API void ld_gen_params_init(ld_gen_params *p);

/* The values a generation actually used (defaults resolved). */
typedef struct {
    int width, height, steps, prior_steps;
    float cfg_scale, prior_cfg_scale;
    char sampler[32];
    char schedule[16];            /* "default" or "karras" */
    char prompt_syntax[8];        /* "a1111" or "plain" */
    char vae[16];                 /* "" (the model's VAE) or "TAESD" (the tiny decoder) */
    float strength;               /* image-to-image / inpainting strength; 0 for text-to-image */
    float mask_blur;              /* inpainting: the mask's blur radius (0: none or no mask) */
    uint64_t seed;
    char model[128];
    char family[32];
    double seconds;
    char precision[8];            /* "f32" or "bf16": the arithmetic of the matrix products */
    char timestep_spacing[16];    /* SDXL family: the scheduler's spacing ("leading", "trailing", "linspace") */
    char replay_noise[256];       /* the replay file the random inputs came from ("": drawn from seed) */
} ld_gen_info;

typedef struct ld_image {
    int width, height, channels; /* channels = 3, RGB, row-major HWC */
    uint8_t *pixels;
} ld_image;

LD_API void ld_image_free(ld_image *img);

LD_API ld_status ld_generate(ld_ctx *ctx, ld_pipeline *p, const ld_gen_params *params,
                      ld_image *out, ld_gen_info *info);

/* Writes img as a PNG (temp file and rename; "-" streams to standard output)
 * with the A1111 "parameters" text that `leandiff generate` writes, made from
 * info and the prompts of params (params and info may be NULL: no text). */
LD_API ld_status ld_image_save_png(ld_ctx *ctx, const char *path, const ld_image *img, const ld_gen_params *params,
                                   const ld_gen_info *info);

#ifdef __cplusplus
}
#endif
#endif
