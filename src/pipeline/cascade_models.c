/* Stable Cascade pipeline: opening the two folders (and the optional
 * Stability single files), checking that the components fit together, and
 * the per-stage loaders that cascade.c / cascade_decode.c call when a stage
 * starts (see cascade.h for why the weights are not kept mapped). */
#include "pipeline/cascade.h"

#include "io/json.h"
#include "io/model_folder.h"
#include "models/stability_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ld_status ld_cascade_load_text(ld_ctx *ctx, const ld_cascade *c, ld_clip_text **out) {
    return ld_clip_text_load(ctx, c->text_dir, c->variant, out);
}

ld_status ld_cascade_load_prior(ld_ctx *ctx, const ld_cascade *c, ld_sc_unet **out) {
    return ld_sc_unet_load(ctx, c->prior_dir, c->variant, c->prior_weights, out);
}

ld_status ld_cascade_load_decoder(ld_ctx *ctx, const ld_cascade *c, ld_sc_unet **out) {
    return ld_sc_unet_load(ctx, c->decoder_dir, c->variant, c->decoder_weights, out);
}

/* Stage A from the folder, or the folder's config with a stage_a.safetensors. */
ld_status ld_cascade_load_vqgan(ld_ctx *ctx, const ld_cascade *c, ld_paella_vq **out, ld_weights **ws) {
    *ws = NULL;
    if (!c->vqgan_weights) return ld_paella_vq_load(ctx, c->vqgan_dir, c->variant, out);
    char where[4200];
    snprintf(where, sizeof where, "%s/config.json", c->vqgan_dir);
    json_t *cfg;
    LD_TRY(ld_json_load_file(ctx, where, &cfg));
    ld_status st = ld_weights_open_file(ctx, c->vqgan_weights, ws);
    if (st == LD_OK) st = ld_stability_alias_vqgan(ctx, *ws);
    if (st == LD_OK) st = ld_paella_vq_build(ctx, where, cfg, *ws, out);
    json_decref(cfg);
    if (st != LD_OK) {
        ld_weights_free(*ws);
        *ws = NULL;
    }
    return st;
}

void ld_cascade_free(void *state) {
    ld_cascade *c = state;
    if (!c) return;
    ld_clip_tokenizer_free(c->tok);
    json_decref(c->prior_sched_cfg);
    json_decref(c->decoder_sched_cfg);
    free(c->variant);
    free(c->prior_weights);
    free(c->decoder_weights);
    free(c->vqgan_weights);
    free(c);
}

static ld_status copy_opt(ld_ctx *ctx, const char *s, char **out) {
    *out = NULL;
    if (!s) return LD_OK;
    size_t n = strlen(s) + 1;
    LD_TRY(ld_malloc(ctx, (void **)out, n, "option string"));
    memcpy(*out, s, n);
    return LD_OK;
}

static ld_status load_sched(ld_ctx *ctx, const char *dir, const json_t *index, json_t **cfg) {
    char path[4096];
    LD_TRY(ld_component_dir(ctx, dir, index, "scheduler", path, sizeof path));
    LD_TRY(ld_component_config(ctx, path, cfg));
    ld_scheduler *s; /* validate now rather than at the first generation */
    char where[4200];
    snprintf(where, sizeof where, "%s/scheduler_config.json", path);
    LD_TRY(ld_scheduler_create(ctx, "ddpm_wuerstchen", LD_SCHEDULE_DEFAULT, *cfg, where, NULL, &s));
    ld_scheduler_free(s);
    return LD_OK;
}

/* Builds every component once (weights are checked by name and shape, not
 * read), keeps what the stages need to know, and checks that the widths
 * agree: text encoder -> prior -> decoder -> vqgan. */
static ld_status check_components(ld_ctx *ctx, ld_cascade *c) {
    ld_clip_text *text = NULL;
    ld_sc_unet *unet = NULL;
    ld_paella_vq *vq = NULL;
    ld_weights *vq_ws = NULL;
    LD_TRY(ld_cascade_load_text(ctx, c, &text));
    c->text_hidden = ld_clip_text_get_config(text)->hidden_size;
    c->text_proj = ld_clip_text_get_config(text)->projection_dim;
    ld_clip_text_free(text);
    LD_TRY(ld_cascade_load_prior(ctx, c, &unet));
    c->prior_cfg = unet->cfg;
    ld_sc_unet_free(unet);
    LD_TRY(ld_cascade_load_decoder(ctx, c, &unet));
    c->decoder_cfg = unet->cfg;
    ld_sc_unet_free(unet);
    LD_TRY(ld_cascade_load_vqgan(ctx, c, &vq, &vq_ws));
    int64_t vq_latent = vq->latent_channels;
    ld_paella_vq_free(vq);
    ld_weights_free(vq_ws);

    const ld_sc_config *p = &c->prior_cfg, *d = &c->decoder_cfg;
    if (!p->clip_text_in || !p->clip_img_in)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: not a Stable Cascade prior (no clip_text_in_channels)", c->prior_dir);
    if (!d->effnet_in)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: not a Stable Cascade decoder (no effnet_in_channels)", c->decoder_dir);
    if (c->text_hidden != p->clip_text_in || c->text_proj != p->clip_pooled_in || c->text_proj != d->clip_pooled_in)
        return ld_fail(ctx, LD_ERR_MODEL,
                       "%s: hidden_size %lld / projection_dim %lld do not match the prior's clip_text_in_channels "
                       "%lld / clip_text_pooled_in_channels %lld and the decoder's %lld",
                       c->text_dir, (long long)c->text_hidden, (long long)c->text_proj, (long long)p->clip_text_in,
                       (long long)p->clip_pooled_in, (long long)d->clip_pooled_in);
    if (p->out_channels != d->effnet_in || p->in_channels != p->out_channels)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: out_channels %lld does not match the decoder's effnet_in_channels %lld",
                       c->prior_dir, (long long)p->out_channels, (long long)d->effnet_in);
    if (d->out_channels != vq_latent || d->in_channels != d->out_channels)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: out_channels %lld does not match the vqgan's latent_channels %lld",
                       c->decoder_dir, (long long)d->out_channels, (long long)vq_latent);
    return LD_OK;
}

static ld_status open_decoder_side(ld_ctx *ctx, const ld_pipeline_options *opt, ld_cascade *c) {
    json_t *index;
    const char *cls;
    LD_TRY(ld_model_index_load(ctx, opt->decoder_dir, &index, &cls));
    ld_status st = LD_OK;
    if (strcmp(cls, "StableCascadeDecoderPipeline") != 0)
        st = ld_fail(ctx, LD_ERR_MODEL,
                     "%s/model_index.json: _class_name is '%s', expected StableCascadeDecoderPipeline",
                     opt->decoder_dir, cls);
    if (st == LD_OK) st = ld_json_num(ctx, opt->decoder_dir, index, "latent_dim_scale", 10.67, &c->latent_dim_scale);
    if (st == LD_OK && !(c->latent_dim_scale >= 1.0 && c->latent_dim_scale <= 64.0))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s/model_index.json: latent_dim_scale %g is out of range", opt->decoder_dir,
                     c->latent_dim_scale);
    if (st == LD_OK)
        st = ld_component_dir(ctx, opt->decoder_dir, index, "decoder", c->decoder_dir, sizeof c->decoder_dir);
    if (st == LD_OK) st = ld_component_dir(ctx, opt->decoder_dir, index, "vqgan", c->vqgan_dir, sizeof c->vqgan_dir);
    if (st == LD_OK) st = load_sched(ctx, opt->decoder_dir, index, &c->decoder_sched_cfg);
    json_decref(index);
    return st;
}

ld_status ld_cascade_open(ld_ctx *ctx, const ld_pipeline_options *opt, json_t *index, void **state) {
    *state = NULL;
    if (!opt->decoder_dir)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                       "%s is a Stable Cascade prior: the decoder folder (StableCascadeDecoderPipeline) is needed too",
                       opt->model_dir);
    ld_cascade *c;
    LD_TRY(ld_calloc(ctx, (void **)&c, 1, sizeof *c, "Stable Cascade pipeline"));
    char path[4096];
    ld_status st = copy_opt(ctx, opt->variant, &c->variant);
    if (st == LD_OK) st = copy_opt(ctx, opt->prior_weights, &c->prior_weights);
    if (st == LD_OK) st = copy_opt(ctx, opt->decoder_weights, &c->decoder_weights);
    if (st == LD_OK) st = copy_opt(ctx, opt->vqgan_weights, &c->vqgan_weights);
    if (st == LD_OK)
        st = ld_json_num(ctx, opt->model_dir, index, "resolution_multiple", 42.67, &c->resolution_multiple);
    if (st == LD_OK && !(c->resolution_multiple >= 1.0 && c->resolution_multiple <= 1024.0))
        st = ld_fail(ctx, LD_ERR_MODEL, "%s/model_index.json: resolution_multiple %g is out of range", opt->model_dir,
                     c->resolution_multiple);
    if (st == LD_OK) st = ld_component_dir(ctx, opt->model_dir, index, "prior", c->prior_dir, sizeof c->prior_dir);
    if (st == LD_OK) st = ld_component_dir(ctx, opt->model_dir, index, "text_encoder", c->text_dir, sizeof c->text_dir);
    if (st == LD_OK) st = ld_component_dir(ctx, opt->model_dir, index, "tokenizer", path, sizeof path);
    if (st == LD_OK) st = ld_clip_tokenizer_load(ctx, path, &c->tok);
    if (st == LD_OK) st = load_sched(ctx, opt->model_dir, index, &c->prior_sched_cfg);
    if (st == LD_OK) st = open_decoder_side(ctx, opt, c);
    if (st == LD_OK) st = check_components(ctx, c);
    if (st != LD_OK) {
        ld_cascade_free(c);
        return st;
    }
    *state = c;
    return LD_OK;
}
