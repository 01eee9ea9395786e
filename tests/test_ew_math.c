/* test_ew_math.c — the vectorisable df_expf and df_erff of ops/elementwise.h
 * against glibc's expf and erff over dense grids, their special values, and
 * the kernels that use them: a vectorised loop and its scalar tail give the
 * bits of the scalar formula at every length, unfused and fused; and the
 * row pieces of softmax, log_softmax and the cross-entropy (ops/common.h).
 *
 * Measured over every float (not only the grids below): df_expf is within
 * 1 ulp of expf on [-104.5, 89.5] (normal and subnormal results), df_erff
 * within 2 ulp of erff on [-7, 7]. The grids take every 31st float, so that
 * the suite stays fast; the bounds asserted are those measured. */
#include "helpers.h"
#include <stdint.h>
#include "../ops/elementwise.h"
#include "../ops/common.h"

/* Floats as integers in the order of their values, so that a difference of
 * two is their distance in ulps (0 between +0 and -0). */
static int64_t float_order(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? -(int64_t)(i & 0x7fffffff) : i;
}

static int64_t ulps_apart(float a, float b)
{
    int64_t d = float_order(a) - float_order(b);
    return d < 0 ? -d : d;
}

typedef struct {
    int64_t max_ulps;
    float worst_x;
    int64_t points;
} ulp_scan;

/* The largest ulp distance of f from ref over every `stride`-th float in [lo, hi]. */
static ulp_scan scan_ulps(float (*f)(float), float (*ref)(float), float lo, float hi, int stride)
{
    ulp_scan s = {0, lo, 0};
    for (int64_t k = float_order(lo); k <= float_order(hi); k += stride) {
        int32_t bits = k < 0 ? (int32_t)((-k) | 0x80000000u) : (int32_t)k;
        float x;
        memcpy(&x, &bits, sizeof x);
        int64_t u = ulps_apart(f(x), ref(x));
        if (u > s.max_ulps) s.max_ulps = u, s.worst_x = x;
        s.points++;
    }
    return s;
}

static float df_expf_fn(float x) { return df_expf(x); }
static float df_erff_fn(float x) { return df_erff(x); }
static float libm_expf(float x) { return expf(x); }
static float libm_erff(float x) { return erff(x); }

Test(ew_math, expf_within_1_ulp_of_libm)
{
    ulp_scan s = scan_ulps(df_expf_fn, libm_expf, -104.5f, 89.5f, 31);
    cr_expect_gt(s.points, 20000000, "%lld points", (long long)s.points);
    cr_expect_leq(s.max_ulps, 1, "df_expf is %lld ulp from expf at %.9g", (long long)s.max_ulps, s.worst_x);
}

Test(ew_math, erff_within_2_ulp_of_libm)
{
    ulp_scan s = scan_ulps(df_erff_fn, libm_erff, -7.0f, 7.0f, 31);
    cr_expect_gt(s.points, 20000000, "%lld points", (long long)s.points);
    cr_expect_leq(s.max_ulps, 2, "df_erff is %lld ulp from erff at %.9g", (long long)s.max_ulps, s.worst_x);
}

Test(ew_math, special_values)
{
    cr_expect_eq(df_expf(0.0f), 1.0f);
    cr_expect_eq(df_expf(-INFINITY), 0.0f);
    cr_expect(isinf(df_expf(INFINITY)) && df_expf(INFINITY) > 0);
    cr_expect(isinf(df_expf(89.0f)), "e^89 overflows, got %g", df_expf(89.0f));
    cr_expect_eq(df_expf(-104.0f), 0.0f);
    cr_expect(isnan(df_expf(NAN)));
    cr_expect_eq(df_erff(0.0f), 0.0f);
    cr_expect(signbit(df_erff(-0.0f)), "erf(-0) is -0");
    cr_expect_eq(df_erff(INFINITY), 1.0f);
    cr_expect_eq(df_erff(-INFINITY), -1.0f);
    cr_expect_eq(df_erff(1e30f), 1.0f);
    cr_expect(isnan(df_erff(NAN)));
    cr_expect(isnan(df_erff(-NAN)));
}

/* ------------------------------------------- vector loops and scalar tails */

/* The formulas one element at a time, never vectorised: the reference bits. */
__attribute__((optimize("no-tree-vectorize"))) static void scalar_reference(int which, const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        switch (which) {
        case 0: y[i] = df_ew_exp(x[i]); break;
        case 1: y[i] = df_ew_erf(x[i]); break;
        case 2: y[i] = df_ew_gelu(x[i]); break;
        case 3: y[i] = df_ew_sigmoid(x[i]); break;
        default: y[i] = df_ew_mul(df_ew_erf(x[i]), df_ew_exp(df_ew_neg(x[i]))); break;   /* the fused chain */
        }
    }
}

static df_node *build(int which, df_graph *g, df_node *x)
{
    switch (which) {
    case 0: return df_exp(g, x);
    case 1: return df_erf(g, x);
    case 2: return df_gelu(g, x);
    case 3: return df_sigmoid(g, x);
    default: return df_mul(g, df_erf(g, x), df_exp(g, df_neg(g, x)));
    }
}

static const char *const built_names[] = {"exp", "erf", "gelu", "sigmoid", "erf(x) * exp(-x), fused"};

/* Runs the op on n inputs spread over [-5, 5] with some in both branches of
 * erf; every output must be the scalar formula's bits. */
static void expect_scalar_bits(int which, int64_t n)
{
    df_graph *g = df_graph_new();
    bool fused = which == 4;
    df_graph_set_passes(g, fused ? DF_PASS_FUSE : 0);
    df_node *x = PH(g, n);
    df_graph_output(g, build(which, g, x));
    float *xv = malloc(n * sizeof *xv), *want = malloc(n * sizeof *want);
    for (int64_t i = 0; i < n; i++) xv[i] = -5.0f + 10.0f * (float)((i * 7919) % 1000) / 997.0f;
    scalar_reference(which, xv, want, n);
    df_tensor in = F32(xv, n), out = run1(g, &in, 1);
    const float *got = out.data;
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0) bad = i;
    cr_expect_eq(bad, -1, "%s at length %lld: element %lld is %.9g, the scalar formula gives %.9g",
                 built_names[which], (long long)n, (long long)bad, bad >= 0 ? got[bad] : 0.0f,
                 bad >= 0 ? want[bad] : 0.0f);
    if (fused) {
        df_graph_stats st;
        cr_assert_eq(df_graph_get_stats(g, &st), DF_OK);
        cr_expect_eq(st.fused_chains, 1, "length %lld: %d fused chains", (long long)n, st.fused_chains);
    }
    free(xv);
    free(want);
    df_graph_free(g);
}

Test(ew_math, vector_loops_and_tails_give_the_scalar_bits)
{
    const int64_t lengths[] = {1, 2, 3, 5, 7, 8, 9, 15, 17, 31, 33, 255, 257, 263, 1027, 40003};
    for (int which = 0; which < 5; which++)
        for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) expect_scalar_bits(which, lengths[k]);
}

/* ------------------------------ the pieces of softmax, log_softmax and xent */

/* df_exp_shifted_sum as its contract says, computed here one element at a time. */
static double lanes_reference(const float *x, int64_t stride, int64_t len, float shift, float *e)
{
    double lanes[DF_LANE_SUMS] = {0}, sum = 0;
    for (int64_t k = 0; k < len; k++) {
        e[k] = df_ew_exp(df_ew_sub(x[k * stride], shift));
        lanes[k % DF_LANE_SUMS] += e[k];
    }
    for (int l = 0; l < DF_LANE_SUMS; l++) sum += lanes[l];
    return sum;
}

Test(softmax_pieces, exp_shifted_sum_is_its_lanes_and_writes_each_exp)
{
    static const int64_t lens[] = {0, 1, 7, 8, 9, 65, 255, 256, 257, 1000};
    enum { MAX = 1000, STRIDE_MAX = 3 };
    float x[MAX * STRIDE_MAX], y[MAX * STRIDE_MAX], want_e[MAX];
    /* e^-42 .. e^37: a range wide enough that the double sums round, so their order shows */
    for (int64_t i = 0; i < MAX * STRIDE_MAX; i++) x[i] = (float)((i * 7919) % 2001) / 25.0f - 40.0f;
    for (int s = 1; s <= STRIDE_MAX; s += 2)
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            const int64_t n = lens[l];
            const double want = lanes_reference(x, s, n, 2.5f, want_e);
            memset(y, 0, sizeof y);
            const double got = df_exp_shifted_sum(x, s, n, 2.5f, y);
            cr_expect(got == want, "stride %d, length %lld: sum %.17g, want %.17g", s, (long long)n, got, want);
            double libm = 0;
            for (int64_t k = 0; k < n; k++) libm += exp((double)x[k * s] - 2.5);
            cr_expect(fabs(got - libm) <= 1e-6 * libm, "stride %d, length %lld: %.9g against exp's %.9g", s,
                      (long long)n, got, libm);
            for (int64_t k = 0; k < n; k++)
                if (memcmp(&y[k * s], &want_e[k], sizeof(float)) != 0) {
                    cr_expect_fail("stride %d, length %lld: y[%lld] = %.9g, want %.9g", s, (long long)n,
                                   (long long)(k * s), y[k * s], want_e[k]);
                    break;
                }
            double null_y = df_exp_shifted_sum(x, s, n, 2.5f, NULL);
            cr_expect(null_y == want, "without y the same sum");
        }
}

/* One large term in lane 0 and small ones in the other lanes and the tail:
 * summed in another order, the small terms round away differently. */
Test(softmax_pieces, exp_shifted_sum_keeps_its_lane_order)
{
    for (int64_t n = 9; n <= 23; n++) {
        float x[23], e[23];
        for (int64_t k = 0; k < n; k++) x[k] = k == 8 ? 30.0f : (float)k / 10.0f;
        const double want = lanes_reference(x, 1, n, 2.5f, e), got = df_exp_shifted_sum(x, 1, n, 2.5f, NULL);
        cr_expect(got == want, "length %lld: %.17g, want %.17g", (long long)n, got, want);
    }
}

Test(softmax_pieces, lane_max_skips_nans_as_fmaxf_does)
{
    float x[37];
    for (int i = 0; i < 37; i++) x[i] = (float)((i * 13) % 37) - 20.0f;
    cr_expect_eq(df_lane_max(x, 1, 37), 16.0f);
    float want = -INFINITY;
    for (int i = 0; i < 12; i++) want = fmaxf(want, x[3 * i]);
    cr_expect_eq(df_lane_max(x, 3, 12), want);
    x[36] = 99.0f;                        /* the scalar tail */
    cr_expect_eq(df_lane_max(x, 1, 37), 99.0f);
    x[5] = NAN;
    x[20] = NAN;
    cr_expect_eq(df_lane_max(x, 1, 37), 99.0f, "NaNs are skipped");
    float nans[9] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    cr_expect(isinf(df_lane_max(nans, 1, 9)) && df_lane_max(nans, 1, 9) < 0, "all NaN: -inf, as fmaxf from -inf");
    cr_expect(isinf(df_lane_max(x, 1, 0)), "no elements: -inf");
}
