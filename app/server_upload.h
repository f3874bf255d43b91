/* Pictures uploaded to `leandiff serve` (init images and masks, as base64 in
 * JSON or as multipart files): PNG or JPEG only, checked against the limits
 * from the header before any pixel is decoded, then decoded to RGB8 plus the
 * PNG's alpha channel when it has one that is not fully opaque.
 *
 *     upload_image im;
 *     char err[256];
 *     if (!upload_decode("image", bytes, len, &im, err, sizeof err)) ... 400 err ...
 *     ... im.rgb, im.alpha (NULL: opaque), im.width, im.height ...
 *     upload_image_free(&im);
 *
 * Every refusal names the upload ("mask is 9000x9000 pixels, ...").
 */
#ifndef LD_APP_SERVER_UPLOAD_H
#define LD_APP_SERVER_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#define UPLOAD_MAX_SIDE 8192
#define UPLOAD_MAX_PIXELS (16u << 20) /* 16 megapixels: 4096 x 4096 */

typedef struct {
    int width, height;
    uint8_t *rgb;   /* width*height*3 */
    uint8_t *alpha; /* width*height, NULL when the picture has no transparency */
} upload_image;

/* The width and height in a PNG's IHDR or a JPEG's SOF marker; 0 if the
 * bytes are neither (or the header is broken), with the reason in err. */
int upload_size(const char *what, const uint8_t *data, size_t len, int *w, int *h, char *err, size_t errn);

/* Decodes a PNG or JPEG of at most UPLOAD_MAX_SIDE per side and
 * UPLOAD_MAX_PIXELS; 0 with a message naming `what` otherwise. */
int upload_decode(const char *what, const void *data, size_t len, upload_image *out, char *err, size_t errn);
void upload_image_free(upload_image *im);

/* A mask from an uploaded picture as RGB8 (white repaints, black keeps), the
 * library's convention. With transparency (alpha != NULL) the alpha decides:
 * transparent_repaints = 1 is OpenAI's rule (alpha 0 = edit here, anything
 * else kept), 0 is A1111's (opaque = repaint: alpha > 127 white). Without
 * transparency the picture's own grey levels are the mask. Returns NULL when
 * out of memory; otherwise a new buffer the caller frees. */
uint8_t *upload_mask_rgb(const upload_image *im, int transparent_repaints);

#endif
