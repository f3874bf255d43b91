/* libFuzzer target: a native job body (the stream entries of the Redis queue
 * and POST /api/v1/jobs) through gen_request_from_json (app/server_request.c)
 * on arbitrary bytes, for an SDXL and a two-stage model. A body it accepts
 * must come back the same through gen_request_to_json (what
 * `serve --redis` puts on the stream) and gen_request_from_json again. */
#include "server_request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* server_request.c's gen_request_params calls it; this target never does, and
 * the real one lives with the whole pipeline (src/pipeline/pipeline.c). */
void ld_gen_params_init(ld_gen_params *p) { memset(p, 0, sizeof *p); }

static int same(const gen_request *a, const gen_request *b) {
    size_t px = (size_t)a->init_w * (size_t)a->init_h * 3, mpx = (size_t)a->mask_w * (size_t)a->mask_h * 3;
    return !strcmp(a->prompt, b->prompt) &&
           (a->negative_prompt ? b->negative_prompt && !strcmp(a->negative_prompt, b->negative_prompt)
                               : !b->negative_prompt) &&
           a->width == b->width && a->height == b->height && a->steps == b->steps && a->cfg_scale == b->cfg_scale &&
           a->prior_steps == b->prior_steps && a->prior_cfg_scale == b->prior_cfg_scale &&
           !strcmp(a->sampler, b->sampler) && !strcmp(a->schedule[0] ? a->schedule : "default",
                                                      b->schedule[0] ? b->schedule : "default") &&
           a->count == b->count && a->strength == b->strength && a->init_w == b->init_w && a->init_h == b->init_h &&
           !a->init_rgb == !b->init_rgb && !a->mask_rgb == !b->mask_rgb &&
           (!a->init_rgb || !memcmp(a->init_rgb, b->init_rgb, px)) && a->mask_w == b->mask_w && a->mask_h == b->mask_h && a->mask_blur == b->mask_blur &&
           (!a->mask_rgb || !memcmp(a->mask_rgb, b->mask_rgb, mpx));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    server_config cfg = {.max_size = 256, .max_steps = 150, .max_batch = 8};
    static const char *families[] = {"sdxl", "wuerstchen"};
    for (int f = 0; f < 2; f++) {
        gen_request a, b;
        gen_request_init(&a);
        gen_request_init(&b);
        char err[512], field[64];
        if (gen_request_from_json(&cfg, families[f], REQ_NATIVE, body, &a, err, sizeof err, field, sizeof field)) {
            json_t *back = gen_request_to_json(&a, 42, err, sizeof err);
            if (!back) abort();
            if (!gen_request_from_json(&cfg, families[f], REQ_NATIVE, back, &b, err, sizeof err, field, sizeof field))
                abort();
            if (b.seed != 42 || !same(&a, &b)) abort();
            json_decref(back);
        } else if (!err[0]) {
            abort(); /* a refusal says why */
        }
        gen_request_free(&a);
        gen_request_free(&b);
    }
    json_decref(body);
    return 0;
}
