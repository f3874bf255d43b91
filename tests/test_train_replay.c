/* The U-Net training step against diffusers (testdata README, "Training
 * cases"): ld_train_replay on train/koala-700m-tiny.safetensors, then every
 * dumped tensor against the case with the README's tolerances: noisy, pred
 * and loss as modules, every gradient within 1e-3 relative L2, every
 * parameter's change after two AdamW steps within 1e-2 relative L2. */
#include "test_replay_util.h"

#include "train/train_replay.h"

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    char model[4400], casep[4400], dump[4400], unet[4500];
    snprintf(model, sizeof model, "%s/models/koala-700m-tiny", td);
    snprintf(casep, sizeof casep, "%s/train/koala-700m-tiny.safetensors", td);
    snprintf(unet, sizeof unet, "%s/unet", model);
    snprintf(dump, sizeof dump, "%s/replay.safetensors", test_tmp_dir("train_replay"));
    ld_ctx *ctx = ld_ctx_new();
    ld_status st = ld_train_replay(ctx, model, casep, dump);
    CHECK(st == LD_OK, "replay: %s", ld_ctx_error(ctx));
    if (st != LD_OK) return test_finish();

    ld_safetensors *ref, *got;
    ld_weights *init;
    CHECK(ld_safetensors_open(ctx, casep, &ref) == LD_OK, "open case");
    CHECK(ld_safetensors_open(ctx, dump, &got) == LD_OK, "open dump: %s", ld_ctx_error(ctx));
    CHECK(ld_weights_open_dir(ctx, unet, NULL, &init) == LD_OK, "open unet");
    replay_compare(ref, got, init, NULL);
    ld_safetensors_close(ref);
    ld_safetensors_close(got);
    ld_weights_free(init);
    ld_ctx_free(ctx);
    return test_finish();
}
