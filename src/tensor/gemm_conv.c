/* Implicit-GEMM operand of a convolution (see ld_im2col in gemm.h): packs a
 * tile of the virtual im2col matrix straight from the NCHW input, one output
 * row segment at a time, so no im2col buffer is ever built.
 *
 * The f32 kernels ask for one NR-column panel at a time (the bf16 ones for
 * a few k rows of a whole column block, see pack_b_block in gemm.c), so the
 * cost per k row matters as much as the copy: the tile's output pixels are
 * cut into runs within one output row once per call, (c, ky, kx) advance by
 * counting instead of dividing, and the first lines of the next panel's
 * source are prefetched, because the input of a large convolution lives in
 * memory and each k row reads its own input row. */
#include "tensor/gemm.h"

#include <string.h>

static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* A run of output pixels within output row oy: columns ox0.. of the tile's
 * columns off.. (len of them). */
typedef struct {
    int64_t oy, ox0, off, len;
} pixel_run;

/* Up to `most` runs of the pixels [j, end); returns how many, *next = first
 * pixel not covered. */
static int cut_runs(const ld_im2col *s, int64_t j0, int64_t j, int64_t end, pixel_run *r, int most, int64_t *next) {
    int nr = 0;
    int64_t oy = j / s->Wo, ox = j % s->Wo;
    while (j < end && nr < most) {
        const int64_t len = s->Wo - ox < end - j ? s->Wo - ox : end - j;
        r[nr++] = (pixel_run){oy, ox, j - j0, len};
        j += len;
        oy++;
        ox = 0;
    }
    *next = j;
    return nr;
}

/* o[0..len) = source pixels ixs, ixs + sw, ... of one input row (0 outside,
 * or the nearest edge pixel with replicate). */
static inline void copy_run(const ld_im2col *s, const float *row, int64_t ixs, int64_t len, float *o) {
    if (s->replicate) {
        for (int64_t t = 0; t < len; t++) o[t] = row[clamp64(ixs + t * s->stride_w, 0, s->W - 1)];
    } else if (s->stride_w == 1) {
        /* valid t: 0 <= ixs + t < W */
        int64_t t0 = clamp64(-ixs, 0, len), t1 = clamp64(s->W - ixs, 0, len);
        if (t1 < t0) t1 = t0;
        for (int64_t t = 0; t < t0; t++) o[t] = 0.0f;
        if (t1 > t0) memcpy(o + t0, row + ixs + t0, sizeof(float) * (size_t)(t1 - t0));
        for (int64_t t = t1; t < len; t++) o[t] = 0.0f;
    } else {
        for (int64_t t = 0; t < len; t++) {
            const int64_t ix = ixs + t * s->stride_w;
            o[t] = ix >= 0 && ix < s->W ? row[ix] : 0.0f;
        }
    }
}

void ld_im2col_fill(const void *user, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *dst, int64_t ld) {
    const ld_im2col *s = user;
    const int64_t khw = s->kh * s->kw, end = j0 + n;
    pixel_run runs[64];
    for (int64_t j = j0; j < end;) {
        const int nr = cut_runs(s, j0, j, end, runs, 64, &j);
        int64_t c = k0 / khw, ky = (k0 % khw) / s->kw, kx = k0 % s->kw;
        for (int64_t kk = 0; kk < kc; kk++) {
            const float *plane = s->x + c * s->H * s->W;
            float *d = dst + kk * ld;
            for (int r = 0; r < nr; r++) {
                const pixel_run *u = &runs[r];
                float *o = d + u->off;
                int64_t iy = u->oy * s->stride_h - s->pad_h + ky * s->dil_h;
                const int64_t ixs = u->ox0 * s->stride_w - s->pad_w + kx * s->dil_w;
                if (s->replicate)
                    iy = clamp64(iy, 0, s->H - 1);
                else if (iy < 0 || iy >= s->H) {
                    memset(o, 0, sizeof(float) * (size_t)u->len);
                    continue;
                }
                const float *row = plane + iy * s->W;
                /* the next panel reads on from here: its first (at most 4)
                 * lines, one per 16 floats */
                if (kx == 0 && r == nr - 1 && ixs + u->len * s->stride_w >= 0) {
                    const int64_t ahead = ixs + u->len * s->stride_w, span = u->len * s->stride_w;
                    for (int64_t t = 0; t < span && t < 64 && ahead + t < s->W; t += 16)
                        __builtin_prefetch(row + ahead + t);
                }
                copy_run(s, row, ixs, u->len, o);
            }
            if (++kx == s->kw) {
                kx = 0;
                if (++ky == s->kh) {
                    ky = 0;
                    c++;
                }
            }
        }
    }
}
