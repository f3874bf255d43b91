/* The teacher generates the training latents of data-free distillation
 * (see teacher_latents.h). */
#include "train/teacher_latents.h"

#include "base/mix.h"
#include "io/fileio.h"
#include "io/safetensors.h"
#include "leandiff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the latents depend on, as the cache file's metadata records it. */
static void describe(const ld_teacher_gen *g, const ld_dataset *ds, int res, uint64_t seed, char *out, size_t cap) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the prompts, each with its terminator */
    for (size_t i = 0; i < ds->n; i++)
        for (const char *p = ds->items[i].caption;; p++) {
            h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
            if (!*p) break;
        }
    snprintf(out, cap, "prompts %zu fnv1a %016llx, %dx%d, steps %d, cfg %g, sampler %s, seed %llu", ds->n,
             (unsigned long long)h, res, res, g->steps, (double)g->cfg, g->sampler ? g->sampler : "euler",
             (unsigned long long)seed);
}

/* The cached latents, if the file is there and was made the same way. */
static int load_cached(ld_ctx *ctx, const char *path, const char *want, float *latents, int64_t n) {
    ld_safetensors *f;
    if (!ld_file_exists(path) || ld_safetensors_open(ctx, path, &f) != LD_OK) return 0;
    const char *made = ld_safetensors_meta_get(f, "generated");
    const ld_tensor *t = ld_safetensors_find(f, "latents");
    const int ok = made && !strcmp(made, want) && t && t->dtype == LD_F32 && ld_tensor_numel(t) == n;
    if (ok) memcpy(latents, t->data, sizeof(float) * (size_t)n);
    ld_safetensors_close(f);
    return ok;
}

ld_status ld_teacher_latents(ld_ctx *ctx, const ld_teacher_gen *g, const ld_dataset *ds, int res, uint64_t seed,
                             ld_status (*report)(ld_ctx *ctx, void *user, int done, int total), void *user,
                             float *latents, int C, int h, int w) {
    char want[256];
    describe(g, ds, res, seed, want, sizeof want);
    const int64_t per = (int64_t)C * h * w;
    if (g->cache_path && load_cached(ctx, g->cache_path, want, latents, (int64_t)ds->n * per)) {
        ld_log_info("teacher latents read from %s (%s)", g->cache_path, want);
        return LD_OK;
    }
    if (g->read_only)
        return ld_fail(ctx, LD_ERR_IO, "%s: the teacher's latents (%s) are not there", g->cache_path ? g->cache_path : "?",
                       want);
    ld_pipeline_options po;
    ld_pipeline_options_init(&po);
    po.model_dir = g->pipeline;
    ld_pipeline *p;
    LD_TRY(ld_pipeline_open(ctx, &po, &p));
    ld_status st = strcmp(ld_pipeline_family(p), "sdxl")
                       ? ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: data-free distillation needs an SDXL-family teacher "
                                                          "pipeline, not %s", g->pipeline, ld_pipeline_family(p))
                       : LD_OK;
    for (size_t i = 0; st == LD_OK && i < ds->n; i++) {
        ld_gen_params gp;
        ld_gen_params_init(&gp);
        gp.prompt = ds->items[i].caption;
        gp.width = gp.height = res;
        gp.steps = g->steps;
        gp.cfg_scale = g->cfg;
        gp.sampler = g->sampler;
        gp.prompt_syntax = "plain"; /* the captions are encoded plainly for training too */
        gp.seed = ld_mix64(seed ^ ld_mix64(0x9e4ull + i));
        gp.latents_out = latents + (int64_t)i * per;
        ld_log_info("teacher latents %zu/%zu: seed %llu, \"%s\"", i + 1, ds->n, (unsigned long long)gp.seed, gp.prompt);
        ld_image img;
        st = ld_generate(ctx, p, &gp, &img, NULL);
        ld_image_free(&img);
        if (st == LD_OK && report) st = report(ctx, user, (int)i + 1, (int)ds->n);
    }
    ld_pipeline_free(p);
    if (st == LD_OK && g->cache_path) {
        ld_st_write_entry e = {.name = "latents", .dtype = LD_F32, .ndim = 4,
                               .shape = {(int64_t)ds->n, C, h, w}, .data = latents};
        const char *meta[] = {"generated", want, "teacher", g->pipeline, NULL};
        st = ld_safetensors_write(ctx, g->cache_path, &e, 1, meta);
    }
    return st;
}
