/* `leandiff distill --teacher DIR --student koala-700m|koala-1b|CONFIG.json
 *                  --out DIR --init-only [--variant V]`
 *
 * Makes KOALA's student U-Net from an SDXL-layout teacher (src/distill/
 * student.h) and writes it initialised with the teacher's weights. A teacher
 * pipeline folder (model_index.json + unet/) gives a pipeline folder that
 * `leandiff generate` runs: unet/ is the student, model_index.json is copied
 * and the other components are symbolic links to the teacher's. A teacher
 * U-Net folder gives a U-Net folder. The distillation training itself (the
 * step with task, output and feature losses) is not in this version;
 * --init-only says so explicitly. */
#include "cli_util.h"
#include "commands.h"

#include "distill/student.h"
#include "io/fileio.h"
#include "io/json.h"
#include "io/weights.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: leandiff distill --teacher DIR --student koala-700m|koala-1b|CONFIG.json --out DIR --init-only\n"
               "                        [--variant fp16|bf16]\n"
               "Builds KOALA's student U-Net from an SDXL-layout teacher (one ResNet/Transformer pair per down\n"
               "block, two per up block, shallower deepest Transformer stacks; koala-700m also drops the mid block)\n"
               "and writes it initialised with the teacher's weights. DIR is a pipeline folder (the output is a\n"
               "pipeline whose other components link to the teacher's) or a U-Net folder (the output is a U-Net\n"
               "folder). CONFIG.json is any student U-Net config the teacher can give. --init-only is required:\n"
               "the distillation training step is not in this version.\n");
}

/* The output folder must be new or empty: nothing of someone else's is replaced. */
static ld_status check_out_dir(ld_ctx *ctx, const char *out) {
    DIR *d = opendir(out);
    if (!d) {
        if (errno == ENOENT) return LD_OK;
        return ld_fail(ctx, LD_ERR_IO, "--out %s: %s", out, strerror(errno));
    }
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty ? LD_OK : ld_fail(ctx, LD_ERR_IO, "--out %s exists and is not empty; give a new folder", out);
}

/* Links every entry of the teacher pipeline but unet/ and model_index.json
 * into out (absolute targets), and copies model_index.json. */
static ld_status link_pipeline(ld_ctx *ctx, const char *teacher, const char *out) {
    char path[PATH_MAX], dst[PATH_MAX], real[PATH_MAX];
    char *index = NULL;
    size_t len = 0;
    LD_TRY(ld_path_join(ctx, path, sizeof path, teacher, "model_index.json"));
    LD_TRY(ld_read_file(ctx, path, &index, &len, 1 << 20));
    LD_TRY(ld_path_join(ctx, dst, sizeof dst, out, "model_index.json"));
    ld_status st = ld_write_file(ctx, dst, index, len);
    free(index);
    LD_TRY(st);
    DIR *d = opendir(teacher);
    if (!d) return ld_fail(ctx, LD_ERR_IO, "%s: %s", teacher, strerror(errno));
    struct dirent *e;
    while (st == LD_OK && (e = readdir(d))) {
        const char *n = e->d_name;
        if (n[0] == '.' || !strcmp(n, "unet") || !strcmp(n, "model_index.json")) continue;
        st = ld_path_join(ctx, path, sizeof path, teacher, n);
        if (st == LD_OK && !ld_dir_exists(path)) continue; /* component folders only */
        if (st == LD_OK) st = ld_path_join(ctx, dst, sizeof dst, out, n);
        if (st == LD_OK && !realpath(path, real)) st = ld_fail(ctx, LD_ERR_IO, "%s: %s", path, strerror(errno));
        if (st == LD_OK && symlink(real, dst) != 0)
            st = ld_fail(ctx, LD_ERR_IO, "cannot link %s to %s: %s", dst, real, strerror(errno));
    }
    closedir(d);
    return st;
}

static ld_status run(ld_ctx *ctx, const char *teacher, const char *student, const char *out, const char *variant) {
    char unet_dir[PATH_MAX], path[PATH_MAX], out_unet[PATH_MAX];
    LD_TRY(ld_path_join(ctx, unet_dir, sizeof unet_dir, teacher, "unet/config.json"));
    const int pipeline = ld_file_exists(unet_dir);
    if (pipeline) LD_TRY(ld_path_join(ctx, unet_dir, sizeof unet_dir, teacher, "unet"));
    else snprintf(unet_dir, sizeof unet_dir, "%s", teacher);
    LD_TRY(ld_path_join(ctx, path, sizeof path, unet_dir, "config.json"));
    if (!ld_file_exists(path))
        return ld_fail(ctx, LD_ERR_IO, "--teacher %s: neither a pipeline folder (unet/config.json) nor a U-Net folder "
                                       "(config.json)", teacher);
    LD_TRY(check_out_dir(ctx, out));

    json_t *tcfg = NULL, *scfg = NULL;
    ld_weights *tw = NULL;
    char swhere[PATH_MAX + 32];
    ld_status st = ld_json_load_file(ctx, path, &tcfg);
    if (st == LD_OK && ld_student_is_preset(student)) {
        snprintf(swhere, sizeof swhere, "student %s", student);
        st = ld_student_config_preset(ctx, path, tcfg, student, &scfg);
    } else if (st == LD_OK) {
        snprintf(swhere, sizeof swhere, "%s", student);
        if (!ld_file_exists(student))
            st = ld_fail(ctx, LD_ERR_INVALID_ARGUMENT, "--student %s: neither koala-700m, koala-1b nor a config file",
                         student);
        else st = ld_json_load_file(ctx, student, &scfg);
    }
    if (st == LD_OK) st = ld_student_check(ctx, path, tcfg, swhere, scfg);
    if (st == LD_OK) st = ld_weights_open_dir(ctx, unet_dir, variant, &tw);
    if (st == LD_OK) st = ld_output_dir(ctx, out);
    if (st == LD_OK && pipeline) st = ld_path_join(ctx, out_unet, sizeof out_unet, out, "unet");
    else if (st == LD_OK) snprintf(out_unet, sizeof out_unet, "%s", out);
    if (st == LD_OK) st = ld_output_dir(ctx, out_unet);
    if (st == LD_OK) st = ld_path_join(ctx, path, sizeof path, out_unet, "diffusion_pytorch_model.safetensors");
    if (st == LD_OK) st = ld_student_init_write(ctx, unet_dir, tcfg, tw, swhere, scfg, path);
    if (st == LD_OK) st = ld_path_join(ctx, path, sizeof path, out_unet, "config.json");
    if (st == LD_OK) st = ld_json_write_file(ctx, path, scfg);
    if (st == LD_OK && pipeline) st = link_pipeline(ctx, teacher, out);
    if (st == LD_OK)
        fprintf(stderr, "wrote %s: %s initialised from %s%s\n", out, swhere, unet_dir,
                pipeline ? " (other components linked to the teacher's)" : "");
    ld_weights_free(tw);
    json_decref(tcfg);
    json_decref(scfg);
    return st;
}

int cmd_distill(int argc, char **argv) {
    static const struct option opts[] = {{"teacher", required_argument, 0, 'T'}, {"student", required_argument, 0, 'S'},
                                         {"out", required_argument, 0, 'o'},     {"init-only", no_argument, 0, 'I'},
                                         {"variant", required_argument, 0, 'v'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *teacher = NULL, *student = NULL, *out = NULL, *variant = NULL;
    int init_only = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "T:S:o:v:h", opts, NULL)) != -1) {
        switch (c) {
        case 'T': teacher = optarg; break;
        case 'S': student = optarg; break;
        case 'o': out = optarg; break;
        case 'I': init_only = 1; break;
        case 'v': variant = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!teacher || !student || !out || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!init_only) {
        fprintf(stderr, "leandiff distill: only --init-only is available in this version (the distillation training "
                        "step is not built yet)\n");
        return 2;
    }
    ld_ctx *ctx = ld_ctx_new();
    if (!ctx) {
        fprintf(stderr, "leandiff distill: out of memory\n");
        return 1;
    }
    ld_status st = run(ctx, teacher, student, out, variant);
    if (st != LD_OK) fprintf(stderr, "leandiff distill: %s\n", ld_ctx_error(ctx));
    ld_ctx_free(ctx);
    return st == LD_OK ? 0 : 1;
}
