/* A generation request of `leandiff serve`, validated: JSON bodies of the
 * three APIs (A1111, OpenAI, native) -> gen_request. Every refusal names the
 * field and, for limits, the limit:
 *
 *     gen_request req;
 *     gen_request_init(&req);
 *     char err[512], field[64];
 *     if (!gen_request_from_json(cfg, family, REQ_A1111, body, &req, err, sizeof err, field, sizeof field))
 *         ... 400 {"error": err, "field": field} ...
 *     gen_request_free(&req);
 *
 * Depends on jansson only (no HTTP, no jobs).
 */
#ifndef LD_APP_SERVER_REQUEST_H
#define LD_APP_SERVER_REQUEST_H

#include "leandiff.h"
#include "server_config.h"
#include "server_upload.h"

#include <jansson.h>
#include <stdint.h>

#define SERVER_SAMPLER_MAX 32

typedef struct {
    char *prompt;          /* owned */
    char *negative_prompt; /* owned, NULL = none given */
    int width, height;     /* 0: model default */
    int steps;             /* 0: model default */
    double cfg_scale;      /* < 0: model default */
    int prior_steps;       /* Wuerstchen / Cascade; 0: default */
    double prior_cfg_scale;
    char sampler[SERVER_SAMPLER_MAX]; /* library name ("euler", "dpm++2m", ...), "" = default */
    char schedule[16];     /* "default", "karras", "" = the sampler's default */
    uint8_t *init_rgb;     /* owned: image-to-image init image (RGB8), NULL for text-to-image */
    int init_w, init_h;
    uint8_t *mask_rgb;     /* owned: inpainting mask (RGB8, white repaints) or NULL */
    int mask_w, mask_h;    /* the mask's size (resized to the output by the library, like the init image) */
    double mask_blur;      /* inpainting: Gaussian blur radius of the mask in pixels (0: none) */
    double strength;       /* image-to-image denoising strength */
    int64_t seed;          /* -1: random (resolved when queued) */
    int count;             /* images, each with seed + i */
} gen_request;

typedef enum { REQ_A1111, REQ_A1111_IMG2IMG, REQ_OPENAI, REQ_NATIVE } req_dialect;

void gen_request_init(gen_request *r);
/* The library parameters of image i of a request (seed + i); init and mask
 * are filled to point at the request's images (valid while req lives). */
void gen_request_params(const gen_request *req, uint64_t seed, int i, ld_gen_params *gp, ld_image *init, ld_image *mask);
void gen_request_free(gen_request *r);
/* The seed of a request that asks for a random one (seed -1): from the
 * system's random source, in the range A1111 draws from. */
uint64_t gen_request_random_seed(void);

/* Fills req from a JSON object for the model family ("sdxl", ...) under the
 * limits of cfg; on a bad field writes a message naming it into err / field
 * and returns 0. A1111 and OpenAI bodies may carry fields we do not use
 * (their clients send many); native bodies must not (a typo is an error). */
int gen_request_from_json(const server_config *cfg, const char *family, req_dialect d, const json_t *body,
                          gen_request *req, char *err, size_t errn, char *field, size_t fieldn);

/* Moves decoded pictures into req as its init image and (mask may be NULL or
 * empty) inpainting mask, and settles the output size: width/height when the
 * request gave them (the library resizes the pictures, as `generate -i`
 * does), else the image's size rounded down to a multiple of 8.
 * mask_transparent: for a mask with transparency, 1 = OpenAI's rule
 * (transparent repaints), 0 = A1111's (opaque repaints). 0 with a message
 * naming the field on a bad size. */
int gen_request_set_images(gen_request *req, upload_image *init, upload_image *mask, int mask_transparent,
                           int max_size, char *err, size_t errn, char *field, size_t fieldn);

/* The inverse: req as a native job body (the fields of the Redis queue's
 * stream entries) with the seed given (the one resolved at queueing). Back
 * through gen_request_from_json(REQ_NATIVE) it gives the same request: the
 * init image and mask travel as base64 PNGs. NULL with a message in err. */
json_t *gen_request_to_json(const gen_request *req, uint64_t seed, char *err, size_t errn);

/* The samplers a request may name for a family: library name, A1111 label
 * (with its schedule: "DPM++ 2M Karras" is dpm++2m + karras) and aliases
 * (NULL when absent). Returns the count. */
typedef struct {
    const char *lib, *label, *alias1, *alias2, *schedule;
} server_sampler;
int server_samplers(const char *family, const server_sampler **list);
/* The A1111 label of a library sampler with a schedule ("dpm++2m" + "karras"
 * -> "DPM++ 2M Karras"; "ddpm_wuerstchen" -> "DDPM"); lib itself if none. */
const char *server_sampler_label(const char *family, const char *lib, const char *schedule);

#endif
