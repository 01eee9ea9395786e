/* apply_rmsprop.c — RMSprop, in place, as Keras computes it (centered off,
 * no momentum):  rms = rho * rms + (1 - rho) grad^2;
 *                w -= lr * grad / (sqrt(rms) + epsilon)
 * Inputs: grad, lr (), rms (the slot variable's read). */
#include <math.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    df_update_attrs update;
    float rho, epsilon;
} apply_rmsprop_attrs;
DF_ATTRS_END

// grad, rms (w's shape), lr () -> w, rms storage
static df_status apply_rmsprop_forward(df_node *n)
{
    float *w = n->data, *rms = DF_F32P(n->in[2]), lr = DF_F32P(n->in[1])[0];
    const apply_rmsprop_attrs *a = DF_ATTRS(n, apply_rmsprop_attrs);
    float rho = a->rho, eps = a->epsilon;
    const float *grad = DF_F32P(n->in[0]);
    int64_t N = n->numel;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float gi = grad[i];
        rms[i] = rho * rms[i] + (1.0f - rho) * gi * gi;
        w[i] -= lr * gi / (sqrtf(rms[i]) + eps);
    }
    return DF_OK;
}

/* rms = rho rms + (1-rho) g^2 (4 FLOPs), w -= lr g / (sqrt(rms) + eps) (5);
 * g read, rms and w read and written. */
static void apply_rmsprop_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 9.0 * (double)n->numel, .bytes = 5.0 * 4 * (double)n->numel};
}

static df_status apply_rmsprop_infer(df_node *n) { return df_infer_optimizer_update(n, 2); }

const df_op_def df_op_apply_rmsprop = {
    .name = "apply_rmsprop", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = apply_rmsprop_infer, .forward = apply_rmsprop_forward,
    .attrs_size = sizeof(apply_rmsprop_attrs),
    .no_gradcheck = "optimizer update, tested in tests/test_optim.c",
    .min_inputs = 3, .max_inputs = 3, .attrs_kind = DF_ATTRS_VARIABLE,
    .cost = apply_rmsprop_cost,
};

df_node *df_apply_rmsprop(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *rms, float rho,
                          float epsilon)
{
    df_node *in[3] = {grad, lr, rms};
    apply_rmsprop_attrs a = {.update.var = w, .rho = rho, .epsilon = epsilon};
    return df_variable_update_make(g, &df_op_apply_rmsprop, 3, in, &a);
}
