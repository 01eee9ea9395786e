/* helpers.h — small utilities shared by the Criterion suites. */
#ifndef DF_TEST_HELPERS_H
#define DF_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "dagflow.h"

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* An f32 tensor over a literal array. */
#define F32(data, ...) df_tensor_make(DF_F32, (data), NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__))
#define I32(data, ...) df_tensor_make(DF_I32, (data), NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__))
#define PH(g, ...) df_placeholder((g), DF_F32, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__), NULL)
#define PHI(g, ...) df_placeholder((g), DF_I32, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__), NULL)

/* Asserts that n floats match expected within tol, naming the first mismatch. */
static inline void expect_close(const float *got, const float *expected, int64_t n, float tol)
{
    for (int64_t i = 0; i < n; i++)
        cr_expect(fabsf(got[i] - expected[i]) <= tol, "element %lld: got %.7g, expected %.7g",
                  (long long)i, got[i], expected[i]);
}

/* Runs a single-output graph on inputs and returns the output (asserting success). */
static inline df_tensor run1(df_graph *g, const df_tensor *in, int n_in)
{
    df_tensor out = {0};
    df_status st = df_graph_run(g, in, n_in, &out, 1);
    cr_assert_eq(st, DF_OK, "run failed: %s", df_last_error());
    return out;
}

/* n floats uniform in [lo, hi) (malloc'd; the caller frees them). */
static inline float *rand_buf(df_rng *rng, int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    cr_assert_not_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * df_rng_uniform(rng);
    return p;
}

/* |got - want| <= tol * max(1, |want|) for all n; returns the largest error. */
static inline double expect_near(const float *got, const float *want, int64_t n, double tol, const char *what)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), scale = fmax(1.0, fabs(want[i]));
        if (err > worst) worst = err;
        cr_expect(err <= tol * scale, "%s[%lld]: got %.8g, want %.8g", what, (long long)i, got[i], want[i]);
    }
    return worst;
}

/* expect_near for large arrays: one message, naming the first element off
 * and how many are; returns that count. */
static inline int64_t expect_all_near(const float *got, const float *want, int64_t n, double tol, const char *what)
{
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), scale = fmax(1.0, fabs(want[i]));
        if (err <= tol * scale) continue;
        if (first < 0) first = i;
        bad++;
    }
    if (bad)
        cr_expect_fail("%s: %lld of %lld elements off; first [%lld]: got %.8g, want %.8g", what, (long long)bad,
                       (long long)n, (long long)first, got[first], want[first]);
    return bad;
}

#endif
