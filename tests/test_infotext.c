/* A1111 infotext: layout, key order, A1111's quote() rule, stripping. */
#include "pipeline/infotext.h"
#include "test_util.h"

static void expect_quote(const char *in, const char *want) {
    char *q = ld_infotext_quote(in);
    CHECK(q && !strcmp(q, want), "quote(%s) = %s, want %s", in, q ? q : "(null)", want);
    free(q);
}

static ld_gen_info base_info(void) {
    ld_gen_info gi;
    memset(&gi, 0, sizeof gi);
    gi.width = 1024;
    gi.height = 768;
    gi.steps = 25;
    gi.cfg_scale = 7.5f;
    snprintf(gi.sampler, sizeof gi.sampler, "euler_a");
    gi.seed = 42;
    snprintf(gi.model, sizeof gi.model, "koala-700m");
    snprintf(gi.family, sizeof gi.family, "sdxl");
    return gi;
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    expect_quote("plain text", "plain text");
    expect_quote("", "");
    expect_quote("a:b", "\"a:b\"");
    expect_quote("a, b", "\"a, b\"");
    expect_quote("x\ny", "\"x\\ny\"");
    expect_quote("say \"hi\", ok", "\"say \\\"hi\\\", ok\"");
    expect_quote("back\\slash, tab\t", "\"back\\\\slash, tab\\t\"");
    expect_quote("ctl\x01:", "\"ctl\\u0001:\"");
    expect_quote("caf\xc3\xa9, na\xc3\xafve", "\"caf\xc3\xa9, na\xc3\xafve\""); /* ensure_ascii=False */
    expect_quote("quote \" only", "quote \" only");                             /* no , : \n: unchanged */

    char version[64];
    snprintf(version, sizeof version, "leandiff %s", ld_version());
    char want[1024];
    char *t = NULL;

    ld_gen_info gi = base_info();
    CHECK(ld_infotext_format(ctx, &gi, "a koala, reading", "blurry", &t) == LD_OK, "%s", ld_ctx_error(ctx));
    snprintf(want, sizeof want,
             "a koala, reading\nNegative prompt: blurry\nSteps: 25, Sampler: Euler a, CFG scale: 7.5, Seed: 42, "
             "Size: 1024x768, Model: koala-700m, RNG: NV, Version: %s",
             version);
    CHECK(t && !strcmp(t, want), "got:\n%s\nwant:\n%s", t, want);
    free(t);

    /* no negative line for NULL, an empty one for "" (SDXL encodes "" where
     * none gives zero embeddings: different pixels); integral CFG printed
     * without decimals; Euler */
    gi.cfg_scale = 3.0f;
    snprintf(gi.sampler, sizeof gi.sampler, "euler");
    gi.seed = 18446744073709551615ull;
    for (int k = 0; k < 2; k++) {
        CHECK(ld_infotext_format(ctx, &gi, "x", k ? "" : NULL, &t) == LD_OK, "%s", ld_ctx_error(ctx));
        snprintf(want, sizeof want,
                 "x\n%sSteps: 25, Sampler: Euler, CFG scale: 3, Seed: 18446744073709551615, Size: 1024x768, "
                 "Model: koala-700m, RNG: NV, Version: %s",
                 k ? "Negative prompt: \n" : "", version);
        CHECK(t && !strcmp(t, want), "got:\n%s\nwant:\n%s", t, want);
        free(t);
    }

    /* what else changes the pixels: timestep spacing, precision, and the
     * replay file, which replaces the seed (none was drawn); Karras in the label */
    gi = base_info();
    snprintf(gi.sampler, sizeof gi.sampler, "dpm++2m");
    snprintf(gi.schedule, sizeof gi.schedule, "karras");
    snprintf(gi.timestep_spacing, sizeof gi.timestep_spacing, "trailing");
    snprintf(gi.precision, sizeof gi.precision, "bf16");
    CHECK(ld_infotext_format(ctx, &gi, "x", NULL, &t) == LD_OK, "%s", ld_ctx_error(ctx));
    snprintf(want, sizeof want,
             "x\nSteps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 1024x768, Model: koala-700m, "
             "Timestep spacing: trailing, Precision: bf16, RNG: NV, Version: %s",
             version);
    CHECK(t && !strcmp(t, want), "got:\n%s\nwant:\n%s", t, want);
    free(t);
    snprintf(gi.replay_noise, sizeof gi.replay_noise, "cases/pipeline0.safetensors");
    CHECK(ld_infotext_format(ctx, &gi, "x", NULL, &t) == LD_OK, "%s", ld_ctx_error(ctx));
    snprintf(want, sizeof want,
             "x\nSteps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Size: 1024x768, Model: koala-700m, "
             "Timestep spacing: trailing, Precision: bf16, Noise file: cases/pipeline0.safetensors, RNG: NV, "
             "Version: %s",
             version);
    CHECK(t && !strcmp(t, want), "replay: got:\n%s\nwant:\n%s", t, want);
    free(t);

    /* empty prompt: stripped, starts with the parameters; quoted model name;
     * prior keys for two-stage families; multi-line prompt kept as is */
    gi = base_info();
    snprintf(gi.model, sizeof gi.model, "my:model");
    gi.prior_steps = 30;
    gi.prior_cfg_scale = 4.0f;
    CHECK(ld_infotext_format(ctx, &gi, "  ", NULL, &t) == LD_OK, "%s", ld_ctx_error(ctx));
    snprintf(want, sizeof want,
             "Steps: 25, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 1024x768, Model: \"my:model\", "
             "Prior steps: 30, Prior CFG scale: 4, RNG: NV, Version: %s",
             version);
    CHECK(t && !strcmp(t, want), "got:\n%s\nwant:\n%s", t, want);
    free(t);
    gi.prior_steps = 0;
    CHECK(ld_infotext_format(ctx, &gi, "line one\nline two", "neg\nmore", &t) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(t && !strncmp(t, "line one\nline two\nNegative prompt: neg\nmore\nSteps: 25,", 51), "multi-line: %s", t);
    free(t);

    CHECK(!strcmp(ld_infotext_sampler_label("euler_a", NULL), "Euler a") &&
              !strcmp(ld_infotext_sampler_label("euler", "default"), "Euler") &&
              !strcmp(ld_infotext_sampler_label("dpm++2m", "karras"), "DPM++ 2M Karras") &&
              !strcmp(ld_infotext_sampler_label("DPM++ 2M SDE Karras", NULL), "DPM++ 2M SDE Karras"),
          "sampler labels");
    ld_ctx_free(ctx);
    return test_finish();
}
