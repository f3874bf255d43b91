/* The local executor (see server_exec_local.h): a worker thread claims the
 * jobs of the table one after another and runs ld_generate once per image,
 * reporting every step through the library's progress callback, which is
 * also where a cancelled job stops at its next step; inside a step the
 * cancel callback (jobs_stop_requested) stops it between model blocks. */
#include "server_exec_local.h"
#include "models/autoencoder_tiny.h"
#include "server_image.h"
#include "server_jobs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    server_executor base; /* first: the table sees only this */
    ld_pipeline *pipe;
    const char *outputs, *lora_dir;
    job_table *t;
    pthread_t worker;
    int worker_started;
} exec_local;

typedef struct {
    job_table *t;
    job *j;
} progress_ctx;

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int on_progress(void *user, const char *stage, int step, int total, double stage_seconds) {
    progress_ctx *pc = user;
    return jobs_progress(pc->t, pc->j, stage, step, total);
}

/* A preview of the image forming (library: TAESD's decode with serve --taesd,
 * else the cheap latent-to-RGB map at 1/8 size): as a PNG into the job, for the event streams and A1111's progress. */
static int on_preview(void *user, const ld_image *img, int step, int total) {
    progress_ctx *pc = user;
    ld_ctx *ctx = ld_ctx_new(); /* its own: a failed preview must not touch the run's error */
    unsigned char *png = NULL;
    size_t len = 0;
    int ok = ctx && server_png_encode(ctx, img, NULL, &png, &len);
    ld_ctx_free(ctx);
    if (!ok) return jobs_stop_requested(pc->t, pc->j); /* no preview this time; the run goes on */
    return jobs_preview(pc->t, pc->j, png, len, step, total);
}

/* Polled inside the model forwards: DELETE / interrupt stop a step part-way. */
static int on_cancel(void *user) {
    progress_ctx *pc = user;
    return jobs_stop_requested(pc->t, pc->j);
}

/* One image: generate, infotext, PNG, optional save. */
static ld_status run_image(exec_local *ex, ld_ctx *ctx, job *j, int i) {
    ld_gen_params gp;
    ld_image init, mask;
    gen_request_params(&j->req, j->seed, i, &gp, &init, &mask);
    gp.lora_dir = ex->lora_dir;
    progress_ctx pc = {ex->t, j};
    gp.progress = on_progress;
    gp.progress_user = &pc;
    gp.cancel = on_cancel;
    gp.cancel_user = &pc;
    gp.preview = on_preview;
    gp.preview_user = &pc;
    gp.preview_every = 1;
    gp.taesd_dir = ex->t->cfg->taesd_dir;
    ld_image img;
    ld_gen_info info;
    double t0 = mono_now();
    ld_status st = ld_generate(ctx, ex->pipe, &gp, &img, &info);
    if (st != LD_OK) return st;
    double secs = mono_now() - t0;
    job_image out = {0};
    out.info = info;
    out.infotext = server_infotext(ctx, &j->req, &info);
    int ok = out.infotext && server_png_encode(ctx, &img, out.infotext, &out.png, &out.png_len);
    ld_image_free(&img);
    if (!ok) {
        free(out.infotext);
        return ld_ctx_status(ctx) != LD_OK ? ld_ctx_status(ctx) : LD_ERR_NOMEM;
    }
    if (ex->outputs)
        server_save_png(ex->outputs, j->id, j->created, i, out.png, out.png_len, out.file, sizeof out.file);
    jobs_image_done(ex->t, j, i, &out, secs);
    return LD_OK;
}

static void *worker_main(void *arg) {
    exec_local *ex = arg;
    ld_ctx *ctx = ld_ctx_new();
    job *j;
    while ((j = jobs_claim(ex->t))) {
        ld_status st = ctx ? LD_OK : LD_ERR_NOMEM;
        for (int i = 0; i < j->req.count && st == LD_OK; i++)
            st = jobs_begin_image(ex->t, j, i) ? LD_ERR_CANCELLED : run_image(ex, ctx, j, i);
        jobs_end(ex->t, j, st, ctx ? ld_ctx_error(ctx) : "out of memory");
        if (ctx) ld_ctx_clear_error(ctx);
    }
    ld_ctx_free(ctx);
    return NULL;
}

/* serve --taesd DIR: checked once at start (the library loads it per image). */
static int check_taesd(const job_table *t) {
    const char *dir = t->cfg->taesd_dir;
    if (!dir) return 1;
    if (strcmp(t->family, "sdxl")) {
        fprintf(stderr, "leandiff serve: --taesd is for the SDXL family (KOALA/SDXL); this model is %s\n", t->family);
        return 0;
    }
    ld_ctx *ctx = ld_ctx_new();
    ld_vae_tiny *taesd = NULL;
    int ok = ctx && ld_vae_tiny_load(ctx, dir, NULL, &taesd) == LD_OK;
    if (!ok) fprintf(stderr, "leandiff serve: --taesd: %s\n", ctx ? ld_ctx_error(ctx) : "out of memory");
    ld_vae_tiny_free(taesd);
    ld_ctx_free(ctx);
    return ok;
}

static int local_start(server_executor *base, job_table *t) {
    exec_local *ex = (exec_local *)base;
    ex->t = t;
    if (!check_taesd(t)) return 0;
    if (pthread_create(&ex->worker, NULL, worker_main, ex) != 0) {
        fprintf(stderr, "leandiff serve: cannot start the worker thread\n");
        return 0;
    }
    ex->worker_started = 1;
    return 1;
}

static void local_stop(server_executor *base) {
    exec_local *ex = (exec_local *)base;
    if (ex->worker_started) pthread_join(ex->worker, NULL);
    ex->worker_started = 0;
}

static void local_free(server_executor *base) { free(base); }

/* For GET /api/v1/status: the model's defaults (what a request leaving a field
 * out gets), which the page puts in its fields; the sampler by its A1111 label. */
static json_t *local_status(server_executor *base) {
    exec_local *ex = (exec_local *)base;
    ld_pipeline_desc d;
    ld_pipeline_describe(ex->pipe, &d);
    const char *sampler = server_sampler_label(d.family, d.sampler, d.schedule);
    json_t *o = json_pack("{s:i, s:i, s:i, s:f, s:s, s:i}", "width", d.width, "height", d.height, "steps", d.steps,
                          "cfg_scale", (double)d.cfg_scale, "sampler", sampler, "size_multiple", d.size_multiple);
    if (o && d.prior_steps) {
        json_object_set_new(o, "prior_steps", json_integer(d.prior_steps));
        json_object_set_new(o, "prior_cfg_scale", json_real(d.prior_cfg_scale));
    }
    return o ? json_pack("{s:o}", "defaults", o) : NULL;
}

server_executor *exec_local_new(ld_pipeline *pipe, const char *outputs, const char *lora_dir) {
    exec_local *ex = calloc(1, sizeof *ex);
    if (!ex) return NULL;
    ex->base.name = "local";
    ex->base.start = local_start;
    ex->base.stop = local_stop;
    ex->base.free = local_free;
    ex->base.status = local_status;
    ex->pipe = pipe;
    ex->outputs = outputs;
    ex->lora_dir = lora_dir;
    return &ex->base;
}
