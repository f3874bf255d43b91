/* leandiff command-line entry: dispatches to the subcommands in app/cmd_*.c. */
#include "commands.h"
#include "leandiff.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"generate", cmd_generate, "make an image from a text prompt (KOALA/SDXL, Wuerstchen, Stable Cascade)"},
    {"bench", cmd_bench, "time one model component and compare with the CPU peak (GFLOP/s)"},
    {"info", cmd_info, "print the generation parameters stored in a PNG"},
    {"inspect", cmd_inspect, "print the metadata and tensors of a .safetensors file"},
    {"init-random", cmd_init_random, "write a model component with random weights of the real shapes"},
    {"serve", cmd_serve, "HTTP server: web page, A1111 / OpenAI / job APIs (one model, loaded once)"},
    {"worker", cmd_worker, "take jobs from a shared Redis queue (docs/scale-out.md)"},
    {"batch", cmd_batch, "submit a prompts file to the Redis queue, write each image when done"},
    {"tokenize", cmd_tokenize, "print the CLIP token ids (and mask) of a prompt"},
    {"train", cmd_train, "fine-tune an SDXL-family U-Net (full or LoRA) on captioned images"},
    {"distill", cmd_distill, "make KOALA's student U-Net from an SDXL-layout teacher (--init-only)"},
};

static void usage(FILE *f) {
    fprintf(f, "leandiff %s: text-to-image for KOALA, Wuerstchen and Stable Cascade on the CPU\n\n", ld_version());
    fprintf(f, "usage: leandiff COMMAND [options]   (leandiff COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("leandiff %s\n", ld_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "leandiff: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
