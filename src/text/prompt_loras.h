/* AUTOMATIC1111's LoRA prompt tags: `<lora:NAME:SCALE>` (or `<lora:NAME>`,
 * scale 1; `lyco` is accepted for `lora`) anywhere in a prompt name a LoRA
 * file to apply with that strength, and are cut from the text the encoder
 * sees, as A1111's extra networks do.
 *
 *     char *clean; ld_prompt_lora *l; int n;
 *     LD_TRY(ld_prompt_take_loras(ctx, "a cat <lora:toy:0.8>", &clean, &l, &n));
 *     // clean = "a cat ", l[0] = {"toy", 0.8}
 *     ld_prompt_loras_free(l, n); free(clean);
 *
 * A name is letters, digits, '_', '-', '.', ' ' (no path separators and no
 * "..", so a tag cannot name a file outside the LoRA folder); a scale that is
 * not a finite number within +-100 is an error naming the tag. Other
 * `<...>` text is left alone.
 */
#ifndef LD_TEXT_PROMPT_LORAS_H
#define LD_TEXT_PROMPT_LORAS_H

#include "base/status.h"

typedef struct {
    char *name;
    float scale;
} ld_prompt_lora;

ld_status ld_prompt_take_loras(ld_ctx *ctx, const char *text, char **clean, ld_prompt_lora **loras, int *n);
void ld_prompt_loras_free(ld_prompt_lora *l, int n);

#endif
