/* helpers.h — small utilities shared by the Criterion suites. */
#ifndef DF_TEST_HELPERS_H
#define DF_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <math.h>
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

#endif
