/* OpenAI-compatible routes of `leandiff serve`: POST /v1/images/generations
 * (prompt, n, size "WxH", response_format b64_json; synchronous) answering
 * {created, data: [{b64_json}]}, and GET /v1/models. Errors use OpenAI's
 * {"error": {"message", "type", "param"}} shape (reply_error does that for /v1/).
 */
#include "server_api.h"
#include "server_submit.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static json_t *build_generations(server_ctx *s, const job *j, json_t *body) {
    json_t *data = images_b64(j, "b64_json");
    if (!data) return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(o, "data", data);
    return o;
}

static json_t *models_json(const server_ctx *s) {
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(s->model_name));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(0));
    json_object_set_new(m, "owned_by", json_string("leandiff"));
    json_t *a = json_array();
    json_array_append_new(a, m);
    json_t *o = json_object();
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", a);
    return o;
}

int api_openai(server_ctx *s, server_req *r) {
    int get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD"), post = !strcmp(r->method, "POST");
    if (!strcmp(r->path, "/v1/images/generations"))
        return post ? server_run_sync(s, r, REQ_OPENAI, "openai", build_generations) : reply_method(r, "POST");
    if (!strcmp(r->path, "/v1/models")) return get ? reply_json(r, 200, models_json(s)) : reply_method(r, "GET");
    return -1;
}
