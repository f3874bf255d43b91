/* LoRA files merged into component weights (see lora_merge.h). */
#include "models/lora_merge.h"

#include "io/safetensors.h"
#include "models/sgm_names.h"
#include "tensor/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ld_lora_kohya_name(char *buf, size_t n, const char *prefix, const char *module, const char *suffix) {
    snprintf(buf, n, "%s_%s", prefix, module);
    for (char *p = buf + strlen(prefix) + 1; *p; p++)
        if (*p == '.') *p = '_';
    strncat(buf, suffix, n - strlen(buf) - 1);
}

/* The parts of a key: which component, layout and role. */
typedef enum { ROLE_DOWN, ROLE_UP, ROLE_ALPHA } key_role;

typedef struct {
    ld_lora_target target;
    int kohya;
    key_role role;
    char module[512]; /* peft: dotted module; kohya: underscored */
} key_info;

static int ends_with(const char *s, const char *suf, size_t *stem) {
    size_t a = strlen(s), b = strlen(suf);
    if (a < b || strcmp(s + a - b, suf)) return 0;
    *stem = a - b;
    return 1;
}

/* 0 if the key is not of a known layout. */
static int parse_key(const char *key, key_info *k) {
    static const struct {
        const char *prefix;
        ld_lora_target target;
        int kohya;
    } prefixes[] = {{"unet.", LD_LORA_UNET, 0},        {"text_encoder_2.", LD_LORA_TE2, 0},
                    {"text_encoder.", LD_LORA_TE1, 0}, {"lora_unet_", LD_LORA_UNET, 1},
                    {"lora_te1_", LD_LORA_TE1, 1},     {"lora_te2_", LD_LORA_TE2, 1},
                    {"lora_te_", LD_LORA_TE1, 1}};
    static const struct {
        const char *suffix;
        key_role role;
        int kohya; /* -1: either */
    } suffixes[] = {{".lora_A.weight", ROLE_DOWN, 0},   {".lora_B.weight", ROLE_UP, 0},
                    {".lora.down.weight", ROLE_DOWN, 0}, {".lora.up.weight", ROLE_UP, 0},
                    {".lora_down.weight", ROLE_DOWN, 1}, {".lora_up.weight", ROLE_UP, 1},
                    {".alpha", ROLE_ALPHA, -1}};
    for (size_t p = 0; p < sizeof prefixes / sizeof *prefixes; p++) {
        const size_t pl = strlen(prefixes[p].prefix);
        if (strncmp(key, prefixes[p].prefix, pl)) continue;
        for (size_t s = 0; s < sizeof suffixes / sizeof *suffixes; s++) {
            size_t stem;
            if (suffixes[s].kohya >= 0 && suffixes[s].kohya != prefixes[p].kohya) continue;
            if (!ends_with(key, suffixes[s].suffix, &stem) || stem <= pl || stem - pl >= sizeof k->module) continue;
            k->target = prefixes[p].target;
            k->kohya = prefixes[p].kohya;
            k->role = suffixes[s].role;
            memcpy(k->module, key + pl, stem - pl);
            k->module[stem - pl] = 0;
            return 1;
        }
        return 0;
    }
    return 0;
}

ld_status ld_lora_check_file(ld_ctx *ctx, const char *path) {
    ld_safetensors *f;
    LD_TRY(ld_safetensors_open(ctx, path, &f));
    ld_status st = ld_lora_check(ctx, f, path);
    ld_safetensors_close(f);
    return st;
}

ld_status ld_lora_check(ld_ctx *ctx, const ld_safetensors *f, const char *path) {
    ld_status st = LD_OK;
    for (size_t i = 0; st == LD_OK && i < ld_safetensors_count(f); i++) {
        const ld_tensor *t = ld_safetensors_at(f, i);
        key_info k;
        if (!parse_key(t->name, &k))
            st = ld_fail(ctx, LD_ERR_UNSUPPORTED,
                         "%s: key '%s' is not a LoRA key leandiff merges (peft/diffusers lora_A/lora_B or kohya "
                         "lora_down/lora_up/alpha on unet, text_encoder, text_encoder_2)",
                         path, t->name);
        else if (t->dtype != LD_F32 && t->dtype != LD_F16 && t->dtype != LD_BF16)
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s: '%s' must be F32, F16 or BF16", path, t->name);
    }
    if (st == LD_OK && ld_safetensors_count(f) == 0) st = ld_fail(ctx, LD_ERR_FORMAT, "%s: no tensors", path);
    return st;
}

/* The base tensor a module of the file patches: "<module>.weight" (peft), or
 * the tensor whose kohya name is the module's (kohya), by its diffusers
 * name or, for the U-Net, its SGM name (sgm, when not NULL). NULL if none. */
static const ld_tensor *base_of(const ld_weights *ws, const key_info *k, const ld_unet_layout *sgm, char *name,
                                size_t n) {
    if (!k->kohya) {
        snprintf(name, n, "%s.weight", k->module);
        return ld_weights_find(ws, name);
    }
    for (size_t f = 0; f < ld_weights_file_count(ws); f++) {
        const ld_safetensors *st = ld_weights_file(ws, f);
        for (size_t i = 0; i < ld_safetensors_count(st); i++) {
            const char *tn = ld_safetensors_at(st, i)->name;
            size_t stem;
            if (!ends_with(tn, ".weight", &stem) || stem >= n) continue;
            char buf[600], mod[600];
            memcpy(mod, tn, stem);
            mod[stem] = 0;
            ld_lora_kohya_name(buf, sizeof buf, "x", mod, "");
            int same = strcmp(buf + 2, k->module) == 0;
            char sgm_mod[600];
            if (!same && sgm && ld_unet_sgm_module(sgm, mod, sgm_mod, sizeof sgm_mod)) {
                ld_lora_kohya_name(buf, sizeof buf, "x", sgm_mod, "");
                same = strcmp(buf + 2, k->module) == 0;
            }
            if (same) {
                snprintf(name, n, "%s", tn);
                return ld_weights_find(ws, tn);
            }
        }
    }
    return NULL;
}

static const char *target_name(ld_lora_target t) {
    return t == LD_LORA_UNET ? "unet" : t == LD_LORA_TE1 ? "text_encoder" : "text_encoder_2";
}

ld_status ld_lora_merge_file(ld_ctx *ctx, ld_weights *ws, ld_lora_target target, const ld_safetensors *f,
                             const char *path, float scale) {
    ld_status st = LD_OK;
    int merged = 0;
    ld_unet_layout layout; /* kohya's SDXL files name U-Net modules the SGM way */
    if (target == LD_LORA_UNET) ld_unet_layout_from_weights(ws, &layout);
    for (size_t i = 0; st == LD_OK && i < ld_safetensors_count(f); i++) {
        const ld_tensor *down = ld_safetensors_at(f, i);
        key_info k;
        if (!parse_key(down->name, &k)) {
            st = ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: key '%s' is not a LoRA key leandiff merges", path, down->name);
            break;
        }
        if (k.target != target || k.role != ROLE_DOWN) continue;
        /* its up and alpha: the same module with the other suffixes */
        const ld_tensor *up = NULL, *alpha = NULL;
        for (size_t j = 0; j < ld_safetensors_count(f); j++) {
            const ld_tensor *o = ld_safetensors_at(f, j);
            key_info ko;
            if (parse_key(o->name, &ko) && ko.target == target && !strcmp(ko.module, k.module)) {
                if (ko.role == ROLE_UP) up = o;
                if (ko.role == ROLE_ALPHA) alpha = o;
            }
        }
        char base_name[600];
        const ld_tensor *w = base_of(ws, &k, target == LD_LORA_UNET ? &layout : NULL, base_name, sizeof base_name);
        const int64_t r = down->ndim >= 2 ? down->shape[0] : 0;
        if (!up) {
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s: '%s' has no matching up (B) weight", path, down->name);
        } else if (!w) {
            st = ld_fail(ctx, LD_ERR_MODEL, "%s: key '%s' matches no tensor of the %s (%s)", path, down->name,
                         target_name(target), ld_weights_where(ws));
        } else {
            const int64_t out = w->shape[0], in = ld_tensor_numel(w) / (out ? out : 1);
            const int conv_ok = w->ndim == 4 && down->ndim == 4 && up->ndim == 4 && up->shape[2] == 1 &&
                                up->shape[3] == 1 && down->shape[1] == w->shape[1] && down->shape[2] == w->shape[2] &&
                                down->shape[3] == w->shape[3];
            const int lin_ok = down->ndim == 2 && up->ndim == 2 && ld_tensor_numel(w) == out * down->shape[1];
            if (r < 1 || up->shape[0] != out || up->shape[1] != r || !(conv_ok || lin_ok) ||
                (alpha && ld_tensor_numel(alpha) != 1)) {
                char a[128], b[128], c[128];
                st = ld_fail(ctx, LD_ERR_MODEL, "%s: '%s' %s and its up %s do not fit %s %s", path, down->name,
                             ld_shape_str(a, sizeof a, down->ndim, down->shape),
                             ld_shape_str(b, sizeof b, up->ndim, up->shape), base_name,
                             ld_shape_str(c, sizeof c, w->ndim, w->shape));
            } else {
                const float a = alpha ? ld_tensor_get_f32(alpha, 0) : (float)r, s = scale * a / (float)r;
                float *dst, *dn = malloc(sizeof(float) * (size_t)(r * in)), *u = malloc(sizeof(float) * (size_t)(out * r));
                st = dn && u ? ld_weights_override_f32(ctx, ws, base_name, &dst) : ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
                if (st == LD_OK) {
                    ld_convert_to_f32(dn, down->data, down->dtype, 0, r * in);
                    ld_convert_to_f32(u, up->data, up->dtype, 0, out * r);
                    for (int64_t e = 0; e < out * r; e++) u[e] *= s;
                    ld_mat A = ld_mat_f32(u, r, 1), Bm = ld_mat_f32(dn, in, 1); /* W += s up . down */
                    ld_gemm(out, in, r, &A, &Bm, dst, in, 1.0f, NULL, NULL);
                    merged++;
                }
                free(dn);
                free(u);
            }
        }
    }
    if (st == LD_OK && merged) ld_log_info("%s: %d layers of the %s patched", path, merged, target_name(target));
    return st;
}

ld_status ld_lora_merge(ld_ctx *ctx, ld_weights *ws, ld_lora_target target, const ld_lora_ref *loras, int n) {
    for (int i = 0; i < n; i++) {
        if (!loras[i].path) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "LoRA %d has no file", i + 1);
        ld_safetensors *f;
        LD_TRY(ld_safetensors_open(ctx, loras[i].path, &f));
        ld_status st = ld_lora_merge_file(ctx, ws, target, f, loras[i].path, loras[i].scale);
        ld_safetensors_close(f);
        LD_TRY(st);
    }
    return LD_OK;
}
