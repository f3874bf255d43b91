/* `leandiff worker -m MODEL_DIR --redis URL`: one worker of a shared queue
 * (docs/scale-out.md). Parses the flags, loads the model once and runs the
 * worker loop of redis_worker.h until SIGTERM / SIGINT. Built only with
 * hiredis (LD_HAVE_HIREDIS); otherwise the command says what is missing. */
#include "commands.h"

#include <stdio.h>

#ifndef LD_HAVE_HIREDIS
int cmd_worker(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "leandiff worker: this leandiff was built without hiredis; install libhiredis-dev "
                    "(tools/install-deps.sh) and rebuild to use the Redis queue\n");
    return 1;
}
#else
#include "cli_util.h"
#include "leandiff.h"
#include "redis_keys.h"
#include "redis_worker.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static redis_worker_stop stop;

static void on_signal(int sig) {
    if (sig == SIGINT && stop.soft_stop) stop.hard_stop = 1;
    stop.soft_stop = 1;
    if (stop.hard_stop || !stop.busy) stop.give_up = 1; /* nothing would be lost */
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: leandiff worker -m MODEL_DIR --redis URL [options]\n\n"
            "  -m, --model DIR        diffusers pipeline folder (KOALA/SDXL, or a Wuerstchen / Cascade prior)\n"
            "      --decoder DIR      decoder pipeline folder (Wuerstchen / Stable Cascade)\n"
            "      --variant NAME     prefer <name>.NAME.safetensors weights (fp16, bf16)\n"
            "      --redis URL        redis://[[user]:password@]host[:port][/db], or rediss://...[?cacert=F&cert=F&key=F] (TLS)\n"
            "      --name NAME        consumer name in the group (default HOST-PID)\n"
            "  -t, --threads N        compute threads (default: all cores)\n"
            "      --claim-after S    take over the job of a worker silent for S seconds (default 60)\n"
            "      --result-ttl S     keep results S seconds (default 86400)\n"
            "      --max-size PX      largest width / height accepted (default 1024)\n"
            "      --max-steps N      most steps accepted (default 150)\n"
            "      --lora-dir DIR     LoRA files that <lora:NAME:SCALE> prompt tags name (NAME.safetensors)\n"
            "  -v, --verbose          log more\n\n"
            "Jobs come from the stream leandiff:jobs:<model folder name>; see docs/scale-out.md.\n"
            "SIGTERM or SIGINT finish the running job, then exit; a second SIGINT stops at the next step\n"
            "and leaves the job for another worker.\n");
}

int cmd_worker(int argc, char **argv) {
    redis_worker_options o;
    redis_worker_options_init(&o);
    o.announce = 1;
    const char *model_dir = NULL, *decoder = NULL, *variant = NULL, *url_s = NULL, *name = NULL;
    int threads = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "leandiff worker: %s needs a value (or is unknown)\n\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long long x = 0;
        int ok = 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "--decoder")) decoder = v;
        else if (!strcmp(a, "--variant")) variant = v;
        else if (!strcmp(a, "--redis")) url_s = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = cli_parse_int(a, v, 0, 4096, &x), threads = (int)x;
        else if (!strcmp(a, "--claim-after")) ok = cli_parse_int(a, v, 1, 86400 * 7, &x), o.claim_after = (int)x;
        else if (!strcmp(a, "--result-ttl")) ok = cli_parse_int(a, v, 1, 86400 * 365, &x), o.result_ttl = (int)x;
        else if (!strcmp(a, "--max-size")) ok = cli_parse_int(a, v, 64, 8192, &x), o.max_size = (int)x;
        else if (!strcmp(a, "--max-steps")) ok = cli_parse_int(a, v, 1, 1000, &x), o.max_steps = (int)x;
        else if (!strcmp(a, "--lora-dir")) o.lora_dir = v;
        else {
            fprintf(stderr, "leandiff worker: unknown option %s\n\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!model_dir || !url_s) {
        fprintf(stderr, "leandiff worker: -m MODEL_DIR and --redis URL are required\n\n");
        usage(stderr);
        return 2;
    }
    redis_url url;
    char err[256];
    if (!redis_url_parse(url_s, &url, err, sizeof err)) {
        fprintf(stderr, "leandiff worker: %s\n", err);
        return 2;
    }
    char defname[128];
    if (!name) {
        redis_worker_default_name(defname, sizeof defname);
        name = defname;
    }
    if (!rk_valid_id(name)) {
        fprintf(stderr, "leandiff worker: --name '%s' must be 1-64 of A-Z a-z 0-9 _ - .\n", name);
        return 2;
    }
    o.name = name;
    cli_catch_stop_signals(on_signal);
    if (verbose) ld_set_log_level(LD_LOG_INFO);
    ld_set_threads(threads);

    redis_conn *rc = redis_conn_open(&url, "leandiff worker", &stop.give_up);
    if (!rc) return 1;
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline *pipe = NULL;
    ld_pipeline_options opt = {.model_dir = model_dir, .decoder_dir = decoder, .variant = variant, .vae_tiling = -1};
    if (!ctx || ld_pipeline_open(ctx, &opt, &pipe) != LD_OK) {
        fprintf(stderr, "leandiff worker: %s\n", ctx ? ld_ctx_error(ctx) : "out of memory");
        ld_ctx_free(ctx);
        redis_conn_close(rc);
        return 1;
    }
    ld_ctx_free(ctx);
    int res = redis_worker_serve(rc, pipe, &o, &stop);
    ld_pipeline_free(pipe);
    redis_conn_close(rc);
    return res;
}
#endif
