/* `leandiff bench` and the FLOP counter of base/flops.h.
 *
 * 1. The counter in-process: ld_gemm, ld_conv2d (3x3 implicit
 *    GEMM, 1x1, depthwise) and ld_attention add exactly the multiply-adds
 *    (x2) of their arguments; the per-shape table (ld_flops_shapes_*) has
 *    one entry per shape with its calls and FLOPs, only while enabled, most
 *    time first, and sums the shapes past its size in one entry.
 * 2. The CLI on every tiny testdata component (through $LEANDIFF_BIN, as
 *    ctest sets it): the JSON line has the documented fields, consistent
 *    with each other (gflops = gflop/seconds, ratio = gflops/peak, the
 *    breakdown adds up to gflop; with --products, every shape listed, the
 *    products add up to gflop too, and --products N lists N).
 * 3. gflop equals a count written here from the config alone: the tiny
 *    KOALA UNets at 64x64 (diffusers UNet2DConditionModel structure: convs,
 *    resnets, linear-projection transformers with GEGLU, up/down samplers,
 *    time and text_time embeddings), batch 1 and 2, and the tiny CLIP text
 *    encoders (77 tokens).
 * 4. Errors: unknown component (exit 2), a class that is not the component
 *    asked for, a missing folder (exit 1).
 */
#include "test_util.h"

#include "base/flops.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"

#include <jansson.h>

/* ---- 1. the counter in-process ---- */

static ld_tensor view4(float *data, int64_t a, int64_t b, int64_t c, int64_t d) {
    ld_tensor t = {0};
    t.dtype = LD_F32, t.ndim = 4, t.data = data;
    t.shape[0] = a, t.shape[1] = b, t.shape[2] = c, t.shape[3] = d;
    return t;
}

static void test_counter(void) {
    enum { M = 7, N = 9, K = 11 };
    float a[M * K], b[K * N], c[M * N];
    for (int i = 0; i < M * K; i++) a[i] = (float)(i % 5) - 2;
    for (int i = 0; i < K * N; i++) b[i] = (float)(i % 3) - 1;
    ld_mat A = ld_mat_f32(a, K, 1), B = ld_mat_f32(b, N, 1);
    ld_flops_reset();
    ld_gemm(M, N, K, &A, &B, c, N, 0.0f, NULL, NULL);
    CHECK(ld_flops_get(LD_FLOPS_GEMM) == 2ull * M * N * K, "gemm counted %llu", (unsigned long long)ld_flops_total());
    CHECK(ld_flops_calls(LD_FLOPS_GEMM) == 1, "one gemm call");
    CHECK(ld_flops_seconds(LD_FLOPS_GEMM) >= 0.0, "gemm time");

    /* convolutions on x [2, 4, 6, 5] */
    enum { Bn = 2, C = 4, H = 6, W = 5 };
    static float x[Bn * C * H * W], y[Bn * 8 * H * W], w3[8 * C * 9], w1[8 * C], wd[C * 9];
    for (int i = 0; i < Bn * C * H * W; i++) x[i] = (float)(i % 7) * 0.1f;
    ld_tensor t3 = view4(w3, 8, C, 3, 3), t1 = view4(w1, 8, C, 1, 1), td = view4(wd, C, 1, 3, 3);
    ld_conv2d_params p = ld_conv2d_params_make(1, 1);
    ld_flops_reset();
    ld_conv2d(y, x, Bn, C, H, W, &t3, NULL, &p);
    CHECK(ld_flops_total() == 2ull * Bn * 8 * H * W * C * 9, "3x3 conv counted %llu",
          (unsigned long long)ld_flops_total());
    p.stride_h = p.stride_w = 2;
    ld_flops_reset();
    ld_conv2d(y, x, Bn, C, H, W, &t3, NULL, &p); /* output 3x3 */
    CHECK(ld_flops_total() == 2ull * Bn * 8 * 3 * 3 * C * 9, "strided conv counted %llu",
          (unsigned long long)ld_flops_total());
    ld_conv2d_params p1 = ld_conv2d_params_make(1, 0);
    ld_flops_reset();
    ld_conv2d(y, x, Bn, C, H, W, &t1, NULL, &p1);
    CHECK(ld_flops_total() == 2ull * Bn * 8 * H * W * C, "1x1 conv counted %llu", (unsigned long long)ld_flops_total());
    ld_conv2d_params pd = ld_conv2d_params_make(1, 1);
    pd.groups = C;
    ld_flops_reset();
    ld_conv2d(y, x, Bn, C, H, W, &td, NULL, &pd);
    CHECK(ld_flops_get(LD_FLOPS_DIRECT_CONV) == 2ull * Bn * C * H * W * 9 && ld_flops_total() == ld_flops_get(LD_FLOPS_DIRECT_CONV),
          "depthwise conv counted %llu", (unsigned long long)ld_flops_total());

    /* attention: B 2, heads 3, Lq 5, Lk 4, D 8 */
    static float q[2 * 5 * 24], k[2 * 4 * 24], v[2 * 4 * 24], o[2 * 5 * 24];
    ld_attn_params ap = {0};
    ap.scale = 0.35f;
    ld_flops_reset();
    ld_attention(o, 24, q, 24, k, 24, v, 24, 2, 3, 5, 4, 8, &ap);
    CHECK(ld_flops_get(LD_FLOPS_ATTENTION) == 4ull * 2 * 3 * 5 * 4 * 8 && ld_flops_total() == 4ull * 2 * 3 * 5 * 4 * 8,
          "attention counted %llu", (unsigned long long)ld_flops_total());
    ld_flops_reset();
    CHECK(ld_flops_total() == 0 && ld_flops_calls(LD_FLOPS_ATTENTION) == 0, "reset");
}

static const ld_flops_shape *find_shape(const ld_flops_shape *e, int n, ld_flops_cat cat, int64_t h, int64_t m,
                                        int64_t nn, int64_t k) {
    for (int i = 0; i < n; i++)
        if (e[i].cat == cat && e[i].h == h && e[i].m == m && e[i].n == nn && e[i].k == k) return &e[i];
    return NULL;
}

static void test_shapes(void) {
    static float a[64 * 64], b[64 * 64], c[64 * 64], q[2 * 5 * 24], k[2 * 4 * 24], v[2 * 4 * 24], o[2 * 5 * 24];
    for (int i = 0; i < 64 * 64; i++) a[i] = b[i] = (float)(i % 5) * 0.25f;
    ld_mat A = ld_mat_f32(a, 64, 1), B = ld_mat_f32(b, 64, 1);
    ld_attn_params ap = {0};
    ap.scale = 0.35f;
    ld_flops_shapes_reset();
    ld_gemm(3, 4, 5, &A, &B, c, 64, 0.0f, NULL, NULL); /* not enabled yet: not recorded */
    ld_flops_shapes_enable(1);
    ld_gemm(64, 48, 40, &A, &B, c, 64, 0.0f, NULL, NULL);
    ld_gemm(7, 9, 11, &A, &B, c, 64, 0.0f, NULL, NULL);
    ld_gemm(64, 48, 40, &A, &B, c, 64, 1.0f, NULL, NULL);
    ld_attention(o, 24, q, 24, k, 24, v, 24, 2, 3, 5, 4, 8, &ap);
    ld_flops_shapes_enable(0);
    ld_gemm(7, 9, 11, &A, &B, c, 64, 0.0f, NULL, NULL); /* disabled again */
    ld_flops_shape e[8];
    int n = ld_flops_shapes_get(e, 8);
    CHECK(n == 3, "3 shapes recorded, got %d", n);
    const ld_flops_shape *big = find_shape(e, n, LD_FLOPS_GEMM, 1, 64, 48, 40),
                         *small = find_shape(e, n, LD_FLOPS_GEMM, 1, 7, 9, 11),
                         *att = find_shape(e, n, LD_FLOPS_ATTENTION, 6, 5, 4, 8);
    CHECK(big && big->calls == 2 && big->flops == 2ull * 2 * 64 * 48 * 40, "64x48x40: %llu calls, %llu FLOPs",
          big ? (unsigned long long)big->calls : 0, big ? (unsigned long long)big->flops : 0);
    CHECK(small && small->calls == 1 && small->flops == 2ull * 7 * 9 * 11, "7x9x11: one call of its FLOPs");
    CHECK(att && att->calls == 1 && att->flops == 4ull * 2 * 3 * 5 * 4 * 8, "attention: 6 heads, 5x4x8, one call");
    for (int i = 1; i < n; i++) CHECK(e[i - 1].ns >= e[i].ns, "entries by time, most first (%d)", i);
    CHECK(ld_flops_shapes_get(e, 1) == 3 && e[0].ns >= e[1].ns, "a short copy still counts them all");

    /* more shapes than the table holds: the rest are summed in one entry */
    ld_flops_shapes_reset();
    ld_flops_shapes_enable(1);
    for (int i = 1; i <= LD_FLOPS_SHAPES_MAX + 3; i++)
        ld_gemm(i % 64 + 1, 1 + i / 64, 2, &A, &B, c, 64, 0.0f, NULL, NULL);
    ld_flops_shapes_enable(0);
    static ld_flops_shape all[LD_FLOPS_SHAPES_MAX + 1];
    n = ld_flops_shapes_get(all, LD_FLOPS_SHAPES_MAX + 1);
    const ld_flops_shape *rest = find_shape(all, n, LD_FLOPS_NCAT, 0, 0, 0, 0);
    CHECK(n == LD_FLOPS_SHAPES_MAX + 1 && rest && rest->calls == 3, "%d entries, %llu calls in the rest", n,
          rest ? (unsigned long long)rest->calls : 0);
    ld_flops_shapes_reset();
    CHECK(ld_flops_shapes_get(all, 1) == 0, "reset empties the table");
}

/* ---- 3. counts from the config alone ---- */

static int64_t cfg_int(const json_t *c, const char *key) { return (int64_t)json_integer_value(json_object_get(c, key)); }
static int64_t cfg_at(const json_t *c, const char *key, size_t i) {
    const json_t *v = json_object_get(c, key);
    return json_is_array(v) ? (int64_t)json_integer_value(json_array_get(v, i)) : (int64_t)json_integer_value(v);
}

typedef struct {
    double B, T, Dctx, L;
} unet_ctx;

/* ResnetBlock2D: conv1 3x3, time_emb_proj, conv2 3x3, 1x1 shortcut when channels change. */
static double resnet(const unet_ctx *u, double cin, double cout, double hw) {
    double f = 2 * u->B * hw * cout * cin * 9 + 2 * u->B * u->T * cout + 2 * u->B * hw * cout * cout * 9;
    if (cin != cout) f += 2 * u->B * hw * cout * cin;
    return f;
}

/* Transformer2DModel with linear proj_in/out and `layers` BasicTransformerBlocks
 * (self-attention, cross-attention to L tokens, GEGLU feed-forward 4C). */
static double transformer(const unet_ctx *u, double c, double hw, int64_t layers) {
    double B = u->B, f = 2 * 2 * B * hw * c * c; /* proj_in + proj_out */
    for (int64_t l = 0; l < layers; l++) {
        f += 4 * 2 * B * hw * c * c + 4 * B * hw * hw * c;                          /* attn1: q k v out + QK^T, AV */
        f += 2 * 2 * B * hw * c * c + 2 * 2 * B * u->L * u->Dctx * c + 4 * B * hw * u->L * c; /* attn2 */
        f += 2 * B * hw * c * 8 * c + 2 * B * hw * 4 * c * c;                       /* GEGLU proj, ff out */
    }
    return f;
}

static double unet_flops(const json_t *cfg, double B, double h, double w) {
    const json_t *down = json_object_get(cfg, "down_block_types"), *up = json_object_get(cfg, "up_block_types");
    size_t n = json_array_size(json_object_get(cfg, "block_out_channels"));
    int64_t lpb = cfg_int(cfg, "layers_per_block"), c0 = cfg_at(cfg, "block_out_channels", 0);
    int64_t cin = cfg_int(cfg, "in_channels"), cout = cfg_int(cfg, "out_channels");
    int64_t Ta = cfg_int(cfg, "addition_time_embed_dim"), P = cfg_int(cfg, "projection_class_embeddings_input_dim");
    unet_ctx u = {B, 4.0 * (double)c0, (double)cfg_int(cfg, "cross_attention_dim"), 77};
    double f = 2 * B * ((double)c0 * u.T + u.T * u.T); /* time_embedding linear_1, linear_2 */
    if (Ta > 0) f += 2 * B * ((double)P * u.T + u.T * u.T); /* add_embedding (text_embeds + 6 sinusoids) */
    f += 2 * B * h * w * (double)c0 * (double)cin * 9;  /* conv_in */
    double skips[64];
    int ns = 0;
    skips[ns++] = (double)c0;
    double ch = (double)c0, hh = h, ww = w;
    for (size_t i = 0; i < n; i++) {
        double co = (double)cfg_at(cfg, "block_out_channels", i);
        int attn = strstr(json_string_value(json_array_get(down, i)), "CrossAttn") != NULL;
        for (int64_t l = 0; l < lpb; l++) {
            f += resnet(&u, ch, co, hh * ww);
            ch = co;
            if (attn) f += transformer(&u, co, hh * ww, cfg_at(cfg, "transformer_layers_per_block", i));
            skips[ns++] = co;
        }
        if (i + 1 < n) { /* Downsample2D: 3x3 stride 2 */
            hh = ceil(hh / 2), ww = ceil(ww / 2);
            f += 2 * B * hh * ww * co * co * 9;
            skips[ns++] = co;
        }
    }
    if (json_string_value(json_object_get(cfg, "mid_block_type"))) { /* UNetMidBlock2DCrossAttn */
        f += 2 * resnet(&u, ch, ch, hh * ww) + transformer(&u, ch, hh * ww, cfg_at(cfg, "transformer_layers_per_block", n - 1));
    }
    for (size_t i = 0; i < n; i++) {
        double co = (double)cfg_at(cfg, "block_out_channels", n - 1 - i);
        int attn = strstr(json_string_value(json_array_get(up, i)), "CrossAttn") != NULL;
        int64_t tl = cfg_at(cfg, "transformer_layers_per_block", n - 1 - i);
        for (int64_t l = 0; l <= lpb; l++) {
            double skip = skips[--ns];
            f += resnet(&u, ch + skip, co, hh * ww);
            ch = co;
            if (attn) f += transformer(&u, co, hh * ww, tl);
        }
        if (i + 1 < n) { /* Upsample2D: nearest x2 + 3x3 */
            hh *= 2, ww *= 2;
            f += 2 * B * hh * ww * co * co * 9;
        }
    }
    f += 2 * B * h * w * (double)cout * ch * 9; /* conv_out */
    return f;
}

static double clip_flops(const json_t *cfg, double B, double L) {
    double D = (double)cfg_int(cfg, "hidden_size"), I = (double)cfg_int(cfg, "intermediate_size");
    double n = (double)cfg_int(cfg, "num_hidden_layers"), P = (double)cfg_int(cfg, "projection_dim");
    double layer = 4 * 2 * L * D * D + 4 * L * L * D + 2 * 2 * L * D * I; /* q k v out, attention, fc1 fc2 */
    const char *arch = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
    double proj = arch && strstr(arch, "WithProjection") ? 2 * D * P : 0; /* pooled row @ text_projection */
    return B * (n * layer + proj);
}

/* ---- 2. the CLI ---- */

/* The first "cpu family" and "model" of /proc/cpuinfo (x86 Linux); 0 when absent. */
static int proc_cpu_ids(int *family, int *model) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[512];
    while (fgets(line, sizeof line, f) && (*family < 0 || *model < 0)) {
        if (*family < 0 && sscanf(line, "cpu family : %d", family) == 1) continue;
        if (*model < 0 && !strncmp(line, "model\t", 6)) sscanf(line, "model : %d", model);
    }
    fclose(f);
    return *family >= 0 && *model >= 0;
}

/* Runs the command and returns the parsed last stdout line (NULL if none); *rc gets the exit status. */
static json_t *run_json(const char *cmd, int *rc) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char line[65536], last[65536] = "";
    while (fgets(line, sizeof line, p))
        if (line[0] != '\n') snprintf(last, sizeof last, "%s", line);
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return json_loads(last, 0, NULL);
}

static double jnum(const json_t *j, const char *key) {
    const json_t *v = json_object_get(j, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)) + 1e-12; }

/* Runs one bench and checks the fields; returns the JSON (caller frees) or NULL. */
static json_t *bench(const char *bin, const char *td, const char *model, const char *comp, const char *extra, int px,
                     int batch) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s bench -m %s/models/%s --component %s -W %d -H %d --batch %d --runs 1 --warmup 0 "
             "--probe-seconds 0.02 -t 2 --json %s 2>/dev/null",
             bin, td, model, comp, px, px, batch, extra);
    int rc = -1;
    json_t *j = run_json(cmd, &rc);
    CHECK(rc == 0 && j, "%s %s: exit %d, JSON %s", model, comp, rc, j ? "ok" : "missing");
    if (!j) return NULL;
    CHECK(!strcmp(json_string_value(json_object_get(j, "component")) ? json_string_value(json_object_get(j, "component")) : "", comp),
          "%s: component field", comp);
    double s = jnum(j, "seconds"), g = jnum(j, "gflop"), gs = jnum(j, "gflops"), pk = jnum(j, "peak_gflops"),
           r = jnum(j, "ratio"), rss = jnum(j, "peak_rss_mb");
    CHECK(s > 0 && g > 0 && pk > 0 && rss > 0, "%s %s: seconds %g gflop %g peak %g rss %g", model, comp, s, g, pk, rss);
    CHECK(close_rel(gs, g / s, 1e-6), "%s: gflops %g vs gflop/seconds %g", comp, gs, g / s);
    CHECK(close_rel(r, gs / pk, 1e-6), "%s: ratio %g vs gflops/peak %g", comp, r, gs / pk);
    double cs = jnum(j, "cpu_seconds"), gc = jnum(j, "gflop_per_cpu_s"), pc = jnum(j, "peak_gflop_per_cpu_s");
    CHECK(cs > 0 && pc > 0 && close_rel(gc, g / cs, 1e-6) && close_rel(jnum(j, "cpu_ratio"), gc / pc, 1e-6),
          "%s: cpu_seconds %g, gflop_per_cpu_s %g, peak per CPU-s %g, cpu_ratio %g", comp, cs, gc, pc,
          jnum(j, "cpu_ratio"));
    CHECK(json_integer_value(json_object_get(j, "batch")) == batch && json_integer_value(json_object_get(j, "threads")) == 2,
          "%s: batch/threads fields", comp);
    const json_t *bd = json_object_get(j, "breakdown");
    double sum = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)bd, k, v) if (json_object_get(v, "gflop")) sum += json_number_value(json_object_get(v, "gflop"));
    CHECK(close_rel(sum, g, 1e-6), "%s: breakdown sums to %g, gflop %g", comp, sum, g);
    CHECK(json_is_string(json_object_get(j, "cpu_model")), "%s: cpu_model", comp);
    int fam = -1, mod = -1;
    if (proc_cpu_ids(&fam, &mod)) /* x86 Linux: the kernel's own decoding of the same cpuid leaf */
        CHECK(json_integer_value(json_object_get(j, "cpu_family")) == fam &&
                  json_integer_value(json_object_get(j, "cpu_model_id")) == mod,
              "%s: cpu_family %lld, cpu_model_id %lld; /proc/cpuinfo says family %d, model %d", comp,
              (long long)json_integer_value(json_object_get(j, "cpu_family")),
              (long long)json_integer_value(json_object_get(j, "cpu_model_id")), fam, mod);
    const json_t *pr = json_object_get(j, "products");
    if (strstr(extra, "--products")) {
        double psum = 0;
        size_t i;
        json_t *e;
        json_array_foreach((json_t *)pr, i, e) {
            psum += json_number_value(json_object_get(e, "gflop"));
            CHECK(json_is_string(json_object_get(e, "op")) && json_number_value(json_object_get(e, "calls")) >= 1 &&
                      json_integer_value(json_object_get(e, "m")) > 0,
                  "%s: product %zu has its fields", comp, i);
        }
        const int want = atoi(strstr(extra, "--products") + 11);
        CHECK(json_is_array(pr) && (want >= 1000 ? close_rel(psum, g, 1e-6) : (int)json_array_size(pr) == want),
              "%s: --products %d: %zu entries, %g of %g GFLOP", comp, want, json_array_size(pr), psum, g);
    } else {
        CHECK(pr == NULL, "%s: no products without --products", comp);
    }
    return j;
}

static json_t *load_config(const char *td, const char *model, const char *comp) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/%s/%s/config.json", td, model, comp);
    json_t *c = json_load_file(path, 0, NULL);
    CHECK(c != NULL, "cannot read %s", path);
    return c;
}

static void check_unet(const char *bin, const char *td, const char *model, int batch) {
    json_t *cfg = load_config(td, model, "unet");
    json_t *j = bench(bin, td, model, "unet", "", 64, batch);
    if (cfg && j) {
        double want = unet_flops(cfg, batch, 8, 8), got = (double)json_integer_value(json_object_get(j, "flops"));
        CHECK(got == want, "%s unet 64x64 batch %d: counted %.0f FLOPs, config count %.0f", model, batch, got, want);
        printf("%s unet 64x64 batch %d: %.0f FLOPs (config count %.0f)\n", model, batch, got, want);
    }
    json_decref(cfg);
    json_decref(j);
}

static void check_clip(const char *bin, const char *td, const char *model, const char *sub, int batch) {
    json_t *cfg = load_config(td, model, sub);
    char extra[128];
    snprintf(extra, sizeof extra, "--subfolder %s", sub);
    json_t *j = bench(bin, td, model, "text_encoder", extra, 64, batch);
    if (cfg && j) {
        double want = clip_flops(cfg, batch, 77), got = (double)json_integer_value(json_object_get(j, "flops"));
        CHECK(got == want, "%s %s batch %d: counted %.0f FLOPs, config count %.0f", model, sub, batch, got, want);
    }
    json_decref(cfg);
    json_decref(j);
}

static void check_errors(const char *bin, const char *td) {
    char cmd[4096];
    int rc = -1;
    snprintf(cmd, sizeof cmd, "%s bench -m %s/models/koala-700m-tiny --component gpu --json 2>/dev/null", bin, td);
    json_decref(run_json(cmd, &rc));
    CHECK(rc == 2, "unknown component: exit %d", rc);
    snprintf(cmd, sizeof cmd, "%s bench -m %s/models/koala-700m-tiny/unet --component prior -W 64 -H 64 2>&1", bin, td);
    FILE *p = popen(cmd, "r");
    char buf[8192] = "";
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = 0;
    rc = p ? pclose(p) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 && strstr(buf, "UNet2DConditionModel") && strstr(buf, "prior"),
          "class mismatch: %s", buf);
    snprintf(cmd, sizeof cmd, "%s bench -m %s/models/no-such-model --component unet 2>/dev/null", bin, td);
    json_decref(run_json(cmd, &rc));
    CHECK(rc == 1, "missing folder: exit %d", rc);
    snprintf(cmd, sizeof cmd, "%s bench -m %s/models/koala-700m-tiny --component unet -W 60 -H 64 2>/dev/null", bin, td);
    json_decref(run_json(cmd, &rc));
    CHECK(rc == 1, "size not a multiple of 8: exit %d", rc);
    static const char *const bad_products[] = {"-1", "1001", "many", ""};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "%s bench -m %s/models/koala-700m-tiny --component unet --products '%s' 2>&1", bin,
                 td, bad_products[i]);
        p = popen(cmd, "r");
        n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
        buf[n] = 0;
        rc = p ? pclose(p) : -1;
        CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2 && strstr(buf, "--products"), "--products '%s': %s",
              bad_products[i], buf);
    }
}

int main(void) {
    test_counter();
    test_shapes();
    const char *td = test_testdata_dir();
    const char *bin = getenv("LEANDIFF_BIN");
    if (!td || !bin) {
        printf("CLI part skipped (%s)\n", !td ? "no testdata" : "LEANDIFF_BIN not set: run through ctest");
        return test_finish();
    }
    check_unet(bin, td, "koala-700m-tiny", 1);
    check_unet(bin, td, "koala-700m-tiny", 2);
    check_unet(bin, td, "koala-1b-tiny", 1);
    check_clip(bin, td, "koala-700m-tiny", "text_encoder", 1);
    check_clip(bin, td, "koala-700m-tiny", "text_encoder_2", 2);
    json_decref(bench(bin, td, "koala-700m-tiny", "vae", "", 64, 1));
    json_decref(bench(bin, td, "koala-700m-tiny", "vae", "--tiling 0", 64, 2));
    json_decref(bench(bin, td, "wuerstchen-prior-tiny", "prior", "--products 1000", 128, 2));
    json_decref(bench(bin, td, "koala-700m-tiny", "unet", "--products 3", 64, 1));
    json_decref(bench(bin, td, "wuerstchen-tiny", "decoder", "", 128, 1));
    json_decref(bench(bin, td, "wuerstchen-tiny", "vqgan", "", 128, 1));
    json_decref(bench(bin, td, "stable-cascade-prior-tiny", "prior", "--precision bf16", 128, 2));
    json_decref(bench(bin, td, "stable-cascade-tiny", "decoder", "", 128, 1));
    json_decref(bench(bin, td, "stable-cascade-tiny", "vqgan", "", 128, 1));
    check_errors(bin, td);
    return test_finish();
}
