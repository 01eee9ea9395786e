/* test_layers.c — the public API's small pieces (filled tensors that follow
 * open dimensions, the checked variable assignment, version, a function's
 * passes, run errors that name the function) and the layers and models
 * built on them. */
#define _GNU_SOURCE            /* open_memstream */
#include <stdio.h>
#include <unistd.h>
#include "helpers.h"
#include "model.h"             /* examples/charrnn: the hand-built model the layers must match */

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

/* ================================================================ layers */

/* Runs a one-input graph: x -> model(x, training). */
static df_tensor run_model(df_model *m, df_graph **g, const df_tensor *x, bool training)
{
    *g = df_graph_new();
    df_node *in = df_placeholder(*g, x->dtype, x->ndim, x->shape, "x");
    df_node *y = df_model_call(m, *g, in, training);
    cr_assert_not_null(y, "%s", df_graph_error(*g));
    df_graph_output(*g, y);
    return run1(*g, x, 1);
}

static void set_values(df_variable *v, float scale)
{
    df_tensor t = df_variable_tensor(v);
    for (int64_t i = 0; i < df_tensor_numel(&t); i++) ((float *)t.data)[i] = scale * (float)((i * 7) % 5 - 2);
}

Test(layers, dense_forward_is_x_at_kernel_plus_bias_then_activation)
{
    static const df_activation acts[] = {DF_ACT_NONE, DF_ACT_RELU, DF_ACT_TANH, DF_ACT_SIGMOID};
    float x[8] = {0.5f, -1, 2, 0.25f, -0.75f, 1.5f, 0, -2};
    df_tensor xt = F32(x, 2, 4);
    for (int a = 0; a < 4; a++)
        for (int use_bias = 0; use_bias < 2; use_bias++) {
            df_model *m = df_model_new("m", 1);
            cr_assert_eq(df_model_add(m, df_dense_layer(3, acts[a], use_bias)), DF_OK);
            df_layer *d = df_model_layer(m, 0);
            df_graph *g;
            cr_assert_eq(df_model_build(m, 2, SHAPE(DF_DYNAMIC, 4)), DF_OK, "%s", df_last_error());
            df_variable *k = df_layer_weight(d, "kernel"), *b = df_layer_weight(d, "bias");
            cr_assert(k && (b != NULL) == use_bias);
            if (b) set_values(b, 0.3f);
            df_tensor y = run_model(m, &g, &xt, false);
            const float *K = df_variable_tensor(k).data, *B = b ? df_variable_tensor(b).data : NULL;
            cr_expect(y.ndim == 2 && y.shape[0] == 2 && y.shape[1] == 3);
            for (int r = 0; r < 2; r++)
                for (int j = 0; j < 3; j++) {
                    double z = B ? B[j] : 0;
                    for (int i = 0; i < 4; i++) z += (double)x[r * 4 + i] * K[i * 3 + j];
                    double want = acts[a] == DF_ACT_RELU ? fmax(z, 0) : acts[a] == DF_ACT_TANH ? tanh(z)
                                : acts[a] == DF_ACT_SIGMOID ? 1 / (1 + exp(-z)) : z;
                    cr_expect(fabs(((float *)y.data)[r * 3 + j] - want) < 1e-6, "act %d bias %d [%d,%d]: %g vs %g",
                              a, use_bias, r, j, ((float *)y.data)[r * 3 + j], want);
                }
            cr_expect_eq(df_layer_param_count(d), 12 + (use_bias ? 3 : 0));
            df_graph_free(g);
            df_model_free(m);
        }
}

Test(layers, names_follow_keras_and_are_unique_in_a_model)
{
    df_model *m = df_model_new("m", 1);
    cr_assert_eq(df_model_add(m, df_embedding_layer(10, 4)), DF_OK);
    cr_assert_eq(df_model_add(m, df_lstm_layer(3, (df_rnn_options){.return_sequences = true, .recurrent_glorot = true})), DF_OK);
    cr_assert_eq(df_model_add(m, df_lstm_layer(3, (df_rnn_options){.return_sequences = true})), DF_OK);
    cr_assert_eq(df_model_add(m, df_dropout_layer(0.1f)), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(5, DF_ACT_RELU, true)), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(10, DF_ACT_NONE, true)), DF_OK);
    cr_assert_eq(df_model_build(m, 2, SHAPE(2, 6)), DF_OK, "%s", df_last_error());
    static const char *const want_layers[] = {"embedding", "lstm", "lstm_1", "dropout", "dense", "dense_1"};
    for (int i = 0; i < 6; i++) cr_expect_str_eq(df_layer_name(df_model_layer(m, i)), want_layers[i]);
    static const char *const want_vars[] = {"embedding/embeddings", "lstm/kernel", "lstm/recurrent_kernel", "lstm/bias",
                                            "lstm_1/kernel", "lstm_1/recurrent_kernel", "lstm_1/bias",
                                            "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"};
    df_variable *vars[16];
    cr_assert_eq(df_model_variables(m, vars, 16), 11);
    for (int i = 0; i < 11; i++) cr_expect_str_eq(df_variable_name(vars[i]), want_vars[i]);
    cr_expect_eq(df_layer_weight(df_model_layer(m, 5), "kernel"), vars[9]);
    cr_expect_null(df_layer_weight(df_model_layer(m, 5), "recurrent_kernel"));
    /* a chosen name must be unique too */
    df_layer *dup = df_dense_layer(2, DF_ACT_NONE, false);
    cr_assert_eq(df_layer_set_name(dup, "dense_1"), DF_OK);
    cr_expect_eq(df_model_add(m, dup), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "dense_1"), "%s", df_last_error());
    df_layer *head = df_dense_layer(2, DF_ACT_NONE, false);
    cr_assert_eq(df_layer_set_name(head, "head"), DF_OK);
    cr_expect_eq(df_model_add(m, head), DF_OK);
    cr_expect_eq(df_model_layer_count(m), 7);
    df_model_free(m);
}

/* The char-rnn models built from layers, to compare with examples/charrnn. */
static df_model *layers_charrnn(const cr_config *c)
{
    df_model *m = df_model_new("char_rnn", c->seed);
    cr_assert_eq(df_model_add(m, df_embedding_layer(c->vocab, c->embed)), DF_OK);
    df_rnn_options o = {.return_sequences = true, .stateful = true, .recurrent_glorot = true};
    for (int k = 0; k < cr_config_layers(c); k++) {
        df_layer *l = c->cell == CR_CELL_LSTM  ? df_lstm_layer(c->hidden, o)
                      : c->cell == CR_CELL_GRU ? df_gru_layer(c->hidden, !c->gru_reset_before, o)
                                               : df_simple_rnn_layer(c->hidden, o);
        cr_assert_eq(df_model_add(m, l), DF_OK);
        if (c->dropout > 0) cr_assert_eq(df_model_add(m, df_dropout_layer(c->dropout)), DF_OK);
    }
    cr_assert_eq(df_model_add(m, df_dense_layer(c->vocab, DF_ACT_NONE, true)), DF_OK);
    return m;
}

static cr_config charrnn_config(int V, int E, int H, cr_cell cell, int layers, bool reset_before, uint64_t seed)
{
    return (cr_config){.vocab = V, .embed = E, .hidden = H, .learning_rate = 1e-3f, .seed = seed, .cell = cell,
                       .layers = layers, .gru_reset_before = reset_before};
}

static char *capture_summary(const cr_model *cm, const df_model *lm, int batch)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (cm) cr_model_summary(cm, batch, f);
    else df_model_summary(lm, f);
    fclose(f);
    return text;
}

Test(layers, char_rnn_stack_counts_and_summary_match_char_rnn, .timeout = 120)
{
    cr_config c = charrnn_config(65, 256, 1024, CR_CELL_LSTM, 1, false, 42);
    df_model *m = layers_charrnn(&c);
    cr_assert_eq(df_model_build(m, 2, SHAPE(64, DF_DYNAMIC)), DF_OK, "%s", df_last_error());
    cr_expect_eq(df_layer_param_count(df_model_layer(m, 0)), 16640);
    cr_expect_eq(df_layer_param_count(df_model_layer(m, 1)), 5246976);
    cr_expect_eq(df_layer_param_count(df_model_layer(m, 2)), 66625);
    cr_expect_eq(df_model_param_count(m), 5330241);
    char *ours = capture_summary(NULL, m, 64);
    cr_expect(strstr(ours, "Total params: 5,330,241\n") && strstr(ours, "Trainable params: 5,330,241\n") &&
              strstr(ours, " 16,640 ") && strstr(ours, " 5,246,976 ") && strstr(ours, " 66,625 ") &&
              strstr(ours, "lstm (LSTM)                 (64, None, 1024)") && strstr(ours, "Non-trainable params: 0\n"),
              "%s", ours);
    cr_model cm;
    cr_assert_eq(cr_model_init(&cm, &c), DF_OK, "%s", df_last_error());
    char *theirs = capture_summary(&cm, NULL, 64);
    cr_expect_str_eq(ours, theirs);
    free(ours);
    free(theirs);
    cr_model_free(&cm);
    df_model_free(m);
}

Test(layers, gru_stacked_and_dropout_summaries_match_char_rnn)
{
    cr_config configs[] = {charrnn_config(65, 32, 48, CR_CELL_GRU, 1, false, 1),
                           charrnn_config(65, 32, 48, CR_CELL_GRU, 2, true, 1),
                           charrnn_config(65, 32, 48, CR_CELL_LSTM, 2, false, 1),
                           charrnn_config(65, 32, 48, CR_CELL_RNN, 3, false, 1)};
    configs[2].dropout = 0.2f;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        df_model *m = layers_charrnn(&configs[i]);
        cr_assert_eq(df_model_build(m, 2, SHAPE(16, DF_DYNAMIC)), DF_OK, "%s", df_last_error());
        cr_model cm;
        cr_assert_eq(cr_model_init(&cm, &configs[i]), DF_OK);
        char *ours = capture_summary(NULL, m, 16), *theirs = capture_summary(&cm, NULL, 16);
        cr_expect_str_eq(ours, theirs, "config %zu", i);
        cr_expect_eq(df_model_param_count(m), cr_model_param_count(&cm), "config %zu", i);
        free(ours);
        free(theirs);
        cr_model_free(&cm);
        df_model_free(m);
    }
}

/* The same seed gives char-rnn's weights bit for bit, variable by variable. */
static void expect_same_weights(const df_model *m, const cr_model *cm, const char *what)
{
    df_variable *vars[32];
    int n = df_model_variables(m, vars, 32);
    cr_assert_eq(n, cm->n_params, "%s: %d variables, char-rnn has %d", what, n, cm->n_params);
    for (int i = 0; i < n; i++) {
        df_tensor a = df_variable_tensor(vars[i]), b = df_variable_tensor(cm->params[i]);
        cr_assert(df_tensor_numel(&a) == df_tensor_numel(&b) && a.ndim == b.ndim, "%s: %s vs %s", what,
                  df_variable_name(vars[i]), df_variable_name(cm->params[i]));
        cr_expect(memcmp(a.data, b.data, (size_t)df_tensor_numel(&a) * 4) == 0, "%s: %s differs from char-rnn's %s",
                  what, df_variable_name(vars[i]), df_variable_name(cm->params[i]));
    }
}

static df_tensor logits_of(df_model *m, df_graph **g, int32_t *x, int B, int T)
{
    df_tensor xt = I32(x, B, T);
    return run_model(m, g, &xt, false);
}

/* Same bits, element by element, naming the first that differs. */
static void expect_same_bits(const float *got, const float *want, int64_t n, const char *what)
{
    int64_t first = -1, count = 0;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof *got) != 0) {
            if (first < 0) first = i;
            count++;
        }
    cr_expect_eq(count, 0, "%s: %lld of %lld differ, first [%lld]: %.9g vs %.9g", what, (long long)count,
                 (long long)n, (long long)first, first >= 0 ? got[first] : 0, first >= 0 ? want[first] : 0);
}

static void expect_same_variable(df_variable *a, df_variable *b, const char *what)
{
    df_tensor x = df_variable_tensor(a), y = df_variable_tensor(b);
    cr_assert_eq(df_tensor_numel(&x), df_tensor_numel(&y), "%s: %s vs %s", what, df_variable_name(a),
                 df_variable_name(b));
    char full[160];
    snprintf(full, sizeof full, "%s: %s", what, df_variable_name(a));
    expect_same_bits(x.data, y.data, df_tensor_numel(&x), full);
}

/* Non-zero biases on both models, so that their wiring matters too. */
static void set_biases(df_model *m, cr_model *cm)
{
    df_variable *vars[32];
    int n = df_model_variables(m, vars, 32);
    for (int k = 0; k < n; k++)
        if (strstr(df_variable_name(vars[k]), "/bias")) {
            set_values(vars[k], 0.1f);
            set_values(cm->params[k], 0.1f);
        }
}

/* n ids in [0, V). */
static int32_t *random_ids(uint64_t seed, int n, int V)
{
    df_rng rng;
    df_rng_seed(&rng, seed);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    cr_assert_not_null(ids);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(df_rng_uniform(&rng) * (float)V) % V;
    return ids;
}

/* Batches on both sides of char-rnn's projection choice for V = 40:
 * B*T = 6 < V gathers then projects, B*T = 40 >= V looks up the projected table. */
static const struct { int B, T; } regimes[] = {{2, 3}, {8, 5}};

/* Each cell's layer stack computes char-rnn's logits bit for bit from the
 * same seed: the same variables, bias splitting, zero initial state, carried
 * state and, per trace, the same input projection. */
Test(layers, rnn_layers_compute_char_rnns_logits_with_its_weights)
{
    cr_config configs[] = {charrnn_config(40, 6, 8, CR_CELL_LSTM, 1, false, 3),
                           charrnn_config(40, 6, 8, CR_CELL_GRU, 1, false, 4),
                           charrnn_config(40, 6, 8, CR_CELL_GRU, 1, true, 5),
                           charrnn_config(40, 6, 8, CR_CELL_RNN, 2, false, 6),
                           charrnn_config(40, 6, 8, CR_CELL_LSTM, 2, false, 7)};
    for (size_t r = 0; r < 2; r++) {
        int B = regimes[r].B, T = regimes[r].T;
        int32_t *x = random_ids(r + 1, B * T, 40);
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
            char what[64];
            snprintf(what, sizeof what, "config %zu, B*T = %d", i, B * T);
            cr_model cm;
            cr_assert_eq(cr_model_init(&cm, &configs[i]), DF_OK);
            df_model *m = layers_charrnn(&configs[i]);
            cr_assert_eq(df_model_build(m, 2, SHAPE(B, T)), DF_OK, "%s", df_last_error());
            expect_same_weights(m, &cm, what);
            set_biases(m, &cm);
            df_graph *g;
            for (int call = 0; call < 2; call++) {     /* the second call starts from the carried state */
                df_tensor xt = I32(x, B, T), want;
                cr_assert_eq(cr_logits(&cm, &xt, &want), DF_OK, "%s", df_last_error());
                df_tensor got = call == 0 ? logits_of(m, &g, x, B, T) : run1(g, &xt, 1);
                cr_assert_eq(df_tensor_numel(&got), B * T * 40);
                expect_same_bits(got.data, want.data, B * T * 40, what);
            }
            df_graph_free(g);
            cr_model_free(&cm);
            df_model_free(m);
        }
        free(x);
    }
}

/* ------------------------------------------- char-rnn's model from layers */

/* Char-rnn's variable names: "embedding" for the table, the recurrent
 * state as "state/h", "state/c_1", ... and "eval_state/...". */
static void name_like_char_rnn(df_model *m)
{
    cr_assert_eq(df_layer_set_weight_name(df_model_layer(m, 0), "embeddings", "embedding"), DF_OK, "%s",
                 df_last_error());
    for (int i = 1, k = 0; i < df_model_layer_count(m); i++) {
        df_layer *l = df_model_layer(m, i);
        if (!df_layer_definition(l)->state_variables || !strcmp(df_layer_type(l), "Dropout")) continue;
        for (int slot = 0; slot < 2; slot++) {
            const char *prefix = slot ? "eval_state" : "state";
            char h[64], c[64];
            snprintf(h, sizeof h, k ? "%s/h_%d" : "%s/h", prefix, k);
            snprintf(c, sizeof c, k ? "%s/c_%d" : "%s/c", prefix, k);
            cr_assert_eq(df_rnn_layer_set_state_names(l, slot, h, c), DF_OK, "%s", df_last_error());
        }
        k++;
    }
}

/* Dropout as char-rnn draws it: seeded by the optimizer's iteration
 * counter, salted by the run's seed and the recurrent layer's index, for
 * the rows from first_row on. */
static void seed_dropout_like_char_rnn(df_model *m, const cr_config *c, df_optimizer *opt, int64_t first_row)
{
    df_variable *counter = NULL;
    cr_assert_eq(df_optimizer_state(opt, &counter, 1) >= 1, 1);
    for (int i = 0, k = 0; i < df_model_layer_count(m); i++) {
        df_layer *l = df_model_layer(m, i);
        if (!strcmp(df_layer_type(l), "Dropout")) {
            uint64_t salt = c->seed * 0x9E3779B97F4A7C15ull + (uint64_t)k + 1;
            cr_assert_eq(df_dropout_layer_set_seed(l, counter, salt, first_row), DF_OK, "%s", df_last_error());
            k++;
        }
    }
}

/* The char-rnn model of c from layers, with its names, optimizer (Adam as
 * cr_model_init makes it) and dropout seeding, compiled for the
 * ready-made steps: what examples/charrnn rebuilt on the layers will do. */
typedef struct { df_model *m; df_optimizer *opt; df_function *train, *eval; } twin;

static twin charrnn_twin(const cr_config *c, int64_t dropout_row0)
{
    twin t = {layers_charrnn(c), df_adam_new(c->learning_rate, 0.9f, 0.999f, 1e-7f), NULL, NULL};
    name_like_char_rnn(t.m);
    seed_dropout_like_char_rnn(t.m, c, t.opt, dropout_row0);
    cr_assert_eq(df_model_compile(t.m, t.opt, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY), DF_OK);
    t.train = df_model_train_step(t.m);
    t.eval = df_model_eval_step(t.m);
    cr_assert(t.train && t.eval, "%s", df_last_error());
    return t;
}

static void twin_free(twin *t)
{
    df_function_free(t->train);
    df_function_free(t->eval);
    df_optimizer_free(t->opt);
    df_model_free(t->m);
}

static float call_loss(df_function *f, int32_t *x, int32_t *y, int B, int T)
{
    df_tensor in[2] = {I32(x, B, T), I32(y, B, T)}, out;
    cr_assert_eq(df_function_call(f, in, 2, &out, 1), DF_OK, "%s", df_last_error());
    return *(float *)out.data;
}

/* Training steps (with an evaluation between them) of the compiled layers
 * model and of char-rnn's cr_step "fit" / "custom" / "eval": the
 * same losses and, after each step, the same weights and states bit for bit. */
static void expect_training_like_char_rnn(cr_config c, int B, int T, bool custom, int64_t row0, const char *what)
{
    cr_model cm;
    cr_assert_eq(cr_model_init(&cm, &c), DF_OK, "%s", df_last_error());
    cm.dropout_row0 = (int)row0;
    twin t = charrnn_twin(&c, row0);
    cr_assert_eq(df_model_build(t.m, 2, SHAPE(B, T)), DF_OK, "%s", df_last_error());
    set_biases(t.m, &cm);
    int32_t *x = random_ids(11, B * T, c.vocab), *y = random_ids(12, B * T, c.vocab);
    df_tensor xt = I32(x, B, T), yt = I32(y, B, T);
    for (int step = 0; step < 3; step++) {
        char at[96];
        snprintf(at, sizeof at, "%s, step %d", what, step);
        float want, got = call_loss(t.train, x, y, B, T);
        cr_assert_eq(cr_step(&cm, custom ? "custom" : "fit", &xt, &yt, &want), DF_OK, "%s", df_last_error());
        cr_expect_eq(memcmp(&got, &want, sizeof got), 0, "%s: loss %.9g vs char-rnn's %.9g", at, got, want);
        expect_same_weights(t.m, &cm, at);
        got = call_loss(t.eval, y, x, B, T);
        cr_assert_eq(cr_step(&cm, "eval", &yt, &xt, &want), DF_OK, "%s", df_last_error());
        cr_expect_eq(memcmp(&got, &want, sizeof got), 0, "%s: eval loss %.9g vs char-rnn's %.9g", at, got, want);
    }
    for (int slot = 0; slot < 2; slot++) {    /* both states, variable by variable */
        df_variable *ours[2 * CR_MAX_LAYERS], *theirs[2 * CR_MAX_LAYERS];
        int n = df_model_state_variables(t.m, B, slot, ours, 2 * CR_MAX_LAYERS);
        cr_assert_eq(n, cm.n_layers * (c.cell == CR_CELL_LSTM ? 2 : 1), "%s", what);
        cr_assert_eq(df_model_state_variables(cm.net, B, slot, theirs, 2 * CR_MAX_LAYERS), n, "%s", what);
        for (int j = 0; j < n; j++) expect_same_variable(ours[j], theirs[j], what);
    }
    free(x);
    free(y);
    twin_free(&t);
    cr_model_free(&cm);
}

Test(layers, adam_steps_equal_char_rnns_fit_step_bit_for_bit_in_both_regimes)
{
    cr_config configs[] = {charrnn_config(40, 6, 8, CR_CELL_LSTM, 1, false, 3),
                           charrnn_config(40, 6, 8, CR_CELL_GRU, 1, false, 4),
                           charrnn_config(40, 6, 8, CR_CELL_GRU, 1, true, 5),
                           charrnn_config(40, 6, 8, CR_CELL_RNN, 2, false, 6),
                           charrnn_config(40, 6, 8, CR_CELL_LSTM, 2, false, 7)};
    for (size_t r = 0; r < 2; r++)
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
            char what[64];
            snprintf(what, sizeof what, "config %zu, B*T = %d", i, regimes[r].B * regimes[r].T);
            expect_training_like_char_rnn(configs[i], regimes[r].B, regimes[r].T, false, 0, what);
        }
}

Test(layers, tape_steps_equal_char_rnns_custom_step_bit_for_bit)
{
    cr_config c = charrnn_config(40, 6, 8, CR_CELL_LSTM, 2, false, 9);
    for (size_t r = 0; r < 2; r++)
        expect_training_like_char_rnn(c, regimes[r].B, regimes[r].T, true, 0, "custom step");
}

/* 2 layers with dropout: the masks follow the optimizer's counter, char-rnn's
 * salts and (data parallel) the first row of this process's part. */
Test(layers, dropout_steps_equal_char_rnns_bit_for_bit)
{
    cr_config configs[] = {charrnn_config(40, 6, 8, CR_CELL_LSTM, 2, false, 21),
                           charrnn_config(40, 6, 8, CR_CELL_GRU, 2, false, 22)};
    for (size_t i = 0; i < 2; i++) {
        configs[i].dropout = 0.3f;
        for (int64_t row0 = 0; row0 <= 5; row0 += 5) {
            char what[64];
            snprintf(what, sizeof what, "dropout config %zu, first row %lld", i, (long long)row0);
            expect_training_like_char_rnn(configs[i], 8, 5, false, row0, what);
        }
    }
}

/* LSTM layer on x (B,T,E), built eagerly; returns its output for x. */
static df_tensor lstm_run(df_model *m, df_graph **g, float *x, int64_t B, int64_t T, int64_t E)
{
    df_tensor xt = df_tensor_make(DF_F32, x, 3, (int64_t[]){B, T, E});
    return run_model(m, g, &xt, false);
}

Test(layers, stateful_lstm_carries_state_until_reset)
{
    df_rng rng;
    df_rng_seed(&rng, 9);
    float *x = rand_buf(&rng, 2 * 3 * 4, -1, 1);
    for (int stateful = 0; stateful < 2; stateful++) {
        df_model *m = df_model_new("m", 2);
        cr_assert_eq(df_model_add(m, df_lstm_layer(5, (df_rnn_options){.return_sequences = false, .stateful = stateful})),
                     DF_OK);
        df_graph *g;
        df_tensor y = lstm_run(m, &g, x, 2, 3, 4);
        cr_assert(y.ndim == 2 && y.shape[0] == 2 && y.shape[1] == 5, "return_sequences=false gives (B,H)");
        float first[10], second[10], after_reset[10];
        df_tensor xt = F32(x, 2, 3, 4);
        memcpy(first, y.data, sizeof first);
        y = run1(g, &xt, 1);
        memcpy(second, y.data, sizeof second);
        df_model_reset_states(m);
        y = run1(g, &xt, 1);
        memcpy(after_reset, y.data, sizeof after_reset);
        bool differs = memcmp(first, second, sizeof first) != 0;
        cr_expect(differs == (bool)stateful, "%s", stateful ? "a stateful layer starts the second call from its state"
                                                           : "a layer without state starts every call from zeros");
        cr_expect(memcmp(first, after_reset, sizeof first) == 0, "reset_states must zero the state");
        df_graph_free(g);
        df_model_free(m);
    }
    free(x);
}

/* A fresh stateful layer starts from zeros, as one without state always does. */
Test(layers, zero_state_equals_a_fresh_carried_state)
{
    df_rng rng;
    df_rng_seed(&rng, 8);
    float *x = rand_buf(&rng, 2 * 3 * 4, -1, 1), outs[2][30];
    for (int cell = 0; cell < 3; cell++) {
        for (int stateful = 0; stateful < 2; stateful++) {
            df_rnn_options o = {.return_sequences = true, .stateful = stateful};
            df_model *m = df_model_new("m", 3);
            cr_assert_eq(df_model_add(m, cell == 0 ? df_lstm_layer(5, o) : cell == 1 ? df_gru_layer(5, true, o)
                                                                                       : df_simple_rnn_layer(5, o)),
                         DF_OK);
            df_graph *g;
            df_tensor y = lstm_run(m, &g, x, 2, 3, 4);
            memcpy(outs[stateful], y.data, sizeof outs[0]);
            df_graph_free(g);
            df_model_free(m);
        }
        expect_near(outs[0], outs[1], 30, 0, "zero state vs fresh state");
    }
    free(x);
}

typedef struct { df_model *m; } model_user;
static df_status build_forward(df_graph *g, df_node **in, void *user)
{
    df_graph_output(g, df_model_call(((model_user *)user)->m, g, in[0], false));
    return df_graph_status(g);
}

/* Zero initial states at any batch size of one trace (an open batch
 * dimension): each row equals that row run alone, for every cell. */
Test(layers, zero_initial_state_with_an_open_batch_dimension)
{
    df_rng rng;
    df_rng_seed(&rng, 4);
    float *x = rand_buf(&rng, 5 * 3 * 4, -1, 1);
    for (int cell = 0; cell < 4; cell++) {
        df_rnn_options o = {.return_sequences = true};
        df_layer *l = cell == 0 ? df_lstm_layer(6, o) : cell == 1 ? df_gru_layer(6, true, o)
                      : cell == 2 ? df_gru_layer(6, false, o) : df_simple_rnn_layer(6, o);
        model_user u = {df_model_new("m", 5)};
        cr_assert_eq(df_model_add(u.m, l), DF_OK);
        df_tensor_spec sig = {DF_F32, 3, {DF_DYNAMIC, 3, 4}};
        df_function *f = df_function_new_signature("forward", build_forward, &u, 1, &sig);
        float *full = malloc(5 * 3 * 6 * sizeof *full);
        for (int64_t B = 2; B <= 5; B += 3) {
            df_tensor in = F32(x, B, 3, 4), out;
            cr_assert_eq(df_function_call(f, &in, 1, &out, 1), DF_OK, "%s", df_last_error());
            cr_assert(out.shape[0] == B && out.shape[2] == 6);
            memcpy(full, out.data, (size_t)(B * 3 * 6) * sizeof *full);
            for (int64_t b = 0; b < B; b++) {          /* row b alone, in a graph of batch 1 */
                df_graph *g;
                df_tensor one = lstm_run(u.m, &g, x + b * 12, 1, 3, 4);
                expect_near(full + b * 18, one.data, 18, 1e-6, "row vs alone");
                df_graph_free(g);
            }
        }
        cr_expect_eq(df_function_trace_count(f), 1, "one trace for both batch sizes");
        free(full);
        df_function_free(f);
        df_model_free(u.m);
    }
    free(x);
}

Test(layers, stateful_layer_with_an_open_batch_is_an_error)
{
    model_user u = {df_model_new("m", 5)};
    cr_assert_eq(df_model_add(u.m, df_lstm_layer(3, (df_rnn_options){.stateful = true})), DF_OK);
    df_tensor_spec sig = {DF_F32, 3, {DF_DYNAMIC, 2, 2}};
    df_function *f = df_function_new_signature("forward", build_forward, &u, 1, &sig);
    float x[8] = {0};
    df_tensor in = F32(x, 2, 2, 2), out;
    cr_expect_eq(df_function_call(f, &in, 1, &out, 1), DF_ERR_SHAPE);
    cr_expect(strstr(df_last_error(), "'lstm'") && strstr(df_last_error(), "fixed batch size"), "%s", df_last_error());
    df_function_free(f);
    df_model_free(u.m);
}

/* One state per (batch size, slot), DF_MAX_LAYER_STATES of them: the next
 * call fails its graph with DF_ERR_RANGE saying why (not a null node later). */
Test(layers, a_stateful_layer_refuses_one_batch_size_too_many_saying_why)
{
    model_user u = {df_model_new("m", 5)};
    cr_assert_eq(df_model_add(u.m, df_gru_layer(2, true, (df_rnn_options){.stateful = true})), DF_OK);
    df_function *f = df_function_new("forward", build_forward, &u);
    df_function_set_retrace_warning(f, 0);
    float x[2 * (DF_MAX_LAYER_STATES + 1)] = {0};
    df_tensor out;
    for (int b = 1; b <= DF_MAX_LAYER_STATES; b++) {
        df_tensor in = F32(x, b, 1, 2);
        cr_assert_eq(df_function_call(f, &in, 1, &out, 1), DF_OK, "batch %d: %s", b, df_last_error());
    }
    df_tensor in = F32(x, DF_MAX_LAYER_STATES + 1, 1, 2);
    cr_expect_eq(df_function_call(f, &in, 1, &out, 1), DF_ERR_RANGE, "%s", df_last_error());
    cr_expect(strstr(df_last_error(), "'gru'") && strstr(df_last_error(), "more than 16 batch sizes"), "%s",
              df_last_error());
    df_function_free(f);
    df_model_free(u.m);
}

Test(layers, calling_a_built_layer_on_another_width_names_both_shapes)
{
    df_model *m = df_model_new("m", 1);
    cr_assert_eq(df_model_add(m, df_dense_layer(2, DF_ACT_NONE, true)), DF_OK);
    cr_assert_eq(df_model_build(m, 2, SHAPE(DF_DYNAMIC, 3)), DF_OK);
    df_graph *g = df_graph_new();
    cr_expect_null(df_model_call(m, g, PH(g, 4, 5), false));
    cr_expect(strstr(df_graph_error(g), "'dense'") && strstr(df_graph_error(g), "(None, 3)") &&
              strstr(df_graph_error(g), "(4, 5)"), "%s", df_graph_error(g));
    df_graph_free(g);
    df_layer *alone = df_dense_layer(2, DF_ACT_NONE, true);
    cr_expect_eq(df_layer_build(alone, 2, SHAPE(1, 3)), DF_ERR_STATE, "no RNG outside a model");
    df_rng rng;
    df_rng_seed(&rng, 1);
    df_layer_set_rng(alone, &rng);
    cr_expect_eq(df_layer_build(alone, 2, SHAPE(1, 3)), DF_OK);
    cr_expect_str_eq(df_variable_name(df_layer_weight(alone, "kernel")), "dense/kernel");
    df_layer_free(alone);
    df_model_free(m);
}

/* Functional use: the layers of a model called on nodes one by one compute
 * what the model's sequential call does. */
Test(layers, calling_layers_by_hand_equals_the_sequential_call)
{
    cr_config c = charrnn_config(12, 4, 5, CR_CELL_GRU, 1, false, 2);
    c.dropout = 0;
    df_model *m = layers_charrnn(&c);
    int32_t x[6] = {1, 2, 3, 4, 5, 11};
    df_graph *g;
    df_tensor seq = logits_of(m, &g, x, 2, 3);
    float want[2 * 3 * 12];
    memcpy(want, seq.data, sizeof want);
    df_graph_free(g);
    df_model_reset_states(m);
    g = df_graph_new();
    df_node *h = PHI(g, 2, 3);
    for (int i = 0; i < df_model_layer_count(m); i++) h = df_layer_call(df_model_layer(m, i), g, h, false);
    cr_assert_not_null(h, "%s", df_graph_error(g));
    df_graph_output(g, h);
    df_tensor xt = I32(x, 2, 3);
    df_tensor got = run1(g, &xt, 1);
    expect_near(got.data, want, 2 * 3 * 12, 0, "by hand vs df_model_call");
    df_graph_free(g);
    df_model_free(m);
}

/* --------------------------------------------------------- save / restore */

static df_model *two_dense(int hidden, uint64_t seed)
{
    df_model *m = df_model_new("mlp", seed);
    cr_assert_eq(df_model_add(m, df_dense_layer(hidden, DF_ACT_RELU, true)), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(2, DF_ACT_NONE, true)), DF_OK);
    cr_assert_eq(df_model_build(m, 2, SHAPE(DF_DYNAMIC, 3)), DF_OK);
    return m;
}

static float first_value(df_model *m, int layer, const char *weight)
{
    return *(float *)df_variable_tensor(df_layer_weight(df_model_layer(m, layer), weight)).data;
}

static df_checkpoint *saved(df_model *m, df_optimizer *opt)
{
    char path[] = "/tmp/dflayers.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    df_checkpoint *ck = df_checkpoint_new(), *back = NULL;
    cr_assert_eq(df_model_save(m, opt, ck), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_checkpoint_write(ck, path), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK, "%s", df_last_error());
    df_checkpoint_free(ck);
    unlink(path);
    return back;
}

Test(layers, save_restore_round_trip_with_optimizer_slots)
{
    df_model *a = two_dense(4, 1), *b = two_dense(4, 2);
    df_optimizer *opt_a = df_adam_default(), *opt_b = df_adam_default();
    df_variable *vars[8];
    int n = df_model_variables(a, vars, 8);
    cr_assert_eq(n, 4);
    cr_assert_eq(df_optimizer_create_slots(opt_a, n, vars), DF_OK);
    df_variable *state[16];
    int n_state = df_optimizer_state(opt_a, state, 16);
    for (int i = 0; i < n_state; i++)
        if (df_variable_tensor(state[i]).dtype == DF_F32) set_values(state[i], 0.01f * (float)(i + 1));
    cr_assert_neq(first_value(a, 0, "kernel"), first_value(b, 0, "kernel"));
    df_checkpoint *ck = saved(a, opt_a);
    cr_expect_eq(df_checkpoint_count(ck), 4 + n_state);
    cr_assert_eq(df_model_restore(b, opt_b, ck), DF_OK, "%s", df_last_error());
    df_variable *va[8], *vb[8];
    df_model_variables(a, va, 8);
    df_model_variables(b, vb, 8);
    for (int i = 0; i < 4; i++) {
        df_tensor x = df_variable_tensor(va[i]), y = df_variable_tensor(vb[i]);
        cr_expect(memcmp(x.data, y.data, (size_t)df_tensor_numel(&x) * 4) == 0, "%s", df_variable_name(va[i]));
    }
    df_variable *state_b[16];
    cr_assert_eq(df_optimizer_state(opt_b, state_b, 16), n_state);
    for (int i = 0; i < n_state; i++) {
        df_tensor x = df_variable_tensor(state[i]), y = df_variable_tensor(state_b[i]);
        cr_expect(memcmp(x.data, y.data, (size_t)df_tensor_numel(&x) * 4) == 0, "slot %s", df_variable_name(state[i]));
    }
    df_checkpoint_free(ck);
    df_optimizer_free(opt_a);
    df_optimizer_free(opt_b);
    df_model_free(a);
    df_model_free(b);
}

Test(layers, restore_errors_name_the_variable_and_change_nothing)
{
    df_model *small = two_dense(4, 1), *wide = two_dense(5, 2);
    df_checkpoint *ck = saved(small, NULL);
    float before = first_value(wide, 0, "kernel");
    cr_expect_eq(df_model_restore(wide, NULL, ck), DF_ERR_SHAPE);
    const char *msg = df_last_error();
    cr_expect(strstr(msg, "mlp") && strstr(msg, "dense/kernel") && strstr(msg, "(3,5)") && strstr(msg, "(3,4)"), "%s",
              msg);
    cr_expect_null(strstr(strstr(msg, "dense/kernel") + 1, "dense/kernel"), "the variable named once: %s", msg);
    cr_expect_eq(first_value(wide, 0, "kernel"), before);
    df_checkpoint_free(ck);

    /* dense_1/bias is wrong, so nothing may change, not even dense/kernel which fits */
    df_model *c = two_dense(4, 3);
    df_checkpoint *partial = df_checkpoint_new();
    df_variable *vars[4];
    df_model_variables(small, vars, 4);
    for (int i = 0; i < 3; i++) cr_assert_eq(df_checkpoint_put_variable(partial, vars[i]), DF_OK);
    before = first_value(c, 0, "kernel");
    cr_expect_eq(df_model_restore(c, NULL, partial), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "dense_1/bias"), "%s", df_last_error());
    cr_expect_eq(first_value(c, 0, "kernel"), before, "a failed restore must leave every variable as it was");

    df_variable *ints = df_variable_new("dense_1/bias", DF_I32, 1, SHAPE(2), df_init_zeros(), NULL);
    cr_assert_eq(df_checkpoint_put_variable(partial, ints), DF_OK);
    cr_expect_eq(df_model_restore(c, NULL, partial), DF_ERR_DTYPE);
    cr_expect(strstr(df_last_error(), "dense_1/bias") && strstr(df_last_error(), "i32"), "%s", df_last_error());
    df_checkpoint_free(partial);
    df_variable_free(ints);

    df_model *unbuilt = df_model_new("u", 1);
    cr_assert_eq(df_model_add(unbuilt, df_dense_layer(2, DF_ACT_NONE, true)), DF_OK);
    df_checkpoint *empty = df_checkpoint_new();
    cr_expect_eq(df_model_save(unbuilt, NULL, empty), DF_ERR_STATE);
    cr_expect(strstr(df_last_error(), "'dense'"), "%s", df_last_error());
    df_checkpoint_free(empty);
    df_model_free(unbuilt);
    df_model_free(c);
    df_model_free(small);
    df_model_free(wide);
}

/* ----------------------------------------------------------- custom layer */

typedef struct { int builds; float init; } scale_user;

static df_status scale_build(df_layer *l, int ndim, const int64_t *in_shape, void *user)
{
    scale_user *u = user;
    u->builds++;
    bool ok = df_layer_add_weight(l, "scale", DF_F32, 1, &in_shape[ndim - 1], df_init_constant(u->init), true) &&
              df_layer_add_weight(l, "calls", DF_I32, 0, NULL, df_init_zeros(), false);   /* not trained */
    return ok ? DF_OK : DF_ERR_NOMEM;
}

static df_node *scale_call(df_layer *l, df_graph *g, df_node *x, bool training, void *user)
{
    return df_mul(g, x, df_var(g, df_layer_weight(l, "scale")));
}

static const df_layer_def scale_def = {.type = "Scale", .base_name = "scale", .build = scale_build, .call = scale_call};

Test(layers, custom_layer_builds_lazily_and_joins_the_model)
{
    scale_user u = {0, 2.0f};
    df_model *m = df_model_new("custom", 1);
    cr_assert_eq(df_model_add(m, df_custom_layer(&scale_def, &u)), DF_OK);
    cr_assert_eq(df_model_add(m, df_custom_layer(&scale_def, &u)), DF_OK);
    cr_expect_not(df_layer_built(df_model_layer(m, 0)));
    float x[6] = {1, 2, 3, 4, 5, 6};
    df_tensor xt = F32(x, 2, 3);
    df_graph *g;
    df_tensor y = run_model(m, &g, &xt, false);
    cr_expect_eq(u.builds, 2);
    for (int i = 0; i < 6; i++) cr_expect_eq(((float *)y.data)[i], 4.0f * x[i]);
    cr_expect_str_eq(df_variable_name(df_layer_weight(df_model_layer(m, 1), "scale")), "scale_1/scale");
    cr_expect_eq(df_model_param_count(m), 8);
    df_variable *vars[4];
    cr_expect_eq(df_model_variables(m, vars, 4), 2, "the non-trainable weights are not listed");
    df_variable *all[8];
    cr_expect_eq(df_model_weights(m, all, 8), 4, "df_model_weights lists the non-trainable ones too");
    cr_expect_str_eq(df_variable_name(all[3]), "scale_1/calls");
    char *text = capture_summary(NULL, m, 0);
    cr_expect(strstr(text, "scale_1 (Scale)") && strstr(text, "(None, 3)") == NULL && strstr(text, "(2, 3)") &&
              strstr(text, "Total params: 8\nTrainable params: 6\nNon-trainable params: 2\n"), "%s", text);
    free(text);
    df_graph_free(g);
    df_model_free(m);
}

/* ------------------------------------------------------------ training */

typedef struct { df_model *m; df_optimizer *opt; } trainer;

static df_status build_train(df_graph *g, df_node **in, void *user)
{
    trainer *t = user;
    df_tape *tape = df_tape_begin(g);
    df_node *logits = df_model_call(t->m, g, in[0], true);
    df_node *loss = df_sparse_softmax_cross_entropy(g, logits, in[1]);
    df_tape_end(tape);
    df_variable *vars[16];
    df_node *grads[16];
    int n = df_model_variables(t->m, vars, 16);
    if (df_tape_gradient(tape, loss, n, vars, grads) != DF_OK) return df_graph_status(g);
    df_optimizer_apply(g, t->opt, n, vars, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

Test(layers, a_small_training_run_lowers_the_loss)
{
    enum { N = 64 };
    float x[N * 2];
    int32_t y[N];
    df_rng rng;
    df_rng_seed(&rng, 11);
    for (int i = 0; i < N; i++) {      /* XOR of the signs */
        x[2 * i] = 2 * df_rng_uniform(&rng) - 1;
        x[2 * i + 1] = 2 * df_rng_uniform(&rng) - 1;
        y[i] = (x[2 * i] > 0) != (x[2 * i + 1] > 0);
    }
    trainer t = {df_model_new("xor", 3), df_adam_new(0.02f, 0.9f, 0.999f, 1e-7f)};
    cr_assert_eq(df_model_add(t.m, df_dense_layer(16, DF_ACT_TANH, true)), DF_OK);
    cr_assert_eq(df_model_add(t.m, df_dropout_layer(0.1f)), DF_OK);
    cr_assert_eq(df_model_add(t.m, df_dense_layer(2, DF_ACT_NONE, true)), DF_OK);
    df_function *step = df_function_new("train_step", build_train, &t);
    df_tensor in[2] = {F32(x, N, 2), I32(y, N)}, out;
    float first = 0, last = 0;
    for (int s = 0; s < 300; s++) {
        cr_assert_eq(df_function_call(step, in, 2, &out, 1), DF_OK, "%s", df_last_error());
        if (s == 0) first = *(float *)out.data;
        last = *(float *)out.data;
    }
    cr_expect_lt(last, 0.5f * first, "loss %g -> %g", first, last);
    cr_expect_eq(df_optimizer_iterations(t.opt), 300);
    df_function_free(step);
    df_optimizer_free(t.opt);
    df_model_free(t.m);
}

Test(layers, dropout_only_in_training_and_a_new_mask_each_step)
{
    df_model *m = df_model_new("d", 1);
    cr_assert_eq(df_model_add(m, df_dropout_layer(0.5f)), DF_OK);
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = 1;
    df_tensor xt = F32(x, 64);
    df_graph *g;
    df_tensor y = run_model(m, &g, &xt, false);
    for (int i = 0; i < 64; i++) cr_expect_eq(((float *)y.data)[i], 1.0f);
    df_graph_free(g);
    y = run_model(m, &g, &xt, true);
    float mask1[64];
    int zeros = 0;
    for (int i = 0; i < 64; i++) {
        mask1[i] = ((float *)y.data)[i];
        zeros += mask1[i] == 0;
        cr_expect(mask1[i] == 0 || mask1[i] == 2.0f, "inverted dropout scales kept values by 1/(1-rate)");
    }
    cr_expect(zeros > 10 && zeros < 54, "%d of 64 dropped at rate 0.5", zeros);
    y = run1(g, &xt, 1);
    cr_expect(memcmp(mask1, y.data, sizeof mask1) != 0, "the layer's step counter draws a new mask each step");
    df_graph_free(g);
    df_model_free(m);
}

/* ------------------------------------------------------ compiled steps */

/* y = 2x - 1 on 16 points; returns the model's loss over them. */
static double mse_of(df_function *eval, float *x, float *y)
{
    df_tensor in[2] = {F32(x, 16, 1), F32(y, 16, 1)}, loss;
    cr_assert_eq(df_function_call(eval, in, 2, &loss, 1), DF_OK, "%s", df_last_error());
    return *(float *)loss.data;
}

Test(layers, compiled_steps_train_with_mse_and_evaluate_without_updates)
{
    float x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i / 8 - 1, y[i] = 2 * x[i] - 1;
    df_model *m = df_model_new("line", 3);
    cr_assert_eq(df_model_add(m, df_dense_layer(1, DF_ACT_NONE, true)), DF_OK);
    df_optimizer *opt = df_sgd_new(0.1f);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_MEAN_SQUARED_ERROR), DF_OK, "%s", df_last_error());
    df_function *train = df_model_train_step(m), *eval = df_model_eval_step(m);
    cr_assert(train && eval, "%s", df_last_error());
    double before = mse_of(eval, x, y);
    cr_expect_eq(mse_of(eval, x, y), before, "the eval step changed the model");
    df_variable *vars[2];
    cr_assert_eq(df_model_variables(m, vars, 2), 2);
    float w0 = *(float *)df_variable_tensor(vars[0]).data, b0 = *(float *)df_variable_tensor(vars[1]).data;
    df_tensor in[2] = {F32(x, 16, 1), F32(y, 16, 1)}, loss;
    cr_assert_eq(df_function_call(train, in, 2, &loss, 1), DF_OK, "%s", df_last_error());
    cr_expect_float_eq(*(float *)loss.data, (float)before, 1e-6f, "the train step returns the loss before its update");
    /* one SGD step on mean((w x + b - y)^2), by hand */
    double dw = 0, db = 0;
    for (int i = 0; i < 16; i++) {
        double e = w0 * x[i] + b0 - y[i];
        dw += 2 * e * x[i] / 16;
        db += 2 * e / 16;
    }
    cr_expect_float_eq(*(float *)df_variable_tensor(vars[0]).data, (float)(w0 - 0.1 * dw), 1e-6f);
    cr_expect_float_eq(*(float *)df_variable_tensor(vars[1]).data, (float)(b0 - 0.1 * db), 1e-6f);
    for (int s = 0; s < 200; s++) cr_assert_eq(df_function_call(train, in, 2, &loss, 1), DF_OK);
    cr_expect_lt(mse_of(eval, x, y), 1e-4, "SGD did not fit a line");
    cr_expect_eq(df_model_compile(m, opt, DF_LOSS_MEAN_SQUARED_ERROR), DF_ERR_STATE, "a second compile after steps");
    df_function_free(train);
    df_function_free(eval);
    df_optimizer_free(opt);
    df_model_free(m);
}

static df_model *embed_dense(void)
{
    df_model *m = df_model_new("m", 11);
    cr_assert_eq(df_model_add(m, df_embedding_layer(3, 4)), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(3, DF_ACT_NONE, true)), DF_OK);
    return m;
}

/* Three Adam steps of the compiled cross-entropy step and of the
 * hand-written one (the header's tutorial) give the same bits. */
Test(layers, compiled_cross_entropy_step_equals_the_hand_written_one)
{
    int32_t x[6] = {0, 1, 2, 2, 1, 0}, y[6] = {1, 2, 0, 0, 2, 1};
    df_tensor in[2] = {I32(x, 2, 3), I32(y, 2, 3)}, loss;
    trainer compiled = {embed_dense(), df_adam_default()}, by_hand = {embed_dense(), df_adam_default()};
    cr_assert_eq(df_model_compile(compiled.m, compiled.opt, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY), DF_OK);
    df_function *f[2] = {df_model_train_step(compiled.m), df_function_new("by_hand", build_train, &by_hand)};
    float last[2];
    for (int k = 0; k < 2; k++) {
        for (int s = 0; s < 3; s++) cr_assert_eq(df_function_call(f[k], in, 2, &loss, 1), DF_OK, "%s", df_last_error());
        last[k] = *(float *)loss.data;
        df_function_free(f[k]);
    }
    cr_expect_eq(last[0], last[1], "compiled %.9g vs by hand %.9g", last[0], last[1]);
    cr_expect_eq(first_value(compiled.m, 1, "kernel"), first_value(by_hand.m, 1, "kernel"));
    trainer *all[2] = {&compiled, &by_hand};
    for (int k = 0; k < 2; k++) {
        df_optimizer_free(all[k]->opt);
        df_model_free(all[k]->m);
    }
}

Test(layers, compiled_step_errors)
{
    df_model *m = df_model_new("raw", 1);
    cr_expect_null(df_model_train_step(m));
    cr_expect(strstr(df_last_error(), "not compiled"), "%s", df_last_error());
    cr_expect_null(df_model_eval_step(m));
    cr_expect_null(df_model_train_step(NULL));
    cr_expect_str_eq(df_last_error(), "df_model_train_step: null model");
    df_optimizer *opt = df_sgd_new(0.1f);
    cr_expect_eq(df_model_compile(m, opt, (df_loss)9), DF_ERR_ARG);
    cr_expect_eq(df_model_compile(m, NULL, DF_LOSS_MEAN_SQUARED_ERROR), DF_ERR_ARG);
    cr_expect_eq(df_model_compile(NULL, opt, DF_LOSS_MEAN_SQUARED_ERROR), DF_ERR_ARG);
    cr_assert_eq(df_model_add(m, df_dense_layer(1, DF_ACT_NONE, true)), DF_OK);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_MEAN_SQUARED_ERROR), DF_OK, "%s", df_last_error());
    cr_expect_eq(df_model_add(m, df_dense_layer(1, DF_ACT_NONE, true)), DF_ERR_STATE,
                 "a layer added after compile would join steps traced later, untrained");
    cr_expect(strstr(df_last_error(), "model 'raw' is compiled: add its layers before df_model_compile"), "%s",
              df_last_error());
    cr_expect_eq(df_model_layer_count(m), 1);
    df_optimizer_free(opt);
    df_model_free(m);
}

/* Predictions (4,1) with targets (4) would broadcast to a (4,4) loss. */
Test(layers, compiled_mse_refuses_targets_of_another_shape_naming_both)
{
    df_model *m = df_model_new("line", 3);
    cr_assert_eq(df_model_add(m, df_dense_layer(1, DF_ACT_NONE, true)), DF_OK);
    df_optimizer *opt = df_sgd_new(0.1f);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_MEAN_SQUARED_ERROR), DF_OK, "%s", df_last_error());
    df_function *steps[2] = {df_model_train_step(m), df_model_eval_step(m)};
    float x[4] = {1, 2, 3, 4}, y[4] = {1, 2, 3, 4};
    df_tensor loss;
    for (int k = 0; k < 2; k++) {
        df_tensor flat[2] = {F32(x, 4, 1), F32(y, 4)}, column[2] = {F32(x, 4, 1), F32(y, 4, 1)};
        cr_expect_eq(df_function_call(steps[k], flat, 2, &loss, 1), DF_ERR_SHAPE, "step %d took targets (4)", k);
        const char *msg = df_last_error();
        cr_expect(strstr(msg, "line") && strstr(msg, "(4,1)") && strstr(msg, "got (4)"), "%s", msg);
        cr_expect_eq(df_function_call(steps[k], column, 2, &loss, 1), DF_OK, "%s", df_last_error());
        df_function_free(steps[k]);
    }
    df_optimizer_free(opt);
    df_model_free(m);
}

/* ---------------------------------------------------------- state slots */

/* The training state of batch B, copied (h, c of each layer). */
static float *copy_state(df_model *m, int B, int slot, int *n_floats)
{
    df_variable *vars[16];
    int n = df_model_state_variables(m, B, slot, vars, 16), at = 0;
    cr_assert(n > 0 && n <= 16, "%s", df_last_error());
    float *copy = malloc(16 * 64 * sizeof *copy);
    for (int i = 0; i < n; i++) {
        df_tensor t = df_variable_tensor(vars[i]);
        cr_assert(t.dtype == DF_F32 && at + df_tensor_numel(&t) <= 16 * 64);
        memcpy(copy + at, t.data, (size_t)df_tensor_numel(&t) * sizeof *copy);
        at += (int)df_tensor_numel(&t);
    }
    *n_floats = at;
    return copy;
}

/* Train, (evaluate,) train: the evaluation reads and carries the eval slot's
 * state, so the second training step sees what it sees without it. */
Test(layers, evaluation_between_training_steps_leaves_the_training_state)
{
    cr_config c = charrnn_config(40, 6, 8, CR_CELL_LSTM, 2, false, 31);
    enum { B = 4, T = 5 };
    int32_t *x = random_ids(1, B * T, 40), *y = random_ids(2, B * T, 40);
    float loss[2];
    float *state[2], *eval_state = NULL;
    int n = 0, n_eval = 0;
    for (int with_eval = 0; with_eval < 2; with_eval++) {
        twin t = charrnn_twin(&c, 0);
        call_loss(t.train, x, y, B, T);
        if (with_eval) {
            float first = call_loss(t.eval, y, x, B, T), second = call_loss(t.eval, y, x, B, T);
            cr_expect_neq(first, second, "the eval slot carries its own state from call to call");
            eval_state = copy_state(t.m, B, DF_STATE_EVAL, &n_eval);
        }
        loss[with_eval] = call_loss(t.train, x, y, B, T);
        state[with_eval] = copy_state(t.m, B, DF_STATE_MAIN, &n);
        twin_free(&t);
    }
    cr_expect_eq(memcmp(&loss[0], &loss[1], sizeof loss[0]), 0, "second training loss %.9g, after an evaluation %.9g",
                 loss[0], loss[1]);
    expect_same_bits(state[1], state[0], n, "training state after an evaluation");
    int nonzero = 0;
    for (int i = 0; i < n_eval; i++) nonzero += eval_state[i] != 0;
    cr_expect_gt(nonzero, 0, "the evaluation carried a state of its own");
    free(state[0]);
    free(state[1]);
    free(eval_state);
    free(x);
    free(y);
}

Test(layers, state_slots_default_names_and_errors)
{
    df_model *m = df_model_new("m", 1);
    cr_assert_eq(df_model_add(m, df_lstm_layer(3, (df_rnn_options){.return_sequences = true, .stateful = true})),
                 DF_OK);
    cr_assert_eq(df_model_add(m, df_gru_layer(3, true, (df_rnn_options){.stateful = true})), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(2, DF_ACT_NONE, true)), DF_OK);
    df_variable *vars[8];
    cr_assert_eq(df_model_state_variables(m, 2, 0, vars, 8), 3, "%s", df_last_error());
    cr_expect_str_eq(df_variable_name(vars[0]), "lstm/state_h");
    cr_expect_str_eq(df_variable_name(vars[1]), "lstm/state_c");
    cr_expect_str_eq(df_variable_name(vars[2]), "gru/state_h");
    cr_assert_eq(df_model_state_variables(m, 2, 2, vars, 8), 3);
    cr_expect_str_eq(df_variable_name(vars[1]), "lstm/state_c_slot2");
    df_variable *again[8];
    cr_assert_eq(df_model_state_variables(m, 2, 2, again, 1), 3, "the count even when max is smaller");
    cr_expect_eq(again[0], vars[0], "the same variable for the same (batch, slot)");
    cr_assert_eq(df_model_state_variables(m, 5, 2, again, 8), 3);
    cr_expect_neq(again[0], vars[0], "another batch size has its own state");
    cr_expect_eq(df_model_state_variables(m, 2, DF_MAX_STATE_SLOTS, vars, 8), -1);
    cr_expect(strstr(df_last_error(), "'lstm'") && strstr(df_last_error(), "slot"), "%s", df_last_error());
    cr_expect_eq(df_model_state_variables(m, 0, 0, vars, 8), -1);

    /* a call in slot 2 reads and assigns slot 2's state */
    float xv[2 * 3 * 4];
    for (int i = 0; i < 24; i++) xv[i] = 0.1f * (float)(i % 7);
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 3, 4);
    df_graph_output(g, df_model_call_slot(m, g, x, false, 2));
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));
    df_tensor xt = F32(xv, 2, 3, 4);
    run1(g, &xt, 1);
    df_graph_free(g);
    df_variable *main_state[3];
    df_model_state_variables(m, 2, 0, main_state, 3);
    cr_expect_eq(((float *)df_variable_tensor(main_state[0]).data)[0], 0.0f, "slot 0 untouched");
    cr_expect_neq(((float *)df_variable_tensor(vars[0]).data)[0], 0.0f, "slot 2 carried");
    df_model_reset_states(m);
    cr_expect_eq(((float *)df_variable_tensor(vars[0]).data)[0], 0.0f, "reset zeroes every slot");

    g = df_graph_new();
    cr_expect_null(df_model_call_slot(m, g, PH(g, 2, 3, 4), false, -1));
    cr_expect(df_graph_status(g) == DF_ERR_ARG && strstr(df_graph_error(g), "slot -1"), "%s", df_graph_error(g));
    df_graph_free(g);
    g = df_graph_new();
    cr_expect_null(df_model_call_slot(m, g, PH(g, 2, 3, 4), false, DF_MAX_STATE_SLOTS));
    cr_expect_eq(df_graph_status(g), DF_ERR_ARG, "%s", df_graph_error(g));
    df_graph_free(g);
    df_model_free(m);
}

/* -------------------------------------------- names and checkpoint entries */

static df_checkpoint *through_file(df_checkpoint *ck)
{
    char path[] = "/tmp/dflayers.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    df_checkpoint *back = NULL;
    cr_assert_eq(df_checkpoint_write(ck, path), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_checkpoint_read(path, &back), DF_OK, "%s", df_last_error());
    unlink(path);
    df_checkpoint_free(ck);
    return back;
}

/* What char-rnn's checkpoint holds for the model: its weights, the
 * optimizer's state and the training batch's recurrent state. */
static df_checkpoint *char_rnn_checkpoint(cr_model *cm, int B)
{
    df_checkpoint *ck = df_checkpoint_new();
    for (int i = 0; i < cm->n_params; i++) cr_assert_eq(df_checkpoint_put_variable(ck, cm->params[i]), DF_OK);
    df_variable *opt_state[2 + 2 * CR_MAX_PARAMS];
    int n = df_optimizer_state(cm->opt, opt_state, 2 + 2 * CR_MAX_PARAMS);
    for (int i = 0; i < n; i++) cr_assert_eq(df_checkpoint_put_variable(ck, opt_state[i]), DF_OK);
    df_variable *state[2 * CR_MAX_LAYERS];
    int n_state = df_model_state_variables(cm->net, B, CR_STATE_MAIN, state, 2 * CR_MAX_LAYERS);
    cr_assert_eq(n_state, cm->n_layers * (cm->cfg.cell == CR_CELL_LSTM ? 2 : 1));
    for (int k = 0; k < n_state; k++) cr_assert_eq(df_checkpoint_put_variable(ck, state[k]), DF_OK);
    return through_file(ck);
}

/* The layers model named as char-rnn names its variables restores
 * char-rnn's checkpoint entries by name and trains on bit for bit. */
Test(layers, char_rnn_names_restore_its_checkpoint_entries)
{
    cr_config c = charrnn_config(40, 6, 8, CR_CELL_LSTM, 2, false, 41);
    enum { B = 8, T = 5 };
    int32_t *x = random_ids(3, B * T, 40), *y = random_ids(4, B * T, 40);
    df_tensor xt = I32(x, B, T), yt = I32(y, B, T);
    cr_model cm;
    cr_assert_eq(cr_model_init(&cm, &c), DF_OK);
    float want, got;
    for (int s = 0; s < 2; s++) cr_assert_eq(cr_step(&cm, "fit", &xt, &yt, &want), DF_OK, "%s", df_last_error());
    df_checkpoint *ck = char_rnn_checkpoint(&cm, B);

    twin t = charrnn_twin(&c, 0);
    cr_assert_eq(df_model_build(t.m, 2, SHAPE(B, T)), DF_OK);
    df_variable *vars[32];
    int n = df_model_weights(t.m, vars, 32);
    cr_assert_eq(n, cm.n_params);
    for (int i = 0; i < n; i++) cr_expect_str_eq(df_variable_name(vars[i]), df_variable_name(cm.params[i]));
    cr_expect_eq(df_layer_weight(df_model_layer(t.m, 0), "embeddings"), vars[0], "found by its short name");
    cr_assert_eq(df_model_restore(t.m, t.opt, ck), DF_OK, "%s", df_last_error());
    df_variable *state[8];
    int n_state = df_model_state_variables(t.m, B, DF_STATE_MAIN, state, 8);
    cr_assert_eq(n_state, 4);
    cr_expect_str_eq(df_variable_name(state[2]), "state/h_1");
    for (int i = 0; i < n_state; i++)
        cr_assert_eq(df_checkpoint_restore_variable(ck, state[i]), DF_OK, "%s", df_last_error());
    cr_expect_eq(df_optimizer_iterations(t.opt), 2);
    cr_assert_eq(df_model_state_variables(t.m, B, DF_STATE_EVAL, state, 8), 4);
    cr_expect_str_eq(df_variable_name(state[0]), "eval_state/h");

    got = call_loss(t.train, x, y, B, T);
    cr_assert_eq(cr_step(&cm, "fit", &xt, &yt, &want), DF_OK);
    cr_expect_eq(memcmp(&got, &want, sizeof got), 0, "loss after restoring %.9g vs char-rnn's %.9g", got, want);
    expect_same_weights(t.m, &cm, "a step after restoring");
    df_checkpoint_free(ck);
    twin_free(&t);
    cr_model_free(&cm);
    free(x);
    free(y);
}

Test(layers, naming_errors)
{
    df_model *m = df_model_new("m", 1);
    df_layer *emb = df_embedding_layer(5, 2), *dense = df_dense_layer(2, DF_ACT_NONE, true),
             *lstm = df_lstm_layer(2, (df_rnn_options){.stateful = true, .return_sequences = true}),
             *gru = df_gru_layer(2, true, (df_rnn_options){.stateful = true});
    cr_assert_eq(df_layer_set_weight_name(emb, "embeddings", "table"), DF_OK);
    cr_assert_eq(df_layer_set_weight_name(emb, "embeddings", "vocab/table"), DF_OK, "a second name replaces the first");
    cr_expect_eq(df_layer_set_weight_name(emb, "", "x"), DF_ERR_ARG);
    df_layer *spare = df_dense_layer(1, DF_ACT_NONE, true);     /* renaming again takes no new entry */
    for (int i = 0; i < 9; i++) cr_assert_eq(df_layer_set_weight_name(spare, "kernel", "k"), DF_OK);
    char name[16];
    for (int i = 1; i < DF_LAYER_MAX_WEIGHTS; i++) {
        snprintf(name, sizeof name, "w%d", i);
        cr_expect_eq(df_layer_set_weight_name(spare, name, name), DF_OK, "%s", df_last_error());
    }
    snprintf(name, sizeof name, "w%d", DF_LAYER_MAX_WEIGHTS);
    cr_expect_eq(df_layer_set_weight_name(spare, name, name), DF_ERR_RANGE, "one weight name past the limit");
    df_layer_free(spare);
    cr_expect_eq(df_rnn_layer_set_state_names(dense, 0, "h", NULL), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "not a recurrent layer"), "%s", df_last_error());
    cr_expect_eq(df_rnn_layer_set_state_names(lstm, 0, "h", NULL), DF_ERR_ARG, "an LSTM needs a name for c");
    cr_expect_eq(df_rnn_layer_set_state_names(lstm, DF_MAX_STATE_SLOTS, "h", "c"), DF_ERR_ARG);
    cr_expect_eq(df_rnn_layer_set_state_names(gru, 1, "gru_eval_h", NULL), DF_OK);
    cr_assert_eq(df_model_add(m, emb), DF_OK);
    cr_assert_eq(df_model_add(m, lstm), DF_OK);
    cr_assert_eq(df_model_add(m, gru), DF_OK);
    cr_assert_eq(df_model_add(m, dense), DF_OK);
    cr_assert_eq(df_model_build(m, 2, SHAPE(3, 4)), DF_OK, "%s", df_last_error());
    cr_expect_str_eq(df_variable_name(df_layer_weight(emb, "embeddings")), "vocab/table");
    cr_expect_eq(df_layer_set_weight_name(emb, "embeddings", "late"), DF_ERR_STATE);
    cr_expect(strstr(df_last_error(), "'embedding'"), "%s", df_last_error());
    df_variable *state[4];
    cr_assert_eq(df_layer_state_variables(gru, 3, 1, state, 4), 1);
    cr_expect_str_eq(df_variable_name(state[0]), "gru_eval_h");
    cr_assert_eq(df_layer_state_variables(lstm, 3, 0, state, 4), 2);
    cr_expect_eq(df_rnn_layer_set_state_names(lstm, 0, "h", "c"), DF_ERR_STATE, "slot 0's state exists");
    cr_expect(strstr(df_last_error(), "lstm/state_h"), "%s", df_last_error());
    cr_expect_eq(df_rnn_layer_set_state_names(lstm, 1, "h", "c"), DF_OK, "slot 1 has no state yet");
    cr_expect_eq(df_layer_state_variables(dense, 3, 0, state, 4), 0, "no state");
    df_model_free(m);
}

/* A constructor's refusal reaches the caller of df_model_add whole. */
Test(layers, a_refused_layer_keeps_its_reason_through_model_add)
{
    df_model *m = df_model_new("m", 1);
    cr_expect_eq(df_model_add(m, df_dense_layer(0, DF_ACT_RELU, true)), DF_ERR_ARG);
    cr_expect_str_eq(df_last_error(), "df_model_add: null layer: Dense: units must be >= 1, got 0");
    cr_expect_eq(df_model_add(m, df_dense_layer(2, (df_activation)99, true)), DF_ERR_ARG);
    cr_expect_str_eq(df_last_error(), "df_model_add: null layer: Dense: activation 99 is not a DF_ACT_* value");
    cr_expect_eq(df_model_layer_count(m), 0);
    df_model_free(m);
}

/* Another model's embedding would be read after that model freed it. */
Test(layers, a_tied_head_refuses_an_embedding_of_another_model)
{
    df_model *a = df_model_new("a", 1), *b = df_model_new("b", 2);
    df_layer *emb = df_embedding_layer(5, 3), *loose = df_embedding_layer(5, 3);
    cr_assert_eq(df_model_add(a, emb), DF_OK);
    cr_assert_eq(df_model_add(b, df_embedding_layer(5, 3)), DF_OK);
    cr_expect_eq(df_model_add(b, df_tied_output_layer(emb, false)), DF_ERR_ARG);
    cr_expect_str_eq(df_last_error(), "layer 'tied_output' (TiedOutput) of model 'b' ties embedding 'embedding' of "
                     "model 'a': the embedding must be added to the same model first");
    cr_expect_eq(df_model_add(b, df_tied_output_layer(loose, false)), DF_ERR_ARG, "an embedding of no model");
    cr_expect(strstr(df_last_error(), "of model '(none)'"), "%s", df_last_error());
    cr_expect_eq(df_model_layer_count(b), 1);

    /* a head of no model, built by hand: not "not built yet", which is true but not the fault */
    df_layer *head = df_tied_output_layer(emb, false);
    df_rng rng;
    df_rng_seed(&rng, 3);
    df_layer_set_rng(head, &rng);
    cr_expect_eq(df_layer_build(head, 2, SHAPE(2, 3)), DF_ERR_ARG);
    cr_expect(strstr(df_last_error(), "of model 'a'") && !strstr(df_last_error(), "not built"), "%s",
              df_last_error());
    df_layer_free(head);
    df_layer_free(loose);
    df_model_free(b);
    df_model_free(a);
}

/* Where `what` starts in the line of text that starts with `line`; -1 if not there. */
static long column_of(const char *text, const char *line, const char *what)
{
    const char *at = strstr(text, line), *found = at ? strstr(at, what) : NULL;
    return found && !memchr(at, '\n', (size_t)(found - at)) ? found - at : -1;
}

/* A name longer than Keras' 27 columns widens the column: the shapes stay aligned. */
Test(layers, a_summary_widens_its_name_column_for_long_names)
{
    df_model *m = df_model_new("m", 1);
    cr_assert_eq(df_model_add(m, df_layer_norm_layer(1e-5f)), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(2, DF_ACT_NONE, true)), DF_OK);
    cr_assert_eq(df_model_build(m, 2, SHAPE(DF_DYNAMIC, 3)), DF_OK, "%s", df_last_error());
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    df_model_summary(m, f);
    fclose(f);
    long shape_col = column_of(text, " Layer (type)", "Output Shape");
    cr_expect_gt(shape_col, 40, "%s", text);
    cr_expect_eq(column_of(text, " layer_normalization (LayerNormalization)", "(None, 3)"), shape_col, "%s", text);
    cr_expect_eq(column_of(text, " dense (Dense)", "(None, 2)"), shape_col, "%s", text);
    cr_expect_eq((long)strcspn(strchr(text, '\n') + 1, "\n"), shape_col + 36, "the rules span the wider table: %s",
                 text);
    free(text);
    df_model_free(m);
}

/* ------------------------------------------------ resuming inside an epoch */

/* Dropout with its own counter and two stateful LSTMs: a checkpoint of the
 * weights, the optimizer and df_model_state_variables resumes bit for bit. */
Test(layers, state_variables_resume_a_stateful_model_bit_for_bit)
{
    cr_config c = charrnn_config(40, 6, 8, CR_CELL_LSTM, 2, false, 51);
    c.dropout = 0.25f;
    enum { B = 4, T = 5 };
    int32_t *x = random_ids(5, B * T, 40), *y = random_ids(6, B * T, 40);
    df_model *m = layers_charrnn(&c);       /* default names; Dropout on its own counters */
    df_optimizer *opt = df_adam_new(c.learning_rate, 0.9f, 0.999f, 1e-7f);
    df_variable *state[16];
    int n = df_model_state_variables(m, B, DF_STATE_MAIN, state, 16);
    cr_assert_eq(n, 6, "h, c, dropout/seed, h, c, dropout_1/seed: %s", df_last_error());
    static const char *const names[] = {"lstm/state_h", "lstm/state_c", "dropout/seed", "lstm_1/state_h",
                                        "lstm_1/state_c", "dropout_1/seed"};
    for (int i = 0; i < 6; i++) cr_expect_str_eq(df_variable_name(state[i]), names[i]);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY), DF_OK);
    df_function *train = df_model_train_step(m);
    float first[4];
    for (int s = 0; s < 2; s++) first[s] = call_loss(train, x, y, B, T);
    df_checkpoint *ck = df_checkpoint_new();
    cr_assert_eq(df_model_save(m, opt, ck), DF_OK, "%s", df_last_error());
    for (int i = 0; i < n; i++) cr_assert_eq(df_checkpoint_put_variable(ck, state[i]), DF_OK);
    ck = through_file(ck);
    for (int s = 2; s < 4; s++) first[s] = call_loss(train, x, y, B, T);

    df_model *back = layers_charrnn(&c);
    df_optimizer *opt_back = df_adam_new(c.learning_rate, 0.9f, 0.999f, 1e-7f);
    cr_assert_eq(df_model_build(back, 2, SHAPE(B, T)), DF_OK);
    cr_assert_eq(df_model_restore(back, opt_back, ck), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_model_state_variables(back, B, DF_STATE_MAIN, state, 16), 6);
    for (int i = 0; i < 6; i++) cr_assert_eq(df_checkpoint_restore_variable(ck, state[i]), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_model_compile(back, opt_back, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY), DF_OK);
    df_function *resumed = df_model_train_step(back);
    for (int s = 2; s < 4; s++) {
        float got = call_loss(resumed, x, y, B, T);
        cr_expect_eq(memcmp(&got, &first[s], sizeof got), 0, "step %d: resumed %.9g vs uninterrupted %.9g", s, got,
                     first[s]);
    }
    df_checkpoint_free(ck);
    df_function_free(train);
    df_function_free(resumed);
    df_optimizer_free(opt);
    df_optimizer_free(opt_back);
    df_model_free(m);
    df_model_free(back);
    free(x);
    free(y);
}

/* --------------------------------------------------- LayerNormalization */

Test(layers, layer_norm_layer_equals_the_op_and_trains)
{
    df_model *m = df_model_new("ln", 5);
    cr_assert_eq(df_model_add(m, df_dense_layer(4, DF_ACT_GELU, true)), DF_OK);
    cr_assert_eq(df_model_add(m, df_layer_norm_layer(1e-5f)), DF_OK);
    cr_assert_eq(df_model_build(m, 2, (int64_t[]){DF_DYNAMIC, 3}), DF_OK, "%s", df_last_error());
    df_layer *ln = df_model_layer(m, 1);
    cr_expect_str_eq(df_layer_name(ln), "layer_normalization");
    cr_expect_str_eq(df_layer_type(ln), "LayerNormalization");
    cr_expect_eq(df_layer_param_count(ln), 8, "gamma and beta of 4");
    cr_expect_str_eq(df_variable_name(df_layer_weight(ln, "gamma")), "layer_normalization/gamma");
    float *gamma = df_variable_tensor(df_layer_weight(ln, "gamma")).data;
    float *beta = df_variable_tensor(df_layer_weight(ln, "beta")).data;
    cr_expect(gamma[0] == 1 && gamma[3] == 1 && beta[0] == 0 && beta[3] == 0, "gamma ones, beta zeros");
    gamma[1] = 2, beta[2] = 0.5f;
    /* the layers against df_gelu(x W + b) normalised by hand with the same weights */
    df_graph *g = df_graph_new();
    df_node *x = PH(g, 2, 3);
    df_graph_output(g, df_model_call(m, g, x, false));
    df_layer *dense = df_model_layer(m, 0);
    df_node *h = df_gelu(g, df_add(g, df_matmul(g, x, df_var(g, df_layer_weight(dense, "kernel")), false, false),
                                   df_var(g, df_layer_weight(dense, "bias"))));
    df_graph_output(g, df_layer_norm(g, h, df_var(g, df_layer_weight(ln, "gamma")), df_var(g, df_layer_weight(ln, "beta")),
                                     1e-5f));
    float xv[6] = {0.5f, -1, 2, 1, 0, -0.5f};
    df_tensor in = F32(xv, 2, 3), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK, "%s", df_last_error());
    cr_expect(memcmp(out[0].data, out[1].data, 8 * sizeof(float)) == 0, "the layers differ from the ops");
    df_graph_free(g);
    cr_expect_null(df_layer_norm_layer(0.0f));
    cr_expect(strstr(df_last_error(), "epsilon"), "%s", df_last_error());
    df_model_free(m);
}

/* ---------------------------------------------------------- weight tying */

typedef struct tied_by_hand { df_variable *e, *k, *b, *bias, *vars[4]; df_optimizer *opt; } tied_by_hand;

/* The tied model's step written with ops: gather, dense tanh, x @ E^T + bias. */
static df_status build_tied_by_hand(df_graph *g, df_node **in, void *user)
{
    tied_by_hand *t = user;
    df_tape *tape = df_tape_begin(g);
    df_node *h = df_gather(g, df_var(g, t->e), in[0]);
    h = df_tanh(g, df_add(g, df_matmul(g, h, df_var(g, t->k), false, false), df_var(g, t->b)));
    df_node *logits = df_add(g, df_matmul(g, h, df_var(g, t->e), false, true), df_var(g, t->bias));
    df_node *loss = df_sparse_softmax_cross_entropy(g, logits, in[1]);
    df_tape_end(tape);
    df_node *grads[4];
    if (df_tape_gradient(tape, loss, 4, t->vars, grads) == DF_OK) df_optimizer_apply(g, t->opt, 4, t->vars, grads);
    df_graph_output(g, loss);
    return df_graph_status(g);
}

Test(layers, a_tied_output_head_shares_the_embedding_counted_once)
{
    df_model *m = df_model_new("tied", 9);
    df_layer *emb = df_embedding_layer(11, 4);
    cr_assert_eq(df_model_add(m, emb), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(4, DF_ACT_TANH, true)), DF_OK);
    cr_assert_eq(df_model_add(m, df_tied_output_layer(emb, true)), DF_OK);
    cr_assert_eq(df_model_build(m, 2, (int64_t[]){2, 3}), DF_OK, "%s", df_last_error());
    cr_expect_eq(df_model_param_count(m), 44 + 20 + 11, "the matrix once: 44 + 20 + 11");
    df_variable *vars[8];
    cr_expect_eq(df_model_variables(m, vars, 8), 4, "embeddings, kernel, bias, the head's bias");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    df_model_summary(m, f);
    fclose(f);
    cr_expect(strstr(text, "tied_output (TiedOutput)") && strstr(text, "Total params: 75"), "%s", text);
    free(text);

    /* three SGD steps of the compiled model equal the same model written with ops, bitwise */
    tied_by_hand t = {.opt = df_sgd_new(0.5f)};
    df_variable *mine[4];
    df_model_variables(m, mine, 4);
    const char *names[4] = {"e", "k", "b", "bias"};
    for (int i = 0; i < 4; i++) {
        df_tensor v = df_variable_tensor(mine[i]);
        t.vars[i] = df_variable_new(names[i], DF_F32, v.ndim, v.shape, df_init_zeros(), NULL);
        cr_assert_eq(df_variable_assign(t.vars[i], &v), DF_OK, "%s", df_last_error());
    }
    t.e = t.vars[0], t.k = t.vars[1], t.b = t.vars[2], t.bias = t.vars[3];
    df_optimizer *opt = df_sgd_new(0.5f);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY), DF_OK);
    df_function *f1 = df_model_train_step(m), *f2 = df_function_new("by_hand", build_tied_by_hand, &t);
    int32_t x[6] = {0, 3, 10, 7, 7, 1}, y[6] = {3, 10, 7, 7, 1, 0};
    df_tensor in[2] = {I32(x, 2, 3), I32(y, 2, 3)}, l1, l2;
    for (int s = 0; s < 3; s++) {
        cr_assert_eq(df_function_call(f1, in, 2, &l1, 1), DF_OK, "%s", df_last_error());
        cr_assert_eq(df_function_call(f2, in, 2, &l2, 1), DF_OK, "%s", df_last_error());
        cr_expect_eq(*(float *)l1.data, *(float *)l2.data, "step %d: loss %.9g vs %.9g", s, *(float *)l1.data,
                     *(float *)l2.data);
    }
    df_tensor e1 = df_variable_tensor(mine[0]), e2 = df_variable_tensor(t.e);
    cr_expect(memcmp(e1.data, e2.data, 44 * sizeof(float)) == 0, "the shared matrix got both gradients");
    df_function_free(f1);
    df_function_free(f2);
    for (int i = 0; i < 4; i++) df_variable_free(t.vars[i]);
    df_optimizer_free(t.opt);
    df_optimizer_free(opt);
    df_model_free(m);

    cr_expect_null(df_tied_output_layer(NULL, true));
    df_layer *dense = df_dense_layer(3, DF_ACT_NONE, true);
    cr_expect_null(df_tied_output_layer(dense, true));
    cr_expect(strstr(df_last_error(), "Embedding"), "%s", df_last_error());
    df_layer_free(dense);
}

/* An Embedding built for (None, None) takes any sequence length (char-rnn
 * trains at --seq and samples at 1); a Dense built for width 4 refuses 5. */
Test(layers, an_open_last_dimension_takes_any_size_a_fixed_one_does_not)
{
    df_model *m = df_model_new("open", 1);
    df_layer *emb = df_embedding_layer(7, 3), *dense = df_dense_layer(2, DF_ACT_NONE, true);
    cr_assert_eq(df_model_add(m, emb), DF_OK);
    cr_assert_eq(df_layer_build(emb, 2, (int64_t[]){DF_DYNAMIC, DF_DYNAMIC}), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_model_add(m, dense), DF_OK);
    cr_assert_eq(df_layer_build(dense, 2, (int64_t[]){DF_DYNAMIC, 4}), DF_OK, "%s", df_last_error());
    const int64_t lengths[] = {3, 1, 9};
    for (int k = 0; k < 3; k++) {
        df_graph *g = df_graph_new();
        df_node *y = df_layer_call(emb, g, df_placeholder(g, DF_I32, 2, (int64_t[]){2, lengths[k]}, NULL), false);
        cr_expect_not_null(y, "length %lld: %s", (long long)lengths[k], df_graph_error(g));
        cr_expect(y && df_node_dim(y, 1) == lengths[k]);
        df_graph_free(g);
    }
    df_graph *g = df_graph_new();
    cr_expect_null(df_layer_call(dense, g, PH(g, 2, 5), false));
    cr_expect(strstr(df_graph_error(g), "was built for input (None, 4)"), "%s", df_graph_error(g));
    df_graph_free(g);
    df_layer *open_width = df_dense_layer(2, DF_ACT_NONE, true);
    cr_expect_neq(df_layer_build(open_width, 2, (int64_t[]){3, DF_DYNAMIC}), DF_OK,
                  "a Dense cannot be built with its input width open");
    df_layer_free(open_width);
    df_model_free(m);
}

/* df_function_print_profile: nothing before a profiled run, then a header
 * with the profiled runs and one row per op that ran, shares adding to 100%. */
Test(layers, a_train_steps_op_profile_prints_one_row_per_op)
{
    df_model *m = df_model_new("mlp", 3);
    cr_assert_eq(df_model_add(m, df_dense_layer(4, DF_ACT_TANH, true)), DF_OK);
    df_optimizer *opt = df_sgd_new(0.1f);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_MEAN_SQUARED_ERROR), DF_OK);
    df_function *step = df_model_train_step(m);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_expect_eq(df_function_print_profile(step, out), DF_ERR_ARG, "never called");
    float x[6] = {1, 2, 3, 4, 5, 6}, y[8] = {0};
    df_tensor in[2] = {F32(x, 2, 3), F32(y, 2, 4)}, loss;
    cr_assert_eq(df_function_call(step, in, 2, &loss, 1), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_graph_set_profiling(df_function_last_graph(step), true), DF_OK);
    cr_assert_eq(df_function_print_profile(step, out), DF_OK);
    fflush(out);
    cr_expect_eq(len, 0, "no profiled run yet: %s", text);
    for (int i = 0; i < 3; i++) cr_assert_eq(df_function_call(step, in, 2, &loss, 1), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_function_print_profile(step, out), DF_OK);
    fclose(out);
    cr_assert_not_null(strstr(text, "\nProfile over 3 steps ("), "%s", text);
    df_op_profile prof[64];
    int n_ops = df_graph_profile(df_function_last_graph(step), prof, 64, NULL), rows = 0;
    double share_sum = 0;
    char *rows_text = strstr(text, "share\n"), *save = NULL;   /* after the column header */
    cr_assert_not_null(rows_text, "%s", text);
    for (char *line = strtok_r(rows_text + 6, "\n", &save); line; line = strtok_r(NULL, "\n", &save), rows++) {
        char op[64];
        int nodes;
        double ms, share;
        cr_assert_eq(sscanf(line, "%63s %d %lf %lf%%", op, &nodes, &ms, &share), 4, "row: %s", line);
        cr_assert_lt(rows, n_ops, "more rows than ops: %s", line);
        cr_expect_str_eq(op, prof[rows].op, "rows largest first, as df_graph_profile");
        cr_expect_eq(nodes, prof[rows].nodes, "%s", op);
        share_sum += share;
    }
    cr_expect_gt(n_ops, 2);
    cr_expect_eq(rows, n_ops, "one row per op: %s", text);
    cr_expect(share_sum > 99.5 && share_sum < 100.5, "shares add to %g%%: %s", share_sum, text);
    free(text);
    df_function_free(step);
    df_optimizer_free(opt);
    df_model_free(m);
}

/* df_fit with DF_FIT_PROGRESS_STEPS prints the custom-loop tutorial's lines
 * (each step's loss every 100 steps, the epoch's mean at its end, no bar),
 * and with profile the train step is profiled from its second step on. */
typedef struct { float x[6], y[8]; double losses[256]; int n; } steps_run;

static df_status steps_next(void *user, df_tensor *in, bool *end)
{
    steps_run *d = user;
    *end = false;
    in[0] = F32(d->x, 2, 3);
    in[1] = F32(d->y, 2, 4);
    return DF_OK;
}

static df_status steps_record(void *user, const df_fit_step_logs *s)
{
    steps_run *d = user;
    if (d->n < 256) d->losses[d->n++] = s->loss;
    return DF_OK;
}

Test(layers, fit_prints_the_custom_loop_lines_and_profiles_from_the_second_step)
{
    df_model *m = df_model_new("mlp", 4);
    cr_assert_eq(df_model_add(m, df_dense_layer(4, DF_ACT_TANH, true)), DF_OK);
    df_optimizer *opt = df_sgd_new(0.05f);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_MEAN_SQUARED_ERROR), DF_OK);
    steps_run d = {.x = {1, 2, 3, -1, 0, 2}, .y = {0.5f, -0.5f, 0.25f, 0, 1, 0, -1, 0.5f}};
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    df_fit_options o = {.train_step = df_model_train_step(m), .n_inputs = 2, .optimizer = opt,
                        .train = {.next = steps_next, .user = &d}, .epochs = 2, .steps_per_epoch = 101,
                        .progress = DF_FIT_PROGRESS_STEPS, .out = out, .profile = true,
                        .on_step = steps_record, .user = &d};
    cr_assert_eq(df_fit(&o, NULL), DF_OK, "%s", df_last_error());
    fclose(out);
    cr_assert_eq(d.n, 202);
    for (int e = 0; e < 2; e++) {
        char want[96];
        double mean = 0;
        for (int i = 0; i < 101; i++) mean += d.losses[101 * e + i] / 101;
        for (int b = 0; b <= 100; b += 100) {
            snprintf(want, sizeof want, "Epoch %d Batch %d Loss %.4f\n", e + 1, b, d.losses[101 * e + b]);
            cr_expect_not_null(strstr(text, want), "'%s' not in:\n%s", want, text);
        }
        snprintf(want, sizeof want, "Epoch %d Loss %.4f\nTime taken for 1 epoch ", e + 1, mean);
        cr_expect_not_null(strstr(text, want), "'%s' not in:\n%s", want, text);
    }
    int batch_lines = 0;
    for (const char *at = text; (at = strstr(at, " Batch ")); at++) batch_lines++;
    cr_expect_eq(batch_lines, 4, "batches 0 and 100 of each epoch only:\n%s", text);
    cr_expect_null(strstr(text, "Epoch 1/2"), "no Keras bar or epoch line:\n%s", text);
    free(text);
    out = open_memstream(&text, &len);
    cr_assert_eq(df_function_print_profile(o.train_step, out), DF_OK);
    fclose(out);
    cr_expect_not_null(strstr(text, "Profile over 201 steps"), "%s", text);
    free(text);
    df_function_free(o.train_step);
    df_optimizer_free(opt);
    df_model_free(m);
}

/* learning_rate_flag: on resume a constant learning_rate replaces the
 * checkpoint's rate and the "Resumed from" line says so, naming the flag;
 * the same rate again is the checkpoint's; without the flag it stays. */
static char *fit_resumed(df_fit_options *o, steps_run *d, float rate, const char *flag, int epochs, float *applied)
{
    char *text = NULL;
    size_t len = 0;
    o->out = open_memstream(&text, &len);
    o->learning_rate = rate;
    o->learning_rate_flag = flag;
    o->epochs = epochs;
    d->n = 0;
    cr_assert_eq(df_fit(o, NULL), DF_OK, "%s", df_last_error());
    fclose(o->out);
    *applied = df_optimizer_learning_rate(o->optimizer);
    return text;
}

Test(layers, a_resumed_fit_takes_the_flags_learning_rate_and_says_so)
{
    char dir[] = "/tmp/dflayers_lr.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    df_model *m = df_model_new("mlp", 4);
    cr_assert_eq(df_model_add(m, df_dense_layer(4, DF_ACT_NONE, true)), DF_OK);
    df_optimizer *opt = df_sgd_new(0.1f);
    cr_assert_eq(df_model_compile(m, opt, DF_LOSS_MEAN_SQUARED_ERROR), DF_OK);
    cr_assert_eq(df_model_build(m, 2, SHAPE(2, 3)), DF_OK);
    df_variable *vars[4];
    int n = df_model_weights(m, vars, 4);
    steps_run d = {.x = {1, 2, 3, -1, 0, 2}};
    df_fit_options o = {.train_step = df_model_train_step(m), .n_inputs = 2, .optimizer = opt, .n_variables = n,
                        .variables = vars, .train = {.next = steps_next, .user = &d}, .steps_per_epoch = 2,
                        .checkpoint_dir = dir, .progress = DF_FIT_PROGRESS_MESSAGES};
    float applied;
    free(fit_resumed(&o, &d, 0.1f, "--lr", 1, &applied));
    o.resume = true;
    char *text = fit_resumed(&o, &d, 0.25f, "--lr", 2, &applied);
    cr_expect_not_null(strstr(text, "step 2, learning rate 0.25 from --lr; the checkpoint had 0.1)\n"), "%s", text);
    cr_expect_eq(applied, 0.25f);
    free(text);
    text = fit_resumed(&o, &d, 0.25f, "--lr", 3, &applied);
    cr_expect_not_null(strstr(text, "step 4, learning rate 0.25 from the checkpoint)\n"), "%s", text);
    free(text);
    text = fit_resumed(&o, &d, 0, "--lr", 4, &applied);
    cr_expect_not_null(strstr(text, "step 6, learning rate 0.25 from the checkpoint)\n"), "rate 0: not given: %s", text);
    cr_expect_eq(applied, 0.25f);
    free(text);
    text = fit_resumed(&o, &d, 0.5f, NULL, 5, &applied);
    cr_expect_not_null(strstr(text, "step 8)\n"), "no flag, no note: %s", text);
    cr_expect_eq(applied, 0.25f, "without the flag the checkpoint's rate stays");
    free(text);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
    df_function_free(o.train_step);
    df_optimizer_free(opt);
    df_model_free(m);
}

/* df_model_summary_batch shows the batch in every output shape, whatever
 * the model was built for; the table is otherwise df_model_summary's. */
Test(layers, a_summary_with_a_batch_shows_it_in_every_output_shape)
{
    df_model *m = df_model_new("m", 1);
    cr_assert_eq(df_model_add(m, df_embedding_layer(10, 4)), DF_OK);
    cr_assert_eq(df_model_add(m, df_gru_layer(3, true, (df_rnn_options){.return_sequences = true})), DF_OK);
    cr_assert_eq(df_model_add(m, df_dense_layer(10, DF_ACT_NONE, true)), DF_OK);
    cr_assert_eq(df_model_build(m, 2, SHAPE(DF_DYNAMIC, DF_DYNAMIC)), DF_OK, "%s", df_last_error());
    char *open = capture_summary(NULL, m, 0), *with = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&with, &len);
    df_model_summary_batch(m, 64, f);
    fclose(f);
    cr_expect(strstr(open, "(None, None, 4)") && strstr(open, "(None, None, 10)"), "%s", open);
    cr_expect(strstr(with, "(64, None, 4)") && strstr(with, "(64, None, 3)") && strstr(with, "(64, None, 10)") &&
              !strstr(with, "(None"), "%s", with);
    cr_expect_not_null(strstr(with, "Total params: 161\n"), "%s", with);
    free(open);
    free(with);
    df_model_free(m);
}
