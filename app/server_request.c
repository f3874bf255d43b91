/* Validation of request bodies for `leandiff serve` (see server_request.h):
 * JSON object -> gen_request for the three dialects (A1111, OpenAI, native).
 * Every refusal names the field and, for limits, the limit:
 *     "width must be between 8 and 1024 (this server's limit), got 4096"
 */
#include "server_request.h"

#include "io/base64.h"
#include "io/png.h"
#include "server_upload.h"
#include "sched/scheduler.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define PROMPT_MAX 10000
#define CFG_MAX 50.0

void gen_request_init(gen_request *r) {
    memset(r, 0, sizeof *r);
    r->cfg_scale = -1.0;
    r->prior_cfg_scale = -1.0;
    r->seed = -1;
    r->count = 1;
}

void gen_request_params(const gen_request *req, uint64_t seed, int i, ld_gen_params *gp, ld_image *init, ld_image *mask) {
    ld_gen_params_init(gp);
    gp->prompt = req->prompt;
    gp->negative_prompt = req->negative_prompt;
    gp->width = req->width;
    gp->height = req->height;
    gp->steps = req->steps;
    gp->cfg_scale = (float)req->cfg_scale;
    gp->prior_steps = req->prior_steps;
    gp->prior_cfg_scale = (float)req->prior_cfg_scale;
    gp->sampler = req->sampler[0] ? req->sampler : NULL;
    gp->schedule = req->schedule[0] ? req->schedule : NULL;
    *init = (ld_image){req->init_w, req->init_h, 3, req->init_rgb};
    *mask = (ld_image){req->mask_w, req->mask_h, 3, req->mask_rgb};
    if (req->init_rgb) {
        gp->init_image = init;
        gp->mask_image = req->mask_rgb ? mask : NULL;
        gp->mask_blur = req->mask_rgb ? (float)req->mask_blur : 0.0f;
        gp->strength = (float)req->strength;
    }
    gp->seed = seed + (uint64_t)i;
}

uint64_t gen_request_random_seed(void) {
    uint32_t r = 0;
    ssize_t got;
    do got = getrandom(&r, sizeof r, 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof r) { /* does not happen on Linux >= 3.17; the clock then */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r ^= (uint32_t)ts.tv_nsec * 2654435761u ^ (uint32_t)ts.tv_sec;
    }
    return r % 4294967294u;
}

void gen_request_free(gen_request *r) {
    free(r->prompt);
    free(r->negative_prompt);
    free(r->init_rgb);
    free(r->mask_rgb);
    r->prompt = r->negative_prompt = NULL;
    r->init_rgb = r->mask_rgb = NULL;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* What a request is checked against. */
typedef struct {
    const server_config *cfg;
    const char *family;
} req_ctx;

typedef struct {
    char *err;
    size_t errn;
    char *field;
    size_t fieldn;
} verr;

static int bad(verr *e, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(verr *e, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->errn, fmt, ap);
    va_end(ap);
    snprintf(e->field, e->fieldn, "%s", field);
    return 0;
}

/* Integer field (a number with an integral value also counts). Absent or
 * null keeps *out. */
static int get_int(verr *e, const json_t *o, const char *key, long long lo, long long hi, const char *limit_note,
                   long long *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 1;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (long long)json_real_value(v);
    } else {
        return bad(e, key, "%s must be an integer, got %s", key, type_name(v));
    }
    if (x < lo || x > hi) return bad(e, key, "%s must be between %lld and %lld%s, got %lld", key, lo, hi, limit_note, x);
    *out = x;
    return 1;
}

static int get_num(verr *e, const json_t *o, const char *key, double lo, double hi, double *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 1;
    if (!json_is_number(v)) return bad(e, key, "%s must be a number, got %s", key, type_name(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return bad(e, key, "%s must be between %g and %g, got %g", key, lo, hi, x);
    *out = x;
    return 1;
}

/* String field copied into *out (malloc). Absent: *out unchanged; null: NULL when allow_null. */
static int get_str(verr *e, const json_t *o, const char *key, int allow_null, char **out) {
    json_t *v = json_object_get(o, key);
    if (!v) return 1;
    if (json_is_null(v) && allow_null) {
        free(*out);
        *out = NULL;
        return 1;
    }
    if (!json_is_string(v)) return bad(e, key, "%s must be a string, got %s", key, type_name(v));
    if (json_string_length(v) > PROMPT_MAX)
        return bad(e, key, "%s is longer than %d bytes (this server's limit)", key, PROMPT_MAX);
    char *c = strdup(json_string_value(v));
    if (!c) return bad(e, key, "out of memory");
    free(*out);
    *out = c;
    return 1;
}

/* ---- samplers ------------------------------------------------------------------ */

/* SDXL family: every sampler of sched/scheduler.h, under its A1111 label and,
 * where it takes one, its Karras label; A1111's k_ aliases for the two it had first. */
#define SDXL_MAX_SAMPLERS 32
static server_sampler sdxl_samplers[SDXL_MAX_SAMPLERS];
static int n_sdxl_samplers;
static pthread_once_t sdxl_once = PTHREAD_ONCE_INIT;

static void make_sdxl_samplers(void) {
    for (int i = 0; ld_sampler_list[i] && n_sdxl_samplers + 2 <= SDXL_MAX_SAMPLERS; i++) {
        const ld_sampler_desc *d = ld_sampler_list[i];
        const int euler = !strcmp(d->name, "euler"), euler_a = !strcmp(d->name, "euler_a");
        sdxl_samplers[n_sdxl_samplers++] = (server_sampler){d->name, d->label, euler ? "k_euler" : euler_a ? "k_euler_a" : NULL,
                                                            euler ? "euler" : euler_a ? "euler_ancestral" : NULL, "default"};
        if (d->karras_label)
            sdxl_samplers[n_sdxl_samplers++] = (server_sampler){d->name, d->karras_label, NULL, NULL, "karras"};
    }
}

/* Two-stage families have one sampler. */
static const server_sampler ddpm_samplers[] = {{"ddpm", "DDPM", NULL, NULL, "default"}};

int server_samplers(const char *family, const server_sampler **list) {
    if (!strcmp(family, "sdxl")) {
        pthread_once(&sdxl_once, make_sdxl_samplers);
        *list = sdxl_samplers;
        return n_sdxl_samplers;
    }
    *list = ddpm_samplers;
    return 1;
}

const char *server_sampler_label(const char *family, const char *lib, const char *schedule) {
    const server_sampler *list;
    const int n = server_samplers(family, &list);
    const int karras = schedule && !strcmp(schedule, "karras");
    for (int i = 0; i < n; i++)
        if ((!strcmp(list[i].lib, lib) || (!strcmp(lib, "ddpm_wuerstchen") && !strcmp(list[i].lib, "ddpm"))) &&
            !strcmp(list[i].schedule, karras && strcmp(family, "sdxl") == 0 ? "karras" : "default"))
            return list[i].label;
    return lib;
}

static int names_sampler(const server_sampler *m, const char *name) {
    return !strcasecmp(name, m->lib) || !strcasecmp(name, m->label) || (m->alias1 && !strcasecmp(name, m->alias1)) ||
           (m->alias2 && !strcasecmp(name, m->alias2));
}

static int get_sampler(verr *e, const req_ctx *s, const json_t *o, const char *key, char *out, char *schedule) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 1;
    if (!json_is_string(v)) return bad(e, key, "%s must be a string, got %s", key, type_name(v));
    const char *name = json_string_value(v);
    if (!*name) return 1;
    /* Two-stage families have one sampler (DDPM): A1111 clients always send
     * one name or another, so it is not an error there. */
    if (strcmp(s->family, "sdxl")) return 1;
    const server_sampler *list;
    int n = server_samplers(s->family, &list);
    for (int i = 0; i < n; i++)
        if (names_sampler(&list[i], name)) {
            snprintf(out, SERVER_SAMPLER_MAX, "%s", list[i].lib);
            if (!strcmp(list[i].schedule, "karras")) snprintf(schedule, 16, "karras");
            return 1;
        }
    char names[512] = "";
    for (int i = 0; i < n; i++) {
        if (strlen(names) + strlen(list[i].label) + 3 >= sizeof names) break;
        strcat(names, i ? ", " : "");
        strcat(names, list[i].label);
    }
    return bad(e, key, "%s: unknown sampler '%.64s' (available: %s)", key, name, names);
}

/* A1111's "scheduler" field (1.9+): "Automatic" / "" keep the sampler's,
 * "Karras" picks Karras sigmas; the two-stage families ignore it. */
static int get_schedule(verr *e, const req_ctx *s, const json_t *o, char *schedule) {
    json_t *v = json_object_get(o, "scheduler");
    if (!v || json_is_null(v) || strcmp(s->family, "sdxl")) return 1;
    if (!json_is_string(v)) return bad(e, "scheduler", "scheduler must be a string, got %s", type_name(v));
    const char *name = json_string_value(v);
    if (!*name || !strcasecmp(name, "automatic")) return 1;
    if (!strcasecmp(name, "karras")) snprintf(schedule, 16, "karras");
    else if (!strcasecmp(name, "uniform") || !strcasecmp(name, "default")) snprintf(schedule, 16, "default");
    else return bad(e, "scheduler", "scheduler: unknown schedule '%.64s' (Automatic, Uniform, Karras)", name);
    return 1;
}

/* ---- the three dialects ---------------------------------------------------------- */

static int common_fields(verr *e, const req_ctx *s, const json_t *o, gen_request *req, const char *sampler_key) {
    const server_config *c = s->cfg;
    long long w = req->width, h = req->height, steps = req->steps, seed = req->seed, ps = req->prior_steps;
    if (!get_str(e, o, "prompt", 0, &req->prompt)) return 0;
    if (!get_str(e, o, "negative_prompt", 1, &req->negative_prompt)) return 0;
    if (!get_int(e, o, "width", 8, c->max_size, " (this server's limit)", &w)) return 0;
    if (!get_int(e, o, "height", 8, c->max_size, " (this server's limit)", &h)) return 0;
    if (!get_int(e, o, "steps", 1, c->max_steps, " (this server's limit)", &steps)) return 0;
    if (!get_int(e, o, "prior_steps", 1, c->max_steps, " (this server's limit)", &ps)) return 0;
    if (!get_num(e, o, "cfg_scale", 0, CFG_MAX, &req->cfg_scale)) return 0;
    if (!get_num(e, o, "prior_cfg_scale", 0, CFG_MAX, &req->prior_cfg_scale)) return 0;
    if (!get_int(e, o, "seed", -1, 0x7fffffffffffffffLL, "", &seed)) return 0;
    if (w % 8) return bad(e, "width", "width must be a multiple of 8, got %lld", w);
    if (h % 8) return bad(e, "height", "height must be a multiple of 8, got %lld", h);
    if (sampler_key && !get_sampler(e, s, o, sampler_key, req->sampler, req->schedule)) return 0;
    if (sampler_key && !get_schedule(e, s, o, req->schedule)) return 0;
    req->width = (int)w;
    req->height = (int)h;
    req->steps = (int)steps;
    req->prior_steps = (int)ps;
    req->seed = seed;
    return 1;
}

static int a1111_fields(verr *e, const req_ctx *s, const json_t *o, gen_request *req) {
    long long bs = 1, ni = 1;
    const char *skey = json_object_get(o, "sampler_name") ? "sampler_name" : "sampler_index";
    if (json_object_get(o, "sampler_index") && !json_is_string(json_object_get(o, "sampler_index")))
        skey = "sampler_name"; /* legacy numeric sampler_index: ignored, as A1111 does */
    if (!common_fields(e, s, o, req, skey)) return 0;
    if (json_is_true(json_object_get(o, "enable_hr")))
        return bad(e, "enable_hr", "enable_hr (the hires. fix: upscale, then a second img2img pass) is not supported "
                   "yet; send enable_hr false, or run img2img on an upscaled image");
    if (!get_int(e, o, "batch_size", 1, s->cfg->max_batch, " (this server's limit)", &bs)) return 0;
    if (!get_int(e, o, "n_iter", 1, s->cfg->max_batch, " (this server's limit)", &ni)) return 0;
    if (bs * ni > s->cfg->max_batch)
        return bad(e, "batch_size", "batch_size x n_iter must be at most %d (this server's limit), got %lld",
                   s->cfg->max_batch, bs * ni);
    req->count = (int)(bs * ni);
    return 1;
}

/* A base64 PNG or JPEG (a data: URL prefix allowed) into *im, decoded with
 * the upload limits (server_upload.h); a bad upload is a 400 naming the field
 * and the problem. */
static int get_picture(verr *e, const char *field, const json_t *v, upload_image *im) {
    if (!json_is_string(v)) return bad(e, field, "%s must be a base64 PNG or JPEG string, got %s", field, type_name(v));
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    const char *comma = !strncmp(s, "data:", 5) ? memchr(s, ',', n) : NULL;
    if (comma) n -= (size_t)(comma + 1 - s), s = comma + 1;
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (!ld_base64_decode(s, n, &bytes, &len)) return bad(e, field, "%s is not base64", field);
    char err[256];
    int ok = upload_decode(field, bytes, len, im, err, sizeof err);
    free(bytes);
    return ok ? 1 : bad(e, field, "%s", err);
}

/* The init image and mask of an image-to-image request, already decoded:
 * the output size is width/height when given (the library resizes the
 * pictures to it, as `generate -i` does), else the image's own size rounded
 * down to a multiple of 8. mask_transparent: OpenAI's rule for masks with
 * alpha (transparent repaints), else A1111's (opaque repaints). */
int gen_request_set_images(gen_request *req, upload_image *init, upload_image *mask, int mask_transparent,
                           int max_size, char *err, size_t errn, char *field, size_t fieldn) {
    verr ev = {err, errn, field, fieldn}, *e = &ev;
    const int w = req->width ? req->width : init->width / 8 * 8, h = req->height ? req->height : init->height / 8 * 8;
    if (w < 8 || h < 8 || w > max_size || h > max_size)
        return bad(e, req->width ? "width" : "init_images",
                   "the output would be %dx%d: sides must be between 8 and %d (this server's limit); give width and "
                   "height", w, h, max_size);
    free(req->init_rgb);
    free(req->mask_rgb);
    req->mask_rgb = NULL;
    req->init_rgb = init->rgb;
    init->rgb = NULL;
    req->init_w = init->width, req->init_h = init->height;
    if (mask && mask->rgb) {
        req->mask_rgb = upload_mask_rgb(mask, mask_transparent);
        if (!req->mask_rgb) return bad(e, "mask", "out of memory");
        req->mask_w = mask->width, req->mask_h = mask->height;
    }
    req->width = w, req->height = h;
    return 1;
}

/* A1111 img2img: init_images[0], mask, denoising_strength, mask_blur,
 * inpainting_fill (validated; leandiff always starts the masked area from
 * the init image, A1111's 1 "original"). Without width/height the output
 * size is the image's. mask_blur_default: 4 for A1111 (its API's default),
 * 0 for the native API (as `generate --mask`). */
static int img2img_fields(verr *e, const req_ctx *s, const json_t *o, gen_request *req, double mask_blur_default) {
    if (strcmp(s->family, "sdxl"))
        return bad(e, "init_images", "image-to-image needs an SDXL-family model, this server has %s", s->family);
    const json_t *imgs = json_object_get(o, "init_images");
    if (!json_is_array(imgs) || json_array_size(imgs) < 1)
        return bad(e, "init_images", "init_images must be a list holding one base64 PNG or JPEG");
    upload_image init = {0}, mask = {0};
    if (!get_picture(e, "init_images", json_array_get(imgs, 0), &init)) return 0;
    const json_t *m = json_object_get(o, "mask");
    if (m && !json_is_null(m) && !(json_is_string(m) && !json_string_length(m)) && !get_picture(e, "mask", m, &mask)) {
        upload_image_free(&init);
        return 0;
    }
    int ok = gen_request_set_images(req, &init, &mask, 0, s->cfg->max_size, e->err, e->errn, e->field, e->fieldn);
    upload_image_free(&init);
    upload_image_free(&mask);
    if (!ok) return 0;
    req->strength = 0.75;
    req->mask_blur = mask_blur_default;
    long long fill = 1;
    if (!get_num(e, o, "denoising_strength", 0, 1, &req->strength)) return 0;
    if (!(req->strength > 0)) return bad(e, "denoising_strength", "denoising_strength must be above 0");
    if (!get_num(e, o, "mask_blur", 0, 64, &req->mask_blur)) return 0;
    if (!get_int(e, o, "inpainting_fill", 0, 3, "", &fill)) return 0;
    return 1;
}

static int parse_size(verr *e, const char *v, gen_request *req, int max) {
    if (!strcmp(v, "auto")) return 1;
    char *end;
    if (!isdigit((unsigned char)v[0])) return bad(e, "size", "size must look like \"512x512\", got \"%.32s\"", v);
    long w = strtol(v, &end, 10);
    if (*end != 'x' || !isdigit((unsigned char)end[1]))
        return bad(e, "size", "size must look like \"512x512\", got \"%.32s\"", v);
    long h = strtol(end + 1, &end, 10);
    if (*end) return bad(e, "size", "size must look like \"512x512\", got \"%.32s\"", v);
    if (w < 8 || h < 8 || w > max || h > max)
        return bad(e, "size", "size: width and height must be between 8 and %d (this server's limit), got %ldx%ld",
                   max, w, h);
    if (w % 8 || h % 8) return bad(e, "size", "size: width and height must be multiples of 8, got %ldx%ld", w, h);
    req->width = (int)w;
    req->height = (int)h;
    return 1;
}

static int openai_fields(verr *e, const req_ctx *s, const json_t *o, gen_request *req) {
    json_t *p = json_object_get(o, "prompt");
    if (!p || json_is_null(p)) return bad(e, "prompt", "prompt is required");
    if (!common_fields(e, s, o, req, "sampler")) return 0; /* sampler, scheduler: leandiff extensions */
    long long n = 1;
    if (!get_int(e, o, "n", 1, s->cfg->max_batch, " (this server's limit)", &n)) return 0;
    req->count = (int)n;
    json_t *size = json_object_get(o, "size");
    if (size && !json_is_null(size)) {
        if (!json_is_string(size)) return bad(e, "size", "size must be a string like \"512x512\", got %s", type_name(size));
        if (!parse_size(e, json_string_value(size), req, s->cfg->max_size)) return 0;
    }
    json_t *rf = json_object_get(o, "response_format");
    if (rf && !json_is_null(rf) && !(json_is_string(rf) && !strcmp(json_string_value(rf), "b64_json")))
        return bad(e, "response_format", "response_format: only \"b64_json\" is supported");
    json_t *of = json_object_get(o, "output_format");
    if (of && !json_is_null(of) && !(json_is_string(of) && !strcmp(json_string_value(of), "png")))
        return bad(e, "output_format", "output_format: only \"png\" is supported");
    return 1;
}

static int native_fields(verr *e, const req_ctx *s, const json_t *o, gen_request *req) {
    static const char *known[] = {"prompt",    "negative_prompt", "width", "height",      "steps",
                                  "cfg_scale", "seed",            "sampler", "scheduler", "n",
                                  "prior_steps", "prior_cfg_scale", "init_images", "mask", "denoising_strength",
                                  "mask_blur", "inpainting_fill"};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(known[i], key)) i++;
        if (i == sizeof known / sizeof known[0]) return bad(e, key, "unknown field '%.64s'", key);
    }
    json_t *p = json_object_get(o, "prompt");
    if (!p || json_is_null(p)) return bad(e, "prompt", "prompt is required");
    if (!common_fields(e, s, o, req, "sampler")) return 0;
    long long n = 1;
    if (!get_int(e, o, "n", 1, s->cfg->max_batch, " (this server's limit)", &n)) return 0;
    req->count = (int)n;
    /* image-to-image with A1111's fields (serve --redis sends img2img jobs to the workers this way) */
    if (json_object_get(o, "init_images")) return img2img_fields(e, s, o, req, 0);
    if (json_object_get(o, "mask")) return bad(e, "mask", "mask needs init_images");
    if (json_object_get(o, "mask_blur")) return bad(e, "mask_blur", "mask_blur needs init_images and mask");
    if (json_object_get(o, "denoising_strength"))
        return bad(e, "denoising_strength", "denoising_strength needs init_images");
    return 1;
}

int gen_request_from_json(const server_config *cfg, const char *family, req_dialect d, const json_t *body,
                          gen_request *req, char *err, size_t errn, char *field, size_t fieldn) {
    verr e = {err, errn, field, fieldn};
    const req_ctx ctx = {cfg, family}, *s = &ctx;
    err[0] = field[0] = 0;
    int ok = d == REQ_A1111           ? a1111_fields(&e, s, body, req)
           : d == REQ_A1111_IMG2IMG ? a1111_fields(&e, s, body, req) && img2img_fields(&e, s, body, req, 4)
           : d == REQ_OPENAI ? openai_fields(&e, s, body, req)
                             : native_fields(&e, s, body, req);
    if (ok && !req->prompt) {
        req->prompt = strdup("");
        if (!req->prompt) ok = bad(&e, "prompt", "out of memory");
    }
    return ok;
}

json_t *gen_request_to_json(const gen_request *req, uint64_t seed, char *err, size_t errn) {
    json_t *o = json_object();
    if (!o) goto nomem;
    json_object_set_new(o, "prompt", json_string(req->prompt ? req->prompt : ""));
    if (req->negative_prompt) json_object_set_new(o, "negative_prompt", json_string(req->negative_prompt));
    if (req->width) json_object_set_new(o, "width", json_integer(req->width));
    if (req->height) json_object_set_new(o, "height", json_integer(req->height));
    if (req->steps) json_object_set_new(o, "steps", json_integer(req->steps));
    if (req->cfg_scale >= 0) json_object_set_new(o, "cfg_scale", json_real(req->cfg_scale));
    if (req->prior_steps) json_object_set_new(o, "prior_steps", json_integer(req->prior_steps));
    if (req->prior_cfg_scale >= 0) json_object_set_new(o, "prior_cfg_scale", json_real(req->prior_cfg_scale));
    if (req->sampler[0]) json_object_set_new(o, "sampler", json_string(req->sampler));
    if (req->schedule[0])
        json_object_set_new(o, "scheduler", json_string(!strcmp(req->schedule, "karras") ? "Karras" : "Uniform"));
    json_object_set_new(o, "seed", json_integer((json_int_t)seed));
    json_object_set_new(o, "n", json_integer(req->count));
    const uint8_t *pics[2] = {req->init_rgb, req->mask_rgb};
    const int pw[2] = {req->init_w, req->mask_w}, ph[2] = {req->init_h, req->mask_h};
    for (int k = 0; k < 2 && req->init_rgb; k++) {
        if (!pics[k]) continue;
        ld_ctx *ctx = ld_ctx_new();
        unsigned char *png = NULL;
        size_t len = 0;
        char *b64 = NULL;
        if (ctx && ld_png_encode(ctx, pics[k], pw[k], ph[k], NULL, &png, &len) == LD_OK)
            b64 = ld_base64_encode(png, len);
        free(png);
        if (!b64) snprintf(err, errn, "encoding the %s: %s", k ? "mask" : "init image", ctx ? ld_ctx_error(ctx) : "out of memory");
        ld_ctx_free(ctx);
        if (!b64) {
            json_decref(o);
            return NULL;
        }
        json_t *v = json_string(b64);
        free(b64);
        if (k == 0) {
            json_t *a = json_array();
            json_array_append_new(a, v);
            json_object_set_new(o, "init_images", a);
        } else {
            json_object_set_new(o, "mask", v);
        }
    }
    if (req->init_rgb) json_object_set_new(o, "denoising_strength", json_real(req->strength));
    if (req->mask_rgb) json_object_set_new(o, "mask_blur", json_real(req->mask_blur));
    return o;
nomem:
    snprintf(err, errn, "out of memory");
    return NULL;
}
