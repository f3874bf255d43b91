/* `leandiff tokenize -m MODEL_DIR [--tokenizer SUBFOLDER] [--mask] TEXT...`:
 * prints the 77 CLIP token ids the pipeline would feed the text encoder
 * (space-separated), and with --mask the attention mask on a second line.
 * MODEL_DIR is a diffusers model folder (SUBFOLDER defaults to "tokenizer")
 * or a tokenizer folder itself. Several TEXT arguments are joined with
 * spaces; TEXT "-" reads the text from standard input. */
#include "commands.h"
#include "io/fileio.h"
#include "text/clip_tokenizer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: leandiff tokenize -m MODEL_DIR [--tokenizer SUBFOLDER] [--mask] TEXT...\n"
               "Prints the 77 token ids (BOS, up to 75 BPE ids, EOS, padding) on one line;\n"
               "--mask adds the attention mask (1 through the EOS) on a second line.\n"
               "SUBFOLDER defaults to 'tokenizer' (SDXL's second one is 'tokenizer_2'); a MODEL_DIR\n"
               "holding vocab.json is used as the tokenizer folder itself. TEXT '-' reads stdin.\n");
}

static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    *len = n;
    return buf;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"tokenizer", required_argument, 0, 't'},
                                         {"mask", no_argument, 0, 'k'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *sub = NULL;
    int want_mask = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:kh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 't': sub = optarg; break;
        case 'k': want_mask = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || optind >= argc) {
        usage(stderr);
        return 2;
    }
    /* the text: the arguments joined by spaces, or stdin */
    char *text = NULL;
    size_t len = 0;
    if (optind == argc - 1 && !strcmp(argv[optind], "-")) {
        text = read_stdin(&len);
    } else {
        for (int i = optind; i < argc; i++) len += strlen(argv[i]) + 1;
        text = malloc(len + 1);
        if (text) {
            text[0] = 0;
            for (int i = optind; i < argc; i++) {
                if (i > optind) strcat(text, " ");
                strcat(text, argv[i]);
            }
            len = strlen(text);
        }
    }
    if (!text) {
        fprintf(stderr, "leandiff: out of memory reading the text\n");
        return 1;
    }
    char dir[4200], vocab[4300];
    snprintf(vocab, sizeof vocab, "%s/vocab.json", model);
    if (!sub && ld_file_exists(vocab))
        snprintf(dir, sizeof dir, "%s", model);
    else
        snprintf(dir, sizeof dir, "%s/%s", model, sub ? sub : "tokenizer");

    ld_ctx *ctx = ld_ctx_new();
    ld_clip_tokenizer *tok = NULL;
    int64_t ids[LD_CLIP_CONTEXT], mask[LD_CLIP_CONTEXT];
    int rc = 1;
    if (ld_clip_tokenizer_load(ctx, dir, &tok) == LD_OK && ld_clip_tokenize_n(ctx, tok, text, len, ids, mask) == LD_OK) {
        for (int i = 0; i < LD_CLIP_CONTEXT; i++) printf(i ? " %lld" : "%lld", (long long)ids[i]);
        printf("\n");
        if (want_mask) {
            for (int i = 0; i < LD_CLIP_CONTEXT; i++) printf(i ? " %lld" : "%lld", (long long)mask[i]);
            printf("\n");
        }
        rc = 0;
    } else {
        fprintf(stderr, "leandiff: %s\n", ld_ctx_error(ctx));
    }
    ld_clip_tokenizer_free(tok);
    ld_ctx_free(ctx);
    free(text);
    return rc;
}
