/* The run context of one generation (see run.h): noise source, dump points,
 * progress, timing and the run's precision. */
#include "pipeline/run.h"

#include "base/clock.h"
#include "io/weights_memory.h"
#include "tensor/gemm.h"

#include <math.h>
#include <string.h>

ld_status ld_run_begin(ld_ctx *ctx, ld_run *run, const ld_gen_params *params, ld_precision precision) {
    memset(run, 0, sizeof *run);
    run->params = params;
    run->t_start = run->t_stage = ld_now_seconds();
    ld_rng_init(&run->rng, params->seed);
    ld_st_builder_init(&run->dump);
    run->dumping = params->dump != NULL;
    run->precision = precision;
    run->saved_precision = ld_gemm_get_precision();
    ld_gemm_set_precision(precision);
    if (params->replay_noise) return ld_safetensors_open(ctx, params->replay_noise, &run->replay);
    return LD_OK;
}

ld_status ld_run_end(ld_ctx *ctx, ld_run *run, ld_status st) {
    if (st == LD_OK && run->dumping) st = ld_st_builder_write(ctx, &run->dump, run->params->dump);
    ld_st_builder_free(&run->dump);
    ld_safetensors_close(run->replay);
    run->replay = NULL;
    ld_gemm_set_precision(run->saved_precision);
    return st;
}

void ld_run_denoiser_loading(ld_run *run) {
    run->saved_read = ld_weights_prefer_read(run->precision == LD_PRECISION_F32);
}

void ld_run_denoiser_loaded(ld_run *run) { ld_weights_prefer_read(run->saved_read); }

ld_status ld_run_replay_get(ld_ctx *ctx, const ld_run *run, const char *name, int ndim, const int64_t *shape,
                            float *out) {
    const ld_tensor *t = ld_safetensors_find(run->replay, name);
    const char *file = ld_safetensors_path(run->replay);
    if (!t) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: replay tensor '%s' is missing", file, name);
    if (!ld_shape_equal(t->ndim, t->shape, ndim, shape)) {
        char a[128], b[128];
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: replay tensor '%s' has shape %s, this run needs %s", file,
                       name, ld_shape_str(a, sizeof a, t->ndim, t->shape), ld_shape_str(b, sizeof b, ndim, shape));
    }
    if (t->dtype != LD_F32 && t->dtype != LD_F16 && t->dtype != LD_BF16)
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "%s: replay tensor '%s' must be a float tensor, is %s", file, name,
                       ld_dtype_name(t->dtype));
    ld_convert_to_f32(out, t->data, t->dtype, 0, ld_tensor_numel(t));
    return LD_OK;
}

ld_status ld_run_noise(ld_ctx *ctx, ld_run *run, const char *name, int ndim, const int64_t *shape, float *out) {
    if (run->replay) {
        LD_TRY(ld_run_replay_get(ctx, run, name, ndim, shape, out));
    } else {
        int64_t n = 1;
        for (int d = 0; d < ndim; d++) n *= shape[d];
        ld_rng_randn(&run->rng, out, n);
    }
    return ld_run_dump(ctx, run, name, LD_F32, ndim, shape, out);
}

ld_status ld_run_dump(ld_ctx *ctx, ld_run *run, const char *name, ld_dtype dtype, int ndim, const int64_t *shape,
                      const void *data) {
    if (!run->dumping) return LD_OK;
    return ld_st_builder_add(ctx, &run->dump, name, dtype, ndim, shape, data);
}

ld_status ld_run_dump_meta(ld_ctx *ctx, ld_run *run, const char *key, const char *value) {
    return run->dumping ? ld_st_builder_meta(ctx, &run->dump, key, value) : LD_OK;
}

void ld_run_stage_start(ld_run *run) { run->t_stage = ld_now_seconds(); }

double ld_run_seconds(const ld_run *run) { return ld_now_seconds() - run->t_start; }

ld_status ld_run_progress(ld_ctx *ctx, ld_run *run, const char *stage, int step, int total) {
    const ld_gen_params *p = run->params;
    if (p->progress && p->progress(p->progress_user, stage, step, total, ld_now_seconds() - run->t_stage))
        return ld_fail(ctx, LD_ERR_CANCELLED, "generation cancelled during the %s stage (step %d of %d)", stage, step,
                       total);
    return LD_OK;
}

ld_status ld_run_check_finite(ld_ctx *ctx, const float *x, int64_t n, const char *stage, int step, int total) {
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(x[i])) continue;
        const char *what = isnan(x[i]) ? "NaN" : "infinity";
        const char *hint = ld_gemm_get_precision() == LD_PRECISION_BF16 ? ", or try --precision f32" : "";
        if (step > 0)
            return ld_fail(ctx, LD_ERR_MODEL, "%s produced %s at step %d of %d: check the weights%s", stage, what, step,
                           total, hint);
        return ld_fail(ctx, LD_ERR_MODEL, "%s produced %s in the image: check the weights%s", stage, what, hint);
    }
    return LD_OK;
}
