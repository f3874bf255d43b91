/* diffusers model folder resolution (see model_folder.h). */
#include "io/model_folder.h"

#include "io/fileio.h"
#include "io/json.h"

#include <stdio.h>
#include <string.h>

ld_status ld_model_index_load(ld_ctx *ctx, const char *dir, json_t **index, const char **class_name) {
    *index = NULL;
    if (!ld_dir_exists(dir)) return ld_fail(ctx, LD_ERR_MODEL, "%s: model folder not found", dir);
    char path[4096];
    LD_TRY(ld_path_join(ctx, path, sizeof path, dir, "model_index.json"));
    if (!ld_file_exists(path))
        return ld_fail(ctx, LD_ERR_MODEL, "%s: no model_index.json (is this a diffusers pipeline folder?)", dir);
    LD_TRY(ld_json_load_file(ctx, path, index));
    if (!json_is_object(*index)) {
        json_decref(*index);
        *index = NULL;
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: must be a JSON object", path);
    }
    ld_status st = ld_json_str_req(ctx, path, *index, "_class_name", class_name);
    if (st != LD_OK) {
        json_decref(*index);
        *index = NULL;
    }
    return st;
}

ld_status ld_component_dir(ld_ctx *ctx, const char *dir, const json_t *index, const char *name, char *out,
                           size_t n) {
    if (index) {
        const json_t *v = json_object_get(index, name);
        if (!v || !json_is_array(v) || json_array_size(v) != 2 || json_is_null(json_array_get(v, 1)))
            return ld_fail(ctx, LD_ERR_MODEL, "%s/model_index.json: component '%s' is not listed", dir, name);
    }
    LD_TRY(ld_path_join(ctx, out, n, dir, name));
    if (!ld_dir_exists(out)) return ld_fail(ctx, LD_ERR_MODEL, "%s: component folder '%s' is missing", dir, name);
    return LD_OK;
}

ld_status ld_component_config(ld_ctx *ctx, const char *component_dir, json_t **cfg) {
    char path[4096];
    LD_TRY(ld_path_join(ctx, path, sizeof path, component_dir, "config.json"));
    if (!ld_file_exists(path)) {
        LD_TRY(ld_path_join(ctx, path, sizeof path, component_dir, "scheduler_config.json"));
        if (!ld_file_exists(path))
            return ld_fail(ctx, LD_ERR_MODEL, "%s: no config.json", component_dir);
    }
    LD_TRY(ld_json_load_file(ctx, path, cfg));
    if (!json_is_object(*cfg)) {
        json_decref(*cfg);
        *cfg = NULL;
        return ld_fail(ctx, LD_ERR_FORMAT, "%s: must be a JSON object", path);
    }
    return LD_OK;
}

ld_status ld_component_files_open(ld_ctx *ctx, const char *dir, const char *variant, ld_component_files *f) {
    memset(f, 0, sizeof *f);
    LD_TRY(ld_component_config(ctx, dir, &f->config));
    snprintf(f->where, sizeof f->where, "%s/config.json", dir);
    ld_status st = ld_weights_open_dir(ctx, dir, variant, &f->ws);
    if (st != LD_OK) ld_component_files_close(f, 0);
    return st;
}

void ld_component_files_close(ld_component_files *f, int keep_weights) {
    json_decref(f->config);
    f->config = NULL;
    if (!keep_weights) ld_weights_free(f->ws);
    f->ws = NULL;
}
