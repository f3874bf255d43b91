/* Pillow's resampling and Gaussian blur on 8-bit images, bit for bit, as
 * diffusers' VaeImageProcessor uses them to prepare init images and masks
 * (image_processor.py v0.30.3: resize() with resample "lanczos", blur() =
 * ImageFilter.GaussianBlur; Pillow 9.4 libImaging Resample.c, BoxBlur.c):
 *
 *     ld_image small;
 *     LD_TRY(ld_image_resize_lanczos(ctx, &big, 96, 64, &small));   // Image.resize((96, 64), LANCZOS)
 *     LD_TRY(ld_image_gaussian_blur(ctx, &mask, 4.0f, &soft));      // image.filter(GaussianBlur(4))
 *     ld_image_free(&small);
 *
 * The input is HWC with 1 to 4 interleaved channels, each channel treated
 * alone (as Pillow treats the bands of L / RGB). The output is newly
 * allocated (the same size for the blur); free it with ld_image_free. */
#ifndef LD_PIPELINE_IMAGE_PREP_H
#define LD_PIPELINE_IMAGE_PREP_H

#include "base/status.h"

/* Image.resize((width, height), Image.LANCZOS): a separable 3-lobe Lanczos
 * filter widened by the scale when shrinking, coefficients rounded to 22-bit
 * fixed point, the horizontal pass (rounded to 8 bits) before the vertical;
 * an axis of unchanged size is not filtered. width, height in 1..65536. */
ld_status ld_image_resize_lanczos(ld_ctx *ctx, const ld_image *in, int width, int height, ld_image *out);

/* ImageFilter.GaussianBlur(radius): three passes of an extended box blur of
 * the matching variance along x, then three along y (each pass rounded to 8
 * bits, edges replicated). radius in [0, 1024]; 0 copies. */
ld_status ld_image_gaussian_blur(ld_ctx *ctx, const ld_image *in, float radius, ld_image *out);

#endif
