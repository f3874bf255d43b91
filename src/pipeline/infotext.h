/* The AUTOMATIC1111 "infotext": the generation parameters as one text, stored
 * in the PNG tEXt chunk "parameters" (and returned by the server):
 *
 *     a koala reading a newspaper
 *     Negative prompt: blurry
 *     Steps: 10, Sampler: Euler, CFG scale: 3.5, Seed: 42, Size: 1024x1024, Model: koala-lightning-700m, RNG: NV, Version: leandiff 0.1.0
 *
 * Line 1 is the prompt (may itself span lines), the "Negative prompt:" line
 * appears when a negative prompt was given (also an empty one, which SDXL
 * encodes where none gives zero embeddings), the last line holds
 * "Key: value" pairs in A1111's order. A value containing ',', ':' or a
 * newline is JSON-quoted (A1111's quote()); the whole text is stripped of
 * leading and trailing whitespace. Wuerstchen / Cascade runs add
 * "Prior steps" and "Prior CFG scale" after "Model". What else changes the
 * pixels follows before "RNG": "Timestep spacing" (SDXL family),
 * "Precision", and "Noise file" (the replay file, which replaces "Seed":
 * no seed was drawn).
 *
 *     char *text;
 *     LD_TRY(ld_infotext_format(ctx, &info, prompt, negative_or_NULL, &text));
 *     ... free(text);
 */
#ifndef LD_PIPELINE_INFOTEXT_H
#define LD_PIPELINE_INFOTEXT_H

#include "base/status.h"

/* A1111 sampler label for a leandiff sampler name and schedule ("euler_a" ->
 * "Euler a", "dpm++2m" + "karras" -> "DPM++ 2M Karras"); unknown names are
 * returned unchanged. schedule may be NULL or "". */
const char *ld_infotext_sampler_label(const char *sampler, const char *schedule);

/* A1111 quote(): value unchanged, or JSON-quoted (UTF-8 kept) if it contains
 * ',', ':' or '\n'. Returns a malloc'd string or NULL when out of memory. */
char *ld_infotext_quote(const char *value);

/* Formats the infotext of one image; *out is malloc'd. negative_prompt NULL:
 * none given (no "Negative prompt:" line). */
ld_status ld_infotext_format(ld_ctx *ctx, const ld_gen_info *info, const char *prompt, const char *negative_prompt,
                             char **out);

#endif
