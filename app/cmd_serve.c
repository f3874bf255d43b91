/* `leandiff serve -m MODEL_DIR [options]`: loads the model once and serves
 * the web page and the HTTP APIs (see server.h for the parts, docs/server.md
 * for the endpoints) until SIGINT / SIGTERM. With --redis URL it is a
 * front-end with no model: the jobs go to the `leandiff worker`s of a Redis
 * queue (server_exec_redis.h, docs/scale-out.md). */
#include "cli_util.h"
#include "io/fileio.h"
#include "commands.h"
#include "server.h"
#include "server_exec_local.h"
#include "server_exec_redis.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: leandiff serve -m MODEL_DIR [options]\n"
            "       leandiff serve --redis URL [-m MODEL_DIR | --redis-model NAME] [options]\n"
            "                                          (a front-end of leandiff workers)\n\n"
            "  -m, --model DIR        diffusers pipeline folder (KOALA/SDXL, or a Wuerstchen / Cascade prior)\n"
            "      --decoder DIR      decoder pipeline folder (Wuerstchen / Stable Cascade)\n"
            "      --variant NAME     prefer <name>.NAME.safetensors weights (fp16, bf16)\n"
            "      --host ADDR        address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
            "      --port N           TCP port (default 7860; 0 = any free port, printed at start)\n"
            "  -t, --threads N        compute threads per job (default: all cores)\n"
            "      --max-queue N      jobs that may wait behind the running one (default 16); more get 503\n"
            "      --api-key KEY      require 'Authorization: Bearer KEY' on every API call\n"
            "                         (or set LEANDIFF_API_KEY, which keeps the key out of the process list)\n"
            "      --outputs DIR      also save every image there (created if missing; names made by the server)\n"
            "      --lora-dir DIR     LoRA files that <lora:NAME:SCALE> prompt tags name (NAME.safetensors)\n"
            "      --taesd DIR        AutoencoderTiny folder (madebyollin/taesdxl): full-size previews in the events\n"
            "      --max-size PX      largest width / height accepted (default 1024)\n"
            "      --max-steps N      most steps accepted (default 150)\n"
            "      --max-batch N      most images per request (default 8)\n"
            "      --max-body BYTES   largest request body (default 16777216); larger gets 413\n"
            "      --history N        finished jobs kept in memory for the API and the page (default 100)\n"
            "      --max-connections N  simultaneous connections (default 256)\n"
            "      --per-ip-limit N   simultaneous connections from one address (default: half of --max-connections;\n"
            "                         behind a reverse proxy every client has its address: raise it)\n"
            "      --header-timeout S seconds a connection may idle before its request headers are in (default 10)\n"
            "      --idle-timeout S   seconds a connection may idle after that: body, keep-alive (default 30)\n"
            "      --cors-origin O    let web pages of origin O (https://app.example.com, or *) call the API\n"
            "                         (repeatable, up to 8; default: same origin only)\n"
            "      --quiet            no access log (one line per request on stderr otherwise)\n"
            "      --redis URL        send the jobs to the leandiff workers of this Redis queue\n"
            "                         (redis://[[user]:password@]host[:port][/db]; see docs/scale-out.md);\n"
            "                         with -m, this process is also a worker of that model\n"
            "      --redis-model NAME the workers' model (their model folder name); default: the one model\n"
            "                         the running workers serve\n"
            "  -v, --verbose          log more\n");
}

static volatile sig_atomic_t stop_asked; /* while looking for the workers' model */
static void on_stop(int sig) {
    (void)sig;
    stop_asked = 1;
}

/* serve --redis: the executor of a front-end (with pipe: also a local worker of that model), or NULL after a
 * message with the exit status in *rc. */
static server_executor *redis_front_end(server_ctx *s, const char *url_s, const char *model, ld_pipeline *pipe,
                                        char *model_buf, size_t n, int *rc) {
    redis_url url;
    char err[256];
    *rc = 2;
    if (!redis_url_parse(url_s, &url, err, sizeof err)) {
        fprintf(stderr, "leandiff serve: --redis: %s\n", err);
        return NULL;
    }
    if (pipe) {
        if (model && strcmp(model, s->model_name)) {
            fprintf(stderr, "leandiff serve: --redis-model %s differs from the model of -m (%s)\n", model,
                    s->model_name);
            return NULL;
        }
        snprintf(model_buf, n, "%s", s->model_name);
    } else if (model) {
        s->family = "unknown";
        if (!*model || strlen(model) > 200 || strchr(model, ' ') || strchr(model, '/')) {
            fprintf(stderr, "leandiff serve: --redis-model '%s' is not a model name (a worker's model folder name)\n",
                    model);
            return NULL;
        }
        snprintf(model_buf, n, "%s", model);
    } else {
        *rc = 1;
        s->family = "unknown";
        cli_catch_stop_signals(on_stop);
        if (!exec_redis_pick_model(&url, &stop_asked, model_buf, n, &s->family)) return NULL;
    }
    *rc = 1;
    s->model_name = model_buf;
    server_executor *exec = exec_redis_new(&url, model_buf, &s->family, &s->cfg, pipe);
    if (!exec) fprintf(stderr, "leandiff serve: out of memory\n");
    return exec;
}

static int int_flag(const char *flag, const char *v, long long lo, long long hi, int *out) {
    long long x;
    if (!cli_parse_int(flag, v, lo, hi, &x)) return 0;
    *out = (int)x;
    return 1;
}

int cmd_serve(int argc, char **argv) {
    server_ctx s;
    memset(&s, 0, sizeof s);
    server_config *c = &s.cfg;
    c->host = "127.0.0.1";
    c->port = 7860;
    c->max_queue = 16;
    c->max_body = (size_t)16 << 20; /* room for a base64 init image and mask at 1024x1024 */
    c->max_size = 1024;
    c->max_steps = 150;
    c->max_batch = 8;
    c->history = 100;
    c->max_connections = 256;
    c->per_ip_limit = 0; /* 0: half of --max-connections */
    c->header_timeout = 10;
    c->idle_timeout = 30;
    c->access_log = 1;
    const char *variant = NULL, *redis = NULL, *redis_model = NULL;
    c->api_key = getenv("LEANDIFF_API_KEY");
    if (c->api_key && !*c->api_key) c->api_key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            ld_set_log_level(LD_LOG_INFO);
            continue;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            c->access_log = 0;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "leandiff serve: unknown option or missing value: %s\n\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long long x;
        int ok = 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) c->model_dir = v;
        else if (!strcmp(a, "--decoder")) c->decoder_dir = v;
        else if (!strcmp(a, "--variant")) variant = v;
        else if (!strcmp(a, "--host")) c->host = v;
        else if (!strcmp(a, "--port")) ok = int_flag(a, v, 0, 65535, &c->port);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = int_flag(a, v, 0, 1024, &c->threads);
        else if (!strcmp(a, "--max-queue")) ok = int_flag(a, v, 0, 100000, &c->max_queue);
        else if (!strcmp(a, "--api-key")) c->api_key = v;
        else if (!strcmp(a, "--redis")) redis = v;
        else if (!strcmp(a, "--redis-model")) redis_model = v;
        else if (!strcmp(a, "--outputs")) c->outputs = v;
        else if (!strcmp(a, "--lora-dir")) c->lora_dir = v;
        else if (!strcmp(a, "--taesd")) c->taesd_dir = v;
        else if (!strcmp(a, "--max-size")) ok = int_flag(a, v, 64, 8192, &c->max_size);
        else if (!strcmp(a, "--max-steps")) ok = int_flag(a, v, 1, 1000, &c->max_steps);
        else if (!strcmp(a, "--max-batch")) ok = int_flag(a, v, 1, 64, &c->max_batch);
        else if (!strcmp(a, "--history")) ok = int_flag(a, v, 1, 100000, &c->history);
        else if (!strcmp(a, "--max-connections")) ok = int_flag(a, v, 4, 10000, &c->max_connections);
        else if (!strcmp(a, "--per-ip-limit")) ok = int_flag(a, v, 1, 10000, &c->per_ip_limit);
        else if (!strcmp(a, "--header-timeout")) ok = int_flag(a, v, 1, 3600, &c->header_timeout);
        else if (!strcmp(a, "--idle-timeout")) ok = int_flag(a, v, 1, 3600, &c->idle_timeout);
        else if (!strcmp(a, "--cors-origin")) {
            const int any = !strcmp(v, "*"), web = !strncmp(v, "http://", 7) || !strncmp(v, "https://", 8);
            if ((!any && !web) || strchr(v, ' ') || (web && v[strlen(v) - 1] == '/')) {
                fprintf(stderr, "leandiff serve: --cors-origin '%s': give an origin as browsers send it "
                                "(scheme://host[:port], no path or trailing slash) or *\n", v);
                return 2;
            }
            if (c->n_cors == (int)(sizeof c->cors_origins / sizeof c->cors_origins[0])) {
                fprintf(stderr, "leandiff serve: at most 8 --cors-origin values\n");
                return 2;
            }
            c->cors_origins[c->n_cors++] = v;
        }
        else if (!strcmp(a, "--max-body")) {
            ok = cli_parse_int(a, v, 1024, 1LL << 30, &x);
            c->max_body = (size_t)x;
        } else {
            fprintf(stderr, "leandiff serve: unknown option %s\n\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
    }
#ifndef LD_HAVE_HIREDIS
    if (redis) {
        fprintf(stderr, "leandiff serve: --redis: this leandiff was built without hiredis; install libhiredis-dev "
                        "(tools/install-deps.sh) and rebuild to use the Redis queue\n");
        return 1;
    }
#endif
    if (redis_model && !redis) {
        fprintf(stderr, "leandiff serve: --redis-model needs --redis URL\n");
        return 2;
    }
    if (!c->model_dir && !redis) {
        fprintf(stderr, "leandiff serve: -m MODEL_DIR (or --redis URL) is required\n\n");
        usage(stderr);
        return 2;
    }
    if (!c->per_ip_limit) c->per_ip_limit = c->max_connections / 2;
    /* a body a little over the limit is read and dropped so the client reads the 413 */
    c->drain_limit = c->max_body > ((size_t)256 << 20) ? c->max_body : (size_t)256 << 20;
    if (c->api_key && strlen(c->api_key) < 8) {
        fprintf(stderr, "leandiff serve: --api-key must have at least 8 characters\n");
        return 2;
    }
    if (c->outputs) {
        ld_ctx *octx = ld_ctx_new();
        int ok = ld_output_dir(octx, c->outputs) == LD_OK;
        if (!ok) fprintf(stderr, "leandiff serve: --outputs: %s\n", ld_ctx_error(octx));
        ld_ctx_free(octx);
        if (!ok) return 1;
    }
    int loopback = !strcmp(c->host, "127.0.0.1") || !strcmp(c->host, "localhost") || !strcmp(c->host, "::1");
    if (!loopback && !c->api_key)
        fprintf(stderr, "leandiff serve: warning: listening on %s without --api-key: anyone who can reach this "
                        "machine can use it\n", c->host);

    if (redis && !c->model_dir) {
        char model[256];
        int rc;
        server_executor *exec = redis_front_end(&s, redis, redis_model, NULL, model, sizeof model, &rc);
        if (!exec) return rc;
        rc = server_run(&s, exec);
        exec->free(exec);
        return rc;
    }
    ld_set_threads(c->threads);
    ld_ctx *ctx = ld_ctx_new();
    if (!ctx) return 1;
    ld_pipeline_options opt;
    ld_pipeline_options_init(&opt);
    opt.model_dir = c->model_dir;
    opt.decoder_dir = c->decoder_dir;
    opt.variant = variant;
    ld_pipeline *pipe;
    if (ld_pipeline_open(ctx, &opt, &pipe) != LD_OK) {
        fprintf(stderr, "leandiff serve: %s\n", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return 1;
    }
    ld_ctx_free(ctx);
    s.family = ld_pipeline_family(pipe);
    s.model_name = ld_pipeline_model_name(pipe);
    char model[256];
    int rc = 1;
    server_executor *exec = redis ? redis_front_end(&s, redis, redis_model, pipe, model, sizeof model, &rc)
                                  : exec_local_new(pipe, c->outputs, c->lora_dir);
    if (!exec) {
        if (!redis) fprintf(stderr, "leandiff serve: out of memory\n");
        ld_pipeline_free(pipe);
        return rc;
    }
    rc = server_run(&s, exec);
    exec->free(exec);
    ld_pipeline_free(pipe);
    return rc;
}
