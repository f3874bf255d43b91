/* TEMPORARY development aid (deleted before the branch is finished): a fake
 * pipeline for `leandiff serve -m fake:` until the real SDXL pipeline lands. */
#include "pipeline/pipeline.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static ld_status fake_open(ld_ctx *ctx, const ld_pipeline_options *opt, json_t *mi, void **state) { return LD_OK; }
static void fake_free(void *state) {}
static ld_status fake_generate(ld_ctx *ctx, void *state, const ld_gen_params *p, ld_image *out, ld_gen_info *info) {
    int w = p->width ? p->width : 128, h = p->height ? p->height : 128, steps = p->steps ? p->steps : 20;
    info->width = w; info->height = h; info->steps = steps;
    info->cfg_scale = p->cfg_scale < 0 ? 5.0f : p->cfg_scale;
    snprintf(info->sampler, sizeof info->sampler, "%s", p->sampler ? p->sampler : "euler");
    const char *ms = getenv("LEANDIFF_FAKE_STEP_MS");
    long step_ms = ms ? atol(ms) : 20;
    if (p->progress && p->progress(p->progress_user, "text", 1, 1, 0)) return ld_fail(ctx, LD_ERR_CANCELLED, "cancelled");
    for (int i = 1; i <= steps; i++) {
        struct timespec ts = {step_ms / 1000, (step_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (p->progress && p->progress(p->progress_user, "unet", i, steps, 0)) return ld_fail(ctx, LD_ERR_CANCELLED, "cancelled");
    }
    out->width = w; out->height = h; out->channels = 3;
    out->pixels = malloc((size_t)w * h * 3);
    if (!out->pixels) return ld_fail(ctx, LD_ERR_NOMEM, "oom");
    uint64_t x = p->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (const char *c = p->prompt; *c; c++) x = x * 31 + (unsigned char)*c;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) { x ^= x >> 12; x ^= x << 25; x ^= x >> 27; out->pixels[i] = (uint8_t)((x * 2685821657736338717ULL) >> 56); }
    if (p->progress && p->progress(p->progress_user, "vae", 1, 1, 0)) { ld_image_free(out); return ld_fail(ctx, LD_ERR_CANCELLED, "cancelled"); }
    return LD_OK;
}
static const char *const fake_names[] = {"Fake", NULL};
static const ld_pipeline_impl fake_impl = {"sdxl", fake_names, fake_open, fake_free, fake_generate};

ld_pipeline *server_fake_pipeline(void);
ld_pipeline *server_fake_pipeline(void) {
    ld_pipeline *p = calloc(1, sizeof *p);
    p->impl = &fake_impl;
    snprintf(p->model_name, sizeof p->model_name, "fake-model");
    return p;
}
