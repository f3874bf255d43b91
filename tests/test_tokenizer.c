/* CLIP tokenizer against testdata/tokenizer/cases.json (bpe_ids, ids_pad_eos
 * with a <|endoftext|>-padding tokenizer, ids_pad_zero with SDXL's "!"-padding
 * tokenizer_2), the text encoder cases' input_ids from their prompts, the
 * cleaning rules (HTML entities, whitespace, case), bad input (invalid UTF-8,
 * NUL bytes, long text, special tokens) and the load/encode timings. */
#include "io/json.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "text/clip_clean.h"
#include "text/clip_tokenizer.h"

#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int ids_equal_json(const int64_t *ids, size_t n, const json_t *ref) {
    if (!json_is_array(ref) || json_array_size(ref) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(ref, i)) != ids[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int64_t *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %lld", (long long)ids[i]);
    fprintf(stderr, "\n");
}

static void check_cases(ld_ctx *ctx, const char *td, const ld_clip_tokenizer *pad_eos,
                        const ld_clip_tokenizer *pad_zero) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer/cases.json", td);
    json_t *cases;
    CHECK(ld_json_load_file(ctx, path, &cases) == LD_OK, "%s", ld_ctx_error(ctx));
    if (!cases) return;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        size_t tlen = json_string_length(json_object_get(c, "text"));
        int64_t bpe[512], ids[LD_CLIP_CONTEXT], mask[LD_CLIP_CONTEXT];
        size_t n = 0;
        CHECK(ld_clip_bpe(ctx, pad_eos, text, tlen, bpe, 512, &n) == LD_OK, "%s", ld_ctx_error(ctx));
        int ok = ids_equal_json(bpe, n, json_object_get(c, "bpe_ids"));
        CHECK(ok, "case %zu bpe_ids differ for \"%s\"", i, text);
        if (!ok) print_ids("got", bpe, n);

        CHECK(ld_clip_tokenize_n(ctx, pad_eos, text, tlen, ids, mask) == LD_OK, "%s", ld_ctx_error(ctx));
        ok = ids_equal_json(ids, LD_CLIP_CONTEXT, json_object_get(c, "ids_pad_eos"));
        CHECK(ok, "case %zu ids_pad_eos differ for \"%s\"", i, text);
        if (!ok) print_ids("got", ids, LD_CLIP_CONTEXT);
        /* mask: 1 through the appended EOS */
        size_t real = (n < 75 ? n : 75) + 2;
        for (size_t k = 0; k < LD_CLIP_CONTEXT; k++) CHECK(mask[k] == (k < real), "case %zu mask[%zu]", i, k);

        CHECK(ld_clip_tokenize_n(ctx, pad_zero, text, tlen, ids, NULL) == LD_OK, "%s", ld_ctx_error(ctx));
        ok = ids_equal_json(ids, LD_CLIP_CONTEXT, json_object_get(c, "ids_pad_zero"));
        CHECK(ok, "case %zu ids_pad_zero differ for \"%s\"", i, text);
        if (!ok) print_ids("got", ids, LD_CLIP_CONTEXT);
    }
    printf("tokenizer cases: %zu texts checked\n", json_array_size(cases));
    json_decref(cases);
}

/* input_ids (and attention_mask) of a text encoder case against its prompts. */
static void check_encoder_case(ld_ctx *ctx, const char *td, const char *model, const char *tokdir,
                               const char *file) {
    char path[4200], dir[4200];
    snprintf(path, sizeof path, "%s/cases/%s", td, file);
    snprintf(dir, sizeof dir, "%s/models/%s/%s", td, model, tokdir);
    ld_safetensors *st = NULL;
    ld_clip_tokenizer *tok = NULL;
    if (ld_safetensors_open(ctx, path, &st) != LD_OK || ld_clip_tokenizer_load(ctx, dir, &tok) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        ld_safetensors_close(st);
        return;
    }
    const char *meta = ld_safetensors_meta_get(st, "prompts");
    json_t *prompts = NULL;
    CHECK(meta && ld_json_parse(ctx, "prompts", meta, strlen(meta), &prompts) == LD_OK, "%s: prompts", path);
    const ld_tensor *ref = ld_safetensors_find(st, "input_ids");
    const ld_tensor *refmask = ld_safetensors_find(st, "attention_mask");
    CHECK(ref && ref->dtype == LD_I64, "%s: input_ids", path);
    if (prompts && ref) {
        for (size_t b = 0; b < json_array_size(prompts); b++) {
            int64_t ids[LD_CLIP_CONTEXT], mask[LD_CLIP_CONTEXT];
            const char *text = json_string_value(json_array_get(prompts, b));
            CHECK(ld_clip_tokenize(ctx, tok, text, ids, mask) == LD_OK, "%s", ld_ctx_error(ctx));
            CHECK(memcmp(ids, (const int64_t *)ref->data + b * LD_CLIP_CONTEXT, sizeof ids) == 0,
                  "%s: input_ids[%zu] differ for \"%s\"", path, b, text);
            if (refmask)
                CHECK(memcmp(mask, (const int64_t *)refmask->data + b * LD_CLIP_CONTEXT, sizeof mask) == 0,
                      "%s: attention_mask[%zu] differs", path, b);
        }
    }
    json_decref(prompts);
    ld_safetensors_close(st);
    ld_clip_tokenizer_free(tok);
}

static void check_clean(ld_ctx *ctx, const char *in, const char *want) {
    char *got = NULL;
    size_t n;
    CHECK(ld_clip_clean_utf8(ctx, in, strlen(in), &got, &n) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(got && strcmp(got, want) == 0, "clean(\"%s\") = \"%s\", want \"%s\"", in, got ? got : "(null)", want);
    free(got);
}

static void check_cleaning(ld_ctx *ctx) {
    /* html.unescape, applied twice */
    check_clean(ctx, "&amp;lt;b&amp;gt;", "<b>");
    check_clean(ctx, "&amp;amp;", "&");
    check_clean(ctx, "fish &amp chips", "fish & chips");         /* legacy name without ';' */
    check_clean(ctx, "&notit;", "\xc2\xacit;");                  /* longest legacy prefix: &not + "it;" */
    check_clean(ctx, "&notin;", "\xe2\x88\x89");                 /* the full name wins */
    check_clean(ctx, "&bogus; &", "&bogus; &");                  /* unknown names stay */
    check_clean(ctx, "&#65;&#x42;&#X43;&#100", "abcd");          /* numeric, with and without ';' */
    check_clean(ctx, "&#0;", "\xef\xbf\xbd");                    /* NUL -> U+FFFD */
    check_clean(ctx, "&#x80;", "\xe2\x82\xac");                  /* windows-1252 fix-up */
    check_clean(ctx, "&#xD800;&#99999999999;", "\xef\xbf\xbd\xef\xbf\xbd");
    check_clean(ctx, "a&#1;b", "ab");                            /* invalid code points vanish */
    check_clean(ctx, "&#;&#x;&", "&#;&#x;&");
    /* whitespace and case */
    check_clean(ctx, "  A \t\n B\xc2\xa0\xe3\x80\x80 C  ", "a b c");
    check_clean(ctx, "\x1c" "x\x1cy" "\x1f", "x\x1cy");           /* strip() takes U+001C..1F, \s does not */
    check_clean(ctx, "\xc3\x89" "COLE", "\xc3\xa9" "cole");
    check_clean(ctx, "E\xcc\x81", "\xc3\xa9");                    /* NFC composes e + U+0301 */
    check_clean(ctx, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82"); /* final sigma */
    check_clean(ctx, "\xce\xa3\xce\x91", "\xcf\x83\xce\xb1");
    check_clean(ctx, "\xc4\xb0", "i\xcc\x87");                    /* U+0130 -> i + U+0307 */
    check_clean(ctx, "", "");
    /* NFC reorders combining marks before composing: U+1F88 U+0301 -> U+1F8C, lower -> U+1F84 */
    check_clean(ctx, "\xe1\xbe\x88\xcc\x81", "\xe1\xbe\x84");
    /* a NUL inside an entity-name run is not part of the name: "&amp\0b" -> "&\0b" */
    char *got = NULL;
    size_t n = 0;
    CHECK(ld_clip_clean_utf8(ctx, "a&amp\0b", 7, &got, &n) == LD_OK && n == 4 && !memcmp(got, "a&\0b", 4),
          "NUL after an entity: %zu bytes", n);
    free(got);
}

static void check_bad_input(ld_ctx *ctx, const ld_clip_tokenizer *tok) {
    int64_t ids[LD_CLIP_CONTEXT], mask[LD_CLIP_CONTEXT];
    static const struct {
        const char *bytes;
        size_t len, offset;
    } bad[] = {
        {"ab\xff", 3, 2},          {"\xc0\x80", 2, 0},         {"x\xe0\x80\x80", 4, 1}, {"\xed\xa0\x80", 3, 0},
        {"\xf4\x90\x80\x80", 4, 0}, {"abc\xe2\x82", 5, 3},      {"\x80", 1, 0},          {"ok \xc3\x28", 5, 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ld_status st = ld_clip_tokenize_n(ctx, tok, bad[i].bytes, bad[i].len, ids, mask);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad[i].offset);
        CHECK(st == LD_ERR_INVALID_ARGUMENT && strstr(ld_ctx_error(ctx), want),
              "bad UTF-8 #%zu: status %d, message \"%s\"", i, (int)st, ld_ctx_error(ctx));
    }
    /* NUL bytes are characters like any other: "a\0b" is a, NUL (byte symbol), b */
    int64_t bpe[8];
    size_t n = 0;
    CHECK(ld_clip_bpe(ctx, tok, "a\0b", 3, bpe, 8, &n) == LD_OK && n == 3, "NUL: n=%zu", n);
    size_t na = 0;
    int64_t a[2];
    CHECK(ld_clip_bpe(ctx, tok, "a", 1, a, 2, &na) == LD_OK && na == 1 && bpe[0] == a[0], "NUL: 'a' piece");
    /* special tokens anywhere: separate ids, unless a punctuation run swallows the '<|' */
    CHECK(ld_clip_bpe(ctx, tok, "<|endoftext|>x<|startoftext|>", 29, bpe, 8, &n) == LD_OK && n == 3 &&
              bpe[0] == LD_CLIP_EOS && bpe[2] == LD_CLIP_BOS,
          "inline special tokens");
    CHECK(ld_clip_bpe(ctx, tok, "<|ENDOFTEXT|>", 13, bpe, 8, &n) == LD_OK && n == 1 && bpe[0] == LD_CLIP_EOS,
          "special tokens ignore case");
    CHECK(ld_clip_bpe(ctx, tok, "!<|endoftext|>", 14, bpe, 8, &n) == LD_OK && n > 1 && bpe[0] != LD_CLIP_EOS,
          "'!<|' is one punctuation piece");
    /* long text: 10,000 characters, one word and many words; truncated with EOS last */
    size_t L = 10000;
    char *big = malloc(L + 1);
    for (size_t i = 0; i < L; i++) big[i] = (char)('a' + (i * 7) % 26);
    big[L] = 0;
    double t0 = now();
    CHECK(ld_clip_tokenize(ctx, tok, big, ids, mask) == LD_OK, "%s", ld_ctx_error(ctx));
    double t1 = now();
    CHECK(ids[0] == LD_CLIP_BOS && ids[76] == LD_CLIP_EOS && mask[76] == 1, "10k-letter word: BOS .. EOS");
    for (size_t i = 0; i < L; i++) big[i] = (i % 5 == 4) ? ' ' : (char)('a' + (i * 3) % 26);
    CHECK(ld_clip_bpe(ctx, tok, big, L, NULL, 0, &n) == LD_OK && n >= 2000, "10k chars of words: %zu ids", n);
    double t2 = now();
    CHECK(ld_clip_tokenize(ctx, tok, big, ids, mask) == LD_OK && ids[76] == LD_CLIP_EOS, "10k chars truncated");
    double t3 = now();
    printf("10,000-letter word: %.2f ms; 10,000 chars (2,000 words): full BPE %.2f ms, tokenize %.2f ms\n",
           (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3);
    free(big);
    /* every special token inside text, repeated: exactly the specials */
    char spec[1024] = "";
    for (int k = 0; k < 30; k++) strcat(spec, k % 2 ? "<|endoftext|>" : "<|startoftext|>");
    CHECK(ld_clip_tokenize(ctx, tok, spec, ids, mask) == LD_OK, "%s", ld_ctx_error(ctx));
    for (int k = 0; k < 30; k++) CHECK(ids[1 + k] == (k % 2 ? LD_CLIP_EOS : LD_CLIP_BOS), "special %d", k);
    CHECK(ids[31] == LD_CLIP_EOS && mask[31] == 1 && mask[32] == 0, "specials: mask");
}

/* Prints the best of several runs (the machine is shared; the minimum is the
 * least disturbed measurement). */
static void check_timing(ld_ctx *ctx, const char *dir) {
    double best_load = 1e9;
    ld_clip_tokenizer *tok = NULL;
    for (int r = 0; r < 5; r++) {
        ld_clip_tokenizer_free(tok);
        tok = NULL;
        double t0 = now();
        CHECK(ld_clip_tokenizer_load(ctx, dir, &tok) == LD_OK, "%s", ld_ctx_error(ctx));
        double t1 = now();
        if (t1 - t0 < best_load) best_load = t1 - t0;
    }
    if (!tok) return;
    const char *prompt =
        "a highly detailed oil painting of a koala wearing a tiny crown, sitting on a eucalyptus branch at "
        "sunset, dramatic lighting, volumetric fog, intricate fur texture, by a renaissance master, trending "
        "on artstation, 8k, sharp focus, golden hour, bokeh background, masterpiece quality, soft shadows and "
        "warm colors, wide angle lens, award winning photograph, cinematic composition, ultra realistic";
    int64_t ids[LD_CLIP_CONTEXT];
    size_t n;
    CHECK(ld_clip_bpe(ctx, tok, prompt, strlen(prompt), NULL, 0, &n) == LD_OK && n >= 75, "timing prompt: %zu", n);
    double best = 1e9;
    for (int k = 0; k < 5; k++) {
        int reps = 100;
        double t2 = now();
        for (int r = 0; r < reps; r++) ld_clip_tokenize(ctx, tok, prompt, ids, NULL);
        double t3 = now();
        if ((t3 - t2) / reps < best) best = (t3 - t2) / reps;
    }
    printf("vocab load %.1f ms (best of 5); %zu-token prompt (75 kept) %.1f us per tokenize (best of 5 x 100)\n",
           best_load * 1e3, n, best * 1e6);
    ld_clip_tokenizer_free(tok);
}

static void check_load_errors(ld_ctx *ctx, const char *td) {
    ld_clip_tokenizer *tok = (ld_clip_tokenizer *)1;
    CHECK(ld_clip_tokenizer_load(ctx, "/nonexistent-dir", &tok) == LD_ERR_IO && tok == NULL, "missing dir: %s",
          ld_ctx_error(ctx));
    const char *tmp = test_tmp_dir("tokenizer_bad");
    char path[4200], cmd[16384];
    /* a merges line with three symbols */
    snprintf(cmd, sizeof cmd, "cp %s/tokenizer/vocab.json %s/ && printf '#version: 0.2\\ni n\\na b c\\n' > %s/merges.txt",
             td, tmp, tmp);
    CHECK(system(cmd) == 0, "setup");
    CHECK(ld_clip_tokenizer_load(ctx, tmp, &tok) == LD_ERR_FORMAT && strstr(ld_ctx_error(ctx), "line 3"),
          "bad merges: %s", ld_ctx_error(ctx));
    /* a pad token missing from the vocabulary */
    snprintf(cmd, sizeof cmd, "printf '#version: 0.2\\ni n\\n' > %s/merges.txt && printf '{\"pad_token\": \"<nope>\"}' > %s/special_tokens_map.json", tmp, tmp);
    CHECK(system(cmd) == 0, "setup");
    CHECK(ld_clip_tokenizer_load(ctx, tmp, &tok) == LD_ERR_FORMAT && strstr(ld_ctx_error(ctx), "<nope>"),
          "bad pad: %s", ld_ctx_error(ctx));
    /* a small merges file still works (only 'i n' merges) */
    snprintf(path, sizeof path, "%s/special_tokens_map.json", tmp);
    remove(path);
    CHECK(ld_clip_tokenizer_load(ctx, tmp, &tok) == LD_OK, "%s", ld_ctx_error(ctx));
    if (tok) {
        int64_t ids[4];
        size_t n;
        CHECK(ld_clip_bpe(ctx, tok, "in", 2, ids, 4, &n) == LD_OK && n == 2, "two-merge tokenizer: n=%zu", n);
        ld_clip_tokenizer_free(tok);
    }
    /* a small hand-written vocabulary with JSON escapes (\u, surrogate pair, \/) */
    snprintf(path, sizeof path, "%s/merges.txt", tmp);
    FILE *f = fopen(path, "w");
    fputs("#version: 0.2\ni n</w>\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/vocab.json", tmp);
    f = fopen(path, "w");
    fprintf(f, "{ \"\\u003c|startoftext|>\": 5, \"<|endoftext|\\u003e\" :6,\"i\":0,\"n\":1,\n"
               "\"i\\u006e</w>\": 2, \"\\ud83d\\udc28\": 3, \"a\\/b\": 4 }\n");
    fclose(f);
    CHECK(ld_clip_tokenizer_load(ctx, tmp, &tok) == LD_OK, "escaped vocab: %s", ld_ctx_error(ctx));
    if (tok) {
        int64_t ids[LD_CLIP_CONTEXT];
        CHECK(ld_clip_tokenizer_vocab_size(tok) == 7, "escaped vocab size");
        CHECK(ld_clip_tokenize(ctx, tok, "in", ids, NULL) == LD_OK && ids[0] == 5 && ids[1] == 2 && ids[2] == 6 &&
                  ids[3] == 6,
              "escaped vocab: %lld %lld %lld", (long long)ids[0], (long long)ids[1], (long long)ids[2]);
        ld_clip_tokenizer_free(tok);
    }
    static const char *const bad_vocab[] = {
        "{\"a\": 1, \"a\": 2}", "{\"a\": 1.5}", "{\"a\": 1", "{\"a\": -1}", "{\"\\ud800\": 1}",
        "{\"a\": 1} x", "{\"a\" 1}", "{\"\\u0000\": 1}", "{\"a\": 99999999999}", "{\"a\\q\": 1}",
    };
    for (size_t i = 0; i < sizeof bad_vocab / sizeof bad_vocab[0]; i++) {
        f = fopen(path, "w");
        fputs(bad_vocab[i], f);
        fclose(f);
        tok = (ld_clip_tokenizer *)1;
        CHECK(ld_clip_tokenizer_load(ctx, tmp, &tok) == LD_ERR_FORMAT && tok == NULL && strstr(ld_ctx_error(ctx), "vocab.json"),
              "bad vocab %s: %s", bad_vocab[i], ld_ctx_error(ctx));
    }
    /* vocab.json not an object */
    snprintf(cmd, sizeof cmd, "printf '[1,2]' > %s/vocab.json", tmp);
    CHECK(system(cmd) == 0, "setup");
    CHECK(ld_clip_tokenizer_load(ctx, tmp, &tok) == LD_ERR_FORMAT, "vocab array: %s", ld_ctx_error(ctx));
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    check_cleaning(ctx);
    const char *td = test_testdata_dir();
    if (!td) {
        ld_ctx_free(ctx);
        return test_skip("no testdata");
    }
    char dir1[4200], dir2[4200];
    snprintf(dir1, sizeof dir1, "%s/tokenizer", td);
    snprintf(dir2, sizeof dir2, "%s/models/koala-700m-tiny/tokenizer_2", td);
    ld_clip_tokenizer *t1 = NULL, *t2 = NULL;
    CHECK(ld_clip_tokenizer_load(ctx, dir1, &t1) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_clip_tokenizer_load(ctx, dir2, &t2) == LD_OK, "%s", ld_ctx_error(ctx));
    if (t1 && t2) {
        CHECK(ld_clip_tokenizer_pad_id(t1) == LD_CLIP_EOS && ld_clip_tokenizer_pad_id(t2) == 0, "pad ids");
        CHECK(ld_clip_tokenizer_vocab_size(t1) == 49408, "vocab size");
        check_cases(ctx, td, t1, t2);
        check_bad_input(ctx, t1);
    }
    ld_clip_tokenizer_free(t1);
    ld_clip_tokenizer_free(t2);
    check_encoder_case(ctx, td, "koala-700m-tiny", "tokenizer", "koala-700m-tiny/text_encoder.safetensors");
    check_encoder_case(ctx, td, "koala-700m-tiny", "tokenizer_2", "koala-700m-tiny/text_encoder_2.safetensors");
    check_encoder_case(ctx, td, "koala-1b-tiny", "tokenizer_2", "koala-1b-tiny/text_encoder_2.safetensors");
    check_encoder_case(ctx, td, "wuerstchen-prior-tiny", "tokenizer", "wuerstchen-tiny/prior_text_encoder.safetensors");
    check_encoder_case(ctx, td, "wuerstchen-tiny", "tokenizer", "wuerstchen-tiny/decoder_text_encoder.safetensors");
    check_encoder_case(ctx, td, "stable-cascade-tiny", "tokenizer", "stable-cascade-tiny/text_encoder.safetensors");
    check_load_errors(ctx, td);
    check_timing(ctx, dir1);
    ld_ctx_free(ctx);
    return test_finish();
}
