/* Every backward of src/train/grad_ops.h against a double-precision finite
 * difference of a naive double forward written here (so the forward the
 * backward assumes is checked too), on small odd shapes; and bitwise
 * thread-count invariance; on every SIMD path of this machine.
 *
 * For an op y = f(p) (p: all differentiable inputs packed in one array), the
 * test draws r and checks the op's backward with dy = r against the central
 * difference of L(p) = sum r . f(p) for every element of p. */
#include "test_ops_util.h"
#include "train/grad_ops.h"
#include "train/lora.h"

#include "base/cpu.h"

#define FD_H 1e-5
#define FD_TOL 1e-5 /* relative L2 of the whole gradient */

typedef void (*fwd64)(const void *op, const double *p, double *y);

/* Central differences of sum r.y over every element of p. */
static void fd_grad(fwd64 f, const void *op, double *p, int64_t np, const double *r, int64_t ny, double *g) {
    double *y = malloc(sizeof(double) * (size_t)ny);
    for (int64_t i = 0; i < np; i++) {
        const double keep = p[i];
        double l[2];
        for (int s = 0; s < 2; s++) {
            p[i] = keep + (s ? -FD_H : FD_H);
            f(op, p, y);
            l[s] = 0;
            for (int64_t j = 0; j < ny; j++) l[s] += r[j] * y[j];
        }
        p[i] = keep;
        g[i] = (l[0] - l[1]) / (2 * FD_H);
    }
    free(y);
}

static double rel_l2_64(const float *a, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / (den > 1e-30 ? den : 1e-30));
}

static void fill64(double *p, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) p[i] = scale * (2.0 * rand() / RAND_MAX - 1.0);
}
static float *to_f32(const double *p, int64_t n) {
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) f[i] = (float)p[i];
    return f;
}
static ld_tensor f32_tensor(float *d, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    ld_tensor t = {.dtype = LD_F32, .ndim = ndim, .shape = {d0, d1, d2, d3}, .data = d};
    return t;
}

/* The op's f32 backward, run with a given thread count: fills g (packed like p). */
typedef void (*bwd32)(const void *op, const double *p, const float *dy, float *g);

/* FD check and thread invariance for one op. */
static void check_op(const char *name, fwd64 f, bwd32 b, const void *op, int64_t np, int64_t ny, double pscale) {
    double *p = malloc(sizeof(double) * (size_t)np), *r = malloc(sizeof(double) * (size_t)ny);
    double *gref = malloc(sizeof(double) * (size_t)np);
    fill64(p, np, pscale);
    fill64(r, ny, 1.0);
    /* the f32 backward sees p rounded to f32: do the reference on the same values */
    for (int64_t i = 0; i < np; i++) p[i] = (float)p[i];
    for (int64_t i = 0; i < ny; i++) r[i] = (float)r[i];
    fd_grad(f, op, p, np, r, ny, gref);
    float *dy = to_f32(r, ny), *g1 = tw_alloc(np), *g3 = tw_alloc(np);
    omp_set_num_threads(1);
    b(op, p, dy, g1);
    omp_set_num_threads(3);
    b(op, p, dy, g3);
    double e = rel_l2_64(g1, gref, np);
    CHECK(e < FD_TOL, "%s [%s]: gradient vs finite differences rel L2 %.2e", name, ld_cpu_level_name(ld_cpu_level()), e);
    CHECK(tw_same(g1, g3, np), "%s [%s]: 1 and 3 threads differ", name, ld_cpu_level_name(ld_cpu_level()));
    free(p);
    free(r);
    free(gref);
    free(dy);
    free(g1);
    free(g3);
}

/* ---- linear: p = [x (M*K) | w (N*K) | b (N)] ---- */
typedef struct { int64_t M, K, N; } lin_op;
static void lin_f(const void *o, const double *p, double *y) {
    const lin_op *s = o;
    const double *x = p, *w = x + s->M * s->K, *bb = w + s->N * s->K;
    for (int64_t m = 0; m < s->M; m++)
        for (int64_t n = 0; n < s->N; n++) {
            double a = bb[n];
            for (int64_t k = 0; k < s->K; k++) a += x[m * s->K + k] * w[n * s->K + k];
            y[m * s->N + n] = a;
        }
}
static void lin_b(const void *o, const double *p, const float *dy, float *g) {
    const lin_op *s = o;
    float *x = to_f32(p, s->M * s->K), *wv = to_f32(p + s->M * s->K, s->N * s->K);
    ld_tensor w = f32_tensor(wv, 2, s->N, s->K, 0, 0);
    memset(g, 0, sizeof(float) * (size_t)(s->M * s->K + s->N * s->K + s->N));
    ld_linear_backward(dy, x, s->M, &w, g, g + s->M * s->K, g + s->M * s->K + s->N * s->K);
    free(x);
    free(wv);
}

/* ---- conv2d: p = [x | w | b] ---- */
typedef struct { int64_t B, Cin, H, W, Cout, k; int stride, pad; } conv_op;
static void conv_dims(const conv_op *s, int64_t *Ho, int64_t *Wo) {
    *Ho = ld_conv2d_out_dim(s->H, s->k, s->stride, s->pad, 1);
    *Wo = ld_conv2d_out_dim(s->W, s->k, s->stride, s->pad, 1);
}
static void conv_f(const void *o, const double *p, double *y) {
    const conv_op *s = o;
    int64_t Ho, Wo;
    conv_dims(s, &Ho, &Wo);
    const double *x = p, *w = x + s->B * s->Cin * s->H * s->W, *bb = w + s->Cout * s->Cin * s->k * s->k;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t co = 0; co < s->Cout; co++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double a = bb[co];
                    for (int64_t ci = 0; ci < s->Cin; ci++)
                        for (int64_t ky = 0; ky < s->k; ky++)
                            for (int64_t kx = 0; kx < s->k; kx++) {
                                int64_t iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || ix < 0 || iy >= s->H || ix >= s->W) continue;
                                a += x[((b * s->Cin + ci) * s->H + iy) * s->W + ix] *
                                     w[((co * s->Cin + ci) * s->k + ky) * s->k + kx];
                            }
                    y[((b * s->Cout + co) * Ho + oy) * Wo + ox] = a;
                }
}
static void conv_b(const void *o, const double *p, const float *dy, float *g) {
    const conv_op *s = o;
    const int64_t nx = s->B * s->Cin * s->H * s->W, nw = s->Cout * s->Cin * s->k * s->k;
    float *x = to_f32(p, nx), *wv = to_f32(p + nx, nw);
    ld_tensor w = f32_tensor(wv, 4, s->Cout, s->Cin, s->k, s->k);
    ld_conv2d_params cp = ld_conv2d_params_make(s->stride, s->pad);
    memset(g, 0, sizeof(float) * (size_t)(nx + nw + s->Cout));
    CHECK(ld_conv2d_backward(dy, x, s->B, s->Cin, s->H, s->W, &w, &cp, g, g + nx, g + nx + nw), "conv backward ran");
    free(x);
    free(wv);
}

/* ---- group norm / layer norm: p = [x | gamma | beta] ---- */
typedef struct { int64_t B, C, HW, G; int layer; } norm_op; /* layer: rows = B*HW... as [B, C] rows of dim C */
static void norm_f(const void *o, const double *p, double *y) {
    const norm_op *s = o;
    const int64_t n = s->B * s->C * s->HW;
    const double *x = p, *ga = x + n, *be = ga + s->C;
    const int64_t groups = s->layer ? s->B * s->HW : s->B * s->G;
    const int64_t len = s->layer ? s->C : s->C / s->G * s->HW;
    for (int64_t g = 0; g < groups; g++) {
        const double *xs = x + g * len;
        double m = 0, v = 0;
        for (int64_t i = 0; i < len; i++) m += xs[i];
        m /= len;
        for (int64_t i = 0; i < len; i++) v += (xs[i] - m) * (xs[i] - m);
        const double rs = 1 / sqrt(v / len + 1e-5);
        for (int64_t i = 0; i < len; i++) {
            const int64_t c = s->layer ? i : (g % s->G) * (s->C / s->G) + i / s->HW;
            y[g * len + i] = (xs[i] - m) * rs * ga[c] + be[c];
        }
    }
}
static void norm_b(const void *o, const double *p, const float *dy, float *g) {
    const norm_op *s = o;
    const int64_t n = s->B * s->C * s->HW;
    float *x = to_f32(p, n), *gv = to_f32(p + n, s->C);
    ld_tensor ga = f32_tensor(gv, 1, s->C, 0, 0, 0);
    memset(g, 0, sizeof(float) * (size_t)(n + 2 * s->C));
    int ok = s->layer ? ld_layer_norm_backward(dy, x, s->B * s->HW, s->C, 1e-5f, &ga, g, g + n, g + n + s->C)
                      : ld_group_norm_backward(dy, x, s->B, s->C, s->HW, s->G, 1e-5f, &ga, g, g + n, g + n + s->C);
    CHECK(ok, "norm backward ran");
    free(x);
    free(gv);
}

/* ---- SiLU, GEGLU (rows x 2d -> rows x d), nearest upsampling ---- */
typedef struct { int64_t n, rows, d; } act_op;
static void silu_f(const void *o, const double *p, double *y) {
    for (int64_t i = 0; i < ((const act_op *)o)->n; i++) y[i] = p[i] / (1 + exp(-p[i]));
}
static void silu_b(const void *o, const double *p, const float *dy, float *g) {
    const act_op *s = o;
    float *x = to_f32(p, s->n);
    memset(g, 0, sizeof(float) * (size_t)s->n);
    ld_silu_backward(dy, x, s->n, g);
    free(x);
}
static void geglu_f(const void *o, const double *p, double *y) {
    const act_op *s = o;
    for (int64_t r = 0; r < s->rows; r++)
        for (int64_t i = 0; i < s->d; i++) {
            const double a = p[r * 2 * s->d + i], gg = p[r * 2 * s->d + s->d + i];
            y[r * s->d + i] = a * gg * 0.5 * (1 + erf(gg / sqrt(2.0)));
        }
}
static void geglu_b(const void *o, const double *p, const float *dy, float *g) {
    const act_op *s = o;
    float *x = to_f32(p, s->rows * 2 * s->d);
    memset(g, 0, sizeof(float) * (size_t)(s->rows * 2 * s->d));
    ld_geglu_backward(dy, x, s->rows, s->d, g);
    free(x);
}
typedef struct { int64_t B, C, H, W, Ho, Wo; } up_op;
static void up_f(const void *o, const double *p, double *y) {
    const up_op *s = o;
    for (int64_t bc = 0; bc < s->B * s->C; bc++)
        for (int64_t oy = 0; oy < s->Ho; oy++)
            for (int64_t ox = 0; ox < s->Wo; ox++)
                y[(bc * s->Ho + oy) * s->Wo + ox] =
                    p[(bc * s->H + (int64_t)floor(oy * (double)s->H / s->Ho)) * s->W + (int64_t)floor(ox * (double)s->W / s->Wo)];
}
static void up_b(const void *o, const double *p, const float *dy, float *g) {
    const up_op *s = o;
    (void)p;
    memset(g, 0, sizeof(float) * (size_t)(s->B * s->C * s->H * s->W));
    ld_upsample_nearest_backward(dy, s->B, s->C, s->H, s->W, s->Ho, s->Wo, g);
}

/* ---- attention: p = [q (B*Lq*H*D) | k (B*Lk*H*D) | v] ---- */
typedef struct { int64_t B, H, Lq, Lk, D; double scale; } att_op; /* scale 0: 1/sqrt(D) */
static double att_scale(const att_op *s) { return s->scale != 0 ? s->scale : 1 / sqrt((double)s->D); }
static void att_f(const void *o, const double *p, double *y) {
    const att_op *s = o;
    const int64_t C = s->H * s->D;
    const double *q = p, *k = q + s->B * s->Lq * C, *v = k + s->B * s->Lk * C;
    const double scale = att_scale(s);
    double *w = malloc(sizeof(double) * (size_t)s->Lk);
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < s->H; h++)
            for (int64_t i = 0; i < s->Lq; i++) {
                double m = -1e300, z = 0;
                for (int64_t j = 0; j < s->Lk; j++) {
                    double a = 0;
                    for (int64_t d = 0; d < s->D; d++)
                        a += q[(b * s->Lq + i) * C + h * s->D + d] * k[(b * s->Lk + j) * C + h * s->D + d];
                    w[j] = a * scale;
                    if (w[j] > m) m = w[j];
                }
                for (int64_t j = 0; j < s->Lk; j++) z += (w[j] = exp(w[j] - m));
                for (int64_t d = 0; d < s->D; d++) {
                    double a = 0;
                    for (int64_t j = 0; j < s->Lk; j++) a += w[j] / z * v[(b * s->Lk + j) * C + h * s->D + d];
                    y[(b * s->Lq + i) * C + h * s->D + d] = a;
                }
            }
    free(w);
}
static void att_b(const void *o, const double *p, const float *dy, float *g) {
    const att_op *s = o;
    const int64_t C = s->H * s->D, nq = s->B * s->Lq * C, nk = s->B * s->Lk * C;
    float *q = to_f32(p, nq), *k = to_f32(p + nq, nk), *v = to_f32(p + nq + nk, nk);
    float *out = tw_alloc(nq), *lse = tw_alloc(s->B * s->H * s->Lq);
    const float scale = (float)att_scale(s);
    CHECK(ld_attention_train_forward(out, C, lse, q, C, k, C, v, C, s->B, s->H, s->Lq, s->Lk, s->D, scale),
          "attention forward ran");
    /* the training forward agrees with the inference kernel */
    float *ref = tw_alloc(nq);
    ld_attn_params ap = {.scale = scale};
    ld_attention(ref, C, q, C, k, C, v, C, s->B, s->H, s->Lq, s->Lk, s->D, &ap);
    CHECK(test_rel_l2(out, ref, nq) < 1e-5, "attention training forward vs ld_attention %.2e", test_rel_l2(out, ref, nq));
    memset(g, 0, sizeof(float) * (size_t)(nq + 2 * nk));
    CHECK(ld_attention_backward(dy, C, out, lse, q, C, k, C, v, C, s->B, s->H, s->Lq, s->Lk, s->D, scale, g,
                                g + nq, g + nq + nk),
          "attention backward ran");
    free(q), free(k), free(v), free(out), free(lse), free(ref);
}

/* ---- LoRA on a frozen linear: p = [x (M*K) | A (r*K) | B (N*r)], W fixed ---- */
typedef struct { int64_t M, K, N, r; float alpha; const float *w; } lora_op;
static void lora_f(const void *o, const double *p, double *y) {
    const lora_op *s = o;
    const double *x = p, *A = x + s->M * s->K, *Bm = A + s->r * s->K, sc = s->alpha / s->r;
    for (int64_t m = 0; m < s->M; m++)
        for (int64_t n = 0; n < s->N; n++) {
            double a = 0;
            for (int64_t k = 0; k < s->K; k++) a += x[m * s->K + k] * s->w[n * s->K + k];
            for (int64_t j = 0; j < s->r; j++) {
                double h = 0;
                for (int64_t k = 0; k < s->K; k++) h += A[j * s->K + k] * x[m * s->K + k];
                a += sc * Bm[n * s->r + j] * h;
            }
            y[m * s->N + n] = a;
        }
}
static void lora_b(const void *o, const double *p, const float *dy, float *g) {
    const lora_op *s = o;
    ld_ctx *ctx = ld_ctx_new();
    ld_tensor w = f32_tensor((float *)s->w, 2, s->N, s->K, 0, 0);
    w.name = "layer.weight";
    const ld_lora_layer layer = {&w, (int)s->r, s->alpha, ld_conv2d_params_make(1, 0), 0};
    ld_lora l;
    CHECK(ld_lora_create(ctx, &layer, 1, 1, &l) == LD_OK, "lora create");
    float *x = to_f32(p, s->M * s->K);
    for (int64_t i = 0; i < s->r * s->K + s->N * s->r; i++) l.params.value[i] = (float)p[s->M * s->K + i];
    memset(g, 0, sizeof(float) * (size_t)(s->M * s->K + s->r * s->K + s->N * s->r));
    ld_linear_backward(dy, x, s->M, &w, g, NULL, NULL); /* the frozen base passes dx only */
    CHECK(ld_lora_backward(ctx, &l, 0, dy, x, s->M, g) == LD_OK, "lora backward");
    memcpy(g + s->M * s->K, l.params.grad, sizeof(float) * (size_t)(s->r * s->K + s->N * s->r));
    /* the forward adds what the naive one computes */
    float *y = tw_alloc(s->M * s->N);
    double *yr = malloc(sizeof(double) * (size_t)(s->M * s->N));
    ld_linear(y, x, s->M, &w, NULL);
    CHECK(ld_lora_forward(ctx, &l, 0, x, s->M, y) == LD_OK, "lora forward");
    lora_f(o, p, yr);
    double e = 0, d = 0;
    for (int64_t i = 0; i < s->M * s->N; i++) e += (y[i] - yr[i]) * (y[i] - yr[i]), d += yr[i] * yr[i];
    CHECK(sqrt(e / d) < 1e-5, "lora forward vs naive %.2e", sqrt(e / d));
    free(x), free(y), free(yr);
    ld_lora_free(&l);
    ld_ctx_free(ctx);
}

/* ---- LoCon, LoRA on a frozen convolution: p = [x | A (r*Cin*k*k) | B (Cout*r)], W fixed:
 * y = conv(x, W) + alpha/r * conv1x1(conv(x, A), B), A with W's stride and padding ---- */
typedef struct { conv_op c; int64_t r; float alpha; const float *w; } locon_op;
static void locon_f(const void *o, const double *p, double *y) {
    const locon_op *s = o;
    const conv_op *c = &s->c;
    int64_t Ho, Wo;
    conv_dims(c, &Ho, &Wo);
    const int64_t nx = c->B * c->Cin * c->H * c->W, kk = c->Cin * c->k * c->k, nw = c->Cout * kk, HWo = Ho * Wo;
    const double *A = p + nx, *Bm = A + s->r * kk, sc = s->alpha / s->r;
    double *pb = calloc((size_t)(nx + nw + c->Cout), sizeof(double)); /* [x | W | 0] */
    memcpy(pb, p, sizeof(double) * (size_t)nx);
    for (int64_t i = 0; i < nw; i++) pb[nx + i] = s->w[i];
    conv_f(c, pb, y);
    conv_op ca = *c; /* h = conv(x, A) */
    ca.Cout = s->r;
    double *pa = calloc((size_t)(nx + s->r * kk + s->r), sizeof(double)), *h = malloc(sizeof(double) * (size_t)(c->B * s->r * HWo));
    memcpy(pa, p, sizeof(double) * (size_t)(nx + s->r * kk));
    conv_f(&ca, pa, h);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t co = 0; co < c->Cout; co++)
            for (int64_t j = 0; j < s->r; j++)
                for (int64_t i = 0; i < HWo; i++)
                    y[(b * c->Cout + co) * HWo + i] += sc * Bm[co * s->r + j] * h[(b * s->r + j) * HWo + i];
    free(pb), free(pa), free(h);
}
static void locon_b(const void *o, const double *p, const float *dy, float *g) {
    const locon_op *s = o;
    const conv_op *c = &s->c;
    int64_t Ho, Wo;
    conv_dims(c, &Ho, &Wo);
    const int64_t nx = c->B * c->Cin * c->H * c->W, na = s->r * c->Cin * c->k * c->k, nb = c->Cout * s->r;
    const int64_t ny = c->B * c->Cout * Ho * Wo;
    ld_ctx *ctx = ld_ctx_new();
    ld_tensor w = f32_tensor((float *)s->w, 4, c->Cout, c->Cin, c->k, c->k);
    w.name = "down_blocks.0.resnets.0.conv1.weight";
    const ld_conv2d_params cp = ld_conv2d_params_make(c->stride, c->pad);
    const ld_lora_layer layer = {&w, (int)s->r, s->alpha, cp, 0};
    ld_lora l;
    CHECK(ld_lora_create(ctx, &layer, 1, 1, &l) == LD_OK, "locon create");
    /* 4-D adapters, initialised as kohya/peft: A uniform in +-1/sqrt(Cin*k*k), B zero */
    const ld_tensor *A = &l.params.tensors[0], *Bt = &l.params.tensors[1];
    CHECK(A->ndim == 4 && A->shape[0] == s->r && A->shape[1] == c->Cin && A->shape[2] == c->k && A->shape[3] == c->k,
          "locon A shape");
    CHECK(Bt->ndim == 4 && Bt->shape[0] == c->Cout && Bt->shape[1] == s->r && Bt->shape[2] == 1 && Bt->shape[3] == 1,
          "locon B shape");
    const float bound = 1.0f / sqrtf((float)(c->Cin * c->k * c->k));
    float amax = 0, bmax = 0;
    for (int64_t i = 0; i < na; i++) amax = fmaxf(amax, fabsf(((const float *)A->data)[i]));
    for (int64_t i = 0; i < nb; i++) bmax = fmaxf(bmax, fabsf(((const float *)Bt->data)[i]));
    CHECK(amax <= bound && amax > 0.5f * bound && bmax == 0, "locon init: max |A| %g (bound %g), max |B| %g", amax,
          bound, bmax);
    float *x = to_f32(p, nx);
    for (int64_t i = 0; i < na; i++) l.params.value[l.params.offset[0] + i] = (float)p[nx + i];
    for (int64_t i = 0; i < nb; i++) l.params.value[l.params.offset[1] + i] = (float)p[nx + na + i];
    memset(g, 0, sizeof(float) * (size_t)(nx + na + nb));
    CHECK(ld_conv2d_backward(dy, x, c->B, c->Cin, c->H, c->W, &w, &cp, g, NULL, NULL), "frozen conv backward");
    CHECK(ld_lora_conv_backward(ctx, &l, 0, dy, x, c->B, c->H, c->W, g) == LD_OK, "locon backward");
    memcpy(g + nx, l.params.grad + l.params.offset[0], sizeof(float) * (size_t)na);
    memcpy(g + nx + na, l.params.grad + l.params.offset[1], sizeof(float) * (size_t)nb);
    /* the forward adds what the naive one computes */
    float *y = tw_alloc(ny);
    double *yr = malloc(sizeof(double) * (size_t)ny);
    ld_conv2d(y, x, c->B, c->Cin, c->H, c->W, &w, NULL, &cp);
    CHECK(ld_lora_conv_forward(ctx, &l, 0, x, c->B, c->H, c->W, y) == LD_OK, "locon forward");
    locon_f(o, p, yr);
    double e = 0, d = 0;
    for (int64_t i = 0; i < ny; i++) e += (y[i] - yr[i]) * (y[i] - yr[i]), d += yr[i] * yr[i];
    CHECK(sqrt(e / d) < 1e-5, "locon forward vs naive %.2e", sqrt(e / d));
    free(x), free(y), free(yr);
    ld_lora_free(&l);
    ld_ctx_free(ctx);
}

static void run_all(void) {
    const lin_op lins[] = {{5, 7, 3}, {19, 13, 11}, {1, 33, 17}};
    for (size_t i = 0; i < sizeof lins / sizeof *lins; i++)
        check_op("linear", lin_f, lin_b, &lins[i], lins[i].M * lins[i].K + lins[i].N * lins[i].K + lins[i].N,
                 lins[i].M * lins[i].N, 1.0);
    const conv_op convs[] = {{2, 3, 5, 7, 4, 3, 1, 1}, {1, 5, 7, 6, 3, 3, 2, 1}, {2, 4, 5, 5, 3, 1, 1, 0},
                             {1, 3, 6, 9, 2, 3, 2, 0}};
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
        const conv_op *c = &convs[i];
        int64_t Ho, Wo;
        conv_dims(c, &Ho, &Wo);
        check_op("conv2d", conv_f, conv_b, c, c->B * c->Cin * c->H * c->W + c->Cout * c->Cin * c->k * c->k + c->Cout,
                 c->B * c->Cout * Ho * Wo, 1.0);
    }
    const norm_op norms[] = {{2, 6, 5, 3, 0}, {3, 9, 7, 1, 0}, {2, 12, 3, 0, 1}, {1, 37, 5, 0, 1}};
    for (size_t i = 0; i < sizeof norms / sizeof *norms; i++) {
        const norm_op *n = &norms[i];
        check_op(n->layer ? "layer_norm" : "group_norm", norm_f, norm_b, n, n->B * n->C * n->HW + 2 * n->C,
                 n->B * n->C * n->HW, 2.0);
    }
    const act_op silu = {37, 0, 0}, geglu = {0, 5, 7};
    check_op("silu", silu_f, silu_b, &silu, silu.n, silu.n, 4.0);
    check_op("geglu", geglu_f, geglu_b, &geglu, geglu.rows * 2 * geglu.d, geglu.rows * geglu.d, 3.0);
    const up_op ups[] = {{2, 3, 3, 5, 6, 10}, {1, 2, 3, 3, 7, 8}};
    for (size_t i = 0; i < sizeof ups / sizeof *ups; i++)
        check_op("upsample_nearest", up_f, up_b, &ups[i], ups[i].B * ups[i].C * ups[i].H * ups[i].W,
                 ups[i].B * ups[i].C * ups[i].Ho * ups[i].Wo, 1.0);
    float wl[11 * 9];
    test_fill(wl, 11 * 9, 5);
    const lora_op lo = {7, 9, 11, 3, 6.0f, wl};
    check_op("lora", lora_f, lora_b, &lo, lo.M * lo.K + lo.r * lo.K + lo.N * lo.r, lo.M * lo.N, 1.0);
    /* LoCon: 3x3 same padding, 3x3 stride 2 (Downsample2D), 1x1 (conv_shortcut) */
    float wc[5 * 6 * 3 * 3];
    test_fill(wc, 5 * 6 * 3 * 3, 6);
    const locon_op locons[] = {{{2, 3, 5, 7, 4, 3, 1, 1}, 2, 4.0f, wc},
                               {{1, 5, 7, 6, 3, 3, 2, 1}, 3, 3.0f, wc},
                               {{2, 6, 5, 5, 5, 1, 1, 0}, 2, 1.0f, wc}};
    for (size_t i = 0; i < sizeof locons / sizeof *locons; i++) {
        const locon_op *lc = &locons[i];
        const conv_op *c = &lc->c;
        int64_t Ho, Wo;
        conv_dims(c, &Ho, &Wo);
        check_op("locon", locon_f, locon_b, lc,
                 c->B * c->Cin * c->H * c->W + lc->r * c->Cin * c->k * c->k + c->Cout * lc->r,
                 c->B * c->Cout * Ho * Wo, 1.0);
    }
    const att_op atts[] = {{2, 2, 7, 7, 5, 0},     {1, 3, 67, 9, 4, 0},   {2, 1, 5, 70, 3, 0},
                           {1, 1, 300, 260, 2, 0}, {1, 2, 70, 90, 8, 0}, {2, 1, 5, 1100, 3, 0},
                           {1, 2, 70, 90, 8, -6}};
    /* {1, 1, 300, 260, 2}: several blocks of queries and keys; {1, 2, 70, 90, 8}: the forward's K and V packed once
     * per head (gemm_packed.h), its last block of 6 queries on ld_gemm; {2, 1, 5, 1100, 3}: two groups of keys,
     * the second one's dq summed from its partial sums; a negative scale: the forward's extreme of the raw scores is
     * their minimum */
    for (size_t i = 0; i < sizeof atts / sizeof *atts; i++) {
        const att_op *a = &atts[i];
        check_op("attention", att_f, att_b, a, a->B * (a->Lq + 2 * a->Lk) * a->H * a->D, a->B * a->Lq * a->H * a->D,
                 1.5);
    }
}

int main(void) {
    srand(7);
    const ld_cpu_level_t levels[] = {LD_CPU_PORTABLE, LD_CPU_NEON, LD_CPU_AVX2, LD_CPU_AVX512};
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
        if (ld_cpu_force(levels[i]) != levels[i]) continue; /* not on this machine */
        run_all();
    }
    return test_finish();
}
