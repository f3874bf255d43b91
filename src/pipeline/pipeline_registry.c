/* The pipeline families compiled into libleandiff (see pipeline.h). */
#include "pipeline/koala.h"
#include "pipeline/pipeline.h"

const ld_pipeline_impl *const ld_pipeline_registry[] = {
    &ld_koala_pipeline,
    NULL,
};
