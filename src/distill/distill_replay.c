/* Replay of a reference distillation case (see distill_replay.h). */
#include "distill/distill_replay.h"

#include "distill/distill_step.h"
#include "distill/student.h"
#include "io/fileio.h"
#include "io/json.h"
#include "io/model_folder.h"
#include "train/adamw.h"
#include "train/replay_case.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    json_t *scfg, *pairs;
    ld_distill_weights w;
    char tmp[4096]; /* the student's folder while it trains */
    int have_tmp;
    ld_train_unet *student, *teacher;
    ld_scheduler *sched;
} replay;

/* The student folder (config.json + the teacher-initialised weights) in a fresh temporary directory. */
static ld_status make_student(ld_ctx *ctx, replay *r, const char *teacher_unet) {
    json_t *tcfg;
    LD_TRY(ld_component_config(ctx, teacher_unet, &tcfg));
    char twhere[4200], path[4400];
    snprintf(twhere, sizeof twhere, "%s/config.json", teacher_unet);
    ld_weights *tw = NULL;
    ld_status st = ld_student_check(ctx, twhere, tcfg, "student_config", r->scfg);
    const char *base = getenv("TMPDIR");
    snprintf(r->tmp, sizeof r->tmp, "%s/leandiff-student-XXXXXX", base && *base ? base : "/tmp");
    if (st == LD_OK && !mkdtemp(r->tmp)) st = ld_fail(ctx, LD_ERR_IO, "cannot create a temporary folder %s", r->tmp);
    if (st == LD_OK) r->have_tmp = 1;
    snprintf(path, sizeof path, "%s/config.json", r->tmp);
    if (st == LD_OK) st = ld_json_write_file(ctx, path, r->scfg);
    if (st == LD_OK) st = ld_weights_open_dir(ctx, teacher_unet, NULL, &tw);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", r->tmp);
    if (st == LD_OK) st = ld_student_init_write(ctx, twhere, tcfg, tw, "student_config", r->scfg, path);
    ld_weights_free(tw);
    json_decref(tcfg);
    return st;
}

static void remove_tmp(replay *r) {
    if (!r->have_tmp) return;
    char path[4400];
    snprintf(path, sizeof path, "%s/config.json", r->tmp);
    unlink(path);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", r->tmp);
    unlink(path);
    rmdir(r->tmp);
}

static ld_status read_meta(ld_ctx *ctx, const ld_safetensors *cs, const char *path, const char *student_cfg,
                           replay *r) {
    const char *sc = ld_safetensors_meta_get(cs, "student_config"), *pp = ld_safetensors_meta_get(cs, "pairs");
    if (student_cfg) LD_TRY(ld_json_load_file(ctx, student_cfg, &r->scfg));
    else r->scfg = sc ? json_loads(sc, 0, NULL) : NULL;
    r->pairs = pp ? json_loads(pp, 0, NULL) : NULL;
    if (!json_is_object(r->scfg)) return ld_fail(ctx, LD_ERR_FORMAT, "%s: metadata 'student_config' must be a JSON object", path);
    int ok = json_is_array(r->pairs);
    for (size_t i = 0; ok && i < json_array_size(r->pairs); i++) {
        json_t *p = json_array_get(r->pairs, i);
        ok = json_is_array(p) && json_array_size(p) == 2 && json_is_string(json_array_get(p, 0)) &&
             json_is_string(json_array_get(p, 1));
    }
    if (!ok) return ld_fail(ctx, LD_ERR_FORMAT, "%s: metadata 'pairs' must be a JSON list of [student, teacher] names", path);
    double v[3];
    const char *keys[3] = {"lambda_task", "lambda_out", "lambda_feat"};
    for (int i = 0; i < 3; i++) LD_TRY(ld_replay_meta_num(ctx, cs, path, keys[i], &v[i]));
    r->w = (ld_distill_weights){(float)v[0], (float)v[1], (float)v[2]};
    return LD_OK;
}

static ld_status set_taps(ld_ctx *ctx, replay *r) {
    const size_t n = json_array_size(r->pairs);
    const char **s = calloc(n ? n : 1, sizeof *s), **t = calloc(n ? n : 1, sizeof *t);
    ld_status st = s && t ? LD_OK : ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == LD_OK && i < n; i++) {
        s[i] = json_string_value(json_array_get(json_array_get(r->pairs, i), 0));
        t[i] = json_string_value(json_array_get(json_array_get(r->pairs, i), 1));
    }
    if (st == LD_OK) st = ld_train_unet_set_taps(ctx, r->student, s, (int)n);
    if (st == LD_OK) st = ld_train_unet_set_taps(ctx, r->teacher, t, (int)n);
    free(s);
    free(t);
    return st;
}

static ld_status dump_scalar(ld_ctx *ctx, ld_st_builder *out, int s, const char *name, double v) {
    char key[64];
    const float f = (float)v;
    const int64_t one = 1;
    snprintf(key, sizeof key, "step%d.%s", s, name);
    return ld_st_builder_add_f32(ctx, out, key, 1, &one, &f);
}

static ld_status dump_features(ld_ctx *ctx, ld_st_builder *out, replay *r, int s) {
    for (size_t i = 0; i < json_array_size(r->pairs); i++)
        for (int side = 0; side < 2; side++) {
            int64_t shape[3];
            const float *f = ld_train_unet_tap(side ? r->teacher : r->student, (int)i, NULL, NULL, shape);
            char key[512];
            snprintf(key, sizeof key, "step%d.feat_%s.%s", s, side ? "teacher" : "student",
                     json_string_value(json_array_get(json_array_get(r->pairs, i), side)));
            if (f) LD_TRY(ld_st_builder_add_f32(ctx, out, key, 3, shape, f));
        }
    return LD_OK;
}

static ld_status run(ld_ctx *ctx, replay *r, const ld_safetensors *cs, const char *case_path, ld_st_builder *out) {
    double lr = 0, betas[2] = {0, 0}, eps = 0, wd = 0;
    int steps = 0;
    LD_TRY(ld_replay_settings(ctx, cs, case_path, &lr, betas, &eps, &wd, &steps));
    ld_train_params *p = ld_train_unet_params(r->student);
    LD_TRY(ld_replay_dump_params(ctx, out, p, p->value, "student_init."));
    ld_adamw opt;
    LD_TRY(ld_adamw_init(ctx, &opt, p->total, (float)lr, (float)betas[0], (float)betas[1], (float)eps, (float)wd));
    ld_status st = LD_OK;
    for (int s = 1; st == LD_OK && s <= steps; s++) {
        ld_replay_batch rb;
        ld_train_batch b;
        st = ld_replay_read_batch(ctx, cs, case_path, s, &rb, &b);
        const int64_t n = ld_tensor_numel(&rb.x0);
        float *bufs[3] = {NULL, NULL, NULL};
        for (int k = 0; st == LD_OK && k < 3; k++)
            if (!(bufs[k] = malloc(sizeof(float) * (size_t)(n ? n : 1)))) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
        ld_distill_losses L = {0};
        if (st == LD_OK && rb.x0.shape[1] != ld_train_unet_out_channels(r->student))
            st = ld_fail(ctx, LD_ERR_FORMAT, "%s: step%d.x0 has %lld channels, the U-Nets predict %d", case_path, s,
                         (long long)rb.x0.shape[1], ld_train_unet_out_channels(r->student));
        if (st == LD_OK) {
            ld_train_params_zero_grad(p);
            st = ld_distill_step(ctx, r->student, r->teacher, r->sched, &b, &r->w, 1.0f, bufs[0], bufs[1], bufs[2], &L);
        }
        const char *names[3] = {"noisy", "pred", "teacher_pred"};
        for (int k = 0; st == LD_OK && k < 3; k++) {
            char key[64];
            snprintf(key, sizeof key, "step%d.%s", s, names[k]);
            st = ld_st_builder_add_f32(ctx, out, key, 4, rb.x0.shape, bufs[k]);
        }
        if (st == LD_OK) st = dump_scalar(ctx, out, s, "loss", L.loss);
        if (st == LD_OK) st = dump_scalar(ctx, out, s, "loss_task", L.task);
        if (st == LD_OK) st = dump_scalar(ctx, out, s, "loss_out", L.out);
        if (st == LD_OK) st = dump_scalar(ctx, out, s, "loss_feat", L.feat);
        if (st == LD_OK) st = dump_features(ctx, out, r, s);
        if (st == LD_OK && s == 1) st = ld_replay_dump_params(ctx, out, p, p->grad, "grad.");
        if (st == LD_OK) {
            ld_adamw_update(&opt, p->value, p->grad, (float)lr);
            ld_log_info("distillation replay step %d: loss %.6f (task %.6f, out %.6f, feat %.6f)", s, L.loss, L.task,
                        L.out, L.feat);
        }
        for (int k = 0; k < 3; k++) free(bufs[k]);
        ld_replay_batch_free(&rb);
    }
    if (st == LD_OK) st = ld_replay_dump_params(ctx, out, p, p->value, "param.");
    ld_adamw_free(&opt);
    return st;
}

/* A pipeline's scheduler, or (a U-Net folder alone) the SDXL training schedule. */
static ld_status open_scheduler(ld_ctx *ctx, const char *teacher_dir, int pipeline, ld_scheduler **s) {
    if (pipeline) return ld_train_open_scheduler(ctx, teacher_dir, s);
    ld_log_info("%s is a U-Net folder: noise schedule scaled_linear 0.00085..0.012, 1000 steps, epsilon", teacher_dir);
    json_t *cfg = json_pack("{s:f, s:f, s:s, s:i, s:s}", "beta_start", 0.00085, "beta_end", 0.012, "beta_schedule",
                            "scaled_linear", "num_train_timesteps", 1000, "prediction_type", "epsilon");
    if (!cfg) return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    ld_status st = ld_scheduler_create(ctx, "euler", LD_SCHEDULE_DEFAULT, cfg, "SDXL training schedule", NULL, s);
    json_decref(cfg);
    return st;
}

ld_status ld_distill_replay(ld_ctx *ctx, const char *teacher_dir, const char *student_cfg, const char *case_path,
                            const char *dump_path) {
    replay r = {0};
    char teacher_unet[4096];
    ld_safetensors *cs = NULL;
    ld_st_builder out;
    ld_st_builder_init(&out);
    snprintf(teacher_unet, sizeof teacher_unet, "%s/unet/config.json", teacher_dir);
    const int pipeline = ld_file_exists(teacher_unet);
    if (pipeline) snprintf(teacher_unet, sizeof teacher_unet, "%s/unet", teacher_dir);
    else snprintf(teacher_unet, sizeof teacher_unet, "%s", teacher_dir);
    ld_status st = ld_safetensors_open(ctx, case_path, &cs);
    if (st == LD_OK) st = read_meta(ctx, cs, case_path, student_cfg, &r);
    if (st == LD_OK) st = make_student(ctx, &r, teacher_unet);
    if (st == LD_OK) st = ld_train_unet_open(ctx, r.tmp, 0, &r.student);
    if (st == LD_OK) st = ld_train_unet_open(ctx, teacher_unet, 1, &r.teacher);
    if (st == LD_OK) st = set_taps(ctx, &r);
    if (st == LD_OK) st = open_scheduler(ctx, teacher_dir, pipeline, &r.sched);
    if (st == LD_OK) st = run(ctx, &r, cs, case_path, &out);
    if (st == LD_OK) st = ld_st_builder_meta(ctx, &out, "produced_by", "leandiff distill --replay");
    if (st == LD_OK) st = ld_st_builder_write(ctx, &out, dump_path);
    ld_st_builder_free(&out);
    ld_scheduler_free(r.sched);
    ld_train_unet_free(r.student);
    ld_train_unet_free(r.teacher);
    remove_tmp(&r);
    json_decref(r.scfg);
    json_decref(r.pairs);
    ld_safetensors_close(cs);
    return st;
}
