/* Guided steps as two halves (pipeline/denoise.h, model_half), checked on a
 * Wuerstchen or Stable Cascade pipeline of the testdata (header only):
 *
 *     test_halves(ctx, prior_dir, decoder_dir, "cascade");  // bits on 1/2/3 threads
 *     test_halves_cancel(ctx, pipe);                        // cancel while side by side
 */
#ifndef LD_TEST_HALVES_H
#define LD_TEST_HALVES_H
#include <pthread.h>

#include "io/safetensors.h"
#include "leandiff.h"
#include "test_util.h"

/* The f32 tensor name of a dump, or NULL (a failed check). */
static inline const float *test_halves_dumped(const ld_safetensors *st, const char *name, int64_t *n) {
    const ld_tensor *t = ld_safetensors_find(st, name);
    CHECK(t && t->dtype == LD_F32, "%s: %s missing", ld_safetensors_path(st), name);
    *n = t ? ld_tensor_numel(t) : 0;
    return t ? t->data : NULL;
}

/* The log lines of a run that say how its guided steps ran. */
typedef struct {
    int side, after;
} test_halves_log;

static inline void test_halves_note(void *user, ld_log_level level, const char *message) {
    test_halves_log *l = user;
    (void)level;
    l->side += strstr(message, "prior: guided steps as two halves, side by side") != NULL;
    l->after += strstr(message, "prior: guided steps as two halves, one after the other") != NULL;
}

/* Run 0-2 on 1, 2 and 3 threads (halves one after the other, side by side,
 * one after the other), run 3 on 2 threads with LEANDIFF_SPLIT_GUIDANCE=0
 * (the batch of two). The same bits on every thread count, in f32 and bf16,
 * and the batch of two's up to rounding; the log says how each ran. */
static inline void test_halves(ld_ctx *ctx, const char *prior_dir, const char *decoder_dir, const char *tmp) {
    const char *keys[] = {"prior.step1.latents", "decoder.step1.latents"};
    const int threads[4] = {1, 2, 3, 2};
    const ld_log_level level = ld_get_log_level();
    for (int prec = 0; prec < 2; prec++) {
        const char *pname = prec ? "bf16" : "f32";
        ld_pipeline_options opt;
        ld_pipeline_options_init(&opt);
        opt.model_dir = prior_dir, opt.decoder_dir = decoder_dir;
        opt.precision = prec ? LD_PRECISION_BF16 : LD_PRECISION_F32;
        ld_pipeline *p;
        if (ld_pipeline_open(ctx, &opt, &p) != LD_OK) {
            CHECK(0, "halves: %s", ld_ctx_error(ctx));
            return;
        }
        ld_safetensors *st[4] = {0};
        for (int r = 0; r < 4; r++) {
            char dump[4200];
            snprintf(dump, sizeof dump, "%s/halves%d_%d.safetensors", test_tmp_dir(tmp), prec, r);
            ld_gen_params gp;
            ld_gen_params_init(&gp);
            gp.prompt = "a red apple";
            gp.negative_prompt = "blurry";
            gp.width = gp.height = 128;
            gp.prior_steps = gp.steps = 2;
            gp.prior_cfg_scale = 4.0f;
            gp.cfg_scale = 2.0f;
            gp.seed = 3;
            gp.dump = dump;
            ld_set_threads(threads[r]);
            if (r == 3) setenv("LEANDIFF_SPLIT_GUIDANCE", "0", 1);
            test_halves_log log = {0, 0};
            ld_set_log_level(LD_LOG_INFO);
            ld_set_log_callback(test_halves_note, &log);
            ld_image img = {0};
            CHECK(ld_generate(ctx, p, &gp, &img, NULL) == LD_OK, "halves %s run %d: %s", pname, r, ld_ctx_error(ctx));
            ld_set_log_callback(NULL, NULL);
            ld_set_log_level(level);
            unsetenv("LEANDIFF_SPLIT_GUIDANCE");
            CHECK(log.side == (r == 1) && log.after == (r == 0 || r == 2),
                  "halves %s run %d on %d threads: logged %d side by side, %d one after the other", pname, r,
                  threads[r], log.side, log.after);
            ld_image_free(&img);
            if (ld_safetensors_open(ctx, dump, &st[r]) != LD_OK) CHECK(0, "%s", ld_ctx_error(ctx));
        }
        for (int k = 0; k < 2 && st[0]; k++) {
            int64_t n0, n;
            const float *want = test_halves_dumped(st[0], keys[k], &n0);
            for (int r = 1; r < 4 && want; r++) {
                const float *got = st[r] ? test_halves_dumped(st[r], keys[k], &n) : NULL;
                if (!got || n != n0) {
                    CHECK(0, "halves: %s of run %d", keys[k], r);
                } else if (r < 3) {
                    CHECK(!memcmp(got, want, (size_t)n * sizeof(float)), "%s %s: %d threads, not the bits of 1", pname,
                          keys[k], threads[r]);
                } else {
                    const double e = test_rel_l2(got, want, n);
                    printf("%s %s, batch of two against halves: rel L2 %.3g\n", pname, keys[k], e);
                    CHECK(e <= (prec ? 1e-2 : 1e-5), "batch of two against halves: rel L2 %.3g", e);
                }
            }
        }
        for (int r = 0; r < 4; r++) ld_safetensors_close(st[r]);
        ld_pipeline_free(p);
    }
    ld_set_threads(0);
}

/* The cancel callback while the halves run side by side: polled from the
 * calling thread only, and it stops both. */
typedef struct {
    pthread_t caller;
    int text_done, polls, elsewhere;
} test_halves_cancel_log;

/* counts the polls from the prior's first (guided) step on; stops at the 5th */
static inline int test_halves_cancel_poll(void *user) {
    test_halves_cancel_log *c = user;
    c->elsewhere += !pthread_equal(pthread_self(), c->caller);
    return c->text_done && ++c->polls >= 5;
}

static inline int test_halves_text_done(void *user, const char *stage, int step, int total, double s) {
    (void)step, (void)total, (void)s;
    ((test_halves_cancel_log *)user)->text_done |= !strcmp(stage, "text");
    return 0;
}

static inline void test_halves_cancel(ld_ctx *ctx, ld_pipeline *p) {
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "a red apple";
    gp.width = gp.height = 128;
    gp.prior_steps = gp.steps = 2;
    gp.prior_cfg_scale = 4.0f;
    test_halves_cancel_log log = {pthread_self(), 0, 0, 0};
    gp.cancel = test_halves_cancel_poll;
    gp.cancel_user = &log;
    gp.progress = test_halves_text_done;
    gp.progress_user = &log;
    ld_set_threads(2);
    ld_image img = {0};
    const ld_status s = ld_generate(ctx, p, &gp, &img, NULL);
    CHECK(s == LD_ERR_CANCELLED && img.pixels == NULL && strstr(ld_ctx_error(ctx), "cancelled"),
          "halves cancelled: %s", ld_ctx_error(ctx));
    printf("halves cancelled: %s\n", ld_ctx_error(ctx));
    CHECK(log.polls == 5 && log.elsewhere == 0, "cancel polled %d times, %d from another thread", log.polls,
          log.elsewhere);
    ld_ctx_clear_error(ctx);
    ld_set_threads(0);
}

#endif
