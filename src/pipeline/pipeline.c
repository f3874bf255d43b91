/* ld_pipeline_open / ld_generate: family dispatch by model_index.json. */
#include "pipeline/pipeline.h"

#include "io/fileio.h"
#include "io/json.h"
#include "io/model_folder.h"
#include "pipeline/infotext.h"
#include "io/png.h"
#include "tensor/gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ld_pipeline_options_init(ld_pipeline_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->precision = LD_PRECISION_F32;
    opt->vae_tiling = -1;
}

ld_status ld_image_save_png(ld_ctx *ctx, const char *path, const ld_image *img, const ld_gen_params *params,
                            const ld_gen_info *info) {
    if (!img || !img->pixels || img->channels != 3 || img->width < 1 || img->height < 1)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: no RGB image to save", path ? path : "(null)");
    char *text = NULL;
    if (params && info) LD_TRY(ld_infotext_format(ctx, info, params->prompt, params->negative_prompt, &text));
    const char *chunks[] = {"parameters", text, NULL};
    ld_status st = ld_png_write(ctx, path, img->pixels, img->width, img->height, text ? chunks : NULL);
    free(text);
    return st;
}

void ld_gen_params_init(ld_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->prompt = "";
    p->cfg_scale = -1.0f;
    p->prior_cfg_scale = -1.0f;
}

void ld_image_free(ld_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
}

ld_status ld_pipeline_open(ld_ctx *ctx, const ld_pipeline_options *opt, ld_pipeline **out) {
    *out = NULL;
    if (!opt || !opt->model_dir) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "no model folder given");
    json_t *index;
    const char *cls;
    LD_TRY(ld_model_index_load(ctx, opt->model_dir, &index, &cls));
    const ld_pipeline_impl *impl = NULL;
    for (int i = 0; ld_pipeline_registry[i] && !impl; i++)
        for (int j = 0; ld_pipeline_registry[i]->class_names[j]; j++)
            if (strcmp(ld_pipeline_registry[i]->class_names[j], cls) == 0) impl = ld_pipeline_registry[i];
    if (!impl) {
        ld_status st = ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s/model_index.json: pipeline class '%s' is not supported",
                               opt->model_dir, cls);
        json_decref(index);
        return st;
    }
    ld_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        json_decref(index);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    p->impl = impl;
    if (opt->precision != LD_PRECISION_F32 && opt->precision != LD_PRECISION_BF16) {
        json_decref(index);
        free(p);
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unknown precision %d", (int)opt->precision);
    }
    p->precision = opt->precision;
    ld_path_basename(p->model_name, sizeof p->model_name, opt->model_dir);
    ld_status st = impl->open(ctx, opt, index, &p->state);
    json_decref(index);
    if (st != LD_OK) {
        free(p);
        return st;
    }
    *out = p;
    return LD_OK;
}

void ld_pipeline_free(ld_pipeline *p) {
    if (!p) return;
    p->impl->free(p->state);
    free(p);
}

const char *ld_pipeline_family(const ld_pipeline *p) { return p->impl->family; }
const char *ld_pipeline_model_name(const ld_pipeline *p) { return p->model_name; }

void ld_pipeline_defaults(const ld_pipeline *p, ld_gen_info *info) {
    memset(info, 0, sizeof *info);
    snprintf(info->model, sizeof info->model, "%s", p->model_name);
    snprintf(info->family, sizeof info->family, "%s", p->impl->family);
    if (p->impl->defaults) p->impl->defaults(p->state, info);
}

ld_status ld_pipeline_check_finite(ld_ctx *ctx, const float *x, int64_t n, const char *stage, int step, int total) {
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(x[i])) continue;
        const char *what = isnan(x[i]) ? "NaN" : "infinity";
        const char *hint = ld_gemm_get_precision() == LD_PRECISION_BF16 ? ", or try --precision f32" : "";
        if (step > 0)
            return ld_fail(ctx, LD_ERR_MODEL, "%s produced %s at step %d of %d: check the weights%s", stage, what, step,
                           total, hint);
        return ld_fail(ctx, LD_ERR_MODEL, "%s produced %s in the image: check the weights%s", stage, what, hint);
    }
    return LD_OK;
}

ld_status ld_generate(ld_ctx *ctx, ld_pipeline *p, const ld_gen_params *params, ld_image *out, ld_gen_info *info) {
    memset(out, 0, sizeof *out);
    ld_gen_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    if (!params || !params->prompt) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "no prompt given");
    if (params->width < 0 || params->height < 0 || params->width > 8192 || params->height > 8192)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "image size %dx%d is out of range (1..8192)", params->width,
                       params->height);
    if (params->steps < 0 || params->steps > 1000 || params->prior_steps < 0 || params->prior_steps > 1000)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "step count must be between 1 and 1000");
    if (!isfinite(params->cfg_scale) || !isfinite(params->prior_cfg_scale) || params->cfg_scale > 100.0f ||
        params->prior_cfg_scale > 100.0f)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "guidance scale must be a finite number up to 100");
    /* Wuerstchen and Stable Cascade sample with DDPMWuerstchen only */
    if (strcmp(p->impl->family, "sdxl") && params->sampler && strcasecmp(params->sampler, "ddpm") &&
        strcasecmp(params->sampler, "ddpm_wuerstchen"))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "%s models sample with DDPMWuerstchen only (sampler ddpm); '%s' is for the SDXL family",
                       p->impl->family, params->sampler);
    if (strcmp(p->impl->family, "sdxl") && params->latents_out)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "latents as output are for SDXL-family models, not %s", p->impl->family);
    if (strcmp(p->impl->family, "sdxl") && params->nloras)
        return ld_fail(ctx, LD_ERR_UNSUPPORTED, "LoRA files apply to SDXL-family models, not %s", p->impl->family);
    if (strcmp(p->impl->family, "sdxl") && params->schedule && strcmp(params->schedule, "default"))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s models take no '%s' schedule", p->impl->family,
                       params->schedule);
    snprintf(info->model, sizeof info->model, "%s", p->model_name);
    snprintf(info->family, sizeof info->family, "%s", p->impl->family);
    info->seed = params->seed;
    /* Every family runs its GEMMs (linear layers, convolutions) in the
     * pipeline's precision; the setting is process-wide, so restore it. */
    ld_precision saved = ld_gemm_get_precision();
    ld_gemm_set_precision(p->precision);
    /* the models poll the cancel callback through ctx (ld_check_cancel) */
    ld_cancel_fn saved_cancel = ctx ? ctx->cancel : NULL;
    void *saved_user = ctx ? ctx->cancel_user : NULL;
    if (ctx) {
        ctx->cancel = params->cancel;
        ctx->cancel_user = params->cancel_user;
    }
    ld_status st = p->impl->generate(ctx, p->state, params, out, info);
    if (ctx) {
        ctx->cancel = saved_cancel;
        ctx->cancel_user = saved_user;
    }
    ld_gemm_set_precision(saved);
    if (st != LD_OK) {
        ld_image_free(out); /* a stopped or failed run leaves no image */
        return st;
    }
    /* what else changes the pixels, for the infotext */
    snprintf(info->precision, sizeof info->precision, "%s", p->precision == LD_PRECISION_BF16 ? "bf16" : "f32");
    if (params->replay_noise) snprintf(info->replay_noise, sizeof info->replay_noise, "%s", params->replay_noise);
    return st;
}
