/* A1111 prompt syntax (src/text/prompt_syntax.h): the parser against the
 * examples of A1111's parse_prompt_attention docstring (weights compared
 * exactly, as A1111's Python floats), BREAK, escapes and malformed weights;
 * the chunker on testdata's CLIP tokenizer (75-token chunks, the comma
 * backtrack, BREAK, padding after EOS, weights per token) against a plain
 * re-derivation from ld_clip_bpe; the emphasis against a naive double
 * computation. */
#include "text/prompt_syntax.h"
#include "test_util.h"

typedef struct {
    const char *text;
    double weight;
} want_piece;

static void expect(ld_ctx *ctx, const char *prompt, const want_piece *want, size_t n) {
    ld_prompt_pieces pp;
    if (ld_prompt_parse(ctx, prompt, &pp) != LD_OK) {
        CHECK(0, "%s: %s", prompt, ld_ctx_error(ctx));
        return;
    }
    int ok = pp.n == n;
    for (size_t i = 0; ok && i < n; i++) ok = !strcmp(pp.p[i].text, want[i].text) && pp.p[i].weight == want[i].weight;
    CHECK(ok, "parse '%s'", prompt);
    printf("%s '%s' ->", ok ? "ok  " : "FAIL", prompt);
    for (size_t i = 0; i < pp.n; i++) printf(" ['%s', %.17g]", pp.p[i].text, pp.p[i].weight);
    printf("\n");
    ld_prompt_pieces_free(&pp);
}

#define EXPECT(ctx, prompt, ...)                                              \
    do {                                                                      \
        const want_piece w_[] = {__VA_ARGS__};                                \
        expect(ctx, prompt, w_, sizeof w_ / sizeof w_[0]);                    \
    } while (0)

static void check_parser(ld_ctx *ctx) {
    /* A1111 modules/prompt_parser.py, parse_prompt_attention's docstring */
    EXPECT(ctx, "normal text", {"normal text", 1.0});
    EXPECT(ctx, "an (important) word", {"an ", 1.0}, {"important", 1.1}, {" word", 1.0});
    EXPECT(ctx, "(unbalanced", {"unbalanced", 1.1});
    EXPECT(ctx, "\\(literal\\]", {"(literal]", 1.0});
    EXPECT(ctx, "(unnecessary)(parens)", {"unnecessaryparens", 1.1});
    EXPECT(ctx, "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", {"a ", 1.0}, {"house", 1.5730000000000004},
           {" ", 1.1}, {"on", 1.0}, {" a ", 1.1}, {"hill", 0.55}, {", sun, ", 1.1}, {"sky", 1.4641000000000006},
           {".", 1.1});
    /* more of A1111's rules */
    EXPECT(ctx, "", {"", 1.0});
    EXPECT(ctx, "[faded]", {"faded", 1 / 1.1});
    EXPECT(ctx, "((a)) [[b]]", {"a", 1.1 * 1.1}, {" ", 1.0}, {"b", 1 / 1.1 / 1.1});
    EXPECT(ctx, "(a: 1.5 )", {"a", 1.5});
    EXPECT(ctx, "a:1.5) b) c]", {"a:1.5) b) c]", 1.0});
    EXPECT(ctx, "x \\\\ y", {"x \\ y", 1.0});
    EXPECT(ctx, "cat BREAK dog", {"cat", 1.0}, {"BREAK", -1.0}, {"dog", 1.0});
    EXPECT(ctx, "BREAKFAST at BREAK", {"BREAKFAST at", 1.0}, {"BREAK", -1.0}, {"", 1.0});
    EXPECT(ctx, "(red BREAK car)", {"red", 1.1}, {"BREAK", -1.1}, {"car", 1.1});
    EXPECT(ctx, "(a:-0.5)", {"a", -0.5});
    ld_prompt_pieces pp;
    ld_status st = ld_prompt_parse(ctx, "(a:1.2.3)", &pp);
    CHECK(st != LD_OK && strstr(ld_ctx_error(ctx), "1.2.3"), "malformed weight named: %s", ld_ctx_error(ctx));
    if (st == LD_OK) ld_prompt_pieces_free(&pp);
    else printf("ok   '(a:1.2.3)' refused: %s\n", ld_ctx_error(ctx));
}

/* Appends the BPE ids of text with weight w to ids/mult (the reference). */
static size_t bpe(ld_ctx *ctx, const ld_clip_tokenizer *tok, const char *text, int64_t *ids, size_t cap) {
    size_t n = 0;
    CHECK(ld_clip_bpe(ctx, tok, text, strlen(text), ids, cap, &n) == LD_OK, "bpe %s", text);
    return n;
}

static void check_chunks(ld_ctx *ctx, const char *td) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tokenizer", td);
    ld_clip_tokenizer *tok = NULL;
    if (ld_clip_tokenizer_load(ctx, dir, &tok) != LD_OK) {
        CHECK(0, "%s", ld_ctx_error(ctx));
        return;
    }
    const int64_t pad = ld_clip_tokenizer_pad_id(tok);
    int64_t word[8], comma[8];
    size_t nw = bpe(ctx, tok, "koala", word, 8), ncm = bpe(ctx, tok, ",", comma, 8);
    CHECK(nw == 1 && ncm == 1, "one token for 'koala' and ','");

    /* short prompt: one chunk equal to the plain tokenization, weights per piece */
    ld_prompt_chunks ch;
    int64_t plain[LD_CLIP_CONTEXT];
    CHECK(ld_prompt_chunk_text(ctx, tok, "a koala", &ch) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ld_clip_tokenize(ctx, tok, "a koala", plain, NULL) == LD_OK, "tokenize");
    CHECK(ch.n == 1 && !memcmp(ch.ids, plain, sizeof plain), "a short prompt chunks like the plain tokenizer");
    ld_prompt_chunks_free(&ch);
    CHECK(ld_prompt_chunk_text(ctx, tok, "a (koala:1.5)", &ch) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ch.n == 1 && ch.mult[0] == 1 && ch.mult[1] == 1 && ch.mult[2] == 1.5f && ch.mult[3] == 1, "weights per token");
    ld_prompt_chunks_free(&ch);

    /* 100 words: 75 + 25, the second chunk EOS then pad */
    char text[4096] = "";
    for (int i = 0; i < 100; i++) strcat(text, "koala ");
    CHECK(ld_prompt_chunk_text(ctx, tok, text, &ch) == LD_OK, "%s", ld_ctx_error(ctx));
    int ok = ch.n == 2 && ch.tokens == 100 && ch.ids[0] == LD_CLIP_BOS && ch.ids[76] == LD_CLIP_EOS &&
             ch.ids[77] == LD_CLIP_BOS && ch.ids[77 + 26] == LD_CLIP_EOS && ch.ids[77 + 27] == pad &&
             ch.ids[77 + 76] == pad && ch.ids[77 + 25] == word[0];
    CHECK(ok, "100 tokens: chunks %d, tokens %zu", ch.n, ch.tokens);
    printf("%s 100 tokens -> 2 chunks (75 + 25), EOS then pad %lld\n", ok ? "ok  " : "FAIL", (long long)pad);
    ld_prompt_chunks_free(&ch);

    /* comma backtrack: 70 words, a comma, 10 words: the chunk breaks after the comma */
    text[0] = 0;
    for (int i = 0; i < 70; i++) strcat(text, "koala ");
    strcat(text, ", ");
    for (int i = 0; i < 10; i++) strcat(text, "koala ");
    CHECK(ld_prompt_chunk_text(ctx, tok, text, &ch) == LD_OK, "%s", ld_ctx_error(ctx));
    ok = ch.n == 2 && ch.ids[71] == comma[0] && ch.ids[72] == LD_CLIP_EOS && ch.ids[73] == pad &&
         ch.ids[77 + 1] == word[0] && ch.ids[77 + 11] == LD_CLIP_EOS;
    CHECK(ok, "comma backtrack");
    printf("%s comma backtrack: chunk 1 ends after the comma (71 tokens), chunk 2 holds the last 10\n",
           ok ? "ok  " : "FAIL");
    ld_prompt_chunks_free(&ch);

    /* BREAK starts a chunk; an empty prompt is one chunk of BOS, EOS, pad */
    CHECK(ld_prompt_chunk_text(ctx, tok, "koala BREAK koala", &ch) == LD_OK, "%s", ld_ctx_error(ctx));
    ok = ch.n == 2 && ch.ids[1] == word[0] && ch.ids[2] == LD_CLIP_EOS && ch.ids[78] == word[0];
    CHECK(ok, "BREAK");
    ld_prompt_chunks_free(&ch);
    CHECK(ld_prompt_chunk_text(ctx, tok, "(koala BREAK koala)", &ch) == LD_OK, "%s", ld_ctx_error(ctx));
    CHECK(ch.n == 1 && ch.tokens == 3 && ch.mult[2] == (float)-1.1, "BREAK in brackets is a word of weight -1.1 (A1111)");
    ld_prompt_chunks_free(&ch);
    CHECK(ld_prompt_chunk_text(ctx, tok, "", &ch) == LD_OK && ch.n == 1 && ch.ids[1] == LD_CLIP_EOS && ch.ids[2] == pad,
          "empty prompt");
    ld_prompt_chunks pad_ch;
    CHECK(ld_prompt_chunk_text(ctx, tok, "", &pad_ch) == LD_OK, "pad chunk");
    CHECK(ld_prompt_chunks_pad(ctx, &ch, 3, &pad_ch) == LD_OK && ch.n == 3 && ch.ids[2 * 77 + 1] == LD_CLIP_EOS,
          "padding to 3 chunks");
    ld_prompt_chunks_free(&pad_ch);
    ld_prompt_chunks_free(&ch);

    /* too long */
    size_t big = 100000;
    char *huge = malloc(big * 6 + 1);
    huge[0] = 0;
    for (size_t i = 0; i < big; i++) memcpy(huge + i * 6, "koala ", 7);
    ld_status st = ld_prompt_chunk_text(ctx, tok, huge, &ch);
    CHECK(st != LD_OK && strstr(ld_ctx_error(ctx), "longer than"), "a 100000-word prompt refused: %s",
          ld_ctx_error(ctx));
    free(huge);
    ld_clip_tokenizer_free(tok);
}

static void check_emphasis(void) {
    enum { D = 5, N = 2 };
    static float h[N * LD_CLIP_CONTEXT * D], ref[N * LD_CLIP_CONTEXT * D], mult[N * LD_CLIP_CONTEXT];
    test_fill(h, N * LD_CLIP_CONTEXT * D, 7);
    for (int i = 0; i < N * LD_CLIP_CONTEXT * D; i++) h[i] += 0.3f; /* a mean away from 0 */
    test_fill(mult, N * LD_CLIP_CONTEXT, 8);
    for (int i = 0; i < N * LD_CLIP_CONTEXT; i++) mult[i] = 1.0f + 0.5f * mult[i];
    for (int c = 0; c < N; c++) {
        double before = 0, after = 0;
        const size_t o = (size_t)c * LD_CLIP_CONTEXT * D;
        for (int t = 0; t < LD_CLIP_CONTEXT; t++)
            for (int d = 0; d < D; d++) {
                before += h[o + t * D + d];
                after += (double)h[o + t * D + d] * mult[c * LD_CLIP_CONTEXT + t];
            }
        for (int t = 0; t < LD_CLIP_CONTEXT; t++)
            for (int d = 0; d < D; d++)
                ref[o + t * D + d] = (float)((double)h[o + t * D + d] * mult[c * LD_CLIP_CONTEXT + t] * before / after);
    }
    ld_prompt_emphasis(h, mult, N, D);
    test_close("emphasis (weights, chunk mean restored)", h, ref, N * LD_CLIP_CONTEXT * D, 1e-5);
}

int main(void) {
    ld_ctx *ctx = ld_ctx_new();
    check_parser(ctx);
    check_emphasis();
    const char *td = test_testdata_dir();
    if (td) check_chunks(ctx, td);
    else printf("SKIP chunking: no testdata\n");
    ld_ctx_free(ctx);
    return test_finish();
}
