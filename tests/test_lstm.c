/* test_lstm.c — the fused LSTM op (ops/lstm*.c): agreement with the same LSTM
 * unrolled from primitive ops (values and all four gradients), a step worked
 * by hand, error paths, bit-identical reruns, stateful carry-over and a small
 * training run with Adam. */
#include "helpers.h"
#include "../graph/gradcheck.h"
#include "../ops/registry.h"
#include "../ops/lstm_kernels.h"

/* The same LSTM from primitive ops, one step at a time. */
static df_node *unrolled_lstm(df_graph *g, df_node *x, df_node *w, df_node *h0, df_node *c0, int64_t B,
                              int64_t T, int64_t H, df_node **c_last)
{
    df_node *h = h0, *c = c0, *hs[16];
    cr_assert_leq(T, 16);
    for (int64_t t = 0; t < T; t++) {
        df_node *xt = df_reshape(g, df_slice(g, x, SHAPE(0, t, 0), SHAPE(B, 1, 4 * H)), 2, SHAPE(B, 4 * H));
        df_node *z = df_add(g, xt, df_matmul(g, h, w, false, false));
        df_node *gate[4];
        for (int k = 0; k < 4; k++) gate[k] = df_slice(g, z, SHAPE(0, k * H), SHAPE(B, H));
        df_node *i = df_sigmoid(g, gate[0]), *f = df_sigmoid(g, gate[1]);
        df_node *gg = df_tanh(g, gate[2]), *o = df_sigmoid(g, gate[3]);
        c = df_add(g, df_mul(g, f, c), df_mul(g, i, gg));
        h = df_mul(g, o, df_tanh(g, c));
        hs[t] = df_reshape(g, h, 3, SHAPE(B, 1, H));
    }
    *c_last = c;
    return df_concat(g, (int)T, hs, 1);
}

/* ------------------------------------------------- fused == unrolled (values + grads) */

Test(lstm, matches_unrolled_primitives)
{
    enum { B = 3, T = 5, H = 4 };
    df_rng rng;
    df_rng_seed(&rng, 7);
    float *x = rand_buf(&rng, B * T * 4 * H, -1, 1), *w = rand_buf(&rng, H * 4 * H, -1, 1);
    float *h0 = rand_buf(&rng, B * H, -1, 1), *c0 = rand_buf(&rng, B * H, -1, 1);
    float *r = rand_buf(&rng, B * T * H, -1, 1);

    df_graph *g = df_graph_new();
    df_node *in[5] = {PH(g, B, T, 4 * H), PH(g, H, 4 * H), PH(g, B, H), PH(g, B, H), PH(g, B, T, H)};
    df_node *hf = df_lstm(g, in[0], in[1], in[2], in[3]);
    df_node *cf = df_lstm_final_c(g, hf);
    df_node *cu, *hu = unrolled_lstm(g, in[0], in[1], in[2], in[3], B, T, H, &cu);
    df_node *loss_f = df_sum(g, df_mul(g, hf, in[4]), NULL, 0, false);
    df_node *loss_u = df_sum(g, df_mul(g, hu, in[4]), NULL, 0, false);
    df_node *gf[4], *gu[4];
    cr_assert_eq(df_gradients(g, loss_f, NULL, 4, in, gf), DF_OK, "%s", df_graph_error(g));
    cr_assert_eq(df_gradients(g, loss_u, NULL, 4, in, gu), DF_OK, "%s", df_graph_error(g));
    df_node *outs[] = {hf, hu, cf, cu, gf[0], gu[0], gf[1], gu[1], gf[2], gu[2], gf[3], gu[3]};
    for (int i = 0; i < 12; i++) df_graph_output(g, outs[i]);
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));

    df_tensor inputs[5] = {F32(x, B, T, 4 * H), F32(w, H, 4 * H), F32(h0, B, H), F32(c0, B, H), F32(r, B, T, H)};
    df_tensor o[12];
    cr_assert_eq(df_graph_run(g, inputs, 5, o, 12), DF_OK, "%s", df_last_error());
    const char *names[] = {"h", "c_T", "d xproj", "d w_rec", "d h0", "d c0"};
    for (int k = 0; k < 6; k++) {
        cr_assert(df_shape_equal(o[2 * k].ndim, o[2 * k].shape, o[2 * k + 1].ndim, o[2 * k + 1].shape), "%s shape", names[k]);
        double err = expect_near(o[2 * k].data, o[2 * k + 1].data, df_tensor_numel(&o[2 * k]), 1e-5, names[k]);
        cr_log_info("fused vs unrolled %-8s max abs diff %.3g", names[k], err);
    }
    df_graph_free(g);
    free(x), free(w), free(h0), free(c0), free(r);
}

/* ------------------------------- every kernel path, several threads, 1/2/3 threads */

/* Sizes where the lstm splits its units among threads: B*H*4H reaches
 * LSTM_PAR_MACS and H spans 9 panels of the packed kernel and 3 OpenBLAS
 * chunks (the last of each partial), so 2 and 3 threads each own a slice and
 * the slices end at different units. At B = 8, T = 8 the packed d w_rec
 * (lstm_hprev form 1) splits its columns among threads too. */
enum { PE = 16, PT = 8, PB = 8, PH_ = 264, PB1 = 1, PT1 = 4, PH1 = 264 };

typedef struct lstm_path {
    const char *name;
    int no_pack, no_avx512, packed_dw;      /* as lstm_force_paths takes them */
    int64_t B, T, H;
    bool small;                             /* below the threading threshold: the serial branch */
} lstm_path;

/* The fused lstm and the unrolled one on xproj = x @ kernel + bias, the
 * outputs in pairs (fused, unrolled): h, c_T and the gradients of sum(h * R)
 * w.r.t. x, kernel, bias, w_rec, h0 and c0. */
static df_graph *build_fused_and_unrolled(int64_t B, int64_t T, int64_t H)
{
    df_graph *g = df_graph_new();
    df_node *in[7] = {PH(g, B, T, PE), PH(g, PE, 4 * H), PH(g, 4 * H), PH(g, H, 4 * H),
                      PH(g, B, H), PH(g, B, H), PH(g, B, T, H)};
    df_node *xproj = df_add(g, df_matmul(g, in[0], in[1], false, false), in[2]);
    df_node *hf = df_lstm(g, xproj, in[3], in[4], in[5]);
    df_node *cu, *hu = unrolled_lstm(g, xproj, in[3], in[4], in[5], B, T, H, &cu);
    df_node *gf[6], *gu[6];
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, hf, in[6]), NULL, 0, false), NULL, 6, in, gf), DF_OK, "%s",
                 df_graph_error(g));
    cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, hu, in[6]), NULL, 0, false), NULL, 6, in, gu), DF_OK, "%s",
                 df_graph_error(g));
    df_graph_output(g, hf);
    df_graph_output(g, hu);
    df_graph_output(g, df_lstm_final_c(g, hf));
    df_graph_output(g, cu);
    for (int i = 0; i < 6; i++) {
        df_graph_output(g, gf[i]);
        df_graph_output(g, gu[i]);
    }
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));
    return g;
}

/* Whether the machine can run the path p asks for; if not, says so. */
static bool path_available(const lstm_path *p)
{
    bool wants_avx512 = !p->no_avx512;
    if (wants_avx512 && !lstm_use_avx512()) {
        cr_log_info("%s: not run, this CPU (or compiler) has no AVX-512 clones", p->name);
        return false;
    }
    return true;
}

/* Forces path p, checks that it is the one that runs, then compares the
 * fused lstm with the unrolled one on 1, 2 and 3 threads. */
static void check_path(const lstm_path *p)
{
    lstm_force_paths(p->no_pack, p->no_avx512, p->packed_dw);
    if (!path_available(p)) {
        lstm_force_paths(-1, -1, -1);
        return;
    }
    const int64_t B = p->B, T = p->T, H = p->H, G4 = 4 * H;
    cr_assert_eq(lstm_use_avx512(), !p->no_avx512, "%s: AVX-512 clones", p->name);
    cr_assert_eq(lstm_use_packed(B), B >= 2 && !p->no_pack && !p->no_avx512, "%s: packed kernel", p->name);
    cr_assert_eq(lstm_use_packed_dw(), !p->no_pack && !p->no_avx512 && p->packed_dw, "%s: packed d w_rec", p->name);
    /* the sizes split the units among up to 3 threads (see PB, PH_) */
    const int64_t align = lstm_use_packed(B) ? LSTM_ALIGN : LSTM_BLAS_CHUNK;
    if (p->small) {
        cr_assert_lt(B * H * G4, LSTM_PAR_MACS, "%s: above the threading threshold", p->name);
    } else {
        cr_assert_geq(B * H * G4, LSTM_PAR_MACS, "%s: below the threading threshold", p->name);
        cr_assert_eq(lstm_threads(H, align, 3), 3, "%s: fewer than 3 slices of units", p->name);
    }
    cr_assert_neq(H % align, 0, "%s: no partial slice", p->name);

    df_rng rng;
    df_rng_seed(&rng, 23);
    const float ws = 1.5f / sqrtf((float)H);        /* gates neither saturated nor linear */
    float *buf[7] = {rand_buf(&rng, B * T * PE, -1, 1), rand_buf(&rng, PE * G4, -0.4f, 0.4f),
                     rand_buf(&rng, G4, -0.5f, 0.5f),  rand_buf(&rng, H * G4, -ws, ws),
                     rand_buf(&rng, B * H, -1, 1),     rand_buf(&rng, B * H, -1, 1),
                     rand_buf(&rng, B * T * H, -1, 1)};
    df_tensor in[7] = {F32(buf[0], B, T, PE), F32(buf[1], PE, G4), F32(buf[2], G4), F32(buf[3], H, G4),
                       F32(buf[4], B, H),     F32(buf[5], B, H),   F32(buf[6], B, T, H)};
    static const char *const names[] = {"h", "c_T", "d x", "d kernel", "d bias", "d w_rec", "d h0", "d c0"};
    df_graph *g = build_fused_and_unrolled(B, T, H);
    expect_pairs_on_1_2_3_threads(g, in, 7, 8, names, 2e-5, p->name);
    df_graph_free(g);
    for (int i = 0; i < 7; i++) free(buf[i]);
    lstm_force_paths(-1, -1, -1);
}

/* Each path in its own test; lstm_force_paths (not the environment) picks it,
 * so the choice holds however Criterion runs the tests. */
Test(lstm_paths, packed_avx512_with_packed_dw)
{
    check_path(&(lstm_path){"packed AVX-512 + packed d w_rec", 0, 0, 1, PB, PT, PH_, false});
}
Test(lstm_paths, packed_avx512_with_openblas_dw)
{
    check_path(&(lstm_path){"packed AVX-512 + OpenBLAS d w_rec", 0, 0, 0, PB, PT, PH_, false});
}
Test(lstm_paths, openblas_with_avx512_clones)
{
    check_path(&(lstm_path){"OpenBLAS + AVX-512 clones", 1, 0, 0, PB, PT, PH_, false});
}
Test(lstm_paths, openblas_with_baseline_passes)
{
    check_path(&(lstm_path){"OpenBLAS + baseline passes", 1, 1, 0, PB, PT, PH_, false});
}
Test(lstm_paths, batch1_matrix_vector_with_avx512_clones_and_packed_dw)
{
    check_path(&(lstm_path){"B=1 gemv + AVX-512 clones + packed d w_rec", 0, 0, 1, PB1, PT1, PH1, false});
}
Test(lstm_paths, batch1_matrix_vector_with_baseline_passes)
{
    check_path(&(lstm_path){"B=1 gemv + baseline passes", 0, 1, 0, PB1, PT1, PH1, false});
}
/* Below the threshold the sequence runs on the calling thread and OpenBLAS
 * is free to thread its calls. */
Test(lstm_paths, small_openblas_and_batch1_on_the_calling_thread)
{
    check_path(&(lstm_path){"small B=4 OpenBLAS", 1, 0, 0, 4, 3, 100, true});
    check_path(&(lstm_path){"small B=1 gemv", 1, 0, 0, 1, 3, 200, true});
}
Test(lstm_paths, small_packed_avx512_with_packed_dw)
{
    check_path(&(lstm_path){"small B=4 packed AVX-512 + packed d w_rec", 0, 0, 1, 4, 3, 100, true});
}

/* ------------------------------------------------------------ a step by hand */

/* B=1, T=1, H=2 (so 4H = 8 columns laid out [i0 i1 | f0 f1 | g0 g1 | o0 o1]).
 * z = x + h0 @ w = (0.85, -0.6 | 0.25, 0.7 | -1.15, 0.65 | 1.25, -0.95);
 * i = sigmoid(0.85, -0.6), f = sigmoid(0.25, 0.7), g = tanh(-1.15, 0.65),
 * o = sigmoid(1.25, -0.95); c = f*c0 + i*g; h = o*tanh(c). For loss h0+h1:
 * dc = o(1 - tanh^2 c), dz = (dc g i(1-i) | dc c0 f(1-f) | dc i (1-g^2) |
 * tanh(c) o(1-o)), dc0 = dc f, dh0 = dz @ w^T (evaluated in double). */
Test(lstm, one_step_by_hand)
{
    float x[8] = {0.5f, -0.3f, 0.2f, 0.1f, -0.4f, 0.6f, 0.3f, -0.2f};
    float w[16] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f, 0.7f, -0.8f,
                   -0.3f, 0.2f, 0.1f, -0.4f, 0.5f, 0.25f, -0.6f, 0.35f};
    float h0[2] = {0.5f, -1.0f}, c0[2] = {0.25f, -0.75f};
    const float want_h[2] = {-0.316579691f, -0.080878365f}, want_c[2] = {-0.432347512f, -0.298573182f};
    const float want_dz[8] = {-0.111221841f, 0.033407400f, 0.039896050f, -0.042474020f,
                              0.150473787f, 0.060930646f, -0.070502341f, -0.058322617f};
    const float want_dc0[2] = {0.364494373f, 0.170674924f}, want_dh0[2] = {-0.064196508f, 0.173385289f};

    df_graph *g = df_graph_new();
    df_node *in[4] = {PH(g, 1, 1, 8), PH(g, 2, 8), PH(g, 1, 2), PH(g, 1, 2)};
    df_node *h = df_lstm(g, in[0], in[1], in[2], in[3]);
    df_node *grads[4];
    cr_assert_eq(df_gradients(g, h, NULL, 4, in, grads), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, h);
    df_graph_output(g, df_lstm_final_c(g, h));
    df_graph_output(g, grads[0]);
    df_graph_output(g, grads[2]);
    df_graph_output(g, grads[3]);
    df_tensor inputs[4] = {F32(x, 1, 1, 8), F32(w, 2, 8), F32(h0, 1, 2), F32(c0, 1, 2)};
    df_tensor o[5];
    cr_assert_eq(df_graph_run(g, inputs, 4, o, 5), DF_OK, "%s", df_last_error());
    cr_expect_eq(o[0].ndim, 3);
    cr_expect(o[0].shape[0] == 1 && o[0].shape[1] == 1 && o[0].shape[2] == 2);
    expect_near(o[0].data, want_h, 2, 1e-6, "h");
    expect_near(o[1].data, want_c, 2, 1e-6, "c_T");
    expect_near(o[2].data, want_dz, 8, 1e-6, "d xproj");
    expect_near(o[3].data, want_dh0, 2, 1e-6, "d h0");
    expect_near(o[4].data, want_dc0, 2, 1e-6, "d c0");
    df_graph_free(g);
}

/* -------------------------------------------------------------- error paths */

/* Builds df_lstm on placeholders of the given shapes; expects NULL and an error
 * naming the op and containing each of the strings in want. */
static void expect_lstm_error(df_dtype xdtype, int xnd, const int64_t *xs, const int64_t *ws,
                              const int64_t *h0s, const int64_t *c0s, df_status want_status,
                              const char *want1, const char *want2)
{
    df_graph *g = df_graph_new();
    df_node *x = df_placeholder(g, xdtype, xnd, xs, "x");
    df_node *w = df_placeholder(g, DF_F32, 2, ws, "w");
    df_node *h0 = df_placeholder(g, DF_F32, 2, h0s, "h0");
    df_node *c0 = df_placeholder(g, DF_F32, 2, c0s, "c0");
    df_node *h = df_lstm(g, x, w, h0, c0);
    cr_expect_null(h);
    cr_expect_eq(df_graph_status(g), want_status, "status %s: %s", df_status_name(df_graph_status(g)),
                 df_graph_error(g));
    const char *msg = df_graph_error(g);
    cr_expect(strstr(msg, "'lstm'") != NULL, "message does not name the op: %s", msg);
    if (want1) cr_expect(strstr(msg, want1) != NULL, "message lacks '%s': %s", want1, msg);
    if (want2) cr_expect(strstr(msg, want2) != NULL, "message lacks '%s': %s", want2, msg);
    /* sticky: later constructors return NULL too */
    cr_expect_null(df_lstm_final_c(g, h));
    df_graph_free(g);
}

Test(lstm, shape_and_dtype_errors)
{
    /* xproj not 3-D / last dim not a multiple of 4 / no time steps */
    expect_lstm_error(DF_F32, 2, SHAPE(3, 16), SHAPE(4, 16), SHAPE(3, 4), SHAPE(3, 4), DF_ERR_SHAPE, "(3,16)", "(B,T,4H)");
    expect_lstm_error(DF_F32, 3, SHAPE(3, 5, 10), SHAPE(4, 16), SHAPE(3, 4), SHAPE(3, 4), DF_ERR_SHAPE, "(3,5,10)", NULL);
    expect_lstm_error(DF_F32, 3, SHAPE(3, 0, 16), SHAPE(4, 16), SHAPE(3, 4), SHAPE(3, 4), DF_ERR_SHAPE, "(3,0,16)", NULL);
    /* w_rec, h0, c0 of the wrong shape: both shapes in the message */
    expect_lstm_error(DF_F32, 3, SHAPE(3, 5, 16), SHAPE(4, 12), SHAPE(3, 4), SHAPE(3, 4), DF_ERR_SHAPE, "(3,5,16)", "(4,12)");
    expect_lstm_error(DF_F32, 3, SHAPE(3, 5, 16), SHAPE(16, 4), SHAPE(3, 4), SHAPE(3, 4), DF_ERR_SHAPE, "(3,5,16)", "(16,4)");
    expect_lstm_error(DF_F32, 3, SHAPE(3, 5, 16), SHAPE(4, 16), SHAPE(2, 4), SHAPE(3, 4), DF_ERR_SHAPE, "h0", "(2,4)");
    expect_lstm_error(DF_F32, 3, SHAPE(3, 5, 16), SHAPE(4, 16), SHAPE(3, 4), SHAPE(3, 5), DF_ERR_SHAPE, "c0", "(3,5)");
    /* wrong dtype */
    expect_lstm_error(DF_I32, 3, SHAPE(3, 5, 16), SHAPE(4, 16), SHAPE(3, 4), SHAPE(3, 4), DF_ERR_DTYPE, "i32", NULL);
}

Test(lstm, misuse_of_state_and_gradient_ops)
{
    /* final_c of something that is not an lstm */
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 3);
    cr_expect_null(df_lstm_final_c(g, df_tanh(g, x)));
    cr_expect(strstr(df_graph_error(g), "lstm_final_c") && strstr(df_graph_error(g), "tanh"), "%s", df_graph_error(g));
    df_graph_free(g);

    /* a NULL input */
    g = df_graph_new();
    cr_expect_null(df_lstm(g, NULL, PH(g, 1, 4), PH(g, 1, 1), PH(g, 1, 1)));
    cr_expect(strstr(df_graph_error(g), "lstm") != NULL, "%s", df_graph_error(g));
    df_graph_free(g);

    /* the carried state has no gradient: differentiating through it fails cleanly */
    g = df_graph_new();
    df_node *in[4] = {PH(g, 2, 3, 8), PH(g, 2, 8), PH(g, 2, 2), PH(g, 2, 2)};
    df_node *h = df_lstm(g, in[0], in[1], in[2], in[3]);
    df_node *loss = df_sum(g, df_lstm_final_c(g, h), NULL, 0, false), *grads[4];
    cr_expect_eq(df_gradients(g, loss, NULL, 4, in, grads), DF_ERR_UNSUPPORTED);
    cr_expect(strstr(df_graph_error(g), "lstm_final_c") != NULL, "%s", df_graph_error(g));
    df_graph_free(g);

    /* no second derivative: the BPTT node is not differentiable */
    g = df_graph_new();
    df_node *in2[4] = {PH(g, 2, 3, 8), PH(g, 2, 8), PH(g, 2, 2), PH(g, 2, 2)};
    h = df_lstm(g, in2[0], in2[1], in2[2], in2[3]);
    cr_assert_eq(df_gradients(g, df_sum(g, h, NULL, 0, false), NULL, 4, in2, grads), DF_OK);
    df_node *gg[1];
    cr_expect_eq(df_gradients(g, df_sum(g, grads[0], NULL, 0, false), NULL, 1, in2, gg), DF_ERR_UNSUPPORTED);
    cr_expect(strstr(df_graph_error(g), "lstm_grad") != NULL, "%s", df_graph_error(g));
    df_graph_free(g);
}

/* ----------------------------------------------------------- determinism */

enum { DB = 16, DT = 6, DH = 300 };   /* B*H above the parallel threshold, 2 column blocks */

static df_graph *build_det(void)
{
    df_graph *g = df_graph_new();
    df_node *in[5] = {PH(g, DB, DT, 4 * DH), PH(g, DH, 4 * DH), PH(g, DB, DH), PH(g, DB, DH), PH(g, DB, DT, DH)};
    df_node *h = df_lstm(g, in[0], in[1], in[2], in[3]), *grads[4];
    df_node *loss = df_sum(g, df_mul(g, h, in[4]), NULL, 0, false);
    cr_assert_eq(df_gradients(g, loss, NULL, 4, in, grads), DF_OK, "%s", df_graph_error(g));
    df_graph_output(g, h);
    df_graph_output(g, df_lstm_final_c(g, h));
    for (int i = 0; i < 4; i++) df_graph_output(g, grads[i]);
    return g;
}

static void run_det(df_graph *g, const df_tensor *in, float **copy)
{
    df_tensor o[6];
    cr_assert_eq(df_graph_run(g, in, 5, o, 6), DF_OK, "%s", df_last_error());
    for (int i = 0; i < 6; i++) {
        size_t bytes = (size_t)df_tensor_numel(&o[i]) * sizeof(float);
        copy[i] = malloc(bytes);
        memcpy(copy[i], o[i].data, bytes);
    }
}

Test(lstm, same_inputs_bit_identical)
{
    df_rng rng;
    df_rng_seed(&rng, 11);
    float *x = rand_buf(&rng, DB * DT * 4 * DH, -2, 2), *w = rand_buf(&rng, DH * 4 * DH, -0.1f, 0.1f);
    float *h0 = rand_buf(&rng, DB * DH, -1, 1), *c0 = rand_buf(&rng, DB * DH, -1, 1);
    float *r = rand_buf(&rng, DB * DT * DH, -1, 1);
    df_tensor in[5] = {F32(x, DB, DT, 4 * DH), F32(w, DH, 4 * DH), F32(h0, DB, DH), F32(c0, DB, DH),
                       F32(r, DB, DT, DH)};
    const int64_t numel[6] = {DB * DT * DH, DB * DH, DB * DT * 4 * DH, DH * 4 * DH, DB * DH, DB * DH};
    df_graph *g1 = build_det(), *g2 = build_det();
    float *a[6], *b[6], *c[6];
    run_det(g1, in, a);
    run_det(g1, in, b);        /* same compiled graph again */
    run_det(g2, in, c);        /* a fresh graph */
    for (int i = 0; i < 6; i++) {
        cr_expect(memcmp(a[i], b[i], (size_t)numel[i] * sizeof(float)) == 0, "output %d differs between runs", i);
        cr_expect(memcmp(a[i], c[i], (size_t)numel[i] * sizeof(float)) == 0, "output %d differs between graphs", i);
        free(a[i]), free(b[i]), free(c[i]);
    }
    df_graph_free(g1);
    df_graph_free(g2);
    free(x), free(w), free(h0), free(c0), free(r);
}

/* --------------------------------------------------------- stateful carry */

/* Running T steps at once equals two runs of T/2 steps where the second
 * starts from the first's h[:, T/2-1] and lstm_final_c. */
Test(lstm, stateful_carry_over_matches_one_long_run)
{
    enum { B = 2, T = 6, H = 5, G4 = 4 * H };
    df_rng rng;
    df_rng_seed(&rng, 3);
    float *x = rand_buf(&rng, B * T * G4, -1, 1), *w = rand_buf(&rng, H * G4, -1, 1);
    float *h0 = rand_buf(&rng, B * H, -1, 1), *c0 = rand_buf(&rng, B * H, -1, 1);
    df_tensor o[2];

    df_graph *g = df_graph_new();
    df_node *in[4] = {PH(g, B, T, G4), PH(g, H, G4), PH(g, B, H), PH(g, B, H)};
    df_node *h = df_lstm(g, in[0], in[1], in[2], in[3]);
    df_graph_output(g, h);
    df_graph_output(g, df_lstm_final_c(g, h));
    df_tensor in_full[4] = {F32(x, B, T, G4), F32(w, H, G4), F32(h0, B, H), F32(c0, B, H)};
    cr_assert_eq(df_graph_run(g, in_full, 4, o, 2), DF_OK, "%s", df_last_error());
    float full_h[B * T * H], full_c[B * H];
    memcpy(full_h, o[0].data, sizeof full_h);
    memcpy(full_c, o[1].data, sizeof full_c);
    df_graph_free(g);

    g = df_graph_new();
    df_node *in2[4] = {PH(g, B, T / 2, G4), PH(g, H, G4), PH(g, B, H), PH(g, B, H)};
    h = df_lstm(g, in2[0], in2[1], in2[2], in2[3]);
    df_graph_output(g, h);
    df_graph_output(g, df_lstm_final_c(g, h));
    float xa[B * T / 2 * G4], hs[B * H], cs[B * H], got_h[B * T * H];
    memcpy(hs, h0, sizeof hs);
    memcpy(cs, c0, sizeof cs);
    for (int half = 0; half < 2; half++) {
        for (int b = 0; b < B; b++)
            memcpy(xa + b * (T / 2) * G4, x + (b * T + half * (T / 2)) * G4, (size_t)(T / 2) * G4 * sizeof(float));
        df_tensor in_half[4] = {F32(xa, B, T / 2, G4), F32(w, H, G4), F32(hs, B, H), F32(cs, B, H)};
        cr_assert_eq(df_graph_run(g, in_half, 4, o, 2), DF_OK, "%s", df_last_error());
        const float *hh = o[0].data;
        for (int b = 0; b < B; b++) {
            memcpy(got_h + (b * T + half * (T / 2)) * H, hh + b * (T / 2) * H, (size_t)(T / 2) * H * sizeof(float));
            memcpy(hs + b * H, hh + (b * (T / 2) + T / 2 - 1) * H, H * sizeof(float));
        }
        memcpy(cs, o[1].data, sizeof cs);
    }
    expect_near(got_h, full_h, B * T * H, 1e-6, "h");
    expect_near(cs, full_c, B * H, 1e-6, "c_T");
    df_graph_free(g);
    free(x), free(w), free(h0), free(c0);
}

/* ----------------------------------------------------------- gradcheck */

Test(lstm, gradcheck_cases_over_seeds)
{
    int cases = 0;
    double worst = 0;
    for (const df_gradcheck_case *c = df_op_lstm.gradcheck; c && c->build; c++, cases++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            df_gradcheck_result r;
            cr_assert_eq(df_gradcheck_case_run(c, seed, &r), DF_OK, "%s: %s", c->desc, df_last_error());
            cr_expect_eq(r.failed, 0, "%s seed %llu: %d of %d off; worst input %d[%lld] analytic %.6g numeric %.6g",
                         c->desc, (unsigned long long)seed, r.failed, r.checked, r.worst_input,
                         (long long)r.worst_index, r.worst_analytic, r.worst_numeric);
            if (r.max_abs_err > worst) worst = r.max_abs_err;
        }
    cr_expect_geq(cases, 1);
    cr_log_info("lstm gradcheck: %d cases x 4 seeds, max abs error %.3g", cases, worst);
}

/* ------------------------------------------------ training with state carry */

typedef struct rnn {
    df_variable *kernel, *bias, *rec, *dense, *h_state, *c_state;
    df_variable *train[4];
    df_optimizer *opt;
} rnn;

enum { RB = 4, RT = 8, RE = 3, RH = 6 };

/* inputs x (B,T,E), y (B,T,1) -> loss, final c */
static df_status rnn_step(df_graph *g, df_node **in, void *user)
{
    rnn *m = user;
    df_tape *tape = df_tape_begin(g);
    df_node *xproj = df_add(g, df_matmul(g, in[0], df_var(g, m->kernel), false, false), df_var(g, m->bias));
    df_node *h = df_lstm(g, xproj, df_var(g, m->rec), df_var(g, m->h_state), df_var(g, m->c_state));
    df_node *pred = df_matmul(g, h, df_var(g, m->dense), false, false);
    df_node *loss = df_mean(g, df_square(g, df_sub(g, pred, in[1])), NULL, 0, false);
    df_tape_end(tape);
    df_node *grads[4];
    if (df_tape_gradient(tape, loss, 4, m->train, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, m->opt, 4, m->train, grads);
    df_node *c_T = df_lstm_final_c(g, h);
    df_node *h_T = df_reshape(g, df_slice(g, h, SHAPE(0, RT - 1, 0), SHAPE(RB, 1, RH)), 2, SHAPE(RB, RH));
    df_assign(g, m->c_state, c_T);
    df_assign(g, m->h_state, h_T);
    df_graph_output(g, loss);
    df_graph_output(g, c_T);
    return df_graph_status(g);
}

Test(lstm, trains_with_adam_and_carries_state)
{
    df_rng rng;
    df_rng_seed(&rng, 5);
    rnn m;
    m.kernel = df_variable_new("kernel", DF_F32, 2, SHAPE(RE, 4 * RH), df_init_glorot_uniform(), &rng);
    m.bias = df_variable_new("bias", DF_F32, 1, SHAPE(4 * RH), df_init_zeros(), NULL);
    m.rec = df_variable_new("rec", DF_F32, 2, SHAPE(RH, 4 * RH), df_init_orthogonal(1.0f), &rng);
    m.dense = df_variable_new("dense", DF_F32, 2, SHAPE(RH, 1), df_init_glorot_uniform(), &rng);
    m.h_state = df_variable_new("h_state", DF_F32, 2, SHAPE(RB, RH), df_init_zeros(), NULL);
    m.c_state = df_variable_new("c_state", DF_F32, 2, SHAPE(RB, RH), df_init_zeros(), NULL);
    m.train[0] = m.kernel, m.train[1] = m.bias, m.train[2] = m.rec, m.train[3] = m.dense;
    m.opt = df_adam_new(0.02f, 0.9f, 0.999f, 1e-7f);
    cr_assert(m.kernel && m.bias && m.rec && m.dense && m.h_state && m.c_state && m.opt);

    /* target: y_t = 0.5 * x_{t-1}[0] (needs memory across steps) */
    float x[RB * RT * RE], y[RB * RT];
    for (int i = 0; i < RB * RT * RE; i++) x[i] = 2 * df_rng_uniform(&rng) - 1;
    for (int b = 0; b < RB; b++)
        for (int t = 0; t < RT; t++) y[b * RT + t] = t ? 0.5f * x[(b * RT + t - 1) * RE] : 0.0f;
    df_tensor in[2] = {F32(x, RB, RT, RE), F32(y, RB, RT, 1)};

    df_function *f = df_function_new("rnn_step", rnn_step, &m);
    df_tensor out[2];
    float first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        /* reset the carried state every 3 calls, as at the start of an epoch */
        if (step % 3 == 0) {
            df_variable_init(m.h_state, df_init_zeros(), NULL);
            df_variable_init(m.c_state, df_init_zeros(), NULL);
        }
        cr_assert_eq(df_function_call(f, in, 2, out, 2), DF_OK, "%s", df_last_error());
        last = *(float *)out[0].data;
        if (step == 0) first = last;
        /* the assign ran after the lstm read the old state: c_state is now this call's c_T */
        df_tensor cs = df_variable_tensor(m.c_state);
        cr_assert(memcmp(cs.data, out[1].data, RB * RH * sizeof(float)) == 0, "c_state != final c at step %d", step);
    }
    cr_expect_eq(df_function_trace_count(f), 1);
    cr_log_info("lstm training: loss %.4f -> %.4f", first, last);
    cr_expect_lt(last, 0.2f * first, "loss went from %g to %g", first, last);
    df_function_free(f);
    df_optimizer_free(m.opt);
    df_variable *vars[] = {m.kernel, m.bias, m.rec, m.dense, m.h_state, m.c_state};
    for (int i = 0; i < 6; i++) df_variable_free(vars[i]);
}
