/* test_transformer_ops.c — reference values and error paths of the ops a
 * transformer needs besides the elementwise table: layer_norm, reduce_max,
 * logsumexp, argmax, where, cast, causal_mask (their gradients are in the
 * registry gradcheck, tests/test_ops.c). References computed in double with
 * PyTorch's definitions. */
#include "helpers.h"

static df_tensor *run_all(df_graph *g, const df_tensor *in, int n_in, df_tensor *out, int n_out)
{
    cr_assert_eq(df_graph_run(g, in, n_in, out, n_out), DF_OK, "%s", df_last_error());
    return out;
}

static void expect_error(df_graph *g, df_node *n, df_status want, const char *fragment)
{
    cr_expect_null(n);
    cr_expect_eq(df_graph_status(g), want, "status %s: %s", df_status_name(df_graph_status(g)), df_graph_error(g));
    cr_expect(strstr(df_graph_error(g), fragment), "\"%s\" lacks \"%s\"", df_graph_error(g), fragment);
}

/* ------------------------------------------------------------ layer_norm */

Test(layer_norm, matches_torch_layer_norm)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 4), *gain = PH(g, 4), *bias = PH(g, 4);
    df_graph_output(g, df_layer_norm(g, x, gain, bias, 1e-5f));
    df_graph_output(g, df_layer_norm(g, x, NULL, NULL, 1e-5f));
    float xv[] = {1, 2, 3, 4, 2, -1, 0.5f, 3}, gv[] = {1, 0.5f, 2, -1}, bv[] = {0, 1, -1, 0.5f};
    df_tensor in[3] = {F32(xv, 2, 4), F32(gv, 4), F32(bv, 4)}, out[2];
    run_all(g, in, 3, out, 2);
    /* torch.nn.functional.layer_norm(x, (4,), gain, bias, 1e-5) */
    float e[] = {-1.3416354f, 0.7763941f, -0.1055764f, -0.8416354f, 0.5773490f, 0.2989333f, -1.8247843f, -0.7371765f};
    expect_close(out[0].data, e, 8, 2e-6f);
    /* without affine: (y - bias) / gain */
    float plain[8];
    for (int i = 0; i < 8; i++) plain[i] = (e[i] - bv[i % 4]) / gv[i % 4];
    expect_close(out[1].data, plain, 8, 2e-6f);
    df_graph_free(g);
}

Test(layer_norm, a_constant_row_gives_the_bias)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 1, 3), *gain = PH(g, 3), *bias = PH(g, 3);
    df_graph_output(g, df_layer_norm(g, x, gain, bias, 1e-5f));
    float xv[] = {7, 7, 7}, gv[] = {2, 2, 2}, bv[] = {0.5f, -1, 3};
    df_tensor in[3] = {F32(xv, 1, 3), F32(gv, 3), F32(bv, 3)};
    df_tensor out = run1(g, in, 3);
    expect_close(out.data, bv, 3, 0);
    df_graph_free(g);
}

static df_status build_ln(df_graph *g, df_node **in, void *user)
{
    df_node *y = df_layer_norm(g, in[0], in[1], in[2], 1e-5f), *grads[3];
    if (df_gradients(g, df_sum(g, df_square(g, y), NULL, 0, false), NULL, 3, in, grads) != DF_OK)
        return df_graph_status(g);
    df_graph_output(g, y);
    for (int i = 0; i < 3; i++) df_graph_output(g, grads[i]);
    return df_graph_status(g);
}

Test(layer_norm, an_open_batch_dimension_equals_static_traces)
{
    df_tensor_spec sig[3] = {{DF_F32, 2, {DF_DYNAMIC, 6}}, {DF_F32, 1, {6}}, {DF_F32, 1, {6}}};
    df_function *dyn = df_function_new_signature("ln", build_ln, NULL, 3, sig);
    df_function *ref = df_function_new("ln_static", build_ln, NULL);
    df_rng rng;
    df_rng_seed(&rng, 3);
    float *xv = rand_buf(&rng, 5 * 6, -2, 2), *gv = rand_buf(&rng, 6, 0.5f, 1.5f), *bv = rand_buf(&rng, 6, -1, 1);
    for (int rows = 2; rows <= 5; rows += 3) {
        df_tensor in[3] = {F32(xv, rows, 6), F32(gv, 6), F32(bv, 6)}, got[4], want[4];
        cr_assert_eq(df_function_call(ref, in, 3, want, 4), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_function_call(dyn, in, 3, got, 4), DF_OK, "%s", df_last_error());
        for (int o = 0; o < 4; o++) {
            int64_t n = df_tensor_numel(&want[o]);
            cr_assert_eq(df_tensor_numel(&got[o]), n, "rows %d output %d", rows, o);
            cr_expect(memcmp(got[o].data, want[o].data, (size_t)n * sizeof(float)) == 0, "rows %d output %d differs", rows, o);
        }
    }
    cr_expect_eq(df_function_trace_count(dyn), 1);
    free(xv), free(gv), free(bv);
    df_function_free(dyn);
    df_function_free(ref);
}

/* The gain and bias gradients that layer_norm_grad sums in its pass equal,
 * bit for bit, the ops they replace: sum_to(dy * layer_norm(x)) and
 * sum_to(dy) (here dy = R, from sum(y * R)), on 1, 2 and 3 threads; 130
 * columns split unevenly between threads, 70 rows. */
Test(layer_norm, gain_and_bias_gradients_equal_the_composed_sums_bit_for_bit)
{
    enum { B = 2, T = 35, C = 130 };
    df_graph *g = df_graph_new();
    df_node *x = PH(g, B, T, C), *gain = PH(g, C), *bias = PH(g, C), *R = PH(g, B, T, C), *grads[2];
    df_node *y = df_layer_norm(g, x, gain, bias, 1e-5f);
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, y, R), NULL, 0, false), NULL, 2, (df_node *[]){gain, bias}, grads),
                 DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, grads[0]);
    df_graph_output(g, df_sum_to(g, df_mul(g, R, df_layer_norm(g, x, NULL, NULL, 1e-5f)), 1, (int64_t[]){C}));
    df_graph_output(g, grads[1]);
    df_graph_output(g, df_sum_to(g, R, 1, (int64_t[]){C}));
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));
    df_rng rng;
    df_rng_seed(&rng, 11);
    float *xv = rand_buf(&rng, B * T * C, -3, 3), *gv = rand_buf(&rng, C, 0.5f, 1.5f), *bv = rand_buf(&rng, C, -1, 1);
    float *rv = rand_buf(&rng, B * T * C, -1, 1);
    df_tensor in[4] = {F32(xv, B, T, C), F32(gv, C), F32(bv, C), F32(rv, B, T, C)};
    static const char *const names[] = {"dgain", "dbias"};
    expect_pairs_on_1_2_3_threads(g, in, 4, 2, names, 0.0, "layer_norm (2,35,130)");
    df_graph_free(g);
    free(xv), free(gv), free(bv), free(rv);
}

Test(layer_norm, shape_errors_name_both_shapes)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 4);
    expect_error(g, df_layer_norm(g, x, PH(g, 3), PH(g, 4), 1e-5f), DF_ERR_SHAPE, "gain must have shape (4)");
    df_graph_free(g);
    g = df_graph_new();
    x = PH(g, 2, 4);
    expect_error(g, df_layer_norm(g, x, PH(g, 4), NULL, 1e-5f), DF_ERR_ARG, "go together");
    df_graph_free(g);
    g = df_graph_new();
    expect_error(g, df_layer_norm(g, PH(g, 2, 4), NULL, NULL, 0.0f), DF_ERR_ARG, "eps");
    df_graph_free(g);
}

/* ------------------------------------------------- max, logsumexp, argmax */

Test(reduce, max_over_axes_and_ties_share_the_gradient)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 3);
    df_node *all = df_reduce_max(g, x, NULL, 0, false), *rows = df_reduce_max(g, x, (int[]){1}, 1, false);
    df_node *cols = df_reduce_max(g, x, (int[]){0}, 1, true), *dx;
    cr_assert_eq(df_gradients(g, df_sum(g, rows, NULL, 0, false), NULL, 1, &x, &dx), DF_OK, "%s", df_last_error());
    df_graph_output(g, all);
    df_graph_output(g, rows);
    df_graph_output(g, cols);
    df_graph_output(g, dx);
    float xv[] = {1, 3, 3, -2, 5, 0};
    df_tensor in = F32(xv, 2, 3), out[4];
    run_all(g, &in, 1, out, 4);
    cr_expect_eq(out[0].ndim, 0);
    cr_expect_eq(*(float *)out[0].data, 5.0f);
    float r[] = {3, 5}, c[] = {1, 5, 3}, d[] = {0, 0.5f, 0.5f, 0, 1, 0};
    expect_close(out[1].data, r, 2, 0);
    cr_expect(out[2].ndim == 2 && out[2].shape[0] == 1 && out[2].shape[1] == 3);
    expect_close(out[2].data, c, 3, 0);
    expect_close(out[3].data, d, 6, 0);
    df_graph_free(g);
}

Test(reduce, max_propagates_nan)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 3);
    df_graph_output(g, df_reduce_max(g, x, (int[]){-1}, 1, false));
    float xv[] = {1, NAN, 3, -INFINITY, -INFINITY, -INFINITY};
    df_tensor in = F32(xv, 2, 3);
    float *y = run1(g, &in, 1).data;
    cr_expect(isnan(y[0]), "max of a row with NaN: %g", y[0]);
    cr_expect(isinf(y[1]) && y[1] < 0);
    df_graph_free(g);
}

Test(reduce, logsumexp_is_stable)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 3, 3);
    df_graph_output(g, df_logsumexp(g, x, -1, false));
    float xv[] = {1, 2, 3, 1000, 1000, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    df_tensor in = F32(xv, 3, 3);
    df_tensor out = run1(g, &in, 1);
    cr_expect_eq(out.ndim, 1);
    const float *y = out.data;
    cr_expect_float_eq(y[0], 3.40760596f, 1e-6f);
    cr_expect_float_eq(y[1], 1000.69314718f, 1e-3f);
    cr_expect(isinf(y[2]) && y[2] < 0, "an all -inf row gives -inf, got %g", y[2]);
    df_graph_free(g);
}

Test(reduce, logsumexp_gradient_is_the_softmax)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 4), *dx;
    cr_assert_eq(df_gradients(g, df_sum(g, df_logsumexp(g, x, 1, true), NULL, 0, false), NULL, 1, &x, &dx), DF_OK);
    df_graph_output(g, dx);
    df_graph_output(g, df_softmax(g, x, 1));
    float xv[] = {0.5f, -1, 2, 0.25f, 3, 3, -2, 1};
    df_tensor in = F32(xv, 2, 4), out[2];
    run_all(g, &in, 1, out, 2);
    expect_close(out[0].data, out[1].data, 8, 1e-6f);
    df_graph_free(g);
}

Test(reduce, argmax_first_maximum_and_nan)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 3, 4);
    df_graph_output(g, df_argmax(g, x, -1));
    df_graph_output(g, df_argmax(g, x, 0));
    float xv[] = {1, 3, 3, 2, -1, -2, NAN, 5, 0, 0, 0, 0};
    df_tensor in = F32(xv, 3, 4), out[2];
    run_all(g, &in, 1, out, 2);
    cr_expect_eq(out[0].dtype, DF_I32);
    const int32_t *rows = out[0].data, *cols = out[1].data;
    cr_expect(rows[0] == 1 && rows[1] == 2 && rows[2] == 0, "%d %d %d", rows[0], rows[1], rows[2]);
    cr_expect(cols[0] == 0 && cols[1] == 0 && cols[2] == 1 && cols[3] == 1, "%d %d %d %d", cols[0], cols[1], cols[2],
              cols[3]);
    df_graph_free(g);
    g = df_graph_new();
    expect_error(g, df_argmax(g, PH(g, 2, 0), 1), DF_ERR_SHAPE, "empty");
    df_graph_free(g);
}

/* ------------------------------------------------------- where, cast, mask */

Test(where, picks_with_broadcasting_and_keeps_infinities_out)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 3), *keep = PH(g, 3);
    df_node *masked = df_where(g, keep, x, df_scalar(g, -INFINITY));
    df_graph_output(g, masked);
    df_graph_output(g, df_softmax(g, masked, -1));
    float xv[] = {1, 2, 3, 4, 5, 6}, kv[] = {1, 0, 1};
    df_tensor in[2] = {F32(xv, 2, 3), F32(kv, 3)}, out[2];
    run_all(g, in, 2, out, 2);
    const float *m = out[0].data, *p = out[1].data;
    cr_expect(m[0] == 1 && isinf(m[1]) && m[2] == 3 && m[3] == 4 && isinf(m[4]) && m[5] == 6);
    float e = expf(-2) / (1 + expf(-2));
    float pe[] = {e, 0, 1 - e, e, 0, 1 - e};
    expect_close(p, pe, 6, 1e-6f);
    df_graph_free(g);
    g = df_graph_new();
    expect_error(g, df_where(g, PH(g, 2), PH(g, 3), PH(g, 3)), DF_ERR_SHAPE, "cannot broadcast cond (2)");
    df_graph_free(g);
}

Test(cast, truncates_toward_zero_and_refuses_what_does_not_fit)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4);
    df_node *i = df_cast(g, x, DF_I32);
    df_graph_output(g, i);
    df_graph_output(g, df_cast(g, i, DF_F32));
    cr_expect_eq(df_cast(g, x, DF_F32), x, "a cast to the same dtype is the input");
    float xv[] = {-1.7f, 2.9f, 0, -2147483520.0f};
    df_tensor in = F32(xv, 4), out[2];
    run_all(g, &in, 1, out, 2);
    const int32_t *iv = out[0].data;
    cr_expect(iv[0] == -1 && iv[1] == 2 && iv[2] == 0 && iv[3] == -2147483520, "%d %d %d %d", iv[0], iv[1], iv[2], iv[3]);
    float back[] = {-1, 2, 0, -2147483520.0f};
    expect_close(out[1].data, back, 4, 0);
    float bad[] = {1, 3e9f, NAN, 2};
    in = F32(bad, 4);
    cr_expect_eq(df_graph_run(g, &in, 1, out, 2), DF_ERR_RANGE);
    cr_expect(strstr(df_last_error(), "3e+09") && strstr(df_last_error(), "index 1"), "%s", df_last_error());
    bad[1] = 0;
    cr_expect_eq(df_graph_run(g, &in, 1, out, 2), DF_ERR_RANGE);
    cr_expect(strstr(df_last_error(), "nan") && strstr(df_last_error(), "index 2"), "%s", df_last_error());
    df_graph_free(g);
}

Test(causal_mask, hides_the_future_with_and_without_cached_keys)
{
    df_graph *g = df_graph_new();
    df_node *sq = PH(g, 3, 3), *cached = PH(g, 2, 4);
    df_graph_output(g, df_causal_mask(g, sq, -INFINITY));
    df_graph_output(g, df_causal_mask(g, cached, -9));
    float a[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    df_tensor in[2] = {F32(a, 3, 3), F32(b, 2, 4)}, out[2];
    run_all(g, in, 2, out, 2);
    const float *y = out[0].data;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            cr_expect(j > i ? isinf(y[i * 3 + j]) && y[i * 3 + j] < 0 : y[i * 3 + j] == a[i * 3 + j], "(%d,%d) = %g", i, j,
                      y[i * 3 + j]);
    float e[] = {1, 2, 3, -9, 5, 6, 7, 8};   /* 2 queries at positions 2 and 3 of 4 keys */
    expect_close(out[1].data, e, 8, 0);
    df_graph_free(g);
    g = df_graph_new();
    expect_error(g, df_causal_mask(g, PH(g, 4, 3), -INFINITY), DF_ERR_SHAPE, "S >= T");
    df_graph_free(g);
}

Test(pow_clip, reference_values)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4);
    df_graph_output(g, df_pow(g, x, 3.0f));
    df_graph_output(g, df_pow(g, x, 0.5f));
    df_graph_output(g, df_pow(g, x, 0.0f));
    df_graph_output(g, df_clip(g, x, -1.0f, 0.5f));
    float xv[] = {-2, 0.25f, 1, 4};
    df_tensor in = F32(xv, 4), out[4];
    run_all(g, &in, 1, out, 4);
    float cube[] = {-8, 0.015625f, 1, 64}, zero[] = {1, 1, 1, 1}, clip[] = {-1, 0.25f, 0.5f, 0.5f};
    expect_close(out[0].data, cube, 4, 0);
    const float *root = out[1].data;
    cr_expect(isnan(root[0]) && root[1] == 0.5f && root[2] == 1 && root[3] == 2, "%g %g %g %g", root[0], root[1],
              root[2], root[3]);
    expect_close(out[2].data, zero, 4, 0);
    expect_close(out[3].data, clip, 4, 0);
    df_graph_free(g);
    g = df_graph_new();
    expect_error(g, df_clip(g, PH(g, 2), 1.0f, -1.0f), DF_ERR_ARG, "lo 1 must be <= hi -1");
    df_graph_free(g);
}

Test(pow_clip, clip_gradient_flows_only_inside)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4), *dx;
    cr_assert_eq(df_gradients(g, df_sum(g, df_clip(g, x, -1.0f, 1.0f), NULL, 0, false), NULL, 1, &x, &dx), DF_OK);
    df_graph_output(g, dx);
    float xv[] = {-3, -0.5f, 0.75f, 2};
    df_tensor in = F32(xv, 4);
    float e[] = {0, 1, 1, 0};
    expect_close(run1(g, &in, 1).data, e, 4, 0);
    df_graph_free(g);
}
