/* Aspect-ratio buckets of `leandiff train --bucket` against kohya's
 * sd-scripts: the bucket list of make_bucket_resolutions (a plain
 * re-implementation here, and the 41 sizes kohya gives for SDXL's usual
 * 1024 / 256..2048 / 64), select_bucket's choice and resize for typical
 * photos (values from kohya's code run in Python), and the crop offsets. */
#include "test_util.h"

#include "train/train_cache.h"

#include <math.h>

/* make_bucket_resolutions, line by line: a set of (w, h), then sorted. */
static int naive_buckets(int res, int min, int max, int step, int (*out)[2]) {
    int n = 0;
    const int area = (res / step) * (res / step);
    int cand[600][2], nc = 0;
    const int side = (int)sqrt((double)area) * step;
    cand[nc][0] = side, cand[nc][1] = side, nc++;
    for (int size = min; size <= max; size += step) {
        int h = (area / (size / step)) * step;
        if (h > max) h = max;
        cand[nc][0] = size, cand[nc][1] = h, nc++;
        cand[nc][0] = h, cand[nc][1] = size, nc++;
    }
    for (int i = 0; i < nc; i++) { /* add to the set */
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= out[j][0] == cand[i][0] && out[j][1] == cand[i][1];
        if (!seen) out[n][0] = cand[i][0], out[n][1] = cand[i][1], n++;
    }
    for (int i = 0; i < n; i++) /* sorted(): tuples in order */
        for (int j = 0; j + 1 < n - i; j++)
            if (out[j][0] > out[j + 1][0] || (out[j][0] == out[j + 1][0] && out[j][1] > out[j + 1][1])) {
                int t0 = out[j][0], t1 = out[j][1];
                out[j][0] = out[j + 1][0], out[j][1] = out[j + 1][1];
                out[j + 1][0] = t0, out[j + 1][1] = t1;
            }
    return n;
}

int main(void) {
    const int cases[][4] = {{1024, 256, 2048, 64}, {512, 128, 1024, 64}, {64, 32, 128, 32}, {768, 192, 1536, 32},
                            {1024, 512, 1024, 128}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int a[256][2], b[600][2];
        const int n = ld_train_buckets(cases[k][0], cases[k][1], cases[k][2], cases[k][3], a, 256);
        const int m = naive_buckets(cases[k][0], cases[k][1], cases[k][2], cases[k][3], b);
        int same = n == m;
        for (int i = 0; same && i < n; i++) same = a[i][0] == b[i][0] && a[i][1] == b[i][1];
        CHECK(same, "buckets %d/%d..%d/%d: %d sizes, the re-implementation %d", cases[k][0], cases[k][1], cases[k][2],
              cases[k][3], n, m);
    }
    int wh[256][2];
    const int n = ld_train_buckets(1024, 256, 2048, 64, wh, 256);
    CHECK(n == 41, "SDXL buckets: %d sizes (kohya: 41)", n);
    const int known[][2] = {{1024, 1024}, {896, 1152}, {1152, 896}, {832, 1216}, {1216, 832}, {768, 1344},
                            {1344, 768}, {640, 1536}, {1536, 640}, {256, 2048}, {2048, 512}, {512, 1856}};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        int found = 0;
        for (int i = 0; i < n; i++) found |= wh[i][0] == known[k][0] && wh[i][1] == known[k][1];
        CHECK(found, "bucket %dx%d is in the list", known[k][0], known[k][1]);
    }
    /* select_bucket, from kohya's code: image size -> bucket, resized size */
    const int sel[][6] = {{1920, 1080, 1344, 768, 1365, 768}, {1080, 1920, 768, 1344, 768, 1365},
                          {1000, 1000, 1024, 1024, 1024, 1024}, {3000, 1000, 1728, 576, 1728, 576},
                          {640, 480, 1152, 896, 1195, 896}, {333, 777, 640, 1536, 658, 1536}};
    for (size_t k = 0; k < sizeof sel / sizeof sel[0]; k++) {
        int Wr, Hr;
        const int b = ld_train_bucket_of(sel[k][0], sel[k][1], (const int(*)[2])wh, n, &Wr, &Hr);
        CHECK(wh[b][0] == sel[k][2] && wh[b][1] == sel[k][3] && Wr == sel[k][4] && Hr == sel[k][5],
              "%dx%d -> bucket %dx%d resized %dx%d (kohya: %dx%d, %dx%d)", sel[k][0], sel[k][1], wh[b][0], wh[b][1], Wr,
              Hr, sel[k][2], sel[k][3], sel[k][4], sel[k][5]);
    }
    /* the crop: centred as kohya's (resized - bucket) // 2; mirrored, the offset of the mirrored image */
    ld_ctx *ctx = ld_ctx_new();
    const int W = 48, H = 27, Wr = 40, Hr = 23, tw = 32, th = 16;
    uint8_t *img = malloc((size_t)W * H * 3), out[32 * 16 * 3], flipped[32 * 16 * 3];
    for (int i = 0; i < W * H * 3; i++) img[i] = (uint8_t)(i * 37 % 251);
    int top, left, ftop, fleft;
    CHECK(ld_train_crop_to(ctx, img, W, H, Wr, Hr, tw, th, 0, 0, 1, out, &top, &left) == LD_OK, "crop");
    CHECK(top == 3 && left == 4, "centre crop at (%d, %d), kohya (3, 4)", top, left);
    CHECK(ld_train_crop_to(ctx, img, W, H, Wr, Hr, tw, th, 0, 1, 1, flipped, &ftop, &fleft) == LD_OK, "flipped crop");
    int mirrored = ftop == 3 && fleft == Wr - tw - 4;
    for (int y = 0; mirrored && y < th; y++)
        for (int x = 0; x < tw; x++)
            for (int c = 0; c < 3; c++) mirrored &= out[(y * tw + x) * 3 + c] == flipped[(y * tw + tw - 1 - x) * 3 + c];
    CHECK(mirrored, "the flipped crop is the mirror of the crop");
    for (int r = 0; r < 20; r++) {
        CHECK(ld_train_crop_to(ctx, img, W, H, Wr, Hr, tw, th, 1, 0, (uint64_t)r, out, &top, &left) == LD_OK, "random");
        CHECK(top >= 0 && top <= Hr - th && left >= 0 && left <= Wr - tw, "random crop inside (%d, %d)", top, left);
    }
    free(img);
    ld_ctx_free(ctx);
    return test_finish();
}
