/* diffusers -> SGM module names of the SDXL-family U-Net (see sgm_names.h). */
#include "models/sgm_names.h"

#include "io/safetensors.h"

#include <stdio.h>
#include <string.h>

/* n + 1 when "<prefix><n>." starts name, else 0. */
static int index_after(const char *name, const char *prefix) {
    const size_t len = strlen(prefix);
    int v, end = 0;
    if (strncmp(name, prefix, len) || sscanf(name + len, "%d%n", &v, &end) != 1 || name[len + end] != '.' || v < 0)
        return 0;
    return v + 1;
}

static void grow(int *slot, int v) {
    if (v > *slot) *slot = v;
}

void ld_unet_layout_from_weights(const ld_weights *ws, ld_unet_layout *l) {
    memset(l, 0, sizeof *l);
    for (size_t f = 0; f < ld_weights_file_count(ws); f++) {
        const ld_safetensors *st = ld_weights_file(ws, f);
        for (size_t i = 0; i < ld_safetensors_count(st); i++) {
            const char *name = ld_safetensors_at(st, i)->name;
            char pre[64];
            for (int up = 0; up < 2; up++) {
                const int b = index_after(name, up ? "up_blocks." : "down_blocks.") - 1;
                if (b < 0 || b >= LD_SGM_MAX_BLOCKS) continue;
                grow(&l->nblocks, b + 1);
                snprintf(pre, sizeof pre, "%s_blocks.%d.resnets.", up ? "up" : "down", b);
                grow(up ? &l->up_layers[b] : &l->down_layers[b], index_after(name, pre));
                snprintf(pre, sizeof pre, "%s_blocks.%d.%s.", up ? "up" : "down", b, up ? "upsamplers" : "downsamplers");
                if (!strncmp(name, pre, strlen(pre))) *(up ? &l->up_sampler[b] : &l->down_sampler[b]) = 1;
                snprintf(pre, sizeof pre, "%s_blocks.%d.attentions.", up ? "up" : "down", b);
                if (!strncmp(name, pre, strlen(pre))) *(up ? &l->up_attn[b] : &l->down_attn[b]) = 1;
            }
        }
    }
}

/* Inside a ResnetBlock2D: diffusers -> SGM parts. */
static const char *resnet_part(const char *rest) {
    static const char *const map[][2] = {{"norm1", "in_layers.0"},     {"conv1", "in_layers.2"},
                                         {"time_emb_proj", "emb_layers.1"}, {"norm2", "out_layers.0"},
                                         {"conv2", "out_layers.3"},     {"conv_shortcut", "skip_connection"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(rest, map[i][0])) return map[i][1];
    return NULL;
}

/* "<kind>.<j>[.rest]" of a block: kind "resnets" or "attentions", j, rest ("" when none). */
static int layer_of(const char *s, const char *kind, int *j, const char **rest) {
    const size_t len = strlen(kind);
    int end = 0;
    if (strncmp(s, kind, len) || s[len] != '.' || sscanf(s + len + 1, "%d%n", j, &end) != 1 || *j < 0) return 0;
    *rest = s + len + 1 + end;
    if (**rest == '.') (*rest)++;
    else if (**rest) return 0;
    return 1;
}

/* out = "<sgm>.<rest>" (or "<sgm>" when rest is ""); 0 if it does not fit. */
static int emit(char *out, size_t n, const char *sgm, const char *rest) {
    const int w = snprintf(out, n, *rest ? "%s.%s" : "%s", sgm, rest);
    return w >= 0 && (size_t)w < n;
}

int ld_unet_sgm_module(const ld_unet_layout *l, const char *m, char *out, size_t n) {
    static const char *const whole[][2] = {{"conv_in", "input_blocks.0.0"},
                                           {"time_embedding.linear_1", "time_embed.0"},
                                           {"time_embedding.linear_2", "time_embed.2"},
                                           {"add_embedding.linear_1", "label_emb.0.0"},
                                           {"add_embedding.linear_2", "label_emb.0.2"},
                                           {"conv_norm_out", "out.0"},
                                           {"conv_out", "out.2"}};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        if (!strcmp(m, whole[i][0])) return emit(out, n, whole[i][1], "");
    int b, j, end = 0;
    const char *rest, *part;
    char sgm[64];
    if (sscanf(m, "down_blocks.%d.%n", &b, &end) == 1 && end && b >= 0 && b < l->nblocks) {
        int idx = 1;
        for (int k = 0; k < b; k++) idx += l->down_layers[k] + l->down_sampler[k];
        const char *s = m + end;
        if (layer_of(s, "resnets", &j, &rest) && j < l->down_layers[b]) {
            snprintf(sgm, sizeof sgm, "input_blocks.%d.0", idx + j);
            return (part = *rest ? resnet_part(rest) : "") && emit(out, n, sgm, part);
        }
        if (layer_of(s, "attentions", &j, &rest) && j < l->down_layers[b] && l->down_attn[b]) {
            snprintf(sgm, sizeof sgm, "input_blocks.%d.1", idx + j);
            return emit(out, n, sgm, rest);
        }
        if (!strcmp(s, "downsamplers.0.conv") && l->down_sampler[b]) {
            snprintf(sgm, sizeof sgm, "input_blocks.%d.0.op", idx + l->down_layers[b]);
            return emit(out, n, sgm, "");
        }
        return 0;
    }
    end = 0;
    if (sscanf(m, "up_blocks.%d.%n", &b, &end) == 1 && end && b >= 0 && b < l->nblocks) {
        int idx = 0;
        for (int k = 0; k < b; k++) idx += l->up_layers[k];
        const char *s = m + end;
        if (layer_of(s, "resnets", &j, &rest) && j < l->up_layers[b]) {
            snprintf(sgm, sizeof sgm, "output_blocks.%d.0", idx + j);
            return (part = *rest ? resnet_part(rest) : "") && emit(out, n, sgm, part);
        }
        if (layer_of(s, "attentions", &j, &rest) && j < l->up_layers[b] && l->up_attn[b]) {
            snprintf(sgm, sizeof sgm, "output_blocks.%d.1", idx + j);
            return emit(out, n, sgm, rest);
        }
        if (!strcmp(s, "upsamplers.0.conv") && l->up_sampler[b]) { /* after the layer's attention, if any */
            snprintf(sgm, sizeof sgm, "output_blocks.%d.%d.conv", idx + l->up_layers[b] - 1, l->up_attn[b] ? 2 : 1);
            return emit(out, n, sgm, "");
        }
        return 0;
    }
    if (!strncmp(m, "mid_block.", 10)) {
        const char *s = m + 10;
        if (layer_of(s, "resnets", &j, &rest) && j < 2) { /* resnet, attention, resnet */
            snprintf(sgm, sizeof sgm, "middle_block.%d", 2 * j);
            return (part = *rest ? resnet_part(rest) : "") && emit(out, n, sgm, part);
        }
        if (layer_of(s, "attentions", &j, &rest) && j == 0) return emit(out, n, "middle_block.1", rest);
    }
    return 0;
}
