/* CLIP text encoders against the reference cases (every text encoder file
 * under cases/: every output key present, with the attention_mask when the
 * case has one), hidden_states indexing, the registry/init-random path on a
 * random-weight model checked against a plain naive forward written here,
 * and the error paths (bad config, wrong weights, bad ids / indices). */
#include "io/json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/model_registry.h"
#include "test_util.h"
#include "text/clip_text.h"

#define TOL 1e-4

static ld_ctx *ctx;

static float *falloc(int64_t n) { return calloc((size_t)n, sizeof(float)); }

static const float *ref_f32(const ld_safetensors *st, const char *name, int64_t n) {
    const ld_tensor *t = ld_safetensors_find(st, name);
    if (!t) return NULL;
    CHECK(t->dtype == LD_F32 && ld_tensor_numel(t) == n, "%s: dtype/size", name);
    return t->dtype == LD_F32 && ld_tensor_numel(t) == n ? t->data : NULL;
}

static void run_case(const char *td, const char *model, const char *file) {
    char dir[4200], path[4200], what[512];
    snprintf(dir, sizeof dir, "%s/models/%s", td, model);
    snprintf(path, sizeof path, "%s/cases/%s", td, file);
    ld_clip_text *te = NULL;
    ld_safetensors *st = NULL;
    if (ld_clip_text_load(ctx, dir, NULL, &te) != LD_OK || ld_safetensors_open(ctx, path, &st) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        ld_clip_text_free(te);
        return;
    }
    const ld_clip_text_config *c = ld_clip_text_get_config(te);
    const ld_tensor *ids = ld_safetensors_find(st, "input_ids");
    const ld_tensor *mask = ld_safetensors_find(st, "attention_mask");
    int64_t B = ids->shape[0], L = ids->shape[1], D = c->hidden_size, P = c->projection_dim;
    const float *r_pen = ref_f32(st, "penultimate_hidden_state", B * L * D);
    const float *r_last = ref_f32(st, "last_layer", B * L * D);
    if (!r_last) r_last = ref_f32(st, "last_layer_hidden_state", B * L * D);
    const float *r_lhs = ref_f32(st, "last_hidden_state", B * L * D);
    const float *r_pool = ref_f32(st, "pooled", B * D);
    const float *r_emb = P ? ref_f32(st, "text_embeds", B * P) : NULL;
    CHECK(r_lhs && r_last, "%s: expected keys", path);

    float *pen = falloc(B * L * D), *last = falloc(B * L * D), *lhs = falloc(B * L * D), *pool = falloc(B * D);
    float *emb = falloc(B * (P ? P : 1));
    const int64_t *m = mask ? mask->data : NULL;
    /* one call for the final outputs plus the penultimate layer, one for the last layer */
    ld_clip_text_out o = {.hidden_index = -2, .hidden = pen, .last_hidden = lhs, .pooled = pool,
                          .text_embeds = P ? emb : NULL};
    CHECK(ld_clip_text_forward(ctx, te, ids->data, m, B, L, &o) == LD_OK, "%s", ld_ctx_error(ctx));
    ld_clip_text_out o2 = {.hidden_index = -1, .hidden = last};
    CHECK(ld_clip_text_forward(ctx, te, ids->data, m, B, L, &o2) == LD_OK, "%s", ld_ctx_error(ctx));
    const char *tag = mask ? "masked" : "unmasked";
    if (r_pen) {
        snprintf(what, sizeof what, "%s %s penultimate_hidden_state", file, tag);
        test_close(what, pen, r_pen, B * L * D, TOL);
    }
    snprintf(what, sizeof what, "%s %s last_layer", file, tag);
    if (r_last) test_close(what, last, r_last, B * L * D, TOL);
    snprintf(what, sizeof what, "%s %s last_hidden_state", file, tag);
    if (r_lhs) test_close(what, lhs, r_lhs, B * L * D, TOL);
    if (r_pool) {
        snprintf(what, sizeof what, "%s %s pooled", file, tag);
        test_close(what, pool, r_pool, B * D, TOL);
    }
    if (r_emb) {
        snprintf(what, sizeof what, "%s %s text_embeds", file, tag);
        test_close(what, emb, r_emb, B * P, TOL);
    }
    /* the same layer by positive index (N = last layer, N-1 = penultimate) */
    float *alt = falloc(B * L * D);
    ld_clip_text_out o3 = {.hidden_index = (int)c->num_layers - 1, .hidden = alt};
    CHECK(ld_clip_text_forward(ctx, te, ids->data, m, B, L, &o3) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(memcmp(alt, pen, (size_t)(B * L * D) * sizeof(float)) == 0, "%s: hidden_index N-1 == -2", file);

    if (mask) {
        /* without the mask, positions up to the EOS are the same (causal),
         * the padding positions change */
        ld_clip_text_out o4 = {.last_hidden = alt};
        CHECK(ld_clip_text_forward(ctx, te, ids->data, NULL, B, L, &o4) == LD_OK, "%s", ld_ctx_error(ctx));
        for (int64_t b = 0; b < B; b++) {
            int64_t real = 0;
            while (real < L && m[b * L + real]) real++;
            double dreal = 0, dpad = 0;
            for (int64_t i = 0; i < L * D; i++) {
                double d = fabs(alt[b * L * D + i] - lhs[b * L * D + i]);
                if (i / D < real)
                    dreal = d > dreal ? d : dreal;
                else
                    dpad = d > dpad ? d : dpad;
            }
            CHECK(dreal < 1e-6, "%s: mask changed real positions of row %lld by %g", file, (long long)b, dreal);
            CHECK(real == L || dpad > 1e-4, "%s: mask did not change padding of row %lld", file, (long long)b);
        }
    }
    free(pen);
    free(last);
    free(lhs);
    free(pool);
    free(emb);
    free(alt);
    ld_safetensors_close(st);
    ld_clip_text_free(te);
}

/* ---- a plain forward for the random-weight model ---- */

static float wget(ld_weights *ws, const char *name, int64_t i) {
    const ld_tensor *t = ld_weights_find(ws, name);
    return t ? ld_tensor_get_f32(t, i) : NAN;
}

static void naive_linear(ld_weights *ws, const char *pfx, const float *x, float *y, int64_t rows, int64_t in,
                         int64_t out, int bias) {
    char wn[256], bn[256];
    snprintf(wn, sizeof wn, "%s.weight", pfx);
    snprintf(bn, sizeof bn, "%s.bias", pfx);
    const ld_tensor *w = ld_weights_find(ws, wn), *b = bias ? ld_weights_find(ws, bn) : NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? ld_tensor_get_f32(b, o) : 0;
            for (int64_t i = 0; i < in; i++) s += (double)x[r * in + i] * ld_tensor_get_f32(w, o * in + i);
            y[r * out + o] = (float)s;
        }
}

static void naive_ln(ld_weights *ws, const char *pfx, const float *x, float *y, int64_t rows, int64_t D) {
    char wn[256], bn[256];
    snprintf(wn, sizeof wn, "%s.weight", pfx);
    snprintf(bn, sizeof bn, "%s.bias", pfx);
    const ld_tensor *w = ld_weights_find(ws, wn), *b = ld_weights_find(ws, bn);
    for (int64_t r = 0; r < rows; r++) {
        double mu = 0, var = 0;
        for (int64_t i = 0; i < D; i++) mu += x[r * D + i];
        mu /= D;
        for (int64_t i = 0; i < D; i++) var += (x[r * D + i] - mu) * (x[r * D + i] - mu);
        var /= D;
        for (int64_t i = 0; i < D; i++)
            y[r * D + i] = (float)((x[r * D + i] - mu) / sqrt(var + 1e-5) * ld_tensor_get_f32(w, i) +
                                   ld_tensor_get_f32(b, i));
    }
}

/* One sequence: returns last_hidden_state [L, D] and text_embeds [P]. GELU (erf). */
static void naive_forward(ld_weights *ws, const int64_t *ids, const int64_t *mask, int64_t L, int64_t D, int64_t H,
                          int64_t I, int64_t NL, int64_t P, float *lhs, float *embeds) {
    float *h = falloc(L * D), *x = falloc(L * D), *q = falloc(L * D), *k = falloc(L * D), *v = falloc(L * D);
    float *a = falloc(L * D), *f = falloc(L * I);
    for (int64_t i = 0; i < L; i++)
        for (int64_t d = 0; d < D; d++)
            h[i * D + d] = wget(ws, "text_model.embeddings.token_embedding.weight", ids[i] * D + d) +
                           wget(ws, "text_model.embeddings.position_embedding.weight", i * D + d);
    char p[256];
    int64_t Dh = D / H;
    for (int64_t l = 0; l < NL; l++) {
#define PFX(s) (snprintf(p, sizeof p, "text_model.encoder.layers.%lld.%s", (long long)l, s), p)
        naive_ln(ws, PFX("layer_norm1"), h, x, L, D);
        naive_linear(ws, PFX("self_attn.q_proj"), x, q, L, D, D, 1);
        naive_linear(ws, PFX("self_attn.k_proj"), x, k, L, D, D, 1);
        naive_linear(ws, PFX("self_attn.v_proj"), x, v, L, D, D, 1);
        for (int64_t hh = 0; hh < H; hh++)
            for (int64_t i = 0; i < L; i++) {
                double sc[128], mx = -1e300, den = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < Dh; d++) s += (double)q[i * D + hh * Dh + d] * k[j * D + hh * Dh + d];
                    sc[j] = s / sqrt((double)Dh);
                    if (mask && !mask[j]) sc[j] = -1e300;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int64_t j = 0; j <= i; j++) den += (sc[j] = sc[j] <= -1e299 ? 0 : exp(sc[j] - mx));
                for (int64_t d = 0; d < Dh; d++) {
                    double s = 0;
                    for (int64_t j = 0; j <= i; j++) s += sc[j] / den * v[j * D + hh * Dh + d];
                    a[i * D + hh * Dh + d] = (float)s;
                }
            }
        naive_linear(ws, PFX("self_attn.out_proj"), a, x, L, D, D, 1);
        for (int64_t i = 0; i < L * D; i++) h[i] += x[i];
        naive_ln(ws, PFX("layer_norm2"), h, x, L, D);
        naive_linear(ws, PFX("mlp.fc1"), x, f, L, D, I, 1);
        for (int64_t i = 0; i < L * I; i++) f[i] = (float)(0.5 * f[i] * (1 + erf(f[i] / sqrt(2.0))));
        naive_linear(ws, PFX("mlp.fc2"), f, x, L, I, D, 1);
        for (int64_t i = 0; i < L * D; i++) h[i] += x[i];
#undef PFX
    }
    naive_ln(ws, "text_model.final_layer_norm", h, lhs, L, D);
    int64_t eos = 0;
    for (int64_t i = 0; i < L; i++)
        if (ids[i] > ids[eos]) eos = i;
    naive_linear(ws, "text_projection", lhs + eos * D, embeds, 1, D, P, 0);
    free(h), free(x), free(q), free(k), free(v), free(a), free(f);
}

static void check_random_model(void) {
    const char *cfg_text = "{\"_class_name\": \"CLIPTextModelWithProjection\", \"architectures\": "
                           "[\"CLIPTextModelWithProjection\"], \"hidden_act\": \"gelu\", \"hidden_size\": 24, "
                           "\"intermediate_size\": 40, \"num_attention_heads\": 3, \"num_hidden_layers\": 2, "
                           "\"max_position_embeddings\": 20, \"vocab_size\": 100, \"projection_dim\": 16, "
                           "\"layer_norm_eps\": 1e-05}";
    json_t *cfg = NULL;
    CHECK(ld_json_parse(ctx, "cfg", cfg_text, strlen(cfg_text), &cfg) == LD_OK, "%s", ld_ctx_error(ctx));
    const ld_model_type *type = ld_model_type_find("CLIPTextModelWithProjection");
    CHECK(type && ld_model_type_find("CLIPTextModel"), "registry entries");
    if (!cfg || !type) return;
    ld_weights *rec = NULL;
    CHECK(ld_weights_new_recorder(ctx, &rec) == LD_OK, "recorder");
    CHECK(type->record(ctx, "cfg", cfg, rec) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_weights_recorded_count(rec) == 2 + 2 * 16 + 2 + 1, "recorded %zu tensors",
          ld_weights_recorded_count(rec));
    const char *dir = test_tmp_dir("clip_random");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(json_dump_file(cfg, path, 0) == 0, "write config");
    snprintf(path, sizeof path, "%s/%s", dir, type->weights_file);
    CHECK(ld_weights_write_random(ctx, rec, path, LD_BF16, 7) == LD_OK, "%s", ld_ctx_error(ctx));
    ld_weights_free(rec);
    json_decref(cfg);

    ld_clip_text *te = NULL;
    ld_weights *ws = NULL;
    CHECK(ld_clip_text_load(ctx, dir, NULL, &te) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_weights_open_dir(ctx, dir, NULL, &ws) == LD_OK, "%s", ld_ctx_error(ctx));
    if (!te || !ws) {
        ld_clip_text_free(te);
        ld_weights_free(ws);
        return;
    }
    enum { B = 3, L = 20, D = 24, P = 16 };
    int64_t ids[B * L], mask[B * L];
    uint64_t seed = 11;
    for (int b = 0; b < B; b++) {
        int len = 3 + 6 * b; /* EOS (the largest id, 99) at len-1, padding after */
        for (int i = 0; i < L; i++) {
            ids[b * L + i] = i == 0 ? 98 : i < len - 1 ? (int64_t)((test_rand(&seed) + 1) * 40) : i == len - 1 ? 99 : 0;
            mask[b * L + i] = i < len;
        }
    }
    float lhs[B * L * D], emb[B * P], ref_lhs[L * D], ref_emb[P];
    ld_clip_text_out o = {.last_hidden = lhs, .text_embeds = emb};
    CHECK(ld_clip_text_forward(ctx, te, ids, mask, B, L, &o) == LD_OK, "%s", ld_ctx_error(ctx));
    for (int b = 0; b < B; b++) {
        naive_forward(ws, ids + b * L, mask + b * L, L, D, 3, 40, 2, P, ref_lhs, ref_emb);
        char what[64];
        snprintf(what, sizeof what, "random bf16 model row %d last_hidden_state", b);
        test_close(what, lhs + b * L * D, ref_lhs, L * D, TOL);
        snprintf(what, sizeof what, "random bf16 model row %d text_embeds", b);
        test_close(what, emb + b * P, ref_emb, P, TOL);
    }
    /* a shorter sequence is the prefix of the longer one (causal, no mask) */
    float full[L * D], part[8 * D];
    ld_clip_text_out of = {.hidden_index = -1, .hidden = full}, op = {.hidden_index = -1, .hidden = part};
    CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, L, &of) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, 8, &op) == LD_OK, "%s", ld_ctx_error(ctx));
    test_close("prefix L=8 vs L=20", part, full, 8 * D, 1e-5);
    /* hidden_states[0] = the embeddings */
    ld_clip_text_out oe = {.hidden_index = 0, .hidden = part};
    CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, 8, &oe) == LD_OK, "%s", ld_ctx_error(ctx));
    float e0[8 * D];
    for (int i = 0; i < 8; i++)
        for (int d = 0; d < D; d++)
            e0[i * D + d] = wget(ws, "text_model.embeddings.token_embedding.weight", ids[i] * D + d) +
                            wget(ws, "text_model.embeddings.position_embedding.weight", i * D + d);
    test_close("hidden_states[0] = embeddings", part, e0, 8 * D, 1e-6);

    /* bad arguments */
    int64_t bad = ids[1];
    ids[1] = 100;
    CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, 8, &op) == LD_ERR_INVALID_ARGUMENT &&
              strstr(ld_ctx_error(ctx), "id 100"),
          "id out of range: %s", ld_ctx_error(ctx));
    ids[1] = bad;
    CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, 21, &op) == LD_ERR_INVALID_ARGUMENT, "L > max positions");
    ld_clip_text_out oi = {.hidden_index = -4, .hidden = part};
    CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, 8, &oi) == LD_ERR_INVALID_ARGUMENT, "hidden_index -4");
    oi.hidden_index = 3;
    CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, 8, &oi) == LD_ERR_INVALID_ARGUMENT, "hidden_index 3");
    oi.hidden_index = -3; /* = embeddings */
    CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, 8, &oi) == LD_OK && memcmp(part, e0, sizeof e0) == 0,
          "hidden_index -3 = embeddings");
    ld_weights_free(ws);
    ld_clip_text_free(te);
}

static void expect_config_error(const char *json, ld_status want, const char *needle) {
    json_t *cfg = NULL;
    CHECK(ld_json_parse(ctx, "cfg", json, strlen(json), &cfg) == LD_OK, "%s", ld_ctx_error(ctx));
    ld_weights *rec = NULL;
    ld_weights_new_recorder(ctx, &rec);
    ld_clip_text *te = (ld_clip_text *)1;
    ld_status st = ld_clip_text_build(ctx, "x/config.json", cfg, rec, &te);
    CHECK(st == want && te == NULL && strstr(ld_ctx_error(ctx), needle), "config %s: status %d, \"%s\"", json,
          (int)st, ld_ctx_error(ctx));
    ld_weights_free(rec);
    json_decref(cfg);
}

static void check_errors(const char *td) {
    expect_config_error("{\"architectures\": [\"BertModel\"]}", LD_ERR_UNSUPPORTED, "architectures");
    expect_config_error("{\"architectures\": [\"CLIPTextModel\"], \"hidden_act\": \"relu\"}", LD_ERR_UNSUPPORTED,
                        "hidden_act");
    expect_config_error("{\"architectures\": [\"CLIPTextModel\"], \"hidden_size\": 10, \"num_attention_heads\": 3}",
                        LD_ERR_MODEL, "divisible");
    expect_config_error("{\"architectures\": [\"CLIPTextModel\"], \"hidden_size\": \"big\"}", LD_ERR_FORMAT,
                        "hidden_size");
    expect_config_error("{\"architectures\": [\"CLIPTextModel\"], \"num_hidden_layers\": -1}", LD_ERR_MODEL,
                        "num_hidden_layers");
    if (!td) return;
    /* a config that disagrees with the weights: the message names the tensor */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/models/koala-700m-tiny/text_encoder", td);
    ld_weights *ws = NULL;
    CHECK(ld_weights_open_dir(ctx, dir, NULL, &ws) == LD_OK, "%s", ld_ctx_error(ctx));
    json_t *cfg = NULL;
    const char *j = "{\"architectures\": [\"CLIPTextModel\"], \"hidden_size\": 48, \"num_attention_heads\": 4}";
    ld_json_parse(ctx, "cfg", j, strlen(j), &cfg);
    ld_clip_text *te = NULL;
    CHECK(ld_clip_text_build(ctx, "cfg", cfg, ws, &te) != LD_OK &&
              strstr(ld_ctx_error(ctx), "text_model.embeddings.token_embedding.weight"),
          "shape mismatch: %s", ld_ctx_error(ctx));
    json_decref(cfg);
    j = "{\"architectures\": [\"CLIPTextModelWithProjection\"], \"hidden_size\": 32, \"num_attention_heads\": 2, "
        "\"num_hidden_layers\": 3, \"intermediate_size\": 128}";
    ld_json_parse(ctx, "cfg", j, strlen(j), &cfg);
    CHECK(ld_clip_text_build(ctx, "cfg", cfg, ws, &te) != LD_OK && strstr(ld_ctx_error(ctx), "text_projection"),
          "missing projection: %s", ld_ctx_error(ctx));
    json_decref(cfg);
    ld_weights_free(ws);
    /* text_embeds of a model without projection */
    CHECK(ld_clip_text_load(ctx, dir, "fp16", &te) == LD_OK, "%s", ld_ctx_error(ctx));
    if (te) {
        int64_t ids[77] = {49406, 320, 49407};
        float e[32];
        ld_clip_text_out o = {.text_embeds = e};
        CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, 77, &o) == LD_ERR_INVALID_ARGUMENT, "text_embeds");
        ld_clip_text_free(te);
    }
    CHECK(ld_clip_text_load(ctx, "/nonexistent", NULL, &te) != LD_OK && te == NULL, "missing folder");
}

/* The released configs at their real sizes build (recorder) with the
 * parameter counts of the spec: CLIP-L 123,060,480, bigG with projection
 * 694,659,840 (koala.md 4.2); bigG without it 1280^2 fewer; ViT-H
 * 352,984,064 (= the 1.41 GB fp32 file of wuerstchen.md 6). */
static void check_real_configs(const char *td) {
    static const struct {
        const char *cfg;
        int64_t params;
    } real[] = {
        {"sdxl-base/text_encoder", 123060480},
        {"sdxl-base/text_encoder_2", 694659840},
        {"stable-cascade-prior/text_encoder", 694659840},
        {"wuerstchen-prior/text_encoder", 694659840 - 1280 * 1280},
        {"wuerstchen/text_encoder", 352984064},
    };
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/configs/%s/config.json", td, real[i].cfg);
        json_t *cfg = NULL;
        ld_weights *rec = NULL;
        ld_clip_text *te = NULL;
        CHECK(ld_json_load_file(ctx, path, &cfg) == LD_OK && ld_weights_new_recorder(ctx, &rec) == LD_OK &&
                  ld_clip_text_build(ctx, path, cfg, rec, &te) == LD_OK,
              "%s", ld_ctx_error(ctx));
        int64_t params = 0;
        for (size_t k = 0; rec && k < ld_weights_recorded_count(rec); k++)
            params += ld_tensor_numel(ld_weights_recorded(rec, k));
        CHECK(params == real[i].params, "%s: %lld parameters, expected %lld", real[i].cfg, (long long)params,
              (long long)real[i].params);
        ld_clip_text_free(te);
        ld_weights_free(rec);
        json_decref(cfg);
    }
}

int main(void) {
    ctx = ld_ctx_new();
    check_random_model();
    const char *td = test_testdata_dir();
    check_errors(td);
    if (!td) {
        ld_ctx_free(ctx);
        return test_skip("no testdata");
    }
    check_real_configs(td);
    run_case(td, "koala-700m-tiny/text_encoder", "koala-700m-tiny/text_encoder.safetensors");
    run_case(td, "koala-700m-tiny/text_encoder_2", "koala-700m-tiny/text_encoder_2.safetensors");
    run_case(td, "koala-1b-tiny/text_encoder", "koala-1b-tiny/text_encoder.safetensors");
    run_case(td, "koala-1b-tiny/text_encoder_2", "koala-1b-tiny/text_encoder_2.safetensors");
    run_case(td, "wuerstchen-prior-tiny/text_encoder", "wuerstchen-tiny/prior_text_encoder.safetensors");
    run_case(td, "wuerstchen-tiny/text_encoder", "wuerstchen-tiny/decoder_text_encoder.safetensors");
    run_case(td, "stable-cascade-prior-tiny/text_encoder", "stable-cascade-tiny/text_encoder.safetensors");
    run_case(td, "stable-cascade-tiny/text_encoder", "stable-cascade-tiny/text_encoder.safetensors");
    ld_ctx_free(ctx);
    return test_finish();
}
