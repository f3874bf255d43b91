/* LoRA round trip on the tiny KOALA U-Net: adapters trained-side (frozen
 * base + lora.h, B made nonzero) saved in the peft/diffusers and in the
 * kohya layout, merged at load (models/lora_merge.h) into the inference
 * U-Net: both give the trainer's forward within module tolerance; strength
 * 0 gives the base model. Text-encoder keys merge to W + s * alpha / r * up
 * down exactly as a naive product. A key that matches nothing, a shape that
 * does not fit, an A without B and an unknown layout are errors naming them. */
#include "test_util.h"

#include "io/model_folder.h"
#include "io/safetensors.h"
#include "models/lora_merge.h"
#include "models/unet2d.h"
#include "train/unet_train.h"

static const char *g_dir;

static float *unet_out(ld_ctx *ctx, const char *unet, const ld_lora_ref *l, int n, const float *x, const float *t,
                       const float *c, const float *te, const float *ids, int64_t nout) {
    ld_unet2d *u;
    if (ld_unet2d_load_lora(ctx, unet, NULL, l, n, &u) != LD_OK) {
        printf("load: %s\n", ld_ctx_error(ctx));
        return NULL;
    }
    float *out = malloc(sizeof(float) * (size_t)nout);
    ld_status st = ld_unet2d_forward(ctx, u, x, 2, 8, 8, t, c, 77, te, ids, out);
    ld_unet2d_free(u);
    if (st != LD_OK) {
        free(out);
        return NULL;
    }
    return out;
}

static void write_lora(ld_ctx *ctx, const char *path, const char *const *names, const int64_t (*shapes)[2], int n) {
    ld_st_builder b;
    ld_st_builder_init(&b);
    for (int i = 0; i < n; i++) {
        int64_t e = shapes[i][0] * shapes[i][1];
        float *v = malloc(sizeof(float) * (size_t)(e ? e : 1));
        test_fill(v, e, 100 + (uint64_t)i);
        if (!strcmp(names[i] + strlen(names[i]) - 6, ".alpha")) v[0] = 2.0f;
        ld_st_builder_add_f32(ctx, &b, names[i], shapes[i][0] ? 2 : 0, shapes[i], v);
        free(v);
    }
    ld_st_builder_write(ctx, &b, path);
    ld_st_builder_free(&b);
}

static void unet_round_trip(ld_ctx *ctx, const char *model) {
    char unet[4400], peft[4400], kohya[4400];
    snprintf(unet, sizeof unet, "%s/unet", model);
    snprintf(peft, sizeof peft, "%s/peft.safetensors", g_dir);
    snprintf(kohya, sizeof kohya, "%s/kohya.safetensors", g_dir);
    ld_train_unet *t;
    CHECK(ld_train_unet_open(ctx, unet, 1, &t) == LD_OK, "open frozen: %s", ld_ctx_error(ctx));
    CHECK(ld_train_unet_add_lora(ctx, t, 4, 8.0f, 3) == LD_OK, "add lora");
    ld_lora *l = ld_train_unet_lora(t);
    /* 15 transformer blocks (down 2 + 3, up 3 x 2 + 2 x 2), 8 projections each */
    CHECK(l->n == 120, "adapters on every attention projection: %zu", l->n);
    for (size_t i = 0; i < l->n; i++) { /* B nonzero, so the adapters change the output */
        ld_tensor *B = &l->params.tensors[2 * i + 1];
        test_fill(B->data, ld_tensor_numel(B), 7 + i);
        for (int64_t k = 0; k < ld_tensor_numel(B); k++) ((float *)B->data)[k] *= 0.05f;
    }
    const int64_t nx = 2 * 4 * 8 * 8, nc = 2 * 77 * 80;
    float x[2 * 4 * 8 * 8], tt[2] = {100, 700}, c[2 * 77 * 80], te[2 * 48], ids[12] = {64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64};
    test_fill(x, nx, 1), test_fill(c, nc, 2), test_fill(te, 96, 3);
    float *ref = malloc(sizeof(float) * (size_t)nx);
    CHECK(ld_train_unet_forward(ctx, t, x, 2, 8, 8, tt, c, 77, te, ids, ref) == LD_OK, "train forward");
    CHECK(ld_lora_save(ctx, l, LD_LORA_PEFT, LD_F32, peft) == LD_OK, "save peft");
    CHECK(ld_lora_save(ctx, l, LD_LORA_KOHYA, LD_F32, kohya) == LD_OK, "save kohya");
    ld_train_unet_free(t);

    ld_lora_ref lp = {peft, 1.0f}, lk = {kohya, 1.0f}, l0 = {peft, 0.0f};
    float *base = unet_out(ctx, unet, NULL, 0, x, tt, c, te, ids, nx);
    float *op = unet_out(ctx, unet, &lp, 1, x, tt, c, te, ids, nx);
    float *ok = unet_out(ctx, unet, &lk, 1, x, tt, c, te, ids, nx);
    float *oz = unet_out(ctx, unet, &l0, 1, x, tt, c, te, ids, nx);
    CHECK(base && op && ok && oz, "merged U-Nets run");
    if (base && op && ok && oz) {
        test_close("peft LoRA merged vs trainer forward", op, ref, nx, 1e-4);
        test_close("kohya LoRA merged vs trainer forward", ok, ref, nx, 1e-4);
        CHECK(test_rel_l2(ref, base, nx) > 1e-3, "the adapters change the output (%.2e)", test_rel_l2(ref, base, nx));
        test_close("strength 0 is the base model", oz, base, nx, 1e-6);
    }
    free(base), free(op), free(ok), free(oz), free(ref);
}

static void text_encoder_merge(ld_ctx *ctx, const char *model) {
    char te[4400], path[4400];
    snprintf(te, sizeof te, "%s/text_encoder", model);
    for (int kohya = 0; kohya < 2; kohya++) {
        ld_weights *ws;
        CHECK(ld_weights_open_dir(ctx, te, NULL, &ws) == LD_OK, "open te");
        const char *mod = "text_model.encoder.layers.0.self_attn.q_proj";
        const ld_tensor *w0 = ld_weights_find(ws, "text_model.encoder.layers.0.self_attn.q_proj.weight");
        const int64_t out = w0->shape[0], in = w0->shape[1], r = 3;
        float *before = malloc(sizeof(float) * (size_t)(out * in));
        ld_convert_to_f32(before, w0->data, w0->dtype, 0, out * in);
        char n0[256], n1[256], n2[256];
        if (kohya) {
            ld_lora_kohya_name(n0, sizeof n0, "lora_te1", mod, ".lora_down.weight");
            ld_lora_kohya_name(n1, sizeof n1, "lora_te1", mod, ".lora_up.weight");
            ld_lora_kohya_name(n2, sizeof n2, "lora_te1", mod, ".alpha");
        } else {
            snprintf(n0, sizeof n0, "text_encoder.%s.lora_A.weight", mod);
            snprintf(n1, sizeof n1, "text_encoder.%s.lora_B.weight", mod);
        }
        const char *names[3] = {n0, n1, n2};
        const int64_t shapes[3][2] = {{r, in}, {out, r}, {0, 0}};
        snprintf(path, sizeof path, "%s/te%d.safetensors", g_dir, kohya);
        write_lora(ctx, path, names, shapes, kohya ? 3 : 2);
        ld_lora_ref ref = {path, 0.5f};
        CHECK(ld_lora_check_file(ctx, path) == LD_OK, "te lora check: %s", ld_ctx_error(ctx));
        CHECK(ld_lora_merge(ctx, ws, LD_LORA_TE1, &ref, 1) == LD_OK, "te merge: %s", ld_ctx_error(ctx));
        const ld_tensor *w1 = ld_weights_find(ws, "text_model.encoder.layers.0.self_attn.q_proj.weight");
        float A[3 * 1024], Bv[1024 * 3];
        test_fill(A, r * in, 100), test_fill(Bv, out * r, 101);
        const double s = 0.5 * (kohya ? 2.0 : (double)r) / r;
        double maxd = 0;
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < in; i++) {
                double d = before[o * in + i];
                for (int64_t k = 0; k < r; k++) d += s * Bv[o * r + k] * A[k * in + i];
                maxd = fmax(maxd, fabs(d - ((float *)w1->data)[o * in + i]));
            }
        CHECK(w1->dtype == LD_F32 && maxd < 1e-5, "%s text-encoder merge is W + s*alpha/r*up.down (max diff %.2e)",
              kohya ? "kohya" : "peft", maxd);
        free(before);
        ld_weights_free(ws);
    }
}

static void bad_files(ld_ctx *ctx, const char *model) {
    char unet[4400], path[4400];
    snprintf(unet, sizeof unet, "%s/unet", model);
    snprintf(path, sizeof path, "%s/bad.safetensors", g_dir);
    struct {
        const char *names[2];
        int n;
        int64_t shapes[2][2];
        const char *expect;
    } cases[] = {
        {{"unet.down_blocks.7.attentions.0.proj_in.lora_A.weight", "unet.down_blocks.7.attentions.0.proj_in.lora_B.weight"},
         2, {{4, 64}, {64, 4}}, "down_blocks.7"},
        {{"unet.down_blocks.1.attentions.0.proj_in.lora_A.weight", "unet.down_blocks.1.attentions.0.proj_in.lora_B.weight"},
         2, {{4, 65}, {64, 4}}, "do not fit"},
        {{"unet.down_blocks.1.attentions.0.proj_in.lora_A.weight", NULL}, 1, {{4, 64}, {0, 0}}, "no matching up"},
        {{"unet.down_blocks.1.attentions.0.proj_in.hada_w1_a", NULL}, 1, {{4, 64}, {0, 0}}, "hada_w1_a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_lora(ctx, path, cases[i].names, cases[i].shapes, cases[i].n);
        ld_lora_ref l = {path, 1.0f};
        ld_unet2d *u = NULL;
        ld_status st = ld_unet2d_load_lora(ctx, unet, NULL, &l, 1, &u);
        CHECK(st != LD_OK && strstr(ld_ctx_error(ctx), cases[i].expect), "bad LoRA %zu refused naming '%s': %s", i,
              cases[i].expect, st == LD_OK ? "(accepted)" : ld_ctx_error(ctx));
        ld_unet2d_free(u);
    }
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    char model[4200];
    snprintf(model, sizeof model, "%.4000s/models/koala-700m-tiny", td);
    g_dir = test_tmp_dir("lora");
    ld_ctx *ctx = ld_ctx_new();
    unet_round_trip(ctx, model);
    text_encoder_merge(ctx, model);
    bad_files(ctx, model);
    ld_ctx_free(ctx);
    return test_finish();
}
