/* Feature taps of the U-Net trainer (the inputs of KOALA's feature loss),
 * for each kind of tapped module (attn1, attn2, ff of a transformer block,
 * and BK-SDM's whole-block outputs):
 * the gradient the backward gives for L = sum(r * feature) agrees with a
 * central finite difference of the forward along a random direction, for a
 * weight inside the tapped block and one upstream of it (conv_in). Unknown
 * module names, a mid block the U-Net does not have and a block tapped twice
 * are errors naming them. */
#include "test_util.h"

#include "train/unet_train.h"

static double tap_loss(ld_ctx *ctx, ld_train_unet *t, const float *x, const float *ts, const float *c, const float *te,
                       const float *ids, float *pred, const float *r) {
    if (ld_train_unet_forward(ctx, t, x, 2, 8, 8, ts, c, 77, te, ids, pred) != LD_OK) return NAN;
    int64_t n;
    const float *f = ld_train_unet_tap(t, 0, &n, NULL, NULL);
    double l = 0;
    for (int64_t i = 0; i < n; i++) l += (double)r[i] * f[i];
    return l;
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    char unet[4200];
    snprintf(unet, sizeof unet, "%.4000s/models/koala-700m-tiny/unet", td);
    ld_ctx *ctx = ld_ctx_new();
    ld_train_unet *t;
    if (ld_train_unet_open(ctx, unet, 0, &t) != LD_OK) {
        printf("open: %s\n", ld_ctx_error(ctx));
        return 1;
    }
    float x[2 * 4 * 8 * 8], ts[2] = {50, 600}, c[2 * 77 * 80], te[2 * 48], pred[2 * 4 * 8 * 8], dpred[2 * 4 * 8 * 8] = {0};
    float ids[12] = {64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64};
    test_fill(x, sizeof x / 4, 1), test_fill(c, sizeof c / 4, 2), test_fill(te, sizeof te / 4, 3);
    const char *kinds[5] = {"attn1", "attn2", "ff", "down_blocks.0", "up_blocks.0"};
    const char *params[2] = {"down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q.weight", "conv_in.weight"};
    ld_train_params *p = ld_train_unet_params(t);
    for (int k = 0; k < 5; k++) {
        char name[128];
        if (k < 3) snprintf(name, sizeof name, "down_blocks.1.attentions.0.transformer_blocks.1.%s", kinds[k]);
        else snprintf(name, sizeof name, "%s", kinds[k]); /* the block's output, [B, C, H, W] */
        const char *names[1] = {name};
        CHECK(ld_train_unet_set_taps(ctx, t, names, 1) == LD_OK, "tap %s: %s", name, ld_ctx_error(ctx));
        /* the backward's gradient of L = sum(r * feature) */
        ld_train_params_zero_grad(p);
        CHECK(ld_train_unet_forward(ctx, t, x, 2, 8, 8, ts, c, 77, te, ids, pred) == LD_OK, "forward");
        int64_t n, shape[3];
        float *g, *f = ld_train_unet_tap(t, 0, &n, &g, shape);
        /* down_blocks.0 ends with its downsampler (32 channels, 8x8 -> 4x4), up_blocks.0 with its upsampler
         * (96 channels, 2x2 -> 4x4) */
        const int64_t want[5][2] = {{16, 64}, {16, 64}, {16, 64}, {16, 32}, {16, 96}};
        CHECK(f && n == 2 * want[k][0] * want[k][1] && shape[1] == want[k][0] && shape[2] == want[k][1],
              "tap %s holds [2, %lld, %lld] (%lld: [%lld, %lld, %lld])", kinds[k], (long long)want[k][0],
              (long long)want[k][1], (long long)n, (long long)shape[0], (long long)shape[1], (long long)shape[2]);
        if (!f) continue;
        float *r = malloc(sizeof(float) * (size_t)n);
        test_fill(r, n, 10 + (uint64_t)k);
        memcpy(g, r, sizeof(float) * (size_t)n);
        CHECK(ld_train_unet_backward(ctx, t, dpred) == LD_OK, "backward");
        for (int q = 0; q < 2; q++) {
            const int64_t idx = ld_train_params_find(p, params[q]);
            const ld_tensor *w = &p->tensors[idx];
            const int64_t m = ld_tensor_numel(w);
            float *wv = w->data, *keep = malloc(sizeof(float) * (size_t)m), *v = malloc(sizeof(float) * (size_t)m);
            memcpy(keep, wv, sizeof(float) * (size_t)m);
            test_fill(v, m, 20 + (uint64_t)q);
            double analytic = 0;
            const float *gw = p->grad + p->offset[idx];
            for (int64_t i = 0; i < m; i++) analytic += (double)gw[i] * v[i];
            const double h = 1e-2;
            double l[2];
            for (int s = 0; s < 2; s++) {
                for (int64_t i = 0; i < m; i++) wv[i] = keep[i] + (float)((s ? -h : h) * v[i]);
                l[s] = tap_loss(ctx, t, x, ts, c, te, ids, pred, r);
            }
            memcpy(wv, keep, sizeof(float) * (size_t)m);
            const double fd = (l[0] - l[1]) / (2 * h), e = fabs(fd - analytic) / fmax(fabs(fd), 1e-3);
            CHECK(e < 2e-2, "%s tap, %s: backward %.6g vs finite difference %.6g (rel %.2e)", kinds[k], params[q],
                  analytic, fd, e);
            free(keep), free(v);
        }
        free(r);
    }
    const char *bad[1] = {"down_blocks.1.attentions.0.transformer_blocks.1.norm3"};
    CHECK(ld_train_unet_set_taps(ctx, t, bad, 1) != LD_OK && strstr(ld_ctx_error(ctx), "norm3"),
          "an untappable module is named: %s", ld_ctx_error(ctx));
    const char *nomid[1] = {"mid_block"}, *twice[2] = {"up_blocks.1", "up_blocks.1"};
    CHECK(ld_train_unet_set_taps(ctx, t, nomid, 1) != LD_OK && strstr(ld_ctx_error(ctx), "mid_block"),
          "the mid block of a U-Net without one is named: %s", ld_ctx_error(ctx));
    CHECK(ld_train_unet_set_taps(ctx, t, twice, 2) != LD_OK && strstr(ld_ctx_error(ctx), "twice"),
          "a block tapped twice is refused: %s", ld_ctx_error(ctx));
    ld_train_unet_free(t);
    ld_ctx_free(ctx);
    return test_finish();
}
