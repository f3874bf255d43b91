/* The KOALA student from its teacher (src/distill/student.h) against the
 * reference data: the koala-700m and koala-1b presets applied to SDXL-base's
 * config equal the released configs; the student of
 * train/distill-sdxl-teacher-tiny.safetensors (teacher models/sdxl-teacher-tiny,
 * student config from the case) holds exactly the case's student_init.*
 * tensors, no more, no fewer; the feature pairs equal the case's `pairs`; a
 * pair that does not fit fails with a message naming the block. */
#include "distill/student.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/unet2d_config.h"
#include "test_util.h"

static json_t *load_json(ld_ctx *ctx, const char *path) {
    json_t *j = NULL;
    if (ld_json_load_file(ctx, path, &j) != LD_OK) CHECK(0, "%s", ld_ctx_error(ctx));
    return j;
}

static void check_presets(ld_ctx *ctx, const char *td) {
    char path[4200];
    snprintf(path, sizeof path, "%s/configs/sdxl-base/unet/config.json", td);
    json_t *sdxl = load_json(ctx, path);
    const char *presets[] = {"koala-700m", "koala-1b"};
    for (int i = 0; sdxl && i < 2; i++) {
        snprintf(path, sizeof path, "%s/configs/%s/unet/config.json", td, presets[i]);
        json_t *released = load_json(ctx, path), *ours = NULL;
        CHECK(ld_student_config_preset(ctx, "sdxl-base", sdxl, presets[i], &ours) == LD_OK, "%s: %s", presets[i],
              ld_ctx_error(ctx));
        int eq = released && ours && json_equal(released, ours);
        CHECK(eq, "%s preset from SDXL-base differs from the released config", presets[i]);
        printf("%s %s preset from SDXL-base equals the released config\n", eq ? "ok  " : "FAIL", presets[i]);
        CHECK(!ours || ld_student_check(ctx, "sdxl-base", sdxl, presets[i], ours) == LD_OK, "%s fits SDXL: %s",
              presets[i], ld_ctx_error(ctx));
        json_decref(released);
        json_decref(ours);
    }
    json_t *bad = NULL;
    CHECK(sdxl && ld_student_config_preset(ctx, "sdxl-base", sdxl, "koala-2b", &bad) != LD_OK &&
              strstr(ld_ctx_error(ctx), "koala-2b"),
          "unknown preset refused: %s", ld_ctx_error(ctx));
    json_decref(sdxl);
}

/* Expects the pair to fail with every string of `want` in the message. */
static void expect_misfit(ld_ctx *ctx, const char *what, const json_t *teacher, const json_t *student,
                          const char *want1, const char *want2) {
    ld_status st = ld_student_check(ctx, "teacher", teacher, "student", student);
    const char *msg = ld_ctx_error(ctx);
    int ok = st != LD_OK && strstr(msg, want1) && (!want2 || strstr(msg, want2));
    CHECK(ok, "%s: status %d, message '%s' (wanted '%s'%s%s)", what, (int)st, msg, want1, want2 ? ", " : "",
          want2 ? want2 : "");
    if (ok) printf("ok   %s refused: %s\n", what, msg);
}

static void check_misfits(ld_ctx *ctx, const json_t *tcfg, const json_t *scfg) {
    json_t *s = json_deep_copy(scfg);
    json_object_set_new(s, "block_out_channels", json_pack("[i,i,i]", 32, 64, 128));
    expect_misfit(ctx, "wider last block", tcfg, s, "down_blocks.2", "channels");
    json_decref(s);

    s = json_deep_copy(scfg);
    json_object_set_new(s, "transformer_layers_per_block", json_pack("[i,i,i]", 1, 9, 2));
    expect_misfit(ctx, "deeper stack", tcfg, s, "down_blocks.1.attentions.0", "cannot grow");
    json_decref(s);

    /* the other way round: the "student" has more layers and a mid block */
    expect_misfit(ctx, "more layers", scfg, tcfg, "down_blocks.0", "layers");
    s = json_deep_copy(scfg);
    json_object_set_new(s, "mid_block_type", json_string("UNetMidBlock2DCrossAttn"));
    expect_misfit(ctx, "mid block from none", scfg, s, "mid_block", NULL);
    json_decref(s);

    s = json_deep_copy(scfg);
    json_object_set_new(s, "cross_attention_dim", json_integer(96));
    expect_misfit(ctx, "other text width", tcfg, s, "cross_attention_dim", NULL);
    json_decref(s);
}

/* Every pair of a feature set names a student block made from that teacher
 * block: its to_q (or the block's first conv) equals the teacher's. */
static void check_feature_sets(ld_ctx *ctx, const json_t *tcfg, const json_t *scfg, ld_safetensors *student,
                               const ld_weights *teacher) {
    static const struct {
        const char *spec, *weight;
        size_t want;
    } sets[] = {{"attn1-all", "to_q.weight", 0}, {"ff-all", "net.0.proj.weight", 0},
                {"blocks", NULL, 0}, {"attn2", "to_q.weight", 0}};
    size_t blocks = 0, last = 0;
    unet_config sc;
    if (ld_unet2d_parse_config(ctx, "student", scfg, &sc) != LD_OK) return;
    for (int b = 0; b < sc.nblocks; b++) /* an independent count of the student's blocks and stacks */
        for (int r = 0; r < sc.layers_per_block[b]; r++)
            if (sc.down_cross_attn[b]) blocks += (size_t)sc.down_depth[b][r], last++;
    for (int b = 0; b < sc.nblocks; b++)
        for (int r = 0; r < sc.layers_per_block[sc.nblocks - 1 - b] + 1; r++)
            if (sc.up_cross_attn[b]) blocks += (size_t)sc.up_depth[b][r], last++;
    if (sc.has_mid) blocks += (size_t)sc.mid_depth, last++;
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        ld_feature_set set;
        const char *kind;
        char **sp = NULL, **tp = NULL;
        size_t np = 0, same = 0;
        CHECK(ld_feature_set_parse(ctx, sets[k].spec, &set, &kind) == LD_OK, "%s: %s", sets[k].spec, ld_ctx_error(ctx));
        CHECK(ld_student_feature_pairs(ctx, tcfg, scfg, set, kind, &sp, &tp, &np) == LD_OK, "%s pairs: %s",
              sets[k].spec, ld_ctx_error(ctx));
        const size_t want = set == LD_FEAT_EVERY ? blocks : set == LD_FEAT_LAST ? last : 2 * (size_t)sc.nblocks + sc.has_mid;
        for (size_t i = 0; i < np; i++) {
            char sn[300], tn[300];
            if (set == LD_FEAT_BLOCKS) { /* same block names on both sides */
                same += !strcmp(sp[i], tp[i]);
                continue;
            }
            snprintf(sn, sizeof sn, "%s.%s", sp[i], sets[k].weight);
            snprintf(tn, sizeof tn, "%s.%s", tp[i], sets[k].weight);
            const ld_tensor *a = ld_safetensors_find(student, sn), *b = ld_weights_find(teacher, tn);
            int eq = a && b && ld_tensor_numel(a) == ld_tensor_numel(b);
            for (int64_t j = 0; eq && j < ld_tensor_numel(a); j++) eq = ld_tensor_get_f32(a, j) == ld_tensor_get_f32(b, j);
            CHECK(eq, "%s: %s is not the teacher's %s", sets[k].spec, sn, tn);
            same += eq;
        }
        CHECK(np == want && same == np, "%s: %zu pairs (want %zu), %zu made from their teacher block", sets[k].spec,
              np, want, same);
        printf("%s --distill-features %s: %zu pairs, each student block made from its teacher block\n",
               np == want && same == np ? "ok  " : "FAIL", sets[k].spec, np);
        ld_student_pairs_free(sp, tp, np);
    }
    ld_feature_set set;
    const char *kind;
    CHECK(ld_feature_set_parse(ctx, "attn3-all", &set, &kind) != LD_OK && strstr(ld_ctx_error(ctx), "attn3-all"),
          "an unknown feature set is named");
}

static void check_case(ld_ctx *ctx, const char *td) {
    char path[4400], out[4200];
    snprintf(path, sizeof path, "%s/train/distill-sdxl-teacher-tiny.safetensors", td);
    ld_safetensors *cs = NULL;
    if (ld_safetensors_open(ctx, path, &cs) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    const char *sc_text = ld_safetensors_meta_get(cs, "student_config");
    const char *pairs_text = ld_safetensors_meta_get(cs, "pairs");
    CHECK(sc_text && pairs_text, "case metadata student_config and pairs");
    json_t *scfg = NULL, *pairs = NULL, *tcfg = NULL;
    if (sc_text && ld_json_parse(ctx, "student_config", sc_text, strlen(sc_text), &scfg) != LD_OK)
        CHECK(0, "%s", ld_ctx_error(ctx));
    if (pairs_text && ld_json_parse(ctx, "pairs", pairs_text, strlen(pairs_text), &pairs) != LD_OK)
        CHECK(0, "%s", ld_ctx_error(ctx));
    char tdir[4200];
    snprintf(tdir, sizeof tdir, "%s/models/sdxl-teacher-tiny/unet", td);
    snprintf(path, sizeof path, "%s/config.json", tdir);
    tcfg = load_json(ctx, path);
    ld_weights *tw = NULL;
    if (ld_weights_open_dir(ctx, tdir, NULL, &tw) != LD_OK) CHECK(0, "%s", ld_ctx_error(ctx));
    if (!scfg || !pairs || !tcfg || !tw) goto done;

    snprintf(out, sizeof out, "%s/student.safetensors", test_tmp_dir("distill_student"));
    CHECK(ld_student_init_write(ctx, tdir, tcfg, tw, "student_config", scfg, out) == LD_OK, "init: %s",
          ld_ctx_error(ctx));
    ld_safetensors *ours = NULL;
    if (ld_safetensors_open(ctx, out, &ours) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        goto done;
    }
    size_t refs = 0, same = 0;
    for (size_t i = 0; i < ld_safetensors_count(cs); i++) {
        const ld_tensor *r = ld_safetensors_at(cs, i);
        if (strncmp(r->name, "student_init.", 13)) continue;
        refs++;
        const ld_tensor *o = ld_safetensors_find(ours, r->name + 13);
        if (!o) {
            CHECK(0, "student tensor %s missing", r->name + 13);
            continue;
        }
        int eq = ld_shape_equal(o->ndim, o->shape, r->ndim, r->shape);
        for (int64_t k = 0; eq && k < ld_tensor_numel(r); k++)
            eq = ld_tensor_get_f32(o, k) == ld_tensor_get_f32(r, k);
        CHECK(eq, "student tensor %s differs from student_init", r->name + 13);
        same += eq;
    }
    CHECK(refs > 0 && ld_safetensors_count(ours) == refs, "student has %zu tensors, the case %zu",
          ld_safetensors_count(ours), refs);
    printf("%s student_init: %zu of %zu tensors exactly equal, %zu written\n", same == refs ? "ok  " : "FAIL", same,
           refs, ld_safetensors_count(ours));
    check_feature_sets(ctx, tcfg, scfg, ours, tw);
    ld_safetensors_close(ours);

    char **sp = NULL, **tp = NULL;
    size_t np = 0;
    CHECK(ld_student_feature_pairs(ctx, tcfg, scfg, LD_FEAT_LAST, "attn1", &sp, &tp, &np) == LD_OK, "pairs: %s", ld_ctx_error(ctx));
    int peq = np == json_array_size(pairs);
    for (size_t i = 0; peq && i < np; i++) {
        const json_t *p = json_array_get(pairs, i);
        peq = !strcmp(sp[i], json_string_value(json_array_get(p, 0))) &&
              !strcmp(tp[i], json_string_value(json_array_get(p, 1)));
    }
    CHECK(peq, "feature pairs differ from the case's (%zu vs %zu)", np, json_array_size(pairs));
    printf("%s feature pairs: %zu, equal to the case's\n", peq ? "ok  " : "FAIL", np);
    ld_student_pairs_free(sp, tp, np);

    check_misfits(ctx, tcfg, scfg);
done:
    ld_weights_free(tw);
    json_decref(scfg);
    json_decref(pairs);
    json_decref(tcfg);
    ld_safetensors_close(cs);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    ld_ctx *ctx = ld_ctx_new();
    check_presets(ctx, td);
    check_case(ctx, td);
    ld_ctx_free(ctx);
    return test_finish();
}
