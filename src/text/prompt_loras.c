/* LoRA prompt tags (see prompt_loras.h). */
#include "text/prompt_loras.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TAGS 64
#define MAX_NAME 200

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == ' ';
}

/* Parses the tag starting at s ('<'); returns its length, 0 if it is not a
 * LoRA tag, -1 (error on ctx) if it is a malformed one. */
static int parse_tag(ld_ctx *ctx, const char *s, char *name, float *scale) {
    size_t kw;
    if (!strncmp(s, "<lora:", 6)) kw = 6;
    else if (!strncmp(s, "<lyco:", 6)) kw = 6;
    else return 0;
    const char *end = strchr(s, '>');
    if (!end) return 0;
    const char *body = s + kw, *colon = memchr(body, ':', (size_t)(end - body));
    const size_t nlen = (size_t)((colon ? colon : end) - body);
    if (nlen == 0 || nlen > MAX_NAME) {
        ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "prompt tag '%.*s': the LoRA name must be 1 to %d characters",
                (int)(end - s + 1), s, MAX_NAME);
        return -1;
    }
    for (size_t i = 0; i < nlen; i++)
        if (!name_char(body[i]) || (body[i] == '.' && i + 1 < nlen && body[i + 1] == '.')) {
            ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                    "prompt tag '%.*s': a LoRA name may hold letters, digits, '_', '-', '.' and spaces only",
                    (int)(end - s + 1), s);
            return -1;
        }
    memcpy(name, body, nlen);
    name[nlen] = 0;
    *scale = 1.0f;
    if (colon) {
        char num[64], *e;
        const size_t len = (size_t)(end - colon - 1);
        if (len == 0 || len >= sizeof num) goto bad;
        memcpy(num, colon + 1, len);
        num[len] = 0;
        const double v = strtod(num, &e);
        if (e == num || *e || !isfinite(v) || fabs(v) > 100) goto bad;
        *scale = (float)v;
    }
    return (int)(end - s + 1);
bad:
    ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "prompt tag '%.*s': the strength must be a number within +-100",
            (int)(end - s + 1), s);
    return -1;
}

ld_status ld_prompt_take_loras(ld_ctx *ctx, const char *text, char **clean, ld_prompt_lora **loras, int *n) {
    *clean = NULL;
    *loras = NULL;
    *n = 0;
    const size_t len = strlen(text);
    char *out = malloc(len + 1);
    ld_prompt_lora *l = calloc(MAX_TAGS, sizeof *l);
    if (!out || !l) {
        free(out);
        free(l);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    size_t o = 0;
    ld_status st = LD_OK;
    for (size_t i = 0; i < len && st == LD_OK;) {
        char name[MAX_NAME + 1];
        float scale;
        const int t = text[i] == '<' ? parse_tag(ctx, text + i, name, &scale) : 0;
        if (t < 0) {
            st = LD_ERR_INVALID_ARGUMENT;
        } else if (t == 0) {
            out[o++] = text[i++];
        } else if (*n == MAX_TAGS) {
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "more than %d LoRA tags in one prompt", MAX_TAGS);
        } else {
            if (!(l[*n].name = strdup(name))) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
            else l[(*n)++].scale = scale;
            i += (size_t)t;
        }
    }
    out[o] = 0;
    if (st != LD_OK) {
        free(out);
        ld_prompt_loras_free(l, *n);
        *n = 0;
        return st;
    }
    *clean = out;
    *loras = l;
    return LD_OK;
}

void ld_prompt_loras_free(ld_prompt_lora *l, int n) {
    for (int i = 0; l && i < n; i++) free(l[i].name);
    free(l);
}
