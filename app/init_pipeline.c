/* `leandiff init-random --pipeline NAME --out DIR`: a complete SDXL-layout
 * pipeline folder (model_index.json, scheduler, two byte-level tokenizers,
 * two CLIP text encoders, U-Net, VAE) with random weights, for demos and
 * benchmarks where the real download is not available. The U-Net, text
 * encoder and VAE shapes of the real-size templates are those of the released
 * configs (KOALA-700M / KOALA-1B U-Nets, CLIP-L, OpenCLIP bigG, SDXL VAE).
 *
 * The tokenizers hold only the 256 byte symbols (with and without </w>) and
 * the two special tokens, and no merges: every prompt still tokenizes (one id
 * per byte), which is all random weights need. */
#include "init_pipeline.h"

#include "io/fileio.h"
#include "io/json.h"
#include "models/model_registry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *name;
    const char *summary;
    int unet_ch[3], unet_tlayers[3], unet_heads[3], unet_mid, unet_groups, unet_time_dim;
    int te1_hidden, te1_layers, te1_heads, te2_hidden, te2_layers, te2_heads;
    int vae_ch[4], vae_groups;
    int sample_size; /* latent */
    int lightning;   /* trailing timestep spacing */
} sdxl_template;

static const sdxl_template templates[] = {
    {"tiny", "KOALA-700M structure at toy width (seconds per image; for demos and tests)", {32, 64, 96}, {1, 2, 3},
     {1, 2, 3}, 0, 8, 16, 32, 3, 2, 48, 3, 4, {32, 32, 64, 64}, 8, 16, 0},
    {"koala-700m", "KOALA-700M U-Net + SDXL text encoders and VAE, real sizes", {320, 640, 1280}, {1, 2, 5},
     {5, 10, 20}, 0, 32, 256, 768, 12, 12, 1280, 32, 20, {128, 256, 512, 512}, 32, 128, 0},
    {"koala-lightning-700m", "as koala-700m with the Lightning scheduler (trailing, 10 steps at 3.5)",
     {320, 640, 1280}, {1, 2, 5}, {5, 10, 20}, 0, 32, 256, 768, 12, 12, 1280, 32, 20, {128, 256, 512, 512}, 32, 128,
     1},
    {"koala-1b", "KOALA-1B U-Net (with mid block) + SDXL text encoders and VAE, real sizes", {320, 640, 1280},
     {1, 2, 6}, {5, 10, 20}, 1, 32, 256, 768, 12, 12, 1280, 32, 20, {128, 256, 512, 512}, 32, 128, 0},
};

static json_t *int_array(const int *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *str_array3(const char *a, const char *b, const char *c) {
    json_t *r = json_array();
    json_array_append_new(r, json_string(a));
    json_array_append_new(r, json_string(b));
    if (c) json_array_append_new(r, json_string(c));
    return r;
}

static json_t *unet_config(const sdxl_template *t) {
    json_t *c = json_object();
    json_object_set_new(c, "_class_name", json_string("UNet2DConditionModel"));
    json_object_set_new(c, "sample_size", json_integer(t->sample_size));
    json_object_set_new(c, "in_channels", json_integer(4));
    json_object_set_new(c, "out_channels", json_integer(4));
    json_object_set_new(c, "flip_sin_to_cos", json_true());
    json_object_set_new(c, "freq_shift", json_integer(0));
    json_object_set_new(c, "down_block_types", str_array3("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"));
    json_object_set_new(c, "mid_block_type", t->unet_mid ? json_string("UNetMidBlock2DCrossAttn") : json_null());
    json_object_set_new(c, "up_block_types", str_array3("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"));
    json_object_set_new(c, "block_out_channels", int_array(t->unet_ch, 3));
    json_object_set_new(c, "layers_per_block", json_integer(1));
    json_object_set_new(c, "downsample_padding", json_integer(1));
    json_object_set_new(c, "act_fn", json_string("silu"));
    json_object_set_new(c, "norm_num_groups", json_integer(t->unet_groups));
    json_object_set_new(c, "norm_eps", json_real(1e-5));
    json_object_set_new(c, "cross_attention_dim", json_integer(t->te1_hidden + t->te2_hidden));
    json_object_set_new(c, "transformer_layers_per_block", int_array(t->unet_tlayers, 3));
    json_object_set_new(c, "attention_head_dim", int_array(t->unet_heads, 3));
    json_object_set_new(c, "use_linear_projection", json_true());
    json_object_set_new(c, "addition_embed_type", json_string("text_time"));
    json_object_set_new(c, "addition_time_embed_dim", json_integer(t->unet_time_dim));
    json_object_set_new(c, "projection_class_embeddings_input_dim", json_integer(6 * t->unet_time_dim + t->te2_hidden));
    json_object_set_new(c, "conv_in_kernel", json_integer(3));
    json_object_set_new(c, "conv_out_kernel", json_integer(3));
    return c;
}

static json_t *clip_config(int projection, int hidden, int layers, int heads) {
    json_t *c = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string(projection ? "CLIPTextModelWithProjection" : "CLIPTextModel"));
    json_object_set_new(c, "architectures", arch);
    json_object_set_new(c, "hidden_act", json_string(projection ? "gelu" : "quick_gelu"));
    json_object_set_new(c, "hidden_size", json_integer(hidden));
    json_object_set_new(c, "intermediate_size", json_integer(4 * hidden));
    json_object_set_new(c, "layer_norm_eps", json_real(1e-5));
    json_object_set_new(c, "max_position_embeddings", json_integer(77));
    json_object_set_new(c, "model_type", json_string("clip_text_model"));
    json_object_set_new(c, "num_attention_heads", json_integer(heads));
    json_object_set_new(c, "num_hidden_layers", json_integer(layers));
    json_object_set_new(c, "projection_dim", json_integer(hidden));
    json_object_set_new(c, "vocab_size", json_integer(49408));
    return c;
}

static json_t *vae_config(const sdxl_template *t) {
    json_t *c = json_object();
    json_object_set_new(c, "_class_name", json_string("AutoencoderKL"));
    json_object_set_new(c, "in_channels", json_integer(3));
    json_object_set_new(c, "out_channels", json_integer(3));
    json_t *down = json_array(), *up = json_array();
    for (int i = 0; i < 4; i++) {
        json_array_append_new(down, json_string("DownEncoderBlock2D"));
        json_array_append_new(up, json_string("UpDecoderBlock2D"));
    }
    json_object_set_new(c, "down_block_types", down);
    json_object_set_new(c, "up_block_types", up);
    json_object_set_new(c, "block_out_channels", int_array(t->vae_ch, 4));
    json_object_set_new(c, "layers_per_block", json_integer(2));
    json_object_set_new(c, "act_fn", json_string("silu"));
    json_object_set_new(c, "latent_channels", json_integer(4));
    json_object_set_new(c, "norm_num_groups", json_integer(t->vae_groups));
    json_object_set_new(c, "sample_size", json_integer(t->sample_size * 8));
    json_object_set_new(c, "scaling_factor", json_real(0.13025));
    json_object_set_new(c, "force_upcast", json_true());
    return c;
}

static json_t *scheduler_config(const sdxl_template *t) {
    json_t *c = json_object();
    json_object_set_new(c, "_class_name", json_string("EulerDiscreteScheduler"));
    json_object_set_new(c, "num_train_timesteps", json_integer(1000));
    json_object_set_new(c, "beta_start", json_real(0.00085));
    json_object_set_new(c, "beta_end", json_real(0.012));
    json_object_set_new(c, "beta_schedule", json_string("scaled_linear"));
    json_object_set_new(c, "prediction_type", json_string("epsilon"));
    json_object_set_new(c, "interpolation_type", json_string("linear"));
    json_object_set_new(c, "use_karras_sigmas", json_false());
    json_object_set_new(c, "timestep_spacing", json_string(t->lightning ? "trailing" : "leading"));
    json_object_set_new(c, "steps_offset", json_integer(1));
    return c;
}

static json_t *model_index(void) {
    json_t *c = json_object();
    json_object_set_new(c, "_class_name", json_string("StableDiffusionXLPipeline"));
    json_object_set_new(c, "force_zeros_for_empty_prompt", json_true());
    json_object_set_new(c, "scheduler", str_array3("diffusers", "EulerDiscreteScheduler", NULL));
    json_object_set_new(c, "text_encoder", str_array3("transformers", "CLIPTextModel", NULL));
    json_object_set_new(c, "text_encoder_2", str_array3("transformers", "CLIPTextModelWithProjection", NULL));
    json_object_set_new(c, "tokenizer", str_array3("transformers", "CLIPTokenizer", NULL));
    json_object_set_new(c, "tokenizer_2", str_array3("transformers", "CLIPTokenizer", NULL));
    json_object_set_new(c, "unet", str_array3("diffusers", "UNet2DConditionModel", NULL));
    json_object_set_new(c, "vae", str_array3("diffusers", "AutoencoderKL", NULL));
    return c;
}

/* GPT-2 byte -> printable code point map used by CLIP's vocabulary. */
static int byte_symbol(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256 + n;
}

static void utf8_put(char *s, int cp) {
    if (cp < 0x80) {
        s[0] = (char)cp;
        s[1] = 0;
    } else {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
        s[2] = 0;
    }
}

static ld_status write_json(ld_ctx *ctx, const char *dir, const char *file, json_t *j) {
    char path[4096];
    ld_status st = ld_path_join(ctx, path, sizeof path, dir, file);
    if (st == LD_OK) st = ld_json_write_file(ctx, path, j);
    json_decref(j);
    return st;
}

static ld_status make_dir(ld_ctx *ctx, char *out, size_t n, const char *parent, const char *name) {
    if (name) LD_TRY(ld_path_join(ctx, out, n, parent, name));
    else snprintf(out, n, "%s", parent);
    return ld_output_dir(ctx, out);
}

static ld_status write_tokenizer(ld_ctx *ctx, const char *root, const char *name, const char *pad) {
    char dir[4096];
    LD_TRY(make_dir(ctx, dir, sizeof dir, root, name));
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char sym[8], key[16];
        utf8_put(sym, byte_symbol(b));
        json_object_set_new(vocab, sym, json_integer(b));
        snprintf(key, sizeof key, "%s</w>", sym);
        json_object_set_new(vocab, key, json_integer(256 + b));
    }
    json_object_set_new(vocab, "<|startoftext|>", json_integer(49406));
    json_object_set_new(vocab, "<|endoftext|>", json_integer(49407));
    LD_TRY(write_json(ctx, dir, "vocab.json", vocab));
    char path[4200];
    LD_TRY(ld_path_join(ctx, path, sizeof path, dir, "merges.txt"));
    static const char merges[] = "#version: 0.2\n";
    LD_TRY(ld_write_file(ctx, path, merges, sizeof merges - 1));
    json_t *sp = json_object();
    json_object_set_new(sp, "bos_token", json_string("<|startoftext|>"));
    json_object_set_new(sp, "eos_token", json_string("<|endoftext|>"));
    json_object_set_new(sp, "unk_token", json_string("<|endoftext|>"));
    json_object_set_new(sp, "pad_token", json_string(pad));
    return write_json(ctx, dir, "special_tokens_map.json", sp);
}

/* config.json + random weights through the model type's own loader. */
static ld_status write_component(ld_ctx *ctx, const char *root, const char *name, json_t *cfg, const char *cls,
                                 ld_dtype dtype, uint64_t seed) {
    char dir[4096];
    ld_status st = make_dir(ctx, dir, sizeof dir, root, name);
    const ld_model_type *type = ld_model_type_find(cls);
    ld_weights *rec = NULL;
    if (st == LD_OK && !type) st = ld_fail(ctx, LD_ERR_INTERNAL, "init-random: no model type %s", cls);
    if (st == LD_OK) st = ld_weights_new_recorder(ctx, &rec);
    if (st == LD_OK) st = type->record(ctx, name, cfg, rec);
    char path[4200];
    if (st == LD_OK) st = ld_path_join(ctx, path, sizeof path, dir, type->weights_file);
    if (st == LD_OK) st = ld_weights_write_random(ctx, rec, path, dtype, seed);
    ld_weights_free(rec);
    if (st == LD_OK) return write_json(ctx, dir, "config.json", cfg);
    json_decref(cfg);
    return st;
}

void ld_pipeline_templates_print(FILE *f) {
    for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++)
        fprintf(f, "  %-22s %s\n", templates[i].name, templates[i].summary);
}

ld_status ld_init_random_pipeline(ld_ctx *ctx, const char *name, const char *out, ld_dtype dtype, uint64_t seed) {
    const sdxl_template *t = NULL;
    for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++)
        if (!strcmp(templates[i].name, name)) t = &templates[i];
    if (!t) return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "unknown pipeline template '%s' (see --help)", name);
    char root[4096];
    LD_TRY(make_dir(ctx, root, sizeof root, out, NULL));
    LD_TRY(write_json(ctx, root, "model_index.json", model_index()));
    char sched[4096];
    LD_TRY(make_dir(ctx, sched, sizeof sched, root, "scheduler"));
    LD_TRY(write_json(ctx, sched, "scheduler_config.json", scheduler_config(t)));
    LD_TRY(write_tokenizer(ctx, root, "tokenizer", "<|endoftext|>"));
    LD_TRY(write_tokenizer(ctx, root, "tokenizer_2", "!"));
    LD_TRY(write_component(ctx, root, "text_encoder", clip_config(0, t->te1_hidden, t->te1_layers, t->te1_heads),
                           "CLIPTextModel", dtype, seed + 1));
    LD_TRY(write_component(ctx, root, "text_encoder_2", clip_config(1, t->te2_hidden, t->te2_layers, t->te2_heads),
                           "CLIPTextModelWithProjection", dtype, seed + 2));
    LD_TRY(write_component(ctx, root, "unet", unet_config(t), "UNet2DConditionModel", dtype, seed + 3));
    LD_TRY(write_component(ctx, root, "vae", vae_config(t), "AutoencoderKL", dtype, seed + 4));
    return LD_OK;
}
