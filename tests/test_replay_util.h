/* Comparing a replay dump with its reference case (header only), with the
 * tolerances of testdata/README.md: outputs (noisy, pred, losses, features,
 * initial weights) as modules, every grad.<name> within 1e-3 relative L2,
 * every param.<name>'s change from its initial value within 1e-2.
 *
 *     replay_compare(ref, got, init_ws, NULL);            // initial weights from a weight source
 *     replay_compare(ref, got, NULL, "student_init.");    // ... or from the case itself
 */
#ifndef LD_TEST_REPLAY_UTIL_H
#define LD_TEST_REPLAY_UTIL_H

#include "io/safetensors.h"
#include "io/weights.h"
#include "test_util.h"

static float *replay_f32(const ld_tensor *t) {
    int64_t n = ld_tensor_numel(t);
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ld_convert_to_f32(f, t->data, t->dtype, 0, n);
    return f;
}

/* Every reference key of the kinds above must be in the dump and agree. */
static void replay_compare(const ld_safetensors *ref, const ld_safetensors *got, const ld_weights *init,
                           const char *init_prefix) {
    int ngrad = 0, nparam = 0;
    double worst_grad = 0, worst_change = 0;
    const char *worst_grad_name = "", *worst_change_name = "";
    for (size_t i = 0; i < ld_safetensors_count(ref); i++) {
        const ld_tensor *r = ld_safetensors_at(ref, i);
        const int is_grad = !strncmp(r->name, "grad.", 5), is_param = !strncmp(r->name, "param.", 6);
        const int is_out = !strncmp(r->name, "step", 4) ? !!strstr(r->name, ".noisy") || !!strstr(r->name, "pred") ||
                                                            !!strstr(r->name, ".loss") || !!strstr(r->name, ".feat_")
                                                       : (init_prefix && !strncmp(r->name, init_prefix, strlen(init_prefix)));
        if (!is_grad && !is_param && !is_out) continue;
        const ld_tensor *g = ld_safetensors_find(got, r->name);
        CHECK(g != NULL, "dump lacks %s", r->name);
        if (!g) continue;
        CHECK(ld_shape_equal(r->ndim, r->shape, g->ndim, g->shape), "%s: shapes differ", r->name);
        const int64_t n = ld_tensor_numel(r);
        float *rv = replay_f32(r), *gv = replay_f32(g);
        if (is_out) {
            if (!strncmp(r->name, "step", 4)) test_close(r->name, gv, rv, n, 1e-4);
            else CHECK(test_rel_l2(gv, rv, n) < 1e-6, "%s differs from the reference", r->name);
        } else if (is_grad) {
            const double e = test_rel_l2(gv, rv, n);
            CHECK(e <= 1e-3, "%s: relative L2 %.2e", r->name, e);
            if (e > worst_grad) worst_grad = e, worst_grad_name = r->name;
            ngrad++;
        } else {
            char name[600];
            const ld_tensor *w0 = NULL;
            if (init) w0 = ld_weights_find(init, r->name + 6);
            else if (snprintf(name, sizeof name, "%s%s", init_prefix ? init_prefix : "", r->name + 6) > 0)
                w0 = ld_safetensors_find(ref, name);
            CHECK(w0 != NULL, "%s: no initial weight", r->name);
            if (w0) {
                float *iv = replay_f32(w0);
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
}

#endif
