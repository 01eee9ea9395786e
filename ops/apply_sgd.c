/* apply_sgd.c — w -= lr * grad, in place. Inputs: grad, lr (scalar). */
#include "common.h"

// grad (w's shape), lr () -> w storage
static df_status apply_sgd_forward(df_node *n)
{
    float *w = n->data, lr = DF_F32P(n->in[1])[0];
    const float *grad = DF_F32P(n->in[0]);
    int64_t N = n->numel;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t i = 0; i < N; i++) w[i] -= lr * grad[i];
    return DF_OK;
}

/* w -= lr g: 2 FLOPs per element; g read, w read and written. */
static void apply_sgd_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 2.0 * (double)n->numel, .bytes = 3.0 * 4 * (double)n->numel};
}

static df_status apply_sgd_infer(df_node *n) { return df_infer_optimizer_update(n, 2); }

const df_op_def df_op_apply_sgd = {
    .name = "apply_sgd", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = apply_sgd_infer, .forward = apply_sgd_forward, .attrs_size = sizeof(df_update_attrs),
    .no_gradcheck = "optimizer update, tested in tests/test_graph.c and tests/test_optim.c",
    .min_inputs = 2, .max_inputs = 2, .attrs_kind = DF_ATTRS_VARIABLE,
    .cost = apply_sgd_cost,
};

df_node *df_apply_sgd(df_graph *g, df_variable *w, df_node *grad, df_node *lr)
{
    df_node *in[2] = {grad, lr};
    return df_variable_update_make(g, &df_op_apply_sgd, 2, in, &(df_update_attrs){.var = w});
}
