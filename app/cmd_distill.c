/* `leandiff distill`: KOALA's knowledge distillation (docs/distill.md).
 *
 *   --teacher DIR --student koala-700m|koala-1b|CONFIG.json --out DIR --init-only
 *       the student U-Net made from an SDXL-layout teacher (src/distill/
 *       student.h), initialised with the teacher's weights: a teacher pipeline
 *       folder gives a pipeline folder `leandiff generate` runs (unet/ is the
 *       student, the other components link to the teacher's), a U-Net folder
 *       a U-Net folder;
 *   --teacher DIR --student ... --out DIR --data DATA [train flags]
 *       the same, then `leandiff train -m OUT --teacher DIR` on DATA (the
 *       distillation loss; with --resume the existing OUT continues);
 *   --teacher DIR [--student CONFIG.json] --replay CASE --dump OUT
 *       a reference distillation case (src/distill/distill_replay.h). */
#include "cli_util.h"
#include "commands.h"
#include "mpi_comm.h"

#include "distill/distill_replay.h"
#include "distill/student.h"
#include "io/fileio.h"
#include "io/json.h"
#include "io/weights.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: leandiff distill --teacher DIR --student koala-700m|koala-1b|CONFIG.json --out DIR --init-only\n"
               "                        [--variant fp16|bf16]\n"
               "       leandiff distill --teacher DIR --student ... --out DIR --data DATA [leandiff train flags]\n"
               "       leandiff distill --teacher DIR --student ... --out DIR --prompts FILE [--gen-steps N ...]\n"
               "       leandiff distill --teacher DIR [--student CONFIG.json] --replay CASE --dump OUT\n"
               "Builds KOALA's student U-Net from an SDXL-layout teacher (one ResNet/Transformer pair per down\n"
               "block, two per up block, shallower deepest Transformer stacks; koala-700m also drops the mid block)\n"
               "and writes it initialised with the teacher's weights. DIR is a pipeline folder (the output is a\n"
               "pipeline whose other components link to the teacher's) or a U-Net folder (the output is a U-Net\n"
               "folder). CONFIG.json is any student U-Net config the teacher can give. With --data the student is\n"
               "then trained against the teacher (task + output + self-attention feature losses; every flag of\n"
               "`leandiff train`, e.g. --steps, --lr, --lambda-feat, --teacher-precision, --save-every, --resume).\n"
               "With --prompts instead of --data the distillation is data-free: the teacher pipeline generates\n"
               "the latents of each prompt (--gen-steps, --gen-cfg, --gen-sampler) and the student learns on them.\n"
               "Under mpirun -np N the training is data-parallel (process 0 writes the student first; see\n"
               "`leandiff train --help`). --replay runs a reference distillation case (the student config from\n"
               "the case unless --student is given).\n");
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

/* The student (run()); before a training run under mpirun, process 0 writes
 * it while the others wait. Returns the exit code. */
static int make_student(ld_ctx *ctx, const char *teacher, const char *student, const char *out, const char *variant,
                        int then_train) {
    ld_train_comm *comm = NULL;
    if (then_train && mpi_comm_start(ctx, &comm) != LD_OK) return 1;
    if (!comm || comm->size == 1) return run(ctx, teacher, student, out, variant) == LD_OK ? 0 : 1;
    if (comm->rank == 0 && run(ctx, teacher, student, out, variant) != LD_OK) {
        fprintf(stderr, "leandiff distill: %s\n", ld_ctx_error(ctx));
        mpi_comm_abort(1); /* the others wait for the student */
        return 1;
    }
    return comm->barrier(ctx, comm->user) == LD_OK ? 0 : 1;
}

int cmd_distill(int argc, char **argv) {
    const char *teacher = NULL, *student = NULL, *out = NULL, *variant = NULL, *replay = NULL, *dump = NULL;
    int init_only = 0, data = 0, resume = 0, nfwd = 0;
    char **fwd = calloc((size_t)argc + 8, sizeof *fwd);
    if (!fwd) return 1;
    /* distill's own flags; every other argument goes to `leandiff train` */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--teacher") ? &teacher : !strcmp(a, "--student") ? &student
                         : !strcmp(a, "--out") ? &out : !strcmp(a, "--variant") ? &variant
                         : !strcmp(a, "--replay") ? &replay : !strcmp(a, "--dump") ? &dump : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "leandiff distill: %s needs a value\n", a);
                free(fwd);
                return 2;
            }
            *dst = argv[++i];
        } else if (!strcmp(a, "--init-only")) {
            init_only = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(fwd);
            return 0;
        } else {
            data |= !strcmp(a, "--data") || !strcmp(a, "--prompts");
            resume |= !strcmp(a, "--resume");
            fwd[nfwd++] = argv[i];
        }
    }
    int rc = 2;
    ld_ctx *ctx = ld_ctx_new();
    if (replay || dump) {
        if (!teacher || !replay || !dump || out || nfwd || init_only) {
            fprintf(stderr, "leandiff distill: a replay is --teacher DIR [--student CONFIG.json] --replay CASE --dump OUT\n");
        } else if (ld_distill_replay(ctx, teacher, student, replay, dump) != LD_OK) {
            fprintf(stderr, "leandiff distill: %s\n", ld_ctx_error(ctx));
            rc = 1;
        } else {
            printf("%s: replay of %s written\n", dump, replay);
            rc = 0;
        }
    } else if (!teacher || !student || !out || (init_only && nfwd) || (!init_only && !data)) {
        usage(stderr);
    } else if (!resume && (rc = make_student(ctx, teacher, student, out, variant, !init_only)) != 0) {
        fprintf(stderr, "leandiff distill: %s\n", ld_ctx_error(ctx));
    } else if (!init_only) {
        /* train the student pipeline just written in --out against the teacher */
        char **targv = calloc((size_t)nfwd + 8, sizeof *targv);
        int n = 0;
        if (targv) {
            targv[n++] = "train", targv[n++] = "-m", targv[n++] = (char *)out, targv[n++] = "--teacher";
            targv[n++] = (char *)teacher, targv[n++] = "--out", targv[n++] = (char *)out;
            for (int i = 0; i < nfwd; i++) targv[n++] = fwd[i];
            rc = cmd_train(n, targv);
            free(targv);
        } else {
            rc = 1;
        }
    }
    ld_ctx_free(ctx);
    free(fwd);
    return rc;
}
