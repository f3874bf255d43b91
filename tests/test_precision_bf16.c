/* The fast path (--precision bf16: GEMM inputs rounded to bf16, f32
 * accumulation) on every reference pipeline case: measures and prints how far
 * it lands from the float32 reference and checks it still makes the same
 * image to the eye (mean |image_u8 - ref| <= 2, issue #7), and that the exact
 * path is restored afterwards. */
#include "io/safetensors.h"
#include "tensor/gemm.h"
#include "test_util.h"

typedef struct {
    const char *model, *decoder, *case_file;
    int two_stage; /* Wuerstchen / Cascade metadata */
} pipeline_case;

static const pipeline_case cases[] = {
    {"koala-700m-tiny", NULL, "koala-700m-tiny/pipeline0", 0},
    {"koala-700m-tiny", NULL, "koala-700m-tiny/pipeline1", 0},
    {"koala-1b-tiny", NULL, "koala-1b-tiny/pipeline0", 0},
    {"wuerstchen-prior-tiny", "wuerstchen-tiny", "wuerstchen-tiny/pipeline0", 1},
    {"wuerstchen-prior-tiny", "wuerstchen-tiny", "wuerstchen-tiny/pipeline1", 1},
    {"stable-cascade-prior-tiny", "stable-cascade-tiny", "stable-cascade-tiny/pipeline0", 1},
    {"stable-cascade-prior-tiny", "stable-cascade-tiny", "stable-cascade-tiny/pipeline1", 1},
};

static int meta_int(const ld_safetensors *st, const char *k) {
    const char *v = ld_safetensors_meta_get(st, k);
    return v ? atoi(v) : 0;
}
static float meta_float(const ld_safetensors *st, const char *k) {
    const char *v = ld_safetensors_meta_get(st, k);
    return v ? (float)atof(v) : -1.0f;
}

static void run_case(ld_ctx *ctx, const char *td, const pipeline_case *c) {
    char model[4200], decoder[4200], path[4200];
    snprintf(model, sizeof model, "%s/models/%s", td, c->model);
    snprintf(decoder, sizeof decoder, "%s/models/%s", td, c->decoder ? c->decoder : "");
    snprintf(path, sizeof path, "%s/cases/%s.safetensors", td, c->case_file);
    ld_safetensors *ref;
    if (ld_safetensors_open(ctx, path, &ref) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    ld_pipeline_options opt = {.model_dir = model, .decoder_dir = c->decoder ? decoder : NULL,
                               .precision = LD_PRECISION_BF16, .vae_tiling = -1};
    ld_pipeline *p = NULL;
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = ld_safetensors_meta_get(ref, "prompt");
    gp.width = meta_int(ref, "width");
    gp.height = meta_int(ref, "height");
    gp.replay_noise = path;
    if (c->two_stage) {
        gp.negative_prompt = ld_safetensors_meta_get(ref, "negative_prompt");
        gp.prior_steps = meta_int(ref, "prior_steps");
        gp.prior_cfg_scale = meta_float(ref, "prior_guidance_scale");
        gp.steps = meta_int(ref, "decoder_steps");
        gp.cfg_scale = meta_float(ref, "decoder_guidance_scale");
    } else {
        const char *none = ld_safetensors_meta_get(ref, "negative_is_none");
        gp.negative_prompt = none && !strcmp(none, "true") ? NULL : ld_safetensors_meta_get(ref, "negative_prompt");
        gp.steps = meta_int(ref, "steps");
        gp.cfg_scale = meta_float(ref, "guidance_scale");
        gp.sampler = ld_safetensors_meta_get(ref, "sampler");
    }
    ld_image img = {0};
    ld_status st = ld_pipeline_open(ctx, &opt, &p);
    if (st == LD_OK) st = ld_generate(ctx, p, &gp, &img, NULL);
    CHECK(st == LD_OK, "%s: %s", c->case_file, ld_ctx_error(ctx));
    CHECK(ld_gemm_get_precision() == LD_PRECISION_F32, "exact path restored after a bf16 generation");
    const ld_tensor *u8 = ld_safetensors_find(ref, "image_u8");
    if (st == LD_OK && u8 && ld_tensor_numel(u8) == (int64_t)img.width * img.height * 3) {
        const uint8_t *r = u8->data;
        double sum = 0;
        int maxd = 0;
        int64_t n = ld_tensor_numel(u8), equal = 0;
        for (int64_t i = 0; i < n; i++) {
            int d = abs((int)img.pixels[i] - (int)r[i]);
            sum += d;
            if (d > maxd) maxd = d;
            equal += d == 0;
        }
        double mean = sum / (double)n;
        printf("%-32s bf16 vs f32 reference: image_u8 mean |diff| %.3f, max %d, %.2f %% equal\n", c->case_file, mean,
               maxd, 100.0 * (double)equal / (double)n);
        CHECK(mean <= 2.0, "%s: mean |diff| %.3f > 2", c->case_file, mean);
    } else if (st == LD_OK) {
        CHECK(0, "%s: image size differs from the reference", c->case_file);
    }
    ld_image_free(&img);
    ld_pipeline_free(p);
    ld_safetensors_close(ref);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("../shared/testdata not found");
    ld_ctx *ctx = ld_ctx_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(ctx, td, &cases[i]);
    ld_ctx_free(ctx);
    return test_finish();
}
