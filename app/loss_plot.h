/* A loss-curve PNG for `leandiff train`: the per-step losses (grey) and
 * their running mean over ~2 % of the run (black) against the step, on a
 * white 800 x 400 canvas with the y range from 0 to the largest smoothed
 * value. Written atomically (ld_png_write). */
#ifndef LD_APP_LOSS_PLOT_H
#define LD_APP_LOSS_PLOT_H

#include "leandiff.h"

ld_status loss_plot_write(ld_ctx *ctx, const char *path, const double *loss, int n);

#endif
