/* Aliases from Stability's Stable Cascade checkpoint names to diffusers names
 * (see stability_names.h). */
#include "models/stability_names.h"

#include <stdio.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix, size_t *stem) {
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m || strcmp(s + n - m, suffix) != 0) return 0;
    *stem = n - m;
    return 1;
}

/* alias = <stem><new_suffix> -> rows [begin, end) of target, unless present. */
static ld_status add(ld_ctx *ctx, ld_weights *ws, const char *target, size_t stem, const char *new_suffix,
                     int64_t begin, int64_t end) {
    char alias[1024];
    if (stem + strlen(new_suffix) >= sizeof alias)
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: tensor name '%s' is too long", ld_weights_where(ws), target);
    snprintf(alias, sizeof alias, "%.*s%s", (int)stem, target, new_suffix);
    if (ld_weights_has(ws, "%s", alias)) return LD_OK;
    return ld_weights_alias(ctx, ws, alias, target, begin, end);
}

/* in_proj_{weight,bias} [3C, ...] -> to_q / to_k / to_v. */
static ld_status split_in_proj(ld_ctx *ctx, ld_weights *ws, const ld_tensor *t, size_t stem, const char *kind) {
    if (t->ndim < 1 || t->shape[0] % 3 != 0)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: '%s' must have 3*C rows (q, k, v stacked)", ld_weights_where(ws),
                       t->name);
    int64_t C = t->shape[0] / 3;
    static const char *qkv[3] = {"to_q", "to_k", "to_v"};
    for (int i = 0; i < 3; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "%s.%s", qkv[i], kind);
        LD_TRY(add(ctx, ws, t->name, stem, suffix, i * C, (i + 1) * C));
    }
    return LD_OK;
}

ld_status ld_stability_alias_unet(ld_ctx *ctx, ld_weights *ws) {
    for (size_t f = 0; f < ld_weights_file_count(ws); f++) {
        const ld_safetensors *st = ld_weights_file(ws, f);
        for (size_t i = 0; i < ld_safetensors_count(st); i++) {
            const ld_tensor *t = ld_safetensors_at(st, i);
            size_t stem;
            if (ends_with(t->name, ".attention.attn.in_proj_weight", &stem))
                LD_TRY(split_in_proj(ctx, ws, t, stem + strlen(".attention."), "weight"));
            else if (ends_with(t->name, ".attention.attn.in_proj_bias", &stem))
                LD_TRY(split_in_proj(ctx, ws, t, stem + strlen(".attention."), "bias"));
            else if (ends_with(t->name, ".attention.attn.out_proj.weight", &stem))
                LD_TRY(add(ctx, ws, t->name, stem + strlen(".attention."), "to_out.0.weight", 0, -1));
            else if (ends_with(t->name, ".attention.attn.out_proj.bias", &stem))
                LD_TRY(add(ctx, ws, t->name, stem + strlen(".attention."), "to_out.0.bias", 0, -1));
            else if (!strcmp(t->name, "clip_mapper.weight"))
                LD_TRY(add(ctx, ws, t->name, 0, "clip_txt_pooled_mapper.weight", 0, -1));
            else if (!strcmp(t->name, "clip_mapper.bias"))
                LD_TRY(add(ctx, ws, t->name, 0, "clip_txt_pooled_mapper.bias", 0, -1));
        }
    }
    return LD_OK;
}

ld_status ld_stability_alias_vqgan(ld_ctx *ctx, ld_weights *ws) {
    if (ld_weights_has(ws, "vquantizer.codebook.weight"))
        return add(ctx, ws, "vquantizer.codebook.weight", 0, "vquantizer.embedding.weight", 0, -1);
    return LD_OK;
}
