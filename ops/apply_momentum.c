/* apply_momentum.c — SGD with momentum, in place, as Keras computes it:
 *   velocity = momentum * velocity - lr * grad
 *   w += velocity                              (plain)
 *   w += momentum * velocity - lr * grad       (nesterov)
 * Inputs: grad, lr (), velocity (the slot variable's read). */
#include "common.h"

// grad, velocity (w's shape), lr () -> w, velocity storage
static df_status apply_momentum_forward(df_node *n)
{
    float *w = n->data, *vel = DF_F32P(n->in[2]), lr = DF_F32P(n->in[1])[0], mu = n->fa[0];
    const float *grad = DF_F32P(n->in[0]);
    bool nesterov = n->ia[0];
    int64_t N = n->numel;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        vel[i] = mu * vel[i] - lr * grad[i];
        w[i] += nesterov ? mu * vel[i] - lr * grad[i] : vel[i];
    }
    return DF_OK;
}

const df_op_def df_op_apply_momentum = {
    .name = "apply_momentum", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = df_infer_variable_update, .forward = apply_momentum_forward,
    .no_gradcheck = "optimizer update, tested in tests/test_optim.c",
};

df_node *df_apply_momentum(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *velocity,
                           float momentum, bool nesterov)
{
    df_node *in[3] = {grad, lr, velocity};
    float fa[1] = {momentum};
    df_node *n = df_variable_update_make(g, &df_op_apply_momentum, w, 3, in, fa, 1);
    if (n) n->ia[0] = nesterov;
    return n;
}
