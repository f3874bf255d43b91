/* Cancel inside a step (issue 16, point 2): ld_gen_params.cancel is polled
 * inside the model forwards, so a run stops part-way through a U-Net call or a
 * VAE decode with LD_ERR_CANCELLED, no image, and a pipeline that still
 * generates the same image afterwards (a random tiny KOALA pipeline made by
 * `leandiff init-random --pipeline tiny`); Wuerstchen and Stable Cascade stop
 * inside their prior's and their decoder's forwards (the test data's tiny
 * models, when present). */
#include "leandiff.h"
#include "test_koala_tiny.h"

#include <time.h>

typedef struct {
    int polls;       /* cancel callback calls so far */
    int stop_after;  /* return 1 from this poll on (0: never) */
    int stop_in_vae; /* return 1 once the unet stage has finished */
    int unet_steps;  /* "unet" progress reports seen */
    int unet_done;
    int stop_in_decoder;             /* Wuerstchen / Cascade: return 1 once the prior has finished */
    int prior_steps, prior_done, decoder_steps;
    double stopped_at; /* monotonic time of the first nonzero return */
} cancel_state;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int on_cancel(void *user) {
    cancel_state *c = user;
    c->polls++;
    int stop = (c->stop_after && c->polls >= c->stop_after) || (c->stop_in_vae && c->unet_done) ||
               (c->stop_in_decoder && c->prior_done);
    if (stop && c->stopped_at == 0) c->stopped_at = now();
    return stop;
}

static int on_progress(void *user, const char *stage, int step, int total, double secs) {
    cancel_state *c = user;
    (void)secs;
    if (!strcmp(stage, "unet")) {
        c->unet_steps++;
        if (step == total) c->unet_done = 1;
    } else if (!strcmp(stage, "prior")) {
        c->prior_steps++;
        if (step == total) c->prior_done = 1;
    } else if (!strcmp(stage, "decoder")) {
        c->decoder_steps++;
    }
    return 0;
}

static ld_status run(ld_ctx *ctx, ld_pipeline *p, int size, int steps, cancel_state *c, ld_image *img) {
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "a koala";
    gp.width = gp.height = size;
    gp.steps = steps;
    gp.seed = 7;
    if (c) {
        gp.cancel = on_cancel;
        gp.cancel_user = c;
        gp.progress = on_progress;
        gp.progress_user = c;
    }
    return ld_generate(ctx, p, &gp, img, NULL);
}

int main(void) {
    const char *model = test_make_tiny_model("cancel");
    if (!model) return test_finish() | 1;
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline *p = test_open_pipeline(ctx, model);
    if (!p) {
        ld_ctx_free(ctx);
        return test_finish();
    }

    /* the reference: no cancel callback */
    ld_image ref = {0}, img = {0};
    CHECK(run(ctx, p, 128, 2, NULL, &ref) == LD_OK, "reference run: %s", ld_ctx_error(ctx));

    /* 1. stop at the 5th poll: inside the first U-Net forward (before any step is reported) */
    cancel_state c = {.stop_after = 5};
    ld_status st = run(ctx, p, 128, 2, &c, &img);
    CHECK(st == LD_ERR_CANCELLED, "status %s, want cancelled", ld_status_name(st));
    CHECK(strstr(ld_ctx_error(ctx), "generation cancelled during the") != NULL, "message: %s", ld_ctx_error(ctx));
    CHECK(c.unet_steps == 0, "stopped after %d unet steps, want inside the first", c.unet_steps);
    CHECK(c.polls == 5, "the callback was polled %d times after asking to stop at poll 5", c.polls);
    CHECK(img.pixels == NULL, "a cancelled run returned an image");
    printf("U-Net: stopped at poll %d, before any step ended: %s\n", c.polls, ld_ctx_error(ctx));

    /* 2. stop inside the VAE decode (polled between its blocks and tiles) */
    ld_ctx_clear_error(ctx);
    cancel_state v = {.stop_in_vae = 1};
    st = run(ctx, p, 128, 2, &v, &img);
    CHECK(st == LD_ERR_CANCELLED && strstr(ld_ctx_error(ctx), "generation cancelled during the") != NULL,
          "VAE cancel: %s (%s)", ld_status_name(st), ld_ctx_error(ctx));
    printf("VAE: %s\n", ld_ctx_error(ctx));
    CHECK(v.unet_steps == 2 && img.pixels == NULL, "VAE cancel: %d unet steps, image %p", v.unet_steps,
          (void *)img.pixels);

    /* 3. the same pipeline still makes exactly the reference image */
    ld_ctx_clear_error(ctx);
    cancel_state never = {0};
    CHECK(run(ctx, p, 128, 2, &never, &img) == LD_OK, "run after cancels: %s", ld_ctx_error(ctx));
    CHECK(never.polls > 20, "only %d polls in a whole run", never.polls);
    CHECK(img.pixels && ref.pixels && !memcmp(img.pixels, ref.pixels, (size_t)128 * 128 * 3),
          "the image after cancelled runs differs from the reference");
    printf("a whole 2-step 128x128 run polls the callback %d times\n", never.polls);
    ld_image_free(&img);

    /* 4. a large image (one U-Net call with 16k-token self-attentions): the
     * stop comes within a second of the request, not at the end of the step */
    ld_ctx_clear_error(ctx);
    cancel_state big = {.stop_after = 40};
    double t0 = now();
    st = run(ctx, p, 1536, 1, &big, &img);
    double t1 = now();
    CHECK(st == LD_ERR_CANCELLED && big.unet_steps == 0, "large run: %s after %d steps", ld_status_name(st),
          big.unet_steps);
    CHECK(big.stopped_at > 0 && t1 - big.stopped_at < 1.0, "returned %.2f s after the callback asked to stop",
          t1 - big.stopped_at);
    printf("1536x1536: asked to stop after %.2f s, returned %.3f s later\n", big.stopped_at - t0, t1 - big.stopped_at);

    ld_image_free(&ref);
    ld_pipeline_free(p);

    /* 5. Wuerstchen and Stable Cascade (the tiny models of the test data):
     * stopped inside the prior's first forward, and inside the decoder's */
    const char *td = test_testdata_dir();
    const char *fam[][2] = {{"wuerstchen-prior-tiny", "wuerstchen-tiny"},
                            {"stable-cascade-prior-tiny", "stable-cascade-tiny"}};
    for (int f = 0; td && f < 2; f++) {
        char prior[4200], dec[4200];
        snprintf(prior, sizeof prior, "%s/models/%s", td, fam[f][0]);
        snprintf(dec, sizeof dec, "%s/models/%s", td, fam[f][1]);
        ld_pipeline_options opt;
        ld_pipeline_options_init(&opt);
        opt.model_dir = prior;
        opt.decoder_dir = dec;
        ld_pipeline *wp = NULL;
        if (ld_pipeline_open(ctx, &opt, &wp) != LD_OK) {
            CHECK(0, "%s: %s", fam[f][0], ld_ctx_error(ctx));
            continue;
        }
        for (int stage = 0; stage < 2; stage++) {
            ld_ctx_clear_error(ctx);
            cancel_state w = {.stop_after = stage == 0 ? 3 : 0, .stop_in_decoder = stage == 1};
            ld_gen_params gp;
            ld_gen_params_init(&gp);
            gp.prompt = "a koala";
            gp.width = gp.height = 128;
            gp.steps = gp.prior_steps = 2;
            gp.cancel = on_cancel;
            gp.cancel_user = &w;
            gp.progress = on_progress;
            gp.progress_user = &w;
            st = ld_generate(ctx, wp, &gp, &img, NULL);
            CHECK(st == LD_ERR_CANCELLED && img.pixels == NULL, "%s %s: %s (%s)", fam[f][0],
                  stage ? "decoder" : "prior", ld_status_name(st), ld_ctx_error(ctx));
            CHECK(stage ? w.prior_done && w.decoder_steps == 0 : w.prior_steps == 0,
                  "%s: stopped after %d prior and %d decoder steps", fam[f][0], w.prior_steps, w.decoder_steps);
            printf("%s: stopped inside the %s forward: %s\n", fam[f][0], stage ? "decoder" : "prior",
                   ld_ctx_error(ctx));
        }
        ld_pipeline_free(wp);
    }
    if (!td) printf("SKIP (part): Wuerstchen / Stable Cascade: no test data\n");
    ld_ctx_free(ctx);
    return test_finish();
}
