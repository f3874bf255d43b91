/* Random-weight SDXL-layout pipeline folders (see init_pipeline.c). */
#ifndef LD_APP_INIT_PIPELINE_H
#define LD_APP_INIT_PIPELINE_H

#include "tensor/tensor.h"
#include <stdio.h>

ld_status ld_init_random_pipeline(ld_ctx *ctx, const char *name, const char *out, ld_dtype dtype, uint64_t seed);
void ld_pipeline_templates_print(FILE *f);

#endif
