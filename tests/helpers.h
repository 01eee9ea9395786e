/* helpers.h — small utilities shared by the Criterion suites. */
#ifndef DF_TEST_HELPERS_H
#define DF_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
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

/* Asserts that n floats are bit for bit the same, naming the first
 * difference and how many differ. */
static inline void expect_bitwise(const float *got, const float *want, int64_t n, const char *what)
{
    int64_t first = -1, count = 0;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0) {
            if (first < 0) first = i;
            count++;
        }
    cr_expect_eq(count, 0, "%s: %lld of %lld elements differ, first [%lld]: %.9g vs %.9g", what, (long long)count,
                 (long long)n, (long long)first, first < 0 ? 0.0 : got[first], first < 0 ? 0.0 : want[first]);
}

/* Runs g, whose outputs come in n_pairs pairs (a fused op's result, then the
 * same thing from the unrolled reference), on 1, 2 and 3 threads (OpenMP and
 * OpenBLAS, set explicitly so a 1-core machine tests the same): every fused
 * result must be within tol (scaled as in expect_near) of its reference on
 * each thread count, and bit for bit the same on all of them. names[k]
 * names pair k in messages, what the case. Restores the thread count. */
static inline void expect_pairs_on_1_2_3_threads(df_graph *g, const df_tensor *in, int n_in, int n_pairs,
                                                 const char *const *names, double tol, const char *what)
{
    enum { MAX_PAIRS = 16 };
    cr_assert_leq(n_pairs, MAX_PAIRS);
    const int saved = df_num_threads();
    float *first[MAX_PAIRS] = {0};
    char label[160];
    for (int nth = 1; nth <= 3; nth++) {
        df_set_num_threads(nth);
        cr_assert_eq(omp_get_max_threads(), nth);
        df_tensor o[2 * MAX_PAIRS];
        cr_assert_eq(df_graph_run(g, in, n_in, o, 2 * n_pairs), DF_OK, "%s, %d threads: %s", what, nth, df_last_error());
        for (int k = 0; k < n_pairs; k++) {
            const df_tensor *fused = &o[2 * k], *ref = &o[2 * k + 1];
            const int64_t n = df_tensor_numel(fused);
            cr_assert(fused->ndim == ref->ndim && !memcmp(fused->shape, ref->shape, (size_t)ref->ndim * sizeof ref->shape[0]),
                      "%s: %s shape", what, names[k]);
            snprintf(label, sizeof label, "%s, %d threads, %s", what, nth, names[k]);
            expect_all_near(fused->data, ref->data, n, tol, label);
            if (nth == 1) {
                double worst = 0;
                for (int64_t i = 0; i < n; i++)
                    worst = fmax(worst, fabs((double)((const float *)fused->data)[i] - ((const float *)ref->data)[i]));
                cr_log_info("%s: fused vs unrolled max abs diff %.3g", label, worst);
                first[k] = malloc((size_t)(n ? n : 1) * sizeof(float));
                cr_assert_not_null(first[k]);
                memcpy(first[k], fused->data, (size_t)n * sizeof(float));
            } else {
                snprintf(label, sizeof label, "%s: %s on %d threads vs 1", what, names[k], nth);
                expect_bitwise(fused->data, first[k], n, label);
            }
        }
    }
    df_set_num_threads(saved);
    for (int k = 0; k < n_pairs; k++) free(first[k]);
}

/* A variable w and an optimizer trained on loss = sum(w * c) for the input
 * c, so that dloss/dw = c each step: a df_function builder (user = a
 * linear_model) for optimizer tests. */
typedef struct linear_model { df_variable *w; df_optimizer *opt; } linear_model;

static inline df_status linear_model_step(df_graph *g, df_node **in, void *user)
{
    linear_model *m = user;
    df_tape *t = df_tape_begin(g);
    df_node *loss = df_sum(g, df_mul(g, df_var(g, m->w), in[0]), NULL, 0, false);
    df_tape_end(t);
    df_node *grad;
    if (df_tape_gradient(t, loss, 1, &m->w, &grad) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, 1, &m->w, &grad);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

#endif
