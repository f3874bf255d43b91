/* Precision belongs to the run, not the process (issue #12): two pipelines
 * opened with different precisions generate at the same time on two threads,
 * kept in lock step by their progress callbacks so every step of one overlaps
 * the other, and each result is bit for bit its single-run result. The pairs:
 * the tiny KOALA in f32 beside itself in bf16, and KOALA f32 beside Stable
 * Cascade bf16. */
#include "leandiff.h"
#include "test_util.h"

#include <pthread.h>
#include <time.h>

/* A two-party barrier that gives up after a while, so a thread that failed
 * (and stopped calling back) never hangs the other. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int waiting, generation, active;
} pair_barrier;

static pair_barrier bar = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void barrier_wait(void) {
    pthread_mutex_lock(&bar.mu);
    if (bar.active < 2) { /* running alone, or the other run ended */
        pthread_mutex_unlock(&bar.mu);
        return;
    }
    const int gen = bar.generation;
    if (++bar.waiting == 2) {
        bar.waiting = 0;
        bar.generation++;
        pthread_cond_broadcast(&bar.cv);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 20;
        while (gen == bar.generation && bar.active == 2)
            if (pthread_cond_timedwait(&bar.cv, &bar.mu, &ts)) break;
        if (gen == bar.generation) bar.waiting = 0;
    }
    pthread_mutex_unlock(&bar.mu);
}

static void barrier_leave(void) {
    pthread_mutex_lock(&bar.mu);
    bar.active--;
    pthread_cond_broadcast(&bar.cv);
    pthread_mutex_unlock(&bar.mu);
}

static int on_progress(void *user, const char *stage, int step, int total, double s) {
    (void)user, (void)stage, (void)step, (void)total, (void)s;
    barrier_wait();
    return 0;
}

typedef struct {
    const char *model, *decoder;
    ld_precision precision;
    int latents;          /* KOALA: compare the final latents (float), else the RGB8 image */
    int W, H;
    /* results */
    ld_status st;
    char err[512];
    float *lat;
    int64_t nlat;
    ld_image img;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline_options opt;
    ld_pipeline_options_init(&opt);
    opt.model_dir = j->model;
    opt.decoder_dir = j->decoder;
    opt.precision = j->precision;
    ld_pipeline *p = NULL;
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = "a koala reading a book by the sea";
    gp.negative_prompt = "blurry";
    gp.width = j->W;
    gp.height = j->H;
    gp.steps = 3;
    gp.prior_steps = 3;
    gp.cfg_scale = 5.0f;
    gp.prior_cfg_scale = 4.0f;
    gp.seed = 42;
    gp.progress = on_progress;
    j->nlat = 4 * (int64_t)(j->W / 8) * (j->H / 8);
    j->lat = calloc((size_t)j->nlat, sizeof(float));
    if (j->latents) gp.latents_out = j->lat;
    memset(&j->img, 0, sizeof j->img);
    j->st = ld_pipeline_open(ctx, &opt, &p);
    if (j->st == LD_OK) j->st = ld_generate(ctx, p, &gp, &j->img, NULL);
    snprintf(j->err, sizeof j->err, "%s", ld_ctx_error(ctx));
    barrier_leave();
    ld_pipeline_free(p);
    ld_ctx_free(ctx);
    return NULL;
}

static int same_result(const job *a, const job *b) {
    if (a->latents) return !memcmp(a->lat, b->lat, sizeof(float) * (size_t)a->nlat);
    return a->img.width == b->img.width && a->img.height == b->img.height && a->img.pixels && b->img.pixels &&
           !memcmp(a->img.pixels, b->img.pixels, (size_t)a->img.width * a->img.height * 3);
}

static void job_free(job *j) {
    free(j->lat);
    ld_image_free(&j->img);
}

static void run_alone(job *j) {
    bar.active = 1;
    run_job(j);
    CHECK(j->st == LD_OK, "%s alone: %s", j->model, j->err);
}

static void run_pair(const char *name, job proto[2]) {
    job single[2] = {proto[0], proto[1]}, both[2] = {proto[0], proto[1]};
    run_alone(&single[0]);
    run_alone(&single[1]);
    bar.active = 2;
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, run_job, &both[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK(both[i].st == LD_OK, "%s, run %d concurrently: %s", name, i, both[i].err);
        CHECK(both[i].st != LD_OK || same_result(&both[i], &single[i]),
              "%s: run %d (%s) concurrently differs from its single run", name, i,
              proto[i].precision == LD_PRECISION_BF16 ? "bf16" : "f32");
    }
    for (int i = 0; i < 2; i++) {
        job_free(&single[i]);
        job_free(&both[i]);
    }
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    char koala[4200], prior[4200], decoder[4200];
    snprintf(koala, sizeof koala, "%s/models/koala-700m-tiny", td);
    snprintf(prior, sizeof prior, "%s/models/stable-cascade-prior-tiny", td);
    snprintf(decoder, sizeof decoder, "%s/models/stable-cascade-tiny", td);

    /* the two precisions really differ on this model, so a leak would show */
    job f32 = {.model = koala, .precision = LD_PRECISION_F32, .latents = 1, .W = 128, .H = 128};
    job bf16 = f32;
    bf16.precision = LD_PRECISION_BF16;
    run_alone(&f32);
    run_alone(&bf16);
    CHECK(!same_result(&f32, &bf16), "bf16 and f32 give different latents on the tiny KOALA");
    job_free(&f32);
    job_free(&bf16);

    job koala_pair[2] = {f32, bf16};
    run_pair("KOALA f32 beside KOALA bf16", koala_pair);

    job cascade = {.model = prior, .decoder = decoder, .precision = LD_PRECISION_BF16, .W = 128, .H = 128};
    job mixed[2] = {f32, cascade};
    run_pair("KOALA f32 beside Stable Cascade bf16", mixed);
    return test_finish();
}
