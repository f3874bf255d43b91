/* The per-shape split of `leandiff bench --products N`: the N shapes
 * (products, convolutions, attention) that took the most time in the timed
 * runs, per evaluation, from base/flops.h's shape table. */
#ifndef LD_APP_BENCH_PRODUCTS_H
#define LD_APP_BENCH_PRODUCTS_H

#include <jansson.h>

/* Prints the top shapes; the table holds nruns evaluations of eval_seconds
 * each (mean). With want_json, also returns them as a JSON array (the
 * caller's reference), else NULL. */
json_t *bench_products_report(int top, int nruns, double eval_seconds, int want_json);

#endif
