/* The tiny KOALA-700M pipeline of the testdata, opened for a test (header
 * only). NULL (with a failed check) when it cannot be opened.
 *
 *     ld_pipeline *pipe = test_open_tiny_koala(ctx, td);
 *     ld_pipeline *pipe = test_open_pipeline(ctx, model_dir);   // any folder
 */
#ifndef LD_TEST_KOALA_TINY_H
#define LD_TEST_KOALA_TINY_H
#include "leandiff.h"
#include "test_util.h"

/* Any pipeline folder with the documented default options. */
static inline ld_pipeline *test_open_pipeline(ld_ctx *ctx, const char *model) {
    ld_pipeline_options opt;
    ld_pipeline_options_init(&opt);
    opt.model_dir = model;
    ld_pipeline *pipe = NULL;
    if (ld_pipeline_open(ctx, &opt, &pipe) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return NULL;
    }
    return pipe;
}

static inline ld_pipeline *test_open_tiny_koala(ld_ctx *ctx, const char *td) {
    char model[4200];
    snprintf(model, sizeof model, "%s/models/koala-700m-tiny", td);
    return test_open_pipeline(ctx, model);
}

#endif
