/* Tests of the resizes against plain references written here: nearest
 * (PyTorch's floor(dst * in/out) rule), bilinear align_corners=True (the four
 * neighbours in double), and the antialiased bicubic (PyTorch's
 * _upsample_bicubic2d_aa algorithm as two dense weight matrices in double),
 * up- and downsampling, both align_corners, odd and size-1 sizes, 1 vs 2
 * threads bitwise. */
#include "test_ops_util.h"

#define TOL 1e-5

static void ref_nearest(float *y, const float *x, int64_t BC, int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
    float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
    for (int64_t p = 0; p < BC; p++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                int64_t iy = (int64_t)floorf(oy * sh), ix = (int64_t)floorf(ox * sw);
                if (iy > H - 1) iy = H - 1;
                if (ix > W - 1) ix = W - 1;
                y[(p * Ho + oy) * Wo + ox] = x[(p * H + iy) * W + ix];
            }
}

static void ref_bilinear(float *y, const float *x, int64_t BC, int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
    for (int64_t p = 0; p < BC; p++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                double sy = Ho > 1 ? (double)oy * (H - 1) / (Ho - 1) : 0, sx = Wo > 1 ? (double)ox * (W - 1) / (Wo - 1) : 0;
                int64_t y0 = (int64_t)sy, x0 = (int64_t)sx;
                int64_t y1 = y0 + 1 < H ? y0 + 1 : y0, x1 = x0 + 1 < W ? x0 + 1 : x0;
                double fy = sy - y0, fx = sx - x0;
                const float *pl = x + p * H * W;
                y[(p * Ho + oy) * Wo + ox] =
                    (float)((1 - fy) * ((1 - fx) * pl[y0 * W + x0] + fx * pl[y0 * W + x1]) +
                            fy * ((1 - fx) * pl[y1 * W + x0] + fx * pl[y1 * W + x1]));
            }
}

/* Dense [out][in] matrix of PyTorch's antialiased bicubic weights for one axis. */
static double *aa_matrix(int64_t in, int64_t out, int align_corners) {
    double *m = calloc((size_t)(in * out), sizeof(double));
    double scale = align_corners ? (out > 1 ? (double)(in - 1) / (out - 1) : 0.0) : (double)in / out;
    double support = scale >= 1 ? 2 * scale : 2, inv = scale >= 1 ? 1 / scale : 1;
    for (int64_t o = 0; o < out; o++) {
        double center = scale * (o + 0.5), total = 0;
        int64_t lo = (int64_t)(center - support + 0.5), hi = (int64_t)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        for (int64_t j = lo; j < hi; j++) {
            double t = fabs((j - center + 0.5) * inv), w = 0; /* Keys cubic, a = -0.5 */
            if (t < 1) w = 1.5 * t * t * t - 2.5 * t * t + 1;
            else if (t < 2) w = -0.5 * t * t * t + 2.5 * t * t - 4 * t + 2;
            m[o * in + j] = w;
            total += w;
        }
        for (int64_t j = lo; j < hi; j++) m[o * in + j] /= total;
    }
    return m;
}

static void ref_bicubic_aa(float *y, const float *x, int64_t BC, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                           int ac) {
    double *mh = aa_matrix(H, Ho, ac), *mw = aa_matrix(W, Wo, ac);
    for (int64_t p = 0; p < BC; p++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                double acc = 0;
                for (int64_t iy = 0; iy < H; iy++)
                    for (int64_t ix = 0; ix < W; ix++) acc += mh[oy * H + iy] * mw[ox * W + ix] * x[(p * H + iy) * W + ix];
                y[(p * Ho + oy) * Wo + ox] = (float)acc;
            }
    free(mh);
    free(mw);
}

static void run(int kind, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int ac) {
    int64_t nx = B * C * H * W, ny = B * C * Ho * Wo;
    float *x = tw_alloc(nx), *y = tw_alloc(ny), *y1 = tw_alloc(ny), *ref = tw_alloc(ny);
    test_fill(x, nx, 50 + nx);
    const char *name = kind == 0 ? "nearest" : kind == 1 ? "bilinear_ac" : "bicubic_aa";
    if (kind == 0) ref_nearest(ref, x, B * C, H, W, Ho, Wo);
    if (kind == 1) ref_bilinear(ref, x, B * C, H, W, Ho, Wo);
    if (kind == 2) ref_bicubic_aa(ref, x, B * C, H, W, Ho, Wo, ac);
    for (int th = 2; th >= 1; th--) {
        omp_set_num_threads(th);
        float *o = th == 2 ? y : y1;
        if (kind == 0) ld_upsample_nearest(o, x, B, C, H, W, Ho, Wo);
        if (kind == 1) ld_resize_bilinear_ac(o, x, B, C, H, W, Ho, Wo);
        if (kind == 2) ld_resize_bicubic_aa(o, x, B, C, H, W, Ho, Wo, ac);
    }
    omp_set_num_threads(2);
    char what[128];
    snprintf(what, sizeof what, "%s B%lld C%lld %lldx%lld -> %lldx%lld ac%d", name, (long long)B, (long long)C,
             (long long)H, (long long)W, (long long)Ho, (long long)Wo, ac);
    test_close(what, y, ref, ny, kind == 0 ? 0.0 : TOL);
    CHECK(tw_same(y, y1, ny), "thread invariance: %s", what);
    free(x);
    free(y);
    free(y1);
    free(ref);
}

int main(void) {
    int64_t sizes[][4] = {
        {4, 5, 8, 10},   {8, 8, 16, 16}, {24, 24, 64, 64}, {24, 24, 32, 32}, {24, 24, 16, 16}, {7, 9, 3, 4},
        {5, 5, 5, 5},    {1, 1, 3, 2},   {6, 1, 1, 6},     {13, 11, 5, 17},  {3, 3, 1, 1},     {30, 20, 4, 7},
    };
    int n = (int)(sizeof sizes / sizeof sizes[0]);
    for (int i = 0; i < n; i++) {
        int64_t H = sizes[i][0], W = sizes[i][1], Ho = sizes[i][2], Wo = sizes[i][3];
        run(0, 2, 3, H, W, Ho, Wo, 0);
        run(1, 1, 2, H, W, Ho, Wo, 1);
        run(2, 1, 2, H, W, Ho, Wo, 1);
        run(2, 2, 1, H, W, Ho, Wo, 0);
    }
    run(2, 1, 16, 24, 24, 64, 64, 1); /* the Wuerstchen effnet sizes */
    run(2, 1, 16, 24, 36, 16, 24, 1);
    return test_finish();
}
