/* test_graph.c — tracing and the signature cache, autodiff (fan-out, grad of
 * grad, tape scope), optimizers against hand-computed steps, the planner,
 * side-effect ordering, determinism and the DOT dump. */
#include <stdio.h>
#include <unistd.h>
#include "helpers.h"
#include <criterion/redirect.h>

/* ------------------------------------------------------------------ tracing */

typedef struct affine { df_variable *w; int builds; } affine;

/* x (B,2) -> x @ w (B,3) */
static df_status build_affine(df_graph *g, df_node **in, void *user)
{
    affine *m = user;
    m->builds++;
    df_graph_output(g, df_matmul(g, in[0], df_var(g, m->w), false, false));
    return df_graph_status(g);
}

Test(tracing, one_signature_traces_once_new_batch_traces_again)
{
    affine m = {.w = df_variable_new("w", DF_F32, 2, SHAPE(2, 3), df_init_ones(), NULL)};
    df_function *f = df_function_new("affine", build_affine, &m);
    float x4[8] = {1, 2, 3, 4, 5, 6, 7, 8}, x2[4] = {1, 1, 2, 2};
    df_tensor in4 = F32(x4, 4, 2), in2 = F32(x2, 2, 2), out;
    for (int i = 0; i < 100; i++) cr_assert_eq(df_function_call(f, &in4, 1, &out, 1), DF_OK, "%s", df_last_error());
    cr_expect_eq(df_function_trace_count(f), 1);
    cr_expect_eq(m.builds, 1);
    cr_assert_eq(df_function_call(f, &in2, 1, &out, 1), DF_OK);
    cr_expect_eq(df_function_trace_count(f), 2, "a new batch size must trace again");
    cr_expect_eq(out.shape[0], 2);
    cr_expect_float_eq(((float *)out.data)[0], 2.0f, 0);
    /* Variables are shared across traces: changing w changes both traces' results. */
    float w2[6] = {2, 2, 2, 2, 2, 2};
    df_tensor wt = F32(w2, 2, 3);
    cr_assert_eq(df_variable_assign(m.w, &wt), DF_OK);
    cr_assert_eq(df_function_call(f, &in4, 1, &out, 1), DF_OK);
    cr_expect_float_eq(((float *)out.data)[0], 6.0f, 0);     /* (1+2)*2 */
    cr_assert_eq(df_function_call(f, &in2, 1, &out, 1), DF_OK);
    cr_expect_float_eq(((float *)out.data)[0], 4.0f, 0);
    cr_expect_eq(df_function_trace_count(f), 2);
    /* A new dtype is a new signature too; this one fails in the builder. */
    int32_t xi[8] = {0};
    df_tensor ini = I32(xi, 4, 2);
    cr_expect_eq(df_function_call(f, &ini, 1, &out, 1), DF_ERR_DTYPE);
    cr_expect(strstr(df_last_error(), "matmul") != NULL, "message: %s", df_last_error());
    df_function_free(f);
    df_variable_free(m.w);
}

Test(tracing, signature_hash_depends_on_dtype_and_shape_only)
{
    float a[6], b[6];
    df_tensor t1 = F32(a, 2, 3), t2 = F32(b, 2, 3), t3 = F32(a, 3, 2), t4 = I32(a, 2, 3);
    cr_expect_eq(df_signature_hash(&t1, 1), df_signature_hash(&t2, 1));
    cr_expect_neq(df_signature_hash(&t1, 1), df_signature_hash(&t3, 1));
    cr_expect_neq(df_signature_hash(&t1, 1), df_signature_hash(&t4, 1));
}

/* ----------------------------------------------------------------- autodiff */

Test(autodiff, fan_out_gradients_are_summed)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 3);
    df_node *y = df_sum(g, df_add(g, df_mul(g, x, x), df_scale(g, x, 5.0f)), NULL, 0, false);
    df_node *dx;
    cr_assert_eq(df_gradients(g, y, NULL, 1, &x, &dx), DF_OK, "%s", df_last_error());
    df_graph_output(g, dx);
    float xv[] = {1, -2, 0.5f};
    df_tensor in = F32(xv, 3);
    df_tensor out = run1(g, &in, 1);
    float e[] = {2 * 1 + 5, 2 * -2 + 5, 2 * 0.5f + 5};
    expect_close(out.data, e, 3, 1e-6f);
    df_graph_free(g);
}

Test(autodiff, second_derivative_of_cube)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 3);
    df_node *y = df_sum(g, df_mul(g, df_mul(g, x, x), x), NULL, 0, false);
    df_node *d1, *d2;
    cr_assert_eq(df_gradients(g, y, NULL, 1, &x, &d1), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_gradients(g, df_sum(g, d1, NULL, 0, false), NULL, 1, &x, &d2), DF_OK, "%s", df_last_error());
    df_graph_output(g, d1);
    df_graph_output(g, d2);
    float xv[] = {2, -1, 0.5f};
    df_tensor in = F32(xv, 3), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK);
    float e1[] = {12, 3, 0.75f}, e2[] = {12, -6, 3};   /* 3x^2 and 6x */
    expect_close(out[0].data, e1, 3, 1e-5f);
    expect_close(out[1].data, e2, 3, 1e-5f);
    df_graph_free(g);
}

Test(autodiff, second_derivative_of_tanh)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4);
    df_node *d1, *d2;
    cr_assert_eq(df_gradients(g, df_sum(g, df_tanh(g, x), NULL, 0, false), NULL, 1, &x, &d1), DF_OK);
    cr_assert_eq(df_gradients(g, df_sum(g, d1, NULL, 0, false), NULL, 1, &x, &d2), DF_OK, "%s", df_last_error());
    df_graph_output(g, d1);
    df_graph_output(g, d2);
    /* Both derivatives: a sign error in tanh's backward cancels in the second
     * (it enters twice) but not in the first. */
    float xv[] = {0.5f, -1, 0, 2};
    df_tensor in = F32(xv, 4), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK, "%s", df_last_error());
    float e1[4], e2[4];
    for (int i = 0; i < 4; i++) {
        double t = tanh(xv[i]);
        e1[i] = (float)(1 - t * t);             /* d/dx tanh = sech^2 */
        e2[i] = (float)(-2 * t * (1 - t * t));  /* d2/dx2 tanh = -2 tanh sech^2 */
    }
    expect_close(out[0].data, e1, 4, 1e-6f);
    expect_close(out[1].data, e2, 4, 1e-5f);
    df_graph_free(g);
}

Test(autodiff, tape_records_only_its_scope)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2);
    df_node *outside = df_mul(g, x, x);          /* not recorded: a constant to the tape */
    df_tape *tape = df_tape_begin(g);
    df_node *y = df_sum(g, df_mul(g, outside, x), NULL, 0, false);
    df_tape_end(tape);
    df_node *dx, *dall;
    cr_assert_eq(df_tape_gradient_nodes(tape, y, 1, &x, &dx), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_gradients(g, y, NULL, 1, &x, &dall), DF_OK);
    df_graph_output(g, dx);
    df_graph_output(g, dall);
    float xv[] = {2, 3};
    df_tensor in = F32(xv, 2), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK);
    float tape_e[] = {4, 9}, full_e[] = {12, 27};   /* x^2 vs d(x^3) = 3x^2 */
    expect_close(out[0].data, tape_e, 2, 1e-6f);
    expect_close(out[1].data, full_e, 2, 1e-6f);
    df_graph_free(g);
}

Test(autodiff, unused_source_gets_zero_gradient)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2), *z = PH(g, 3);
    df_node *dz;
    cr_assert_eq(df_gradients(g, df_sum(g, x, NULL, 0, false), NULL, 1, &z, &dz), DF_OK);
    cr_expect_eq(df_node_ndim(dz), 1);
    cr_expect_eq(df_node_dim(dz, 0), 3);
    df_graph_output(g, dz);
    float xv[] = {1, 2}, zv[] = {3, -4, 5};
    df_tensor in[2] = {F32(xv, 2), F32(zv, 3)};
    df_tensor out = run1(g, in, 2);
    cr_assert_eq(df_tensor_numel(&out), 3);
    float zeros[3] = {0};
    expect_close(out.data, zeros, 3, 0);
    df_graph_free(g);
}

/* --------------------------------------------------------------- optimizers */

Test(optimizer, adam_matches_hand_computed_steps)
{
    linear_model m = {.w = df_variable_new("w", DF_F32, 1, SHAPE(2), df_init_constant(1.0f), NULL), .opt = df_adam_default()};
    df_function *f = df_function_new("adam_step", linear_model_step, &m);
    float c[2] = {0.5f, -1.0f};
    df_tensor in = F32(c, 2), loss;
    /* Keras Adam, by hand in double: lr 1e-3, b1 .9, b2 .999, eps 1e-7. */
    double w[2] = {1, 1}, mm[2] = {0}, vv[2] = {0};
    for (int t = 1; t <= 3; t++) {
        cr_assert_eq(df_function_call(f, &in, 1, &loss, 1), DF_OK, "%s", df_last_error());
        double lr_t = 1e-3 * sqrt(1 - pow(0.999, t)) / (1 - pow(0.9, t));
        for (int i = 0; i < 2; i++) {
            mm[i] = 0.9 * mm[i] + 0.1 * c[i];
            vv[i] = 0.999 * vv[i] + 0.001 * c[i] * c[i];
            w[i] -= lr_t * mm[i] / (sqrt(vv[i]) + 1e-7);
        }
        const float *got = df_variable_tensor(m.w).data;
        for (int i = 0; i < 2; i++) cr_expect(fabs(got[i] - w[i]) < 1e-6, "step %d w[%d]: %.8f vs %.8f", t, i, got[i], w[i]);
    }
    /* Each step moves each weight by almost exactly lr against the gradient's
     * sign (a constant gradient keeps m / sqrt(v) at about 1). */
    const float *got = df_variable_tensor(m.w).data;
    cr_expect(fabs(got[0] - (1 - 3 * 0.000999994)) < 1e-6, "w[0] after 3 steps: %.8f", got[0]);
    cr_expect(fabs(got[1] - (1 + 3 * 0.000999994)) < 1e-6, "w[1] after 3 steps: %.8f", got[1]);
    cr_expect_eq(df_optimizer_iterations(m.opt), 3);
    cr_expect_eq(df_function_trace_count(f), 1);
    df_variable *state[8];
    cr_expect_eq(df_optimizer_state(m.opt, state, 8), 4, "iterations, lr, m, v");
    df_function_free(f);
    df_optimizer_free(m.opt);
    df_variable_free(m.w);
}

Test(optimizer, sgd_step_and_learning_rate_change_without_retrace)
{
    linear_model m = {.w = df_variable_new("w", DF_F32, 1, SHAPE(2), df_init_zeros(), NULL), .opt = df_sgd_new(0.5f)};
    df_function *f = df_function_new("sgd_step", linear_model_step, &m);
    float c[2] = {1, -2};
    df_tensor in = F32(c, 2), loss;
    cr_assert_eq(df_function_call(f, &in, 1, &loss, 1), DF_OK);
    const float *w = df_variable_tensor(m.w).data;
    cr_expect_float_eq(w[0], -0.5f, 1e-7);
    cr_expect_float_eq(w[1], 1.0f, 1e-7);
    cr_assert_eq(df_optimizer_set_learning_rate(m.opt, 0.25f), DF_OK);
    const float bad[] = {-1.0f, NAN, INFINITY};
    for (int k = 0; k < 3; k++) {
        cr_expect_eq(df_optimizer_set_learning_rate(m.opt, bad[k]), DF_ERR_ARG, "rate %g refused", bad[k]);
        cr_expect(strstr(df_last_error(), "learning rate must be finite and >= 0"), "message: %s", df_last_error());
        cr_expect_eq(df_optimizer_learning_rate(m.opt), 0.25f, "the rate kept after %g", bad[k]);
    }
    cr_expect_eq(df_optimizer_set_learning_rate(NULL, 0.1f), DF_ERR_ARG);
    cr_assert_eq(df_function_call(f, &in, 1, &loss, 1), DF_OK);
    cr_expect_float_eq(w[0], -0.75f, 1e-7);
    cr_expect_float_eq(*(float *)loss.data, -0.5f - 2.0f, 1e-7, "loss reads w before the update");
    cr_expect_eq(df_function_trace_count(f), 1);
    df_function_free(f);
    df_optimizer_free(m.opt);
    df_variable_free(m.w);
}

/* ------------------------------------------------- side effects and planner */

Test(graph, reads_see_the_value_before_the_calls_assignments)
{
    df_variable *v = df_variable_new("v", DF_F32, 1, SHAPE(2), df_init_constant(1.0f), NULL);
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2);
    df_node *read = df_scale(g, df_var(g, v), 1.0f);
    df_node *after = df_assign_add(g, v, x);
    df_node *read_after = df_scale(g, after, 1.0f);
    df_graph_output(g, read);
    df_graph_output(g, read_after);
    float xv[] = {10, 20};
    df_tensor in = F32(xv, 2), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK, "%s", df_last_error());
    float before[] = {1, 1}, updated[] = {11, 21};
    expect_close(out[0].data, before, 2, 0);
    expect_close(out[1].data, updated, 2, 0);
    expect_close(df_variable_tensor(v).data, updated, 2, 0);
    df_graph_free(g);
    df_variable_free(v);
}

/* An i32 counter wraps around instead of overflowing (signed overflow would
 * be undefined; fuzz_saved found it with UBSan). */
Test(graph, assign_add_of_i32_wraps_around)
{
    df_variable *v = df_variable_new("count", DF_I32, 1, SHAPE(2), df_init_zeros(), NULL);
    cr_assert_not_null(v, "%s", df_last_error());
    int32_t start[] = {INT32_MAX, -5};
    df_tensor t = df_variable_tensor(v);
    memcpy(t.data, start, sizeof start);
    df_graph *g = df_graph_new();
    df_graph_output(g, df_assign_add(g, v, df_placeholder(g, DF_I32, 1, SHAPE(2), NULL)));
    int32_t add[] = {1, 7};
    df_tensor in = {.dtype = DF_I32, .ndim = 1, .shape = {2}, .data = add}, out;
    cr_assert_eq(df_graph_run(g, &in, 1, &out, 1), DF_OK, "%s", df_last_error());
    const int32_t *got = out.data;
    cr_expect_eq(got[0], INT32_MIN, "INT32_MAX + 1 gave %d", got[0]);
    cr_expect_eq(got[1], 2);
    df_graph_free(g);
    df_variable_free(v);
}

/* One step of the planner test's chain, on the host: h' = tanh(0.9 h) + 0.25 h^T. */
static void host_planner_step(const float *h, float *next, int n)
{
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) next[r * n + c] = tanhf(h[r * n + c] * 0.9f) + h[c * n + r] * 0.25f;
}

Test(graph, planner_reuses_dead_buffers_and_drops_dead_nodes)
{
    enum { N = 256, STEPS = 10 };
    df_graph *g = df_graph_new();
    df_graph_set_passes(g, DF_PASS_ALL & ~DF_PASS_FUSE);    /* keep the chain's buffers */
    df_node *x = PH(g, N, N), *h = x;
    for (int i = 0; i < STEPS; i++) {
        /* The transpose reads h out of place, after the scale, so a buffer given
         * away before its last reader, or a block overlapping a live one,
         * changes the numbers. */
        df_node *scaled = df_scale(g, h, 0.9f), *flipped = df_transpose(g, h, (int[]){1, 0});
        h = df_add(g, df_tanh(g, scaled), df_scale(g, flipped, 0.25f));
    }
    df_exp(g, x);                                        /* dead: nobody reads it */
    df_graph_output(g, h);
    df_graph_output(g, df_sum(g, h, NULL, 0, false));
    cr_assert_eq(df_graph_compile(g), DF_OK, "%s", df_last_error());
    df_graph_stats st;
    cr_assert_eq(df_graph_get_stats(g, &st), DF_OK);
    cr_expect_lt(st.nodes, st.nodes_total, "the dead exp should not be scheduled");
    cr_expect_lt(st.arena_bytes * 4, st.tensor_bytes, "peak %zu vs total %zu: buffers not reused", st.arena_bytes,
                 st.tensor_bytes);
    /* Every element equals the same chain computed on the host. The input is
     * neither symmetric nor periodic, so permuted or stale values show. */
    static float xv[N * N], want[N * N], tmp[N * N];
    for (int i = 0; i < N * N; i++) xv[i] = (float)((i * 7919) % 4093) / 1024.0f - 1.5f;
    memcpy(want, xv, sizeof want);
    for (int k = 0; k < STEPS; k++) {
        host_planner_step(want, tmp, N);
        memcpy(want, tmp, sizeof want);
    }
    df_tensor in = F32(xv, N, N), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_tensor_numel(&out[0]), N * N);
    expect_all_near(out[0].data, want, N * N, 1e-5, "h");
    double expected = 0;
    for (int i = 0; i < N * N; i++) expected += want[i];
    cr_expect(fabs(*(float *)out[1].data - expected) < 1e-2, "sum %f vs %f", *(float *)out[1].data, expected);
    df_graph_free(g);
}

Test(graph, same_inputs_give_bit_identical_results)
{
    df_rng rng;
    df_rng_seed(&rng, 5);
    df_variable *w = df_variable_new("w", DF_F32, 2, SHAPE(64, 128), df_init_glorot_uniform(), &rng);
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 300, 64);
    df_node *h = df_tanh(g, df_matmul(g, x, df_var(g, w), false, false));
    df_node *loss = df_mean(g, df_mul(g, h, h), NULL, 0, false);
    df_node *dw;
    cr_assert_eq(df_gradients(g, loss, NULL, 1, (df_node *[]){df_var(g, w)}, &dw), DF_OK);
    df_graph_output(g, loss);
    df_graph_output(g, df_sum(g, dw, (int[]){0}, 1, false));
    static float xv[300 * 64];
    for (int i = 0; i < 300 * 64; i++) xv[i] = df_rng_uniform(&rng) - 0.5f;
    df_tensor in = F32(xv, 300, 64), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK);
    float loss1 = *(float *)out[0].data, col1[128];
    memcpy(col1, out[1].data, sizeof col1);
    for (int rep = 0; rep < 3; rep++) {
        cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK);
        cr_expect(memcmp(&loss1, out[0].data, sizeof loss1) == 0, "loss differs on run %d", rep);
        cr_expect(memcmp(col1, out[1].data, sizeof col1) == 0, "gradient differs on run %d", rep);
    }
    df_graph_free(g);
    df_variable_free(w);
}

Test(graph, dot_dump_names_ops_and_shapes)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4, 3);
    df_graph_output(g, df_node_set_name(df_tanh(g, x), "hidden"));
    char path[] = "/tmp/dagflow_dot_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(df_graph_dump_dot(g, path), DF_OK, "%s", df_last_error());
    FILE *f = fopen(path, "r");
    char buf[4096] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    remove(path);
    cr_expect_gt(n, 0);
    cr_expect(strstr(buf, "digraph") && strstr(buf, "tanh") && strstr(buf, "hidden") && strstr(buf, "(4,3)"),
              "dot output:\n%s", buf);
    df_graph_free(g);
}

Test(variables, initialisers)
{
    df_rng rng;
    df_rng_seed(&rng, 1);
    df_variable *k = df_variable_new("k", DF_F32, 2, SHAPE(256, 1024), df_init_glorot_uniform(), &rng);
    const float *kv = df_variable_tensor(k).data;
    float limit = sqrtf(6.0f / (256 + 1024)), maxabs = 0;
    for (int i = 0; i < 256 * 1024; i++) maxabs = fmaxf(maxabs, fabsf(kv[i]));
    cr_expect(maxabs <= limit && maxabs > 0.99f * limit, "glorot max %f vs limit %f", maxabs, limit);
    df_variable *q = df_variable_new("q", DF_F32, 2, SHAPE(8, 32), df_init_orthogonal(1.0f), &rng);
    const float *qv = df_variable_tensor(q).data;
    for (int a = 0; a < 8; a++)          /* rows are orthonormal */
        for (int b = 0; b < 8; b++) {
            double dot = 0;
            for (int j = 0; j < 32; j++) dot += qv[a * 32 + j] * qv[b * 32 + j];
            cr_expect(fabs(dot - (a == b)) < 1e-5, "q q^T [%d,%d] = %f", a, b, dot);
        }
    df_variable *n = df_variable_new("n", DF_F32, 2, SHAPE(200, 500), df_init_normal(0.5f, 0.02f), &rng);
    const float *nv = df_variable_tensor(n).data;
    double sum = 0, sq = 0;
    for (int i = 0; i < 200 * 500; i++) sum += nv[i], sq += (double)nv[i] * nv[i];
    double mean = sum / 1e5, std = sqrt(sq / 1e5 - mean * mean);
    cr_expect(fabs(mean - 0.5) < 3e-4 && fabs(std - 0.02) < 3e-4, "normal: mean %f std %f", mean, std);
    cr_expect_null(df_variable_new("bad", DF_F32, 1, SHAPE(3), df_init_normal(0, -1), &rng));
    df_variable_free(k);
    df_variable_free(q);
    df_variable_free(n);
}

Test(autodiff, concat_of_many_inputs_differentiates)
{
    df_graph *g = df_graph_new();
    df_node *xs[20], *grads[20];
    for (int i = 0; i < 20; i++) xs[i] = PH(g, 1);
    df_node *w = PH(g, 20);
    df_node *y = df_sum(g, df_mul(g, df_concat(g, 20, xs, 0), w), NULL, 0, false);
    cr_assert_eq(df_gradients(g, y, NULL, 20, xs, grads), DF_OK, "%s", df_last_error());
    for (int i = 0; i < 20; i++) df_graph_output(g, grads[i]);
    float xv[20], wv[20];
    df_tensor in[21], out[20];
    for (int i = 0; i < 20; i++) {
        xv[i] = (float)i;
        wv[i] = 0.5f * (float)i;
        in[i] = F32(&xv[i], 1);
    }
    in[20] = F32(wv, 20);
    cr_assert_eq(df_graph_run(g, in, 21, out, 20), DF_OK, "%s", df_last_error());
    for (int i = 0; i < 20; i++) cr_expect_float_eq(*(float *)out[i].data, wv[i], 0, "d/dx%d", i);
    df_graph_free(g);
}

Test(graph, profiling_times_each_op_over_runs)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 128, 256), *w = PH(g, 256, 256);
    df_node *h = df_tanh(g, df_matmul(g, x, w, false, false));
    df_graph_output(g, df_sum(g, df_tanh(g, h), NULL, 0, false));
    static float xv[128 * 256], wv[256 * 256];
    df_tensor in[2] = {F32(xv, 128, 256), F32(wv, 256, 256)}, out;
    cr_assert_eq(df_graph_run(g, in, 2, &out, 1), DF_OK);      /* not profiled */
    cr_assert_eq(df_graph_set_profiling(g, true), DF_OK);
    for (int i = 0; i < 3; i++) cr_assert_eq(df_graph_run(g, in, 2, &out, 1), DF_OK);
    df_op_profile prof[8];
    int64_t runs;
    int n = df_graph_profile(g, prof, 8, &runs);
    cr_expect_eq(runs, 3);
    cr_expect_eq(n, 3, "matmul, tanh, sum (placeholders run no kernel)");
    double total = 0;
    for (int i = 0; i < n; i++) {
        total += prof[i].seconds;
        if (i) cr_expect_geq(prof[i - 1].seconds, prof[i].seconds, "sorted largest first");
        if (!strcmp(prof[i].op, "tanh")) cr_expect_eq(prof[i].nodes, 2);
    }
    cr_expect_gt(total, 0);
    cr_expect_eq(df_graph_profile(g, prof, 1, NULL), 3, "the count does not depend on max");
    df_graph_set_profiling(g, false);
    cr_assert_eq(df_graph_run(g, in, 2, &out, 1), DF_OK);
    df_graph_profile(g, NULL, 0, &runs);
    cr_expect_eq(runs, 3, "runs with profiling off are not counted");
    df_graph_free(g);
}

Test(tracing, warns_once_about_excessive_retracing, .init = cr_redirect_stderr)
{
    affine m = {.w = df_variable_new("w", DF_F32, 2, SHAPE(2, 3), df_init_ones(), NULL)};
    df_function *f = df_function_new("affine", build_affine, &m);
    float x[2 * 10] = {0};
    df_tensor out;
    for (int rows = 1; rows <= 7; rows++) {     /* seven batch sizes: seven traces */
        df_tensor in = F32(x, rows, 2);
        cr_assert_eq(df_function_call(f, &in, 1, &out, 1), DF_OK);
    }
    cr_expect_eq(df_function_trace_count(f), 7);
    fflush(stderr);
    cr_expect_stderr_eq_str("dagflow: warning: function 'affine' has been traced 6 times, once per distinct input "
                            "signature (dtypes and shapes). Calling it with ever-new shapes retraces and recompiles "
                            "each time; keep shapes fixed (pad or batch inputs) or raise the limit with "
                            "df_function_set_retrace_warning.\n");
    df_function_free(f);
    df_variable_free(m.w);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    static char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

Test(graph, dot_parts_split_forward_from_backward)
{
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 3);
    df_tape *t = df_tape_begin(g);
    df_node *y = df_sum(g, df_node_set_name(df_exp(g, x), "forward_exp"), NULL, 0, false);
    df_tape_end(t);
    df_node *dx;
    cr_assert_eq(df_tape_gradient_nodes(t, y, 1, &x, &dx), DF_OK);
    df_graph_output(g, df_node_set_name(dx, "the_gradient"));
    char path[] = "/tmp/dagflow_dot_XXXXXX";
    close(mkstemp(path));
    cr_assert_eq(df_graph_dump_dot_part(g, path, DF_DOT_FORWARD), DF_OK);
    char *fwd = read_all(path);
    cr_expect(strstr(fwd, "forward_exp") && !strstr(fwd, "the_gradient"), "forward part:\n%s", fwd);
    cr_assert_eq(df_graph_dump_dot_part(g, path, DF_DOT_BACKWARD), DF_OK);
    char *bwd = read_all(path);
    cr_expect(strstr(bwd, "the_gradient") && !strstr(bwd, "forward_exp"), "backward part:\n%s", bwd);
    cr_expect(strstr(bwd, "color=gray"), "forward inputs of the backward part are drawn as context");
    remove(path);
    df_graph_free(g);
}
