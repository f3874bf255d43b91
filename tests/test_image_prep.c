/* Init-image and mask preparation against diffusers' VaeImageProcessor
 * (tests/data/image_prep, made by make_image_prep_ref.py with diffusers
 * v0.30.3 on Pillow 9.4): ld_image_resize_lanczos of a 101x67 RGB image to
 * four sizes (its own rounded down to 8, smaller, larger, mixed) normalised
 * to [-1, 1] equals image_processor.preprocess bit for bit;
 * ld_image_gaussian_blur equals mask_processor.blur (PIL GaussianBlur) for
 * radii 1, 4, 9; ld_koala_prepare_images + the mask binarisation equals
 * mask_processor.preprocess (with and without a blur). Then the naive
 * properties: a same-size resize copies, a constant image stays constant,
 * bad sizes and radii are errors. */
#include "io/safetensors.h"
#include "pipeline/image_prep.h"
#include "pipeline/koala_init.h"
#include "test_util.h"

static const ld_tensor *find(const ld_safetensors *st, const char *name, ld_dtype dt) {
    const ld_tensor *t = ld_safetensors_find(st, name);
    CHECK(t && t->dtype == dt, "reference tensor %s", name);
    return t && t->dtype == dt ? t : NULL;
}

/* Counts pixels of an RGB8 image, normalised as the image processor does,
 * that differ from ref [1, 3, H, W]. */
static int64_t init_mismatches(const ld_image *im, const float *ref) {
    const int64_t plane = (int64_t)im->width * im->height;
    int64_t bad = 0;
    for (int64_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++)
            bad += 2.0f * ((float)im->pixels[p * 3 + c] / 255.0f) - 1.0f != ref[c * plane + p];
    return bad;
}

/* Mask pixels (binarised at full size) that differ from ref [1, 1, H, W] U8. */
static int64_t mask_mismatches(const ld_image *mk, const uint8_t *ref) {
    const int64_t plane = (int64_t)mk->width * mk->height;
    float *bin = malloc(sizeof(float) * (size_t)plane);
    ld_koala_mask_latents(mk, mk->height, mk->width, bin); /* at full size: the binarised mask itself */
    int64_t bad = 0;
    for (int64_t p = 0; p < plane; p++) bad += bin[p] != (float)ref[p];
    free(bin);
    return bad;
}

int main(void) {
    const char *src = getenv("LEANDIFF_SOURCE_DIR");
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/data/image_prep/image_prep.safetensors", src ? src : ".");
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *ref = NULL;
    if (ld_safetensors_open(ctx, path, &ref) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return test_finish();
    }
    const ld_tensor *img = find(ref, "image_u8", LD_U8), *msk = find(ref, "mask_u8", LD_U8);
    if (!img || !msk) return test_finish();
    const int H0 = (int)img->shape[0], W0 = (int)img->shape[1];
    ld_image image = {W0, H0, 3, (uint8_t *)img->data}, mask = {W0, H0, 3, (uint8_t *)msk->data};
    struct {
        const char *name;
        int w, h;
        float blur;
        const char *mask_key;
    } cases[] = {{"own", 96, 64, 0, "mask.own"},      {"down", 80, 48, 0, "mask.down"},
                 {"up", 136, 88, 0, "mask.up"},       {"odd", 104, 40, 0, "mask.odd"},
                 {"up", 136, 88, 1, "mask.up.blur1"}, {"up", 136, 88, 4, "mask.up.blur4"},
                 {"up", 136, 88, 9, "mask.up.blur9"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "init.%s", cases[i].name);
        const ld_tensor *ri = find(ref, key, LD_F32), *rm = find(ref, cases[i].mask_key, LD_U8);
        if (!ri || !rm) continue;
        CHECK(ri->shape[2] == cases[i].h && ri->shape[3] == cases[i].w, "%s: reference size", key);
        ld_image im, mk;
        if (ld_koala_prepare_images(ctx, &image, &mask, cases[i].blur, cases[i].w, cases[i].h, &im, &mk) != LD_OK) {
            CHECK(0, "%s: %s", key, ld_ctx_error(ctx));
            continue;
        }
        const int64_t bi = init_mismatches(&im, ri->data), bm = mask_mismatches(&mk, rm->data);
        CHECK(bi == 0 && bm == 0, "%s blur %g: %lld init values and %lld mask pixels differ", cases[i].name,
              (double)cases[i].blur, (long long)bi, (long long)bm);
        printf("%s %-4s %3dx%-3d blur %g: init %lld values differ, mask %lld pixels differ\n",
               bi || bm ? "FAIL" : "ok  ", cases[i].name, cases[i].w, cases[i].h, (double)cases[i].blur,
               (long long)bi, (long long)bm);
        ld_image_free(&im);
        ld_image_free(&mk);
    }
    for (int r = 1; r <= 9; r += r == 1 ? 3 : 5) {
        char key[32];
        snprintf(key, sizeof key, "blur.%d", r);
        const ld_tensor *rb = find(ref, key, LD_U8);
        ld_image out;
        if (!rb || ld_image_gaussian_blur(ctx, &mask, (float)r, &out) != LD_OK) continue;
        int64_t bad = 0, n = (int64_t)W0 * H0 * 3;
        for (int64_t j = 0; j < n; j++) bad += out.pixels[j] != ((const uint8_t *)rb->data)[j];
        CHECK(bad == 0, "%s: %lld values differ from PIL's", key, (long long)bad);
        printf("%s GaussianBlur(%d): %lld of %lld values differ\n", bad ? "FAIL" : "ok  ", r, (long long)bad,
               (long long)n);
        ld_image_free(&out);
    }
    /* naive properties */
    ld_image out;
    CHECK(ld_image_resize_lanczos(ctx, &image, W0, H0, &out) == LD_OK &&
              !memcmp(out.pixels, image.pixels, (size_t)W0 * H0 * 3),
          "a same-size resize copies");
    ld_image_free(&out);
    static uint8_t flat[13 * 7];
    memset(flat, 77, sizeof flat);
    ld_image grey = {13, 7, 1, flat};
    int ok = ld_image_resize_lanczos(ctx, &grey, 50, 3, &out) == LD_OK;
    for (int j = 0; ok && j < 150; j++) ok = out.pixels[j] == 77;
    CHECK(ok, "a constant image stays constant when resized");
    ld_image_free(&out);
    ok = ld_image_gaussian_blur(ctx, &grey, 30.0f, &out) == LD_OK; /* a radius above the image size */
    for (int j = 0; ok && j < 13 * 7; j++) ok = out.pixels[j] == 77;
    CHECK(ok, "a constant image stays constant when blurred");
    ld_image_free(&out);
    CHECK(ld_image_gaussian_blur(ctx, &grey, 0.0f, &out) == LD_OK && !memcmp(out.pixels, flat, sizeof flat),
          "blur radius 0 copies");
    ld_image_free(&out);
    const char *want[] = {"out of range", "radius", "radius", "empty"};
    ld_status st[4];
    ld_image empty = {0, 0, 3, NULL};
    st[0] = ld_image_resize_lanczos(ctx, &grey, 0, 5, &out);
    const char *e0 = strstr(ld_ctx_error(ctx), want[0]) ? want[0] : NULL;
    st[1] = ld_image_gaussian_blur(ctx, &grey, -1.0f, &out);
    const char *e1 = strstr(ld_ctx_error(ctx), want[1]) ? want[1] : NULL;
    st[2] = ld_image_gaussian_blur(ctx, &grey, NAN, &out);
    const char *e2 = strstr(ld_ctx_error(ctx), want[2]) ? want[2] : NULL;
    st[3] = ld_image_resize_lanczos(ctx, &empty, 8, 8, &out);
    const char *e3 = strstr(ld_ctx_error(ctx), want[3]) ? want[3] : NULL;
    CHECK(st[0] != LD_OK && st[1] != LD_OK && st[2] != LD_OK && st[3] != LD_OK && e0 && e1 && e2 && e3,
          "bad sizes, radii and images are refused with a message");
    ld_safetensors_close(ref);
    ld_ctx_free(ctx);
    return test_finish();
}
