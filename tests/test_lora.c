/* LoRA round trip on the tiny KOALA U-Net: adapters trained-side (frozen
 * base + lora.h, B made nonzero; on the attention projections, or on every
 * linear of the transformers) saved in the peft/diffusers and in the
 * kohya layout, merged at load (models/lora_merge.h) into the inference
 * U-Net: both give the trainer's forward within module tolerance; strength
 * 0 gives the base model. With LoCon adapters (--lora-conv-rank) too: the
 * ResNets' and samplers' convolutions are adapted with 4-D A and B, the
 * merged U-Net matches the trainer's forward, and the trainer's backward
 * matches finite differences on every kind of conv adapter; on a U-Net whose
 * proj_in / proj_out are 1x1 convolutions, their adapters are 4-D as well. Text-encoder keys merge to W + s * alpha / r * up
 * down exactly as a naive product. A key that matches nothing, a shape that
 * does not fit, an A without B and an unknown layout are errors naming them.
 * kohya's SDXL files name U-Net modules the original (SGM) way: on the tiny
 * SDXL-layout teacher the names map as in SDXL's checkpoints (a table of
 * known pairs), and a LoRA on attention, ResNet, sampler and embedding
 * layers under SGM names merges exactly as the same file under diffusers
 * names. */
#include "test_util.h"

#include "io/model_folder.h"
#include "io/safetensors.h"
#include "models/lora_merge.h"
#include "models/sgm_names.h"
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
    const ld_unet2d_inputs in = {.B = 2, .H = 8, .W = 8, .sample = x, .timesteps = t, .encoder_hidden_states = c,
                                 .L = 77, .text_embeds = te, .time_ids = ids};
    ld_status st = ld_unet2d_forward(ctx, u, &in, out);
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

/* The adapted layers whose module name contains part, and how many of them have 4-D (A, B). */
static int count_modules(const ld_lora *l, const char *part, int *four_d) {
    int n = 0;
    *four_d = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strstr(l->module[i], part)) {
            n++;
            *four_d += l->params.tensors[2 * i].ndim == 4 && l->params.tensors[2 * i + 1].ndim == 4;
        }
    return n;
}

/* The U-Net's backward reaches each listed adapter with the gradient of
 * L = sum r . pred: g . v against (L(p + h v) - L(p - h v)) / 2h (at two h,
 * extrapolated) for a random direction v over the adapter's A and B (the f32
 * forward: a loose tolerance; a wrongly wired input or output is off by O(1)). */
static void adapter_grads(ld_ctx *ctx, ld_train_unet *t, const char *const *modules, int nmod, const float *x,
                          const float *tt, const float *c, const float *te, const float *ids, int64_t nx) {
    ld_lora *l = ld_train_unet_lora(t);
    float *pred = malloc(sizeof(float) * (size_t)nx), *r = malloc(sizeof(float) * (size_t)nx);
    test_fill(r, nx, 77);
    ld_train_params_zero_grad(&l->params);
    CHECK(ld_train_unet_forward(ctx, t, x, 2, 8, 8, tt, c, 77, te, ids, pred) == LD_OK, "forward");
    CHECK(ld_train_unet_backward(ctx, t, r) == LD_OK, "backward: %s", ld_ctx_error(ctx));
    for (int m = 0; m < nmod; m++) {
        int i = -1;
        for (size_t k = 0; k < l->n; k++)
            if (!strcmp(l->module[k], modules[m])) i = (int)k;
        CHECK(i >= 0, "%s is adapted", modules[m]);
        if (i < 0) continue;
        const int64_t off = l->params.offset[2 * i],
                      len = l->params.offset[2 * i + 1] + ld_tensor_numel(&l->params.tensors[2 * i + 1]) - off;
        float *v = malloc(sizeof(float) * (size_t)len), *keep = malloc(sizeof(float) * (size_t)len);
        test_fill(v, len, 500 + (uint64_t)m);
        memcpy(keep, l->params.value + off, sizeof(float) * (size_t)len);
        double gv = 0, D[2]; /* central differences at h and h/2, Richardson-extrapolated */
        for (int64_t k = 0; k < len; k++) gv += (double)l->params.grad[off + k] * v[k];
        for (int q = 0; q < 2; q++) {
            const float h = q ? 4e-3f : 8e-3f;
            double L[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                for (int64_t k = 0; k < len; k++) l->params.value[off + k] = keep[k] + (sgn ? -h : h) * v[k];
                CHECK(ld_train_unet_forward(ctx, t, x, 2, 8, 8, tt, c, 77, te, ids, pred) == LD_OK, "forward");
                L[sgn] = 0;
                for (int64_t k = 0; k < nx; k++) L[sgn] += (double)r[k] * pred[k];
            }
            D[q] = (L[0] - L[1]) / (2.0 * h);
        }
        memcpy(l->params.value + off, keep, sizeof(float) * (size_t)len);
        const double fd = (4.0 * D[1] - D[0]) / 3.0, err = fabs(fd - gv) / fmax(fabs(fd), 1e-3);
        CHECK(err < 1e-2 && fabs(gv) > 1e-4, "%s: g.v %.6g vs finite difference %.6g (%.1e)", modules[m], gv, fd, err);
        free(v), free(keep);
    }
    free(pred), free(r);
}

/* conv: also LoCon adapters (rank 3, alpha 1.5: a scale of 0.5 where the linears have 8 / 4).
 * conv_proj: the model's proj_in / proj_out are 1x1 convolutions (use_linear_projection false). */
static void unet_round_trip(ld_ctx *ctx, const char *model, int all_linear, int conv, int conv_proj) {
    char unet[4400], peft[4400], kohya[4400];
    snprintf(unet, sizeof unet, "%s/unet", model);
    snprintf(peft, sizeof peft, "%s/peft%d%d%d.safetensors", g_dir, all_linear, conv, conv_proj);
    snprintf(kohya, sizeof kohya, "%s/kohya%d%d%d.safetensors", g_dir, all_linear, conv, conv_proj);
    ld_train_unet *t;
    CHECK(ld_train_unet_open(ctx, unet, 1, &t) == LD_OK, "open frozen: %s", ld_ctx_error(ctx));
    const ld_train_lora_spec sp = {4, 8.0f, all_linear, conv ? 3 : 0, conv ? 1.5f : 0.0f};
    CHECK(ld_train_unet_add_lora(ctx, t, &sp, 3) == LD_OK, "add lora");
    ld_lora *l = ld_train_unet_lora(t);
    /* 15 transformer blocks (down 2 + 3, up 3 x 2 + 2 x 2), 8 projections each; all linears: also the
     * two of each feed-forward and proj_in / proj_out of the 6 Transformer2DModels. LoCon: 9 ResNets
     * (down 3 x 1, up 3 x 2; no mid block) with conv1, conv2, time_emb_proj and 8 conv_shortcuts (all
     * but down_blocks.0's), 2 downsamplers and 2 upsamplers */
    const size_t n_conv = conv ? 9 * 3 + 8 + 2 + 2 : 0;
    CHECK(l->n == (all_linear ? 15 * 10 + 6 * 2 : 120) + n_conv, "adapters on every %s%s: %zu",
          all_linear ? "linear of the transformers" : "attention projection", conv ? " and convolution" : "", l->n);
    int four, nres = count_modules(l, ".resnets.", &four);
    CHECK(nres == (conv ? 9 * 3 + 8 : 0) && four == (conv ? 9 * 2 + 8 : 0),
          "ResNet adapters %d (%d of them 4-D: conv1, conv2, conv_shortcut)", nres, four);
    const int np = count_modules(l, ".proj_", &four);
    CHECK(np == (all_linear ? 12 : 0) && four == (conv_proj ? np : 0), "proj_in / proj_out adapters %d (%d 4-D)", np,
          four);
    int ns = count_modules(l, "samplers.0.conv", &four);
    CHECK(ns == (conv ? 4 : 0) && four == ns, "sampler adapters %d (%d 4-D)", ns, four);
    CHECK(count_modules(l, "conv_in", &four) == 0 && count_modules(l, "conv_out", &four) == 0,
          "conv_in and conv_out are not adapted");
    CHECK(l->conv_rank == (conv ? 3 : 0) && l->rank == 4, "ranks %d, conv %d", l->rank, l->conv_rank);
    for (size_t i = 0; conv && i < l->n; i++) {
        const ld_tensor *A = &l->params.tensors[2 * i];
        const int kxk = A->ndim == 4 && A->shape[2] == 3;
        if (strstr(l->module[i], ".proj_") && conv_proj)
            CHECK(A->ndim == 4 && A->shape[2] == 1 && A->shape[3] == 1 && A->shape[0] == 4,
                  "%s: a 1x1 adapter of rank 4", l->module[i]);
        if (strstr(l->module[i], "conv1") || strstr(l->module[i], "conv2") || strstr(l->module[i], "samplers"))
            CHECK(kxk && A->shape[0] == 3 && l->scale[i] == 0.5f, "%s: a 3x3 adapter of rank 3, scale 0.5",
                  l->module[i]);
        else
            CHECK(!kxk && A->shape[0] == 4 && l->scale[i] == 2.0f, "%s: rank 4", l->module[i]);
    }
    for (size_t i = 0; i < l->n; i++) { /* B nonzero, so the adapters change the output */
        ld_tensor *B = &l->params.tensors[2 * i + 1];
        test_fill(B->data, ld_tensor_numel(B), 7 + i);
        for (int64_t k = 0; k < ld_tensor_numel(B); k++) ((float *)B->data)[k] *= 0.05f;
    }
    const int64_t nx = 2 * 4 * 8 * 8, nc = 2 * 77 * 80;
    float x[2 * 4 * 8 * 8], tt[2] = {100, 700}, c[2 * 77 * 80], te[2 * 48], ids[12] = {64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64};
    test_fill(x, nx, 1), test_fill(c, nc, 2), test_fill(te, 96, 3);
    float *ref = malloc(sizeof(float) * (size_t)nx);
    if (conv) { /* every kind of conv adapter, on a plain and on a concatenated (up path) input */
        const char *mods[] = {"down_blocks.0.resnets.0.conv1", "down_blocks.1.resnets.0.conv2",
                              "down_blocks.1.resnets.0.conv_shortcut", "up_blocks.1.resnets.0.conv1",
                              "up_blocks.1.resnets.1.conv_shortcut", "up_blocks.2.resnets.0.time_emb_proj",
                              "down_blocks.0.downsamplers.0.conv", "up_blocks.0.upsamplers.0.conv"};
        adapter_grads(ctx, t, mods, (int)(sizeof mods / sizeof *mods), x, tt, c, te, ids, nx);
    }
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

/* A kohya file of rank-2 LoRAs on `mods` (diffusers module paths of ws),
 * each under its SGM name (sgm) or its diffusers name. */
static void write_kohya(ld_ctx *ctx, const char *path, ld_weights *ws, const ld_unet_layout *lay,
                        const char *const *mods, int n, int sgm) {
    ld_st_builder b;
    ld_st_builder_init(&b);
    for (int i = 0; i < n; i++) {
        char wname[300], mod[300], key[400];
        snprintf(wname, sizeof wname, "%s.weight", mods[i]);
        const ld_tensor *w = ld_weights_find(ws, wname);
        CHECK(w, "the teacher has %s", wname);
        if (!w) continue;
        CHECK(!sgm || ld_unet_sgm_module(lay, mods[i], mod, sizeof mod), "%s has an SGM name", mods[i]);
        if (!sgm) snprintf(mod, sizeof mod, "%s", mods[i]);
        const int64_t r = 2, out = w->shape[0];
        int64_t dshape[4] = {r, w->shape[1], w->ndim == 4 ? w->shape[2] : 0, w->ndim == 4 ? w->shape[3] : 0};
        int64_t ushape[4] = {out, r, 1, 1}, ashape[1] = {1};
        const int nd = w->ndim == 4 ? 4 : 2;
        const int64_t nd_el = ld_tensor_numel(w) / out * r, nu = out * r;
        float *d = malloc(sizeof(float) * (size_t)nd_el), *u = malloc(sizeof(float) * (size_t)nu), alpha = 1.0f;
        test_fill(d, nd_el, 200 + (uint64_t)i), test_fill(u, nu, 300 + (uint64_t)i);
        ld_lora_kohya_name(key, sizeof key, "lora_unet", mod, ".lora_down.weight");
        ld_st_builder_add_f32(ctx, &b, key, nd, dshape, d);
        ld_lora_kohya_name(key, sizeof key, "lora_unet", mod, ".lora_up.weight");
        ld_st_builder_add_f32(ctx, &b, key, nd, ushape, u);
        ld_lora_kohya_name(key, sizeof key, "lora_unet", mod, ".alpha");
        ld_st_builder_add_f32(ctx, &b, key, 0, ashape, &alpha);
        free(d), free(u);
    }
    CHECK(ld_st_builder_write(ctx, &b, path) == LD_OK, "write %s", path);
    ld_st_builder_free(&b);
}

static void sgm_names(ld_ctx *ctx, const char *td) {
    char unet[4400];
    snprintf(unet, sizeof unet, "%.4000s/models/sdxl-teacher-tiny/unet", td);
    ld_weights *ws;
    if (ld_weights_open_dir(ctx, unet, NULL, &ws) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    ld_unet_layout lay;
    ld_unet_layout_from_weights(ws, &lay);
    /* SDXL's own pairs (its layout: 3 levels of 2 layers, attention below the first, a mid block) */
    static const char *const pairs[][2] = {
        {"conv_in", "input_blocks.0.0"},
        {"time_embedding.linear_2", "time_embed.2"},
        {"add_embedding.linear_1", "label_emb.0.0"},
        {"down_blocks.0.resnets.0.conv1", "input_blocks.1.0.in_layers.2"},
        {"down_blocks.0.resnets.1.time_emb_proj", "input_blocks.2.0.emb_layers.1"},
        {"down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"},
        {"down_blocks.1.resnets.0.conv_shortcut", "input_blocks.4.0.skip_connection"},
        {"down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", "input_blocks.4.1.transformer_blocks.0.attn1.to_q"},
        {"down_blocks.1.downsamplers.0.conv", "input_blocks.6.0.op"},
        {"down_blocks.2.attentions.1.proj_out", "input_blocks.8.1.proj_out"},
        {"mid_block.resnets.0.norm1", "middle_block.0.in_layers.0"},
        {"mid_block.attentions.0.transformer_blocks.3.ff.net.2", "middle_block.1.transformer_blocks.3.ff.net.2"},
        {"mid_block.resnets.1.time_emb_proj", "middle_block.2.emb_layers.1"},
        {"up_blocks.0.attentions.2.proj_in", "output_blocks.2.1.proj_in"},
        {"up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv"},
        {"up_blocks.1.resnets.0.conv_shortcut", "output_blocks.3.0.skip_connection"},
        {"up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv"},
        {"up_blocks.2.resnets.2.norm2", "output_blocks.8.0.out_layers.0"},
        {"up_blocks.2.resnets.1.conv2", "output_blocks.7.0.out_layers.3"},
        {"conv_norm_out", "out.0"},
        {"conv_out", "out.2"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char got[300] = "";
        const int ok = ld_unet_sgm_module(&lay, pairs[i][0], got, sizeof got);
        CHECK(ok && !strcmp(got, pairs[i][1]), "%s -> %s (SDXL: %s)", pairs[i][0], got, pairs[i][1]);
    }
    char none[300];
    CHECK(!ld_unet_sgm_module(&lay, "down_blocks.0.attentions.0.proj_in", none, sizeof none) &&
              !ld_unet_sgm_module(&lay, "down_blocks.2.downsamplers.0.conv", none, sizeof none) &&
              !ld_unet_sgm_module(&lay, "up_blocks.3.resnets.0.conv1", none, sizeof none),
          "modules the layout does not have have no SGM name");

    /* merged: SGM names = diffusers names */
    const char *mods[] = {"down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k", "down_blocks.0.resnets.1.conv1",
                          "down_blocks.1.downsamplers.0.conv", "mid_block.attentions.0.proj_in",
                          "up_blocks.1.upsamplers.0.conv", "up_blocks.2.resnets.0.conv_shortcut",
                          "up_blocks.0.attentions.1.transformer_blocks.1.ff.net.0.proj", "time_embedding.linear_1"};
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/sgm.safetensors", g_dir);
    snprintf(b, sizeof b, "%s/diffusers-kohya.safetensors", g_dir);
    write_kohya(ctx, a, ws, &lay, mods, 8, 1);
    write_kohya(ctx, b, ws, &lay, mods, 8, 0);
    ld_weights_free(ws);
    const int64_t nx = 2 * 4 * 8 * 8;
    float x[2 * 4 * 8 * 8], tt[2] = {100, 700}, c[2 * 77 * 80], te[2 * 48], ids[12] = {64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64};
    test_fill(x, nx, 1), test_fill(c, 2 * 77 * 80, 2), test_fill(te, 96, 3);
    ld_lora_ref la = {a, 0.5f}, lb = {b, 0.5f};
    float *base = unet_out(ctx, unet, NULL, 0, x, tt, c, te, ids, nx), *oa = unet_out(ctx, unet, &la, 1, x, tt, c, te, ids, nx),
          *ob = unet_out(ctx, unet, &lb, 1, x, tt, c, te, ids, nx);
    CHECK(base && oa && ob, "U-Nets with SGM-named and diffusers-named kohya LoRAs run: %s", ld_ctx_error(ctx));
    if (base && oa && ob) {
        CHECK(!memcmp(oa, ob, sizeof(float) * (size_t)nx), "an SGM-named LoRA merges exactly as the diffusers-named one");
        CHECK(test_rel_l2(oa, base, nx) > 1e-4, "and changes the output (%.2e)", test_rel_l2(oa, base, nx));
    }
    free(base), free(oa), free(ob);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    char model[4200];
    snprintf(model, sizeof model, "%.4000s/models/koala-700m-tiny", td);
    g_dir = test_tmp_dir("lora");
    ld_ctx *ctx = ld_ctx_new();
    unet_round_trip(ctx, model, 0, 0, 0);
    unet_round_trip(ctx, model, 1, 0, 0);
    unet_round_trip(ctx, model, 0, 1, 0);
    /* the tiny KOALA U-Net with 1x1-convolution projections (init-random): kohya's full set */
    char cmd[32000], convproj[4400];
    const char *bin = getenv("LEANDIFF_BIN");
    snprintf(convproj, sizeof convproj, "%s/convproj", g_dir);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s' && sed 's/\"use_linear_projection\": true/\"use_linear_projection\": false/' "
             "'%s/unet/config.json' > '%s/config.json' && grep -q '\"use_linear_projection\": false' '%s/config.json' && "
             "'%s' init-random --config '%s/config.json' --out '%s/unet' --dtype f32 --seed 5 >/dev/null",
             convproj, convproj, model, convproj, convproj, bin ? bin : "leandiff", convproj, convproj);
    CHECK(system(cmd) == 0, "making %s", convproj);
    unet_round_trip(ctx, convproj, 1, 1, 1);
    text_encoder_merge(ctx, model);
    bad_files(ctx, model);
    sgm_names(ctx, td);
    ld_ctx_free(ctx);
    return test_finish();
}
