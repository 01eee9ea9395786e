/* test_bench_cost.c — the ops' cost models (df_op_def.cost, read by
 * dagflow-bench) against FLOP and byte counts worked out by hand: matmul
 * (2MNK, folded rows, transposes), batch_matmul (per batch, broadcast),
 * lstm and its backward (the recurrent GEMM per step plus 13 gate FLOPs per
 * unit), gru (15 per unit), attention (4 B h T^2 d; causal counts the visible pairs,
 * T(T+1)/2, or with cached keys fewer), the attention backward (2.5x), the
 * elementwise table, softmax and layer_norm; the simple RNN and its
 * backward, the GRU's backward ops (per form, with and without dh0), the
 * copies (transpose, concat, slice, pad), one_hot (in sparse_softmax_xent's
 * backward at a large vocabulary), reduce_max and the optimizers' updates;
 * mean, argmax, where, causal_mask, cast, dropout, global_norm_scale,
 * lstm_final_c, fill_like and the variable writes (assign, assign_add,
 * assign_at). allreduce_mean needs MPI: tests/test_mpi.c checks its cost. */
#include <criterion/criterion.h>
#include "dagflow.h"
#include "../graph/graph.h"
#include "../ops/registry.h"

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

/* The gradients of y (for a ones dy) with respect to the n inputs xs. */
static void grads_of(df_node *y, int n, df_node **xs)
{
    df_node *grads[4];
    cr_assert_eq(df_gradients(g, y, NULL, n, xs, grads), DF_OK, "%s", df_graph_error(g));
}

Test(cost, rnn_gemm_per_step_and_tanh)
{
    /* B=2 T=3 H=4: T * (2*B*H*H + 2*B*H) = 3 * (64 + 16) = 240 */
    df_node *x = PH(2, 3, 4), *w = PH(4, 4), *h0 = PH(2, 4), *h = df_simple_rnn(g, x, w, h0);
    df_op_cost c = cost_of(h);
    cr_expect_eq(c.flops, 240, "flops %g", c.flops);
    cr_expect_eq(c.bytes, (24 + 16 + 8 + 24) * 4, "bytes %g", c.bytes);        /* 288 */
    /* d xproj only: the carry GEMM runs at t = 2, 1 (not 0): 2 * 64, plus
     * 4 FLOPs per unit per step, 3 * 32: 224 */
    grads_of(h, 1, &x);
    df_op_cost b = cost_of(find_op("rnn_grad"));
    cr_expect_eq(b.flops, 224, "rnn_grad flops %g", b.flops);
    cr_expect_eq(b.bytes, (24 + 24 + 16 + 24) * 4, "rnn_grad bytes %g", b.bytes);   /* h, dy, w_rec, da */
}

Test(cost, rnn_grad_with_dh0_runs_the_last_gemm)
{
    df_node *x = PH(2, 3, 4), *w = PH(4, 4), *h0 = PH(2, 4), *xs[2] = {x, h0};
    grads_of(df_simple_rnn(g, x, w, h0), 2, xs);
    df_op_cost b = cost_of(find_op("rnn_grad"));
    cr_expect_eq(b.flops, 3 * 64 + 96, "rnn_grad with dh0 flops %g", b.flops);     /* 288 */
    df_op_cost s = cost_of(find_op("rnn_grad_state"));
    cr_expect_eq(s.flops, 0, "rnn_grad_state flops %g", s.flops);
    cr_expect_eq(s.bytes, 2 * 8 * 4, "rnn_grad_state bytes %g", s.bytes);     /* (2,4) copied */
}

Test(cost, gru_backward_reset_after)
{
    /* B=2 T=3 H=4, R = B*T = 6. gru_grad, d xproj only: du @ w_rec^T at
     * t = 2, 1: 2 * 2*B*3H*H = 2 * 192 = 384, gates 3 * 16 * B*H = 384: 768 */
    df_node *x = PH(2, 3, 12), *w = PH(4, 12), *h0 = PH(2, 4), *b = PH(12), *xs[4] = {x, w, h0, b};
    df_node *h = df_gru(g, x, w, b, h0, true);
    grads_of(h, 1, xs);
    cr_expect_eq(cost_of(find_op("gru_grad")).flops, 768, "gru_grad flops %g", cost_of(find_op("gru_grad")).flops);
}

Test(cost, gru_backward_ops_with_dh0)
{
    df_node *x = PH(2, 3, 12), *w = PH(4, 12), *h0 = PH(2, 4), *b = PH(12), *xs[4] = {x, w, h0, b};
    grads_of(df_gru(g, x, w, b, h0, true), 4, xs);
    df_op_cost c = cost_of(find_op("gru_grad"));
    cr_expect_eq(c.flops, 3 * 192 + 384, "gru_grad with dh0 flops %g", c.flops);   /* 960 */
    /* d w_rec = hprev^T @ du, (4,6) @ (6,12): 2*6*4*12 = 576; reads hprev
     * (24) and du (72), writes (4,12) (48) */
    c = cost_of(find_op("gru_grad_w"));
    cr_expect_eq(c.flops, 576, "gru_grad_w flops %g", c.flops);
    cr_expect_eq(c.bytes, (24 + 72 + 48) * 4, "gru_grad_w bytes %g", c.bytes);
    c = cost_of(find_op("gru_grad_bias"));                                       /* du summed into (12) */
    cr_expect_eq(c.flops, 72, "gru_grad_bias flops %g", c.flops);
    cr_expect_eq(c.bytes, (72 + 12) * 4, "gru_grad_bias bytes %g", c.bytes);
    c = cost_of(find_op("gru_grad_state"));
    cr_expect_eq(c.bytes, 2 * 8 * 4, "gru_grad_state bytes %g", c.bytes);
}

Test(cost, gru_backward_reset_before)
{
    /* gru_grad: da_h @ w_h^T every step, 3 * 2*B*H*H = 192, and
     * [da_z, da_r] @ w_zr^T at t = 2, 1: 2 * 2*B*2H*H = 256, gates 384: 832 */
    df_node *x = PH(2, 3, 12), *w = PH(4, 12), *h0 = PH(2, 4), *xs[2] = {x, w};
    grads_of(df_gru(g, x, w, NULL, h0, false), 2, xs);
    df_op_cost c = cost_of(find_op("gru_grad"));
    cr_expect_eq(c.flops, 832, "gru_grad reset_before flops %g", c.flops);
    /* gru_grad_w: the same 576 FLOPs in two products; reads r*hprev too */
    c = cost_of(find_op("gru_grad_w"));
    cr_expect_eq(c.flops, 576, "gru_grad_w reset_before flops %g", c.flops);
    cr_expect_eq(c.bytes, (24 + 72 + 24 + 48) * 4, "gru_grad_w reset_before bytes %g", c.bytes);
}

Test(cost, copies_move_bytes_only)
{
    df_op_cost c = cost_of(df_transpose(g, PH(2, 3, 4), (int[]){2, 0, 1}));
    cr_expect_eq(c.flops, 0, "transpose flops %g", c.flops);
    cr_expect_eq(c.bytes, 2 * 24 * 4, "transpose bytes %g", c.bytes);
    c = cost_of(df_concat(g, 2, (df_node *[]){PH(2, 3), PH(2, 5)}, -1));
    cr_expect_eq(c.bytes, (6 + 10 + 16) * 4, "concat bytes %g", c.bytes);
    /* (4,6)[1:3, 2:]: the (2,4) box is read, not all of x */
    c = cost_of(df_slice(g, PH(4, 6), (int64_t[]){1, 2}, (int64_t[]){2, -1}));
    cr_expect_eq(c.bytes, 2 * 8 * 4, "slice bytes %g", c.bytes);
    c = cost_of(df_pad(g, PH(2, 3), (int64_t[]){1, 1}, 2, (int64_t[]){4, 5}));
    cr_expect_eq(c.bytes, (6 + 20) * 4, "pad bytes %g", c.bytes);
}

Test(cost, one_hot_writes_its_output)
{
    /* 6 ids into (6,10): ids read, 60 floats written */
    df_op_cost c = cost_of(df_one_hot(g, df_placeholder(g, DF_I32, 1, (int64_t[]){6}, NULL), 10));
    cr_expect_eq(c.flops, 0, "flops %g", c.flops);
    cr_expect_eq(c.bytes, (6 + 60) * 4, "bytes %g", c.bytes);
}

Test(cost, reduce_max_compares_every_element)
{
    df_op_cost c = cost_of(df_reduce_max(g, PH(3, 5), (int[]){-1}, 1, false));
    cr_expect_eq(c.flops, 15, "flops %g", c.flops);
    cr_expect_eq(c.bytes, (15 + 3) * 4, "bytes %g", c.bytes);
}

Test(cost, optimizer_updates_per_element)
{
    df_rng rng;
    df_rng_seed(&rng, 1);
    df_variable *w = df_variable_new("w", DF_F32, 2, (int64_t[]){3, 5}, df_init_zeros(), &rng);
    cr_assert_not_null(w, "%s", df_last_error());
    df_node *grad = PH(3, 5), *m = PH(3, 5), *v = PH(3, 5), *lr = df_placeholder(g, DF_F32, 0, NULL, NULL);
    df_node *t = df_placeholder(g, DF_I32, 0, NULL, NULL);
    const double N = 15, word = 4;
    struct { const char *what; df_node *n; double flops, bytes; } cases[] = {
        {"sgd", df_apply_sgd(g, w, grad, lr), 2 * N, 3 * N * word},
        {"momentum", df_apply_momentum(g, w, grad, lr, v, 0.9f, false), 4 * N, 5 * N * word},
        {"nesterov", df_apply_momentum(g, w, grad, lr, v, 0.9f, true), 7 * N, 5 * N * word},
        {"rmsprop", df_apply_rmsprop(g, w, grad, lr, v, 0.9f, 1e-7f), 9 * N, 5 * N * word},
        {"adam", df_apply_adam(g, w, grad, lr, t, m, v, 0.9f, 0.999f, 1e-7f), 12 * N, 7 * N * word},
        {"adamw", df_apply_adamw(g, w, grad, lr, t, m, v, 0.9f, 0.999f, 1e-8f, 0.1f), 14 * N, 7 * N * word},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        df_op_cost c = cost_of(cases[i].n);
        cr_expect_eq(c.flops, cases[i].flops, "%s flops %g, expected %g", cases[i].what, c.flops, cases[i].flops);
        cr_expect_eq(c.bytes, cases[i].bytes, "%s bytes %g, expected %g", cases[i].what, c.bytes, cases[i].bytes);
    }
    df_variable_free(w);
}

Test(cost, reductions_and_selections)
{
    df_op_cost c = cost_of(df_mean(g, PH(3, 5), (int[]){-1}, 1, false));     /* 15 adds, 3 scales */
    cr_expect_eq(c.flops, 15 + 3, "mean flops %g", c.flops);
    cr_expect_eq(c.bytes, (15 + 3) * 4, "mean bytes %g", c.bytes);
    c = cost_of(df_argmax(g, PH(4, 6), 0));                                     /* 24 compares into (6) */
    cr_expect_eq(c.flops, 24, "argmax flops %g", c.flops);
    cr_expect_eq(c.bytes, (24 + 6) * 4, "argmax bytes %g", c.bytes);
    c = cost_of(df_where(g, PH(2, 3), PH(3), PH(2, 3)));                        /* one compare per output */
    cr_expect_eq(c.flops, 6, "where flops %g", c.flops);
    cr_expect_eq(c.bytes, (6 + 3 + 6 + 6) * 4, "where bytes %g", c.bytes);
    c = cost_of(df_causal_mask(g, PH(2, 3, 4), -1.0f));                         /* a copy */
    cr_expect_eq(c.flops, 0, "causal_mask flops %g", c.flops);
    cr_expect_eq(c.bytes, 2 * 24 * 4, "causal_mask bytes %g", c.bytes);
}

Test(cost, cast_dropout_and_the_clipping_norm)
{
    df_op_cost c = cost_of(df_cast(g, PH(3, 4), DF_I32));                       /* one conversion each */
    cr_expect_eq(c.flops, 12, "cast flops %g", c.flops);
    cr_expect_eq(c.bytes, 2 * 12 * 4, "cast bytes %g", c.bytes);
    df_node *seed = df_placeholder(g, DF_I32, 0, NULL, NULL);
    c = cost_of(df_dropout(g, PH(3, 4), 0.5f, seed, 1));                        /* the scale; the hash is integer work */
    cr_expect_eq(c.flops, 12, "dropout flops %g", c.flops);
    cr_expect_eq(c.bytes, (12 + 1 + 12) * 4, "dropout bytes %g", c.bytes);
    c = cost_of(df_global_norm_scale(g, 2, (df_node *[]){PH(3, 4), PH(4)}, 1.0f));
    cr_expect_eq(c.flops, 2 * 16 + 3, "global_norm_scale flops %g", c.flops);  /* a multiply-add each, sqrt, max, divide */
    cr_expect_eq(c.bytes, (16 + 1) * 4, "global_norm_scale bytes %g", c.bytes);
}

Test(cost, carried_state_and_fills)
{
    /* B=2 T=3 H=4: the last step's c, 8 floats read from the workspace and written */
    df_op_cost c = cost_of(df_lstm_final_c(g, df_lstm(g, PH(2, 3, 16), PH(4, 16), PH(2, 4), PH(2, 4))));
    cr_expect_eq(c.flops, 0, "lstm_final_c flops %g", c.flops);
    cr_expect_eq(c.bytes, 2 * 8 * 4, "lstm_final_c bytes %g", c.bytes);
    /* zeros (None, 5) like x (None, 3): 5 floats a row written, x not read */
    df_node *x = df_placeholder(g, DF_F32, 2, (int64_t[]){DF_DYNAMIC, 3}, NULL);
    df_node *z = df_fill_like_dims(g, x, 0.0f, DF_F32, 2, (int64_t[]){DF_DYNAMIC, 5});
    cr_assert(z && z->op == &df_op_fill_like, "not a fill_like node: %s", z ? z->op->name : df_graph_error(g));
    c = cost_of(z);
    cr_expect_eq(c.flops, 0, "fill_like flops %g", c.flops);
    cr_expect_eq(c.bytes, (double)z->shape[0] * 5 * 4, "fill_like bytes %g at batch %lld", c.bytes,
                 (long long)z->shape[0]);
}

Test(cost, variable_writes)
{
    df_rng rng;
    df_rng_seed(&rng, 1);
    df_variable *w = df_variable_new("w", DF_F32, 2, (int64_t[]){6, 5}, df_init_zeros(), &rng);
    cr_assert_not_null(w, "%s", df_last_error());
    df_op_cost c = cost_of(df_assign(g, w, PH(6, 5)));                          /* a copy of 30 floats */
    cr_expect_eq(c.flops, 0, "assign flops %g", c.flops);
    cr_expect_eq(c.bytes, 2 * 30 * 4, "assign bytes %g", c.bytes);
    c = cost_of(df_assign_add(g, w, PH(6, 5)));                                 /* w read, added to, written */
    cr_expect_eq(c.flops, 30, "assign_add flops %g", c.flops);
    cr_expect_eq(c.bytes, 3 * 30 * 4, "assign_add bytes %g", c.bytes);
    df_node *pos = df_placeholder(g, DF_I32, 0, NULL, NULL);
    c = cost_of(df_assign_at(g, w, PH(2, 5), pos, 0));                          /* the slab of 10 only, and pos */
    cr_expect_eq(c.flops, 0, "assign_at flops %g", c.flops);
    cr_expect_eq(c.bytes, (2 * 10 + 1) * 4, "assign_at bytes %g", c.bytes);
    df_variable_free(w);
}
