/* KOALA's distillation step against diffusers (testdata README,
 * "Distillation cases"): ld_distill_replay with the tiny SDXL-layout teacher
 * (koala-700m-tiny's pipeline with sdxl-teacher-tiny's U-Net), then every
 * dumped tensor against train/distill-sdxl-teacher-tiny.safetensors: the
 * initialised student exactly, noisy, both predictions, the three losses
 * and every self-attention feature as modules, every gradient within 1e-3
 * relative L2, every parameter's change after two AdamW steps within 1e-2. */
#include "test_replay_util.h"

#include "distill/distill_replay.h"

#include <dirent.h>
#include <unistd.h>

/* The teacher pipeline: the tiny KOALA folder's components, sdxl-teacher-tiny's unet. */
static int make_teacher(const char *td, const char *dir) {
    char src[4400], dst[4800];
    snprintf(src, sizeof src, "%s/models/koala-700m-tiny", td);
    DIR *d = opendir(src);
    if (!d) return 0;
    char real[4400];
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "unet")) continue;
        snprintf(dst, sizeof dst, "%.4000s/%.255s", dir, e->d_name);
        snprintf(real, sizeof real, "%.4000s/%.255s", src, e->d_name);
        char *abs = realpath(real, NULL);
        unlink(dst);
        int ok = abs && symlink(abs, dst) == 0;
        free(abs);
        if (!ok) {
            closedir(d);
            return 0;
        }
    }
    closedir(d);
    snprintf(real, sizeof real, "%s/models/sdxl-teacher-tiny/unet", td);
    snprintf(dst, sizeof dst, "%s/unet", dir);
    char *abs = realpath(real, NULL);
    unlink(dst);
    int ok = abs && symlink(abs, dst) == 0;
    free(abs);
    return ok;
}

int main(void) {
    const char *td = test_testdata_dir();
    if (!td) return test_skip("no testdata");
    char casep[4400], dump[4500], teacher[4400];
    snprintf(casep, sizeof casep, "%s/train/distill-sdxl-teacher-tiny.safetensors", td);
    snprintf(teacher, sizeof teacher, "%s", test_tmp_dir("distill_replay/teacher"));
    snprintf(dump, sizeof dump, "%s/../replay.safetensors", teacher);
    CHECK(make_teacher(td, teacher), "teacher pipeline folder");
    ld_ctx *ctx = ld_ctx_new();
    ld_status st = ld_distill_replay(ctx, teacher, NULL, casep, dump);
    CHECK(st == LD_OK, "replay: %s", ld_ctx_error(ctx));
    if (st != LD_OK) return test_finish();
    ld_safetensors *ref, *got;
    CHECK(ld_safetensors_open(ctx, casep, &ref) == LD_OK, "open case");
    CHECK(ld_safetensors_open(ctx, dump, &got) == LD_OK, "open dump: %s", ld_ctx_error(ctx));
    replay_compare(ref, got, NULL, "student_init.");
    ld_safetensors_close(ref);
    ld_safetensors_close(got);
    ld_ctx_free(ctx);
    return test_finish();
}
