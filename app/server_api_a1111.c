/* AUTOMATIC1111-compatible routes of `leandiff serve` (/sdapi/v1/...):
 * txt2img and img2img (synchronous: the answer comes when the images are
 * made), progress, interrupt, sd-models, samplers, schedulers, options (GET,
 * and POST, which Open WebUI and SillyTavern send), loras, upscalers, sd-vae. Unlike other A1111 look-alikes,
 * txt2img's "info" string holds the values really used (seeds, size, steps,
 * sampler, infotexts), which clients such as SillyTavern parse for the seed.
 */
#include "server_api.h"
#include "server_submit.h"
#include "pipeline/infotext.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *str_array(const char *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_string(v));
    return a;
}

/* Processed.js() of A1111, filled from the job's finished images. */
static json_t *a1111_info(const server_ctx *s, const job *j, const json_t *body) {
    const ld_gen_info *first = &j->images[0].info;
    int n = j->n_images;
    const char *neg = j->req.negative_prompt ? j->req.negative_prompt : "";
    json_t *o = json_object();
    json_object_set_new(o, "prompt", json_string(j->req.prompt));
    json_object_set_new(o, "all_prompts", str_array(j->req.prompt, n));
    json_object_set_new(o, "negative_prompt", json_string(neg));
    json_object_set_new(o, "all_negative_prompts", str_array(neg, n));
    json_object_set_new(o, "seed", json_integer((json_int_t)first->seed));
    json_t *seeds = json_array(), *subseeds = json_array(), *infotexts = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(seeds, json_integer((json_int_t)j->images[i].info.seed));
        json_array_append_new(subseeds, json_integer(-1));
        json_array_append_new(infotexts, json_string(j->images[i].infotext));
    }
    json_object_set_new(o, "all_seeds", seeds);
    json_object_set_new(o, "subseed", json_integer(-1));
    json_object_set_new(o, "all_subseeds", subseeds);
    json_object_set_new(o, "subseed_strength", json_integer(0));
    json_object_set_new(o, "width", json_integer(first->width));
    json_object_set_new(o, "height", json_integer(first->height));
    json_object_set_new(o, "sampler_name", json_string(ld_infotext_sampler_label(first->sampler, first->schedule)));
    json_object_set_new(o, "cfg_scale", json_real(first->cfg_scale));
    json_object_set_new(o, "steps", json_integer(first->steps));
    json_t *bs = json_object_get(body, "batch_size");
    json_object_set_new(o, "batch_size", json_is_integer(bs) ? json_incref(bs) : json_integer(1));
    json_object_set_new(o, "restore_faces", json_false());
    json_object_set_new(o, "face_restoration_model", json_null());
    json_object_set_new(o, "sd_model_name", json_string(first->model));
    json_object_set_new(o, "sd_model_hash", json_null());
    json_object_set_new(o, "sd_vae_name", json_null());
    json_object_set_new(o, "sd_vae_hash", json_null());
    json_object_set_new(o, "seed_resize_from_w", json_integer(-1));
    json_object_set_new(o, "seed_resize_from_h", json_integer(-1));
    json_object_set_new(o, "denoising_strength", json_null());
    json_object_set_new(o, "extra_generation_params", json_object());
    json_object_set_new(o, "index_of_first_image", json_integer(0));
    json_object_set_new(o, "infotexts", infotexts);
    json_object_set_new(o, "styles", json_array());
    time_t t = (time_t)j->started;
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%d%H%M%S", &tm);
    json_object_set_new(o, "job_timestamp", json_string(ts));
    json_object_set_new(o, "clip_skip", json_integer(1));
    json_object_set_new(o, "is_using_inpainting_conditioning", json_false());
    json_object_set_new(o, "version", json_string(ld_version()));
    if (strcmp(s->family, "sdxl")) {
        json_object_set_new(o, "prior_steps", json_integer(first->prior_steps));
        json_object_set_new(o, "prior_cfg_scale", json_real(first->prior_cfg_scale));
    }
    return o;
}

static json_t *build_txt2img(server_ctx *s, const job *j, json_t *body) {
    json_t *imgs = images_b64(j, NULL);
    if (!imgs) return NULL;
    json_t *info = a1111_info(s, j, body);
    char *info_text = json_dumps(info, JSON_COMPACT);
    json_decref(info);
    json_t *o = json_object();
    json_object_set_new(o, "images", imgs);
    json_object_set(o, "parameters", body);
    json_object_set_new(o, "info", json_string(info_text ? info_text : "{}"));
    free(info_text);
    return o;
}

static json_t *sd_models(const server_ctx *s) {
    json_t *m = json_object();
    json_object_set_new(m, "title", json_string(s->model_name));
    json_object_set_new(m, "model_name", json_string(s->model_name));
    json_object_set_new(m, "hash", json_null());
    json_object_set_new(m, "sha256", json_null());
    /* the folder's name, never its path on this machine */
    json_object_set_new(m, "filename", json_string(s->model_name));
    json_object_set_new(m, "config", json_null());
    json_t *a = json_array();
    json_array_append_new(a, m);
    return a;
}

static json_t *sampler_entry(const char *name, const char *alias) {
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_t *al = json_array();
    if (alias) json_array_append_new(al, json_string(alias));
    json_object_set_new(o, "aliases", al);
    json_object_set_new(o, "options", json_object());
    return o;
}

static json_t *samplers_json(const server_ctx *s) {
    json_t *a = json_array();
    const server_sampler *list;
    int n = server_samplers(s->family, &list);
    for (int i = 0; i < n; i++) json_array_append_new(a, sampler_entry(list[i].label, list[i].alias1));
    return a;
}

/* A1111's /sdapi/v1/schedulers: the sigma schedules the model's samplers take. */
static json_t *schedulers_json(const server_ctx *s) {
    json_t *a = json_array();
    json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:n,s:b}", "name", "automatic", "label", "Automatic", "aliases",
                                       json_array(), "default_rho", "need_inner_model", 0));
    if (!strcmp(s->family, "sdxl"))
        json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:f,s:b}", "name", "karras", "label", "Karras", "aliases",
                                           json_array(), "default_rho", 7.0, "need_inner_model", 0));
    return a;
}

static json_t *options_json(const server_ctx *s) {
    json_t *o = json_object();
    json_object_set_new(o, "sd_model_checkpoint", json_string(s->model_name));
    json_object_set_new(o, "sd_checkpoint_hash", json_null());
    json_object_set_new(o, "samples_format", json_string("png"));
    json_object_set_new(o, "CLIP_stop_at_last_layers", json_integer(1));
    json_object_set_new(o, "eta_noise_seed_delta", json_integer(0));
    return o;
}

/* POST /sdapi/v1/options: A1111 changes its settings; here only the model
 * setting means something, and it must name the model this server has. The
 * answer says which keys applied and which were ignored. */
static mhd_result post_options(server_ctx *s, server_req *r) {
    mhd_result res;
    json_t *body = server_parse_body(r, &res);
    if (!body) return res;
    json_t *applied = json_array(), *ignored = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (!strcmp(key, "sd_model_checkpoint")) {
            const char *want = json_string_value(v);
            if (!want || (strcmp(want, s->model_name) && !strstr(want, s->model_name))) {
                json_decref(body);
                json_decref(applied);
                json_decref(ignored);
                return reply_error(r, 400, "sd_model_checkpoint",
                                   "this server runs one model, %s; it cannot switch to another", s->model_name);
            }
            json_array_append_new(applied, json_string(key));
        } else {
            json_array_append_new(ignored, json_string(key));
        }
    }
    json_decref(body);
    return reply_json(r, 200, json_pack("{s:o, s:o}", "applied", applied, "ignored", ignored));
}

/* GET /sdapi/v1/loras: NAME.safetensors of --lora-dir, as <lora:NAME:1> finds
 * them (names only, never paths); empty without --lora-dir. */
static json_t *loras_json(const server_ctx *s) {
    json_t *a = json_array();
    DIR *d = s->cfg.lora_dir ? opendir(s->cfg.lora_dir) : NULL;
    if (!d) return a;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        const char *ext = ".safetensors";
        if (n <= strlen(ext) || strcmp(e->d_name + n - strlen(ext), ext) || e->d_name[0] == '.') continue;
        json_t *name = json_stringn(e->d_name, n - strlen(ext));
        if (!name) continue; /* not UTF-8 */
        json_array_append_new(a, json_pack("{s:O, s:O, s:s, s:{}}", "name", name, "alias", name, "path", e->d_name,
                                           "metadata"));
        json_decref(name);
    }
    closedir(d);
    return a;
}

int api_a1111(server_ctx *s, server_req *r) {
    if (strncmp(r->path, "/sdapi/v1/", 10)) return -1;
    const char *p = r->path + 10;
    int get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD"), post = !strcmp(r->method, "POST");
    if (!strcmp(p, "txt2img")) return post ? server_run_sync(s, r, REQ_A1111, "a1111", build_txt2img) : reply_method(r, "POST");
    if (!strcmp(p, "img2img"))
        return post ? server_run_sync(s, r, REQ_A1111_IMG2IMG, "a1111", build_txt2img) : reply_method(r, "POST");
    if (!strcmp(p, "progress")) return get ? reply_json(r, 200, jobs_progress_json(&s->jobs)) : reply_method(r, "GET");
    if (!strcmp(p, "interrupt")) {
        if (!post) return reply_method(r, "POST");
        json_t *o = json_object();
        json_object_set_new(o, "interrupted", json_boolean(jobs_interrupt(&s->jobs)));
        return reply_json(r, 200, o);
    }
    if (!strcmp(p, "sd-models")) return get ? reply_json(r, 200, sd_models(s)) : reply_method(r, "GET");
    if (!strcmp(p, "samplers")) return get ? reply_json(r, 200, samplers_json(s)) : reply_method(r, "GET");
    if (!strcmp(p, "schedulers")) return get ? reply_json(r, 200, schedulers_json(s)) : reply_method(r, "GET");
    if (!strcmp(p, "options"))
        return get ? reply_json(r, 200, options_json(s)) : post ? post_options(s, r) : reply_method(r, "GET, POST");
    if (!strcmp(p, "loras")) return get ? reply_json(r, 200, loras_json(s)) : reply_method(r, "GET");
    /* no upscalers or separate VAEs yet: A1111's shape, empty */
    if (!strcmp(p, "upscalers") || !strcmp(p, "sd-vae")) return get ? reply_json(r, 200, json_array()) : reply_method(r, "GET");
    return -1;
}
