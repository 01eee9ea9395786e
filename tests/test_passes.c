/* test_passes.c — each compile pass changes the graph (counted) and never the
 * results: every test compares against the same graph compiled without it. */
#include <xxhash.h>
#include "helpers.h"
#include "model.h"

/* Builds the same graph twice, compiles one with passes and one without,
 * runs both on the same inputs and returns the stats of the first. */
typedef df_node *(*builder)(df_graph *g, df_node *x);

static df_graph_stats compare_with_and_without(builder build, unsigned passes, const int64_t *shape, int ndim)
{
    df_graph *g[2] = {df_graph_new(), df_graph_new()};
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    float *xv = malloc((size_t)numel * sizeof *xv);
    for (int64_t i = 0; i < numel; i++) xv[i] = (float)((i * 7919) % 2001 - 1000) / 500.0f;
    df_tensor in = df_tensor_make(DF_F32, xv, ndim, shape), out[2];
    for (int k = 0; k < 2; k++) {
        df_graph_set_passes(g[k], k == 0 ? passes : 0);
        df_graph_output(g[k], build(g[k], df_placeholder(g[k], DF_F32, ndim, shape, "x")));
        cr_assert_eq(df_graph_run(g[k], &in, 1, &out[k], 1), DF_OK, "%s", df_last_error());
    }
    cr_expect_eq(df_tensor_numel(&out[0]), df_tensor_numel(&out[1]));
    cr_expect(memcmp(out[0].data, out[1].data, (size_t)df_tensor_numel(&out[0]) * sizeof(float)) == 0,
              "results differ with the passes on");
    df_graph_stats st;
    cr_assert_eq(df_graph_get_stats(g[0], &st), DF_OK);
    df_graph_free(g[0]);
    df_graph_free(g[1]);
    free(xv);
    return st;
}

/* tanh(x) computed twice and the constant 2 made twice: CSE keeps one each. */
static df_node *duplicated(df_graph *g, df_node *x)
{
    df_node *a = df_scale(g, df_tanh(g, x), 2.0f), *b = df_scale(g, df_tanh(g, x), 2.0f);
    return df_add(g, a, b);
}

Test(passes, cse_merges_identical_nodes_and_constants)
{
    df_graph_stats st = compare_with_and_without(duplicated, DF_PASS_CSE, SHAPE(3, 5), 2);
    cr_expect_eq(st.cse_merged, 3, "the second tanh, the second constant 2 and the second scale; got %d", st.cse_merged);
    cr_expect_eq(st.nodes, 5, "x, tanh, 2, scale, add are left; got %d", st.nodes);
}

/* exp(0.5) + 1 depends on constants only. */
static df_node *constant_subtree(df_graph *g, df_node *x)
{
    df_node *c = df_add(g, df_exp(g, df_scalar(g, 0.5f)), df_scalar(g, 1.0f));
    return df_mul(g, x, df_reshape(g, c, 1, SHAPE(1)));
}

Test(passes, constant_folding_computes_constant_subtrees_once)
{
    df_graph_stats st = compare_with_and_without(constant_subtree, DF_PASS_FOLD, SHAPE(4), 1);
    cr_expect_eq(st.constants_folded, 2, "exp and add; got %d", st.constants_folded);
}

/* sigmoid(-(x * 3 + 1)) * x: five elementwise nodes over one shape. */
static df_node *chain(df_graph *g, df_node *x)
{
    df_node *t = df_add(g, df_mul(g, x, df_scalar(g, 3.0f)), df_scalar(g, 1.0f));
    return df_mul(g, df_sigmoid(g, df_neg(g, t)), x);
}

Test(passes, fusion_merges_an_elementwise_chain_bit_identically)
{
    /* 70001 elements: several parallel blocks and a partial last block */
    df_graph_stats st = compare_with_and_without(chain, DF_PASS_FUSE, SHAPE(7, 10001), 2);
    cr_expect_eq(st.fused_chains, 1);
    cr_expect_eq(st.fused_nodes, 5, "mul, add, neg, sigmoid, mul; got %d", st.fused_nodes);
    cr_expect_eq(st.nodes, 4, "x, the two scalars and the fused node; got %d", st.nodes);
}

/* t = tanh(x) feeds two readers: it must stay materialised, not be absorbed. */
static df_node *shared_producer(df_graph *g, df_node *x)
{
    df_node *t = df_tanh(g, x);
    return df_add(g, df_exp(g, t), df_neg(g, t));
}

Test(passes, fusion_keeps_values_with_several_readers)
{
    df_graph_stats st = compare_with_and_without(shared_producer, DF_PASS_FUSE, SHAPE(33), 1);
    cr_expect_eq(st.fused_chains, 1);
    cr_expect_eq(st.fused_nodes, 3, "exp, neg and add fuse; tanh stays; got %d", st.fused_nodes);
}

/* A broadcast operand of another shape stops the chain at that node. */
static df_node *broadcasting(df_graph *g, df_node *x)
{
    df_node *row = df_sum(g, x, (int[]){0}, 1, false);               /* (5) */
    return df_tanh(g, df_add(g, df_exp(g, x), row));                  /* (3,5) + (5) */
}

Test(passes, fusion_leaves_broadcasting_operands_outside)
{
    df_graph_stats st = compare_with_and_without(broadcasting, DF_PASS_ALL, SHAPE(3, 5), 2);
    cr_expect_eq(st.fused_chains, 0, "add broadcasts a row: tanh(add) cannot take it; got %d", st.fused_chains);
}

/* ------------------------------------------------- whole train steps, on vs off */

static uint64_t params_hash(const cr_model *m)
{
    XXH64_state_t *s = XXH64_createState();
    XXH64_reset(s, 0);
    for (int i = 0; i < m->n_params; i++) {
        df_tensor t = df_variable_tensor(m->params[i]);
        XXH64_update(s, t.data, (size_t)df_tensor_numel(&t) * sizeof(float));
    }
    uint64_t h = XXH64_digest(s);
    XXH64_freeState(s);
    return h;
}

static uint64_t train_small(unsigned passes, df_graph_stats *stats)
{
    cr_config cfg = {.vocab = 11, .embed = 8, .hidden = 16, .learning_rate = 1e-2f, .seed = 3};
    cr_model m;
    cr_assert_eq(cr_model_init(&m, &cfg), DF_OK);
    df_graph *g;
    cr_assert_eq(cr_compile_step(&m, 4, 12, passes, false, &g), DF_OK, "%s", df_last_error());
    int32_t x[48], y[48];
    df_tensor in[2] = {I32(x, 4, 12), I32(y, 4, 12)}, loss;
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < 48; i++) {
            x[i] = (i * 3 + step) % 11;
            y[i] = (i * 3 + step + 1) % 11;
        }
        cr_assert_eq(df_graph_run(g, in, 2, &loss, 1), DF_OK, "%s", df_last_error());
    }
    cr_assert_eq(df_graph_get_stats(g, stats), DF_OK);
    uint64_t h = params_hash(&m);
    df_graph_free(g);
    cr_model_free(&m);
    return h;
}

Test(passes, train_steps_give_bit_identical_weights_with_all_passes)
{
    df_graph_stats on, off;
    uint64_t with = train_small(DF_PASS_ALL, &on), without = train_small(0, &off);
    cr_expect_eq(with, without, "weights after 5 steps differ: %016llx vs %016llx", (unsigned long long)with,
                 (unsigned long long)without);
    cr_expect_gt(on.cse_merged + on.constants_folded + on.fused_nodes, 0, "the passes changed nothing");
    cr_expect_lt(on.nodes, off.nodes);
    cr_expect_lt(on.arena_bytes, off.arena_bytes);
    cr_log_info("train step: %d -> %d nodes; cse %d, folded %d, fused %d nodes in %d chains; arena %zu -> %zu bytes",
                off.nodes, on.nodes, on.cse_merged, on.constants_folded, on.fused_nodes, on.fused_chains,
                off.arena_bytes, on.arena_bytes);
}

/* The planner at the tutorial's size: compile only (no run). */
Test(passes, seed_train_step_peak_memory_is_well_under_the_sum_of_tensors)
{
    cr_config cfg = {.vocab = 65, .embed = 256, .hidden = 1024, .learning_rate = 1e-3f, .seed = 1};
    cr_model m;
    cr_assert_eq(cr_model_init(&m, &cfg), DF_OK);
    df_graph *g;
    cr_assert_eq(cr_compile_step(&m, 64, 100, DF_PASS_ALL, false, &g), DF_OK, "%s", df_last_error());
    df_graph_stats st;
    cr_assert_eq(df_graph_get_stats(g, &st), DF_OK);
    cr_log_info("seed train step: %d nodes, arena %.1f MB, sum of buffers %.1f MB", st.nodes, st.arena_bytes / 1e6,
                st.tensor_bytes / 1e6);
    /* Measured 316 MB of 480 MB: at the LSTM's backward its output and saved
     * gates (184 MB), dh (26 MB) and dZ (105 MB) are live together. */
    cr_expect_lt(st.arena_bytes * 10, st.tensor_bytes * 7, "peak %zu is not well under the sum %zu", st.arena_bytes,
                 st.tensor_bytes);
    df_graph_free(g);
    cr_model_free(&m);
}

/* exp(x) dies in neg, neg dies in tanh: each can write over the other. */
static df_node *unfused_chain(df_graph *g, df_node *x)
{
    return df_tanh(g, df_neg(g, df_exp(g, df_scale(g, x, 0.5f))));
}

Test(passes, elementwise_ops_run_in_place_over_inputs_they_read_last)
{
    df_graph_stats st = compare_with_and_without(unfused_chain, DF_PASS_REUSE, SHAPE(5, 7001), 2);
    cr_expect_eq(st.inplace, 3, "exp over scale, neg over exp, tanh over neg; got %d", st.inplace);
    cr_expect_eq(st.arena_bytes, (size_t)2 * ((5 * 7001 * 4 + 63) / 64 * 64),
                 "x and one buffer for the whole chain; got %zu", st.arena_bytes);
}
