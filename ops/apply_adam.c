/* apply_adam.c — one fused Adam step, in place, as Keras computes it:
 *   t = iterations (already incremented), lr_t = lr sqrt(1-b2^t) / (1-b1^t)
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  w -= lr_t m / (sqrt(v) + eps)
 * Inputs: grad, lr (), iterations (i32 ()), m, v (slot variables' reads). */
#include <math.h>
#include "common.h"

DF_ATTRS_BEGIN
typedef struct {
    df_update_attrs update;
    float beta1, beta2, epsilon;
    uint32_t unused;              /* 0: no padding */
} apply_adam_attrs;
DF_ATTRS_END

// grad, m, v (w's shape), lr (), t () -> w, m, v storage
static df_status apply_adam_forward(df_node *n)
{
    float *w = n->data, *m = DF_F32P(n->in[3]), *v = DF_F32P(n->in[4]);
    const float *grad = DF_F32P(n->in[0]);
    const apply_adam_attrs *a = DF_ATTRS(n, apply_adam_attrs);
    float b1 = a->beta1, b2 = a->beta2, eps = a->epsilon;
    double t = (double)DF_I32P(n->in[2])[0];
    float lr_t = (float)(DF_F32P(n->in[1])[0] * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    int64_t N = n->numel;
#pragma omp parallel for schedule(static) if (N > DF_PAR_MIN)
    for (int64_t i = 0; i < N; i++) {
        float gi = grad[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
    }
    return DF_OK;
}

/* m (3 FLOPs), v (4), w -= lr_t m / (sqrt(v) + eps) (5): 12 per element; g
 * read, m, v and w read and written. */
static void apply_adam_cost(const df_node *n, df_op_cost *out)
{
    *out = (df_op_cost){.flops = 12.0 * (double)n->numel, .bytes = 7.0 * 4 * (double)n->numel};
}

const df_op_def df_op_apply_adam = {
    .name = "apply_adam", .flags = DF_OP_SIDE_EFFECT | DF_OP_EXTERNAL,
    .infer = df_infer_variable_update, .forward = apply_adam_forward, .attrs_size = sizeof(apply_adam_attrs),
    .no_gradcheck = "optimizer update, tested in tests/test_graph.c and tests/test_optim.c",
    .min_inputs = 5, .max_inputs = 5, .attrs_kind = DF_ATTRS_VARIABLE,
    .cost = apply_adam_cost,
};

df_node *df_apply_adam(df_graph *g, df_variable *w, df_node *grad, df_node *lr, df_node *t,
                       df_node *m, df_node *v, float beta1, float beta2, float eps)
{
    df_node *in[5] = {grad, lr, t, m, v};
    apply_adam_attrs a = {.update.var = w, .beta1 = beta1, .beta2 = beta2, .epsilon = eps};
    return df_variable_update_make(g, &df_op_apply_adam, 5, in, &a);
}
