/* Implicit-GEMM operand of a convolution (see ld_im2col in gemm.h): packs a
 * tile of the virtual im2col matrix straight from the NCHW input, one output
 * row segment at a time, so no im2col buffer is ever built. */
#include "tensor/gemm.h"

#include <string.h>

static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

void ld_im2col_fill(const void *user, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *dst, int64_t ld) {
    const ld_im2col *s = user;
    const int64_t khw = s->kh * s->kw;
    for (int64_t kk = 0; kk < kc; kk++) {
        const int64_t k = k0 + kk, c = k / khw, ky = (k % khw) / s->kw, kx = k % s->kw;
        const float *plane = s->x + c * s->H * s->W;
        float *d = dst + kk * ld;
        int64_t j = j0, end = j0 + n;
        while (j < end) {
            /* one run of output pixels within output row oy */
            const int64_t oy = j / s->Wo, ox0 = j % s->Wo;
            const int64_t len = (s->Wo - ox0 < end - j) ? s->Wo - ox0 : end - j;
            int64_t iy = oy * s->stride_h - s->pad_h + ky * s->dil_h;
            const int64_t ixs = ox0 * s->stride_w - s->pad_w + kx * s->dil_w; /* ix of the run's first pixel */
            float *o = d + (j - j0);
            if (s->replicate) {
                const float *row = plane + clamp64(iy, 0, s->H - 1) * s->W;
                for (int64_t t = 0; t < len; t++) o[t] = row[clamp64(ixs + t * s->stride_w, 0, s->W - 1)];
            } else if (iy < 0 || iy >= s->H) {
                memset(o, 0, sizeof(float) * (size_t)len);
            } else {
                const float *row = plane + iy * s->W;
                if (s->stride_w == 1) {
                    /* valid t: 0 <= ixs + t < W */
                    int64_t t0 = clamp64(-ixs, 0, len), t1 = clamp64(s->W - ixs, 0, len);
                    if (t1 < t0) t1 = t0;
                    if (t0 > 0) memset(o, 0, sizeof(float) * (size_t)t0);
                    if (t1 > t0) memcpy(o + t0, row + ixs + t0, sizeof(float) * (size_t)(t1 - t0));
                    if (len > t1) memset(o + t1, 0, sizeof(float) * (size_t)(len - t1));
                } else {
                    for (int64_t t = 0; t < len; t++) {
                        int64_t ix = ixs + t * s->stride_w;
                        o[t] = ix >= 0 && ix < s->W ? row[ix] : 0.0f;
                    }
                }
            }
            j += len;
        }
    }
}
