/* Tests of ld_attention against textbook attention written plainly here (the
 * full score matrix, softmax in double): several heads and batches, packed
 * and strided (qkv-interleaved) layouts, causal, additive masks with batch /
 * query strides and broadcasting, key padding, fully masked queries (zeros),
 * odd sizes and size 1, the SIMD kernel against the portable one, and 1 vs 2
 * threads bitwise. */
#include "base/cpu.h"
#include "test_ops_util.h"

#define TOL 1e-5

static void ref_attention(float *out, int64_t ldo, const float *q, int64_t ldq, const float *k, int64_t ldk,
                          const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                          const ld_attn_params *p) {
    double *sc = malloc((size_t)Lk * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Lq; i++) {
                double mx = -INFINITY;
                for (int64_t j = 0; j < Lk; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < D; d++)
                        s += (double)q[(b * Lq + i) * ldq + h * D + d] * k[(b * Lk + j) * ldk + h * D + d];
                    s *= p->scale;
                    if (p->mask) s += p->mask[b * p->mask_b + i * p->mask_q + j];
                    if (p->causal && j > i) s = -INFINITY;
                    if (p->key_keep && !p->key_keep[b * Lk + j]) s = -INFINITY;
                    sc[j] = s;
                    if (s > mx) mx = s;
                }
                float *o = out + (b * Lq + i) * ldo + h * D;
                if (mx == -INFINITY) {
                    for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
                    continue;
                }
                double sum = 0;
                for (int64_t j = 0; j < Lk; j++) sum += sc[j] = exp(sc[j] - mx);
                for (int64_t d = 0; d < D; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Lk; j++) acc += sc[j] / sum * v[(b * Lk + j) * ldv + h * D + d];
                    o[d] = (float)acc;
                }
            }
    free(sc);
}

typedef struct {
    const char *name;
    int64_t B, H, Lq, Lk, D;
    int interleaved; /* q, k, v columns of one [B*L, 3*H*D] buffer (needs Lq == Lk) */
    int causal, mask_kind, keep_kind;
} attn_case;

static void run_case(const attn_case *c) {
    int64_t HD = c->H * c->D;
    int64_t ldq = c->interleaved ? 3 * HD : HD, ldk = ldq, ldv = ldq, ldo = HD + 3; /* padded output rows */
    float *qb, *kb, *vb, *qkv = NULL;
    if (c->interleaved) {
        qkv = tw_alloc(c->B * c->Lq * 3 * HD);
        test_fill(qkv, c->B * c->Lq * 3 * HD, 1);
        for (int64_t i = 0; i < c->B * c->Lq * 3 * HD; i++) qkv[i] *= 2.0f;
        qb = qkv;
        kb = qkv + HD;
        vb = qkv + 2 * HD;
    } else {
        qb = tw_alloc(c->B * c->Lq * HD);
        kb = tw_alloc(c->B * c->Lk * HD);
        vb = tw_alloc(c->B * c->Lk * HD);
        test_fill(qb, c->B * c->Lq * HD, 2);
        test_fill(kb, c->B * c->Lk * HD, 3);
        test_fill(vb, c->B * c->Lk * HD, 4);
        for (int64_t i = 0; i < c->B * c->Lq * HD; i++) qb[i] *= 2.0f; /* peaky softmax */
    }
    ld_attn_params p = {1.0f / sqrtf((float)c->D), c->causal, NULL, 0, 0, NULL};
    float *mask = NULL;
    uint8_t *keep = NULL;
    if (c->mask_kind == 1) { /* full [B, Lq, Lk] */
        mask = tw_alloc(c->B * c->Lq * c->Lk);
        test_fill(mask, c->B * c->Lq * c->Lk, 5);
        for (int64_t i = 0; i < c->B * c->Lq * c->Lk; i++) mask[i] = mask[i] < -0.8f ? -INFINITY : mask[i] * 3.0f;
        /* query 1 of batch 0 sees nothing */
        if (c->Lq > 1)
            for (int64_t j = 0; j < c->Lk; j++) mask[c->Lk + j] = -INFINITY;
        p.mask = mask;
        p.mask_b = c->Lq * c->Lk;
        p.mask_q = c->Lk;
    } else if (c->mask_kind == 2) { /* [1, 1, Lk] broadcast over batch and queries */
        mask = tw_alloc(c->Lk);
        test_fill(mask, c->Lk, 6);
        p.mask = mask;
    }
    if (c->keep_kind) {
        keep = calloc((size_t)(c->B * c->Lk), 1);
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t j = 0; j < c->Lk; j++) keep[b * c->Lk + j] = j < c->Lk - 3 * b - 1 || j == 0;
        if (c->keep_kind == 2) memset(keep + (c->B - 1) * c->Lk, 0, (size_t)c->Lk); /* last batch: all padding */
        p.key_keep = keep;
    }
    int64_t no = c->B * c->Lq * ldo;
    float *out = tw_alloc(no), *ref = tw_alloc(no), *o1 = tw_alloc(no), *op = tw_alloc(no);
    for (int64_t i = 0; i < no; i++) out[i] = ref[i] = o1[i] = op[i] = 0.25f; /* row padding must survive */
    ref_attention(ref, ldo, qb, ldq, kb, ldk, vb, ldv, c->B, c->H, c->Lq, c->Lk, c->D, &p);
    omp_set_num_threads(2);
    ld_attention(out, ldo, qb, ldq, kb, ldk, vb, ldv, c->B, c->H, c->Lq, c->Lk, c->D, &p);
    char what[200];
    snprintf(what, sizeof what, "attention %s B%lld H%lld Lq%lld Lk%lld D%lld", c->name, (long long)c->B,
             (long long)c->H, (long long)c->Lq, (long long)c->Lk, (long long)c->D);
    test_close(what, out, ref, no, TOL);
    omp_set_num_threads(1);
    ld_attention(o1, ldo, qb, ldq, kb, ldk, vb, ldv, c->B, c->H, c->Lq, c->Lk, c->D, &p);
    omp_set_num_threads(2);
    CHECK(tw_same(out, o1, no), "attention thread invariance: %s", what);
    /* in slices of 32 queries with cancel checks between: bit for bit the same */
    for (int64_t i = 0; i < no; i++) o1[i] = 0.25f;
    CHECK(ld_attention_checked(NULL, "test", 1, o1, ldo, qb, ldq, kb, ldk, vb, ldv, c->B, c->H, c->Lq, c->Lk, c->D,
                               &p) == LD_OK && tw_same(out, o1, no),
          "sliced attention (ld_attention_checked) differs: %s", what);
    ld_cpu_level_t level = ld_cpu_level(); /* the path in force (LEANDIFF_CPU) */
    ld_cpu_force(LD_CPU_PORTABLE);
    ld_attention(op, ldo, qb, ldq, kb, ldk, vb, ldv, c->B, c->H, c->Lq, c->Lk, c->D, &p);
    ld_cpu_force(level);
    snprintf(what + strlen(what), sizeof what - strlen(what), " (portable kernel)");
    test_close(what, op, ref, no, TOL);
    if (c->keep_kind == 2) { /* fully padded batch gives exact zeros */
        int zeros = 1;
        for (int64_t i = 0; i < c->Lq; i++)
            for (int64_t d = 0; d < HD; d++) zeros &= out[((c->B - 1) * c->Lq + i) * ldo + d] == 0.0f;
        CHECK(zeros, "fully padded batch is zero");
    }
    free(out);
    free(ref);
    free(o1);
    free(op);
    free(mask);
    free(keep);
    if (qkv) {
        free(qkv);
    } else {
        free(qb);
        free(kb);
        free(vb);
    }
}

static int stop_on_second_poll(void *user) { return ++*(int *)user >= 2; }

/* a cancel request between slices stops the attention with LD_ERR_CANCELLED */
static void cancel_case(void) {
    const int64_t L = 200, D = 16;
    float *q = tw_alloc(L * D), *o = tw_alloc(L * D);
    test_fill(q, L * D, 9);
    ld_ctx *ctx = ld_ctx_new();
    int polls = 0;
    ctx->cancel = stop_on_second_poll;
    ctx->cancel_user = &polls;
    ld_attn_params p = {.scale = 0.25f};
    ld_status st = ld_attention_checked(ctx, "attention", 1, o, D, q, D, q, D, q, D, 1, 1, L, L, D, &p);
    CHECK(st == LD_ERR_CANCELLED && polls == 2, "attention cancel: %s after %d polls", ld_status_name(st), polls);
    CHECK(strstr(ld_ctx_error(ctx), "cancelled during the attention") != NULL, "message: %s", ld_ctx_error(ctx));
    ld_ctx_free(ctx);
    free(q);
    free(o);
}

int main(void) {
    cancel_case();
    const attn_case cases[] = {
        {"plain", 2, 3, 70, 130, 16, 0, 0, 0, 0},
        {"size1", 1, 1, 1, 1, 1, 0, 0, 0, 0},
        {"one key", 1, 2, 5, 1, 8, 0, 0, 0, 0},
        {"odd D", 1, 2, 67, 67, 80, 1, 0, 0, 0},
        {"causal", 2, 2, 67, 67, 24, 1, 1, 0, 0},
        {"causal multi-block", 1, 1, 200, 200, 8, 0, 1, 0, 0},
        {"full mask", 2, 2, 33, 90, 12, 0, 0, 1, 0},
        {"broadcast mask", 2, 1, 9, 77, 64, 0, 0, 2, 0},
        {"key padding", 3, 2, 20, 77, 32, 0, 0, 0, 1},
        {"all keys padded", 2, 2, 20, 77, 32, 0, 0, 0, 2},
        {"mask+padding+causal", 2, 2, 70, 70, 8, 0, 1, 1, 1},
        {"wide head", 1, 1, 40, 150, 512, 0, 0, 0, 0},
        {"cross-attn", 1, 4, 130, 77, 64, 0, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    return test_finish();
}
