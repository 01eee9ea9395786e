/* test_gemv_packed.c — batch-1 products on packed weights (src/gemv_packed.c)
 * and the batch-1 LSTM that uses them (ops/lstm.c):
 *   - fp32 panels give the bits of dagflow's AVX-512 GEMV at awkward shapes
 *     and column ranges;
 *   - bf16 panels are within bf16's bound of a double reference, and really
 *     bf16 (the whole-array error is at least 2^-12);
 *   - the cache repacks after the variable changes;
 *   - the batch-1 LSTM on fp32 panels equals the unpacked path bit for bit,
 *     on bf16 panels is close, not equal, the same on 1 and 2 threads, and
 *     follows an assigned w_rec.
 * Without AVX-512 / AVX512_BF16 the tests skip, saying which feature is
 * missing (DF_TEST_NO_BF16=1 acts out a CPU without AVX512_BF16). */
#include <math.h>
#include "helpers.h"
#include "../ops/lstm_kernels.h"

#define SKIP_WITHOUT(p)                                                                              \
    do {                                                                                             \
        if (getenv("DF_TEST_NO_BF16")) df_gemm_bf16_pretend_missing(true);                           \
        if ((p) == DF_PRECISION_FP32 && !__builtin_cpu_supports("avx512f"))                           \
            cr_skip_test("fp32 panels not checked: this CPU lacks avx512f");                         \
        if ((p) == DF_PRECISION_BF16 && df_precision_check(DF_PRECISION_BF16) != DF_OK)               \
            cr_skip_test("bf16 panels not checked: %s", df_last_error());                             \
    } while (0)

static float *random_floats(uint64_t seed, int64_t n)
{
    df_rng rng;
    df_rng_seed(&rng, seed);
    return rand_buf(&rng, n, -1.0f, 1.0f);
}

static void *packed(df_precision p, int64_t K, int64_t n, const float *W, int64_t ldw)
{
    void *panels = df_aligned_alloc(df_gemv_panels_bytes(p, K, n) + 64);
    cr_assert_eq(df_gemv_panels_pack(p, K, n, W, ldw, panels), DF_OK, "%s", df_last_error());
    return panels;
}

static const int64_t shapes[][2] = {{1, 1}, {7, 17}, {33, 100}, {1000, 130}, {256, 64}, {2, 16}, {4099, 20}};

Test(gemv_packed, fp32_panels_equal_the_avx512_gemv)
{
    SKIP_WITHOUT(DF_PRECISION_FP32);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t K = shapes[s][0], n = shapes[s][1], ldw = n + 3;
        float *W = random_floats(11 + s, K * ldw), *x = random_floats(29 + s, K);
        float *ref = calloc((size_t)n, sizeof *ref), *y = calloc((size_t)n, sizeof *y);
        df_sgemm_path(DF_GEMM_AVX512, false, false, 1, n, K, 1.0f, x, K, W, ldw, 0.0f, ref, n);
        void *panels = packed(DF_PRECISION_FP32, K, n, W, ldw);
        for (int64_t j0 = 0; j0 < n; j0 += 16) {          /* the range in two parts, then whole */
            cr_assert_eq(df_gemv_panels(DF_PRECISION_FP32, K, n, x, panels, j0, n, y), DF_OK, "%s", df_last_error());
            if (j0) cr_assert_eq(df_gemv_panels(DF_PRECISION_FP32, K, n, x, panels, 0, j0, y), DF_OK);
            for (int64_t j = 0; j < n; j++)
                cr_assert(memcmp(&y[j], &ref[j], sizeof *y) == 0, "K %lld n %lld from %lld: column %lld %.9g vs %.9g",
                          (long long)K, (long long)n, (long long)j0, (long long)j, (double)y[j], (double)ref[j]);
        }
        df_free(panels), free(W), free(x), free(ref), free(y);
    }
}

/* |y - exact| <= (2^-7 + K 2^-24) sum_k |x w| per column, and over the array
 * a relative error in [2^-12, 2^-8]: bf16 was used, and used well. */
Test(gemv_packed, bf16_panels_within_bf16_bounds)
{
    SKIP_WITHOUT(DF_PRECISION_BF16);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t K = shapes[s][0], n = shapes[s][1], ldw = n;
        float *W = random_floats(41 + s, K * ldw), *x = random_floats(43 + s, K), *y = calloc((size_t)n, sizeof *y);
        void *panels = packed(DF_PRECISION_BF16, K, n, W, ldw);
        cr_assert_eq(df_gemv_panels(DF_PRECISION_BF16, K, n, x, panels, 0, n, y), DF_OK, "%s", df_last_error());
        double err2 = 0, ref2 = 0;
        for (int64_t j = 0; j < n; j++) {
            double exact = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) exact += (double)x[k] * W[k * ldw + j], mag += fabs((double)x[k] * W[k * ldw + j]);
            cr_assert_leq(fabs(y[j] - exact), (0x1p-7 + (double)K * 0x1p-24) * mag + 1e-30,
                          "K %lld n %lld column %lld: %.9g vs exact %.9g", (long long)K, (long long)n, (long long)j,
                          (double)y[j], exact);
            err2 += (y[j] - exact) * (y[j] - exact), ref2 += exact * exact;
        }
        if (K * n >= 1000) {
            const double rel = sqrt(err2 / ref2);
            cr_expect(rel >= 0x1p-12 && rel <= 0x1p-8, "K %lld n %lld: relative error %g not bf16's", (long long)K,
                      (long long)n, rel);
        }
        float *part = calloc((size_t)n, sizeof *part);   /* a range's bits are the whole's */
        for (int64_t j0 = 0; j0 < n; j0 += 16)
            df_gemv_panels(DF_PRECISION_BF16, K, n, x, panels, j0, j0 + 16 < n ? j0 + 16 : n, part);
        cr_expect(memcmp(part, y, (size_t)n * sizeof *y) == 0, "K %lld n %lld: ranges differ", (long long)K, (long long)n);
        df_free(panels), free(W), free(x), free(y), free(part);
    }
}

Test(gemv_packed, bf16_refused_naming_the_feature)
{
    df_gemm_bf16_pretend_missing(true);
    float W[4] = {1, 2, 3, 4}, panels[64];
    df_status st = df_gemv_panels_pack(DF_PRECISION_BF16, 2, 2, W, 2, panels);
    const char *msg = df_last_error();
    df_gemm_bf16_pretend_missing(false);
    cr_expect_eq(st, DF_ERR_UNSUPPORTED);
    cr_expect(strstr(msg, "avx512_bf16") != NULL, "the message names the feature: %s", msg);
}

Test(gemv_packed, bad_column_range_refused)
{
    SKIP_WITHOUT(DF_PRECISION_FP32);
    float W[64] = {0}, x[2] = {0}, y[32];
    void *panels = packed(DF_PRECISION_FP32, 2, 32, W, 32);
    cr_expect_eq(df_gemv_panels(DF_PRECISION_FP32, 2, 32, x, panels, 8, 32, y), DF_ERR_ARG, "j0 not a block start");
    cr_expect_eq(df_gemv_panels(DF_PRECISION_FP32, 2, 32, x, panels, 0, 33, y), DF_ERR_ARG, "j1 past n");
    df_free(panels);
}

Test(gemv_packed, cache_repacks_a_new_version)
{
    SKIP_WITHOUT(DF_PRECISION_FP32);
    df_variable *v = df_variable_new("w", DF_F32, 2, SHAPE(8, 32), df_init_constant(1.0f), NULL);
    float *W = df_variable_tensor(v).data, x[8] = {1, 1, 1, 1, 1, 1, 1, 1}, y[32];
    const void *a = df_gemv_panels_cached(DF_PRECISION_FP32, W, 8, 32, 32, df_variable_version(v));
    cr_assert_not_null(a, "%s", df_last_error());
    cr_expect_eq(df_gemv_panels_cached(DF_PRECISION_FP32, W, 8, 32, 32, df_variable_version(v)), a, "a hit");
    df_variable_init(v, df_init_constant(2.0f), NULL);
    const void *b = df_gemv_panels_cached(DF_PRECISION_FP32, W, 8, 32, 32, df_variable_version(v));
    cr_assert_not_null(b);
    df_gemv_panels(DF_PRECISION_FP32, 8, 32, x, b, 0, 32, y);
    cr_expect_eq(y[0], 16.0f, "the new values (2 x 8), got %g", (double)y[0]);
    df_variable_free(v);
}

/* ---------------------------------------------------------- batch-1 LSTM */

enum { T = 3, H = 264 };                 /* two threads' slices, the last block partial */

typedef struct lstm_case {
    df_variable *w, *h0, *c0;
    float *xproj;
} lstm_case;

static lstm_case lstm_case_new(void)
{
    lstm_case c = {df_variable_new("w_rec", DF_F32, 2, SHAPE(H, 4 * H), df_init_zeros(), NULL),
                   df_variable_new("h0", DF_F32, 2, SHAPE(1, H), df_init_zeros(), NULL),
                   df_variable_new("c0", DF_F32, 2, SHAPE(1, H), df_init_zeros(), NULL), random_floats(5, T * 4 * H)};
    float *w = random_floats(7, H * 4 * H), *h = random_floats(8, H);
    df_tensor tw = F32(w, H, 4 * H), th = F32(h, 1, H);
    df_variable_assign(c.w, &tw), df_variable_assign(c.h0, &th), df_variable_assign(c.c0, &th);
    free(w), free(h);
    return c;
}

static void lstm_case_free(lstm_case *c)
{
    df_variable_free(c->w), df_variable_free(c->h0), df_variable_free(c->c0), free(c->xproj);
}

static df_graph *lstm_graph(const lstm_case *c)
{
    df_graph *g = df_graph_new();
    df_graph_output(g, df_lstm(g, PH(g, 1, T, 4 * H), df_var(g, c->w), df_var(g, c->h0), df_var(g, c->c0)));
    return g;
}

/* h (1,T,H) of a fresh graph at the given precision and threads. */
static void run_lstm(const lstm_case *c, df_precision p, int threads, float *out)
{
    df_set_num_threads(threads);
    cr_assert_eq(df_set_precision(p), DF_OK, "%s", df_last_error());
    df_graph *g = lstm_graph(c);
    df_tensor x = F32(c->xproj, 1, T, 4 * H), y = run1(g, &x, 1);
    memcpy(out, y.data, sizeof(float) * T * H);
    df_graph_free(g);
    df_set_precision(DF_PRECISION_FP32);
    df_set_num_threads(0);
}

Test(gemv_packed, lstm_b1_fp32_panels_equal_the_unpacked_path)
{
    SKIP_WITHOUT(DF_PRECISION_FP32);
    lstm_case c = lstm_case_new();
    float packed_h[T * H], plain_h[T * H];
    for (int threads = 1; threads <= 2; threads++) {
        lstm_force_paths(-1, -1, -1);
        run_lstm(&c, DF_PRECISION_FP32, threads, packed_h);
        lstm_force_paths(1, -1, -1);                      /* no packing: the GEMV on w_rec in place */
        run_lstm(&c, DF_PRECISION_FP32, threads, plain_h);
        lstm_force_paths(-1, -1, -1);
        for (int i = 0; i < T * H; i++)
            cr_assert(memcmp(&packed_h[i], &plain_h[i], sizeof(float)) == 0, "%d threads: h[%d] %.9g vs %.9g", threads,
                      i, (double)packed_h[i], (double)plain_h[i]);
    }
    lstm_case_free(&c);
}

Test(gemv_packed, lstm_b1_bf16_close_deterministic_and_follows_assignments)
{
    SKIP_WITHOUT(DF_PRECISION_BF16);
    lstm_case c = lstm_case_new();
    float fp32[T * H], bf16[T * H], bf16_2[T * H];
    run_lstm(&c, DF_PRECISION_FP32, 1, fp32);
    run_lstm(&c, DF_PRECISION_BF16, 1, bf16);
    run_lstm(&c, DF_PRECISION_BF16, 2, bf16_2);
    cr_expect(memcmp(bf16, bf16_2, sizeof bf16) == 0, "bf16 differs between 1 and 2 threads");
    double max_err = 0;
    for (int i = 0; i < T * H; i++) max_err = fmax(max_err, fabs(bf16[i] - fp32[i]));
    cr_expect(max_err > 0, "bf16 gave fp32's bits: the bf16 panels were not used");
    cr_expect_leq(max_err, 0.05, "bf16 h is %g from fp32's (|h| < 1)", max_err);

    /* a graph run before and after w_rec changes sees the new weights:
     * close to fp32's on them, and not its own earlier output */
    df_set_precision(DF_PRECISION_BF16);
    df_graph *g = lstm_graph(&c);
    df_tensor x = F32(c.xproj, 1, T, 4 * H);
    float before[T * H], after[T * H], fp32_after[T * H];
    memcpy(before, run1(g, &x, 1).data, sizeof before);
    float *w2 = random_floats(99, H * 4 * H);
    df_tensor tw = F32(w2, H, 4 * H);
    df_variable_assign(c.w, &tw);
    memcpy(after, run1(g, &x, 1).data, sizeof after);
    df_graph_free(g);
    run_lstm(&c, DF_PRECISION_FP32, 1, fp32_after);
    double err_after = 0;
    for (int i = 0; i < T * H; i++) err_after = fmax(err_after, fabs(after[i] - fp32_after[i]));
    cr_expect(memcmp(after, before, sizeof after) != 0, "after df_variable_assign the bf16 LSTM used stale panels");
    cr_expect_leq(err_after, 0.05, "after df_variable_assign: %g from fp32 on the new weights", err_after);
    free(w2);
    lstm_case_free(&c);
}
