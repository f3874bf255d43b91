/* OpenAI-compatible routes of `leandiff serve`: POST /v1/images/generations
 * (prompt, n, size "WxH", response_format b64_json; synchronous) answering
 * {created, data: [{b64_json}]}, POST /v1/images/edits (the same fields as
 * multipart/form-data with an `image` file and an optional `mask` file whose
 * transparent pixels are the ones to repaint), and GET /v1/models. Errors use OpenAI's
 * {"error": {"message", "type", "param"}} shape (reply_error does that for /v1/).
 */
#include "server_api.h"
#include "multipart.h"
#include "server_submit.h"
#include "server_upload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The text fields of an edits form as the JSON body of /v1/images/generations
 * (numbers where OpenAI's JSON has numbers), so both routes validate alike;
 * NULL with *bad set to the field that is not UTF-8 text (or NULL: out of memory). */
static json_t *form_json(const mp_part *parts, int n, const char **bad) {
    *bad = NULL;
    static const char *numeric[] = {"n", "steps", "cfg_scale", "seed", "strength"};
    json_t *o = json_object();
    for (int i = 0; o && i < n; i++) {
        const mp_part *p = &parts[i];
        if (p->is_file || json_object_get(o, p->name)) continue; /* files; a repeated field: the first one */
        json_t *v = NULL;
        for (size_t k = 0; k < sizeof numeric / sizeof numeric[0] && !v; k++) {
            if (strcmp(p->name, numeric[k]) || !p->len || p->len > 32) continue;
            char num[40], *end;
            memcpy(num, p->data, p->len);
            num[p->len] = 0;
            errno = 0;
            const long long x = strtoll(num, &end, 10);
            if (!*end && !errno) v = json_integer(x);
            else {
                const double d = strtod(num, &end);
                if (!*end && end != num) v = json_real(d);
            }
        }
        if (!v && !(v = json_stringn((const char *)p->data, p->len))) {
            *bad = p->name;
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, p->name, v);
    }
    return o;
}

/* POST /v1/images/edits: multipart -> gen_request -> a synchronous job. */
static mhd_result edits(server_ctx *s, server_req *r) {
    char boundary[MULTIPART_BOUNDARY_MAX + 1], err[512], field[64] = "";
    mp_part parts[MULTIPART_MAX_PARTS];
    int n = 0;
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!multipart_boundary(ct, boundary, err, sizeof err) ||
        !multipart_parse(boundary, r->body, r->body_len, parts, MULTIPART_MAX_PARTS, &n, err, sizeof err))
        return reply_error(r, 400, NULL, "%s", err);
    const mp_part *img = multipart_get(parts, n, "image"), *msk = multipart_get(parts, n, "mask");
    if (!img) img = multipart_get(parts, n, "image[]"); /* gpt-image-1's list form: its first image */
    if (!img) return reply_error(r, 400, "image", "image is required (a PNG or JPEG file part named \"image\")");
    if (strcmp(s->family, "sdxl"))
        return reply_error(r, 400, "image", "image edits need an SDXL-family model, this server has %s", s->family);
    const char *bad;
    json_t *body = form_json(parts, n, &bad);
    if (!body && bad) return reply_error(r, 400, bad, "%s is not UTF-8 text", bad);
    if (!body) return reply_error(r, 500, NULL, "out of memory");
    json_t *strength = json_object_get(body, "strength");
    if (strength) json_incref(strength), json_object_del(body, "strength");
    gen_request req;
    gen_request_init(&req);
    upload_image init = {0}, mask = {0};
    int ok = gen_request_from_json(&s->cfg, s->family, REQ_OPENAI, body, &req, err, sizeof err, field, sizeof field);
    json_decref(body);
    if (ok && !(ok = upload_decode("image", img->data, img->len, &init, err, sizeof err)))
        snprintf(field, sizeof field, "image");
    if (ok && msk && !(ok = upload_decode("mask", msk->data, msk->len, &mask, err, sizeof err)))
        snprintf(field, sizeof field, "mask");
    /* No mask: the image's own transparency, as OpenAI does; none either: image-to-image of the whole picture. */
    const int masked = msk || init.alpha;
    if (ok && !msk && init.alpha) {
        mask.width = init.width, mask.height = init.height;
        mask.alpha = init.alpha, init.alpha = NULL;
        mask.rgb = malloc((size_t)mask.width * mask.height * 3);
        if (!mask.rgb) ok = 0, snprintf(err, sizeof err, "out of memory");
        else memset(mask.rgb, 0, (size_t)mask.width * mask.height * 3);
    }
    if (ok) ok = gen_request_set_images(&req, &init, &mask, 1, s->cfg.max_size, err, sizeof err, field, sizeof field);
    upload_image_free(&init);
    upload_image_free(&mask);
    if (ok) { /* OpenAI repaints the masked area from scratch; leandiff's `strength` may ask for less */
        req.strength = masked ? 1.0 : 0.75;
        const double x = strength && json_is_number(strength) ? json_number_value(strength) : -1;
        if (strength && !(x > 0 && x <= 1)) {
            ok = 0;
            snprintf(err, sizeof err, "strength must be a number in (0, 1]");
            snprintf(field, sizeof field, "strength");
        } else if (strength) {
            req.strength = x;
        }
    }
    json_decref(strength);
    if (!ok) {
        gen_request_free(&req);
        return reply_error(r, 400, field[0] ? field : NULL, "%s", err);
    }
    mhd_result res = server_run_sync_request(s, r, &req, "openai", build_generations);
    gen_request_free(&req);
    return res;
}

int api_openai(server_ctx *s, server_req *r) {
    int get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD"), post = !strcmp(r->method, "POST");
    if (!strcmp(r->path, "/v1/images/generations"))
        return post ? server_run_sync(s, r, REQ_OPENAI, "openai", build_generations) : reply_method(r, "POST");
    if (!strcmp(r->path, "/v1/images/edits")) return post ? edits(s, r) : reply_method(r, "POST");
    if (!strcmp(r->path, "/v1/models")) return get ? reply_json(r, 200, models_json(s)) : reply_method(r, "GET");
    return -1;
}
