/* The KOALA student from its teacher (see student.h): the preset configs, the
 * fit check, the name rule and the weight copy. The architecture is read
 * through the U-Net's own config parser (models/unet2d_config.h) and the
 * student's tensor list through its own loader in recording mode, so the
 * rule here only maps names. */
#include "distill/student.h"

#include "models/unet2d.h"
#include "models/unet2d_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ld_student_is_preset(const char *name) { return !strcmp(name, "koala-700m") || !strcmp(name, "koala-1b"); }

ld_status ld_student_config_preset(ld_ctx *ctx, const char *teacher_where, const json_t *teacher_cfg,
                                   const char *preset, json_t **out) {
    *out = NULL;
    if (!ld_student_is_preset(preset))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unknown student preset '%s' (koala-700m or koala-1b)", preset);
    unet_config tc;
    LD_TRY(ld_unet2d_parse_config(ctx, teacher_where, teacher_cfg, &tc));
    for (int b = 0; b < tc.nblocks; b++)
        for (int r = 1; r < tc.layers_per_block[b]; r++)
            if (tc.down_depth[b][r] != tc.down_depth[b][0])
                return ld_fail(ctx, LD_ERR_UNSUPPORTED,
                               "%s: down_blocks.%d has layers of different depths; give the student as a config file",
                               teacher_where, b);
    const int n = tc.nblocks, deep = tc.down_depth[n - 1][0];
    const int is_700m = !strcmp(preset, "koala-700m");
    /* SDXL's 10 -> 5 (700M) and 6 (1B); rounded to nearest, at least 1 */
    int k = is_700m ? (deep + 1) / 2 : (deep * 6 + 5) / 10;
    if (k < 1) k = 1;
    json_t *s = json_deep_copy(teacher_cfg);
    json_t *tl = json_array();
    if (!s || !tl) {
        json_decref(s);
        json_decref(tl);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    for (int b = 0; b < n; b++) json_array_append_new(tl, json_integer(b == n - 1 ? k : tc.down_depth[b][0]));
    json_object_set_new(s, "transformer_layers_per_block", tl);
    /* the up path then mirrors the new depths, as diffusers does without the key */
    if (json_object_get(s, "reverse_transformer_layers_per_block"))
        json_object_set_new(s, "reverse_transformer_layers_per_block", json_null());
    json_object_set_new(s, "layers_per_block", json_integer(1));
    if (is_700m) json_object_set_new(s, "mid_block_type", json_null());
    *out = s;
    return LD_OK;
}

/* Teacher layer of up block b's student layer r. */
static int up_layer(const unet_config *tc, const unet_config *sc, int b, int r) {
    const int n = sc->nblocks, ls = sc->layers_per_block[n - 1 - b] + 1, lt = tc->layers_per_block[n - 1 - b] + 1;
    return r < ls - 1 ? r : lt - 1;
}

/* Teacher transformer block of student block j in a stack of depth k made from depth d. */
static int stack_block(int j, int k, int d) { return j < k - 1 ? j : d - 1; }

static int has_cross(const unet_config *c, int down, int b) {
    return down ? c->down_cross_attn[b] : c->up_cross_attn[b];
}

ld_status ld_student_check(ld_ctx *ctx, const char *teacher_where, const json_t *teacher_cfg,
                           const char *student_where, const json_t *student_cfg) {
    unet_config tc, sc;
    LD_TRY(ld_unet2d_parse_config(ctx, teacher_where, teacher_cfg, &tc));
    LD_TRY(ld_unet2d_parse_config(ctx, student_where, student_cfg, &sc));
    const char *w = student_where;
    if (sc.nblocks != tc.nblocks)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: the student has %d down blocks, the teacher %d", w, sc.nblocks,
                       tc.nblocks);
    struct {
        const char *what;
        int s, t;
    } same[] = {{"in_channels", sc.in_channels, tc.in_channels},
                {"out_channels", sc.out_channels, tc.out_channels},
                {"cross_attention_dim", sc.cross_attention_dim, tc.cross_attention_dim},
                {"norm_num_groups", sc.groups, tc.groups},
                {"use_linear_projection", sc.linear_projection, tc.linear_projection},
                {"conv_in_kernel", sc.conv_in_kernel, tc.conv_in_kernel},
                {"conv_out_kernel", sc.conv_out_kernel, tc.conv_out_kernel},
                {"time embedding width", sc.temb_dim, tc.temb_dim},
                {"addition_time_embed_dim", sc.add_time_dim, tc.add_time_dim},
                {"projection_class_embeddings_input_dim", sc.add_in_dim, tc.add_in_dim}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        if (same[i].s != same[i].t)
            return ld_fail(ctx, LD_ERR_MODEL, "%s: %s is %d in the student but %d in the teacher", w, same[i].what,
                           same[i].s, same[i].t);
    for (int dir = 1; dir >= 0; dir--) {
        const char *kind = dir ? "down_blocks" : "up_blocks";
        for (int b = 0; b < sc.nblocks; b++) {
            const int cb = dir ? b : sc.nblocks - 1 - b; /* channels of up block b: entry n-1-b */
            if (sc.block_out_channels[cb] != tc.block_out_channels[cb])
                return ld_fail(ctx, LD_ERR_MODEL, "%s: %s.%d has %d channels in the student but %d in the teacher", w,
                               kind, b, sc.block_out_channels[cb], tc.block_out_channels[cb]);
            if (has_cross(&sc, dir, b) != has_cross(&tc, dir, b))
                return ld_fail(ctx, LD_ERR_MODEL, "%s: %s.%d is %s in the student but %s in the teacher", w, kind, b,
                               has_cross(&sc, dir, b) ? "a cross-attention block" : "a plain block",
                               has_cross(&tc, dir, b) ? "a cross-attention block" : "a plain block");
            if (has_cross(&sc, dir, b) && sc.heads[cb] != tc.heads[cb])
                return ld_fail(ctx, LD_ERR_MODEL, "%s: %s.%d has %d attention heads in the student but %d in the teacher",
                               w, kind, b, sc.heads[cb], tc.heads[cb]);
            const int ls = sc.layers_per_block[cb] + !dir, lt = tc.layers_per_block[cb] + !dir;
            if (ls > lt)
                return ld_fail(ctx, LD_ERR_MODEL,
                               "%s: %s.%d asks for %d layers but the teacher's has %d (a student only removes layers)",
                               w, kind, b, ls, lt);
            if (!has_cross(&sc, dir, b)) continue;
            for (int r = 0; r < ls; r++) {
                const int tr = dir ? r : up_layer(&tc, &sc, b, r);
                const int k = dir ? sc.down_depth[b][r] : sc.up_depth[b][r];
                const int d = dir ? tc.down_depth[b][tr] : tc.up_depth[b][tr];
                if (k > d)
                    return ld_fail(ctx, LD_ERR_MODEL,
                                   "%s: %s.%d.attentions.%d asks for %d transformer blocks but the teacher's "
                                   "%s.%d.attentions.%d has %d (a stack cannot grow)",
                                   w, kind, b, r, k, kind, b, tr, d);
            }
        }
    }
    if (sc.has_mid && !tc.has_mid)
        return ld_fail(ctx, LD_ERR_MODEL, "%s: the student has a mid_block but the teacher has none to copy it from", w);
    if (sc.has_mid && sc.mid_depth > tc.mid_depth)
        return ld_fail(ctx, LD_ERR_MODEL,
                       "%s: mid_block.attentions.0 asks for %d transformer blocks but the teacher's has %d (a stack "
                       "cannot grow)",
                       w, sc.mid_depth, tc.mid_depth);
    return LD_OK;
}

/* The student -> teacher name rule of student.h; returns 0 if buf is too small. */
static int map_name(const unet_config *tc, const unet_config *sc, const char *name, char *buf, size_t n) {
    int b, r, j, pos = 0, w;
    char kind[16];
    if (sscanf(name, "down_blocks.%d.attentions.%d.transformer_blocks.%d.%n", &b, &r, &j, &pos) == 3 && pos > 0 &&
        b >= 0 && b < sc->nblocks && r >= 0 && r < UNET_MAX_LAYERS) {
        w = snprintf(buf, n, "down_blocks.%d.attentions.%d.transformer_blocks.%d.%s", b, r,
                     stack_block(j, sc->down_depth[b][r], tc->down_depth[b][r]), name + pos);
    } else if (sscanf(name, "up_blocks.%d.attentions.%d.transformer_blocks.%d.%n", &b, &r, &j, &pos) == 3 &&
               pos > 0 && b >= 0 && b < sc->nblocks && r >= 0 && r < UNET_MAX_LAYERS) {
        const int tr = up_layer(tc, sc, b, r);
        w = snprintf(buf, n, "up_blocks.%d.attentions.%d.transformer_blocks.%d.%s", b, tr,
                     stack_block(j, sc->up_depth[b][r], tc->up_depth[b][tr]), name + pos);
    } else if (sscanf(name, "up_blocks.%d.%15[a-z].%d.%n", &b, kind, &r, &pos) == 3 && pos > 0 && b >= 0 &&
               b < sc->nblocks && r >= 0 && (!strcmp(kind, "resnets") || !strcmp(kind, "attentions"))) {
        w = snprintf(buf, n, "up_blocks.%d.%s.%d.%s", b, kind, up_layer(tc, sc, b, r), name + pos);
    } else if (sscanf(name, "mid_block.attentions.0.transformer_blocks.%d.%n", &j, &pos) == 1 && pos > 0) {
        w = snprintf(buf, n, "mid_block.attentions.0.transformer_blocks.%d.%s",
                     stack_block(j, sc->mid_depth, tc->mid_depth), name + pos);
    } else {
        w = snprintf(buf, n, "%s", name); /* down resnets, samplers, mid resnets, embeddings, conv_in/out */
    }
    return w >= 0 && (size_t)w < n;
}

ld_status ld_student_teacher_name(ld_ctx *ctx, const json_t *teacher_cfg, const json_t *student_cfg,
                                  const char *name, char *buf, size_t n) {
    unet_config tc, sc;
    LD_TRY(ld_unet2d_parse_config(ctx, "teacher config", teacher_cfg, &tc));
    LD_TRY(ld_unet2d_parse_config(ctx, "student config", student_cfg, &sc));
    if (!map_name(&tc, &sc, name, buf, n)) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "tensor name too long: %s", name);
    return LD_OK;
}

ld_status ld_student_init_write(ld_ctx *ctx, const char *teacher_where, const json_t *teacher_cfg,
                                ld_weights *teacher, const char *student_where, const json_t *student_cfg,
                                const char *out_path) {
    LD_TRY(ld_student_check(ctx, teacher_where, teacher_cfg, student_where, student_cfg));
    unet_config tc, sc;
    LD_TRY(ld_unet2d_parse_config(ctx, teacher_where, teacher_cfg, &tc));
    LD_TRY(ld_unet2d_parse_config(ctx, student_where, student_cfg, &sc));
    ld_weights *rec = NULL;
    ld_st_write_entry *ents = NULL;
    ld_status st = ld_weights_new_recorder(ctx, &rec);
    if (st == LD_OK) st = ld_unet2d_record(ctx, student_where, student_cfg, rec);
    const size_t count = rec ? ld_weights_recorded_count(rec) : 0;
    if (st == LD_OK && !(ents = calloc(count ? count : 1, sizeof *ents))) st = ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == LD_OK && i < count; i++) {
        const ld_tensor *s = ld_weights_recorded(rec, i);
        char tname[512], a[96], b[96];
        if (!map_name(&tc, &sc, s->name, tname, sizeof tname)) {
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "tensor name too long: %s", s->name);
            break;
        }
        const ld_tensor *t = ld_weights_find(teacher, tname);
        if (!t) {
            st = ld_fail(ctx, LD_ERR_MODEL, "%s: the teacher has no tensor %s (for the student's %s)",
                         ld_weights_where(teacher), tname, s->name);
        } else if (!ld_shape_equal(s->ndim, s->shape, t->ndim, t->shape)) {
            st = ld_fail(ctx, LD_ERR_MODEL, "student tensor %s is %s but the teacher's %s is %s", s->name,
                         ld_shape_str(a, sizeof a, s->ndim, s->shape), tname,
                         ld_shape_str(b, sizeof b, t->ndim, t->shape));
        } else {
            ents[i].name = s->name;
            ents[i].dtype = t->dtype;
            ents[i].ndim = t->ndim;
            memcpy(ents[i].shape, t->shape, sizeof t->shape);
            ents[i].data = t->data;
        }
    }
    const char *meta[] = {"format", "pt", "generator", "leandiff distill --init-only", NULL};
    if (st == LD_OK) st = ld_safetensors_write(ctx, out_path, ents, count, meta);
    free(ents);
    ld_weights_free(rec);
    return st;
}

/* Appends one pair (names malloc'ed); 0 when out of memory. */
static int push_pair(char ***s, char ***t, size_t *n, size_t *cap, const char *sn, const char *tn) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        char **a = realloc(*s, c * sizeof *a);
        if (!a) return 0;
        *s = a;
        char **b = realloc(*t, c * sizeof *b);
        if (!b) return 0;
        *t = b;
        *cap = c;
    }
    (*s)[*n] = strdup(sn);
    (*t)[*n] = strdup(tn);
    (*n)++;
    return (*s)[*n - 1] && (*t)[*n - 1];
}

ld_status ld_feature_set_parse(ld_ctx *ctx, const char *spec, ld_feature_set *set, const char **kind) {
    static const char *const kinds[] = {"attn1", "attn2", "ff"};
    *set = LD_FEAT_LAST;
    *kind = kinds[0];
    if (!spec || !strcmp(spec, "blocks")) {
        if (spec) *set = LD_FEAT_BLOCKS;
        return LD_OK;
    }
    for (int i = 0; i < 3; i++) {
        const size_t len = strlen(kinds[i]);
        if (strncmp(spec, kinds[i], len) || (spec[len] && strcmp(spec + len, "-all"))) continue;
        *kind = kinds[i];
        *set = spec[len] ? LD_FEAT_EVERY : LD_FEAT_LAST;
        return LD_OK;
    }
    return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                   "distillation features '%s': attn1, attn2 or ff (each stack's last block; add -all for every "
                   "kept block) or blocks (BK-SDM's block outputs)",
                   spec);
}

/* The pairs of one student stack (prefix "down_blocks.1.attentions.0") of
 * depth k made from the teacher stack tprefix of depth d. */
static int push_stack(char ***student, char ***teacher, size_t *n, size_t *cap, ld_feature_set set, const char *kind,
                      const char *sprefix, int k, const char *tprefix, int d) {
    char sn[200], tn[200];
    for (int j = set == LD_FEAT_EVERY ? 0 : k - 1; j < k; j++) {
        snprintf(sn, sizeof sn, "%s.transformer_blocks.%d.%s", sprefix, j, kind);
        snprintf(tn, sizeof tn, "%s.transformer_blocks.%d.%s", tprefix, stack_block(j, k, d), kind);
        if (!push_pair(student, teacher, n, cap, sn, tn)) return 0;
    }
    return 1;
}

ld_status ld_student_feature_pairs(ld_ctx *ctx, const json_t *teacher_cfg, const json_t *student_cfg,
                                   ld_feature_set set, const char *kind, char ***student, char ***teacher,
                                   size_t *n) {
    *student = *teacher = NULL;
    *n = 0;
    unet_config tc, sc;
    LD_TRY(ld_unet2d_parse_config(ctx, "teacher config", teacher_cfg, &tc));
    LD_TRY(ld_unet2d_parse_config(ctx, "student config", student_cfg, &sc));
    if (!kind || (strcmp(kind, "attn1") && strcmp(kind, "attn2") && strcmp(kind, "ff")))
        return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "feature kind '%s': attn1, attn2 or ff", kind ? kind : "");
    size_t cap = 0;
    int ok = 1;
    char sn[160], tn[160];
    if (set == LD_FEAT_BLOCKS) { /* BK-SDM: each block's output, the same block of the teacher */
        if (sc.has_mid && !tc.has_mid) return ld_fail(ctx, LD_ERR_MODEL, "the student has a mid block, the teacher none");
        for (int b = 0; ok && b < sc.nblocks; b++) {
            snprintf(sn, sizeof sn, "down_blocks.%d", b);
            ok = push_pair(student, teacher, n, &cap, sn, sn);
        }
        if (ok && sc.has_mid) ok = push_pair(student, teacher, n, &cap, "mid_block", "mid_block");
        for (int b = 0; ok && b < sc.nblocks; b++) {
            snprintf(sn, sizeof sn, "up_blocks.%d", b);
            ok = push_pair(student, teacher, n, &cap, sn, sn);
        }
    }
    for (int b = 0; ok && set != LD_FEAT_BLOCKS && b < sc.nblocks; b++) {
        if (!sc.down_cross_attn[b]) continue;
        for (int r = 0; ok && r < sc.layers_per_block[b]; r++) {
            snprintf(sn, sizeof sn, "down_blocks.%d.attentions.%d", b, r);
            ok = push_stack(student, teacher, n, &cap, set, kind, sn, sc.down_depth[b][r], sn, tc.down_depth[b][r]);
        }
    }
    if (ok && set != LD_FEAT_BLOCKS && sc.has_mid)
        ok = push_stack(student, teacher, n, &cap, set, kind, "mid_block.attentions.0", sc.mid_depth,
                        "mid_block.attentions.0", tc.mid_depth);
    for (int b = 0; ok && set != LD_FEAT_BLOCKS && b < sc.nblocks; b++) {
        if (!sc.up_cross_attn[b]) continue;
        for (int r = 0; ok && r < sc.layers_per_block[sc.nblocks - 1 - b] + 1; r++) {
            const int tr = up_layer(&tc, &sc, b, r);
            snprintf(sn, sizeof sn, "up_blocks.%d.attentions.%d", b, r);
            snprintf(tn, sizeof tn, "up_blocks.%d.attentions.%d", b, tr);
            ok = push_stack(student, teacher, n, &cap, set, kind, sn, sc.up_depth[b][r], tn, tc.up_depth[b][tr]);
        }
    }
    if (!ok) {
        ld_student_pairs_free(*student, *teacher, *n);
        *student = *teacher = NULL;
        *n = 0;
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory");
    }
    return LD_OK;
}

void ld_student_pairs_free(char **student, char **teacher, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (student) free(student[i]);
        if (teacher) free(teacher[i]);
    }
    free(student);
    free(teacher);
}
