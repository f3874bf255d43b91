/* The training run (train/trainer.h) on a tiny dataset it writes itself:
 * a step of batch 2 and a step of two accumulated micro-batches of 1 see the
 * same images, timesteps and noise, so after three steps both give the same
 * weights up to the order of float sums; the learning-rate schedules have
 * the shapes they promise. */
#include "test_util.h"

#include "io/png.h"
#include "io/safetensors.h"
#include "train/trainer.h"

static float *weights(ld_ctx *ctx, const char *dir, int64_t *n) {
    char path[4400];
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    ld_safetensors *f;
    if (ld_safetensors_open(ctx, path, &f) != LD_OK) return NULL;
    int64_t total = 0;
    for (size_t i = 0; i < ld_safetensors_count(f); i++) total += ld_tensor_numel(ld_safetensors_at(f, i));
    float *w = malloc(sizeof(float) * (size_t)total);
    int64_t off = 0;
    for (size_t i = 0; i < ld_safetensors_count(f); i++) {
        const ld_tensor *t = ld_safetensors_at(f, i);
        ld_convert_to_f32(w + off, t->data, t->dtype, 0, ld_tensor_numel(t));
        off += ld_tensor_numel(t);
    }
    ld_safetensors_close(f);
    *n = total;
    return w;
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    char model[4200], data[4400], out1[4400], out2[4400];
    snprintf(model, sizeof model, "%.4000s/models/koala-700m-tiny", td);
    const char *dir = test_tmp_dir("train_accum");
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(out1, sizeof out1, "%s/batch2", dir);
    snprintf(out2, sizeof out2, "%s/accum2", dir);
    char cmd[18000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s' && mkdir -p '%s'", data, out1, out2, data);
    CHECK(system(cmd) == 0, "scratch folders");
    ld_ctx *ctx = ld_ctx_new();
    uint8_t px[80 * 72 * 3];
    for (int i = 0; i < 2; i++) { /* two pictures of other sizes than the training size */
        uint64_t s = 5 + (uint64_t)i;
        for (size_t k = 0; k < sizeof px; k++) px[k] = (uint8_t)(128 + 127 * test_rand(&s));
        char p[4500];
        snprintf(p, sizeof p, "%s/pic%d.png", data, i);
        CHECK(ld_png_write(ctx, p, px, 80, 72, NULL) == LD_OK, "write %s", p);
        snprintf(p, sizeof p, "%s/pic%d.txt", data, i);
        FILE *f = fopen(p, "w");
        if (f) fprintf(f, "picture number %d\n", i), fclose(f);
    }
    ld_train_options o;
    ld_train_options_init(&o);
    o.model_dir = model, o.data_dir = data, o.resolution = 64, o.steps = 3, o.lr = 1e-3f, o.seed = 7;
    o.batch = 2, o.accum = 1, o.out_dir = out1;
    CHECK(ld_train_run(ctx, &o) == LD_OK, "batch 2: %s", ld_ctx_error(ctx));
    o.batch = 1, o.accum = 2, o.out_dir = out2;
    CHECK(ld_train_run(ctx, &o) == LD_OK, "batch 1 x accum 2: %s", ld_ctx_error(ctx));
    int64_t n1 = 0, n2 = 0;
    float *w1 = weights(ctx, out1, &n1), *w2 = weights(ctx, out2, &n2);
    CHECK(w1 && w2 && n1 == n2 && n1 > 0, "both runs wrote their U-Net");
    if (w1 && w2 && n1 == n2) {
        const double e = test_rel_l2(w2, w1, n1);
        CHECK(e < 1e-5, "batch 2 and 2 accumulated micro-batches of 1 give the same weights (rel L2 %.2e)", e);
    }
    free(w1), free(w2);

    /* schedules: warm-up to lr, then constant / linear to 0 / cosine to 0 */
    ld_train_options_init(&o);
    o.lr = 1.0f, o.steps = 110, o.warmup = 10;
    CHECK(fabs(ld_train_lr(&o, 0) - 0.1) < 1e-9 && fabs(ld_train_lr(&o, 9) - 1) < 1e-9, "linear warm-up");
    o.schedule = LD_LR_LINEAR;
    CHECK(fabs(ld_train_lr(&o, 60) - 0.5) < 1e-9 && ld_train_lr(&o, 109) < 0.011, "linear decay");
    o.schedule = LD_LR_COSINE;
    CHECK(fabs(ld_train_lr(&o, 60) - 0.5) < 1e-9 && fabs(ld_train_lr(&o, 10) - 1) < 1e-9, "cosine decay");
    ld_ctx_free(ctx);
    return test_finish();
}
