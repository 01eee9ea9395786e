/* test_layers.c — the public API's small pieces (filled tensors that follow
 * open dimensions, the checked variable assignment, version, a function's
 * passes, run errors that name the function) and the layers and models
 * built on them. */
#include <stdio.h>
#include "helpers.h"

/* ------------------------------------------------------- fill / zeros like */

/* x (None,3) -> x + 2.5 (fill_like), zeros (None,5), int zeros like an i32 input. */
static df_status build_fills(df_graph *g, df_node **in, void *user)
{
    (void)user;
    df_graph_output(g, df_add(g, in[0], df_fill_like(g, in[0], 2.5f)));
    df_graph_output(g, df_fill_like_dims(g, in[0], 0.0f, DF_F32, 2, SHAPE(DF_DYNAMIC, 5)));
    df_graph_output(g, df_zeros_like(g, in[1]));
    return df_graph_status(g);
}

Test(api, fill_like_follows_an_open_batch_dimension)
{
    df_tensor_spec sig[2] = {{DF_F32, 2, {DF_DYNAMIC, 3}}, {DF_I32, 1, {DF_DYNAMIC}}};
    df_function *f = df_function_new_signature("fills", build_fills, NULL, 2, sig);
    cr_assert_not_null(f);
    for (int64_t B = 2; B <= 7; B += 5) {
        float x[21];
        int32_t idx[7];
        for (int i = 0; i < 21; i++) x[i] = (float)i;
        for (int i = 0; i < 7; i++) idx[i] = 9;
        df_tensor in[2] = {F32(x, B, 3), I32(idx, B)}, out[3];
        cr_assert_eq(df_function_call(f, in, 2, out, 3), DF_OK, "%s", df_last_error());
        cr_expect_eq(out[0].shape[0], B);
        for (int64_t i = 0; i < 3 * B; i++) cr_expect_eq(((float *)out[0].data)[i], (float)i + 2.5f);
        cr_expect(out[1].ndim == 2 && out[1].shape[0] == B && out[1].shape[1] == 5, "zeros (B,5) at B=%lld",
                  (long long)B);
        for (int64_t i = 0; i < 5 * B; i++) cr_expect_eq(((float *)out[1].data)[i], 0.0f);
        cr_expect(out[2].dtype == DF_I32 && out[2].shape[0] == B);
        for (int64_t i = 0; i < B; i++) cr_expect_eq(((int32_t *)out[2].data)[i], 0);
    }
    cr_expect_eq(df_function_trace_count(f), 1);
    df_function_free(f);
}

/* A fill that follows a node computed from a variable is a constant to autodiff:
 * d/dw sum(x @ w + fill_like_dims(x @ w)) = d/dw sum(x @ w). */
typedef struct { df_variable *w; } one_var;
static df_status build_fill_grad(df_graph *g, df_node **in, void *user)
{
    one_var *m = user;
    df_node *y = df_matmul(g, in[0], df_var(g, m->w), false, false);           /* (B,2) */
    df_node *z = df_fill_like_dims(g, y, 3.0f, DF_F32, 2, SHAPE(DF_DYNAMIC, 4));
    df_node *loss = df_add(g, df_sum(g, y, NULL, 0, false), df_sum(g, z, NULL, 0, false));
    df_node *grad;
    df_gradients(g, loss, NULL, 1, (df_node *[]){df_var(g, m->w)}, &grad);
    df_graph_output(g, loss);
    df_graph_output(g, grad);
    return df_graph_status(g);
}

Test(api, fill_like_passes_no_gradient_to_its_input)
{
    one_var m = {df_variable_new("w", DF_F32, 2, SHAPE(3, 2), df_init_ones(), NULL)};
    df_tensor_spec sig = {DF_F32, 2, {DF_DYNAMIC, 3}};
    df_function *f = df_function_new_signature("fill_grad", build_fill_grad, &m, 1, &sig);
    float x[6] = {1, 2, 3, 4, 5, 6};
    df_tensor in = F32(x, 2, 3), out[2];
    cr_assert_eq(df_function_call(f, &in, 1, out, 2), DF_OK, "%s", df_last_error());
    cr_expect_float_eq(*(float *)out[0].data, 42.0f + 3.0f * 8, 1e-5, "sum(x@w) = 42 plus 8 threes");
    /* d sum(x@w)/dw[k][j] = sum_b x[b][k] */
    float want[6] = {5, 5, 7, 7, 9, 9};
    expect_close(out[1].data, want, 6, 1e-6f);
    df_function_free(f);
    df_variable_free(m.w);
}

Test(api, fill_like_dims_past_the_inputs_rank_is_an_error)
{
    df_graph *g = df_graph_new();
    df_node *x = df_placeholder(g, DF_F32, 1, SHAPE(DF_DYNAMIC), "x");
    cr_expect_null(df_fill_like_dims(g, x, 0, DF_F32, 2, SHAPE(4, DF_DYNAMIC)));
    cr_expect_eq(df_graph_status(g), DF_ERR_SHAPE);
    cr_expect(strstr(df_graph_error(g), "fill_like") && strstr(df_graph_error(g), "dimension 1"), "%s",
              df_graph_error(g));
    df_graph_free(g);
    g = df_graph_new();
    x = PH(g, 2, 3);
    df_node *z = df_fill_like_dims(g, x, 1.5f, DF_F32, 2, SHAPE(DF_DYNAMIC, 4));   /* static: (2,4) */
    cr_assert_not_null(z, "%s", df_graph_error(g));
    cr_expect(df_node_dim(z, 0) == 2 && df_node_dim(z, 1) == 4);
    df_graph_output(g, z);
    float xv[6] = {0};
    df_tensor in = F32(xv, 2, 3);
    df_tensor out = run1(g, &in, 1);
    for (int i = 0; i < 8; i++) cr_expect_eq(((float *)out.data)[i], 1.5f);
    df_graph_free(g);
}

/* -------------------------------------------------------- variable assign */

Test(api, assigning_a_transposed_buffer_names_both_shapes)
{
    df_variable *v = df_variable_new("dense/kernel", DF_F32, 2, SHAPE(2, 3), df_init_zeros(), NULL);
    float buf[6] = {1, 2, 3, 4, 5, 6};
    df_tensor transposed = F32(buf, 3, 2), flat = F32(buf, 6), right = F32(buf, 2, 3);
    cr_expect_eq(df_variable_assign(v, &transposed), DF_ERR_SHAPE);
    const char *msg = df_last_error();
    cr_expect(strstr(msg, "dense/kernel") && strstr(msg, "(2,3)") && strstr(msg, "(3,2)"), "%s", msg);
    cr_expect_eq(df_variable_assign(v, &flat), DF_ERR_SHAPE);
    cr_expect(strstr(df_last_error(), "(6)"), "%s", df_last_error());
    cr_expect_eq(((float *)df_variable_tensor(v).data)[0], 0.0f, "a refused value must not be copied");
    cr_expect_eq(df_variable_assign(v, &right), DF_OK);
    cr_expect_eq(((float *)df_variable_tensor(v).data)[5], 6.0f);
    int32_t ibuf[6] = {0};
    df_tensor ints = I32(ibuf, 2, 3);
    cr_expect_eq(df_variable_assign(v, &ints), DF_ERR_DTYPE);
    df_variable_free(v);
}

/* ----------------------------------------------------------------- version */

Test(api, version_macros_match_configure_and_the_library)
{
    char joined[32];
    snprintf(joined, sizeof joined, "%d.%d.%d", DAGFLOW_VERSION_MAJOR, DAGFLOW_VERSION_MINOR, DAGFLOW_VERSION_PATCH);
    cr_expect_str_eq(joined, DAGFLOW_VERSION);
#ifdef PACKAGE_VERSION
    cr_expect_str_eq(DAGFLOW_VERSION, PACKAGE_VERSION, "dagflow.h must follow configure.ac's AC_INIT");
#else
    cr_fail("PACKAGE_VERSION is not defined: the test cannot compare with configure.ac");
#endif
    cr_expect_str_eq(df_version(), DAGFLOW_VERSION);
}

/* ---------------------------------------------------------------- passes */

/* Two identical products (CSE merges them) and an elementwise chain (fused). */
static df_status build_redundant(df_graph *g, df_node **in, void *user)
{
    (void)user;
    df_node *a = df_matmul(g, in[0], in[0], false, true), *b = df_matmul(g, in[0], in[0], false, true);
    df_graph_output(g, df_tanh(g, df_exp(g, df_add(g, a, b))));
    return df_graph_status(g);
}

static df_graph_stats stats_with_passes(unsigned passes, bool set)
{
    df_function *f = df_function_new("redundant", build_redundant, NULL);
    if (set) cr_assert_eq(df_function_set_passes(f, passes), DF_OK, "%s", df_last_error());
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    df_tensor in = F32(x, 2, 2), out;
    cr_assert_eq(df_function_call(f, &in, 1, &out, 1), DF_OK, "%s", df_last_error());
    df_graph_stats s;
    cr_assert_eq(df_graph_get_stats(df_function_last_graph(f), &s), DF_OK);
    df_function_free(f);
    return s;
}

Test(api, function_set_passes_reaches_its_graphs)
{
    df_graph_stats all = stats_with_passes(0, false), none = stats_with_passes(0, true),
                   fuse = stats_with_passes(DF_PASS_FUSE, true);
    cr_expect_gt(all.cse_merged, 0);
    cr_expect_gt(all.fused_chains, 0);
    cr_expect_eq(none.cse_merged, 0);
    cr_expect_eq(none.fused_chains, 0);
    cr_expect_eq(fuse.cse_merged, 0);
    cr_expect_gt(fuse.fused_chains, 0);
}

Test(api, function_set_passes_errors)
{
    df_function *f = df_function_new("redundant", build_redundant, NULL);
    cr_expect_eq(df_function_set_passes(f, 1u << 7), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "redundant"), "%s", df_last_error());
    float x[4] = {0};
    df_tensor in = F32(x, 2, 2), out;
    cr_assert_eq(df_function_call(f, &in, 1, &out, 1), DF_OK);
    cr_expect_eq(df_function_set_passes(f, 0), DF_ERR_STATE);
    cr_expect_eq(df_function_set_passes(NULL, 0), DF_ERR_ARG);
    df_function_free(f);
}

/* ------------------------------------------------- run errors name the function */

static df_status build_lookup(df_graph *g, df_node **in, void *user)
{
    (void)user;
    float table[6] = {1, 2, 3, 4, 5, 6};
    df_tensor t = F32(table, 3, 2);
    df_graph_output(g, df_gather(g, df_constant(g, &t), in[0]));
    return df_graph_status(g);
}

Test(api, run_errors_name_the_function)
{
    int32_t bad[2] = {0, 7};
    df_tensor in = I32(bad, 2), out;
    df_function *f = df_function_new("lookup", build_lookup, NULL);
    cr_expect_eq(df_function_call(f, &in, 1, &out, 1), DF_ERR_RANGE);
    cr_expect(strstr(df_last_error(), "function 'lookup'") && strstr(df_last_error(), "gather"), "%s",
              df_last_error());
    df_function_free(f);
    df_tensor_spec sig = {DF_I32, 1, {DF_DYNAMIC}};
    f = df_function_new_signature("lookup_sig", build_lookup, NULL, 1, &sig);
    cr_expect_eq(df_function_call(f, &in, 1, &out, 1), DF_ERR_RANGE);
    cr_expect(strstr(df_last_error(), "function 'lookup_sig'"), "%s", df_last_error());
    df_function_free(f);
}
