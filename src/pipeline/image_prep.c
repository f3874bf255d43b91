/* Pillow's Lanczos resize and Gaussian blur on 8-bit images (see
 * image_prep.h). The arithmetic follows Pillow 9.4 step by step (double
 * filter weights rounded to 22-bit integers, float box-blur weights in 24-bit
 * fixed point) because the results must match PIL's to the last bit: a mask
 * is binarised after these steps, so one level off can flip a pixel. */
#include "pipeline/image_prep.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22 /* Pillow's 32 - 8 - 2 for 8-bit images */

static ld_status check_image(ld_ctx *ctx, const ld_image *in, const char *what) {
    if (!in || !in->pixels || in->channels < 1 || in->channels > 4 || in->width < 1 || in->height < 1 ||
        in->width > 65536 || in->height > 65536)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: the image is empty or its size/channels (%dx%d, %d) are out "
                       "of range", what, in ? in->width : 0, in ? in->height : 0, in ? in->channels : 0);
    return LD_OK;
}

static ld_status alloc_image(ld_ctx *ctx, int w, int h, int c, ld_image *out) {
    out->width = w, out->height = h, out->channels = c;
    out->pixels = malloc((size_t)w * (size_t)h * (size_t)c);
    return out->pixels ? LD_OK : ld_fail(ctx, LD_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
}

/* (not ld_image_free: this file stands alone, for the fuzz target) */
static void drop_image(ld_image *im) {
    free(im->pixels);
    im->pixels = NULL;
}

/* ---- resize ---- */

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double lanczos3(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

/* One axis: for output position o, taps k[o * ksize + j] (22-bit fixed point)
 * on inputs first[o] + j, j < count[o]. */
typedef struct {
    int ksize;
    int *first, *count;
    int32_t *k;
} axis_coeffs;

static void axis_free(axis_coeffs *a) {
    free(a->first);
    free(a->count);
    free(a->k);
}

static ld_status axis_init(ld_ctx *ctx, int in_size, int out_size, axis_coeffs *a) {
    const double scale = (double)((float)in_size - 0.0f) / out_size; /* Pillow: box (0, in_size) in float */
    const double filterscale = scale < 1.0 ? 1.0 : scale, support = 3.0 * filterscale;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->first = malloc(sizeof(int) * (size_t)out_size);
    a->count = malloc(sizeof(int) * (size_t)out_size);
    a->k = calloc((size_t)out_size * (size_t)a->ksize, sizeof(int32_t));
    double *w = malloc(sizeof(double) * (size_t)a->ksize);
    if (!a->first || !a->count || !a->k || !w) {
        free(w);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for resize coefficients");
    }
    for (int o = 0; o < out_size; o++) {
        const double center = 0.0 + (o + 0.5) * scale, ss = 1.0 / filterscale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        const int n = hi - lo;
        double sum = 0.0;
        for (int j = 0; j < n; j++) {
            w[j] = lanczos3((j + lo - center + 0.5) * ss);
            sum += w[j];
        }
        for (int j = 0; j < n; j++) {
            const double v = sum != 0.0 ? w[j] / sum : w[j];
            a->k[(size_t)o * a->ksize + j] =
                v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        a->first[o] = lo;
        a->count[o] = n;
    }
    free(w);
    return LD_OK;
}

static uint8_t clip8(int32_t v) {
    if (v < 0) return 0;
    v >>= PRECISION_BITS;
    return v > 255 ? 255 : (uint8_t)v;
}

/* Filters along one axis: out has `lines` lines of out_len samples of C
 * channels; sample s of line l of the input is at in + l*lstride + s*sstride
 * (bytes), likewise for out. */
static void resample_axis(const axis_coeffs *a, const uint8_t *in, size_t in_lstride, size_t in_sstride, uint8_t *out,
                          size_t out_lstride, size_t out_sstride, int lines, int out_len, int C) {
#pragma omp parallel for schedule(static)
    for (int l = 0; l < lines; l++)
        for (int o = 0; o < out_len; o++) {
            const int32_t *k = a->k + (size_t)o * a->ksize;
            const uint8_t *src = in + (size_t)l * in_lstride + (size_t)a->first[o] * in_sstride;
            for (int c = 0; c < C; c++) {
                int32_t acc = 1 << (PRECISION_BITS - 1);
                for (int j = 0; j < a->count[o]; j++) acc += (int32_t)src[(size_t)j * in_sstride + c] * k[j];
                out[(size_t)l * out_lstride + (size_t)o * out_sstride + c] = clip8(acc);
            }
        }
}

ld_status ld_image_resize_lanczos(ld_ctx *ctx, const ld_image *in, int width, int height, ld_image *out) {
    out->pixels = NULL;
    LD_TRY(check_image(ctx, in, "resize"));
    if (width < 1 || height < 1 || width > 65536 || height > 65536)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "resize to %dx%d: the size is out of range", width, height);
    const int C = in->channels, W0 = in->width, H0 = in->height;
    LD_TRY(alloc_image(ctx, width, height, C, out));
    if (width == W0 && height == H0) { /* Image.resize returns a copy */
        memcpy(out->pixels, in->pixels, (size_t)W0 * H0 * C);
        return LD_OK;
    }
    axis_coeffs ax = {0}, ay = {0};
    ld_status st = axis_init(ctx, W0, width, &ax);
    if (st == LD_OK) st = axis_init(ctx, H0, height, &ay);
    uint8_t *tmp = NULL;
    const uint8_t *src = in->pixels;
    if (st == LD_OK && width != W0) { /* horizontal pass first, as Pillow does */
        uint8_t *dst = height != H0 ? (tmp = malloc((size_t)width * H0 * C)) : out->pixels;
        if (!dst) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory for a %dx%d image", width, H0);
        else resample_axis(&ax, src, (size_t)W0 * C, C, dst, (size_t)width * C, C, H0, width, C);
        src = dst;
    }
    if (st == LD_OK && height != H0) /* columns: a line is one x, samples step a row */
        resample_axis(&ay, src, C, (size_t)width * C, out->pixels, C, (size_t)width * C, width, height, C);
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    if (st != LD_OK) drop_image(out);
    return st;
}

/* ---- Gaussian blur ---- */

/* One extended box-blur pass over a line of n samples (stride `step` bytes)
 * in place, edges replicated: out[x] = (sum of the 2r+1 samples around x
 * times ww, plus the two next-farther samples times fw, + 2^23) >> 24.
 * tmp holds n bytes. */
static void box_line(uint8_t *line, size_t step, int n, int r, uint32_t ww, uint32_t fw, uint8_t *tmp) {
    for (int x = 0; x < n; x++) tmp[x] = line[(size_t)x * step];
#define AT(i) ((uint32_t)tmp[(i) < 0 ? 0 : (i) >= n ? n - 1 : (i)])
    uint32_t acc = 0;
    for (int i = -r; i <= r; i++) acc += AT(i);
    for (int x = 0; x < n; x++) {
        if (x) acc = acc - AT(x - r - 1) + AT(x + r);
        const uint32_t bulk = acc * ww + (AT(x - r - 1) + AT(x + r + 1)) * fw;
        line[(size_t)x * step] = (uint8_t)((bulk + (1u << 23)) >> 24);
    }
#undef AT
}

ld_status ld_image_gaussian_blur(ld_ctx *ctx, const ld_image *in, float radius, ld_image *out) {
    out->pixels = NULL;
    LD_TRY(check_image(ctx, in, "blur"));
    if (!(radius >= 0.0f && radius <= 1024.0f))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "blur radius %g is not in [0, 1024]", (double)radius);
    const int C = in->channels, W = in->width, H = in->height, passes = 3;
    LD_TRY(alloc_image(ctx, W, H, C, out));
    memcpy(out->pixels, in->pixels, (size_t)W * H * C);
    /* the box radius whose `passes` repetitions have the Gaussian's variance
     * (Gwosdek et al., "Theoretical foundations of Gaussian convolution by
     * extended box filtering"), in float as Pillow computes it */
    const float sigma2 = radius * radius / passes;
    const float L = (float)sqrt(12.0 * sigma2 + 1.0);
    const float l = (float)floor((L - 1.0) / 2.0);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    const float box = l + a;
    const int r = (int)box;
    const uint32_t ww = (uint32_t)((float)(1u << 24) / (box * 2 + 1));
    const uint32_t fw = ((1u << 24) - (uint32_t)(r * 2 + 1) * ww) / 2;
    const int longest = W > H ? W : H;
    int fail = 0;
    for (int axis = 0; axis < 2; axis++) { /* x passes, then y passes */
        const int lines = axis ? W : H, n = axis ? H : W;
        const size_t lstride = axis ? (size_t)C : (size_t)W * C, step = axis ? (size_t)W * C : (size_t)C;
#pragma omp parallel reduction(| : fail)
        {
            uint8_t *tmp = malloc((size_t)longest);
            if (!tmp) fail = 1;
#pragma omp for schedule(static)
            for (int li = 0; li < lines * C; li++)
                for (int p = 0; tmp && p < passes; p++)
                    box_line(out->pixels + (size_t)(li / C) * lstride + li % C, step, n, r, ww, fw, tmp);
            free(tmp);
        }
    }
    if (fail) {
        drop_image(out);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the blur");
    }
    return LD_OK;
}
