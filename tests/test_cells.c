/* test_cells.c — the fused GRU (both reset_after forms) and SimpleRNN ops
 * (ops/gru*.c, ops/rnn*.c) against the same cells unrolled from primitive ops
 * (values and every gradient), a step worked by hand, error paths,
 * bit-identical reruns, stateful carry-over, gradcheck over seeds and a small
 * training run; and the dropout op: its mask (rate, scale, seed and salt,
 * thread count), its gradient, and that CSE never merges two dropouts. */
#include "helpers.h"
#include "../graph/gradcheck.h"
#include "../ops/registry.h"
#include "../ops/cell_math.h"

static df_node *step_slice(df_graph *g, df_node *x, int64_t B, int64_t t, int64_t width)
{
    return df_reshape(g, df_slice(g, x, SHAPE(0, t, 0), SHAPE(B, 1, width)), 2, SHAPE(B, width));
}

static df_node *cols(df_graph *g, df_node *m, int64_t rows, int64_t c0, int64_t n)
{
    return df_slice(g, m, SHAPE(0, c0), SHAPE(rows, n));
}

/* The GRU from primitive ops, one step at a time (Keras' formulas). */
static df_node *unrolled_gru(df_graph *g, df_node *x, df_node *w, df_node *brec, df_node *h0, int64_t B, int64_t T,
                             int64_t H, bool reset_after)
{
    df_node *h = h0, *hs[16], *one = df_scalar(g, 1.0f);
    cr_assert_leq(T, 16);
    for (int64_t t = 0; t < T; t++) {
        df_node *xt = step_slice(g, x, B, t, 3 * H);
        df_node *xz = cols(g, xt, B, 0, H), *xr = cols(g, xt, B, H, H), *xh = cols(g, xt, B, 2 * H, H);
        df_node *z, *r, *hh;
        if (reset_after) {
            df_node *u = df_matmul(g, h, w, false, false);
            if (brec) u = df_add(g, u, brec);
            z = df_sigmoid(g, df_add(g, xz, cols(g, u, B, 0, H)));
            r = df_sigmoid(g, df_add(g, xr, cols(g, u, B, H, H)));
            hh = df_tanh(g, df_add(g, xh, df_mul(g, r, cols(g, u, B, 2 * H, H))));
        } else {
            df_node *wz = cols(g, w, H, 0, H), *wr = cols(g, w, H, H, H), *wh = cols(g, w, H, 2 * H, H);
            z = df_sigmoid(g, df_add(g, xz, df_matmul(g, h, wz, false, false)));
            r = df_sigmoid(g, df_add(g, xr, df_matmul(g, h, wr, false, false)));
            hh = df_tanh(g, df_add(g, xh, df_matmul(g, df_mul(g, r, h), wh, false, false)));
        }
        h = df_add(g, df_mul(g, z, h), df_mul(g, df_sub(g, one, z), hh));
        hs[t] = df_reshape(g, h, 3, SHAPE(B, 1, H));
    }
    return df_concat(g, (int)T, hs, 1);
}

static df_node *unrolled_rnn(df_graph *g, df_node *x, df_node *w, df_node *h0, int64_t B, int64_t T, int64_t H)
{
    df_node *h = h0, *hs[16];
    cr_assert_leq(T, 16);
    for (int64_t t = 0; t < T; t++) {
        h = df_tanh(g, df_add(g, step_slice(g, x, B, t, H), df_matmul(g, h, w, false, false)));
        hs[t] = df_reshape(g, h, 3, SHAPE(B, 1, H));
    }
    return df_concat(g, (int)T, hs, 1);
}

/* ------------------------------------------------- fused == unrolled (values + grads) */

/* kind: 0 gru reset_after with b_rec, 1 gru reset_after without, 2 gru
 * reset_before, 3 simple rnn. Compares h and the gradient of sum(h * R)
 * w.r.t. every input. */
static void check_against_unrolled(int kind)
{
    enum { B = 3, T = 5, H = 4 };
    const bool gru = kind < 3, has_b = kind == 0, ra = kind < 2;
    const int64_t G = gru ? 3 * H : H;
    df_rng rng;
    df_rng_seed(&rng, 17 + (uint64_t)kind);
    float *x = rand_buf(&rng, B * T * G, -1, 1), *w = rand_buf(&rng, H * G, -1, 1);
    float *h0 = rand_buf(&rng, B * H, -1, 1), *br = rand_buf(&rng, G, -1, 1);
    float *r = rand_buf(&rng, B * T * H, -1, 1);

    df_graph *g = df_graph_new();
    df_node *in[5] = {PH(g, B, T, G), PH(g, H, G), PH(g, B, H), PH(g, B, T, H), PH(g, G)};
    df_node *b = has_b ? in[4] : NULL;
    df_node *hf = gru ? df_gru(g, in[0], in[1], b, in[2], ra) : df_simple_rnn(g, in[0], in[1], in[2]);
    df_node *hu = gru ? unrolled_gru(g, in[0], in[1], b, in[2], B, T, H, ra) : unrolled_rnn(g, in[0], in[1], in[2], B, T, H);
    cr_assert_not_null(hf, "%s", df_graph_error(g));
    cr_assert_str_eq(df_node_op_name(hf), gru ? "gru" : "rnn");
    df_node *loss_f = df_sum(g, df_mul(g, hf, in[3]), NULL, 0, false);
    df_node *loss_u = df_sum(g, df_mul(g, hu, in[3]), NULL, 0, false);
    df_node *xs[4] = {in[0], in[1], in[2], in[4]}, *gf[4], *gu[4];
    int nx = has_b ? 4 : 3;
    cr_assert_eq(df_gradients(g, loss_f, NULL, nx, xs, gf), DF_OK, "%s", df_graph_error(g));
    cr_assert_eq(df_gradients(g, loss_u, NULL, nx, xs, gu), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, hf);
    df_graph_output(g, hu);
    for (int i = 0; i < nx; i++) {
        df_graph_output(g, gf[i]);
        df_graph_output(g, gu[i]);
    }
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));
    df_tensor inputs[5] = {F32(x, B, T, G), F32(w, H, G), F32(h0, B, H), F32(r, B, T, H), F32(br, G)};
    df_tensor o[10];
    cr_assert_eq(df_graph_run(g, inputs, 5, o, 2 + 2 * nx), DF_OK, "%s", df_last_error());
    const char *names[] = {"h", "d xproj", "d w_rec", "d h0", "d b_rec"};
    for (int k = 0; k < 1 + nx; k++) {
        cr_assert(df_shape_equal(o[2 * k].ndim, o[2 * k].shape, o[2 * k + 1].ndim, o[2 * k + 1].shape), "%s shape", names[k]);
        double err = expect_near(o[2 * k].data, o[2 * k + 1].data, df_tensor_numel(&o[2 * k]), 1e-5, names[k]);
        cr_log_info("kind %d fused vs unrolled %-8s max abs diff %.3g", kind, names[k], err);
    }
    df_graph_free(g);
    free(x), free(w), free(h0), free(br), free(r);
}

Test(gru, reset_after_matches_unrolled_primitives) { check_against_unrolled(0); }
Test(gru, reset_after_without_recurrent_bias_matches_unrolled) { check_against_unrolled(1); }
Test(gru, reset_before_matches_unrolled_primitives) { check_against_unrolled(2); }
Test(rnn, matches_unrolled_primitives) { check_against_unrolled(3); }

/* ----------------------- several threads, B = 1 and B >= 2, 1/2/3 threads */

/* B*H reaches CELL_PAR_MIN, so the elementwise passes split the batch rows
 * among threads, and B = 1 takes OpenBLAS's matrix-vector products. */
enum { CE = 16, CT = 4, CB = 16, CH = 300 };

/* The fused cell (kind as in check_against_unrolled) and the unrolled one on
 * xproj = x @ kernel + bias, in pairs (fused, unrolled): h and the gradients
 * of sum(h * R) w.r.t. x, kernel, bias, w_rec, h0 [and b_rec]. *npairs gets
 * the number of pairs. */
static df_graph *build_cell_pairs(int kind, int64_t B, int *npairs)
{
    const bool gru = kind < 3, has_b = kind == 0, ra = kind < 2;
    const int64_t H = CH, G = gru ? 3 * H : H;
    df_graph *g = df_graph_new();
    df_node *in[7] = {PH(g, B, CT, CE), PH(g, CE, G), PH(g, G), PH(g, H, G), PH(g, B, H), PH(g, G), PH(g, B, CT, H)};
    df_node *xproj = df_add(g, df_matmul(g, in[0], in[1], false, false), in[2]);
    df_node *br = has_b ? in[5] : NULL;
    df_node *hf = gru ? df_gru(g, xproj, in[3], br, in[4], ra) : df_simple_rnn(g, xproj, in[3], in[4]);
    df_node *hu = gru ? unrolled_gru(g, xproj, in[3], br, in[4], B, CT, H, ra) : unrolled_rnn(g, xproj, in[3], in[4], B, CT, H);
    int nx = has_b ? 6 : 5;
    df_node *gf[6], *gu[6];
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, hf, in[6]), NULL, 0, false), NULL, nx, in, gf), DF_OK, "%s",
                 df_graph_error(g));
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, hu, in[6]), NULL, 0, false), NULL, nx, in, gu), DF_OK, "%s",
                 df_graph_error(g));
    df_graph_output(g, hf);
    df_graph_output(g, hu);
    for (int i = 0; i < nx; i++) {
        df_graph_output(g, gf[i]);
        df_graph_output(g, gu[i]);
    }
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));
    *npairs = 1 + nx;
    return g;
}

static void check_cell_on_threads(int kind, int64_t B)
{
    static const char *const kinds[] = {"gru reset_after", "gru reset_after without b_rec", "gru reset_before", "rnn"};
    const int64_t H = CH, G = kind < 3 ? 3 * H : H;
    if (B > 1) cr_assert_geq(B * H, CELL_PAR_MIN, "below the elementwise threading threshold");
    df_rng rng;
    df_rng_seed(&rng, 29 + (uint64_t)kind);
    const float ws = 1.5f / sqrtf((float)H);
    float *buf[7] = {rand_buf(&rng, B * CT * CE, -1, 1), rand_buf(&rng, CE * G, -0.4f, 0.4f),
                     rand_buf(&rng, G, -0.5f, 0.5f),     rand_buf(&rng, H * G, -ws, ws),
                     rand_buf(&rng, B * H, -1, 1),       rand_buf(&rng, G, -0.5f, 0.5f),
                     rand_buf(&rng, B * CT * H, -1, 1)};
    df_tensor in[7] = {F32(buf[0], B, CT, CE), F32(buf[1], CE, G), F32(buf[2], G), F32(buf[3], H, G),
                       F32(buf[4], B, H),      F32(buf[5], G),     F32(buf[6], B, CT, H)};
    static const char *const names[] = {"h", "d x", "d kernel", "d bias", "d w_rec", "d h0", "d b_rec"};
    char what[96];
    snprintf(what, sizeof what, "%s B=%lld", kinds[kind], (long long)B);
    int npairs;
    df_graph *g = build_cell_pairs(kind, B, &npairs);
    expect_pairs_on_1_2_3_threads(g, in, 7, npairs, names, 2e-5, what);
    df_graph_free(g);
    for (int i = 0; i < 7; i++) free(buf[i]);
}

Test(gru, reset_after_on_1_2_3_threads_matches_unrolled) { check_cell_on_threads(0, CB); }
Test(gru, reset_after_without_recurrent_bias_on_1_2_3_threads_matches_unrolled) { check_cell_on_threads(1, CB); }
Test(gru, reset_before_on_1_2_3_threads_matches_unrolled) { check_cell_on_threads(2, CB); }
Test(rnn, on_1_2_3_threads_matches_unrolled) { check_cell_on_threads(3, CB); }
Test(gru, batch1_reset_after_on_1_2_3_threads_matches_unrolled) { check_cell_on_threads(0, 1); }
Test(gru, batch1_reset_before_on_1_2_3_threads_matches_unrolled) { check_cell_on_threads(2, 1); }
Test(rnn, batch1_on_1_2_3_threads_matches_unrolled) { check_cell_on_threads(3, 1); }

/* ------------------------------------------------------------ a step by hand */

/* B = 1, T = 2, H = 1, in double with Keras' formulas written out here. */
Test(gru, two_steps_by_hand_both_forms)
{
    const float x[6] = {0.5f, -0.25f, 0.75f, -0.4f, 0.3f, 0.1f}, w[3] = {0.6f, -0.7f, 0.9f}, h0 = 0.2f;
    const float brec[3] = {0.1f, -0.2f, 0.3f};
    for (int ra = 0; ra < 2; ra++) {
        double h = h0, want[2];
        for (int t = 0; t < 2; t++) {
            const float *xt = x + 3 * t;
            double z, r, hh;
            if (ra) {
                z = 1 / (1 + exp(-(xt[0] + h * w[0] + brec[0])));
                r = 1 / (1 + exp(-(xt[1] + h * w[1] + brec[1])));
                hh = tanh(xt[2] + r * (h * w[2] + brec[2]));
            } else {
                z = 1 / (1 + exp(-(xt[0] + h * w[0])));
                r = 1 / (1 + exp(-(xt[1] + h * w[1])));
                hh = tanh(xt[2] + (r * h) * w[2]);
            }
            want[t] = h = z * h + (1 - z) * hh;
        }
        df_graph *g = df_graph_new();
        df_node *in[4] = {PH(g, 1, 2, 3), PH(g, 1, 3), PH(g, 1, 1), PH(g, 3)};
        df_graph_output(g, df_gru(g, in[0], in[1], ra ? in[3] : NULL, in[2], ra));
        df_tensor inputs[4] = {F32((float *)x, 1, 2, 3), F32((float *)w, 1, 3), F32((float *)&h0, 1, 1),
                               F32((float *)brec, 3)};
        df_tensor out;
        cr_assert_eq(df_graph_run(g, inputs, 4, &out, 1), DF_OK, "%s", df_last_error());
        const float *got = out.data;
        for (int t = 0; t < 2; t++)
            cr_expect(fabs(got[t] - want[t]) < 2e-7, "reset_after=%d h[%d]: got %.9g, want %.9g", ra, t, got[t], want[t]);
        df_graph_free(g);
    }
}

Test(rnn, two_steps_by_hand)
{
    const float x[4] = {0.5f, -0.25f, 0.1f, 0.7f}, w[4] = {0.3f, -0.6f, 0.8f, 0.2f}, h0[2] = {0.4f, -0.9f};
    double h[2] = {h0[0], h0[1]}, want[4];
    for (int t = 0; t < 2; t++) {
        double n0 = tanh(x[2 * t] + h[0] * w[0] + h[1] * w[2]), n1 = tanh(x[2 * t + 1] + h[0] * w[1] + h[1] * w[3]);
        want[2 * t] = h[0] = n0;
        want[2 * t + 1] = h[1] = n1;
    }
    df_graph *g = df_graph_new();
    df_node *in[3] = {PH(g, 1, 2, 2), PH(g, 2, 2), PH(g, 1, 2)};
    df_graph_output(g, df_simple_rnn(g, in[0], in[1], in[2]));
    df_tensor inputs[3] = {F32((float *)x, 1, 2, 2), F32((float *)w, 2, 2), F32((float *)h0, 1, 2)};
    df_tensor out = run1(g, inputs, 3);
    for (int i = 0; i < 4; i++)
        cr_expect(fabs(((float *)out.data)[i] - want[i]) < 2e-7, "h[%d]: got %.9g, want %.9g", i,
                  ((float *)out.data)[i], want[i]);
    df_graph_free(g);
}

/* -------------------------------------------------------------- error paths */

static void expect_msg(df_graph *g, df_status want, const char *op, const char *a, const char *b)
{
    const char *msg = df_graph_error(g);
    cr_expect_eq(df_graph_status(g), want, "status %s: %s", df_status_name(df_graph_status(g)), msg);
    cr_expect(strstr(msg, op) != NULL, "message does not name '%s': %s", op, msg);
    if (a) cr_expect(strstr(msg, a) != NULL, "message lacks '%s': %s", a, msg);
    if (b) cr_expect(strstr(msg, b) != NULL, "message lacks '%s': %s", b, msg);
}

static void expect_gru_error(const int64_t *xs, int xnd, const int64_t *ws, const int64_t *hs, const int64_t *bs,
                             bool ra, df_status want, const char *a, const char *b)
{
    df_graph *g = df_graph_new();
    df_node *x = df_placeholder(g, DF_F32, xnd, xs, "x"), *w = df_placeholder(g, DF_F32, 2, ws, "w");
    df_node *h0 = df_placeholder(g, DF_F32, 2, hs, "h0");
    df_node *br = bs ? df_placeholder(g, DF_F32, 1, bs, "b") : NULL;
    cr_expect_null(df_gru(g, x, w, br, h0, ra));
    expect_msg(g, want, "'gru'", a, b);
    df_graph_free(g);
}

Test(gru, shape_and_argument_errors)
{
    expect_gru_error(SHAPE(3, 12), 2, SHAPE(4, 12), SHAPE(3, 4), NULL, true, DF_ERR_SHAPE, "(3,12)", "(B,T,3H)");
    expect_gru_error(SHAPE(3, 5, 10), 3, SHAPE(4, 12), SHAPE(3, 4), NULL, true, DF_ERR_SHAPE, "(3,5,10)", NULL);
    expect_gru_error(SHAPE(3, 0, 12), 3, SHAPE(4, 12), SHAPE(3, 4), NULL, true, DF_ERR_SHAPE, "no time steps", NULL);
    expect_gru_error(SHAPE(3, 5, 12), 3, SHAPE(4, 16), SHAPE(3, 4), NULL, true, DF_ERR_SHAPE, "(4,16)", "(3,5,12)");
    expect_gru_error(SHAPE(3, 5, 12), 3, SHAPE(4, 12), SHAPE(2, 4), NULL, true, DF_ERR_SHAPE, "h0", "(2,4)");
    expect_gru_error(SHAPE(3, 5, 12), 3, SHAPE(4, 12), SHAPE(3, 4), SHAPE(8), true, DF_ERR_SHAPE, "b_rec", "(8)");
    expect_gru_error(SHAPE(3, 5, 12), 3, SHAPE(4, 12), SHAPE(3, 4), SHAPE(12), false, DF_ERR_ARG, "reset_after", NULL);
    /* wrong dtype */
    df_graph *g = df_graph_new();
    df_node *x = df_placeholder(g, DF_I32, 3, SHAPE(1, 2, 3), "x");
    cr_expect_null(df_gru(g, x, PH(g, 1, 3), NULL, PH(g, 1, 1), true));
    expect_msg(g, DF_ERR_DTYPE, "'gru'", "i32", NULL);
    df_graph_free(g);
}

Test(rnn, shape_and_argument_errors)
{
    struct { int64_t x[3], w[2], h[2]; const char *a, *b; } cases[] = {
        {{3, 0, 4}, {4, 4}, {3, 4}, "no time steps", NULL},
        {{3, 5, 4}, {4, 5}, {3, 4}, "(4,5)", "(3,5,4)"},
        {{3, 5, 4}, {5, 4}, {3, 4}, "(5,4)", "(H,H)"},
        {{3, 5, 4}, {4, 4}, {3, 5}, "h0", "(3,5)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        df_graph *g = df_graph_new();
        cr_expect_null(df_simple_rnn(g, df_placeholder(g, DF_F32, 3, cases[i].x, "x"),
                                     df_placeholder(g, DF_F32, 2, cases[i].w, "w"),
                                     df_placeholder(g, DF_F32, 2, cases[i].h, "h0")));
        expect_msg(g, DF_ERR_SHAPE, "'rnn'", cases[i].a, cases[i].b);
        df_graph_free(g);
    }
    df_graph *g = df_graph_new();
    cr_expect_null(df_simple_rnn(g, PH(g, 2, 3), PH(g, 3, 3), PH(g, 2, 3)));
    expect_msg(g, DF_ERR_SHAPE, "'rnn'", "(2,3)", "(B,T,H)");
    df_graph_free(g);
}

Test(cells, no_second_derivative_and_misused_gradient_ops)
{
    /* the BPTT nodes are not differentiable */
    for (int gru = 0; gru < 2; gru++) {
        df_graph *g = df_graph_new();
        int64_t G = gru ? 6 : 2;
        df_node *in[3] = {PH(g, 2, 3, G), PH(g, 2, G), PH(g, 2, 2)}, *grads[3], *gg[1];
        df_node *h = gru ? df_gru(g, in[0], in[1], NULL, in[2], true) : df_simple_rnn(g, in[0], in[1], in[2]);
        cr_assert_eq(df_gradients(g, df_sum(g, h, NULL, 0, false), NULL, 3, in, grads), DF_OK, "%s", df_graph_error(g));
        cr_expect_eq(df_gradients(g, df_sum(g, grads[0], NULL, 0, false), NULL, 1, in, gg), DF_ERR_UNSUPPORTED);
        cr_expect(strstr(df_graph_error(g), gru ? "gru_grad" : "rnn_grad") != NULL, "%s", df_graph_error(g));
        df_graph_free(g);
    }
    /* internal gradient ops refuse nodes of another kind */
    const df_op_def *ops[] = {&df_op_gru_grad_state, &df_op_gru_grad_bias, &df_op_rnn_grad_state};
    for (int i = 0; i < 3; i++) {
        df_graph *g = df_graph_new();
        df_node *x = df_tanh(g, PH(g, 2, 3, 3));
        cr_expect_null(df_node_new(g, ops[i], 1, &x, NULL));
        expect_msg(g, DF_ERR_ARG, ops[i]->name, "tanh", NULL);
        df_graph_free(g);
    }
}

/* ----------------------------------------------------------- determinism */

/* B*H above the elementwise threshold; outputs and all gradients of two runs
 * of one graph and of a second graph agree bit for bit. */
enum { DB = 16, DT = 5, DH = 300 };

static df_graph *build_det(int kind, int *nout)
{
    const int64_t G = kind < 2 ? 3 * DH : DH;
    df_graph *g = df_graph_new();
    df_node *p[5] = {PH(g, DB, DT, G), PH(g, DH, G), PH(g, DB, DH), PH(g, DB, DT, DH), PH(g, G)}, *grads[4];
    df_node *h = kind == 0 ? df_gru(g, p[0], p[1], p[4], p[2], true)
                 : kind == 1 ? df_gru(g, p[0], p[1], NULL, p[2], false)
                             : df_simple_rnn(g, p[0], p[1], p[2]);
    df_node *xs[4] = {p[0], p[1], p[2], p[4]};
    int nx = kind == 0 ? 4 : 3;
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, h, p[3]), NULL, 0, false), NULL, nx, xs, grads), DF_OK, "%s",
                 df_graph_error(g));
    df_graph_output(g, h);
    for (int i = 0; i < nx; i++) df_graph_output(g, grads[i]);
    *nout = 1 + nx;
    return g;
}

static void check_bit_identical(int kind)
{
    const int64_t G = kind < 2 ? 3 * DH : DH;
    df_rng rng;
    df_rng_seed(&rng, 11);
    float *x = rand_buf(&rng, DB * DT * G, -2, 2), *w = rand_buf(&rng, DH * G, -0.1f, 0.1f);
    float *h0 = rand_buf(&rng, DB * DH, -1, 1), *br = rand_buf(&rng, G, -1, 1), *r = rand_buf(&rng, DB * DT * DH, -1, 1);
    df_tensor in[5] = {F32(x, DB, DT, G), F32(w, DH, G), F32(h0, DB, DH), F32(r, DB, DT, DH), F32(br, G)};
    int nout;
    df_graph *g1 = build_det(kind, &nout), *g2 = build_det(kind, &nout);
    float *first[5] = {0};
    for (int run = 0; run < 3; run++) {
        df_tensor o[5];
        cr_assert_eq(df_graph_run(run < 2 ? g1 : g2, in, 5, o, nout), DF_OK, "%s", df_last_error());
        for (int i = 0; i < nout; i++) {
            size_t bytes = (size_t)df_tensor_numel(&o[i]) * sizeof(float);
            if (run == 0) {
                first[i] = malloc(bytes);
                memcpy(first[i], o[i].data, bytes);
            } else {
                cr_expect(memcmp(first[i], o[i].data, bytes) == 0, "kind %d output %d differs %s", kind, i,
                          run == 1 ? "between runs" : "between graphs");
            }
        }
    }
    for (int i = 0; i < 5; i++) free(first[i]);
    df_graph_free(g1);
    df_graph_free(g2);
    free(x), free(w), free(h0), free(br), free(r);
}

Test(gru, reset_after_reruns_are_bit_identical) { check_bit_identical(0); }
Test(gru, reset_before_reruns_are_bit_identical) { check_bit_identical(1); }
Test(rnn, reruns_are_bit_identical) { check_bit_identical(2); }

/* --------------------------------------------------------- stateful carry */

/* Running T steps at once equals two runs of T/2 steps where the second
 * starts from the first's h[:, T/2-1]. */
static void check_carry(int kind)
{
    enum { B = 2, T = 6, H = 5 };
    const int64_t G = kind < 2 ? 3 * H : H;
    df_rng rng;
    df_rng_seed(&rng, 3);
    float *x = rand_buf(&rng, B * T * G, -1, 1), *w = rand_buf(&rng, H * G, -1, 1);
    float *h0 = rand_buf(&rng, B * H, -1, 1), *br = rand_buf(&rng, G, -1, 1);
    float full[B * T * H], got[B * T * H], hs[B * H];
    float *xa = malloc(sizeof(float) * B * (T / 2) * G);
    for (int pass = 0; pass < 2; pass++) {
        int64_t steps = pass ? T / 2 : T;
        df_graph *g = df_graph_new();
        df_node *p[4] = {PH(g, B, steps, G), PH(g, H, G), PH(g, B, H), PH(g, G)};
        df_graph_output(g, kind == 0 ? df_gru(g, p[0], p[1], p[3], p[2], true)
                           : kind == 1 ? df_gru(g, p[0], p[1], NULL, p[2], false)
                                       : df_simple_rnn(g, p[0], p[1], p[2]));
        if (!pass) {
            df_tensor in[4] = {F32(x, B, T, G), F32(w, H, G), F32(h0, B, H), F32(br, G)};
            memcpy(full, run1(g, in, 4).data, sizeof full);
        } else {
            memcpy(hs, h0, sizeof hs);
            for (int half = 0; half < 2; half++) {
                for (int b = 0; b < B; b++)
                    memcpy(xa + b * (T / 2) * G, x + (b * T + half * (T / 2)) * G, sizeof(float) * (T / 2) * G);
                df_tensor in[4] = {F32(xa, B, T / 2, G), F32(w, H, G), F32(hs, B, H), F32(br, G)};
                const float *hh = run1(g, in, 4).data;
                for (int b = 0; b < B; b++) {
                    memcpy(got + (b * T + half * (T / 2)) * H, hh + b * (T / 2) * H, sizeof(float) * (T / 2) * H);
                    memcpy(hs + b * H, hh + (b * (T / 2) + T / 2 - 1) * H, sizeof(float) * H);
                }
            }
        }
        df_graph_free(g);
    }
    expect_near(got, full, B * T * H, 1e-6, "h");
    free(xa), free(x), free(w), free(h0), free(br);
}

Test(gru, stateful_carry_over_matches_one_long_run) { check_carry(0), check_carry(1); }
Test(rnn, stateful_carry_over_matches_one_long_run) { check_carry(2); }

/* ----------------------------------------------------------- gradcheck */

static void gradcheck_op(const df_op_def *op, int min_cases)
{
    int cases = 0;
    double worst = 0;
    for (const df_gradcheck_case *c = op->gradcheck; c && c->build; c++, cases++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            df_gradcheck_result r;
            cr_assert_eq(df_gradcheck_case_run(c, seed, &r), DF_OK, "%s: %s", c->desc, df_last_error());
            cr_expect_gt(r.checked, 0);
            cr_expect_eq(r.failed, 0, "%s %s seed %llu: %d of %d off; worst input %d[%lld] analytic %.6g numeric %.6g",
                         op->name, c->desc, (unsigned long long)seed, r.failed, r.checked, r.worst_input,
                         (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
            if (r.max_abs_err > worst) worst = r.max_abs_err;
        }
    cr_expect_geq(cases, min_cases);
    cr_log_info("%s gradcheck: %d cases x 4 seeds, max abs error %.3g", op->name, cases, worst);
}

Test(gru, gradcheck_cases_over_seeds) { gradcheck_op(&df_op_gru, 5); }
Test(rnn, gradcheck_cases_over_seeds) { gradcheck_op(&df_op_rnn, 3); }
Test(dropout, gradcheck_cases_over_seeds) { gradcheck_op(&df_op_dropout, 2); }

/* ------------------------------------------------------------ training */

typedef struct seq_model {
    df_variable *kernel, *bias, *rec, *brec, *dense, *h_state;
    df_variable *train[5];
    df_optimizer *opt;
    int cell;                       /* 0 gru, 1 rnn */
} seq_model;

enum { RB = 4, RT = 8, RE = 3, RH = 6 };

static df_status seq_step(df_graph *g, df_node **in, void *user)
{
    seq_model *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *xproj = df_add(g, df_matmul(g, in[0], df_var(g, m->kernel), false, false), df_var(g, m->bias));
    df_node *h = m->cell == 0 ? df_gru(g, xproj, df_var(g, m->rec), df_var(g, m->brec), df_var(g, m->h_state), true)
                              : df_simple_rnn(g, xproj, df_var(g, m->rec), df_var(g, m->h_state));
    df_node *loss = df_mean(g, df_square(g, df_sub(g, df_matmul(g, h, df_var(g, m->dense), false, false), in[1])),
                            NULL, 0, false);
    df_tape_end(tape);
    int n = m->cell == 0 ? 5 : 4;
    df_node *grads[5];
    if (df_tape_gradient(tape, loss, n, m->train, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, n, m->train, grads);
    df_assign(g, m->h_state, df_reshape(g, df_slice(g, h, SHAPE(0, RT - 1, 0), SHAPE(RB, 1, RH)), 2, SHAPE(RB, RH)));
    df_graph_output(g, loss);
    return df_graph_status(g);
}

static void check_training(int cell)
{
    df_rng rng;
    df_rng_seed(&rng, 5);
    int64_t G = cell == 0 ? 3 * RH : RH;
    seq_model m = {.cell = cell};
    m.kernel = df_variable_new("kernel", DF_F32, 2, SHAPE(RE, G), df_init_glorot_uniform(), &rng);
    m.bias = df_variable_new("bias", DF_F32, 1, SHAPE(G), df_init_zeros(), NULL);
    m.rec = df_variable_new("rec", DF_F32, 2, SHAPE(RH, G), df_init_orthogonal(1.0f), &rng);
    m.brec = df_variable_new("brec", DF_F32, 1, SHAPE(G), df_init_zeros(), NULL);
    m.dense = df_variable_new("dense", DF_F32, 2, SHAPE(RH, 1), df_init_glorot_uniform(), &rng);
    m.h_state = df_variable_new("h_state", DF_F32, 2, SHAPE(RB, RH), df_init_zeros(), NULL);
    m.train[0] = m.kernel, m.train[1] = m.bias, m.train[2] = m.rec, m.train[3] = m.dense, m.train[4] = m.brec;
    m.opt = df_adam_new(0.02f, 0.9f, 0.999f, 1e-7f);
    cr_assert(m.kernel && m.bias && m.rec && m.brec && m.dense && m.h_state && m.opt);
    /* target: y_t = 0.5 * x_{t-1}[0] (needs memory across steps) */
    float x[RB * RT * RE], y[RB * RT];
    for (int i = 0; i < RB * RT * RE; i++) x[i] = 2 * df_rng_uniform(&rng) - 1;
    for (int b = 0; b < RB; b++)
        for (int t = 0; t < RT; t++) y[b * RT + t] = t ? 0.5f * x[(b * RT + t - 1) * RE] : 0.0f;
    df_tensor in[2] = {F32(x, RB, RT, RE), F32(y, RB, RT, 1)}, out;
    df_function *f = df_function_new("seq_step", seq_step, &m);
    float first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        if (step % 3 == 0) df_variable_init(m.h_state, df_init_zeros(), NULL);
        cr_assert_eq(df_function_call(f, in, 2, &out, 1), DF_OK, "%s", df_last_error());
        last = *(float *)out.data;
        if (step == 0) first = last;
    }
    cr_expect_eq(df_function_trace_count(f), 1);
    cr_log_info("%s training: loss %.4f -> %.4f", cell ? "rnn" : "gru", first, last);
    cr_expect_lt(last, 0.2f * first, "loss went from %g to %g", first, last);
    df_function_free(f);
    df_optimizer_free(m.opt);
    df_variable *vars[] = {m.kernel, m.bias, m.rec, m.brec, m.dense, m.h_state};
    for (int i = 0; i < 6; i++) df_variable_free(vars[i]);
}

Test(gru, trains_with_adam_and_carries_state) { check_training(0); }
Test(rnn, trains_with_adam_and_carries_state) { check_training(1); }

/* ---------------------------------------------------------------- dropout */

enum { DN = 20000 };

/* Runs dropout(x, rate, seed, salt) on x = 1..DN and its gradient for dy = 1. */
static void run_dropout(float rate, int32_t seed, uint64_t salt, float *y, float *dx)
{
    static float x[DN];
    for (int i = 0; i < DN; i++) x[i] = 1.0f + (float)i;
    df_graph *g = df_graph_new();
    df_node *xin = PH(g, DN), *s = df_placeholder(g, DF_I32, 0, NULL, "seed"), *grad;
    df_node *out = df_dropout(g, xin, rate, s, salt);
    cr_assert_not_null(out, "%s", df_graph_error(g));
    cr_assert_eq(df_gradients(g, df_sum(g, out, NULL, 0, false), NULL, 1, &xin, &grad), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, out);
    df_graph_output(g, grad);
    df_tensor in[2] = {F32(x, DN), df_tensor_make(DF_I32, &seed, 0, NULL)}, o[2];
    cr_assert_eq(df_graph_run(g, in, 2, o, 2), DF_OK, "%s", df_last_error());
    memcpy(y, o[0].data, sizeof(float) * DN);
    if (dx) memcpy(dx, o[1].data, sizeof(float) * DN);
    df_graph_free(g);
}

Test(dropout, inverted_mask_with_the_rate_and_the_same_mask_in_the_gradient)
{
    static float y[DN], dx[DN];
    run_dropout(0.25f, 7, 3, y, dx);
    int dropped = 0;
    for (int i = 0; i < DN; i++) {
        float x = 1.0f + (float)i;
        if (y[i] == 0.0f) {
            dropped++;
            cr_expect_eq(dx[i], 0.0f, "element %d dropped in forward but not in the gradient", i);
        } else {
            cr_expect_float_eq(y[i], x / 0.75f, 1e-3f * x, "kept element %d is not scaled by 1/(1-rate)", i);
            cr_expect_float_eq(dx[i], 1.0f / 0.75f, 1e-6f, "gradient of kept element %d", i);
        }
    }
    double frac = (double)dropped / DN;     /* binomial: sd = sqrt(.25*.75/20000) = 0.003 */
    cr_expect(fabs(frac - 0.25) < 0.015, "dropped fraction %.4f, want 0.25", frac);
    cr_log_info("dropout 0.25: dropped %.4f of %d", frac, DN);
    /* rate 0: the identity */
    run_dropout(0.0f, 7, 3, y, NULL);
    for (int i = 0; i < DN; i++) cr_expect_eq(y[i], 1.0f + (float)i);
}

Test(dropout, same_seed_repeats_other_seed_or_salt_differs_any_thread_count)
{
    static float a[DN], b[DN], c[DN], d[DN], e[DN];
    int threads = df_num_threads();
    run_dropout(0.5f, 42, 1, a, NULL);
    run_dropout(0.5f, 42, 1, b, NULL);
    run_dropout(0.5f, 43, 1, c, NULL);
    run_dropout(0.5f, 42, 2, d, NULL);
    df_set_num_threads(1);
    run_dropout(0.5f, 42, 1, e, NULL);
    df_set_num_threads(threads);
    cr_expect(memcmp(a, b, sizeof a) == 0, "the same seed and salt must repeat the mask");
    cr_expect(memcmp(a, e, sizeof a) == 0, "the mask must not depend on the thread count");
    int diff_seed = 0, diff_salt = 0;
    for (int i = 0; i < DN; i++) {
        diff_seed += (a[i] == 0) != (c[i] == 0);
        diff_salt += (a[i] == 0) != (d[i] == 0);
    }
    /* independent masks at rate 0.5 disagree on about half the elements */
    cr_expect(diff_seed > DN / 3 && diff_seed < 2 * DN / 3, "seed 42 vs 43: %d of %d differ", diff_seed, DN);
    cr_expect(diff_salt > DN / 3 && diff_salt < 2 * DN / 3, "salt 1 vs 2: %d of %d differ", diff_salt, DN);
}

/* rows [first, first + rows) of a (R, C) input of 1..R*C through
 * df_dropout_rows; y gets the output and dx the gradient for dy = 1. */
static void run_dropout_rows(int64_t first, int64_t rows, float *y, float *dx)
{
    enum { C = 50 };
    static float x[DN];
    for (int i = 0; i < rows * C; i++) x[i] = 1.0f + (float)(first * C + i);
    int32_t seed = 11;
    df_graph *g = df_graph_new();
    df_node *xin = df_placeholder(g, DF_F32, 2, (int64_t[]){rows, C}, "x"), *grad;
    df_node *s = df_placeholder(g, DF_I32, 0, NULL, "seed");
    df_node *out = df_dropout_rows(g, xin, 0.4f, s, 5, first);
    cr_assert_not_null(out, "%s", df_graph_error(g));
    cr_assert_eq(df_gradients(g, df_sum(g, out, NULL, 0, false), NULL, 1, &xin, &grad), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, out);
    df_graph_output(g, grad);
    df_tensor in[2] = {df_tensor_make(DF_F32, x, 2, (int64_t[]){rows, C}), df_tensor_make(DF_I32, &seed, 0, NULL)}, o[2];
    cr_assert_eq(df_graph_run(g, in, 2, o, 2), DF_OK, "%s", df_last_error());
    memcpy(y, o[0].data, sizeof(float) * (size_t)(rows * C));
    memcpy(dx, o[1].data, sizeof(float) * (size_t)(rows * C));
    df_graph_free(g);
}

/* Data parallelism: two processes holding rows 0..5 and 6..15 of a batch of
 * 16 drop exactly what one process with all 16 rows drops, in the forward
 * and in the gradient. */
Test(dropout, rows_of_a_batch_draw_that_part_of_the_whole_batch_mask)
{
    enum { C = 50 };
    static float whole[16 * C], whole_dx[16 * C], part[16 * C], part_dx[16 * C];
    run_dropout_rows(0, 16, whole, whole_dx);
    run_dropout_rows(0, 6, part, part_dx);
    run_dropout_rows(6, 10, part + 6 * C, part_dx + 6 * C);
    cr_expect(memcmp(whole, part, sizeof whole) == 0, "rows 0..5 + 6..15 differ from the whole batch's dropout");
    cr_expect(memcmp(whole_dx, part_dx, sizeof whole) == 0, "the gradients of the two parts differ from the whole");
    int dropped = 0;
    for (int i = 6 * C; i < 16 * C; i++) dropped += part[i] == 0.0f;
    cr_expect(dropped > 0 && dropped < 10 * C, "rows 6..15 drop %d of %d", dropped, 10 * C);
    /* without the row offset, rows 6..15 would repeat rows 0..9's mask */
    run_dropout_rows(0, 10, part + 6 * C, part_dx + 6 * C);
    cr_expect(memcmp(whole + 6 * C, part + 6 * C, 10 * C * sizeof(float)) != 0, "offset 0 must not match rows 6..15");
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 4), *s = df_placeholder(g, DF_I32, 0, NULL, "seed");
    cr_expect_null(df_dropout_rows(g, x, 0.5f, s, 1, -1), "a negative first row must be refused");
    cr_expect(strstr(df_graph_error(g), "first row -1") != NULL, "message: %s", df_graph_error(g));
    df_graph_free(g);
}

Test(dropout, cse_never_merges_two_dropouts)
{
    /* two dropout layers with the same input, seed, rate and salt: without
     * the flag CSE would merge them into one node */
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 64), *s = df_placeholder(g, DF_I32, 0, NULL, "seed");
    df_node *a = df_dropout(g, x, 0.5f, s, 9), *b = df_dropout(g, x, 0.5f, s, 9);
    df_node *ta = df_tanh(g, x), *tb = df_tanh(g, x);      /* control: these do merge */
    df_graph_output(g, df_add(g, a, b));
    df_graph_output(g, df_add(g, ta, tb));
    cr_assert_eq(df_graph_compile(g), DF_OK, "%s", df_graph_error(g));
    df_graph_stats st;
    cr_assert_eq(df_graph_get_stats(g, &st), DF_OK);
    cr_expect_eq(st.cse_merged, 1, "only the two tanh nodes may merge, merged %d", st.cse_merged);
    cr_expect_geq(a->sched_pos, 0, "first dropout must run");
    cr_expect_geq(b->sched_pos, 0, "second dropout must run");
    df_graph_free(g);
}

Test(dropout, errors_name_the_op)
{
    df_graph *g = df_graph_new();
    cr_expect_null(df_dropout(g, PH(g, 4), 1.0f, df_placeholder(g, DF_I32, 0, NULL, "s"), 0));
    expect_msg(g, DF_ERR_ARG, "'dropout'", "rate", "[0, 1)");
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_dropout(g, PH(g, 4), 0.5f, PH(g, 1), 0));
    expect_msg(g, DF_ERR_ARG, "'dropout'", "seed", "f32");
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_dropout(g, PH(g, 4), 0.5f, df_placeholder(g, DF_I32, 1, SHAPE(2), "s"), 0));
    expect_msg(g, DF_ERR_ARG, "'dropout'", "(2)", NULL);
    df_graph_free(g);
}
