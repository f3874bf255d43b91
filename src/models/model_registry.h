/* Model component types by config.json "_class_name", for code that works on
 * any component: `init-random` (random weights of the real shapes), `bench`.
 *
 * A model file adds one entry to the table in model_registry.c. `record`
 * builds the model from its config with a recording weight source (see
 * io/weights.h), which is how init-random learns every tensor name and shape
 * from the model's own loader. */
#ifndef LD_MODELS_MODEL_REGISTRY_H
#define LD_MODELS_MODEL_REGISTRY_H

#include "io/weights.h"
#include <jansson.h>

typedef struct {
    const char *class_name;   /* e.g. "UNet2DConditionModel" */
    const char *weights_file; /* file name inside the component folder */
    /* where: config path for messages; config: parsed config.json. */
    ld_status (*record)(ld_ctx *ctx, const char *where, const json_t *config, ld_weights *recorder);
} ld_model_type;

extern const ld_model_type *const ld_model_types[]; /* NULL-terminated */
const ld_model_type *ld_model_type_find(const char *class_name);

#endif
