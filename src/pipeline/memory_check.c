/* Memory estimates and the check against what is available (see memory_check.h). */
#include "pipeline/memory_check.h"

#include "io/model_folder.h"
#include "models/autoencoder_kl.h"
#include "models/unet2d.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

/* "12345", "512M", "8G": bytes; -1 when malformed. */
static double parse_size(const char *s) {
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0)) return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024.0; end++; break;
    case 'g': case 'G': mul = GIB; end++; break;
    case 't': case 'T': mul = GIB * 1024.0; end++; break;
    }
    if (*end == 'B' || *end == 'b') end++;
    return *end ? -1 : v * mul;
}

/* A number from a one-line file (cgroup); -1 when absent or "max". */
static double read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64] = "";
    double v = -1;
    if (fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3)) v = strtod(buf, NULL);
    fclose(f);
    return v;
}

ld_status ld_memory_available(ld_ctx *ctx, double *bytes, char *source, size_t source_len) {
    const char *env = getenv("LEANDIFF_MEMORY_LIMIT");
    if (env && *env) {
        double v = parse_size(env);
        if (v < 0)
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                           "LEANDIFF_MEMORY_LIMIT='%s' is not a size (bytes, or a number with K, M or G)", env);
        *bytes = v;
        snprintf(source, source_len, "LEANDIFF_MEMORY_LIMIT");
        return LD_OK;
    }
    double avail = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) avail = (double)kb * 1024.0;
        fclose(f);
    }
    snprintf(source, source_len, "MemAvailable in /proc/meminfo");
    if (avail < 0) {
        long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        avail = pages > 0 && page > 0 ? (double)pages * (double)page : -1;
        snprintf(source, source_len, "free physical memory");
    }
    /* a container's limit is lower than what the host reports */
    double max = read_number("/sys/fs/cgroup/memory.max"), cur = read_number("/sys/fs/cgroup/memory.current");
    if (max >= 0 && cur >= 0 && (avail < 0 || max - cur < avail)) {
        avail = max > cur ? max - cur : 0;
        snprintf(source, source_len, "the cgroup's memory.max");
    }
    *bytes = avail;
    return LD_OK;
}

ld_status ld_memory_check(ld_ctx *ctx, int width, int height, double need, const char *what) {
    double avail;
    char source[64];
    LD_TRY(ld_memory_available(ctx, &avail, source, sizeof source));
    if (avail < 0) return LD_OK; /* nothing to compare with */
    ld_log_info("%dx%d: about %.2f GB of activations for %s; %.2f GB available (%s)", width, height, need / GIB,
                what, avail / GIB, source);
    if (need <= avail) return LD_OK;
    return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                   "image size %dx%d needs about %.1f GB of memory for %s, but %.1f GB is available (%s): "
                   "choose a smaller size",
                   width, height, need / GIB, what, avail / GIB, source);
}

/* A model built from its config alone (a recording weight source: shapes, no data). */
static ld_status shape_only(ld_ctx *ctx, const char *dir, int unet, void **model) {
    json_t *cfg;
    LD_TRY(ld_component_config(ctx, dir, &cfg));
    ld_weights *rec;
    ld_status st = ld_weights_new_recorder(ctx, &rec);
    if (st == LD_OK) {
        st = unet ? ld_unet2d_build(ctx, dir, cfg, rec, (ld_unet2d **)model)
                  : ld_vae_build(ctx, dir, cfg, rec, (ld_vae **)model);
        if (st != LD_OK) ld_weights_free(rec);
        else if (unet) ld_unet2d_own_weights(*model); /* freed with the model */
        else ld_vae_own_weights(*model);
    }
    json_decref(cfg);
    return st;
}

ld_status ld_sdxl_activation_estimate(ld_ctx *ctx, const char *unet_dir, const char *vae_dir, int B, int h, int w,
                                      int L, int tiling, double *need) {
    ld_unet2d *u = NULL;
    ld_vae *v = NULL;
    LD_TRY(shape_only(ctx, unet_dir, 1, (void **)&u));
    ld_status st = shape_only(ctx, vae_dir, 0, (void **)&v);
    if (st == LD_OK) {
        const double unet = ld_unet2d_activation_estimate(u, B, h, w, L);
        const double vae = ld_vae_decode_estimate(v, h, w, tiling);
        const int f = ld_vae_downscale(v);
        /* the decoded image as floats and as RGB8 */
        const double image = (double)h * f * w * f * 3 * (sizeof(float) + 1);
        *need = (unet > vae ? unet : vae) + image;
        ld_log_debug("activation estimate at latent %dx%d: U-Net %.3f GB (batch %d), VAE decode %.3f GB%s", w, h,
                     unet / GIB, B, vae / GIB, tiling ? " (tiled)" : "");
    }
    ld_unet2d_free(u);
    ld_vae_free(v);
    return st;
}
