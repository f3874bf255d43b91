/* `leandiff bench --products N` (see bench_products.h). */
#include "bench_products.h"

#include "base/flops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* "24h 576x653x64" for attention (h = batch x heads), "1152x1024x4608" else;
 * "other shapes" for the entry that sums the shapes past the table's size. */
static void shape_name(const ld_flops_shape *s, char *buf, size_t size) {
    if (s->cat == LD_FLOPS_NCAT)
        snprintf(buf, size, "other shapes");
    else if (s->cat == LD_FLOPS_ATTENTION)
        snprintf(buf, size, "%" PRId64 "h %" PRId64 "x%" PRId64 "x%" PRId64, s->h, s->m, s->n, s->k);
    else
        snprintf(buf, size, "%" PRId64 "x%" PRId64 "x%" PRId64, s->m, s->n, s->k);
}

json_t *bench_products_report(int top, int nruns, double eval_seconds, int want_json) {
    if (top <= 0 || nruns <= 0) return NULL;
    ld_flops_shape *e = malloc(sizeof *e * (size_t)top);
    if (!e) return NULL;
    const int all = ld_flops_shapes_get(e, top), n = all < top ? all : top;
    printf("products     top %d of %d shapes by time, per evaluation (mean of %d timed run%s, %.3f s)\n", n, all,
           nruns, nruns == 1 ? "" : "s", eval_seconds);
    printf("             %-12s %-22s %8s %9s %6s %9s\n", "op", "M x N x K", "calls", "seconds", "share", "GFLOP/s");
    json_t *arr = want_json ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        char name[96];
        shape_name(&e[i], name, sizeof name);
        const double calls = (double)e[i].calls / nruns, secs = (double)e[i].ns * 1e-9 / nruns;
        const double gflop = (double)e[i].flops * 1e-9 / nruns;
        const char *op = e[i].cat == LD_FLOPS_NCAT ? "other" : ld_flops_cat_name(e[i].cat);
        printf("             %-12s %-22s %8.1f %9.4f %5.1f%% %9.2f\n", op, name, calls, secs,
               eval_seconds > 0 ? 100 * secs / eval_seconds : 0, secs > 0 ? gflop / secs : 0);
        if (arr)
            json_array_append_new(arr, json_pack("{s:s,s:I,s:I,s:I,s:I,s:f,s:f,s:f}", "op", op, "h",
                                                 (json_int_t)e[i].h, "m", (json_int_t)e[i].m, "n", (json_int_t)e[i].n,
                                                 "k", (json_int_t)e[i].k, "calls", calls, "seconds", secs, "gflop",
                                                 gflop));
    }
    free(e);
    return arr;
}
