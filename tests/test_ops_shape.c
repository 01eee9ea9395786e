/* test_ops_shape.c — shape, indexing and softmax ops: transpose, concat,
 * slice, pad, gather, scatter_add, one_hot, softmax, log_softmax and
 * sparse_softmax_cross_entropy. Forward values are computed by hand on small
 * cases; larger cases (past the OpenMP threshold) are compared with plain C
 * references and across thread counts. Error paths: every shape, dtype and
 * attribute mismatch fails the build with the right code and a message
 * naming the op; out-of-range indices fail the run with DF_ERR_RANGE. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include "dagflow.h"

/* "ndim, shape" argument pair from a list of dims: SHAPE(2, 3). */
#define SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}
#define DIMS(...) (int64_t[]){__VA_ARGS__}
#define LN2 0.69314718055994531f
#define LN3 1.09861228866810969f

/* A graph under construction with its placeholders' feed tensors. */
typedef struct fixture {
    df_graph *g;
    df_tensor feed[4];
    int n_feed;
} fixture;

static fixture fixture_new(void)
{
    fixture f = {.g = df_graph_new()};
    cr_assert_not_null(f.g);
    return f;
}

/* A placeholder fed with data on every run of the fixture's graph. */
static df_node *input(fixture *f, df_dtype dtype, void *data, int ndim, const int64_t *shape)
{
    f->feed[f->n_feed++] = df_tensor_make(dtype, data, ndim, shape);
    df_node *n = df_placeholder(f->g, dtype, ndim, shape, NULL);
    cr_assert_not_null(n);
    return n;
}

/* Marks y as the only output, runs the graph, checks y's shape; returns its data. */
static void *run(fixture *f, df_node *y, int ndim, const int64_t *shape)
{
    cr_assert_not_null(y, "build failed: %s", df_graph_error(f->g));
    cr_assert_eq(df_graph_output(f->g, y), DF_OK);
    df_tensor out;
    df_status st = df_graph_run(f->g, f->feed, f->n_feed, &out, 1);
    cr_assert_eq(st, DF_OK, "run failed: %s", df_last_error());
    cr_assert_eq(out.ndim, ndim, "rank %d, expected %d", out.ndim, ndim);
    for (int d = 0; d < ndim; d++) cr_assert_eq(out.shape[d], shape[d], "dim %d: %lld vs %lld", d,
                                                (long long)out.shape[d], (long long)shape[d]);
    return out.data;
}

static void expect_floats(const float *got, const float *want, int64_t n, float tol)
{
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabsf(got[i] - want[i]) <= tol, "element %lld: got %.9g, expected %.9g", (long long)i,
                  got[i], want[i]);
}

/* The build failed: node is NULL, the graph holds code and its message
 * contains every string given (the op's name first), NULL-terminated. */
static void expect_build_error(df_graph *g, df_node *n, df_status code, ...)
{
    cr_assert_null(n, "build should have failed");
    cr_assert_eq(df_graph_status(g), code, "status %s, expected %s (%s)", df_status_name(df_graph_status(g)),
                 df_status_name(code), df_graph_error(g));
    va_list ap;
    va_start(ap, code);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        cr_assert_not_null(strstr(df_graph_error(g), s), "message '%s' lacks '%s'", df_graph_error(g), s);
    va_end(ap);
}

/* The run fails with DF_ERR_RANGE and a message containing needle. */
static void expect_run_range_error(fixture *f, df_node *y, const char *needle)
{
    cr_assert_not_null(y, "build failed: %s", df_graph_error(f->g));
    cr_assert_eq(df_graph_output(f->g, y), DF_OK);
    df_tensor out;
    df_status st = df_graph_run(f->g, f->feed, f->n_feed, &out, 1);
    cr_assert_eq(st, DF_ERR_RANGE, "status %s: %s", df_status_name(st), df_last_error());
    cr_assert_not_null(strstr(df_last_error(), needle), "message '%s' lacks '%s'", df_last_error(), needle);
}

/* Deterministic pseudo-random values for the large cases. */
static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }
static void fill_uniform(float *x, int64_t n, uint32_t seed)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lcg(&seed) >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
}
static void fill_indices(int32_t *x, int64_t n, int32_t hi, uint32_t seed)
{
    for (int64_t i = 0; i < n; i++) x[i] = (int32_t)((lcg(&seed) >> 8) % (uint32_t)hi);
}

/* ------------------------------------------------------------- transpose */

Test(transpose, matrix)
{
    fixture f = fixture_new();
    float x[] = {0, 1, 2, 3, 4, 5};
    df_node *y = df_transpose(f.g, input(&f, DF_F32, x, SHAPE(2, 3)), (int[]){1, 0});
    expect_floats(run(&f, y, SHAPE(3, 2)), (float[]){0, 3, 1, 4, 2, 5}, 6, 0);
    df_graph_free(f.g);
}

Test(transpose, three_d_perm_201)
{
    fixture f = fixture_new();
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i;   /* x[b][c][a] = 6b + 2c + a */
    df_node *y = df_transpose(f.g, input(&f, DF_F32, x, SHAPE(2, 3, 2)), (int[]){2, 0, 1});
    expect_floats(run(&f, y, SHAPE(2, 2, 3)), (float[]){0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11}, 12, 0);
    df_graph_free(f.g);
}

Test(transpose, negative_axes_and_int_elements)
{
    fixture f = fixture_new();
    int32_t x[] = {1, 2, 3, 4, 5, 6};
    df_node *y = df_transpose(f.g, input(&f, DF_I32, x, SHAPE(3, 2)), (int[]){-1, -2});
    const int32_t *got = run(&f, y, SHAPE(2, 3));
    int32_t want[] = {1, 3, 5, 2, 4, 6};
    for (int i = 0; i < 6; i++) cr_assert_eq(got[i], want[i], "element %d", i);
    df_graph_free(f.g);
}

Test(transpose, errors)
{
    fixture f = fixture_new();
    df_node *x = input(&f, DF_F32, NULL, SHAPE(2, 3));
    expect_build_error(f.g, df_transpose(f.g, x, (int[]){0, 0}), DF_ERR_ARG, "transpose", "(0,0)", "(2,3)", NULL);
    df_graph_free(f.g);
    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(2, 3));
    expect_build_error(f.g, df_transpose(f.g, x, (int[]){0, 2}), DF_ERR_ARG, "transpose", "(0,2)", NULL);
    df_graph_free(f.g);
    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(2, 3));
    expect_build_error(f.g, df_transpose(f.g, x, NULL), DF_ERR_ARG, "transpose", NULL);
    df_graph_free(f.g);
}

/* ---------------------------------------------------------------- concat */

Test(concat, last_axis)
{
    fixture f = fixture_new();
    float a[] = {1, 2, 3, 4}, b[] = {5, 6};
    df_node *xs[] = {input(&f, DF_F32, a, SHAPE(2, 2)), input(&f, DF_F32, b, SHAPE(2, 1))};
    expect_floats(run(&f, df_concat(f.g, 2, xs, -1), SHAPE(2, 3)), (float[]){1, 2, 5, 3, 4, 6}, 6, 0);
    df_graph_free(f.g);
}

Test(concat, first_axis)
{
    fixture f = fixture_new();
    float a[] = {1, 2}, b[] = {3, 4, 5, 6};
    df_node *xs[] = {input(&f, DF_F32, a, SHAPE(1, 2)), input(&f, DF_F32, b, SHAPE(2, 2))};
    expect_floats(run(&f, df_concat(f.g, 2, xs, 0), SHAPE(3, 2)), (float[]){1, 2, 3, 4, 5, 6}, 6, 0);
    df_graph_free(f.g);
}

Test(concat, middle_axis_three_inputs)
{
    fixture f = fixture_new();
    float a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8, 9, 10, 11, 12}, c[] = {13, 14, 15, 16};
    df_node *xs[] = {input(&f, DF_F32, a, SHAPE(2, 1, 2)), input(&f, DF_F32, b, SHAPE(2, 2, 2)),
                     input(&f, DF_F32, c, SHAPE(2, 1, 2))};
    float want[] = {1, 2, 5, 6, 7, 8, 13, 14, 3, 4, 9, 10, 11, 12, 15, 16};
    expect_floats(run(&f, df_concat(f.g, 3, xs, 1), SHAPE(2, 4, 2)), want, 16, 0);
    df_graph_free(f.g);
}

Test(concat, errors)
{
    fixture f = fixture_new();
    df_node *xs[] = {input(&f, DF_F32, NULL, SHAPE(2, 3)), input(&f, DF_F32, NULL, SHAPE(3, 3))};
    expect_build_error(f.g, df_concat(f.g, 2, xs, 1), DF_ERR_SHAPE, "concat", "(3,3)", "(2,3)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    df_node *ranks[] = {input(&f, DF_F32, NULL, SHAPE(2, 3)), input(&f, DF_F32, NULL, SHAPE(3))};
    expect_build_error(f.g, df_concat(f.g, 2, ranks, 0), DF_ERR_SHAPE, "concat", "(3)", "(2,3)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    df_node *types[] = {input(&f, DF_F32, NULL, SHAPE(2, 3)), input(&f, DF_I32, NULL, SHAPE(2, 3))};
    expect_build_error(f.g, df_concat(f.g, 2, types, 0), DF_ERR_DTYPE, "concat", "i32", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    df_node *one[] = {input(&f, DF_F32, NULL, SHAPE(2, 3))};
    expect_build_error(f.g, df_concat(f.g, 1, one, 2), DF_ERR_SHAPE, "concat", "(2,3)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    expect_build_error(f.g, df_concat(f.g, 0, NULL, 0), DF_ERR_ARG, "concat", NULL);
    df_graph_free(f.g);
}

/* ----------------------------------------------------------- slice / pad */

Test(slice, rows_to_end_and_columns)
{
    fixture f = fixture_new();
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i;
    df_node *y = df_slice(f.g, input(&f, DF_F32, x, SHAPE(3, 4)), DIMS(1, 1), DIMS(-1, 2));
    expect_floats(run(&f, y, SHAPE(2, 2)), (float[]){5, 6, 9, 10}, 4, 0);
    df_graph_free(f.g);
}

Test(slice, three_d)
{
    fixture f = fixture_new();
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    df_node *y = df_slice(f.g, input(&f, DF_F32, x, SHAPE(2, 3, 4)), DIMS(1, 0, 2), DIMS(1, 2, -1));
    expect_floats(run(&f, y, SHAPE(1, 2, 2)), (float[]){14, 15, 18, 19}, 4, 0);
    df_graph_free(f.g);
}

Test(slice, int_tokens_shifted_by_one)
{
    fixture f = fixture_new();
    int32_t tokens[] = {7, 8, 9, 4, 5, 6};
    df_node *y = df_slice(f.g, input(&f, DF_I32, tokens, SHAPE(2, 3)), DIMS(0, 1), DIMS(-1, -1));
    const int32_t *got = run(&f, y, SHAPE(2, 2));
    int32_t want[] = {8, 9, 5, 6};
    for (int i = 0; i < 4; i++) cr_assert_eq(got[i], want[i], "element %d", i);
    df_graph_free(f.g);
}

Test(slice, errors)
{
    fixture f = fixture_new();
    df_node *x = input(&f, DF_F32, NULL, SHAPE(3, 4));
    expect_build_error(f.g, df_slice(f.g, x, DIMS(0, 3), DIMS(1, 2)), DF_ERR_SHAPE, "slice", "(3,4)", "axis 1",
                       "(0,3)", "(1,2)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(3, 4));
    expect_build_error(f.g, df_slice(f.g, x, DIMS(-1, 0), DIMS(1, 1)), DF_ERR_SHAPE, "slice", "(3,4)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(3, 4));
    expect_build_error(f.g, df_slice(f.g, x, DIMS(0, 0), DIMS(1, -2)), DF_ERR_SHAPE, "slice", "(3,4)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(3, 4));
    expect_build_error(f.g, df_slice(f.g, x, DIMS(4, 0), DIMS(-1, -1)), DF_ERR_SHAPE, "slice", "axis 0", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(3, 4));
    expect_build_error(f.g, df_slice(f.g, x, NULL, DIMS(1, 1)), DF_ERR_ARG, "slice", "begin", NULL);
    df_graph_free(f.g);
}

Test(pad, matrix_into_frame)
{
    fixture f = fixture_new();
    float x[] = {1, 2, 3, 4};
    df_node *y = df_pad(f.g, input(&f, DF_F32, x, SHAPE(2, 2)), DIMS(1, 1), SHAPE(3, 4));
    expect_floats(run(&f, y, SHAPE(3, 4)), (float[]){0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0}, 12, 0);
    df_graph_free(f.g);
}

Test(pad, vector_and_leading_axis)
{
    fixture f = fixture_new();
    float v[] = {7, 8};
    df_node *y = df_pad(f.g, input(&f, DF_F32, v, SHAPE(2)), DIMS(3), SHAPE(6));
    expect_floats(run(&f, y, SHAPE(6)), (float[]){0, 0, 0, 7, 8, 0}, 6, 0);
    df_graph_free(f.g);

    f = fixture_new();
    float x[] = {1, 2, 3, 4};
    y = df_pad(f.g, input(&f, DF_F32, x, SHAPE(1, 2, 2)), DIMS(1, 0, 0), SHAPE(3, 2, 2));
    expect_floats(run(&f, y, SHAPE(3, 2, 2)), (float[]){0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0}, 12, 0);
    df_graph_free(f.g);
}

Test(pad, errors)
{
    fixture f = fixture_new();
    df_node *x = input(&f, DF_F32, NULL, SHAPE(2, 2));
    expect_build_error(f.g, df_pad(f.g, x, DIMS(2, 0), SHAPE(3, 4)), DF_ERR_SHAPE, "pad", "(2,2)", "(3,4)", "(2,0)",
                       NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(2, 2));
    expect_build_error(f.g, df_pad(f.g, x, DIMS(0, -1), SHAPE(3, 4)), DF_ERR_SHAPE, "pad", "(2,2)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(2, 2));
    expect_build_error(f.g, df_pad(f.g, x, DIMS(0, 0, 0), SHAPE(3, 4, 1)), DF_ERR_SHAPE, "pad", "(2,2)", "(3,4,1)",
                       NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(2, 2));
    expect_build_error(f.g, df_pad(f.g, x, DIMS(0, 0), 2, NULL), DF_ERR_ARG, "pad", NULL);
    df_graph_free(f.g);
}

/* ----------------------------------------------- gather / scatter / one_hot */

Test(gather, matrix_of_indices)
{
    fixture f = fixture_new();
    float params[] = {0, 1, 10, 11, 20, 21};
    int32_t idx[] = {2, 0, 1, 2};
    df_node *p = input(&f, DF_F32, params, SHAPE(3, 2)), *i = input(&f, DF_I32, idx, SHAPE(2, 2));
    expect_floats(run(&f, df_gather(f.g, p, i), SHAPE(2, 2, 2)), (float[]){20, 21, 0, 1, 10, 11, 20, 21}, 8, 0);
    df_graph_free(f.g);
}

Test(gather, gradient_adds_repeated_rows)
{
    fixture f = fixture_new();
    float params[] = {1, 2, 3, 4, 5, 6};
    int32_t idx[] = {2, 0, 2};
    df_node *p = input(&f, DF_F32, params, SHAPE(3, 2)), *i = input(&f, DF_I32, idx, SHAPE(3));
    df_node *loss = df_sum(f.g, df_gather(f.g, p, i), NULL, 0, false), *grad;
    cr_assert_eq(df_gradients(f.g, loss, NULL, 1, &p, &grad), DF_OK, "%s", df_graph_error(f.g));
    expect_floats(run(&f, grad, SHAPE(3, 2)), (float[]){1, 1, 0, 0, 2, 2}, 6, 0);
    df_graph_free(f.g);
}

Test(gather, errors)
{
    fixture f = fixture_new();
    df_node *p = input(&f, DF_F32, NULL, SHAPE(6)), *i = input(&f, DF_I32, NULL, SHAPE(2));
    expect_build_error(f.g, df_gather(f.g, p, i), DF_ERR_SHAPE, "gather", "(6)", "(2)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    p = input(&f, DF_F32, NULL, SHAPE(3, 2));
    i = input(&f, DF_F32, NULL, SHAPE(2));
    expect_build_error(f.g, df_gather(f.g, p, i), DF_ERR_DTYPE, "gather", "(3,2)", "(2)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    p = input(&f, DF_I32, NULL, SHAPE(3, 2));
    i = input(&f, DF_I32, NULL, SHAPE(2));
    expect_build_error(f.g, df_gather(f.g, p, i), DF_ERR_DTYPE, "gather", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    p = input(&f, DF_F32, NULL, SHAPE(3, 2));
    i = input(&f, DF_I32, NULL, SHAPE(1, 1, 1, 2));
    expect_build_error(f.g, df_gather(f.g, p, i), DF_ERR_SHAPE, "gather", "(3,2)", "(1,1,1,2)", NULL);
    df_graph_free(f.g);
}

Test(gather, index_out_of_range_fails_the_run)
{
    float params[6] = {0};
    int32_t high[] = {0, 3}, negative[] = {-1, 0};
    int32_t *cases[] = {high, negative};
    for (int c = 0; c < 2; c++) {
        fixture f = fixture_new();
        df_node *p = input(&f, DF_F32, params, SHAPE(3, 2)), *i = input(&f, DF_I32, cases[c], SHAPE(2));
        expect_run_range_error(&f, df_gather(f.g, p, i), c == 0 ? "index 3 at position 1 is outside [0, 3)"
                                                                 : "index -1 at position 0");
        df_graph_free(f.g);
    }
}

Test(scatter_add, repeated_and_missing_rows)
{
    fixture f = fixture_new();
    float x[] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t idx[] = {1, 0, 1, 3};
    df_node *xn = input(&f, DF_F32, x, SHAPE(4, 2)), *i = input(&f, DF_I32, idx, SHAPE(4));
    expect_floats(run(&f, df_scatter_add(f.g, xn, i, 4), SHAPE(4, 2)), (float[]){3, 4, 6, 8, 0, 0, 7, 8}, 8, 0);
    df_graph_free(f.g);
}

Test(scatter_add, two_d_indices)
{
    fixture f = fixture_new();
    float x[] = {1, 2, 3, 4, 5, 6};
    int32_t idx[] = {0, 0, 1};
    df_node *xn = input(&f, DF_F32, x, SHAPE(1, 3, 2)), *i = input(&f, DF_I32, idx, SHAPE(1, 3));
    expect_floats(run(&f, df_scatter_add(f.g, xn, i, 2), SHAPE(2, 2)), (float[]){4, 6, 5, 6}, 4, 0);
    df_graph_free(f.g);
}

Test(scatter_add, errors)
{
    fixture f = fixture_new();
    df_node *x = input(&f, DF_F32, NULL, SHAPE(4, 2)), *i = input(&f, DF_I32, NULL, SHAPE(3));
    expect_build_error(f.g, df_scatter_add(f.g, x, i, 5), DF_ERR_SHAPE, "scatter_add", "(4,2)", "(3)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(4, 2));
    i = input(&f, DF_F32, NULL, SHAPE(4));
    expect_build_error(f.g, df_scatter_add(f.g, x, i, 5), DF_ERR_DTYPE, "scatter_add", "(4,2)", "(4)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, SHAPE(4, 2));
    i = input(&f, DF_I32, NULL, SHAPE(4));
    expect_build_error(f.g, df_scatter_add(f.g, x, i, -1), DF_ERR_ARG, "scatter_add", "-1", NULL);
    df_graph_free(f.g);
}

Test(scatter_add, index_out_of_range_fails_the_run)
{
    fixture f = fixture_new();
    float x[4] = {0};
    int32_t idx[] = {0, 2};
    df_node *xn = input(&f, DF_F32, x, SHAPE(2, 2)), *i = input(&f, DF_I32, idx, SHAPE(2));
    expect_run_range_error(&f, df_scatter_add(f.g, xn, i, 2), "index 2 at position 1 is outside [0, 2)");
    df_graph_free(f.g);
}

Test(one_hot, vector_and_matrix)
{
    fixture f = fixture_new();
    int32_t idx[] = {2, 0, 1};
    df_node *y = df_one_hot(f.g, input(&f, DF_I32, idx, SHAPE(3)), 3);
    expect_floats(run(&f, y, SHAPE(3, 3)), (float[]){0, 0, 1, 1, 0, 0, 0, 1, 0}, 9, 0);
    df_graph_free(f.g);

    f = fixture_new();
    int32_t idx2[] = {1, 1, 0, 3};
    y = df_one_hot(f.g, input(&f, DF_I32, idx2, SHAPE(2, 2)), 4);
    float want[] = {0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1};
    expect_floats(run(&f, y, SHAPE(2, 2, 4)), want, 16, 0);
    df_graph_free(f.g);
}

Test(one_hot, errors)
{
    fixture f = fixture_new();
    df_node *i = input(&f, DF_F32, NULL, SHAPE(3));
    expect_build_error(f.g, df_one_hot(f.g, i, 4), DF_ERR_DTYPE, "one_hot", "f32", "(3)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    i = input(&f, DF_I32, NULL, SHAPE(3));
    expect_build_error(f.g, df_one_hot(f.g, i, -2), DF_ERR_ARG, "one_hot", "-2", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    i = input(&f, DF_I32, NULL, SHAPE(1, 2, 1, 3));
    expect_build_error(f.g, df_one_hot(f.g, i, 4), DF_ERR_SHAPE, "one_hot", "(1,2,1,3)", NULL);
    df_graph_free(f.g);
}

Test(one_hot, index_out_of_range_fails_the_run)
{
    fixture f = fixture_new();
    int32_t idx[] = {1, 4, 0};
    df_node *y = df_one_hot(f.g, input(&f, DF_I32, idx, SHAPE(3)), 4);
    expect_run_range_error(&f, y, "index 4 at position 1 is outside [0, 4)");
    df_graph_free(f.g);
}

/* ------------------------------------------------------ softmax and xent */

Test(softmax, last_axis_is_exact_and_stable)
{
    fixture f = fixture_new();
    float x[] = {0, LN2, LN3, 1000, 1000, 1000};   /* exp: 1, 2, 3; huge but equal */
    df_node *y = df_softmax(f.g, input(&f, DF_F32, x, SHAPE(2, 3)), -1);
    expect_floats(run(&f, y, SHAPE(2, 3)), (float[]){1 / 6.f, 1 / 3.f, 1 / 2.f, 1 / 3.f, 1 / 3.f, 1 / 3.f}, 6, 1e-6f);
    df_graph_free(f.g);
}

Test(softmax, first_axis)
{
    fixture f = fixture_new();
    float x[] = {0, 1000, LN3, 1000};               /* columns: (1,3)/4 and equal halves */
    df_node *y = df_softmax(f.g, input(&f, DF_F32, x, SHAPE(2, 2)), 0);
    expect_floats(run(&f, y, SHAPE(2, 2)), (float[]){0.25f, 0.5f, 0.75f, 0.5f}, 4, 1e-6f);
    df_graph_free(f.g);
}

Test(softmax, errors)
{
    fixture f = fixture_new();
    df_node *x = input(&f, DF_F32, NULL, SHAPE(2, 3));
    expect_build_error(f.g, df_softmax(f.g, x, 2), DF_ERR_SHAPE, "softmax", "(2,3)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_I32, NULL, SHAPE(2, 3));
    expect_build_error(f.g, df_softmax(f.g, x, -1), DF_ERR_DTYPE, "softmax", "i32", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_F32, NULL, 0, NULL);
    expect_build_error(f.g, df_softmax(f.g, x, -1), DF_ERR_SHAPE, "softmax", "()", NULL);
    df_graph_free(f.g);
}

Test(log_softmax, last_axis_is_exact_and_stable)
{
    fixture f = fixture_new();
    float x[] = {0, LN2, LN3, 1000, 1000, 1000};
    df_node *y = df_log_softmax(f.g, input(&f, DF_F32, x, SHAPE(2, 3)), -1);
    const float *got = run(&f, y, SHAPE(2, 3)), ln6 = LN2 + LN3;
    expect_floats(got, (float[]){-ln6, LN2 - ln6, LN3 - ln6}, 3, 1e-6f);
    expect_floats(got + 3, (float[]){-LN3, -LN3, -LN3}, 3, 1e-4f);   /* float spacing near 1000 is 6e-5 */
    df_graph_free(f.g);
}

Test(log_softmax, middle_axis)
{
    fixture f = fixture_new();
    float x[] = {0, 5, LN3, 5};                      /* (1,2,2): softmax over axis 1 */
    df_node *y = df_log_softmax(f.g, input(&f, DF_F32, x, SHAPE(1, 2, 2)), 1);
    expect_floats(run(&f, y, SHAPE(1, 2, 2)), (float[]){-2 * LN2, -LN2, LN3 - 2 * LN2, -LN2}, 4, 1e-6f);
    df_graph_free(f.g);
}

Test(log_softmax, errors)
{
    fixture f = fixture_new();
    df_node *x = input(&f, DF_F32, NULL, SHAPE(2, 3));
    expect_build_error(f.g, df_log_softmax(f.g, x, -3), DF_ERR_SHAPE, "log_softmax", "(2,3)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    x = input(&f, DF_I32, NULL, SHAPE(2, 3));
    expect_build_error(f.g, df_log_softmax(f.g, x, 0), DF_ERR_DTYPE, "log_softmax", "i32", NULL);
    df_graph_free(f.g);
}

Test(xent, mean_of_row_losses)
{
    fixture f = fixture_new();
    float logits[] = {0, LN2, LN3, 1000, 1000, 1000};
    int32_t targets[] = {2, 0};                       /* losses: ln 2 and ln 3 */
    df_node *l = input(&f, DF_F32, logits, SHAPE(2, 3)), *t = input(&f, DF_I32, targets, SHAPE(2));
    const float *loss = run(&f, df_sparse_softmax_cross_entropy(f.g, l, t), 0, NULL);
    cr_assert_float_eq(loss[0], (LN2 + LN3) / 2, 1e-6f, "loss %.9g", loss[0]);
    df_graph_free(f.g);
}

Test(xent, vector_logits_scalar_target)
{
    fixture f = fixture_new();
    float logits[] = {LN3, 0, 0};
    int32_t target = 0;                                /* -log(3/5) */
    df_node *l = input(&f, DF_F32, logits, SHAPE(3)), *t = input(&f, DF_I32, &target, 0, NULL);
    const float *loss = run(&f, df_sparse_softmax_cross_entropy(f.g, l, t), 0, NULL);
    cr_assert_float_eq(loss[0], logf(5.0f / 3.0f), 1e-6f, "loss %.9g", loss[0]);
    df_graph_free(f.g);
}

Test(xent, gradient_is_softmax_minus_one_hot_over_n)
{
    fixture f = fixture_new();
    float logits[] = {0, LN2, LN3, 0, 0, 0};
    int32_t targets[] = {2, 0};
    df_node *l = input(&f, DF_F32, logits, SHAPE(2, 3)), *t = input(&f, DF_I32, targets, SHAPE(2)), *grad;
    df_node *loss = df_sparse_softmax_cross_entropy(f.g, l, t);
    cr_assert_eq(df_gradients(f.g, loss, NULL, 1, &l, &grad), DF_OK, "%s", df_graph_error(f.g));
    float want[] = {1 / 12.f, 1 / 6.f, -1 / 4.f, -1 / 3.f, 1 / 6.f, 1 / 6.f};
    expect_floats(run(&f, grad, SHAPE(2, 3)), want, 6, 1e-6f);
    df_graph_free(f.g);
}

Test(xent, errors)
{
    fixture f = fixture_new();
    df_node *l = input(&f, DF_F32, NULL, SHAPE(2, 3)), *t = input(&f, DF_I32, NULL, SHAPE(3));
    expect_build_error(f.g, df_sparse_softmax_cross_entropy(f.g, l, t), DF_ERR_SHAPE, "sparse_softmax_xent", "(2,3)",
                       "(3)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    l = input(&f, DF_F32, NULL, SHAPE(2, 3));
    t = input(&f, DF_F32, NULL, SHAPE(2));
    expect_build_error(f.g, df_sparse_softmax_cross_entropy(f.g, l, t), DF_ERR_DTYPE, "sparse_softmax_xent", "(2,3)",
                       "(2)", NULL);
    df_graph_free(f.g);

    f = fixture_new();
    l = input(&f, DF_F32, NULL, 0, NULL);
    t = input(&f, DF_I32, NULL, 0, NULL);
    expect_build_error(f.g, df_sparse_softmax_cross_entropy(f.g, l, t), DF_ERR_SHAPE, "sparse_softmax_xent", "()",
                       NULL);
    df_graph_free(f.g);
}

Test(xent, target_out_of_range_fails_the_run)
{
    fixture f = fixture_new();
    float logits[6] = {0};
    int32_t targets[] = {0, 3};
    df_node *l = input(&f, DF_F32, logits, SHAPE(2, 3)), *t = input(&f, DF_I32, targets, SHAPE(2));
    expect_run_range_error(&f, df_sparse_softmax_cross_entropy(f.g, l, t), "target 3 at position 1");
    cr_assert_not_null(strstr(df_last_error(), "V = 3"), "%s", df_last_error());
    df_graph_free(f.g);
}

Test(errors, a_failed_build_stays_failed)
{
    fixture f = fixture_new();
    df_node *x = input(&f, DF_F32, NULL, SHAPE(2, 3));
    df_node *bad = df_transpose(f.g, x, (int[]){1, 1});
    cr_assert_null(df_softmax(f.g, bad, -1));
    cr_assert_null(df_slice(f.g, bad, DIMS(0, 0), DIMS(1, 1)));
    cr_assert_null(df_pad(f.g, bad, DIMS(0, 0), SHAPE(3, 3)));
    expect_build_error(f.g, NULL, DF_ERR_ARG, "transpose", NULL);   /* the first error stands */
    cr_assert_null(df_gather(NULL, x, x));
    df_graph_free(f.g);
}

/* --------------------------- larger cases: parallel paths vs plain loops */

/* Runs the fixture's graph (its output already marked) on a thread count. */
static const float *run_on_threads(fixture *f, int threads)
{
    int saved = df_num_threads();
    df_set_num_threads(threads);
    df_tensor out;
    df_status st = df_graph_run(f->g, f->feed, f->n_feed, &out, 1);
    df_set_num_threads(saved);
    cr_assert_eq(st, DF_OK, "%s", df_last_error());
    return out.data;
}

/* Runs y with one thread and with four; both must equal want bit for bit. */
static void expect_same_bits_any_threads(fixture *f, df_node *y, const float *want, int64_t n)
{
    cr_assert_eq(df_graph_output(f->g, y), DF_OK, "%s", df_graph_error(f->g));
    for (int threads = 1; threads <= 4; threads *= 4)
        cr_assert_eq(memcmp(run_on_threads(f, threads), want, (size_t)n * sizeof(float)), 0,
                     "differs with %d threads", threads);
}

Test(parallel, scatter_add_is_deterministic)
{
    enum { COUNT = 6000, E = 8, ROWS = 50 };
    static float x[COUNT * E], want[ROWS * E];
    static int32_t idx[COUNT];
    fill_uniform(x, COUNT * E, 1);
    fill_indices(idx, COUNT, ROWS, 2);
    for (int i = 0; i < COUNT; i++)                    /* the same order as the op: position by position */
        for (int c = 0; c < E; c++) want[idx[i] * E + c] += x[i * E + c];
    fixture f = fixture_new();
    df_node *xn = input(&f, DF_F32, x, SHAPE(COUNT, E)), *i = input(&f, DF_I32, idx, SHAPE(COUNT));
    expect_same_bits_any_threads(&f, df_scatter_add(f.g, xn, i, ROWS), want, ROWS * E);
    df_graph_free(f.g);
}

Test(parallel, transpose_and_gather)
{
    enum { A = 40, B = 30, C = 20 };
    static float x[A * B * C], want[A * B * C];
    fill_uniform(x, A * B * C, 3);
    for (int a = 0; a < A; a++)                          /* perm (2,0,1): y[c][a][b] = x[a][b][c] */
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) want[(c * A + a) * B + b] = x[(a * B + b) * C + c];
    fixture f = fixture_new();
    df_node *y = df_transpose(f.g, input(&f, DF_F32, x, SHAPE(A, B, C)), (int[]){2, 0, 1});
    expect_same_bits_any_threads(&f, y, want, A * B * C);
    df_graph_free(f.g);

    enum { V = 100, E = 32, COUNT = 1000 };
    static float params[V * E], rows[COUNT * E];
    static int32_t idx[COUNT];
    fill_uniform(params, V * E, 4);
    fill_indices(idx, COUNT, V, 5);
    for (int i = 0; i < COUNT; i++) memcpy(rows + i * E, params + idx[i] * E, E * sizeof(float));
    f = fixture_new();
    df_node *p = input(&f, DF_F32, params, SHAPE(V, E)), *i = input(&f, DF_I32, idx, SHAPE(COUNT));
    expect_same_bits_any_threads(&f, df_gather(f.g, p, i), rows, COUNT * E);
    df_graph_free(f.g);
}

Test(parallel, pad_of_slice_keeps_the_box)
{
    enum { A = 60, B = 60, C = 10 };
    static float x[A * B * C], want[A * B * C];
    fill_uniform(x, A * B * C, 6);
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                bool inside = a >= 1 && a < 56 && b >= 2 && b < 52 && c >= 1;
                want[(a * B + b) * C + c] = inside ? x[(a * B + b) * C + c] : 0.0f;
            }
    fixture f = fixture_new();
    df_node *xn = input(&f, DF_F32, x, SHAPE(A, B, C));
    df_node *box = df_slice(f.g, xn, DIMS(1, 2, 1), DIMS(55, 50, -1));
    expect_same_bits_any_threads(&f, df_pad(f.g, box, DIMS(1, 2, 1), SHAPE(A, B, C)), want, A * B * C);
    df_graph_free(f.g);
}

Test(parallel, concat_and_one_hot)
{
    enum { R = 100, CA = 100, CB = 80 };
    static float a[R * CA], b[R * CB], want[R * (CA + CB)];
    fill_uniform(a, R * CA, 7);
    fill_uniform(b, R * CB, 8);
    for (int r = 0; r < R; r++) {
        memcpy(want + r * (CA + CB), a + r * CA, CA * sizeof(float));
        memcpy(want + r * (CA + CB) + CA, b + r * CB, CB * sizeof(float));
    }
    fixture f = fixture_new();
    df_node *xs[] = {input(&f, DF_F32, a, SHAPE(R, CA)), input(&f, DF_F32, b, SHAPE(R, CB))};
    expect_same_bits_any_threads(&f, df_concat(f.g, 2, xs, 1), want, R * (CA + CB));
    df_graph_free(f.g);

    enum { COUNT = 2000, DEPTH = 10 };
    static int32_t idx[COUNT];
    static float hot[COUNT * DEPTH];
    fill_indices(idx, COUNT, DEPTH, 9);
    for (int i = 0; i < COUNT; i++) hot[i * DEPTH + idx[i]] = 1.0f;
    f = fixture_new();
    expect_same_bits_any_threads(&f, df_one_hot(f.g, input(&f, DF_I32, idx, SHAPE(COUNT)), DEPTH), hot,
                                 COUNT * DEPTH);
    df_graph_free(f.g);
}

Test(parallel, softmax_middle_axis_and_log_softmax_rows)
{
    enum { A = 20, L = 100, C = 10 };
    static float x[A * L * C], want[A * L * C];
    fill_uniform(x, A * L * C, 10);
    for (int a = 0; a < A; a++)
        for (int c = 0; c < C; c++) {
            double sum = 0;
            for (int k = 0; k < L; k++) sum += exp(x[(a * L + k) * C + c]);
            for (int k = 0; k < L; k++) want[(a * L + k) * C + c] = (float)(exp(x[(a * L + k) * C + c]) / sum);
        }
    fixture f = fixture_new();
    df_node *y = df_softmax(f.g, input(&f, DF_F32, x, SHAPE(A, L, C)), 1);
    expect_floats(run(&f, y, SHAPE(A, L, C)), want, A * L * C, 1e-7f);
    df_graph_free(f.g);

    enum { R = 200, V = 100 };
    static float z[R * V], lwant[R * V];
    fill_uniform(z, R * V, 11);
    for (int r = 0; r < R; r++) {
        double sum = 0;
        for (int k = 0; k < V; k++) sum += exp(z[r * V + k]);
        for (int k = 0; k < V; k++) lwant[r * V + k] = (float)(z[r * V + k] - log(sum));
    }
    f = fixture_new();
    y = df_log_softmax(f.g, input(&f, DF_F32, z, SHAPE(R, V)), -1);
    expect_floats(run(&f, y, SHAPE(R, V)), lwant, R * V, 2e-6f);
    df_graph_free(f.g);
}

Test(parallel, xent_is_deterministic)
{
    enum { R = 300, V = 64 };
    static float logits[R * V];
    static int32_t targets[R];
    fill_uniform(logits, R * V, 12);
    fill_indices(targets, R, V, 13);
    double total = 0;
    for (int r = 0; r < R; r++) {
        double sum = 0;
        for (int k = 0; k < V; k++) sum += exp(logits[r * V + k]);
        total += log(sum) - logits[r * V + targets[r]];
    }
    fixture f = fixture_new();
    df_node *l = input(&f, DF_F32, logits, SHAPE(R, V)), *t = input(&f, DF_I32, targets, SHAPE(R));
    cr_assert_eq(df_graph_output(f.g, df_sparse_softmax_cross_entropy(f.g, l, t)), DF_OK, "%s", df_graph_error(f.g));
    float one_thread = *run_on_threads(&f, 1), four_threads = *run_on_threads(&f, 4);
    cr_assert_float_eq(one_thread, (float)(total / R), 1e-5f, "loss %.9g vs %.9g", one_thread, total / R);
    cr_assert_eq(memcmp(&one_thread, &four_threads, sizeof(float)), 0, "%.9g vs %.9g", one_thread, four_threads);
    df_graph_free(f.g);
}
