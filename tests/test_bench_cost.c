/* test_bench_cost.c — the ops' cost models (df_op_def.cost, read by
 * dagflow-bench) against FLOP and byte counts worked out by hand: matmul
 * (2MNK, folded rows, transposes), batch_matmul (per batch, broadcast),
 * lstm and its backward (the recurrent GEMM per step plus 13 gate FLOPs per
 * unit), gru (15 per unit), attention (4 B h T^2 d; causal counts the visible pairs,
 * T(T+1)/2, or with cached keys fewer), the attention backward (2.5x), the
 * elementwise table, softmax and layer_norm. */
#include <criterion/criterion.h>
#include "dagflow.h"
#include "../graph/graph.h"

static df_graph *g;

static void setup(void) { g = df_graph_new(); }
static void teardown(void) { df_graph_free(g); }

static df_node *ph(int ndim, const int64_t *shape) { return df_placeholder(g, DF_F32, ndim, shape, NULL); }
#define PH(...) ph((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})

static df_op_cost cost_of(const df_node *n)
{
    cr_assert_not_null(n, "node not built: %s", df_graph_error(g));
    cr_assert_not_null(n->op->cost, "op '%s' has no cost model", n->op->name);
    df_op_cost c = {-1, -1};
    n->op->cost(n, &c);
    return c;
}

/* The first node of op in g (to reach the nodes a gradient made). */
static const df_node *find_op(const char *op)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i]->op->name, op)) return g->nodes[i];
    return NULL;
}

TestSuite(cost, .init = setup, .fini = teardown);

Test(cost, matmul_is_2mnk)
{
    df_op_cost c = cost_of(df_matmul(g, PH(3, 4), PH(4, 5), false, false));
    cr_expect_eq(c.flops, 2 * 3 * 5 * 4, "flops %g", c.flops);                 /* 120 */
    cr_expect_eq(c.bytes, (3 * 4 + 4 * 5 + 3 * 5) * 4, "bytes %g", c.bytes);   /* 188 */
    c = cost_of(df_matmul(g, PH(4, 3), PH(5, 4), true, true));                  /* (3,4) @ (4,5) again */
    cr_expect_eq(c.flops, 120, "transposed flops %g", c.flops);
    c = cost_of(df_matmul(g, PH(2, 3, 4), PH(4, 5), false, false));             /* rows folded: M = 6 */
    cr_expect_eq(c.flops, 240, "folded flops %g", c.flops);
    c = cost_of(df_matmul(g, PH(64, 1024), PH(1024, 4096), false, false));
    cr_expect_eq(c.flops, 536870912.0, "seed step flops %g", c.flops);         /* 2*64*4096*1024 */
}

Test(cost, batch_matmul_counts_every_batch)
{
    df_op_cost c = cost_of(df_batch_matmul(g, PH(2, 3, 4), PH(2, 4, 5), false, false));
    cr_expect_eq(c.flops, 2 * 2 * 3 * 5 * 4, "flops %g", c.flops);             /* 240 */
    c = cost_of(df_batch_matmul(g, PH(2, 2, 3, 4), PH(5, 4), false, true));      /* shared b, 4 batches */
    cr_expect_eq(c.flops, 4 * 2 * 3 * 5 * 4, "broadcast flops %g", c.flops);   /* 480 */
    cr_expect_eq(c.bytes, (2 * 2 * 3 * 4 + 5 * 4 + 2 * 2 * 3 * 5) * 4, "broadcast bytes %g", c.bytes);
}

Test(cost, lstm_gemm_per_step_and_gates)
{
    /* B=2 T=3 H=4: T * (2*B*H*4H + 13*B*H) = 3 * (256 + 104) = 1080 */
    df_node *h = df_lstm(g, PH(2, 3, 16), PH(4, 16), PH(2, 4), PH(2, 4));
    df_op_cost c = cost_of(h);
    cr_expect_eq(c.flops, 1080, "flops %g", c.flops);
    /* bytes: inputs 96+64+8+8, output 24 floats, plus the saved state */
    cr_expect_geq(c.bytes, (96 + 64 + 8 + 8 + 24) * 4, "bytes %g", c.bytes);
    /* the backward: per step dz @ w_rec^T (2*B*4H*H) and 20 FLOPs per unit:
     * 3 * (256 + 160) = 1248 */
    df_node *xs[1] = {h->in[0]}, *grad;
    cr_assert_eq(df_gradients(g, h, NULL, 1, xs, &grad), DF_OK, "%s", df_graph_error(g));
    df_op_cost b = cost_of(find_op("lstm_grad"));
    cr_expect_eq(b.flops, 1248, "lstm_grad flops %g", b.flops);
}

Test(cost, gru_gemm_per_step_and_gates)
{
    /* B=2 T=3 H=4: T * (2*B*H*3H + 15*B*H) = 3 * (192 + 120) = 936 */
    df_op_cost c = cost_of(df_gru(g, PH(2, 3, 12), PH(4, 12), NULL, PH(2, 4), true));
    cr_expect_eq(c.flops, 936, "flops %g", c.flops);
}

Test(cost, attention_is_4bhT2d_and_causal_counts_visible_pairs)
{
    df_node *q = PH(2, 3, 5, 4), *k = PH(2, 3, 5, 4), *v = PH(2, 3, 5, 4);
    df_op_cost c = cost_of(df_attention(g, q, k, v, false, 0.5f));
    cr_expect_eq(c.flops, 4.0 * 2 * 3 * 25 * 4, "flops %g", c.flops);          /* 2400 */
    c = cost_of(df_attention(g, q, k, v, true, 0.5f));
    cr_expect_eq(c.flops, 4.0 * 2 * 3 * 15 * 4, "causal flops %g", c.flops);   /* T(T+1)/2 = 15 pairs: 1440 */
    /* 2 queries over 5 cached keys, causal: query 0 sees 4 keys, query 1 all 5 */
    c = cost_of(df_attention(g, PH(1, 2, 4), PH(1, 5, 4), PH(1, 5, 3), true, 0.5f));
    cr_expect_eq(c.flops, 9.0 * (2 * 4 + 2 * 3), "cached-keys flops %g", c.flops);   /* 126 */
}

Test(cost, attention_backward_is_two_and_a_half_forwards)
{
    df_node *q = PH(2, 5, 4), *k = PH(2, 5, 4), *v = PH(2, 5, 4), *xs[3] = {q, k, v}, *grads[3];
    df_node *y = df_attention(g, q, k, v, false, 0.5f);
    cr_assert_eq(df_gradients(g, y, NULL, 3, xs, grads), DF_OK, "%s", df_graph_error(g));
    df_op_cost f = cost_of(y), b = cost_of(find_op("attention_grad"));
    cr_expect_eq(f.flops, 4.0 * 2 * 25 * 4, "forward flops %g", f.flops);      /* 800 */
    cr_expect_eq(b.flops, 2000, "backward flops %g", b.flops);                 /* 2.5 x 800 */
}

Test(cost, elementwise_softmax_layer_norm)
{
    df_op_cost c = cost_of(df_add(g, PH(2, 3), PH(3)));
    cr_expect_eq(c.flops, 6, "add flops %g", c.flops);
    cr_expect_eq(c.bytes, (6 + 3 + 6) * 4, "add bytes %g", c.bytes);
    c = cost_of(df_tanh(g, PH(7)));
    cr_expect_eq(c.flops, 7, "tanh flops %g", c.flops);
    c = cost_of(df_softmax(g, PH(4, 10), -1));
    cr_expect_eq(c.flops, 5 * 40, "softmax flops %g", c.flops);
    c = cost_of(df_layer_norm(g, PH(4, 8), PH(8), PH(8), 1e-5f));
    cr_expect_eq(c.flops, 8 * 32, "layer_norm flops %g", c.flops);
    cr_expect_eq(c.bytes, (32 + 8 + 8 + 32) * 4, "layer_norm bytes %g", c.bytes);
}
