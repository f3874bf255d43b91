/* Loss-curve PNG (see loss_plot.h). */
#include "loss_plot.h"

#include "io/png.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PW 800
#define PH 400
#define MARGIN 40

static void dot(uint8_t *img, int x, int y, uint8_t v) {
    if (x < 0 || y < 0 || x >= PW || y >= PH) return;
    uint8_t *p = img + ((size_t)y * PW + x) * 3;
    if (p[0] > v) p[0] = p[1] = p[2] = v;
}

/* A line segment (DDA). */
static void line(uint8_t *img, double x0, double y0, double x1, double y1, uint8_t v) {
    const int n = (int)fmax(fabs(x1 - x0), fabs(y1 - y0)) + 1;
    for (int i = 0; i <= n; i++) {
        const double t = (double)i / n;
        dot(img, (int)lround(x0 + t * (x1 - x0)), (int)lround(y0 + t * (y1 - y0)), v);
    }
}

ld_status loss_plot_write(ld_ctx *ctx, const char *path, const double *loss, int n) {
    uint8_t *img = malloc((size_t)PW * PH * 3);
    double *smooth = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!img || !smooth) {
        free(img);
        free(smooth);
        return ld_fail(ctx, LD_ERR_NOMEM, "out of memory for the loss plot");
    }
    memset(img, 255, (size_t)PW * PH * 3);
    const int win = n / 50 > 1 ? n / 50 : 1;
    double sum = 0, top = 0;
    for (int i = 0; i < n; i++) {
        sum += isfinite(loss[i]) ? loss[i] : 0;
        if (i >= win) sum -= isfinite(loss[i - win]) ? loss[i - win] : 0;
        smooth[i] = sum / (i + 1 < win ? i + 1 : win);
        if (smooth[i] > top) top = smooth[i];
    }
    if (!(top > 0)) top = 1;
    top *= 1.5; /* room for the raw values above the mean */
    const double x0 = MARGIN, x1 = PW - MARGIN / 2, y0 = PH - MARGIN, y1 = MARGIN / 2;
    line(img, x0, y0, x1, y0, 0); /* axes */
    line(img, x0, y0, x0, y1, 0);
    for (int k = 1; k <= 4; k++) line(img, x0 - 4, y0 + (y1 - y0) * k / 4, x0, y0 + (y1 - y0) * k / 4, 0);
    const double dx = n > 1 ? (x1 - x0) / (n - 1) : 0;
    for (int pass = 0; pass < 2; pass++) {
        const double *v = pass ? smooth : loss;
        for (int i = 1; i < n; i++) {
            const double a = fmin(v[i - 1], top), b = fmin(v[i], top);
            if (!isfinite(a) || !isfinite(b)) continue;
            line(img, x0 + (i - 1) * dx, y0 + (y1 - y0) * a / top, x0 + i * dx, y0 + (y1 - y0) * b / top,
                 pass ? 0 : 190);
        }
    }
    char top_s[64], steps_s[32];
    snprintf(top_s, sizeof top_s, "%g", top);
    snprintf(steps_s, sizeof steps_s, "%d", n);
    const char *text[] = {"Title", "leandiff train: loss per step", "y_max", top_s, "steps", steps_s, NULL};
    ld_status st = ld_png_write(ctx, path, img, PW, PH, text);
    free(img);
    free(smooth);
    return st;
}
