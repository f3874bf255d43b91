/* Images of `leandiff serve`: PNG bytes with the A1111 "parameters" text
 * (the same chunk `leandiff generate` writes)
 * and saving into --outputs under a name the server makes.
 *
 *     char *text = server_infotext(ctx, &req, &info);          // NULL: message on ctx
 *     if (text && server_png_encode(ctx, &img, text, &png, &len)) ...
 *     server_save_png(outputs, job_id, created, index, png, len, file, sizeof file);
 */
#ifndef LD_APP_SERVER_IMAGE_H
#define LD_APP_SERVER_IMAGE_H

#include "leandiff.h"
#include "server_request.h"

#include <stddef.h>

/* PNG with the A1111 "parameters" text chunk. Returns 0 on failure. */
int server_png_encode(ld_ctx *ctx, const ld_image *img, const char *infotext, unsigned char **png, size_t *len);
/* A1111 infotext of one image (malloc'ed), NULL on failure (message on ctx). */
char *server_infotext(ld_ctx *ctx, const gen_request *req, const ld_gen_info *info);
/* Writes png into the folder outputs as leandiff-<UTC time of created>-<job
 * id prefix>-<index>.png (nothing the client sent is in the name); the name
 * goes to file. Returns 0 on failure (logged, file ""). */
int server_save_png(const char *outputs, const char *job_id, double created, int index, const unsigned char *png,
                    size_t len, char *file, size_t filen);

#endif
