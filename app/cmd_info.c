/* `leandiff info IMAGE.png`: prints the generation parameters stored in the
 * PNG's "parameters" text chunk (A1111 infotext, as `generate` writes it).
 * --all prints every text chunk as "key: value". Exit status 1 with a
 * message for a file that is not a PNG or has no parameters. */
#include "commands.h"
#include "io/png.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: leandiff info [--all] IMAGE.png\n"
               "  prints the generation parameters (A1111 'parameters' text chunk) of IMAGE.png\n"
               "  --all   print every text chunk as 'key: value'\n");
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int all = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--all")) {
            all = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "leandiff info: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "leandiff info: only one image, got '%s' and '%s'\n", path, argv[i]);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    ld_ctx *ctx = ld_ctx_new();
    ld_png png;
    if (ld_png_read(ctx, path, 0, &png) != LD_OK) {
        fprintf(stderr, "leandiff info: %s\n", ld_ctx_error(ctx));
        ld_ctx_free(ctx);
        return 1;
    }
    int rc = 0;
    if (all) {
        for (int i = 0; i < png.ntext; i++) printf("%s: %s\n", png.keys[i], png.values[i]);
        if (!png.ntext) {
            fprintf(stderr, "leandiff info: %s has no text chunks\n", path);
            rc = 1;
        }
    } else {
        const char *p = ld_png_text(&png, "parameters");
        if (p) {
            printf("%s\n", p);
        } else {
            fprintf(stderr, "leandiff info: %s (%dx%d) has no 'parameters' text chunk (not written by leandiff or A1111)\n",
                    path, png.width, png.height);
            rc = 1;
        }
    }
    ld_png_free(&png);
    ld_ctx_free(ctx);
    return rc;
}
