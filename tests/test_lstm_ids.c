/* test_lstm_ids.c — the ids form of the fused LSTM (df_lstm_ids): against
 * df_lstm on df_gather of the same table on every kernel path (the same
 * bits forward and for d w_rec, d h0, d c0; d table within rounding, since
 * it sums the same terms in another order than scatter_add), the same bits
 * on 1, 2 and 3 threads, out-of-range ids as a DF_ERR_RANGE status, and the
 * LSTM layer taking it when an Embedding folds into it (a GRU keeps the
 * gather). */
#include <unistd.h>
#include "helpers.h"
#include "../ops/common.h"              /* the internal gradient ops and their attributes */
#include "../ops/lstm_kernels.h"

/* Sizes as tests/test_lstm.c's paths: above the threading threshold with 3
 * slices of units and a partial one; V < B*T, so ids repeat. */
enum { V = 7, PB = 8, PT = 8, PH_ = 264, PT1 = 4 };

typedef struct ids_path {
    const char *name;
    int no_pack, no_avx512, packed_dw;      /* as lstm_force_paths takes them */
    int64_t B, T, H;
    bool bf16;                              /* under DF_PRECISION_BF16 */
} ids_path;

/* Outputs in pairs (ids form, gather form): h, c_T and the gradients of
 * sum(h * R) w.r.t. table, w_rec, h0 and c0. Inputs: table (V,4H), ids
 * (B,T), h0, c0, R; w_rec is a variable, as a batch-1 step needs for its
 * packed panels. */
enum { N_PAIRS = 6, PAIR_D_TABLE = 2 };
static const char *const pair_names[N_PAIRS] = {"h", "c_T", "d table", "d w_rec", "d h0", "d c0"};

static df_graph *build_both_forms(int64_t B, int64_t T, int64_t H, df_variable *w_rec)
{
    df_graph *g = df_graph_new();
    df_node *table = PH(g, V, 4 * H), *ids = PHI(g, B, T), *w = df_var(g, w_rec), *h0 = PH(g, B, H),
            *c0 = PH(g, B, H), *r = PH(g, B, T, H);
    df_node *wrt[4] = {table, w, h0, c0}, *h[2], *grads[2][4];
    h[0] = df_lstm_ids(g, table, ids, w, h0, c0);
    h[1] = df_lstm(g, df_gather(g, table, ids), w, h0, c0);
    for (int f = 0; f < 2; f++)
        cr_assert_eq(df_gradients(g, df_sum(g, df_mul(g, h[f], r), NULL, 0, false), NULL, 4, wrt, grads[f]), DF_OK,
                     "%s", df_graph_error(g));
    for (int f = 0; f < 2; f++) df_graph_output(g, h[f]);
    for (int f = 0; f < 2; f++) df_graph_output(g, df_lstm_final_c(g, h[f]));
    for (int k = 0; k < 4; k++)
        for (int f = 0; f < 2; f++) df_graph_output(g, grads[f][k]);
    cr_assert_eq(df_graph_status(g), DF_OK, "%s", df_graph_error(g));
    return g;
}

/* Inputs for build_both_forms (buffers in bufs, freed by the caller) and
 * its w_rec, from bufs[1]. */
static df_variable *make_inputs(int64_t B, int64_t T, int64_t H, uint64_t seed, float *bufs[5], int32_t **ids,
                                df_tensor in[5])
{
    df_rng rng;
    df_rng_seed(&rng, seed);
    const int64_t G4 = 4 * H;
    const float ws = 1.5f / sqrtf((float)H);        /* gates neither saturated nor linear */
    bufs[0] = rand_buf(&rng, V * G4, -1, 1);
    bufs[1] = rand_buf(&rng, H * G4, -ws, ws);
    bufs[2] = rand_buf(&rng, B * H, -1, 1);
    bufs[3] = rand_buf(&rng, B * H, -1, 1);
    bufs[4] = rand_buf(&rng, B * T * H, -1, 1);
    *ids = malloc((size_t)(B * T) * sizeof **ids);
    cr_assert_not_null(*ids);
    for (int64_t i = 0; i < B * T; i++) (*ids)[i] = (int32_t)df_rng_below(&rng, V);
    in[0] = F32(bufs[0], V, G4);
    in[1] = I32(*ids, B, T);
    in[2] = F32(bufs[2], B, H);
    in[3] = F32(bufs[3], B, H);
    in[4] = F32(bufs[4], B, T, H);
    df_variable *w = df_variable_new("w_rec", DF_F32, 2, SHAPE(H, G4), df_init_zeros(), NULL);
    cr_assert_not_null(w, "%s", df_last_error());
    memcpy(df_variable_tensor(w).data, bufs[1], (size_t)(H * G4) * sizeof(float));
    df_variable_touch(w);
    return w;
}

/* Forces path p and compares the forms on 1, 2 and 3 threads: every pair
 * the same bits but d table, which is within 1e-6 (scaled as in
 * expect_near); and the ids form's results the same bits on every thread
 * count. */
static void check_ids_path(const ids_path *p)
{
    lstm_force_paths(p->no_pack, p->no_avx512, p->packed_dw);
    if (!p->no_avx512 && !lstm_use_avx512()) {
        cr_log_info("%s: not run, this CPU (or compiler) has no AVX-512 clones", p->name);
        lstm_force_paths(-1, -1, -1);
        return;
    }
    if (p->bf16 && df_set_precision(DF_PRECISION_BF16) != DF_OK) {
        cr_log_info("%s: not run: %s", p->name, df_last_error());
        lstm_force_paths(-1, -1, -1);
        return;
    }
    const int64_t B = p->B, T = p->T, H = p->H;
    float *bufs[5];
    int32_t *ids;
    df_tensor in[5];
    df_variable *w = make_inputs(B, T, H, 31, bufs, &ids, in);
    df_graph *g = build_both_forms(B, T, H, w);
    const int saved = df_num_threads();
    float *first[N_PAIRS] = {0};
    char label[160];
    for (int nth = 1; nth <= 3; nth++) {
        df_set_num_threads(nth);
        df_tensor o[2 * N_PAIRS];
        cr_assert_eq(df_graph_run(g, in, 5, o, 2 * N_PAIRS), DF_OK, "%s, %d threads: %s", p->name, nth, df_last_error());
        for (int k = 0; k < N_PAIRS; k++) {
            const float *by_id = o[2 * k].data, *gathered = o[2 * k + 1].data;
            const int64_t n = df_tensor_numel(&o[2 * k]);
            cr_assert_eq(n, df_tensor_numel(&o[2 * k + 1]), "%s: %s sizes", p->name, pair_names[k]);
            snprintf(label, sizeof label, "%s, %d threads, %s: ids vs gather form", p->name, nth, pair_names[k]);
            if (k == PAIR_D_TABLE) expect_all_near(by_id, gathered, n, 1e-6, label);
            else expect_bitwise(by_id, gathered, n, label);
            if (nth == 1) {
                first[k] = malloc((size_t)n * sizeof(float));
                cr_assert_not_null(first[k]);
                memcpy(first[k], by_id, (size_t)n * sizeof(float));
                continue;
            }
            snprintf(label, sizeof label, "%s: ids form's %s on %d threads vs 1", p->name, pair_names[k], nth);
            expect_bitwise(by_id, first[k], n, label);
        }
    }
    df_set_num_threads(saved);
    df_set_precision(DF_PRECISION_FP32);
    lstm_force_paths(-1, -1, -1);
    for (int k = 0; k < N_PAIRS; k++) free(first[k]);
    df_graph_free(g);
    df_variable_free(w);
    for (int i = 0; i < 5; i++) free(bufs[i]);
    free(ids);
}

Test(lstm_ids_paths, packed_avx512_with_packed_dw)
{
    check_ids_path(&(ids_path){"packed AVX-512 + packed d w_rec", 0, 0, 1, PB, PT, PH_, false});
}
Test(lstm_ids_paths, packed_avx512_with_openblas_dw)
{
    check_ids_path(&(ids_path){"packed AVX-512 + OpenBLAS d w_rec", 0, 0, 0, PB, PT, PH_, false});
}
Test(lstm_ids_paths, openblas_with_avx512_clones)
{
    check_ids_path(&(ids_path){"OpenBLAS + AVX-512 clones", 1, 0, 0, PB, PT, PH_, false});
}
Test(lstm_ids_paths, openblas_with_baseline_passes)
{
    check_ids_path(&(ids_path){"OpenBLAS + baseline passes", 1, 1, 0, PB, PT, PH_, false});
}
Test(lstm_ids_paths, batch1_packed_panels)
{
    check_ids_path(&(ids_path){"B=1 packed panels + AVX-512 clones", 0, 0, 1, 1, PT1, PH_, false});
}
Test(lstm_ids_paths, batch1_gemv_baseline_passes)
{
    check_ids_path(&(ids_path){"B=1 gemv + baseline passes", 0, 1, 0, 1, PT1, PH_, false});
}
Test(lstm_ids_paths, small_on_the_calling_thread)
{
    check_ids_path(&(ids_path){"small B=4 OpenBLAS", 1, 0, 0, 4, 3, 100, false});
    check_ids_path(&(ids_path){"small B=4 packed AVX-512", 0, 0, 1, 4, 3, 100, false});
}
Test(lstm_ids_paths, bf16_products)
{
    check_ids_path(&(ids_path){"bf16 packed panels", 0, 0, 1, PB, PT, PH_, true});
    check_ids_path(&(ids_path){"bf16 B=1 packed panels", 0, 0, 1, 1, PT1, PH_, true});
}

/* ---------------------------------------------------------- bad ids */

/* An id of V or -1 fails the run with DF_ERR_RANGE, naming the id and its
 * position, in the forward-only graph and the one with the gradient. */
Test(lstm_ids, out_of_range_id_is_a_range_error)
{
    const int64_t B = 2, T = 3, H = 4;
    float *bufs[5];
    int32_t *ids;
    df_tensor in[5];
    df_variable *wv = make_inputs(B, T, H, 5, bufs, &ids, in);
    for (int grad = 0; grad < 2; grad++) {
        df_graph *g = df_graph_new();
        df_node *table = PH(g, V, 4 * H), *idn = PHI(g, B, T), *w = df_var(g, wv), *h0 = PH(g, B, H),
                *c0 = PH(g, B, H), *r = PH(g, B, T, H), *dt;
        df_node *h = df_lstm_ids(g, table, idn, w, h0, c0);
        df_node *loss = df_sum(g, df_mul(g, h, r), NULL, 0, false);
        if (grad) cr_assert_eq(df_gradients(g, loss, NULL, 1, &table, &dt), DF_OK, "%s", df_graph_error(g));
        df_graph_output(g, grad ? dt : loss);
        const int32_t bad[2] = {V, -1};
        for (int k = 0; k < 2; k++) {
            ids[4] = bad[k];
            df_tensor o;
            cr_assert_eq(df_graph_run(g, in, 5, &o, 1), DF_ERR_RANGE, "id %d: %s", bad[k], df_last_error());
            char want[64];
            snprintf(want, sizeof want, "index %d at position 4 is outside [0, %d)", bad[k], V);
            cr_expect(strstr(df_last_error(), want), "id %d: '%s' does not say '%s'", bad[k], df_last_error(), want);
        }
        ids[4] = V - 1;
        df_tensor o;
        cr_expect_eq(df_graph_run(g, in, 5, &o, 1), DF_OK, "a good id after bad ones: %s", df_last_error());
        df_graph_free(g);
    }
    df_variable_free(wv);
    for (int i = 0; i < 5; i++) free(bufs[i]);
    free(ids);
}

Test(lstm_ids, shape_and_dtype_errors)
{
    df_graph *g = df_graph_new();
    df_node *w = PH(g, 2, 8), *h0 = PH(g, 3, 2), *c0 = PH(g, 3, 2);
    cr_expect_null(df_lstm_ids(g, PH(g, 5, 8), PH(g, 3, 4), w, h0, c0));
    cr_expect(strstr(df_graph_error(g), "ids must be i32"), "%s", df_graph_error(g));
    df_graph_free(g);
    g = df_graph_new();
    w = PH(g, 2, 8), h0 = PH(g, 3, 2), c0 = PH(g, 3, 2);
    cr_expect_null(df_lstm_ids(g, PH(g, 5, 2, 8), PHI(g, 3, 4), w, h0, c0));
    cr_expect(strstr(df_graph_error(g), "table (V,4H) and ids (B,T)"), "%s", df_graph_error(g));
    df_graph_free(g);
}

/* The internal gradient ops refuse what only the ids form has: a d table
 * from an xproj form's lstm_grad, and ids other than the lstm's. */
Test(lstm_ids, gradient_ops_refuse_a_mismatched_form)
{
    df_graph *g = df_graph_new();
    df_node *in[4] = {PH(g, 2, 3, 8), PH(g, 2, 8), PH(g, 2, 2), PH(g, 2, 2)}, *grads[4];
    df_node *h = df_lstm(g, in[0], in[1], in[2], in[3]);
    cr_assert_eq(df_gradients(g, df_sum(g, h, NULL, 0, false), NULL, 4, in, grads), DF_OK, "%s", df_graph_error(g));
    cr_assert_eq(grads[0]->op, &df_op_lstm_grad, "d xproj is lstm_grad's dz");
    cr_expect_null(df_node_new(g, &df_op_lstm_grad_state, 1, &grads[0], &(df_lstm_state_attrs){.which = 2}));
    cr_expect(strstr(df_graph_error(g), "sums no d table"), "%s", df_graph_error(g));
    df_graph_free(g);

    g = df_graph_new();
    df_node *table = PH(g, V, 8), *ids = PHI(g, 2, 3), *w = PH(g, 2, 8), *h0 = PH(g, 2, 2), *c0 = PH(g, 2, 2);
    h = df_lstm_ids(g, table, ids, w, h0, c0);
    cr_assert_eq(df_gradients(g, df_sum(g, h, NULL, 0, false), NULL, 1, &table, grads), DF_OK, "%s", df_graph_error(g));
    df_node *gin[5] = {h, df_fill_like(g, h, 1.0f), w, c0, PHI(g, 2, 3)};
    cr_expect_null(df_node_new(g, &df_op_lstm_grad, 5, gin, &(df_bptt_attrs){.want_dh0 = false}));
    cr_expect(strstr(df_graph_error(g), "must be the ids of lstm node"), "%s", df_graph_error(g));
    df_graph_free(g);
}

/* ------------------------------------------------------------- layers */

/* Whether op ran in g's last profiled run. */
static bool op_ran(const df_graph *g, const char *op)
{
    df_op_profile prof[64];
    int n = df_graph_profile(g, prof, 64, NULL);
    for (int i = 0; i < n && i < 64; i++)
        if (!strcmp(prof[i].op, op) && prof[i].nodes > 0) return true;
    return false;
}

/* Embedding(V, 6) + cell(8) + Dense(V) on ids (4,5), B*T >= V so the
 * Embedding folds, and a graph of the gradient of sum(logits) w.r.t. the
 * embeddings. */
static df_graph *embedding_cell_graph(bool lstm, df_model **out)
{
    df_model *m = df_model_new("ids", 3);
    cr_assert_eq(df_model_add(m, df_embedding_layer(V, 6)), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_model_add(m, lstm ? df_lstm_layer(8, (df_rnn_options){.return_sequences = true})
                                      : df_gru_layer(8, true, (df_rnn_options){.return_sequences = true})),
                 DF_OK, "%s", df_last_error());
    cr_assert_eq(df_model_add(m, df_dense_layer(V, DF_ACT_NONE, true)), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_model_build(m, 2, SHAPE(4, 5)), DF_OK, "%s", df_last_error());
    df_graph *g = df_graph_new();
    df_node *x = PHI(g, 4, 5), *logits = df_model_call(m, g, x, true), *grad;
    df_variable *table = df_layer_weight(df_model_layer(m, 0), "embeddings");
    df_node *wrt = df_var(g, table);
    cr_assert_eq(df_gradients(g, df_sum(g, logits, NULL, 0, false), NULL, 1, &wrt, &grad), DF_OK, "%s",
                 df_graph_error(g));
    df_graph_output(g, logits);
    df_graph_output(g, grad);
    *out = m;
    return g;
}

static const int32_t layer_ids[20] = {0, 3, 6, 2, 5, 1, 4, 0, 3, 6, 2, 5, 1, 4, 0, 3, 6, 2, 5, 1};

/* A run of embedding_cell_graph: the LSTM reads the projected table by id
 * (no gather, no scatter_add), the GRU gathers it. */
static void check_layer_ops(bool lstm)
{
    df_model *m;
    df_graph *g = embedding_cell_graph(lstm, &m);
    cr_assert_eq(df_graph_set_profiling(g, true), DF_OK);
    df_tensor in = I32((int32_t *)layer_ids, 4, 5), out[2];
    cr_assert_eq(df_graph_run(g, &in, 1, out, 2), DF_OK, "%s", df_last_error());
    const char *what = lstm ? "LSTM" : "GRU";
    cr_expect_eq(op_ran(g, lstm ? "lstm" : "gru"), true, "%s: its cell op did not run", what);
    cr_expect_eq(op_ran(g, "gather"), !lstm, "%s: gather %s", what, lstm ? "ran" : "did not run");
    cr_expect_eq(op_ran(g, "scatter_add"), !lstm, "%s: scatter_add %s", what, lstm ? "ran" : "did not run");
    df_graph_free(g);
    df_model_free(m);
}

Test(lstm_ids, the_lstm_layer_reads_a_folded_embedding_by_id) { check_layer_ops(true); }
Test(lstm_ids, the_gru_layer_keeps_the_gather) { check_layer_ops(false); }

/* A saved graph holding the ids form (5 inputs to lstm and lstm_grad, the
 * d table read-out) loads and gives the live graph's bits. */
Test(lstm_ids, saved_graph_round_trip)
{
    df_model *m;
    df_graph *g = embedding_cell_graph(true, &m);
    char dir[] = "/tmp/test_lstm_ids.XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ids.dfg", dir);
    cr_assert_eq(df_graph_compile(g), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_graph_export(g, path, 0, NULL), DF_OK, "%s", df_last_error());
    df_saved *s;
    cr_assert_eq(df_saved_load(path, &s), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_graph_set_profiling(df_saved_graph(s), true), DF_OK, "%s", df_last_error());
    df_tensor in = I32((int32_t *)layer_ids, 4, 5), live[2], saved[2];
    cr_assert_eq(df_graph_run(g, &in, 1, live, 2), DF_OK, "%s", df_last_error());
    cr_assert_eq(df_saved_run(s, &in, 1, saved, 2), DF_OK, "%s", df_last_error());
    expect_bitwise(saved[0].data, live[0].data, df_tensor_numel(&live[0]), "logits, saved vs live");
    expect_bitwise(saved[1].data, live[1].data, df_tensor_numel(&live[1]), "d embeddings, saved vs live");
    cr_expect(op_ran(df_saved_graph(s), "lstm") && !op_ran(df_saved_graph(s), "scatter_add"),
              "the saved graph is not the ids form");
    df_saved_free(s);
    remove(path);
    rmdir(dir);
    df_graph_free(g);
    df_model_free(m);
}
