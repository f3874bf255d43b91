/* Every sampler through a whole tiny KOALA pipeline against diffusers:
 * the files of tests/data/samplers (made by make_sampler_pipelines.py from
 * diffusers' UNet2DConditionModel, AutoencoderKL and scheduler classes in
 * StableDiffusionXLPipeline's loop) replayed with ld_generate (latents0 and
 * each stochastic call's noise from the file) and compared with the pipeline
 * tolerances of testdata/README.md: every call's latents and the final
 * latents within 1e-3 relative (L2), image_u8 equal on at least 99 % of the
 * values and never off by more than 2. */
#include "io/safetensors.h"
#include "leandiff.h"
#include "test_koala_tiny.h"

#include <dirent.h>

static void run_case(ld_pipeline *pipe, const char *path, const char *tmp, const char *name) {
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *ref = NULL;
    if (ld_safetensors_open(ctx, path, &ref) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return;
    }
    const char *m[] = {"prompt", "negative_prompt", "steps", "guidance_scale", "sampler", "schedule", "width", "height"};
    const char *v[8];
    for (int i = 0; i < 8; i++) v[i] = ld_safetensors_meta_get(ref, m[i]);
    for (int i = 0; i < 8; i++) CHECK(v[i], "%s: metadata %s", name, m[i]);
    char dump[4900];
    snprintf(dump, sizeof dump, "%s/%s.dump.safetensors", tmp, name);
    remove(dump);
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = v[0];
    gp.negative_prompt = v[1];
    gp.steps = atoi(v[2] ? v[2] : "0");
    gp.cfg_scale = (float)atof(v[3] ? v[3] : "0");
    gp.sampler = v[4];
    gp.schedule = v[5];
    gp.width = atoi(v[6] ? v[6] : "0");
    gp.height = atoi(v[7] ? v[7] : "0");
    gp.replay_noise = path;
    gp.dump = dump;
    ld_image img;
    ld_gen_info info;
    ld_safetensors *got = NULL;
    if (ld_generate(ctx, pipe, &gp, &img, &info) != LD_OK) {
        CHECK(0, "%s: %s", name, ld_ctx_error(ctx));
    } else if (ld_safetensors_open(ctx, dump, &got) != LD_OK) {
        CHECK(0, "%s: %s", name, ld_ctx_error(ctx));
        ld_image_free(&img);
    } else {
        double worst_step = 0;
        int calls = 0;
        for (int i = 0;; i++, calls++) {
            char key[64];
            snprintf(key, sizeof key, "step%d.latents", i);
            const ld_tensor *r = ld_safetensors_find(ref, key), *g = ld_safetensors_find(got, key);
            if (!r) break;
            CHECK(g && ld_tensor_numel(g) == ld_tensor_numel(r), "%s: %s in the dump", name, key);
            if (!g || ld_tensor_numel(g) != ld_tensor_numel(r)) break;
            double e = test_rel_l2(g->data, r->data, ld_tensor_numel(r));
            if (e > worst_step) worst_step = e;
        }
        const ld_tensor *rf = ld_safetensors_find(ref, "final_latents"), *gf = ld_safetensors_find(got, "final_latents");
        const ld_tensor *ru = ld_safetensors_find(ref, "image_u8");
        double ef = rf && gf && ld_tensor_numel(rf) == ld_tensor_numel(gf) ? test_rel_l2(gf->data, rf->data, ld_tensor_numel(rf)) : 1;
        int64_t n = ru ? ld_tensor_numel(ru) : 0, same = 0, worst = 0;
        CHECK(ru && n == (int64_t)img.width * img.height * 3, "%s: image size", name);
        for (int64_t i = 0; ru && i < n && n == (int64_t)img.width * img.height * 3; i++) {
            int d = abs((int)img.pixels[i] - (int)((const uint8_t *)ru->data)[i]);
            same += d == 0;
            if (d > worst) worst = d;
        }
        double frac = n ? (double)same / n : 0;
        int ok = calls > 0 && worst_step <= 1e-3 && ef <= 1e-3 && frac >= 0.99 && worst <= 2;
        CHECK(ok, "%s: %d calls, step latents %.2e, final %.2e, image_u8 %.2f%% equal, max off %lld", name, calls,
              worst_step, ef, 100 * frac, (long long)worst);
        printf("%s %-24s %-20s %d calls: step latents %.1e, final latents %.1e, image_u8 %.2f%% equal (max off %lld)\n",
               ok ? "ok  " : "FAIL", name, v[4] ? v[4] : "?", calls, worst_step, ef, 100 * frac, (long long)worst);
        ld_safetensors_close(got);
        ld_image_free(&img);
    }
    ld_safetensors_close(ref);
    ld_ctx_free(ctx);
}

int main(void) {
    const char *td = test_testdata_dir(), *src = getenv("LEANDIFF_SOURCE_DIR");
    if (!td || !src) return test_skip("no testdata or LEANDIFF_SOURCE_DIR");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tests/data/samplers", src);
    const char *tmp = test_tmp_dir("sampler_pipelines");
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline *pipe = test_open_tiny_koala(ctx, td);
    if (!pipe) return test_finish();
    DIR *d = opendir(dir);
    CHECK(d, "%s", dir);
    int cases = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 13 || strcmp(e->d_name + len - 12, ".safetensors")) continue;
        char path[8600], name[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(name, sizeof name, "%.*s", (int)(len - 12), e->d_name);
        run_case(pipe, path, tmp, name);
        cases++;
    }
    if (d) closedir(d);
    CHECK(cases >= 12, "%d sampler pipeline cases", cases);
    ld_pipeline_free(pipe);
    ld_ctx_free(ctx);
    return test_finish();
}
