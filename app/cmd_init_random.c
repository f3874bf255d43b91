/* `leandiff init-random --config PATH/config.json --out DIR [--dtype f16|bf16|f32] [--seed N]`:
 * writes a component folder (config.json + weights with the real tensor names
 * and shapes, deterministic random values) for any registered component type. */
#include "cli_util.h"
#include "commands.h"
#include "io/fileio.h"
#include "init_pipeline.h"
#include "io/json.h"
#include "models/model_registry.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f, "usage: leandiff init-random --config PATH/config.json --out DIR [--dtype f16|bf16|f32] [--seed N]\n"
               "       leandiff init-random --pipeline NAME --out DIR [--dtype f16|bf16|f32] [--seed N]\n"
               "The first form writes DIR/config.json and DIR/<weights>.safetensors with random weights of the\n"
               "shapes the config implies. Supported classes:");
    for (int i = 0; ld_model_types[i]; i++) fprintf(f, " %s", ld_model_types[i]->class_name);
    fprintf(f, "\nThe second form writes a whole SDXL-layout pipeline folder (RANDOM weights: the images are noise,\n"
               "for demos and benchmarks). Templates:\n");
    ld_pipeline_templates_print(f);
}

int cmd_init_random(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"out", required_argument, 0, 'o'},
                                         {"dtype", required_argument, 0, 'd'},  {"seed", required_argument, 0, 's'},
                                         {"pipeline", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *out = NULL, *dtype_s = "f16", *pipeline = NULL;
    uint64_t seed = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:d:s:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pipeline = optarg; break;
        case 'c': config = optarg; break;
        case 'o': out = optarg; break;
        case 'd': dtype_s = optarg; break;
        case 's':
            if (!cli_parse_u64("--seed", optarg, &seed)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if ((!config == !pipeline) || !out || optind != argc) {
        usage(stderr);
        return 2;
    }
    ld_dtype dtype;
    if (!strcmp(dtype_s, "f16")) dtype = LD_F16;
    else if (!strcmp(dtype_s, "bf16")) dtype = LD_BF16;
    else if (!strcmp(dtype_s, "f32")) dtype = LD_F32;
    else {
        fprintf(stderr, "leandiff: --dtype must be f16, bf16 or f32, got '%s'\n", dtype_s);
        return 2;
    }
    ld_ctx *ctx = ld_ctx_new();
    if (pipeline) {
        int ok = ld_init_random_pipeline(ctx, pipeline, out, dtype, seed) == LD_OK;
        if (ok) printf("wrote %s: random-weight '%s' pipeline (%s)\n", out, pipeline, dtype_s);
        else fprintf(stderr, "leandiff: %s\n", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return ok ? 0 : 1;
    }
    json_t *cfg = NULL;
    ld_weights *rec = NULL;
    int rc = 1;
    const char *cls;
    if (ld_json_load_file(ctx, config, &cfg) != LD_OK) goto fail;
    /* diffusers configs carry _class_name; transformers configs (text encoders) architectures[0]. */
    if (ld_json_str(ctx, config, cfg, "_class_name", NULL, &cls) != LD_OK) goto fail;
    if (!cls) {
        const char *arch[4];
        int n;
        if (ld_json_str_list(ctx, config, cfg, "architectures", arch, 4, &n) != LD_OK) goto fail;
        cls = n > 0 ? arch[0] : NULL;
    }
    if (!cls) {
        ld_fail(ctx, LD_ERR_FORMAT, "%s: neither _class_name nor architectures says which model this is", config);
        goto fail;
    }
    const ld_model_type *type = ld_model_type_find(cls);
    if (!type) {
        ld_fail(ctx, LD_ERR_UNSUPPORTED, "%s: init-random does not know the class '%s'", config, cls);
        goto fail;
    }
    if (ld_weights_new_recorder(ctx, &rec) != LD_OK || type->record(ctx, config, cfg, rec) != LD_OK) goto fail;
    if (ld_output_dir(ctx, out) != LD_OK) goto fail;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", out);
    if (ld_json_write_file(ctx, path, cfg) != LD_OK) goto fail;
    snprintf(path, sizeof path, "%s/%s", out, type->weights_file);
    if (ld_weights_write_random(ctx, rec, path, dtype, seed) != LD_OK) goto fail;
    size_t n = ld_weights_recorded_count(rec);
    int64_t params = 0;
    for (size_t i = 0; i < n; i++) params += ld_tensor_numel(ld_weights_recorded(rec, i));
    printf("wrote %s: %s, %zu tensors, %lld parameters (%s)\n", out, cls, n, (long long)params, dtype_s);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "leandiff: %s\n", ld_ctx_error(ctx));
done:
    ld_weights_free(rec);
    json_decref(cfg);
    ld_ctx_free(ctx);
    return rc;
}
