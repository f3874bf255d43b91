/* libFuzzer target: arbitrary bytes as a LoRA file: the safetensors reader,
 * the key-layout check, then the merge into a small in-memory U-Net-like
 * and text-encoder-like weight set for every component. */
#include "io/safetensors.h"
#include "models/lora_merge.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ld_ctx *ctx = ld_ctx_new();
    ld_safetensors *f = NULL;
    if (ld_safetensors_from_memory(ctx, "fuzz", data, size, &f) == LD_OK) {
        if (ld_lora_check(ctx, f, "fuzz") == LD_OK) {
            static float w1[16 * 8], w2[4 * 4 * 3 * 3];
            ld_tensor ts[2] = {
                {.dtype = LD_F32, .ndim = 2, .shape = {16, 8}, .data = w1, .name = "down_blocks.1.attn1.to_q.weight"},
                {.dtype = LD_F32, .ndim = 4, .shape = {4, 4, 3, 3}, .data = w2,
                 .name = "text_model.encoder.layers.0.mlp.fc1.weight"}};
            for (int target = 0; target < 3; target++) {
                ld_weights *ws = NULL;
                if (ld_weights_new_memory(ctx, "fuzz", ts, 2, &ws) != LD_OK) break;
                ld_lora_merge_file(ctx, ws, (ld_lora_target)target, f, "fuzz", 0.5f);
                ld_weights_free(ws);
            }
        }
        ld_safetensors_close(f);
    }
    ld_ctx_free(ctx);
    return 0;
}
