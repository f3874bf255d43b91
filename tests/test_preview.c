/* Previews and the tiny decoder through the KOALA pipeline (tiny koala-700m
 * of the testdata, TAESD folder of tests/data/taesd):
 *   - previews come every N steps and at the last one; the linear preview of
 *     the last step is the latent-to-RGB map of the final latents (computed
 *     here plainly with ComfyUI's SDXL factors), off by at most 1;
 *   - with TAESD the previews are full size;
 *   - --vae-decoder tiny leaves the denoising as it was (same final latents as
 *     the full VAE run) and its image is TAESD's decode of those latents
 *     (checked against ld_vae_tiny_decode, itself checked against diffusers in
 *     test_vae_tiny); the gen info says TAESD;
 *   - a preview callback that returns nonzero cancels the run;
 *   - the tiny decoder without a TAESD folder is refused. */
#include "io/safetensors.h"
#include "leandiff.h"
#include "models/autoencoder_tiny.h"
#include "test_koala_tiny.h"

typedef struct {
    int calls, last_step, w, h, stop_at;
    uint8_t *last;
} previews;

static int on_preview(void *user, const ld_image *img, int step, int total) {
    previews *p = user;
    p->calls++;
    p->last_step = step;
    p->w = img->width;
    p->h = img->height;
    free(p->last);
    p->last = malloc((size_t)img->width * img->height * 3);
    memcpy(p->last, img->pixels, (size_t)img->width * img->height * 3);
    (void)total;
    return p->stop_at && step >= p->stop_at;
}

static const float factors[4][3] = {{0.3920f, 0.4054f, 0.4549f},
                                    {-0.2634f, -0.0196f, 0.0653f},
                                    {0.0568f, 0.1687f, -0.0755f},
                                    {-0.3112f, -0.2359f, -0.2076f}};

static ld_safetensors *run(ld_ctx *ctx, ld_pipeline *pipe, const char *dump, const char *taesd, int tiny, int every,
                           previews *pv, ld_gen_info *info, ld_status *st) {
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "a koala in a tree";
    gp.steps = 5;
    gp.width = gp.height = 64;
    gp.seed = 11;
    gp.dump = dump;
    gp.taesd_dir = taesd;
    gp.tiny_decoder = tiny;
    gp.preview = pv ? on_preview : NULL;
    gp.preview_user = pv;
    gp.preview_every = every;
    remove(dump);
    ld_image img;
    *st = ld_generate(ctx, pipe, &gp, &img, info);
    if (*st != LD_OK) return NULL;
    ld_image_free(&img);
    ld_safetensors *d = NULL;
    if (ld_safetensors_open(ctx, dump, &d) != LD_OK) CHECK(0, "%s", ld_ctx_error(ctx));
    return d;
}

int main(void) {
    const char *td = test_testdata_dir();
    const char *src = getenv("LEANDIFF_SOURCE_DIR");
    if (!td || !src) return test_skip("no testdata or LEANDIFF_SOURCE_DIR");
    char d1[4300], d2[4300], d3[4300];
    const char *taesd = test_make_taesd("preview");
    if (!taesd) return test_finish();
    const char *tmp = test_tmp_dir("preview");
    snprintf(d1, sizeof d1, "%s/full.safetensors", tmp);
    snprintf(d2, sizeof d2, "%s/tiny.safetensors", tmp);
    snprintf(d3, sizeof d3, "%s/taesd_preview.safetensors", tmp);
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline *pipe = test_open_tiny_koala(ctx, td);
    if (!pipe) return test_finish();
    ld_status st;
    ld_gen_info info;
    previews pv = {0};
    ld_safetensors *full = run(ctx, pipe, d1, NULL, 0, 2, &pv, &info, &st);
    CHECK(st == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(pv.calls == 3 && pv.last_step == 5 && pv.w == 8 && pv.h == 8, "linear previews every 2 steps: %d calls, "
          "last step %d, %dx%d", pv.calls, pv.last_step, pv.w, pv.h);
    const ld_tensor *fl = full ? ld_safetensors_find(full, "final_latents") : NULL;
    if (fl && pv.last) {
        int worst = 0;
        const float *x = fl->data;
        for (int p = 0; p < 64; p++)
            for (int c = 0; c < 3; c++) {
                double v = 0;
                for (int l = 0; l < 4; l++) v += x[l * 64 + p] * factors[l][c];
                v = v / 2 + 0.5;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                int want = (int)(v * 255 + 0.5), got = pv.last[p * 3 + c];
                if (abs(want - got) > worst) worst = abs(want - got);
            }
        CHECK(worst <= 1, "last linear preview vs the map of the final latents: off by %d", worst);
        printf("%s last linear preview = latent-to-RGB map of the final latents (max off %d)\n",
               worst <= 1 ? "ok  " : "FAIL", worst);
    }

    previews pt = {0};
    ld_safetensors *tiny = run(ctx, pipe, d2, taesd, 1, 1, &pt, &info, &st);
    CHECK(st == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(pt.calls == 5 && pt.w == 64 && pt.h == 64, "TAESD previews: %d calls, %dx%d", pt.calls, pt.w, pt.h);
    CHECK(!strcmp(info.vae, "TAESD"), "gen info vae '%s'", info.vae);
    const ld_tensor *tl = tiny ? ld_safetensors_find(tiny, "final_latents") : NULL;
    const ld_tensor *ti = tiny ? ld_safetensors_find(tiny, "image") : NULL;
    CHECK(fl && tl && !memcmp(fl->data, tl->data, ld_tensor_nbytes(fl)), "the tiny decoder leaves the latents alone");
    ld_vae_tiny *t = NULL;
    if (tl && ti && ld_vae_tiny_load(ctx, taesd, NULL, &t) == LD_OK) {
        float *img = malloc(sizeof(float) * 3 * 64 * 64);
        CHECK(ld_vae_tiny_decode(ctx, t, img, tl->data, 1, 8, 8) == LD_OK, "%s", ld_ctx_error(ctx));
        test_close("tiny-decoded image = TAESD(final latents)", ti->data, img, 3 * 64 * 64, 1e-6);
        free(img);
        ld_vae_tiny_free(t);
    }

    previews stop = {.stop_at = 2};
    ld_safetensors *none = run(ctx, pipe, d3, taesd, 0, 1, &stop, &info, &st);
    CHECK(st == LD_ERR_CANCELLED && stop.calls == 2 && !none, "a preview callback cancels: status %d after %d calls",
          (int)st, stop.calls);
    none = run(ctx, pipe, d3, NULL, 1, 1, NULL, &info, &st);
    CHECK(st != LD_OK && strstr(ld_ctx_error(ctx), "TAESD"), "tiny decoder without a folder: %s", ld_ctx_error(ctx));
    ld_safetensors_close(full);
    ld_safetensors_close(tiny);
    free(pv.last);
    free(pt.last);
    free(stop.last);
    ld_pipeline_free(pipe);
    ld_ctx_free(ctx);
    return test_finish();
}
