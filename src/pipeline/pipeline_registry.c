/* The pipeline families compiled into libleandiff (see pipeline.h). */
#include "pipeline/koala.h"
#include "pipeline/pipeline.h"

extern const ld_pipeline_impl ld_pipeline_wuerstchen; /* pipeline/wuerstchen.c */
extern const ld_pipeline_impl ld_pipeline_stable_cascade; /* pipeline/cascade.c */

const ld_pipeline_impl *const ld_pipeline_registry[] = {
    &ld_pipeline_wuerstchen,
    &ld_pipeline_stable_cascade,
    &ld_koala_pipeline,
    NULL,
};
