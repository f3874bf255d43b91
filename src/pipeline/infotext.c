/* A1111 infotext formatting (see infotext.h). */
#include "pipeline/infotext.h"

#include "sched/scheduler.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ld_infotext_sampler_label(const char *sampler, const char *schedule) {
    if (!sampler || !*sampler) return "Euler";
    if (!strcmp(sampler, "ddpm") || !strcmp(sampler, "ddpm_wuerstchen")) return "DDPM";
    ld_schedule sc = schedule && !strcmp(schedule, "karras") ? LD_SCHEDULE_KARRAS : LD_SCHEDULE_DEFAULT;
    const ld_sampler_desc *d = ld_sampler_find(sampler, &sc);
    return d ? ld_sampler_label(d, sc) : sampler;
}

/* A growable string. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) LD_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

char *ld_infotext_quote(const char *value) {
    sbuf b = {0};
    if (!strpbrk(value, ",:\n")) {
        sb_str(&b, value);
        if (!b.s && !b.oom) sb_put(&b, "", 0);
        return b.oom ? (free(b.s), NULL) : b.s;
    }
    /* json.dumps(value, ensure_ascii=False) */
    sb_str(&b, "\"");
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        switch (*p) {
        case '"': sb_str(&b, "\\\""); break;
        case '\\': sb_str(&b, "\\\\"); break;
        case '\n': sb_str(&b, "\\n"); break;
        case '\r': sb_str(&b, "\\r"); break;
        case '\t': sb_str(&b, "\\t"); break;
        case '\b': sb_str(&b, "\\b"); break;
        case '\f': sb_str(&b, "\\f"); break;
        default:
            if (*p < 0x20) sb_printf(&b, "\\u%04x", *p);
            else sb_put(&b, (const char *)p, 1);
        }
    }
    sb_str(&b, "\"");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ", Key: quote(value)" (no leading ", " for the first pair). */
static void sb_pair(sbuf *b, int *first, const char *key, const char *value) {
    char *q = ld_infotext_quote(value);
    if (!q) {
        b->oom = 1;
        return;
    }
    if (!*first) sb_str(b, ", ");
    *first = 0;
    sb_str(b, key);
    sb_str(b, ": ");
    sb_str(b, q);
    free(q);
}

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

ld_status ld_infotext_format(ld_ctx *ctx, const ld_gen_info *info, const char *prompt, const char *negative_prompt,
                             char **out) {
    *out = NULL;
    sbuf b = {0};
    char v[160];
    int first = 1;
    sb_str(&b, prompt ? prompt : "");
    if (negative_prompt) { /* "" is a choice too: SDXL encodes it, where none gives zero embeddings */
        sb_str(&b, "\nNegative prompt: ");
        sb_str(&b, negative_prompt);
    }
    sb_str(&b, "\n");
    snprintf(v, sizeof v, "%d", info->steps);
    sb_pair(&b, &first, "Steps", v);
    sb_pair(&b, &first, "Sampler", ld_infotext_sampler_label(info->sampler, info->schedule));
    snprintf(v, sizeof v, "%g", (double)info->cfg_scale);
    sb_pair(&b, &first, "CFG scale", v);
    if (!info->replay_noise[0]) { /* with a replay file no seed was drawn */
        snprintf(v, sizeof v, "%llu", (unsigned long long)info->seed);
        sb_pair(&b, &first, "Seed", v);
    }
    snprintf(v, sizeof v, "%dx%d", info->width, info->height);
    sb_pair(&b, &first, "Size", v);
    if (info->model[0]) sb_pair(&b, &first, "Model", info->model);
    if (info->strength > 0) {
        snprintf(v, sizeof v, "%g", (double)info->strength);
        sb_pair(&b, &first, "Denoising strength", v);
    }
    if (info->mask_blur > 0) { /* A1111 writes it for inpainting */
        snprintf(v, sizeof v, "%g", (double)info->mask_blur);
        sb_pair(&b, &first, "Mask blur", v);
    }
    if (info->vae[0]) sb_pair(&b, &first, "VAE", info->vae);
    if (info->prompt_syntax[0]) sb_pair(&b, &first, "Prompt syntax", info->prompt_syntax);
    if (info->prior_steps > 0) {
        snprintf(v, sizeof v, "%d", info->prior_steps);
        sb_pair(&b, &first, "Prior steps", v);
        snprintf(v, sizeof v, "%g", (double)info->prior_cfg_scale);
        sb_pair(&b, &first, "Prior CFG scale", v);
    }
    if (info->timestep_spacing[0]) sb_pair(&b, &first, "Timestep spacing", info->timestep_spacing);
    if (info->precision[0]) sb_pair(&b, &first, "Precision", info->precision);
    if (info->replay_noise[0]) sb_pair(&b, &first, "Noise file", info->replay_noise);
    sb_pair(&b, &first, "RNG", "NV");
    snprintf(v, sizeof v, "leandiff %s", ld_version());
    sb_pair(&b, &first, "Version", v);
    if (b.oom || !b.s) {
        free(b.s);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory formatting the infotext");
    }
    /* Python str.strip() */
    size_t start = 0, end = b.len;
    while (start < end && is_space(b.s[start])) start++;
    while (end > start && is_space(b.s[end - 1])) end--;
    memmove(b.s, b.s + start, end - start);
    b.s[end - start] = 0;
    *out = b.s;
    return LD_OK;
}
