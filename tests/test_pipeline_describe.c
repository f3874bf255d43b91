/* ld_pipeline_describe states each family's defaults once (issue #12): a
 * generation that leaves every field at its default uses exactly what the
 * description says (steps, guidance, sampler, size), the size multiple it
 * gives works, and the samplers it lists are the ones the family accepts. */
#include "leandiff.h"
#include "test_util.h"

typedef struct {
    const char *model, *decoder, *family;
    int prior; /* has a prior stage */
} fam_case;

static void check_family(ld_ctx *ctx, const char *td, const fam_case *c) {
    char model[4200], decoder[4200];
    snprintf(model, sizeof model, "%s/models/%s", td, c->model);
    snprintf(decoder, sizeof decoder, "%s/models/%s", td, c->decoder ? c->decoder : "");
    ld_pipeline_options opt;
    ld_pipeline_options_init(&opt);
    opt.model_dir = model;
    opt.decoder_dir = c->decoder ? decoder : NULL;
    ld_pipeline *p = NULL;
    if (ld_pipeline_open(ctx, &opt, &p) != LD_OK) {
        CHECK(0, "%s: %s", c->model, ld_ctx_error(ctx));
        return;
    }
    ld_pipeline_desc d;
    memset(&d, 0xA5, sizeof d); /* describe must set every field */
    ld_pipeline_describe(p, &d);
    CHECK(!strcmp(d.family, c->family), "%s: family %s", c->model, d.family);
    CHECK(d.width > 0 && d.height > 0 && d.steps > 0 && d.cfg_scale >= 0 && d.size_multiple > 0,
          "%s: %dx%d, %d steps, cfg %g, multiple %d", c->model, d.width, d.height, d.steps, (double)d.cfg_scale,
          d.size_multiple);
    CHECK(c->prior ? d.prior_steps > 0 : d.prior_steps == 0, "%s: prior steps %d", c->model, d.prior_steps);
    CHECK(d.nsamplers >= 1 && d.sampler && !strcmp(d.sampler, d.samplers[0]), "%s: samplers", c->model);
    CHECK(!strcmp(c->family, "sdxl") ? d.nsamplers >= 10 && d.init_image && d.loras && d.karras
                                     : d.nsamplers == 1 && !d.init_image && !d.loras,
          "%s: %d samplers, init image %d, loras %d", c->model, d.nsamplers, d.init_image, d.loras);

    /* everything at its default except a small size that is a multiple of size_multiple */
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "a small red house";
    const int side = d.size_multiple * ((128 + d.size_multiple - 1) / d.size_multiple);
    gp.width = gp.height = side;
    if (!strcmp(c->family, "sdxl") && d.width <= 256) gp.width = gp.height = 0; /* the default size itself */
    ld_image img = {0};
    ld_gen_info info;
    ld_status st = ld_generate(ctx, p, &gp, &img, &info);
    CHECK(st == LD_OK, "%s at the defaults: %s", c->model, ld_ctx_error(ctx));
    if (st == LD_OK) {
        const int want = gp.width ? gp.width : d.width;
        CHECK(info.width == want && info.height == (gp.height ? gp.height : d.height) && img.width == want,
              "%s: size %dx%d, want %d", c->model, info.width, info.height, want);
        CHECK(info.steps == d.steps && info.cfg_scale == d.cfg_scale && !strcmp(info.sampler, d.sampler),
              "%s: used %d steps, cfg %g, %s; described %d, %g, %s", c->model, info.steps, (double)info.cfg_scale,
              info.sampler, d.steps, (double)d.cfg_scale, d.sampler);
        CHECK(info.prior_steps == d.prior_steps && info.prior_cfg_scale == d.prior_cfg_scale,
              "%s: prior %d steps cfg %g, described %d, %g", c->model, info.prior_steps,
              (double)info.prior_cfg_scale, d.prior_steps, (double)d.prior_cfg_scale);
    }
    ld_image_free(&img);
    /* a sampler it does not list is refused */
    gp.sampler = !strcmp(c->family, "sdxl") ? "ddpm_wuerstchen" : "euler";
    gp.steps = 1;
    CHECK(ld_generate(ctx, p, &gp, &img, &info) == LD_ERR_INVALID_ARGUMENT, "%s refuses sampler %s", c->model,
          gp.sampler);
    ld_image_free(&img);
    ld_pipeline_free(p);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    static const fam_case cases[] = {
        {"koala-700m-tiny", NULL, "sdxl", 0},
        {"wuerstchen-prior-tiny", "wuerstchen-tiny", "wuerstchen", 1},
        {"stable-cascade-prior-tiny", "stable-cascade-tiny", "stable-cascade", 1},
    };
    ld_ctx *ctx = ld_ctx_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_family(ctx, td, &cases[i]);
    ld_ctx_free(ctx);
    return test_finish();
}
