/* ld_pipeline_options_init gives the documented defaults (issue 16, point 5):
 * no paths, f32, VAE tiling automatic (-1), whatever the struct held before. */
#include "leandiff.h"
#include "test_util.h"

int main(void) {
    ld_pipeline_options o;
    memset(&o, 0xA5, sizeof o); /* garbage: init must set every field */
    ld_pipeline_options_init(&o);
    CHECK(o.model_dir == NULL && o.decoder_dir == NULL && o.variant == NULL, "paths not NULL");
    CHECK(o.prior_weights == NULL && o.decoder_weights == NULL && o.vqgan_weights == NULL, "weight files not NULL");
    CHECK(o.precision == LD_PRECISION_F32, "precision %d, want f32", (int)o.precision);
    CHECK(o.vae_tiling == -1, "vae_tiling %d, want -1 (automatic)", o.vae_tiling);

    /* Opening with the defaults and no folder is a clear error, not a crash. */
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline *p = (ld_pipeline *)&o;
    CHECK(ld_pipeline_open(ctx, &o, &p) == LD_ERR_INVALID_ARGUMENT && p == NULL, "open without model_dir");
    CHECK(strstr(ld_ctx_error(ctx), "model folder") != NULL, "error: %s", ld_ctx_error(ctx));
    ld_ctx_free(ctx);
    return test_finish();
}
