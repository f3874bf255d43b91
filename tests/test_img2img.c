/* Image-to-image and inpainting on the tiny KOALA model against diffusers'
 * StableDiffusionXLImg2ImgPipeline and InpaintPipeline:
 * cases/koala-700m-tiny/img2img*.safetensors and inpaint*.safetensors
 * replayed (encode_noise, latents0, step{i}.noise from the case) through
 * ld_generate with the case's init image and mask; the encoded init image
 * (image_latents) within the module tolerance, the mask at latent size
 * exactly, the timesteps cut by the strength, every step's latents and the
 * final latents within 1e-3 relative (L2), image_u8 equal on at least 99 %
 * with nothing off by more than 2. An init image and mask of another size
 * give the same image as the same pictures resized beforehand by
 * ld_koala_prepare_images (whose resize and blur test_image_prep checks
 * against diffusers), and without a size the image's own, rounded down to 8.
 * Then bad inputs: a strength out of range, a mask without an image, a
 * non-RGB image, a bad mask blur, a strength that leaves no step. */
#include "io/safetensors.h"
#include "leandiff.h"
#include "pipeline/koala_init.h"
#include "test_koala_tiny.h"

static const ld_tensor *find(const ld_safetensors *st, const char *k) { return ld_safetensors_find(st, k); }

/* Replays the case file `path` (testdata's layout; the 9-channel cases store
 * the pictures at their own size as init_image_rgb_u8 / mask_rgb_u8 and the
 * mask_blur in the metadata) and compares the dump. */
static void run_case(ld_pipeline *pipe, const char *path, const char *name, const char *tmp) {
    char dump[4400];
    snprintf(dump, sizeof dump, "%s/%s.dump.safetensors", tmp, name);
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *ref = NULL, *got = NULL;
    if (ld_safetensors_open(ctx, path, &ref) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return;
    }
    const char *neg_none = ld_safetensors_meta_get(ref, "negative_is_none");
    const ld_tensor *init = find(ref, "init_image_u8"), *mask = find(ref, "mask_u8");
    const ld_tensor *mask_rgb = find(ref, "mask_rgb_u8");
    if (!init) init = find(ref, "init_image_rgb_u8");
    CHECK(init && init->ndim == 3, "%s: init_image_u8", name);
    if (!init || init->ndim != 3) goto done;
    const int H = (int)init->shape[0], W = (int)init->shape[1];
    ld_image im = {W, H, 3, (uint8_t *)init->data}, mk = {W, H, 3, NULL};
    if (mask) { /* H x W grey: the same level on R, G, B */
        mk.pixels = malloc((size_t)W * H * 3);
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < 3; c++) mk.pixels[i * 3 + c] = ((const uint8_t *)mask->data)[i];
    } else if (mask_rgb) {
        mk = (ld_image){(int)mask_rgb->shape[1], (int)mask_rgb->shape[0], 3, malloc(ld_tensor_nbytes(mask_rgb))};
        memcpy(mk.pixels, mask_rgb->data, ld_tensor_nbytes(mask_rgb));
    }
    const char *blur = ld_safetensors_meta_get(ref, "mask_blur");
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = ld_safetensors_meta_get(ref, "prompt");
    gp.negative_prompt = neg_none && !strcmp(neg_none, "true") ? NULL : ld_safetensors_meta_get(ref, "negative_prompt");
    gp.steps = atoi(ld_safetensors_meta_get(ref, "steps"));
    gp.cfg_scale = (float)atof(ld_safetensors_meta_get(ref, "guidance_scale"));
    gp.sampler = ld_safetensors_meta_get(ref, "sampler");
    gp.strength = (float)atof(ld_safetensors_meta_get(ref, "strength"));
    gp.width = atoi(ld_safetensors_meta_get(ref, "width"));
    gp.height = atoi(ld_safetensors_meta_get(ref, "height"));
    gp.mask_blur = blur ? (float)atof(blur) : 0.0f;
    gp.init_image = &im;
    gp.mask_image = mk.pixels ? &mk : NULL;
    gp.replay_noise = path;
    gp.dump = dump;
    remove(dump);
    ld_image img;
    ld_gen_info info;
    if (ld_generate(ctx, pipe, &gp, &img, &info) != LD_OK) {
        CHECK(0, "%s: %s", name, ld_ctx_error(ctx));
        free(mk.pixels);
        goto done;
    }
    free(mk.pixels);
    CHECK(ld_safetensors_open(ctx, dump, &got) == LD_OK, "%s", ld_ctx_error(ctx));
    if (got) {
        const ld_tensor *a, *b;
        for (int k = 0; k < 2; k++) { /* the encoded init image; the masked image (9-channel U-Nets) */
            const char *key = k ? "masked_image_latents" : "image_latents";
            a = find(got, key), b = find(ref, key);
            if (a && b) test_close(key, a->data, b->data, ld_tensor_numel(b), 1e-4);
            else CHECK(!a && !b, "%s: %s in only one of the case and the dump", name, key);
        }
        a = find(got, "mask_latents"), b = find(ref, "mask_latents");
        CHECK(!b || (a && !memcmp(a->data, b->data, ld_tensor_nbytes(b))), "%s: mask_latents", name);
        a = find(got, "timesteps"), b = find(ref, "timesteps");
        CHECK(a && b && ld_tensor_numel(a) == ld_tensor_numel(b) && test_rel_l2(a->data, b->data, ld_tensor_numel(b)) < 1e-6,
              "%s: timesteps", name);
        double worst = 0;
        int steps = 0;
        for (;; steps++) {
            char key[64];
            snprintf(key, sizeof key, "step%d.latents", steps);
            b = find(ref, key), a = find(got, key);
            if (!b) break;
            CHECK(a, "%s: %s in the dump", name, key);
            if (!a) break;
            double e = test_rel_l2(a->data, b->data, ld_tensor_numel(b));
            if (e > worst) worst = e;
        }
        a = find(got, "final_latents"), b = find(ref, "final_latents");
        double ef = a && b ? test_rel_l2(a->data, b->data, ld_tensor_numel(b)) : 1;
        const ld_tensor *u = find(ref, "image_u8");
        int64_t n = u ? ld_tensor_numel(u) : 0, same = 0, off = 0;
        for (int64_t i = 0; u && n == (int64_t)img.width * img.height * 3 && i < n; i++) {
            int d = abs((int)img.pixels[i] - (int)((const uint8_t *)u->data)[i]);
            same += d == 0;
            if (d > off) off = d;
        }
        int ok = steps > 0 && worst <= 1e-3 && ef <= 1e-3 && n && (double)same / n >= 0.99 && off <= 2;
        CHECK(ok, "%s: %d steps, latents %.2e, final %.2e, image_u8 %.2f%% equal, max off %lld", name, steps, worst, ef,
              n ? 100.0 * same / n : 0.0, (long long)off);
        printf("%s %-9s strength %s, %s: %d steps run, step latents %.1e, final %.1e, image_u8 %.2f%% equal (max off %lld)\n",
               ok ? "ok  " : "FAIL", name, ld_safetensors_meta_get(ref, "strength"), gp.sampler, steps, worst, ef,
               n ? 100.0 * same / n : 0.0, (long long)off);
        CHECK(info.strength == gp.strength, "gen info strength");
        ld_safetensors_close(got);
    }
    ld_image_free(&img);
done:
    ld_safetensors_close(ref);
    ld_ctx_free(ctx);
}

static void bad_inputs(ld_pipeline *pipe) {
    ld_ctx *ctx = ld_ctx_new();
    static uint8_t px[64 * 96 * 3];
    ld_image im = {96, 64, 3, px}, rgba = {32, 32, 4, px};
    ld_gen_params gp;
    ld_image out;
    struct {
        const ld_image *init, *mask;
        float strength;
        int steps;
        const char *want;
        float blur;
    } cases[] = {{&im, NULL, 1.5f, 4, "strength", 0}, {&im, NULL, 0.0f, 4, "strength", 0},
                 {NULL, &im, 0.5f, 4, "mask needs", 0}, {&rgba, NULL, 0.5f, 4, "not an RGB8", 0},
                 {&im, &rgba, 0.5f, 4, "not an RGB8", 0}, {&im, &im, 0.5f, 4, "mask blur", -1.0f},
                 {&im, &im, 0.5f, 4, "mask blur", 2000.0f}, {&im, NULL, 0.1f, 4, "no step", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ld_gen_params_init(&gp);
        gp.prompt = "x";
        gp.width = 96, gp.height = 64, gp.steps = cases[i].steps;
        gp.init_image = cases[i].init;
        gp.mask_image = cases[i].mask;
        gp.strength = cases[i].strength;
        gp.mask_blur = cases[i].blur;
        ld_status st = ld_generate(ctx, pipe, &gp, &out, NULL);
        CHECK(st != LD_OK && strstr(ld_ctx_error(ctx), cases[i].want), "bad input %zu: %s", i, ld_ctx_error(ctx));
        if (st == LD_OK) ld_image_free(&out);
        else printf("ok   refused: %s\n", ld_ctx_error(ctx));
    }
    ld_ctx_free(ctx);
}

/* Inpainting with a 100x70 image and mask (blurred) to 96x64 equals the run
 * on the pictures prepared beforehand; with no size the output is 96x64. */
static void resized_inputs(ld_pipeline *pipe) {
    ld_ctx *ctx = ld_ctx_new();
    enum { W0 = 100, H0 = 70 };
    static uint8_t a[W0 * H0 * 3], m[W0 * H0 * 3];
    for (int y = 0; y < H0; y++)
        for (int x = 0; x < W0; x++)
            for (int c = 0; c < 3; c++) {
                a[(y * W0 + x) * 3 + c] = (uint8_t)((x * 5 + y * 3 + c * 70 + (x * y) % 23) & 255);
                m[(y * W0 + x) * 3 + c] = x > 40 && x < 75 && y > 15 ? 255 : 0;
            }
    ld_image im = {W0, H0, 3, a}, mk = {W0, H0, 3, m}, pim = {0}, pmk = {0}, out[2] = {{0}, {0}};
    CHECK(ld_koala_prepare_images(ctx, &im, &mk, 3.0f, 96, 64, &pim, &pmk) == LD_OK, "%s", ld_ctx_error(ctx));
    for (int k = 0; k < 2; k++) {
        ld_gen_params gp;
        ld_gen_params_init(&gp);
        gp.prompt = "a koala";
        gp.steps = 3;
        gp.strength = 0.7f;
        gp.init_image = k ? &pim : &im;
        gp.mask_image = k ? &pmk : &mk;
        gp.mask_blur = k ? 0.0f : 3.0f;
        ld_gen_info info;
        CHECK(ld_generate(ctx, pipe, &gp, &out[k], &info) == LD_OK, "resized run %d: %s", k, ld_ctx_error(ctx));
    }
    const int ok = out[0].pixels && out[1].pixels && out[0].width == 96 && out[0].height == 64 &&
                   out[1].width == 96 && !memcmp(out[0].pixels, out[1].pixels, 96 * 64 * 3);
    CHECK(ok, "a 100x70 init image and blurred mask give the run on the prepared 96x64 pictures");
    printf("%s 100x70 init + mask (blur 3), no size: %dx%d output, equal to the prepared run\n", ok ? "ok  " : "FAIL",
           out[0].width, out[0].height);
    ld_image_free(&out[0]);
    ld_image_free(&out[1]);
    ld_image_free(&pim);
    ld_image_free(&pmk);
    ld_ctx_free(ctx);
}

/* $tmp/inpaint9-model: model_index.json of StableDiffusionXLInpaintPipeline,
 * the 9-channel unet of tests/data/inpaint9/unet_config.json with the
 * weights the reference was made with (init-random, seed 9), links to
 * koala-700m-tiny's other folders. */
static ld_pipeline *open_inpaint9(ld_ctx *ctx, const char *td, const char *src, const char *tmp) {
    static char dir[4300], cmd[40000];
    const char *bin = getenv("LEANDIFF_BIN");
    snprintf(dir, sizeof dir, "%s/inpaint9-model", tmp);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s' && for c in text_encoder text_encoder_2 tokenizer tokenizer_2 vae "
             "scheduler; do ln -s '%s/models/koala-700m-tiny/'$c '%s/'$c || exit 1; done && '%s' init-random --config "
             "'%s/tests/data/inpaint9/unet_config.json' --out '%s/unet' --dtype f32 --seed 9 >/dev/null && "
             "sed 's/\"StableDiffusionXLPipeline\"/\"StableDiffusionXLInpaintPipeline\"/' "
             "'%s/models/koala-700m-tiny/model_index.json' > '%s/model_index.json'",
             dir, dir, td, dir, bin ? bin : "leandiff", src, dir, td, dir);
    CHECK(system(cmd) == 0, "assembling %s", dir);
    ld_pipeline_options opt;
    ld_pipeline_options_init(&opt);
    opt.model_dir = dir;
    ld_pipeline *pipe = NULL;
    CHECK(ld_pipeline_open(ctx, &opt, &pipe) == LD_OK, "%s", ld_ctx_error(ctx));
    return pipe;
}

/* An inpainting U-Net needs an init image and a mask. */
static void inpaint9_refusals(ld_pipeline *pipe) {
    ld_ctx *ctx = ld_ctx_new();
    static uint8_t px[64 * 96 * 3];
    ld_image im = {96, 64, 3, px}, out;
    for (int k = 0; k < 2; k++) {
        ld_gen_params gp;
        ld_gen_params_init(&gp);
        gp.prompt = "x";
        gp.steps = 2;
        gp.init_image = k ? &im : NULL;
        gp.strength = 0.5f;
        ld_status st = ld_generate(ctx, pipe, &gp, &out, NULL);
        CHECK(st != LD_OK && strstr(ld_ctx_error(ctx), "give an init image and a mask"), "9 channels, %s: %s",
              k ? "no mask" : "text-to-image", ld_ctx_error(ctx));
        if (st == LD_OK) ld_image_free(&out);
        else printf("ok   refused: %s\n", ld_ctx_error(ctx));
    }
    ld_ctx_free(ctx);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline *pipe = test_open_tiny_koala(ctx, td);
    if (!pipe) return test_finish();
    const char *tmp = test_tmp_dir("img2img");
    const char *names[] = {"img2img0", "img2img1", "inpaint0", "inpaint1"};
    char path[4400];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/cases/koala-700m-tiny/%s.safetensors", td, names[i]);
        run_case(pipe, path, names[i], tmp);
    }
    resized_inputs(pipe);
    bad_inputs(pipe);
    ld_pipeline_free(pipe);
    /* the 9-channel inpainting U-Net of tests/data/inpaint9 in a folder with
     * koala-700m-tiny's other components */
    const char *src = getenv("LEANDIFF_SOURCE_DIR");
    ld_pipeline *pipe9 = open_inpaint9(ctx, td, src ? src : ".", tmp);
    const char *names9[] = {"inpaint9_full", "inpaint9_part"};
    for (int i = 0; pipe9 && i < 2; i++) {
        snprintf(path, sizeof path, "%s/tests/data/inpaint9/%s.safetensors", src ? src : ".", names9[i]);
        run_case(pipe9, path, names9[i], tmp);
    }
    if (pipe9) inpaint9_refusals(pipe9);
    ld_pipeline_free(pipe9);
    ld_ctx_free(ctx);
    return test_finish();
}
