/* The CLI around the text side, run through $LEANDIFF_BIN: `leandiff tokenize`
 * against testdata/tokenizer/cases.json (ids with both pad conventions, the
 * --mask line, stdin input, errors and usage), and `leandiff init-random` on a
 * CLIP text encoder config (the registry entry): the written folder holds
 * exactly the tensors of the released layout and loads and runs. */
#include "io/json.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "text/clip_text.h"
#include "text/clip_tokenizer.h"

#include <sys/wait.h>

static ld_ctx *ctx;

/* Runs cmd; stdout into out (NUL-terminated); returns the exit status. */
static int run(const char *cmd, char *out, size_t n) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t k = fread(out, 1, n - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Parses up to 77 integers from line s; returns how many were read. */
static int parse_ids(const char *s, int64_t *ids) {
    int n = 0;
    char *end;
    while (n < LD_CLIP_CONTEXT) {
        long long v = strtoll(s, &end, 10);
        if (end == s) break;
        ids[n++] = v;
        s = end;
        if (*s == '\n') break;
    }
    return n;
}

static void check_tokenize(const char *bin, const char *td) {
    char path[4200], cmd[16384], out[8192];
    snprintf(path, sizeof path, "%s/tokenizer/cases.json", td);
    json_t *cases = NULL;
    CHECK(ld_json_load_file(ctx, path, &cases) == LD_OK, "%s", ld_ctx_error(ctx));
    if (!cases) return;
    const char *tmp = test_tmp_dir("clip_cli");
    char textfile[4300];
    snprintf(textfile, sizeof textfile, "%s/text.txt", tmp);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        json_t *text = json_object_get(c, "text");
        FILE *f = fopen(textfile, "wb");
        fwrite(json_string_value(text), 1, json_string_length(text), f);
        fclose(f);
        for (int pad0 = 0; pad0 < 2; pad0++) {
            snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s/models/koala-700m-tiny' --tokenizer %s --mask - < '%s'",
                     bin, td, pad0 ? "tokenizer_2" : "tokenizer", textfile);
            int rc = run(cmd, out, sizeof out);
            CHECK(rc == 0, "case %zu: exit %d", i, rc);
            int64_t ids[LD_CLIP_CONTEXT], mask[LD_CLIP_CONTEXT];
            char *nl = strchr(out, '\n');
            int n1 = parse_ids(out, ids), n2 = nl ? parse_ids(nl + 1, mask) : 0;
            CHECK(n1 == LD_CLIP_CONTEXT && n2 == LD_CLIP_CONTEXT, "case %zu: %d ids, %d mask values", i, n1, n2);
            json_t *ref = json_object_get(c, pad0 ? "ids_pad_zero" : "ids_pad_eos");
            int same = n1 == LD_CLIP_CONTEXT;
            for (int k = 0; k < n1; k++) same &= ids[k] == json_integer_value(json_array_get(ref, (size_t)k));
            CHECK(same, "case %zu (%s): ids differ", i, pad0 ? "tokenizer_2" : "tokenizer");
            size_t nb = json_array_size(json_object_get(c, "bpe_ids"));
            size_t real = (nb < 75 ? nb : 75) + 2;
            for (int k = 0; k < n2; k++) CHECK(mask[k] == ((size_t)k < real), "case %zu mask[%d]", i, k);
        }
    }
    json_decref(cases);
    /* text as arguments, joined with spaces; a tokenizer folder given directly */
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m '%s/tokenizer' a photo", bin, td);
    int64_t a[LD_CLIP_CONTEXT], b[LD_CLIP_CONTEXT];
    CHECK(run(cmd, out, sizeof out) == 0 && parse_ids(out, a) == LD_CLIP_CONTEXT, "args: %s", out);
    snprintf(cmd, sizeof cmd, "printf 'a photo' | '%s' tokenize -m '%s/tokenizer' -", bin, td);
    CHECK(run(cmd, out, sizeof out) == 0 && parse_ids(out, b) == LD_CLIP_CONTEXT && !memcmp(a, b, sizeof a),
          "args == stdin");
    /* errors: invalid UTF-8 (exit 1, message with the offset), usage (exit 2), missing folder */
    snprintf(cmd, sizeof cmd, "printf 'ab\\377' | '%s' tokenize -m '%s/tokenizer' - 2>&1", bin, td);
    CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "byte offset 2"), "invalid UTF-8: %s", out);
    snprintf(cmd, sizeof cmd, "'%s' tokenize hello 2>/dev/null", bin);
    CHECK(run(cmd, out, sizeof out) == 2, "no -m: usage");
    snprintf(cmd, sizeof cmd, "'%s' tokenize -m /nonexistent hello 2>&1", bin);
    CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "/nonexistent"), "missing folder: %s", out);
}

static void check_init_random(const char *bin, const char *td) {
    char path[4200], cmd[16384], out[8192];
    const char *tmp = test_tmp_dir("clip_init_random");
    /* the released config plus the _class_name init-random dispatches on */
    snprintf(path, sizeof path, "%s/models/koala-700m-tiny/text_encoder_2/config.json", td);
    json_t *cfg = NULL;
    CHECK(ld_json_load_file(ctx, path, &cfg) == LD_OK, "%s", ld_ctx_error(ctx));
    if (!cfg) return;
    json_object_set_new(cfg, "_class_name", json_string("CLIPTextModelWithProjection"));
    char cfgpath[4300], outdir[4300];
    snprintf(cfgpath, sizeof cfgpath, "%s/in_config.json", tmp);
    snprintf(outdir, sizeof outdir, "%s/text_encoder_2", tmp);
    CHECK(json_dump_file(cfg, cfgpath, 0) == 0, "write config");
    json_decref(cfg);
    snprintf(cmd, sizeof cmd, "'%s' init-random --config '%s' --out '%s' --dtype bf16 2>&1", bin, cfgpath, outdir);
    CHECK(run(cmd, out, sizeof out) == 0, "init-random: %s", out);
    /* same tensor names and shapes as the released file (minus position_ids) */
    char real[4300], made[4400];
    snprintf(real, sizeof real, "%s/models/koala-700m-tiny/text_encoder_2/model.safetensors", td);
    snprintf(made, sizeof made, "%s/model.safetensors", outdir);
    ld_safetensors *a = NULL, *b = NULL;
    CHECK(ld_safetensors_open(ctx, real, &a) == LD_OK && ld_safetensors_open(ctx, made, &b) == LD_OK, "%s",
          ld_ctx_error(ctx));
    if (a && b) {
        size_t expected = 0;
        for (size_t i = 0; i < ld_safetensors_count(a); i++) {
            const ld_tensor *t = ld_safetensors_at(a, i);
            if (strstr(t->name, "position_ids")) continue;
            expected++;
            const ld_tensor *u = ld_safetensors_find(b, t->name);
            CHECK(u && ld_shape_equal(t->ndim, t->shape, u->ndim, u->shape) && u->dtype == LD_BF16,
                  "init-random: %s", t->name);
        }
        CHECK(ld_safetensors_count(b) == expected, "init-random wrote %zu tensors, expected %zu",
              ld_safetensors_count(b), expected);
    }
    ld_safetensors_close(a);
    ld_safetensors_close(b);
    ld_clip_text *te = NULL;
    CHECK(ld_clip_text_load(ctx, outdir, NULL, &te) == LD_OK, "%s", ld_ctx_error(ctx));
    if (te) {
        int64_t ids[LD_CLIP_CONTEXT] = {49406, 320, 1125, 49407};
        float emb[48];
        ld_clip_text_out o = {.text_embeds = emb};
        CHECK(ld_clip_text_forward(ctx, te, ids, NULL, 1, LD_CLIP_CONTEXT, &o) == LD_OK, "%s", ld_ctx_error(ctx));
        int finite = 1;
        for (int i = 0; i < 48; i++) finite &= isfinite(emb[i]);
        CHECK(finite, "random model gives finite text_embeds");
        ld_clip_text_free(te);
    }
}

int main(void) {
    const char *bin = getenv("LEANDIFF_BIN");
    const char *td = test_testdata_dir();
    if (!bin) return test_skip("LEANDIFF_BIN not set (run through ctest)");
    if (!td) return test_skip("no testdata");
    ctx = ld_ctx_new();
    check_tokenize(bin, td);
    check_init_random(bin, td);
    ld_ctx_free(ctx);
    return test_finish();
}
