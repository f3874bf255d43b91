/* Parsing what workers send back (see redis_msg.h). */
#include "redis_msg.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

redis_msg_kind redis_progress_parse(const char *payload, size_t len, int count, redis_progress *out) {
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(payload, len, 0, NULL);
    redis_msg_kind k = REDIS_MSG_IGNORED;
    const char *stage = json_string_value(json_object_get(o, "stage"));
    json_t *image = json_object_get(o, "image"), *step = json_object_get(o, "step"), *total = json_object_get(o, "total");
    if (json_is_object(o) && json_object_get(o, "state")) {
        k = REDIS_MSG_FINAL;
    } else if (stage && json_is_integer(image) && json_is_integer(step) && json_is_integer(total)) {
        json_int_t i = json_integer_value(image), s = json_integer_value(step), t = json_integer_value(total);
        if (i >= 0 && i < count && s >= 0 && t >= s && t < 1000000) {
            snprintf(out->stage, sizeof out->stage, "%s", stage);
            out->image = (int)i;
            out->step = (int)s;
            out->total = (int)t;
            k = REDIS_MSG_PROGRESS;
        }
    }
    json_decref(o);
    return k;
}

static int int_of(const json_t *o, const char *key) {
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v < 0 ? 0 : v > 1000000 ? 1000000 : (int)v;
}

static void str_of(const json_t *o, const char *key, char *out, size_t n, const char *dflt) {
    const char *s = json_string_value(json_object_get(o, key));
    snprintf(out, n, "%s", s ? s : dflt);
}

void redis_params_info(const char *text, size_t len, ld_gen_info *in) {
    memset(in, 0, sizeof *in);
    json_t *o = json_loadb(text, len, 0, NULL);
    in->width = int_of(o, "width");
    in->height = int_of(o, "height");
    in->steps = int_of(o, "steps");
    in->prior_steps = int_of(o, "prior_steps");
    in->cfg_scale = (float)json_number_value(json_object_get(o, "cfg_scale"));
    in->prior_cfg_scale = (float)json_number_value(json_object_get(o, "prior_cfg_scale"));
    in->strength = (float)json_number_value(json_object_get(o, "strength"));
    in->seed = (uint64_t)json_integer_value(json_object_get(o, "seed"));
    in->seconds = json_number_value(json_object_get(o, "seconds"));
    str_of(o, "sampler", in->sampler, sizeof in->sampler, "");
    str_of(o, "schedule", in->schedule, sizeof in->schedule, "default");
    str_of(o, "model", in->model, sizeof in->model, "");
    str_of(o, "family", in->family, sizeof in->family, "");
    json_decref(o);
}
