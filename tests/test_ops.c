/* test_ops.c — gradcheck over the whole op registry over several seeds, the
 * registry's coverage (cases or a stated reason for every op), proofs that
 * the checker catches wrong, zero, NaN and infinite gradients, and
 * hand-computed forward reference values. */
#include "helpers.h"
#include "../graph/gradcheck.h"
#include "../ops/registry.h"

/* Each case runs over this many seeds: different inputs and loss weights. */
#define GC_SEEDS 5

static bool has_cases(const df_op_def *op) { return op->gradcheck && op->gradcheck[0].build; }
static bool has_reason(const df_op_def *op) { return op->no_gradcheck && op->no_gradcheck[0]; }

/* Every case of every op that has cases passes, over several seeds. */
Test(gradcheck, every_registered_op)
{
    int cases = 0, ops_checked = 0;
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (!has_cases(op)) continue;
        ops_checked++;
        for (const df_gradcheck_case *c = op->gradcheck; c->build; c++, cases++) {
            int seeds_exercising_every_input = 0;
            for (int s = 0; s < GC_SEEDS; s++) {
                uint64_t seed = 1234 + (uint64_t)(cases * GC_SEEDS + s);
                df_gradcheck_result r;
                df_status st = df_gradcheck_case_run(c, seed, &r);
                cr_expect_eq(st, DF_OK, "%s / %s seed %llu: %s", op->name, c->desc, (unsigned long long)seed,
                             df_last_error());
                if (st != DF_OK) continue;
                cr_expect_gt(r.checked, 0, "%s / %s checked nothing", op->name, c->desc);
                if (r.inputs_without_gradient == 0) seeds_exercising_every_input++;
                cr_expect_eq(r.failed, 0,
                             "%s / %s seed %llu: %d of %d entries off (%d NaN/Inf); worst input %d[%lld] "
                             "analytic %.6g numeric %.6g",
                             op->name, c->desc, (unsigned long long)seed, r.failed, r.checked, r.nonfinite,
                             r.worst_input, (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
            }
            /* One seed may draw, say, only negative inputs for relu; every
             * seed leaving an input's gradient at zero means the case cannot
             * catch a wrong backward for that input. */
            cr_expect_gt(seeds_exercising_every_input, 0,
                         "%s / %s: in every seed some f32 input has an all-zero numeric gradient", op->name,
                         c->desc);
        }
    }
    cr_log_info("gradcheck: %d ops, %d cases x %d seeds", ops_checked, cases, GC_SEEDS);
    cr_expect_geq(ops_checked, 10);
}

/* Each op either has gradcheck cases or says why not, never both, and an op
 * with a backward always has cases. */
Test(gradcheck, every_op_has_cases_or_a_reason)
{
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        cr_expect(has_cases(op) || has_reason(op), "op '%s' has neither gradcheck cases nor a no_gradcheck reason",
                  op->name);
        cr_expect(!(has_cases(op) && has_reason(op)), "op '%s' has gradcheck cases and also says it has none: \"%s\"",
                  op->name, op->no_gradcheck);
        if (op->backward)
            cr_expect(has_cases(op), "op '%s' has a backward but no gradcheck cases (\"%s\")", op->name,
                      op->no_gradcheck ? op->no_gradcheck : "");
    }
}

/* Whether some gradcheck case's graph (forward and backward) has a node of op. */
static bool built_by_some_case(const df_op_def *target)
{
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        for (const df_gradcheck_case *c = has_cases(op) ? op->gradcheck : NULL; c && c->build; c++) {
            df_graph *g;
            df_status st = df_gradcheck_case_graph(c, &g);
            cr_expect_eq(st, DF_OK, "%s / %s: %s", op->name, c->desc, df_last_error());
            if (st != DF_OK) continue;
            bool found = false;
            for (int k = 0; k < g->n_nodes && !found; k++) found = g->nodes[k]->op == target;
            df_graph_free(g);
            if (found) return true;
        }
    }
    return false;
}

/* "gradient op: checked through X's cases" holds only if some case builds it. */
Test(gradcheck, gradient_ops_are_built_by_checked_cases)
{
    int gradient_ops = 0;
    for (int i = 0; i < df_op_registry_count; i++) {
        const df_op_def *op = df_op_registry[i];
        if (!has_reason(op) || strncmp(op->no_gradcheck, "gradient op", 11) != 0) continue;
        gradient_ops++;
        cr_expect(built_by_some_case(op), "op '%s' says \"%s\", but no gradcheck case's backward builds it",
                  op->name, op->no_gradcheck);
    }
    cr_expect_geq(gradient_ops, 1);
}

/* tanh with a deliberately wrong backward (dy instead of dy * (1 - y^2)). */
static df_status wrong_tanh_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    dx[0] = dy;
    return df_graph_status(g);
}

static df_op_def wrong_tanh;

static df_node *build_wrong_tanh(df_graph *g, df_node **in)
{
    return df_node_new(g, &wrong_tanh, 1, in, NULL);
}

Test(gradcheck, catches_a_wrong_gradient)
{
    wrong_tanh = df_op_tanh;
    wrong_tanh.name = "wrong_tanh";
    wrong_tanh.backward = wrong_tanh_backward;
    df_gradcheck_case c = {"wrong tanh", 1, {{DF_F32, 2, {2, 3}, -1.5f, 1.5f}}, build_wrong_tanh, 0, 0};
    df_gradcheck_result r;
    cr_assert_eq(df_gradcheck_case_run(&c, 99, &r), DF_OK, "%s", df_last_error());
    cr_expect_gt(r.failed, 0, "the checker accepted a wrong gradient");
    /* and the real tanh passes the same case */
    wrong_tanh.backward = df_op_tanh.backward;
    cr_assert_eq(df_gradcheck_case_run(&c, 99, &r), DF_OK);
    cr_expect_eq(r.failed, 0);
}

/* tanh whose backward is the real one times a mask: 1 leaves an entry right,
 * NaN, Inf, 0 or 1.003 corrupt it. The case's input is (2,3). */
static float tanh_mask[6];

static df_status masked_tanh_backward(df_graph *g, df_node *n, df_node *dy, const bool *need, df_node **dx)
{
    df_status st = df_op_tanh.backward(g, n, dy, need, dx);
    if (st != DF_OK) return st;
    df_tensor mask = df_tensor_make(DF_F32, tanh_mask, n->ndim, n->shape);
    dx[0] = df_mul(g, dx[0], df_constant(g, &mask));
    return df_graph_status(g);
}

static df_op_def masked_tanh;

static df_node *build_masked_tanh(df_graph *g, df_node **in)
{
    return df_node_new(g, &masked_tanh, 1, in, NULL);
}

/* Runs the (2,3) masked tanh case with the given mask. */
static df_gradcheck_result run_masked_tanh(const float mask[6])
{
    masked_tanh = df_op_tanh;
    masked_tanh.name = "masked_tanh";
    masked_tanh.backward = masked_tanh_backward;
    memcpy(tanh_mask, mask, sizeof tanh_mask);
    df_gradcheck_case c = {"masked tanh", 1, {{DF_F32, 2, {2, 3}, -1.5f, 1.5f}}, build_masked_tanh, 0, 0};
    df_gradcheck_result r;
    cr_assert_eq(df_gradcheck_case_run(&c, 99, &r), DF_OK, "%s", df_last_error());
    return r;
}

Test(gradcheck, the_mask_of_ones_passes)
{
    df_gradcheck_result r = run_masked_tanh((float[6]){1, 1, 1, 1, 1, 1});
    cr_expect_eq(r.checked, 6);
    cr_expect_eq(r.failed, 0);
    cr_expect_eq(r.nonfinite, 0);
    cr_expect(isfinite(r.max_abs_err));
}

Test(gradcheck, catches_a_nan_gradient)
{
    df_gradcheck_result r = run_masked_tanh((float[6]){NAN, NAN, NAN, NAN, NAN, NAN});
    cr_expect_eq(r.failed, 6, "the checker accepted %d NaN entries", 6 - r.failed);
    cr_expect_eq(r.nonfinite, 6);
    cr_expect(isinf(r.max_abs_err), "max_abs_err %g", r.max_abs_err);
    cr_expect(isnan(r.worst_analytic), "worst analytic %g", r.worst_analytic);
}

Test(gradcheck, catches_an_infinite_gradient)
{
    df_gradcheck_result r = run_masked_tanh((float[6]){INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY});
    cr_expect_eq(r.failed, 6, "the checker accepted %d infinite entries", 6 - r.failed);
    cr_expect_eq(r.nonfinite, 6);
    cr_expect(isinf(r.worst_analytic), "worst analytic %g", r.worst_analytic);
}

/* A non-finite entry is reported as the worst even among large finite errors
 * before and after it. */
Test(gradcheck, reports_the_first_non_finite_entry_as_worst)
{
    df_gradcheck_result r = run_masked_tanh((float[6]){1.5f, NAN, 1.5f, INFINITY, 1.5f, 1.5f});
    cr_expect_eq(r.failed, 6);
    cr_expect_eq(r.nonfinite, 2);
    cr_expect_eq(r.worst_input, 0);
    cr_expect_eq(r.worst_index, 1, "worst entry %lld (analytic %g)", (long long)r.worst_index, r.worst_analytic);
    cr_expect(isnan(r.worst_analytic));
    cr_expect(isinf(r.max_abs_err));
}

Test(gradcheck, catches_a_zero_gradient)
{
    df_gradcheck_result r = run_masked_tanh((float[6]){0, 0, 0, 0, 0, 0});
    cr_expect_geq(r.failed, 5, "only %d of 6 zero entries caught", r.failed);
    cr_expect_eq(r.nonfinite, 0);
}

/* The default tolerances are tight enough to see a 0.3% error on entries of
 * moderate size (those of 1e-3 atol and 5e-3 rtol were not). */
Test(gradcheck, catches_a_gradient_off_by_three_tenths_of_a_percent)
{
    df_gradcheck_result r = run_masked_tanh((float[6]){1.003f, 1, 1.003f, 1, 1.003f, 1});
    cr_expect_gt(r.failed, 0, "a 0.3%% error on three entries passed");
    cr_expect_leq(r.failed, 3);
}

static df_node *build_log(df_graph *g, df_node **in) { return df_log(g, in[0]); }

/* log of negative inputs: the forward, hence the numeric gradient, is NaN
 * while the analytic one (dy / x) is finite. */
Test(gradcheck, catches_a_nan_numeric_gradient)
{
    df_gradcheck_case c = {"log of negatives", 1, {{DF_F32, 1, {5}, -2.0f, -0.5f}}, build_log, 0, 0};
    df_gradcheck_result r;
    cr_assert_eq(df_gradcheck_case_run(&c, 7, &r), DF_OK, "%s", df_last_error());
    cr_expect_eq(r.failed, 5);
    cr_expect_eq(r.nonfinite, 5);
    cr_expect(isnan(r.worst_numeric), "worst numeric %g", r.worst_numeric);
    cr_expect(isfinite(r.worst_analytic));
}

static df_node *build_ignoring_second(df_graph *g, df_node **in) { return df_tanh(g, in[0]); }

/* A case whose loss ignores an input cannot check that input's gradient. */
Test(gradcheck, flags_an_input_the_loss_ignores)
{
    df_gradcheck_case c = {"tanh(a), b unused", 2, {{DF_F32, 1, {3}, -1.0f, 1.0f}, {DF_F32, 1, {2}, -1.0f, 1.0f}},
                           build_ignoring_second, 0, 0};
    df_gradcheck_result r;
    cr_assert_eq(df_gradcheck_case_run(&c, 5, &r), DF_OK, "%s", df_last_error());
    cr_expect_eq(r.failed, 0);
    cr_expect_eq(r.inputs_without_gradient, 1);
}

/* ----------------------------------------------------------- reference values */

Test(reference, elementwise_broadcast)
{
    df_graph *g = df_graph_new();
    df_node *a = PH(g, 2, 3), *b = PH(g, 3);
    df_node *y = df_div(g, df_mul(g, df_sub(g, df_add(g, a, b), b), b), df_add(g, b, df_scalar(g, 1)));
    df_graph_output(g, y);
    float av[] = {1, 2, 3, 4, 5, 6}, bv[] = {1, 3, -0.5f};
    df_tensor in[2] = {F32(av, 2, 3), F32(bv, 3)};
    df_tensor out = run1(g, in, 2);
    /* ((a + b - b) * b) / (b + 1) */
    float expected[] = {1 * 1 / 2.0f, 2 * 3 / 4.0f, 3 * -0.5f / 0.5f, 4 * 1 / 2.0f, 5 * 3 / 4.0f, 6 * -0.5f / 0.5f};
    cr_assert_eq(out.ndim, 2);
    expect_close(out.data, expected, 6, 1e-6f);
    df_graph_free(g);
}

Test(reference, unary)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4);
    df_node *outs[] = {df_neg(g, x), df_exp(g, x), df_tanh(g, x), df_sigmoid(g, x), df_relu(g, x), df_step(g, x)};
    for (int i = 0; i < 6; i++) df_graph_output(g, outs[i]);
    df_node *lx = df_log(g, df_exp(g, x));
    df_graph_output(g, lx);
    float xv[] = {-1, 0, 0.5f, 2};
    df_tensor in = F32(xv, 4), out[7];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 7), DF_OK, "%s", df_last_error());
    float e[7][4] = {
        {1, 0, -0.5f, -2},
        {0.36787944f, 1, 1.6487213f, 7.3890561f},
        {-0.76159416f, 0, 0.46211716f, 0.96402758f},
        {0.26894142f, 0.5f, 0.62245933f, 0.88079708f},
        {0, 0, 0.5f, 2},
        {0, 0, 1, 1},
        {-1, 0, 0.5f, 2},
    };
    for (int i = 0; i < 7; i++) expect_close(out[i].data, e[i], 4, 1e-6f);
    df_graph_free(g);
}

Test(reference, matmul_with_transposes_and_sequences)
{
    df_graph *g = df_graph_new();
    df_node *a = PH(g, 2, 3), *b = PH(g, 3, 2), *seq = PH(g, 2, 1, 3);
    df_graph_output(g, df_matmul(g, a, b, false, false));       /* (2,2) */
    df_graph_output(g, df_matmul(g, a, a, true, false));        /* (3,3) = a^T a */
    df_graph_output(g, df_matmul(g, seq, b, false, false));     /* (2,1,2) */
    float av[] = {1, 2, 3, 4, 5, 6}, bv[] = {1, 0, 0, 1, 1, 1};
    df_tensor in[3] = {F32(av, 2, 3), F32(bv, 3, 2), F32(av, 2, 1, 3)}, out[3];
    cr_assert_eq(df_graph_run(g, in, 3, out, 3), DF_OK, "%s", df_last_error());
    float ab[] = {4, 5, 10, 11};
    float ata[] = {17, 22, 27, 22, 29, 36, 27, 36, 45};
    expect_close(out[0].data, ab, 4, 0);
    expect_close(out[1].data, ata, 9, 0);
    expect_close(out[2].data, ab, 4, 0);
    cr_expect_eq(out[2].ndim, 3);
    cr_expect_eq(out[2].shape[2], 2);
    df_graph_free(g);
}

Test(reference, reductions_and_broadcast)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 3, 2);
    df_graph_output(g, df_sum(g, x, NULL, 0, false));
    df_graph_output(g, df_sum(g, x, (int[]){1}, 1, false));
    df_graph_output(g, df_mean(g, x, (int[]){0, 2}, 2, true));
    df_graph_output(g, df_sum_to(g, x, 2, SHAPE(1, 2)));
    df_graph_output(g, df_broadcast_to(g, df_sum(g, x, (int[]){0, 1}, 2, false), 2, SHAPE(2, 2)));
    float xv[12];
    for (int i = 0; i < 12; i++) xv[i] = (float)i;
    df_tensor in = F32(xv, 2, 3, 2), out[5];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 5), DF_OK, "%s", df_last_error());
    cr_expect_eq(out[0].ndim, 0);
    cr_expect_float_eq(*(float *)out[0].data, 66.0f, 0);
    float s1[] = {0 + 2 + 4, 1 + 3 + 5, 6 + 8 + 10, 7 + 9 + 11};
    expect_close(out[1].data, s1, 4, 0);
    float m02[] = {(0 + 1 + 6 + 7) / 4.0f, (2 + 3 + 8 + 9) / 4.0f, (4 + 5 + 10 + 11) / 4.0f};
    cr_expect_eq(out[2].ndim, 3);
    expect_close(out[2].data, m02, 3, 1e-6f);
    float st[] = {0 + 2 + 4 + 6 + 8 + 10, 1 + 3 + 5 + 7 + 9 + 11};
    expect_close(out[3].data, st, 2, 0);
    float bc[] = {30, 36, 30, 36};
    expect_close(out[4].data, bc, 4, 0);
    df_graph_free(g);
}

Test(reference, reshape_is_a_view)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 3);
    df_node *r = df_reshape(g, x, 2, SHAPE(3, -1));
    cr_assert_not_null(r);
    cr_expect_eq(df_node_dim(r, 0), 3);
    cr_expect_eq(df_node_dim(r, 1), 2);
    df_graph_output(g, r);
    df_graph_output(g, x);
    float xv[] = {1, 2, 3, 4, 5, 6};
    df_tensor in = F32(xv, 2, 3), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK);
    cr_expect_eq(out[0].data, out[1].data, "reshape copied instead of sharing the buffer");
    expect_close(out[0].data, xv, 6, 0);
    df_graph_free(g);
}

/* One-row products take OpenBLAS's sgemv path: check every transpose combination. */
Test(reference, one_row_matmul_in_all_transpose_forms)
{
    float a[3] = {1, 2, 3};                       /* (1,3), or (3,1) transposed */
    float b[6] = {1, 2, 3, 4, 5, 6};              /* (3,2), or (2,3) transposed */
    float expected_nn[2] = {1 * 1 + 2 * 3 + 3 * 5, 1 * 2 + 2 * 4 + 3 * 6};   /* a @ b */
    float expected_nt[2] = {1 * 1 + 2 * 2 + 3 * 3, 1 * 4 + 2 * 5 + 3 * 6};   /* a @ b^T, b as (2,3) */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            df_graph *g = df_graph_new();
            df_node *A = ta ? PH(g, 3, 1) : PH(g, 1, 3), *B = tb ? PH(g, 2, 3) : PH(g, 3, 2);
            df_graph_output(g, df_matmul(g, A, B, ta, tb));
            df_tensor in[2] = {ta ? F32(a, 3, 1) : F32(a, 1, 3), tb ? F32(b, 2, 3) : F32(b, 3, 2)};
            df_tensor out = run1(g, in, 2);
            cr_expect_eq(out.shape[0], 1);
            expect_close(out.data, tb ? expected_nt : expected_nn, 2, 0);
            df_graph_free(g);
        }
}

/* The transformer's elementwise ops against values computed in double
 * (Python's math module: erf, log1p, the GELU formulas). */
Test(reference, transformer_unary_ops)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4), *p = PH(g, 3);
    df_node *outs[] = {df_erf(g, x), df_gelu(g, x), df_gelu_tanh(g, x), df_abs(g, x),
                       df_softplus(g, x), df_sqrt(g, p), df_rsqrt(g, p)};
    for (int i = 0; i < 7; i++) df_graph_output(g, outs[i]);
    float xv[] = {-1, 0, 0.5f, 2}, pv[] = {4, 2, 0.25f};
    df_tensor in[2] = {F32(xv, 4), F32(pv, 3)}, out[7];
    cr_assert_eq(df_graph_run(g, in, 2, out, 7), DF_OK, "%s", df_last_error());
    float erf_e[] = {-0.84270079f, 0, 0.52049988f, 0.99532227f};
    float gelu_e[] = {-0.15865525f, 0, 0.34573123f, 1.95449974f};
    float gelu_tanh_e[] = {-0.15880801f, 0, 0.34571401f, 1.95459769f};
    float abs_e[] = {1, 0, 0.5f, 2};
    float softplus_e[] = {0.31326169f, 0.69314718f, 0.97407698f, 2.12692801f};
    float sqrt_e[] = {2, 1.41421356f, 0.5f}, rsqrt_e[] = {0.5f, 0.70710678f, 2};
    expect_close(out[0].data, erf_e, 4, 1e-6f);
    expect_close(out[1].data, gelu_e, 4, 1e-6f);
    expect_close(out[2].data, gelu_tanh_e, 4, 1e-6f);
    expect_close(out[3].data, abs_e, 4, 0);
    expect_close(out[4].data, softplus_e, 4, 1e-6f);
    expect_close(out[5].data, sqrt_e, 3, 1e-6f);
    expect_close(out[6].data, rsqrt_e, 3, 1e-6f);
    df_graph_free(g);
}

Test(reference, softplus_is_x_past_its_threshold)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 3);
    df_graph_output(g, df_softplus(g, x));
    float xv[] = {20.5f, 30, 90};             /* exp(90) overflows float: still exactly x */
    df_tensor in = F32(xv, 3);
    df_tensor out = run1(g, &in, 1);
    expect_close(out.data, xv, 3, 0);
    df_graph_free(g);
}

Test(reference, maximum_minimum_and_comparisons)
{
    df_graph *g = df_graph_new();
    df_node *a = PH(g, 2, 3), *b = PH(g, 3);
    df_node *outs[] = {df_maximum(g, a, b), df_minimum(g, a, b), df_equal(g, a, b), df_less(g, a, b),
                       df_greater(g, a, b)};
    for (int i = 0; i < 5; i++) df_graph_output(g, outs[i]);
    float av[] = {1, -2, 3, 0.5f, NAN, -1}, bv[] = {0.5f, -2, NAN};
    df_tensor in[2] = {F32(av, 2, 3), F32(bv, 3)}, out[5];
    cr_assert_eq(df_graph_run(g, in, 2, out, 5), DF_OK, "%s", df_last_error());
    const float *mx = out[0].data, *mn = out[1].data;
    float mx_e[] = {1, -2, NAN, 0.5f, NAN, NAN}, mn_e[] = {0.5f, -2, NAN, 0.5f, NAN, NAN};
    for (int i = 0; i < 6; i++) {
        cr_expect(isnan(mx_e[i]) ? isnan(mx[i]) : mx[i] == mx_e[i], "maximum[%d] = %g", i, mx[i]);
        cr_expect(isnan(mn_e[i]) ? isnan(mn[i]) : mn[i] == mn_e[i], "minimum[%d] = %g", i, mn[i]);
    }
    float eq[] = {0, 1, 0, 1, 0, 0}, lt[] = {0, 0, 0, 0, 0, 0}, gt[] = {1, 0, 0, 0, 0, 0};
    expect_close(out[2].data, eq, 6, 0);
    expect_close(out[3].data, lt, 6, 0);
    expect_close(out[4].data, gt, 6, 0);
    df_graph_free(g);
}

/* At a tie each operand of maximum gets half the gradient (torch's rule). */
Test(reference, maximum_splits_the_gradient_at_a_tie)
{
    df_graph *g = df_graph_new();
    df_node *a = PH(g, 3), *b = PH(g, 3);
    df_node *grads[2];
    cr_assert_eq(df_gradients(g, df_sum(g, df_maximum(g, a, b), NULL, 0, false), NULL, 2, (df_node *[]){a, b}, grads),
                 DF_OK, "%s", df_last_error());
    df_graph_output(g, grads[0]);
    df_graph_output(g, grads[1]);
    float av[] = {1, 2, 3}, bv[] = {0, 2, 4};
    df_tensor in[2] = {F32(av, 3), F32(bv, 3)}, out[2];
    cr_assert_eq(df_graph_run(g, in, 2, out, 2), DF_OK, "%s", df_last_error());
    float da[] = {1, 0.5f, 0}, db[] = {0, 0.5f, 1};
    expect_close(out[0].data, da, 3, 0);
    expect_close(out[1].data, db, 3, 0);
    df_graph_free(g);
}
