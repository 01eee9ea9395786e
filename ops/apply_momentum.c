/* apply_momentum.c — SGD with momentum, in place, as Keras computes it:
 *   velocity = momentum * velocity - lr * grad
 *   w += velocity                              (plain)
 *   w += momentum * velocity - lr * grad       (nesterov)
 * Inputs: grad, lr (), velocity (the slot variable's read). */
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    df_update_attrs update;
    float momentum;
    int32_t nesterov;
} apply_momentum_attrs;
DF_ATTRS_END

// grad, velocity (w's shape), lr () -> w, velocity storage
static df_status apply_momentum_forward(df_node *n)
{
    const apply_momentum_attrs *a = DF_ATTRS(n, apply_momentum_attrs);
    float *w = n->data, *vel = DF_F32P(n->in[2]), lr = DF_F32P(n->in[1])[0], mu = a->momentum;
    const float *grad = DF_F32P(n->in[0]);
    bool nesterov = a->nesterov;
    int64_t N = n->numel;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        vel[i] = mu * vel[i] - lr * grad[i];
        w[i] += nesterov ? mu * vel[i] - lr * grad[i] : vel[i];
    }
    return DF_OK;
}

/* velocity = mu velocity - lr g (3 FLOPs) and w += velocity (1; nesterov's
 * w += mu velocity - lr g, 4); g read, velocity and w read and written. */
static void apply_momentum_cost(const df_node *n, df_op_cost *out)
{
    double per = DF_ATTRS(n, apply_momentum_attrs)->nesterov ? 7 : 4;
    *out = (df_op_cost){.flops = per * (double)n->numel, .bytes = 5.0 * 4 * (double)n->numel};
}

static df_status apply_momentum_infer(df_node *n) { return df_infer_optimizer_update(n, 2); }

const df_op_def df_op_apply_momentum = {
    .name = "apply_momentum", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = apply_momentum_infer, .forward = apply_momentum_forward,
    .attrs_size = sizeof(apply_momentum_attrs),
    .no_gradcheck = "optimizer update, tested in tests/test_optim.c",
    .min_inputs = 3, .max_inputs = 3, .attrs_kind = DF_ATTRS_VARIABLE,
    .cost = apply_momentum_cost,
};

df_node *df_apply_momentum(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *velocity,
                           float momentum, bool nesterov)
{
    df_node *in[3] = {grad, lr, velocity};
    apply_momentum_attrs a = {.update.var = w, .momentum = momentum, .nesterov = nesterov};
    return df_variable_update_make(g, &df_op_apply_momentum, 3, in, &a);
}
