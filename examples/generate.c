/* The README's library example as a whole program: one image from a model
 * folder, written as a PNG with its parameters text.
 *
 *     cc generate.c $(pkg-config --cflags --libs leandiff) -o generate
 *     ./generate $MODELS/koala-lightning-700m "a koala reading a newspaper" koala.png
 */
#include <leandiff.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT OUT.png [WIDTH HEIGHT STEPS]\n", argv[0]);
        return 2;
    }
    ld_ctx *ctx = ld_ctx_new();
    ld_pipeline_options opt;
    ld_pipeline_options_init(&opt);
    opt.model_dir = argv[1];
    ld_pipeline *p;
    if (ld_pipeline_open(ctx, &opt, &p) != LD_OK) {
        fprintf(stderr, "%s\n", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return 1;
    }
    ld_gen_params gp;
    ld_gen_params_init(&gp);
    gp.prompt = argv[2];
    gp.seed = 42;
    if (argc >= 7) {
        gp.width = atoi(argv[4]);
        gp.height = atoi(argv[5]);
        gp.steps = atoi(argv[6]);
    }
    ld_image img;
    ld_gen_info info;
    int rc = 1;
    if (ld_generate(ctx, p, &gp, &img, &info) == LD_OK) {
        if (ld_image_save_png(ctx, argv[3], &img, &gp, &info) == LD_OK) rc = 0;
        ld_image_free(&img);
    }
    if (rc) fprintf(stderr, "%s\n", ld_ctx_error(ctx));
    else printf("%s: %dx%d, %d steps, seed %llu\n", argv[3], info.width, info.height, info.steps,
                (unsigned long long)info.seed);
    ld_pipeline_free(p);
    ld_ctx_free(ctx);
    return rc;
}
