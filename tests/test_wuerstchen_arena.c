/* The Wuerstchen prior, the DiffNeXt decoder and both StableCascadeUNet
 * stages take their activations from an arena they own: the first forward
 * at a size plans it (one block holding the peak), a second forward at that
 * size and one at a smaller size need nothing more, give the same result bit
 * for bit, and leave the arena empty. Tiny models of the test data, random
 * inputs. */
#include "models/stable_cascade_unet.h"
#include "models/wuerstchen_diffnext.h"
#include "models/wuerstchen_prior.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static ld_ctx *ctx;

#define BATCH 2
#define TOKENS 8
#define MAX_IN (1 << 20) /* floats in every random input buffer */

typedef struct {
    void *model;
    ld_arena *arena;
    int64_t out_channels;
    float *x, *r, *a, *b, *c; /* random inputs, MAX_IN floats each */
} model_run;

typedef ld_status (*forward_fn)(model_run *m, int64_t H, int64_t W, float *out);

static ld_status prior_fwd(model_run *m, int64_t H, int64_t W, float *out) {
    ld_wuerstchen_prior_inputs in = {
        .B = BATCH, .H = H, .W = W, .sample = m->x, .r = m->r, .clip_text = m->a, .text_len = TOKENS};
    return ld_wuerstchen_prior_forward(ctx, m->model, &in, out);
}

static ld_status diffnext_fwd(model_run *m, int64_t H, int64_t W, float *out) {
    ld_wuerstchen_diffnext_inputs in = {.B = BATCH, .H = H, .W = W, .sample = m->x, .r = m->r, .effnet = m->a,
                                        .eh = H / 4, .ew = W / 4, .clip_text = m->b, .text_len = TOKENS};
    return ld_wuerstchen_diffnext_forward(ctx, m->model, &in, out);
}

static ld_status sc_fwd(model_run *m, int64_t H, int64_t W, float *out) {
    ld_sc_unet *u = m->model;
    ld_sc_inputs in = {.B = BATCH, .H = H, .W = W, .sample = m->x, .r = m->r, .clip_text_pooled = m->a,
                       .pooled_len = 1};
    if (u->cfg.effnet_in) in.effnet = m->b, in.eh = H / 4, in.ew = W / 4;
    else in.clip_text = m->b, in.text_len = TOKENS, in.clip_img = m->c;
    return ld_sc_unet_forward(ctx, u, &in, out);
}

/* big, small: latent sides of the planning forward and of a smaller one. */
static void check_plan(const char *name, model_run *m, forward_fn f, int64_t big, int64_t small) {
    int64_t n = BATCH * m->out_channels * big * big;
    float *o1 = calloc((size_t)n, sizeof(float)), *o2 = calloc((size_t)n, sizeof(float));
    ld_arena *a = m->arena;
    CHECK(a->peak == 0 && a->capacity == 0, "%s: no activation memory before the first forward", name);
    ld_status st = f(m, big, big, o1);
    CHECK(st == LD_OK, "%s: first forward: %s", name, ld_ctx_error(ctx));
    size_t peak = a->peak, cap = a->capacity;
    printf("%s: %lldx%lld plans %.1f KiB of activations (block of %.1f KiB)\n", name, (long long)big,
           (long long)big, peak / 1024.0, cap / 1024.0);
    CHECK(peak > 0 && a->used == 0, "%s: activations from the arena, released (used %zu)", name, a->used);
    CHECK(cap >= peak, "%s: the planned block holds the peak", name);
    /* a first forward larger than the arena's first chunk ends in one block of exactly the peak */
    if (peak > ((size_t)1 << 20)) CHECK(cap == peak, "%s: one block of the peak (%zu vs %zu)", name, cap, peak);
    st = f(m, big, big, o2);
    CHECK(st == LD_OK, "%s: second forward: %s", name, ld_ctx_error(ctx));
    CHECK(a->peak == peak && a->capacity == cap && a->used == 0,
          "%s: second forward at the same size needs nothing new (peak %zu -> %zu, block %zu -> %zu)", name, peak,
          a->peak, cap, a->capacity);
    CHECK(memcmp(o1, o2, (size_t)n * sizeof(float)) == 0, "%s: second forward gives the same bits", name);
    st = f(m, small, small, o2);
    CHECK(st == LD_OK, "%s: smaller forward: %s", name, ld_ctx_error(ctx));
    CHECK(a->peak == peak && a->capacity == cap && a->used == 0, "%s: smaller forward fits in the plan", name);
    free(o1);
    free(o2);
}

static void fill_inputs(model_run *m) {
    float **bufs[5] = {&m->x, &m->r, &m->a, &m->b, &m->c};
    for (int i = 0; i < 5; i++) {
        *bufs[i] = malloc((size_t)MAX_IN * sizeof(float));
        test_fill(*bufs[i], MAX_IN, (uint64_t)i + 1);
    }
    for (int b = 0; b < BATCH; b++) m->r[b] = 0.3f + 0.4f * (float)b; /* ratios in [0, 1] */
}

static void free_inputs(model_run *m) {
    free(m->x);
    free(m->r);
    free(m->a);
    free(m->b);
    free(m->c);
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    ctx = ld_ctx_new();
    char dir[4200];
    model_run m;
    memset(&m, 0, sizeof m);
    fill_inputs(&m);

    ld_wuerstchen_prior *p;
    snprintf(dir, sizeof dir, "%s/models/wuerstchen-prior-tiny/prior", td);
    if (ld_wuerstchen_prior_load(ctx, dir, NULL, &p) == LD_OK) {
        m.model = p, m.arena = &p->arena[0], m.out_channels = p->c_in;
        check_plan("WuerstchenPrior", &m, prior_fwd, 32, 16);
        CHECK(ld_wuerstchen_prior_activation_bytes(p) == p->arena[0].peak + p->arena[1].peak, "prior activation bytes");
        ld_wuerstchen_prior_free(p);
    } else {
        CHECK(0, "load %s: %s", dir, ld_ctx_error(ctx));
    }

    ld_wuerstchen_diffnext *d;
    snprintf(dir, sizeof dir, "%s/models/wuerstchen-tiny/decoder", td);
    if (ld_wuerstchen_diffnext_load(ctx, dir, NULL, &d) == LD_OK) {
        int64_t k = ld_wuerstchen_diffnext_size_multiple(d);
        m.model = d, m.arena = &d->arena, m.out_channels = d->c_out;
        check_plan("WuerstchenDiffNeXt", &m, diffnext_fwd, 4 * k, 2 * k);
        CHECK(ld_wuerstchen_diffnext_activation_bytes(d) == d->arena.peak, "decoder activation bytes");
        ld_wuerstchen_diffnext_free(d);
    } else {
        CHECK(0, "load %s: %s", dir, ld_ctx_error(ctx));
    }

    const char *sc[2] = {"stable-cascade-prior-tiny/prior", "stable-cascade-tiny/decoder"};
    for (int i = 0; i < 2; i++) {
        ld_sc_unet *u;
        snprintf(dir, sizeof dir, "%s/models/%s", td, sc[i]);
        if (ld_sc_unet_load(ctx, dir, NULL, NULL, &u) != LD_OK) {
            CHECK(0, "load %s: %s", dir, ld_ctx_error(ctx));
            continue;
        }
        m.model = u, m.arena = &u->arena[0], m.out_channels = u->cfg.out_channels;
        /* the decoder halves its latent per level: sizes it can take at every level */
        int64_t big = i == 0 ? 24 : 64, small = i == 0 ? 16 : 48;
        check_plan(sc[i], &m, sc_fwd, big, small);
        CHECK(ld_sc_unet_activation_bytes(u) == u->arena[0].peak + u->arena[1].peak, "%s activation bytes", sc[i]);
        ld_sc_unet_free(u);
    }
    free_inputs(&m);
    ld_ctx_free(ctx);
    return test_finish();
}
