/* The U-Net training step against diffusers (testdata README, "Training
 * cases"): ld_train_replay on train/koala-700m-tiny.safetensors, then every
 * dumped tensor against the case with the README's tolerances: noisy, pred
 * and loss as modules, every gradient within 1e-3 relative L2, every
 * parameter's change after two AdamW steps within 1e-2 relative L2. */
#include "test_util.h"

#include "io/safetensors.h"
#include "io/weights.h"
#include "train/train_replay.h"

static float *as_f32(const ld_tensor *t) {
    int64_t n = ld_tensor_numel(t);
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ld_convert_to_f32(f, t->data, t->dtype, 0, n);
    return f;
}

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
    int ngrad = 0, nparam = 0;
    double worst_grad = 0, worst_change = 0;
    const char *worst_grad_name = "", *worst_change_name = "";
    for (size_t i = 0; i < ld_safetensors_count(ref); i++) {
        const ld_tensor *r = ld_safetensors_at(ref, i);
        const int is_grad = !strncmp(r->name, "grad.", 5), is_param = !strncmp(r->name, "param.", 6);
        const int is_out = strstr(r->name, ".noisy") || strstr(r->name, ".pred") || strstr(r->name, ".loss");
        if (!is_grad && !is_param && !is_out) continue;
        const ld_tensor *g = ld_safetensors_find(got, r->name);
        CHECK(g != NULL, "dump lacks %s", r->name);
        if (!g) continue;
        CHECK(ld_shape_equal(r->ndim, r->shape, g->ndim, g->shape), "%s: shapes differ", r->name);
        const int64_t n = ld_tensor_numel(r);
        float *rv = as_f32(r), *gv = as_f32(g);
        if (is_out) {
            test_close(r->name, gv, rv, n, 1e-4);
        } else if (is_grad) {
            const double e = test_rel_l2(gv, rv, n);
            CHECK(e <= 1e-3, "%s: relative L2 %.2e", r->name, e);
            if (e > worst_grad) worst_grad = e, worst_grad_name = r->name;
            ngrad++;
        } else {
            const ld_tensor *w0 = ld_weights_find(init, r->name + 6);
            CHECK(w0 != NULL, "%s: no initial weight", r->name);
            if (w0) {
                float *iv = as_f32(w0);
                for (int64_t k = 0; k < n; k++) {
                    rv[k] -= iv[k];
                    gv[k] -= iv[k];
                }
                const double e = test_rel_l2(gv, rv, n);
                CHECK(e <= 1e-2, "%s: change relative L2 %.2e", r->name, e);
                if (e > worst_change) worst_change = e, worst_change_name = r->name;
                free(iv);
            }
            nparam++;
        }
        free(rv);
        free(gv);
    }
    printf("%d gradients, worst %.2e (%s); %d parameter changes, worst %.2e (%s)\n", ngrad, worst_grad,
           worst_grad_name, nparam, worst_change, worst_change_name);
    CHECK(ngrad > 100 && ngrad == nparam, "the case's gradients and parameters were all compared");
    ld_safetensors_close(ref);
    ld_safetensors_close(got);
    ld_weights_free(init);
    ld_ctx_free(ctx);
    return test_finish();
}
